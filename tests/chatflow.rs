//! coze-chat --workflow: a chatflow (`POST /v1/workflows/chat`) asked through the chat
//! engine, against coze-fake's chatflows (`POST /_fake/workflow`), in both dialects:
//! the three output modes and the run's trace (`debug_url`), a failure whose code is a
//! string, a question answered at a terminal (its options, from the server's card,
//! picked by number) and in a pipeline (exit 7 when nobody does), a cut stream (not followed: exit 5, the answer so far kept), the conversation
//! carried from prompt to prompt, and what a chatflow refuses before any request.

use std::process::Command;

use serde_json::{json, Value};

use crate::both_dialects;
use crate::chat::{delta_text, names};
use crate::util::*;

/// The chatflow the tests ask, and the app it runs in.
const FLOW: &str = "7480000000000000001";
const APP: &str = "7480000000000000999";

/// `coze-chat --workflow FLOW --app APP` in the sandbox.
fn flow(sb: &Sandbox) -> Command {
    flow_in(sb, APP)
}

/// `coze-chat --workflow FLOW --app app`. A Studio runs a chatflow given no
/// conversation in the one its `CONVERSATION_NAME` names (its apps have `Default`): one
/// per app, where a question left open waits for the next run; coze.cn makes a new
/// conversation each time.
fn flow_in(sb: &Sandbox, app: &str) -> Command {
    let mut c = flow_unnamed(sb, app);
    if sb.studio() {
        c.args(["--param", "CONVERSATION_NAME=Default"]);
    }
    c
}

/// `coze-chat --workflow FLOW --app app`, with no conversation name on any server.
fn flow_unnamed(sb: &Sandbox, app: &str) -> Command {
    let mut c = sb.cmd("coze-chat");
    c.args(["--workflow", FLOW, "--app", app]);
    c
}

/// The fake chatflow's question, and its options. Both servers send a question with
/// options as a card (a Studio always, coze.cn when `ext.enable_card` asks, as
/// coze-chat does), from which the question and its options are read.
const QUESTION: &str = "What colour?";
const OPTIONS: [&str; 2] = ["Red", "Blue"];

/// Sets how the fake's chatflow FLOW behaves (`/_fake/workflow`).
fn set_flow(sb: &Sandbox, mut spec: Value) {
    spec["workflow_id"] = FLOW.into();
    sb.admin_post("/_fake/workflow", &spec);
}

/// What the fake's chatflow answers to `input`.
fn echo(input: &str) -> String {
    format!("Echo: {input}")
}

/// The fake's chatflow asking a question with two options.
fn asking(sb: &Sandbox) {
    set_flow(sb, json!({"question": QUESTION, "options": OPTIONS}));
}

/// How coze-chat puts the question to the person: its options numbered.
fn asked_at_the_terminal() -> String {
    format!(
        "coze-chat: the chatflow asks: {QUESTION}\n  1. Red\n  2. Blue\n\
         a number, or your own answer (Ctrl-D leaves it unanswered): "
    )
}

/// A trace of a run of FLOW.
fn assert_trace(url: &Value) {
    let url = url
        .as_str()
        .unwrap_or_else(|| panic!("no debug_url: {url}"));
    assert!(
        url.contains("/work_flow?execute_id=") && url.contains(&format!("workflow_id={FLOW}")),
        "{url}"
    );
}

