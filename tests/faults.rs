//! The fault matrix: every API call the tools make against every fault coze-fake can
//! inject, each cell in a sandbox of its own, in parallel. The expected outcome of each
//! cell is a line of `tests/fault-matrix.expected`, so the expectations can be reviewed
//! in one place; the test checks, per cell, the exit status, the one stderr line (and
//! that its logid is one the fake sent: a `-v` response line carries it), that stdout
//! holds everything received before the fault, that retries are bounded (request counts)
//! and that the token file is still valid JSON, 0600 and usable afterwards. At the end it
//! prints the matrix (pass / FAIL / n/a) to stderr and to `target/fault-matrix.txt`.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coze_fake::answer_text;
use serde_json::{json, Value};

use crate::util::*;

/// `--retries` given to coze-conv and coze-chat.
const RETRIES: u64 = 2;
/// coze-token has no `--retries`: HttpConfig's default.
const TOKEN_RETRIES: u64 = 4;
/// Cells run at once (each one a fake, a sandbox and a process or two).
const WORKERS: usize = 12;
/// Records per list: one full page of 50 and a second page of 5.
const LIST_LEN: usize = 55;
const PAGE: usize = 50;
const PROMPT: &str = "故障 fault 🧪";

const CALLS: &[&str] = &[
    "exchange",
    "refresh",
    "device",
    "conv.create",
    "conv.list",
    "conv.messages",
    "chat.stream",
    "chat.poll",
    "chat.cancel",
];

const FAULTS: &[&str] = &[
    "refused",
    "reset1",
    "resetN",
    "midbody",
    "500x1",
    "500xN",
    "502x1",
    "502xN",
    "429RAx1",
    "429RAxN",
    "429x1",
    "429xN",
    "4100x1",
    "4100xN",
    "4013x1",
    "4013xN",
    "4016x1",
    "4016xN",
    "4028",
    "json_body",
    "malformed",
    "trunc_json",
    "stall",
    "cut",
    "error_ev",
    "chat_failed",
];

/// One line of the expectations file.
#[derive(Clone, Debug)]
struct Expected {
    /// The server the fake imitates for this cell.
    dialect: Dialect,
    call: String,
    fault: String,
    /// None: n/a.
    exit: Option<i32>,
    note: String,
}

/// The calls a self-hosted Coze Studio takes part in: it has no OAuth (exchange,
/// refresh, device), and the messages list's setup needs message create, which it lacks.
const STUDIO_CALLS: &[&str] = &[
    "conv.create",
    "conv.list",
    "chat.stream",
    "chat.poll",
    "chat.cancel",
];

/// The cells of `file`, which must name every call of `calls` with every fault.
fn expectations(file: &str, calls: &[&str]) -> Vec<Expected> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cells = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(call), Some(fault), Some(exit)) = (words.next(), words.next(), words.next())
        else {
            panic!(
                "{}:{}: expected `call fault exit note`",
                path.display(),
                n + 1
            );
        };
        assert!(calls.contains(&call), "line {}: unknown call {call}", n + 1);
        assert!(
            FAULTS.contains(&fault),
            "line {}: unknown fault {fault}",
            n + 1
        );
        assert!(
            seen.insert((call.to_owned(), fault.to_owned())),
            "line {}: {call} {fault} twice",
            n + 1
        );
        let exit = match exit {
            "n/a" => None,
            e => Some(
                e.parse()
                    .unwrap_or_else(|_| panic!("line {}: exit {e:?}", n + 1)),
            ),
        };
        cells.push(Expected {
            dialect: Dialect::Coze,
            call: call.into(),
            fault: fault.into(),
            exit,
            note: words.collect::<Vec<_>>().join(" "),
        });
    }
    for call in calls {
        for fault in FAULTS {
            assert!(
                seen.contains(&(call.to_string(), fault.to_string())),
                "{}: no line for {call} {fault}",
                path.display()
            );
        }
    }
    cells
}

