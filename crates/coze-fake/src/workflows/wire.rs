//! The writer of workflow streams (`stream_run`, `stream_resume`) and chatflow streams
//! (`/v1/workflows/chat`): `id:`, `event:` and `data:` lines with a space after each
//! colon, as the `workflow_stream_run` docs page, coze-py's
//! `tests/testdata/workflow_run_stream_resp.txt` and Studio's Hertz SSE writer write
//! them, and the queued stream faults applied between events. Like the chat stream it
//! flushes only before a pause or every ~16 KiB, so a 100,000-message run is written at
//! socket speed.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

use crate::http::{ChunkedOut, StreamEnd};
use crate::App;

/// Why a stream stopped before its plan's end.
#[derive(Debug)]
pub enum Stop {
    /// End the body cleanly with no final event (the `cut` fault).
    Clean,
    /// An injected `error_event` was the last event; end the body.
    Ended,
    /// Reset the connection (`reset_mid_body`).
    Abort,
    /// The client went away.
    Gone,
}

/// The stream faults this writer applies; the others are the router's
/// (`faults::pre_handler`, `faults::post_handler`).
pub const STREAM_FAULTS: &[&str] = &["stall", "cut", "error_event", "malformed", "reset_mid_body"];

/// Which kind of stream, which decides how an injected error or malformed event looks.
#[derive(Clone, Debug)]
pub enum Flavor {
    /// A workflow stream: `Error` `{"error_code","error_message"}` (Studio adds
    /// `debug_url`, first, as `streamRunData` orders it).
    Workflow {
        studio: bool,
        lower: bool,
        debug_url: String,
    },
    /// A chatflow: a chat `error` event, `{"code":C,"msg"}` on coze (as the chat stream
    /// sends one), `{"code":"C","msg","debug_url"}` on Studio (`vo.ErrorDetail`).
    Chatflow { studio: bool, debug_url: String },
}

/// errno `ErrWorkflowExecuteFail` (`backend/types/errno/workflow.go` in coze-studio):
/// Studio's code for a run that failed, the default of an injected error there.
pub const STUDIO_EXECUTE_FAIL: i64 = 720_701_013;

impl Flavor {
    fn default_code(&self) -> i64 {
        match self {
            Flavor::Workflow { studio: true, .. } | Flavor::Chatflow { studio: true, .. } => {
                STUDIO_EXECUTE_FAIL
            }
            _ => 5000,
        }
    }

    /// The event an `error_event` fault writes.
    fn error_event(&self, code: i64, msg: &str) -> (&'static str, String) {
        match self {
            Flavor::Workflow {
                studio,
                lower,
                debug_url,
            } => {
                let data = if *studio {
                    json!({"debug_url": debug_url, "error_code": code, "error_message": msg})
                } else {
                    json!({"error_code": code, "error_message": msg})
                };
                (event_name(EventKind::Error, *lower), data.to_string())
            }
            Flavor::Chatflow {
                studio: true,
                debug_url,
            } => (
                "error",
                json!({"code": code.to_string(), "msg": msg, "debug_url": debug_url}).to_string(),
            ),
            Flavor::Chatflow { studio: false, .. } => {
                ("error", json!({"code": code, "msg": msg}).to_string())
            }
        }
    }

    /// The event a `malformed` fault writes: a data line that is not JSON.
    fn malformed(&self) -> (&'static str, &'static [u8]) {
        match self {
            Flavor::Workflow { lower, .. } => {
                (event_name(EventKind::Message, *lower), b"{\"content\":")
            }
            Flavor::Chatflow { .. } => ("conversation.message.delta", b"{\"id\":"),
        }
    }
}

/// The workflow events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Message,
    Error,
    Interrupt,
    Done,
    Ping,
}

/// An event's name: capitalized since coze-studio v0.3.0 (PR #2030) and on coze.cn;
/// `lower` gives the names older Studios sent. PING has no lower-case form (Studio never
/// sends one).
pub fn event_name(kind: EventKind, lower: bool) -> &'static str {
    match (kind, lower) {
        (EventKind::Message, false) => "Message",
        (EventKind::Message, true) => "message",
        (EventKind::Error, false) => "Error",
        (EventKind::Error, true) => "error",
        (EventKind::Interrupt, false) => "Interrupt",
        (EventKind::Interrupt, true) => "interrupt",
        (EventKind::Done, false) => "Done",
        (EventKind::Done, true) => "done",
        (EventKind::Ping, _) => "PING",
    }
}

