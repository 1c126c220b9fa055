//! What a fault-matrix cell must have done: the one stderr line with a logid the fake
//! sent, stdout holding what came before the fault and nothing more, bounded retries
//! (request counts, Retry-After waited out, cancels), a file record only for a file the
//! server holds whole, a workflow run never started (or answered) twice, and a token
//! file still valid JSON, 0600 and usable.

use std::collections::HashSet;
use std::time::Duration;

use coze_fake::answer_text;
use serde_json::Value;

use super::cells::{
    acts_once, after_events, always, endpoint, final_at_once, is_stream, passing, retries, submits,
    tool, ANSWER, MESSAGES, TOOL, TOOL_CITY, UPLOAD, UPLOAD_LEN, WORKFLOW,
};
use super::{LIST_LEN, PAGE, PROMPT};
use crate::util::*;

/// A `-v` line: a request (`> `), a response (`< `) or a retry (`* `).
pub(super) fn is_verbose(line: &str) -> bool {
    line.starts_with("> ") || line.starts_with("< ") || line.starts_with("* ")
}

/// The logid of a `(logid …)` in `line`.
fn logid_of(line: &str) -> Option<&str> {
    line.split("(logid ").nth(1)?.split(')').next()
}

/// The one error line, its logid against the responses `-v` saw.
pub(super) fn check_stderr(
    call: &str,
    fault: &str,
    code: i32,
    stderr: &str,
    dialect: Dialect,
) -> Vec<String> {
    let mut problems = Vec::new();
    let tool = tool(call);
    let seen: HashSet<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("< "))
        .filter_map(|l| l.split("logid=").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .collect();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !is_verbose(l))
        .filter(|l| !l.starts_with("coze-token: waiting for approval"))
        .collect();
    // What a successful run may say on stderr.
    let recovers = recovers(call, fault);
    let informational = |l: &&str| {
        (tool == "coze-token" && (l.contains(": saved to ") || l.contains(" refreshed; expires")))
            || (fault == "malformed" && l.contains("malformed event(s)"))
            || (recovers && l.contains("the rest of the chat was recovered by polling"))
            || (fault.starts_with("4016") && l.contains("is busy with another chat: waiting up to"))
            || (call == "wf.sync" && l.contains("--no-stream: the server drops"))
    };
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !informational(l))
        .collect();
    let should_fail = if call == "chat.cancel" {
        final_at_once(fault, dialect)
    } else {
        code != 0
    };
    if fault == "malformed" && !lines.iter().any(|l| l.contains("1 malformed event")) {
        problems.push("no warning about the malformed event".into());
    }
    if recovers && code == 0 && !lines.iter().any(|l| l.contains("recovered by polling")) {
        problems.push("no warning that the chat was recovered by polling".into());
    }
    if !should_fail {
        if !errors.is_empty() {
            problems.push(format!("unexpected stderr lines: {errors:?}"));
        }
        return problems;
    }
    if errors.len() != 1 {
        problems.push(format!(
            "expected one error line on stderr, got {}: {errors:?}",
            errors.len()
        ));
        return problems;
    }
    let line = errors[0];
    if call.starts_with("wf.resume") && line.contains("start node") {
        // An answer sends no parameters: advice about them sends the person astray.
        problems.push(format!(
            "an answer's failure advises about the run's parameters: {line}"
        ));
    }
    let prefix = if call == "chat.cancel" {
        "coze-chat: cancelling chat ".to_owned()
    } else {
        format!("{tool}: ")
    };
    if !line.starts_with(&prefix) {
        problems.push(format!(
            "the error line does not start with {prefix:?}: {line}"
        ));
    }
    match logid_of(line) {
        Some(id) => {
            if !seen.contains(id) {
                problems.push(format!(
                    "logid {id} is not one the fake sent (responses seen: {seen:?})"
                ));
            }
            // coze's logids are `YYYYMMDDhhmmss` + 16 hex digits; Studio's a UUID.
            let ok = match dialect {
                Dialect::Coze => {
                    id.len() == 30
                        && id[..14].chars().all(|c| c.is_ascii_digit())
                        && id[14..].chars().all(|c| c.is_ascii_hexdigit())
                }
                Dialect::Studio => {
                    id.len() == 36 && id.split('-').map(str::len).eq([8, 4, 4, 4, 12])
                }
            };
            if !ok {
                problems.push(format!("logid {id} does not have the fake's shape"));
            }
        }
        None if server_answered(call, fault) => problems.push(format!(
            "the server sent a logid, the message has none: {line}"
        )),
        None => {}
    }
    problems
}

