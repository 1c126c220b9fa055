//! Keeping secrets out of everything a person reads.
//!
//! Tokens, refresh tokens, codes and verifiers are registered here the moment the
//! process learns them; `scrub` replaces each with a short fingerprint before any text
//! reaches stderr (errors, `-v` request lines). Our own messages never include secrets
//! in the first place: this is the net under that rule, for text that comes from a
//! server (which may echo what we sent). It is not encryption and not for stdout, where
//! a token is sometimes the stated output (coze-token).

use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers `secret` so that `scrub` hides it. Short strings are ignored: hiding every
/// "1" in a message would make it unreadable and protects nothing.
pub fn register(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut list = registry().lock().unwrap_or_else(|p| p.into_inner());
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_owned());
    }
}

/// `text` with every registered secret replaced by `<redacted:LAST4>`, and anything that
/// looks like a Coze token (`czu_…`, `czs_…`, `pat_…`) or a bearer header value redacted
/// even if it was never registered.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_owned();
    {
        let list = registry().lock().unwrap_or_else(|p| p.into_inner());
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &fingerprint(secret));
            }
        }
    }
    for prefix in ["czu_", "czs_", "pat_", "Bearer "] {
        out = scrub_prefixed(&out, prefix);
    }
    scrub_userinfo(&out)
}

/// `scheme://user:password@host` → `scheme://***@host`: a base URL or proxy written
/// with credentials never shows them.
fn scrub_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        if let Some(cut) = rest[..end].rfind('@') {
            out.push_str("***");
            rest = &rest[cut..];
        }
    }
    out.push_str(rest);
    out
}

/// `<redacted:…wxyz>`: enough to tell two tokens apart in a log, useless to an attacker.
pub fn fingerprint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("<redacted:…{tail}>")
}

fn scrub_prefixed(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at + prefix.len()]);
        rest = &rest[at + prefix.len()..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(c)))
            .unwrap_or(rest.len());
        if len >= 8 {
            out.push_str("<redacted>");
        } else {
            out.push_str(&rest[..len]);
        }
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_token_shapes_are_hidden() {
        register("refresh-secret-value-123");
        let text =
            "got refresh-secret-value-123 and czu_ABCDEFGH12345 and Bearer abcdefghijk, code 4100";
        let clean = scrub(text);
        assert!(!clean.contains("refresh-secret-value-123"), "{clean}");
        assert!(!clean.contains("ABCDEFGH12345"), "{clean}");
        assert!(!clean.contains("abcdefghijk"), "{clean}");
        assert!(clean.contains("<redacted:…-123>"), "{clean}");
        assert!(clean.contains("code 4100"), "{clean}");
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            scrub("http://ada:s3cret@studio.corp:8888/v3/chat: connection refused"),
            "http://***@studio.corp:8888/v3/chat: connection refused"
        );
        assert_eq!(
            scrub("through socks5h://u:p@127.0.0.1:1080 from ALL_PROXY, then https://h/a@b"),
            "through socks5h://***@127.0.0.1:1080 from ALL_PROXY, then https://h/a@b"
        );
        assert_eq!(scrub("mail ada@corp.example"), "mail ada@corp.example");
    }

    #[test]
    fn short_strings_and_plain_words_survive() {
        register("abc");
        assert_eq!(scrub("abc pat_ x czu_ab"), "abc pat_ x czu_ab");
    }
}
