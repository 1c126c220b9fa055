//! Request routing: names each request's endpoint (the names faults and stats use),
//! counts and logs it, fires queued faults, checks the bearer token on `/v1` and `/v3`,
//! and hands the request to the module that implements it — or, in the Studio dialect,
//! to [`studio`], Studio's own front door. Also the envelope helpers every API module
//! answers with (coze: `{"code","msg","data","detail":{"logid"}}`; Studio: no `detail`).

pub mod studio;

use serde_json::{json, Value};
use std::sync::Arc;

use crate::http::{Action, Body, Handler, Reply, Request};
use crate::{App, Dialect};

/// Per-request context: the response's logid and the fault fired for this request (a
/// module that knows how to apply it, e.g. chat for stream faults, takes it).
pub struct Ctx {
    pub logid: String,
    pub fault: Option<Value>,
    pub conversation_id: Option<String>,
    /// The server imitated, which decides the envelopes' shape.
    pub dialect: Dialect,
}

impl Ctx {
    pub fn fault_type(&self) -> &str {
        self.fault
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Success envelope. Studio's bodies carry no logid: it is only in `X-Log-ID`
/// (`backend/api/middleware/log.go` in coze-dev/coze-studio).
pub fn ok(ctx: &Ctx, data: Value) -> Reply {
    match ctx.dialect {
        Dialect::Coze => Reply::json(
            200,
            &json!({"code": 0, "msg": "", "data": data, "detail": {"logid": ctx.logid}}),
        ),
        Dialect::Studio => studio::ok_data(data),
    }
}

/// Error envelope; real Coze answers these with HTTP 200.
pub fn err(ctx: &Ctx, code: i64, msg: &str) -> Reply {
    err_status(ctx, 200, code, msg)
}

pub fn err_status(ctx: &Ctx, status: u16, code: i64, msg: &str) -> Reply {
    match ctx.dialect {
        Dialect::Coze => Reply::json(
            status,
            &json!({"code": code, "msg": msg, "detail": {"logid": ctx.logid}}),
        ),
        Dialect::Studio => studio::error_body(status, code, msg),
    }
}

/// The endpoint name of a request, as used by faults, stats and the log.
pub fn endpoint_name(method: &str, path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["api", "permission", "oauth2", "token"])
        | ("POST", ["api", "permission", "oauth2", "account", _, "token"]) => "token",
        ("POST", ["api", "permission", "oauth2", "device", "code"])
        | ("POST", ["api", "permission", "oauth2", "workspace_id", _, "device", "code"]) => {
            "device_code"
        }
        ("GET", ["api", "permission", "oauth2", "authorize"])
        | ("GET", ["api", "permission", "oauth2", "workspace_id", _, "authorize"]) => "authorize",
        ("GET", ["oauth", "consent"]) => "consent.page",
        ("POST", ["oauth", "consent"]) => "consent.submit",
        ("GET", ["oauth", "device"]) => "device.page",
        ("POST", ["oauth", "device"]) => "device.submit",
        ("GET", ["v1", "users", "me"]) => "users.me",
        ("POST", ["v1", "conversation", "create"]) => "conversation.create",
        ("GET", ["v1", "conversation", "retrieve"]) => "conversation.retrieve",
        ("GET", ["v1", "conversations"]) => "conversation.list",
        ("PUT", ["v1", "conversations", _]) => "conversation.update",
        ("DELETE", ["v1", "conversations", _]) => "conversation.delete",
        ("POST", ["v1", "conversations", _, "clear"]) => "conversation.clear",
        ("POST", ["v1", "conversation", "message", "list"]) => "message.list",
        ("POST", ["v1", "conversation", "message", "create"]) => "message.create",
        ("GET", ["v1", "conversation", "message", "retrieve"]) => "message.retrieve",
        ("POST", ["v3", "chat"]) => "chat",
        ("GET" | "POST", ["v3", "chat", "retrieve"]) => "chat.retrieve",
        ("GET", ["v3", "chat", "message", "list"]) => "chat.message.list",
        ("POST", ["v3", "chat", "cancel"]) => "chat.cancel",
        ("POST", ["v3", "chat", "submit_tool_outputs"]) => "chat.submit_tool_outputs",
        ("POST", ["v1", "files", "upload"]) => "files.upload",
        ("GET", ["v1", "files", "retrieve"]) => "files.retrieve",
        ("POST", ["v1", "workflow", "run"]) => "workflow.run",
        ("POST", ["v1", "workflow", "stream_run"]) => "workflow.stream_run",
        ("POST", ["v1", "workflow", "stream_resume"]) => "workflow.stream_resume",
        ("POST", ["v1", "workflows", "resume"]) => "workflow.resume",
        // coze.cn's path and Studio's: one endpoint name, each dialect serves its own.
        ("GET", ["v1", "workflows", _, "run_histories", _])
        | ("GET", ["v1", "workflow", "get_run_history"]) => "workflow.history",
        ("POST", ["v1", "workflows", "chat"]) => "workflow.chat",
        ("GET", ["v1", "workspaces"]) => "workspaces.list",
        ("GET", ["v1", "bots"]) => "bots.list",
        // The current path and the older one (`get_metadata`): one endpoint.
        ("GET", ["v1", "bots", _]) | ("GET", ["v1", "bot", "get_online_info"]) => "bots.get",
        (_, ["_fake", ..]) => "_fake",
        _ => "unknown",
    }
}

