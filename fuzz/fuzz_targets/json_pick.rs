//! `json_pick::pick` on arbitrary text against serde_json: whatever it accepts,
//! serde_json reads as an object with the same string values for the picked keys.

#![no_main]

use coze_core::wire::json_pick::pick;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KEYS: [&str; 4] = ["id", "type", "content", "reasoning_content"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(ours) = pick(text, KEYS) else {
        return;
    };
    let theirs: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("pick accepted what serde_json refuses ({e})"));
    let map = theirs.as_object().expect("pick accepted a non-object");
    for (key, value) in KEYS.iter().zip(ours) {
        assert_eq!(
            map.get(*key).map(|v| v.as_str().expect("a picked key that is not a string")),
            value.as_deref(),
            "key {key}"
        );
    }
});
