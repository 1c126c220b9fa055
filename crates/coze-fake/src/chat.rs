//! Chat v3 (the Coze API docs, `chat_v3`): create (streamed or polled), retrieve, the
//! chat's message list and cancel, plus the fake bot: a deterministic answer (an echo
//! of the prompt with CJK and emoji, cut into deltas that end mid-run so clients must
//! handle multi-byte text) whose length, pace, wire style and failures tests can steer
//! with `/_fake/bot` and queued faults. Streams write events in the real order and
//! flush only before a pause or every ~16 KiB, so a 200,000-delta bench is bound by the
//! client, not by us. With the `tools` setting the bot first asks rounds of local tool
//! calls and `submit_tool_outputs` continues the chat ([`tools`]). In the Studio dialect
//! the same bot answers, bound and shaped by [`studio`].

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conversations::{enter_message, message, NOT_FOUND};
use crate::http::{ChunkedOut, Reply, Request, StreamEnd};
use crate::router::{err, ok, Ctx};
use crate::state::{Chat, ChatStatus, Ending};
use crate::util::{json_escape_into, new_id, now_s};
use crate::{App, Dialect};

pub mod studio;
pub mod tools;

/// How the `done` event's data looks: the Coze API docs' `"[DONE]"`, the bare `[DONE]`
/// of their overview, or a workflow chat's `debug_url` object (coze-go's
/// `doParseChatEvent` accepts all three).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Done {
    #[default]
    Quoted,
    Bare,
    DebugUrl,
}

/// SSE wire style; the default is the real examples' `event:x\ndata:{...}\n\n`.
#[derive(Clone, Debug, Default)]
pub struct Style {
    pub space: bool,
    pub crlf: bool,
    pub multiline_data: bool,
    /// Every non-ASCII character of the data escaped (`\u6625`), as Python's
    /// `json.dumps` writes JSON by default: the same text, other bytes.
    pub ascii: bool,
    pub comments: bool,
    pub done: Done,
    pub split_writes: bool,
    /// The stream ends right after its last event's `data:` line, without the blank
    /// line after it.
    pub no_final_blank_line: bool,
    /// The stream ends right after its last event's data, without even the data
    /// line's own line end: the official Python SDK's recorded test streams
    /// (coze-dev/coze-py `tests/testdata/chat_text_stream_resp.txt`) end so.
    pub no_final_newline: bool,
}

impl Style {
    /// How many bytes of each event's end wait until the next event is written, so
    /// that the last event goes out without them. (Each event therefore reaches the
    /// client only when the next one starts.)
    fn held_back(&self) -> usize {
        let nl = if self.crlf { 2 } else { 1 };
        if self.no_final_newline {
            2 * nl
        } else if self.no_final_blank_line {
            nl
        } else {
            0
        }
    }
}

/// The bot's behaviour, set by `POST /_fake/bot`; `None` means "use the fake's options".
#[derive(Clone, Debug, Default)]
pub struct Bot {
    pub deltas: Option<usize>,
    pub delta_delay_ms: Option<u64>,
    pub first_delta_hold_ms: u64,
    pub latency_ms: Option<u64>,
    pub reasoning: bool,
    pub style: Style,
    /// Tool calls the bot makes before it answers (coze dialect only).
    pub tools: Option<tools::Tools>,
}

impl Bot {
    /// The settings `v` asks for; Err names a `tools` field that is wrong (the older
    /// settings take what they can read, as they always have).
    pub fn from_json(v: &Value) -> Result<Bot, String> {
        let u = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64);
        let b = |o: &Value, k: &str| o.get(k).and_then(Value::as_bool).unwrap_or(false);
        let st = v.get("style").cloned().unwrap_or(json!({}));
        let tools = tools::Tools::from_json(v.get("tools").unwrap_or(&Value::Null))?;
        Ok(Bot {
            deltas: u(v, "deltas").map(|n| n as usize),
            delta_delay_ms: u(v, "delta_delay_ms"),
            first_delta_hold_ms: u(v, "first_delta_hold_ms").unwrap_or(0),
            latency_ms: u(v, "latency_ms"),
            reasoning: b(v, "reasoning"),
            style: Style {
                space: b(&st, "space"),
                crlf: b(&st, "crlf"),
                multiline_data: b(&st, "multiline_data"),
                ascii: b(&st, "ascii"),
                comments: b(&st, "comments"),
                split_writes: b(&st, "split_writes"),
                no_final_blank_line: b(&st, "no_final_blank_line"),
                no_final_newline: b(&st, "no_final_newline"),
                done: match st.get("done").and_then(Value::as_str) {
                    Some("bare") => Done::Bare,
                    Some("debug_url") => Done::DebugUrl,
                    _ => Done::Quoted,
                },
            },
            tools,
        })
    }

    pub fn to_json(&self) -> Value {
        let s = &self.style;
        json!({
            "deltas": self.deltas,
            "delta_delay_ms": self.delta_delay_ms,
            "first_delta_hold_ms": self.first_delta_hold_ms,
            "latency_ms": self.latency_ms,
            "reasoning": self.reasoning,
            "style": {
                "space": s.space, "crlf": s.crlf, "multiline_data": s.multiline_data,
                "ascii": s.ascii, "comments": s.comments, "split_writes": s.split_writes,
                "no_final_blank_line": s.no_final_blank_line, "no_final_newline": s.no_final_newline,
                "done": match s.done { Done::Quoted => "quoted", Done::Bare => "bare", Done::DebugUrl => "debug_url" },
            },
            "tools": self.tools.as_ref().map(tools::Tools::to_json),
        })
    }
}

