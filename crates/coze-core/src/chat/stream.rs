//! A streamed chat: the SSE events fed to the machine as they arrive. A stream that
//! breaks once the chat exists is finished by polling (`poll::follow`): the chat goes
//! on on the server. A chatflow's stream is read the same way, but not followed when
//! it breaks: nothing documents a way to retrieve a chatflow's chat, so the answer so
//! far is kept and the prompt fails (exit 5) rather than pretend.

use serde_json::Value;

use super::active::{unwanted, Active};
use super::poll::follow;
use super::spec::{ChatSpec, Target};
use super::state::{ChatState, Sink};
use crate::api::Client;
use crate::error::{Error, Result};
use crate::http::{describe_io, is_timeout, Stream};
use crate::wire::sse::{SseError, SseReader};

/// How a stream stopped before the chat was over.
enum Broke {
    /// It ended early, was reset, cut mid-line or unreadable: the chat goes on on the
    /// server, so it is followed by polling when its ids are known.
    Cut(String),
    /// It went silent past the idle timeout: the user's bound on waiting, so the chat
    /// is not followed (polling a chat that stopped answering could wait for ever).
    Silent(String),
    /// Anything else: stdout failed or closed.
    Fail(Error),
}

/// Whether an event whose last line lacks its terminator at the end of the stream is
/// whole anyway, as the official SDKs take such a line (coze-py's recorded test
/// streams end so): its data is JSON whose end is its own (an object, an array, a
/// string), which does not parse when cut short; or it is a self-hosted Coze Studio's
/// end mark, whose data is always empty.
fn whole_last_event(name: Option<&str>, data: &str) -> bool {
    (name == Some("conversation.stream.done") && data.is_empty())
        || matches!(
            serde_json::from_str::<Value>(data),
            Ok(Value::Object(_) | Value::Array(_) | Value::String(_))
        )
}

/// Runs a streamed chat to its end. A stream that breaks once the chat exists (its ids
/// arrived) is not an answer lost: the chat goes on on the server, so it is followed
/// to its end by polling (`poll::follow`) and the sink gets the rest (after
/// [`Sink::recovering`]). The state is returned even on failure: what was received is
/// the caller's to report. A chatflow's chat (`Target::Workflow`) is neither followed
/// nor cancelled: neither is documented for it.
pub fn stream(
    client: &Client<'_>,
    spec: &ChatSpec,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let state = ChatState::new(spec.is_chatflow());
    let opened = match &spec.target {
        Target::Bot { .. } => client.chat_stream(spec.conversation_id.as_deref(), &spec.body(true)),
        Target::Workflow { .. } => client.chatflow_stream(&spec.body(true)).map_err(name_hint),
    }
    .map_err(|e| e.context("starting the chat"));
    match opened {
        Ok(s) => read(client, spec.auto_save, state, s, sink, active),
        Err(e) => (state, Err(e)),
    }
}

