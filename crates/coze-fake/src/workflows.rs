//! Workflows (the Coze API docs: `workflow_run`, `workflow_stream_run`,
//! `workflow_resume`, `resume_workflow`, `workflow_history`; coze-py
//! `cozepy/workflows/runs`): the sync, async and streamed run, the interrupt at a
//! question and its two resumes, and the run history, answered by a fake workflow whose
//! behaviour tests set per workflow id with `POST /_fake/workflow` ([`Spec`]): echo the
//! parameters, stream N messages, take its time, send PINGs, ask a question, fail, or
//! refuse to run unpublished. Every run is kept in the [`Book`] for
//! `GET /_fake/workflow`. Studio's shapes are in [`studio`], chatflows
//! (`/v1/workflows/chat`) in [`chatflow`], the message a chatflow's question becomes (a
//! card, or text) in [`card`], the stream writer in [`wire`].
//!
//! A workflow id nobody configured runs with every default (published, one message, the
//! parameters echoed), so any id works. Studio would answer a workflow id that is not a
//! number with an empty 500 (`mustParseInt64` panics); the fake runs it, so that one
//! test can use the same id against both dialects. Either resume takes any run's
//! interrupt (the docs say a run started by `run` is resumed by `/v1/workflows/resume`
//! and one by `stream_run` by `stream_resume`; the fake does not hold clients to it).

pub mod card;
pub mod chatflow;
pub mod studio;
pub mod wire;

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;

use crate::http::{ChunkedOut, Reply, Request};
use crate::router::{err, Ctx};
use crate::util::{json_escape_into, now_s};
use crate::{App, Dialect};
use wire::{event_name, EventKind, Flavor, Stop, Wire};

/// The first execute_id the fake gives: 19 digits above 2^53, like the real ones
/// (`workflow_resume` docs page), so a client that reads ids as f64 loses digits.
pub const FIRST_EXECUTE_ID: u64 = 7_404_830_425_073_352_713;

/// The space every fake workflow lives in (it appears in `debug_url`).
pub const SPACE_ID: &str = "7309760604397600768";

/// How many runs the book keeps (the oldest tenth goes when it is full).
const RUN_LIMIT: usize = 100_000;

/// What the end node returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// The JSON text of `{"output": PARAMETERS}`: one level of encoding, as the
    /// `workflow_run` docs' example.
    Json,
    /// `{"Output": TEXT}`, TEXT the JSON text of the end node's answer object holding
    /// the JSON text of `{"output": PARAMETERS}`, as the `workflow_history` docs' example.
    Double,
    /// `Echo: ` and the compact JSON of the parameters: text that is not JSON.
    Text,
}

impl OutputMode {
    fn name(self) -> &'static str {
        match self {
            OutputMode::Json => "json",
            OutputMode::Double => "double",
            OutputMode::Text => "text",
        }
    }
}

/// One workflow's behaviour, as `POST /_fake/workflow` sets it (`coze-fake --help`
/// describes each field).
#[derive(Clone, Debug)]
pub struct Spec {
    pub workflow_id: String,
    pub published: bool,
    pub messages: u64,
    pub delay_ms: u64,
    pub pings: u64,
    pub ping_ms: u64,
    pub output: OutputMode,
    pub required: Vec<String>,
    pub error: Option<(i64, String)>,
    pub async_allowed: bool,
    pub running_polls: u64,
    pub lowercase_events: bool,
    /// The question a question node asks after the messages; None: no question.
    pub question: Option<String>,
    /// Its options; an answer that is none of them does not fit (none: any answer fits).
    pub options: Vec<String>,
    /// `interrupt_data.type`: 2 a question node, 5 an input node (`workflow_resume`).
    pub interrupt_type: i64,
}

/// Every field a spec may have; any other is refused, so a misspelt one is not ignored.
const SPEC_FIELDS: &[&str] = &[
    "workflow_id",
    "published",
    "messages",
    "delay_ms",
    "pings",
    "ping_ms",
    "output",
    "required",
    "error",
    "async",
    "running_polls",
    "lowercase_events",
    "question",
    "options",
    "interrupt_type",
];

impl Spec {
    /// The behaviour of a workflow nobody configured.
    pub fn new(workflow_id: &str) -> Spec {
        Spec {
            workflow_id: workflow_id.to_string(),
            published: true,
            messages: 1,
            delay_ms: 0,
            pings: 0,
            ping_ms: 0,
            output: OutputMode::Json,
            required: Vec::new(),
            error: None,
            async_allowed: true,
            running_polls: 1,
            lowercase_events: false,
            question: None,
            options: Vec::new(),
            interrupt_type: 2,
        }
    }