/// The answer text and where each delta ends (byte offsets, always on char boundaries).
pub struct Answer {
    pub full: String,
    pub cuts: Vec<usize>,
}

const SEASONS: [char; 4] = ['春', '夏', '秋', '冬'];

/// The deterministic answer to `prompt`: the echo in 3-character deltas, followed by
/// `note` (the attachments received, see [`crate::objects::note`]), or with `deltas: N`
/// a long answer of N one-character deltas.
pub fn answer_for(prompt: &str, note: &str, deltas: Option<usize>) -> Answer {
    match deltas {
        Some(n) => cut_every((0..n).map(|i| SEASONS[i % 4]).collect::<String>(), 1),
        None => cut_every(answer_text(prompt) + note, 3),
    }
}

/// `full` in deltas of 3 characters, or of as many as keep a long text (a tool's
/// output echoed) to about 100 deltas.
pub(crate) fn cut(full: &str) -> Answer {
    let per = full.chars().count().div_ceil(100).max(3);
    cut_every(full.to_string(), per)
}

/// `full` in deltas of `per` characters.
fn cut_every(full: String, per: usize) -> Answer {
    let mut cuts = Vec::new();
    let mut count = 0;
    for (i, c) in full.char_indices() {
        count += 1;
        if count % per == 0 {
            cuts.push(i + c.len_utf8());
        }
    }
    if cuts.last() != Some(&full.len()) && !full.is_empty() {
        cuts.push(full.len());
    }
    Answer { full, cuts }
}

/// The echo answer (public so tests of clients can compute what to expect).
pub fn answer_text(prompt: &str) -> String {
    format!("收到：「{prompt}」👍 这是扣子假机器人的回答。")
}

/// The three follow-up suggestions.
pub fn follow_ups(prompt: &str) -> [String; 3] {
    [
        format!("再说一次「{prompt}」？"),
        format!("「{prompt}」是什么意思？"),
        "还有别的问题吗？".to_string(),
    ]
}

const REASONING: [&str; 3] = ["让我想想", "……这个问题", "很简单。"];

pub(crate) const VERBOSE: &str = r#"{"msg_type":"generate_answer_finish","data":"{\"finish_reason\":0,\"FinData\":\"\"}","from_module":null,"from_unit":null}"#;

/// The text of the query: the last user message (object_string: its text object; one
/// of only files: the text message next to it).
fn prompt_of(msgs: &[Value]) -> String {
    let Some(i) = msgs
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    let text = |m: &Value| -> Option<String> {
        let content = m.get("content").and_then(Value::as_str).unwrap_or("");
        if m.get("content_type").and_then(Value::as_str) == Some("object_string") {
            crate::objects::text_of(content).filter(|t| !t.is_empty())
        } else {
            Some(content.to_string())
        }
    };
    text(&msgs[i])
        .or_else(|| i.checked_sub(1).and_then(|j| text(&msgs[j])))
        .unwrap_or_default()
}

/// Stream faults the chat module applies itself.
const STREAM_FAULTS: &[&str] = &[
    "stall",
    "cut",
    "error_event",
    "chat_failed",
    "requires_action",
    "malformed",
    "reset_mid_body",
];

/// The text of the fake's refusal of a second chat in a busy conversation.
const BUSY: &str = "A chat is already in progress in this conversation. Please wait for it to finish or cancel it.";

/// A `/v3/chat` request once bound, whichever dialect's rules bound it.
pub struct ChatRequest {
    pub bot_id: String,
    /// Recorded on a conversation the chat creates (Studio's `user_id` of it).
    pub user_id: String,
    pub stream: bool,
    pub auto_save: bool,
    pub additional: Vec<Value>,
    pub meta: Value,
    /// The query's `conversation_id`, when not empty.
    pub conversation_id: Option<String>,
    /// The files and images of its object_string messages, once checked.
    pub attachments: Vec<crate::objects::Attachment>,
}

/// coze.cn's binding: 4000 envelopes, checked in this order.
fn bind(req: &Request, ctx: &Ctx) -> Result<ChatRequest, Reply> {
    let Some(body) = req.json().filter(Value::is_object) else {
        return Err(err(
            ctx,
            4000,
            "invalid parameter: request body must be a JSON object",
        ));
    };
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let Some(bot_id) = s("bot_id").map(str::to_string) else {
        return Err(err(ctx, 4000, "invalid parameter: bot_id is required"));
    };
    let Some(user_id) = s("user_id").map(str::to_string) else {
        return Err(err(ctx, 4000, "invalid parameter: user_id is required"));
    };
    let additional = body
        .get("additional_messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if additional.len() > 100 {
        return Err(err(
            ctx,
            4000,
            "invalid parameter: at most 100 additional_messages",
        ));
    }
    Ok(ChatRequest {
        bot_id,
        user_id,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        auto_save: body
            .get("auto_save_history")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        additional,
        meta: body
            .get("meta_data")
            .filter(|m| m.is_object())
            .cloned()
            .unwrap_or(json!({})),
        conversation_id: req
            .query("conversation_id")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        attachments: Vec::new(),
    })
}

/// Why a bound chat did not start.
enum Refused {
    UnknownConversation,
    Busy,
}

