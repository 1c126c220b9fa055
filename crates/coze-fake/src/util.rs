//! Small helpers every module needs: clocks, random ids and tokens, the logid formats
//! (coze's `x-tt-logid`, Studio's `X-Log-ID` UUID), URL query/form decoding and JSON
//! string escaping. Kept dependency-free so the fake stays an independent reading of
//! the official API documentation.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// One stderr line in one write(2), so `--verbose` lines from the server's threads
/// (and from whatever else shares the terminal or log) never split mid-line.
pub fn say(text: &str) {
    let line = format!("{text}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Unix time in whole seconds (the unit of every `*_at` field and of token `expires_in`).
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix time in milliseconds, for expiries that tests want to move precisely.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fill `buf` from the OS; a failing RNG is not worth a crash in a test fake, so fall
/// back to clock-derived bytes.
pub fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        let mut x = now_ms() ^ 0x9E37_79B9_7F4A_7C15;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b)
}

/// A Coze-style id: a 19-digit decimal string (real ids look like `7382159487131697202`).
pub fn new_id() -> String {
    format!("7{:018}", random_u64() % 1_000_000_000_000_000_000)
}

/// Random string over `alphabet` (used for tokens, codes and keys).
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut raw = vec![0u8; len];
    random_bytes(&mut raw);
    raw.iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `YYYYMMDDhhmmss` + 16 upper-case hex digits, the shape of real Coze log ids.
pub fn new_logid() -> String {
    let secs = now_s();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:016X}",
        y,
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        random_u64()
    )
}

/// A random (version 4) UUID in its lower-case 8-4-4-4-12 form: what a self-hosted Coze
/// Studio puts in `X-Log-ID` (`backend/api/middleware/log.go` `SetLogIDMW`,
/// `uuid.New().String()` in coze-dev/coze-studio).
pub fn new_studio_logid() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A fresh logid in the format of the server whose logid header is `header` (the
/// server's `Dialect::logid_header`): a UUID for Studio's `X-Log-ID`, coze's otherwise.
/// For `http.rs`, which makes every response's logid.
pub fn logid_for(header: &str) -> String {
    if header.eq_ignore_ascii_case("x-log-id") {
        new_studio_logid()
    } else {
        new_logid()
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Decode `application/x-www-form-urlencoded` text (also used for query strings).
/// The value of `name` in decoded pairs (a query or a form); the first one wins.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encode for a query value (RFC 3986 unreserved set kept, space as `+`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Append `s` to `out` as the inside of a JSON string (no quotes). Hand-written because
/// the delta hot path runs it 200,000 times per bench and must not allocate.
pub fn json_escape_into(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Escape text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logid_shape() {
        let l = new_logid();
        assert_eq!(l.len(), 30);
        assert!(l.starts_with("20"));
    }

    #[test]
    fn studio_logid_is_a_v4_uuid() {
        let l = logid_for("X-Log-ID");
        let groups: Vec<&str> = l.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{l}"
        );
        assert!(l
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(groups[2].starts_with('4'), "{l}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{l}"
        );
        assert_ne!(l, logid_for("X-Log-ID"));
        assert_eq!(logid_for("x-tt-logid").len(), 30);
    }

    #[test]
    fn ids_are_19_digits() {
        let id = new_id();
        assert_eq!(id.len(), 19);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn form_round_trip() {
        let v = parse_form("a=1+2&b=%E4%B8%AD&c");
        assert_eq!(v[0], ("a".into(), "1 2".into()));
        assert_eq!(v[1].1, "中");
        assert_eq!(v[2], ("c".into(), String::new()));
        assert_eq!(form_encode("a b/中"), "a+b%2F%E4%B8%AD");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
    }
}
