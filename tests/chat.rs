//! coze-chat end to end: the real binary against coze-fake. Output modes and input
//! shapes, conversations, UTF-8 across deltas and TCP writes, SSE wire styles and what
//! a request carries, bad stdin lines, `--no-stream`, and usage errors. The helpers
//! here (`chat`, `delta_text`, `assert_completed`, …) serve every chat file:
//! tests/chat_failures.rs (failure shapes, retries, tokens) and tests/chat_signals.rs
//! (Ctrl-C, SIGTERM, SIGHUP, `| head -1`) import them from here.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use coze_fake::{answer_text, follow_ups};
use serde_json::{json, Value};

use crate::both_dialects;
use crate::util::*;

pub(crate) const DELTA: &str = "conversation.message.delta";
pub(crate) const COMPLETED: &str = "conversation.message.completed";

/// `coze-chat --bot 7` in the sandbox.
pub(crate) fn chat(sb: &Sandbox) -> Command {
    let mut c = sb.cmd("coze-chat");
    c.args(["--bot", "7"]);
    c
}

/// The first `n` characters of `s`.
pub(crate) fn chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// What text mode prints on stderr after an answer: the follow-ups.
fn follow_up_lines(prompt: &str) -> String {
    follow_ups(prompt)
        .iter()
        .map(|f| format!("  › {f}\n"))
        .collect()
}

/// The event names of `-o events` output.
pub(crate) fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["event"]
                .as_str()
                .expect("every line has an event")
                .to_owned()
        })
        .collect()
}

/// The answer as the deltas of `-o events` output carry it.
pub(crate) fn delta_text(records: &[Value]) -> String {
    records
        .iter()
        .filter(|r| r["event"] == DELTA && r["data"]["type"] == "answer")
        .map(|r| r["data"]["content"].as_str().unwrap_or_default())
        .collect()
}

/// The user questions stored in a conversation, oldest first.
fn questions(sb: &Sandbox, conversation_id: &str) -> Vec<String> {
    // Studio ignores `order` and lists newest first.
    let studio = sb.studio();
    let v = api(
        sb,
        "POST",
        &format!("/v1/conversation/message/list?conversation_id={conversation_id}"),
        Some(json!({"order": "asc", "limit": 50})),
    );
    let mut asked: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user" && m["type"] == "question")
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    if studio {
        asked.reverse();
    }
    asked
}

/// The ids of the fake's conversations of bot 7.
fn conversations_of_bot_7(sb: &Sandbox) -> Vec<String> {
    let v = api(
        sb,
        "GET",
        "/v1/conversations?bot_id=7&page_num=1&page_size=50",
        None,
    );
    v["data"]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts an `answer` record for a prompt that completed.
pub(crate) fn assert_completed(r: &Value, prompt: &str) {
    assert_eq!(r["type"], "answer", "{r}");
    assert_eq!(r["prompt"], prompt, "{r}");
    assert_eq!(r["content"], answer_text(prompt), "{r}");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["error"], Value::Null, "{r}");
    assert_eq!(r["follow_ups"], json!(follow_ups(prompt)), "{r}");
    assert_eq!(r["bot_id"], "7", "{r}");
    for k in ["conversation_id", "chat_id"] {
        assert!(
            r[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} missing: {r}"
        );
    }
}

/// How the fake's stream ends: coze.cn's `done` with `"[DONE]"`, a self-hosted Coze
/// Studio's `conversation.stream.done` with an empty data line (which `-o events`
/// passes on as the empty string it is).
fn stream_end(sb: &Sandbox) -> (&'static str, Value) {
    if sb.studio() {
        ("conversation.stream.done", json!(""))
    } else {
        ("done", json!("[DONE]"))
    }
}

/// The usage the fake reports for a completed echo answer.
fn usage_for(prompt: &str) -> Value {
    let input = prompt.chars().count() as u64 + 12;
    let output = answer_text(prompt).chars().count() as u64;
    json!({"token_count": input + output, "output_count": output, "input_count": input})
}

