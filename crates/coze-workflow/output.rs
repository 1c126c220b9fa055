//! The three ways coze-workflow prints a run: `events` (every workflow event,
//! lossless, one JSON line each), `text` (the Message contents as they stream) and
//! `results` (one `result` record a run, its output decoded); and the other records:
//! `run_started` (--async), `interrupt` (a question nobody here can answer; text mode
//! writes none, its text stays text, and the message names the command that answers),
//! `result` (status). Every line is flushed the moment it is complete; text is flushed
//! before each wait for the network.
//!
//! The workflow's text is untrusted: on a terminal, text mode shows its control
//! characters (`^[` for ESC) instead of letting them retitle or clear the terminal; on
//! a pipe or in a file the bytes are written as sent.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};

use coze_core::protocol::{Interrupt, Record};
use coze_core::support::say;
use coze_core::wire::event_data::{Data, EventLine};
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::workflow::{History, RunState, Sink, Started};
use coze_core::{cli, Error};

use crate::flags::Mode;

/// Writes one run to stdout in the chosen mode.
pub struct Printer<W: Write> {
    mode: Mode,
    out: JsonlWriter<W>,
    /// The run's id: its record's own, else derived (results, interrupts).
    id: Value,
    /// Its record's own id, echoed on every events line.
    own_id: Option<Value>,
    /// Text mode: the text so far ends without a newline.
    open_line: bool,
    /// Text mode on a terminal: control characters are shown, not obeyed.
    tty_out: bool,
    /// Set when the run is being stopped (the reader of stdout went away): the stream
    /// ends at its next event as if stdout were closed, though nothing was written.
    stop: Option<Arc<AtomicBool>>,
}

impl<W: Write> Printer<W> {
    pub fn new(mode: Mode, out: W, id: Value, own_id: Option<Value>) -> Self {
        Printer {
            mode,
            out: JsonlWriter::new(out),
            id,
            own_id,
            open_line: false,
            tty_out: mode == Mode::Text && io::stdout().is_terminal(),
            stop: None,
        }
    }

