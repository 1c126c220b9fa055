//! Chatflows: `POST /v1/workflows/chat` (the `workflow_chat` docs page; coze-py
//! `cozepy/workflows/chat` and its `tests/testdata/workflows_chat_stream_resp.txt`;
//! Studio's `backend/application/workflow/chatflow.go` and `sendChatFlowStreamRunSSE`).
//! A workflow answers in chat events: `Echo: USER_INPUT` as message deltas, the
//! completed answer, `conversation.chat.completed`, then `done` carrying the run's
//! `debug_url`. A workflow with a question asks it in an answer message (Studio's card
//! for a question with options, see [`super::card`]) and ends with
//! `conversation.chat.requires_action`; the run then waits, bound to the conversation
//! (as Studio's `BindConvRelatedInfo`), and the next chatflow call in that conversation
//! answers it with its user message. A failure is `conversation.chat.failed`
//! `{"code":"<string>","msg"}` on coze, an `error` event with `debug_url` on Studio.
//! coze writes `event: ` and `data: ` lines only (coze-py's chat parser refuses any
//! other line); Studio numbers its events with `id:` lines from 1.

use serde_json::{json, Map, Value};
use std::sync::Arc;

use super::card::{self, Said};
use super::wire::{Flavor, Stop, Wire};
use super::{debug_url, Mode, Outcome, RunRequest, Spec};
use crate::http::{ChunkedOut, Reply, Request, StreamEnd};
use crate::router::{err, Ctx};
use crate::util::{new_id, now_s};
use crate::{App, Dialect};

/// errno `ErrWorkflowOperationFail`: how Studio's `OpenAPIChatFlowRun` reports what
/// fails before its stream (wrapped by its deferred `WrapIfNeeded`).
const OPERATION_FAIL: i64 = 777_777_775;

/// The chatflow failure of a `CONVERSATION_NAME` the app does not have (the
/// `workflow_chat` docs' failure example).
const NO_SUCH_NAME: (i64, &str) = (720_702_204, "conversation name does not exist");

/// The verbose message coze's chatflow sends after the answer (coze-py's testdata).
const VERBOSE: &str = r#"{"msg_type":"generate_answer_finish","data":"{\"finish_reason\":0,\"FinData\":\"\"}","from_module":null,"from_unit":null}"#;

/// A chatflow request once bound.
struct ChatflowRequest {
    workflow_id: String,
    /// `USER_INPUT`: the last message's content.
    input: String,
    /// The last (user) message, as sent.
    last: Value,
    /// An object.
    parameters: Value,
    bot_id: Option<String>,
    app_id: Option<String>,
    conversation_id: Option<String>,
    user: Option<String>,
    /// Whether a question is sent as Studio's card: always on a Studio; on coze when
    /// `ext.enable_card` asks for it (see [`super::card`]).
    card: bool,
}

impl ChatflowRequest {
    /// The `CONVERSATION_NAME` parameter, when it is a string.
    fn conversation_name(&self) -> Option<&str> {
        self.parameters
            .get("CONVERSATION_NAME")
            .and_then(Value::as_str)
    }
}