/// Whether the cell's stream breaks after the chat's ids came, so that coze-chat
/// follows the chat to its end by polling instead of failing; or a non-streamed
/// submit's answer breaks after the server took the outputs (its body reset or cut
/// short), so that the chat, going on without us, is followed the same way.
fn recovers(call: &str, fault: &str) -> bool {
    match call {
        "chat.stream" | "chat.submit" => matches!(fault, "midbody" | "cut"),
        "chat.submit.poll" => matches!(fault, "midbody" | "trunc_json"),
        _ => false,
    }
}

/// Whether the final failure is a response the server sent (with its x-tt-logid).
fn server_answered(call: &str, fault: &str) -> bool {
    match fault {
        "refused" | "reset1" | "resetN" | "cut_upload" => false,
        // JSON: every attempt timed out before the head arrived.
        "stall" => is_stream(call),
        _ => true,
    }
}

/// stdout holds what was received before the fault, nothing more.
pub(super) fn check_stdout(
    call: &str,
    fault: &str,
    code: i32,
    r: &Run,
    dialect: Dialect,
) -> Vec<String> {
    let mut problems = Vec::new();
    // How a stream ends: coze.cn's `done`, Studio's `conversation.stream.done`.
    let end = match dialect {
        Dialect::Coze => "done",
        Dialect::Studio => "conversation.stream.done",
    };
    let records: Vec<Value> = match r
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
    {
        Ok(v) => v,
        Err(e) => return vec![format!("stdout is not JSON lines: {e}")],
    };
    // coze-chat's own failure report is a record, `{"type":"error",…}`, not an event.
    let names: Vec<&str> = records
        .iter()
        .map(|r| match (r["event"].as_str(), r["type"].as_str()) {
            (Some(e), _) => e,
            (None, Some("error")) => "type:error",
            _ => "",
        })
        .collect();
    let deltas: String = records
        .iter()
        .filter(|r| r["event"] == "conversation.message.delta" && r["data"]["type"] == "answer")
        .map(|r| r["data"]["content"].as_str().unwrap_or_default())
        .collect();
    let answer = answer_text(PROMPT);
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    match call {
        "exchange" | "refresh" | "device" => {
            expect(r.stdout.is_empty(), "stdout is not empty (--save)".into())
        }
        "conv.create" => {
            let want = usize::from(code == 0);
            expect(
                records.len() == want
                    && records
                        .iter()
                        .all(|r| r["type"] == "conversation" && r["conversation_id"].is_string()),
                format!(
                    "expected {want} conversation record(s), got {}",
                    records.len()
                ),
            );
        }
        "bot.get" => {
            let want = usize::from(code == 0);
            expect(
                records.len() == want
                    && records
                        .iter()
                        .all(|r| r["type"] == "bot" && r["bot_id"].is_string()),
                format!("expected {want} bot record(s), got {}", records.len()),
            );
        }
        "conv.list" | "conv.messages" | "bot.list" => {
            let want = match (code, fault) {
                (0, _) => LIST_LEN,
                (_, "refused") => 0,
                _ => PAGE,
            };
            let (kind, key) = match call {
                "conv.list" => ("conversation", "conversation_id"),
                "bot.list" => ("bot", "bot_id"),
                _ => ("message", "id"),
            };
            let ids: HashSet<&str> = records.iter().filter_map(|r| r[key].as_str()).collect();
            expect(
                records.len() == want
                    && ids.len() == want
                    && records.iter().all(|r| r["type"] == kind),
                format!(
                    "expected {want} distinct {kind} records, got {} ({} distinct)",
                    records.len(),
                    ids.len()
                ),
            );
        }
        "chat.stream" => {
            if code == 0 && recovers(call, fault) {
                // The 4 events received, then the rest recovered by polling, marked.
                let (streamed, polled) = records.split_at(records.len().min(4));
                let whole = polled
                    .iter()
                    .find(|r| {
                        r["event"] == "conversation.message.completed"
                            && r["data"]["type"] == "answer"
                    })
                    .and_then(|r| r["data"]["content"].as_str());
                expect(
                    streamed.len() == 4
                        && streamed.iter().all(|r| r.get("recovered").is_none())
                        && !polled.is_empty()
                        && polled.iter().all(|r| r["recovered"] == true)
                        && answer.starts_with(&deltas),
                    format!("expected the 4 events streamed, then recovered ones; got {names:?}"),
                );
                expect(
                    whole == Some(answer.as_str()) && names.last() == Some(&"done"),
                    format!("expected the whole answer recovered and done; got {names:?}"),
                );
                return problems;
            }
            if code == 0 {
                expect(
                    names.last() == Some(&end) && deltas == answer,
                    format!("expected the whole answer and {end}; got {names:?}"),
                );
                if fault == "malformed" {
                    expect(
                        records.iter().any(|r| r["data"] == "{\"id\":"),
                        "the malformed event is not on stdout".into(),
                    );
                }
                return problems;
            }
            let Some((ours, server)) = records.split_last() else {
                return vec!["stdout is empty: no error event".into()];
            };
            expect(
                ours["type"] == "error" && ours["exit_code"] == code,
                format!("the last line is not our error record with exit_code {code}: {ours}"),
            );
            let want = match fault {
                "midbody" | "cut" => Some(4),
                "stall" => Some(3),
                "error_ev" => Some(6),
                "chat_failed" => None,
                _ => Some(0),
            };
            match want {
                Some(n) => expect(
                    server.len() == n,
                    format!(
                        "expected the {n} events received before the fault, got {}",
                        server.len()
                    ),
                ),
                // Studio reports a failed run as an SSE error event and ends the stream.
                None if dialect == Dialect::Studio => expect(
                    names.ends_with(&["error", "type:error"]),
                    format!("expected the server's error event and ours, got {names:?}"),
                ),
                None => expect(
                    names.ends_with(&["conversation.chat.failed", end, "type:error"]),
                    format!("expected the whole failed stream, got {names:?}"),
                ),
            }
            if fault == "error_ev" {
                expect(
                    server
                        .last()
                        .is_some_and(|e| e["event"] == "error" && e["data"]["code"] == 5000),
                    "the server's error event is not on stdout".into(),
                );
            }
            expect(
                answer.starts_with(&deltas),
                format!("the deltas {deltas:?} are not the start of the answer"),
            );
        }
        "chat.poll" => {
            if code == 0 {
                let content = records
                    .iter()
                    .find(|r| {
                        r["event"] == "conversation.message.completed"
                            && r["data"]["type"] == "answer"
                    })
                    .and_then(|r| r["data"]["content"].as_str());
                expect(
                    names.last() == Some(&"done") && content == Some(answer.as_str()),
                    format!("expected the answer and done; got {names:?}"),
                );
            } else if fault == "refused" {
                expect(
                    names == ["type:error"],
                    format!("expected only our error record, got {names:?}"),
                );
            } else if fault == "chat_failed" {
                expect(
                    names.first() == Some(&"conversation.chat.created")
                        && names.ends_with(&["conversation.chat.failed", "done", "type:error"]),
                    format!("expected created … failed, done, error; got {names:?}"),
                );
            } else {
                expect(
                    names.first() == Some(&"conversation.chat.created")
                        && names.last() == Some(&"type:error")
                        && !names.contains(&"done"),
                    format!("expected chat.created … and our error record; got {names:?}"),
                );
            }
        }
        "chat.submit" | "chat.submit.poll" => {
            return check_submit_stdout(call, fault, code, &records, &names)
        }
        "chat.cancel" => expect(
            names == ["conversation.chat.created"],
            format!("expected the one line head -1 took, got {names:?}"),
        ),
        c if c.starts_with("wf.") => {
            return check_workflow_stdout(call, fault, code, &records, &names);
        }
        _ => {}
    }
    problems
}

