//! The checks of `coze-auth doctor`, each a pure function from what was observed (a
//! header, a mode, a bind result, a token) to a [`Check`], one line of the report, and
//! unit-tested below. The observing (a bind, two requests, a file read) is the doctor's
//! `report`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use coze_core::auth::renew::{self, DEFAULT_MIN_TTL};
use coze_core::config::{self, Credentials, Region};
use coze_core::error::exit;
use coze_core::http::proxy::Route;
use coze_core::http::tls::Trust;
use coze_core::protocol::Token;
use coze_core::support::time::ago;
use coze_core::support::url;
use coze_core::Result;

use crate::login::listener::Loopback;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
    /// Not run, because an earlier check failed.
    Skip,
}

/// One line of the report: `ok    region: coze.cn (https://api.coze.cn)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub detail: String,
    /// The exit code this failure stands for (4 for the token, 5 for the network, else 1).
    pub code: u8,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            name,
            detail: detail.into(),
            code: exit::OK,
        }
    }
    pub fn warn(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Warn,
            name,
            detail: detail.into(),
            code: exit::OK,
        }
    }
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Fail,
            name,
            detail: detail.into(),
            code: exit::API,
        }
    }
    pub fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Skip,
            name,
            detail: detail.into(),
            code: exit::OK,
        }
    }
    /// The exit code this failure stands for.
    pub fn code(mut self, code: u8) -> Check {
        self.code = code;
        self
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        };
        write!(f, "{tag:<6}{}: {}", self.name, self.detail)
    }
}

/// 0 when nothing failed (warnings allowed); 4 when a token check failed (log in
/// again); otherwise the code of the first failure (5 unreachable, 1 anything else).
pub fn exit_code(checks: &[Check]) -> u8 {
    let failed: Vec<&Check> = checks.iter().filter(|c| c.level == Level::Fail).collect();
    if failed.iter().any(|c| c.code == exit::AUTH) {
        return exit::AUTH;
    }
    failed.first().map_or(exit::OK, |c| c.code)
}

// ------------------------------------------------------------------ region and base

/// The region the base URL means, and whether the tools will talk to it at all.
/// `source` says where the base came from ("--base-url", "COZE_API_BASE", ...);
/// `allow_http` is the plain-http opt-in in effect.
pub fn region(api_base: &str, source: &str, allow_http: bool) -> Check {
    let parts = match url::check_transport(api_base, allow_http) {
        Ok(p) => p,
        Err(e) => return Check::fail("region", format!("{api_base} (from {source}): {e}")),
    };
    match url::trim_base(api_base) {
        config::CN_API => Check::ok("region", format!("coze.cn ({api_base}, from {source})")),
        config::COM_API => Check::ok("region", format!("coze.com ({api_base}, from {source})")),
        _ if url::is_loopback_host(&parts.host) => Check::ok(
            "region",
            format!("a local API at {api_base} (coze-fake or a tunnel; from {source})"),
        ),
        _ if parts.scheme == "http" => Check::warn(
            "region",
            format!(
                "{api_base} (from {source}): a server of your own (a self-hosted Coze \
                 Studio?) over plain http, allowed by --allow-http: the token crosses the \
                 network unencrypted"
            ),
        ),
        _ => Check::warn(
            "region",
            format!(
                "{api_base} (from {source}) is neither {} nor {}: a private deployment \
                 (a self-hosted Coze Studio?); --region cn|com picks an official one",
                config::CN_API,
                config::COM_API
            ),
        ),
    }
}

// ------------------------------------------------------------------ clock

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7), the form
/// every current server sends, into Unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let mut it = s.split_whitespace();
    let _weekday = it.next()?.strip_suffix(',')?;
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Skew this large is reported as a warning: the server's `Date` has a resolution of
/// one second, and a request takes a moment.
pub const CLOCK_WARN_S: i64 = 10;
/// And this large fails: tokens are renewed 120 s before they expire, and a JWT whose
/// `iat` is more than 60 s off is refused by the server.
pub const CLOCK_FAIL_S: i64 = 60;

