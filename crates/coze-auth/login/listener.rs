//! The loopback listener that receives the OAuth redirect: it binds the redirect URI's
//! loopback address and port exactly (the URI must match the one registered on the
//! Coze app, so the port is never picked at random), is bound before the browser opens,
//! answers only the callback path and keeps waiting past forged callbacks (a wrong or
//! missing `state`) until the real one or the timeout. What a request means is
//! coze-core's `auth::callback::classify`; this is the I/O around it.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use coze_core::auth::callback::{classify, denied, tidy, Outcome};
use coze_core::support::{redact, url};
use coze_core::{Error, Result};

/// The hosts we serve a callback on. Other loopback spellings (127.0.0.2, ...) are not
/// accepted: a redirect URI registered on a Coze app uses one of these.
const LOOPBACK_HOSTS: &str = "127.0.0.1, localhost or [::1]";

/// Where the callback of a loopback redirect URI arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loopback {
    /// The address to bind: the loopback address itself, never a wildcard
    /// (`localhost` binds 127.0.0.1).
    pub addr: SocketAddr,
    /// The callback path (`/callback`); every other path gets a 404.
    pub path: String,
}

impl Loopback {
    /// Checks that coze-auth can serve `redirect_uri` itself: `http`, a loopback host,
    /// an explicit port. Anything else is a usage error that points at `--paste`.
    pub fn from_redirect_uri(redirect_uri: &str) -> Result<Loopback> {
        let parts =
            url::parse(redirect_uri).map_err(|e| Error::usage(format!("--redirect-uri: {e}")))?;
        let ip = match parts.host.as_str() {
            "127.0.0.1" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            "::1" => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => {
                return Err(Error::usage(format!(
                    "--redirect-uri {redirect_uri}: coze-auth can only receive the callback on \
                     {LOOPBACK_HOSTS}, not on {other}; with --paste, paste the URL the browser \
                     was sent to instead"
                )))
            }
        };
        if parts.scheme != "http" {
            return Err(Error::usage(format!(
                "--redirect-uri {redirect_uri}: the loopback callback is served over plain \
                 http:// (use http://{}/..., or --paste)",
                parts.host
            )));
        }
        let port = match parts.port {
            Some(p) if p != 0 => p,
            _ => {
                return Err(Error::usage(format!(
                    "--redirect-uri {redirect_uri}: name the port registered on the Coze app, \
                     e.g. http://127.0.0.1:8080/callback"
                )))
            }
        };
        Ok(Loopback {
            addr: SocketAddr::new(ip, port),
            path: parts.path,
        })
    }
}

/// What happened to a request, for `-v`, without the code or any other secret.
pub fn verdict(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Code(_) => "the code (accepted)",
        Outcome::Denied { .. } => "an error (the login ends)",
        Outcome::WrongState => "a wrong or missing state (refused)",
        Outcome::NotOurs => "not the callback (404)",
    }
}

