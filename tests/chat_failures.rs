//! coze-chat's failures end to end: every failure shape with its exit code (a JSON
//! body instead of a stream, an error event, a failed chat, `requires_action`, a
//! malformed event), broken and silent streams (cut, reset, idle), retries and waits
//! (429, 4016, 500), the one token refresh, and several prompts with a failure among
//! them. Shared helpers are in tests/chat.rs.

use std::time::{Duration, Instant};

use coze_fake::answer_text;
use serde_json::{json, Value};

use crate::both_dialects;
use crate::chat::{assert_completed, chars, chat, delta_text, names, spawn_until_output, DELTA};
use crate::util::*;

// ---------------------------------------------------------------- 1. failure shapes

fn a_json_error_body_instead_of_a_stream_is_one_line_and_exit_1(d: Dialect) {
    let sb = logged_in_as("chat-json-body", d);
    sb.fake.push_fault(
        "chat",
        json!({"type": "json_body", "code": 4000, "msg": "invalid parameter: bot_id"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "text", "hi"]), "");
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    let line = r.stderr.trim_end();
    assert!(
        line.starts_with("coze-chat: ") && line.contains("code 4000: invalid parameter: bot_id"),
        "{}",
        r.describe()
    );
    let logid = line
        .split("(logid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no logid\n{}", r.describe()));
    assert!(!logid.trim().is_empty(), "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat"), 1, "a 4000 is not retried");
}