/// Spawns `cmd` with `stdin`, returns the child once its stdout has shown a first byte,
/// with a thread collecting the rest of stdout.
pub(crate) fn spawn_until_output(
    mut cmd: Command,
    stdin: &str,
) -> (
    std::process::Child,
    std::thread::JoinHandle<Vec<u8>>,
    String,
) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap();
    let mut sin = child.stdin.take().unwrap();
    let input = stdin.to_owned();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = sin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            if all.is_empty() {
                let _ = tx.send(());
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("no output within 30 s: {what}");
    }
    (child, reader, what)
}

// ---------------------------------------------------------------- 1. output modes

fn text_mode_prints_the_answer_and_the_follow_ups_on_stderr(d: Dialect) {
    let sb = logged_in_as("chat-text", d);
    let prompt = "你好，coze";
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text(prompt)),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr, follow_up_lines(prompt), "{}", r.describe());
    assert_eq!(stat(&sb, "/chats"), 1);
}

fn events_mode_is_lossless_and_in_the_real_order(d: Dialect) {
    let sb = logged_in_as("chat-events", d);
    let prompt = "事件 events 🎉";
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let recs = r.records();
    let answer = answer_text(prompt);
    let n_deltas = answer.chars().count().div_ceil(3);
    let mut expected = vec![
        "conversation.chat.created".to_owned(),
        "conversation.chat.in_progress".to_owned(),
    ];
    expected.extend(std::iter::repeat_n(DELTA.to_owned(), n_deltas));
    expected.extend(std::iter::repeat_n(COMPLETED.to_owned(), 5));
    expected.push("conversation.chat.completed".into());
    expected.push(stream_end(&sb).0.into());
    assert_eq!(names(&recs), expected, "{}", r.describe());
    assert_eq!(delta_text(&recs), answer);
    // Every line is exactly {event, data}: nothing added, nothing dropped.
    for rec in &recs {
        assert_eq!(keys(rec), ["event", "data"], "{rec}");
    }
    let completed: Vec<&Value> = recs.iter().filter(|r| r["event"] == COMPLETED).collect();
    let types: Vec<&str> = completed
        .iter()
        .map(|r| r["data"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["answer", "verbose", "follow_up", "follow_up", "follow_up"]
    );
    assert_eq!(completed[0]["data"]["content"], answer);
    let fups: Vec<&Value> = completed[2..]
        .iter()
        .map(|r| &r["data"]["content"])
        .collect();
    assert_eq!(json!(fups), json!(follow_ups(prompt)));
    // The message fields survive: ids, role, content_type, the chat's ids on each delta.
    let chat_id = recs[0]["data"]["id"].as_str().unwrap();
    let conv_id = recs[0]["data"]["conversation_id"].as_str().unwrap();
    for d in recs.iter().filter(|r| r["event"] == DELTA) {
        assert_eq!(d["data"]["role"], "assistant");
        assert_eq!(d["data"]["content_type"], "text");
        assert_eq!(d["data"]["chat_id"], chat_id);
        assert_eq!(d["data"]["conversation_id"], conv_id);
        assert_eq!(d["data"]["id"], completed[0]["data"]["id"]);
    }
    let last = &recs[recs.len() - 2]["data"];
    assert_eq!(last["status"], "completed");
    if !sb.studio() {
        // Studio's stream events carry no usage (its buildARSM2ApiChatMessage).
        assert_eq!(last["usage"], usage_for(prompt));
    }
    assert_eq!(recs.last().unwrap()["data"], stream_end(&sb).1);
}

fn answers_mode_writes_one_record(d: Dialect) {
    let sb = logged_in_as("chat-answers", d);
    let prompt = "answers 模式";
    let r = run(chat(&sb).args(["-o", "answers", prompt]), "");
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    let a = &recs[0];
    assert_completed(a, prompt);
    if !sb.studio() {
        assert_eq!(a["usage"], usage_for(prompt));
    }
    assert_eq!(a["reasoning_content"], "");
    // Without an id of its own, an answer gets one derived from the prompt's content
    // (sha256: + 16 hex digits), the same in every run, so --resume can find it.
    let id = a["id"]
        .as_str()
        .unwrap_or_else(|| panic!("answers always carry an id: {a}"));
    assert!(id.starts_with("sha256:") && id.len() == 23, "{id}");
    let again = run(chat(&sb).args(["-o", "answers", prompt]), "");
    assert_eq!(again.records()[0]["id"], a["id"]);
    // The ids are the chat the fake really ran.
    let log = sb.fake.log();
    let chat_req = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == "chat")
        .unwrap();
    assert_eq!(chat_req["conversation_id"], a["conversation_id"]);
}

