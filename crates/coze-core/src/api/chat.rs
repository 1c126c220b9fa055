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

    /// Submits the outputs of a chat's tool calls (`POST /v3/chat/submit_tool_outputs`,
    /// the Coze API docs, `chat_submit_tool_outputs`) with `"stream": true`: the same
    /// chat goes on as an event stream. Sent once: a server that took the outputs
    /// refuses them a second time, so nothing that may have reached it is re-sent
    /// (`Request::acts_once`).
    pub fn chat_submit_stream(
        &self,
        conversation_id: &str,
        chat_id: &str,
        body: &Value,
    ) -> Result<Stream> {
        let url = self.submit_url(conversation_id, chat_id);
        self.stream_once(&url, body)
    }

    /// [`chat_submit_stream`](Self::chat_submit_stream) with `"stream": false`: the
    /// Chat object, in progress, to be followed by polling.
    pub fn chat_submit(&self, conversation_id: &str, chat_id: &str, body: &Value) -> Result<Value> {
        let url = self.submit_url(conversation_id, chat_id);
        Ok(Self::data(self.act_with_logid(&url, body)?.0))
    }

    fn submit_url(&self, conversation_id: &str, chat_id: &str) -> String {
        self.url(
            "/v3/chat/submit_tool_outputs",
            &[("conversation_id", conversation_id), ("chat_id", chat_id)],
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
