//! A workflow's output, decoded. The API hands it over as text: the end node's
//! variables as JSON text (`"{\"output\":…}"`), plain text that is not JSON at all, or
//! JSON inside JSON, as the run history's example shows: `{"Output":"{\"content_type\":1,
//! \"data\":\"…\",\"original_result\":null,\"type_for_model\":2}"}` (the Coze API docs,
//! `workflow_history`; a self-hosted Coze Studio wraps an end node that answers in text
//! the same way, coze-dev/coze-studio `backend/application/workflow/workflow.go`,
//! `OpenAPIRun`). No SDK parses it; a script should not have to either.
//!
//! The rules, in order: text that is not JSON stays the text; a JSON string that holds
//! an object or an array is that value; so is, one more level, a top-level member's
//! value that is a string holding one (`"Output": "{…}"`); and the answer wrapper
//! (`content_type`, `data`, `type_for_model`) is its `data`, decoded the same way.
//! Only objects and arrays count as JSON inside a string: `"3"` and `"true"` stay
//! strings. Decoding never fails.

use serde_json::{Map, Value};

/// How deep strings holding JSON are unwrapped: enough for every shape the API
/// sends, bounded so a hostile output cannot make decoding loop.
const MAX_LEVELS: usize = 4;

/// `text` (a run's output) as the value it stands for; see the module notes.
pub fn decode(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => unwrap(v, MAX_LEVELS),
        Err(_) => Value::String(text.to_owned()),
    }
}

/// The object or array a string holds, if it holds one.
fn json_in(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(s)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

/// `v` with its encodings taken off, at most `levels` deep.
fn unwrap(v: Value, levels: usize) -> Value {
    if levels == 0 {
        return v;
    }
    match v {
        Value::String(s) => match json_in(&s) {
            Some(inner) => unwrap(inner, levels - 1),
            None => Value::String(s),
        },
        Value::Object(m) if is_answer_wrapper(&m) => {
            let mut m = m;
            match m.remove("data") {
                Some(Value::String(s)) => match json_in(&s) {
                    Some(inner) => unwrap(inner, levels - 1),
                    None => Value::String(s),
                },
                Some(other) => unwrap(other, levels - 1),
                None => Value::Null,
            }
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => match json_in(&s) {
                            Some(inner) => unwrap(inner, levels - 1),
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// The wrapper an end node's text answer comes in: `content_type`, `data` and
/// `type_for_model` (and `original_result`), nothing else.
fn is_answer_wrapper(m: &Map<String, Value>) -> bool {
    m.contains_key("data")
        && m.contains_key("content_type")
        && m.contains_key("type_for_model")
        && m.keys().all(|k| {
            matches!(
                k.as_str(),
                "data" | "content_type" | "type_for_model" | "original_result"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_text_is_its_value() {
        assert_eq!(
            decode(r#"{"output":{"city":"北京","n":3,"tags":"[1,2]","s":"3"}}"#),
            json!({"output": {"city": "北京", "n": 3, "tags": "[1,2]", "s": "3"}}),
            "strings deeper in stay strings"
        );
        assert_eq!(decode("[1,2]"), json!([1, 2]));
        assert_eq!(decode("3"), json!(3));
        assert_eq!(decode("null"), Value::Null);
    }

    #[test]
    fn doubly_encoded_output_is_decoded_one_more_level() {
        let inner = json!({"output": {"q": "x"}}).to_string();
        let wrapped = json!({"content_type": 1, "data": inner, "original_result": null,
            "type_for_model": 2})
        .to_string();
        let text = json!({ "Output": wrapped }).to_string();
        assert_eq!(decode(&text), json!({"Output": {"output": {"q": "x"}}}));
        // A string holding the JSON, and a member holding a JSON string.
        assert_eq!(
            decode(&json!(inner).to_string()),
            json!({"output": {"q": "x"}})
        );
        assert_eq!(
            decode(r#"{"output":"{\"a\":[1]}","answer":"plain"}"#),
            json!({"output": {"a": [1]}, "answer": "plain"})
        );
        // The wrapper around text is the text.
        let text_answer = json!({"content_type": 1, "data": "你好", "type_for_model": 2});
        assert_eq!(decode(&text_answer.to_string()), json!("你好"));
    }

    #[test]
    fn text_that_is_not_json_stays_text() {
        for t in [
            "Echo: {\"a\":1}",
            "",
            "{not json",
            "你好 🌏",
            "{\"a\":1} trailing",
        ] {
            assert_eq!(decode(t), json!(t), "{t:?}");
        }
        // A string that looks like JSON but is not stays the string.
        assert_eq!(decode(r#""{oops""#), json!("{oops"));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // Each level doubles the backslashes: ten levels are a few kilobytes.
        let mut text = json!({"x": 1}).to_string();
        for _ in 0..10 {
            text = Value::String(text).to_string();
        }
        // Never loops, never fails: some levels come off, the rest stays a string.
        assert!(decode(&text).is_string());
    }
}