/// What a cell did.
struct Outcome {
    cell: Expected,
    /// None: n/a.
    problems: Option<Vec<String>>,
    describe: String,
    /// What the cell printed on stderr, `-v` lines left out.
    message: String,
    took: Duration,
}

#[test]
fn the_fault_matrix() {
    let started = Instant::now();
    let mut cells = expectations("tests/fault-matrix.expected", CALLS);
    cells.extend(
        expectations("tests/fault-matrix-studio.expected", STUDIO_CALLS)
            .into_iter()
            .map(|c| Expected {
                dialect: Dialect::Studio,
                ..c
            }),
    );
    let queue = Arc::new(Mutex::new(cells.clone()));
    let results = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, results) = (queue.clone(), results.clone());
            std::thread::spawn(move || loop {
                let Some(cell) = queue.lock().unwrap().pop() else {
                    return;
                };
                let t = Instant::now();
                let outcome = match cell.exit {
                    None => Outcome {
                        cell,
                        problems: None,
                        describe: String::new(),
                        message: String::new(),
                        took: Duration::ZERO,
                    },
                    Some(exit) => {
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            run_cell(&cell.call, &cell.fault, exit, cell.dialect)
                        }));
                        let (problems, describe, message) = match r {
                            Ok(v) => v,
                            Err(p) => {
                                let msg = p
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "panic".into());
                                (
                                    vec![format!("panicked: {msg}")],
                                    String::new(),
                                    String::new(),
                                )
                            }
                        };
                        Outcome {
                            cell,
                            problems: Some(problems),
                            describe,
                            message,
                            took: t.elapsed(),
                        }
                    }
                };
                results.lock().unwrap().push(outcome);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let results = std::mem::take(&mut *results.lock().unwrap());
    let runtime = started.elapsed();
    let report = [Dialect::Coze, Dialect::Studio]
        .iter()
        .map(|d| {
            let of: Vec<&Outcome> = results.iter().filter(|o| o.cell.dialect == *d).collect();
            format!("--- {} dialect\n{}", d.name(), matrix(&of, runtime))
        })
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{report}");
    // The file adds each cell's exit and stderr, for reviewing the messages themselves.
    let mut file = report.clone();
    let mut sorted: Vec<&Outcome> = results.iter().filter(|o| o.problems.is_some()).collect();
    sorted.sort_by_key(|o| {
        (
            o.cell.dialect == Dialect::Studio,
            CALLS.iter().position(|c| *c == o.cell.call),
            FAULTS.iter().position(|f| *f == o.cell.fault),
        )
    });
    for o in sorted {
        file.push_str(&format!(
            "\n{} {} {} -> exit {} ({})\n{}",
            o.cell.dialect.name(),
            o.cell.call,
            o.cell.fault,
            o.cell.exit.unwrap_or_default(),
            o.cell.note,
            o.message
        ));
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("fault-matrix.txt");
    std::fs::write(&out, &file).unwrap();
    let failed: Vec<&Outcome> = results
        .iter()
        .filter(|o| o.problems.as_ref().is_some_and(|p| !p.is_empty()))
        .collect();
    if !failed.is_empty() {
        let mut text = String::new();
        for o in &failed {
            text.push_str(&format!(
                "\n=== {} {} {} (expected exit {}: {})\n- {}\n{}\n",
                o.cell.dialect.name(),
                o.cell.call,
                o.cell.fault,
                o.cell.exit.unwrap(),
                o.cell.note,
                o.problems.as_ref().unwrap().join("\n- "),
                o.describe
            ));
        }
        panic!("{} cell(s) of the fault matrix failed:{text}", failed.len());
    }
}