/// Our clock (`local`, Unix seconds, taken while the request was in flight) against the
/// server's `Date` header.
pub fn clock(local: i64, date: Option<&str>) -> Check {
    let Some(date) = date else {
        return Check::warn(
            "clock",
            "the server sent no Date header, so the skew is unknown",
        );
    };
    let Some(server) = parse_http_date(date) else {
        return Check::warn(
            "clock",
            format!("cannot read the server's Date header {date:?}"),
        );
    };
    let skew = server - local;
    let how = match skew {
        0 => "in step with the server".to_owned(),
        s if s > 0 => format!("{s} s behind the server"),
        s => format!("{} s ahead of the server", -s),
    };
    match skew.abs() {
        s if s >= CLOCK_FAIL_S => Check::fail(
            "clock",
            format!("{how}: token expiry is judged by this clock; set it right (NTP)"),
        ),
        s if s >= CLOCK_WARN_S => {
            Check::warn("clock", format!("{how} (more than {CLOCK_WARN_S} s)"))
        }
        _ => Check::ok("clock", how),
    }
}

// ------------------------------------------------------------------ callback

/// The redirect URI's form: coze-auth can serve it only as `http://` on a loopback
/// host with an explicit port; a path is expected. Returns the address to try binding.
pub fn redirect_uri(uri: &str) -> (Check, Option<SocketAddr>) {
    match Loopback::from_redirect_uri(uri) {
        Ok(lb) if lb.path == "/" => (
            Check::warn(
                "redirect URI",
                format!(
                    "{uri} has no path; it works only if the app registered it exactly so \
                     (usually http://127.0.0.1:{}/callback)",
                    lb.addr.port()
                ),
            ),
            Some(lb.addr),
        ),
        Ok(lb) => (
            Check::ok(
                "redirect URI",
                format!(
                    "{uri} (loopback http, port {}, path {})",
                    lb.addr.port(),
                    lb.path
                ),
            ),
            Some(lb.addr),
        ),
        Err(e) => (
            Check::fail(
                "redirect URI",
                e.to_string()
                    .trim_start_matches("--redirect-uri ")
                    .to_owned(),
            ),
            None,
        ),
    }
}

/// Whether the callback's port could be bound just now.
pub fn callback_port(addr: SocketAddr, bound: &io::Result<()>) -> Check {
    match bound {
        Ok(()) => Check::ok("callback port", format!("{addr} is free")),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Check::fail(
            "callback port",
            format!(
                "{addr} is in use (another coze-auth, or another program: `ss -ltnp` shows \
                 which); free it, or register another redirect URI on the app and pass it \
                 with --redirect-uri"
            ),
        ),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Check::fail(
            "callback port",
            format!(
                "{addr}: permission denied (ports below 1024 are privileged); register a \
                 redirect URI with a port above 1024"
            ),
        ),
        Err(e) => Check::fail(
            "callback port",
            format!("{addr}: {}", coze_core::http::describe_io(e)),
        ),
    }
}

// ------------------------------------------------------------------ proxies

/// The route requests to `api_base` take: the same decision `http` makes for them.
pub fn proxy(route: &Result<Route>, api_base: &str) -> Check {
    let host = url::parse(api_base).map(|p| p.host).unwrap_or_default();
    match route {
        Err(e) => Check::fail(
            "proxy",
            format!("{e}: the tools refuse to run rather than connect directly"),
        )
        .code(exit::USAGE),
        Ok(Route::Direct { why: None }) => {
            let scheme = url::parse(api_base).map_or("https".into(), |p| p.scheme);
            let names = config::proxy_candidates(&scheme).join(", ");
            Check::ok(
                "proxy",
                format!("none set for {scheme}:// requests (--proxy, {names}): direct connections"),
            )
        }
        Ok(Route::Direct { why: Some(why) }) => {
            Check::ok("proxy", format!("{why}: direct connections to {host}"))
        }
        Ok(Route::Proxy(p)) if url::is_loopback_host(&host) => Check::warn(
            "proxy",
            format!(
                "requests to {host} go through {p}, which cannot reach this machine's \
                 loopback unless it runs here; add {host} to NO_PROXY"
            ),
        ),
        Ok(Route::Proxy(p)) => Check::ok("proxy", format!("requests to {host} go through {p}")),
    }
}

/// The CAs trusted for HTTPS; `None` when the base is plain http (nothing to check).
pub fn trust(loaded: Option<&Result<std::sync::Arc<Trust>>>) -> Check {
    match loaded {
        None => Check::ok("trust", "not needed: the API base is plain http"),
        Some(Ok(t)) => Check::ok("trust", t.describe()),
        Some(Err(e)) => Check::fail("trust", e.to_string()).code(exit::USAGE),
    }
}

/// Which credentials the tools use, and the rule that chose them.
pub fn credentials(chosen: &Result<Credentials>) -> Check {
    match chosen {
        Ok(c) => Check::ok(
            "credentials",
            format!("{} ({})", c.describe(), config::CREDENTIALS_PRECEDENCE),
        ),
        Err(e) => Check::fail("credentials", e.to_string()).code(e.exit_code()),
    }
}

