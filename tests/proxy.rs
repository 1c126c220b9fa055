//! The proxy variables reach the real requests: a small CONNECT proxy on loopback
//! stands between the tools and coze-fake and records what it tunnelled. Other tests
//! use it to see requests as they go on the wire (headers and bodies).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    // A port nobody listens on.
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], refusing_port()));
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

// ---------------------------------------------------------------- SOCKS and the rules

use crate::socks_server::{Method, Socks, Version};

const BOT: &str = "7000000000000000001";

fn conv_list(sb: &Sandbox) -> Command {
    let mut c = sb.cmd("coze-conv");
    c.args(["list", "--bot", BOT, "--retries", "0"]);
    c
}

#[test]
fn all_proxy_socks5_carries_the_calls_and_resolves_names_here() {
    let sb = logged_in("proxy-socks5");
    let socks = Socks::start();
    // The API base names the fake by name: socks5:// resolves it on this machine and
    // asks the proxy for the address.
    let base = sb.base_url().replace("127.0.0.1", "localhost");
    let r = run(
        conv_list(&sb)
            .env("COZE_API_BASE", &base)
            .env("ALL_PROXY", socks.url("socks5")),
        "",
    );
    r.ok();
    let conns = socks.connections_when_done(Duration::from_secs(5));
    assert_eq!(conns.len(), 1, "{conns:?}");
    let c = &conns[0];
    assert_eq!((c.version, c.by_name), (Version::Socks5, false), "{c:?}");
    assert_eq!(c.target, sb.fake.addr().to_string(), "{c:?}");
    assert!(c.to_target > 0 && c.from_target > 0, "{c:?}");
    assert_eq!(stat(&sb, "/requests/conversation.list"), 1);
}

#[test]
fn socks5h_sends_the_name_to_the_proxy_with_credentials() {
    let sb = logged_in("proxy-socks5h");
    let socks = Socks::with_auth("ada", "s3 cret");
    // A name only the proxy knows: the request can only arrive through it. It is not
    // loopback to the tools, so plain http to it needs --allow-http.
    socks.map("coze-fake.corp.test", sb.fake.addr());
    let base = format!("http://coze-fake.corp.test:{}", sb.fake.addr().port());
    let proxy = socks.url_with_auth("socks5h", "ada", "s3 cret");
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_API_BASE", &base)
            .env("all_proxy", &proxy)
            .args(["--bot", BOT, "-o", "text", "--allow-http", "-v", "经由代理"]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", coze_fake::answer_text("经由代理")),
        "{}",
        r.describe()
    );
    let conns = socks.connections_when_done(Duration::from_secs(5));
    assert!(!conns.is_empty());
    for c in &conns {
        assert_eq!(c.version, Version::Socks5, "{c:?}");
        assert_eq!(c.method, Method::UserPass, "{c:?}");
        assert_eq!(c.user.as_deref(), Some("ada"), "{c:?}");
        assert!(c.by_name, "{c:?}");
        assert_eq!(
            c.target,
            format!("coze-fake.corp.test:{}", sb.fake.addr().port())
        );
    }
    // -v tells the route; the plain-http warning comes once; no secret anywhere.
    assert!(
        r.stderr
            .contains("* coze-fake.corp.test: through socks5h://***@127.0.0.1:")
            && r.stderr
                .contains("from all_proxy (names resolved by the proxy)"),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.stderr
            .matches("warning: plain http:// to coze-fake.corp.test")
            .count(),
        1,
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("s3 cret") && !r.stderr.contains("s3%20cret"));
    // Without --allow-http the tools refuse before connecting anywhere.
    let before = socks.connections().len();
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_API_BASE", &base)
            .env("all_proxy", &proxy)
            .args(["--bot", BOT, "-o", "text", "hi"]),
        "",
    );
    r.expect_code(2);
    assert!(r.stderr.contains("--allow-http"), "{}", r.describe());
    assert_eq!(socks.connections().len(), before);
    // A wrong password is the proxy's refusal, named, and nothing goes direct.
    let r = run(
        conv_list(&sb)
            .env("COZE_API_BASE", &base)
            .env("COZE_ALLOW_HTTP", "1")
            .env("ALL_PROXY", socks.url_with_auth("socks5h", "ada", "wrong")),
        "",
    );
    r.expect_code(5);
    assert!(
        r.stderr
            .contains("(through the proxy socks5h://***@127.0.0.1:"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("wrong"), "{}", r.describe());
}

