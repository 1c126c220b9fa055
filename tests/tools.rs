//! coze-chat --tool: a bot's tool calls (coze-fake's `tools` bot) answered by real
//! child processes, the shell scripts of tests/fixtures/tools: one call in each output
//! mode with what the tool sees, several calls and rounds streamed and polled, every way
//! a tool fails (told to the bot, one warning line), a child left behind, Ctrl-C while a
//! tool runs, `--max-tool-rounds`, `--tools DIR`, `--jobs`, a chat left waiting (exit
//! 7), a question asked on a terminal, and the usage errors before any chat.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chat::chat;
use crate::util::*;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tools")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `--tool NAME=<fixture>`.
fn tool(name: &str, script: &str) -> [String; 2] {
    ["--tool".into(), format!("{name}={}", fixture(script))]
}

/// The bot calls these rounds of tools before it answers.
fn rounds(sb: &Sandbox, rounds: Value) {
    sb.fake.set_bot(json!({"tools": {"rounds": rounds}}));
}

fn weather() -> Value {
    json!([[{"name": "get_weather", "arguments": {"city": "北京"}}]])
}

/// What echo.sh answers for `name` given `args`, coze-chat's environment holding no
/// token variable.
fn echoed(name: &str, args: &str) -> String {
    format!("{name} got {args} (token:none)")
}

/// The answer's text in -o events records: its completed answer message.
fn answer(recs: &[Value]) -> String {
    recs.iter()
        .rev()
        .filter(|r| r["event"] == "conversation.message.completed" && r["data"]["type"] == "answer")
        .map(|r| r["data"]["content"].as_str().unwrap().to_owned())
        .next()
        .unwrap_or_default()
}

fn of_type<'a>(recs: &'a [Value], t: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["type"] == t).collect()
}