/// coze.cn's binding (`workflow_chat` docs page): 4000 for a body that is not an object,
/// no workflow_id, no messages or more than 50, a last message that is not the user's
/// text, parameters that are not an object, or both bot_id and app_id.
fn bind(req: &Request, ctx: &Ctx) -> Result<ChatflowRequest, Reply> {
    let bad = |what: &str| err(ctx, 4000, &format!("invalid parameter: {what}"));
    let body = super::object_body(req, ctx)?;
    let s = |k: &str| super::text_of(&body, k);
    let Some(workflow_id) = s("workflow_id") else {
        return Err(bad("workflow_id is required"));
    };
    let messages = body
        .get("additional_messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if messages.is_empty() || messages.len() > 50 {
        return Err(bad("additional_messages must hold 1 to 50 messages"));
    }
    let last = messages[messages.len() - 1].clone();
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return Err(bad("the last additional message must be the user's"));
    }
    if !matches!(
        last.get("content_type").and_then(Value::as_str),
        None | Some("text")
    ) {
        return Err(bad(
            "the last additional message must be text (content_type text)",
        ));
    }
    let Some(parameters) = super::parameters_of(&body) else {
        return Err(bad("parameters must be a JSON object"));
    };
    let (bot_id, app_id) = (s("bot_id"), s("app_id"));
    if bot_id.is_some() && app_id.is_some() {
        return Err(bad("bot_id and app_id cannot both be set"));
    }
    Ok(ChatflowRequest {
        workflow_id,
        input: last
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        last,
        parameters,
        bot_id,
        app_id,
        conversation_id: s("conversation_id"),
        user: super::user_of(&body),
        card: enable_card(&body),
    })
}

/// `ext.enable_card`: `"true"` (`ext` is a map of strings in the SDKs; coze-js's chat
/// SDK sends the string), or `true`.
fn enable_card(body: &Value) -> bool {
    matches!(body.pointer("/ext/enable_card"), Some(Value::Bool(true)))
        || body.pointer("/ext/enable_card").and_then(Value::as_str) == Some("true")
}

/// Studio's answer to what fails before its stream: `InternalError`'s `{"code","msg"}`,
/// HTTP 200.
fn studio_failure(code: i64, msg: &str) -> Reply {
    crate::router::studio::business(code, msg)
}

/// Studio's binding (`OpenAPIChatFlowRun`'s checks, in its order; its messages sic).
fn bind_studio(req: &Request) -> Result<ChatflowRequest, Reply> {
    use crate::router::studio::bad_request;
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Err(bad_request(
                "failed to unmarshal request body: invalid JSON object",
            ))
        }
    };
    let fail = |why: &str| {
        studio_failure(
            OPERATION_FAIL,
            &format!("Workflow operation failure: {why}"),
        )
    };
    let messages = match body.get("additional_messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => a.clone(),
        Some(_) => return Err(bad_request(
            "json: cannot unmarshal additional_messages into Go struct field ChatFlowRunRequest.additional_messages of type []*workflow.EnterMessage",
        )),
    };
    let Some(last) = messages.last().cloned() else {
        return Err(fail("additional_messages is requird"));
    };
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return Err(fail("the role of the last day message must be user"));
    }
    let Some(parameters) = super::parameters_of(&body) else {
        return Err(fail("invalid character in parameters"));
    };
    let s = |k: &str| super::text_of(&body, k);
    let (bot_id, app_id) = (s("bot_id"), s("app_id"));
    if bot_id.is_some() && app_id.is_some() {
        return Err(fail("project_id and bot_id cannot be set at the same time"));
    }
    Ok(ChatflowRequest {
        workflow_id: s("workflow_id").unwrap_or_default(),
        input: last
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        last,
        parameters,
        bot_id,
        app_id,
        conversation_id: s("conversation_id").filter(|c| c != "0"),
        user: super::user_of(&body),
        // `renderQACardDSL` runs whatever the request says.
        card: true,
    })
}

/// The refusals before the stream: unpublished, a required parameter missing.
fn refusal(spec: &Spec, cr: &ChatflowRequest, ctx: &Ctx, studio: bool) -> Option<Reply> {
    if !spec.published {
        return Some(if studio {
            studio_failure(720_702_011, "Workflow not published. The requested operation cannot be performed on an unpublished workflow. Please publish the workflow and try again.")
        } else {
            err(
                ctx,
                4200,
                "The workflow has not been published. Publish it, then run it through the API.",
            )
        });
    }
    let missing = spec
        .required
        .iter()
        .find(|n| cr.parameters.get(n.as_str()).is_none_or(Value::is_null))?;
    Some(if studio {
        studio_failure(720_702_002, &format!("Missing required parameters：’{missing}‘. Please review the API documentation and ensure all mandatory fields are included in your request."))
    } else {
        err(ctx, 4000, &format!("Missing required parameter: {missing}"))
    })
}

