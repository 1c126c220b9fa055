//! A small HTTP/1.1 server on std::net, plain or over TLS (rustls): accept loop, one
//! thread per connection, a request parser (Content-Length and chunked bodies,
//! `Expect: 100-continue`), fixed-length responses and chunked streaming responses.
//! Written by hand rather than on tiny_http because the fake must count TCP connections,
//! keep connections alive across completed streams, flush each SSE event on demand and
//! misbehave at the socket level (abortive resets, bodies cut mid-way) — things a
//! general server library hides.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Requests larger than this are refused; the fake has no endpoint that needs more.
const MAX_BODY: usize = 64 << 20;
const MAX_HEAD_LINE: usize = 64 << 10;

/// One parsed request.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// Path without the query string, still percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Option<SocketAddr>,
}

impl Request {
    /// `name` in lower case: header names are stored lower-cased.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::util::field(&self.headers, name)
    }
    pub fn query(&self, name: &str) -> Option<&str> {
        crate::util::field(&self.query, name)
    }
    /// Body as JSON; `None` for an empty or invalid body.
    pub fn json(&self) -> Option<serde_json::Value> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
    pub fn form(&self) -> Vec<(String, String)> {
        crate::util::parse_form(&String::from_utf8_lossy(&self.body))
    }
    fn wants_close(&self, http10: bool) -> bool {
        let c = self.header("connection").unwrap_or("").to_ascii_lowercase();
        c.contains("close") || (http10 && !c.contains("keep-alive"))
    }
}

/// How a streamed body ended, so the connection loop knows whether it may go on.
pub enum StreamEnd {
    /// The terminating chunk was written; the connection can serve the next request.
    Finished,
    /// Close abortively (a fault, or the client went away).
    Abort,
}

pub type StreamFn = Box<dyn FnOnce(&mut ChunkedOut<'_>) -> StreamEnd + Send>;

/// What a handler answers. A `stream` replaces `body` with a chunked body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stream: Option<StreamFn>,
    /// For the request log: the conversation this request touched, if the handler knows.
    pub conversation_id: Option<String>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            stream: None,
            conversation_id: None,
        }
    }
    pub fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply::new(status, "application/json; charset=utf-8", v.to_string())
    }
    pub fn html(status: u16, s: String) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", s)
    }
    pub fn redirect(location: &str) -> Reply {
        let mut r = Reply::new(302, "text/html; charset=utf-8", Vec::new());
        r.headers.push(("Location".into(), location.to_string()));
        r
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

/// What the router decides to do with a request.
pub enum Action {
    Reply(Reply),
    /// Send headers and the first `n` bytes of the body, then reset.
    CutAfter(Reply, usize),
    /// Close the connection abortively without answering.
    Reset,
}

/// The application side: turns one request into an action. `logid` is the fresh
/// `x-tt-logid` of this response.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request, logid: &str, first_on_conn: bool) -> Action;
    /// Whether `req` (its head read, its body not) wants its body handed over unread, as
    /// a [`Body`] to stream from, rather than buffered into `req.body`: uploads, whose
    /// content the fake hashes as it arrives and never holds.
    fn streams_body(&self, _req: &Request) -> bool {
        false
    }
    /// Answer a request whose body is read from `body`. What the handler leaves unread
    /// is not read after it: the answer goes out with `Connection: close` and the
    /// connection ends with a lingering close (see [`linger`]).
    fn handle_streamed(
        &self,
        req: &Request,
        _body: &mut Body<'_>,
        logid: &str,
        first_on_conn: bool,
    ) -> Action {
        self.handle(req, logid, first_on_conn)
    }
}

/// How a body is framed on the wire.
enum Framing {
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    /// `Transfer-Encoding: chunked`: this many bytes left in the current chunk (0: a
    /// chunk-size line comes next).
    Chunked(u64),
}

/// A request body read as it arrives, de-chunked, never buffered whole. A body that
/// ends before its framing says it does (the peer closed, a cut upload) is an
/// `UnexpectedEof` error, never a short clean end.
pub struct Body<'a> {
    r: &'a mut Reader,
    framing: Framing,
    /// Body bytes read so far (after de-chunking).
    pub read: u64,
    done: bool,
}