fn the_default_mode_is_events_when_stdout_is_not_a_terminal(d: Dialect) {
    let sb = logged_in_as("chat-default-mode", d);
    let r = run(chat(&sb).arg("hi"), "");
    r.ok();
    let recs = r.records();
    assert_eq!(
        recs[0]["event"],
        "conversation.chat.created",
        "{}",
        r.describe()
    );
    assert_eq!(recs.last().unwrap()["event"], stream_end(&sb).0);
    assert_eq!(delta_text(&recs), answer_text("hi"));
}

fn reasoning_goes_to_stderr_in_text_mode_and_into_the_answer_record(d: Dialect) {
    let sb = logged_in_as("chat-reasoning", d);
    sb.fake.set_bot(json!({"reasoning": true}));
    let reasoning = "让我想想……这个问题很简单。";
    let r = run(chat(&sb).args(["-o", "text", "想一想"]), "");
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text("想一想")),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains(reasoning), "{}", r.describe());
    let r = run(chat(&sb).args(["-o", "answers", "想一想"]), "");
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["reasoning_content"], reasoning);
    assert_eq!(a["content"], answer_text("想一想"));
}

// ---------------------------------------------------------------- 2. input shapes

fn dash_reads_all_of_stdin_as_one_prompt(d: Dialect) {
    let sb = logged_in_as("chat-dash", d);
    let r = run(
        chat(&sb).args(["-o", "text", "-"]),
        "first line\nsecond line\n\n",
    );
    r.ok();
    let prompt = "first line\nsecond line";
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text(prompt)),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/chats"), 1);
    let r = run(chat(&sb).args(["-o", "text", "-"]), "\n  \n");
    r.expect_code(3);
    assert_eq!(stat(&sb, "/chats"), 1, "an empty stdin asks nothing");
}

fn every_stdin_line_is_one_prompt(d: Dialect) {
    let sb = logged_in_as("chat-lines", d);
    let r = run(chat(&sb).args(["-o", "text"]), "first\n\nsecond 第二\n");
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n{}\n", answer_text("first"), answer_text("second 第二")),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.stderr,
        follow_up_lines("first") + &follow_up_lines("second 第二")
    );
    assert_eq!(stat(&sb, "/chats"), 2);
}

