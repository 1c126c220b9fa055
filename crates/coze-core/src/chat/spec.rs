//! What to ask: the bot, the user, the prompt and what it carries, as the `/v3/chat`
//! body.

use serde_json::{json, Map, Value};

use crate::protocol::object_string;

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct ChatSpec {
    /// The bot to ask.
    pub bot_id: String,
    /// Who asks: the bot's memory and variables are kept per user id.
    pub user_id: String,
    /// The question, sent as one `user` message of `content_type` `text`.
    pub content: String,
    /// The conversation to ask in; `None` lets the server make a new one.
    pub conversation_id: Option<String>,
    /// Values for the bot prompt's `{{variables}}`; not sent when empty.
    pub custom_variables: Map<String, Value>,
    /// String pairs the chat object carries back; not sent when empty.
    pub meta_data: Map<String, Value>,
    /// auto_save_history (default true in the API; must be true without streaming).
    pub auto_save: bool,
    /// Files and images sent with the question (`{"type":"image","file_id":…}`, …):
    /// the message is then an `object_string` whose first part is the question's
    /// text. Empty: a plain text message.
    pub parts: Vec<Value>,
}

impl ChatSpec {
    /// The `/v3/chat` body (the Coze API docs, `chat_v3`); conversation_id goes in the
    /// query.
    pub fn body(&self, stream: bool) -> Value {
        let mut body = json!({
            "bot_id": self.bot_id,
            "user_id": self.user_id,
            "stream": stream,
            "auto_save_history": self.auto_save,
            "additional_messages": [self.message()],
        });
        if !self.custom_variables.is_empty() {
            body["custom_variables"] = Value::Object(self.custom_variables.clone());
        }
        if !self.meta_data.is_empty() {
            body["meta_data"] = Value::Object(self.meta_data.clone());
        }
        body
    }
}

impl ChatSpec {
    /// The question as the one user message: text, or with files an object_string
    /// (the Coze API docs, `chat_v3`: the parts array serialized into `content`).
    fn message(&self) -> Value {
        if self.parts.is_empty() {
            return json!({"role": "user", "content": self.content, "content_type": "text"});
        }
        let mut parts = vec![json!({"type": "text", "text": self.content})];
        parts.extend(self.parts.iter().cloned());
        json!({
            "role": "user",
            "content": Value::Array(parts).to_string(),
            "content_type": object_string::CONTENT_TYPE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_body() {
        let spec = ChatSpec {
            bot_id: "b".into(),
            user_id: "u".into(),
            content: "hi".into(),
            auto_save: true,
            ..ChatSpec::default()
        };
        let b = spec.body(true);
        assert_eq!(b["stream"], true);
        assert_eq!(
            b["additional_messages"][0],
            json!({"role":"user","content":"hi","content_type":"text"})
        );
        assert!(
            b.get("conversation_id").is_none(),
            "conversation_id goes in the query"
        );
    }

    #[test]
    fn files_make_the_message_an_object_string() {
        let spec = ChatSpec {
            content: "what is in it?".into(),
            parts: vec![json!({"type":"image","file_id":"7"})],
            ..ChatSpec::default()
        };
        let m = &spec.body(true)["additional_messages"][0];
        assert_eq!(m["content_type"], "object_string");
        let parts = object_string::decode(m["content"].as_str().unwrap()).unwrap();
        assert_eq!(
            parts,
            [
                json!({"type":"text","text":"what is in it?"}),
                json!({"type":"image","file_id":"7"})
            ]
        );
    }
}
