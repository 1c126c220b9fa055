//! A bot's chat that stopped at its tool calls (`requires_action`) goes on once their
//! outputs are submitted (`POST /v3/chat/submit_tool_outputs`, the Coze API docs,
//! `chat_submit_tool_outputs`): streamed, the continuation's events come on the
//! answer's stream; not streamed, the chat is followed by polling, as a `--no-stream`
//! chat is. Either way they are fed to the same `ChatState` and sink as the chat's
//! first part, so the answer is one. What runs the tools is the caller's business.

use serde_json::{json, Value};

use super::active::Active;
use super::poll::follow;
use super::state::{ChatState, Sink};
use super::stream::read;
use crate::api::Client;
use crate::error::{ApiCode, Error, Result};

/// One output for a call: its `tool_call_id` as the server gave it, and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The call's id (`ToolCall::id`), as given (a `reply_message`'s may be empty).
    pub tool_call_id: String,
    /// What the call answers, as text.
    pub output: String,
}

/// Submits `outputs` for the calls `state`'s chat waits on, and runs the chat on to
/// its end (or to its next tool calls), streamed when `stream`. A submit that fails
/// before the server took it leaves the chat waiting; one the server may have taken is
/// never sent again (it would be refused: the chat waits no more). Not streamed, a
/// submit whose answer broke after the server took it is followed by polling all the
/// same, `state.recovered` saying how it broke.
pub fn submit(
    client: &Client<'_>,
    mut state: ChatState,
    outputs: &[ToolOutput],
    stream: bool,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let (Some(conv), Some(chat)) = (state.conversation_id.clone(), state.chat_id.clone()) else {
        return (
            state,
            Err(Error::Protocol(
                "the chat asked for tool outputs without its id or conversation_id".into(),
            )),
        );
    };
    let outs: Vec<Value> = outputs
        .iter()
        .map(|o| json!({"tool_call_id": o.tool_call_id, "output": o.output}))
        .collect();
    let body = json!({"tool_outputs": outs, "stream": stream});
    let context = |e: Error| e.context("submitting the tool outputs");
    if stream {
        return match client.chat_submit_stream(&conv, &chat, &body) {
            Ok(s) => {
                state.resume();
                read(client, true, state, s, sink, active)
            }
            Err(e) => active.finish(client, state, Err(context(e)), None, true),
        };
    }
    let mut logid = None;
    let result = (|| -> Result<()> {
        match client.chat_submit(&conv, &chat, &body) {
            Ok(chat_obj) => {
                state.resume();
                state
                    .feed("conversation.chat.in_progress", &chat_obj, sink)
                    .map_err(|e| Error::io("stdout", e))?;
            }
            // The server took the outputs and its chat goes on without us, though its
            // answer to the submit was lost: sending them again would be refused (the
            // chat waits no more), and failing would lose the bot's answer. The chat is
            // followed by polling as after a cut stream (chat/stream.rs), with the one
            // warning that says so (`ChatState::recovered`).
            Err(e) if taken(&e) => {
                state.resume();
                state.recovered = Some(context(e).to_string());
            }
            Err(e) => return Err(context(e)),
        }
        follow(client, &conv, &chat, &mut state, sink, &mut logid)
    })();
    active.finish(client, state, result, logid.as_deref(), true)
}

/// Whether a failed non-streamed submit is known to have been taken by the server: its
/// answer began (a response head came, so the request was read whole and acted on)
/// and then broke. Either the body broke off after the head (`Error::Cut` with the
/// answer's logid: the client never sends such a request again, see
/// `http::Request::acts_once`), or a success status came with a body that is not the
/// JSON it should be (cut short or garbled). A silence past the idle timeout is not
/// enough: the server may not have acted on it, and following a chat that still waits
/// would answer its calls twice; nor is an error status, which took nothing.
fn taken(e: &Error) -> bool {
    match e.root() {
        Error::Cut {
            logid: Some(_),
            recovery: None,
            ..
        } => true,
        Error::Api(a) => (200..300).contains(&a.status) && a.code == ApiCode::Http,
        _ => false,
    }
}