/// Reads an opened chat stream into `state` to the chat's end, following the chat by
/// polling when the stream breaks (see [`stream`]); `auto_save`: the chat's history
/// is saved, so it can be polled. Also reads the continuation of a chat whose tool
/// calls were answered (`submit`).
pub(super) fn read(
    client: &Client<'_>,
    auto_save: bool,
    mut state: ChatState,
    stream: Stream,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let chatflow = state.chatflow;
    let mut logid = stream.logid.clone();
    let mut reader = SseReader::new(stream.reader);
    let mut registered = false;
    let ended = loop {
        // The output is flushed right before a read that may block, so no answer text
        // waits in a buffer while we wait for the network.
        let (fed, last) = match reader.next_ref_with(&mut || sink.flush()) {
            Ok(Some(ev)) => (state.feed_text(ev.event, ev.data, sink), false),
            Err(SseError::Truncated {
                partial_event,
                data,
            }) if whole_last_event(partial_event.as_deref(), &data) => {
                let name = partial_event.as_deref().unwrap_or("message");
                (state.feed_text(name, &data, sink), true)
            }
            // The chat's final status arrived: what ends the stream now ends nothing.
            Ok(None)
            | Err(SseError::Truncated { .. } | SseError::Io(_) | SseError::InvalidUtf8 { .. })
                if state.finished() =>
            {
                break Ok(())
            }
            Ok(None) => break Err(Broke::Cut("the server ended the stream".into())),
            Err(SseError::Truncated { .. }) => {
                break Err(Broke::Cut(
                    "the stream ended in the middle of an event".into(),
                ))
            }
            Err(SseError::Io(e)) if is_timeout(&e) => break Err(Broke::Silent(describe_io(&e))),
            Err(SseError::Io(e)) => break Err(Broke::Cut(describe_io(&e))),
            Err(SseError::Hook(e)) => break Err(Broke::Fail(Error::io("stdout", e))),
            Err(e @ SseError::InvalidUtf8 { .. }) => break Err(Broke::Cut(e.to_string())),
        };
        let fed = fed.and_then(|end| {
            if end || last {
                sink.flush()?;
            }
            Ok(end)
        });
        match fed {
            Ok(true) => {
                if state.done {
                    // The body ends right after `done`: read its end so the
                    // connection goes back to the pool (keep-alive).
                    let _ = reader.drain(64 << 10);
                }
                break Ok(());
            }
            Ok(false) if last && state.finished() => break Ok(()),
            Ok(false) if last => break Err(Broke::Cut("the server ended the stream".into())),
            Ok(false)
                if !registered && state.chat_id.is_some() && state.conversation_id.is_some() =>
            {
                registered = true;
                // The run was stopped (stdout closed) before this chat registered. A
                // chatflow's is not registered for the cancel: /v3/chat/cancel is
                // documented for bots' chats only.
                let wanted = if chatflow {
                    !active.stopped()
                } else {
                    active.set(&state)
                };
                if !wanted {
                    break Err(Broke::Fail(unwanted()));
                }
            }
            Ok(false) => {}
            Err(e) => break Err(Broke::Fail(Error::io("stdout", e))),
        }
    };
    // The server answered the recovery itself (the chat is gone, or we may not see
    // it): a cancel would meet the same answer.
    let mut answered = false;
    let outcome = match ended {
        Ok(()) => Ok(()),
        Err(Broke::Fail(e)) => Err(e),
        Err(Broke::Silent(why)) => Err(Error::Cut {
            msg: cut_message(&state, &why),
            logid: logid.clone(),
            recovery: None,
        }),
        // The run is being stopped (stdout closed): the stream ended because its chat
        // was cancelled; there is nothing to recover and nobody to tell.
        Err(Broke::Cut(_)) if active.stopped() => Err(unwanted()),
        Err(Broke::Cut(why)) if chatflow => Err(Error::Cut {
            msg: format!(
                "{} (a chatflow's chat cannot be followed by polling; the answer so far is kept)",
                cut_message(&state, &why)
            ),
            logid: logid.clone(),
            recovery: None,
        }),
        Err(Broke::Cut(why)) => {
            let msg = cut_message(&state, &why);
            match (state.conversation_id.clone(), state.chat_id.clone()) {
                // Without auto_save_history (--no-save) the server keeps none of the
                // chat's messages: polling would find it completed with no answer.
                (Some(_), Some(_)) if !auto_save => Err(Error::Cut {
                    msg: format!("{msg} (a chat that is not saved cannot be polled)"),
                    logid: logid.clone(),
                    recovery: None,
                }),
                (Some(conv), Some(chat)) => {
                    // Registered for Ctrl-C while it is followed, if the stream had not
                    // (a run stopped since is caught when the poll writes to stdout).
                    let _ = active.set(&state);
                    state.recovering = true;
                    let mut polled = None;
                    let followed = sink
                        .recovering()
                        .map_err(|e| Error::io("stdout", e))
                        .and_then(|()| follow(client, &conv, &chat, &mut state, sink, &mut polled));
                    match followed {
                        Ok(()) => {
                            state.recovered = Some(match &logid {
                                Some(l) => format!("{msg} (logid {l})"),
                                None => msg,
                            });
                            // A failure is the one the last retrieve reported.
                            logid = polled.or(logid);
                            Ok(())
                        }
                        Err(e) if matches!(e.root(), Error::Io { .. }) => Err(e),
                        Err(e) => {
                            answered = e.server_answer().is_some();
                            Err(Error::Cut {
                                msg,
                                logid: logid.clone(),
                                recovery: Some(Box::new(e)),
                            })
                        }
                    }
                }
                // The chat's ids never came: there is no chat to follow.
                _ => Err(Error::Cut {
                    msg,
                    logid: logid.clone(),
                    recovery: None,
                }),
            }
        }
    };
    active.finish(
        client,
        state,
        outcome,
        logid.as_deref(),
        !answered && !chatflow,
    )
}

/// A self-hosted Coze Studio runs a chatflow without a conversation_id only in a
/// named conversation, and says so in words ("conversation name is requried", sic:
/// coze-dev/coze-studio `backend/application/workflow/chatflow.go`,
/// `OpenAPIChatFlowRun`); the advice names the ways to give it one.
fn name_hint(e: Error) -> Error {
    if e.api()
        .is_some_and(|a| a.msg.contains("conversation name is requ"))
    {
        return e.with_hint(
            "this server runs a chatflow in a named conversation: pass --param \
             CONVERSATION_NAME=Default, or --conversation ID",
        );
    }
    e
}

/// How a stream that stopped before the chat was over is reported.
fn cut_message(state: &ChatState, why: &str) -> String {
    format!(
        "the answer stream was cut after {} events, before the chat completed: {why}",
        state.events
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_event_without_its_line_end_is_whole_when_its_data_is() {
        assert!(whole_last_event(Some("done"), "\"[DONE]\""));
        assert!(whole_last_event(
            Some("conversation.chat.failed"),
            r#"{"status":"failed"}"#
        ));
        assert!(whole_last_event(Some("conversation.stream.done"), ""));
        assert!(!whole_last_event(
            Some("conversation.chat.failed"),
            r#"{"status":"fai"#
        ));
        assert!(!whole_last_event(Some("done"), "\"[DO"));
        assert!(
            !whole_last_event(Some("done"), "[DONE]"),
            "bare: could be cut"
        );
        assert!(!whole_last_event(None, "12"), "a number could be cut");
        assert!(!whole_last_event(Some("conversation.message.delta"), ""));
    }
}