fn an_error_event_exits_by_its_code_and_keeps_the_partial_answer(d: Dialect) {
    let sb = logged_in_as("chat-error-event", d);
    let prompt = "错误 event";
    let answer = answer_text(prompt);
    // created, in_progress, 3 deltas of 3 characters, then `error`.
    sb.fake.push_fault(
        "chat",
        json!({"type": "error_event", "after_events": 5, "code": 5000, "msg": "model overloaded"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.expect_code(1);
    assert_eq!(
        r.stdout,
        format!("{}\n", chars(&answer, 9)),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr.contains("code 5000: model overloaded"),
        "{}",
        r.describe()
    );

    // A rate-limit code in the error event exits 6.
    sb.fake.push_fault(
        "chat",
        json!({"type": "error_event", "after_events": 3, "code": 4013, "msg": "too fast"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.expect_code(6);
    let recs = r.records();
    assert_eq!(delta_text(&recs), chars(&answer, 3), "{}", r.describe());
    let server_error = recs.iter().find(|r| r["event"] == "error").unwrap();
    assert_eq!(
        server_error["data"],
        json!({"code": 4013, "msg": "too fast"})
    );
    // coze-chat's own report: a record, not an event the server did not send.
    let ours = recs.last().unwrap();
    assert_eq!(ours["type"], "error", "{}", r.describe());
    assert_eq!(ours["code"], 4013);
    assert_eq!(ours["exit_code"], 6);
    assert_eq!(
        stat(&sb, "/requests/chat"),
        2,
        "nothing is retried once output began"
    );
}

#[test]
fn chat_failed_in_both_shapes_exits_1() {
    for shape in ["chat", "bare"] {
        let sb = logged_in(&format!("chat-failed-{shape}"));
        sb.fake.push_fault(
            "chat",
            json!({"type": "chat_failed", "shape": shape, "code": 701231, "msg": "event interval error"}),
            1,
        );
        let r = run(chat(&sb).args(["-o", "answers", "fail"]), "");
        r.expect_code(1);
        let recs = r.records();
        assert_eq!(recs.len(), 1, "{}", r.describe());
        assert_eq!(recs[0]["status"], "failed", "{shape}: {}", recs[0]);
        assert_eq!(recs[0]["error"]["code"], 701231, "{shape}: {}", recs[0]);
        assert_eq!(recs[0]["error"]["exit_code"], 1, "{shape}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr
                .contains("the chat failed: code 701231: event interval error"),
            "{shape}\n{}",
            r.describe()
        );
    }
}

#[test]
fn requires_action_without_tools_exits_7_naming_the_tool() {
    let sb = logged_in("chat-requires-action");
    sb.fake
        .push_fault("chat", json!({"type": "requires_action"}), 1);
    let r = run(chat(&sb).args(["-o", "events", "weather?"]), "");
    r.expect_code(7);
    let recs = r.records();
    let ra = recs
        .iter()
        .find(|r| r["event"] == "conversation.chat.requires_action")
        .unwrap_or_else(|| panic!("no requires_action event\n{}", r.describe()));
    assert_eq!(
        ra["data"]["required_action"]["submit_tool_outputs"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    // The server's events, then the calls left waiting, then coze-chat's error.
    let server: Vec<Value> = recs
        .iter()
        .filter(|r| r.get("event").is_some())
        .cloned()
        .collect();
    assert!(names(&server).contains(&"done".to_owned()));
    let ours: Vec<&str> = recs[server.len()..]
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(ours, ["tool_call", "error"], "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr.contains("waits for their outputs")
            && r.stderr.contains("get_weather")
            && r.stderr.contains("--tool NAME=COMMAND"),
        "{}",
        r.describe()
    );
    // The answers record says so too.
    sb.fake
        .push_fault("chat", json!({"type": "requires_action"}), 1);
    let r = run(chat(&sb).args(["-o", "answers", "weather?"]), "");
    r.expect_code(7);
    assert_eq!(r.records()[0]["status"], "requires_action");
}

fn a_failed_chat_without_streaming_exits_1_too(d: Dialect) {
    let sb = logged_in_as("chat-poll-failed", d);
    sb.fake.push_fault(
        "chat",
        json!({"type": "chat_failed", "code": 5000, "msg": "event interval error"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "answers", "--no-stream", "hi"]), "");
    r.expect_code(1);
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["content"], "", "{a}");
    if sb.studio() {
        // Studio's failed chat has no last_error: the failure has no code or reason.
        assert_eq!(a["error"]["code"], 0, "{a}");
        assert!(
            r.stderr.contains("the chat failed: the chat failed"),
            "{}",
            r.describe()
        );
    } else {
        assert_eq!(a["error"]["code"], 5000, "{a}");
        assert!(
            r.stderr.contains("code 5000: event interval error"),
            "{}",
            r.describe()
        );
    }
}

fn a_malformed_event_is_kept_in_events_mode_and_skipped_with_a_warning(d: Dialect) {
    let sb = logged_in_as("chat-malformed", d);
    sb.fake
        .push_fault("chat", json!({"type": "malformed", "after_events": 3}), 1);
    let r = run(chat(&sb).args(["-o", "events", "hi"]), "");
    r.ok();
    let recs = r.records();
    assert_eq!(delta_text(&recs), answer_text("hi"));
    assert!(
        recs.iter()
            .any(|r| r["event"] == DELTA && r["data"] == "{\"id\":"),
        "the malformed event must reach -o events as text\n{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("1 malformed event"), "{}", r.describe());
}

// ---------------------------------------------------------------- 2. broken and silent streams

/// A cut stream whose chat is gone by the time it is polled (tests/recovery.rs: one
/// that is not is followed to its end).
fn a_cut_stream_whose_chat_is_gone_exits_5_with_the_partial_answer_on_stdout(d: Dialect) {
    let sb = logged_in_as("chat-cut", d);
    let prompt = "切断 cut";
    let answer = answer_text(prompt);
    let gone = || {
        sb.fake.push_fault(
            "chat.retrieve",
            json!({"type": "api_error", "code": 4200, "msg": "chat not found"}),
            1,
        )
    };
    sb.fake
        .push_fault("chat", json!({"type": "cut", "after_events": 6}), 1);
    gone();
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.expect_code(5);
    assert_eq!(
        r.stdout,
        format!("{}\n", chars(&answer, 12)),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("cut after 6 events"), "{}", r.describe());

    sb.fake
        .push_fault("chat", json!({"type": "cut", "after_events": 4}), 1);
    gone();
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.expect_code(5);
    let recs = r.records();
    let expected = vec![
        "conversation.chat.created",
        "conversation.chat.in_progress",
        DELTA,
        DELTA,
    ];
    assert_eq!(names(&recs[..4]), expected, "{}", r.describe());
    assert_eq!(delta_text(&recs[..4]), chars(&answer, 6));
    assert_eq!(recs.len(), 5, "{}", r.describe());
    assert_eq!(recs[4]["type"], "error");
    assert_eq!(recs[4]["exit_code"], 5);
    assert_eq!(
        stat(&sb, "/requests/chat"),
        2,
        "a cut stream is not re-asked"
    );
}

fn a_reset_before_the_answer_is_retried_and_a_reset_mid_stream_is_not(d: Dialect) {
    let sb = logged_in_as("chat-reset", d);
    sb.fake.push_fault("chat", json!({"type": "reset"}), 1);
    let r = run(chat(&sb).args(["-o", "text", "hi"]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text("hi")));
    assert_eq!(stat(&sb, "/requests/chat"), 2);

    sb.fake.push_fault(
        "chat",
        json!({"type": "reset_mid_body", "after_events": 4}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "text", "hi"]), "");
    // Followed by polling instead (tests/recovery.rs): the whole answer, once.
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text("hi")),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/chat"), 3, "output began: no retry");
}

fn an_idle_stream_times_out_with_exit_5_and_keeps_the_partial_answer(d: Dialect) {
    let sb = logged_in_as("chat-idle", d);
    let prompt = "idle";
    sb.fake.push_fault(
        "chat",
        json!({"type": "stall", "after_events": 3, "ms": 4000}),
        1,
    );
    let start = Instant::now();
    let r = run(
        chat(&sb).args(["-o", "text", "--idle-timeout", "1", prompt]),
        "",
    );
    let took = start.elapsed();
    r.expect_code(5);
    assert!(took < Duration::from_millis(3500), "took {took:?}");
    assert_eq!(
        r.stdout,
        format!("{}\n", chars(&answer_text(prompt), 3)),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("timed out"), "{}", r.describe());
}

/// `--idle-timeout 0` is no idle limit (as curl reads 0), not an immediate failure.
#[test]
fn idle_timeout_0_waits_for_a_silent_server() {
    let sb = logged_in("chat-idle-0");
    sb.fake.push_fault(
        "chat",
        json!({"type": "stall", "after_events": 3, "ms": 1500}),
        1,
    );
    let r = run(
        chat(&sb).args([
            "-o",
            "text",
            "--idle-timeout",
            "0",
            "--connect-timeout",
            "0",
            "hi",
        ]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text("hi")),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------- 3. retries and waits

fn http_429_with_retry_after_is_waited_out(d: Dialect) {
    let sb = logged_in_as("chat-429", d);
    sb.fake.push_fault(
        "chat",
        json!({"type": "http", "status": 429, "retry_after": 1}),
        1,
    );
    let start = Instant::now();
    let r = run(chat(&sb).args(["-o", "text", "hi"]), "");
    r.ok();
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured ({:?})",
        start.elapsed()
    );
    assert_eq!(r.stdout, format!("{}\n", answer_text("hi")));
    assert_eq!(stat(&sb, "/requests/chat"), 2);
    assert_eq!(stat(&sb, "/chats"), 1);
}

#[test]
fn a_busy_conversation_4016_is_waited_out() {
    let sb = logged_in("chat-4016");
    sb.fake.push_fault(
        "chat",
        json!({"type": "api_error", "code": 4016, "msg": "A chat is already in progress"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "text", "hi"]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text("hi")));
    assert_eq!(stat(&sb, "/requests/chat"), 2);
}

fn http_500_is_retried(d: Dialect) {
    let sb = logged_in_as("chat-500", d);
    sb.fake
        .push_fault("chat", json!({"type": "http", "status": 500}), 1);
    let r = run(chat(&sb).args(["-o", "answers", "hi"]), "");
    r.ok();
    assert_completed(&r.records()[0], "hi");
    assert_eq!(stat(&sb, "/requests/chat"), 2);
    // Still refused after every retry: exit 1, and the retries are bounded.
    sb.fake
        .push_fault("chat", json!({"type": "http", "status": 500}), 10);
    let r = run(chat(&sb).args(["-o", "text", "--retries", "2", "hi"]), "");
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat"), 2 + 3);
}

// ---------------------------------------------------------------- 4. tokens

#[test]
fn a_token_the_server_expired_is_refreshed_once() {
    let sb = logged_in("chat-401");
    let before = read_token(&sb.token_path());
    let r = run(chat(&sb).args(["-o", "text", "first"]), "");
    r.ok();
    assert_eq!(stat(&sb, "/grants/refresh_token"), 0);
    // The file still says the token is good for minutes; the server disagrees.
    sb.fake.expire_tokens();
    let r = run(chat(&sb).args(["-o", "text", "second"]), "");
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text("second")),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1);
    assert_eq!(stat(&sb, "/requests/chat"), 3, "refused once, then retried");
    let after = read_token(&sb.token_path());
    assert_ne!(after["access_token"], before["access_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"]);
    // The next run uses the renewed token without refreshing again.
    let r = run(chat(&sb).args(["-o", "text", "third"]), "");
    r.ok();
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1);
}

#[test]
fn a_token_expired_between_two_prompts_of_one_run_is_refreshed_once() {
    let sb = logged_in("chat-401-mid-run");
    // The first answer holds after its first delta: time to expire every token.
    sb.fake.set_bot(json!({"first_delta_hold_ms": 1000}));
    let mut cmd = chat(&sb);
    cmd.args(["-o", "text"]);
    let (child, reader, what) = spawn_until_output(cmd, "one\ntwo\n");
    sb.fake.expire_tokens();
    let out = wait_with_deadline(child, Duration::from_secs(30), &what);
    let stdout = String::from_utf8(reader.join().unwrap()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    assert_eq!(
        stdout,
        format!("{}\n{}\n", answer_text("one"), answer_text("two"))
    );
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1, "{stderr}");
    assert_eq!(stat(&sb, "/requests/chat"), 3, "{stderr}");
    assert_eq!(stat(&sb, "/chats"), 2);
}

#[test]
fn an_expired_static_token_exits_4_without_refreshing() {
    let sb = Sandbox::new("chat-static-token");
    let r = run(
        chat(&sb)
            .env("COZE_API_TOKEN", "pat_not_known_to_the_fake")
            .args(["-o", "text", "hi"]),
        "",
    );
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("4100"), "{}", r.describe());
    assert!(
        !r.stderr.contains("pat_not_known"),
        "the token leaked: {}",
        r.stderr
    );
    assert_eq!(stat(&sb, "/token_requests"), 0);

    let sb = Sandbox::with_options(
        "chat-pat",
        Options {
            static_tokens: vec!["pat_e2e_static".into()],
            ..Options::default()
        },
    );
    let r = run(
        chat(&sb)
            .env("COZE_API_TOKEN", "pat_e2e_static")
            .args(["-o", "text", "hi"]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text("hi")));
}

#[test]
fn an_authentication_failure_stops_the_run_instead_of_failing_every_line() {
    let sb = Sandbox::new("chat-auth-stops");
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers"])
            .env("COZE_API_TOKEN", "pat_unknown_to_the_fake"),
        "one\ntwo\nthree\n",
    );
    r.expect_code(4);
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat"), 1, "{}", r.describe());
    assert!(r.stderr.contains("stopping"), "{}", r.describe());
}

// ---------------------------------------------------------------- 5. several prompts

fn a_failed_prompt_is_reported_and_the_next_ones_still_run(d: Dialect) {
    let sb = logged_in_as("chat-several", d);
    // Prompt 1: stream cut and its chat gone (exit 5); prompt 2: API error (exit 1);
    // prompt 3: fine.
    sb.fake
        .push_fault("chat", json!({"type": "cut", "after_events": 3}), 1);
    sb.fake.push_fault(
        "chat.retrieve",
        json!({"type": "api_error", "code": 4200, "msg": "chat not found"}),
        1,
    );
    sb.fake.push_fault(
        "chat",
        json!({"type": "json_body", "code": 4000, "msg": "bad"}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "answers"]), "one\ntwo\nthree\n");
    r.expect_code(5);
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    assert_eq!(recs[0]["prompt"], "one");
    assert_eq!(recs[0]["status"], "failed");
    assert_eq!(recs[0]["error"]["exit_code"], 5);
    assert_eq!(recs[0]["content"], chars(&answer_text("one"), 3));
    assert_eq!(recs[1]["prompt"], "two");
    assert_eq!(recs[1]["status"], "failed");
    assert_eq!(recs[1]["error"]["exit_code"], 1);
    assert_eq!(recs[1]["error"]["code"], 4000);
    assert_completed(&recs[2], "three");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.describe());
    assert!(lines[0].contains("prompt on line 1"), "{}", r.describe());
    assert!(lines[1].contains("prompt on line 2"), "{}", r.describe());
    assert!(lines[1].contains("code 4000: bad"), "{}", r.describe());
}

both_dialects!(
    a_json_error_body_instead_of_a_stream_is_one_line_and_exit_1,
    an_error_event_exits_by_its_code_and_keeps_the_partial_answer,
    a_failed_chat_without_streaming_exits_1_too,
    a_malformed_event_is_kept_in_events_mode_and_skipped_with_a_warning,
    a_cut_stream_whose_chat_is_gone_exits_5_with_the_partial_answer_on_stdout,
    a_reset_before_the_answer_is_retried_and_a_reset_mid_stream_is_not,
    an_idle_stream_times_out_with_exit_5_and_keeps_the_partial_answer,
    http_429_with_retry_after_is_waited_out,
    http_500_is_retried,
    a_failed_prompt_is_reported_and_the_next_ones_still_run,
);
