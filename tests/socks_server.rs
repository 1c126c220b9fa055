//! A SOCKS proxy on loopback for the end-to-end tests, standard library only: SOCKS5
//! (RFC 1928) CONNECT with IPv4, domain-name and IPv6 targets, "no auth" or
//! username/password (RFC 1929), and SOCKS4/SOCKS4a CONNECT. It records what each
//! client asked for exactly as sent, so a test can tell `socks5h://` (the proxy
//! resolves: a name on the wire) from `socks5://` (the client resolves: an address),
//! and a name map points made-up names at local test servers.
//!
//! Dropping the `Socks` closes its listening socket; tunnels already open run on until
//! either side closes or the connection has been idle for `IDLE`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a client may take over its handshake before the server hangs up.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// How long a tunnel may carry nothing, either way, before the server closes it.
const IDLE: Duration = Duration::from_secs(60);
/// How long a connection to a target may take.
const CONNECT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Socks4,
    Socks4a,
    Socks5,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Version::Socks4 => "4",
            Version::Socks4a => "4a",
            Version::Socks5 => "5",
        })
    }
}

/// How the client identified itself (the SOCKS5 method, or SOCKS4's user id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// SOCKS5 method 0.
    NoAuth,
    /// SOCKS5 method 2 (RFC 1929); `Conn::user` is the username.
    UserPass,
    /// SOCKS4's user id field (never checked); `Conn::user` is it, when not empty.
    UserId,
}

/// One CONNECT request, as the client sent it, and what became of it.
#[derive(Clone, Debug)]
pub struct Conn {
    pub version: Version,
    pub method: Method,
    pub user: Option<String>,
    /// The target exactly as sent: `1.2.3.4:443`, `[::1]:443` or `name:443`.
    pub target: String,
    /// Whether the client sent a name (SOCKS5 address type 3, or SOCKS4a).
    pub by_name: bool,
    /// Where the server connected (or tried to), when the target resolved.
    pub connected_to: Option<SocketAddr>,
    /// The reply code sent: SOCKS5 0 (succeeded), 1, 3, 4 (host unreachable), 5
    /// (connection refused); SOCKS4 90 (granted) or 91 (rejected or failed).
    pub reply: u8,
    /// Bytes carried from the client to the target, and back.
    pub to_target: u64,
    pub from_target: u64,
    /// Both directions have ended (or the connection never opened).
    pub done: bool,
}

impl Conn {
    pub fn succeeded(&self) -> bool {
        self.reply == 0 || self.reply == 90
    }
}

/// The live part of a record: the tunnel threads count into it.
#[derive(Default)]
struct Live {
    to_target: AtomicU64,
    from_target: AtomicU64,
    done: AtomicBool,
}

#[derive(Default)]
struct Shared {
    records: Mutex<Vec<(Conn, Arc<Live>)>>,
    names: Mutex<HashMap<String, SocketAddr>>,
    credentials: Option<(String, String)>,
    /// Handshakes that ended without a request: malformed, refused method, wrong
    /// credentials, SOCKS4 when credentials are required.
    rejected: AtomicU64,
    stop: AtomicBool,
}