/// What tests/fixtures/tools/echo.sh answers chat.submit's call (no token variable
/// reaches it), and the answer the fake's bot then gives.
fn tool_output() -> String {
    format!("{TOOL} got {{\"city\":\"{TOOL_CITY}\"}} (token:none)")
}

fn tool_answer() -> String {
    format!("工具结果 {TOOL}: {}", tool_output())
}

/// chat.submit's stdout: the chat's first part up to requires_action, our tool_call
/// and tool_output records, then the continued stream (after a cut, the rest
/// recovered by polling, marked), our error record last after a failure.
/// chat.submit.poll's the same, the continuation polled (no deltas: the answer whole).
fn check_submit_stdout(
    call: &str,
    fault: &str,
    code: i32,
    records: &[Value],
    names: &[&str],
) -> Vec<String> {
    let polled = call == "chat.submit.poll";
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let calls: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "tool_call")
        .collect();
    let outputs: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "tool_output")
        .collect();
    let asked = names
        .iter()
        .position(|n| *n == "conversation.chat.requires_action");
    let Some(at) = records.iter().position(|r| r["type"] == "tool_output") else {
        return vec![format!("no tool_output record: {names:?}")];
    };
    expect(
        calls.len() == 1
            && calls[0]["name"] == TOOL
            && calls[0]["arguments"]["city"] == TOOL_CITY
            && outputs.len() == 1
            && outputs[0]["output"] == tool_output().as_str()
            && outputs[0]["exit_status"] == 0
            && calls[0]["tool_call_id"] == outputs[0]["tool_call_id"]
            && asked.is_some_and(|a| a < at),
        format!("expected requires_action, then one tool_call and its tool_output: {names:?}"),
    );
    let rest = &records[at + 1..];
    let deltas: String = rest
        .iter()
        .filter(|r| r["event"] == "conversation.message.delta" && r["data"]["type"] == "answer")
        .map(|r| r["data"]["content"].as_str().unwrap_or_default())
        .collect();
    let whole = rest
        .iter()
        .find(|r| r["event"] == "conversation.message.completed" && r["data"]["type"] == "answer")
        .and_then(|r| r["data"]["content"].as_str());
    let answer = tool_answer();
    let rest_names = &names[at + 1..];
    if code == 0 {
        expect(
            whole == Some(answer.as_str()) && rest_names.last() == Some(&"done"),
            format!("expected the whole answer and done after the outputs; got {rest_names:?}"),
        );
        if polled {
            // Polled: the answer comes whole, in its completed message, never in deltas.
        } else if recovers(call, fault) {
            let (streamed, polled) = rest.split_at(rest.len().min(4));
            expect(
                streamed.len() == 4
                    && streamed.iter().all(|r| r.get("recovered").is_none())
                    && !polled.is_empty()
                    && polled.iter().all(|r| r["recovered"] == true),
                format!("expected 4 events streamed after the outputs, then recovered ones; got {rest_names:?}"),
            );
        } else {
            expect(
                deltas == answer,
                format!("the deltas {deltas:?} are not the whole answer"),
            );
        }
        if fault == "malformed" {
            expect(
                rest.iter().any(|r| r["data"].is_string()),
                "the malformed event is not on stdout".into(),
            );
        }
        return problems;
    }
    let Some((ours, server)) = rest.split_last() else {
        return vec!["no error record after the outputs".into()];
    };
    expect(
        ours["type"] == "error" && ours["exit_code"] == code,
        format!("the last line is not our error record with exit_code {code}: {ours}"),
    );
    let want = match fault {
        "chat_failed" => None,
        // A failed submit that was not streamed: nothing of the chat's continuation.
        _ if polled => Some(0),
        "midbody" | "cut" => Some(4),
        "stall" => Some(3),
        "error_ev" => Some(6),
        _ => Some(0),
    };
    match want {
        Some(n) => expect(
            server.len() == n,
            format!("expected the {n} events received after the outputs, got {rest_names:?}"),
        ),
        None => expect(
            rest_names.ends_with(&["conversation.chat.failed", "done", "type:error"]),
            format!("expected the whole failed stream, got {rest_names:?}"),
        ),
    }
    if fault == "error_ev" {
        expect(
            server
                .last()
                .is_some_and(|e| e["event"] == "error" && e["data"]["code"] == 5000),
            "the server's error event is not on stdout".into(),
        );
    }
    expect(
        answer.starts_with(&deltas),
        format!("the deltas {deltas:?} are not the start of the answer"),
    );
    problems
}

