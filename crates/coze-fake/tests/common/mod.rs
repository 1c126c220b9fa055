//! What coze-fake's integration-test crates share: a tiny raw HTTP/1.1 client (no HTTP
//! library, so that keep-alive, chunked framing and header names are checked byte for
//! byte), SSE parsing, and running the `coze-fake` binary.

// Every test crate compiles this module on its own and uses a different part of it
// (tls.rs only the binary's helpers): what one crate leaves unused is not dead.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use coze_fake::{Fake, Options};
use serde_json::Value;

pub struct Resp {
    pub status: u16,
    /// Header names as received, case kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The value of header `name`, whatever its case on the wire (HTTP header names are
    /// case-insensitive); to check a name's exact spelling, look in `headers`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// One persistent connection.
pub struct Conn {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Conn {
    pub fn open(fake: &Fake) -> Conn {
        Conn::to(fake.addr())
    }

    pub fn to(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: fake\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.w.write_all(req.as_bytes()).unwrap();
        self.w.write_all(body).unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end_matches(['\r', '\n']).to_string()
    }

    /// The status line and headers; header names keep their case.
    pub fn head(&mut self) -> Resp {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .unwrap_or_else(|| panic!("bad status {status_line:?}"))
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        loop {
            let l = self.line();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        Resp {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// One chunk of a chunked body; None at its end.
    pub fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = usize::from_str_radix(&self.line(), 16).unwrap();
        if size == 0 {
            assert_eq!(self.line(), "");
            return None;
        }
        let mut chunk = vec![0; size];
        self.r.read_exact(&mut chunk).unwrap();
        assert_eq!(self.line(), "");
        Some(chunk)
    }

    /// The body that follows `r`'s head, chunked or of its Content-Length.
    pub fn body(&mut self, mut r: Resp) -> Resp {
        if r.header("Transfer-Encoding") == Some("chunked") {
            while let Some(c) = self.chunk() {
                r.body.extend_from_slice(&c);
            }
        } else {
            let n: usize = r.header("Content-Length").unwrap().parse().unwrap();
            r.body.resize(n, 0);
            self.r.read_exact(&mut r.body).unwrap();
        }
        r
    }

    pub fn req(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.send(method, path, headers, body);
        let h = self.head();
        self.body(h)
    }
}

/// The PAT the fakes of fake.rs and oauth.rs accept.
pub const PAT: &str = "pat_test_token";

/// A fake on loopback with `opts`, accepting [`PAT`].
pub fn start(opts: Options) -> Fake {
    Fake::start(Options {
        static_tokens: vec![PAT.into()],
        ..opts
    })
    .unwrap()
}

/// One request on a fresh connection.
pub fn call(fake: &Fake, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    Conn::open(fake).req(method, path, headers, body)
}

/// A JSON request, with `Authorization: Bearer {token}` when a token is given.
pub fn json_call(fake: &Fake, method: &str, path: &str, token: Option<&str>, body: &Value) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        h.push(("Authorization", a));
    }
    call(fake, method, path, &h, body.to_string().as_bytes())
}

pub fn post_json(fake: &Fake, path: &str, token: Option<&str>, body: &Value) -> Resp {
    json_call(fake, "POST", path, token, body)
}

pub fn get(fake: &Fake, path: &str, token: &str) -> Resp {
    call(
        fake,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

/// An SSE body written in the default style, as (event, data) pairs.
pub fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| {
            let mut ev = String::new();
            let mut data = String::new();
            for l in b.lines() {
                if let Some(e) = l.strip_prefix("event:") {
                    ev = e.to_string();
                } else if let Some(d) = l.strip_prefix("data:") {
                    data = d.to_string();
                }
            }
            (ev, data)
        })
        .collect()
}

/// The answer the `conversation.message.delta` events of `events` carry, joined.
pub fn delta_text(events: &[(String, String)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "conversation.message.delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Starts the `coze-fake` binary with `args` (stdin and stdout piped, stderr dropped) and
/// reads its ready line: the child, and that line as JSON.
pub fn spawn_binary<I, S>(args: I) -> (Child, Value)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_coze-fake"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let hello = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("ready line not JSON ({e}): {first:?}"));
    (child, hello)
}

/// Closes the binary's stdin, which ends it, and waits for it to exit: 10 s at most.
pub fn stop_binary(child: &mut Child) -> ExitStatus {
    drop(child.stdin.take());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The boundary of the forms [`form`] builds.
pub const BOUNDARY: &str = "----fake-test-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body: each part is (name, filename, content type, content).
pub fn form(parts: &[(&str, Option<&str>, &str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, ct, content) in parts {
        b.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let fname = filename
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        b.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{fname}\r\n").as_bytes(),
        );
        if !ct.is_empty() {
            b.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(content);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// The Content-Type of a [`form`].
pub fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Sends a request whose body `write_body` writes (on its own thread, so a server that
/// answers before reading it all cannot deadlock the test), then reads the answer.
/// `None` when the connection ended without one (a reset, a close).
pub fn send_streamed(
    addr: SocketAddr,
    head: &str,
    write_body: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> Option<Resp> {
    let mut c = Conn::to(addr);
    c.w.write_all(head.as_bytes()).unwrap();
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || write_body(&mut w));
    let resp = (|| {
        let mut l = String::new();
        if c.r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        let status = l.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            c.r.read_line(&mut l).ok()?;
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let n: usize = r.header("Content-Length")?.parse().ok()?;
        let mut body = vec![0; n];
        c.r.read_exact(&mut body).ok()?;
        Some(Resp { body, ..r })
    })();
    let _ = writer.join();
    resp
}

/// Uploads `body` (a whole form) with `token` to `/v1/files/upload`, Content-Length framed.
pub fn upload_form(fake: &Fake, token: &str, content_type: &str, body: Vec<u8>) -> Option<Resp> {
    let head = format!(
        "POST /v1/files/upload HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    send_streamed(fake.addr(), &head, move |w| {
        let _ = w.write_all(&body);
    })
}