    /// A printer whose run ends when `stop` is set: a run writing nothing until its end
    /// (results mode, --ordered) would otherwise stream on to it after its reader left.
    pub fn stopped_by(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The run's id, as its records carry it.
    pub fn id(&self) -> &Value {
        &self.id
    }

    /// Text mode: ends the line the text left open (before a question is asked, and
    /// at the end of a run).
    pub fn close_line(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.open_line {
            let w = self.out.get_mut();
            w.write_all(b"\n")?;
            w.flush()?;
            self.open_line = false;
        }
        Ok(())
    }

    /// The `run_started` record of an --async run.
    pub fn started(&mut self, workflow_id: &str, s: &Started) -> io::Result<()> {
        let mut r = Map::new();
        r.insert("type".into(), "run_started".into());
        r.insert("id".into(), self.id.clone());
        r.insert("workflow_id".into(), workflow_id.into());
        r.insert("execute_id".into(), s.execute_id.clone().into());
        r.insert("debug_url".into(), s.debug_url.clone().into());
        self.out.write(&Value::Object(r))
    }

    /// The `interrupt` record of a run waiting for an answer nobody here can give
    /// (none in text mode); returns why the run waits, to report.
    pub fn interrupt(&mut self, record: &Interrupt) -> io::Result<Error> {
        self.close_line()?;
        if self.mode != Mode::Text {
            self.out.write(&Record::Interrupt(record.clone()))?;
        }
        Ok(waiting(record, self.mode != Mode::Text))
    }

    /// Ends a run: text mode closes its line; results mode writes its `result`; events
    /// mode reports a failure as an `error` record (a `type`, not an `event`: only the
    /// server's events are events), but for a run waiting for an answer, whose
    /// `interrupt` record says it.
    pub fn end(
        &mut self,
        workflow_id: &str,
        state: &RunState,
        status: &str,
        error: Option<&Error>,
    ) -> io::Result<()> {
        self.out.flush()?;
        match self.mode {
            Mode::Text => self.close_line(),
            Mode::Results => self.result(ResultFields {
                workflow_id,
                execute_id: state.execute_id.as_deref(),
                status,
                output: if status == "success" {
                    state.output()
                } else {
                    Value::Null
                },
                usage: state.usage.clone(),
                debug_url: state.debug_url.as_deref(),
                error,
            }),
            Mode::Events => match error {
                Some(e) if !matches!(e.root(), Error::Waiting(_)) => {
                    self.out.write(&cli::error_record(self.own_id.as_ref(), e))
                }
                _ => Ok(()),
            },
        }
    }

    /// Results mode: the record of a stdin line that could not be run, with status
    /// `invalid` and the error naming the line.
    pub fn invalid(&mut self, error: &Error) -> io::Result<()> {
        if self.mode != Mode::Results {
            return Ok(());
        }
        self.result(ResultFields {
            workflow_id: "",
            execute_id: None,
            status: "invalid",
            output: Value::Null,
            usage: None,
            debug_url: None,
            error: Some(error),
        })
    }

    /// `status`: the `result` record of a run's history.
    pub fn history(&mut self, workflow_id: &str, h: &History) -> io::Result<()> {
        let failure = h.failure();
        self.result(ResultFields {
            workflow_id,
            execute_id: h.execute_id.as_deref(),
            status: h.status.as_str(),
            output: h.output(),
            usage: h.usage.clone(),
            debug_url: h.debug_url.as_deref(),
            error: failure.as_ref(),
        })
    }

    fn result(&mut self, f: ResultFields<'_>) -> io::Result<()> {
        let mut r = Map::new();
        r.insert("type".into(), "result".into());
        r.insert("id".into(), self.id.clone());
        r.insert(
            "workflow_id".into(),
            if f.workflow_id.is_empty() {
                Value::Null
            } else {
                f.workflow_id.into()
            },
        );
        r.insert("execute_id".into(), f.execute_id.into());
        r.insert("status".into(), f.status.into());
        r.insert("output".into(), f.output);
        r.insert("usage".into(), f.usage.unwrap_or(Value::Null));
        r.insert("debug_url".into(), f.debug_url.into());
        r.insert(
            "error".into(),
            f.error.map(cli::error_json).unwrap_or(Value::Null),
        );
        self.out.write(&Value::Object(r))
    }
}

/// Why a run waits (exit 7): what it asks, and how to answer it: its interrupt record
/// (when one was written) through `resume`, or the `resume` command that answers it.
fn waiting(record: &Interrupt, written: bool) -> Error {
    let options = match record.options.as_slice() {
        [] => String::new(),
        o => format!(" ({})", o.join(" | ")),
    };
    let question = match record.question.trim() {
        "" => "a question".to_owned(),
        q => format!("{q:?}"),
    };
    let how = if written {
        "its interrupt record holds the question; coze-workflow resume --answer TEXT \
         answers it"
            .to_owned()
    } else {
        let mut command = format!(
            "coze-workflow resume --workflow {} --event-id {}",
            record.workflow_id, record.event_id
        );
        if record.interrupt_type != 2 {
            command.push_str(&format!(" --interrupt-type {}", record.interrupt_type));
        }
        if record.sync {
            command.push_str(" --no-stream");
        }
        format!("{command} --answer TEXT answers it")
    };
    Error::Waiting(format!(
        "the workflow waits for an answer to {question}{options}: {how}"
    ))
}

/// The fields of a `result` record.
struct ResultFields<'a> {
    workflow_id: &'a str,
    execute_id: Option<&'a str>,
    status: &'a str,
    output: Value,
    usage: Option<Value>,
    debug_url: Option<&'a str>,
    error: Option<&'a Error>,
}

impl<W: Write> Sink for Printer<W> {
    /// One `-o events` line: `{"event":…,"data":…,"id":…,"seq":…}`, the id only
    /// when the run's record has one, `seq` the event's own `id:` line when it had
    /// one. The data is copied as the server sent it, not serialised again
    /// (`event_data`).
    fn event(&mut self, name: &str, seq: Option<&str>, data: Data<'_>) -> io::Result<()> {
        if self.mode != Mode::Events {
            return Ok(());
        }
        let line = EventLine {
            event: name,
            data,
            id: self.own_id.as_ref(),
            seq,
            recovered: false,
        };
        self.out.write_line_with(|buf| line.write_to(buf))
    }

    fn message(&mut self, text: &str) -> io::Result<()> {
        if self.mode != Mode::Text || text.is_empty() {
            return Ok(());
        }
        // Flushed by `flush`, before the stream reader waits for more input.
        if self.tty_out {
            self.out
                .get_mut()
                .write_all(say::visible(text).as_bytes())?;
        } else {
            self.out.get_mut().write_all(text.as_bytes())?;
        }
        self.open_line = !text.ends_with('\n');
        Ok(())
    }

    fn wants_events(&self) -> bool {
        self.mode == Mode::Events
    }

    /// Only the result record needs the output; text and events stream it.
    fn keeps_output(&self) -> bool {
        self.mode == Mode::Results
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the reader of stdout went away",
            ));
        }
        self.out.flush()
    }
}
