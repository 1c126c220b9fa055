//! The event machine of one workflow stream: `RunState` takes `(event name, seq, data)`
//! in the order the server sends them (the Coze API docs, `workflow_stream_run`:
//! `Message`, `Error`, `Interrupt`, `Done`, `PING`) and keeps what a caller needs (the
//! run's id and trace page, usage, the output, how it ended), while a `Sink` sees every
//! event as it arrives and each Message's content as it streams.
//!
//! Names are compared without regard to case: a self-hosted Coze Studio before v0.3.0
//! sent `message`, `done`, `interrupt` (coze-dev/coze-studio issue #2007, fixed by
//! PR #2030), and sends a lower-case `error` with plain-text data for a failure inside
//! the stream. `PING` is a heartbeat: nobody is told of it. `Done`, `Error` and
//! `Interrupt` each end the stream (coze-studio's `convertStreamRunEvent` sends `Done`
//! only for a run that succeeded; coze.cn's examples end the same way). Unknown events
//! go to the sink and change nothing. 64-bit ids that arrive as JSON numbers keep
//! their digits (serde_json keeps integers exact) and are kept as text.

use std::io;

use serde_json::{Map, Value};

use super::output;
use super::question;
use crate::error::{ApiCode, ApiError, Error};
use crate::protocol::Question;
use crate::support::url;
use crate::wire::event_data::{self, fits_one_line, Data};
use crate::wire::json_pick;

/// Receives a workflow run as it happens. An error (a closed stdout) stops the run.
pub trait Sink {
    /// Every event but `PING`, lossless: its name as sent, its `seq` (the event's `id:`
    /// line: the stream numbers its events, from 0 again after an answer), its data
    /// (the server's JSON text as it came when it can pass so, else a value; data
    /// that is not JSON, as a string).
    fn event(&mut self, name: &str, seq: Option<&str>, data: Data<'_>) -> io::Result<()>;
    /// The content of one `Message`, as it streams (a question node's question, sent
    /// as JSON, is not content: the run asks it when it stops).
    fn message(&mut self, _text: &str) -> io::Result<()> {
        Ok(())
    }
    /// Whether [`event`](Self::event) wants every event. When it does not, a Message's
    /// data skips the generic JSON tree and is read for the few fields used.
    fn wants_events(&self) -> bool {
        true
    }
    /// Whether the state should keep the run's output (the last node's content) for a
    /// record written at the end. A printer that streams it says no, so its memory
    /// does not grow with the run.
    fn keeps_output(&self) -> bool {
        true
    }
    /// Called before the stream reader may block for more input: whatever the sink
    /// has buffered must go out now.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The workflow events the machine acts on, named without regard to case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    /// `Message`: a node's output, streamed.
    Message,
    /// `Done`: the run succeeded.
    Done,
    /// `Error`: the run failed.
    Error,
    /// `Interrupt`: the run waits for an answer.
    Interrupt,
    /// `PING`: a heartbeat while the run is busy.
    Ping,
    /// Anything else: passed on, nothing kept.
    Other,
}

impl EventKind {
    /// The kind of the event named `name` (`Message`, `message`, `MESSAGE`…).
    fn of(name: &str) -> EventKind {
        // Nearly every event of a long run.
        if name == "Message" {
            return EventKind::Message;
        }
        const KINDS: [(&str, EventKind); 5] = [
            ("Message", EventKind::Message),
            ("Done", EventKind::Done),
            ("Error", EventKind::Error),
            ("Interrupt", EventKind::Interrupt),
            ("PING", EventKind::Ping),
        ];
        KINDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(EventKind::Other, |(_, k)| *k)
    }
}

/// How a run's stream ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// `Done`: the run succeeded.
    Done,
    /// `Error`: the server's code (0 when it gave none) and message.
    Failed {
        /// `error_code`.
        code: i64,
        /// `error_message`, or the plain text of a lower-case `error`.
        message: String,
    },
    /// `Interrupt`: the run waits for an answer.
    Interrupted(Interruption),
}

