//! The three ways coze-chat prints a chat: `events` (every Coze event, lossless, one
//! JSON line each), `text` (the answer as it streams; reasoning and follow-ups on
//! stderr) and `answers` (one record per prompt). Every line is flushed the moment it
//! is complete; text is flushed per delta.
//!
//! A chatflow's answer record also carries its `workflow_id` and trace (`debug_url`),
//! and when the chatflow asked a question, the `question` and its `options`; in events
//! mode the question is also an `interrupt` record after its events.
//!
//! The bot's text is untrusted: on a terminal, text mode shows its control characters
//! (`^[` for ESC) instead of letting them retitle or clear the terminal; on a pipe or
//! in a file the bytes are written as sent.

use std::io::{self, IsTerminal, Write};

use serde_json::{Map, Value};

use coze_core::chat::{ChatState, ChatStatus, Sink, ToolCall};
use coze_core::cli;
use coze_core::protocol::{Interrupt, Record};
use coze_core::support::say;
use coze_core::wire::event_data::{Data, EventLine};
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::Error;

use crate::flags::Mode;

/// Writes one prompt's chat to stdout in the chosen mode.
pub struct Printer<W: Write> {
    mode: Mode,
    out: JsonlWriter<W>,
    /// The prompt's `id`, echoed on every line it causes.
    id: Option<Value>,
    /// Text mode: the answer so far ends without a newline.
    open_line: bool,
    /// Stderr is a terminal: the reasoning's control characters are shown, not obeyed.
    dim_reasoning: bool,
    reasoning_open: bool,
    /// Text mode on a terminal: control characters are shown, not obeyed.
    tty_out: bool,
    /// Events mode: the stream broke and the events now come from polling the chat.
    recovered: bool,
    /// Answers mode: the files and images sent with the prompt.
    attachments: Vec<Value>,
    /// The chatflow that answers (`--workflow`), when one does.
    workflow: Option<String>,
    /// The prompt's tool calls so far, as its answer record lists them (each with its
    /// output once it has one); text mode names them from here.
    tool_calls: Vec<Value>,
    /// Text mode: the follow-ups numbered (`  1. …`), for the terminal chat, where
    /// typing the number asks one; else each after a `›`.
    numbered: bool,
    /// Dim reasoning and tool lines (escape sequences) on stderr: a terminal, and not
    /// a dumb one in the terminal chat.
    styled: bool,
}

impl<W: Write> Printer<W> {
    /// A printer of `mode` to `out`, for a chatflow's answers when `workflow` names one.
    pub fn new(mode: Mode, workflow: Option<&str>, out: W) -> Self {
        Printer {
            mode,
            out: JsonlWriter::new(out),
            id: None,
            open_line: false,
            dim_reasoning: say::stderr_is_terminal(),
            reasoning_open: false,
            tty_out: mode == Mode::Text && io::stdout().is_terminal(),
            recovered: false,
            attachments: Vec::new(),
            workflow: workflow.map(str::to_owned),
            tool_calls: Vec::new(),
            numbered: false,
            styled: say::stderr_is_terminal(),
        }
    }

    /// For the terminal chat: the follow-ups numbered, and no escape sequences unless
    /// `styled` (its terminal takes them).
    pub fn at_terminal(&mut self, styled: bool) {
        self.numbered = true;
        self.styled &= styled;
    }

    /// Starts a new prompt.
    pub fn begin(&mut self, id: Option<Value>) {
        self.id = id;
        self.open_line = false;
        self.reasoning_open = false;
        self.recovered = false;
        self.attachments.clear();
        self.tool_calls.clear();
    }

    /// A tool call of the bot's, about to be answered (or left waiting): in events
    /// mode a `tool_call` record between the server's events; in answers mode an entry
    /// of the record's `tool_calls`.
    pub fn tool_call(&mut self, call: &ToolCall, arguments: Value) -> io::Result<()> {
        let mut r = Map::new();
        r.insert("tool_call_id".into(), call.id.as_str().into());
        r.insert("name".into(), call.name.as_str().into());
        r.insert("arguments".into(), arguments);
        if call.is_question() {
            r.insert("call_type".into(), "reply_message".into());
            r.insert("question".into(), call.question.as_str().into());
        }
        if self.mode == Mode::Events {
            let mut line = Map::new();
            line.insert("type".into(), "tool_call".into());
            if let Some(id) = &self.id {
                line.insert("id".into(), id.clone());
            }
            line.extend(r.clone());
            self.out.write(&Value::Object(line))?;
        }
        self.tool_calls.push(Value::Object(r));
        Ok(())
    }

