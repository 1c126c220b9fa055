//! Which proxy a request goes through, decided the way curl decides it, and told
//! truthfully: `http` connects through exactly the route [`ProxySettings::route`]
//! returns, and `coze-auth doctor` and every network error describe that same route.
//!
//! - `--proxy URL` beats every variable (`--proxy ''` means no proxy at all).
//! - Otherwise, for an `https://` request `https_proxy`, `HTTPS_PROXY`, then
//!   `all_proxy`, `ALL_PROXY`; for `http://`, `http_proxy`, `HTTP_PROXY`, then the
//!   `all_proxy` pair. The first one set (non-empty) is the proxy.
//! - Schemes: `http`, `https` (TLS to the proxy), `socks4`, `socks4a`, `socks5`,
//!   `socks5h` and `socks` (= socks5); none given means `http`. `socks5`/`socks4`
//!   resolve the target's name here, `socks5h`/`socks4a` let the proxy resolve it (what
//!   you want when names only resolve inside the proxy's network). Credentials
//!   (`user:password@`, percent-encoded) are sent to the proxy and never shown.
//! - A proxy the tools cannot use (another scheme, no host, a bad port) is an error that
//!   names the variable: traffic the user routed through a proxy never leaves directly.
//! - `no_proxy`/`NO_PROXY` (the first set) exempts hosts, as curl reads it: `*`, a host
//!   name and its subdomains (`example.com`, `.example.com`; `*.example.com` too), an
//!   IP address, or a CIDR range (`10.0.0.0/8`, `fd00::/8`) matched against a host
//!   written as an IP; a `:port` on an entry is ignored. Names are not resolved to
//!   match a range. Loopback is not exempt by itself (as in curl).
//!
//! Not here: connecting (ureq does, `http` builds its agents from [`ProxyUrl`]).

use std::fmt;
use std::net::IpAddr;

use crate::config::{proxy_candidates, NO_PROXY_VARS};
use crate::error::{Error, Result};
use crate::support::url;

/// What the user said about proxies: the flag and the set variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// `--proxy URL`; `Some("")` turns every proxy variable off.
    pub flag: Option<String>,
    /// The set (non-empty) proxy and no-proxy variables, as (name, value).
    pub vars: Vec<(String, String)>,
}

/// How a request reaches its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Straight to the server; `why` says why no proxy applies when one was set.
    Direct {
        /// "--proxy '' turns proxies off", "NO_PROXY=… exempts api.coze.cn"; `None`
        /// when no proxy was set at all.
        why: Option<String>,
    },
    /// Through this proxy.
    Proxy(ProxyUrl),
}

impl Route {
    /// The proxy, if any.
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        match self {
            Route::Proxy(p) => Some(p),
            Route::Direct { .. } => None,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct { why: None } => f.write_str("direct (no proxy set)"),
            Route::Direct { why: Some(why) } => write!(f, "direct ({why})"),
            Route::Proxy(p) => write!(f, "through {p}"),
        }
    }
}

/// The proxy protocols the tools speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` (also a proxy written without a scheme): HTTP `CONNECT`. Port 80 by
    /// default.
    Http,
    /// `https://`: `CONNECT` over TLS to the proxy. Port 443 by default.
    Https,
    /// `socks4://`: SOCKS4, the server's name resolved here (IPv4). Port 1080 by default,
    /// as for every SOCKS scheme.
    Socks4,
    /// `socks4a://`: SOCKS4a, the proxy resolves the name.
    Socks4a,
    /// `socks5://` (or `socks://`): SOCKS5, the name resolved here.
    Socks5,
    /// `socks5h://`: SOCKS5, the proxy resolves the name.
    Socks5h,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        Some(match s.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "socks4" => Scheme::Socks4,
            "socks4a" => Scheme::Socks4a,
            "socks5" | "socks" => Scheme::Socks5,
            "socks5h" => Scheme::Socks5h,
            _ => return None,
        })
    }

    /// The scheme as written in a proxy URL (`socks5h`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Socks4 => "socks4",
            Scheme::Socks4a => "socks4a",
            Scheme::Socks5 => "socks5",
            Scheme::Socks5h => "socks5h",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
            _ => 1080,
        }
    }

    /// Whether the proxy, not this machine, resolves the server's name.
    pub fn proxy_resolves(self) -> bool {
        !matches!(self, Scheme::Socks4 | Scheme::Socks5)
    }

    fn is_socks(self) -> bool {
        !matches!(self, Scheme::Http | Scheme::Https)
    }
}

