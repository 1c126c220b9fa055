//! The callback query parser on arbitrary text: `classify` (the loopback listener's
//! request line) and `parse_pasted` (a URL or code pasted by hand), and the URL
//! helpers under them. No panic; a code is only ever accepted with our state.

#![no_main]

use coze_core::auth::callback::{self, Outcome};
use coze_core::support::url;
use libfuzzer_sys::fuzz_target;

const STATE: &str = "st4te-Zx";

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    // Optional "METHOD TARGET" shape, as on a request line.
    let (method, target) = match text.split_once(' ') {
        Some((m, t)) if m.len() <= 7 => (m, t),
        _ => ("GET", &*text),
    };
    let outcome = callback::classify(method, target, "/callback", STATE);
    if method != "GET" {
        assert_eq!(outcome, Outcome::NotOurs);
    }
    if let Outcome::Code(code) = &outcome {
        assert!(!code.is_empty());
        assert!(url::decode(target).contains(STATE));
    }
    if let Ok(code) = callback::parse_pasted(&text, STATE) {
        assert!(!code.is_empty());
    }
    let _ = url::parse(&text);
    let _ = url::check_transport(&text, false);
    let _ = url::check_transport(&text, true);
    let _ = url::is_loopback_host(&text);
    let _ = url::parse_query(&text);
    assert_eq!(url::decode(&url::encode(&text)), text);
});
