//! One chat with a bot, streamed or polled, turned into the same sequence of events.
//!
//! `ChatState` is the event machine: it takes `(event name, data)` pairs in the order
//! Coze sends them (coze-api.md §6.3) and keeps what a caller needs (ids, the answer,
//! reasoning, follow-ups, usage, the failure), while a `Sink` sees every event as it
//! arrives. The streamed path feeds it from the SSE reader; `--no-stream` feeds it
//! events synthesized from create → retrieve → message list, so both produce the
//! same answer. A stream that breaks once the chat exists is finished the second way:
//! the chat goes on on the server, so it is polled to its end and the machine gives
//! the sink only what the stream had not. Printing is the sink's business
//! (coze-chat), not this module's.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::api::Client;
use crate::error::{ApiCode, ApiError, Error, Result};
use crate::http::{describe_io, is_timeout};
use crate::wire::json_pick;
use crate::wire::sse::{SseError, SseReader};

/// What to ask.
#[derive(Debug, Clone, Default)]
pub struct ChatSpec {
    pub bot_id: String,
    pub user_id: String,
    pub content: String,
    pub conversation_id: Option<String>,
    pub custom_variables: Map<String, Value>,
    pub meta_data: Map<String, Value>,
    /// auto_save_history (default true in the API; must be true without streaming).
    pub auto_save: bool,
}

impl ChatSpec {
    /// The `/v3/chat` body (coze-api.md §6.1); conversation_id goes in the query.
    pub fn body(&self, stream: bool) -> Value {
        let mut body = json!({
            "bot_id": self.bot_id,
            "user_id": self.user_id,
            "stream": stream,
            "auto_save_history": self.auto_save,
            "additional_messages": [{"role": "user", "content": self.content, "content_type": "text"}],
        });
        if !self.custom_variables.is_empty() {
            body["custom_variables"] = Value::Object(self.custom_variables.clone());
        }
        if !self.meta_data.is_empty() {
            body["meta_data"] = Value::Object(self.meta_data.clone());
        }
        body
    }
}

/// Receives a chat as it happens. An error (a closed stdout) stops the chat.
pub trait Sink {
    /// Every event, lossless: its name and its data (JSON when it parses, else text).
    fn event(&mut self, name: &str, data: &Value) -> io::Result<()>;
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
    pub chat_id: Option<String>,
    pub conversation_id: Option<String>,
    pub bot_id: Option<String>,
    /// The whole answer and reasoning, when the sink `keeps_answer`; else empty.
    pub content: String,
    pub reasoning: String,
    pub follow_ups: Vec<String>,
    pub usage: Option<Value>,
    /// The chat's status as last reported (`created`, `in_progress`, `completed`, ...).
    pub status: String,
    pub events: u64,
    /// Event data that was not JSON although the event type promises JSON.
    pub malformed: u64,
    /// `done` arrived (the stream's own end mark).
    pub done: bool,
    /// How the chat failed, when it did.
    pub failure: Option<Failure>,
    /// How the stream broke before the chat was over, when the chat was then followed
    /// to its end by polling: the events after the break were recovered, not streamed.
    pub recovered: Option<String>,
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
    recovering: bool,
    /// Ids of the messages whose `conversation.message.completed` was fed.
    completed: Vec<String>,
}

/// The server ended the chat without an answer.
#[derive(Debug, Clone)]
pub enum Failure {
    /// `conversation.chat.failed` or an `error` event: the server's code and message.
    Api { code: i64, msg: String },
    /// `conversation.chat.requires_action`: a tool call we cannot answer.
    RequiresAction(String),
    /// The chat was cancelled.
    Canceled,
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

/// The chat statuses after which nothing more happens. A self-hosted Coze Studio spells
/// the cancelled one `cancelled` (coze-dev/coze-studio
/// `backend/domain/conversation/agentrun/entity/const.go`); [`ChatState`] keeps
/// coze.cn's `canceled`.
pub const FINAL_STATUSES: [&str; 5] = [
    "completed",
    "failed",
    "requires_action",
    "canceled",
    "cancelled",
];

impl ChatState {
    pub fn finished(&self) -> bool {
        self.done
            || matches!(
                self.status.as_str(),
                "completed" | "failed" | "requires_action" | "canceled"
            )
    }

