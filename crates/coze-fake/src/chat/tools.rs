//! The tool-calling bot and `POST /v3/chat/submit_tool_outputs` (the Coze API docs,
//! `chat_submit_tool_outputs` and the guide `use_local_plugin`; coze-py's
//! `ChatClient.submit_tool_outputs` and `examples/chat_local_plugin.py`).
//!
//! `POST /_fake/bot {"tools":{"rounds":[ROUND,…]}}` makes every chat of the coze dialect
//! call local tools: each ROUND is the calls the bot makes at once. A round is asked as
//! the real server asks it: a `function_call` message per function call (and a
//! `reply_message` call's question as an answer message), a `verbose` interrupt
//! message, then the chat stops in `requires_action` with the round's calls in
//! `required_action`. The caller answers with `submit_tool_outputs`, which continues the
//! same chat: a `tool_response` message per output, then the next round, or, after the
//! last, an answer that echoes every output received so a test can see what arrived.
//! Studio has no local plugins (no `submit_tool_outputs`, never `requires_action`), so
//! the setting is ignored there.

use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{cut, follow_ups, Phase, Plan, VERBOSE};
use crate::conversations::message;
use crate::http::{Reply, Request};
use crate::router::{err, ok, Ctx};
use crate::state::{Chat, ChatStatus, Ending};
use crate::App;

/// The arguments of a function call: a JSON object, sent as its JSON text (as the API
/// sends `function.arguments`), or a string sent as given (which need not be JSON).
#[derive(Clone, Debug)]
pub enum Arguments {
    Object(Map<String, Value>),
    Raw(String),
}

impl Arguments {
    /// `function.arguments` as the wire carries it.
    fn text(&self) -> String {
        match self {
            Arguments::Object(o) => Value::Object(o.clone()).to_string(),
            Arguments::Raw(s) => s.clone(),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Arguments::Object(o) => Value::Object(o.clone()),
            Arguments::Raw(s) => json!(s),
        }
    }
}

/// One call the bot makes.
#[derive(Clone, Debug)]
pub enum Call {
    /// A local plugin's function.
    Function { name: String, arguments: Arguments },
    /// A question node's call: the question is asked in an answer message.
    ReplyMessage { question: String },
}

impl Call {
    fn to_json(&self) -> Value {
        match self {
            Call::Function { name, arguments } => {
                json!({"type": "function", "name": name, "arguments": arguments.to_json()})
            }
            Call::ReplyMessage { question } => {
                json!({"type": "reply_message", "question": question})
            }
        }
    }

    fn from_json(v: &Value, at: &str) -> Result<Call, String> {
        let Some(o) = v.as_object() else {
            return Err(format!("{at} must be an object"));
        };
        let kind = match o.get("type") {
            None => "function",
            Some(Value::String(t)) if t == "function" || t == "reply_message" => t.as_str(),
            Some(_) => {
                return Err(format!(
                    "{at}.type must be \"function\" or \"reply_message\""
                ))
            }
        };
        let allowed: &[&str] = if kind == "function" {
            &["type", "name", "arguments"]
        } else {
            &["type", "question"]
        };
        if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("{at}: unknown field {k:?} for a {kind} call"));
        }
        let text = |k: &str| match o.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("{at}.{k} must be a non-empty string")),
        };
        if kind == "reply_message" {
            return Ok(Call::ReplyMessage {
                question: text("question")?,
            });
        }
        let arguments = match o.get("arguments") {
            None => Arguments::Object(Map::new()),
            Some(Value::Object(a)) => Arguments::Object(a.clone()),
            Some(Value::String(s)) => Arguments::Raw(s.clone()),
            Some(_) => return Err(format!("{at}.arguments must be an object or a string")),
        };
        Ok(Call::Function {
            name: text("name")?,
            arguments,
        })
    }
}

/// The `tools` bot setting.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    /// The rounds of calls, in order; never empty.
    pub rounds: Vec<Vec<Call>>,
    /// Name the usage of the chat completed after tool outputs `input_tokens` and
    /// `output_tokens`, as the `chat_submit_tool_outputs` docs' example does, instead of
    /// the usual `*_count` keys.
    pub usage_tokens: bool,
}