/// Writes one stream's events into the chunked body.
pub struct Wire<'a, 'b> {
    out: &'a mut ChunkedOut<'b>,
    app: Arc<App>,
    /// The next `id:` value; None: the events carry no `id:` line (a coze chatflow).
    next_id: Option<u64>,
    /// Events written so far (a fault's `after_events` counts these).
    events: usize,
    fault: Option<Value>,
    after: usize,
    flavor: Flavor,
    /// Set when an injected error event ended the stream: the run then failed so.
    pub failed: Option<(i64, String)>,
}

impl<'a, 'b> Wire<'a, 'b> {
    /// A writer whose first event has id `first_id` (None: no `id:` lines), applying
    /// `fault` (a stream fault the request took) when its `after_events` count is reached.
    pub fn new(
        out: &'a mut ChunkedOut<'b>,
        app: Arc<App>,
        first_id: Option<u64>,
        fault: Option<Value>,
        flavor: Flavor,
    ) -> Wire<'a, 'b> {
        let after = fault
            .as_ref()
            .and_then(|f| f.get("after_events"))
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |n| n as usize);
        Wire {
            out,
            app,
            next_id: first_id,
            events: 0,
            fault,
            after,
            flavor,
            failed: None,
        }
    }

    /// Send what is buffered now.
    pub fn flush(&mut self) -> Result<(), Stop> {
        self.out.flush().map_err(|_| Stop::Gone)
    }

    /// Flush, then wait `ms` (nothing when 0: a fast stream never sleeps).
    pub fn pause(&mut self, ms: u64) -> Result<(), Stop> {
        if ms > 0 {
            self.flush()?;
            self.app.sleep_ms(ms);
        }
        Ok(())
    }

    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        let b = &mut self.out.buf;
        if let Some(id) = self.next_id {
            // Writing into a Vec cannot fail.
            let _ = writeln!(b, "id: {id}");
            self.next_id = Some(id + 1);
        }
        b.extend_from_slice(b"event: ");
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(b"\ndata: ");
        b.extend_from_slice(data);
        b.extend_from_slice(b"\n\n");
        if b.len() >= 16 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    /// Write one event, firing a pending `after_events` fault before it.
    pub fn event(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        if self.fault.is_some() && self.events == self.after {
            let f = self.fault.take().unwrap_or_default();
            match f.get("type").and_then(Value::as_str).unwrap_or("") {
                "stall" => self.pause(f.get("ms").and_then(Value::as_u64).unwrap_or(1000))?,
                "cut" => return Err(Stop::Clean),
                "reset_mid_body" => {
                    self.flush()?;
                    return Err(Stop::Abort);
                }
                "error_event" => {
                    let code = f
                        .get("code")
                        .and_then(Value::as_i64)
                        .unwrap_or(self.flavor.default_code());
                    let msg = f
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("internal error")
                        .to_string();
                    let (name, data) = self.flavor.error_event(code, &msg);
                    self.write(name, data.as_bytes())?;
                    self.failed = Some((code, msg));
                    return Err(Stop::Ended);
                }
                "malformed" => {
                    let (name, data) = self.flavor.malformed();
                    self.write(name, data)?;
                }
                _ => {}
            }
        }
        self.write(name, data)?;
        self.events += 1;
        Ok(())
    }

    /// End the body: the terminating chunk after a clean end, an abortive close after
    /// a reset or a client gone.
    pub fn end(self, result: Result<(), Stop>) -> StreamEnd {
        match result {
            Ok(()) | Err(Stop::Clean) | Err(Stop::Ended) => match self.out.finish() {
                Ok(()) => StreamEnd::Finished,
                Err(_) => StreamEnd::Abort,
            },
            Err(Stop::Abort) | Err(Stop::Gone) => StreamEnd::Abort,
        }
    }
}