// ------------------------------------------------------------------ token

/// The token file itself: there, a token, private. `mode` is its permission bits, or
/// the error reading its metadata.
pub fn token_file(path: &Path, mode: &io::Result<u32>) -> Check {
    let p = path.display();
    match mode {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Check::fail(
            "token file",
            format!(
                "no token file at {p}: log in with `coze-auth --client-id ID | coze-token \
                 --save`, or set COZE_API_TOKEN"
            ),
        )
        .code(exit::AUTH),
        Err(e) => Check::fail("token file", format!("{p}: {e}")).code(exit::AUTH),
        Ok(m) if m & 0o077 != 0 => Check::fail(
            "token file",
            format!(
                "{p} is mode {:04o}, open to {}: chmod 600 {p} (the tools write it 0600; \
                 something changed it)",
                m & 0o7777,
                if m & 0o044 != 0 {
                    "others' reading"
                } else {
                    "others"
                }
            ),
        )
        .code(exit::AUTH),
        Ok(m) => Check::ok("token file", format!("{p} (mode {:04o})", m & 0o7777)),
    }
}

/// The region of an official API base, if it is one.
fn official_region(base: &str) -> Option<Region> {
    match url::trim_base(base) {
        config::CN_API => Some(Region::Cn),
        config::COM_API => Some(Region::Com),
        _ => None,
    }
}

/// What the token holds: when it expires, whether it can be renewed, and whether it
/// belongs to the API base in use.
pub fn token(token: &Token, api_base: &str, now: i64) -> Check {
    let renewable = renew::renewable(token);
    let how = if token.refresh_token.is_some() {
        "renewable with its refresh token"
    } else if renewable {
        "renewable with the service app's key"
    } else {
        "not renewable"
    };
    let recorded = token.base_url.as_deref().map(url::trim_base);
    if let Some(b) = recorded.filter(|b| *b != url::trim_base(api_base)) {
        let hint = match (official_region(b), official_region(api_base)) {
            (Some(Region::Cn), Some(Region::Com)) => " (try --region cn)",
            (Some(Region::Com), Some(Region::Cn)) => " (try --region com)",
            _ => "",
        };
        return Check::warn(
            "token",
            format!(
                "issued by {b}, but the API base in use is {api_base}: the server will \
                 refuse it{hint}"
            ),
        );
    }
    let ttl = token.ttl(now);
    if ttl == i64::MAX {
        return Check::ok("token", format!("no expiry recorded; {how}"));
    }
    let when = ago(token.expires_at, now);
    if ttl > DEFAULT_MIN_TTL {
        Check::ok("token", format!("access token expires {when}; {how}"))
    } else if renewable {
        let verb = if ttl > 0 { "expires" } else { "expired" };
        Check::ok(
            "token",
            format!("access token {verb} {when}; {how}, which the next command does"),
        )
    } else {
        Check::fail(
            "token",
            format!(
                "access token {} {when} and is {how}: log in again",
                if ttl > 0 { "expires" } else { "expired" }
            ),
        )
        .code(exit::AUTH)
    }
}