/// The matrix as a table, with the figures under it.
fn matrix(results: &[&Outcome], runtime: Duration) -> String {
    let mut cell: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for o in results {
        let mark = match &o.problems {
            None => "n/a",
            Some(p) if p.is_empty() => "pass",
            Some(_) => "FAIL",
        };
        cell.insert((o.cell.call.as_str(), o.cell.fault.as_str()), mark);
    }
    let label = CALLS.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut text = format!("{:label$}", "");
    for f in FAULTS {
        text.push_str(&format!(" {:>w$}", f, w = f.len().max(4)));
    }
    text.push('\n');
    for c in CALLS
        .iter()
        .filter(|c| results.iter().any(|o| o.cell.call == **c))
    {
        text.push_str(&format!("{c:label$}"));
        for f in FAULTS {
            let mark = cell.get(&(*c, *f)).copied().unwrap_or("?");
            text.push_str(&format!(" {:>w$}", mark, w = f.len().max(4)));
        }
        text.push('\n');
    }
    let applicable = results.iter().filter(|o| o.problems.is_some()).count();
    let passed = results
        .iter()
        .filter(|o| o.problems.as_ref().is_some_and(|p| p.is_empty()))
        .count();
    let slowest = results
        .iter()
        .max_by_key(|o| o.took)
        .map(|o| {
            format!(
                "{} {} {:.1} s",
                o.cell.call,
                o.cell.fault,
                o.took.as_secs_f64()
            )
        })
        .unwrap_or_default();
    text.push_str(&format!(
        "\n{passed}/{applicable} applicable cells passed, {} n/a, {} cells in all; {:.1} s with {WORKERS} workers (slowest: {slowest})\n",
        results.len() - applicable,
        results.len(),
        runtime.as_secs_f64()
    ));
    text
}

// ---------------------------------------------------------------- one cell

/// The fault endpoint a call's faults go to.
fn endpoint(call: &str, fault: &str) -> &'static str {
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
        other => panic!("unknown call {other}"),
    }
}

fn tool(call: &str) -> &'static str {
    match call {
        "exchange" | "refresh" | "device" => "coze-token",
        c if c.starts_with("conv.") => "coze-conv",
        _ => "coze-chat",
    }
}

fn retries(call: &str) -> u64 {
    if tool(call) == "coze-token" {
        TOKEN_RETRIES
    } else {
        RETRIES
    }
}

fn is_stream(call: &str) -> bool {
    call == "chat.stream"
}

/// The two lists get their fault on page 2.
fn second_page(call: &str) -> bool {
    matches!(call, "conv.list" | "conv.messages")
}

/// Faults that decide the outcome at once: injected on every attempt, or an
/// authentication failure where there is nothing to refresh (Studio's PAT).
fn final_at_once(fault: &str, dialect: Dialect) -> bool {
    always(fault) || (dialect == Dialect::Studio && fault.starts_with("4100"))
}

