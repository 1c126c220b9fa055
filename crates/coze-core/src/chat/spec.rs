//! What to ask: the bot, the user, the prompt and what it carries, as the `/v3/chat`
//! body.

use serde_json::{json, Map, Value};

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct ChatSpec {
    pub bot_id: String,
    pub user_id: String,
    pub content: String,
    pub conversation_id: Option<String>,
    pub custom_variables: Map<String, Value>,
    pub meta_data: Map<String, Value>,
    /// auto_save_history (default true in the API; must be true without streaming).
    pub auto_save: bool,
}

impl ChatSpec {
    /// The `/v3/chat` body (coze-api.md §6.1); conversation_id goes in the query.
    pub fn body(&self, stream: bool) -> Value {
        let mut body = json!({
            "bot_id": self.bot_id,
            "user_id": self.user_id,
            "stream": stream,
            "auto_save_history": self.auto_save,
            "additional_messages": [{"role": "user", "content": self.content, "content_type": "text"}],
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
}