fn a_bad_stdin_line_stops_the_run_unless_keep_going(d: Dialect) {
    let sb = logged_in_as("chat-bad-line", d);
    let input = "first\n{\"type\":\"prompt\",\"content\":\n third\n";
    let r = run(chat(&sb).args(["-o", "text"]), input);
    r.expect_code(3);
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text("first")),
        "{}",
        r.describe()
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("coze-chat: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.describe());
    assert!(errors[0].contains("line 2"), "{}", r.describe());
    assert_eq!(
        stat(&sb, "/chats"),
        1,
        "lines after the bad one must not run"
    );

    let r = run(chat(&sb).args(["-o", "text", "--keep-going"]), input);
    r.expect_code(3);
    assert_eq!(
        r.stdout,
        format!("{}\n{}\n", answer_text("first"), answer_text(" third")),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/chats"), 3);

    // A record that is not for coze-chat is bad input too, named by its line.
    let r = run(
        chat(&sb).args(["-o", "text"]),
        "{\"type\":\"token\",\"access_token\":\"x\"}\nnext\n",
    );
    r.expect_code(3);
    assert!(r.stderr.contains("line 1"), "{}", r.describe());
    assert_eq!(stat(&sb, "/chats"), 3);
}

// ---------------------------------------------------------------- 3. conversations

fn a_multi_line_script_is_one_conversation(d: Dialect) {
    let sb = logged_in_as("chat-one-conv", d);
    let lines = ["one", "two", "three"];
    let r = run(
        chat(&sb).args(["-o", "answers"]),
        &(lines.join("\n") + "\n"),
    );
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    for (rec, p) in recs.iter().zip(lines) {
        assert_completed(rec, p);
    }
    let conv = recs[0]["conversation_id"].as_str().unwrap();
    assert!(
        recs.iter().all(|a| a["conversation_id"] == conv),
        "{}",
        r.stdout
    );
    let chat_ids: std::collections::BTreeSet<&str> = recs
        .iter()
        .map(|a| a["chat_id"].as_str().unwrap())
        .collect();
    assert_eq!(chat_ids.len(), 3, "one chat per prompt");
    assert_eq!(conversations_of_bot_7(&sb), [conv]);
    assert_eq!(questions(&sb, conv), lines);
}

fn new_each_gives_every_prompt_its_own_conversation(d: Dialect) {
    let sb = logged_in_as("chat-new-each", d);
    let r = run(
        chat(&sb).args(["-o", "answers", "--new-each"]),
        "one\ntwo\nthree\n",
    );
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    let convs: std::collections::BTreeSet<&str> = recs
        .iter()
        .map(|a| a["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(convs.len(), 3, "{}", r.stdout);
    assert_eq!(conversations_of_bot_7(&sb).len(), 3);
}

fn a_conversation_record_switches_the_conversation_for_the_lines_after_it(d: Dialect) {
    let sb = logged_in_as("chat-switch", d);
    let created = api(
        &sb,
        "POST",
        "/v1/conversation/create",
        Some(json!({"bot_id": "7"})),
    );
    let target = created["data"]["id"].as_str().unwrap().to_owned();
    // What `coze-conv create` prints, unknown fields and all.
    let record = json!({
        "type": "conversation", "conversation_id": target, "bot_id": "7",
        "created_at": created["data"]["created_at"], "meta_data": {},
        "last_section_id": created["data"]["last_section_id"], "name": "",
    });
    let input = format!("before\n{record}\nafter one\nafter two\n");
    let r = run(chat(&sb).args(["-o", "answers"]), &input);
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    assert_completed(&recs[0], "before");
    assert_ne!(recs[0]["conversation_id"], target.as_str());
    assert_eq!(recs[1]["conversation_id"], target.as_str(), "{}", r.stdout);
    assert_eq!(recs[2]["conversation_id"], target.as_str(), "{}", r.stdout);
    assert_eq!(questions(&sb, &target), ["after one", "after two"]);
    let first = recs[0]["conversation_id"].as_str().unwrap();
    assert_eq!(questions(&sb, first), ["before"]);
}

fn a_prompt_record_id_is_echoed_on_every_line_it_causes(d: Dialect) {
    let sb = logged_in_as("chat-prompt-id", d);
    let input = "{\"type\":\"prompt\",\"content\":\"带 id 的问题\",\"id\":\"q-1\"}\n";
    let r = run(chat(&sb).args(["-o", "events"]), input);
    r.ok();
    let recs = r.records();
    assert!(recs.len() > 5, "{}", r.describe());
    for rec in &recs {
        assert_eq!(rec["id"], "q-1", "{rec}");
    }
    assert_eq!(delta_text(&recs), answer_text("带 id 的问题"));

    let input = "{\"type\":\"prompt\",\"content\":\"a\",\"id\":\"q-1\"}\nplain\n{\"type\":\"prompt\",\"content\":\"c\",\"id\":{\"row\":3}}\n";
    let r = run(chat(&sb).args(["-o", "answers"]), input);
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    assert_eq!(recs[0]["id"], "q-1");
    assert!(
        recs[1]["id"].as_str().unwrap().starts_with("sha256:"),
        "{}",
        recs[1]
    );
    assert_eq!(recs[2]["id"], json!({"row": 3}));
    assert_completed(&recs[0], "a");
    assert_completed(&recs[1], "plain");
    assert_completed(&recs[2], "c");
}

// ---------------------------------------------------------------- 4. UTF-8

fn cjk_and_emoji_split_across_deltas_and_tcp_writes_arrive_intact(d: Dialect) {
    let sb = logged_in_as("chat-utf8", d);
    sb.fake.set_bot(json!({"style": {"split_writes": true}}));
    let prompt = "汉字かな한글🌏👨‍👩‍👧🇨🇳é";
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", answer_text(prompt)),
        "{}",
        r.describe()
    );
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    let recs = r.records();
    assert_eq!(delta_text(&recs), answer_text(prompt));
    assert!(
        recs.iter().filter(|r| r["event"] == DELTA).count() > 5,
        "the answer came in many deltas"
    );
}

fn a_long_answer_in_text_mode_is_exact(d: Dialect) {
    let sb = logged_in_as("chat-long", d);
    sb.fake.set_bot(json!({"deltas": 5000}));
    let r = run(chat(&sb).args(["-o", "text", "long"]), "");
    r.ok();
    let expected = "春夏秋冬".repeat(1250);
    assert_eq!(r.stdout.len(), expected.len() + 1, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{expected}\n"));
}

// ---------------------------------------------------------------- 5. SSE styles, request fields

fn every_wire_style_gives_the_identical_answer(d: Dialect) {
    let sb = logged_in_as("chat-styles", d);
    let prompt = "风格 style ✨";
    let reference = run(chat(&sb).args(["-o", "answers", prompt]), "");
    reference.ok();
    let reference = reference.records().remove(0);
    assert_completed(&reference, prompt);
    let styles = [
        json!({"space": true}),
        json!({"crlf": true}),
        json!({"multiline_data": true}),
        json!({"comments": true}),
        json!({"done": "bare"}),
        json!({"done": "quoted"}),
        json!({"space": true, "crlf": true, "multiline_data": true, "comments": true, "done": "bare"}),
    ];
    for style in styles {
        sb.fake.set_bot(json!({"style": style}));
        let r = run(chat(&sb).args(["-o", "answers", prompt]), "");
        r.ok();
        let a = r.records().remove(0);
        assert_completed(&a, prompt);
        for k in ["content", "follow_ups", "status", "usage", "error"] {
            assert_eq!(a[k], reference[k], "style {style}: {k}\n{}", r.describe());
        }
        assert!(r.stderr.is_empty(), "style {style}\n{}", r.describe());
        let r = run(chat(&sb).args(["-o", "events", prompt]), "");
        r.ok();
        let recs = r.records();
        assert_eq!(delta_text(&recs), answer_text(prompt), "style {style}");
        let done = recs.last().unwrap();
        let (end, end_data) = stream_end(&sb);
        assert_eq!(done["event"], end, "style {style}");
        // Studio always ends alike, whatever `done` style the fake was given.
        if !sb.studio() || !style.to_string().contains("done") {
            assert_eq!(done["data"], end_data, "style {style}");
        }
        assert_eq!(
            recs[0]["event"], "conversation.chat.created",
            "style {style}"
        );
        assert!(recs[0]["data"].is_object(), "style {style}: {}", recs[0]);
    }
}

/// `-o events` passes each event's data on as the server wrote it, not parsed and
/// written again: a server that escapes every non-ASCII character (as Python's
/// json.dumps does) gets its `\u` escapes back byte for byte, while text mode shows
/// the characters they stand for.
fn events_carry_the_servers_data_as_it_came(d: Dialect) {
    let sb = logged_in_as("chat-as-it-came", d);
    let prompt = "原样 as it came 🎉";
    sb.fake.set_bot(json!({"style": {"ascii": true}}));
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    let recs = r.records();
    assert_eq!(delta_text(&recs), answer_text(prompt), "{}", r.describe());
    assert!(
        r.stdout.is_ascii(),
        "the server sent only ASCII; the events were rewritten:\n{}",
        r.stdout.lines().find(|l| !l.is_ascii()).unwrap_or_default()
    );
    assert!(r.stdout.contains(r#"\ud83c\udf89"#), "{}", r.describe());
    let text = run(chat(&sb).args(["-o", "text", prompt]), "");
    text.ok();
    assert_eq!(text.stdout, format!("{}\n", answer_text(prompt)));
}

/// What goes on the wire, seen through the test proxy: `--user`, `--var` and `--meta`
/// reach the request body, `COZE_USER_ID` stands in for `--user`, without either the
/// user id is the profile's own, the same from run to run (kept beside the token), and
/// the user agent names the tools.
#[test]
fn user_variables_and_meta_data_reach_the_request() {
    let sb = logged_in("chat-wire");
    let proxy = crate::proxy::Proxy::start();
    let ask = |args: &[&str], user_env: Option<&str>| {
        let mut cmd = chat(&sb);
        cmd.env("HTTP_PROXY", &proxy.url).args(args);
        if let Some(u) = user_env {
            cmd.env("COZE_USER_ID", u);
        }
        run(&mut cmd, "").ok();
    };
    ask(
        &[
            "--user",
            "ada",
            "--var",
            "city=上海",
            "--meta",
            "k=v=w",
            "-o",
            "text",
            "hi",
        ],
        Some("ignored-for-the-flag"),
    );
    ask(&["-o", "text", "hi"], Some("bob"));
    ask(&["-o", "text", "hi"], None);
    ask(&["-o", "text", "hi"], None);
    let r = run(
        chat(&sb)
            .env("HTTP_PROXY", &proxy.url)
            .args(["-o", "text", "--profile", "other", "hi"]),
        "",
    );
    r.expect_code(4);
    let bodies = proxy.bodies("/v3/chat");
    assert_eq!(
        bodies.len(),
        4,
        "the other profile has no token: {bodies:?}"
    );
    assert_eq!(bodies[0]["user_id"], "ada");
    assert_eq!(bodies[0]["custom_variables"], json!({"city": "上海"}));
    assert_eq!(bodies[0]["meta_data"], json!({"k": "v=w"}));
    assert_eq!(bodies[1]["user_id"], "bob");
    assert!(bodies[1].get("custom_variables").is_none(), "{}", bodies[1]);
    let (a, b) = (&bodies[2]["user_id"], &bodies[3]["user_id"]);
    assert!(
        a.as_str().is_some_and(|s| s.starts_with("coze-tools-")),
        "{a}"
    );
    assert_eq!(a, b, "the same user from one run to the next");
    let kept = std::fs::read_to_string(sb.path("config/coze/user_id")).unwrap();
    assert_eq!(
        kept.trim(),
        a.as_str().unwrap(),
        "kept beside the default token"
    );
    let other = std::fs::read_to_string(sb.path("config/coze/profiles/other/user_id")).unwrap();
    assert_ne!(other.trim(), kept.trim(), "each profile is its own user");
    assert!(
        proxy
            .sent_text()
            .contains(&format!("coze-tools/{}", env!("CARGO_PKG_VERSION"))),
        "no user agent naming the tools"
    );
}

// ---------------------------------------------------------------- 6. --no-stream

fn no_stream_gives_the_same_answer_as_streaming(d: Dialect) {
    let sb = logged_in_as("chat-no-stream", d);
    let prompt = "轮询 poll 🐢";
    let streamed = run(chat(&sb).args(["-o", "answers", prompt]), "");
    streamed.ok();
    let polled = run(chat(&sb).args(["-o", "answers", "--no-stream", prompt]), "");
    polled.ok();
    let (s, p) = (&streamed.records()[0], &polled.records()[0]);
    assert_completed(p, prompt);
    for k in [
        "content",
        "follow_ups",
        "status",
        "usage",
        "error",
        "prompt",
    ] {
        // Studio's stream carries no usage; its retrieve does.
        if k == "usage" && sb.studio() {
            continue;
        }
        assert_eq!(s[k], p[k], "{k}\n{}", polled.describe());
    }
    assert_eq!(stat(&sb, "/requests/chat.message.list"), 1);

    let r = run(chat(&sb).args(["-o", "events", "--no-stream", prompt]), "");
    r.ok();
    let recs = r.records();
    let n = names(&recs);
    assert_eq!(
        n.first().map(String::as_str),
        Some("conversation.chat.created")
    );
    assert_eq!(
        &n[n.len() - 2..],
        ["conversation.chat.completed", "done"],
        "{}",
        r.describe()
    );
    assert_eq!(recs.last().unwrap()["data"], "[DONE]");
    let answer = recs
        .iter()
        .find(|r| r["event"] == COMPLETED && r["data"]["type"] == "answer")
        .unwrap_or_else(|| panic!("no answer message\n{}", r.describe()));
    assert_eq!(answer["data"]["content"], answer_text(prompt));

    let r = run(chat(&sb).args(["-o", "text", "--no-stream", prompt]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text(prompt)));
    assert_eq!(r.stderr, follow_up_lines(prompt));
}

#[test]
fn no_save_with_no_stream_is_a_usage_error() {
    let sb = logged_in("chat-no-save");
    let r = run(chat(&sb).args(["--no-save", "--no-stream", "hi"]), "");
    r.expect_code(2);
    assert!(r.stdout.is_empty());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("--no-save"), "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat"), 0);
    // --no-save alone streams and keeps nothing in the conversation.
    let r = run(chat(&sb).args(["-o", "answers", "--no-save", "hi"]), "");
    r.ok();
    let a = &r.records()[0];
    assert_completed(a, "hi");
    assert!(questions(&sb, a["conversation_id"].as_str().unwrap()).is_empty());
}

// ---------------------------------------------------------------- 7. usage errors

#[test]
fn no_bot_is_a_usage_error_naming_bot() {
    let sb = logged_in("chat-no-bot");
    let r = run(sb.cmd("coze-chat").arg("hi"), "");
    r.expect_code(2);
    assert!(r.stdout.is_empty());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("--bot"), "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat"), 0);
    // COZE_BOT_ID does instead.
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_BOT_ID", "7")
            .args(["-o", "text", "hi"]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text("hi")));
}

both_dialects!(
    text_mode_prints_the_answer_and_the_follow_ups_on_stderr,
    events_mode_is_lossless_and_in_the_real_order,
    answers_mode_writes_one_record,
    the_default_mode_is_events_when_stdout_is_not_a_terminal,
    reasoning_goes_to_stderr_in_text_mode_and_into_the_answer_record,
    dash_reads_all_of_stdin_as_one_prompt,
    every_stdin_line_is_one_prompt,
    a_bad_stdin_line_stops_the_run_unless_keep_going,
    a_multi_line_script_is_one_conversation,
    new_each_gives_every_prompt_its_own_conversation,
    a_conversation_record_switches_the_conversation_for_the_lines_after_it,
    a_prompt_record_id_is_echoed_on_every_line_it_causes,
    cjk_and_emoji_split_across_deltas_and_tcp_writes_arrive_intact,
    a_long_answer_in_text_mode_is_exact,
    every_wire_style_gives_the_identical_answer,
    events_carry_the_servers_data_as_it_came,
    no_stream_gives_the_same_answer_as_streaming,
);