    /// Read a spec; Err names the field that is wrong.
    pub fn from_json(v: &Value) -> Result<Spec, String> {
        let o = v
            .as_object()
            .ok_or("a workflow spec must be a JSON object")?;
        if let Some(k) = o.keys().find(|k| !SPEC_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown field {k:?} (known: {})",
                SPEC_FIELDS.join(", ")
            ));
        }
        let id = o
            .get("workflow_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("missing \"workflow_id\" (a non-empty string)")?;
        let present = |k: &str| o.get(k).filter(|v| !v.is_null());
        let uint = |k: &str, d: u64| match present(k) {
            None => Ok(d),
            Some(v) => v
                .as_u64()
                .ok_or(format!("\"{k}\" must be a non-negative integer")),
        };
        let boolean = |k: &str, d: bool| match present(k) {
            None => Ok(d),
            Some(v) => v.as_bool().ok_or(format!("\"{k}\" must be true or false")),
        };
        let strings = |k: &str| -> Result<Vec<String>, String> {
            match present(k) {
                None => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_string)
                            .ok_or(format!("\"{k}\" must be an array of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("\"{k}\" must be an array of strings")),
            }
        };
        let output = match present("output").map(Value::as_str) {
            None | Some(Some("json")) => OutputMode::Json,
            Some(Some("double")) => OutputMode::Double,
            Some(Some("text")) => OutputMode::Text,
            Some(_) => return Err("\"output\" must be \"json\", \"double\" or \"text\"".into()),
        };
        let error = match present("error") {
            None => None,
            Some(e) => {
                let code = e.get("code").and_then(Value::as_i64);
                let msg = e.get("message").and_then(Value::as_str);
                match (code, msg) {
                    (Some(c), Some(m)) => Some((c, m.to_string())),
                    _ => {
                        return Err("\"error\" must be {\"code\":INTEGER,\"message\":STRING}".into())
                    }
                }
            }
        };
        Ok(Spec {
            workflow_id: id.to_string(),
            published: boolean("published", true)?,
            messages: uint("messages", 1)?,
            delay_ms: uint("delay_ms", 0)?,
            pings: uint("pings", 0)?,
            ping_ms: uint("ping_ms", 0)?,
            output,
            required: strings("required")?,
            error,
            async_allowed: boolean("async", true)?,
            running_polls: uint("running_polls", 1)?,
            lowercase_events: boolean("lowercase_events", false)?,
            question: match present("question") {
                None => None,
                Some(Value::String(q)) => Some(q.clone()),
                Some(_) => return Err("\"question\" must be a string".into()),
            },
            options: strings("options")?,
            interrupt_type: match present("interrupt_type") {
                None => 2,
                Some(v) => v.as_i64().ok_or("\"interrupt_type\" must be an integer")?,
            },
        })
    }

    /// The spec as `GET /_fake/workflow` shows it, every field spelt out.
    pub fn to_json(&self) -> Value {
        json!({
            "workflow_id": self.workflow_id,
            "published": self.published,
            "messages": self.messages,
            "delay_ms": self.delay_ms,
            "pings": self.pings,
            "ping_ms": self.ping_ms,
            "output": self.output.name(),
            "required": self.required,
            "error": self.error.as_ref().map(|(c, m)| json!({"code": c, "message": m})),
            "async": self.async_allowed,
            "running_polls": self.running_polls,
            "lowercase_events": self.lowercase_events,
            "question": self.question,
            "options": self.options,
            "interrupt_type": self.interrupt_type,
        })
    }
}

/// How a run was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Stream,
    Async,
    /// A chatflow's run (`/v1/workflows/chat`).
    Chat,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Stream => "stream",
            Mode::Async => "async",
            Mode::Chat => "chat",
        }
    }

    /// The history's `run_mode` (`workflow_history` docs page): 0 sync, 1 stream, 2 async.
    fn run_mode(self) -> u8 {
        match self {
            Mode::Sync => 0,
            Mode::Stream | Mode::Chat => 1,
            Mode::Async => 2,
        }
    }
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Success,
    Fail,
    /// Waiting at a question for a resume.
    Interrupted,
}

impl Status {
    /// As coze's history spells it: a run waiting for an answer is still Running (the
    /// docs name no other status), its `interrupt_data` set.
    pub fn name(self) -> &'static str {
        match self {
            Status::Running | Status::Interrupted => "Running",
            Status::Success => "Success",
            Status::Fail => "Fail",
        }
    }

    /// As `GET /_fake/workflow` spells it.
    fn admin_name(self) -> &'static str {
        match self {
            Status::Interrupted => "Interrupted",
            s => s.name(),
        }
    }
}

/// An interrupt: the run waits at its question for `event_id` to be resumed.
#[derive(Clone, Debug)]
pub struct Ask {
    pub event_id: String,
    /// `interrupt_data.data`: the question node's JSON (see [`question_json`]).
    pub data: String,
    /// `interrupt_data.type`.
    pub kind: i64,
}

/// How a run ends.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The end node returned `output`.
    Done { output: String },
    /// The run failed.
    Failed { code: i64, msg: String },
    /// The run stopped at its question.
    Ask(Ask),
}

/// One run, from its start to its end.
#[derive(Clone, Debug)]
pub struct Run {
    pub execute_id: u64,
    pub workflow_id: String,
    pub mode: Mode,
    pub parameters: Value,
    /// The workflow's behaviour when the run started.
    pub spec: Spec,
    pub bot_id: Option<String>,
    /// The history's `connector_uid`: `ext.user_id`, else the token's user.
    pub connector_uid: String,
    /// The logid of the request that started the run.
    pub logid: String,
    pub status: Status,
    /// An async run's outcome, shown once its history has said Running often enough.
    pub pending: Option<Outcome>,
    /// History reads while the run said Running.
    pub reads: u64,
    pub output: Option<String>,
    pub error: Option<(i64, String)>,
    /// (input, output) token counts.
    pub usage: (u64, u64),
    pub resumes: u32,
    pub answers: Vec<String>,
    /// Questions asked so far (each interrupt's event_id is a new one).
    pub asks: u64,
    /// The interrupt waiting for a resume.
    pub open: Option<Ask>,
    /// Run by the Studio dialect (which words its failures its own way).
    pub studio: bool,
    pub created: u64,
    pub updated: u64,
}

impl Run {
    /// Make `outcome` the run's end.
    fn settle(&mut self, outcome: Outcome) {
        self.updated = now_s();
        self.pending = None;
        match outcome {
            Outcome::Done { output } => {
                self.usage = usage(&self.parameters, &output);
                self.output = Some(output);
                self.status = Status::Success;
            }
            Outcome::Failed { code, msg } => {
                self.error = Some((code, msg));
                self.status = Status::Fail;
            }
            Outcome::Ask(ask) => {
                self.open = Some(ask);
                self.status = Status::Interrupted;
            }
        }
    }