/// A chat that started: what its answer (polled or streamed) needs.
struct Started {
    chat_id: String,
    conv_id: String,
    /// The non-streamed answer, the chat as created.
    sync_reply: Reply,
    phase: Phase,
    bot: Bot,
    latency_ms: u64,
    fault: Option<Value>,
    ending: Ending,
    cancel: Arc<AtomicBool>,
}

/// POST /v3/chat.
pub fn create(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let studio = app.opts.dialect == Dialect::Studio;
    let bound = if studio {
        studio::bind(req)
    } else {
        bind(req, ctx)
    };
    let mut cr = match bound {
        Ok(cr) => cr,
        Err(reply) => return reply,
    };
    if studio {
        if let Err(msg) = studio::check_messages(&cr.additional) {
            return studio::refused(app, cr.stream, msg);
        }
    }
    // The object_string rules, the same in both dialects; a file_id must be one this
    // token's account uploaded.
    let owner = crate::files::owner(app, req);
    let checked = {
        let st = app.lock();
        crate::objects::check(&cr.additional, &|id| {
            st.file(id, &owner).map(|f| f.file_name.clone())
        })
    };
    match checked {
        Ok(found) => cr.attachments = found,
        Err(msg) if studio => return studio::refused(app, cr.stream, &msg),
        Err(msg) => return err(ctx, 4000, &format!("invalid parameter: {msg}")),
    }
    let started = match start(app, ctx, &cr) {
        Ok(s) => s,
        Err(Refused::UnknownConversation) => return err(ctx, NOT_FOUND.0, NOT_FOUND.1),
        // Studio itself never refuses a second chat in a conversation (nothing in
        // `OpenapiAgentRun` checks for one); the fake still does, so that tests keep
        // seeing a client that overlaps chats, and says so the way Studio reports any
        // failure after binding.
        Err(Refused::Busy) if studio => return studio::refused(app, cr.stream, BUSY),
        Err(Refused::Busy) => return err(ctx, 4016, BUSY),
    };
    if cr.stream {
        stream_answer(app, started, studio)
    } else {
        sync_answer(ctx, started)
    }
}