    /// Takes one event. Returns whether the chat is over.
    pub fn feed(&mut self, name: &str, data: &Value, sink: &mut dyn Sink) -> io::Result<bool> {
        self.events += 1;
        sink.event(name, data)?;
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
                match text("type") {
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
                self.status = "failed".into();
                // Two shapes: a Chat with last_error, or a bare {code,msg} (coze-api.md §6.3).
                let err = data
                    .get("last_error")
                    .filter(|e| e.is_object())
                    .unwrap_or(data);
                self.failure = Some(Failure::Api {
                    code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                    msg: err
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("the chat failed")
                        .to_owned(),
                });
            }
            "conversation.chat.requires_action" => {
                self.take_chat(data);
                self.status = "requires_action".into();
                let tools: Vec<&str> = data
                    .pointer("/required_action/submit_tool_outputs/tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .filter_map(|c| c.pointer("/function/name")?.as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                self.failure = Some(Failure::RequiresAction(if tools.is_empty() {
                    "a tool call".into()
                } else {
                    tools.join(", ")
                }));
            }
            "error" => {
                self.failure = Some(Failure::Api {
                    code: data.get("code").and_then(Value::as_i64).unwrap_or(0),
                    msg: data
                        .get("msg")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("error event: {data}")),
                });
                return Ok(true);
            }
            // A self-hosted Coze Studio ends `/v3/chat` with `conversation.stream.done` and
            // an empty data line instead of `done` (coze-dev/coze-studio
            // `backend/domain/conversation/agentrun/entity`, `RunEventStreamDone`).
            "done" | "conversation.stream.done" => {
                self.done = true;
                return Ok(true);
            }
            _ => {} // unknown events: the sink has seen them; nothing to keep
        }
        Ok(false)
    }

    /// Takes one event as the stream carries it: `data` is the event's text. An answer
    /// delta for a sink that does not want whole events skips the `Value` tree (the
    /// hot path of a long answer); everything else, and any delta `json_pick`
    /// declines, goes through [`feed`](Self::feed).
    pub fn feed_text(&mut self, name: &str, data: &str, sink: &mut dyn Sink) -> io::Result<bool> {
        if name == "conversation.message.delta" && !sink.wants_events() {
            if let Some(fed) = self.feed_delta_text(data, sink) {
                return fed;
            }
        }
        self.feed(name, &parse_data(data), sink)
    }

    /// A delta's fields decoded straight from its text; None: not decodable this way.
    fn feed_delta_text(&mut self, data: &str, sink: &mut dyn Sink) -> Option<io::Result<bool>> {
        let [id, kind, content, reasoning] =
            json_pick::pick(data, ["id", "type", "content", "reasoning_content"])?;
        self.events += 1;
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
            Some("cancelled" | "conversation.chat.cancelled") => self.status = "canceled".into(),
            Some(s) if !s.is_empty() => self.status = s.to_owned(),
            _ => {}
        }
        if let Some(u) = data.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        if self.status == "canceled" {
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
            })
        };
        match &self.failure {
            Some(Failure::Api { code, msg }) => Some(api(*code, msg.clone()).context("the chat failed")),
            Some(Failure::RequiresAction(tools)) => Some(Error::Api(ApiError {
                status: 200,
                code: ApiCode::Http,
                msg: format!(
                    "the bot requires an action coze-chat cannot take ({tools}): \
                     the bot uses a local plugin or a question node; answer it with the API's submit_tool_outputs"
                ),
                logid: logid.map(str::to_owned),
                retry_after: None,
            })),
            Some(Failure::Canceled) => Some(Error::Api(ApiError {
                status: 200,
                code: ApiCode::Http,
                msg: "the chat was cancelled".into(),
                logid: logid.map(str::to_owned),
                retry_after: None,
            })),
            None => None,
        }
    }
}

/// The chats in progress (one per worker thread), for cancelling them on Ctrl-C or a
/// closed stdout.
#[derive(Debug, Default)]
pub struct Active {
    chats: Mutex<Chats>,
    /// Signalled when [`Active::cancel`] has finished cancelling.
    settled: Condvar,
}

#[derive(Debug, Default)]
struct Chats {
    by_thread: HashMap<ThreadId, (String, String)>,
    /// Threads whose chat [`Active::cancel`] is cancelling right now.
    cancelling: HashSet<ThreadId>,
    /// [`Active::cancel`] has run: every chat is unwanted, also one that is only now
    /// learning its ids (it was being created while the others were cancelled).
    cancelled: bool,
}

impl Active {
    fn chats(&self) -> std::sync::MutexGuard<'_, Chats> {
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records this thread's chat once its ids are known. False once [`cancel`] has run:
    /// the caller must end the chat (recorded, so [`cancel_mine`] stops it on the
    /// server).
    ///
    /// [`cancel`]: Active::cancel
    /// [`cancel_mine`]: Active::cancel_mine
    #[must_use]
    pub fn set(&self, state: &ChatState) -> bool {
        let mut chats = self.chats();
        if let (Some(conv), Some(chat)) = (&state.conversation_id, &state.chat_id) {
            chats
                .by_thread
                .insert(std::thread::current().id(), (conv.clone(), chat.clone()));
        }
        !chats.cancelled
    }