    /// A new interrupt at the run's question: event_id `<execute_id>/<n>`, as the docs'
    /// `7404830425073352713/2769808280134765896` and Studio's `convertStreamRunEvent`.
    fn ask(&mut self) -> Ask {
        let n = FIRST_EVENT_ID + self.asks;
        self.asks += 1;
        Ask {
            event_id: format!("{}/{n}", self.execute_id),
            data: question_json(&self.spec, &self.answers),
            kind: self.spec.interrupt_type,
        }
    }

    /// How the run goes on from its start.
    fn fresh(&mut self) -> Outcome {
        if self.spec.question.is_some() {
            Outcome::Ask(self.ask())
        } else {
            self.end(None)
        }
    }

    /// How the run goes on with `answer` to its open question (`workflow_resume` docs
    /// page): an answer that fits ends it; one that does not asks again, and at the
    /// third resume fails the run.
    fn resume(&mut self, answer: &str) -> Outcome {
        self.open = None;
        self.status = Status::Running;
        self.updated = now_s();
        self.resumes += 1;
        self.answers.push(answer.to_string());
        let fits =
            self.spec.options.is_empty() || self.spec.options.iter().any(|o| o == answer.trim());
        if fits {
            self.end(Some(answer))
        } else if self.resumes >= MAX_RESUMES {
            too_many_resumes(self.studio)
        } else {
            Outcome::Ask(self.ask())
        }
    }

    /// The end after the question (if any): the spec's error, else the output.
    fn end(&self, answer: Option<&str>) -> Outcome {
        match &self.spec.error {
            Some((code, msg)) => Outcome::Failed {
                code: *code,
                msg: msg.clone(),
            },
            None => Outcome::Done {
                output: output_text(self.spec.output, &self.parameters, answer),
            },
        }
    }

    /// The `GET /_fake/workflow` record.
    fn admin_json(&self) -> Value {
        json!({
            "execute_id": self.execute_id.to_string(),
            "workflow_id": self.workflow_id,
            "mode": self.mode.name(),
            "parameters": self.parameters,
            "resumes": self.resumes,
            "status": self.status.admin_name(),
            "answers": self.answers,
        })
    }
}

/// The workflows' specs and runs, in the fake's state.
#[derive(Debug, Default)]
pub struct Book {
    specs: BTreeMap<String, Spec>,
    runs: HashMap<u64, Run>,
    /// Execute ids in start order.
    order: VecDeque<u64>,
    started: u64,
    /// conversation_id → the chatflow run waiting there at its question.
    pub waiting: HashMap<String, u64>,
    /// Studio's named conversations: (bot or app id, `CONVERSATION_NAME`) → id.
    pub named: HashMap<(String, String), String>,
}

impl Book {
    /// The behaviour of `workflow_id`: as set, else the defaults.
    pub fn spec(&self, workflow_id: &str) -> Spec {
        self.specs
            .get(workflow_id)
            .cloned()
            .unwrap_or_else(|| Spec::new(workflow_id))
    }

    /// Set one workflow's behaviour, replacing an earlier one.
    pub fn set(&mut self, spec: Spec) {
        self.specs.insert(spec.workflow_id.clone(), spec);
    }

    /// Record a new run, Running.
    fn start(
        &mut self,
        rr: &RunRequest,
        spec: Spec,
        mode: Mode,
        logid: &str,
        studio: bool,
    ) -> &mut Run {
        let execute_id = FIRST_EXECUTE_ID + self.started;
        self.started += 1;
        if self.order.len() >= RUN_LIMIT {
            for id in self.order.drain(..RUN_LIMIT / 10) {
                self.runs.remove(&id);
            }
        }
        let now = now_s();
        self.order.push_back(execute_id);
        self.runs.entry(execute_id).or_insert(Run {
            execute_id,
            workflow_id: rr.workflow_id.clone(),
            mode,
            parameters: rr.parameters.clone(),
            spec,
            bot_id: rr.bot_id.clone(),
            connector_uid: rr
                .user
                .clone()
                .unwrap_or_else(|| crate::oauth::USER_ID.to_string()),
            logid: logid.to_string(),
            status: Status::Running,
            pending: None,
            reads: 0,
            output: None,
            error: None,
            usage: (0, 0),
            resumes: 0,
            answers: Vec::new(),
            asks: 0,
            open: None,
            studio,
            created: now,
            updated: now,
        })
    }

    fn run_mut(&mut self, execute_id: u64) -> Option<&mut Run> {
        self.runs.get_mut(&execute_id)
    }

    /// End a run still Running with `outcome` (a run already over stays as it is).
    fn settle(&mut self, execute_id: u64, outcome: Outcome) {
        if let Some(run) = self.runs.get_mut(&execute_id) {
            if run.status == Status::Running {
                run.settle(outcome);
            }
        }
    }

    /// `GET /_fake/workflow`: every spec set and every run, oldest first.
    pub fn to_json(&self) -> Value {
        let specs: Map<String, Value> = self
            .specs
            .iter()
            .map(|(k, s)| (k.clone(), s.to_json()))
            .collect();
        let runs: Vec<Value> = self
            .order
            .iter()
            .filter_map(|id| self.runs.get(id))
            .map(Run::admin_json)
            .collect();
        json!({"workflows": specs, "runs": runs})
    }
}

