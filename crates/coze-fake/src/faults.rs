//! Queued faults: how a test makes the next N requests to an endpoint fail in one of the
//! ways real networks and the real API fail. Faults that replace the answer (HTTP errors,
//! API errors, resets) fire before the request is processed; faults that alter a normal
//! answer (delay, truncation, a cut body) fire after it; stream faults are taken by the
//! chat module, which applies them between events. Error bodies take the dialect's
//! shape (`router::err_status`).

use serde_json::{json, Value};

use crate::http::{Action, Reply};
use crate::router::{err_status, Ctx};
use crate::state::{QueuedFault, State};
use crate::{App, Dialect};

/// Every fault type, with a one-line description (also printed by `--help`).
pub const TYPES: &[(&str, &str)] = &[
    ("http", "{\"type\":\"http\",\"status\":500} 500: envelope code 5000; 502/503/504: HTML gateway page; 429: code 4013 (+\"retry_after\":S gives Retry-After)"),
    ("api_error", "{\"type\":\"api_error\",\"code\":4016,\"msg\":\"...\",\"status\":200} an envelope error"),
    ("oauth_error", "{\"type\":\"oauth_error\",\"error_code\":\"invalid_request\",\"error_message\":\"...\",\"status\":400} for token/device_code"),
    ("reset", "{\"type\":\"reset\"} close the connection abortively without answering"),
    ("reset_mid_body", "{\"type\":\"reset_mid_body\",\"after_bytes\":N} headers + N body bytes then reset (streams: \"after_events\":N)"),
    ("delay", "{\"type\":\"delay\",\"ms\":M} process normally (state changes happen) then wait M ms before answering"),
    ("stall", "{\"type\":\"stall\",\"after_events\":N,\"ms\":M} stream: hold M ms after N events, then go on"),
    ("cut", "{\"type\":\"cut\",\"after_events\":N} stream: end the body cleanly after N events, no done (the chat still completes on the server, as after a reset_mid_body)"),
    ("error_event", "{\"type\":\"error_event\",\"after_events\":N,\"code\":C,\"msg\":M} stream: event:error then end"),
    ("chat_failed", "{\"type\":\"chat_failed\",\"shape\":\"chat\"|\"bare\",\"code\":C,\"msg\":M} end with conversation.chat.failed, then done (studio: event:error code 103100001, no done)"),
    ("requires_action", "{\"type\":\"requires_action\"} end with conversation.chat.requires_action, then done (studio: ignored, as Studio never sends it)"),
    ("malformed", "{\"type\":\"malformed\",\"after_events\":N} stream: one event whose data is not JSON, then go on"),
    ("json_body", "{\"type\":\"json_body\",\"code\":C,\"msg\":M} answer a stream request with an application/json envelope error"),
    ("cut_upload", "{\"type\":\"cut_upload\",\"after_bytes\":N} files.upload: read N bytes of the request body (default half its Content-Length; 64 KiB when chunked), then reset the connection without answering; the bytes read count in upload_bytes"),
    ("slow_upload", "{\"type\":\"slow_upload\",\"bytes_per_s\":N} files.upload: read the request body at most N bytes a second (default 1 MiB), then answer normally: a slow link, for progress and mid-upload tests"),
    ("truncated_json", "{\"type\":\"truncated_json\"} a JSON body cut in the middle (honest Content-Length)"),
];

/// Validate and queue a fault; `Err` names what is wrong.
pub fn validate(fault: &Value) -> Result<(), String> {
    let t = fault
        .get("type")
        .and_then(Value::as_str)
        .ok_or("fault needs a \"type\"")?;
    if TYPES.iter().any(|(n, _)| *n == t) {
        Ok(())
    } else {
        Err(format!("unknown fault type {t:?}"))
    }
}

pub fn push(st: &mut State, endpoint: &str, fault: Value, count: u32) {
    push_with(st, endpoint, fault, count, None);
}

