//! The Studio dialect's front door: which paths a self-hosted Coze Studio (coze-dev/
//! coze-studio at 4f786d6a) serves to a bearer token, how its PAT check answers, and
//! the bodies its middleware and handlers write for errors. Studio puts no logid in
//! bodies (it is only the `X-Log-ID` header), answers business errors with HTTP 200
//! `{"code","msg"}`, bind errors with HTTP 400 `{"code":400,"msg"}`, and paths it does
//! not serve with its session middleware's 401 — that middleware runs before Hertz's
//! 404 (`backend/main.go` registers it with `s.Use`).

use serde_json::{json, Map, Value};
use std::sync::Arc;

use crate::http::{Reply, Request};
use crate::router::Ctx;
use crate::App;

/// Exact paths whose requests Studio authenticates with a bearer PAT
/// (`backend/api/middleware/openapi_auth.go` `needAuthPath`).
const OPENAPI_PATHS: &[&str] = &[
    "/v3/chat",
    "/v1/conversations",
    "/v1/conversation/create",
    "/v1/conversation/message/list",
    "/v1/files/upload",
    "/v1/workflow/run",
    "/v1/workflow/stream_run",
    "/v1/workflow/stream_resume",
    "/v1/workflow/get_run_history",
    "/v1/bot/get_online_info",
    "/v1/workflows/chat",
    "/v1/workflow/conversation/create",
    "/v3/chat/cancel",
    "/v1/conversation/retrieve",
    "/v3/chat/retrieve",
    "/v3/chat/message/list",
    "/open_api/knowledge/document/delete",
    "/open_api/knowledge/document/create",
    "/open_api/knowledge/document/update",
    "/open_api/knowledge/document/list",
    "/v1/datasets",
];

/// `needAuthFunc`'s patterns, each `^PREFIX[0-9]+SUFFIX$`, as (PREFIX, SUFFIX).
const OPENAPI_ID_PATHS: &[(&str, &str)] = &[
    ("/v1/conversations/", "/clear"),
    ("/v1/bots/", ""),
    ("/v1/conversations/", ""),
    ("/v1/workflows/", ""),
    ("/v1/apps/", ""),
    ("/v1/datasets/", ""),
    ("/v1/datasets/", "/images"),
    ("/v1/datasets/", "/process"),
];