/// (input, output) token counts of a run: the characters of its parameters' JSON and of
/// its output, so tests can predict them.
fn usage(parameters: &Value, output: &str) -> (u64, u64) {
    (
        parameters.to_string().chars().count() as u64,
        output.chars().count() as u64,
    )
}

/// `usage` as coze writes it (`workflow_run` docs page: input, token, output).
pub fn usage_json((input, output): (u64, u64)) -> Value {
    json!({"input_count": input, "token_count": input + output, "output_count": output})
}

/// What the end node returns for `parameters` (see [`OutputMode`]), and the answer to
/// the run's question when it had one.
pub fn output_text(mode: OutputMode, parameters: &Value, answer: Option<&str>) -> String {
    let mut end = json!({ "output": parameters });
    if let Some(a) = answer {
        end["answer"] = json!(a);
    }
    let inner = end.to_string();
    match mode {
        OutputMode::Json => inner,
        OutputMode::Double => {
            let answer = json!({"content_type": 1, "data": inner, "original_result": null,
                                "type_for_model": 2});
            json!({"Output": answer.to_string()}).to_string()
        }
        OutputMode::Text => match answer {
            None => format!("Echo: {parameters}"),
            Some(a) => format!("Echo: {parameters} (answer: {a})"),
        },
    }
}

/// The second part of the first event_id (the docs' example's), counting up.
const FIRST_EVENT_ID: u64 = 2_769_808_280_134_765_896;

/// Resumes a run may take (`workflow_resume` docs page: at most 3).
const MAX_RESUMES: u32 = 3;

/// The end of a run whose third resume still did not fit: coze's code is not known;
/// the fake says 4000 as the docs' Error example does for a bad request, Studio its
/// execution failure.
fn too_many_resumes(studio: bool) -> Outcome {
    let why = "the answer fits none of the options after 3 resumes";
    if studio {
        Outcome::Failed {
            code: wire::STUDIO_EXECUTE_FAIL,
            msg: format!("Workflow execution failure: {why}"),
        }
    } else {
        Outcome::Failed {
            code: 4000,
            msg: format!("Request parameter error: {why}"),
        }
    }
}

/// The question node's JSON, `interrupt_data.data`: Studio's `{"messages":[…]}` of its
/// question-answer node (`backend/domain/workflow/internal/nodes/qa/question_answer.go`
/// `generateHistory`): the earlier questions with the answers that did not fit, then the
/// question, `content_type` `option` with `{"options":[{"name"}],"question"}` or `text`
/// with the question as a string. coze.cn is assumed to carry the same.
pub fn question_json(spec: &Spec, answers: &[String]) -> String {
    let question = spec.question.clone().unwrap_or_default();
    let (content_type, content) = if spec.options.is_empty() {
        ("text", json!(question))
    } else {
        let options: Vec<Value> = spec.options.iter().map(|o| json!({ "name": o })).collect();
        ("option", json!({"options": options, "question": question}))
    };
    let mut messages = Vec::new();
    for (i, answer) in answers.iter().enumerate() {
        messages.push(json!({"type": "question", "content_type": content_type,
                             "content": content, "id": format!("{QUESTION_NODE_ID}_{}", i * 2)}));
        // Sic: `generateHistory` numbers an answer i+1, not i*2+1.
        messages.push(json!({"type": "answer", "content_type": content_type,
                             "content": answer, "id": format!("{QUESTION_NODE_ID}_{}", i + 1)}));
    }
    messages.push(
        json!({"type": "question", "content_type": content_type, "content": content,
                         "id": format!("{QUESTION_NODE_ID}_{}", answers.len() * 2)}),
    );
    json!({ "messages": messages }).to_string()
}

/// The content of Message `i` of the node titled `Message`.
pub fn message_content(i: u64) -> String {
    format!("{i}: 你好 🌏\n")
}

/// `{base}/work_flow?execute_id=E&space_id=S&workflow_id=W`, the shape of the docs'
/// `debug_url`, on the fake's own base.
pub fn debug_url(app: &App, execute_id: u64, workflow_id: &str) -> String {
    format!(
        "{}/work_flow?execute_id={execute_id}&space_id={SPACE_ID}&workflow_id={}",
        app.base_url,
        crate::util::form_encode(workflow_id)
    )
}

/// A run request once bound, whichever dialect's rules bound it.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub workflow_id: String,
    /// An object once admitted (Studio binds anything and refuses it later).
    pub parameters: Value,
    pub bot_id: Option<String>,
    pub app_id: Option<String>,
    pub is_async: bool,
    /// `ext.user_id`.
    pub user: Option<String>,
}

/// coze.cn's binding: 4000 envelopes, checked in this order. `parameters` may be an
/// object or a string holding one (Studio's `preprocessWorkflowRequestBody` takes both;
/// coze.cn is assumed to).
fn bind(req: &Request, ctx: &Ctx) -> Result<RunRequest, Reply> {
    let bad = |what: &str| err(ctx, 4000, &format!("invalid parameter: {what}"));
    let body = object_body(req, ctx)?;
    let s = |k: &str| text_of(&body, k);
    let Some(workflow_id) = s("workflow_id") else {
        return Err(bad("workflow_id is required"));
    };
    let Some(parameters) = parameters_of(&body) else {
        return Err(bad("parameters must be a JSON object"));
    };
    let (bot_id, app_id) = (s("bot_id"), s("app_id"));
    if bot_id.is_some() && app_id.is_some() {
        return Err(bad("bot_id and app_id cannot both be set"));
    }
    Ok(RunRequest {
        workflow_id,
        parameters,
        bot_id,
        app_id,
        is_async: body
            .get("is_async")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        user: user_of(&body),
    })
}