/// A usable proxy, and the variable (or flag) that named it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// How to speak to the proxy.
    pub scheme: Scheme,
    /// The proxy's host, lowercased, without brackets.
    pub host: String,
    /// The proxy's port: as written, else the scheme's default.
    pub port: u16,
    /// `user[:password]` as written (still percent-encoded); never shown.
    userinfo: Option<String>,
    /// `--proxy` or the variable's name.
    pub source: String,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.shown())
    }
}

impl ProxyUrl {
    /// Parses a proxy URL as curl accepts it; `source` names where it came from.
    pub fn parse(value: &str, source: &str) -> Result<ProxyUrl> {
        let bad = |why: String| {
            Error::usage(format!(
                "{} = {}: {why}",
                source,
                redact_proxy(value.trim())
            ))
        };
        let value = value.trim();
        let (scheme, rest) = match value.split_once("://") {
            Some((s, rest)) => (
                Scheme::parse(s).ok_or_else(|| {
                    bad(format!(
                        "the coze tools cannot use a {s}:// proxy (they speak http, https, \
                         socks4, socks4a, socks5 and socks5h); fix or unset {source}"
                    ))
                })?,
                rest,
            ),
            None => (Scheme::Http, value),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host".into()))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no proxy host".into()));
        }
        let port = match port {
            None | Some("") => scheme.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(format!("bad port {p:?}")))?,
        };
        Ok(ProxyUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            userinfo,
            source: source.to_owned(),
        })
    }

    /// `socks5h://***@127.0.0.1:1080`: what a person may see.
    pub fn shown(&self) -> String {
        let who = if self.userinfo.is_some() { "***@" } else { "" };
        format!(
            "{}://{who}{}:{}",
            self.scheme.name(),
            host_for_url(&self.host),
            self.port
        )
    }

    /// The proxy as ureq takes it (credentials included).
    pub fn to_ureq(&self) -> Result<ureq::Proxy> {
        let who = self
            .userinfo
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let url = format!(
            "{}://{who}{}:{}",
            self.scheme.name(),
            host_for_url(&self.host),
            self.port
        );
        ureq::Proxy::new(&url).map_err(|e| {
            Error::usage(format!(
                "{} = {}: not a proxy URL the tools can use ({e})",
                self.source,
                self.shown()
            ))
        })
    }
}

impl fmt::Display for ProxyUrl {
    /// `socks5h://***@127.0.0.1:1080 from ALL_PROXY (names resolved by the proxy)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.shown(), self.source)?;
        if self.scheme.is_socks() {
            let who = if self.scheme.proxy_resolves() {
                "the proxy"
            } else {
                "this machine"
            };
            write!(f, " (names resolved by {who})")?;
        }
        Ok(())
    }
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl ProxySettings {
    /// The route of a request to `target` (a URL). An unusable proxy setting is an error
    /// naming it, never a silent direct connection.
    pub fn route(&self, target: &str) -> Result<Route> {
        let parts = url::parse(target).map_err(Error::Usage)?;
        let (source, value) = match &self.flag {
            Some(v) if v.trim().is_empty() => {
                return Ok(Route::Direct {
                    why: Some("--proxy '' turns proxies off".into()),
                })
            }
            Some(v) => ("--proxy", v.as_str()),
            None => match first_set(&self.vars, &proxy_candidates(&parts.scheme)) {
                Some(found) => found,
                None => return Ok(Route::Direct { why: None }),
            },
        };
        let proxy = ProxyUrl::parse(value, source)?;
        if let Some((name, list)) = first_set(&self.vars, &NO_PROXY_VARS) {
            if no_proxy_covers(list, &parts.host) {
                return Ok(Route::Direct {
                    why: Some(format!("{name}={list} exempts {}", parts.host)),
                });
            }
        }
        Ok(Route::Proxy(proxy))
    }
}