/// Endpoints a `*` fault applies to: the API, not the web pages a person clicks.
fn is_api(endpoint: &str) -> bool {
    !matches!(
        endpoint,
        "authorize" | "consent.page" | "consent.submit" | "device.page" | "device.submit"
    ) && endpoint != "unknown"
        && endpoint != "_fake"
}

pub struct Router(pub Arc<App>);

impl Handler for Router {
    fn handle(&self, req: &Request, logid: &str, first_on_conn: bool) -> Action {
        self.serve(req, None, logid, first_on_conn)
    }

    /// Uploads are streamed: their content is hashed as it arrives, never held.
    fn streams_body(&self, req: &Request) -> bool {
        endpoint_name(&req.method, &req.path) == "files.upload"
    }

    fn handle_streamed(
        &self,
        req: &Request,
        body: &mut Body<'_>,
        logid: &str,
        first_on_conn: bool,
    ) -> Action {
        self.serve(req, Some(body), logid, first_on_conn)
    }
}

impl Router {
    /// Count, log and answer one request; `body` is the unread body of a streamed one.
    fn serve(
        &self,
        req: &Request,
        body: Option<&mut Body<'_>>,
        logid: &str,
        first_on_conn: bool,
    ) -> Action {
        let app = &*self.0;
        let endpoint = endpoint_name(&req.method, &req.path);
        if endpoint == "_fake" {
            // Admin traffic is neither counted nor logged, so tests can read the counters
            // over HTTP without disturbing them.
            return Action::Reply(crate::admin::handle(app, req));
        }
        let fault = {
            let mut st = app.lock();
            if first_on_conn {
                st.stats.connections += 1;
            }
            *st.stats.requests.entry(endpoint.to_string()).or_insert(0) += 1;
            if endpoint == "unknown" {
                None
            } else {
                st.take_fault(endpoint, is_api(endpoint))
            }
        };
        let mut ctx = Ctx {
            logid: logid.to_string(),
            fault,
            conversation_id: None,
            dialect: app.opts.dialect,
        };
        let t_ms = app.start.elapsed().as_secs_f64() * 1000.0;
        let action = dispatch(&self.0, endpoint, req, body, &mut ctx);
        let (status, conv) = match &action {
            Action::Reply(r) | Action::CutAfter(r, _) => (r.status, r.conversation_id.clone()),
            Action::Reset => (0, None),
        };
        let conv = conv
            .or(ctx.conversation_id)
            .or_else(|| conversation_of(req));
        let mut entry = json!({
            "t_ms": (t_ms * 1000.0).round() / 1000.0,
            "method": req.method,
            "path": req.path,
            "endpoint": endpoint,
            "status": status,
        });
        // The query of an API GET (its paging, say), never an OAuth page's.
        if req.method == "GET" && is_api(endpoint) && !req.query.is_empty() {
            let q: serde_json::Map<String, Value> = req
                .query
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            entry["query"] = Value::Object(q);
        }
        if let Some(c) = &conv {
            entry["conversation_id"] = json!(c);
        }
        if app.opts.verbose {
            crate::util::say(&format!(
                "coze-fake: {} {} -> {} ({}){}",
                req.method,
                req.path,
                status,
                endpoint,
                conv.map(|c| format!(" conversation {c}"))
                    .unwrap_or_default()
            ));
        }
        let mut st = app.lock();
        // A fake left running under a user's scripts must not grow without bound: keep
        // the newest LOG_LIMIT entries (tests read far fewer).
        if st.log.len() >= crate::state::LOG_LIMIT {
            st.log.drain(..crate::state::LOG_LIMIT / 10);
        }
        st.log.push(entry);
        action
    }
}