impl Body<'_> {
    /// The declared length (`Content-Length`), None when chunked.
    pub fn declared_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(rest) => Some(rest + self.read),
            Framing::Chunked(_) => None,
        }
    }
    /// Whether the whole body has been read (so the connection can serve another request).
    pub fn complete(&self) -> bool {
        self.done
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let cut = || io::Error::new(io::ErrorKind::UnexpectedEof, "the request body ended early");
        let want = match self.framing {
            Framing::Length(0) => {
                self.done = true;
                return Ok(0);
            }
            Framing::Length(rest) => rest,
            Framing::Chunked(0) => {
                let size_line = read_line(self.r)?.ok_or_else(cut)?;
                let hex = size_line.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(hex, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    while let Some(t) = read_line(self.r)? {
                        if t.is_empty() {
                            break;
                        }
                    }
                    self.done = true;
                    return Ok(0);
                }
                self.framing = Framing::Chunked(size);
                size
            }
            Framing::Chunked(rest) => rest,
        };
        let n = buf.len().min(usize::try_from(want).unwrap_or(usize::MAX));
        let got = self.r.read(&mut buf[..n])?;
        if got == 0 {
            return Err(cut());
        }
        self.read += got as u64;
        match &mut self.framing {
            Framing::Length(rest) => {
                *rest -= got as u64;
                if *rest == 0 {
                    self.done = true;
                }
            }
            Framing::Chunked(rest) => {
                *rest -= got as u64;
                if *rest == 0 {
                    // The CRLF that ends the chunk's data.
                    read_line(self.r)?.ok_or_else(cut)?;
                }
            }
        }
        Ok(got)
    }
}

/// Chunked body writer. Events are appended to `buf`; `flush` sends everything buffered
/// as ONE chunk and flushes the socket, so a burst of small events costs one syscall and
/// a delayed event reaches the client at once.
pub struct ChunkedOut<'a> {
    w: &'a mut Writer,
    pub buf: Vec<u8>,
    pub bytes_sent: usize,
}

impl ChunkedOut<'_> {
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            write!(self.w, "{:x}\r\n", self.buf.len())?;
            self.w.write_all(&self.buf)?;
            self.w.write_all(b"\r\n")?;
            self.bytes_sent += self.buf.len();
            self.buf.clear();
        }
        self.w.flush()
    }
    /// Flush and write the terminating zero-length chunk.
    pub fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        self.w.write_all(b"0\r\n\r\n")?;
        self.w.flush()
    }
}

/// Shared server bookkeeping: the stop flag and the open connections (so `stop` can
/// unblock threads parked in `read`).
pub struct Server {
    pub stop: AtomicBool,
    /// The response header that carries each response's logid (`x-tt-logid` on
    /// coze.cn, `X-Log-ID` on a self-hosted Coze Studio).
    pub logid_header: &'static str,
    next_conn: AtomicU64,
    /// The underlying TCP socket of every open connection, TLS or not.
    conns: Mutex<HashMap<u64, TcpStream>>,
    /// Serve HTTPS with this configuration; None: plain HTTP.
    tls: Option<Arc<ServerConfig>>,
    /// Say on stderr why a connection ended early (a failed TLS handshake).
    verbose: bool,
}

impl Server {
    pub fn new(
        logid_header: &'static str,
        tls: Option<Arc<ServerConfig>>,
        verbose: bool,
    ) -> Arc<Server> {
        Arc::new(Server {
            stop: AtomicBool::new(false),
            logid_header,
            next_conn: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            tls,
            verbose,
        })
    }

