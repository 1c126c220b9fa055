//! Getting a person's consent back to coze-auth: the loopback listener that receives the
//! OAuth redirect, the browser that is opened on the authorize URL, and the redirected
//! URL pasted by hand when the browser runs on another machine (`--paste`).
//!
//! The pure parts decide what a request or a pasted line means ([`classify`],
//! [`parse_pasted`], [`Loopback::from_redirect_uri`]) and are unit-tested below; the I/O
//! around them ([`Listener`], [`open_browser`], [`login`]) stays thin. The listener binds
//! the redirect URI's loopback address and port exactly (the URI must match the one
//! registered on the Coze app, so the port is never picked at random), is bound before
//! the browser opens, answers only the callback path and keeps waiting past forged
//! callbacks (a wrong or missing `state`) until the real one or the timeout.
//! Exchanging the code is coze-token's job, not this module's; the device flow needs no
//! callback and lives in `oauth`.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Map;

use crate::error::{Error, Result};
use crate::oauth::{self, Authorize};
use crate::pkce::{self, Pkce};
use crate::records::AuthorizationCode;
use crate::{redact, url};

/// The hosts we serve a callback on. Other loopback spellings (127.0.0.2, ...) are not
/// accepted: a redirect URI registered on a Coze app uses one of these.
const LOOPBACK_HOSTS: &str = "127.0.0.1, localhost or [::1]";

/// The longest line `--paste` reads: an authorize redirect is well under 4 KiB.
const MAX_PASTE: u64 = 64 << 10;

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

/// What one request to the listener (or one pasted URL) means.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The real callback: the code, with our `state`.
    Code(String),
    /// The real callback carrying `error` (consent denied, or another OAuth error).
    Denied {
        error: String,
        description: Option<String>,
    },
    /// The callback path with a wrong or missing `state`: refused, keep waiting.
    WrongState,
    /// Anything else (favicon, other paths, other methods): 404, ignored.
    NotOurs,
}

/// Written by hand so that a logged outcome never shows the code.
impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Code(_) => f.write_str("Code(<redacted>)"),
            Outcome::Denied { error, description } => f
                .debug_struct("Denied")
                .field("error", error)
                .field("description", description)
                .finish(),
            Outcome::WrongState => f.write_str("WrongState"),
            Outcome::NotOurs => f.write_str("NotOurs"),
        }
    }
}

impl Outcome {
    /// What happened, for `-v`, without the code or any other secret.
    pub fn verdict(&self) -> &'static str {
        match self {
            Outcome::Code(_) => "the code (accepted)",
            Outcome::Denied { .. } => "an error (the login ends)",
            Outcome::WrongState => "a wrong or missing state (refused)",
            Outcome::NotOurs => "not the callback (404)",
        }
    }
}

/// Classifies a request by its method and request target (`/callback?code=..&state=..`)
/// against the callback path and the `state` this login sent. The state is compared in
/// constant time, and before anything else in the query is believed.
pub fn classify(method: &str, target: &str, path: &str, state: &str) -> Outcome {
    if method != "GET" {
        return Outcome::NotOurs;
    }
    // A proxy-style absolute target (`http://host/callback?..`) names the same path.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (req_path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let req_path = req_path.split('#').next().unwrap_or_default();
    if req_path != path {
        return Outcome::NotOurs;
    }
    judge(query, state, true)
}

/// The verdict on a callback query. `state_required`: the loopback callback must carry
/// our state; a pasted URL is checked only when it has one.
fn judge(query: &str, state: &str, state_required: bool) -> Outcome {
    let pairs = url::parse_query(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match get("state") {
        Some(s) if pkce::constant_time_eq(s.as_bytes(), state.as_bytes()) => {}
        None if !state_required => {}
        _ => return Outcome::WrongState,
    }
    if let Some(error) = get("error") {
        return Outcome::Denied {
            error: error.to_owned(),
            description: get("error_description")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        };
    }
    match get("code") {
        Some(code) if !code.is_empty() => Outcome::Code(code.to_owned()),
        _ => Outcome::Denied {
            error: "invalid_request".to_owned(),
            description: Some("the callback carried neither a code nor an error".to_owned()),
        },
    }
}

/// Reads what `--paste` got: the URL the browser was redirected to, its query alone, or
/// a bare code. A URL's `state` must be ours when present; an `error` ends the login.
pub fn parse_pasted(text: &str, state: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::BadInput {
            line: None,
            message: "expected the redirected URL or the code, got nothing".to_owned(),
        });
    }
    let query = if text.contains("://") {
        let parts = url::parse(text).map_err(|e| Error::BadInput {
            line: None,
            message: format!("the pasted text is not a usable URL: {e}"),
        })?;
        parts.query.unwrap_or_default()
    } else if let Some(q) = text.strip_prefix('?') {
        q.to_owned()
    } else if text.contains('=') {
        text.to_owned()
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::BadInput {
            line: None,
            message: "expected the redirected URL or the code, got text with spaces".to_owned(),
        });
    } else {
        return Ok(text.to_owned());
    };
    match judge(&query, state, false) {
        Outcome::Code(code) => Ok(code),
        Outcome::Denied { error, description } => Err(denied(&error, description.as_deref())),
        Outcome::WrongState => Err(Error::Auth(
            "the pasted URL's state does not match this login (is it from an older or \
             another coze-auth run?); paste the URL of this run's login"
                .to_owned(),
        )),
        Outcome::NotOurs => unreachable!("judge never answers NotOurs"),
    }
}

