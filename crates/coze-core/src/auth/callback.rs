//! The pure half of a browser login's callback: what a request to the loopback
//! listener, or a redirected URL pasted by hand (`--paste`), means. The state this login
//! sent is checked before anything else in the query is believed, in constant time; a
//! callback that carries `error` ends the login. Unit-tested below, and fuzzed
//! (`fuzz/fuzz_targets/callback.rs`).
//!
//! Not here: the listener, the browser and the paste reader (coze-auth's `login`), or
//! exchanging the code (coze-token); the device flow needs no callback and lives in
//! `oauth`.

use std::fmt;

use super::pkce;
use crate::error::{Error, Result};
use crate::support::url;

/// What one request to the listener (or one pasted URL) means.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The real callback: the code, with our `state`.
    Code(String),
    /// The real callback carrying `error` (consent denied, or another OAuth error).
    Denied {
        /// The callback's `error` (`access_denied`, …).
        error: String,
        /// Its `error_description`, when it came with one.
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
pub fn tidy(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    clean.trim().to_owned()
}

/// The error for a callback that carries `error`.
pub fn denied(error: &str, description: Option<&str>) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_io::{random_text, Rng};

    const STATE: &str = "s7aTe-0123456789abcdefghijklmnopqrstuvwxyz";

    fn cb(target: &str) -> Outcome {
        classify("GET", target, "/callback", STATE)
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
    fn callback_queries_never_panic_and_codes_come_back_exactly() {
        let mut rng = Rng::new(0x5EED_0005);
        let state = "st4te-Zx";
        for case in 0..20_000 {
            // Anything at all: no panic, and only well-formed answers.
            let target = random_text(&mut rng, 120);
            let method = *rng.pick(&["GET", "POST", "get", ""]);
            let outcome = classify(method, &target, "/callback", state);
            if method != "GET" {
                assert_eq!(outcome, Outcome::NotOurs, "case {case}");
            }
            if let Outcome::Code(code) = &outcome {
                assert!(!code.is_empty());
                assert!(
                    url::decode(&target).contains(state),
                    "case {case}: {target:?}"
                );
            }
            let pasted = random_text(&mut rng, 120);
            if let Ok(code) = parse_pasted(&pasted, state) {
                assert!(!code.is_empty(), "case {case}: {pasted:?}");
            }
            let _ = url::parse(&pasted);
            let _ = url::parse_query(&pasted);
            let _ = url::decode(&pasted);

            // A well-formed callback: the code comes back exactly, in any position and
            // between other parameters, from the listener and from a pasted URL.
            let code = random_text(&mut rng, 40);
            assert_eq!(url::decode(&url::encode(&code)), code, "case {case}");
            let mut pairs = vec![("code", code.as_str()), ("state", state)];
            if rng.chance(50) {
                pairs.swap(0, 1);
            }
            if rng.chance(30) {
                pairs.insert(rng.below(3), ("extra", "x=y&z"));
            }
            let query = url::query(&pairs);
            let want = if code.is_empty() {
                None
            } else {
                Some(code.clone())
            };
            let got = match classify("GET", &format!("/callback?{query}"), "/callback", state) {
                Outcome::Code(c) => Some(c),
                Outcome::Denied { .. } => None,
                other => panic!("case {case}: {other:?} for {query:?}"),
            };
            assert_eq!(got, want, "case {case}: {query:?}");
            let url = format!("http://127.0.0.1:8080/callback?{query}");
            match parse_pasted(&url, state) {
                Ok(c) => assert_eq!(Some(c), want, "case {case}: {url:?}"),
                Err(e) => assert!(want.is_none(), "case {case}: {url:?}: {e}"),
            }
            // Someone else's state is refused before the code is looked at.
            let forged = url::query(&[("code", "c"), ("state", &code)]);
            if code != state {
                assert_eq!(
                    classify("GET", &format!("/callback?{forged}"), "/callback", state),
                    Outcome::WrongState,
                    "case {case}"
                );
            }
        }
    }
}