/// `300 s`, `0.5 s`.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The small page the browser shows after the redirect.
fn page(title: &str, text: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head>\n<body style=\"font-family: sans-serif; \
         max-width: 40em; margin: 4em auto\"><h1>{title}</h1>\n<p>{}</p></body></html>\n",
        html_escape(text)
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page, and its status, that answers a request of this outcome.
pub fn response_page(outcome: &Outcome) -> (u16, String) {
    match outcome {
        Outcome::Code(_) => (
            200,
            page(
                "coze-auth: logged in",
                "You are logged in; you can close this tab and go back to the terminal.",
            ),
        ),
        Outcome::Denied { error, description } => (
            200,
            page(
                "coze-auth: login denied",
                &format!(
                    "The login was not approved: {} ({}). Run coze-auth again to retry; \
                     you can close this tab.",
                    tidy(description.as_deref().unwrap_or("no reason given")),
                    tidy(error)
                ),
            ),
        ),
        Outcome::WrongState => (
            400,
            page(
                "coze-auth: callback refused",
                "This callback was refused: its state does not match the login coze-auth \
                 is waiting for. It may come from an older login or from another site. \
                 coze-auth keeps waiting for the real one.",
            ),
        ),
        Outcome::NotOurs => (
            404,
            page("Not found", "coze-auth serves only its callback."),
        ),
    }
}

/// The loopback listener, bound on the redirect URI's address and port.
pub struct Listener {
    server: tiny_http::Server,
    loopback: Loopback,
}

impl Listener {
    /// Binds before anything is shown to the person, so a busy port fails first, in one
    /// line that names the port and where it comes from.
    pub fn bind(loopback: &Loopback) -> Result<Listener> {
        let failed = |why: String| {
            Error::Network(format!(
                "cannot listen on {} for the OAuth callback: {why}",
                loopback.addr
            ))
        };
        let tcp = TcpListener::bind(loopback.addr).map_err(|e| {
            failed(match e.kind() {
                io::ErrorKind::AddrInUse => "address in use (is another coze-auth running? \
                     the port comes from --redirect-uri)"
                    .to_owned(),
                io::ErrorKind::PermissionDenied => format!(
                    "permission denied (port {} is privileged; the port comes from \
                     --redirect-uri)",
                    loopback.addr.port()
                ),
                _ => format!(
                    "{} (the address comes from --redirect-uri)",
                    coze_core::http::describe_io(&e)
                ),
            })
        })?;
        let server =
            tiny_http::Server::from_listener(tcp, None).map_err(|e| failed(e.to_string()))?;
        Ok(Listener {
            server,
            loopback: loopback.clone(),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.loopback.addr
    }

    /// Serves requests until the real callback or `timeout`, and returns its code.
    /// Forged callbacks are refused and waiting goes on; `log` gets one line per
    /// request (path and verdict, never the query) when given.
    pub fn wait(
        &self,
        state: &str,
        timeout: Duration,
        mut log: Option<&mut dyn Write>,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut refused = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let request = match self.server.recv_timeout(left) {
                Ok(Some(r)) => r,
                Ok(None) => return Err(timed_out(timeout, refused)),
                Err(e) => {
                    return Err(Error::Network(format!(
                        "the OAuth callback listener failed: {}",
                        coze_core::http::describe_io(&e)
                    )))
                }
            };
            let method = request.method().as_str().to_owned();
            let outcome = classify(&method, request.url(), &self.loopback.path, state);
            if let Some(log) = log.as_deref_mut() {
                let path = request.url().split('?').next().unwrap_or_default();
                let _ = writeln!(
                    log,
                    "coze-auth: callback {method} {path}: {}",
                    verdict(&outcome)
                );
            }
            let (status, body) = response_page(&outcome);
            let response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header("Content-Type", "text/html; charset=utf-8"))
                .with_header(header("Cache-Control", "no-store"))
                .with_header(header("Referrer-Policy", "no-referrer"));
            // The browser's tab is a courtesy: a failure to answer it changes nothing.
            let _ = request.respond(response);
            match outcome {
                Outcome::Code(code) => {
                    redact::register(&code);
                    return Ok(code);
                }
                Outcome::Denied { error, description } => {
                    return Err(denied(&error, description.as_deref()))
                }
                Outcome::WrongState => refused += 1,
                Outcome::NotOurs => {}
            }
        }
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    // Invariant: both are static ASCII without newlines, which is all Header checks.
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn timed_out(timeout: Duration, refused: u32) -> Error {
    if refused > 0 {
        Error::Auth(format!(
            "a callback with a wrong state was refused ({refused} in all) and no valid \
             callback came within {}; was the login started by another coze-auth? run \
             coze-auth again",
            seconds(timeout)
        ))
    } else {
        Error::Auth(format!(
            "no callback within {}; finish the login in the browser, raise --timeout, or \
             use --paste (browser on another machine) or --device (no browser)",
            seconds(timeout)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "s7aTe-0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn loopback_redirect_uris() {
        let l = Loopback::from_redirect_uri("http://127.0.0.1:8080/callback").unwrap();
        assert_eq!(l.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(l.path, "/callback");
        let l = Loopback::from_redirect_uri("http://localhost:9/").unwrap();
        assert_eq!(l.addr, "127.0.0.1:9".parse().unwrap());
        let l = Loopback::from_redirect_uri("http://[::1]:7/cb?x=1").unwrap();
        assert_eq!(l.addr, "[::1]:7".parse().unwrap());
        assert_eq!(l.path, "/cb");
        assert_eq!(
            Loopback::from_redirect_uri("http://127.0.0.1:5")
                .unwrap()
                .path,
            "/"
        );
        for bad in [
            "https://example.com/callback",
            "http://10.0.0.1:8080/callback",
            "http://127.0.0.2:8080/callback",
            "http://0.0.0.0:8080/callback",
            "https://127.0.0.1:8080/callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:0/callback",
            "127.0.0.1:8080",
        ] {
            let e = Loopback::from_redirect_uri(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
            assert!(e.to_string().contains("--redirect-uri"), "{bad}: {e}");
        }
        let e = Loopback::from_redirect_uri("https://example.com/cb").unwrap_err();
        assert!(e.to_string().contains("--paste"), "{e}");
    }

    #[test]
    fn pages_are_small_utf8_html_saying_what_happened() {
        let (s, p) = response_page(&Outcome::Code("c".into()));
        assert_eq!(s, 200);
        assert!(p.contains("<title>") && p.contains("charset=\"utf-8\""));
        assert!(p.contains("You are logged in; you can close this tab"));
        assert!(!p.contains(">c<"));
        let (s, p) = response_page(&Outcome::WrongState);
        assert_eq!(s, 400);
        assert!(p.contains("refused"));
        let (s, p) = response_page(&Outcome::Denied {
            error: "access_denied".into(),
            description: Some("<script>no</script>".into()),
        });
        assert_eq!(s, 200);
        assert!(p.contains("not approved") && p.contains("&lt;script&gt;"));
        assert!(!p.contains("<script>"));
        assert_eq!(response_page(&Outcome::NotOurs).0, 404);
        let shown = format!(
            "{:?} {}",
            Outcome::Code("code_s3cret".into()),
            verdict(&Outcome::Code("code_s3cret".into()))
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn timeouts_say_what_happened() {
        let plain = timed_out(Duration::from_secs(300), 0).to_string();
        assert!(plain.starts_with("no callback within 300 s;"), "{plain}");
        let forged = timed_out(Duration::from_millis(2500), 1);
        assert_eq!(forged.exit_code(), 4);
        assert!(
            forged.to_string().contains("wrong state was refused"),
            "{forged}"
        );
        assert!(forged.to_string().contains("2.5 s"), "{forged}");
    }

    #[test]
    fn the_listener_refuses_forgeries_and_returns_the_code() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let lb = Loopback::from_redirect_uri(&format!("http://127.0.0.1:{port}/callback")).unwrap();
        let listener = Listener::bind(&lb).unwrap();
        // A second listener on the same port fails with the port and the flag named.
        let busy = Listener::bind(&lb).err().expect("port is busy").to_string();
        assert!(busy.contains(&format!("127.0.0.1:{port}")), "{busy}");
        assert!(busy.contains("--redirect-uri"), "{busy}");
        let client = std::thread::spawn(move || {
            let get = |target: &str| {
                use std::io::Read;
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(
                    s,
                    "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            };
            let r = get("/favicon.ico");
            assert!(r.starts_with("HTTP/1.1 404"), "{r}");
            let r = get("/callback?code=forged&state=bad");
            assert!(
                r.starts_with("HTTP/1.1 400") && r.contains("refused"),
                "{r}"
            );
            let r = get(&format!("/callback?code=real&state={STATE}"));
            assert!(
                r.starts_with("HTTP/1.1 200") && r.contains("logged in"),
                "{r}"
            );
        });
        let code = listener.wait(STATE, Duration::from_secs(20), None).unwrap();
        client.join().unwrap();
        assert_eq!(code, "real");
        let e = listener
            .wait(STATE, Duration::from_millis(50), None)
            .unwrap_err();
        assert_eq!(e.exit_code(), 4);
    }
}