    /// Whether [`cancel`](Active::cancel) has run: the run is being stopped, so a
    /// stream that ends now ended because we cancelled it, and is not followed.
    pub fn stopped(&self) -> bool {
        self.chats().cancelled
    }

    /// This thread's chat is over.
    pub fn clear(&self) {
        self.chats().by_thread.remove(&std::thread::current().id());
    }

    /// Cancels this thread's chat, if one is in progress. If [`cancel`](Active::cancel)
    /// is cancelling it already, waits for that: the caller keeps its stream open
    /// meanwhile (a server may end a chat whose client hung up, and a retried cancel
    /// would then find nothing to cancel).
    pub fn cancel_mine(&self, client: &Client<'_>, tool: &str) {
        let me = std::thread::current().id();
        let mut chats = self.chats();
        while chats.cancelling.contains(&me) {
            chats = self.settled.wait(chats).unwrap_or_else(|p| p.into_inner());
        }
        let mine = chats.by_thread.remove(&me);
        drop(chats);
        if let Some((conv, chat)) = mine {
            cancel_one(client, tool, &conv, &chat);
        }
    }

    /// Whether [`cancel`](Active::cancel) has run: the run is stopping, and what its
    /// chats met since is nobody's news.
    pub fn cancelled(&self) -> bool {
        self.chats().cancelled
    }

    /// Cancels every chat in progress (Ctrl-C, a closed stdout), all at once: one after
    /// another, `--jobs 16` would wait 16 round trips. A chat that registers later is
    /// refused ([`set`](Active::set) says false).
    pub fn cancel(&self, client: &Client<'_>, tool: &str) {
        let all: Vec<(ThreadId, (String, String))> = {
            let mut chats = self.chats();
            chats.cancelled = true;
            let all: Vec<_> = chats.by_thread.drain().collect();
            chats.cancelling.extend(all.iter().map(|(t, _)| *t));
            all
        };
        std::thread::scope(|s| {
            for (_, (conv, chat)) in &all {
                s.spawn(move || cancel_one(client, tool, conv, chat));
            }
        });
        let mut chats = self.chats();
        for (t, _) in &all {
            chats.cancelling.remove(t);
        }
        self.settled.notify_all();
    }
}

/// What a chat started after [`Active::cancel`] ends with: its output has no reader
/// (or the process is exiting on a signal), so it ends as quietly as a closed stdout.
pub fn unwanted() -> Error {
    Error::io(
        "stdout",
        io::Error::new(io::ErrorKind::BrokenPipe, "the run was stopped"),
    )
}

/// Cancels one chat; failures are reported, not fatal.
fn cancel_one(client: &Client<'_>, tool: &str, conv: &str, chat: &str) {
    match client.chat_cancel(conv, chat) {
        // The chat already finished; nothing left to stop: 4104 on coze.cn, 103200005
        // ("in progress can not be cancelled", said of a chat that is over) on a
        // self-hosted Coze Studio (coze-dev/coze-studio
        // `backend/application/conversation/openapi_agent_run.go`).
        Err(e)
            if matches!(
                e.api().and_then(|a| a.coze_code()),
                Some(4104 | 103_200_005)
            ) => {}
        Err(e) => crate::say!(
            "{tool}: cancelling chat {chat}: {}",
            crate::support::redact::scrub(&e.to_string())
        ),
        Ok(_) => {}
    }
}

