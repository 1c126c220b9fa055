//! One cell of the fault matrix: where its fault goes and how many times, the sandbox
//! and command prepared for its call (a login, a list of 55 records, a chat cut by
//! `| head -1`, 55 bots, a file of 100,000 bytes and one uploaded beforehand, a workflow of 8
//! messages, an interrupt record and an async run made beforehand), then the run
//! itself, handed to tests/faults/checks.rs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::checks::{
    check_counts, check_files, check_runs, check_stderr, check_stdout, check_submits,
    check_token_file, is_verbose,
};
use super::{LIST_LEN, PROMPT, RETRIES, TOKEN_RETRIES};
use crate::util::*;

/// The workspace of coze-bot's cells, and the first of the 55 bots generated there.
const BOT_WORKSPACE: &str = "7400000000000000001";
const FIRST_BOT: &str = "7500000000000000001";

/// The fault endpoint a call's faults go to.
pub(super) fn endpoint(call: &str, fault: &str) -> &'static str {
    match call {
        "exchange" | "refresh" | "device" => "token",
        "conv.create" => "conversation.create",
        "conv.list" => "conversation.list",
        "conv.messages" => "message.list",
        "chat.stream" => "chat",
        // chat_failed is decided when the chat is created; retrieve reports it.
        "chat.poll" if fault == "chat_failed" => "chat",
        "chat.poll" => "chat.retrieve",
        "chat.cancel" => "chat.cancel",
        "chat.submit" | "chat.submit.poll" => "chat.submit_tool_outputs",
        "file.upload" => "files.upload",
        "file.get" => "files.retrieve",
        "wf.stream" => "workflow.stream_run",
        "wf.sync" => "workflow.run",
        "wf.resume" => "workflow.stream_resume",
        "wf.resume.sync" => "workflow.resume",
        "wf.history" => "workflow.history",
        "bot.list" => "bots.list",
        "bot.get" => "bots.get",
        other => panic!("unknown call {other}"),
    }
}

pub(super) fn tool(call: &str) -> &'static str {
    match call {
        "exchange" | "refresh" | "device" => "coze-token",
        c if c.starts_with("conv.") => "coze-conv",
        c if c.starts_with("file.") => "coze-file",
        c if c.starts_with("wf.") => "coze-workflow",
        c if c.starts_with("bot.") => "coze-bot",
        _ => "coze-chat",
    }
}

pub(super) fn retries(call: &str) -> u64 {
    if tool(call) == "coze-token" {
        TOKEN_RETRIES
    } else {
        RETRIES
    }
}

pub(super) fn is_stream(call: &str) -> bool {
    matches!(
        call,
        "chat.stream" | "chat.submit" | "wf.stream" | "wf.resume"
    )
}

/// The calls that start (or go on with) a workflow run: a request the server acted on
/// must never be sent again, or the run would run twice.
fn starts_a_run(call: &str) -> bool {
    matches!(
        call,
        "wf.stream" | "wf.sync" | "wf.resume" | "wf.resume.sync"
    )
}

/// The calls whose request the server acts on (a run started or answered, a chat's
/// tool outputs taken): once its answer began, it is never sent again.
pub(super) fn acts_once(call: &str) -> bool {
    starts_a_run(call) || submits(call)
}

/// The calls that submit a chat's tool outputs: streamed (chat.submit) or not
/// (chat.submit.poll, whose chat is then followed by polling).
pub(super) fn submits(call: &str) -> bool {
    matches!(call, "chat.submit" | "chat.submit.poll")
}

/// Requests to the call's endpoint that pass untouched before the one the fault goes
/// to: the two lists get their fault on page 2; a run's history on the read after the
/// one that said Running (on Studio that read is asked at coze.cn's path first, which
/// it answers 401, then at its get_run_history).
pub(super) fn passing(call: &str, dialect: Dialect) -> u64 {
    match call {
        "conv.list" | "conv.messages" | "bot.list" => 1,
        "wf.history" if dialect == Dialect::Studio => 2,
        "wf.history" => 1,
        _ => 0,
    }
}

/// The events a stream sends before its fault: a resumed run's stream carries only the
/// end node's Message and Done, so its faults come after that Message.
pub(super) fn after_events(call: &str, fault: &str) -> u64 {
    match (call, fault) {
        ("wf.resume", _) => 1,
        (_, "stall" | "malformed") => 3,
        (_, "error_ev") => 5,
        _ => 4,
    }
}