impl Tools {
    /// The setting, or what is wrong with it (for a 400 naming the field).
    pub fn from_json(v: &Value) -> Result<Option<Tools>, String> {
        let o = match v {
            Value::Null => return Ok(None),
            Value::Object(o) => o,
            _ => return Err("tools must be an object {\"rounds\":[[CALL,…],…]}".into()),
        };
        if let Some(k) = o
            .keys()
            .find(|k| !["rounds", "usage_keys"].contains(&k.as_str()))
        {
            return Err(format!("tools: unknown field {k:?}"));
        }
        let usage_tokens = match o.get("usage_keys") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "tokens" => true,
            Some(Value::String(s)) if s == "count" => false,
            Some(_) => return Err("tools.usage_keys must be \"tokens\" or \"count\"".into()),
        };
        let Some(rounds) = o.get("rounds").and_then(Value::as_array) else {
            return Err("tools.rounds must be an array of rounds, each an array of calls".into());
        };
        if rounds.is_empty() {
            return Err("tools.rounds must hold at least one round".into());
        }
        let mut out = Vec::new();
        for (r, round) in rounds.iter().enumerate() {
            let at = format!("tools.rounds[{r}]");
            let Some(calls) = round.as_array().filter(|c| !c.is_empty()) else {
                return Err(format!("{at} must be a non-empty array of calls"));
            };
            let calls = calls
                .iter()
                .enumerate()
                .map(|(i, c)| Call::from_json(c, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            // A reply_message call's id is "" (the Coze API docs, `workflow_chat`), so a
            // round can hold only one: two would share an id.
            if calls
                .iter()
                .filter(|c| matches!(c, Call::ReplyMessage { .. }))
                .count()
                > 1
            {
                return Err(format!("{at} has more than one reply_message call"));
            }
            out.push(calls);
        }
        Ok(Some(Tools {
            rounds: out,
            usage_tokens,
        }))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rounds": self.rounds.iter().map(|r| r.iter().map(Call::to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "usage_keys": if self.usage_tokens { "tokens" } else { "count" },
        })
    }

    /// The one call the `requires_action` fault makes (a chat without `tools` set).
    pub fn fault_default() -> Tools {
        let mut args = Map::new();
        args.insert("location".into(), json!("杭州"));
        Tools {
            rounds: vec![vec![Call::Function {
                name: "get_weather".into(),
                arguments: Arguments::Object(args),
            }]],
            usage_tokens: false,
        }
    }
}

/// A chat's way through its rounds of tool calls.
#[derive(Debug)]
pub struct ToolRun {
    pub tools: Tools,
    /// The round asked (or about to be), counting from 0.
    pub round: usize,
    /// Every output accepted, in call order: (the call's label, the output).
    pub outputs: Vec<(String, String)>,
    /// The query, for the follow-ups after the final answer.
    pub prompt: String,
}

/// The `required_action` that chats not waiting carry in a chat with tools: coze-py's
/// recording `tests/testdata/chat_audio_stream_resp.txt` shows it on `created` and
/// `in_progress`, so only `status` says whether a chat waits.
pub fn empty_required_action() -> Value {
    json!({"type": "", "submit_tool_outputs": {"tool_calls": []}})
}

/// The content of a `verbose` message that marks an interrupt (the `use_local_plugin`
/// guide's message list).
const INTERRUPT: &str = r#"{"msg_type":"interrupt","data":"","from_module":null,"from_unit":null}"#;

/// The id of call `i` (from 0) of round `round` (from 0): `call_<chat>_<round>_<n>`,
/// both counting from 1. A `reply_message` call's id is "" (the Coze API docs,
/// `workflow_chat`, show `{"id":"","type":"reply_message","function":null}`).
fn call_id(chat_id: &str, round: usize, i: usize, call: &Call) -> String {
    match call {
        Call::Function { .. } => format!("call_{chat_id}_{}_{}", round + 1, i + 1),
        Call::ReplyMessage { .. } => String::new(),
    }
}

impl ToolRun {
    pub fn new(tools: Tools, prompt: &str) -> ToolRun {
        ToolRun {
            tools,
            round: 0,
            outputs: Vec::new(),
            prompt: prompt.to_string(),
        }
    }

