//! Never lose an answer: a chat whose stream breaks once the chat exists is followed to
//! its end by polling (every mode gets the whole answer, once), a stream whose last
//! event lacks its blank line still counts, and coze-chat's own failure reports carry
//! the server's code and logid in a record of their own (`"type":"error"`), never as
//! an event the server did not send.

use coze_fake::{answer_text, follow_ups};
use serde_json::{json, Value};

use crate::both_dialects;
use crate::chat::{chars, chat, delta_text};
use crate::util::*;

const DELTA: &str = "conversation.message.delta";
const COMPLETED: &str = "conversation.message.completed";
/// Events of the fake's answer to "hi": created, in_progress, 7 deltas, the answer,
/// verbose and 3 follow-up messages completed, chat.completed, then the end mark.
const CHAT_COMPLETED_AT: u64 = 15;

/// The event name of each `-o events` line; coze-chat's own records as `type:NAME`.
fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| match (r["event"].as_str(), r["type"].as_str()) {
            (Some(e), _) => e.to_owned(),
            (None, Some(t)) => format!("type:{t}"),
            _ => panic!("a line that is neither an event nor a record: {r}"),
        })
        .collect()
}

/// What text mode prints on stderr after an answer: the follow-ups.
fn follow_up_lines(prompt: &str) -> Vec<String> {
    follow_ups(prompt)
        .iter()
        .map(|f| format!("  › {f}"))
        .collect()
}

/// The `conversation.message.completed` events of a chat's polled rest: the answer,
/// verbose and 3 follow-ups; a self-hosted Coze Studio lists the user's query too.
fn polled_messages(sb: &Sandbox) -> usize {
    5 + usize::from(sb.studio())
}