/// Server text in our one-line error: printable characters only, and not too many.
fn tidy(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean.trim().to_owned()
}

/// The error for a callback that carries `error`.
fn denied(error: &str, description: Option<&str>) -> Error {
    let error = tidy(error);
    let why = match description.map(tidy) {
        Some(d) if !d.is_empty() => format!("{d} ({error})"),
        _ => error.clone(),
    };
    if error == "access_denied" {
        Error::Auth(format!(
            "consent was denied: {why}; run coze-auth again to retry"
        ))
    } else {
        Error::Auth(format!("the authorization failed: {why}"))
    }
}

/// `300 s`, `0.5 s`.
fn seconds(d: Duration) -> String {
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
                    crate::http::describe_io(&e)
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
                        crate::http::describe_io(&e)
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
                    outcome.verdict()
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

/// Which browser opens the authorize URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browser {
    /// `--no-browser` (and `--paste`): only print the URL.
    Off,
    /// `$BROWSER`: a program, or with spaces a shell command, given the URL.
    Command(String),
    /// `xdg-open` (Linux and other Unixes), `open` (macOS).
    System,
}

impl Browser {
    pub fn choose(no_browser: bool, browser_env: Option<&str>) -> Browser {
        match browser_env.map(str::trim).filter(|b| !b.is_empty()) {
            _ if no_browser => Browser::Off,
            Some(b) => Browser::Command(b.to_owned()),
            None => Browser::System,
        }
    }

    /// The command that opens `url`; `None` for `Off`. The URL is always one argument,
    /// never spliced into shell text.
    pub fn command(&self, url: &str) -> Option<Command> {
        let mut cmd = match self {
            Browser::Off => return None,
            Browser::Command(b) if b.contains(char::is_whitespace) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{b} \"$1\"")).arg("sh");
                c
            }
            Browser::Command(b) => Command::new(b),
            Browser::System if cfg!(target_os = "macos") => Command::new("open"),
            Browser::System => Command::new("xdg-open"),
        };
        cmd.arg(url);
        Some(cmd)
    }
}

/// Starts the browser on `url` without waiting for it: a thread reaps it and warns if
/// it fails. The browser writes to our stderr, never to our stdout (which carries the
/// one record). A browser that cannot start is an `Err` the caller reports as a warning.
pub fn open_browser(browser: &Browser, url: &str) -> io::Result<()> {
    let Some(mut cmd) = browser.command(url) else {
        return Ok(());
    };
    let stdout = stderr_for_child().unwrap_or_else(Stdio::null);
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd.stdin(Stdio::null()).stdout(stdout).spawn()?;
    std::thread::spawn(move || match child.wait() {
        Ok(status) if !status.success() => crate::say!(
            "coze-auth: warning: the browser command {what} exited with {status}; open the \
             URL above by hand"
        ),
        _ => {}
    });
    Ok(())
}

/// Our stderr, duplicated for a child to use as its stdout.
#[cfg(unix)]
fn stderr_for_child() -> Option<Stdio> {
    use std::os::fd::AsFd;
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(Stdio::from)
}

#[cfg(not(unix))]
fn stderr_for_child() -> Option<Stdio> {
    None
}

/// Everything a browser login needs, resolved by `main`.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// The API base, which goes into the record for coze-token.
    pub api_base: &'a str,
    /// The host of the authorize page.
    pub www_base: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub workspace_id: Option<&'a str>,
    pub timeout: Duration,
    pub browser: Browser,
    /// Read the redirected URL (or the code) from `input` instead of listening.
    pub paste: bool,
    /// One line per callback request on stderr.
    pub verbose: bool,
}

