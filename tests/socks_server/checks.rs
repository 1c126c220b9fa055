//! The SOCKS test server's own tests: raw SOCKS4/4a/5 handshakes over std
//! TcpStreams, each checking what the server replies and what it records.

use super::*;

/// An echo server on loopback: each connection gets back what it sends, then a
/// half-close when the client half-closes. Its thread is leaked, like tests/proxy.rs's.
fn echo_server(bind: &str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let (mut r, mut w) = (&conn, &conn);
                let _ = io::copy(&mut r, &mut w);
                let _ = conn.shutdown(Shutdown::Write);
            });
        }
    });
    Ok(addr)
}

/// A loopback port nobody listens on, for the whole run.
fn dead_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], crate::util::refusing_port()))
}

fn client(socks: &Socks) -> TcpStream {
    let c = TcpStream::connect(socks.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

fn read_exactly(c: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    c.read_exact(&mut buf).unwrap();
    buf
}

fn read_to_end(c: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    out
}

/// SOCKS5 CONNECT request for an address type and its bytes.
fn socks5_request(atyp: u8, addr: &[u8], port: u16) -> Vec<u8> {
    let mut out = vec![5, 1, 0, atyp];
    out.extend_from_slice(addr);
    out.extend_from_slice(&port.to_be_bytes());
    out
}

fn socks5_name(name: &str, port: u16) -> Vec<u8> {
    let mut addr = vec![name.len() as u8];
    addr.extend_from_slice(name.as_bytes());
    socks5_request(3, &addr, port)
}

/// Reads a SOCKS5 reply; its code.
fn socks5_reply(c: &mut TcpStream) -> u8 {
    let head = read_exactly(c, 4);
    assert_eq!(head[0], 5, "{head:?}");
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        other => panic!("reply address type {other}"),
    };
    read_exactly(c, rest);
    head[1]
}

/// Sends `payload` through an open tunnel, half-closes, and expects it echoed back
/// and then the end of the stream.
fn echo_through(mut c: TcpStream, payload: &[u8]) {
    c.write_all(payload).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), payload);
}

fn only_conn(socks: &Socks) -> Conn {
    let conns = socks.connections_when_done(Duration::from_secs(10));
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert!(conns[0].done, "{conns:?}");
    conns[0].clone()
}

#[test]
fn socks5_no_auth_to_an_ipv4_target_tunnels_both_ways() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&socks5_request(1, &[127, 0, 0, 1], echo.port()))
        .unwrap();
    assert_eq!(socks5_reply(&mut c), 0);
    echo_through(c, b"hello through socks5");
    let conn = only_conn(&socks);
    assert_eq!(conn.version, Version::Socks5);
    assert_eq!(conn.version.to_string(), "5");
    assert_eq!(conn.method, Method::NoAuth);
    assert_eq!(conn.user, None);
    assert_eq!(conn.target, echo.to_string());
    assert!(!conn.by_name);
    assert_eq!(conn.connected_to, Some(echo));
    assert!(conn.succeeded());
    assert_eq!((conn.to_target, conn.from_target), (20, 20));
    assert_eq!(socks.url("socks5h"), format!("socks5h://{}", socks.addr));
}

#[test]
fn socks5_sends_a_mapped_name_to_its_address() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    socks.map("studio.corp.test", echo);
    let mut c = client(&socks);
    c.write_all(&[5, 2, 0, 2]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    // Any case, and the mapped port wins over the one asked for.
    c.write_all(&socks5_name("Studio.Corp.Test", 443)).unwrap();
    assert_eq!(socks5_reply(&mut c), 0);
    echo_through(c, b"by name");
    let conn = only_conn(&socks);
    assert_eq!(conn.target, "Studio.Corp.Test:443");
    assert!(conn.by_name);
    assert_eq!(conn.connected_to, Some(echo));
    assert_eq!((conn.to_target, conn.from_target), (7, 7));
}

#[test]
fn a_name_mapped_to_port_0_keeps_the_port_asked_for_and_unmapped_names_resolve() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    socks.map("api.corp.test", SocketAddr::from(([127, 0, 0, 1], 0)));
    for name in ["api.corp.test", "localhost"] {
        let mut c = client(&socks);
        c.write_all(&[5, 1, 0]).unwrap();
        assert_eq!(read_exactly(&mut c, 2), [5, 0]);
        c.write_all(&socks5_name(name, echo.port())).unwrap();
        assert_eq!(socks5_reply(&mut c), 0, "{name}");
        echo_through(c, b"x");
    }
    let conns = socks.connections_when_done(Duration::from_secs(10));
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0].connected_to, Some(echo));
    assert_eq!(conns[1].target, format!("localhost:{}", echo.port()));
    assert_eq!(conns[1].connected_to, Some(echo), "{conns:?}");
}