/// Faults that decide the outcome at once: injected on every attempt, or an
/// authentication failure where there is nothing to refresh (Studio's PAT).
pub(super) fn final_at_once(fault: &str, dialect: Dialect) -> bool {
    always(fault) || (dialect == Dialect::Studio && fault.starts_with("4100"))
}

/// Faults injected on every attempt: the final outcome, not the retry.
pub(super) fn always(fault: &str) -> bool {
    fault.ends_with('N')
        || matches!(
            fault,
            "4028" | "trunc_json" | "stall" | "refused" | "cut_upload"
        )
}

/// The fault to queue and how many times.
fn fault_json(call: &str, fault: &str) -> Option<(Value, u32)> {
    let n = retries(call) as u32 + 1;
    let times = |f: Value| {
        let count = if fault.ends_with('N') { n } else { 1 };
        Some((f, count))
    };
    match fault {
        "refused" => None,
        "reset1" | "resetN" => times(json!({"type": "reset"})),
        "midbody" if is_stream(call) => Some((
            json!({"type": "reset_mid_body", "after_events": after_events(call, fault)}),
            1,
        )),
        "midbody" => Some((json!({"type": "reset_mid_body"}), 1)),
        "500x1" | "500xN" => times(json!({"type": "http", "status": 500})),
        "502x1" | "502xN" => times(json!({"type": "http", "status": 502})),
        "429RAx1" | "429RAxN" => times(json!({"type": "http", "status": 429, "retry_after": 1})),
        "429x1" | "429xN" => times(json!({"type": "http", "status": 429})),
        "4100x1" | "4100xN" => times(
            json!({"type": "api_error", "status": 401, "code": 4100, "msg": "authentication is invalid"}),
        ),
        "4013x1" | "4013xN" => {
            times(json!({"type": "api_error", "code": 4013, "msg": "rate limited"}))
        }
        "4016x1" | "4016xN" => times(
            json!({"type": "api_error", "code": 4016, "msg": "A chat is already in progress"}),
        ),
        "4028" => Some((
            json!({"type": "api_error", "code": 4028, "msg": "quota exhausted"}),
            n,
        )),
        "json_body" => Some((
            json!({"type": "json_body", "code": 4000, "msg": "invalid parameter"}),
            1,
        )),
        "malformed" => Some((
            json!({"type": "malformed", "after_events": after_events(call, fault)}),
            1,
        )),
        "trunc_json" => Some((json!({"type": "truncated_json"}), n)),
        "stall" if is_stream(call) => Some((
            json!({"type": "stall", "after_events": after_events(call, fault), "ms": 3000}),
            1,
        )),
        "stall" => Some((json!({"type": "delay", "ms": 3000}), n)),
        "cut" => Some((
            json!({"type": "cut", "after_events": after_events(call, fault)}),
            1,
        )),
        "error_ev" => Some((
            json!({"type": "error_event", "after_events": after_events(call, fault),
                   "code": 5000, "msg": "model overloaded"}),
            1,
        )),
        "chat_failed" => Some((
            json!({"type": "chat_failed", "code": 5000, "msg": "event interval error"}),
            1,
        )),
        // Half the body read, then the connection reset: on every attempt.
        "cut_upload" => Some((json!({"type": "cut_upload"}), n)),
        other => panic!("unknown fault {other}"),
    }
}

/// The workflow of the wf.* cells (a number, as a Studio wants).
pub(super) const WORKFLOW: &str = "7401";
/// The Messages its run streams before its end: more than any fault lets through.
pub(super) const MESSAGES: u64 = 8;
/// What wf.resume and wf.resume.sync answer to the run's question.
pub(super) const ANSWER: &str = "上海 Shanghai";

/// The function chat.submit's (and chat.submit.poll's) bot calls, with its one argument, answered by
/// tests/fixtures/tools/echo.sh (which says what it was given).
pub(super) const TOOL: &str = "get_weather";
pub(super) const TOOL_CITY: &str = "北京";

fn tool_fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tools/echo.sh")
        .to_string_lossy()
        .into_owned()
}