/// A chat's tool outputs are taken once: never two submissions the server accepted,
/// and exactly one (the tool's output for the call) when the chat ended well. The
/// fake's list of accepted submissions says what the server took.
pub(super) fn check_submits(call: &str, code: i32, taken: &Value) -> Vec<String> {
    let taken = taken.as_array().cloned().unwrap_or_default();
    if !submits(call) {
        return match taken.is_empty() {
            true => Vec::new(),
            false => vec![format!("tool outputs submitted: {taken:?}")],
        };
    }
    let want = if code == 0 { 1..=1 } else { 0..=1 };
    let mut problems = Vec::new();
    if !want.contains(&taken.len()) {
        problems.push(format!(
            "the server took {} submission(s) of tool outputs, expected {want:?}: {taken:?}",
            taken.len()
        ));
    }
    if let Some(t) = taken.first() {
        let outs = t["tool_outputs"].as_array().cloned().unwrap_or_default();
        let streamed = call == "chat.submit";
        if outs.len() != 1
            || outs[0]["output"] != tool_output().as_str()
            || t["round"] != 1
            || t["stream"] != streamed
        {
            problems.push(format!("the submission is not the tool's one output: {t}"));
        }
    }
    problems
}

/// What a workflow's end node returns for the cells' parameters (and answer).
fn workflow_output(answered: bool) -> Value {
    let mut output = serde_json::json!({"output": {"k": PROMPT}});
    if answered {
        output["answer"] = ANSWER.into();
    }
    output
}