    /// Shut down every open connection (the TCP sockets under any TLS); their threads
    /// then see EOF and exit.
    pub fn close_all(&self) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for s in conns.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Run the accept loop until `server.stop` is set (the stopper then connects once to wake
/// `accept`). Joins every connection thread before returning.
pub fn serve(listener: TcpListener, server: Arc<Server>, handler: Arc<dyn Handler>) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for conn in listener.incoming() {
        if server.stopping() {
            break;
        }
        let Ok(stream) = conn else { continue };
        let server2 = server.clone();
        let handler2 = handler.clone();
        threads.retain(|t| !t.is_finished());
        match std::thread::Builder::new()
            .name("coze-fake-conn".into())
            .spawn(move || connection(stream, server2, handler2))
        {
            Ok(t) => threads.push(t),
            Err(_) => continue,
        }
    }
    server.close_all();
    for t in threads {
        let _ = t.join();
    }
}

/// One connection's bytes as the request reader and the response writer see them.
enum Io {
    /// A clone of the socket: reads and writes go straight to it, as without TLS support.
    Plain(TcpStream),
    /// The one TLS session, shared by reader and writer because it cannot be cloned. A
    /// connection is served by one thread that reads a request, then writes its answer,
    /// so the two never borrow it at once (a clash would be an io::Error, not a panic).
    Tls(Rc<RefCell<StreamOwned<ServerConnection, TcpStream>>>),
}

type Reader = BufReader<Io>;
type Writer = BufWriter<Io>;

impl Io {
    fn tls(&self) -> io::Result<std::cell::RefMut<'_, StreamOwned<ServerConnection, TcpStream>>> {
        match self {
            Io::Tls(t) => t
                .try_borrow_mut()
                .map_err(|_| io::Error::other("TLS session in use")),
            Io::Plain(_) => Err(io::Error::other("not TLS")),
        }
    }

    /// End a TLS session cleanly (close_notify), so the client can tell the end of the
    /// connection from a truncation. Nothing to do without TLS.
    fn close_notify(&self) {
        if let Ok(mut t) = self.tls() {
            t.conn.send_close_notify();
            let _ = t.flush();
        }
    }
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            // Many clients drop a kept-alive TLS connection without close_notify; to the
            // request parser that is the same clean EOF as a plain close (a body cut
            // short is still caught by its framing).
            Io::Tls(_) => match self.tls()?.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(_) => self.tls()?.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(_) => self.tls()?.flush(),
        }
    }
}

/// The reader's and the writer's ends of `stream`: two socket clones, or one TLS session
/// whose handshake is completed here. None if the connection is over before it began.
fn open(stream: &TcpStream, server: &Server) -> Option<(Io, Io)> {
    let Some(config) = &server.tls else {
        let rd = stream.try_clone().ok()?;
        let wr = stream.try_clone().ok()?;
        return Some((Io::Plain(rd), Io::Plain(wr)));
    };
    let mut sock = stream.try_clone().ok()?;
    let handshake = ServerConnection::new(config.clone())
        .map_err(io::Error::other)
        .and_then(|mut conn| {
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock)? == (0, 0) {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(conn)
        });
    match handshake {
        Ok(conn) => {
            let shared = Rc::new(RefCell::new(StreamOwned::new(conn, sock)));
            Some((Io::Tls(shared.clone()), Io::Tls(shared)))
        }
        // A client that does not trust the certificate, a port probe, a stop: this
        // connection just ends; the server goes on.
        Err(e) => {
            if server.verbose && !server.stopping() {
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| "?".to_string(), |a| a.to_string());
                crate::util::say(&format!("coze-fake: TLS handshake with {peer} failed: {e}"));
            }
            None
        }
    }
}

