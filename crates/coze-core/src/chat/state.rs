//! The event machine of one chat: `ChatState` takes `(event name, data)` pairs in the
//! order Coze sends them and keeps what a caller needs (ids, the answer, reasoning,
//! follow-ups, usage, the failure), while a `Sink` sees every event as it arrives. A
//! streamed chat (`stream`) and a polled one (`poll`) feed the same machine. After a
//! broken stream the machine gives the sink only what the stream had not.
//!
//! A chatflow's chat is the same machine with three differences (the Coze API docs,
//! `workflow_chat`): its `done` carries `{"debug_url":…}` (kept), its failure may carry
//! the code as a string (read as the code), and `requires_action` is a question the
//! chatflow waits on (kept as a [`Question`], not a failure): it is answered by asking
//! the chatflow again in the same conversation.

use std::io;

use serde_json::Value;

use super::question;
use super::status::ChatStatus;
use crate::error::{ApiCode, ApiError, Error};
use crate::protocol::Question;
use crate::support::say::tool;
use crate::wire::event_data::{self, fits_one_line, Data};
use crate::wire::json_pick;

/// Receives a chat as it happens. An error (a closed stdout) stops the chat.
pub trait Sink {
    /// Every event, lossless: its name and its data (the server's JSON text as it
    /// came when it can pass so, else a value; data that is not JSON, as a string).
    fn event(&mut self, name: &str, data: Data<'_>) -> io::Result<()>;
    /// A piece of the answer.
    fn answer(&mut self, _text: &str) -> io::Result<()> {
        Ok(())
    }
    /// A piece of the model's reasoning.
    fn reasoning(&mut self, _text: &str) -> io::Result<()> {
        Ok(())
    }
    /// A suggested follow-up question.
    fn follow_up(&mut self, _text: &str) -> io::Result<()> {
        Ok(())
    }
    /// Whether the state should keep the whole answer and reasoning (`ChatState::content`
    /// and `reasoning`), for a record written at the end. A printer that streams them
    /// says no, so its memory does not grow with the answer.
    fn keeps_answer(&self) -> bool {
        true
    }
    /// Whether `event` wants every event. When it does not, answer deltas skip the
    /// generic JSON tree (`Value`) and are decoded straight into the few fields used.
    fn wants_events(&self) -> bool {
        true
    }
    /// The stream broke before the chat was over and the chat is followed to its end by
    /// polling: the events from here on are recovered from the server's record of the
    /// chat (the `--no-stream` events: no deltas), not streamed.
    fn recovering(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called before the stream reader may block for more input: whatever the sink
    /// has buffered must go out now.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the chat produced, complete or not.
#[derive(Debug, Clone, Default)]
pub struct ChatState {
    /// The chat's id, once an event carried it (what cancel, retrieve and the message
    /// list need).
    pub chat_id: Option<String>,
    /// The conversation the chat runs in (a new one when none was asked for).
    pub conversation_id: Option<String>,
    /// The bot that answers, as the server reports it.
    pub bot_id: Option<String>,
    /// The whole answer and reasoning, when the sink `keeps_answer`; else empty.
    pub content: String,
    /// The model's reasoning (`reasoning_content`), when the sink `keeps_answer`.
    pub reasoning: String,
    /// The suggested follow-up questions, in order.
    pub follow_ups: Vec<String>,
    /// The chat object's `usage` (`token_count`, `input_count`, `output_count`) as last
    /// reported.
    pub usage: Option<Value>,
    /// The chat's status as last reported.
    pub status: ChatStatus,
    /// Events fed so far, streamed or recovered (cut-stream messages count them).
    pub events: u64,
    /// Event data that was not JSON although the event type promises JSON.
    pub malformed: u64,
    /// `done` arrived (the stream's own end mark).
    pub done: bool,
    /// How the chat failed, when it did.
    pub failure: Option<Failure>,
    /// How the stream broke before the chat was over, when the chat was then followed
    /// to its end by polling: the events after the break were recovered, not streamed.
    /// Also how a non-streamed submit of tool outputs broke after the server took
    /// them (chat/submit.rs), the chat then followed all the same.
    pub recovered: Option<String>,
    /// A chatflow's trace (`done`'s `debug_url`, or a self-hosted Coze Studio's `error`
    /// event's): the page that shows each node's inputs and outputs.
    pub debug_url: Option<String>,
    /// The question a chatflow stopped at (`requires_action`), waiting for an answer.
    pub question: Option<Question>,
    /// The calls a bot's chat stopped at (`requires_action`), waiting for their
    /// outputs (`submit_tool_outputs`); empty otherwise.
    pub tool_calls: Vec<ToolCall>,
    /// The chat is a chatflow's (see the module's description).
    pub(super) chatflow: bool,
    /// A chatflow's last whole answer message, `(content, content_type)`: what its
    /// question is read from when `requires_action` comes.
    last_answer: Option<(String, String)>,
    answer_message: Option<String>,
    saw_delta_for: Option<String>,
    /// Some answer text went out (`content` may not keep it: see `Sink::keeps_answer`).
    answered: bool,
    /// Bytes of answer and of reasoning given to the sink for `answer_message`, and for
    /// the chat's earlier answer messages: after a broken stream, an answer goes on
    /// where it stopped.
    answer_sent: (usize, usize),
    earlier_sent: Vec<(String, (usize, usize))>,
    /// The chat is being followed by polling after its stream broke.
    pub(super) recovering: bool,
    /// Ids of the messages whose `conversation.message.completed` was fed.
    completed: Vec<String>,
    /// Reads the answer deltas, each compared with the one before (they differ only
    /// in their content).
    deltas: json_pick::Picker,
}

/// One call of a bot's `requires_action`, as `required_action.submit_tool_outputs
/// .tool_calls[]` carries it (the Coze API docs, `chat_v3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id, echoed as `tool_call_id` with its output (may be empty: a
    /// question's `reply_message` call).
    pub id: String,
    /// `function` (a local plugin's function), or `reply_message` (a question node
    /// asks the user: the question is the answer message sent before it).
    pub kind: String,
    /// The function's name; empty for a `reply_message`.
    pub name: String,
    /// The arguments as the server sent them: the text of a JSON object, normally.
    pub arguments: String,
    /// A `reply_message`'s question: the text of the answer message before it.
    pub question: String,
}

impl ToolCall {
    /// Whether this call is a question for the user rather than a function to run.
    pub fn is_question(&self) -> bool {
        self.kind == "reply_message"
    }

    fn from_value(call: &Value, question: &str) -> ToolCall {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = match text(call.get("type")) {
            k if k.is_empty() => "function".to_owned(),
            k => k,
        };
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(s)) => s.clone(),
            // Not the documented text: kept as its JSON, not lost.
            Some(v) if !v.is_null() => v.to_string(),
            _ => String::new(),
        };
        ToolCall {
            id: id_text(call, "id"),
            question: if kind == "reply_message" {
                question.to_owned()
            } else {
                String::new()
            },
            kind,
            name: text(call.pointer("/function/name")),
            arguments,
        }
    }
}