/// A workflow cell's stdout: `-o events` lines (the server's events as they came, our
/// error record last after a failure), or status's one result record.
fn check_workflow_stdout(
    call: &str,
    fault: &str,
    code: i32,
    records: &[Value],
    names: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let answered = call.starts_with("wf.resume");
    let output = workflow_output(answered);
    if call == "wf.history" {
        let want = usize::from(code == 0);
        expect(
            records.len() == want
                && records.iter().all(|r| {
                    r["type"] == "result"
                        && r["status"] == "success"
                        && r["output"] == output
                        && r["execute_id"].is_string()
                }),
            format!("expected {want} successful result record(s) with the output, got {records:?}"),
        );
        return problems;
    }
    // The server's events: a stream's carry their `id:` line as seq, from 0; a sync
    // answer's stand for the events it means, without seq.
    let server: &[Value] = match records.split_last() {
        Some((ours, rest)) if ours["type"] == "error" => {
            expect(
                code != 0 && ours["exit_code"] == code,
                format!("our error record does not say exit_code {code}: {ours}"),
            );
            rest
        }
        _ => {
            expect(
                code == 0,
                format!("exit {code} without our error record last: {names:?}"),
            );
            records
        }
    };
    let stream = is_stream(call);
    // The events that are JSON objects, in order (a malformed one is text).
    let whole: Vec<&Value> = server.iter().filter(|r| r["data"].is_object()).collect();
    let malformed: Vec<&Value> = server.iter().filter(|r| r["data"].is_string()).collect();
    expect(
        server
            .iter()
            .all(|r| r["event"].is_string() && r["seq"].is_string() == stream),
        format!("events without their name, or seq where a stream had none: {server:?}"),
    );
    // What a whole run sends: the Messages (a run from its start), the end node's
    // output, Done.
    let mut want: Vec<(String, Option<String>)> = Vec::new();
    if call == "wf.stream" {
        for i in 0..MESSAGES {
            want.push(("Message".into(), Some(format!("{i}: 你好 🌏\n"))));
        }
    }
    want.push(("Message".into(), None));
    want.push(("Done".into(), None));
    let matches = |got: &Value, (name, content): &(String, Option<String>)| {
        got["event"] == name.as_str()
            && match content {
                Some(c) => got["data"]["content"] == c.as_str(),
                None if name == "Message" => got["data"]["content"]
                    .as_str()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .is_some_and(|v| v == output),
                None => true,
            }
    };
    if code == 0 {
        expect(
            whole.len() == want.len() && whole.iter().zip(&want).all(|(g, w)| matches(g, w)),
            format!(
                "expected the whole run ({} events, the output {output}), got {names:?}",
                want.len()
            ),
        );
        if fault == "malformed" {
            expect(
                malformed.len() == 1 && malformed[0]["data"] == "{\"content\":",
                format!("the malformed event is not on stdout as it came: {malformed:?}"),
            );
        }
        return problems;
    }
    // A failure: the events received before the fault, nothing more.
    let received = match fault {
        "midbody" | "cut" | "stall" if stream => after_events(call, fault) as usize,
        "error_ev" if stream => after_events(call, fault) as usize + 1,
        _ => 0,
    };
    let (before, error) = if fault == "error_ev" && stream {
        server.split_at(server.len().saturating_sub(1))
    } else {
        (server, &[][..])
    };
    expect(
        server.len() == received && before.iter().zip(&want).all(|(g, w)| matches(g, w)),
        format!("expected the {received} events received before the fault, got {names:?}"),
    );
    if fault == "error_ev" && stream {
        expect(
            error
                .first()
                .is_some_and(|e| e["event"] == "Error" && e["data"]["error_code"] == 5000),
            format!("the server's Error event is not last on stdout: {error:?}"),
        );
    }
    problems
}