/// The stderr lines that are not the follow-ups.
fn other_lines(r: &Run, prompt: &str) -> Vec<String> {
    let follow = follow_up_lines(prompt);
    r.stderr
        .lines()
        .filter(|l| !follow.iter().any(|f| f == l))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------- 1. a broken stream

/// A stream cut cleanly after 4 events (the chat's ids have come, and 2 deltas): the
/// chat goes on on the server, so every mode still gets the whole answer, exit 0,
/// with one warning line; nothing is asked twice and nothing is cancelled.
fn a_stream_cut_after_the_chat_exists_is_recovered_in_every_mode(d: Dialect) {
    let sb = logged_in_as("recover-cut", d);
    let prompt = "hi";
    let answer = answer_text(prompt);
    let cut = || {
        sb.fake
            .push_fault("chat", json!({"type": "cut", "after_events": 4}), 1)
    };

    cut();
    let r = run(chat(&sb).args(["-o", "answers", prompt]), "");
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["status"], "completed", "{}", r.describe());
    assert_eq!(a["content"], answer, "{}", r.describe());
    assert_eq!(
        a["follow_ups"],
        json!(follow_ups(prompt)),
        "{}",
        r.describe()
    );
    assert_eq!(a["error"], Value::Null);
    let warning = other_lines(&r, prompt);
    assert_eq!(warning.len(), 1, "{}", r.describe());
    assert!(
        warning[0].starts_with("coze-chat: warning: the answer stream was cut after 4 events")
            && warning[0].contains("recovered by polling"),
        "{}",
        r.describe()
    );

    // Text: the part the stream did not give, once; the follow-ups once.
    cut();
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{answer}\n"), "{}", r.describe());
    let follow: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("  › ")).collect();
    assert_eq!(follow, follow_up_lines(prompt), "{}", r.describe());

    // Events: the 4 streamed, then the recovered ones, marked as such.
    cut();
    let r = run(chat(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    let recs = r.records();
    let streamed = [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        DELTA,
        DELTA,
    ];
    assert_eq!(names(&recs[..4]), streamed, "{}", r.describe());
    assert!(recs[..4].iter().all(|e| e.get("recovered").is_none()));
    let recovered = &recs[4..];
    assert!(
        recovered.iter().all(|e| e["recovered"] == true),
        "every later event is marked\n{}",
        r.describe()
    );
    let mut want = vec![COMPLETED; polled_messages(&sb)];
    want.extend(["conversation.chat.completed", "done"]);
    assert_eq!(names(recovered), want, "{}", r.describe());
    let whole = recovered
        .iter()
        .find(|e| e["data"]["type"] == "answer")
        .unwrap_or_else(|| panic!("no answer message\n{}", r.describe()));
    assert_eq!(whole["data"]["content"], answer.as_str());
    assert_eq!(
        delta_text(&recs),
        chars(&answer, 6),
        "the deltas as streamed"
    );

    assert_eq!(
        stat(&sb, "/requests/chat"),
        3,
        "a chat is never asked twice"
    );
    assert_eq!(stat(&sb, "/requests/chat.message.list"), 3);
    assert_eq!(
        stat(&sb, "/cancels"),
        0,
        "a recovered chat is not cancelled"
    );
}

/// A connection reset in the middle of the answer, or after a message that had
/// completed: what was printed is not printed again, what was not is.
fn a_reset_mid_answer_prints_the_rest_once(d: Dialect) {
    let sb = logged_in_as("recover-reset", d);
    let prompt = "hi";
    let answer = answer_text(prompt);
    sb.fake.push_fault(
        "chat",
        json!({"type": "reset_mid_body", "after_events": 5}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "text", prompt]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{answer}\n"), "{}", r.describe());
    assert!(
        other_lines(&r, prompt)[0].contains("cut after 5 events"),
        "{}",
        r.describe()
    );

    // After the answer and the first follow-up completed (12 events).
    for mode in ["text", "events", "answers"] {
        sb.fake.push_fault(
            "chat",
            json!({"type": "reset_mid_body", "after_events": 12}),
            1,
        );
        let r = run(chat(&sb).args(["-o", mode, prompt]), "");
        r.ok();
        match mode {
            "text" => {
                assert_eq!(r.stdout, format!("{answer}\n"), "{}", r.describe());
                let follow: Vec<&str> =
                    r.stderr.lines().filter(|l| l.starts_with("  › ")).collect();
                assert_eq!(follow, follow_up_lines(prompt), "{}", r.describe());
            }
            "events" => {
                let recs = r.records();
                let mut ids: Vec<&str> = recs
                    .iter()
                    .filter(|e| e["event"] == COMPLETED)
                    .map(|e| e["data"]["id"].as_str().unwrap_or_default())
                    .collect();
                let n = polled_messages(&sb);
                assert_eq!(ids.len(), n, "{}", r.describe());
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), n, "no message twice\n{}", r.describe());
                let marked = recs.iter().filter(|e| e["recovered"] == true).count();
                assert_eq!(
                    marked,
                    n - 3 + 2,
                    "the messages not yet completed, chat.completed, done\n{}",
                    r.describe()
                );
            }
            _ => {
                let a = &r.records()[0];
                assert_eq!(a["content"], answer, "{}", r.describe());
                assert_eq!(
                    a["follow_ups"],
                    json!(follow_ups(prompt)),
                    "{}",
                    r.describe()
                );
            }
        }
    }
}