/// Locks, ignoring poisoning: a panicking test thread must not take the server down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Socks {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Socks {
    /// A server that accepts SOCKS5 "no auth" (or any username/password a client
    /// insists on) and SOCKS4/4a.
    pub fn start() -> Socks {
        Socks::serve(None)
    }

    /// A server that requires SOCKS5 username/password with these credentials:
    /// a client that does not offer method 2 gets 0xFF, wrong credentials get status 1,
    /// and SOCKS4/4a requests get 91.
    pub fn with_auth(user: &str, pass: &str) -> Socks {
        Socks::serve(Some((user.to_owned(), pass.to_owned())))
    }

    fn serve(credentials: Option<(String, String)>) -> Socks {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            credentials,
            ..Shared::default()
        });
        let server = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if server.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let server = server.clone();
                std::thread::spawn(move || serve_client(client, &server));
            }
        });
        Socks { addr, shared }
    }

    /// Resolves `name` (as a client sends it, any case) to `addr` instead of asking
    /// the system; port 0 in `addr` keeps the port the client asked for.
    pub fn map(&self, name: &str, addr: SocketAddr) {
        lock(&self.shared.names).insert(name.to_ascii_lowercase(), addr);
    }

    /// `socks5h://127.0.0.1:PORT` for `url("socks5h")`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// `socks5://USER:PASS@127.0.0.1:PORT`, both percent-encoded.
    pub fn url_with_auth(&self, scheme: &str, user: &str, pass: &str) -> String {
        format!(
            "{scheme}://{}:{}@{}",
            percent_encode(user),
            percent_encode(pass),
            self.addr
        )
    }

    /// Every CONNECT request so far, in arrival order, with its byte counts as of now.
    pub fn connections(&self) -> Vec<Conn> {
        lock(&self.shared.records)
            .iter()
            .map(|(conn, live)| Conn {
                to_target: live.to_target.load(Ordering::SeqCst),
                from_target: live.from_target.load(Ordering::SeqCst),
                done: live.done.load(Ordering::SeqCst),
                ..conn.clone()
            })
            .collect()
    }

    /// `connections()` once every tunnel has ended (its counts final), or after
    /// `timeout` as they are.
    pub fn connections_when_done(&self, timeout: Duration) -> Vec<Conn> {
        let deadline = Instant::now() + timeout;
        loop {
            let conns = self.connections();
            if conns.iter().all(|c| c.done) || Instant::now() >= deadline {
                return conns;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many handshakes ended without a request (see `Shared::rejected`).
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop` and drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request, parsed: what to record and where to connect.
struct Request {
    version: Version,
    method: Method,
    user: Option<String>,
    target: Target,
}

enum Target {
    Addr(SocketAddr),
    Name(String, u16),
}

impl Target {
    fn display(&self) -> String {
        match self {
            Target::Addr(addr) => addr.to_string(),
            Target::Name(name, port) => format!("{name}:{port}"),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what.to_owned())
}

fn read_u8(s: &mut TcpStream) -> io::Result<u8> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_port(s: &mut TcpStream) -> io::Result<u16> {
    let b = read_n(s, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// SOCKS4's NUL-terminated strings, at most 255 bytes.
fn read_cstr(s: &mut TcpStream) -> io::Result<String> {
    let mut out = Vec::new();
    loop {
        match read_u8(s)? {
            0 => break,
            b if out.len() < 255 => out.push(b),
            _ => return Err(bad("socks4: string too long")),
        }
    }
    String::from_utf8(out).map_err(|_| bad("socks4: string not UTF-8"))
}

fn serve_client(mut client: TcpStream, server: &Shared) {
    let _ = client.set_read_timeout(Some(HANDSHAKE));
    let _ = client.set_write_timeout(Some(HANDSHAKE));
    let _ = client.set_nodelay(true);
    let request = match read_u8(&mut client) {
        Ok(5) => socks5_handshake(&mut client, server),
        Ok(4) => socks4_request(&mut client, server),
        Ok(_) => Err(bad("not SOCKS 4 or 5")),
        Err(e) => Err(e),
    };
    let Ok(request) = request else {
        // Malformed or refused: whatever reply was due has been sent; just close.
        server.rejected.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let target = request.target.display();
    let by_name = matches!(request.target, Target::Name(..));
    let (upstream, connected_to, failure) = connect(&request.target, server);
    let reply = match (request.version, failure) {
        (Version::Socks5, None) => 0,
        (Version::Socks5, Some(code)) => code,
        (_, None) => 90,
        (_, Some(_)) => 91,
    };
    let live = Arc::new(Live::default());
    lock(&server.records).push((
        Conn {
            version: request.version,
            method: request.method,
            user: request.user,
            target,
            by_name,
            connected_to,
            reply,
            to_target: 0,
            from_target: 0,
            done: false,
        },
        live.clone(),
    ));
    let bound = upstream
        .as_ref()
        .and_then(|u| u.local_addr().ok())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let sent = if request.version == Version::Socks5 {
        let mut out = vec![5, reply, 0];
        match bound.ip() {
            IpAddr::V4(ip) => {
                out.push(1);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&bound.port().to_be_bytes());
        client.write_all(&out)
    } else {
        // SOCKS4: VN 0, CD, then DSTPORT and DSTIP (ignored by clients).
        let mut out = vec![0, reply];
        out.extend_from_slice(&bound.port().to_be_bytes());
        match bound.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(_) => out.extend_from_slice(&[0; 4]),
        }
        client.write_all(&out)
    };
    match (sent, upstream) {
        (Ok(()), Some(upstream)) => tunnel(client, upstream, &live),
        _ => {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
    live.done.store(true, Ordering::SeqCst);
}

/// SOCKS5 after its version byte: method selection, RFC 1929 if chosen, the request.
fn socks5_handshake(c: &mut TcpStream, server: &Shared) -> io::Result<Request> {
    let n = read_u8(c)? as usize;
    let methods = read_n(c, n)?;
    let method = match &server.credentials {
        Some(_) => methods.contains(&2).then_some(2),
        None if methods.contains(&0) => Some(0),
        None => methods.contains(&2).then_some(2),
    };
    let Some(method) = method else {
        c.write_all(&[5, 0xFF])?;
        return Err(bad("socks5: no acceptable method"));
    };
    c.write_all(&[5, method])?;
    let (chosen, user) = if method == 2 {
        if read_u8(c)? != 1 {
            return Err(bad("socks5: bad user/pass version"));
        }
        let n = read_u8(c)? as usize;
        let user = String::from_utf8_lossy(&read_n(c, n)?).into_owned();
        let n = read_u8(c)? as usize;
        let pass = String::from_utf8_lossy(&read_n(c, n)?).into_owned();
        if let Some((u, p)) = &server.credentials {
            if (u, p) != (&user, &pass) {
                c.write_all(&[1, 1])?;
                return Err(bad("socks5: wrong credentials"));
            }
        }
        c.write_all(&[1, 0])?;
        (Method::UserPass, Some(user))
    } else {
        (Method::NoAuth, None)
    };
    let head = read_n(c, 4)?;
    let fail = |c: &mut TcpStream, code: u8| c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
    if head[0] != 5 {
        return Err(bad("socks5: bad request version"));
    }
    let target = match head[3] {
        1 => {
            let ip = read_n(c, 4)?;
            let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
            Target::Addr(SocketAddr::new(ip.into(), read_port(c)?))
        }
        3 => {
            let n = read_u8(c)? as usize;
            let name = read_n(c, n)?;
            let port = read_port(c)?;
            match String::from_utf8(name) {
                Ok(name) if !name.is_empty() => Target::Name(name, port),
                _ => {
                    fail(c, 1)?;
                    return Err(bad("socks5: bad name"));
                }
            }
        }
        4 => {
            let ip: [u8; 16] = read_n(c, 16)?.try_into().unwrap();
            Target::Addr(SocketAddr::new(Ipv6Addr::from(ip).into(), read_port(c)?))
        }
        _ => {
            fail(c, 8)?; // address type not supported
            return Err(bad("socks5: bad address type"));
        }
    };
    if head[1] != 1 {
        fail(c, 7)?; // command not supported: CONNECT only
        return Err(bad("socks5: not CONNECT"));
    }
    Ok(Request {
        version: Version::Socks5,
        method: chosen,
        user,
        target,
    })
}

/// SOCKS4 and SOCKS4a after the version byte.
fn socks4_request(c: &mut TcpStream, server: &Shared) -> io::Result<Request> {
    let cmd = read_u8(c)?;
    let port = read_port(c)?;
    let ip = read_n(c, 4)?;
    let user = read_cstr(c)?;
    let fail = |c: &mut TcpStream| c.write_all(&[0, 91, 0, 0, 0, 0, 0, 0]);
    // 4a: 0.0.0.x with x != 0, and the name after the user id.
    let (version, target) = if ip[..3] == [0, 0, 0] && ip[3] != 0 {
        let name = read_cstr(c)?;
        if name.is_empty() {
            fail(c)?;
            return Err(bad("socks4a: empty name"));
        }
        (Version::Socks4a, Target::Name(name, port))
    } else {
        let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
        (
            Version::Socks4,
            Target::Addr(SocketAddr::new(ip.into(), port)),
        )
    };
    if cmd != 1 || server.credentials.is_some() {
        fail(c)?;
        return Err(bad("socks4: not CONNECT, or credentials required"));
    }
    Ok(Request {
        version,
        method: Method::UserId,
        user: (!user.is_empty()).then_some(user),
        target,
    })
}

/// Connects to the target: a mapped name, else the system's resolver. On failure,
/// the SOCKS5 reply code for it.
fn connect(
    target: &Target,
    server: &Shared,
) -> (Option<TcpStream>, Option<SocketAddr>, Option<u8>) {
    let addrs: Vec<SocketAddr> = match target {
        Target::Addr(addr) => vec![*addr],
        Target::Name(name, port) => {
            let mapped = lock(&server.names).get(&name.to_ascii_lowercase()).copied();
            match mapped {
                Some(mut addr) => {
                    if addr.port() == 0 {
                        addr.set_port(*port);
                    }
                    vec![addr]
                }
                None => match (name.as_str(), *port).to_socket_addrs() {
                    Ok(addrs) => addrs.collect(),
                    Err(_) => return (None, None, Some(4)),
                },
            }
        }
    };
    let mut code = 4; // host unreachable, also when the name resolved to nothing
    let mut tried = None;
    for addr in addrs {
        tried = Some(addr);
        match TcpStream::connect_timeout(&addr, CONNECT) {
            Ok(stream) => return (Some(stream), Some(addr), None),
            Err(e) => {
                code = match e.kind() {
                    ErrorKind::ConnectionRefused => 5,
                    ErrorKind::NetworkUnreachable => 3,
                    ErrorKind::HostUnreachable | ErrorKind::TimedOut => 4,
                    _ => 1,
                }
            }
        }
    }
    (None, tried, Some(code))
}

/// Last time either direction carried a byte, as milliseconds since `start`.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::SeqCst);
    }

    fn idle(&self) -> Duration {
        self.start.elapsed() - Duration::from_millis(self.last.load(Ordering::SeqCst))
    }
}

/// Carries bytes both ways until both have ended; an end in one direction is passed on
/// as a half-close (shutdown(Write)) and the other keeps going.
fn tunnel(client: TcpStream, upstream: TcpStream, live: &Live) {
    // A short read timeout so each direction can check the connection's idle time:
    // one direction may rightly wait long (a streamed answer) while the other is busy.
    for s in [&client, &upstream] {
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.set_write_timeout(Some(IDLE));
    }
    let activity = Activity {
        start: Instant::now(),
        last: AtomicU64::new(0),
    };
    std::thread::scope(|s| {
        s.spawn(|| pump(&client, &upstream, &live.to_target, &activity));
        pump(&upstream, &client, &live.from_target, &activity);
    });
}

fn pump(from: &TcpStream, to: &TcpStream, count: &AtomicU64, activity: &Activity) {
    let mut buf = [0u8; 16 * 1024];
    let mut reader = from;
    let mut writer = to;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                // Counted before it is passed on: whoever has received it sees it counted.
                count.fetch_add(n as u64, Ordering::SeqCst);
                activity.touch();
                if writer.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if activity.idle() >= IDLE {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // A reset, a write that failed, or idle too long: tear the whole tunnel down,
    // which also ends the other direction's read.
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// The server's own tests: raw handshakes over std TcpStreams.
mod checks;
