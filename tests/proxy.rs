//! The proxy variables reach the real requests: a small CONNECT proxy on loopback
//! stands between the tools and coze-fake and records what it tunnelled. Other tests
//! use it to see requests as they go on the wire (headers and bodies).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::util::*;

/// What the proxy saw: each CONNECT target with its Proxy-Authorization, and every
/// byte the client sent through the tunnels.
#[derive(Default)]
struct Seen {
    targets: Vec<(String, Option<String>)>,
    sent: Vec<u8>,
}

/// A CONNECT-only forward proxy (what ureq speaks to an HTTP proxy, for http and https
/// targets alike).
pub struct Proxy {
    pub url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || tunnel(client, &log));
            }
        });
        Proxy { url, seen }
    }

    fn targets(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().targets.clone()
    }

    /// The JSON bodies of the requests sent to `path` (plain http only), in order.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        let sent = String::from_utf8_lossy(&self.seen.lock().unwrap().sent).into_owned();
        sent.split(&format!(" {path}"))
            .skip(1)
            .filter(|request| request.starts_with([' ', '?']))
            .filter_map(|request| {
                let (head, rest) = request.split_once("\r\n\r\n")?;
                let len: usize = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })?;
                serde_json::from_str(rest.get(..len)?).ok()
            })
            .collect()
    }

    /// Every client request line and header the proxy carried, as text.
    pub fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap().sent).into_owned()
    }
}

fn tunnel(client: TcpStream, log: &Mutex<Seen>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut auth = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("proxy-authorization") {
                auth = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ =
            (&client).write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    log.lock().unwrap().targets.push((target.to_owned(), auth));
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    (&client)
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .unwrap();
    let (mut up_w, mut up_r) = (upstream.try_clone().unwrap(), upstream);
    let mut down_w = client;
    std::thread::scope(|s| {
        // Client to server, recorded; `reader` still holds what it buffered past the head.
        s.spawn(|| {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                    break;
                }
                log.lock().unwrap().sent.extend_from_slice(&buf[..n]);
            }
            let _ = up_w.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut up_r, &mut down_w);
        let _ = down_w.shutdown(Shutdown::Write);
    });
}

fn fake_authority(sb: &Sandbox) -> String {
    sb.base_url().trim_start_matches("http://").to_owned()
}

#[test]
fn http_proxy_carries_the_api_calls_and_a_chat() {
    let sb = logged_in("proxy-http");
    let proxy = Proxy::start();
    let r = run(
        sb.cmd("coze-conv").env("HTTP_PROXY", &proxy.url).args([
            "create",
            "--bot",
            "7000000000000000001",
        ]),
        "",
    );
    r.ok();
    assert!(
        r.records()[0]["conversation_id"].is_string(),
        "{}",
        r.describe()
    );
    let r = run(
        sb.cmd("coze-chat").env("http_proxy", &proxy.url).args([
            "--bot",
            "7000000000000000001",
            "-o",
            "text",
            "through the proxy",
        ]),
        "",
    );
    r.ok();
    assert!(!r.stdout.trim().is_empty(), "{}", r.describe());
    let targets = proxy.targets();
    assert!(targets.len() >= 2, "{targets:?}");
    assert!(
        targets.iter().all(|(t, _)| *t == fake_authority(&sb)),
        "{targets:?}"
    );
}

#[test]
fn proxy_credentials_go_to_the_proxy_and_nowhere_else() {
    let sb = logged_in("proxy-auth");
    let proxy = Proxy::start();
    let with_user = proxy.url.replace("http://", "http://ada:s3cret@");
    let r = run(
        sb.cmd("coze-conv").env("ALL_PROXY", &with_user).args([
            "list",
            "--bot",
            "7000000000000000001",
        ]),
        "",
    );
    r.ok();
    let targets = proxy.targets();
    assert_eq!(targets.len(), 1, "{targets:?}");
    // Basic base64("ada:s3cret")
    assert_eq!(targets[0].1.as_deref(), Some("Basic YWRhOnMzY3JldA=="));
    assert!(!r.stderr.contains("s3cret"), "{}", r.describe());
}

#[test]
fn no_proxy_exempts_the_host() {
    let sb = logged_in("proxy-exempt");
    let proxy = Proxy::start();
    let r = run(
        sb.cmd("coze-conv")
            .env("HTTP_PROXY", &proxy.url)
            .env("NO_PROXY", "localhost,127.0.0.1")
            .args(["list", "--bot", "7000000000000000001"]),
        "",
    );
    r.ok();
    assert!(proxy.targets().is_empty(), "{:?}", proxy.targets());
}

#[test]
fn a_dead_proxy_is_a_network_error_naming_the_proxy() {
    let sb = logged_in("proxy-dead");
    // A port nobody listens on: bound, then closed.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = run(
        sb.cmd("coze-conv")
            .env("HTTP_PROXY", format!("http://ada:s3cret@{dead}"))
            .args(["list", "--bot", "7000000000000000001", "--retries", "0"]),
        "",
    );
    r.expect_code(5);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr.starts_with("coze-conv: listing conversations"),
        "{}",
        r.describe()
    );
    // The refusal is the proxy's: the line says which proxy, without its password.
    assert!(
        r.stderr.contains(&format!(
            "(through the proxy http://***@{dead} from HTTP_PROXY)"
        )),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.describe());
    // With the host exempted, the same call goes straight to the fake.
    let r = run(
        sb.cmd("coze-conv")
            .env("HTTP_PROXY", format!("http://{dead}"))
            .env("no_proxy", "127.0.0.1")
            .args(["list", "--bot", "7000000000000000001", "--retries", "0"]),
        "",
    );
    r.ok();
}
