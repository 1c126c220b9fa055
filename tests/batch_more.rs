//! More of coze-chat as a batch runner: a closed stdout under `--jobs` (every chat in
//! flight cancelled at once), the pool's back-off from 429s, two runs appending to one
//! answers file, and the summary's counts.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// A prompt whose answer is long: the fake's bot echoes it in 3-character deltas.
fn long_prompt(i: usize) -> String {
    format!("long {i} {}", "长".repeat(600))
}

/// `coze-chat ARGS < INPUT | head -1` through bash: coze-chat's exit status, the one
/// line head took, coze-chat's stderr, and how long the pipeline took.
fn head_1(sb: &Sandbox, args: &str, input: &str) -> (i32, String, String, Duration) {
    let file = sb.path("head-input.txt");
    std::fs::write(&file, input).unwrap();
    let script = format!(
        "'{}' --bot 7 {args} < '{}' 2>'{}' | head -1; echo \"coze-status=${{PIPESTATUS[0]}}\" >&2",
        bin("coze-chat").display(),
        file.display(),
        sb.path("head-stderr.txt").display(),
    );
    let start = Instant::now();
    let r = run(sb.cmd("bash").args(["-c", &script]), "");
    let took = start.elapsed();
    let status = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("coze-status="))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    let stderr = std::fs::read_to_string(sb.path("head-stderr.txt")).unwrap_or_default();
    (status, r.stdout, stderr, took)
}

/// `| head -1` on a run whose output is not written as it streams (answer records,
/// `--ordered`): once head has its line, every chat in flight is cancelled at once and
/// coze-chat ends, quietly, instead of running each chat (and the next ones) to its end.
#[test]
fn head_1_cancels_every_chat_in_flight_at_once() {
    // One short prompt first, then long ones: 200 deltas of 50 ms, 10 s each.
    let mut input = "short\n".to_owned();
    for i in 0..7 {
        input.push_str(&long_prompt(i));
        input.push('\n');
    }
    for args in [
        "--jobs 4 -o answers",
        "--jobs 4 -o events --ordered",
        "--jobs 4 -o events",
        "-o answers",
    ] {
        let sb = logged_in("batch-head");
        sb.fake.set_bot(json!({"delta_delay_ms": 50}));
        let (status, stdout, stderr, took) = head_1(&sb, args, &input);
        let stats = sb.stats();
        let said = format!("{args}: exit {status} after {took:?}\n{stdout}\n{stderr}\n{stats}");
        assert_eq!(status, 0, "{said}");
        assert_eq!(stderr, "", "{said}");
        let first: Value = serde_json::from_str(stdout.trim()).expect(&said);
        if args.contains("answers") {
            assert_eq!(first["prompt"], "short", "{said}");
            assert_eq!(first["status"], "completed", "{said}");
        } else {
            assert_eq!(first["event"], "conversation.chat.created", "{said}");
        }
        // Every chat but the short one was cancelled on the server, none left running
        // (unordered events: head's line may be any chat's first, and the short chat
        // may be over before its cancel).
        let chats = stats["chats"].as_u64().unwrap();
        let cancels = stats["cancels"].as_u64().unwrap();
        let unordered_events = args == "--jobs 4 -o events";
        assert!(chats >= 2, "{said}");
        if unordered_events {
            assert!(cancels + 1 >= chats, "{said}");
        } else {
            assert_eq!(cancels, chats - 1, "{said}");
        }
        // A long answer takes 10 s: it was not waited for.
        assert!(took < Duration::from_secs(8), "{said}");
    }
}

/// A job waiting for a busy conversation (up to --busy-wait) stops waiting when the
/// reader of stdout goes away.
#[test]
fn head_1_ends_a_wait_for_a_busy_conversation() {
    let sb = logged_in("batch-head-busy");
    let conv = crate::busy::new_conversation(&sb);
    let (mut holder, _rest) = crate::busy::hold_the_conversation(&sb, &conv, 20);
    sb.fake.set_bot(json!({"delta_delay_ms": 50}));
    let input = format!(
        "{}\n{}\n",
        json!({"type": "prompt", "id": "a", "content": "short"}),
        json!({"type": "prompt", "id": "b", "content": "waits", "conversation_id": conv}),
    );
    let (status, stdout, stderr, took) = head_1(&sb, "--jobs 2 -o answers --busy-wait 30", &input);
    let _ = holder.kill();
    let _ = holder.wait();
    let said = format!("exit {status} after {took:?}\n{stdout}\n{stderr}");
    assert_eq!(status, 0, "{said}");
    let first: Value = serde_json::from_str(stdout.trim()).expect(&said);
    assert_eq!(first["id"], "a", "{said}");
    // At most the line saying why it waited; no failure reported for the job.
    assert!(
        stderr
            .lines()
            .all(|l| l.contains("is busy with another chat: waiting up to 30 s")),
        "{said}"
    );
    assert!(took < Duration::from_secs(8), "{said}");
}