#[test]
fn socks5_username_and_password_right_and_wrong() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::with_auth("ada", "s3cret");
    assert_eq!(
        socks.url_with_auth("socks5h", "ada", "s3 cr@t"),
        format!("socks5h://ada:s3%20cr%40t@{}", socks.addr)
    );

    // Right: method 2 chosen over 0, status 0, then a working tunnel.
    let mut c = client(&socks);
    c.write_all(&[5, 2, 0, 2]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 2]);
    c.write_all(b"\x01\x03ada\x06s3cret").unwrap();
    assert_eq!(read_exactly(&mut c, 2), [1, 0]);
    c.write_all(&socks5_request(1, &[127, 0, 0, 1], echo.port()))
        .unwrap();
    assert_eq!(socks5_reply(&mut c), 0);
    echo_through(c, b"authenticated");
    let conn = only_conn(&socks);
    assert_eq!(conn.method, Method::UserPass);
    assert_eq!(conn.user.as_deref(), Some("ada"));

    // Wrong password: status 1, then the server closes.
    let mut c = client(&socks);
    c.write_all(&[5, 1, 2]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 2]);
    c.write_all(b"\x01\x03ada\x05wrong").unwrap();
    assert_eq!(read_exactly(&mut c, 2), [1, 1]);
    assert_eq!(read_to_end(&mut c), b"");

    // No method 2 offered: 0xFF, then the server closes.
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0xFF]);
    assert_eq!(read_to_end(&mut c), b"");

    // SOCKS4 carries no password: refused.
    let mut c = client(&socks);
    let mut req = vec![4, 1];
    req.extend_from_slice(&echo.port().to_be_bytes());
    req.extend_from_slice(&[127, 0, 0, 1, 0]);
    c.write_all(&req).unwrap();
    assert_eq!(read_exactly(&mut c, 8)[..2], [0, 91]);
    assert_eq!(read_to_end(&mut c), b"");

    assert_eq!(socks.connections().len(), 1);
    assert_eq!(socks.rejected(), 3);
}

#[test]
fn a_client_offering_only_user_pass_to_an_open_server_is_recorded_with_its_name() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    let mut c = client(&socks);
    c.write_all(&[5, 1, 2]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 2]);
    c.write_all(b"\x01\x04fred\x00").unwrap();
    assert_eq!(read_exactly(&mut c, 2), [1, 0]);
    c.write_all(&socks5_request(1, &[127, 0, 0, 1], echo.port()))
        .unwrap();
    assert_eq!(socks5_reply(&mut c), 0);
    echo_through(c, b"");
    let conn = only_conn(&socks);
    assert_eq!(
        (conn.method, conn.user.as_deref()),
        (Method::UserPass, Some("fred"))
    );
    assert_eq!((conn.to_target, conn.from_target), (0, 0));
}

#[test]
fn socks4_and_socks4a() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    socks.map("studio.corp.test", echo);

    // SOCKS4: an IPv4 address and a user id.
    let mut c = client(&socks);
    let mut req = vec![4, 1];
    req.extend_from_slice(&echo.port().to_be_bytes());
    req.extend_from_slice(&[127, 0, 0, 1]);
    req.extend_from_slice(b"bob\0");
    c.write_all(&req).unwrap();
    assert_eq!(read_exactly(&mut c, 8)[..2], [0, 90]);
    echo_through(c, b"four");

    // SOCKS4a: 0.0.0.1, an empty user id, then the name.
    let mut c = client(&socks);
    let mut req = vec![4, 1];
    req.extend_from_slice(&8080u16.to_be_bytes());
    req.extend_from_slice(&[0, 0, 0, 1]);
    req.extend_from_slice(b"\0studio.corp.test\0");
    c.write_all(&req).unwrap();
    assert_eq!(read_exactly(&mut c, 8)[..2], [0, 90]);
    echo_through(c, b"four-a");

    let conns = socks.connections_when_done(Duration::from_secs(10));
    assert_eq!(conns.len(), 2, "{conns:?}");
    let (four, four_a) = (&conns[0], &conns[1]);
    assert_eq!(four.version, Version::Socks4);
    assert_eq!(four.method, Method::UserId);
    assert_eq!(four.user.as_deref(), Some("bob"));
    assert_eq!(four.target, echo.to_string());
    assert!(!four.by_name);
    assert_eq!((four.to_target, four.from_target), (4, 4));
    assert_eq!(four_a.version, Version::Socks4a);
    assert_eq!(four_a.version.to_string(), "4a");
    assert_eq!(four_a.user, None);
    assert_eq!(four_a.target, "studio.corp.test:8080");
    assert!(four_a.by_name);
    assert_eq!(four_a.connected_to, Some(echo));
    assert_eq!((four_a.to_target, four_a.from_target), (6, 6));
}