fn connection(stream: TcpStream, server: Arc<Server>, handler: Arc<dyn Handler>) {
    let _ = stream.set_nodelay(true);
    let id = server.next_conn.fetch_add(1, Ordering::Relaxed);
    if let Ok(c) = stream.try_clone() {
        server
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, c);
    }
    let abort = match open(&stream, &server) {
        Some((rd, wr)) => {
            let mut reader = BufReader::with_capacity(16 << 10, rd);
            let mut writer = BufWriter::with_capacity(32 << 10, wr);
            let peer = stream.peer_addr().ok();
            let end = conn_loop(&mut reader, &mut writer, peer, &server, &*handler);
            if end != End::Abort {
                let _ = writer.flush();
                writer.get_ref().close_notify();
            }
            if end == End::Linger {
                linger(&stream, &mut reader);
            }
            end == End::Abort
        }
        None => false,
    };
    // Drop the registry's clone before the last descriptor closes: an abortive close
    // (SO_LINGER 0) only sends RST when the final descriptor of the socket goes away.
    server
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    if abort {
        set_linger_zero(&stream);
    } else {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// How a connection ends.
#[derive(PartialEq)]
enum End {
    /// A FIN, after the answers.
    Close,
    /// An abortive reset.
    Abort,
    /// A request body was left unread: a FIN, then its rest is read and thrown away for
    /// a while ([`linger`]).
    Linger,
}

/// Serve requests on one connection; says how it must end.
fn conn_loop(
    reader: &mut Reader,
    writer: &mut Writer,
    peer: Option<SocketAddr>,
    server: &Server,
    handler: &dyn Handler,
) -> End {
    let mut first = true;
    loop {
        if server.stopping() {
            return End::Close;
        }
        let head_read = read_head(reader, writer).and_then(|r| match r {
            Some((req, http10)) if !handler.streams_body(&req) => {
                let mut req = req;
                read_body(reader, &mut req)?;
                Ok(Some((req, http10, false)))
            }
            Some((req, http10)) => Ok(Some((req, http10, true))),
            None => Ok(None),
        });
        let (mut req, http10, streamed) = match head_read {
            Ok(Some(r)) => r,
            Ok(None) => return End::Close,
            Err(_) => {
                let _ = write_simple(writer, server.logid_header, 400, "bad request");
                return End::Close;
            }
        };
        req.peer = peer;
        let mut close = req.wants_close(http10);
        let logid = crate::util::logid_for(server.logid_header);
        let head = req.method == "HEAD";
        let (action, unread) = if streamed {
            let Some(framing) = framing(&req) else {
                let _ = write_simple(writer, server.logid_header, 400, "bad request");
                return End::Close;
            };
            let mut body = Body {
                r: reader,
                framing,
                read: 0,
                done: false,
            };
            let action = handler.handle_streamed(&req, &mut body, &logid, first);
            (action, !body.complete())
        } else {
            (handler.handle(&req, &logid, first), false)
        };
        close |= unread;
        first = false;
        let res = match action {
            Action::Reset => return End::Abort,
            Action::CutAfter(reply, n) => {
                let _ = write_head(writer, &reply, (server.logid_header, &logid), false, close);
                let n = n.min(reply.body.len());
                let _ = writer.write_all(&reply.body[..n]);
                let _ = writer.flush();
                return End::Abort;
            }
            Action::Reply(mut reply) => match reply.stream.take() {
                Some(f) => {
                    if write_head(writer, &reply, (server.logid_header, &logid), true, close)
                        .is_err()
                    {
                        return End::Abort;
                    }
                    let mut out = ChunkedOut {
                        w: writer,
                        buf: Vec::with_capacity(20 << 10),
                        bytes_sent: 0,
                    };
                    match f(&mut out) {
                        StreamEnd::Finished => Ok(()),
                        StreamEnd::Abort => return End::Abort,
                    }
                }
                None => write_head(writer, &reply, (server.logid_header, &logid), false, close)
                    .and_then(|_| {
                        if head {
                            Ok(())
                        } else {
                            writer.write_all(&reply.body)
                        }
                    })
                    .and_then(|_| writer.flush()),
            },
        };
        if unread && res.is_ok() {
            return End::Linger;
        }
        if res.is_err() || close {
            return End::Close;
        }
    }
}

/// The framing of `req`'s body; None when its headers make no sense.
fn framing(req: &Request) -> Option<Framing> {
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return Some(Framing::Chunked(0));
    }
    match req.header("content-length") {
        Some(cl) => cl.parse().ok().map(Framing::Length),
        None => Some(Framing::Length(0)),
    }
}

