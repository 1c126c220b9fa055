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

/// The `summary` record, the last line of stderr.
fn summary(r: &Run) -> Value {
    let line = r.stderr.lines().last().unwrap_or_default();
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("no summary ({e})\n{}", r.describe()));
    assert_eq!(v["type"], "summary", "{}", r.describe());
    v
}

/// Sporadic 429s (2 % of chats, Retry-After: 1) on a 16-job batch: the pool pauses and
/// slows down once per slow-down, not once per 429 (when every 429 paused the pool and
/// halved its rate again, the run took 7.6 times as long). The times are printed, not
/// asserted: a loaded machine stretched the faulted run past a 3x bound once (CI,
/// 2026-12-03) while the pauses stayed few; the pause count is the behaviour.
#[test]
fn sporadic_429s_slow_the_pool_once_per_slow_down() {
    let sb = logged_in("batch-429s");
    // Each chat takes ~80 ms, so 16 jobs send about 200 chats a second.
    sb.fake.set_bot(json!({"latency_ms": 80}));
    let input: String = (0..1000)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type":"prompt","id":format!("q{i}"),"content":format!("q {i}")})
            )
        })
        .collect();
    let args = ["--bot", "7", "-o", "answers", "--jobs", "16"];
    let timed = |what: &str| {
        let start = Instant::now();
        let r = run_deadline(
            sb.cmd("coze-chat").args(args),
            &input,
            Duration::from_secs(120),
        );
        let took = start.elapsed();
        r.ok();
        let done = r
            .records()
            .iter()
            .filter(|a| a["status"] == "completed")
            .count();
        assert_eq!(done, 1000, "{what}: {}", r.describe());
        (took, summary(&r))
    };
    let (baseline, _) = timed("baseline");
    sb.admin_post(
        "/_fake/fault",
        &json!({"endpoint": "chat", "fault": {"type": "http", "status": 429, "retry_after": 1},
                "probability": 0.02, "seed": 7}),
    );
    let (faulted, s) = timed("with 429s");
    let refused = sb.stats()["faults_fired"].as_u64().unwrap();
    let ratio = faulted.as_secs_f64() / baseline.as_secs_f64();
    let pauses = s["rate_pauses"].as_u64().unwrap();
    eprintln!(
        "1000 chats on 16 jobs: {baseline:?} alone, {faulted:?} ({ratio:.1}x) with {refused} 429s, {pauses} pool pauses"
    );
    assert!(refused >= 10, "the faults fired: {refused}");
    assert_eq!(s["retries"], refused, "{s}");
    assert!(
        pauses >= 1 && pauses * 3 <= refused,
        "{pauses} pool pauses for {refused} 429s"
    );
}

/// Two overlapping `--resume FILE --append` runs on one file: the second refuses at once
/// (exit 8, naming the first), so no answer is appended twice; a later run resumes.
#[test]
fn a_second_run_appending_to_the_same_file_refuses() {
    let sb = logged_in("batch-append-lock");
    let file = sb.path("answers.jsonl");
    let input: String = (0..12)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type":"prompt","id":format!("q{i}"),"content":format!("问 {i}")})
            )
        })
        .collect();
    let args = |sb: &Sandbox| {
        let mut c = sb.cmd("coze-chat");
        c.args(["--bot", "7", "-o", "answers", "--jobs", "2", "--resume"])
            .arg(&file)
            .arg("--append");
        c
    };
    // The first run is slow: 12 answers of 20 deltas 50 ms apart, two at a time.
    sb.fake.set_bot(json!({"deltas": 20, "delta_delay_ms": 50}));
    let mut first = args(&sb);
    first
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut first = first.spawn().unwrap();
    {
        use std::io::Write;
        first
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(&sb, "/chats") == 0 {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run(&mut args(&sb), &input);
    second.expect_code(8);
    assert_eq!(second.stdout, "", "{}", second.describe());
    let lines: Vec<&str> = second.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", second.describe());
    assert!(
        lines[0].starts_with("coze-chat: --append: ")
            && lines[0].contains(&format!(
                "another coze-chat (pid {}) is appending to it; not starting",
                first.id()
            )),
        "{}",
        second.describe()
    );
    let out = wait_with_deadline(first, Duration::from_secs(60), "the first run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = |file: &std::path::Path| -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    };
    let mut want: Vec<String> = (0..12).map(|i| format!("q{i}")).collect();
    want.sort();
    assert_eq!(ids(&file), want, "every answer once");
    assert_eq!(stat(&sb, "/chats"), 12, "the second run asked nothing");
    // Later, the same command resumes: nothing left to ask, nothing appended.
    sb.fake.set_bot(json!({}));
    run(&mut args(&sb), &input).ok();
    assert_eq!(ids(&file), want);
    assert_eq!(stat(&sb, "/chats"), 12);
}

/// The summary's `by_status` counts every prompt asked by the status of its answer
/// record, `completed` too, so its counts add up to the prompts asked.
#[test]
fn the_summary_counts_every_status_completed_too() {
    let sb = logged_in("batch-by-status");
    sb.admin_post(
        "/_fake/fault",
        &json!({"endpoint": "chat", "fault": {"type": "api_error", "code": 4000, "msg": "bad parameter"}, "count": 3}),
    );
    let input: String = (0..10).map(|i| format!("question {i}\n")).collect();
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "--jobs", "3", "--summary"]),
        &input,
    );
    r.expect_code(1);
    let recs = r.records();
    let summary = recs.last().unwrap();
    assert_eq!(summary["type"], "summary", "{}", r.describe());
    assert_eq!(
        summary["by_status"],
        json!({"completed": 7, "failed": 3}),
        "{summary}"
    );
    assert_eq!(
        (&summary["completed"], &summary["failed"]),
        (&json!(7), &json!(3))
    );
    let by_record = recs
        .iter()
        .filter(|a| a["type"] == "answer" && a["status"] == "completed")
        .count();
    assert_eq!(by_record, 7);
}