/// The live call's outcome: `GET /v1/users/me` answered with the user, or why not.
pub fn live(result: &Result<Value>) -> Check {
    match result {
        Ok(user) => {
            let s = |k: &str| user.get(k).and_then(Value::as_str).unwrap_or_default();
            let name = [s("nick_name"), s("user_name")]
                .into_iter()
                .find(|n| !n.is_empty())
                .unwrap_or("(no name)");
            let id = s("user_id");
            let id = if id.is_empty() {
                String::new()
            } else {
                format!(" (user_id {id})")
            };
            Check::ok("api", format!("GET /v1/users/me answers: {name}{id}"))
        }
        Err(e)
            if e.api()
                .is_some_and(coze_core::error::ApiError::is_missing_endpoint) =>
        {
            Check::warn(
                "api",
                "this server has no GET /v1/users/me (a self-hosted Coze Studio lacks it), so \
             the token was not checked live",
            )
        }
        Err(e) => {
            let code = e.exit_code();
            let check = Check::fail(
                "api",
                format!(
                    "GET /v1/users/me: {}",
                    coze_core::support::redact::scrub(&e.to_string())
                ),
            );
            check.code(if code == exit::AUTH || code == exit::NETWORK {
                code
            } else {
                exit::API
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coze_core::Error;
    use serde_json::{json, Map};
    use std::net::TcpListener;

    fn tok(expires_at: i64, refresh: bool, base: &str) -> Token {
        Token {
            access_token: "czu_x".into(),
            token_type: "Bearer".into(),
            expires_at,
            refresh_token: refresh.then(|| "r".to_owned()),
            client_id: Some("1.app.coze".into()),
            base_url: Some(base.into()),
            extra: Map::new(),
        }
    }

    #[test]
    fn lines_have_a_fixed_width_tag() {
        assert_eq!(
            Check::ok("region", "coze.cn (https://api.coze.cn)").to_string(),
            "ok    region: coze.cn (https://api.coze.cn)"
        );
        assert_eq!(
            Check::fail("clock", "95 s behind the server").to_string(),
            "FAIL  clock: 95 s behind the server"
        );
        assert!(Check::warn("x", "y").to_string().starts_with("warn  x: "));
        assert!(Check::skip("x", "y").to_string().starts_with("skip  x: "));
    }

    #[test]
    fn exit_codes_prefer_the_token() {
        let ok = Check::ok("a", "");
        let warn = Check::warn("b", "");
        assert_eq!(exit_code(&[ok.clone(), warn.clone()]), 0);
        let fail = Check::fail("c", "");
        let net = Check::fail("d", "").code(5);
        let auth = Check::fail("e", "").code(4);
        assert_eq!(exit_code(&[ok.clone(), fail.clone()]), 1);
        assert_eq!(exit_code(&[net.clone(), fail.clone()]), 5);
        assert_eq!(exit_code(&[fail, net, auth, warn]), 4);
    }

    #[test]
    fn regions() {
        let region = |b: &str, s: &str| super::region(b, s, false);
        let c = region("https://api.coze.cn", "the default");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(c.detail, "coze.cn (https://api.coze.cn, from the default)");
        assert!(region("https://api.coze.com/", "--region")
            .detail
            .starts_with("coze.com"));
        let c = region("http://127.0.0.1:9", "COZE_API_BASE");
        assert_eq!(c.level, Level::Ok);
        assert!(c.detail.contains("local"), "{c}");
        assert_eq!(region("https://coze.example", "x").level, Level::Warn);
        let c = region("http://coze.example", "--base-url");
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("plain http"), "{c}");
        assert_eq!(region("api.coze.cn", "x").level, Level::Fail);
        let c = super::region("http://studio.corp:8888", "--base-url", true);
        assert_eq!(c.level, Level::Warn, "{c}");
        assert!(c.detail.contains("unencrypted"), "{c}");
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        for bad in [
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn clock_skew() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let server = 784_111_777;
        let c = clock(server, Some(date));
        assert_eq!(c.to_string(), "ok    clock: in step with the server");
        assert_eq!(clock(server - 2, Some(date)).level, Level::Ok);
        let c = clock(server - 95, Some(date));
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.to_string()
                .starts_with("FAIL  clock: 95 s behind the server"),
            "{c}"
        );
        let c = clock(server + 30, Some(date));
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.starts_with("30 s ahead of the server"), "{c}");
        assert_eq!(clock(server, None).level, Level::Warn);
        assert_eq!(clock(server, Some("yesterday")).level, Level::Warn);
    }

    #[test]
    fn redirect_uris() {
        let (c, addr) = redirect_uri("http://127.0.0.1:8080/callback");
        assert_eq!(c.level, Level::Ok, "{c}");
        assert_eq!(addr, Some("127.0.0.1:8080".parse().unwrap()));
        let (c, addr) = redirect_uri("http://localhost:9000");
        assert_eq!(c.level, Level::Warn, "{c}");
        assert!(c.detail.contains("no path"), "{c}");
        assert!(addr.is_some());
        for bad in [
            "http://127.0.0.1/callback",
            "https://127.0.0.1:8080/callback",
            "http://example.com:8080/callback",
            "127.0.0.1:8080",
        ] {
            let (c, addr) = redirect_uri(bad);
            assert_eq!(c.level, Level::Fail, "{bad}: {c}");
            assert!(addr.is_none());
            assert!(c.detail.contains(bad), "{bad}: {c}");
        }
    }

    #[test]
    fn callback_ports() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(callback_port(addr, &Ok(())).level, Level::Ok);
        let c = callback_port(addr, &Err(io::ErrorKind::AddrInUse.into()));
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.starts_with("127.0.0.1:8080 is in use"), "{c}");
        let c = callback_port(addr, &Err(io::ErrorKind::PermissionDenied.into()));
        assert!(c.detail.contains("privileged"), "{c}");
        // The real thing: a held port is busy.
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let bound = TcpListener::bind(addr).map(drop);
        assert_eq!(callback_port(addr, &bound).level, Level::Fail);
    }

    use coze_core::http::proxy::ProxySettings;

    /// Proxy variables as `Env` holds them.
    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route(pairs: &[(&str, &str)], base: &str) -> Result<Route> {
        ProxySettings {
            flag: None,
            vars: vars(pairs),
        }
        .route(base)
    }

    #[test]
    fn the_proxy_check_reports_the_route_requests_take() {
        let base = "https://api.coze.cn";
        let c = proxy(&route(&[], base), base);
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.detail,
            "none set for https:// requests (--proxy, https_proxy, HTTPS_PROXY, all_proxy, \
             ALL_PROXY): direct connections"
        );
        let c = proxy(
            &route(
                &[("HTTPS_PROXY", "http://ada:s3cret@proxy.corp:3128")],
                base,
            ),
            base,
        );
        assert_eq!(c.level, Level::Ok);
        assert!(!c.to_string().contains("s3cret"), "{c}");
        assert_eq!(
            c.detail,
            "requests to api.coze.cn go through http://***@proxy.corp:3128 from HTTPS_PROXY"
        );
        let c = proxy(
            &route(&[("ALL_PROXY", "socks5h://127.0.0.1:7890")], base),
            base,
        );
        assert!(c.detail.ends_with("(names resolved by the proxy)"), "{c}");
        let c = proxy(&route(&[("ALL_PROXY", "ftp://p:1")], base), base);
        assert_eq!((c.level, c.code), (Level::Fail, 2), "{c}");
        assert!(c.detail.starts_with("ALL_PROXY = ftp://p:1"), "{c}");
        // A proxy for a loopback API must be bypassed.
        let local = "http://127.0.0.1:9";
        let c = proxy(&route(&[("HTTP_PROXY", "http://p:1")], local), local);
        assert_eq!(c.level, Level::Warn, "{c}");
        assert!(c.detail.contains("NO_PROXY"), "{c}");
        let c = proxy(
            &route(
                &[
                    ("HTTP_PROXY", "http://p:1"),
                    ("NO_PROXY", "localhost,127.0.0.0/8"),
                ],
                local,
            ),
            local,
        );
        assert_eq!(c.level, Level::Ok, "{c}");
        assert!(c.detail.contains("exempts 127.0.0.1"), "{c}");
    }

    #[test]
    fn token_files() {
        let p = Path::new("/h/.config/coze/token.json");
        assert_eq!(token_file(p, &Ok(0o100600)).level, Level::Ok);
        let c = token_file(p, &Ok(0o100644));
        assert_eq!((c.level, c.code), (Level::Fail, 4));
        assert!(
            c.detail.contains("mode 0644") && c.detail.contains("chmod 600"),
            "{c}"
        );
        assert_eq!(token_file(p, &Ok(0o100660)).level, Level::Fail);
        let c = token_file(p, &Err(io::ErrorKind::NotFound.into()));
        assert_eq!((c.level, c.code), (Level::Fail, 4));
        assert!(c.detail.contains("coze-token --save"), "{c}");
    }

    #[test]
    fn token_expiry_and_base() {
        let base = "http://127.0.0.1:9";
        let now = 1_000_000;
        let c = token(&tok(now + 900, true, base), base, now);
        assert_eq!(c.level, Level::Ok);
        assert!(c.detail.contains("in 15 min"), "{c}");
        let c = token(&tok(now - 60, true, base), base, now);
        assert_eq!(c.level, Level::Ok, "{c}");
        assert!(c.detail.contains("expired"), "{c}");
        let c = token(&tok(now - 60, false, base), base, now);
        assert_eq!((c.level, c.code), (Level::Fail, 4));
        assert!(c.detail.contains("log in again"), "{c}");
        let c = token(&tok(0, false, base), base, now);
        assert_eq!(c.level, Level::Ok);
        let c = token(
            &tok(now + 900, true, "https://api.coze.com"),
            "https://api.coze.cn",
            now,
        );
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("try --region com"), "{c}");
    }

    #[test]
    fn live_calls() {
        let c = live(&Ok(
            json!({"user_id": "7", "user_name": "u", "nick_name": "扣子"}),
        ));
        assert_eq!(c.level, Level::Ok);
        assert_eq!(c.detail, "GET /v1/users/me answers: 扣子 (user_id 7)");
        let c = live(&Err(Error::Auth("refresh rejected".into())));
        assert_eq!((c.level, c.code), (Level::Fail, 4));
        let c = live(&Err(Error::Network("connection refused".into())));
        assert_eq!((c.level, c.code), (Level::Fail, 5));
    }
}