/// A run stopped at a question or input node.
#[derive(Debug, Clone, PartialEq)]
pub struct Interruption {
    /// `interrupt_data.event_id` (`EXECUTE_ID/N`), passed back verbatim.
    pub event_id: String,
    /// `interrupt_data.type`: 2 a question node, 5 an input node.
    pub interrupt_type: i64,
    /// What it asks.
    pub question: Question,
}

/// What a run's stream produced, complete or not.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// The run's id: from the trace page's address, an interrupt's `event_id`, or a
    /// sync run's answer; 64-bit, as text.
    pub execute_id: Option<String>,
    /// The page that traces the run node by node (valid 7 days).
    pub debug_url: Option<String>,
    /// The `usage` object last reported (coze.cn puts it on the final Message; a
    /// self-hosted Coze Studio sends none).
    pub usage: Option<Value>,
    /// How the stream ended; None while it goes on, or when it was cut.
    pub end: Option<End>,
    /// Events fed so far, heartbeats included (a cut stream's message counts them).
    pub events: u64,
    /// Event data that was not what its name promises (a Message that is not an
    /// object).
    pub malformed: u64,
    /// The logid of the stream's response (or of a sync run's answer).
    pub logid: Option<String>,
    /// The last node's content so far, when the sink keeps the output.
    output: String,
    /// The node `output` belongs to (its `node_id`, else its title).
    output_node: Option<String>,
    /// Some Message was kept in `output`.
    has_output: bool,
    /// The last Message's content: what a question node asked, when its Interrupt
    /// does not say.
    preceding: String,
    /// Reads the Messages, each compared with the one before (they differ in their
    /// content and sequence number).
    messages: json_pick::Picker,
}

/// An id as text: a string, or an integer (a self-hosted Coze Studio sends 64-bit ids
/// as JSON numbers; serde_json keeps their digits). None when absent, empty or of
/// another type.
pub(super) fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The `execute_id` in a trace page's address
/// (`…/work_flow?execute_id=E&space_id=S&workflow_id=W`).
fn execute_id_in(debug_url: &str) -> Option<String> {
    let query = url::parse(debug_url).ok()?.query?;
    url::parse_query(&query)
        .into_iter()
        .find(|(k, v)| k == "execute_id" && !v.is_empty())
        .map(|(_, v)| v)
}

