//! The `/_fake/` admin endpoints tests steer the fake with: queue faults, read counters
//! and the request log, reset, expire every access token, set the bot's and the
//! workflows' behaviour, set the workspaces and bots, and list the tool outputs
//! submitted.
//! No authentication; answered only to loopback peers (the fake only binds loopback).

use serde_json::{json, Value};

use crate::http::{Reply, Request};
use crate::App;

/// One line per admin endpoint (printed by `--help` too).
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("POST /_fake/fault", "body {\"endpoint\":E,\"fault\":F,\"count\":N}: fault F for the next N (default 1) requests to E; with \"probability\":P (and optional \"seed\":S) each request to E fails with probability P, until N (default unlimited) have fired"),
    ("GET  /_fake/stats", "counters: connections, requests{endpoint:n}, grants{authorization_code,refresh_token,device_code,jwt}, token_requests, refreshes, cancels, chats, busy_refusals, max_chats_in_flight_per_conversation, faults_fired, upload_bytes (file-content bytes received by uploads, successful or not)"),
    ("GET  /_fake/files", "every upload, oldest first: {\"files\":[{id,file_name,bytes,sha256,content_type,created_at}]} (sha256: of the content, lowercase hex; the content itself is never kept); GET /_fake/files/ID: one of them"),
    ("GET  /_fake/log", "every API request (the newest 100,000): {t_ms,method,path,endpoint,status,conversation_id?,query?} (query: an API GET's query parameters as an object; admin calls excluded)"),
    ("POST /_fake/reset", "clear faults, counters, log, bot settings, workflows and their runs, the tool outputs received; workspaces and bots back to their defaults (tokens and conversations stay)"),
    ("POST /_fake/expire", "every issued access token expires now (clients get 4100 and must refresh)"),
    ("POST /_fake/bot", "set the bot: {deltas,delta_delay_ms,first_delta_hold_ms,latency_ms,reasoning,style:{space,crlf,multiline_data,ascii,comments,done,split_writes,no_final_blank_line,no_final_newline},tools:{rounds,usage_keys}} (tools: see TOOLS below; a bad one: 400 naming the field); {} resets; GET shows it"),
    ("GET  /_fake/tool_outputs", "every accepted submit_tool_outputs, oldest first: [{conversation_id,chat_id,round,stream,tool_outputs:[{tool_call_id,output}]}] (round: the round answered, from 1; tool_outputs as sent)"),
    ("POST /_fake/workflow", "set one workflow's behaviour (replacing an earlier one): {workflow_id,…} with the fields under WORKFLOWS below; 400 naming a field that is unknown or of the wrong type"),
    ("POST /_fake/bots", "set the workspaces and bots the account sees: {workspaces,bots,generate,denied}, each key present replacing its part (generate adds); {} restores the defaults; 400 naming a field that is wrong (see BOTS below); GET shows them"),
    ("GET  /_fake/workflow", "{\"workflows\":{ID:spec,…},\"runs\":[{execute_id,workflow_id,mode,parameters,resumes,status,answers},…]}: every spec set (each field spelt out) and every run, oldest first (the newest 100,000)"),
];

fn bad(msg: &str) -> Reply {
    Reply::json(400, &json!({"ok": false, "error": msg}))
}

fn done() -> Reply {
    Reply::json(200, &json!({"ok": true}))
}

pub fn reset(app: &App) {
    let mut st = app.lock();
    st.faults.clear();
    st.stats = Default::default();
    st.log.clear();
    st.bot = Default::default();
    st.wf = Default::default();
    st.tool_outputs.clear();
    st.bots = Default::default();
}

pub fn expire(app: &App) {
    let mut st = app.lock();
    for exp in st.access.values_mut() {
        *exp = 0;
    }
}

pub fn handle(app: &App, req: &Request) -> Reply {
    if req.peer.is_some_and(|p| !p.ip().is_loopback()) {
        return Reply::json(
            403,
            &json!({"ok": false, "error": "admin endpoints are loopback only"}),
        );
    }
    match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("GET", "/_fake/stats") => Reply::json(200, &app.lock().stats.to_json()),
        ("GET", "/_fake/files") => Reply::json(200, &crate::files::admin_list(app)),
        ("GET", p) if p.starts_with("/_fake/files/") => {
            match crate::files::admin_one(app, &p["/_fake/files/".len()..]) {
                Some(f) => Reply::json(200, &f),
                None => Reply::json(404, &json!({"ok": false, "error": "no such file"})),
            }
        }
        ("GET", "/_fake/tool_outputs") => {
            Reply::json(200, &Value::Array(app.lock().tool_outputs.clone()))
        }
        ("GET", "/_fake/log") => Reply::json(200, &Value::Array(app.lock().log.clone())),
        ("POST", "/_fake/reset") => {
            reset(app);
            done()
        }
        ("POST", "/_fake/expire") => {
            expire(app);
            done()
        }
        ("GET", "/_fake/bot") => Reply::json(200, &app.lock().bot.to_json()),
        ("POST", "/_fake/bot") => {
            let v = req.json().unwrap_or(json!({}));
            if !v.is_object() {
                return bad("bot settings must be a JSON object");
            }
            match crate::chat::Bot::from_json(&v) {
                Ok(bot) => {
                    app.lock().bot = bot;
                    done()
                }
                Err(e) => bad(&e),
            }
        }
        ("GET", "/_fake/bots") => Reply::json(200, &app.lock().bots.to_json()),
        ("POST", "/_fake/bots") => {
            let Some(v) = req.json() else {
                return bad("body must be a JSON object {\"workspaces\"?,\"bots\"?,\"generate\"?,\"denied\"?}");
            };
            match app.lock().bots.set(&v) {
                Ok(()) => done(),
                Err(e) => bad(&e),
            }
        }
        ("GET", "/_fake/workflow") => Reply::json(200, &app.lock().wf.to_json()),
        ("POST", "/_fake/workflow") => match req.json() {
            None => bad("body must be a JSON object {\"workflow_id\":ID,…}"),
            Some(v) => match crate::workflows::admin_set(app, &v) {
                Ok(()) => done(),
                Err(e) => bad(&e),
            },
        },
        ("POST", "/_fake/fault") => {
            let Some(v) = req.json().filter(Value::is_object) else {
                return bad("body must be {\"endpoint\":E,\"fault\":F,\"count\":N}");
            };
            let Some(endpoint) = v.get("endpoint").and_then(Value::as_str) else {
                return bad("missing \"endpoint\"");
            };
            let fault = v.get("fault").cloned().unwrap_or(Value::Null);
            if let Err(e) = crate::faults::validate(&fault) {
                return bad(&e);
            }
            let probability = v.get("probability").and_then(Value::as_f64);
            if probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
                return bad("\"probability\" must be between 0 and 1");
            }
            // A probabilistic fault fires until it has fired `count` times (default: forever).
            let default_count = if probability.is_some() {
                u32::MAX as u64
            } else {
                1
            };
            let count = v
                .get("count")
                .and_then(Value::as_u64)
                .unwrap_or(default_count)
                .min(u32::MAX as u64) as u32;
            let mut st = app.lock();
            if let Some(seed) = v.get("seed").and_then(Value::as_u64) {
                st.rng = seed | 1;
            }
            crate::faults::push_with(&mut st, endpoint, fault, count, probability);
            drop(st);
            Reply::json(
                200,
                &json!({"ok": true, "endpoint": endpoint, "count": count.max(1)}),
            )
        }
        _ => Reply::json(
            404,
            &json!({"ok": false, "error": format!("no admin endpoint {} {}", req.method, req.path)}),
        ),
    }
}
