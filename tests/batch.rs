//! coze-chat as a batch runner: --jobs, --rate, --resume/--append, --ordered, the
//! summary and the exit status, against a fake that fails some requests on purpose.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;
/// `n` prompt records with ids `q0..`, plus extra fields from `extra(i)`.
fn prompts(n: usize, extra: impl Fn(usize) -> Value) -> String {
    (0..n)
        .map(|i| {
            let mut p =
                json!({"type":"prompt","id":format!("q{i}"),"content":format!("问题 {i} 🙂")});
            if let Value::Object(e) = extra(i) {
                p.as_object_mut().unwrap().extend(e);
            }
            format!("{p}\n")
        })
        .collect()
}

fn fault(sb: &Sandbox, endpoint: &str, fault: Value, probability: Option<f64>, count: Option<u64>) {
    let mut body = json!({"endpoint": endpoint, "fault": fault, "seed": 42});
    if let Some(p) = probability {
        body["probability"] = p.into();
    }
    if let Some(c) = count {
        body["count"] = c.into();
    }
    sb.admin_post("/_fake/fault", &body);
}

/// Each answer record by id; panics on a duplicate.
fn by_id(records: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for r in records.iter().filter(|r| r["type"] == "answer") {
        let id = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {r}"))
            .to_owned();
        assert!(
            map.insert(id.clone(), r.clone()).is_none(),
            "{id} answered twice"
        );
    }
    map
}

/// A conversation of bot 7, made over the harness's own HTTP.
fn new_conversation(sb: &Sandbox) -> String {
    let v = api(
        sb,
        "POST",
        "/v1/conversation/create",
        Some(json!({"bot_id":"7"})),
    );
    v["data"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_thousand_prompts_on_eight_jobs_through_faults_and_a_rate_limit() {
    let sb = logged_in("batch-1000");
    let shared = new_conversation(&sb);
    // 5 % of chats answer 500, 2 % answer 429, and one burst of five 4016s.
    fault(
        &sb,
        "chat",
        json!({"type":"http","status":500}),
        Some(0.05),
        None,
    );
    fault(
        &sb,
        "chat",
        json!({"type":"http","status":429}),
        Some(0.02),
        None,
    );
    fault(
        &sb,
        "chat",
        json!({"type":"api_error","code":4016,"msg":"conversation busy"}),
        None,
        Some(5),
    );
    // Every 20th prompt goes to one shared conversation: those must never overlap.
    let input = prompts(1000, |i| {
        if i % 20 == 0 {
            json!({"conversation_id": shared})
        } else {
            json!({})
        }
    });
    let rate = 250.0;
    let started = Instant::now();
    let r = run_deadline(
        sb.cmd("coze-chat").args([
            "--bot",
            "7",
            "-o",
            "answers",
            "--jobs",
            "8",
            "--rate",
            "250",
            "--retries",
            "8",
        ]),
        &input,
        Duration::from_secs(180),
    );
    let wall = started.elapsed();
    r.ok();
    let answers = by_id(&r.records());
    assert_eq!(answers.len(), 1000, "every id answered exactly once");
    for i in 0..1000 {
        let a = &answers[&format!("q{i}")];
        assert_eq!(a["status"], "completed", "{a}");
        assert_eq!(
            a["content"],
            coze_fake::answer_text(&format!("问题 {i} 🙂"))
        );
        if i % 20 == 0 {
            assert_eq!(a["conversation_id"], shared.as_str());
        }
    }
    // A prompt that names no conversation gets one of its own.
    let mut others: Vec<&str> = (0..1000)
        .filter(|i| i % 20 != 0)
        .map(|i| {
            answers[&format!("q{i}")]["conversation_id"]
                .as_str()
                .unwrap()
        })
        .collect();
    others.sort_unstable();
    others.dedup();
    assert_eq!(others.len(), 950, "unnamed prompts shared a conversation");
    assert!(!others.contains(&shared.as_str()));
    let stats = sb.stats();
    assert_eq!(stats["max_chats_in_flight_per_conversation"], 1, "{stats}");
    assert_eq!(stats["busy_refusals"], 0, "{stats}");
    assert!(
        stats["faults_fired"].as_u64().unwrap() >= 50,
        "the faults really fired: {stats}"
    );
    // The rate held: no one-second window saw more than the rate (plus one for edges).
    let times: Vec<f64> = sb
        .fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "chat")
        .map(|e| e["t_ms"].as_f64().unwrap())
        .collect();
    let mut worst = 0;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000.0).count();
        worst = worst.max(in_window);
    }
    assert!(
        worst as f64 <= rate + 1.0,
        "{worst} chat requests in one second at --rate {rate}"
    );
    // The summary on stderr counts it all.
    let summary: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["completed"], 1000);
    assert_eq!(summary["failed"], 0);
    assert!(summary["retries"].as_u64().unwrap() >= 50, "{summary}");
    // Tokens are the answers' own usage, summed; the wall time is this run's.
    let tokens: u64 = answers
        .values()
        .map(|a| a["usage"]["token_count"].as_u64().unwrap())
        .sum();
    assert!(tokens > 0);
    assert_eq!(summary["tokens"], tokens, "{summary}");
    let wall_ms = summary["wall_ms"].as_u64().unwrap() as u128;
    assert!(wall_ms > 0 && wall_ms <= wall.as_millis(), "{summary}");
    eprintln!(
        "1000 prompts, 8 jobs, rate {rate}/s: {:.1} s, {} chat requests, busiest second {worst}, {} retries",
        wall.as_secs_f64(),
        times.len(),
        summary["retries"]
    );
}