/// Faults injected on every attempt: the final outcome, not the retry.
fn always(fault: &str) -> bool {
    fault.ends_with('N') || matches!(fault, "4028" | "trunc_json" | "stall" | "refused")
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
        "midbody" if is_stream(call) => {
            Some((json!({"type": "reset_mid_body", "after_events": 4}), 1))
        }
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
        "malformed" => Some((json!({"type": "malformed", "after_events": 3}), 1)),
        "trunc_json" => Some((json!({"type": "truncated_json"}), n)),
        "stall" if is_stream(call) => {
            Some((json!({"type": "stall", "after_events": 3, "ms": 3000}), 1))
        }
        "stall" => Some((json!({"type": "delay", "ms": 3000}), n)),
        "cut" => Some((json!({"type": "cut", "after_events": 4}), 1)),
        "error_ev" => Some((
            json!({"type": "error_event", "after_events": 5, "code": 5000, "msg": "model overloaded"}),
            1,
        )),
        "chat_failed" => Some((
            json!({"type": "chat_failed", "code": 5000, "msg": "event interval error"}),
            1,
        )),
        other => panic!("unknown fault {other}"),
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Credentials for the call: a login (coze), or nothing (Studio: the sandbox's
/// commands carry its PAT).
fn login(sb: &Sandbox) {
    if !sb.studio() {
        sb.login();
    }
}

/// Builds the cell's command (and stdin) after preparing the sandbox for the call.
fn prepare(call: &str, fault: &str, sb: &Sandbox) -> (Command, String) {
    let refused = (fault == "refused").then(|| format!("http://127.0.0.1:{}", closed_port()));
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
fn run_cell(call: &str, fault: &str, exit: i32, dialect: Dialect) -> (Vec<String>, String, String) {
    let sb = Sandbox::with_options(
        &format!("fault-{}-{call}-{fault}", dialect.name()),
        Options {
            device_interval: 1,
            dialect,
            ..Options::default()
        },
    );
    let (mut cmd, stdin) = prepare(call, fault, &sb);
    // Counters, log and bot from here on are the cell's own.
    sb.fake.reset();
    if call == "chat.cancel" {
        sb.fake
            .set_bot(json!({"deltas": 200, "delta_delay_ms": 50}));
    }
    let token_before = std::fs::read(sb.token_path()).ok();
    let ep = endpoint(call, fault);
    if second_page(call) && fault != "refused" {
        // The first page passes untouched: a delay of 0 ms.
        sb.fake.push_fault(ep, json!({"type": "delay", "ms": 0}), 1);
    }
    if let Some((f, count)) = fault_json(call, fault) {
        sb.fake.push_fault(ep, f, count);
    }
    let start = Instant::now();
    let r = run_deadline(&mut cmd, &stdin, Duration::from_secs(45));
    let took = start.elapsed();
    let stats = sb.stats();
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

/// A `-v` line: a request (`> `), a response (`< `) or a retry (`* `).
fn is_verbose(line: &str) -> bool {
    line.starts_with("> ") || line.starts_with("< ") || line.starts_with("* ")
}

/// The logid of a `(logid …)` in `line`.
fn logid_of(line: &str) -> Option<&str> {
    line.split("(logid ").nth(1)?.split(')').next()
}

/// The one error line, its logid against the responses `-v` saw.
fn check_stderr(call: &str, fault: &str, code: i32, stderr: &str, dialect: Dialect) -> Vec<String> {
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
/// follows the chat to its end by polling instead of failing.
fn recovers(call: &str, fault: &str) -> bool {
    call == "chat.stream" && matches!(fault, "midbody" | "cut")
}

/// Whether the final failure is a response the server sent (with its x-tt-logid).
fn server_answered(call: &str, fault: &str) -> bool {
    match fault {
        "refused" | "reset1" | "resetN" => false,
        // JSON: every attempt timed out before the head arrived.
        "stall" => is_stream(call),
        _ => true,
    }
}

/// stdout holds what was received before the fault, nothing more.
fn check_stdout(call: &str, fault: &str, code: i32, r: &Run, dialect: Dialect) -> Vec<String> {
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
        "conv.list" | "conv.messages" => {
            let want = match (code, fault) {
                (0, _) => LIST_LEN,
                (_, "refused") => 0,
                _ => PAGE,
            };
            let kind = if call == "conv.list" {
                "conversation"
            } else {
                "message"
            };
            let key = if call == "conv.list" {
                "conversation_id"
            } else {
                "id"
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
        "chat.cancel" => expect(
            names == ["conversation.chat.created"],
            format!("expected the one line head -1 took, got {names:?}"),
        ),
        _ => {}
    }
    problems
}

/// Retries are bounded and happen where they should; Retry-After is honoured.
fn check_counts(
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
    let base = u64::from(second_page(call));
    let transient = ["reset", "500", "502", "429RA", "429", "4013", "4016"];
    let kind = fault
        .trim_end_matches("x1")
        .trim_end_matches("xN")
        .trim_end_matches(['1', 'N']);
    let want = if fault == "4028" || recovers(call, fault) {
        // Asked once; a broken stream's chat is followed, never asked again.
        Some(base + 1)
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
        if polled("chat.retrieve") == 0 || polled("chat.message.list") != 1 || cancels != 0 {
            problems.push(format!(
                "expected the chat followed by polling and not cancelled: {} retrieves, \
                 {} message lists, {cancels} cancels",
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

/// The token file afterwards: valid JSON, 0600, a token the fake accepts; no temp files.
fn check_token_file(sb: &Sandbox, call: &str, code: i32, before: Option<&[u8]>) -> Vec<String> {
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