/// The file `file.upload` sends: 100,000 bytes, so that a cut lands mid-file.
pub(super) const UPLOAD: &str = "upload.bin";
pub(super) const UPLOAD_LEN: usize = 100_000;

/// Credentials for the call: a login (coze), or nothing (Studio: the sandbox's
/// commands carry its PAT).
fn login(sb: &Sandbox) {
    if !sb.studio() {
        sb.login();
    }
}

/// Builds the cell's command (and stdin) after preparing the sandbox for the call.
fn prepare(call: &str, fault: &str, sb: &Sandbox) -> (Command, String) {
    let refused = (fault == "refused").then(|| format!("http://127.0.0.1:{}", refusing_port()));
    let stall = fault == "stall";
    let mut stdin = String::new();
    let mut cmd = match call {
        "exchange" => {
            let mut grant = sb.authorization_code("42.app.coze");
            if let Some(base) = &refused {
                grant["base_url"] = base.as_str().into();
            }
            stdin = format!("{grant}\n");
            let mut c = sb.cmd("coze-token");
            c.args(["--save", "-v"]);
            c
        }
        "refresh" => {
            sb.login();
            if let Some(base) = &refused {
                let mut t = read_token(&sb.token_path());
                t["base_url"] = base.as_str().into();
                std::fs::write(sb.token_path(), format!("{t}\n")).unwrap();
            }
            let mut c = sb.cmd("coze-token");
            c.args(["refresh", "--force", "-v"]);
            c
        }
        "device" => {
            let code = http_json(
                "POST",
                &format!("{}/api/permission/oauth2/device/code", sb.base_url()),
                Some(&json!({"client_id": "42.app.coze"})),
            );
            let (status, page) = http_raw(
                "POST",
                &format!("{}/oauth/device", sb.base_url()),
                Some(format!(
                    "user_code={}&decision=approve",
                    code["user_code"].as_str().unwrap()
                )),
                &[("Content-Type", "application/x-www-form-urlencoded")],
            );
            assert_eq!(status, 200, "approving the device code: {page}");
            let base = refused.clone().unwrap_or_else(|| sb.base_url());
            let record = json!({
                "type": "device_code", "device_code": code["device_code"],
                "user_code": code["user_code"], "verification_uri": code["verification_uri"],
                "interval": 1, "expires_at": now() + 300, "client_id": "42.app.coze",
                "base_url": base,
            });
            stdin = format!("{record}\n");
            let mut c = sb.cmd("coze-token");
            c.args(["--save", "-v"]);
            c
        }
        "conv.create" | "conv.list" | "conv.messages" => {
            login(sb);
            let mut c = sb.cmd("coze-conv");
            match call {
                "conv.create" => {
                    c.args(["create", "--bot", "7"]);
                }
                "conv.list" => {
                    for _ in 0..LIST_LEN {
                        api(
                            sb,
                            "POST",
                            "/v1/conversation/create",
                            Some(json!({"bot_id": "7"})),
                        );
                    }
                    c.args(["list", "--bot", "7"]);
                }
                _ => {
                    let conv = api(
                        sb,
                        "POST",
                        "/v1/conversation/create",
                        Some(json!({"bot_id": "7"})),
                    );
                    let id = conv["data"]["id"].as_str().unwrap().to_owned();
                    for i in 0..LIST_LEN {
                        api(
                            sb,
                            "POST",
                            &format!("/v1/conversation/message/create?conversation_id={id}"),
                            Some(
                                json!({"role": "user", "content": format!("message {i}"), "content_type": "text"}),
                            ),
                        );
                    }
                    c.args(["messages", &id]);
                }
            }
            c.args(["-v", "--retries", &RETRIES.to_string()]);
            c
        }
        "chat.stream" | "chat.poll" => {
            login(sb);
            let mut c = sb.cmd("coze-chat");
            c.args(["--bot", "7", "-o", "events", "-v"]).args([
                "--retries",
                &RETRIES.to_string(),
                "--busy-wait",
                "1",
            ]);
            if call == "chat.poll" {
                c.arg("--no-stream");
            }
            c
        }
        "chat.submit" | "chat.submit.poll" => {
            // The bot (set in run_cell, after the reset) calls get_weather once; the
            // fixture answers it with what it was given.
            login(sb);
            let mut c = sb.cmd("coze-chat");
            c.args(["--bot", "7", "-o", "events", "-v"])
                .args(["--retries", &RETRIES.to_string()])
                .args(["--tool", &format!("{TOOL}={}", tool_fixture())]);
            if call == "chat.submit.poll" {
                c.arg("--no-stream");
            }
            c
        }
        "chat.cancel" => {
            login(sb);
            let mut args = format!("--bot 7 -o events -v --retries {RETRIES} --busy-wait 1");
            if stall {
                args.push_str(" --idle-timeout 1");
            }
            let script = format!(
                "'{}' {args} slow | head -1; echo \"coze-status=${{PIPESTATUS[0]}}\" >&2",
                bin("coze-chat").display()
            );
            let mut c = sb.cmd("bash");
            c.args(["-c", &script]);
            return (c, stdin);
        }
        "file.upload" | "file.get" => {
            login(sb);
            let bytes: Vec<u8> = (0..UPLOAD_LEN).map(|i| (i % 251) as u8).collect();
            std::fs::write(sb.path(UPLOAD), bytes).unwrap();
            let mut c = sb.cmd("coze-file");
            if call == "file.upload" {
                c.args(["upload", UPLOAD]);
            } else {
                // Uploaded beforehand: the fake keeps its files across the reset below.
                let r = run(sb.cmd("coze-file").args(["upload", UPLOAD]), "");
                r.ok();
                let id = r.records()[0]["file_id"].as_str().unwrap().to_owned();
                c.args(["get", &id]);
            }
            c.args(["-v", "--retries", &RETRIES.to_string()]);
            c
        }
        "wf.stream" | "wf.sync" | "wf.resume" | "wf.resume.sync" | "wf.history" => {
            login(sb);
            let mut spec = json!({"workflow_id": WORKFLOW, "messages": MESSAGES});
            if call.starts_with("wf.resume") {
                spec["question"] = json!("Which city?");
            }
            sb.fake.set_workflow(spec).unwrap();
            let param = format!("k={PROMPT}");
            let mut c = sb.cmd("coze-workflow");
            match call {
                "wf.stream" | "wf.sync" => {
                    c.args(["run", "--workflow", WORKFLOW, "--param", &param]);
                    if call == "wf.sync" {
                        c.arg("--no-stream");
                    }
                }
                "wf.resume" | "wf.resume.sync" => {
                    // The run stops at its question; its interrupt record (which says
                    // whether the run was streamed) is the cell's stdin.
                    let mut first = sb.cmd("coze-workflow");
                    first.args(["run", "--workflow", WORKFLOW, "--param", &param]);
                    if call == "wf.resume.sync" {
                        first.arg("--no-stream");
                    }
                    let r = run(&mut first, "");
                    r.expect_code(7);
                    let record = r
                        .records()
                        .into_iter()
                        .find(|r| r["type"] == "interrupt")
                        .unwrap_or_else(|| panic!("no interrupt record\n{}", r.describe()));
                    stdin = format!("{record}\n");
                    c.args(["resume", "--answer", ANSWER]);
                }
                _ => {
                    // An async run, Running for the first read of its history.
                    let r = run(
                        sb.cmd("coze-workflow").args([
                            "run",
                            "--workflow",
                            WORKFLOW,
                            "--param",
                            &param,
                            "--async",
                        ]),
                        "",
                    );
                    r.ok();
                    let id = r.records()[0]["execute_id"].as_str().unwrap().to_owned();
                    c.args(["status", "--workflow", WORKFLOW, &id, "--wait"]);
                }
            }
            if call != "wf.history" {
                c.args(["-o", "events"]);
            }
            c.args(["-v", "--retries", &RETRIES.to_string()]);
            c
        }
        "bot.list" | "bot.get" => {
            login(sb);
            // The bots themselves are set after the reset below (it restores the
            // fake's defaults).
            let mut c = sb.cmd("coze-bot");
            match call {
                "bot.list" => c.args(["list", "--workspace", BOT_WORKSPACE]),
                _ => c.args(["get", FIRST_BOT]),
            };
            c.args(["-v", "--retries", &RETRIES.to_string()]);
            c
        }
        other => panic!("unknown call {other}"),
    };
    if tool(call) != "coze-token" {
        if let Some(base) = &refused {
            cmd.args(["--base-url", base]);
        }
        if stall {
            cmd.args(["--idle-timeout", "1"]);
        }
        if tool(call) == "coze-chat" {
            cmd.arg(PROMPT);
        }
    }
    (cmd, stdin)
}