#[test]
fn a_run_killed_halfway_resumes_with_every_id_exactly_once() {
    let sb = logged_in("batch-resume");
    let file = sb.path("answers.jsonl");
    let input = prompts(120, |_| json!({}));
    sb.fake.set_bot(json!({"delta_delay_ms": 15}));
    let args = [
        "--bot",
        "7",
        "-o",
        "answers",
        "--jobs",
        "4",
        "--resume",
        "answers.jsonl",
        "--append",
    ];
    let mut child = sb
        .cmd("coze-chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let input = input.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(&file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 30 {
            break;
        }
        assert!(Instant::now() < deadline, "the first run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, halfway
    child.wait().unwrap();
    let before = std::fs::read_to_string(&file).unwrap();
    let done_before = before
        .lines()
        .filter(|l| l.contains("\"completed\""))
        .count();
    assert!(
        (30..120).contains(&done_before),
        "killed halfway: {done_before} done"
    );

    sb.fake.set_bot(json!({}));
    let r = run(sb.cmd("coze-chat").args(args), &input);
    r.ok();
    assert!(
        r.stdout.is_empty(),
        "--append writes to the file, not stdout"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let answers = by_id(&records);
    assert_eq!(answers.len(), 120);
    assert!(answers.values().all(|a| a["status"] == "completed"));
    let summary: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["skipped"].as_u64().unwrap() as usize,
        done_before,
        "{summary}"
    );
    assert_eq!(
        summary["completed"].as_u64().unwrap() as usize,
        120 - done_before,
        "{summary}"
    );
    // A third run has nothing left to do.
    let r = run(sb.cmd("coze-chat").args(args), &input);
    r.ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn plain_lines_resume_by_their_derived_id() {
    let sb = logged_in("batch-derived");
    let file = sb.path("a.jsonl");
    let r = run(
        sb.cmd("coze-chat").args([
            "--bot", "7", "-o", "answers", "--resume", "a.jsonl", "--append",
        ]),
        "one\ntwo\n",
    );
    r.ok();
    let chats = sb.stats()["chats"].as_u64().unwrap();
    let r = run(
        sb.cmd("coze-chat").args([
            "--bot", "7", "-o", "answers", "--resume", "a.jsonl", "--append",
        ]),
        "one\ntwo\nthree\n",
    );
    r.ok();
    assert_eq!(
        sb.stats()["chats"].as_u64().unwrap(),
        chats + 1,
        "only the new line is asked"
    );
    let recs: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(by_id(&recs).len(), 3);
}

#[test]
fn ordered_keeps_input_order_and_unordered_loses_nothing() {
    let sb = logged_in("batch-ordered");
    // Later prompts answer faster: unordered output comes back shuffled.
    let input = prompts(24, |_| json!({}));
    sb.fake.set_bot(json!({"delta_delay_ms": 3}));
    let connections = stat(&sb, "/connections");
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "--jobs", "6", "--ordered"]),
        &input,
    );
    r.ok();
    let ids: Vec<String> = r
        .records()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..24).map(|i| format!("q{i}")).collect();
    assert_eq!(ids, expected);
    // Keep-alive for every job: at most a connection each, never one per chat.
    let opened = stat(&sb, "/connections") - connections;
    assert!(opened <= 6, "{opened} connections for 6 jobs");
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "events", "--jobs", "6"]),
        &input,
    );
    r.ok();
    // Events of different prompts interleave, but every line is whole and carries its id.
    let recs = r.records();
    let ids: HashSet<&str> = recs.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 24);
    assert_eq!(recs.iter().filter(|e| e["event"] == "done").count(), 24);
}

