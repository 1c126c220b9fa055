//! The example scripts in scripts/examples/, run as a user would run them (bash, the
//! tools on PATH) against coze-fake: the interactive chat loop, the cron batch with its
//! lock, and curl with the token from coze-token.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

const BOT: &str = "7000000000000000001";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts/examples")
        .join(name)
}

/// `bash SCRIPT ARGS...` with the tools under test first on PATH, logged in.
fn example(sb: &Sandbox, name: &str) -> Command {
    let bins = bin("coze-chat").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = sb.cmd("bash");
    c.arg(script(name))
        .env("PATH", path)
        .env("COZE_BOT_ID", BOT);
    c
}

/// The chats the fake saw, as (conversation_id) per chat.
fn chat_conversations(sb: &Sandbox) -> Vec<String> {
    let log = sb.admin_get("/_fake/log");
    log.as_array()
        .or_else(|| log["requests"].as_array())
        .expect("the fake's log is a list")
        .iter()
        .filter(|e| e["endpoint"] == "chat")
        .map(|e| e["conversation_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn chat_loop_answers_each_line_in_one_conversation() {
    let sb = Sandbox::new("example-chat-loop");
    sb.login();
    let r = run(
        &mut example(&sb, "chat-loop.sh"),
        "my name is Ada\n\n-what is my name?\n",
    );
    r.ok();
    // Two answers (the fake's bot echoes the prompt), the blank line skipped.
    assert!(
        r.stdout.contains("收到：「my name is Ada」"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("收到：「-what is my name?」"),
        "{}",
        r.describe()
    );
    assert_eq!(r.stdout.matches("收到：").count(), 2, "{}", r.describe());
    let convs = chat_conversations(&sb);
    assert_eq!(convs.len(), 2, "{convs:?}\n{}", r.describe());
    assert_eq!(convs[0], convs[1], "both chats in one conversation");
    assert!(
        r.stderr
            .contains(&format!("chat-loop: conversation {}", convs[0])),
        "{}",
        r.describe()
    );
    assert_eq!(
        sb.stats()["requests"]["conversation.create"],
        1,
        "{}",
        sb.stats()
    );
}

fn today(sb: &Sandbox) -> String {
    run(sb.cmd("date").arg("+%F"), "").stdout.trim().to_owned()
}

fn answers(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn cron_batch_writes_a_dated_file_of_answers_and_a_log() {
    let sb = Sandbox::new("example-cron");
    sb.login();
    let questions = sb.path("questions.txt");
    std::fs::write(&questions, "第一个问题\nsecond question\nthird\n").unwrap();
    let out = sb.path("out");
    let day = today(&sb);
    let r = run(example(&sb, "cron-batch.sh").arg(&questions).arg(&out), "");
    r.ok();
    assert!(
        r.stdout.is_empty() && r.stderr.is_empty(),
        "{}",
        r.describe()
    );
    let file = out.join(format!("answers-{day}.jsonl"));
    let recs = answers(&file);
    assert_eq!(recs.len(), 3, "{recs:?}");
    for (rec, q) in recs.iter().zip(["第一个问题", "second question", "third"]) {
        assert_eq!(rec["type"], "answer");
        assert_eq!(rec["prompt"], q);
        assert_eq!(rec["status"], "completed", "{rec}");
        assert!(rec["content"].as_str().unwrap().contains(q), "{rec}");
    }
    let log = std::fs::read_to_string(out.join("cron-batch.log")).unwrap();
    assert!(log.contains("start: 3 questions"), "{log}");
    assert!(
        log.contains("done: exit 0; 3 answered, 0 failed, 0 already done"),
        "{log}"
    );
}

#[test]
fn cron_batch_passes_on_coze_chats_exit_status() {
    // Not logged in: the first question fails with exit 4, which ends the run (every
    // later one would fail the same way), and the script passes the 4 on.
    let sb = Sandbox::new("example-cron-fail");
    let questions = sb.path("questions.txt");
    std::fs::write(&questions, "one\ntwo\n").unwrap();
    let out = sb.path("out");
    let r = run(example(&sb, "cron-batch.sh").arg(&questions).arg(&out), "");
    r.expect_code(4);
    let recs = answers(&out.join(format!("answers-{}.jsonl", today(&sb))));
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(recs.iter().all(|r| r["status"] == "failed"), "{recs:?}");
    let log = std::fs::read_to_string(out.join("cron-batch.log")).unwrap();
    assert!(log.contains("done: exit 4"), "{log}");
    // And a usage error is 2.
    run(&mut example(&sb, "cron-batch.sh"), "").expect_code(2);
}

#[test]
fn a_second_cron_batch_refuses_while_the_first_runs() {
    let sb = Sandbox::new("example-cron-lock");
    sb.login();
    // A slow bot: the first run holds the lock for a while.
    sb.admin_post("/_fake/bot", &json!({"delta_delay_ms": 150}));
    let questions = sb.path("questions.txt");
    std::fs::write(&questions, "slow one\nslow two\n").unwrap();
    let out = sb.path("out");
    let day = today(&sb);
    let file = out.join(format!("answers-{day}.jsonl"));
    let log = out.join("cron-batch.log");

    let mut first = example(&sb, "cron-batch.sh");
    first
        .arg(&questions)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{first:?}");
    let first = first.spawn().unwrap();
    // Wait until the first run has the lock and has begun.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("start:")) {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = std::fs::read(&file).unwrap_or_default();

    let second = run(example(&sb, "cron-batch.sh").arg(&questions).arg(&out), "");
    second.expect_code(75);
    assert!(
        second.stderr.starts_with("cron-batch: another run holds ")
            && second.stderr.contains("not starting"),
        "{}",
        second.describe()
    );
    assert_eq!(second.stderr.lines().count(), 1, "{}", second.describe());
    // The second run did not touch the answers file.
    assert_eq!(std::fs::read(&file).unwrap_or_default(), before);

    let out1 = wait_with_deadline(first, Duration::from_secs(30), &what);
    assert!(
        out1.status.success(),
        "{}",
        String::from_utf8_lossy(&out1.stderr)
    );
    // Only the first run's answers: one per question.
    let recs = answers(&file);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs.iter().all(|r| r["status"] == "completed"), "{recs:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.matches("start:").count(), 1, "{log}");
    assert!(log.contains("another run holds"), "{log}");
    // The lock is free again: a third run goes ahead, and finds nothing left to ask.
    sb.admin_post("/_fake/bot", &json!({}));
    run(example(&sb, "cron-batch.sh").arg(&questions).arg(&out), "").ok();
    assert_eq!(answers(&file).len(), 2);
    let log = std::fs::read_to_string(out.join("cron-batch.log")).unwrap();
    assert!(
        log.contains("done: exit 0; 0 answered, 0 failed, 2 already done"),
        "{log}"
    );
}

/// Under cron: PATH=/usr/bin:/bin, the tools installed in ~/.local/bin (where `make
/// install PREFIX=~/.local` puts them), and the job run twice on one day (after a
/// failure): the second run asks only what is not answered yet, so the day's file has
/// each question completed exactly once.
#[test]
fn cron_batch_twice_a_day_under_crons_path_answers_each_question_once() {
    let sb = Sandbox::new("example-cron-twice");
    sb.login();
    let local_bin = sb.dir.join(".local/bin");
    std::fs::create_dir_all(&local_bin).unwrap();
    for tool in ["coze-chat", "coze-token", "coze-conv"] {
        std::os::unix::fs::symlink(bin(tool), local_bin.join(tool)).unwrap();
    }
    let questions = sb.path("questions.txt");
    std::fs::write(&questions, "第一个问题\nsecond question\nthird\n").unwrap();
    let out = sb.path("out");
    let day = today(&sb);
    let file = out.join(format!("answers-{day}.jsonl"));
    let cron = |sb: &Sandbox| {
        let mut c = sb.cmd("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "{} {} {}",
                script("cron-batch.sh").display(),
                questions.display(),
                out.display()
            ))
            .env("PATH", "/usr/bin:/bin")
            .env("COZE_BOT_ID", BOT);
        c
    };
    // The first run: one question fails (the API refuses it once).
    sb.admin_post(
        "/_fake/fault",
        &json!({"endpoint": "chat", "fault": {"type": "api_error", "code": 4000, "msg": "bad parameter"}, "count": 1}),
    );
    let r = run(&mut cron(&sb), "");
    r.expect_code(1);
    let recs = answers(&file);
    assert_eq!(recs.len(), 3, "{recs:?}\n{}", r.describe());
    assert_eq!(
        recs.iter().filter(|r| r["status"] == "completed").count(),
        2,
        "{recs:?}"
    );
    // The second run the same day asks only the failed one.
    run(&mut cron(&sb), "").ok();
    let recs = answers(&file);
    let mut completed: Vec<&str> = recs
        .iter()
        .filter(|r| r["status"] == "completed")
        .map(|r| r["prompt"].as_str().unwrap())
        .collect();
    completed.sort_unstable();
    assert_eq!(
        completed,
        ["second question", "third", "第一个问题"],
        "{recs:?}"
    );
    assert_eq!(
        recs.len(),
        4,
        "the failed record, then its answer: {recs:?}"
    );
    assert_eq!(sb.stats()["chats"], 3, "{}", sb.stats());
    let log = std::fs::read_to_string(out.join("cron-batch.log")).unwrap();
    assert!(
        log.contains("done: exit 1; 2 answered, 1 failed, 0 already done"),
        "{log}"
    );
    assert!(
        log.contains("done: exit 0; 1 answered, 0 failed, 2 already done"),
        "{log}"
    );
    // A third run: nothing left to ask.
    run(&mut cron(&sb), "").ok();
    assert_eq!(answers(&file).len(), 4);
    assert_eq!(sb.stats()["chats"], 3);
}

#[test]
fn curl_with_token_prints_the_user() {
    let sb = Sandbox::new("example-curl");
    let token = sb.login();
    let r = run(&mut example(&sb, "curl-with-token.sh"), "");
    r.ok();
    let v: Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", r.describe()));
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["user_name"], "fake_user", "{v}");
    assert!(
        !r.stdout.contains(token["access_token"].as_str().unwrap()),
        "{}",
        r.describe()
    );
    // Without a login it stops at coze-token, with its exit status.
    let sb = Sandbox::new("example-curl-none");
    let r = run(&mut example(&sb, "curl-with-token.sh"), "");
    r.expect_code(4);
    assert_eq!(sb.stats()["requests"]["users.me"], Value::Null);
}

/// `make demo` (scripts/demo.sh): the whole pipeline offline, in seconds, leaving
/// nothing behind. The fake it starts shares our stderr, so the run only ends once
/// the fake is gone too; its temporary directory must be removed.
#[test]
fn the_demo_runs_offline_and_leaves_nothing_behind() {
    let sb = Sandbox::new("demo");
    let target = bin("coze-auth")
        .parent()
        .and_then(|debug| debug.parent())
        .unwrap()
        .to_path_buf();
    let r = run_deadline(
        sb.cmd("bash")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
            .env("CARGO_TARGET_DIR", &target),
        "",
        Duration::from_secs(60),
    );
    r.ok();
    // The chat in the conversation, then the answer records, then the user's side of
    // the conversation as the API lists it.
    for line in ["你好", "今天天气怎么样？", "谢谢！"] {
        assert!(
            r.stdout.contains(&coze_fake::answer_text(line)),
            "{}",
            r.describe()
        );
        assert!(r.stdout.lines().any(|l| l == line), "{}", r.describe());
    }
    let records: Vec<Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v.get("status").is_some())
        .collect();
    let (answers, runs): (Vec<&Value>, Vec<&Value>) =
        records.iter().partition(|v| v.get("prompt").is_some());
    assert_eq!(answers.len(), 3, "{}", r.describe());
    assert!(
        answers.iter().all(|v| v["status"] == "completed"),
        "{answers:?}"
    );
    // Two workflow runs echo their rows; the one that asked is answered by resume.
    assert_eq!(
        runs,
        [
            &json!({"status": "success", "output": {"output": {"city": "北京"}}}),
            &json!({"status": "success", "output": {"output": {"city": "上海"}}}),
            &json!({"status": "success", "output": {"output": {"order": "42"}, "answer": "Blue"}}),
        ],
        "{}",
        r.describe()
    );
    assert!(
        r.stdout
            .contains(r#"{"question":"Which colour?","options":["Red","Blue"]}"#),
        "{}",
        r.describe()
    );
    let tmp = r
        .stderr
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("demo: done; the fake stops and "))
        .and_then(|l| l.strip_suffix(" is removed"))
        .unwrap_or_else(|| panic!("no closing line\n{}", r.describe()));
    assert!(!std::path::Path::new(tmp).exists(), "{tmp} is still there");
}