fn warnings(r: &Run) -> Vec<&str> {
    r.stderr.lines().filter(|l| l.contains("warning")).collect()
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- one call

/// -o events: the tool's own records come between the server's events (after the
/// requires_action that asks, before the continued chat), the continuation is on the
/// same stdout, and the tool got the arguments on stdin and the call's ids in its
/// environment, no token.
#[test]
fn one_call_is_answered_by_its_program_and_the_chat_goes_on() {
    let sb = logged_in("tools-one");
    rounds(&sb, weather());
    let log = sb.path("log");
    let r = run(
        chat(&sb)
            .args(tool("get_weather", "echo.sh"))
            .env("TOOL_LOG", &log)
            .args(["-o", "events", "天气?"]),
        "",
    );
    r.ok();
    let recs = r.records();
    let out = echoed("get_weather", r#"{"city":"北京"}"#);
    let at = |pred: &dyn Fn(&Value) -> bool| recs.iter().position(pred).unwrap();
    let asked = at(&|r| r["event"] == "conversation.chat.requires_action");
    let call = at(&|r| r["type"] == "tool_call");
    let output = at(&|r| r["type"] == "tool_output");
    let completed = at(&|r| r["event"] == "conversation.chat.completed");
    assert!(
        asked < call && call < output && output < completed,
        "{}",
        r.describe()
    );
    let id = recs[call]["tool_call_id"].as_str().unwrap().to_owned();
    assert_eq!(recs[call]["name"], "get_weather");
    assert_eq!(recs[call]["arguments"], json!({"city": "北京"}));
    assert_eq!(recs[output]["tool_call_id"], id.as_str());
    assert_eq!(recs[output]["output"], out.as_str());
    assert_eq!(recs[output]["exit_status"], 0);
    assert!(recs[output]["ms"].is_u64());
    assert_eq!(answer(&recs), format!("工具结果 get_weather: {out}"));
    assert!(r.stderr.is_empty(), "{}", r.describe());
    // What the server took: one streamed submit of that output.
    let taken = sb.fake.tool_outputs();
    assert_eq!(taken.as_array().unwrap().len(), 1, "{taken}");
    assert_eq!(taken[0]["stream"], true);
    assert_eq!(
        taken[0]["tool_outputs"],
        json!([{"tool_call_id": id, "output": out}])
    );
    // Its environment names the call.
    let env = std::fs::read_to_string(log.join(format!("{id}.env"))).unwrap();
    let chat = &recs[asked]["data"];
    for (k, v) in [
        ("COZE_TOOL_NAME", "get_weather"),
        ("COZE_TOOL_CALL_ID", id.as_str()),
        (
            "COZE_CONVERSATION_ID",
            chat["conversation_id"].as_str().unwrap(),
        ),
        ("COZE_CHAT_ID", chat["id"].as_str().unwrap()),
    ] {
        assert!(env.lines().any(|l| l == format!("{k}={v}")), "{k}: {env}");
    }
    assert_eq!(
        std::fs::read_to_string(log.join(format!("{id}.stdin"))).unwrap(),
        r#"{"city":"北京"}"#
    );
}

/// -o answers lists the calls on the answer record; -o text prints the answer on
/// stdout and one line per call on stderr.
#[test]
fn answers_list_the_calls_and_text_says_one_line_per_call() {
    let sb = logged_in("tools-modes");
    rounds(&sb, weather());
    let out = echoed("get_weather", r#"{"city":"北京"}"#);
    let r = run(
        chat(&sb)
            .args(tool("get_weather", "echo.sh"))
            .args(["-o", "answers", "天气?"]),
        "",
    );
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["status"], "completed");
    assert_eq!(a["content"], format!("工具结果 get_weather: {out}"));
    let calls = a["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{a}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_eq!(calls[0]["arguments"], json!({"city": "北京"}));
    assert_eq!(calls[0]["output"], out.as_str());
    assert_eq!(calls[0]["exit_status"], 0);

    let r = run(
        chat(&sb)
            .args(tool("get_weather", "echo.sh"))
            .args(["-o", "text", "天气?"]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, format!("工具结果 get_weather: {out}\n"));
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.contains("↳")).collect();
    assert_eq!(lines.len(), 1, "{}", r.describe());
    assert!(
        lines[0].contains("tool get_weather: exit 0"),
        "{}",
        r.describe()
    );
    // The token variables are not the tool's.
    assert!(!r.stdout.contains("token:czs_"), "{}", r.describe());
}

// ---------------------------------------------------------------- several calls, rounds

/// Three calls at once, then a second round; streamed and polled (--no-stream) alike:
/// the answer echoes every output in call order, and the server took two submits.
#[test]
fn several_calls_and_rounds_streamed_and_polled() {
    let sb = logged_in("tools-rounds");
    rounds(
        &sb,
        json!([
            [{"name": "a", "arguments": {"n": 1}}, {"name": "b", "arguments": {"n": 2}},
             {"name": "c", "arguments": {"n": 3}}],
            [{"name": "a", "arguments": {"n": 4}}]
        ]),
    );
    for (stream, extra) in [(true, None), (false, Some("--no-stream"))] {
        let before = sb.fake.tool_outputs().as_array().unwrap().len();
        let mut cmd = chat(&sb);
        cmd.args(tool("a", "echo.sh"))
            .args(tool("b", "echo.sh"))
            .args(tool("c", "echo.sh"))
            .args(["-o", "answers"]);
        cmd.args(extra);
        let r = run(cmd.arg("go"), "");
        r.ok();
        let a = &r.records()[0];
        let want = [(1, "a"), (2, "b"), (3, "c"), (4, "a")]
            .map(|(n, name)| format!("{name}: {}", echoed(name, &format!(r#"{{"n":{n}}}"#))))
            .join("; ");
        assert_eq!(a["content"], format!("工具结果 {want}"), "{}", r.describe());
        assert_eq!(a["tool_calls"].as_array().unwrap().len(), 4, "{a}");
        let taken = sb.fake.tool_outputs();
        let taken = &taken.as_array().unwrap()[before..];
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(taken[0]["tool_outputs"].as_array().unwrap().len(), 3);
        assert!(taken.iter().all(|t| t["stream"] == stream), "{taken:?}");
    }
}

/// A round's calls run at once, at most 4 at a time: six calls of meet.sh, each
/// waiting (bounded) for a fifth sibling to start. Four meet (the fourth to start
/// sees four running); the fifth starts only once one of them has ended, so none
/// ever sees five. Run one by one, each would see only itself; run all at once, the
/// first to end would have seen five or six.
#[test]
fn a_rounds_calls_run_at_once_four_at_a_time() {
    let sb = logged_in("tools-at-once");
    let calls: Vec<Value> = (1..=6)
        .map(|n| json!({"name": "meet", "arguments": {"n": n}}))
        .collect();
    rounds(&sb, json!([calls]));
    let dir = sb.path("meet");
    std::fs::create_dir_all(&dir).unwrap();
    let r = run(
        chat(&sb)
            .args(tool("meet", "meet.sh"))
            .env("MEET_DIR", &dir)
            .env("MEET_COUNT", "5")
            .env("MEET_WAIT", "3")
            .args(["-o", "answers", "go"]),
        "",
    );
    r.ok();
    let seen: Vec<u64> = r.records()[0]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let out = c["output"].as_str().unwrap();
            out.strip_prefix("saw ").unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(seen.len(), 6, "{}", r.describe());
    assert_eq!(
        seen.iter().max(),
        Some(&4),
        "most running at once: {seen:?}"
    );
    // Submitted together, in call order.
    let taken = sb.fake.tool_outputs();
    assert_eq!(taken.as_array().unwrap().len(), 1, "{taken}");
    assert_eq!(taken[0]["tool_outputs"].as_array().unwrap().len(), 6);
}

/// A bot that never stops calling: one round more than --max-tool-rounds cancels
/// the chat and fails the prompt.
#[test]
fn max_tool_rounds_ends_a_bot_that_keeps_calling() {
    let sb = logged_in("tools-max-rounds");
    let call = json!([{"name": "a", "arguments": {}}]);
    rounds(&sb, json!([call, call, call]));
    let r = run(
        chat(&sb).args(tool("a", "echo.sh")).args([
            "--max-tool-rounds",
            "2",
            "-o",
            "answers",
            "go",
        ]),
        "",
    );
    r.expect_code(1);
    assert!(r.stderr.contains("--max-tool-rounds"), "{}", r.describe());
    assert_eq!(sb.fake.tool_outputs().as_array().unwrap().len(), 2);
    // Its cancel was asked (the fake, as coze.cn may, refuses to cancel a chat that
    // waits for outputs: 4104, which coze-chat takes as "nothing to stop").
    assert_eq!(sb.stats()["requests"]["chat.cancel"], 1, "{}", r.describe());
}

// ---------------------------------------------------------------- failures

/// Every way a tool fails reaches the bot as an output saying so (it can recover),
/// and the person as one warning line; the chat completes. The tool that never reads
/// its stdin (200 KB of arguments) does not block, and the one that hangs is killed
/// at --tool-timeout with its process group.
#[test]
fn failing_tools_are_told_to_the_bot_and_warned_once() {
    let sb = logged_in("tools-fail");
    let blob = "x".repeat(200_000);
    rounds(
        &sb,
        json!([[
            {"name": "fail", "arguments": {}},
            {"name": "hang", "arguments": {}},
            {"name": "big", "arguments": {}},
            {"name": "latin1", "arguments": {}},
            {"name": "nope", "arguments": {}},
            {"name": "deaf", "arguments": {"blob": blob}},
            {"name": "raw", "arguments": "not json"}
        ]]),
    );
    let pidfile = sb.path("hang.pid");
    let started = Instant::now();
    let r = run(
        chat(&sb)
            .args(tool("fail", "fail.sh"))
            .args(tool("hang", "hang.sh"))
            .args(tool("big", "big.sh"))
            .args(tool("latin1", "latin1.sh"))
            .args(tool("deaf", "deaf.sh"))
            .args(tool("raw", "echo.sh"))
            .env("PIDFILE", &pidfile)
            .args(["--tool-timeout", "2", "-o", "answers", "go"]),
        "",
    );
    r.ok();
    assert!(started.elapsed() < Duration::from_secs(30));
    let calls = r.records()[0]["tool_calls"].as_array().unwrap().clone();
    let out = |name: &str| {
        let c = calls.iter().find(|c| c["name"] == name).unwrap();
        (
            c["output"].as_str().unwrap().to_owned(),
            c["exit_status"].clone(),
        )
    };
    assert_eq!(
        out("fail"),
        (
            "error: the local tool fail exited with status 3; it wrote: no such city".into(),
            json!(3)
        )
    );
    let (hang, status) = out("hang");
    assert!(
        hang.starts_with("error: the local tool hang timed out after 2 s"),
        "{hang}"
    );
    assert_eq!(status, Value::Null);
    assert!(gone(read_pid(&pidfile)), "the hung tool still runs");
    assert!(out("big")
        .0
        .starts_with("error: the local tool big wrote more than 1 MB"));
    assert!(out("latin1").0.contains("not UTF-8"), "{:?}", out("latin1"));
    assert_eq!(out("nope").0, "error: no local tool named nope");
    assert_eq!(out("deaf"), ("not listening\n".into(), json!(0)));
    // Arguments that are no JSON object reach the tool as sent.
    assert_eq!(out("raw").0, echoed("raw", "not json"));
    let w = warnings(&r);
    assert_eq!(w.len(), 6, "{}", r.describe());
    for name in ["fail", "hang", "big", "latin1", "nope", "raw"] {
        assert_eq!(
            w.iter()
                .filter(|l| l.contains(&format!(" {name} ")))
                .count(),
            1,
            "{name}: {}",
            r.describe()
        );
    }
    assert!(w.iter().any(|l| l.contains("not a JSON object")), "{w:?}");
}

/// A tool that exits leaving a child behind (holding its stdout open) is answered at
/// once, and the child is killed with the tool's process group.
#[test]
fn a_child_left_behind_is_killed_with_its_tool() {
    let sb = logged_in("tools-fork");
    rounds(&sb, json!([[{"name": "fork", "arguments": {}}]]));
    let pidfile = sb.path("child.pid");
    let started = Instant::now();
    let r = run(
        chat(&sb)
            .args(tool("fork", "fork.sh"))
            .env("PIDFILE", &pidfile)
            .args(["-o", "answers", "go"]),
        "",
    );
    r.ok();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited for the child"
    );
    assert_eq!(r.records()[0]["tool_calls"][0]["output"], "forked\n");
    assert!(gone(read_pid(&pidfile)), "the child outlived its tool");
}

/// Ctrl-C while a tool runs: the tool is killed, the chat cancelled, exit 130.
#[test]
fn ctrl_c_while_a_tool_runs_kills_it_and_cancels_the_chat() {
    let sb = logged_in("tools-sigint");
    rounds(&sb, json!([[{"name": "hang", "arguments": {}}]]));
    let pidfile = sb.path("hang.pid");
    let mut cmd = chat(&sb);
    cmd.args(tool("hang", "hang.sh"))
        .env("PIDFILE", &pidfile)
        .args(["-o", "answers", "go"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = cmd.spawn().unwrap();
    let tool_pid = read_pid(&pidfile);
    sigint(child.id());
    let out = wait_with_deadline(child, Duration::from_secs(20), &what);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(gone(tool_pid), "the tool outlived Ctrl-C");
    assert_eq!(sb.stats()["requests"]["chat.cancel"], 1, "{stderr}");
    assert!(sb.fake.tool_outputs().as_array().unwrap().is_empty());
}

/// Ctrl-C while a round of six runs (four at a time): no call of the round starts
/// after the four running are killed, though the cancel takes its time (the process
/// ends after it, and a tool started meanwhile would outlive it).
#[test]
fn ctrl_c_starts_no_more_tools_of_the_round() {
    let sb = logged_in("tools-sigint-round");
    let calls: Vec<Value> = (1..=6)
        .map(|n| json!({"name": "meet", "arguments": {"n": n}}))
        .collect();
    rounds(&sb, json!([calls]));
    sb.fake
        .push_fault("chat.cancel", json!({"type": "delay", "ms": 1500}), 1);
    let dir = sb.path("meet");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = chat(&sb);
    cmd.args(tool("meet", "meet.sh"))
        .env("MEET_DIR", &dir)
        .env("MEET_COUNT", "99")
        .env("MEET_WAIT", "60")
        .args(["-o", "answers", "go"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = cmd.spawn().unwrap();
    let started = || -> Vec<u32> {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                let start = p.extension().is_some_and(|x| x == "start");
                start.then(|| read_pid(&p))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while started().len() < 4 {
        assert!(Instant::now() < deadline, "four tools never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    sigint(child.id());
    let out = wait_with_deadline(child, Duration::from_secs(20), &what);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let pids = started();
    assert_eq!(pids.len(), 4, "tools started after Ctrl-C: {stderr}");
    assert!(pids.into_iter().all(gone), "a tool outlived Ctrl-C");
}

// ---------------------------------------------------------------- waiting, questions

/// Without tools the prompt ends waiting (exit 7), its calls in the answer record; a
/// question (reply_message) in a pipeline waits too, tools or not.
#[test]
fn without_tools_or_in_a_pipeline_the_chat_waits_exit_7() {
    let sb = logged_in("tools-waiting");
    rounds(&sb, weather());
    let r = run(chat(&sb).args(["-o", "answers", "天气?"]), "");
    r.expect_code(7);
    let a = &r.records()[0];
    assert_eq!(a["status"], "requires_action", "{a}");
    assert_eq!(a["tool_calls"][0]["name"], "get_weather");
    assert_eq!(a["tool_calls"][0]["arguments"], json!({"city": "北京"}));
    assert!(a["tool_calls"][0].get("output").is_none(), "{a}");
    assert!(r.stderr.contains("--tool NAME=COMMAND"), "{}", r.describe());

    rounds(
        &sb,
        json!([[{"type": "reply_message", "question": "哪个城市?"}]]),
    );
    let r = run(
        chat(&sb)
            .args(tool("get_weather", "echo.sh"))
            .args(["-o", "events", "天气?"]),
        "",
    );
    r.expect_code(7);
    let recs = r.records();
    let calls = of_type(&recs, "tool_call");
    assert_eq!(calls.len(), 1, "{}", r.describe());
    assert_eq!(calls[0]["call_type"], "reply_message");
    assert_eq!(calls[0]["question"], "哪个城市?");
    assert_eq!(recs.last().unwrap()["type"], "error");
    assert!(sb.fake.tool_outputs().as_array().unwrap().is_empty());
}

/// On a terminal the bot's question is asked, and the answer typed is its output;
/// a polled chat (--no-stream) shows the question too, read from the chat's messages.
#[test]
fn a_question_is_asked_on_a_terminal_and_answered() {
    for (name, flags) in [("tools-tty", ""), ("tools-tty-polled", " --no-stream")] {
        question_on_a_terminal(name, flags);
    }
}

fn question_on_a_terminal(name: &str, flags: &str) {
    let sb = logged_in(name);
    rounds(
        &sb,
        json!([[{"type": "reply_message", "question": "哪个城市?"}]]),
    );
    let r = run(
        sb.cmd("script").env("CHAT", bin("coze-chat")).args([
            "-qec",
            &format!("\"$CHAT\" --bot 7 -o answers{flags} hi"),
            "/dev/null",
        ]),
        "上海\n",
    );
    r.ok();
    assert!(
        r.stdout.contains("the bot asks: 哪个城市?"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("工具结果 reply_message: 上海"),
        "{}",
        r.describe()
    );
    let taken = sb.fake.tool_outputs();
    assert_eq!(taken[0]["tool_outputs"][0]["output"], "上海", "{taken}");
}

// ---------------------------------------------------------------- --tools, --jobs, usage

/// --tools DIR: an executable DIR/NAME answers NAME; a name that is no plain file
/// name is never looked up as a path.
#[test]
fn a_tools_directory_answers_by_name() {
    let sb = logged_in("tools-dir");
    let dir = sb.path("tools");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(fixture("echo.sh"), dir.join("get_weather")).unwrap();
    std::os::unix::fs::symlink(fixture("echo.sh"), sb.path("outside")).unwrap();
    rounds(
        &sb,
        json!([[{"name": "get_weather", "arguments": {"city": "北京"}},
                {"name": "../outside", "arguments": {}}]]),
    );
    let r = run(
        chat(&sb).args(["--tools", dir.to_str().unwrap(), "-o", "answers", "go"]),
        "",
    );
    r.ok();
    let calls = r.records()[0]["tool_calls"].clone();
    assert_eq!(
        calls[0]["output"],
        echoed("get_weather", r#"{"city":"北京"}"#)
    );
    assert_eq!(calls[1]["output"], "error: no local tool named ../outside");
}

/// --jobs: each prompt's chat runs its own tools.
#[test]
fn each_job_runs_its_own_tools() {
    let sb = logged_in("tools-jobs");
    rounds(&sb, weather());
    let r = run(
        chat(&sb)
            .args(tool("get_weather", "echo.sh"))
            .args(["--jobs", "3", "-o", "answers"]),
        "one\ntwo\nthree\n",
    );
    r.ok();
    let recs: Vec<Value> = r
        .records()
        .into_iter()
        .filter(|a| a["type"] == "answer")
        .collect();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    for a in &recs {
        assert_eq!(a["status"], "completed");
        assert_eq!(a["tool_calls"].as_array().unwrap().len(), 1);
    }
    assert_eq!(sb.fake.tool_outputs().as_array().unwrap().len(), 3);
}

/// What cannot work is refused before any chat (exit 2): a --tool without `=`, a
/// program that does not exist or cannot be executed, --tool with --no-save.
#[test]
fn bad_tools_are_usage_errors_before_any_chat() {
    let sb = logged_in("tools-usage");
    let plain = sb.path("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--tool".into(), "get_weather".into()],
            "expected KEY=VALUE",
        ),
        (
            vec!["--tool".into(), "f=/no/such/tool".into()],
            "no program",
        ),
        (
            vec!["--tool".into(), "f=no-such-tool-anywhere".into()],
            "not found in PATH",
        ),
        (
            vec!["--tool".into(), format!("f={}", plain.display())],
            "not an executable file",
        ),
        (
            vec![
                "--tool".into(),
                format!("f={}", fixture("echo.sh")),
                "--no-save".into(),
            ],
            "--no-save",
        ),
        (
            vec!["--tools".into(), "/no/such/dir".into()],
            "not a directory",
        ),
    ];
    for (args, said) in cases {
        let r = run(chat(&sb).args(&args).arg("hi"), "");
        r.expect_code(2);
        assert!(r.stderr.contains(said), "{args:?}: {}", r.describe());
    }
    let chats = sb.fake.log();
    assert!(
        !chats.to_string().contains("/v3/chat"),
        "a chat was asked: {chats}"
    );
}