#[test]
fn one_conversation_is_never_asked_twice_at_once() {
    let sb = logged_in("batch-serial");
    let conv = new_conversation(&sb);
    sb.fake.set_bot(json!({"delta_delay_ms": 2}));
    let r = run(
        sb.cmd("coze-chat").args([
            "--bot",
            "7",
            "-o",
            "answers",
            "--jobs",
            "8",
            "--conversation",
            &conv,
        ]),
        &prompts(16, |_| json!({})),
    );
    r.ok();
    assert_eq!(by_id(&r.records()).len(), 16);
    let stats = sb.stats();
    assert_eq!(stats["max_chats_in_flight_per_conversation"], 1, "{stats}");
    assert_eq!(stats["busy_refusals"], 0, "{stats}");
    // And in input order: the conversation's questions are q0..q15 in turn.
    let r = run(
        sb.cmd("coze-conv")
            .args(["messages", &conv, "--order", "asc"]),
        "",
    );
    r.ok();
    let questions: Vec<String> = r
        .records()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..16).map(|i| format!("问题 {i} 🙂")).collect();
    assert_eq!(questions, expected);
}

#[test]
fn failures_are_counted_and_the_first_decides_the_exit_status() {
    let sb = logged_in("batch-failures");
    fault(
        &sb,
        "chat",
        json!({"type":"api_error","code":4000,"msg":"bad parameter"}),
        None,
        Some(3),
    );
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "--jobs", "3", "--summary"]),
        &prompts(10, |_| json!({})),
    );
    r.expect_code(1);
    let recs = r.records();
    let answers = by_id(&recs);
    assert_eq!(answers.len(), 10, "every prompt was tried");
    assert_eq!(
        answers.values().filter(|a| a["status"] == "failed").count(),
        3
    );
    let summary = recs.last().unwrap();
    assert_eq!(
        summary["type"], "summary",
        "--summary puts it last on stdout"
    );
    assert_eq!(summary["completed"], 7);
    assert_eq!(summary["failed"], 3);
    assert_eq!(summary["exit_code"], 1);
}

#[test]
fn batch_usage_errors() {
    let sb = logged_in("batch-usage");
    for args in [
        &["--jobs", "0"][..],
        &["--append"],
        &["--resume", "x.jsonl", "-o", "events"],
        &["--jobs", "2", "-o", "text"],
        &["--jobs", "2", "-o", "answers", "a prompt"],
        &["--rate", "0"],
    ] {
        let r = run(sb.cmd("coze-chat").args(["--bot", "7"]).args(args), "");
        r.expect_code(2);
    }
}
