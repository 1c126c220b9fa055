//! Conversations and their messages: create, retrieve, list, delete, clear, and the
//! message list, whose response is flat.

use serde_json::{json, Map, Value};

use super::client::{segment, Client, Page};
use crate::error::Result;

impl Client<'_> {
    // --- conversations (the Coze API docs: `create_conversation`,
    // `retrieve_conversation`, `list_conversations`, `delete_conversation`,
    // `clear_conversation_context`)

    /// Creates a conversation (`POST /v1/conversation/create`), for `bot_id` when given,
    /// named `name`, with `meta` as its `meta_data` (the caller checks the limits);
    /// returns the conversation object.
    pub fn create_conversation(
        &self,
        bot_id: Option<&str>,
        name: Option<&str>,
        meta: &Map<String, Value>,
    ) -> Result<Value> {
        let mut body = Map::new();
        if let Some(b) = bot_id {
            body.insert("bot_id".into(), b.into());
        }
        if let Some(n) = name {
            body.insert("name".into(), n.into());
        }
        if !meta.is_empty() {
            body.insert("meta_data".into(), Value::Object(meta.clone()));
        }
        let url = self.url("/v1/conversation/create", &[]);
        Ok(Self::data(self.call(
            "POST",
            &url,
            Some(&Value::Object(body)),
            false,
        )?))
    }

    /// One conversation's object (`GET /v1/conversation/retrieve`).
    pub fn retrieve_conversation(&self, id: &str) -> Result<Value> {
        let url = self.url("/v1/conversation/retrieve", &[("conversation_id", id)]);
        Ok(Self::data_under(
            self.call("GET", &url, None, false)?,
            "ConversationData",
        ))
    }

    /// One page of a bot's conversations (page_size at most 50).
    pub fn list_conversations(&self, bot_id: &str, page_num: u32, page_size: u32) -> Result<Page> {
        let (num, size) = (page_num.to_string(), page_size.to_string());
        let url = self.url(
            "/v1/conversations",
            &[("bot_id", bot_id), ("page_num", &num), ("page_size", &size)],
        );
        let data = Self::data(self.call("GET", &url, None, false)?);
        Ok(Page {
            items: data
                .get("conversations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            has_more: data
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ..Page::default()
        })
    }

    /// Deletes a conversation and its messages (`DELETE /v1/conversations/{id}`).
    pub fn delete_conversation(&self, id: &str) -> Result<Value> {
        let url = self.url(&format!("/v1/conversations/{}", segment(id)?), &[]);
        Ok(Self::data(self.call("DELETE", &url, None, false)?))
    }

    /// Starts a new section: the model forgets the history (the messages stay listed).
    pub fn clear_conversation(&self, id: &str) -> Result<Value> {
        let url = self.url(&format!("/v1/conversations/{}/clear", segment(id)?), &[]);
        Ok(Self::data(self.call("POST", &url, None, false)?))
    }

    // --- messages (the Coze API docs, `list_message`): the list response is flat,
    // `data` an array beside `first_id`, `last_id` and `has_more`

    /// One page of a conversation's messages (`POST /v1/conversation/message/list`):
    /// `order` is `asc` or `desc`, `limit` 1 to 50; `after_id` / `before_id` take a
    /// page's `last_id` / `first_id` to go on from it.
    pub fn list_messages(
        &self,
        conversation_id: &str,
        order: &str,
        after_id: Option<&str>,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<Page> {
        let url = self.url(
            "/v1/conversation/message/list",
            &[("conversation_id", conversation_id)],
        );
        let mut body = json!({"order": order, "limit": limit});
        if let Some(a) = after_id {
            body["after_id"] = a.into();
        }
        if let Some(b) = before_id {
            body["before_id"] = b.into();
        }
        let v = self.call("POST", &url, Some(&body), false)?;
        let id = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && *s != "0")
                .map(str::to_owned)
        };
        Ok(Page {
            items: v
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            has_more: v.get("has_more").and_then(Value::as_bool).unwrap_or(false),
            first_id: id("first_id"),
            last_id: id("last_id"),
        })
    }
}