/// The authorization-code login with PKCE (S256) and a fresh random `state`: listen
/// (unless pasting), show the URL, open the browser, and wait for the code. Instructions
/// go to `stderr`; the verifier never does.
pub fn login(
    l: &Login<'_>,
    input: &mut dyn BufRead,
    stderr: &mut dyn Write,
) -> Result<AuthorizationCode> {
    let listener = if l.paste {
        url::parse(l.redirect_uri).map_err(|e| Error::usage(format!("--redirect-uri: {e}")))?;
        None
    } else {
        let loopback = Loopback::from_redirect_uri(l.redirect_uri)?;
        Some(Listener::bind(&loopback)?)
    };
    let no_random = |e: getrandom::Error| {
        Error::io(
            "the OS random source",
            io::Error::other(format!("no randomness for PKCE: {e}")),
        )
    };
    let pkce = Pkce::generate().map_err(no_random)?;
    let state = pkce::random_state().map_err(no_random)?;
    redact::register(&pkce.verifier);
    let authorize = oauth::authorize_url(&Authorize {
        www_base: l.www_base,
        client_id: l.client_id,
        redirect_uri: l.redirect_uri,
        state: &state,
        code_challenge: &pkce.challenge,
        workspace_id: l.workspace_id,
    });
    let say = |e: io::Error| Error::io("stderr", e);
    let code = match listener {
        Some(listener) => {
            let lead = match l.browser {
                Browser::Off => "Open this URL in a browser to log in to Coze",
                _ => "Opening a browser to log in to Coze; if none opens, open this URL",
            };
            writeln!(
                stderr,
                "{lead} (waiting up to {} for the redirect to {}):\n\n    {authorize}\n",
                seconds(l.timeout),
                l.redirect_uri
            )
            .map_err(say)?;
            if let Err(e) = open_browser(&l.browser, &authorize) {
                writeln!(
                    stderr,
                    "coze-auth: warning: could not start the browser ({}); open the URL above \
                     by hand",
                    crate::http::describe_io(&e)
                )
                .map_err(say)?;
            }
            if l.verbose {
                writeln!(stderr, "coze-auth: listening on {}", listener.addr()).map_err(say)?;
            }
            let log = l.verbose.then_some(&mut *stderr as &mut dyn Write);
            listener.wait(&state, l.timeout, log)?
        }
        None => {
            writeln!(
                stderr,
                "Open this URL in a browser on any machine and log in to Coze:\n\n    \
                 {authorize}\n\nThe browser then goes to {} (the page may fail to load; that \
                 is expected). Paste that whole URL from its address bar here (or just the \
                 code) and press Enter:",
                l.redirect_uri
            )
            .map_err(say)?;
            stderr.flush().map_err(say)?;
            let mut line = String::new();
            loop {
                line.clear();
                // A URL or a code is far shorter: stdin that is not a paste (a file,
                // `/dev/zero`) is not read whole.
                let n = io::Read::take(&mut *input, MAX_PASTE)
                    .read_line(&mut line)
                    .map_err(|e| Error::io("stdin", e))?;
                if n as u64 == MAX_PASTE && !line.ends_with('\n') {
                    return Err(Error::BadInput {
                        line: None,
                        message: format!(
                            "the pasted line is longer than {}: paste the address the \
                             browser ended up on, or just its code",
                            crate::jsonl::size(MAX_PASTE)
                        ),
                    });
                }
                if n == 0 || !line.trim().is_empty() {
                    break;
                }
            }
            parse_pasted(&line, &state)?
        }
    };
    redact::register(&code);
    Ok(AuthorizationCode {
        code,
        code_verifier: Some(pkce.verifier),
        redirect_uri: l.redirect_uri.to_owned(),
        client_id: l.client_id.to_owned(),
        base_url: url::trim_base(l.api_base).to_owned(),
        extra: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "s7aTe-0123456789abcdefghijklmnopqrstuvwxyz";

    fn cb(target: &str) -> Outcome {
        classify("GET", target, "/callback", STATE)
    }

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
    fn the_callback_with_our_state_gives_the_code() {
        assert_eq!(
            cb(&format!("/callback?code=code_abc&state={STATE}")),
            Outcome::Code("code_abc".into())
        );
        // Order, extra parameters and encoding do not matter.
        assert_eq!(
            cb(&format!("/callback?x=1&state={STATE}&code=a%2Bb+c")),
            Outcome::Code("a+b c".into())
        );
        assert_eq!(
            classify(
                "GET",
                &format!("http://127.0.0.1:8080/callback?code=c&state={STATE}"),
                "/callback",
                STATE
            ),
            Outcome::Code("c".into())
        );
    }

    #[test]
    fn a_wrong_or_missing_state_is_refused() {
        assert_eq!(cb("/callback?code=c&state=nope"), Outcome::WrongState);
        assert_eq!(cb("/callback?code=c"), Outcome::WrongState);
        assert_eq!(cb("/callback?code=c&state="), Outcome::WrongState);
        assert_eq!(
            cb(&format!("/callback?code=c&state={STATE}x")),
            Outcome::WrongState
        );
        assert_eq!(
            cb(&format!("/callback?code=c&state={}", &STATE[1..])),
            Outcome::WrongState
        );
        // A forged denial is refused too: the state is checked before anything else.
        assert_eq!(
            cb("/callback?error=access_denied&state=x"),
            Outcome::WrongState
        );
        assert_eq!(cb("/callback"), Outcome::WrongState);
    }

    #[test]
    fn errors_end_the_login_with_the_description() {
        assert_eq!(
            cb(&format!(
                "/callback?error=access_denied&error_description=The+user+denied&state={STATE}"
            )),
            Outcome::Denied {
                error: "access_denied".into(),
                description: Some("The user denied".into())
            }
        );
        assert_eq!(
            cb(&format!("/callback?error=server_error&state={STATE}")),
            Outcome::Denied {
                error: "server_error".into(),
                description: None
            }
        );
        assert!(matches!(
            cb(&format!("/callback?state={STATE}")),
            Outcome::Denied { .. }
        ));
        let e = denied("access_denied", Some("The user denied the request"));
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("The user denied the request"), "{e}");
        assert!(denied("x", Some("a\nb")).to_string().contains("a b"));
    }

    #[test]
    fn other_requests_are_not_ours() {
        assert_eq!(cb("/favicon.ico"), Outcome::NotOurs);
        assert_eq!(
            cb(&format!("/other?code=c&state={STATE}")),
            Outcome::NotOurs
        );
        assert_eq!(
            cb(&format!("/callback/x?code=c&state={STATE}")),
            Outcome::NotOurs
        );
        assert_eq!(cb("/"), Outcome::NotOurs);
        assert_eq!(
            classify(
                "POST",
                &format!("/callback?code=c&state={STATE}"),
                "/callback",
                STATE
            ),
            Outcome::NotOurs
        );
        assert_eq!(
            classify("GET", &format!("/?code=c&state={STATE}"), "/", STATE),
            Outcome::Code("c".into())
        );
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
            Outcome::Code("code_s3cret".into()).verdict()
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn pasted_urls_query_strings_and_bare_codes() {
        let url = format!("http://127.0.0.1:8080/callback?code=code_1&state={STATE}");
        assert_eq!(
            parse_pasted(&format!("  {url}\n"), STATE).unwrap(),
            "code_1"
        );
        assert_eq!(
            parse_pasted(&format!("?code=code_2&state={STATE}"), STATE).unwrap(),
            "code_2"
        );
        assert_eq!(parse_pasted("code=code_3", STATE).unwrap(), "code_3");
        assert_eq!(parse_pasted("code_4\r\n", STATE).unwrap(), "code_4");
        // A redirect URI elsewhere (not served by us) is fine when pasting.
        assert_eq!(
            parse_pasted("https://example.com/cb?code=code_5", STATE).unwrap(),
            "code_5"
        );
        let e = parse_pasted(&format!("{url}x"), STATE).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("state"), "{e}");
        let e = parse_pasted(
            &format!("http://h/cb?error=access_denied&error_description=no+way&state={STATE}"),
            STATE,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("no way"), "{e}");
        assert_eq!(parse_pasted("", STATE).unwrap_err().exit_code(), 3);
        assert_eq!(parse_pasted("two words", STATE).unwrap_err().exit_code(), 3);
        assert_eq!(
            parse_pasted("ftp://x/?code=1", STATE)
                .unwrap_err()
                .exit_code(),
            3
        );
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
    fn browser_choice_and_commands() {
        assert_eq!(Browser::choose(true, Some("firefox")), Browser::Off);
        assert_eq!(
            Browser::choose(false, Some("firefox")),
            Browser::Command("firefox".into())
        );
        assert_eq!(Browser::choose(false, Some(" ")), Browser::System);
        assert_eq!(Browser::choose(false, None), Browser::System);
        assert!(Browser::Off.command("u").is_none());
        let c = Browser::Command("firefox".into())
            .command("http://x/?a=1&b=2")
            .unwrap();
        assert_eq!(c.get_program(), "firefox");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["http://x/?a=1&b=2"]);
        let c = Browser::Command("firefox --new-tab".into())
            .command("http://x/?a=1&b=$(id)")
            .unwrap();
        assert_eq!(c.get_program(), "sh");
        assert_eq!(
            c.get_args().collect::<Vec<_>>(),
            [
                "-c",
                "firefox --new-tab \"$1\"",
                "sh",
                "http://x/?a=1&b=$(id)"
            ]
        );
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