fn the_three_output_modes_carry_the_answer_and_the_trace(d: Dialect) {
    let sb = logged_in_as("flow-modes", d);
    let prompt = "你好 🌏";

    let r = run(flow(&sb).args(["-o", "text", prompt]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", echo(prompt)), "{}", r.describe());

    let r = run(flow(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    let recs = r.records();
    let events = names(&recs);
    assert_eq!(events[0], "conversation.chat.created", "{}", r.describe());
    assert!(events.contains(&"conversation.chat.completed".to_owned()));
    assert_eq!(events.last().unwrap(), "done", "{}", r.describe());
    assert_eq!(delta_text(&recs), echo(prompt));
    // The trace as it came, in the `done` event.
    assert_trace(&recs.last().unwrap()["data"]["debug_url"]);

    let r = run(flow(&sb).args(["-o", "answers", prompt]), "");
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["type"], "answer", "{a}");
    assert_eq!(a["prompt"], prompt, "{a}");
    assert_eq!(a["content"], echo(prompt), "{a}");
    assert_eq!(
        (&a["status"], &a["error"]),
        (&json!("completed"), &Value::Null),
        "{a}"
    );
    assert_eq!(a["workflow_id"], FLOW, "{a}");
    assert_trace(&a["debug_url"]);
    assert!(
        a["conversation_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{a}"
    );
    assert!(r.stderr.is_empty(), "{}", r.describe());
}

fn a_failure_s_string_code_exits_1_with_its_trace_on_stderr(d: Dialect) {
    let sb = logged_in_as("flow-failure", d);
    set_flow(
        &sb,
        json!({"error": {"code": 720701013, "message": "node failed"}}),
    );
    let r = run(flow(&sb).args(["-o", "answers", "hi"]), "");
    r.expect_code(1);
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(
        a["error"]["code"], 720701013,
        "the string code is the code: {a}"
    );
    assert_eq!(a["error"]["exit_code"], 1, "{a}");
    assert_trace(&a["debug_url"]);
    let url = a["debug_url"].as_str().unwrap();
    // One line: the code and message, the stream's logid, the trace.
    assert!(
        r.stderr
            .starts_with("coze-chat: the chat failed: code 720701013: node failed (logid ")
            && r.stderr.ends_with(&format!(") (debug_url: {url})\n"))
            && r.stderr.lines().count() == 1,
        "{}",
        r.describe()
    );

    // In events mode the failure's data is passed on as it came: its code a string.
    let r = run(flow(&sb).args(["-o", "events", "hi"]), "");
    r.expect_code(1);
    let recs = r.records();
    let failed = recs
        .iter()
        .find(|e| e["event"] == "conversation.chat.failed" || e["event"] == "error")
        .unwrap_or_else(|| panic!("no failure event\n{}", r.describe()));
    assert_eq!(failed["data"]["code"], "720701013", "{failed}");
    let last = recs.last().unwrap();
    assert_eq!(
        (&last["type"], &last["code"]),
        (&json!("error"), &json!(720701013))
    );

    // A conversation name the app lacks: the documented 720702204, by its code too.
    set_flow(&sb, json!({}));
    let r = run(
        flow(&sb).args(["-o", "text", "--param", "CONVERSATION_NAME=Other", "hi"]),
        "",
    );
    r.expect_code(1);
    assert!(r.stderr.contains("code 720702204: "), "{}", r.describe());
}

/// Both --app and --bot: the API refuses both, so coze-chat does before asking. With
/// --app, COZE_BOT_ID is not sent either (the fake would refuse the pair with 4000).
#[test]
fn app_and_bot_together_are_refused_before_any_request() {
    let sb = logged_in("flow-app-bot");
    let before = sb.fake.log().as_array().map_or(0, Vec::len);
    let r = run(flow(&sb).args(["--bot", "7", "hi"]), "");
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "coze-chat: --app and --bot cannot go together: a chatflow runs in an app or in a \
         bot, not both (the API refuses both) (see coze-chat --help)\n"
    );
    assert_eq!(sb.fake.log().as_array().map_or(0, Vec::len), before);
    let r = run(
        flow(&sb).env("COZE_BOT_ID", "7").args(["-o", "text", "hi"]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", echo("hi")));
    // In a bot instead of an app: the bot from the environment.
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_BOT_ID", "7")
            .args(["--workflow", FLOW, "-o", "text", "hi"]),
        "",
    );
    r.ok();
    // Neither: nobody to run the chatflow in.
    let r = run(sb.cmd("coze-chat").args(["--workflow", FLOW, "hi"]), "");
    r.expect_code(2);
    assert!(
        r.stderr.contains("pass --app ID or --bot ID"),
        "{}",
        r.describe()
    );
}

/// A chatflow takes text only: --attach is a usage error, a file record a bad line;
/// the message says where files go instead.
#[test]
fn files_are_refused_with_where_they_go_instead() {
    let sb = logged_in("flow-files");
    std::fs::write(sb.path("a.txt"), "x").unwrap();
    let r = run(flow(&sb).args(["--attach", "a.txt", "hi"]), "");
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("pass files as parameters with coze-workflow"),
        "{}",
        r.describe()
    );
    let r = run(
        flow(&sb).args(["-o", "answers"]),
        "{\"type\":\"file\",\"file_id\":\"1\"}\nhi\n",
    );
    r.expect_code(3);
    let recs = r.records();
    assert_eq!(recs[0]["status"], "invalid", "{}", r.describe());
    assert!(
        recs[0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("stdin line 1: file record: a chatflow takes text only"),
        "{}",
        r.describe()
    );
    assert_eq!(recs[1]["content"], echo("hi"), "the next line still runs");
}

/// Runs `coze-chat ARGS hi` on a terminal (script(1) gives it one), typing `typed`.
fn on_a_terminal(sb: &Sandbox, args: &str, typed: &str) -> Run {
    let name = if sb.studio() {
        " --param CONVERSATION_NAME=Default"
    } else {
        ""
    };
    let inner = format!("\"$CHAT\" --workflow {FLOW} --app {APP}{name} {args} hi");
    run(
        sb.cmd("script")
            .env("CHAT", bin("coze-chat"))
            .args(["-qec", &inner, "/dev/null"]),
        typed,
    )
}

/// The answers the fake's runs took, in order.
fn answers_taken(sb: &Sandbox) -> Vec<Value> {
    let runs = sb.admin_get("/_fake/workflow")["runs"].clone();
    runs.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["answers"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// On a terminal (stdin and stderr) the question is shown with its options numbered
/// (read from the card, which is not printed) and the person's answer is sent to the
/// chatflow in the same conversation, whose answer follows; an answer the chatflow does
/// not take is asked again, and answered again. Nobody answering (Ctrl-D) leaves it
/// open: exit 7.
fn a_question_is_answered_at_a_terminal(d: Dialect) {
    let sb = logged_in_as("flow-tty", d);
    asking(&sb);
    let r = on_a_terminal(&sb, "-o text", "Green\nRed\n");
    r.ok();
    let screen = r.stdout.replace('\r', "");
    let asked = asked_at_the_terminal();
    assert!(!screen.contains("workflow_card_info"), "{}", r.describe());
    assert_eq!(
        screen.matches(&asked).count(),
        2,
        "asked twice\n{}",
        r.describe()
    );
    let answered = echo("Red (answer to What colour?)");
    assert!(
        screen.trim_end().ends_with(&answered),
        "the answer to the question last\n{}",
        r.describe()
    );
    assert_eq!(answers_taken(&sb), [json!("Green"), json!("Red")]);

    // script(1) passes the end of its input on as Ctrl-D.
    let r = on_a_terminal(&sb, "-o answers", "");
    r.expect_code(7);
    let screen = r.stdout.replace('\r', "");
    assert!(screen.contains(&asked), "{}", r.describe());
    assert!(
        screen.contains("\"status\":\"requires_action\""),
        "{}",
        r.describe()
    );
    assert!(
        screen.contains("coze-chat: the chatflow's question was not answered"),
        "{}",
        r.describe()
    );
}

/// On a terminal an option is picked by its number: the chatflow gets the option's
/// name. A number that is no option's goes as typed (and fits no option: asked again).
fn an_option_is_picked_at_a_terminal_by_its_number(d: Dialect) {
    let sb = logged_in_as("flow-tty-number", d);
    asking(&sb);
    let r = on_a_terminal(&sb, "-o text", "3\n2\n");
    r.ok();
    let screen = r.stdout.replace('\r', "");
    assert_eq!(
        screen.matches(&asked_at_the_terminal()).count(),
        2,
        "asked twice\n{}",
        r.describe()
    );
    assert_eq!(answers_taken(&sb), [json!("3"), json!("Blue")]);
    assert!(
        screen
            .trim_end()
            .ends_with(&echo("Blue (answer to What colour?)")),
        "{}",
        r.describe()
    );
}

/// In a pipeline nobody answers: the answer record says `requires_action` with the
/// question and its options (read from the card, which is no answer text), events mode
/// adds an `interrupt` record, and the run exits 7 after writing
/// everything (the summary says 7 too). The next prompt line of the conversation, or a
/// later run in it, answers it. (Each case in an app of its own: on a Studio a
/// question left open waits in the app's named conversation.)
fn a_question_in_a_pipeline_waits_and_the_next_line_answers_it(d: Dialect) {
    let sb = logged_in_as("flow-pipe", d);
    asking(&sb);

    let r = run(
        flow_in(&sb, "7480000000000000901").args(["-o", "answers"]),
        "hi\n",
    );
    r.expect_code(7);
    let a = &r.records()[0];
    assert_eq!(a["status"], "requires_action", "{a}");
    assert_eq!(a["error"], Value::Null, "{a}");
    assert_eq!(a["content"], "", "{a}");
    assert_eq!(a["question"], QUESTION, "{a}");
    assert_eq!(a["options"], json!(OPTIONS), "{a}");
    assert_trace(&a["debug_url"]);
    let conv = a["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.stderr,
        format!(
            "coze-chat: the chatflow's question was not answered: \"{QUESTION}\" (Red | Blue) \
             (answer it with one more prompt in conversation {conv}: --conversation {conv}, or a \
             prompt record with that conversation_id)\n"
        ),
        "{}",
        r.describe()
    );
    let r = run(
        flow_in(&sb, "7480000000000000902").args(["-o", "answers", "--summary"]),
        "hi\n",
    );
    r.expect_code(7);
    let s = r.records().pop().unwrap();
    assert_eq!(s["by_status"], json!({"requires_action": 1}), "{s}");
    assert_eq!(
        (&s["failed"], &s["exit_code"]),
        (&json!(0), &json!(7)),
        "{s}"
    );

    let r = run(
        flow_in(&sb, "7480000000000000903").args(["-o", "events"]),
        "{\"type\":\"prompt\",\"id\":\"q1\",\"content\":\"hi\"}\n",
    );
    r.expect_code(7);
    let recs = r.records();
    let interrupt = recs.last().unwrap();
    assert_eq!(interrupt["type"], "interrupt", "{}", r.describe());
    assert_eq!(interrupt["id"], "q1");
    assert_eq!(interrupt["workflow_id"], FLOW);
    assert_eq!(interrupt["question"], QUESTION);
    assert_eq!(interrupt["options"], json!(OPTIONS));
    let created = recs
        .iter()
        .find(|e| e["event"] == "conversation.chat.created")
        .unwrap();
    assert_eq!(
        interrupt["conversation_id"],
        created["data"]["conversation_id"]
    );
    let at = names(&recs[..recs.len() - 1]);
    assert!(
        at.contains(&"conversation.chat.requires_action".to_owned()),
        "{at:?}"
    );
    // The record is the shared `interrupt` record; coze-workflow's resume, which answers
    // a workflow run's, says where a chatflow's question is answered instead.
    let refused = run(
        sb.cmd("coze-workflow").args(["resume", "--answer", "Blue"]),
        &format!("{interrupt}\n"),
    );
    refused.expect_code(3);
    assert!(
        refused.stderr.contains("a chatflow's question")
            && refused.stderr.contains(&format!(
                "coze-chat --workflow {FLOW} --conversation {}",
                interrupt["conversation_id"].as_str().unwrap()
            )),
        "{}",
        refused.describe()
    );

    // Answered by the next line, in the conversation the first chat made.
    let r = run(
        flow_in(&sb, "7480000000000000904").args(["-o", "answers"]),
        "hi\nBlue\n",
    );
    r.ok();
    let recs = r.records();
    assert_eq!(recs[0]["status"], "requires_action");
    assert_eq!(recs[1]["status"], "completed", "{}", r.describe());
    assert_eq!(recs[1]["content"], echo("Blue (answer to What colour?)"));
    assert_eq!(recs[1]["conversation_id"], recs[0]["conversation_id"]);
    assert!(r.stderr.is_empty(), "{}", r.describe());

    // By a later run, in the conversation given on its command line.
    let app = "7480000000000000905";
    let r = run(flow_in(&sb, app).args(["-o", "answers", "hi"]), "");
    r.expect_code(7);
    let conv = r.records()[0]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(
        flow_unnamed(&sb, app).args(["-o", "text", "--conversation", &conv, "Red"]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", echo("Red (answer to What colour?)"))
    );
}

/// A 5xx or a 429 before the stream is asked again, as for a bot; a chatflow's stream
/// cut mid-answer is not followed (no API retrieves a chatflow's chat): the prompt
/// fails with exit 5, the answer so far kept, nothing polled or cancelled.
fn a_refusal_is_retried_and_a_cut_stream_exits_5_with_the_answer_so_far(d: Dialect) {
    let sb = logged_in_as("flow-cut", d);
    let prompt = "a longer question, so that its echo streams in several pieces";
    let whole = echo(prompt);
    sb.fake
        .push_fault("workflow.chat", json!({"type": "http", "status": 500}), 1);
    sb.fake.push_fault(
        "workflow.chat",
        json!({"type": "http", "status": 429, "retry_after": 1}),
        1,
    );
    let r = run(flow(&sb).args(["-o", "events", prompt]), "");
    r.ok();
    assert_eq!(stat(&sb, "/requests/workflow.chat"), 3, "{}", r.describe());
    let recs = r.records();
    let first_delta = names(&recs)
        .iter()
        .position(|n| n == "conversation.message.delta")
        .expect("the answer streams in deltas");
    sb.fake.push_fault(
        "workflow.chat",
        json!({"type": "cut", "after_events": first_delta + 1}),
        1,
    );
    let r = run(flow(&sb).args(["-o", "answers", prompt]), "");
    r.expect_code(5);
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["error"]["exit_code"], 5, "{a}");
    let kept = a["content"].as_str().unwrap();
    assert!(
        !kept.is_empty() && kept.len() < whole.len() && whole.starts_with(kept),
        "the answer so far: {kept:?}\n{}",
        r.describe()
    );
    assert!(
        r.stderr
            .contains("a chatflow's chat cannot be followed by polling"),
        "{}",
        r.describe()
    );
    for polled in [
        "/requests/chat.retrieve",
        "/requests/chat.message.list",
        "/requests/chat.cancel",
    ] {
        assert_eq!(stat(&sb, polled), 0, "{polled}");
    }
    // In text mode the same part went out as it came.
    sb.fake.push_fault(
        "workflow.chat",
        json!({"type": "cut", "after_events": first_delta + 1}),
        1,
    );
    let r = run(flow(&sb).args(["-o", "text", prompt]), "");
    r.expect_code(5);
    assert_eq!(r.stdout.trim_end(), kept, "{}", r.describe());
}

/// Without --conversation the first chat's conversation is kept for the next prompts;
/// --new-each and --jobs give each prompt its own (on coze.cn: a Studio puts every
/// chat given no conversation in the one its name says).
fn the_conversation_carries_from_prompt_to_prompt(d: Dialect) {
    let sb = logged_in_as("flow-conv", d);
    let convs = |r: &Run| -> Vec<String> {
        r.records()
            .iter()
            .map(|a| {
                assert_eq!(a["status"], "completed", "{a}");
                a["conversation_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let r = run(flow(&sb).args(["-o", "answers"]), "one\ntwo\nthree\n");
    r.ok();
    let c = convs(&r);
    assert!(c.iter().all(|x| *x == c[0]), "{c:?}");
    // Only the first names its conversation: on a Studio the others would fail
    // without the conversation_id carried from it.
    let r = run(
        flow_unnamed(&sb, APP).args(["-o", "answers"]),
        "{\"type\":\"prompt\",\"content\":\"one\",\"parameters\":{\"CONVERSATION_NAME\":\"Default\"}}\ntwo\nthree\n",
    );
    r.ok();
    let c = convs(&r);
    assert!(c.iter().all(|x| *x == c[0]), "{c:?}");
    if sb.studio() {
        // Neither a name nor a conversation: the server's words, and what to do.
        let r = run(flow_unnamed(&sb, APP).args(["-o", "text", "hi"]), "");
        r.expect_code(1);
        assert!(
            r.stderr.contains(
                "(this server runs a chatflow in a named conversation: pass --param \
                 CONVERSATION_NAME=Default, or --conversation ID)"
            ),
            "{}",
            r.describe()
        );
        return;
    }

    let r = run(
        flow(&sb).args(["-o", "answers", "--new-each"]),
        "one\ntwo\n",
    );
    r.ok();
    let c = convs(&r);
    assert_ne!(c[0], c[1]);

    let input: String = (0..8).map(|i| format!("q{i}\n")).collect();
    let r = run(flow(&sb).args(["-o", "answers", "--jobs", "4"]), &input);
    r.ok();
    let mut c = convs(&r);
    c.sort();
    c.dedup();
    assert_eq!(c.len(), 8, "{}", r.describe());
}

both_dialects!(
    the_three_output_modes_carry_the_answer_and_the_trace,
    a_failure_s_string_code_exits_1_with_its_trace_on_stderr,
    a_question_is_answered_at_a_terminal,
    an_option_is_picked_at_a_terminal_by_its_number,
    a_question_in_a_pipeline_waits_and_the_next_line_answers_it,
    a_refusal_is_retried_and_a_cut_stream_exits_5_with_the_answer_so_far,
    the_conversation_carries_from_prompt_to_prompt,
);