fn fault_type(fault: &Option<Value>) -> &str {
    fault
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// How a chat will end, from the stream fault it took.
fn ending_of(fault: &Option<Value>, studio: bool) -> Ending {
    let f = |k: &str| fault.as_ref().and_then(|f| f.get(k));
    match fault_type(fault) {
        "chat_failed" => Ending::Fail(
            // Studio stores every run failure under one code (`Run`'s deferred
            // `StepToFailed` in backend/domain/conversation/agentrun/internal/run.go).
            if studio {
                studio::AGENT_RUN_ERROR
            } else {
                f("code").and_then(Value::as_i64).unwrap_or(5000)
            },
            f("msg")
                .and_then(Value::as_str)
                .unwrap_or("event interval error")
                .to_string(),
        ),
        "requires_action" => Ending::RequiresAction,
        _ => Ending::Complete,
    }
}

/// Take the stream fault this chat applies, if the request fired one.
fn take_stream_fault(ctx: &mut Ctx, studio: bool) -> Option<Value> {
    let fault = if STREAM_FAULTS.contains(&ctx.fault_type()) {
        ctx.fault.take()
    } else {
        None
    };
    // Studio never emits requires_action on the OpenAPI stream: an agent's interrupt
    // becomes an ordinary answer message and the run completes (`handlerInterrupt` in
    // backend/domain/conversation/agentrun/internal/message_event.go), and `pullStream`
    // in backend/application/conversation/openapi_agent_run.go drops any event it does
    // not know. So in this dialect the fault is spent and the chat completes normally.
    if studio && fault_type(&fault) == "requires_action" {
        return None;
    }
    fault
}

/// The conversation a chat runs in: the query's, or a new one — coze.cn refuses an
/// unknown id, Studio starts a new conversation for it (`checkConversation` in
/// backend/application/conversation/openapi_agent_run.go).
fn conversation_for(
    st: &mut crate::state::State,
    cr: &ChatRequest,
    studio: bool,
) -> Result<String, Refused> {
    match cr.conversation_id.as_deref() {
        Some(c) if st.conversations.contains_key(c) => Ok(c.to_string()),
        Some(_) if !studio => Err(Refused::UnknownConversation),
        _ => {
            let id = st.new_conversation(&cr.bot_id, crate::oauth::USER_ID);
            if studio {
                if let Some(c) = st.conversations.get_mut(&id) {
                    c.meta_data = Value::Null;
                    c.user_id = cr.user_id.clone();
                }
            }
            Ok(id)
        }
    }
}

/// Store the request's messages in the conversation. Studio files the messages before
/// the query under a run record of their own (`Run` creates `additionalRunRecord`), so
/// only the query carries this chat's id there.
fn save_messages(
    conv: &mut crate::state::Conversation,
    cr: &ChatRequest,
    chat_id: &str,
    studio: bool,
) {
    let query = match cr.additional.last() {
        Some(m) if m.get("role").and_then(Value::as_str) == Some("user") => {
            Some(cr.additional.len() - 1)
        }
        _ => None,
    };
    let earlier_run = if studio { new_id() } else { String::new() };
    let section = conv.last_section_id.clone();
    for (i, m) in cr.additional.iter().enumerate() {
        let mut stored = enter_message(&conv.id, &section, m);
        let run = if studio && Some(i) != query {
            &earlier_run
        } else {
            chat_id
        };
        stored["chat_id"] = json!(run);
        stored["bot_id"] = json!(cr.bot_id);
        conv.messages.push(stored);
    }
}

/// The answer, verbose and follow-up messages of a chat.
fn answer_messages(
    conv_id: &str,
    section: &str,
    chat_ref: (&str, &str),
    prompt: &str,
    answer: &Answer,
) -> Vec<Value> {
    let chat_ref = Some(chat_ref);
    let mut msgs = vec![
        message(
            conv_id,
            section,
            "assistant",
            "answer",
            &answer.full,
            "text",
            chat_ref,
            json!({}),
        ),
        message(
            conv_id,
            section,
            "assistant",
            "verbose",
            VERBOSE,
            "text",
            chat_ref,
            json!({}),
        ),
    ];
    for f in follow_ups(prompt) {
        msgs.push(message(
            conv_id,
            section,
            "assistant",
            "follow_up",
            &f,
            "text",
            chat_ref,
            json!({}),
        ));
    }
    msgs
}

/// Start the chat: pick its conversation, refuse it when that one is busy, save the
/// request's messages and record the chat with its answer ready to go out.
fn start(app: &Arc<App>, ctx: &mut Ctx, cr: &ChatRequest) -> Result<Started, Refused> {
    let studio = app.opts.dialect == Dialect::Studio;
    let prompt = prompt_of(&cr.additional);
    let mut st = app.lock();
    let bot = st.bot.clone();
    let conv_id = conversation_for(&mut st, cr, studio)?;
    ctx.conversation_id = Some(conv_id.clone());
    st.settle(&conv_id);
    let conv = st.conversations.get_mut(&conv_id).expect("checked above");
    // Count the attempt even when it is refused: the stat tells whether a client ever
    // asked for two chats at once in one conversation.
    let observed = conv.chats_in_flight as u64 + 1;
    let busy = conv.chats_in_flight > 0;
    if conv.bot_id.is_empty() {
        conv.bot_id = cr.bot_id.clone();
    }
    let section = conv.last_section_id.clone();
    st.stats.max_chats_in_flight_per_conversation =
        st.stats.max_chats_in_flight_per_conversation.max(observed);
    if busy {
        st.stats.busy_refusals += 1;
        return Err(Refused::Busy);
    }
    let chat_id = new_id();
    let conv = st.conversations.get_mut(&conv_id).expect("checked above");
    conv.chats_in_flight += 1;
    if cr.auto_save {
        save_messages(conv, cr, &chat_id, studio);
    }
    st.stats.chats += 1;

    let answer = answer_for(&prompt, &crate::objects::note(&cr.attachments), bot.deltas);
    let mut msgs = answer_messages(&conv_id, &section, (&cr.bot_id, &chat_id), &prompt, &answer);
    let input = prompt.chars().count() as u64 + 12;
    let output = answer.full.chars().count() as u64;
    let latency_ms = bot.latency_ms.unwrap_or(app.opts.chat_latency_ms);
    let fault = take_stream_fault(ctx, studio);
    let mut ending = ending_of(&fault, studio);
    // The tool-calling bot asks its first round instead of answering; the
    // requires_action fault asks one call of its own. (Studio has neither: see
    // `take_stream_fault`.)
    let run = match (&bot.tools, &ending) {
        (_, Ending::RequiresAction) => {
            Some(tools::ToolRun::new(tools::Tools::fault_default(), &prompt))
        }
        (Some(t), Ending::Complete) if !studio => {
            ending = Ending::RequiresAction;
            Some(tools::ToolRun::new(t.clone(), &prompt))
        }
        _ => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let mut chat = Chat {
        id: chat_id.clone(),
        conversation_id: conv_id.clone(),
        bot_id: cr.bot_id.clone(),
        section_id: section.clone(),
        created_at: now_s(),
        completed_at: None,
        failed_at: None,
        meta_data: cr.meta.clone(),
        status: if cr.stream {
            ChatStatus::Created
        } else {
            ChatStatus::InProgress
        },
        last_error: (0, String::new()),
        usage: (0, 0),
        final_usage: (input, output),
        required_action: None,
        messages: Vec::new(),
        auto_save: cr.auto_save,
        ready_at: if cr.stream {
            None
        } else {
            Some(Instant::now() + Duration::from_millis(latency_ms))
        },
        ending: ending.clone(),
        cancel: cancel.clone(),
        cancel_marked: false,
        holds_conversation: true,
        tools: None,
    };
    let phase = match run {
        Some(run) => {
            // The fault asks at once, with no message before.
            let asked = if fault_type(&fault) == "requires_action" {
                Vec::new()
            } else {
                run.ask_messages(&chat)
            };
            chat.messages = asked.clone();
            chat.tools = Some(run);
            Phase::Ask(asked)
        }
        None => {
            chat.messages = msgs.clone();
            let msg = msgs.remove(0);
            Phase::Answer {
                answer,
                msg,
                after: msgs,
            }
        }
    };
    let sync_reply = if studio {
        studio::sync_answer(&chat)
    } else {
        ok(ctx, chat.to_json())
    };
    if chat.ready_at.is_some() {
        st.polled.insert(chat_id.clone());
    }
    st.chats.insert(chat_id.clone(), chat);
    Ok(Started {
        chat_id,
        conv_id,
        sync_reply,
        phase,
        bot,
        latency_ms,
        fault,
        ending,
        cancel,
    })
}

/// The non-streamed answer: the chat as created; the client polls retrieve.
fn sync_answer(ctx: &mut Ctx, s: Started) -> Reply {
    // Stream-only faults are meaningless without a stream; put back any the chat did
    // not use (e.g. reset_mid_body applies to the JSON body).
    if fault_type(&s.fault) == "reset_mid_body" {
        ctx.fault = s.fault;
    }
    let mut r = s.sync_reply;
    r.conversation_id = Some(s.conv_id);
    r
}

/// The streamed answer: headers now, the events from `Plan::run`.
fn stream_answer(app: &Arc<App>, s: Started, studio: bool) -> Reply {
    let plan = Plan {
        app: app.clone(),
        chat_id: s.chat_id,
        opening: true,
        before: Vec::new(),
        phase: s.phase,
        reasoning: s.bot.reasoning,
        delay_ms: s.bot.delta_delay_ms.unwrap_or(app.opts.delta_delay_ms),
        hold_ms: s.bot.first_delta_hold_ms,
        latency_ms: s.latency_ms,
        style: s.bot.style.clone(),
        fault: s.fault,
        ending: s.ending,
        cancel: s.cancel,
        studio,
    };
    let mut r = if studio {
        studio::sse_reply()
    } else {
        Reply::new(200, "text/event-stream; charset=utf-8", Vec::new())
    };
    r.stream = Some(Box::new(move |out: &mut ChunkedOut<'_>| plan.run(out)));
    r.conversation_id = Some(s.conv_id);
    r
}

/// What a stream says after `in_progress`.
enum Phase {
    /// The answer: `answer` in deltas (after the reasoning ones when asked), its
    /// message `msg` completed, then the messages `after` it completed.
    Answer {
        answer: Answer,
        msg: Value,
        after: Vec<Value>,
    },
    /// A round of tool calls: these messages (answer messages in deltas, then
    /// completed; the others completed), then `conversation.chat.requires_action`.
    Ask(Vec<Value>),
}

/// Everything a stream needs once the request handler has returned.
struct Plan {
    app: Arc<App>,
    chat_id: String,
    /// Starts the chat (`conversation.chat.created` first); a continuation after
    /// submit_tool_outputs starts at `in_progress`.
    opening: bool,
    /// Messages completed right after `in_progress` (the tool_response ones).
    before: Vec<Value>,
    phase: Phase,
    reasoning: bool,
    delay_ms: u64,
    hold_ms: u64,
    latency_ms: u64,
    style: Style,
    fault: Option<Value>,
    ending: Ending,
    cancel: Arc<AtomicBool>,
    /// Speak Studio's dialect of the stream.
    studio: bool,
}

/// Why a stream stopped early.
enum Stop {
    /// End the body cleanly with no `done` (cut fault, cancel).
    Clean,
    /// Already wrote its final events (error / failed); end the body.
    Ended,
    /// Reset the connection (fault).
    Abort,
    /// The client went away.
    Gone,
}

/// Append one event to `b` in `style`: `event:NAME` and `data:…` lines (one per line
/// of pretty JSON with `multiline_data`), optionally preceded by a comment.
pub(crate) fn format_event(style: &Style, name: &str, data: &[u8], b: &mut Vec<u8>) {
    let st = style;
    let nl: &[u8] = if st.crlf { b"\r\n" } else { b"\n" };
    let sep: &[u8] = if st.space { b": " } else { b":" };
    if st.comments {
        b.extend_from_slice(b": keep-alive");
        b.extend_from_slice(nl);
        b.extend_from_slice(nl);
    }
    b.extend_from_slice(b"event");
    b.extend_from_slice(sep);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(nl);
    let pretty = if st.multiline_data {
        serde_json::from_slice::<Value>(data)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
    } else {
        None
    };
    match pretty {
        Some(p) => {
            for line in p.lines() {
                b.extend_from_slice(b"data");
                b.extend_from_slice(sep);
                b.extend_from_slice(line.as_bytes());
                b.extend_from_slice(nl);
            }
        }
        None => {
            b.extend_from_slice(b"data");
            b.extend_from_slice(sep);
            match std::str::from_utf8(data) {
                Ok(text) if st.ascii => ascii_escaped(text, b),
                _ => b.extend_from_slice(data),
            }
            b.extend_from_slice(nl);
        }
    }
    b.extend_from_slice(nl);
}

/// `text` (JSON) with every non-ASCII character written as `\uXXXX` (a surrogate pair
/// past the BMP). In JSON such characters can only stand inside strings, where the
/// escape means the same character.
fn ascii_escaped(text: &str, b: &mut Vec<u8>) {
    for c in text.chars() {
        if c.is_ascii() {
            b.push(c as u8);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            b.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
        }
    }
}

struct Emitter<'a, 'b> {
    out: &'a mut ChunkedOut<'b>,
    style: Style,
    events: usize,
    fault: Option<Value>,
    after: usize,
    cancel: Arc<AtomicBool>,
    app: Arc<App>,
    scratch: Vec<u8>,
    /// Set when an `error` event ended the stream: the chat then failed.
    failed: Option<(i64, String)>,
    /// Studio's `error` events default to its run-error code.
    studio: bool,
    /// The end of the last event, held back by `Style::held_back` until the next one.
    held: Vec<u8>,
    /// The body has ended the chat on the server (see `Plan::settle`).
    settled: bool,
}

impl Emitter<'_, '_> {
    fn flush(&mut self) -> Result<(), Stop> {
        self.out.flush().map_err(|_| Stop::Gone)
    }

    fn pause(&mut self, ms: u64) -> Result<(), Stop> {
        if ms > 0 {
            self.flush()?;
            self.app.sleep_ms(ms);
        }
        Ok(())
    }

    /// Format one event into `scratch` in the configured wire style.
    fn format(&mut self, name: &str, data: &[u8]) {
        self.scratch.clear();
        format_event(&self.style, name, data, &mut self.scratch);
    }

    /// Write what the last event held back: another event follows it.
    fn release(&mut self) {
        self.out.buf.append(&mut self.held);
    }

    /// Write `scratch` to the body, in two flushed writes when `split_writes` is on.
    fn put(&mut self) -> Result<(), Stop> {
        self.release();
        let keep = self.scratch.len() - self.style.held_back().min(self.scratch.len());
        self.held.extend_from_slice(&self.scratch[keep..]);
        self.scratch.truncate(keep);
        if self.style.split_writes {
            // Split just after the first byte of a multi-byte character when there is
            // one, so the client's reads end inside a UTF-8 sequence.
            let at = self
                .scratch
                .iter()
                .position(|&c| c >= 0xC0)
                .map(|i| i + 1)
                .unwrap_or(self.scratch.len() / 2);
            self.out.buf.extend_from_slice(&self.scratch[..at]);
            self.flush()?;
            std::thread::sleep(Duration::from_millis(2));
            self.out.buf.extend_from_slice(&self.scratch[at..]);
            return self.flush();
        }
        self.out.buf.extend_from_slice(&self.scratch);
        if self.out.buf.len() >= 16 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    fn raw(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        self.format(name, data);
        self.put()
    }

    /// Emit one counted event, firing a pending `after_events` fault first.
    fn event(&mut self, name: &str, data: &[u8]) -> Result<(), Stop> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Stop::Clean);
        }
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
                    let default_code = if self.studio {
                        studio::AGENT_RUN_ERROR
                    } else {
                        5000
                    };
                    let e = json!({
                        "code": f.get("code").and_then(Value::as_i64).unwrap_or(default_code),
                        "msg": f.get("msg").and_then(Value::as_str).unwrap_or("internal error"),
                    });
                    self.raw("error", e.to_string().as_bytes())?;
                    self.failed = Some((
                        e["code"].as_i64().unwrap_or(5000),
                        e["msg"].as_str().unwrap_or("").to_string(),
                    ));
                    return Err(Stop::Ended);
                }
                "malformed" => {
                    self.release();
                    self.out
                        .buf
                        .extend_from_slice(b"event:conversation.message.delta\ndata:{\"id\":\n\n");
                }
                _ => self.fault = Some(f), // chat_failed / requires_action: not positional
            }
        }
        self.raw(name, data)?;
        self.events += 1;
        Ok(())
    }
}