/// Whether Studio treats `path` as OpenAPI (bearer PAT) rather than web (session cookie).
pub fn is_openapi_path(path: &str) -> bool {
    OPENAPI_PATHS.contains(&path)
        || OPENAPI_ID_PATHS.iter().any(|(prefix, suffix)| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Why `OpenapiAuthMW` refuses the request, or None for a known PAT. Studio has no
/// OAuth, so only the `--pat` tokens exist; an unknown key fails in the database lookup,
/// which `CheckPermission` reports as "CheckPermission failed"
/// (`backend/application/openauth/openapiauth.go`).
pub fn pat_failure(app: &App, req: &Request) -> Option<&'static str> {
    let header = req.header("authorization").unwrap_or("");
    if header.is_empty() {
        return Some("missing authorization in header");
    }
    // `parseBearerAuthToken` splits on "Bearer" and wants exactly two parts, so a
    // lower-case "bearer" or a second "Bearer" loses the key.
    let parts: Vec<&str> = header.split("Bearer").collect();
    let key = match parts.as_slice() {
        [_, key] => key.trim(),
        _ => "",
    };
    if key.is_empty() {
        return Some("missing api_key in request");
    }
    if app.opts.static_tokens.iter().any(|t| t == key) {
        None
    } else {
        Some("CheckPermission failed")
    }
}

/// Studio's middleware chain, then the endpoint: the session check for every path that
/// is not OpenAPI, the PAT check, and Hertz's 404 for what the fake's Studio lacks.
pub fn route(app: &Arc<App>, endpoint: &str, req: &Request, ctx: &mut Ctx) -> Reply {
    if !is_openapi_path(&req.path) {
        return missing_session();
    }
    if let Some(reason) = pat_failure(app, req) {
        return auth_failed(reason);
    }
    use crate::{chat, conversations};
    let get = req.method == "GET";
    match endpoint {
        "conversation.create" => conversations::studio::create(app, req, ctx),
        "conversation.retrieve" => conversations::studio::retrieve(app, req, ctx),
        "conversation.list" => conversations::studio::list(app, req),
        "conversation.update" => conversations::studio::update(app, req),
        "conversation.delete" => conversations::studio::delete(app, req),
        "conversation.clear" => conversations::studio::clear(app, req),
        "message.list" => conversations::studio::message_list(app, req),
        "chat" => chat::create(app, req, ctx),
        // `api.go` routes retrieve for GET only (coze.cn also takes POST).
        "chat.retrieve" if get => chat::studio::retrieve(app, req),
        "chat.message.list" => chat::studio::message_list(app, req),
        "chat.cancel" => chat::studio::cancel(app, req),
        "workflow.run" => crate::workflows::run(app, req, ctx),
        "workflow.stream_run" => crate::workflows::stream_run(app, req, ctx),
        "workflow.stream_resume" => crate::workflows::stream_resume(app, req, ctx),
        "workflow.chat" => crate::workflows::chatflow::chat(app, req, ctx),
        "workflow.history" => crate::workflows::history(app, req, ctx),
        "bots.get" if get => crate::bots::studio_get(app, req, crate::bots::path_id(req)),
        _ => not_found(),
    }
}

/// A JSON body as Hertz's `c.JSON` writes it.
fn json_reply(status: u16, body: &Value) -> Reply {
    Reply::json(status, body)
}

/// `{"code":0,"msg":"","data":…}`: the handlers' generated responses leave `msg` empty
/// on success (e.g. `CreateConversationResponse` in
/// `backend/api/model/conversation/conversation/conversation.go`).
pub fn ok_data(data: Value) -> Reply {
    json_reply(200, &json!({"code": 0, "msg": "", "data": data}))
}

/// `{"code","msg"}` with `status`: the shape of every error body of
/// `backend/api/internal/httputil/error_resp.go`.
pub fn error_body(status: u16, code: i64, msg: &str) -> Reply {
    json_reply(status, &json!({"code": code, "msg": msg}))
}

/// A business error (`httputil.InternalError` with an errorx code): HTTP 200.
pub fn business(code: i64, msg: &str) -> Reply {
    error_body(200, code, msg)
}

/// A bind or validation error (`httputil.BadRequest`): HTTP 400, code 400.
pub fn bad_request(msg: &str) -> Reply {
    error_body(400, 400, msg)
}

/// An error without an errorx code (`httputil.InternalError`'s fallback).
pub fn internal_error() -> Reply {
    error_body(500, 500, "internal server error")
}

/// A handler that panicked (e.g. a nil conversation dereferenced): Hertz's recovery
/// middleware, installed by `server.Default` in `backend/main.go`, answers an empty 500.
pub fn recovered_panic() -> Reply {
    Reply::new(500, "text/plain; charset=utf-8", Vec::new())
}

/// Hertz's plain-text 404 (`default404Body` in hertz `pkg/route/engine.go`): an
/// OpenAPI path with a method or endpoint Studio (or this fake of it) does not route.
pub fn not_found() -> Reply {
    Reply::new(404, "text/plain; charset=utf-8", "404 page not found")
}

/// `SessionAuthMW` (`backend/api/middleware/session.go`) on any path that is not
/// OpenAPI: the OAuth endpoints, `/v1/users/me`, message create/retrieve, unknown paths.
pub fn missing_session() -> Reply {
    error_body(401, 401, "missing session_key in cookie")
}

/// `OpenapiAuthMW`'s refusal: errno `ErrUserAuthenticationFailed` (700012006,
/// `backend/types/errno/user.go`, message "authentication failed: {reason}"), HTTP 200.
pub fn auth_failed(reason: &str) -> Reply {
    business(700_012_006, &format!("authentication failed: {reason}"))
}

/// The text of an errorx error where a handler puts `err.Error()` in a body:
/// `code=N message=M` (`backend/pkg/errorx/internal/status.go`). Studio appends a Go
/// stack trace, which the fake leaves out.
pub fn errorx_text(code: i64, msg: &str) -> String {
    format!("code={code} message={msg}")
}

/// Hertz's bind error for a required field missing from the query or path.
pub fn required(field: &str) -> String {
    format!(
        "'{field}' field is a 'required' parameter, but the request does not have this parameter"
    )
}

/// Hertz's bind error for a required field missing from a JSON body.
pub fn required_in_body(field: &str, json_name: &str) -> String {
    format!(
        "'{field}' field is a 'required' parameter, but the request body does not have this parameter '{json_name}'"
    )
}

/// A 64-bit id Studio binds from a string (`json:",string"` or a query/path value):
/// Err is the bind error's text.
pub fn parse_id(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {text:?}: invalid syntax"))
}

/// The body as a JSON object (an empty body binds as `{}`), or Hertz's bind error.
pub fn body_object(req: &Request) -> Result<Map<String, Value>, Reply> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(bad_request(
            "json: cannot unmarshal non-object into Go value",
        )),
        Err(e) => Err(bad_request(&format!("invalid JSON body: {e}"))),
    }
}

/// An optional string-encoded 64-bit id of a JSON body (`json:"…,string"`).
pub fn body_id(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, Reply> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_id(s).map(Some).map_err(|e| bad_request(&e)),
        Some(v) => Err(bad_request(&format!(
            "json: invalid use of ,string struct tag, trying to unmarshal unquoted value {v} into int64"
        ))),
    }
}

/// A required one (`json:"…,string,required"`): JSON key `key`, Go field `field`.
pub fn required_body_id(o: &Map<String, Value>, key: &str, field: &str) -> Result<i64, Reply> {
    body_id(o, key)?.ok_or_else(|| bad_request(&required_in_body(field, key)))
}

/// The required, numeric query parameter `name` (Go field `field`), or the bind error.
pub fn query_id(req: &Request, name: &str, field: &str) -> Result<i64, Reply> {
    match req.query(name) {
        None => Err(bad_request(&required(field))),
        Some(v) => parse_id(v).map_err(|e| bad_request(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_paths_follow_the_allow_list() {
        for p in [
            "/v3/chat",
            "/v3/chat/retrieve",
            "/v1/conversations",
            "/v1/conversations/7400000000000000001",
            "/v1/conversations/42/clear",
            "/v1/bots/1",
        ] {
            assert!(is_openapi_path(p), "{p}");
        }
        for p in [
            "/v1/users/me",
            "/v3/chat/submit_tool_outputs",
            "/v1/conversation/message/create",
            "/api/permission/oauth2/token",
            "/v1/conversations/abc",
            "/v1/conversations/42/clear/x",
            "/v1/conversations/",
            "/",
        ] {
            assert!(!is_openapi_path(p), "{p}");
        }
    }
}
