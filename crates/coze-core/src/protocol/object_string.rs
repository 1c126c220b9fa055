//! A message's `object_string` content: the parts of a message that carries files or
//! images, as the Coze API takes them (the API docs page `chat_v3`, "object_string
//! object"; coze-py `Message.build_user_question_objects`): a JSON array of parts
//! `{"type":"text","text":…}`, `{"type":"file"|"image"|"audio","file_id":…}` or
//! `…"file_url":…}`, serialized into the message's `content` string.
//!
//! The API's rules for one message (at most one text part, and text only beside a file
//! or an image; a message of files alone needs a text message next to it) are kept by
//! construction: coze-chat sends a prompt's text and its files as one message, the
//! text first (`chat::ChatSpec`). Here: the content type, and reading the parts back.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_takes_arrays_only() {
        let c = r#"[{"type":"text","text":"hi"},{"type":"image","file_id":"1"}]"#;
        assert_eq!(decode(c).unwrap().len(), 2);
        assert_eq!(decode("plain words"), None);
        assert_eq!(decode(r#"{"type":"text"}"#), None);
        assert_eq!(decode(""), None);
    }
}