    /// What answered tool call `call_id`: in events mode a `tool_output` record; in
    /// answers mode the call's entry gets it; in text mode one dim line on stderr.
    /// `exit_status`: the tool's exit code (None: killed, or no tool ran).
    pub fn tool_output(
        &mut self,
        call_id: &str,
        output: &str,
        exit_status: Option<i32>,
        ms: u64,
    ) -> io::Result<()> {
        let entry = self
            .tool_calls
            .iter_mut()
            .rev()
            .find(|c| c["tool_call_id"] == call_id && c.get("output").is_none());
        let name = entry
            .as_ref()
            .and_then(|c| c["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        if let Some(Value::Object(c)) = entry {
            c.insert("output".into(), output.into());
            c.insert("exit_status".into(), exit_status.into());
            c.insert("ms".into(), ms.into());
        }
        match self.mode {
            Mode::Events => {
                let mut line = Map::new();
                line.insert("type".into(), "tool_output".into());
                if let Some(id) = &self.id {
                    line.insert("id".into(), id.clone());
                }
                line.insert("tool_call_id".into(), call_id.into());
                line.insert("output".into(), output.into());
                line.insert("exit_status".into(), exit_status.into());
                line.insert("ms".into(), ms.into());
                self.out.write(&Value::Object(line))
            }
            Mode::Text => {
                self.close_reasoning();
                let what = match (name.as_str(), exit_status) {
                    ("", _) => "your answer sent".to_owned(),
                    (n, Some(code)) => format!("tool {n}: exit {code}, {ms} ms"),
                    (n, None) => format!("tool {n}: no exit status, {ms} ms"),
                };
                // On its own line: the answer so far may have left one open. The name
                // is the server's: its control characters are shown, not obeyed.
                let nl = if self.open_line && say::stderr_is_terminal() {
                    "\n"
                } else {
                    ""
                };
                let what = say::visible(&what);
                let line = if self.styled {
                    format!("{nl}\x1b[2m  ↳ {what}\x1b[0m\n")
                } else {
                    format!("{nl}  ↳ {what}\n")
                };
                // One write: the line stays whole beside other threads' lines (and
                // above a progress line).
                say::raw(&line);
                Ok(())
            }
            Mode::Answers => Ok(()),
        }
    }

    /// The files and images the prompt is sent with, listed in its answer record.
    pub fn attachments(&mut self, listed: Vec<Value>) {
        self.attachments = listed;
    }

    /// Ends a prompt: text mode closes its line and shows follow-ups; answers mode
    /// writes the record; events mode reports a failure as an `error` record (a `type`,
    /// not an `event`: only the server's events are events), and a chatflow's question
    /// as an `interrupt` record.
    pub fn end(
        &mut self,
        prompt: &str,
        state: &ChatState,
        error: Option<&Error>,
    ) -> io::Result<()> {
        self.out.flush()?;
        match self.mode {
            Mode::Text => {
                self.close_reasoning();
                if self.open_line {
                    let w = self.out.get_mut();
                    w.write_all(b"\n")?;
                    w.flush()?;
                    self.open_line = false;
                }
                for (i, f) in state.follow_ups.iter().enumerate() {
                    if self.numbered {
                        coze_core::say!("  {}. {f}", i + 1);
                    } else {
                        coze_core::say!("  › {f}");
                    }
                }
                Ok(())
            }
            Mode::Answers => {
                let mut r = Map::new();
                r.insert("type".into(), "answer".into());
                if let Some(id) = &self.id {
                    r.insert("id".into(), id.clone());
                }
                r.insert("prompt".into(), prompt.into());
                if !self.attachments.is_empty() {
                    r.insert("attachments".into(), self.attachments.clone().into());
                }
                if !self.tool_calls.is_empty() {
                    r.insert("tool_calls".into(), self.tool_calls.clone().into());
                }
                r.insert("content".into(), state.content.clone().into());
                r.insert("reasoning_content".into(), state.reasoning.clone().into());
                r.insert("follow_ups".into(), state.follow_ups.clone().into());
                r.insert(
                    "conversation_id".into(),
                    state.conversation_id.clone().into(),
                );
                r.insert("chat_id".into(), state.chat_id.clone().into());
                r.insert("bot_id".into(), state.bot_id.clone().into());
                r.insert("usage".into(), state.usage.clone().unwrap_or(Value::Null));
                if let Some(w) = &self.workflow {
                    r.insert("workflow_id".into(), w.as_str().into());
                    r.insert("debug_url".into(), state.debug_url.clone().into());
                    if let Some(q) = &state.question {
                        r.insert("question".into(), q.text.as_str().into());
                        r.insert("options".into(), q.options.clone().into());
                    }
                }
                let status = match error {
                    None if state.question.is_some() => "requires_action".to_owned(),
                    None => "completed".to_owned(),
                    Some(_)
                        if matches!(
                            state.status,
                            ChatStatus::Unreported | ChatStatus::InProgress | ChatStatus::Created
                        ) =>
                    {
                        "failed".to_owned()
                    }
                    Some(_) if state.status == ChatStatus::Completed => "failed".to_owned(),
                    Some(_) => state.status.to_string(),
                };
                r.insert("status".into(), status.into());
                r.insert(
                    "error".into(),
                    error.map(cli::error_json).unwrap_or(Value::Null),
                );
                self.out.write(&Value::Object(r))
            }
            Mode::Events => match error {
                None => match &state.question {
                    Some(q) => self.out.write(&Record::Interrupt(Interrupt {
                        workflow_id: self.workflow.clone().unwrap_or_default(),
                        event_id: String::new(),
                        interrupt_type: 0,
                        question: q.text.clone(),
                        options: q.options.clone(),
                        id: self.id.clone(),
                        conversation_id: state.conversation_id.clone(),
                        execute_id: None,
                        resumes: 0,
                        sync: false,
                        extra: Default::default(),
                    })),
                    None => Ok(()),
                },
                Some(e) => self.out.write(&cli::error_record(self.id.as_ref(), e)),
            },
        }
    }

    /// Answers mode: the record of a stdin line that could not be asked, with status
    /// `invalid` and the error naming the line, so the answers file lists it like any
    /// failed prompt. `line` is the line, when it could be read as text.
    pub fn invalid(&mut self, line: Option<&str>, error: &Error) -> io::Result<()> {
        if self.mode != Mode::Answers {
            return Ok(());
        }
        // Every answer record has an id: null for a line that could not be read.
        self.id.get_or_insert(Value::Null);
        let mut state = ChatState::default();
        state.status = ChatStatus::Other("invalid".into());
        self.end(line.unwrap_or_default(), &state, Some(error))
    }

    fn close_reasoning(&mut self) {
        if self.reasoning_open {
            // Through `say`, which keeps a progress line off the open line.
            say::raw(if self.styled { "\x1b[0m\n" } else { "\n" });
            self.reasoning_open = false;
        }
    }
}

impl<W: Write> Sink for Printer<W> {
    /// One `-o events` line: `{"event":…,"data":…,"id":…}`, the id only when the
    /// prompt has one, and `"recovered":true` on the events recovered by polling a
    /// chat whose stream broke. The data is copied as the server sent it, not
    /// serialised again (`event_data`).
    fn event(&mut self, name: &str, data: Data<'_>) -> io::Result<()> {
        if self.mode != Mode::Events {
            return Ok(());
        }
        let line = EventLine {
            event: name,
            data,
            id: self.id.as_ref(),
            seq: None,
            recovered: self.recovered,
        };
        self.out.write_line_with(|buf| line.write_to(buf))
    }

    fn recovering(&mut self) -> io::Result<()> {
        self.recovered = true;
        Ok(())
    }

    fn wants_events(&self) -> bool {
        self.mode == Mode::Events
    }

    /// Only the answer record needs the whole answer; text and events stream it.
    fn keeps_answer(&self) -> bool {
        self.mode == Mode::Answers
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn answer(&mut self, text: &str) -> io::Result<()> {
        if self.mode != Mode::Text || text.is_empty() {
            return Ok(());
        }
        self.close_reasoning();
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

    fn reasoning(&mut self, text: &str) -> io::Result<()> {
        if self.mode != Mode::Text {
            return Ok(());
        }
        let dim = if !self.reasoning_open && self.styled {
            "\x1b[2m"
        } else {
            ""
        };
        self.reasoning_open = true;
        if self.dim_reasoning {
            say::raw(&format!("{dim}{}", say::visible(text)));
        } else {
            say::raw(text);
        }
        Ok(())
    }
}
