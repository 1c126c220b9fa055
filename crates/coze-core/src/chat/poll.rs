//! A chat followed by polling: retrieve until its status is final, then its messages;
//! the whole of a `--no-stream` chat after its create, and the rest of a streamed one
//! whose stream broke. Fed through the same machine as a stream, so both give the same
//! answer.

use std::io;
use std::time::Duration;

use serde_json::Value;

use super::active::{unwanted, Active};
use super::spec::ChatSpec;
use super::state::{ChatState, Sink};
use super::status::ChatStatus;
use crate::api::Client;
use crate::error::{Error, Result};

/// Follows an existing chat to its end by polling: retrieve with backoff until its
/// status is final, then feed through `state` the chat's messages as
/// `conversation.message.completed` (but those `state` already had), its final chat
/// event and `done`. The rest of a `--no-stream` chat after its create, and of a
/// streamed one whose stream broke. `logid` gets the logid of each retrieve: the last
/// one reported how the chat ended.
pub(super) fn follow(
    client: &Client<'_>,
    conv: &str,
    chat_id: &str,
    state: &mut ChatState,
    sink: &mut dyn Sink,
    logid: &mut Option<String>,
) -> Result<()> {
    let sink_err = |e: io::Error| Error::io("stdout", e);
    let mut wait = Duration::from_millis(200);
    let last = loop {
        let (chat, id) = client.chat_retrieve(conv, chat_id)?;
        *logid = id;
        let status = ChatStatus::parse(
            chat.get("status")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        if status.is_final() {
            break chat;
        }
        if status == ChatStatus::InProgress && state.status != ChatStatus::InProgress {
            state
                .feed("conversation.chat.in_progress", &chat, sink)
                .map_err(sink_err)?;
        }
        // Nothing may wait in the sink's buffer while we wait for the server.
        sink.flush().map_err(sink_err)?;
        std::thread::sleep(wait);
        wait = (wait * 3 / 2).min(Duration::from_secs(2));
    };
    let status = ChatStatus::parse(
        last.get("status")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    // A chat waiting on its tool calls has messages too: a `reply_message` call's
    // question is the answer message before it, which a stream would have shown.
    if matches!(status, ChatStatus::Completed | ChatStatus::RequiresAction) {
        for message in client.chat_messages(conv, chat_id)? {
            if state.fed_completed(&message) {
                continue;
            }
            state
                .feed("conversation.message.completed", &message, sink)
                .map_err(sink_err)?;
        }
    }
    let name = match status {
        ChatStatus::Completed => "conversation.chat.completed",
        ChatStatus::Failed => "conversation.chat.failed",
        ChatStatus::RequiresAction => "conversation.chat.requires_action",
        _ => "conversation.chat.canceled",
    };
    state.feed(name, &last, sink).map_err(sink_err)?;
    state
        .feed("done", &Value::String("[DONE]".into()), sink)
        .map_err(sink_err)?;
    Ok(())
}

/// Runs a chat without streaming: create, then `follow` it to its end; fed through
/// the same machine as a stream. A bot's only: a chatflow streams (a usage error).
pub fn poll(
    client: &Client<'_>,
    spec: &ChatSpec,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let mut state = ChatState::default();
    // The logid of the last retrieve: the one that reported how the chat ended.
    let mut logid = None;
    if spec.is_chatflow() {
        // /v1/workflows/chat has no mode but streaming (the Coze API docs,
        // `workflow_chat`); the tools refuse --no-stream with a chatflow first.
        return (
            state,
            Err(Error::usage("a chatflow's chat can only be streamed")),
        );
    }
    let result = (|| -> Result<()> {
        let chat = client
            .chat_create(spec.conversation_id.as_deref(), &spec.body(false))
            .map_err(|e| e.context("starting the chat"))?;
        state
            .feed("conversation.chat.created", &chat, sink)
            .map_err(|e| Error::io("stdout", e))?;
        if !active.set(&state) {
            return Err(unwanted());
        }
        let (conv, chat_id) = match (&state.conversation_id, &state.chat_id) {
            (Some(c), Some(i)) => (c.clone(), i.clone()),
            _ => {
                return Err(Error::Protocol(
                    "the chat was created without an id or conversation_id".into(),
                ))
            }
        };
        follow(client, &conv, &chat_id, &mut state, sink, &mut logid)
    })();
    active.finish(client, state, result, logid.as_deref(), true)
}