/// Queues a fault that fires on each matching request with `probability` (None: on the
/// next `count` requests).
pub fn push_with(
    st: &mut State,
    endpoint: &str,
    fault: Value,
    count: u32,
    probability: Option<f64>,
) {
    st.faults.push_back(QueuedFault {
        endpoint: endpoint.to_string(),
        fault,
        remaining: count.max(1),
        probability,
    });
}

fn num(f: &Value, k: &str) -> Option<u64> {
    f.get(k).and_then(Value::as_u64)
}

fn text<'a>(f: &'a Value, k: &str, default: &'a str) -> &'a str {
    f.get(k).and_then(Value::as_str).unwrap_or(default)
}

/// Faults that replace the answer without processing the request.
pub fn pre_handler(ctx: &mut Ctx, endpoint: &str) -> Option<Action> {
    let f = ctx.fault.clone()?;
    let status = num(&f, "status").map(|s| s as u16);
    let reply = match ctx.fault_type() {
        "reset" => return Some(Action::Reset),
        "http" => http_status(ctx, status.unwrap_or(500), num(&f, "retry_after")),
        "api_error" => err_status(
            ctx,
            status.unwrap_or(200),
            f.get("code").and_then(Value::as_i64).unwrap_or(5000),
            text(&f, "msg", "injected error"),
        ),
        "oauth_error" => {
            let code = text(&f, "error_code", "internal_error");
            let msg = text(&f, "error_message", "Service internal error.");
            Reply::json(
                status.unwrap_or(400),
                &json!({"error_code": code, "error_message": msg,
                        "error": code, "error_description": msg}),
            )
        }
        "json_body" => err_status(
            ctx,
            status.unwrap_or(200),
            f.get("code").and_then(Value::as_i64).unwrap_or(4000),
            text(&f, "msg", "invalid parameter"),
        ),
        _ => return None,
    };
    let _ = endpoint;
    ctx.fault = None;
    Some(Action::Reply(reply))
}

/// An HTTP-level error as a gateway or the API would send it.
fn http_status(ctx: &Ctx, status: u16, retry_after: Option<u64>) -> Reply {
    match status {
        502..=504 => {
            let title = match status {
                502 => "502 Bad Gateway",
                503 => "503 Service Temporarily Unavailable",
                _ => "504 Gateway Time-out",
            };
            Reply::html(
                status,
                format!(
                    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                ),
            )
        }
        429 => {
            let r = err_status(ctx, 429, 4013, "rate limited");
            match retry_after {
                Some(s) => r.with_header("Retry-After", &s.to_string()),
                None => r,
            }
        }
        // Studio's body for an error without an errorx code
        // (`backend/api/internal/httputil/error_resp.go` `InternalError`).
        500 if ctx.dialect == Dialect::Studio => err_status(ctx, 500, 500, "internal server error"),
        500 => err_status(ctx, 500, 5000, "internal error"),
        s => {
            let r = err_status(ctx, s, s as i64 * 10, &format!("http error {s}"));
            match retry_after {
                Some(ra) => r.with_header("Retry-After", &ra.to_string()),
                None => r,
            }
        }
    }
}

/// Faults that alter a normal answer.
pub fn post_handler(app: &App, ctx: &mut Ctx, mut reply: Reply) -> Action {
    let Some(f) = ctx.fault.take() else {
        return Action::Reply(reply);
    };
    match f.get("type").and_then(Value::as_str).unwrap_or("") {
        "delay" => {
            app.sleep_ms(num(&f, "ms").unwrap_or(1000));
            Action::Reply(reply)
        }
        "reset_mid_body" if reply.stream.is_none() => {
            let n = num(&f, "after_bytes").unwrap_or(reply.body.len() as u64 / 2) as usize;
            Action::CutAfter(reply, n)
        }
        "truncated_json" if reply.stream.is_none() => {
            let cut = (reply.body.len() / 2).max(1).min(reply.body.len());
            reply.body.truncate(cut);
            Action::Reply(reply)
        }
        _ => Action::Reply(reply),
    }
}