    fn calls(&self) -> &[Call] {
        self.tools
            .rounds
            .get(self.round)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The `required_action` of the round being asked.
    pub fn required_action(&self, chat_id: &str) -> Value {
        let calls: Vec<Value> = self
            .calls()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let id = call_id(chat_id, self.round, i, c);
                match c {
                    Call::Function { name, arguments } => json!({
                        "id": id, "type": "function",
                        "function": {"name": name, "arguments": arguments.text()},
                        "require_info": null,
                    }),
                    Call::ReplyMessage { .. } => json!({
                        "id": id, "type": "reply_message", "function": null, "require_info": null,
                    }),
                }
            })
            .collect();
        json!({"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}})
    }

    /// The messages that ask the current round: a `function_call` message per function
    /// (its content as the guide's message list shows one: name, arguments as JSON,
    /// the plugin's ids), a question as an answer message, then the interrupt.
    pub fn ask_messages(&self, c: &Chat) -> Vec<Value> {
        let chat_ref = Some((c.bot_id.as_str(), c.id.as_str()));
        let msg = |kind: &str, content: &str| {
            message(
                &c.conversation_id,
                &c.section_id,
                "assistant",
                kind,
                content,
                "text",
                chat_ref,
                json!({}),
            )
        };
        let mut out = Vec::new();
        for call in self.calls() {
            if let Call::Function { name, arguments } = call {
                let content = json!({
                    "name": name,
                    "arguments": arguments.to_json(),
                    "plugin_id": 7_400_000_000_000_000_600u64,
                    "plugin_name": "fake_local_plugin",
                    "api_id": 7_400_000_000_000_000_601u64,
                    "api_name": name,
                    "plugin_type": 6,
                    "thought": format!("需要调用 {name}"),
                });
                out.push(msg("function_call", &content.to_string()));
            }
        }
        for call in self.calls() {
            if let Call::ReplyMessage { question } = call {
                out.push(msg("answer", question));
            }
        }
        out.push(msg("verbose", INTERRUPT));
        out
    }

    /// The answer after the last round: every output received, in call order.
    pub fn echo(&self) -> String {
        let items: Vec<String> = self
            .outputs
            .iter()
            .map(|(label, output)| format!("{label}: {output}"))
            .collect();
        format!("工具结果 {}", items.join("; "))
    }
}

/// One accepted `tool_outputs` item.
struct Output {
    tool_call_id: String,
    output: String,
}

/// The body of a submit: its outputs as sent and `stream`, or the 4000 refusal.
fn bind(req: &Request, ctx: &Ctx) -> Result<(Vec<Output>, bool), Reply> {
    let bad = |msg: &str| err(ctx, 4000, &format!("invalid parameter: {msg}"));
    let Some(body) = req.json().filter(Value::is_object) else {
        return Err(bad("request body must be a JSON object"));
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream must be a boolean")),
    };
    let Some(items) = body
        .get("tool_outputs")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return Err(bad("tool_outputs is required"));
    };
    let mut outputs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = |k: &str| match item.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(bad(&format!("tool_outputs[{i}].{k} must be a string"))),
        };
        outputs.push(Output {
            tool_call_id: field("tool_call_id")?,
            output: field("output")?,
        });
    }
    Ok((outputs, stream))
}

/// The text of the refusal of a chat whose history was not saved. The docs give only
/// the code (5000); the words are the fake's.
const NOT_SAVED: &str = "internal error: the chat was created with auto_save_history false, so its tool calls cannot be answered";