/// Best-effort conversation id of a request, for the log (never a token).
fn conversation_of(req: &Request) -> Option<String> {
    if let Some(c) = req.query("conversation_id") {
        return Some(c.to_string());
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    if let ["v1", "conversations", id, ..] = segs.as_slice() {
        return Some(id.to_string());
    }
    req.json().and_then(|v| {
        v.get("conversation_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

fn dispatch(
    app: &Arc<App>,
    endpoint: &str,
    req: &Request,
    body: Option<&mut Body<'_>>,
    ctx: &mut Ctx,
) -> Action {
    // An upload applies its faults itself, around reading the body.
    if let Some(body) = body {
        return crate::files::upload(app, req, body, ctx);
    }
    // Faults that replace the answer entirely fire before anything is processed.
    if let Some(a) = crate::faults::pre_handler(ctx, endpoint) {
        return a;
    }
    let mut reply = match app.opts.dialect {
        Dialect::Coze => coze_route(app, endpoint, req, ctx),
        Dialect::Studio => studio::route(app, endpoint, req, ctx),
    };
    if let Some(c) = ctx.conversation_id.clone() {
        reply.conversation_id.get_or_insert(c);
    }
    crate::faults::post_handler(app, ctx, reply)
}

/// coze.cn: a bearer token on `/v1` and `/v3`, then the endpoint.
fn coze_route(app: &Arc<App>, endpoint: &str, req: &Request, ctx: &mut Ctx) -> Reply {
    let needs_bearer = req.path.starts_with("/v1/") || req.path.starts_with("/v3/");
    if needs_bearer && endpoint != "unknown" && !bearer_ok(app, req) {
        err_status(ctx, 401, 4100, "authentication is invalid")
    } else {
        route(app, endpoint, req, ctx)
    }
}

/// Whether `req` carries a bearer token the coze dialect accepts.
pub fn bearer_ok(app: &App, req: &Request) -> bool {
    let Some(token) = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return false;
    };
    if token.is_empty() {
        return false;
    }
    if app.opts.static_tokens.iter().any(|t| t == token) {
        return true;
    }
    let st = app.lock();
    st.access
        .get(token)
        .is_some_and(|&exp| exp > crate::util::now_ms())
}

fn route(app: &Arc<App>, endpoint: &str, req: &Request, ctx: &mut Ctx) -> Reply {
    use crate::{chat, conversations as conv, oauth};
    match endpoint {
        "token" => oauth::token(app, req, ctx),
        "device_code" => oauth::device_code(app, req, ctx),
        "authorize" => oauth::authorize(app, req),
        "consent.page" => oauth::consent_page(app, req),
        "consent.submit" => oauth::consent_submit(app, req),
        "device.page" => oauth::device_page(app, req),
        "device.submit" => oauth::device_submit(app, req),
        "users.me" => match crate::bots::denied(app, ctx, "users.me") {
            Some(refused) => refused,
            None => ok(ctx, oauth::user_json(app)),
        },
        "workspaces.list" => crate::bots::workspaces(app, req, ctx),
        "bots.list" => crate::bots::list_bots(app, req, ctx),
        "bots.get" => crate::bots::get(app, req, ctx, crate::bots::path_id(req)),
        "conversation.create" => conv::create(app, req, ctx),
        "conversation.retrieve" => conv::retrieve(app, req, ctx),
        "conversation.list" => conv::list(app, req, ctx),
        "conversation.update" => conv::update(app, req, ctx),
        "conversation.delete" => conv::delete(app, req, ctx),
        "conversation.clear" => conv::clear(app, req, ctx),
        "message.list" => conv::message_list(app, req, ctx),
        "message.create" => conv::message_create(app, req, ctx),
        "message.retrieve" => conv::message_retrieve(app, req, ctx),
        "chat" => chat::create(app, req, ctx),
        "chat.retrieve" => chat::retrieve(app, req, ctx),
        "chat.message.list" => chat::message_list(app, req, ctx),
        "chat.cancel" => chat::cancel(app, req, ctx),
        "chat.submit_tool_outputs" => chat::tools::submit(app, req, ctx),
        "files.retrieve" => crate::files::retrieve(app, req, ctx),
        "workflow.run" => crate::workflows::run(app, req, ctx),
        "workflow.stream_run" => crate::workflows::stream_run(app, req, ctx),
        "workflow.stream_resume" => crate::workflows::stream_resume(app, req, ctx),
        "workflow.chat" => crate::workflows::chatflow::chat(app, req, ctx),
        "workflow.resume" => crate::workflows::resume(app, req, ctx),
        "workflow.history" => crate::workflows::history(app, req, ctx),
        _ => no_such_endpoint(req, ctx),
    }
}

/// coze's answer to a path it does not serve.
pub fn no_such_endpoint(req: &Request, ctx: &Ctx) -> Reply {
    Reply::json(
        404,
        &json!({"code": 404, "msg": format!("no such endpoint: {} {}", req.method, req.path),
                "detail": {"logid": ctx.logid}}),
    )
}
