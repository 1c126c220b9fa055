//! A message's `object_string` content: the parts of a message that carries files or
//! images, as the Coze API takes them (the API docs page `chat_v3`, "object_string
//! object"; coze-py `Message.build_user_question_objects`): a JSON array of parts
//! `{"type":"text","text":…}`, `{"type":"file"|"image"|"audio","file_id":…}` or
//! `…"file_url":…}`, serialized into the message's `content` string.
//!
//! The API's rules for one message, checked here before anything is sent: every part
//! has a known type; a file, image or audio part names a `file_id` or a `file_url`; at
//! most one text part; a text part needs a file or an image beside it (text alone is a
//! plain `text` message). A message of files only needs a plain text message next to
//! it: that rule is about the message list and is the sender's to keep.

use serde_json::Value;

/// The `content_type` of a message whose content is a parts array.
pub const CONTENT_TYPE: &str = "object_string";

/// The parts of an `object_string` content, or None when it is not a JSON array (a
/// server's text is shown as it came, not refused).
pub fn decode(content: &str) -> Option<Vec<Value>> {
    match serde_json::from_str(content) {
        Ok(Value::Array(parts)) => Some(parts),
        _ => None,
    }
}

/// What is wrong with `parts` as one message's content, in words for an error line;
/// Ok when the API would take it.
pub fn check(parts: &[Value]) -> Result<(), String> {
    if parts.is_empty() {
        return Err("an object_string message needs at least one part".into());
    }
    let mut texts = 0;
    let mut files_or_images = 0;
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let kind = part.get("type").and_then(Value::as_str);
        match kind {
            Some("text") => {
                texts += 1;
                if !part.get("text").is_some_and(Value::is_string) {
                    return Err(format!("part {n}: a text part needs a \"text\" string"));
                }
            }
            Some(k @ ("file" | "image" | "audio")) => {
                let named = |key: &str| {
                    part.get(key)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                };
                if !named("file_id") && !named("file_url") {
                    return Err(format!(
                        "part {n} ({k}): needs a \"file_id\" or a \"file_url\""
                    ));
                }
                if k != "audio" {
                    files_or_images += 1;
                }
            }
            Some(other) => {
                return Err(format!(
                    "part {n}: unknown type {other:?} (expected text, file, image or audio)"
                ))
            }
            None => return Err(format!("part {n}: no \"type\"")),
        }
    }
    if texts > 1 {
        return Err("at most one text part per message".into());
    }
    if texts == 1 && files_or_images == 0 {
        return Err(
            "a text part needs a file or an image beside it (text alone is a plain text message)"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn decode_takes_arrays_only() {
        let c = r#"[{"type":"text","text":"hi"},{"type":"image","file_id":"1"}]"#;
        assert_eq!(decode(c).unwrap().len(), 2);
        assert_eq!(decode("plain words"), None);
        assert_eq!(decode(r#"{"type":"text"}"#), None);
        assert_eq!(decode(""), None);
    }

    #[test]
    fn the_rules_of_one_message() {
        let ok = [
            json!([{"type":"text","text":"what is this?"},{"type":"image","file_id":"1"}]),
            json!([{"type":"file","file_url":"https://x/y.pdf"}]),
            json!([{"type":"image","file_id":"1"},{"type":"file","file_id":"2"}]),
            json!([{"type":"text","text":"t"},{"type":"file","file_id":"2"},{"type":"audio","file_id":"3"}]),
        ];
        for p in ok {
            assert_eq!(check(&parts(p.clone())), Ok(()), "{p}");
        }
        let bad = [
            (json!([]), "at least one part"),
            (
                json!([{"type":"text","text":"alone"}]),
                "needs a file or an image",
            ),
            (
                json!([{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"file","file_id":"1"}]),
                "at most one text part",
            ),
            (
                json!([{"type":"file"}]),
                "part 1 (file): needs a \"file_id\"",
            ),
            (
                json!([{"type":"image","file_id":""}]),
                "part 1 (image): needs",
            ),
            (
                json!([{"type":"video","file_id":"1"}]),
                "unknown type \"video\"",
            ),
            (json!([{"file_id":"1"}]), "no \"type\""),
            (
                json!([{"type":"text","text":"a"},{"type":"audio","file_id":"1"}]),
                "needs a file",
            ),
            (
                json!([{"type":"text"},{"type":"file","file_id":"1"}]),
                "needs a \"text\" string",
            ),
        ];
        for (p, want) in bad {
            let e = check(&parts(p.clone())).unwrap_err();
            assert!(e.contains(want), "{p}: {e}");
        }
    }
}