/// A proxy URL with its credentials (`user:password@`) replaced by `***@`.
pub fn redact_proxy(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), value),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => value.to_owned(),
    }
}

/// Whether a no-proxy list exempts `host` (see the module's documentation).
pub fn no_proxy_covers(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                return match (host_ip, cidr(net, bits)) {
                    (Some(ip), Some((net, bits))) => in_range(ip, net, bits),
                    _ => false,
                };
            }
            let entry = strip_port(entry)
                .trim_start_matches('[')
                .trim_end_matches(']');
            if let (Some(ip), Ok(e)) = (host_ip, entry.parse::<IpAddr>()) {
                return ip == e;
            }
            let entry = entry
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .to_ascii_lowercase();
            !entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}")))
        })
}

/// `host:443` → `host`; `::1` and `[::1]` are left alone.
fn strip_port(entry: &str) -> &str {
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((h, p))
            if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
        {
            h
        }
        _ => entry,
    }
}

fn cidr(net: &str, bits: &str) -> Option<(IpAddr, u32)> {
    let net: IpAddr = net
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let bits: u32 = bits.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((net, bits))
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    // An IPv4 address written as IPv4-mapped IPv6 is the same host.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The first of `names` that is set (non-empty) in `vars`, as (name, value).
pub fn first_set<'a>(vars: &'a [(String, String)], names: &[&str]) -> Option<(&'a str, &'a str)> {
    names.iter().find_map(|n| {
        vars.iter()
            .find(|(k, v)| k == n && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proxy variables as `Env` holds them.
    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route(pairs: &[(&str, &str)], flag: Option<&str>, target: &str) -> Result<Route> {
        ProxySettings {
            flag: flag.map(str::to_owned),
            vars: vars(pairs),
        }
        .route(target)
    }

    fn shown(r: Result<Route>) -> String {
        match r {
            Ok(r) => r.to_string(),
            Err(e) => format!("error: {e} (exit {})", e.exit_code()),
        }
    }

    #[test]
    fn the_scheme_specific_variable_beats_all_proxy_as_in_curl() {
        let v = [
            ("ALL_PROXY", "socks5h://127.0.0.1:7890"),
            ("https_proxy", "http://ada:s3cret@corp:3128"),
            ("HTTP_PROXY", "http://plain:8080"),
        ];
        assert_eq!(
            shown(route(&v, None, "https://api.coze.cn/v3/chat")),
            "through http://***@corp:3128 from https_proxy"
        );
        assert_eq!(
            shown(route(&v, None, "http://studio:8888/v3/chat")),
            "through http://plain:8080 from HTTP_PROXY"
        );
        let socks = [("all_proxy", "socks5h://127.0.0.1:7890")];
        assert_eq!(
            shown(route(&socks, None, "https://api.coze.cn")),
            "through socks5h://127.0.0.1:7890 from all_proxy (names resolved by the proxy)"
        );
        assert_eq!(
            shown(route(&socks, Some("socks5://[::1]"), "https://api.coze.cn")),
            "through socks5://[::1]:1080 from --proxy (names resolved by this machine)"
        );
        assert_eq!(
            shown(route(&socks, Some(""), "https://api.coze.cn")),
            "direct (--proxy '' turns proxies off)"
        );
        assert_eq!(
            shown(route(&[], None, "https://x")),
            "direct (no proxy set)"
        );
        assert_eq!(
            shown(route(&[("HTTPS_PROXY", "corp:3128")], None, "https://x")),
            "through http://corp:3128 from HTTPS_PROXY",
            "no scheme is http, as in curl"
        );
    }

    #[test]
    fn a_proxy_the_tools_cannot_use_is_an_error_naming_it() {
        let e = shown(route(
            &[("ALL_PROXY", "socks6://u:pw@p:1")],
            None,
            "https://api.coze.cn",
        ));
        assert!(
            e.starts_with(
                "error: ALL_PROXY = socks6://***@p:1: the coze tools cannot use a socks6:// proxy"
            ),
            "{e}"
        );
        assert!(e.ends_with("(exit 2)"), "{e}");
        assert!(!e.contains("pw"), "{e}");
        for bad in [
            "http://:80",
            "socks5://h:99999",
            "socks5://h:x",
            "http://[::1",
        ] {
            let e = shown(route(&[("https_proxy", bad)], None, "https://a"));
            assert!(e.starts_with("error: https_proxy = "), "{bad}: {e}");
        }
    }

    #[test]
    fn no_proxy_as_curl_reads_it() {
        for (list, host, covered) in [
            ("*", "api.coze.cn", true),
            ("coze.cn", "api.coze.cn", true),
            ("coze.cn", "coze.cn", true),
            (".coze.cn", "api.coze.cn", true),
            ("*.coze.cn", "api.coze.cn", true),
            ("oze.cn", "api.coze.cn", false),
            ("coze.cn:443", "api.coze.cn", true),
            ("localhost, 127.0.0.1", "127.0.0.1", true),
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.1.2.3", false),
            ("192.168.1.0/24,172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "ten.example", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "[fd12::1]", true),
            ("fd00::/8", "fe80::1", false),
            ("::1", "::1", true),
            ("[::1]", "::1", true),
            ("127.0.0.0/8", "::ffff:127.0.0.2", true),
            ("10.0.0.0/99", "10.0.0.1", false),
            ("", "x", false),
        ] {
            assert_eq!(no_proxy_covers(list, host), covered, "{list:?} {host:?}");
        }
        let v = [
            ("ALL_PROXY", "socks5://p:1"),
            ("NO_PROXY", "10.0.0.0/8"),
            ("no_proxy", "coze.cn"),
        ];
        assert_eq!(
            shown(route(&v, None, "https://api.coze.cn/v3/chat")),
            "direct (no_proxy=coze.cn exempts api.coze.cn)",
            "no_proxy comes before NO_PROXY, as in curl"
        );
        assert!(shown(route(&v, None, "http://10.1.1.1:8888/")).starts_with("through"));
        assert!(
            shown(route(&v, Some("http://corp:1"), "https://api.coze.cn")).starts_with("direct"),
            "NO_PROXY applies to --proxy too"
        );
    }

    #[test]
    fn redaction_hides_credentials() {
        assert_eq!(
            redact_proxy("http://ada:pw@corp:3128/"),
            "http://***@corp:3128/"
        );
        assert_eq!(redact_proxy("ada:pw@corp:3128"), "***@corp:3128");
        assert_eq!(redact_proxy("socks5://corp:1"), "socks5://corp:1");
        let p = ProxyUrl::parse("socks5h://a%40b:p%3Aw@Proxy.Corp:1080", "ALL_PROXY").unwrap();
        assert_eq!(p.shown(), "socks5h://***@proxy.corp:1080");
        assert!(!format!("{p:?}").contains("p%3Aw"));
        let u = p.to_ureq().unwrap();
        assert_eq!((u.username(), u.password()), (Some("a@b"), Some("p:w")));
        assert_eq!(u.protocol(), ureq::ProxyProtocol::Socks5h);
        assert!(!u.resolve_target(), "socks5h: the proxy resolves names");
        let u = ProxyUrl::parse("socks5://h", "x")
            .unwrap()
            .to_ureq()
            .unwrap();
        assert!(u.resolve_target(), "socks5: resolved here");
    }
}
