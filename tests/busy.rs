//! A conversation busy with another chat (4016): coze-chat waits for it, with its own
//! budget (`--busy-wait`, a time, not the `--retries` count) and one stderr line saying
//! why, then goes on or gives up with exit 1 naming the bound.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// A conversation of bot 7, made over the harness's own HTTP.
pub fn new_conversation(sb: &Sandbox) -> String {
    let v = api(
        sb,
        "POST",
        "/v1/conversation/create",
        Some(json!({"bot_id": "7"})),
    );
    v["data"]["id"].as_str().unwrap().to_owned()
}

/// A chat in `conv` that answers for about `secs` seconds, started and seen streaming
/// (its first event is out), so the conversation is busy from now on. The bot is fast
/// again for every later chat. Returns the process and a reader of the rest of its
/// stdout.
pub fn hold_the_conversation(sb: &Sandbox, conv: &str, secs: u64) -> (Child, JoinHandle<String>) {
    sb.fake
        .set_bot(json!({"deltas": secs * 20, "delta_delay_ms": 50}));
    let mut child = sb
        .cmd("coze-chat")
        .args(["--bot", "7", "--conversation", conv, "-o", "events", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.contains("conversation.chat.created"), "{first}");
    sb.fake.set_bot(json!({}));
    let rest = std::thread::spawn(move || {
        let mut s = first;
        let _ = out.read_to_string(&mut s);
        s
    });
    (child, rest)
}

/// The holding chat ran to its end, undisturbed.
fn finished_whole(child: Child, rest: JoinHandle<String>) {
    let out = wait_with_deadline(child, Duration::from_secs(60), "the holding chat");
    let events = rest.join().unwrap();
    assert!(out.status.success(), "{events}");
    assert!(
        events.contains("conversation.chat.completed"),
        "the holding chat did not complete: {events}"
    );
}

#[test]
fn a_second_chat_waits_while_another_holds_the_conversation() {
    let sb = logged_in("busy-wait-real");
    let conv = new_conversation(&sb);
    // 6 s: longer than the old wait inside --retries 4 (at most 3.75 s in all).
    let (holder, rest) = hold_the_conversation(&sb, &conv, 6);
    let started = Instant::now();
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "--conversation", &conv, "-o", "answers"])
            .arg("second"),
        "",
    );
    r.ok();
    let waited = started.elapsed();
    let answer = &r.records()[0];
    assert_eq!(answer["status"], "completed", "{}", r.describe());
    assert_eq!(answer["content"], coze_fake::answer_text("second"));
    assert_eq!(answer["conversation_id"], conv.as_str());
    // One line says why it waits, and nothing else.
    assert_eq!(
        r.stderr,
        format!(
            "coze-chat: conversation {conv} is busy with another chat: waiting up to 2 min (--busy-wait)\n"
        ),
        "{}",
        r.describe()
    );
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    finished_whole(holder, rest);
    let stats = sb.stats();
    // Refused while the other chat ran, accepted once it had ended.
    assert!(stats["busy_refusals"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["chats"], 2, "{stats}");
}

#[test]
fn busy_wait_1_gives_up_after_a_second_with_exit_1() {
    let sb = logged_in("busy-wait-1");
    let conv = new_conversation(&sb);
    let (holder, rest) = hold_the_conversation(&sb, &conv, 6);
    let before = stat(&sb, "/requests/chat");
    let started = Instant::now();
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "--conversation", &conv, "-o", "events"])
            .args(["--busy-wait", "1", "second"]),
        "",
    );
    let took = started.elapsed();
    r.expect_code(1);
    // Asked at once and once more after a second: the other chat still runs.
    assert_eq!(stat(&sb, "/requests/chat") - before, 2, "{}", r.describe());
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.describe());
    assert_eq!(
        lines[0],
        format!(
            "coze-chat: conversation {conv} is busy with another chat: waiting up to 1 s (--busy-wait)"
        )
    );
    assert!(
        lines[1].starts_with("coze-chat: ")
            && lines[1].contains(&format!(
                "conversation {conv} was still busy with another chat after 1 s (--busy-wait)"
            ))
            && lines[1].contains("code 4016")
            && lines[1].contains("(logid "),
        "{}",
        r.describe()
    );
    let records = r.records();
    assert_eq!(records.len(), 1, "{}", r.describe());
    // The tool's own failure: a record, not an event.
    assert_eq!(records[0]["type"], "error");
    assert_eq!(records[0]["code"], 4016);
    assert_eq!(records[0]["exit_code"], 1);
    finished_whole(holder, rest);
}

/// 4016 is not a transient failure of the server: waiting for it does not spend the
/// `--retries` budget, and `--busy-wait 0` does not wait at all.
#[test]
fn busy_waits_do_not_spend_the_retries() {
    let sb = logged_in("busy-wait-retries");
    let conv = new_conversation(&sb);
    let busy = json!({"type": "api_error", "code": 4016, "msg": "A chat is already in progress"});
    sb.fake.push_fault("chat", busy.clone(), 2);
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "--conversation", &conv, "-o", "answers"])
            .args(["--retries", "0", "hi"]),
        "",
    );
    r.ok();
    assert_eq!(r.records()[0]["content"], coze_fake::answer_text("hi"));
    assert_eq!(
        r.stderr,
        format!(
            "coze-chat: conversation {conv} is busy with another chat: waiting up to 2 min (--busy-wait)\n"
        )
    );
    assert_eq!(stat(&sb, "/requests/chat"), 3);

    sb.fake.push_fault("chat", busy, 1);
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "--conversation", &conv, "-o", "answers"])
            .args(["--busy-wait", "0", "hi"]),
        "",
    );
    r.expect_code(1);
    assert_eq!(stat(&sb, "/requests/chat"), 4, "asked once");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.describe());
    assert!(
        lines[0].contains(&format!(
            "conversation {conv} is busy with another chat (--busy-wait 0: not waiting)"
        )),
        "{}",
        r.describe()
    );
    let answer: &Value = &r.records()[0];
    assert_eq!(answer["status"], "failed");
    assert_eq!(answer["error"]["code"], 4016);
    // A bound that is not a number of seconds is a usage error.
    run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "--busy-wait", "soon", "hi"]),
        "",
    )
    .expect_code(2);
}
