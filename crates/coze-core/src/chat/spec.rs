//! What to ask: who answers (a bot, or a chatflow), the user, the prompt and what it
//! carries, as the body of the endpoint that target is asked through.

use serde_json::{json, Map, Value};

use crate::protocol::object_string;

/// Who answers a chat. One engine serves both: a chatflow answers with the chat events
/// of a bot (the Coze API docs, `workflow_chat`), so only the request and what may be
/// done after a broken stream differ.
#[derive(Debug, Clone)]
pub enum Target {
    /// A bot, asked through `POST /v3/chat` (the Coze API docs, `chat_v3`).
    Bot {
        /// The bot to ask.
        bot_id: String,
    },
    /// A chatflow, asked through `POST /v1/workflows/chat` (the Coze API docs,
    /// `workflow_chat`): a workflow that talks, run in an app or in a bot, never both.
    Workflow {
        /// The published chatflow.
        workflow_id: String,
        /// The app whose chatflow it is (an app's chatflow needs it).
        app_id: Option<String>,
        /// The bot a library chatflow runs in.
        bot_id: Option<String>,
        /// The start node's inputs beside the question (`USER_INPUT`); `{}` when none,
        /// since the docs mark the field required.
        parameters: Map<String, Value>,
    },
}

impl Default for Target {
    fn default() -> Self {
        Target::Bot {
            bot_id: String::new(),
        }
    }
}

impl Target {
    /// The chatflow's id, when the target is one.
    pub fn workflow_id(&self) -> Option<&str> {
        match self {
            Target::Workflow { workflow_id, .. } => Some(workflow_id),
            Target::Bot { .. } => None,
        }
    }
}

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct ChatSpec {
    /// Who answers: a bot or a chatflow.
    pub target: Target,
    /// Who asks: the bot's memory and variables are kept per user id (a chatflow gets
    /// it as `ext.user_id`).
    pub user_id: String,
    /// The question, sent as one `user` message of `content_type` `text`.
    pub content: String,
    /// The conversation to ask in; `None` lets the server make a new one (a chatflow
    /// in an app may use the app's default conversation instead).
    pub conversation_id: Option<String>,
    /// Values for the bot prompt's `{{variables}}`; not sent when empty (bots only).
    pub custom_variables: Map<String, Value>,
    /// String pairs the chat object carries back; not sent when empty (bots only).
    pub meta_data: Map<String, Value>,
    /// auto_save_history (default true in the API; must be true without streaming;
    /// bots only).
    pub auto_save: bool,
    /// Files and images sent with the question (`{"type":"image","file_id":…}`, …):
    /// the message is then an `object_string` whose first part is the question's
    /// text. Empty: a plain text message. A chatflow takes text only.
    pub parts: Vec<Value>,
}

impl ChatSpec {
    /// Whether a chatflow answers.
    pub fn is_chatflow(&self) -> bool {
        matches!(self.target, Target::Workflow { .. })
    }

    /// The request body for the target's endpoint: `/v3/chat`'s (the Coze API docs,
    /// `chat_v3`; its conversation_id goes in the query) or `/v1/workflows/chat`'s
    /// (`workflow_chat`, which takes conversation_id in the body and always streams).
    pub fn body(&self, stream: bool) -> Value {
        match &self.target {
            Target::Bot { bot_id } => {
                let mut body = json!({
                    "bot_id": bot_id,
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
            Target::Workflow {
                workflow_id,
                app_id,
                bot_id,
                parameters,
            } => {
                let mut body = json!({
                    "workflow_id": workflow_id,
                    "additional_messages": [self.message()],
                    "parameters": parameters,
                });
                // One or the other: the API refuses both (4000).
                if let Some(app) = app_id {
                    body["app_id"] = app.as_str().into();
                } else if let Some(bot) = bot_id {
                    body["bot_id"] = bot.as_str().into();
                }
                if let Some(c) = &self.conversation_id {
                    body["conversation_id"] = c.as_str().into();
                }
                // `ext` is a map of strings. `enable_card` asks coze.cn for a question
                // node's card, whose options a person can pick by number (coze-js's chat
                // SDK asks chatflows so; the SDKs' `enable_card` of `/v3/chat` is
                // "support card response for question node"); without it a question
                // comes as text. A self-hosted Coze Studio always sends the card.
                let mut ext = Map::new();
                if !self.user_id.is_empty() {
                    ext.insert("user_id".into(), self.user_id.as_str().into());
                }
                ext.insert("enable_card".into(), "true".into());
                body["ext"] = Value::Object(ext);
                body
            }
        }
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
            target: Target::Bot { bot_id: "b".into() },
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

    #[test]
    fn a_chatflow_s_body() {
        let mut spec = ChatSpec {
            target: Target::Workflow {
                workflow_id: "w".into(),
                app_id: Some("a".into()),
                bot_id: Some("b".into()),
                parameters: Map::new(),
            },
            user_id: "u".into(),
            content: "hi".into(),
            conversation_id: Some("c".into()),
            ..ChatSpec::default()
        };
        assert_eq!(
            spec.body(true),
            json!({
                "workflow_id": "w",
                "additional_messages": [{"role":"user","content":"hi","content_type":"text"}],
                "parameters": {},
                "app_id": "a",
                "conversation_id": "c",
                "ext": {"user_id": "u", "enable_card": "true"},
            }),
            "parameters required, so {{}} when none; never app_id and bot_id both"
        );
        spec.target = Target::Workflow {
            workflow_id: "w".into(),
            app_id: None,
            bot_id: Some("b".into()),
            parameters: [("k".to_owned(), json!(1))].into_iter().collect(),
        };
        spec.conversation_id = None;
        spec.user_id.clear();
        let b = spec.body(true);
        assert_eq!(
            (&b["bot_id"], &b["parameters"]),
            (&json!("b"), &json!({"k":1}))
        );
        assert_eq!(
            b["ext"],
            json!({"enable_card": "true"}),
            "cards always asked for"
        );
        assert!(b.get("conversation_id").is_none() && b.get("app_id").is_none());
    }
}