/// How long a lingering close reads and discards what a client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// A lingering close, as nginx's `lingering_close`: the answer is out and the write
/// side shut; the rest of the request body is read and dropped (never kept) for a few
/// seconds. Closing with unread bytes instead would make the kernel reset the
/// connection, and a client still sending could lose the answer to that reset.
fn linger(stream: &TcpStream, reader: &mut Reader) {
    let _ = stream.shutdown(Shutdown::Write);
    let end = std::time::Instant::now() + LINGER;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let mut sink = [0u8; 16 << 10];
    while std::time::Instant::now() < end {
        match reader.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The status line and headers of `r`: chunked, or with the length of `r.body`.
fn write_head(
    w: &mut Writer,
    r: &Reply,
    logid: (&str, &str),
    chunked: bool,
    close: bool,
) -> io::Result<()> {
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\n{}: {}\r\n",
        r.status,
        reason(r.status),
        http_date(std::time::SystemTime::now()),
        r.content_type,
        logid.0,
        logid.1
    );
    if chunked {
        h.push_str("Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
    } else {
        h.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
    }
    for (k, v) in &r.headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    w.write_all(h.as_bytes())
}

/// An IMF-fixdate (RFC 9110 §5.6.7), `Sun, 06 Nov 1994 08:49:37 GMT`: every response
/// carries one, as the real API's do, so clients can measure their clock skew.
fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn write_simple(w: &mut Writer, logid_header: &str, status: u16, msg: &str) -> io::Result<()> {
    let r = Reply::new(status, "text/plain", msg);
    let logid = crate::util::logid_for(logid_header);
    write_head(w, &r, (logid_header, &logid), false, true)?;
    w.write_all(msg.as_bytes())?;
    w.flush()
}

fn read_line(r: &mut Reader) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_HEAD_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or truncated",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Read one request's head; `Ok(None)` on a clean EOF between requests.
fn read_head(r: &mut Reader, w: &mut Writer) -> io::Result<Option<(Request, bool)>> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue, // tolerate stray CRLF between requests
            Some(l) => break l,
        }
    };
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or_else(|| bad("no method"))?.to_string();
    let target = parts.next().ok_or_else(|| bad("no target"))?;
    let version = parts.next().unwrap_or("HTTP/1.1");
    let http10 = version == "HTTP/1.0";
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), crate::util::parse_form(q)),
        None => (target.to_string(), Vec::new()),
    };
    let mut headers = Vec::new();
    loop {
        let l = read_line(r)?.ok_or_else(|| bad("eof in headers"))?;
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if headers.len() > 200 {
            return Err(bad("too many headers"));
        }
    }
    let req = Request {
        method,
        path,
        query,
        headers,
        body: Vec::new(),
        peer: None,
    };
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    Ok(Some((req, http10)))
}

/// Read the whole body of `req` (at most `MAX_BODY` bytes) into `req.body`.
fn read_body(r: &mut Reader, req: &mut Request) -> io::Result<()> {
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size_line = read_line(r)?.ok_or_else(|| bad("eof in chunk size"))?;
            let hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the blank line.
                while let Some(t) = read_line(r)? {
                    if t.is_empty() {
                        break;
                    }
                }
                break;
            }
            if req.body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            r.read_exact(&mut req.body[start..])?;
            read_line(r)?;
        }
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| bad("bad content-length"))?;
        if n > MAX_BODY {
            return Err(bad("body too large"));
        }
        req.body.resize(n, 0);
        r.read_exact(&mut req.body)?;
    }
    Ok(())
}

/// Make the coming close abortive (RST instead of FIN). std has no stable `set_linger`,
/// so on Linux call setsockopt directly; elsewhere fall back to a plain shutdown.
#[cfg(target_os = "linux")]
fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is a live socket owned by `s`; the option value points at a
    // properly sized `struct linger` that outlives the call.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            std::mem::size_of::<Linger>() as u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_linger_zero(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::http_date;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates_are_imf_fixdate() {
        let at = |s: u64| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_767_225_599), "Wed, 31 Dec 2025 23:59:59 GMT");
    }
}