/// The conversation the chatflow runs in. coze: the given one (4200 when unknown), else a
/// new one. Studio: the given one, else the one named by `CONVERSATION_NAME` (found or
/// made, `GetOrCreateConversation`), which it then requires.
fn conversation(
    st: &mut crate::state::State,
    cr: &ChatflowRequest,
    ctx: &Ctx,
    studio: bool,
) -> Result<String, Reply> {
    if let Some(id) = &cr.conversation_id {
        if st.conversations.contains_key(id) {
            return Ok(id.clone());
        }
        return Err(if studio {
            studio_failure(
                OPERATION_FAIL,
                "Workflow operation failure: record not found",
            )
        } else {
            let (code, msg) = crate::conversations::NOT_FOUND;
            err(ctx, code, msg)
        });
    }
    let owner = cr.bot_id.clone().or(cr.app_id.clone()).unwrap_or_default();
    if !studio {
        return Ok(st.new_conversation(&owner, crate::oauth::USER_ID));
    }
    let Some(name) = cr.conversation_name() else {
        return Err(studio_failure(
            OPERATION_FAIL,
            "Workflow operation failure: conversation name is requried",
        ));
    };
    let key = (owner.clone(), name.to_string());
    if let Some(id) = st
        .wf
        .named
        .get(&key)
        .filter(|id| st.conversations.contains_key(*id))
    {
        return Ok(id.clone());
    }
    let id = st.new_conversation(&owner, crate::oauth::USER_ID);
    st.wf.named.insert(key, id.clone());
    Ok(id)
}