/// POST /v3/chat/submit_tool_outputs?conversation_id=C&chat_id=H.
pub fn submit(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let (outputs, stream) = match bind(req, ctx) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (conv_id, chat_id) = match super::required_ids(req, ctx) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    ctx.conversation_id = Some(conv_id.clone());
    let mut st = app.lock();
    st.settle(&conv_id);
    let Some(chat) = st
        .chats
        .get(&chat_id)
        .filter(|c| c.conversation_id == conv_id)
    else {
        return err(ctx, 4200, "chat not found");
    };
    if !chat.auto_save {
        return err(ctx, 5000, NOT_SAVED);
    }
    if chat.status != ChatStatus::RequiresAction {
        return err(
            ctx,
            4000,
            &format!(
                "invalid parameter: the chat is not waiting for tool outputs (status {})",
                chat.status.as_str()
            ),
        );
    }
    // The calls waited for, as the chat's required_action names them.
    let calls: Vec<(String, String)> = chat
        .required_action
        .as_ref()
        .and_then(|ra| ra.pointer("/submit_tool_outputs/tool_calls"))
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    let s = |p: &str| c.pointer(p).and_then(Value::as_str).unwrap_or("");
                    let label = match s("/type") {
                        "reply_message" => "reply_message",
                        _ => s("/function/name"),
                    };
                    (s("/id").to_string(), label.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    for o in &outputs {
        if !calls.iter().any(|(id, _)| *id == o.tool_call_id) {
            return err(
                ctx,
                4000,
                &format!(
                    "invalid parameter: tool_call_id {:?} is not a call this chat is waiting for",
                    o.tool_call_id
                ),
            );
        }
        if seen.contains(&o.tool_call_id.as_str()) {
            return err(
                ctx,
                4000,
                &format!(
                    "invalid parameter: tool_call_id {:?} has more than one output",
                    o.tool_call_id
                ),
            );
        }
        seen.push(&o.tool_call_id);
    }
    if let Some((id, label)) = calls.iter().find(|(id, _)| !seen.contains(&id.as_str())) {
        return err(
            ctx,
            4000,
            &format!(
                "invalid parameter: tool_outputs lacks the output of tool_call_id {id:?} ({label})"
            ),
        );
    }

    // Accepted: record it, then continue the chat with the outputs in call order.
    let in_order: Vec<(String, String)> = calls
        .iter()
        .map(|(id, label)| {
            let o = outputs.iter().find(|o| o.tool_call_id == *id);
            (
                label.clone(),
                o.map(|o| o.output.clone()).unwrap_or_default(),
            )
        })
        .collect();
    let fault = super::take_stream_fault(ctx, false);
    let ending = super::ending_of(&fault, false);
    let latency_ms = st.bot.latency_ms.unwrap_or(app.opts.chat_latency_ms);
    let bot = st.bot.clone();
    let chat = st.chats.get_mut(&chat_id).expect("found above");
    // Taken out while the chat's messages grow; put back below.
    let mut run = chat
        .tools
        .take()
        .unwrap_or_else(|| ToolRun::new(Tools::fault_default(), ""));
    let round = run.round + 1;
    run.outputs.extend(in_order.iter().cloned());
    run.round += 1;
    let chat_ref = Some((chat.bot_id.as_str(), chat.id.as_str()));
    let responses: Vec<Value> = in_order
        .iter()
        .map(|(_, output)| {
            message(
                &chat.conversation_id,
                &chat.section_id,
                "assistant",
                "tool_response",
                output,
                "text",
                chat_ref,
                json!({}),
            )
        })
        .collect();
    chat.messages.extend(responses.iter().cloned());
    let more = run.round < run.tools.rounds.len();
    let phase = if more {
        let asked = run.ask_messages(chat);
        chat.messages.extend(asked.iter().cloned());
        Phase::Ask(asked)
    } else {
        let text = run.echo();
        let answer = cut(&text);
        let prompt = run.prompt.clone();
        let input = prompt.chars().count() as u64
            + 12
            + run
                .outputs
                .iter()
                .map(|(_, o)| o.chars().count() as u64)
                .sum::<u64>();
        let mut msgs = vec![
            message(
                &chat.conversation_id,
                &chat.section_id,
                "assistant",
                "answer",
                &answer.full,
                "text",
                chat_ref,
                json!({}),
            ),
            message(
                &chat.conversation_id,
                &chat.section_id,
                "assistant",
                "verbose",
                VERBOSE,
                "text",
                chat_ref,
                json!({}),
            ),
        ];
        for f in follow_ups(&prompt) {
            msgs.push(message(
                &chat.conversation_id,
                &chat.section_id,
                "assistant",
                "follow_up",
                &f,
                "text",
                chat_ref,
                json!({}),
            ));
        }
        chat.final_usage = (input, answer.full.chars().count() as u64);
        chat.messages.extend(msgs.iter().cloned());
        let msg = msgs.remove(0);
        Phase::Answer {
            answer,
            msg,
            after: msgs,
        }
    };
    chat.tools = Some(run);
    chat.status = ChatStatus::InProgress;
    chat.required_action = None;
    chat.ending = if matches!(ending, Ending::Fail(..)) {
        ending.clone()
    } else if more {
        Ending::RequiresAction
    } else {
        Ending::Complete
    };
    chat.ready_at = (!stream).then(|| Instant::now() + Duration::from_millis(latency_ms));
    let json = chat.to_json();
    let cancel = chat.cancel.clone();
    let ending = chat.ending.clone();
    st.hold(&conv_id, &chat_id);
    if !stream {
        st.polled.insert(chat_id.clone());
    }
    st.tool_outputs.push(json!({
        "conversation_id": conv_id,
        "chat_id": chat_id,
        "round": round,
        "stream": stream,
        "tool_outputs": outputs.iter().map(|o| json!({"tool_call_id": o.tool_call_id, "output": o.output})).collect::<Vec<_>>(),
    }));
    drop(st);
    if !stream {
        // A stream fault means nothing to a JSON answer; reset_mid_body cuts its body.
        if super::fault_type(&fault) == "reset_mid_body" {
            ctx.fault = fault;
        }
        return ok(ctx, json);
    }
    let plan = Plan {
        app: app.clone(),
        chat_id,
        opening: false,
        before: responses,
        phase,
        reasoning: bot.reasoning,
        delay_ms: bot.delta_delay_ms.unwrap_or(app.opts.delta_delay_ms),
        hold_ms: bot.first_delta_hold_ms,
        latency_ms,
        style: bot.style.clone(),
        fault,
        ending,
        cancel,
        studio: false,
    };
    let mut r = Reply::new(200, "text/event-stream; charset=utf-8", Vec::new());
    r.stream = Some(Box::new(move |out: &mut crate::http::ChunkedOut<'_>| {
        plan.run(out)
    }));
    r.conversation_id = Some(conv_id);
    r
}