/// Runs one cell; returns its problems (none: pass), the run described, and its
/// stderr without the `-v` lines.
pub(super) fn run_cell(
    call: &str,
    fault: &str,
    exit: i32,
    dialect: Dialect,
) -> (Vec<String>, String, String) {
    let sb = Sandbox::with_options(
        &format!("fault-{}-{call}-{fault}", dialect.name()),
        Options {
            device_interval: 1,
            dialect,
            ..Options::default()
        },
    );
    let (mut cmd, stdin) = prepare(call, fault, &sb);
    // Counters, log and bot from here on are the cell's own. A workflow cell keeps the
    // fake's workflows and runs (its preparation may have left an interrupt to answer
    // or an async run to follow, which a reset would drop): its counters are the
    // difference from here.
    let before = if tool(call) == "coze-workflow" {
        Some(sb.stats())
    } else {
        sb.fake.reset();
        None
    };
    if call == "chat.cancel" {
        sb.fake
            .set_bot(json!({"deltas": 200, "delta_delay_ms": 50}));
    }
    if tool(call) == "coze-bot" {
        let bots = json!({"generate": {"workspace_id": BOT_WORKSPACE, "count": LIST_LEN}});
        sb.fake.set_bots(bots).unwrap();
    }
    if submits(call) {
        sb.fake.set_bot(json!({"tools": {"rounds": [[
            {"name": TOOL, "arguments": {"city": TOOL_CITY}}
        ]]}}));
    }
    let token_before = std::fs::read(sb.token_path()).ok();
    let ep = endpoint(call, fault);
    let passing = passing(call, dialect);
    if passing > 0 && fault != "refused" {
        // The first page (the first read) passes untouched: a delay of 0 ms.
        sb.fake
            .push_fault(ep, json!({"type": "delay", "ms": 0}), passing as u32);
    }
    if let Some((f, count)) = fault_json(call, fault) {
        sb.fake.push_fault(ep, f, count);
    }
    let start = Instant::now();
    let r = run_deadline(&mut cmd, &stdin, Duration::from_secs(45));
    let took = start.elapsed();
    let stats = match &before {
        Some(before) => difference(&sb.stats(), before),
        None => sb.stats(),
    };
    let mut problems = Vec::new();

    // The exit status (for `| head -1`, coze-chat's own, from PIPESTATUS).
    let mut stderr = r.stderr.clone();
    let code = if call == "chat.cancel" {
        let status = stderr
            .lines()
            .find_map(|l| l.strip_prefix("coze-status="))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        stderr = stderr
            .lines()
            .filter(|l| !l.starts_with("coze-status="))
            .map(|l| format!("{l}\n"))
            .collect();
        status
    } else {
        r.code()
    };
    if code != exit {
        problems.push(format!("exit {code}, expected {exit}"));
    }
    problems.extend(check_stderr(call, fault, code, &stderr, dialect));
    problems.extend(check_stdout(call, fault, code, &r, dialect));
    problems.extend(check_counts(call, fault, &stats, took, dialect));
    problems.extend(check_files(&sb, call, code, &r));
    problems.extend(check_runs(call, code, &sb.fake.workflows()));
    problems.extend(check_submits(call, code, &sb.fake.tool_outputs()));
    if dialect == Dialect::Coze {
        // Studio's credentials are a PAT in the environment: there is no token file.
        problems.extend(check_token_file(&sb, call, code, token_before.as_deref()));
    }
    let message: String = stderr
        .lines()
        .filter(|l| !is_verbose(l))
        .map(|l| format!("    {l}\n"))
        .collect();
    (
        problems,
        format!("took {took:?}\n{}", r.describe()),
        message,
    )
}

/// The counters `after` less those `before` (a number absent before counts from 0).
fn difference(after: &Value, before: &Value) -> Value {
    match after {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), difference(v, &before[k.as_str()])))
                .collect(),
        ),
        Value::Number(n) => match (n.as_u64(), before.as_u64()) {
            (Some(a), Some(b)) => json!(a.saturating_sub(b)),
            _ => after.clone(),
        },
        other => other.clone(),
    }
}