#[test]
fn socks4_and_socks4a() {
    let sb = logged_in("proxy-socks4");
    let socks = Socks::start();
    socks.map("fake4a.test", sb.fake.addr());
    let r = run(conv_list(&sb).env("ALL_PROXY", socks.url("socks4")), "");
    r.ok();
    let base = format!("http://fake4a.test:{}", sb.fake.addr().port());
    let r = run(
        conv_list(&sb)
            .env("COZE_API_BASE", &base)
            .env("COZE_ALLOW_HTTP", "1")
            .env("ALL_PROXY", socks.url("socks4a")),
        "",
    );
    r.ok();
    let conns = socks.connections_when_done(Duration::from_secs(5));
    let kinds: Vec<(Version, bool)> = conns.iter().map(|c| (c.version, c.by_name)).collect();
    assert_eq!(
        kinds,
        [(Version::Socks4, false), (Version::Socks4a, true)],
        "{conns:?}"
    );
    assert_eq!(stat(&sb, "/requests/conversation.list"), 2);
}

#[test]
fn the_flag_beats_the_variables_and_no_proxy_takes_cidr_ranges() {
    let sb = logged_in("proxy-rules");
    let socks = Socks::start();
    let unused = Socks::start();
    // --proxy beats ALL_PROXY.
    let r = run(
        conv_list(&sb)
            .env("ALL_PROXY", unused.url("socks5"))
            .args(["--proxy", &socks.url("socks5h")]),
        "",
    );
    r.ok();
    assert_eq!(socks.connections_when_done(Duration::from_secs(5)).len(), 1);
    // A CIDR range in NO_PROXY exempts the loopback address.
    let r = run(
        conv_list(&sb)
            .env("ALL_PROXY", unused.url("socks5"))
            .env("NO_PROXY", "example.com, 127.0.0.0/8"),
        "",
    );
    r.ok();
    // --proxy '' turns every proxy off.
    let r = run(
        conv_list(&sb)
            .env("ALL_PROXY", unused.url("socks5"))
            .args(["--proxy", ""]),
        "",
    );
    r.ok();
    assert!(
        unused.connections().is_empty(),
        "{:?}",
        unused.connections()
    );
    assert_eq!(stat(&sb, "/requests/conversation.list"), 3);
}

#[test]
fn a_proxy_the_tools_cannot_use_is_an_error_never_a_direct_connection() {
    let sb = logged_in("proxy-unusable");
    for (var, value) in [
        ("ALL_PROXY", "socks6://127.0.0.1:1080"),
        ("all_proxy", "ftp://ada:s3cret@proxy:21"),
        ("HTTP_PROXY", "http://proxy:notaport"),
    ] {
        let r = run(conv_list(&sb).env(var, value), "");
        r.expect_code(2);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(r.stderr.contains(&format!("{var} = ")), "{}", r.describe());
        assert!(!r.stderr.contains("s3cret"), "{}", r.describe());
    }
    assert_eq!(
        stat(&sb, "/requests/conversation.list"),
        0,
        "nothing reached the server directly"
    );
}

#[test]
fn doctor_reports_the_route_the_requests_take() {
    let sb = logged_in("proxy-doctor");
    let socks = Socks::start();
    let r = run(
        sb.cmd("coze-auth")
            .env("ALL_PROXY", socks.url("socks5h"))
            .args(["doctor", "--redirect-uri", "http://127.0.0.1:1/callback"]),
        "",
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" proxy: "))
        .unwrap_or_else(|| panic!("no proxy line\n{}", r.describe()));
    assert_eq!(
        line,
        format!(
            "warn  proxy: requests to 127.0.0.1 go through {} from ALL_PROXY (names \
             resolved by the proxy), which cannot reach this machine's loopback unless \
             it runs here; add 127.0.0.1 to NO_PROXY",
            socks.url("socks5h")
        ),
        "{}",
        r.describe()
    );
    // What the doctor reported is what happened: its requests went through the proxy.
    let conns = socks.connections_when_done(Duration::from_secs(5));
    assert!(
        conns.len() >= 2,
        "the clock probe and the live call: {conns:?}"
    );
    assert!(
        r.stdout.lines().any(|l| l.starts_with("ok    api: ")),
        "{}",
        r.describe()
    );
}

/// Credentials written into a base URL never reach a message or a `-v` line.
#[test]
fn credentials_in_a_base_url_are_never_shown() {
    let sb = logged_in("proxy-base-credentials");
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], refusing_port()));
    let r = run(
        conv_list(&sb)
            .args(["-v", "--base-url"])
            .arg(format!("http://ada:s3cret@{dead}")),
        "",
    );
    r.expect_code(5);
    assert!(
        r.stderr.contains(&format!("http://***@{dead}")),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.describe());
    let r = run(
        sb.cmd("coze-auth")
            .args([
                "doctor",
                "--redirect-uri",
                "http://127.0.0.1:1/cb",
                "--base-url",
            ])
            .arg(format!("http://ada:s3cret@{dead}")),
        "",
    );
    assert!(r.stdout.contains("***@"), "{}", r.describe());
    assert!(
        !r.stdout.contains("s3cret") && !r.stderr.contains("s3cret"),
        "{}",
        r.describe()
    );
}