impl Plan {
    fn run(self, out: &mut ChunkedOut<'_>) -> StreamEnd {
        let after = self
            .fault
            .as_ref()
            .and_then(|f| f.get("after_events"))
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .unwrap_or(usize::MAX);
        let mut em = Emitter {
            out,
            style: self.style.clone(),
            events: 0,
            fault: self.fault.clone(),
            after,
            cancel: self.cancel.clone(),
            app: self.app.clone(),
            scratch: Vec::with_capacity(1024),
            failed: None,
            studio: self.studio,
            held: Vec::new(),
            settled: false,
        };
        let result = self.body(&mut em);
        let app = &self.app;
        if em.settled {
            // The body ended the chat before the client could see it end; since then the
            // client may have moved it on (a submit continues a chat that waited), so
            // however the stream ends now, the chat is left alone.
            return match result {
                Ok(()) | Err(Stop::Clean) | Err(Stop::Ended) => match em.out.finish() {
                    Ok(()) => StreamEnd::Finished,
                    Err(_) => StreamEnd::Abort,
                },
                Err(_) => StreamEnd::Abort,
            };
        }
        match result {
            Ok(()) | Err(Stop::Clean) | Err(Stop::Ended) => {
                // Server side the chat is over, even when the body was cut.
                let ending = match em.failed.take() {
                    Some((code, msg)) => Ending::Fail(code, msg),
                    None => self.ending.clone(),
                };
                app.lock().finish_chat(&self.chat_id, ending);
                match em.out.finish() {
                    Ok(()) => StreamEnd::Finished,
                    Err(_) => StreamEnd::Abort,
                }
            }
            Err(Stop::Abort) => {
                // The server goes on as planned, but a failure it would have sent.
                let ending = match self.ending {
                    Ending::RequiresAction => Ending::RequiresAction,
                    _ => Ending::Complete,
                };
                app.lock().finish_chat(&self.chat_id, ending);
                StreamEnd::Abort
            }
            Err(Stop::Gone) if self.studio => {
                // Studio's run does not notice the client leave (`pullStream` ignores
                // failed sends): it goes on and completes.
                app.lock().finish_chat(&self.chat_id, Ending::Complete);
                StreamEnd::Abort
            }
            Err(Stop::Gone) => {
                // The client hung up: the chat ends (canceled) so the conversation is free.
                app.lock().cancel_chat(&self.chat_id);
                StreamEnd::Abort
            }
        }
    }