/// coze.cn's request body, which must be a JSON object (else 4000).
pub fn object_body(req: &Request, ctx: &Ctx) -> Result<Value, Reply> {
    req.json().filter(Value::is_object).ok_or_else(|| {
        err(
            ctx,
            4000,
            "invalid parameter: request body must be a JSON object",
        )
    })
}

/// A body's field `k` as text, when it is a non-empty string.
pub fn text_of(body: &Value, k: &str) -> Option<String> {
    body.get(k)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The body's `parameters` as an object: absent or null is `{}`, a string must hold an
/// object; None when it is something else.
pub fn parameters_of(body: &Value) -> Option<Value> {
    match body.get("parameters") {
        None | Some(Value::Null) => Some(json!({})),
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_object),
        Some(_) => None,
    }
}

/// `ext.user_id` of a body.
pub fn user_of(body: &Value) -> Option<String> {
    body.get("ext")
        .and_then(|e| e.get("user_id"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// Why a run does not start.
#[derive(Clone, Debug)]
pub enum Refusal {
    NotPublished,
    /// A parameter `required` names is missing.
    Missing(String),
    /// `is_async` on a workflow whose spec says `async: false`.
    NoAsync,
    /// Studio: `parameters` that is not an object (coze refuses it when binding).
    BadParameters,
    /// Studio: both `bot_id` and `app_id` (coze refuses it when binding).
    BotAndApp,
}

/// The checks before a run starts, in the order the fake makes them.
fn refusal(spec: &Spec, rr: &RunRequest, studio: bool) -> Option<Refusal> {
    // Studio's `OpenAPIRun` order: the parameters decoded, the workflow published, the
    // bot and app checked; the inputs only once it executes.
    if !rr.parameters.is_object() {
        return Some(Refusal::BadParameters);
    }
    if !spec.published {
        return Some(Refusal::NotPublished);
    }
    if rr.bot_id.is_some() && rr.app_id.is_some() {
        return Some(Refusal::BotAndApp);
    }
    if let Some(name) = spec
        .required
        .iter()
        .find(|n| rr.parameters.get(n.as_str()).is_none_or(Value::is_null))
    {
        return Some(Refusal::Missing(name.clone()));
    }
    // A Studio has no plans: nothing in its `OpenAPIRun` refuses an async run.
    if rr.is_async && !spec.async_allowed && !studio {
        return Some(Refusal::NoAsync);
    }
    None
}

/// coze.cn's answer to a refused run.
fn coze_refusal(ctx: &Ctx, r: &Refusal) -> Reply {
    match r {
        Refusal::NotPublished => err(
            ctx,
            4200,
            "The workflow has not been published. Publish it, then run it through the API.",
        ),
        Refusal::Missing(name) => err(
            ctx,
            4000,
            &format!("Missing required parameter: {name}"),
        ),
        Refusal::NoAsync => err(
            ctx,
            6003,
            "Asynchronous workflow execution is a premium feature available only to Coze Professional users.",
        ),
        // `bind` refuses both before a spec is looked up.
        Refusal::BadParameters => err(ctx, 4000, "invalid parameter: parameters must be a JSON object"),
        Refusal::BotAndApp => err(ctx, 4000, "invalid parameter: bot_id and app_id cannot both be set"),
    }
}

/// Take the stream fault this run's stream applies, if the request fired one.
fn take_stream_fault(ctx: &mut Ctx) -> Option<Value> {
    if wire::STREAM_FAULTS.contains(&ctx.fault_type()) {
        ctx.fault.take()
    } else {
        None
    }
}

/// Bind a run request by the dialect's rules, look its workflow up and check it may
/// start; the bound request and spec, or the answer that refuses it.
fn admit(app: &App, req: &Request, ctx: &Ctx, mode: Mode) -> Result<(RunRequest, Spec), Reply> {
    let studio = app.opts.dialect == Dialect::Studio;
    let rr = if studio {
        studio::bind(req)?
    } else {
        bind(req, ctx)?
    };
    let spec = app.lock().wf.spec(&rr.workflow_id);
    match refusal(&spec, &rr, studio) {
        None => Ok((rr, spec)),
        Some(r) if studio => Err(studio::refusal(&r, mode)),
        Some(r) => Err(coze_refusal(ctx, &r)),
    }
}

/// POST /v1/workflow/run: sync (the answer waits for the end: `messages` × `delay_ms`
/// plus `pings` × `ping_ms`), or with `is_async` the execute_id at once.
pub fn run(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let studio = app.opts.dialect == Dialect::Studio;
    let (rr, spec) = match admit(app, req, ctx, Mode::Sync) {
        Ok(x) => x,
        Err(reply) => return reply,
    };
    let mode = if rr.is_async { Mode::Async } else { Mode::Sync };
    let execute_id = {
        let mut st = app.lock();
        let run = st.wf.start(&rr, spec.clone(), mode, &ctx.logid, studio);
        if mode == Mode::Async {
            let outcome = run.fresh();
            run.pending = Some(outcome);
        }
        run.execute_id
    };
    let debug = debug_url(app, execute_id, &rr.workflow_id);
    if mode == Mode::Async {
        return if studio {
            studio::async_started(execute_id, &debug)
        } else {
            Reply::json(
                200,
                &json!({"debug_url": debug, "execute_id": execute_id.to_string(), "msg": "",
                        "detail": {"logid": ctx.logid}}),
            )
        };
    }
    app.sleep_ms(
        spec.messages
            .saturating_mul(spec.delay_ms)
            .saturating_add(spec.pings.saturating_mul(spec.ping_ms)),
    );
    let run = {
        let mut st = app.lock();
        st.wf.run_mut(execute_id).map(|run| {
            let outcome = run.fresh();
            run.settle(outcome);
            run.clone()
        })
    };
    match run {
        Some(run) if studio => studio::sync_answer(&run, &debug),
        Some(run) => coze_sync_answer(ctx, &run, &debug),
        // Only a book overflowing with 100,000 newer runs meanwhile loses it.
        None => err(ctx, 5000, "internal error"),
    }
}

/// coze's answer to a sync run or to its resume (`workflow_run`, `resume_workflow` docs
/// pages): the output with `usage`; the interrupt to resume (the resume example's keys,
/// with the run's execute_id); or the failure.
fn coze_sync_answer(ctx: &Ctx, run: &Run, debug: &str) -> Reply {
    let logid = json!({ "logid": ctx.logid });
    let body = match (&run.open, &run.error) {
        (Some(ask), _) => json!({"code": 0, "msg": "", "debug_url": debug,
            "interrupt_data": interrupt_data(ask), "execute_id": run.execute_id.to_string(),
            "detail": logid}),
        (None, Some((code, msg))) => {
            json!({"code": code, "msg": msg, "debug_url": debug, "detail": logid})
        }
        (None, None) => {
            json!({"code": 0, "msg": "", "data": run.output.clone().unwrap_or_default(),
            "debug_url": debug, "usage": usage_json(run.usage), "detail": logid})
        }
    };
    Reply::json(200, &body)
}

/// coze's `interrupt_data` (`resume_workflow` docs page); a question node asks for no
/// `required_parameters`.
fn interrupt_data(ask: &Ask) -> Value {
    json!({"data": ask.data, "required_parameters": {}, "event_id": ask.event_id,
           "type": ask.kind})
}

/// POST /v1/workflow/stream_run.
pub fn stream_run(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let studio = app.opts.dialect == Dialect::Studio;
    let (rr, spec) = match admit(app, req, ctx, Mode::Stream) {
        Ok(x) => x,
        Err(reply) => return reply,
    };
    let fault = take_stream_fault(ctx);
    let plan = {
        let mut st = app.lock();
        let run = st.wf.start(&rr, spec, Mode::Stream, &ctx.logid, studio);
        let outcome = run.fresh();
        StreamPlan::new(app, run, outcome, fault, true)
    };
    stream_reply(plan)
}

/// A resume request once bound (`workflow_resume` docs page).
struct ResumeRequest {
    workflow_id: String,
    event_id: String,
    resume_data: String,
}

/// Bind a resume by the dialect's rules: coze requires every field (4000); Studio binds
/// what is there (`OpenAPIStreamResumeFlowRequest`), a field of the wrong type a 400.
fn bind_resume(req: &Request, ctx: &Ctx, studio: bool) -> Result<ResumeRequest, Reply> {
    if studio {
        return studio::bind_resume(req).map(|(workflow_id, event_id, resume_data)| {
            ResumeRequest {
                workflow_id,
                event_id,
                resume_data,
            }
        });
    }
    let bad = |what: &str| err(ctx, 4000, &format!("invalid parameter: {what}"));
    let body = object_body(req, ctx)?;
    let s = |k: &str| text_of(&body, k);
    let (Some(workflow_id), Some(event_id)) = (s("workflow_id"), s("event_id")) else {
        return Err(bad("workflow_id and event_id are required"));
    };
    let Some(resume_data) = body.get("resume_data").and_then(Value::as_str) else {
        return Err(bad("resume_data is required (a string)"));
    };
    if body.get("interrupt_type").and_then(Value::as_i64).is_none() {
        return Err(bad("interrupt_type is required (an integer)"));
    }
    Ok(ResumeRequest {
        workflow_id,
        event_id,
        resume_data: resume_data.to_string(),
    })
}

/// The answer to a resume naming no open interrupt of that workflow: one already
/// resumed, of a run that ended, or never given.
fn no_such_interrupt(ctx: &Ctx, studio: bool) -> Reply {
    let msg = "invalid parameter: event not found or already resumed";
    if studio {
        crate::router::studio::business(4000, msg)
    } else {
        err(ctx, 4000, msg)
    }
}

/// The run whose open interrupt `rr` answers.
fn open_run<'a>(book: &'a mut Book, rr: &ResumeRequest) -> Option<&'a mut Run> {
    let execute_id = rr.event_id.split('/').next()?.parse::<u64>().ok()?;
    book.run_mut(execute_id).filter(|run| {
        run.workflow_id == rr.workflow_id
            && run.open.as_ref().is_some_and(|a| a.event_id == rr.event_id)
    })
}

/// POST /v1/workflow/stream_resume: the run goes on from its question; the stream's ids
/// start again at 0 (`workflow_resume` docs page) and carry the end (or the question
/// asked again) without the messages before it.
pub fn stream_resume(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let studio = app.opts.dialect == Dialect::Studio;
    let rr = match bind_resume(req, ctx, studio) {
        Ok(rr) => rr,
        Err(reply) => return reply,
    };
    let fault = take_stream_fault(ctx);
    let plan = {
        let mut st = app.lock();
        let Some(run) = open_run(&mut st.wf, &rr) else {
            return no_such_interrupt(ctx, studio);
        };
        let outcome = run.resume(&rr.resume_data);
        StreamPlan::new(app, run, outcome, fault, false)
    };
    stream_reply(plan)
}

/// POST /v1/workflows/resume (coze only; `resume_workflow` docs page): a sync run's
/// resume answers as the run did; an async run's says it started again, and its history
/// moves on as the run's did. The fake also takes a streamed run's interrupt here.
pub fn resume(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let rr = match bind_resume(req, ctx, false) {
        Ok(rr) => rr,
        Err(reply) => return reply,
    };
    let mut st = app.lock();
    let Some(run) = open_run(&mut st.wf, &rr) else {
        return no_such_interrupt(ctx, false);
    };
    let outcome = run.resume(&rr.resume_data);
    let debug = debug_url(app, run.execute_id, &run.workflow_id);
    if run.mode == Mode::Async {
        run.pending = Some(outcome);
        run.reads = 0;
        return Reply::json(
            200,
            &json!({"code": 0, "msg": "", "debug_url": debug,
                    "execute_id": run.execute_id.to_string(), "detail": {"logid": ctx.logid}}),
        );
    }
    run.settle(outcome);
    coze_sync_answer(ctx, run, &debug)
}

/// A workflow stream's answer: the headers now, the events from [`StreamPlan::run`].
fn stream_reply(plan: StreamPlan) -> Reply {
    let mut r = Reply::new(200, "text/event-stream; charset=utf-8", Vec::new());
    if plan.studio {
        // Set by `OpenAPIStreamRunFlow` (backend/api/handler/coze/workflow_service.go).
        r = r.with_header("Access-Control-Allow-Origin", "*");
    }
    r.stream = Some(Box::new(move |out: &mut ChunkedOut<'_>| plan.run(out)));
    r
}

/// Everything a workflow stream needs once the request handler has returned.
struct StreamPlan {
    app: Arc<App>,
    studio: bool,
    execute_id: u64,
    debug_url: String,
    spec: Spec,
    /// Message events before the end (none on a resumed stream).
    messages: u64,
    pings: u64,
    outcome: Outcome,
    usage: (u64, u64),
    fault: Option<Value>,
}

impl StreamPlan {
    /// The stream of `run` ending in `outcome`: from the start when `fresh`, else from
    /// its question.
    fn new(
        app: &Arc<App>,
        run: &Run,
        outcome: Outcome,
        fault: Option<Value>,
        fresh: bool,
    ) -> StreamPlan {
        StreamPlan {
            app: app.clone(),
            studio: run.studio,
            execute_id: run.execute_id,
            debug_url: debug_url(app, run.execute_id, &run.workflow_id),
            messages: if fresh { run.spec.messages } else { 0 },
            pings: if fresh { run.spec.pings } else { 0 },
            usage: match &outcome {
                Outcome::Done { output } => usage(&run.parameters, output),
                _ => (0, 0),
            },
            outcome,
            fault,
            spec: run.spec.clone(),
        }
    }

    fn run(self, out: &mut ChunkedOut<'_>) -> crate::http::StreamEnd {
        let flavor = Flavor::Workflow {
            studio: self.studio,
            lower: self.spec.lowercase_events,
            debug_url: self.debug_url.clone(),
        };
        let mut w = Wire::new(out, self.app.clone(), Some(0), self.fault.clone(), flavor);
        let result = self.body(&mut w);
        // However the stream ended, the run is over on the server: as planned, or failed
        // as an injected error event said.
        let outcome = match w.failed.take() {
            Some((code, msg)) => Outcome::Failed { code, msg },
            None => self.outcome.clone(),
        };
        self.app.lock().wf.settle(self.execute_id, outcome);
        w.end(result)
    }

    fn name(&self, kind: EventKind) -> &'static str {
        event_name(kind, self.spec.lowercase_events)
    }

    fn body(&self, w: &mut Wire<'_, '_>) -> Result<(), Stop> {
        let message = self.name(EventKind::Message);
        let mut data = Vec::with_capacity(256);
        for i in 0..self.messages {
            w.pause(self.spec.delay_ms)?;
            data.clear();
            self.message_data(&mut data, i, i + 1 == self.messages);
            w.event(message, &data)?;
        }
        for _ in 0..self.pings {
            w.pause(self.spec.ping_ms)?;
            // Studio never sends PING: it only waits.
            if !self.studio {
                w.event(self.name(EventKind::Ping), b"{}")?;
            }
        }
        // The run is over (or waiting) on the server before the client can see its end,
        // so a client that reads the history or resumes the moment it reads the last
        // event finds the run there.
        self.app
            .lock()
            .wf
            .settle(self.execute_id, self.outcome.clone());
        match &self.outcome {
            Outcome::Done { output } => {
                let end = self.end_message(output);
                w.event(message, end.as_bytes())?;
                // The docs' table says Done carries the debug URL (their example shows
                // `{}`); coze-go's `parseWorkflowEventDone` reads it; Studio sends it.
                let done = json!({ "debug_url": self.debug_url }).to_string();
                w.event(self.name(EventKind::Done), done.as_bytes())?;
            }
            Outcome::Failed { code, msg } => {
                let data = if self.studio {
                    json!({"debug_url": self.debug_url, "error_code": code, "error_message": msg})
                } else {
                    json!({"error_code": code, "error_message": msg})
                };
                w.event(self.name(EventKind::Error), data.to_string().as_bytes())?;
            }
            Outcome::Ask(ask) => {
                let question = self.question_message(ask);
                w.event(message, question.as_bytes())?;
                // coze: the docs' Interrupt example; Studio: `streamRunData`, which has
                // no node_title (coze-py's `WorkflowEventInterrupt` requires one).
                let data = if self.studio {
                    json!({"debug_url": self.debug_url, "interrupt_data":
                        {"event_id": ask.event_id, "type": ask.kind, "data": ask.data}})
                } else {
                    json!({"interrupt_data": {"data": ask.data, "event_id": ask.event_id,
                        "type": ask.kind}, "node_title": "Question"})
                };
                w.event(self.name(EventKind::Interrupt), data.to_string().as_bytes())?;
            }
        }
        w.flush()
    }

    /// Message `i` of the node titled `Message`, written without building a Value: the
    /// 100,000-message bench formats nothing else per event. coze: the docs' keys in
    /// their order; Studio: `streamRunData`'s (backend/api/handler/coze/workflow_service.go).
    fn message_data(&self, b: &mut Vec<u8>, i: u64, last: bool) {
        b.extend_from_slice(b"{\"content\":\"");
        json_escape_into(b, &message_content(i));
        if self.studio {
            // Writing into a Vec cannot fail.
            let _ = write!(
                b,
                "\",\"content_type\":\"text\",\"node_seq_id\":\"{i}\",\"node_id\":\"{MESSAGE_NODE_ID}\",\"node_is_finish\":{last},\"node_type\":\"Message\",\"node_title\":\"Message\"}}"
            );
        } else {
            let _ = write!(
                b,
                "\",\"node_is_finish\":{last},\"node_seq_id\":\"{i}\",\"node_title\":\"Message\"}}"
            );
        }
    }

    /// The end node's Message, carrying the whole output: coze adds `cost`, `token` and
    /// `usage`; Studio its node fields and `token`.
    fn end_message(&self, output: &str) -> String {
        let (input, out) = self.usage;
        if self.studio {
            json!({"content": output, "content_type": "text", "node_seq_id": "0",
                   "node_id": END_NODE_ID, "node_is_finish": true, "node_type": "End",
                   "node_title": "End", "token": input + out})
            .to_string()
        } else {
            json!({"content": output, "cost": "0.00", "node_is_finish": true,
                   "node_seq_id": "0", "node_title": "End", "token": input + out,
                   "usage": usage_json(self.usage)})
            .to_string()
        }
    }

    /// The question node's Message before its Interrupt: coze shows the question's text
    /// (the docs' Interrupt example), Studio the node's JSON, as `interrupt_data.data`.
    fn question_message(&self, ask: &Ask) -> String {
        if self.studio {
            json!({"content": ask.data, "content_type": "text", "node_seq_id": "0",
                   "node_id": QUESTION_NODE_ID, "node_is_finish": true,
                   "node_type": "Question", "node_title": "Question"})
            .to_string()
        } else {
            json!({"content": self.spec.question.clone().unwrap_or_default(),
                   "content_type": "text", "node_is_finish": true, "node_seq_id": "0",
                   "node_title": "Question"})
            .to_string()
        }
    }
}

/// Studio's node ids: the end node's is always 900001 in its canvases; the others' are
/// any other numbers.
const END_NODE_ID: &str = "900001";
const MESSAGE_NODE_ID: &str = "133234";
const QUESTION_NODE_ID: &str = "154650";

/// Let a history read move an async run on: it says Running for `running_polls` reads,
/// then shows its outcome.
fn observe(run: &mut Run) {
    if run.status != Status::Running || run.pending.is_none() {
        return;
    }
    run.reads += 1;
    if run.reads > run.spec.running_polls {
        if let Some(outcome) = run.pending.take() {
            run.settle(outcome);
        }
    }
}

/// The path's (workflow_id, execute_id) of coze's history endpoint.
fn history_ids(req: &Request) -> Option<(String, String)> {
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1", "workflows", w, "run_histories", e] => Some((
            crate::util::percent_decode(w),
            crate::util::percent_decode(e),
        )),
        _ => None,
    }
}