/// A workflow run is started once, and answered once: a request the server acted on is
/// never sent again (its run would run twice, or its answer be refused as already
/// given). The fake's book of runs says what the server did.
pub(super) fn check_runs(call: &str, code: i32, book: &Value) -> Vec<String> {
    if !call.starts_with("wf.") {
        return Vec::new();
    }
    let runs: Vec<&Value> = book["runs"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["workflow_id"] == WORKFLOW).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    match call {
        "wf.stream" | "wf.sync" => {
            let mode = if call == "wf.stream" {
                "stream"
            } else {
                "sync"
            };
            let want = if code == 0 { 1..=1 } else { 0..=1 };
            if !want.contains(&runs.len()) || runs.iter().any(|r| r["mode"] != mode) {
                problems.push(format!(
                    "the server ran the workflow {} time(s), expected {want:?} {mode} run(s): {runs:?}",
                    runs.len()
                ));
            }
        }
        "wf.resume" | "wf.resume.sync" => {
            let Some(run) = runs.first().filter(|_| runs.len() == 1) else {
                problems.push(format!("expected the one run answered, got {runs:?}"));
                return problems;
            };
            let resumes = run["resumes"].as_u64().unwrap_or(0);
            if resumes > 1
                || (code == 0 && (resumes != 1 || run["answers"] != serde_json::json!([ANSWER])))
            {
                problems.push(format!("the run was answered {resumes} time(s): {run}"));
            }
        }
        _ => {
            if runs.len() != 1 || runs[0]["mode"] != "async" {
                problems.push(format!(
                    "expected only the async run followed, got {runs:?}"
                ));
            }
        }
    }
    problems
}