/// The server ended the chat without an answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// `conversation.chat.failed` or an `error` event: the server's code and message.
    Api {
        /// The server's code; 0 when it gave none.
        code: i64,
        /// The server's message, or "the chat failed".
        msg: String,
    },
    /// `conversation.chat.requires_action`: a tool call we cannot answer.
    RequiresAction(String),
    /// The chat was cancelled.
    Canceled,
}

impl Failure {
    /// The server's failure from `{code, msg}`: `code` a number, or a chatflow's string
    /// of digits ("720702204"), read as the number; other text is kept in the message.
    /// `otherwise` is the message when there is none.
    fn api(err: &Value, otherwise: &str) -> Failure {
        let msg = err.get("msg").and_then(Value::as_str).unwrap_or(otherwise);
        let (code, msg) = match err.get("code") {
            Some(Value::Number(n)) => (n.as_i64().unwrap_or(0), msg.to_owned()),
            Some(Value::String(s)) => match s.trim().parse::<i64>() {
                Ok(c) => (c, msg.to_owned()),
                Err(_) if s.trim().is_empty() => (0, msg.to_owned()),
                Err(_) => (0, format!("{}: {msg}", s.trim())),
            },
            _ => (0, msg.to_owned()),
        };
        Failure::Api { code, msg }
    }
}

/// An id field as text: a string, or an integer (a self-hosted Coze Studio sends some
/// 64-bit ids as JSON numbers; serde_json keeps integers exact, so the digits survive).
/// Empty when absent or of another type.
pub fn id_text(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => String::new(),
    }
}

impl ChatState {
    /// The state of a chat about to start: a chatflow's when `chatflow`.
    pub(super) fn new(chatflow: bool) -> ChatState {
        ChatState {
            chatflow,
            ..ChatState::default()
        }
    }

    /// The chat goes on after its tool calls were answered: it waits no more, and the
    /// events of its continuation are fed to the same state.
    pub(super) fn resume(&mut self) {
        self.status = ChatStatus::InProgress;
        self.done = false;
        self.failure = None;
        self.tool_calls.clear();
        self.last_answer = None;
    }

    /// The chat is over: `done` arrived, or its status is one after which nothing
    /// happens.
    pub fn finished(&self) -> bool {
        self.done || self.status.is_final()
    }

