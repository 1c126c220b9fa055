//! The proxy variables, read the way ureq reads them: which proxy a request goes
//! through, shown without its credentials. `coze-auth doctor` reports it, and a
//! network error names it, since a refused or timed-out connection through a proxy
//! is the proxy's answer, not the API's.

use crate::url;

/// The variables ureq reads, in the order it tries them: the first set one is the
/// proxy for every request. `NO_PROXY`/`no_proxy` (the first set one) exempts hosts.
pub const PROXY_VARS: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

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

/// Whether a NO_PROXY list exempts `host`: `*`, an exact host, or a domain suffix
/// (`example.com`, `.example.com`, `*.example.com` all cover `api.example.com`).
pub fn no_proxy_covers(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    list.split(',').map(str::trim).any(|entry| {
        let entry = entry.trim_start_matches("*.").trim_start_matches('.');
        // A port on an entry (`host:443`) does not narrow it here; `::1` has no port.
        let entry = match entry.rsplit_once(':') {
            Some((h, p))
                if !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) =>
            {
                h
            }
            _ => entry,
        };
        let entry = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        !entry.is_empty() && (entry == "*" || host == entry || host.ends_with(&format!(".{entry}")))
    })
}

/// The first of `names` that is set (non-empty) in `vars`, as (name, value).
pub fn first_set<'a>(vars: &'a [(String, String)], names: &[&str]) -> Option<(&'a str, &'a str)> {
    names.iter().find_map(|n| {
        vars.iter()
            .find(|(k, v)| k == n && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    })
}

/// The proxy a request to `target` (a URL) goes through, as a person reads it:
/// `http://***@proxy:3128 from HTTPS_PROXY`. None: a direct connection.
pub fn in_effect(vars: &[(String, String)], target: &str) -> Option<String> {
    let (name, value) = first_set(vars, &PROXY_VARS)?;
    let host = url::parse(target).map(|p| p.host).unwrap_or_default();
    if let Some((_, list)) = first_set(vars, &NO_PROXY_VARS) {
        if no_proxy_covers(list, &host) {
            return None;
        }
    }
    Some(format!("{} from {name}", redact_proxy(value)))
}

/// The set proxy variables of this process. Call from `main` only (through
/// `Env::from_process`), like every other read of the environment.
pub fn vars_from_process() -> Vec<(String, String)> {
    PROXY_VARS
        .iter()
        .chain(NO_PROXY_VARS.iter())
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Proxy variables as `Env` holds them, for tests here and in `doctor`.
    pub(crate) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn in_effect_names_the_variable_and_hides_credentials() {
        let v = vars(&[
            ("HTTP_PROXY", "http://plain:3128"),
            ("HTTPS_PROXY", "http://ada:s3cret@corp:3128"),
        ]);
        assert_eq!(
            in_effect(&v, "https://api.coze.cn/v1/x").as_deref(),
            Some("http://***@corp:3128 from HTTPS_PROXY"),
            "HTTPS_PROXY comes before HTTP_PROXY"
        );
        assert_eq!(in_effect(&[], "https://api.coze.cn"), None);
        let exempt = vars(&[("ALL_PROXY", "socks5://p:1"), ("no_proxy", "coze.cn")]);
        assert_eq!(in_effect(&exempt, "https://api.coze.cn/v3/chat"), None);
        assert_eq!(
            in_effect(&exempt, "https://api.coze.com/v3/chat").as_deref(),
            Some("socks5://p:1 from ALL_PROXY")
        );
        let empty = vars(&[("HTTPS_PROXY", "")]);
        assert_eq!(
            in_effect(&empty, "https://api.coze.cn"),
            None,
            "empty is unset"
        );
    }
}