/// How a run ended, known all at once (a sync run's answer, a history), for
/// [`RunState::feed_whole`].
pub(super) enum Whole<'a> {
    /// It succeeded with this output (the end node's text) and usage.
    Output {
        content: String,
        usage: Option<&'a Value>,
    },
    /// It waits at this `interrupt_data`.
    Interrupt(&'a Value),
    /// It failed with the server's code and message.
    Failed { code: i64, message: &'a str },
}

/// A run that failed with the server's `code` and `message`, as an error that keeps its
/// logid and trace page (a stream's `Error` event, a history's `Fail`).
pub(super) fn failure(
    code: i64,
    message: &str,
    logid: Option<String>,
    debug_url: Option<String>,
) -> Error {
    Error::Api(ApiError {
        status: 200,
        code: ApiCode::Coze(code),
        msg: message.to_owned(),
        logid,
        retry_after: None,
        debug_url,
    })
    .context("the workflow failed")
}

/// A code that may come as a number or as text (`"720702204"`); 0 when it says none.
pub(super) fn code_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

impl RunState {
    /// Takes one event as the stream carries it (`data` its text), which the sink
    /// gets as it came when it is JSON that fits on one line ([`Data::checked`]).
    /// Returns true when it ended the stream (`Done`, `Error`, `Interrupt`). A Message
    /// skips the `Value` tree (the hot path of a long run): `json_pick` checks it and
    /// reads its few fields in one pass.
    pub fn feed_text(
        &mut self,
        name: &str,
        seq: Option<&str>,
        data: &str,
        sink: &mut dyn Sink,
    ) -> io::Result<bool> {
        let kind = EventKind::of(name);
        let wanted = sink.wants_events();
        // `usage` is an object, which `pick` declines: a Message with it (the last,
        // on coze.cn) is read whole, for the usage.
        if kind == EventKind::Message && (!wanted || fits_one_line(data)) {
            if let Some([content, title, node, url, None]) = self.messages.pick(
                data,
                ["content", "node_title", "node_id", "debug_url", "usage"],
            ) {
                self.events += 1;
                if wanted {
                    // `pick` read all of it as a JSON parser would: it is JSON.
                    sink.event(name, seq, Data::Json(data))?;
                }
                if let Some(url) = url {
                    self.take_debug_url(&url);
                }
                let node = node.or(title);
                self.message(
                    content.as_deref().unwrap_or_default(),
                    node.as_deref(),
                    sink,
                )?;
                return Ok(false);
            }
        }
        event_data::parsed(data, |v, given| self.feed_as(name, seq, v, given, sink))
    }

    /// Takes one event with its data parsed; see [`feed_text`](Self::feed_text).
    pub fn feed(
        &mut self,
        name: &str,
        seq: Option<&str>,
        data: &Value,
        sink: &mut dyn Sink,
    ) -> io::Result<bool> {
        self.feed_as(name, seq, data, Data::Value(data), sink)
    }

    /// Takes one event whose data the sink gets as `given` (the text it was parsed
    /// from, when that can pass as it came).
    fn feed_as(
        &mut self,
        name: &str,
        seq: Option<&str>,
        data: &Value,
        given: Data<'_>,
        sink: &mut dyn Sink,
    ) -> io::Result<bool> {
        self.events += 1;
        let kind = EventKind::of(name);
        if kind == EventKind::Ping {
            return Ok(false);
        }
        sink.event(name, seq, given)?;
        if let Some(url) = data.get("debug_url").and_then(Value::as_str) {
            self.take_debug_url(url);
        }
        match kind {
            EventKind::Message => {
                if !data.is_object() {
                    self.malformed += 1;
                    return Ok(false);
                }
                if let Some(u) = data.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                }
                let content = match data.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                };
                let node = id_text(data.get("node_id")).or_else(|| id_text(data.get("node_title")));
                self.message(&content, node.as_deref(), sink)?;
                Ok(false)
            }
            EventKind::Done => {
                self.end = Some(End::Done);
                Ok(true)
            }
            EventKind::Error => {
                let end = match data {
                    Value::Object(m) => End::Failed {
                        code: code_of(m.get("error_code").or_else(|| m.get("code"))),
                        message: m
                            .get("error_message")
                            .or_else(|| m.get("msg"))
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("an Error event: {data}")),
                    },
                    Value::String(s) if !s.trim().is_empty() => End::Failed {
                        code: 0,
                        message: s.clone(),
                    },
                    other => End::Failed {
                        code: 0,
                        message: format!("an Error event: {other}"),
                    },
                };
                self.end = Some(end);
                Ok(true)
            }
            EventKind::Interrupt => {
                let Some(asked) = data.get("interrupt_data").filter(|d| d.is_object()) else {
                    self.malformed += 1;
                    self.end = Some(End::Failed {
                        code: 0,
                        message: format!(
                            "the run stopped at an interrupt without interrupt_data: {data}"
                        ),
                    });
                    return Ok(true);
                };
                let event_id = id_text(asked.get("event_id")).unwrap_or_default();
                if self.execute_id.is_none() {
                    self.execute_id = event_id
                        .split_once('/')
                        .map(|(e, _)| e.to_owned())
                        .filter(|e| !e.is_empty());
                }
                let q =
                    question::question(asked.get("data").unwrap_or(&Value::Null), &self.preceding);
                self.end = Some(End::Interrupted(Interruption {
                    event_id,
                    interrupt_type: code_of(asked.get("type")),
                    question: q,
                }));
                Ok(true)
            }
            EventKind::Ping | EventKind::Other => Ok(false),
        }
    }

    /// One Message's content, from node `node`.
    fn message(
        &mut self,
        content: &str,
        node: Option<&str>,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        self.preceding.clear();
        self.preceding.push_str(content);
        if question::is_question_json(content) {
            return Ok(());
        }
        if sink.keeps_output() {
            if self.output_node.as_deref() != node {
                self.output.clear();
                self.output_node = node.map(str::to_owned);
            }
            self.output.push_str(content);
            self.has_output = true;
        }
        sink.message(content)
    }

    /// A run's end known at once (see [`Whole`]), fed with its id and trace page as the
    /// events its stream would have carried: a `Message` holding the output from the
    /// node `End`, then `Done`; an `Interrupt`; an `Error`. They have no `id:`.
    pub(super) fn feed_whole(
        &mut self,
        execute_id: Option<String>,
        debug_url: Option<&str>,
        end: Whole<'_>,
        sink: &mut dyn Sink,
    ) -> io::Result<()> {
        if execute_id.is_some() {
            self.execute_id = execute_id;
        }
        let debug_url = debug_url.filter(|u| !u.is_empty());
        let mut with_url = Map::new();
        if let Some(url) = debug_url {
            self.take_debug_url(url);
            with_url.insert("debug_url".into(), url.into());
        }
        match end {
            Whole::Output { content, usage } => {
                let mut message = Map::new();
                message.insert("content".into(), content.into());
                message.insert("node_title".into(), "End".into());
                message.insert("node_is_finish".into(), true.into());
                if let Some(u) = usage.filter(|u| u.is_object()) {
                    message.insert("usage".into(), u.clone());
                }
                self.feed("Message", None, &Value::Object(message), sink)?;
                self.feed("Done", None, &Value::Object(with_url), sink)?;
            }
            Whole::Interrupt(asked) => {
                with_url.insert("interrupt_data".into(), asked.clone());
                self.feed("Interrupt", None, &Value::Object(with_url), sink)?;
            }
            Whole::Failed { code, message } => {
                with_url.insert("error_code".into(), code.into());
                with_url.insert("error_message".into(), message.into());
                self.feed("Error", None, &Value::Object(with_url), sink)?;
            }
        }
        Ok(())
    }

    /// Keeps the trace page's address, and the run's id from it.
    pub(super) fn take_debug_url(&mut self, url: &str) {
        if url.is_empty() {
            return;
        }
        if self.execute_id.is_none() {
            self.execute_id = execute_id_in(url);
        }
        self.debug_url = Some(url.to_owned());
    }

    /// The run's output, decoded (`output::decode`): the content of the last node
    /// that spoke, when the sink kept it; null when there is none.
    pub fn output(&self) -> Value {
        if self.has_output {
            output::decode(&self.output)
        } else {
            Value::Null
        }
    }

    /// The failure an `Error` event reported (the server's code and message, the
    /// stream's logid, the trace page), if the run ended so.
    pub fn error(&self) -> Option<Error> {
        match &self.end {
            Some(End::Failed { code, message }) => Some(failure(
                *code,
                message,
                self.logid.clone(),
                self.debug_url.clone(),
            )),
            _ => None,
        }
    }

    /// What a resumed stream carries on with: the run's id, trace page and usage
    /// (when it sends none of its own), nothing of how the last stream ended.
    pub fn resumed(&self) -> RunState {
        RunState {
            execute_id: self.execute_id.clone(),
            debug_url: self.debug_url.clone(),
            usage: self.usage.clone(),
            ..RunState::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Records what a sink is told.
    #[derive(Default)]
    struct Record {
        events: Vec<(String, Option<String>)>,
        /// Each event's data as a lossless printer writes it.
        data: Vec<String>,
        text: String,
        fast: bool,
    }

    impl Sink for Record {
        fn event(&mut self, name: &str, id: Option<&str>, data: Data<'_>) -> io::Result<()> {
            self.events.push((name.into(), id.map(str::to_owned)));
            let mut written = Vec::new();
            data.write_to(&mut written)?;
            self.data
                .push(String::from_utf8(written).unwrap_or_default());
            Ok(())
        }
        fn message(&mut self, text: &str) -> io::Result<()> {
            self.text.push_str(text);
            Ok(())
        }
        fn wants_events(&self) -> bool {
            !self.fast
        }
        fn keeps_output(&self) -> bool {
            !self.fast
        }
    }

    fn run(events: &[(&str, Option<&str>, &str)], sink: &mut Record) -> (RunState, bool) {
        let mut st = RunState::default();
        let mut ended = false;
        for (name, id, data) in events {
            assert!(!ended, "an event after the end");
            ended = st.feed_text(name, *id, data, sink).unwrap();
        }
        (st, ended)
    }

    /// Events mode gets each event's data as the server wrote it, whichever way it was
    /// read: a Message read whole, one read by comparison with the one before, a
    /// Message with `usage` (which `pick` declines: parsed by serde_json), and `Done`.
    /// Data over several lines is written from its value, on one line; text that is
    /// not JSON, as a string.
    #[test]
    fn events_get_the_data_as_it_came() {
        let sent = [
            r#"{"content":"\u4f60 0","node_title":"Message","node_seq_id":"0"}"#,
            r#"{"content":"\u4f60 1","node_title":"Message","node_seq_id":"1"}"#,
            r#"{"content": "end" , "usage":{"token_count":1.0e1}}"#,
            "{\"content\":\n\"two lines\"}",
            "not json",
            r#"{"debug_url":"https://x/y?execute_id=7"}"#,
        ];
        let mut sink = Record::default();
        let (st, ended) = run(
            &[
                ("Message", Some("0"), sent[0]),
                ("Message", Some("1"), sent[1]),
                ("Message", Some("2"), sent[2]),
                ("Message", Some("3"), sent[3]),
                ("message", Some("4"), sent[4]),
                ("Done", Some("5"), sent[5]),
            ],
            &mut sink,
        );
        assert!(ended);
        assert_eq!(sink.data[..3], sent[..3]);
        assert_eq!(sink.data[3], r#"{"content":"two lines"}"#);
        assert_eq!(sink.data[4], r#""not json""#);
        assert_eq!(sink.data[5], sent[5]);
        assert_eq!(sink.text, "你 0你 1endtwo lines");
        assert_eq!(st.usage, Some(json!({"token_count": 10.0})));
        assert_eq!(st.malformed, 1, "the Message that is not JSON");
    }

    const DEBUG: &str =
        "https://www.coze.cn/work_flow?execute_id=7404830425073352713&space_id=1&workflow_id=73";

    #[test]
    fn a_run_that_succeeds() {
        let end = json!({"output": {"city": "北京"}}).to_string();
        let final_message = json!({"content": end, "node_title": "End", "node_seq_id": "0",
            "node_is_finish": true, "usage": {"input_count": 1, "output_count": 2, "token_count": 3}})
        .to_string();
        let stream = [
            (
                "Message",
                Some("0"),
                r#"{"content":"0: 你好 🌏\n","node_title":"Message","node_seq_id":"0","node_is_finish":false}"#,
            ),
            ("PING", Some("1"), "{}"),
            (
                "Message",
                Some("2"),
                r#"{"content":"1: 你好 🌏\n","node_title":"Message","node_seq_id":"1","node_is_finish":true}"#,
            ),
            ("Future", Some("3"), r#"{"x":1}"#),
            ("Message", Some("4"), final_message.as_str()),
            ("Done", Some("5"), &format!(r#"{{"debug_url":"{DEBUG}"}}"#)),
        ];
        for fast in [false, true] {
            let mut sink = Record {
                fast,
                ..Record::default()
            };
            let (st, ended) = run(&stream, &mut sink);
            assert!(ended && st.end == Some(End::Done));
            assert_eq!(sink.text, format!("0: 你好 🌏\n1: 你好 🌏\n{end}"));
            assert_eq!(st.events, 6);
            assert_eq!(st.execute_id.as_deref(), Some("7404830425073352713"));
            assert_eq!(st.debug_url.as_deref(), Some(DEBUG));
            // The usage of the final Message, read by either route (json_pick declines
            // nothing here: a data with usage goes the whole way).
            assert_eq!(
                st.usage,
                Some(json!({"input_count": 1, "output_count": 2, "token_count": 3}))
            );
            assert!(st.error().is_none());
            if fast {
                assert_eq!(st.output(), Value::Null, "a streaming sink keeps nothing");
                assert_eq!(sink.events.len(), 3, "the fast route skips Message events");
            } else {
                assert_eq!(st.output(), json!({"output": {"city": "北京"}}));
                let names: Vec<(&str, Option<&str>)> = sink
                    .events
                    .iter()
                    .map(|(n, i)| (n.as_str(), i.as_deref()))
                    .collect();
                assert_eq!(
                    names,
                    [
                        ("Message", Some("0")),
                        ("Message", Some("2")),
                        ("Future", Some("3")),
                        ("Message", Some("4")),
                        ("Done", Some("5"))
                    ],
                    "every event but PING, with its id"
                );
            }
        }
    }

    #[test]
    fn the_output_is_the_last_nodes_content_whole() {
        let mut sink = Record::default();
        let (st, _) = run(
            &[
                (
                    "Message",
                    None,
                    r#"{"content":"noise","node_title":"Message"}"#,
                ),
                (
                    "Message",
                    None,
                    r#"{"content":"{\"a\":","node_title":"End"}"#,
                ),
                ("Message", None, r#"{"content":"1}","node_title":"End"}"#),
                ("Done", None, "{}"),
            ],
            &mut sink,
        );
        assert_eq!(st.output(), json!({"a": 1}));
        // Text that is not JSON stays text; no Message at all is null.
        let (st, _) = run(
            &[(
                "Message",
                None,
                r#"{"content":"Echo: {\"a\":1}","node_title":"End"}"#,
            )],
            &mut Record::default(),
        );
        assert_eq!(st.output(), json!("Echo: {\"a\":1}"));
        assert_eq!(RunState::default().output(), Value::Null);
    }

    /// Studio's dialect: lower-case names (before v0.3.0), an Interrupt without
    /// node_title but with debug_url, the question in the data as JSON, and the
    /// question's Message not printed as text.
    #[test]
    fn an_interrupt_in_either_dialect() {
        let q = json!({"messages": [{"type": "question", "content_type": "option",
            "content": {"options": [{"name": "北京"}, {"name": "上海"}], "question": "哪里?"}}]})
        .to_string();
        let message =
            json!({"content": q, "node_title": "Question", "node_type": "Question"}).to_string();
        let studio =
            json!({"interrupt_data": {"event_id": "7404830425073352713/1", "type": 2, "data": q},
            "debug_url": DEBUG})
            .to_string();
        for (name, interrupt) in [
            ("interrupt", studio.as_str()),
            (
                "Interrupt",
                &json!({"interrupt_data":
            {"event_id": "7404830425073352713/1", "type": 2, "data": ""}, "node_title": "Question"})
                .to_string(),
            ),
        ] {
            let mut sink = Record::default();
            let (st, ended) = run(
                &[
                    ("message", Some("0"), message.as_str()),
                    (name, Some("1"), interrupt),
                ],
                &mut sink,
            );
            assert!(ended);
            assert_eq!(sink.text, "", "the question's JSON is not text");
            let Some(End::Interrupted(i)) = &st.end else {
                panic!("{:?}", st.end)
            };
            assert_eq!(
                (i.event_id.as_str(), i.interrupt_type),
                ("7404830425073352713/1", 2)
            );
            assert_eq!(i.question.text, "哪里?");
            assert_eq!(i.question.options, ["北京", "上海"]);
            assert_eq!(st.execute_id.as_deref(), Some("7404830425073352713"));
            assert!(st.error().is_none());
        }
        // Numeric ids (Studio) keep all their digits.
        assert_eq!(
            id_text(Some(&serde_json::from_str("7404830425073352713").unwrap())).as_deref(),
            Some("7404830425073352713")
        );
        assert_eq!(id_text(Some(&json!(1.5))), None);
    }

    #[test]
    fn failures_in_every_shape() {
        let (st, ended) = run(
            &[(
                "Error",
                Some("0"),
                r#"{"error_code":4000,"error_message":"Request parameter error","debug_url":"https://x/work_flow?execute_id=9"}"#,
            )],
            &mut Record::default(),
        );
        assert!(ended);
        let e = st.error().unwrap();
        assert_eq!(
            e.to_string(),
            "the workflow failed: code 4000: Request parameter error"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.api().and_then(|a| a.debug_url.as_deref()),
            Some("https://x/work_flow?execute_id=9")
        );
        assert_eq!(st.execute_id.as_deref(), Some("9"));
        // Studio's lower-case `error` without an id, its data plain text.
        let (st, _) = run(
            &[("error", None, "stream broke: internal")],
            &mut Record::default(),
        );
        assert_eq!(
            st.error().unwrap().to_string(),
            "the workflow failed: stream broke: internal"
        );
        // A code as text; a rate limit keeps its exit code.
        let (st, _) = run(
            &[(
                "Error",
                None,
                r#"{"error_code":"4013","error_message":"slow"}"#,
            )],
            &mut Record::default(),
        );
        assert_eq!(st.error().unwrap().exit_code(), 6);
        // Data that is not what the name promises is counted, never a panic.
        let (st, ended) = run(
            &[("Message", None, "not json"), ("Interrupt", None, "{}")],
            &mut Record::default(),
        );
        assert!(ended);
        assert_eq!(st.malformed, 2);
        assert!(st
            .error()
            .unwrap()
            .to_string()
            .contains("without interrupt_data"));
    }

    /// A whole stream as bytes, read through the SSE reader with the bytes cut at
    /// every point, by both routes: the same text, events, output and end each time.
    #[test]
    fn a_stream_cut_at_every_byte_gives_the_same_run() {
        use crate::wire::sse::SseReader;
        use crate::wire::test_io::Chunked;
        use std::io::BufReader;
        let stream = "id: 0\nevent: Message\ndata: {\"content\":\"0: 你好 🌏\\n\",\"node_title\":\"Message\",\"node_seq_id\":\"0\",\"node_is_finish\":true}\n\n\
                      id: 1\nevent: PING\ndata: {}\n\n\
                      id:2\r\nevent:Message\r\ndata:{\"content\":\"{\\\"output\\\":1}\",\"node_title\":\"End\",\"usage\":{\"token_count\":3}}\r\n\r\n\
                      id: 3\nevent: done\ndata: {\"debug_url\":\"https://x/work_flow?execute_id=7404830425073352713\"}\n\n";
        let read = |bytes: &[u8], cut: usize, fast: bool| {
            let mut r = SseReader::new(BufReader::with_capacity(3, Chunked::new(bytes, &[cut])));
            let mut st = RunState::default();
            let mut sink = Record {
                fast,
                ..Record::default()
            };
            while let Some(ev) = r.next_event().unwrap() {
                if st
                    .feed_text(&ev.event, ev.id.as_deref(), &ev.data, &mut sink)
                    .unwrap()
                {
                    break;
                }
            }
            (
                sink.text,
                sink.events,
                st.output(),
                st.end,
                st.usage,
                st.execute_id,
                st.events,
            )
        };
        for fast in [false, true] {
            let want = read(stream.as_bytes(), 0, fast);
            assert_eq!(want.0, "0: 你好 🌏\n{\"output\":1}");
            assert_eq!(want.3, Some(End::Done));
            assert_eq!(want.5.as_deref(), Some("7404830425073352713"));
            assert_eq!(want.6, 4);
            if !fast {
                assert_eq!(want.2, json!({"output": 1}));
            }
            for cut in 0..=stream.len() {
                assert_eq!(
                    read(stream.as_bytes(), cut, fast),
                    want,
                    "cut {cut} fast {fast}"
                );
            }
        }
    }

    /// Every Message shape and the unreadable ones, both routes: never a panic, never
    /// the end of the stream.
    #[test]
    fn unreadable_messages_never_panic() {
        for data in [
            "",
            "{",
            "[]",
            "null",
            r#"{"content":null}"#,
            r#"{"content":{"a":1}}"#,
            r#"{"content":"x","content":"y"}"#,
            r#"{"content":"\ud800"}"#,
            r#"{"node_id":7,"content":"x"}"#,
        ] {
            for fast in [false, true] {
                let mut sink = Record {
                    fast,
                    ..Record::default()
                };
                let mut st = RunState::default();
                assert!(
                    !st.feed_text("Message", None, data, &mut sink).unwrap(),
                    "{data}"
                );
            }
        }
    }
}
