//! The chat endpoints: start one streamed or not, retrieve it, list its messages,
//! cancel it; and a chatflow's chat, which streams only. The conversation goes in the
//! query of `/v3/chat`, and in the body of the cancel and of `/v1/workflows/chat`.

use serde_json::{json, Value};

use super::client::Client;
use crate::error::Result;
use crate::http::Stream;

impl Client<'_> {
    fn chat_url(&self, conversation_id: Option<&str>) -> String {
        match conversation_id {
            Some(c) => self.url("/v3/chat", &[("conversation_id", c)]),
            None => self.url("/v3/chat", &[]),
        }
    }

    /// Starts a streamed chat; 4016 (conversation busy) is waited out and retried.
    pub fn chat_stream(&self, conversation_id: Option<&str>, body: &Value) -> Result<Stream> {
        self.stream(&self.chat_url(conversation_id), body)
    }

    /// Starts a chatflow's chat (`POST /v1/workflows/chat`, the Coze API docs,
    /// `workflow_chat`): always streamed, with the chat events of `/v3/chat`; the
    /// conversation, if any, is in `body`.
    pub fn chatflow_stream(&self, body: &Value) -> Result<Stream> {
        self.stream(&self.url("/v1/workflows/chat", &[]), body)
    }

    /// Starts a chat without streaming; returns the Chat object.
    pub fn chat_create(&self, conversation_id: Option<&str>, body: &Value) -> Result<Value> {
        Ok(Self::data(self.call(
            "POST",
            &self.chat_url(conversation_id),
            Some(body),
            true,
        )?))
    }

    /// The Chat object, and the logid of the answer (a failed chat's error carries it).
    pub fn chat_retrieve(
        &self,
        conversation_id: &str,
        chat_id: &str,
    ) -> Result<(Value, Option<String>)> {
        let url = self.url(
            "/v3/chat/retrieve",
            &[("conversation_id", conversation_id), ("chat_id", chat_id)],
        );
        let (body, logid) = self.call_with_logid("GET", &url, None, false)?;
        Ok((Self::data(body), logid))
    }

    /// Every message of a finished chat except the user's query.
    pub fn chat_messages(&self, conversation_id: &str, chat_id: &str) -> Result<Vec<Value>> {
        let url = self.url(
            "/v3/chat/message/list",
            &[("conversation_id", conversation_id), ("chat_id", chat_id)],
        );
        Ok(
            Self::data_under(self.call("GET", &url, None, false)?, "Messages")
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Cancels a chat in progress (IDs in the body, unlike the other chat calls).
    pub fn chat_cancel(&self, conversation_id: &str, chat_id: &str) -> Result<Value> {
        let url = self.url("/v3/chat/cancel", &[]);
        let body = json!({"conversation_id": conversation_id, "chat_id": chat_id});
        Ok(Self::data_under(
            self.call("POST", &url, Some(&body), false)?,
            "ChatV3ChatDetail",
        ))
    }
}