/// GET /v1/workflows/{workflow_id}/run_histories/{execute_id} (Studio's
/// `get_run_history` is [`studio::history`]): `data` a one-element array
/// (`workflow_history` docs page). A run of another workflow, or none: code 4200.
pub fn history(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    if app.opts.dialect == Dialect::Studio {
        return studio::history(app, req);
    }
    let Some((workflow_id, execute_id)) = history_ids(req) else {
        return crate::router::no_such_endpoint(req, ctx);
    };
    let mut st = app.lock();
    let run = execute_id
        .parse::<u64>()
        .ok()
        .and_then(|e| st.wf.run_mut(e))
        .filter(|r| r.workflow_id == workflow_id);
    let Some(run) = run else {
        return err(ctx, 4200, "workflow execute record not found");
    };
    observe(run);
    let h = history_json(app, run);
    crate::router::ok(ctx, json!([h]))
}

/// A run as coze's history shows it: the docs' fields, `error_code` a string (`""` on
/// success), and `is_output_trimmed`, which coze-py requires.
fn history_json(app: &App, run: &Run) -> Value {
    let (input, output) = run.usage;
    let mut h = json!({
        "execute_id": run.execute_id.to_string(),
        "execute_status": run.status.name(),
        "bot_id": run.bot_id.clone().unwrap_or_else(|| "0".into()),
        "connector_id": "1024",
        "connector_uid": run.connector_uid,
        "run_mode": run.mode.run_mode(),
        "logid": run.logid,
        "create_time": run.created,
        "update_time": run.updated,
        "output": run.output.clone().unwrap_or_default(),
        "token": (input + output).to_string(),
        "error_code": run.error.as_ref().map(|(c, _)| c.to_string()).unwrap_or_default(),
        "error_message": run.error.as_ref().map(|(_, m)| m.clone()).unwrap_or_default(),
        "debug_url": debug_url(app, run.execute_id, &run.workflow_id),
        "usage": usage_json(run.usage),
        "is_output_trimmed": false,
    });
    if let Some(ask) = &run.open {
        h["interrupt_data"] = interrupt_data(ask);
    }
    h
}

/// `POST /_fake/workflow`: set one workflow's behaviour.
pub fn admin_set(app: &App, v: &Value) -> Result<(), String> {
    let spec = Spec::from_json(v)?;
    app.lock().wf.set(spec);
    Ok(())
}