    /// Takes one event. Returns whether the chat is over.
    pub fn feed(&mut self, name: &str, data: &Value, sink: &mut dyn Sink) -> io::Result<bool> {
        self.feed_as(name, data, Data::Value(data), sink)
    }

    /// Takes one event whose data the sink gets as `given` (the text it was parsed
    /// from, when that can pass as it came).
    fn feed_as(
        &mut self,
        name: &str,
        data: &Value,
        given: Data<'_>,
        sink: &mut dyn Sink,
    ) -> io::Result<bool> {
        self.events += 1;
        sink.event(name, given)?;
        let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
        match name {
            "conversation.chat.created"
            | "conversation.chat.in_progress"
            | "conversation.chat.completed"
            // coze.cn's spelling and a self-hosted Coze Studio's.
            | "conversation.chat.canceled"
            | "conversation.chat.cancelled" => {
                self.take_chat(data);
            }
            "conversation.message.delta" if data.is_object() => {
                self.delta(
                    text("type"),
                    &id_text(data, "id"),
                    text("reasoning_content"),
                    text("content"),
                    sink,
                )?;
            }
            "conversation.message.completed" if data.is_object() => {
                let id = id_text(data, "id");
                // A chatflow's question, or the question of a bot's `reply_message`.
                if text("type") == "answer" {
                    self.last_answer =
                        Some((text("content").to_owned(), text("content_type").to_owned()));
                }
                match text("type") {
                    // A self-hosted Coze Studio's question node speaks in a card (JSON
                    // for its web page): it is the question, not answer text.
                    "answer" if self.chatflow && text("content_type") == "card" => {}
                    // Recovered after a broken stream: what the stream did not give.
                    "answer" if self.recovering => {
                        let (c, r) = self.sent_for(&id);
                        let rest = |k: &str, from: usize| text(k).get(from..).unwrap_or_default();
                        let (c, r) = (rest("content", c), rest("reasoning_content", r));
                        if !c.is_empty() || !r.is_empty() {
                            self.separate_answers(&id, sink)?;
                            self.answer_text(r, c, sink)?;
                        }
                    }
                    // An answer that came only as `completed` (polling, or a short answer).
                    "answer" if self.saw_delta_for.as_deref() != Some(id.as_str()) => {
                        self.separate_answers(&id, sink)?;
                        self.answer_text(text("reasoning_content"), text("content"), sink)?;
                    }
                    "follow_up" => {
                        self.follow_ups.push(text("content").to_owned());
                        sink.follow_up(text("content"))?;
                    }
                    _ => {}
                }
                self.completed.push(id);
            }
            "conversation.message.delta" | "conversation.message.completed" => self.malformed += 1,
            "conversation.chat.failed" => {
                self.take_chat(data);
                self.status = ChatStatus::Failed;
                // Two shapes: a Chat with last_error (coze-py's recording
                // `tests/testdata/chat_failed_resp.txt`), or a bare {code,msg} (the Coze API
                // docs' overview of the streaming events).
                // A chatflow's is the bare shape with the code as a string (the Coze API
                // docs, `workflow_chat`).
                let err = data
                    .get("last_error")
                    .filter(|e| e.is_object())
                    .unwrap_or(data);
                self.failure = Some(Failure::api(err, "the chat failed"));
            }
            "conversation.chat.requires_action" if self.chatflow => {
                // A question or input node: nothing failed; the chatflow waits in this
                // conversation for the next user message.
                self.take_chat(data);
                self.status = ChatStatus::RequiresAction;
                let (content, kind) = self.last_answer.clone().unwrap_or_default();
                self.question = Some(question::from_message(&content, &kind));
            }
            "conversation.chat.requires_action" => {
                self.take_chat(data);
                self.status = ChatStatus::RequiresAction;
                // Only `status` says the chat waits: other chat objects carry an empty
                // `required_action` (coze-py's `tests/testdata`).
                let question = self.last_answer.as_ref().map(|(c, _)| c.as_str());
                self.tool_calls = data
                    .pointer("/required_action/submit_tool_outputs/tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .map(|c| ToolCall::from_value(c, question.unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                let names: Vec<&str> = self
                    .tool_calls
                    .iter()
                    .map(|c| if c.is_question() { "reply_message" } else { c.name.as_str() })
                    .collect();
                self.failure = Some(Failure::RequiresAction(if names.is_empty() {
                    "a tool call".into()
                } else {
                    names.join(", ")
                }));
            }
            "error" => {
                // A self-hosted Coze Studio ends a failed chatflow so, with the code as a
                // string and the trace (coze-dev/coze-studio
                // `backend/application/workflow/chatflow.go`, `ErrorDetail`).
                self.take_debug_url(data);
                self.failure = Some(Failure::api(data, &format!("error event: {data}")));
                return Ok(true);
            }
            // A self-hosted Coze Studio ends `/v3/chat` with `conversation.stream.done` and
            // an empty data line instead of `done` (coze-dev/coze-studio
            // `backend/domain/conversation/agentrun/entity`, `RunEventStreamDone`).
            "done" | "conversation.stream.done" => {
                // A chatflow's carries its trace instead of "[DONE]".
                self.take_debug_url(data);
                self.done = true;
                return Ok(true);
            }
            _ => {} // unknown events: the sink has seen them; nothing to keep
        }
        Ok(false)
    }

    /// Takes one event as the stream carries it: `data` is the event's text, which
    /// the sink gets as it came when it is JSON that fits on one line
    /// ([`Data::checked`]). An answer delta skips the `Value` tree (the hot path of a
    /// long answer): `json_pick` checks it and reads its few fields in one pass;
    /// everything else, and any delta `json_pick` declines, is parsed by serde_json.
    pub fn feed_text(&mut self, name: &str, data: &str, sink: &mut dyn Sink) -> io::Result<bool> {
        if name == "conversation.message.delta" {
            if let Some(fed) = self.feed_delta_text(name, data, sink) {
                return fed;
            }
        }
        event_data::parsed(data, |v, given| self.feed_as(name, v, given, sink))
    }

    /// A delta's fields decoded straight from its text; None: not decodable this way
    /// (or, for a sink that wants the event, not passable as it came).
    fn feed_delta_text(
        &mut self,
        name: &str,
        data: &str,
        sink: &mut dyn Sink,
    ) -> Option<io::Result<bool>> {
        let wanted = sink.wants_events();
        if wanted && !fits_one_line(data) {
            return None;
        }
        let [id, kind, content, reasoning] = self
            .deltas
            .pick(data, ["id", "type", "content", "reasoning_content"])?;
        self.events += 1;
        if wanted {
            // `pick` read all of it as a JSON parser would: it is JSON.
            if let Err(e) = sink.event(name, Data::Json(data)) {
                return Some(Err(e));
            }
        }
        Some(
            self.delta(
                kind.as_deref().unwrap_or_default(),
                id.as_deref().unwrap_or_default(),
                reasoning.as_deref().unwrap_or_default(),
                content.as_deref().unwrap_or_default(),
                sink,
            )
            .map(|()| false),
        )
    }

    fn delta(
        &mut self,
        kind: &str,
        id: &str,
        r: &str,
        c: &str,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        if !matches!(kind, "answer" | "") {
            return Ok(());
        }
        if self.saw_delta_for.as_deref() != Some(id) {
            self.separate_answers(id, sink)?;
            self.saw_delta_for = Some(id.to_owned());
        }
        self.answer_text(r, c, sink)
    }

    /// A piece of reasoning and of the answer, to the sink, and kept when it asks.
    fn answer_text(&mut self, r: &str, c: &str, sink: &mut dyn Sink) -> io::Result<()> {
        let keep = sink.keeps_answer();
        if !r.is_empty() {
            if keep {
                self.reasoning.push_str(r);
            }
            self.answer_sent.1 += r.len();
            sink.reasoning(r)?;
        }
        if !c.is_empty() {
            if keep {
                self.content.push_str(c);
            }
            self.answered = true;
            self.answer_sent.0 += c.len();
            sink.answer(c)?;
        }
        Ok(())
    }

    fn take_debug_url(&mut self, data: &Value) {
        if let Some(url) = data.get("debug_url").and_then(Value::as_str) {
            if !url.is_empty() {
                self.debug_url = Some(url.to_owned());
            }
        }
    }

    /// Bytes of answer and reasoning the sink got for answer message `id`.
    fn sent_for(&self, id: &str) -> (usize, usize) {
        if self.answer_message.as_deref() == Some(id) {
            return self.answer_sent;
        }
        self.earlier_sent
            .iter()
            .find(|(m, _)| m == id)
            .map_or((0, 0), |(_, sent)| *sent)
    }

    /// Whether `message` was already fed as `conversation.message.completed`.
    pub fn fed_completed(&self, message: &Value) -> bool {
        let id = id_text(message, "id");
        !id.is_empty() && self.completed.contains(&id)
    }

    fn take_chat(&mut self, data: &Value) {
        let id = |k: &str| Some(id_text(data, k)).filter(|s| !s.is_empty());
        self.chat_id = id("id").or(self.chat_id.take());
        self.conversation_id = id("conversation_id").or(self.conversation_id.take());
        self.bot_id = id("bot_id").or(self.bot_id.take());
        match data.get("status").and_then(Value::as_str) {
            // One spelling for scripts reading answer records, whatever the server: a
            // self-hosted Coze Studio writes `cancelled`, or the event's name
            // `conversation.chat.cancelled`, as the status (its `dao.go` `Cancel`).
            Some("conversation.chat.cancelled") => self.status = ChatStatus::Canceled,
            Some(s) if !s.is_empty() => self.status = ChatStatus::parse(s),
            _ => {}
        }
        if let Some(u) = data.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        if self.status == ChatStatus::Canceled {
            self.failure = Some(Failure::Canceled);
        }
    }

    /// Several answer messages in one chat are separated by a blank line.
    fn separate_answers(&mut self, id: &str, sink: &mut dyn Sink) -> io::Result<()> {
        if self.answer_message.as_deref() != Some(id) {
            if self.answer_message.is_some() && self.answered {
                if sink.keeps_answer() {
                    self.content.push_str("\n\n");
                }
                sink.answer("\n\n")?;
            }
            if let Some(earlier) = self.answer_message.take() {
                self.earlier_sent.push((earlier, self.answer_sent));
            }
            self.answer_sent = match self.earlier_sent.iter().position(|(m, _)| m == id) {
                Some(i) => self.earlier_sent.remove(i).1,
                None => (0, 0),
            };
            self.answer_message = Some(id.to_owned());
        }
        Ok(())
    }

    /// The error this chat ended with, if any, for the exit code and the message.
    pub fn error(&self, logid: Option<&str>) -> Option<Error> {
        let api = |code: i64, msg: String| {
            Error::Api(ApiError {
                status: 200,
                code: ApiCode::Coze(code),
                msg,
                logid: logid.map(str::to_owned),
                retry_after: None,
                debug_url: None,
            })
        };
        let error = match &self.failure {
            Some(Failure::Api { code, msg }) => {
                Some(api(*code, msg.clone()).context("the chat failed"))
            }
            // Not a failure of the chat: it waits for the outputs (exit 7), which
            // `submit_tool_outputs` gives (coze-chat --tool).
            Some(Failure::RequiresAction(tools)) => Some(Error::Waiting(format!(
                "the bot called local tools ({tools}) and waits for their outputs: \
                 answer with {} --tool NAME=COMMAND, or the API's submit_tool_outputs",
                tool()
            ))),
            Some(Failure::Canceled) => Some(Error::Api(ApiError {
                status: 200,
                code: ApiCode::Http,
                msg: "the chat was cancelled".into(),
                logid: logid.map(str::to_owned),
                retry_after: None,
                debug_url: None,
            })),
            None => None,
        };
        // A failed chatflow's trace shows which node failed and why.
        match (error, &self.debug_url) {
            (Some(e), Some(url)) if self.chatflow => Some(e.with_hint(format!("debug_url: {url}"))),
            (error, _) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Default)]
    struct Record {
        events: Vec<String>,
        answer: String,
        reasoning: String,
        follow: Vec<String>,
    }

    impl Sink for Record {
        fn event(&mut self, name: &str, _: Data<'_>) -> io::Result<()> {
            self.events.push(name.into());
            Ok(())
        }
        fn answer(&mut self, t: &str) -> io::Result<()> {
            self.answer.push_str(t);
            Ok(())
        }
        fn reasoning(&mut self, t: &str) -> io::Result<()> {
            self.reasoning.push_str(t);
            Ok(())
        }
        fn follow_up(&mut self, t: &str) -> io::Result<()> {
            self.follow.push(t.into());
            Ok(())
        }
    }

    /// A sink like `Record` that does not want whole events, so answer deltas take
    /// the `json_pick` path of `feed_text`, and does not need the answer kept.
    #[derive(Default)]
    struct TextOnly(Record);

    impl Sink for TextOnly {
        fn event(&mut self, name: &str, data: Data<'_>) -> io::Result<()> {
            self.0.event(name, data)
        }
        fn answer(&mut self, t: &str) -> io::Result<()> {
            self.0.answer(t)
        }
        fn reasoning(&mut self, t: &str) -> io::Result<()> {
            self.0.reasoning(t)
        }
        fn follow_up(&mut self, t: &str) -> io::Result<()> {
            self.0.follow_up(t)
        }
        fn wants_events(&self) -> bool {
            false
        }
        fn keeps_answer(&self) -> bool {
            false
        }
    }

    /// Both routes of `feed_text` give the sink the same answer and end in the same
    /// state, including the deltas `json_pick` declines and hands to `feed`.

    #[test]
    fn deltas_read_by_json_pick_or_by_serde_json_end_the_same() {
        let stream = [
            (
                "conversation.chat.created",
                r#"{"id":"c","conversation_id":"v","status":"created"}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"answer","reasoning_content":"想"}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"answer","content":"a\n\u4f60"}"#,
            ),
            // Declined by json_pick: content not a string, a wanted key twice, an exponent.
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"answer","content":null}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"answer","content":"x","content":"y"}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"answer","content":"b","n":1e3}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":"m1","type":"verbose","content":"not the answer"}"#,
            ),
            ("conversation.message.delta", r#"not json"#),
            (
                "conversation.message.delta",
                r#"{"id":"m2","type":"answer","content":"second"}"#,
            ),
            (
                "conversation.chat.completed",
                r#"{"id":"c","conversation_id":"v","status":"completed"}"#,
            ),
        ];
        let mut generic = (ChatState::default(), Record::default());
        let mut fast = (ChatState::default(), TextOnly::default());
        for (name, data) in stream {
            generic.0.feed_text(name, data, &mut generic.1).unwrap();
            fast.0.feed_text(name, data, &mut fast.1).unwrap();
        }
        assert_eq!(fast.1 .0.answer, generic.1.answer);
        assert_eq!(generic.0.content, generic.1.answer);
        assert_eq!(generic.1.answer, "a\n你yb\n\nsecond");
        assert_eq!(fast.1 .0.reasoning, "想");
        // Streamed, not kept: the state holds no copy of the answer.
        assert_eq!(
            (fast.0.content.as_str(), fast.0.reasoning.as_str()),
            ("", "")
        );
        assert_eq!(
            (fast.0.events, fast.0.malformed),
            (generic.0.events, generic.0.malformed)
        );
        assert!(fast.0.finished());
        // The fast route skips `Sink::event` for the deltas it read itself.
        assert_eq!(generic.1.events.len(), stream.len());
        assert_eq!(fast.1 .0.events.len(), 6);
    }

    fn feed_all(events: &[(&str, Value)]) -> (ChatState, Record) {
        feed_in(ChatState::default(), events)
    }

    /// Feeds `events` to `st` up to the one that ends the chat.
    fn feed_in(mut st: ChatState, events: &[(&str, Value)]) -> (ChatState, Record) {
        let mut sink = Record::default();
        for (n, d) in events {
            if st.feed(n, d, &mut sink).unwrap() {
                break;
            }
        }
        (st, sink)
    }

    #[test]
    fn a_normal_stream() {
        let (st, sink) = feed_all(&[
            (
                "conversation.chat.created",
                json!({"id":"c1","conversation_id":"v1","bot_id":"b","status":"created"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m1","type":"answer","reasoning_content":"想"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m1","type":"answer","content":"你"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m1","type":"answer","content":"好👍"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"m1","type":"answer","content":"你好👍"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"m2","type":"verbose","content":"{}"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"m3","type":"follow_up","content":"再来?"}),
            ),
            ("some.future.event", json!({})),
            (
                "conversation.chat.completed",
                json!({"id":"c1","conversation_id":"v1","status":"completed","usage":{"token_count":3}}),
            ),
            ("done", json!("[DONE]")),
        ]);
        assert_eq!(st.content, "你好👍");
        assert_eq!(sink.answer, "你好👍");
        assert_eq!(st.reasoning, "想");
        assert_eq!(st.follow_ups, vec!["再来?"]);
        assert_eq!(
            (st.chat_id.as_deref(), st.conversation_id.as_deref()),
            (Some("c1"), Some("v1"))
        );
        assert_eq!(st.usage, Some(json!({"token_count":3})));
        assert!(st.done && st.finished() && st.error(None).is_none());
        assert_eq!(sink.events.len(), 10);
    }

    #[test]
    fn answers_only_as_completed_and_several_answers() {
        let (st, _) = feed_all(&[
            (
                "conversation.message.completed",
                json!({"id":"a","type":"answer","content":"one"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"b","type":"answer","content":"tw"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"b","type":"answer","content":"o"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"b","type":"answer","content":"two"}),
            ),
        ]);
        assert_eq!(st.content, "one\n\ntwo");
    }

    #[test]
    fn failures_in_both_shapes_and_requires_action() {
        let (st, _) = feed_all(&[(
            "conversation.chat.failed",
            json!({"id":"c","status":"failed","last_error":{"code":5000,"msg":"event interval error"}}),
        )]);
        let e = st.error(Some("L")).unwrap();
        assert_eq!(
            e.to_string(),
            "the chat failed: code 5000: event interval error (logid L)"
        );
        assert_eq!(e.exit_code(), 1);
        let (st, _) = feed_all(&[(
            "conversation.chat.failed",
            json!({"code":701231,"msg":"error"}),
        )]);
        assert!(st.error(None).unwrap().to_string().contains("701231"));
        let (st, _) = feed_all(&[("error", json!({"code":4013,"msg":"too fast"}))]);
        assert_eq!(st.error(None).unwrap().exit_code(), 6);
        let (st, _) = feed_all(&[(
            "conversation.chat.requires_action",
            json!({"id":"c","status":"requires_action","required_action":{"type":"submit_tool_outputs","submit_tool_outputs":{"tool_calls":[{"id":"t","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}}}),
        )]);
        assert!(st.finished());
        assert!(st.error(None).unwrap().to_string().contains("get_weather"));
    }

    /// A self-hosted Coze Studio's stream: `conversation.stream.done` with empty data
    /// ends it; `cancelled` is canceled; ids may be JSON numbers and stay exact.

    #[test]
    fn the_studio_dialect() {
        let mut st = ChatState::default();
        let mut sink = Record::default();
        let stream = [
            (
                "conversation.chat.created",
                r#"{"id":"7512345678901234567","conversation_id":7512345678901234568,"bot_id":"b","status":"created"}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":7512345678901234569,"type":"answer","content":"你"}"#,
            ),
            (
                "conversation.message.delta",
                r#"{"id":7512345678901234569,"type":"answer","content":"好"}"#,
            ),
            (
                "conversation.message.completed",
                r#"{"id":7512345678901234569,"type":"answer","content":"你好"}"#,
            ),
            (
                "conversation.chat.completed",
                r#"{"id":"7512345678901234567","conversation_id":"7512345678901234568","status":"completed"}"#,
            ),
            ("conversation.stream.done", ""),
        ];
        let mut ended = false;
        for (name, data) in stream {
            ended = st.feed_text(name, data, &mut sink).unwrap();
        }
        assert!(ended && st.done && st.finished());
        assert_eq!(sink.answer, "你好", "one message: no separator, no repeat");
        assert_eq!(st.conversation_id.as_deref(), Some("7512345678901234568"));
        assert!(st.error(None).is_none());
        let (st, _) = feed_all(&[(
            "conversation.chat.cancelled",
            json!({"id":"c","conversation_id":"v","status":"cancelled"}),
        )]);
        assert_eq!(st.status.as_str(), "canceled");
        assert!(st.finished());
        assert!(st.error(None).unwrap().to_string().contains("cancelled"));
        let (st, _) = feed_all(&[(
            "conversation.chat.canceled",
            json!({"id":"c","conversation_id":"v","status":"canceled"}),
        )]);
        assert!(st.error(None).is_some(), "coze.cn's spelling too");
        assert_eq!(id_text(&json!({"id": 1.5}), "id"), "");
        assert_eq!(id_text(&json!({"id": -3}), "id"), "-3");
    }

    /// After a broken stream, the polled messages give the sink only what the stream
    /// had not: the rest of a message cut mid-answer, a message it never began (after
    /// a separator), nothing of a message it gave whole.

    #[test]
    fn a_recovered_chat_gives_only_what_the_stream_did_not() {
        let mut st = ChatState::default();
        let mut sink = Record::default();
        let streamed = [
            (
                "conversation.chat.created",
                json!({"id":"c","conversation_id":"v","status":"created"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m1","type":"answer","reasoning_content":"想"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m1","type":"answer","content":"第一"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"m1","type":"answer","content":"第一"}),
            ),
            (
                "conversation.message.delta",
                json!({"id":"m2","type":"answer","content":"第二个回"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"f1","type":"follow_up","content":"再来?"}),
            ),
        ];
        for (n, d) in &streamed {
            st.feed(n, d, &mut sink).unwrap();
        }
        st.recovering = true;
        let polled = [
            json!({"id":"m1","type":"answer","content":"第一","reasoning_content":"想"}),
            json!({"id":"m2","type":"answer","content":"第二个回答。"}),
            json!({"id":"m3","type":"answer","content":"第三"}),
            json!({"id":"f1","type":"follow_up","content":"再来?"}),
            json!({"id":"f2","type":"follow_up","content":"还有?"}),
        ];
        for m in &polled {
            if !st.fed_completed(m) {
                st.feed("conversation.message.completed", m, &mut sink)
                    .unwrap();
            }
        }
        assert_eq!(sink.answer, "第一\n\n第二个回答。\n\n第三");
        assert_eq!(st.content, sink.answer, "a kept answer is whole too");
        assert_eq!(sink.reasoning, "想");
        assert_eq!(sink.follow, ["再来?", "还有?"]);
        assert_eq!(
            sink.events.len(),
            streamed.len() + 3,
            "m1 and f1 were not fed again"
        );
    }

    fn chatflow_feed(events: &[(&str, Value)]) -> (ChatState, Record) {
        feed_in(ChatState::new(true), events)
    }

    /// A chatflow's chat: `done` carries the trace, a failure's string code is the
    /// code (both dialects' shapes), and `requires_action` is a question, not a failure.
    #[test]
    fn a_chatflow_s_trace_failures_and_questions() {
        let url = "https://www.coze.cn/work_flow?execute_id=1&space_id=2&workflow_id=3";
        let created = json!({"id":"c","conversation_id":"v","status":"created"});
        let (st, sink) = chatflow_feed(&[
            ("conversation.chat.created", created.clone()),
            (
                "conversation.message.delta",
                json!({"id":"m","type":"answer","content":"Echo: hi"}),
            ),
            (
                "conversation.message.completed",
                json!({"id":"m","type":"answer","content":"Echo: hi"}),
            ),
            (
                "conversation.chat.completed",
                json!({"id":"c","conversation_id":"v","status":"completed"}),
            ),
            ("done", json!({ "debug_url": url })),
        ]);
        assert_eq!(sink.answer, "Echo: hi");
        assert!(st.done && st.error(None).is_none());
        assert_eq!(st.debug_url.as_deref(), Some(url));

        // coze.cn: conversation.chat.failed with a bare {code: "<string>", msg}, then done.
        let (st, _) = chatflow_feed(&[
            ("conversation.chat.created", created.clone()),
            (
                "conversation.chat.failed",
                json!({"code":"720702204","msg":"会话名不存在"}),
            ),
            ("done", json!({ "debug_url": url })),
        ]);
        let e = st.error(Some("L")).unwrap();
        assert_eq!(e.api().unwrap().coze_code(), Some(720702204));
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            format!("the chat failed: code 720702204: 会话名不存在 (logid L) (debug_url: {url})")
        );
        // A self-hosted Coze Studio: an `error` event with the code and the trace.
        let (st, _) = chatflow_feed(&[
            ("conversation.chat.created", created.clone()),
            (
                "error",
                json!({"code":"720701013","msg":"execute failed","debug_url":url}),
            ),
        ]);
        let e = st.error(None).unwrap();
        assert_eq!(e.api().unwrap().coze_code(), Some(720701013));
        assert!(
            e.to_string().ends_with(&format!("(debug_url: {url})")),
            "{e}"
        );
        // A code that is not a number stays in the message.
        let (st, _) = chatflow_feed(&[("error", json!({"code":"E_BAD","msg":"no"}))]);
        assert_eq!(
            st.error(None).unwrap().to_string(),
            "the chat failed: E_BAD: no"
        );

        // A question: the last answer message is it; nothing failed.
        let node = json!({"messages":[{"type":"question","content_type":"option",
            "content":{"options":[{"name":"Red"},{"name":"Blue"}],"question":"Colour?"}}]});
        let (st, sink) = chatflow_feed(&[
            ("conversation.chat.created", created.clone()),
            (
                "conversation.message.completed",
                json!({"id":"q","type":"answer","content":node.to_string(),"content_type":"text"}),
            ),
            (
                "conversation.chat.requires_action",
                json!({"id":"c","conversation_id":"v","status":"requires_action"}),
            ),
            ("done", json!({ "debug_url": url })),
        ]);
        assert!(st.finished() && st.error(None).is_none());
        assert_eq!(st.status, ChatStatus::RequiresAction);
        let q = st.question.clone().unwrap();
        assert_eq!((q.text.as_str(), q.options.len()), ("Colour?", 2));
        assert_eq!(
            sink.answer,
            node.to_string(),
            "a text question is its answer too"
        );
        // Studio's card is the question only: no answer text.
        let info =
            json!({"card_type":"QUESTION","question_card_data":{"Title":"Colour?","Options":[]}});
        let card = json!({"x_properties":{"workflow_card_info": info.to_string()}});
        let (st, sink) = chatflow_feed(&[
            (
                "conversation.message.completed",
                json!({"id":"q","type":"answer","content":card.to_string(),"content_type":"card"}),
            ),
            (
                "conversation.chat.requires_action",
                json!({"id":"c","conversation_id":"v","status":"requires_action"}),
            ),
        ]);
        assert_eq!(sink.answer, "");
        assert_eq!(st.question.unwrap().text, "Colour?");
        // A bot's requires_action is still a tool call it cannot answer.
        let (st, _) = feed_all(&[(
            "conversation.chat.requires_action",
            json!({"id":"c","conversation_id":"v","status":"requires_action"}),
        )]);
        assert!(st.question.is_none() && st.error(None).is_some());
    }

    #[test]
    fn data_that_is_not_json_is_malformed_not_lost() {
        let (st, _) = feed_all(&[("conversation.message.delta", json!("{\"id\":"))]);
        assert_eq!(st.malformed, 1);
    }
}
