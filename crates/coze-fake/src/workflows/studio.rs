//! Workflows as a self-hosted Coze Studio serves them (coze-dev/coze-studio at 4f786d6a:
//! handlers `backend/api/handler/coze/workflow_service.go`, logic
//! `backend/application/workflow/workflow.go`, types
//! `backend/api/model/workflow/workflow.go`, codes `backend/types/errno/workflow.go`):
//! binding, the run's answer `OpenAPIRunFlowResponse` (every unset field a JSON `null`,
//! no `usage`, `token` and `cost` instead), its OpenAPI error codes (6031, 4000, 6039,
//! 6023) and the raw ones a stream sends before streaming.

use serde_json::{json, Value};

use super::{Mode, Refusal, Run, RunRequest, Status};
use crate::http::{Reply, Request};
use crate::router::studio::bad_request;

/// errno `ErrWorkflowNotPublished`, `ErrMissingRequiredParam`, `ErrInvalidParameter`,
/// `ErrWorkflowExecuteFail`.
const NOT_PUBLISHED: i64 = 720_702_011;
const MISSING_PARAM: i64 = 720_702_002;
const INVALID_PARAM: i64 = 720_702_001;
const EXECUTE_FAIL: i64 = super::wire::STUDIO_EXECUTE_FAIL;
/// errno `ErrInterruptNotSupported`.
const INTERRUPT_NOT_SUPPORTED: i64 = 720_702_078;

/// The messages `code.Register` gives those codes.
const NOT_PUBLISHED_MSG: &str = "Workflow not published. The requested operation cannot be performed on an unpublished workflow. Please publish the workflow and try again.";
const INTERRUPT_NOT_SUPPORTED_MSG: &str = "Synchronous requests do not support interruption. Please switch to asynchronous requests for interruptible operations.";
const INVALID_PARAM_MSG: &str = "Invalid request parameters. Please check your input and ensure all required fields are correctly formatted and within allowed ranges.";

/// `CodeForOpenAPI`'s `errnoMap`: the internal codes a sync run's answer renames; any
/// other goes out as it is.
pub fn openapi_code(code: i64) -> i64 {
    match code {
        720_702_011 => 6031,
        720_702_002 | 720_702_001 | 720_712_014 => 4000,
        720_702_078 => 6039,
        720_702_085 => 6023,
        c => c,
    }
}

/// `ErrMissingRequiredParam`'s message, its quotes and colon as Studio writes them.
fn missing_msg(name: &str) -> String {
    format!("Missing required parameters：’{name}‘. Please review the API documentation and ensure all mandatory fields are included in your request.")
}

/// Bind a run request as `OpenAPIRunFlow` and `OpenAPIStreamRunFlow` do: the body must
/// decode as an object (`preprocessWorkflowRequestBody`, else a 400), `parameters` of
/// any type is re-encoded to a string and decoded later (a non-object is refused then),
/// the string fields must be strings (bind errors, 400).
pub fn bind(req: &Request) -> Result<RunRequest, Reply> {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return Err(bad_request(
                "failed to unmarshal request body: json: cannot unmarshal non-object into Go value of type map[string]interface {}",
            ))
        }
        Err(e) => {
            return Err(bad_request(&format!(
                "failed to unmarshal request body: {e}"
            )))
        }
    };
    let string = |k: &str| -> Result<Option<String>, Reply> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_request(&format!(
                "json: cannot unmarshal {k} into Go struct field OpenAPIRunFlowRequest.{k} of type string"
            ))),
        }
    };
    let is_async = match body.get("is_async") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad_request(
                "json: cannot unmarshal is_async into Go struct field OpenAPIRunFlowRequest.is_async of type bool",
            ))
        }
    };
    Ok(RunRequest {
        workflow_id: string("workflow_id")?.unwrap_or_default(),
        // Refused later, as `OpenAPIRun` does once it decodes the string.
        parameters: super::parameters_of(&body).unwrap_or(Value::Null),
        bot_id: string("bot_id")?,
        app_id: string("app_id")?,
        is_async,
        user: super::user_of(&body),
    })
}

/// `OpenAPIRunFlowResponse` in its field order; what is not given is `null`.
struct RunBody<'a> {
    code: i64,
    msg: Option<&'a str>,
    data: Option<&'a str>,
    token: Option<u64>,
    debug_url: Option<&'a str>,
    execute_id: Option<u64>,
}

impl RunBody<'_> {
    fn reply(&self) -> Reply {
        Reply::json(
            200,
            &json!({
                "code": self.code,
                "msg": self.msg,
                "data": self.data,
                "token": self.token,
                // `OpenAPIRun` always says "0.00000" when it says anything.
                "cost": self.token.map(|_| "0.00000"),
                "debug_url": self.debug_url,
                "execute_id": self.execute_id.map(|e| e.to_string()),
                "BaseResp": null,
            }),
        )
    }
}

/// A run refused before it started. `/v1/workflow/run` maps the code
/// (`OpenAPIRunFlow`); a stream answers `InternalError`'s `{"code","msg"}` with the raw
/// code, HTTP 200, though it set `text/event-stream` (the JSON body replaces it).
pub fn refusal(r: &Refusal, mode: Mode) -> Reply {
    let (code, msg) = match r {
        Refusal::NotPublished => (NOT_PUBLISHED, NOT_PUBLISHED_MSG.to_string()),
        Refusal::Missing(name) => (MISSING_PARAM, missing_msg(name)),
        Refusal::BadParameters => (INVALID_PARAM, INVALID_PARAM_MSG.to_string()),
        // A plain error wrapped as an execution failure (`OpenAPIRun`'s deferred
        // `WrapIfNeeded`).
        Refusal::BotAndApp => (
            EXECUTE_FAIL,
            "Workflow execution failure: project_id and bot_id cannot be set at the same time"
                .to_string(),
        ),
        // Never: a Studio has no plans (see `workflows::refusal`).
        Refusal::NoAsync => (EXECUTE_FAIL, "Workflow execution failure".to_string()),
    };
    if mode == Mode::Stream {
        return crate::router::studio::business(code, &msg);
    }
    RunBody {
        code: openapi_code(code),
        msg: Some(&msg),
        data: None,
        token: None,
        debug_url: None,
        execute_id: None,
    }
    .reply()
}