    /// End the chat on the server (`ending`) before its last events go out.
    fn settle(&self, em: &mut Emitter<'_, '_>, ending: Ending) {
        self.app.lock().finish_chat(&self.chat_id, ending);
        em.settled = true;
    }

    /// The chat as its stream events show it.
    fn chat_json(&self) -> Value {
        let st = self.app.lock();
        let chat = st.chats.get(&self.chat_id);
        let json = if self.studio {
            chat.map(|c| studio::chat_detail(c, studio::Source::Stream))
        } else {
            chat.map(Chat::to_json)
        };
        json.unwrap_or(Value::Null)
    }

    /// A stored message as a `conversation.message.completed` event shows it.
    fn message_json(&self, m: &Value) -> String {
        if self.studio {
            studio::message_detail(m, false).to_string()
        } else {
            m.to_string()
        }
    }

    fn done(&self, em: &mut Emitter<'_, '_>) -> Result<(), Stop> {
        if self.studio {
            // `entity.RunEventStreamDone` with no data: hertz-contrib/sse still writes
            // an (empty) `data:` line (`buildDoneEvent` in
            // backend/application/conversation/build_chunk_event.go).
            em.event("conversation.stream.done", b"")?;
            return em.flush();
        }
        let data = match self.style.done {
            Done::Quoted => "\"[DONE]\"".to_string(),
            Done::Bare => "[DONE]".to_string(),
            Done::DebugUrl => json!({"debug_url": format!("https://www.coze.cn/work_flow?execute_id={}", new_id())}).to_string(),
        };
        em.event("done", data.as_bytes())?;
        em.flush()
    }