/// Retries are bounded and happen where they should; Retry-After is honoured.
pub(super) fn check_counts(
    call: &str,
    fault: &str,
    stats: &Value,
    took: Duration,
    dialect: Dialect,
) -> Vec<String> {
    // A PAT is never refreshed: a refusal is final at once.
    let refreshable = dialect == Dialect::Coze;
    let mut problems = Vec::new();
    let ep = endpoint(call, fault);
    let requests = stats
        .pointer(&format!("/requests/{ep}"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let refreshes = stats
        .pointer("/grants/refresh_token")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let cancels = stats
        .pointer("/cancels")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let base = passing(call, dialect);
    let transient = ["reset", "500", "502", "429RA", "429", "4013", "4016"];
    let kind = fault
        .trim_end_matches("x1")
        .trim_end_matches("xN")
        .trim_end_matches(['1', 'N']);
    let want = if fault == "cut_upload" {
        // A cut upload is sent again whole, like any transient failure.
        Some(base + retries(call) + 1)
    } else if fault == "4028" || recovers(call, fault) {
        // Asked once; a broken stream's chat is followed, never asked again.
        Some(base + 1)
    } else if acts_once(call)
        && matches!(
            fault,
            "midbody"
                | "cut"
                | "stall"
                | "error_ev"
                | "chat_failed"
                | "malformed"
                | "json_body"
                | "trunc_json"
        )
    {
        // The server acted on it (the run started, took the answer, or took the tool
        // outputs): never sent again.
        Some(base + 1)
    } else if call == "wf.history" && fault == "midbody" {
        // A history read is read again.
        Some(base + 2)
    } else if call == "wf.history" && fault == "stall" {
        // Every read times out.
        Some(base + retries(call) + 1)
    } else if kind == "4100" && tool(call) != "coze-token" && refreshable {
        // Refused, refreshed once, asked again; a second refusal is final.
        Some(base + 2)
    } else if kind == "4100" && tool(call) == "coze-token" {
        Some(1)
    } else if kind == "4100" {
        // A PAT: refused once, final.
        Some(base + 1)
    } else if kind == "4016" {
        // --busy-wait 1: asked at once and once more a second later, whatever --retries.
        Some(base + 2)
    } else if transient.contains(&kind) && fault.ends_with('N') {
        Some(base + retries(call) + 1)
    } else if transient.contains(&kind) {
        Some(base + 2)
    } else {
        None
    };
    // A poll retrieves again while the chat is in progress: only failures are exact.
    let want = if call == "chat.poll" && !always(fault) {
        None
    } else {
        want
    };
    if let Some(n) = want {
        if requests != n {
            problems.push(format!("{requests} requests to {ep}, expected {n}"));
        }
    }
    let want_refreshes = u64::from(refreshable);
    if kind == "4100" && tool(call) != "coze-token" && refreshes != want_refreshes {
        problems.push(format!(
            "{refreshes} refreshes, expected exactly {want_refreshes}"
        ));
    }
    if fault == "429RAx1" && took < Duration::from_millis(950) {
        problems.push(format!("Retry-After: 1 was not waited out ({took:?})"));
    }
    if fault == "refused" && took > Duration::from_secs(8) {
        problems.push(format!("a refused connection took {took:?}"));
    }
    if recovers(call, fault) {
        let polled = |ep: &str| {
            stats
                .pointer(&format!("/requests/{ep}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        // A --no-stream chat's first part (up to its tool calls) was polled too.
        let lists = if call == "chat.submit.poll" { 2 } else { 1 };
        if polled("chat.retrieve") == 0 || polled("chat.message.list") != lists || cancels != 0 {
            problems.push(format!(
                "expected the chat followed by polling and not cancelled: {} retrieves, \
                 {} message lists (expected {lists}), {cancels} cancels",
                polled("chat.retrieve"),
                polled("chat.message.list")
            ));
        }
    }
    if call == "chat.cancel" {
        let want = if final_at_once(fault, dialect) && fault != "trunc_json" && fault != "stall" {
            0
        } else {
            1
        };
        if cancels != want {
            problems.push(format!(
                "{cancels} chats cancelled on the server, expected {want}"
            ));
        }
    }
    problems
}

/// coze-file's records: one for a file the fake holds whole (its bytes and SHA-256 are
/// the file's), and none after a failure: nothing half-uploaded is printed as uploaded.
pub(super) fn check_files(sb: &Sandbox, call: &str, code: i32, r: &Run) -> Vec<String> {
    if tool(call) != "coze-file" {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let records: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let want = usize::from(code == 0);
    if records.len() != want || records.iter().any(|r| r["type"] != "file") {
        problems.push(format!(
            "expected {want} file record(s), got {} lines: {}",
            r.stdout.lines().count(),
            r.stdout
        ));
        return problems;
    }
    let Some(rec) = records.first() else {
        return problems;
    };
    let held = sb.uploaded();
    let Some(f) = held.iter().find(|f| f["id"] == rec["file_id"]) else {
        problems.push(format!("the record's file is not on the server: {rec}"));
        return problems;
    };
    let content = std::fs::read(sb.path(UPLOAD)).unwrap_or_default();
    let sha = sha256_hex(&content);
    if f["bytes"] != UPLOAD_LEN || f["sha256"] != sha.as_str() {
        problems.push(format!(
            "the server holds another file than the one sent: {f}"
        ));
    }
    if rec["bytes"] != UPLOAD_LEN {
        problems.push(format!("the record says {} bytes: {rec}", rec["bytes"]));
    }
    problems
}

/// The token file afterwards: valid JSON, 0600, a token the fake accepts; no temp files.
pub(super) fn check_token_file(
    sb: &Sandbox,
    call: &str,
    code: i32,
    before: Option<&[u8]>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let path = sb.token_path();
    let dir = path.parent().unwrap();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                problems.push(format!("temp file left behind: {name}"));
            }
        }
    }
    let exists = path.exists();
    if matches!(call, "exchange" | "device") && code != 0 {
        if exists {
            problems.push("a failed login left a token file".into());
        }
        return problems;
    }
    if !exists {
        problems.push("no token file".into());
        return problems;
    }
    if call == "refresh" {
        let after = std::fs::read(&path).unwrap();
        let changed = Some(after.as_slice()) != before;
        if (code == 0) != changed {
            problems.push(format!(
                "exit {code} but the token file {} changed",
                if changed { "" } else { "never" }
            ));
        }
    }
    if mode(&path) != 0o600 {
        problems.push(format!("token file mode {:o}", mode(&path)));
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let token: Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("token file is not JSON ({e}): {text:?}"));
            return problems;
        }
    };
    if token["type"] != "token" {
        problems.push(format!("token file holds no token record: {token}"));
        return problems;
    }
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap_or_default()
    );
    let r = http_request(
        "GET",
        &format!("{}/v1/users/me", sb.base_url()),
        None,
        &[("Authorization", &bearer)],
    );
    let usable = serde_json::from_str::<Value>(&r.body).is_ok_and(|v| v["code"] == 0);
    if !usable {
        problems.push(format!(
            "the token on disk is refused: {} {}",
            r.status, r.body
        ));
    }
    problems
}