/// Only when the chat cannot be found afterwards is a broken stream a failure: exit 5,
/// the partial answer kept, one stderr line naming the cut and why following the chat
/// failed; the record carries that answer's code and logid, and the events mode ends
/// with coze-chat's own `error` record (a `type`, not an `event`).
fn a_broken_stream_whose_chat_cannot_be_found_exits_5(d: Dialect) {
    let sb = logged_in_as("recover-gone", d);
    let prompt = "hi";
    let answer = answer_text(prompt);
    let gone = || {
        sb.fake
            .push_fault("chat", json!({"type": "cut", "after_events": 4}), 1);
        sb.fake.push_fault(
            "chat.retrieve",
            json!({"type": "api_error", "code": 4200, "msg": "chat not found"}),
            1,
        );
    };

    gone();
    let r = run(chat(&sb).args(["-o", "answers", "-v", prompt]), "");
    r.expect_code(5);
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["content"], chars(&answer, 6), "{a}");
    let e = &a["error"];
    assert_eq!(e["exit_code"], 5, "{a}");
    assert_eq!(e["code"], 4200, "the code the message names\n{a}");
    let logid = e["logid"]
        .as_str()
        .unwrap_or_else(|| panic!("no logid: {a}"));
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("code 4200: chat not found (logid {logid})")),
        "{a}"
    );
    assert!(
        r.stderr.contains(&format!("< 200 logid={logid} ")),
        "the logid of the retrieve that answered\n{}",
        r.describe()
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("coze-chat: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.describe());
    assert!(
        errors[0].contains("cut after 4 events")
            && errors[0].contains("following the chat by polling failed: code 4200"),
        "{}",
        r.describe()
    );

    gone();
    let r = run(
        chat(&sb).args(["-o", "events"]),
        "{\"type\":\"prompt\",\"content\":\"hi\",\"id\":\"q1\"}\n",
    );
    r.expect_code(5);
    let recs = r.records();
    assert_eq!(
        names(&recs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            DELTA,
            DELTA,
            "type:error",
        ],
        "{}",
        r.describe()
    );
    let ours = recs.last().unwrap();
    assert_eq!(
        keys(ours),
        ["type", "id", "code", "msg", "logid", "exit_code"],
        "{ours}"
    );
    assert_eq!(
        (&ours["id"], &ours["code"], &ours["exit_code"]),
        (&json!("q1"), &json!(4200), &json!(5)),
        "{ours}"
    );
    assert!(ours["logid"].is_string(), "{ours}");
    assert_eq!(stat(&sb, "/requests/chat"), 2, "never asked twice");
    assert_eq!(
        stat(&sb, "/cancels"),
        0,
        "the server said the chat is gone: nothing to cancel"
    );
}

/// A stream that ends before the chat's ids came has no chat to follow: exit 5 as
/// before, and the record names the stream's logid. Nor has a chat that is not saved.
fn a_stream_cut_before_the_chat_exists_stays_a_failure(d: Dialect) {
    let sb = logged_in_as("recover-no-chat", d);
    sb.fake
        .push_fault("chat", json!({"type": "cut", "after_events": 0}), 1);
    let r = run(chat(&sb).args(["-o", "answers", "hi"]), "");
    r.expect_code(5);
    let a = &r.records()[0];
    assert_eq!(a["content"], "", "{a}");
    let message = a["error"]["message"].as_str().unwrap();
    assert!(message.contains("cut after 0 events"), "{a}");
    let logid = a["error"]["logid"]
        .as_str()
        .unwrap_or_else(|| panic!("the message holds a logid, the field must too: {a}"));
    assert!(message.contains(&format!("(logid {logid})")), "{a}");
    assert_eq!(
        a["error"]["code"],
        Value::Null,
        "no code: the server sent none"
    );
    assert_eq!(stat(&sb, "/requests/chat.retrieve"), 0);

    // A chat that is not saved (--no-save) cannot be polled: its stream is all there is.
    sb.fake
        .push_fault("chat", json!({"type": "cut", "after_events": 4}), 1);
    let r = run(chat(&sb).args(["-o", "text", "--no-save", "hi"]), "");
    r.expect_code(5);
    assert_eq!(r.stdout, format!("{}\n", chars(&answer_text("hi"), 6)));
    assert!(
        r.stderr.contains("cut after 4 events") && r.stderr.contains("cannot be polled"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/chat.retrieve"), 0);
}

// ---------------------------------------------------------------- 2. the last event

/// A stream whose last event lacks its blank line (or even its last line end, as the
/// official Python SDK's recorded streams do) is whole: the answer completes, a failed
/// chat fails with its code, a completed chat stays completed whatever breaks after it.
fn a_last_event_without_its_blank_line_is_read_as_the_sdks_read_it(d: Dialect) {
    let sb = logged_in_as("recover-last-line", d);
    let prompt = "hi";
    let answer = answer_text(prompt);
    let end = if sb.studio() {
        "conversation.stream.done"
    } else {
        "done"
    };
    for style in ["no_final_blank_line", "no_final_newline"] {
        sb.fake.set_bot(json!({"style": {style: true}}));
        let r = run(chat(&sb).args(["-o", "events", prompt]), "");
        r.ok();
        let recs = r.records();
        assert_eq!(
            names(&recs).last().map(String::as_str),
            Some(end),
            "{style}\n{}",
            r.describe()
        );
        assert_eq!(delta_text(&recs), answer, "{style}");
        assert!(
            recs.iter().all(|e| e.get("recovered").is_none()),
            "{style}: streamed"
        );
        assert!(r.stderr.is_empty(), "{style}\n{}", r.describe());

        sb.fake.push_fault(
            "chat",
            json!({"type": "chat_failed", "code": 5000, "msg": "event interval error"}),
            1,
        );
        let r = run(chat(&sb).args(["-o", "answers", prompt]), "");
        r.expect_code(1);
        let a = &r.records()[0];
        let code = if sb.studio() { 103_100_001 } else { 5000 };
        assert_eq!(a["error"]["code"], code, "{style}: {a}");
        assert!(
            r.stderr.contains("the chat failed") && !r.stderr.contains("cut"),
            "{style}\n{}",
            r.describe()
        );
    }
    assert_eq!(
        stat(&sb, "/requests/chat.retrieve"),
        0,
        "each stream was whole: nothing was recovered"
    );

    // A reset after conversation.chat.completed, before the end mark.
    sb.fake.set_bot(json!({}));
    sb.fake.push_fault(
        "chat",
        json!({"type": "reset_mid_body", "after_events": CHAT_COMPLETED_AT}),
        1,
    );
    let r = run(chat(&sb).args(["-o", "answers", prompt]), "");
    r.ok();
    assert_eq!(r.records()[0]["content"], answer);
    assert!(r.stderr.is_empty(), "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/chat.retrieve"), 0);
}

// ---------------------------------------------------------------- 5. --no-stream

/// --help says what --no-stream gives: the same text and answers; in events mode the
/// polled chat's events, completed messages without deltas. And it does.
fn no_stream_gives_the_same_text_and_answers_and_no_deltas(d: Dialect) {
    let sb = logged_in_as("recover-no-stream-help", d);
    let help = run(sb.cmd("coze-chat").arg("--help"), "");
    help.ok();
    let flat: String = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("the same text and answers as streaming; in -o events only")
            && !flat.contains("the same output as streaming"),
        "{}",
        help.stdout
    );
    assert!(
        flat.contains("\"recovered\":true"),
        "--help documents the recovered events\n{}",
        help.stdout
    );
    let prompt = "hi";
    for mode in ["text", "answers"] {
        let streamed = run(chat(&sb).args(["-o", mode, prompt]), "");
        let polled = run(chat(&sb).args(["-o", mode, "--no-stream", prompt]), "");
        streamed.ok();
        polled.ok();
        if mode == "text" {
            assert_eq!(polled.stdout, streamed.stdout);
        } else {
            assert_eq!(
                polled.records()[0]["content"],
                streamed.records()[0]["content"]
            );
        }
    }
    let r = run(chat(&sb).args(["-o", "events", "--no-stream", prompt]), "");
    r.ok();
    let n = names(&r.records());
    assert!(!n.iter().any(|e| e == DELTA), "{n:?}");
    assert_eq!(
        n.iter().filter(|e| *e == COMPLETED).count(),
        polled_messages(&sb),
        "{n:?}"
    );
}

both_dialects!(
    a_stream_cut_after_the_chat_exists_is_recovered_in_every_mode,
    a_reset_mid_answer_prints_the_rest_once,
    a_broken_stream_whose_chat_cannot_be_found_exits_5,
    a_stream_cut_before_the_chat_exists_stays_a_failure,
    a_last_event_without_its_blank_line_is_read_as_the_sdks_read_it,
    no_stream_gives_the_same_text_and_answers_and_no_deltas,
);