    fn body(&self, em: &mut Emitter<'_, '_>) -> Result<(), Stop> {
        if self.opening {
            em.event(
                "conversation.chat.created",
                self.chat_json().to_string().as_bytes(),
            )?;
        }
        let in_progress = {
            let mut st = self.app.lock();
            match st.chats.get_mut(&self.chat_id) {
                Some(c) if c.status == ChatStatus::Created => {
                    c.status = ChatStatus::InProgress;
                    c.to_json()
                }
                Some(c) => c.to_json(),
                None => Value::Null,
            }
        };
        em.event(
            "conversation.chat.in_progress",
            in_progress.to_string().as_bytes(),
        )?;
        em.pause(self.latency_ms)?;
        for m in &self.before {
            em.event(
                "conversation.message.completed",
                self.message_json(m).as_bytes(),
            )?;
        }
        match &self.phase {
            Phase::Ask(messages) => self.ask(em, messages),
            Phase::Answer { answer, msg, after } => self.answer(em, answer, msg, after),
        }
    }

    /// A round of tool calls, or the failure the chat took instead.
    fn ask(&self, em: &mut Emitter<'_, '_>, messages: &[Value]) -> Result<(), Stop> {
        if let Ending::Fail(code, msg) = &self.ending {
            return self.fail(em, *code, msg);
        }
        for m in messages {
            if m["type"] == "answer" {
                self.deltas(em, m, &cut(m["content"].as_str().unwrap_or("")), false)?;
            }
            em.event(
                "conversation.message.completed",
                self.message_json(m).as_bytes(),
            )?;
        }
        // Waiting before the client can see it, so a submit sent the moment it reads
        // the event is never refused as early.
        self.settle(em, Ending::RequiresAction);
        em.event(
            "conversation.chat.requires_action",
            self.chat_json().to_string().as_bytes(),
        )?;
        self.done(em)?;
        Err(Stop::Ended)
    }

    /// The deltas of message `m` (whose text `answer` holds, cut), after the reasoning
    /// ones when `reasoning`.
    fn deltas(
        &self,
        em: &mut Emitter<'_, '_>,
        m: &Value,
        answer: &Answer,
        reasoning: bool,
    ) -> Result<(), Stop> {
        let id = m["id"].as_str().unwrap_or("");
        let conv = m["conversation_id"].as_str().unwrap_or("");
        let bot = m["bot_id"].as_str().unwrap_or("");
        let section = m["section_id"].as_str().unwrap_or("");
        let created = m["created_at"].as_u64().unwrap_or(0);
        // Deltas are formatted from a fixed prefix and suffix: only the increment is
        // escaped per event, which keeps the bench's 200,000 deltas cheap.
        let head = format!(
            "{{\"id\":\"{id}\",\"conversation_id\":\"{conv}\",\"bot_id\":\"{bot}\",\"role\":\"assistant\",\"type\":\"answer\",\"content\":\""
        );
        let tail = format!(
            "\",\"content_type\":\"text\",\"chat_id\":\"{}\",\"section_id\":\"{section}\",\"created_at\":{created}}}",
            self.chat_id
        );
        let mut data = Vec::with_capacity(512);
        if reasoning {
            for piece in REASONING {
                data.clear();
                data.extend_from_slice(head.as_bytes());
                data.extend_from_slice(b"\",\"reasoning_content\":\"");
                json_escape_into(&mut data, piece);
                data.extend_from_slice(tail.as_bytes());
                em.event("conversation.message.delta", &data)?;
                em.pause(self.delay_ms)?;
            }
        }
        let mut start = 0;
        let n = answer.cuts.len();
        for (i, &end) in answer.cuts.iter().enumerate() {
            data.clear();
            data.extend_from_slice(head.as_bytes());
            json_escape_into(&mut data, &answer.full[start..end]);
            data.extend_from_slice(tail.as_bytes());
            em.event("conversation.message.delta", &data)?;
            start = end;
            if i == 0 {
                em.pause(self.hold_ms)?;
            }
            if i + 1 < n {
                em.pause(self.delay_ms)?;
            }
        }
        Ok(())
    }