/// An async run started: its execute_id and debug_url.
pub fn async_started(execute_id: u64, debug_url: &str) -> Reply {
    RunBody {
        code: 0,
        msg: None,
        data: None,
        token: None,
        debug_url: Some(debug_url),
        execute_id: Some(execute_id),
    }
    .reply()
}

/// A sync run's answer: its output with `token` and `cost`, or its failure (the code
/// renamed by [`openapi_code`], the debug_url a failed run's error carries).
pub fn sync_answer(run: &Run, debug_url: &str) -> Reply {
    match (&run.status, &run.error) {
        // `OpenAPIRun` cannot interrupt: `ErrInterruptNotSupported`, mapped to 6039.
        (Status::Interrupted, _) => RunBody {
            code: openapi_code(INTERRUPT_NOT_SUPPORTED),
            msg: Some(INTERRUPT_NOT_SUPPORTED_MSG),
            data: None,
            token: None,
            debug_url: None,
            execute_id: None,
        }
        .reply(),
        (Status::Fail, Some((code, msg))) => RunBody {
            code: openapi_code(*code),
            msg: Some(msg),
            data: None,
            token: None,
            debug_url: Some(debug_url),
            execute_id: None,
        }
        .reply(),
        _ => RunBody {
            code: 0,
            msg: None,
            data: Some(run.output.as_deref().unwrap_or("")),
            token: Some(run.usage.0 + run.usage.1),
            debug_url: Some(debug_url),
            execute_id: Some(run.execute_id),
        }
        .reply(),
    }
}

/// The history's `execute_status`: `WorkflowExeStatus`'s names, and for a run waiting
/// at a question what its `String()` says of status 5 (`entity.WorkflowInterrupted` has
/// no name in the IDL's enum).
fn status_name(status: Status) -> &'static str {
    match status {
        Status::Interrupted => "<UNSET>",
        s => s.name(),
    }
}

/// Bind a resume as `OpenAPIStreamResumeFlow` does: what is absent is empty, a field of
/// the wrong type is a bind error (400). (workflow_id, event_id, resume_data).
pub fn bind_resume(req: &Request) -> Result<(String, String, String), Reply> {
    let o = crate::router::studio::body_object(req)?;
    let string = |k: &str| -> Result<String, Reply> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(bad_request(&format!(
                "json: cannot unmarshal {k} into Go struct field OpenAPIStreamResumeFlowRequest.{k} of type string"
            ))),
        }
    };
    if o.get("interrupt_type")
        .is_some_and(|t| !t.is_null() && !t.is_i64())
    {
        return Err(bad_request(
            "json: cannot unmarshal interrupt_type into Go struct field OpenAPIStreamResumeFlowRequest.interrupt_type of type workflow.InterruptType",
        ));
    }
    Ok((
        string("workflow_id")?,
        string("event_id")?,
        string("resume_data")?,
    ))
}

/// errno `ErrWorkflowOperationFail`: how `OpenAPIGetWorkflowRunHistory` reports a run
/// it cannot read.
const OPERATION_FAIL: i64 = 777_777_775;

/// GET /v1/workflow/get_run_history?workflow_id=&execute_id= (`GetWorkflowRunHistory`):
/// no `code` or `msg` on success; the run found by its execute_id alone (the
/// workflow_id is only required); ids as JSON numbers, `log_id`, `error_msg`, `input`,
/// no `usage`. A missing or unknown execute_id: `ErrWorkflowOperationFail`, HTTP 200.
pub fn history(app: &std::sync::Arc<crate::App>, req: &Request) -> Reply {
    if req.query("workflow_id").is_none() {
        return bad_request(&crate::router::studio::required("WorkflowID"));
    }
    let failure = |why: &str| {
        Reply::json(
            200,
            &json!({"code": OPERATION_FAIL, "msg": format!("Workflow operation failure: {why}"),
                    "BaseResp": null}),
        )
    };
    let text = req.query("execute_id").unwrap_or("");
    let execute_id = match crate::router::studio::parse_id(text) {
        Ok(id) => id as u64,
        Err(e) => return failure(&e),
    };
    let mut st = app.lock();
    let Some(run) = st.wf.run_mut(execute_id) else {
        return failure("record not found");
    };
    super::observe(run);
    let (input, output) = run.usage;
    let h = json!({
        "execute_id": run.execute_id,
        "execute_status": status_name(run.status),
        "bot_id": run.bot_id.as_deref().and_then(|b| b.parse::<i64>().ok()),
        "connector_id": 1024,
        "connector_uid": run.connector_uid,
        "run_mode": run.mode.run_mode(),
        "log_id": run.logid,
        "create_time": run.created,
        "update_time": run.updated,
        "debug_url": super::debug_url(app, run.execute_id, &run.workflow_id),
        "input": run.parameters.to_string(),
        "output": run.output,
        "token": input + output,
        "cost": "0.00000",
        "cost_unit": null,
        "ext": null,
        "error_code": run.error.as_ref().map(|(c, _)| c.to_string()),
        "error_msg": run.error.as_ref().map(|(_, m)| m.clone()),
    });
    Reply::json(200, &json!({"data": [h], "BaseResp": null}))
}