/// Parses an event's data: JSON when it is JSON, else the text itself (a bare
/// `[DONE]`, or a malformed line, which must still reach `-o events` losslessly).
pub fn parse_data(data: &str) -> Value {
    serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
}

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
/// to its end by polling ([`follow`]) and the sink gets the rest (after
/// [`Sink::recovering`]). The state is returned even on failure: what was received is
/// the caller's to report.
pub fn stream(
    client: &Client<'_>,
    spec: &ChatSpec,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let mut state = ChatState::default();
    let opened = client
        .chat_stream(spec.conversation_id.as_deref(), &spec.body(true))
        .map_err(|e| e.context("starting the chat"));
    let stream = match opened {
        Ok(s) => s,
        Err(e) => return (state, Err(e)),
    };
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
                // The run was stopped (stdout closed) before this chat registered.
                if !active.set(&state) {
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
        Err(Broke::Cut(why)) => {
            let msg = cut_message(&state, &why);
            match (state.conversation_id.clone(), state.chat_id.clone()) {
                // Without auto_save_history (--no-save) the server keeps none of the
                // chat's messages: polling would find it completed with no answer.
                (Some(_), Some(_)) if !spec.auto_save => Err(Error::Cut {
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
    if outcome.is_err() && !state.finished() && !answered {
        active.cancel_mine(client, "coze-chat");
    }
    active.clear();
    let outcome = outcome.and_then(|()| state.error(logid.as_deref()).map_or(Ok(()), Err));
    (state, outcome)
}

/// How a stream that stopped before the chat was over is reported.
fn cut_message(state: &ChatState, why: &str) -> String {
    format!(
        "the answer stream was cut after {} events, before the chat completed: {why}",
        state.events
    )
}

/// Follows an existing chat to its end by polling: retrieve with backoff until its
/// status is final, then feed through `state` the chat's messages as
/// `conversation.message.completed` (but those `state` already had), its final chat
/// event and `done`. The rest of a `--no-stream` chat after its create, and of a
/// streamed one whose stream broke. `logid` gets the logid of each retrieve: the last
/// one reported how the chat ended.
fn follow(
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
        let status = chat
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if FINAL_STATUSES.contains(&status.as_str()) {
            break chat;
        }
        if status == "in_progress" && state.status != "in_progress" {
            state
                .feed("conversation.chat.in_progress", &chat, sink)
                .map_err(sink_err)?;
        }
        // Nothing may wait in the sink's buffer while we wait for the server.
        sink.flush().map_err(sink_err)?;
        std::thread::sleep(wait);
        wait = (wait * 3 / 2).min(Duration::from_secs(2));
    };
    let status = last
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if status == "completed" {
        for message in client.chat_messages(conv, chat_id)? {
            if state.fed_completed(&message) {
                continue;
            }
            state
                .feed("conversation.message.completed", &message, sink)
                .map_err(sink_err)?;
        }
    }
    let name = match status.as_str() {
        "completed" => "conversation.chat.completed",
        "failed" => "conversation.chat.failed",
        "requires_action" => "conversation.chat.requires_action",
        _ => "conversation.chat.canceled",
    };
    state.feed(name, &last, sink).map_err(sink_err)?;
    state
        .feed("done", &Value::String("[DONE]".into()), sink)
        .map_err(sink_err)?;
    Ok(())
}

/// Runs a chat without streaming: create, then [`follow`] it to its end; fed through
/// the same machine as a stream.
pub fn poll(
    client: &Client<'_>,
    spec: &ChatSpec,
    sink: &mut dyn Sink,
    active: &Active,
) -> (ChatState, Result<()>) {
    let mut state = ChatState::default();
    // The logid of the last retrieve: the one that reported how the chat ended.
    let mut logid = None;
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
    if result.is_err() && !state.finished() {
        active.cancel_mine(client, "coze-chat");
    }
    active.clear();
    let result = result.and_then(|()| state.error(logid.as_deref()).map_or(Ok(()), Err));
    (state, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record {
        events: Vec<String>,
        answer: String,
        reasoning: String,
        follow: Vec<String>,
    }

    impl Sink for Record {
        fn event(&mut self, name: &str, _: &Value) -> io::Result<()> {
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
        fn event(&mut self, name: &str, data: &Value) -> io::Result<()> {
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
        let mut st = ChatState::default();
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
        assert_eq!(st.status, "canceled");
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

    /// A last event cut from its line end is taken when its data is evidently whole.
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

    #[test]
    fn data_parsing_is_lossless() {
        assert_eq!(parse_data("\"[DONE]\""), json!("[DONE]"));
        assert_eq!(parse_data("[DONE]"), json!("[DONE]"));
        assert_eq!(parse_data("{\"id\":"), json!("{\"id\":"));
        let (st, _) = feed_all(&[("conversation.message.delta", json!("{\"id\":"))]);
        assert_eq!(st.malformed, 1);
    }

    #[test]
    fn the_request_body() {
        let spec = ChatSpec {
            bot_id: "b".into(),
            user_id: "u".into(),
            content: "hi".into(),
            auto_save: true,
            ..ChatSpec::default()
        };
        let b = spec.body(true);
        assert_eq!(b["stream"], true);
        assert_eq!(
            b["additional_messages"][0],
            json!({"role":"user","content":"hi","content_type":"text"})
        );
        assert!(
            b.get("conversation_id").is_none(),
            "conversation_id goes in the query"
        );
    }
}