    /// The chat fails: `conversation.chat.failed` (its shape as the fault asks) and
    /// `done`; Studio's `error` event.
    fn fail(&self, em: &mut Emitter<'_, '_>, code: i64, msg: &str) -> Result<(), Stop> {
        self.settle(em, self.ending.clone());
        if self.studio {
            // `StepToFailed` (backend/domain/conversation/agentrun/internal/
            // run_process_event.go) reports a failed run as an `error` event: no
            // conversation.chat.failed, no done.
            let e = json!({"code": code, "msg": msg});
            em.event("error", e.to_string().as_bytes())?;
            return Err(Stop::Ended);
        }
        let shape = self
            .fault
            .as_ref()
            .and_then(|f| f.get("shape"))
            .and_then(Value::as_str);
        let data = if shape == Some("bare") {
            json!({"code": code, "msg": msg})
        } else {
            self.chat_json()
        };
        em.event("conversation.chat.failed", data.to_string().as_bytes())?;
        self.done(em)?;
        Err(Stop::Ended)
    }

    /// The answer, its messages, then `conversation.chat.completed`.
    fn answer(
        &self,
        em: &mut Emitter<'_, '_>,
        answer: &Answer,
        m: &Value,
        after: &[Value],
    ) -> Result<(), Stop> {
        self.deltas(em, m, answer, self.reasoning)?;
        if let Ending::Fail(code, msg) = &self.ending {
            return self.fail(em, *code, msg);
        }
        em.event(
            "conversation.message.completed",
            self.message_json(m).as_bytes(),
        )?;
        for msg in after {
            em.event(
                "conversation.message.completed",
                self.message_json(msg).as_bytes(),
            )?;
        }
        // Free the conversation before the client can see the end of the stream, so a
        // client that sends its next chat the moment it reads `done` is never refused.
        self.settle(em, Ending::Complete);
        em.event(
            "conversation.chat.completed",
            self.chat_json().to_string().as_bytes(),
        )?;
        self.done(em)
    }
}

fn ids(req: &Request) -> (Option<String>, Option<String>) {
    let body = req.json();
    let get = |k: &str| {
        req.query(k)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| {
                body.as_ref()
                    .and_then(|b| b.get(k))
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
    };
    (get("conversation_id"), get("chat_id"))
}

/// Both ids of the query, or the 4000 answer for a request that lacks one.
fn required_ids(req: &Request, ctx: &mut Ctx) -> Result<(String, String), Reply> {
    match ids(req) {
        (Some(conv), Some(chat)) => Ok((conv, chat)),
        _ => Err(err(
            ctx,
            4000,
            "invalid parameter: conversation_id and chat_id are required",
        )),
    }
}

/// The chat both ids of `req` name, settled first, handed to `answer`; the 4000 or
/// 4200 answer when an id is missing or names no chat of that conversation.
fn with_chat(
    app: &Arc<App>,
    req: &Request,
    ctx: &mut Ctx,
    answer: impl FnOnce(&Chat) -> Value,
) -> Reply {
    let (conv, chat) = match required_ids(req, ctx) {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    let mut st = app.lock();
    st.settle(&conv);
    match st.chats.get(&chat).filter(|c| c.conversation_id == conv) {
        Some(c) => ok(ctx, answer(c)),
        None => err(ctx, 4200, "chat not found"),
    }
}

/// GET (or POST) /v3/chat/retrieve?conversation_id&chat_id.
pub fn retrieve(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    with_chat(app, req, ctx, Chat::to_json)
}

/// GET /v3/chat/message/list?conversation_id&chat_id: every message of the chat except
/// the user's query (none before it completed or stopped for tool calls).
pub fn message_list(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    with_chat(app, req, ctx, |c| match c.status {
        ChatStatus::Completed | ChatStatus::RequiresAction => Value::Array(c.messages.clone()),
        _ => json!([]),
    })
}

/// POST /v3/chat/cancel with `{conversation_id, chat_id}` in the BODY.
pub fn cancel(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let body = req.json().unwrap_or(json!({}));
    let get = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (Some(conv), Some(chat)) = (get("conversation_id"), get("chat_id")) else {
        return err(
            ctx,
            4000,
            "invalid parameter: conversation_id and chat_id are required",
        );
    };
    let mut st = app.lock();
    st.settle(&conv);
    let Some(c) = st.chats.get(&chat).filter(|c| c.conversation_id == conv) else {
        return err(ctx, 4200, "chat not found");
    };
    if c.status.terminal() {
        return err(
            ctx,
            4104,
            "The chat cannot be canceled in its current status.",
        );
    }
    st.cancel_chat(&chat);
    st.stats.cancels += 1;
    let j = st
        .chats
        .get(&chat)
        .map(Chat::to_json)
        .unwrap_or(Value::Null);
    ok(ctx, j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_cuts_on_char_boundaries_mid_run() {
        let a = answer_for("你好 world", "", None);
        assert_eq!(a.full, answer_text("你好 world"));
        assert_eq!(*a.cuts.last().unwrap(), a.full.len());
        assert!(a.cuts.iter().all(|&c| a.full.is_char_boundary(c)));
        // Some delta ends between two non-ASCII characters.
        assert!(a.cuts.iter().any(|&c| c < a.full.len()
            && !a.full[..c].ends_with(|ch: char| ch.is_ascii())
            && !a.full[c..].starts_with(|ch: char| ch.is_ascii())));
        let long = answer_for("x", "", Some(10));
        assert_eq!(long.cuts.len(), 10);
        assert_eq!(long.full, "春夏秋冬春夏秋冬春夏");
    }
}