#[test]
fn unreachable_targets_get_the_failure_replies() {
    let dead = dead_port();
    let socks = Socks::start();
    socks.map("gone.corp.test", dead);

    // SOCKS5, an address nobody listens on: 5 (connection refused).
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&socks5_request(1, &[127, 0, 0, 1], dead.port()))
        .unwrap();
    assert_eq!(socks5_reply(&mut c), 5);
    assert_eq!(read_to_end(&mut c), b"");

    // SOCKS5, a name that does not resolve: 4 (host unreachable).
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&socks5_name("nowhere.invalid", 80)).unwrap();
    assert_eq!(socks5_reply(&mut c), 4);

    // SOCKS4a to a mapped name that refuses: 91.
    let mut c = client(&socks);
    let mut req = vec![4, 1, 0, 80, 0, 0, 0, 9];
    req.extend_from_slice(b"\0gone.corp.test\0");
    c.write_all(&req).unwrap();
    assert_eq!(read_exactly(&mut c, 8)[..2], [0, 91]);
    assert_eq!(read_to_end(&mut c), b"");

    let conns = socks.connections_when_done(Duration::from_secs(10));
    let replies: Vec<u8> = conns.iter().map(|c| c.reply).collect();
    assert_eq!(replies, [5, 4, 91], "{conns:?}");
    assert!(conns.iter().all(|c| !c.succeeded() && c.done));
    assert_eq!(conns[1].connected_to, None);
    assert_eq!(conns[2].connected_to, Some(dead));
}

#[test]
fn socks5_ipv6_targets_are_recorded_as_sent() {
    let socks = Socks::start();
    // Loopback IPv6 may be missing here; then the request still parses and fails.
    let echo = echo_server("[::1]:0").ok();
    let port = echo.map_or(dead_port().port(), |a| a.port());
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&socks5_request(4, &Ipv6Addr::LOCALHOST.octets(), port))
        .unwrap();
    let reply = socks5_reply(&mut c);
    if echo.is_some() {
        assert_eq!(reply, 0);
        echo_through(c, b"six");
    } else {
        assert_ne!(reply, 0);
    }
    let conn = only_conn(&socks);
    assert_eq!(conn.target, format!("[::1]:{port}"));
    assert!(!conn.by_name);
    assert_eq!(conn.reply, reply);
}

#[test]
fn malformed_handshakes_are_closed_and_the_server_carries_on() {
    let echo = echo_server("127.0.0.1:0").unwrap();
    let socks = Socks::start();
    let garbage: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\n\r\n",        // not SOCKS
        &[5, 0],                          // no methods at all: nothing acceptable
        &[5, 1, 0, 4, 1, 0, 1],           // request version 4 after a SOCKS5 greeting
        &[5, 1, 0, 5, 1, 0, 9],           // address type 9
        &[5, 1, 0, 5, 1, 0, 3, 0, 0, 80], // an empty name
        &[4, 1, 0, 80, 1, 2, 3],          // SOCKS4 cut short, then closed
    ];
    for bytes in garbage {
        let mut c = client(&socks);
        // The server may hang up before reading it all: errors here are fine.
        let _ = c.write_all(bytes);
        let _ = c.shutdown(Shutdown::Write);
        // Whatever reply is due, then the end of the stream; never a hang.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    }
    // Not CONNECT (BIND): 7, command not supported.
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).unwrap();
    assert_eq!(socks5_reply(&mut c), 7);
    assert_eq!(read_to_end(&mut c), b"");

    assert_eq!(socks.rejected(), 7);
    assert!(socks.connections().is_empty());
    // Still serving.
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    c.write_all(&socks5_request(1, &[127, 0, 0, 1], echo.port()))
        .unwrap();
    assert_eq!(socks5_reply(&mut c), 0);
    echo_through(c, b"still here");
}

#[test]
fn a_stuck_client_is_not_waited_for_forever_and_drop_stops_accepting() {
    let socks = Socks::start();
    let addr = socks.addr;
    // A client that says nothing is simply left to the handshake timeout; meanwhile
    // others are served.
    let _stuck = client(&socks);
    let mut c = client(&socks);
    c.write_all(&[5, 1, 0]).unwrap();
    assert_eq!(read_exactly(&mut c, 2), [5, 0]);
    drop(socks);
    // The accept loop has been woken and has closed the listener.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting on {addr}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