/// POST /v1/workflows/chat.
pub fn chat(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let studio = app.opts.dialect == Dialect::Studio;
    let bound = if studio {
        bind_studio(req)
    } else {
        bind(req, ctx)
    };
    let cr = match bound {
        Ok(cr) => cr,
        Err(reply) => return reply,
    };
    let spec = app.lock().wf.spec(&cr.workflow_id);
    if let Some(reply) = refusal(&spec, &cr, ctx, studio) {
        return reply;
    }
    let fault = take_fault(ctx);
    let mut st = app.lock();
    let conv_id = match conversation(&mut st, &cr, ctx, studio) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    ctx.conversation_id = Some(conv_id.clone());
    let chat_id = new_id();
    let (section, bot_id) = {
        let conv = st
            .conversations
            .get_mut(&conv_id)
            .expect("found or made above");
        let section = conv.last_section_id.clone();
        let mut user = crate::conversations::enter_message(&conv_id, &section, &cr.last);
        user["chat_id"] = json!(chat_id);
        conv.messages.push(user);
        conv.updated_at = now_s();
        (section, cr.bot_id.clone().or(cr.app_id.clone()))
    };
    // The run waiting at its question in this conversation takes this message as its
    // answer; otherwise a new run starts.
    let waiting = st
        .wf
        .waiting
        .remove(&conv_id)
        .filter(|id| st.wf.run_mut(*id).is_some_and(|r| r.open.is_some()));
    let name_ok = cr.conversation_name().is_none_or(|n| n == "Default");
    let (run, outcome, answered) = match waiting {
        Some(id) => {
            let run = st.wf.run_mut(id).expect("filtered above");
            let question = run.spec.question.clone().unwrap_or_default();
            let outcome = run.resume(&cr.input);
            (run.clone(), outcome, Some(question))
        }
        None => {
            let mut parameters = cr.parameters.clone();
            parameters["USER_INPUT"] = json!(cr.input);
            let rr = RunRequest {
                workflow_id: cr.workflow_id.clone(),
                parameters,
                bot_id: cr.bot_id.clone(),
                app_id: cr.app_id.clone(),
                is_async: false,
                user: cr.user.clone(),
            };
            let run = st.wf.start(&rr, spec, Mode::Chat, &ctx.logid, studio);
            let outcome = if name_ok {
                run.fresh()
            } else {
                Outcome::Failed {
                    code: NO_SUCH_NAME.0,
                    msg: NO_SUCH_NAME.1.to_string(),
                }
            };
            (run.clone(), outcome, None)
        }
    };
    drop(st);
    let outcome = match fault_type(&fault) {
        "chat_failed" => {
            let f = fault.as_ref().expect("it has a type");
            Outcome::Failed {
                code: f.get("code").and_then(Value::as_i64).unwrap_or(if studio {
                    super::wire::STUDIO_EXECUTE_FAIL
                } else {
                    5000
                }),
                msg: f
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or("internal error")
                    .to_string(),
            }
        }
        _ => outcome,
    };
    let text = |content: String| Said {
        content,
        content_type: "text",
    };
    let answer = match (&outcome, &answered) {
        (Outcome::Done { .. }, Some(q)) => text(format!("Echo: {} (answer to {q})", cr.input)),
        (Outcome::Done { .. }, None) => text(format!("Echo: {}", cr.input)),
        (Outcome::Ask(ask), _) => card::question(&ask.data, cr.card, &question_text(&run.spec)),
        (Outcome::Failed { .. }, _) => text(String::new()),
    };
    // Studio's question message is the interrupt event's (`InterruptEvent.ID`).
    let message_id = match &outcome {
        Outcome::Ask(ask) if cr.card => ask
            .event_id
            .rsplit('/')
            .next()
            .map_or_else(new_id, str::to_string),
        _ => new_id(),
    };
    let plan = ChatPlan {
        app: app.clone(),
        studio,
        execute_id: run.execute_id,
        debug_url: debug_url(app, run.execute_id, &run.workflow_id),
        conv_id: conv_id.clone(),
        chat_id,
        message_id,
        section,
        bot_id,
        created_at: now_s(),
        usage: (
            cr.input.chars().count() as u64,
            answer.content.chars().count() as u64,
        ),
        card: cr.card,
        answer,
        delay_ms: run.spec.delay_ms,
        fault: fault.filter(|f| f.get("type").and_then(Value::as_str) != Some("chat_failed")),
        outcome,
        settled: false,
    };
    let mut r = Reply::new(200, "text/event-stream; charset=utf-8", Vec::new());
    if studio {
        r = r.with_header("Access-Control-Allow-Origin", "*");
    }
    r.conversation_id = Some(conv_id);
    r.stream = Some(Box::new(move |out: &mut ChunkedOut<'_>| plan.run(out)));
    r
}

/// The question as coze's chatflow answer message when no card was asked for: its text,
/// and its options after it (UNVERIFIED: the fake's own form, see [`super::card`]).
fn question_text(spec: &Spec) -> String {
    let q = spec.question.clone().unwrap_or_default();
    if spec.options.is_empty() {
        q
    } else {
        format!("{q} ({})", spec.options.join(" / "))
    }
}

fn fault_type(fault: &Option<Value>) -> &str {
    fault
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Take the stream fault this chatflow applies: the workflow stream's, and
/// `chat_failed`, which fails the run.
fn take_fault(ctx: &mut Ctx) -> Option<Value> {
    let t = ctx.fault_type();
    if super::wire::STREAM_FAULTS.contains(&t) || t == "chat_failed" {
        ctx.fault.take()
    } else {
        None
    }
}

/// Everything a chatflow stream needs once the request handler has returned.
struct ChatPlan {
    app: Arc<App>,
    studio: bool,
    execute_id: u64,
    debug_url: String,
    conv_id: String,
    chat_id: String,
    message_id: String,
    section: String,
    bot_id: Option<String>,
    created_at: u64,
    /// The answer message (the question when the run asks one).
    answer: Said,
    /// A question is Studio's message (see [`super::card`]): a card only as `completed`,
    /// a text question as one whole delta and `completed`.
    card: bool,
    /// (input, output) counts of the chat's usage.
    usage: (u64, u64),
    delay_ms: u64,
    fault: Option<Value>,
    outcome: Outcome,
    settled: bool,
}

impl ChatPlan {
    fn run(mut self, out: &mut ChunkedOut<'_>) -> StreamEnd {
        let flavor = Flavor::Chatflow {
            studio: self.studio,
            debug_url: self.debug_url.clone(),
        };
        let first_id = if self.studio { Some(1) } else { None };
        let mut w = Wire::new(out, self.app.clone(), first_id, self.fault.take(), flavor);
        let result = self.body(&mut w);
        if let Some((code, msg)) = w.failed.take() {
            self.outcome = Outcome::Failed { code, msg };
        }
        self.settle();
        w.end(result)
    }

    /// End the run on the server (once): settle it, bind a question to the
    /// conversation, keep the answer in the conversation's messages.
    fn settle(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let mut st = self.app.lock();
        st.wf.settle(self.execute_id, self.outcome.clone());
        if matches!(self.outcome, Outcome::Ask(_)) {
            st.wf.waiting.insert(self.conv_id.clone(), self.execute_id);
        }
        if matches!(self.outcome, Outcome::Failed { .. }) {
            return;
        }
        let bot = self.bot_id.clone().unwrap_or_default();
        let mut m = crate::conversations::message(
            &self.conv_id,
            &self.section,
            "assistant",
            "answer",
            &self.answer.content,
            self.answer.content_type,
            Some((&bot, &self.chat_id)),
            json!({}),
        );
        m["id"] = json!(self.message_id);
        if let Some(conv) = st.conversations.get_mut(&self.conv_id) {
            conv.messages.push(m);
            conv.updated_at = now_s();
        }
    }

    /// The chat object of the chat events: coze's Chat (coze-py's testdata keys);
    /// Studio's `ChatFlowDetail`, whose completed event alone names the bot and carries
    /// usage.
    fn chat_json(&self, status: &str) -> String {
        let completed = status == "completed";
        let mut m = Map::new();
        m.insert("id".into(), json!(self.chat_id));
        m.insert("conversation_id".into(), json!(self.conv_id));
        let (input, output) = if completed { self.usage } else { (0, 0) };
        if self.studio {
            if completed {
                m.insert(
                    "bot_id".into(),
                    json!(self.bot_id.clone().unwrap_or_else(|| "0".into())),
                );
            }
            m.insert("status".into(), json!(status));
            if completed {
                // Sic: `convertToChatFlowRunResponseList` adds the output count twice.
                m.insert(
                    "usage".into(),
                    json!({"token_count": 2 * output, "output_count": output, "input_count": input}),
                );
            }
            m.insert("execute_id".into(), json!(self.execute_id.to_string()));
            m.insert("section_id".into(), json!(self.section));
        } else {
            if let Some(b) = &self.bot_id {
                m.insert("bot_id".into(), json!(b));
            }
            m.insert("created_at".into(), json!(self.created_at));
            if completed {
                m.insert("completed_at".into(), json!(now_s()));
            }
            m.insert("last_error".into(), json!({"code": 0, "msg": ""}));
            m.insert("status".into(), json!(status));
            m.insert(
                "usage".into(),
                json!({"token_count": input + output, "output_count": output, "input_count": input}),
            );
            m.insert("section_id".into(), json!(self.section));
        }
        Value::Object(m).to_string()
    }

    /// A message event's data: coze's Message (the testdata's keys, `created_at` on the
    /// completed one); Studio's `MessageDetail`.
    fn message_json(
        &self,
        id: &str,
        kind: &str,
        (content, content_type): (&str, &str),
        completed: bool,
    ) -> String {
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        if self.studio {
            m.insert("chat_id".into(), json!(self.chat_id));
            m.insert("conversation_id".into(), json!(self.conv_id));
            m.insert(
                "bot_id".into(),
                json!(self.bot_id.clone().unwrap_or_else(|| "0".into())),
            );
            m.insert("role".into(), json!("assistant"));
            m.insert("type".into(), json!(kind));
            m.insert("content".into(), json!(content));
            m.insert("content_type".into(), json!(content_type));
            m.insert("section_id".into(), json!(self.section));
        } else {
            m.insert("conversation_id".into(), json!(self.conv_id));
            if let Some(b) = &self.bot_id {
                m.insert("bot_id".into(), json!(b));
            }
            m.insert("role".into(), json!("assistant"));
            m.insert("type".into(), json!(kind));
            m.insert("content".into(), json!(content));
            m.insert("content_type".into(), json!(content_type));
            m.insert("chat_id".into(), json!(self.chat_id));
            m.insert("section_id".into(), json!(self.section));
            if completed {
                m.insert("created_at".into(), json!(self.created_at));
            }
        }
        Value::Object(m).to_string()
    }

    fn done(&self, w: &mut Wire<'_, '_>) -> Result<(), Stop> {
        let data = json!({ "debug_url": self.debug_url }).to_string();
        w.event("done", data.as_bytes())
    }

    fn body(&mut self, w: &mut Wire<'_, '_>) -> Result<(), Stop> {
        w.event(
            "conversation.chat.created",
            self.chat_json("created").as_bytes(),
        )?;
        w.event(
            "conversation.chat.in_progress",
            self.chat_json("in_progress").as_bytes(),
        )?;
        if let Outcome::Failed { code, msg } = self.outcome.clone() {
            self.settle();
            if self.studio {
                let data =
                    json!({"code": code.to_string(), "msg": msg, "debug_url": self.debug_url});
                w.event("error", data.to_string().as_bytes())?;
                return w.flush();
            }
            let data = json!({"code": code.to_string(), "msg": msg});
            w.event("conversation.chat.failed", data.to_string().as_bytes())?;
            self.done(w)?;
            return w.flush();
        }
        let asks = matches!(self.outcome, Outcome::Ask(_));
        let (content, content_type) = (self.answer.content.clone(), self.answer.content_type);
        let completed =
            self.message_json(&self.message_id, "answer", (&content, content_type), true);
        if asks && self.card {
            // Studio's question: a card only completed; a text question one delta with
            // the completed message's data.
            w.pause(self.delay_ms)?;
            if !self.answer.is_card() {
                w.event("conversation.message.delta", completed.as_bytes())?;
            }
        } else {
            // The answer in deltas of three characters, each after the spec's delay.
            let chars: Vec<(usize, char)> = content.char_indices().collect();
            for piece in chars.chunks(3) {
                w.pause(self.delay_ms)?;
                let start = piece[0].0;
                let end = piece.last().map_or(start, |(i, c)| i + c.len_utf8());
                let data = self.message_json(
                    &self.message_id,
                    "answer",
                    (&content[start..end], content_type),
                    false,
                );
                w.event("conversation.message.delta", data.as_bytes())?;
            }
        }
        self.settle();
        w.event("conversation.message.completed", completed.as_bytes())?;
        if asks {
            w.event(
                "conversation.chat.requires_action",
                self.chat_json("requires_action").as_bytes(),
            )?;
            self.done(w)?;
            return w.flush();
        }
        if !self.studio {
            let verbose = self.message_json(&new_id(), "verbose", (VERBOSE, "text"), true);
            w.event("conversation.message.completed", verbose.as_bytes())?;
        }
        w.event(
            "conversation.chat.completed",
            self.chat_json("completed").as_bytes(),
        )?;
        self.done(w)?;
        w.flush()
    }
}
