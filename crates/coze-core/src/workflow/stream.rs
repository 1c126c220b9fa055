//! A streamed run, or the streamed answer to its interrupt: the SSE events fed to the
//! machine as they arrive. Nothing is followed after a cut: a workflow run has no
//! endpoint that replays its events, and its history holds only the end node's
//! output, so a stream that breaks before `Done`, `Error` or `Interrupt` is a network
//! failure (exit 5) whose printed part stays printed.

use serde_json::Value;

use super::spec::{Answer, RunSpec};
use super::state::{RunState, Sink};
use crate::api::Client;
use crate::error::{Error, Result};
use crate::http::describe_io;
use crate::wire::sse::{SseError, SseReader};

/// Which stream to open.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// A new run (`stream_run`; `run` without streaming).
    Run(&'a RunSpec),
    /// The answer to an interrupt (`stream_resume`; `/v1/workflows/resume`).
    Resume(&'a Answer),
}

/// Whether an event whose last line lacks its terminator at the end of the stream is
/// whole anyway (as the official SDKs take such a line): its data is JSON whose end is
/// its own (an object, an array, a string), which does not parse when cut short.
fn whole_last_event(data: &str) -> bool {
    matches!(
        serde_json::from_str::<Value>(data),
        Ok(Value::Object(_) | Value::Array(_) | Value::String(_))
    )
}

/// Runs one stream of a run to its end, feeding `state` and `sink`. `Ok` once the
/// stream ended with `Done`, `Error` or `Interrupt` (`state.end` says which; an `Error`
/// is `state.error()`); `Err` when it could not start (the server's refusal, before
/// any event), broke before its end (`Error::Cut`, exit 5), or the sink failed (a
/// closed stdout).
pub fn stream(
    client: &Client<'_>,
    call: Call<'_>,
    state: &mut RunState,
    sink: &mut dyn Sink,
) -> Result<()> {
    let opened = match call {
        Call::Run(spec) => client
            .workflow_stream(&spec.body(false))
            .map_err(|e| e.context("starting the run")),
        Call::Resume(answer) => client
            .workflow_stream_resume(&answer.body())
            .map_err(|e| e.context("answering the run's question")),
    };
    let stream = opened?;
    state.logid = stream.logid.clone();
    let mut reader = SseReader::new(stream.reader);
    let cut = |state: &RunState, why: &str| Error::Cut {
        msg: format!(
            "the workflow's stream was cut after {} events, before the run ended: {why}",
            state.events
        ),
        logid: state.logid.clone(),
        recovery: None,
    };
    loop {
        // The output is flushed right before a read that may block, so no text waits
        // in a buffer while we wait for the network.
        let fed = match reader.next_ref_with(&mut || sink.flush()) {
            Ok(Some(ev)) => state.feed_text(ev.event, ev.id, ev.data, sink),
            Err(SseError::Truncated {
                partial_event,
                data,
            }) if whole_last_event(&data) => {
                let name = partial_event.as_deref().unwrap_or("message");
                match state.feed_text(name, None, &data, sink) {
                    Ok(true) => Ok(true),
                    Ok(false) => {
                        sink.flush().map_err(|e| Error::io("stdout", e))?;
                        return Err(cut(state, "the server ended the stream"));
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(None) => return Err(cut(state, "the server ended the stream")),
            Err(SseError::Truncated { .. }) => {
                return Err(cut(state, "the stream ended in the middle of an event"))
            }
            // Silent past --idle-timeout, reset, refused mid-body: the same cut.
            Err(SseError::Io(e)) => return Err(cut(state, &describe_io(&e))),
            Err(SseError::Hook(e)) => return Err(Error::io("stdout", e)),
            Err(e @ SseError::InvalidUtf8 { .. }) => return Err(cut(state, &e.to_string())),
        };
        match fed {
            Ok(true) => {
                sink.flush().map_err(|e| Error::io("stdout", e))?;
                // The body ends right after the last event: reading its end gives the
                // connection back to the pool (keep-alive).
                let _ = reader.drain(64 << 10);
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => return Err(Error::io("stdout", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_event_without_its_line_end_is_whole_when_its_data_is() {
        assert!(whole_last_event("{}"));
        assert!(whole_last_event(r#"{"debug_url":"x"}"#));
        assert!(!whole_last_event(r#"{"debug_url":"x"#));
        assert!(!whole_last_event("12"), "a number could be cut");
        assert!(!whole_last_event(""));
    }
}
