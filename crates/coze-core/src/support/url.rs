//! The little URL handling the tools need: validating a base URL, deciding whether a
//! host is loopback, and percent-encoding query strings and form bodies.
//!
//! Not a general URL parser: bases are `scheme://host[:port][/path]`, everything else
//! is built by appending paths and encoded queries to them.

/// Percent-encodes `s` for a query component (RFC 3986 unreserved set kept as is).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `s` encoded as one path segment; None for what no segment can carry: an empty
/// string, `.` and `..` (the unreserved `.` is never encoded, and a client or server
/// that resolves dot segments would take them for "here" and "the parent").
pub fn path_segment(s: &str) -> Option<String> {
    match s {
        "" | "." | ".." => None,
        _ => Some(encode(s)),
    }
}

/// Decodes `%XX` and (form style) `+` as space. Invalid escapes are kept literally: a
/// query we cannot decode should still show up in an error as what was received.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v&k2=v2` with both sides encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Splits `a=1&b=2` into decoded pairs; a key without `=` has an empty value.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The parts of a URL the tools care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// `http` or `https`, lowercased: no other scheme is accepted.
    pub scheme: String,
    /// Host without brackets or port, lowercased; any `user:password@` is dropped.
    pub host: String,
    /// The port written in the URL; `None` when it names none (the scheme's default).
    pub port: Option<u16>,
    /// Path including the leading `/` (`/` when absent), without query or fragment.
    pub path: String,
    /// What follows `?`, still percent-encoded ([`parse_query`] decodes it); `None`
    /// without a `?`.
    pub query: Option<String>,
}

/// Splits `scheme://host[:port]/path?query#fragment`.
pub fn parse(url: &str) -> Result<Parts, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (no scheme://)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("{url:?}: only http and https URLs are supported"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in host"))?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        ),
        None => None,
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (path_query, None),
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    Ok(Parts {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path,
        query,
    })
}

/// 127.0.0.0/8, ::1 and localhost: the only hosts plain http is allowed to reach.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Refuses `http://` to anything but loopback: tokens must not cross a network in
/// clear, unless the user opted in (`allow_http`: `--allow-http`, `COZE_ALLOW_HTTP=1`),
/// as a self-hosted Coze Studio on a company network usually needs.
pub fn check_transport(url: &str, allow_http: bool) -> Result<Parts, String> {
    let parts = parse(url)?;
    if parts.scheme == "http" && !allow_http && !is_loopback_host(&parts.host) {
        return Err(format!(
            "refusing plain http:// to {}: the token would cross the network unencrypted \
             (use https://, or --allow-http / COZE_ALLOW_HTTP=1 for a server on your own \
             network, such as a self-hosted Coze Studio)",
            parts.host
        ));
    }
    Ok(parts)
}

/// Whether requests to `url` go out in plain http to a host that is not loopback: the
/// case `--allow-http` permits and warns about.
pub fn is_plain_remote(url: &str) -> bool {
    parse(url).is_ok_and(|p| p.scheme == "http" && !is_loopback_host(&p.host))
}

/// `base` without a trailing slash, so paths can be appended.
pub fn trim_base(base: &str) -> &str {
    base.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_round_trip() {
        let s = "a b&c=d/é+你好";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(encode("client id"), "client%20id");
        assert_eq!(decode("client+id%2"), "client id%2");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_path_segment_is_never_a_dot_segment() {
        assert_eq!(
            path_segment("7381473525342978089").as_deref(),
            Some("7381473525342978089")
        );
        assert_eq!(path_segment("a/../b").as_deref(), Some("a%2F..%2Fb"));
        assert_eq!(path_segment("...").as_deref(), Some("..."));
        for bad in ["", ".", ".."] {
            assert_eq!(path_segment(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_urls() {
        let p = parse("http://127.0.0.1:8080/callback?code=x&state=y#frag").unwrap();
        assert_eq!(
            (p.scheme.as_str(), p.host.as_str(), p.port),
            ("http", "127.0.0.1", Some(8080))
        );
        assert_eq!(p.path, "/callback");
        assert_eq!(p.query.as_deref(), Some("code=x&state=y"));
        let p = parse("https://[::1]/").unwrap();
        assert_eq!(p.host, "::1");
        assert_eq!(parse("https://api.coze.cn").unwrap().path, "/");
        assert!(parse("ftp://x").is_err());
        assert!(parse("api.coze.cn").is_err());
        assert!(parse("http://h:99999/").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_transport("http://127.0.0.1:9/x", false).is_ok());
        assert!(check_transport("http://localhost/x", false).is_ok());
        assert!(check_transport("http://[::1]:80/", false).is_ok());
        assert!(check_transport("https://api.coze.cn", false).is_ok());
        let err = check_transport("http://api.coze.cn", false).unwrap_err();
        assert!(err.contains("refusing plain http://"), "{err}");
        assert!(err.contains("--allow-http"), "{err}");
        assert!(check_transport("http://10.0.0.1", false).is_err());
        assert!(check_transport("http://10.0.0.1:8888/v3/chat", true).is_ok());
        assert!(is_plain_remote("http://studio.corp:8888"));
        assert!(!is_plain_remote("http://127.0.0.1:8888"));
        assert!(!is_plain_remote("https://studio.corp"));
    }

    #[test]
    fn query_pairs() {
        assert_eq!(query(&[("a", "1 2"), ("b", "x&y")]), "a=1%202&b=x%26y");
        assert_eq!(
            parse_query("code=c%20d&state=&x"),
            vec![
                ("code".into(), "c d".into()),
                ("state".into(), String::new()),
                ("x".into(), String::new())
            ]
        );
    }
}
