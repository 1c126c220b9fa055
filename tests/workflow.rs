//! coze-workflow end to end, the real binary against coze-fake's workflows, in both
//! dialects where a self-hosted Coze Studio differs: parameters in every form (flags,
//! a JSON file, stdin objects and run records, file records, uploads); streamed, sync
//! and async runs and `status --wait`; the three output modes with the output decoded;
//! interrupts answered at a terminal (a real pty) and from a pipeline (exit 7, then
//! `resume`), a fourth answer refused; errors that say what to do; bad input; a cut
//! stream. Batches are in `workflow_batch.rs`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_dialects;
use crate::util::*;

fn wf(sb: &Sandbox) -> Command {
    sb.cmd("coze-workflow")
}

/// Sets a workflow's behaviour on the fake.
fn spec(sb: &Sandbox, spec: Value) {
    sb.fake.set_workflow(spec).unwrap();
}

/// Every run the fake saw, oldest first.
fn runs(sb: &Sandbox) -> Vec<Value> {
    sb.fake.workflows()["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The records of type `kind` on stdout.
fn of(r: &Run, kind: &str) -> Vec<Value> {
    r.records()
        .into_iter()
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The one result record of a run.
fn result(r: &Run) -> Value {
    let results = of(r, "result");
    assert_eq!(results.len(), 1, "{}", r.describe());
    results.into_iter().next().unwrap()
}

/// The content of the fake's Message `i`.
fn message(i: u64) -> String {
    format!("{i}: 你好 🌏\n")
}

/// The requests the fake counted for `endpoint` (`workflow.stream_run`, …).
fn requests(sb: &Sandbox, endpoint: &str) -> u64 {
    stat(sb, &format!("/requests/{endpoint}"))
}

// ---------------------------------------------------------------- parameters

fn parameters_in_every_form(d: Dialect) {
    let sb = logged_in_as("wf-params", d);
    std::fs::write(
        sb.path("p.json"),
        r#"{"from_file":{"deep":[1,2]},"city":"file"}"#,
    )
    .unwrap();
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--params",
            "@p.json",
            "--param",
            "city=北京",
            "--param",
            "days:=3",
            "--param",
            "on:=true",
            "--param",
            "q=a=b",
            "--param",
            "big:=7404830425073352713",
            "-o",
            "results",
        ]),
        "",
    );
    r.ok();
    let want = json!({"from_file": {"deep": [1, 2]}, "city": "北京", "days": 3, "on": true,
        "q": "a=b", "big": 7404830425073352713u64});
    let res = result(&r);
    assert_eq!(res["status"], "success", "{}", r.describe());
    assert_eq!(res["output"], json!({ "output": want }));
    assert_eq!(runs(&sb)[0]["parameters"], want);
    // Every digit of a 64-bit number made it there and back.
    assert!(
        r.stdout.contains("\"big\":7404830425073352713"),
        "{}",
        r.describe()
    );
    // --params inline.
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--params",
            "{\"n\":[1]}",
            "-o",
            "results",
        ]),
        "",
    );
    r.ok();
    assert_eq!(result(&r)["output"], json!({"output": {"n": [1]}}));
}

fn stdin_lines_objects_run_records_and_file_records(d: Dialect) {
    let sb = logged_in_as("wf-lines", d);
    let input = [
        json!({"city": "北京"}).to_string(),
        String::new(),
        json!({"type": "run", "id": "r2", "workflow_id": "99", "parameters": {"n": 2}}).to_string(),
        json!({"type": "file", "file_id": "7400000000000000001", "file_name": "a.png",
            "bytes": 3, "url": "http://studio.example/a.png"})
        .to_string(),
        json!({"q": "describe"}).to_string(),
        json!({"type": "file", "file_id": "7400000000000000002", "file_name": "b.png", "bytes": 3})
            .to_string(),
    ]
    .join("\n");
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--file-param-from-stdin",
            "image",
            "-o",
            "results",
        ]),
        &format!("{input}\n"),
    );
    r.ok();
    let results = of(&r, "result");
    assert_eq!(results.len(), 4, "{}", r.describe());
    let seen = runs(&sb);
    let params: Vec<&Value> = seen.iter().map(|s| &s["parameters"]).collect();
    // The url of a file record is the value only where the server gave one (Studio);
    // any other record passes its id as the JSON text {"file_id":…}.
    assert_eq!(
        params,
        [
            &json!({"city": "北京"}),
            &json!({"n": 2}),
            &json!({"q": "describe", "image": "http://studio.example/a.png"}),
            &json!({"image": "{\"file_id\":\"7400000000000000002\"}"}),
        ]
    );
    assert_eq!(seen[1]["workflow_id"], "99", "the record's own workflow");
    assert_eq!(results[1]["id"], "r2");
    assert!(results[0]["id"].as_str().unwrap().starts_with("sha256:"));
    // Lines are run in order, one after another: each result names its own line.
    assert_eq!(results[2]["output"]["output"]["q"], "describe");
}

fn a_file_param_is_uploaded_and_passed_in_the_servers_form(d: Dialect) {
    let sb = logged_in_as("wf-upload", d);
    std::fs::write(
        sb.path("scan.png"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image",
    )
    .unwrap();
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--file-param",
            "image=scan.png",
            "-o",
            "results",
        ]),
        "",
    );
    r.ok();
    let held = sb.uploaded();
    assert_eq!(held.len(), 1, "{}", r.describe());
    let sent = &runs(&sb)[0]["parameters"]["image"];
    let id = held[0]["id"].as_str().unwrap();
    if sb.studio() {
        // Studio reads a file input as its URL.
        let url = sent.as_str().unwrap();
        assert!(url.starts_with("http") && url.contains(id), "{sent}");
    } else {
        assert_eq!(sent, &json!(format!("{{\"file_id\":\"{id}\"}}")));
    }
    // A file that cannot be sent is refused before anything is.
    let before = requests(&sb, "workflow.stream_run");
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--file-param",
            "image=missing.png",
        ]),
        "",
    );
    r.expect_code(3);
    assert!(
        r.stderr.starts_with("coze-workflow: missing.png: "),
        "{}",
        r.describe()
    );
    assert_eq!(requests(&sb, "workflow.stream_run"), before);
}

// ---------------------------------------------------------------- how a run is made

fn streamed_sync_and_async_runs_and_status_wait(d: Dialect) {
    let sb = logged_in_as("wf-how", d);
    spec(&sb, json!({"workflow_id": "73", "running_polls": 2}));
    let r = run(
        wf(&sb).args(["run", "--workflow", "73", "--param", "a=1", "-o", "results"]),
        "",
    );
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "73",
            "--param",
            "a=2",
            "--no-stream",
            "-o",
            "results",
        ]),
        "",
    );
    r.ok();
    assert!(
        r.stderr
            .contains("warning: --no-stream: the server drops a synchronous run's call after 90 s"),
        "{}",
        r.describe()
    );
    let sync = result(&r);
    assert_eq!(sync["output"], json!({"output": {"a": "2"}}));
    if sb.studio() {
        assert_eq!(sync["usage"], Value::Null, "Studio sends no usage");
    } else {
        assert!(sync["usage"]["token_count"].as_u64().unwrap() > 0, "{sync}");
    }
    let r = run(
        wf(&sb).args(["run", "--workflow", "73", "--param", "a=3", "--async"]),
        "",
    );
    r.ok();
    let started = of(&r, "run_started");
    assert_eq!(started.len(), 1, "{}", r.describe());
    let execute_id = started[0]["execute_id"].as_str().unwrap().to_owned();
    assert_eq!(
        execute_id.len(),
        19,
        "a 64-bit id as a string: {execute_id}"
    );
    assert!(started[0]["debug_url"]
        .as_str()
        .unwrap()
        .contains(&execute_id));
    let modes: Vec<Value> = runs(&sb).iter().map(|r| r["mode"].clone()).collect();
    assert_eq!(modes, [json!("stream"), json!("sync"), json!("async")]);
    // Without --wait: where it is now (Running for two reads).
    let r = run(
        wf(&sb).args(["status", "--workflow", "73", &execute_id]),
        "",
    );
    r.ok();
    assert_eq!(result(&r)["status"], "running", "{}", r.describe());
    // With --wait: asked again until it ends.
    let before = requests(&sb, "workflow.history");
    let r = run(
        wf(&sb).args(["status", "--workflow", "73", &execute_id, "--wait"]),
        "",
    );
    r.ok();
    let res = result(&r);
    assert_eq!(res["status"], "success", "{}", r.describe());
    assert_eq!(res["execute_id"], execute_id.as_str());
    assert_eq!(res["output"], json!({"output": {"a": "3"}}));
    assert!(requests(&sb, "workflow.history") >= before + 2, "it polled");
    // An id the server does not know: what to check.
    let r = run(
        wf(&sb).args(["status", "--workflow", "73", "7404830425073359999"]),
        "",
    );
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("reading the history of run 7404830425073359999"),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------- output modes

fn the_three_output_modes(d: Dialect) {
    let sb = logged_in_as("wf-modes", d);
    spec(&sb, json!({"workflow_id": "m", "messages": 3, "pings": 2}));
    let params = json!({"city": "北京"});
    let end = json!({ "output": params }).to_string();
    // events: every event with its data and seq, PING left out.
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "m",
            "--param",
            "city=北京",
            "-o",
            "events",
        ]),
        "",
    );
    r.ok();
    let events = r.records();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Message", "Message", "Message", "Message", "Done"],
        "{}",
        r.describe()
    );
    for (i, e) in events.iter().take(3).enumerate() {
        assert_eq!(e["data"]["content"], message(i as u64).as_str());
        assert_eq!(e["data"]["node_title"], "Message");
        assert_eq!(e["seq"], i.to_string().as_str());
        assert!(
            e.get("id").is_none(),
            "a command-line run has no id of its own"
        );
    }
    assert_eq!(events[3]["data"]["content"], end.as_str());
    // The PINGs took ids 3 and 4 on coze.cn (Studio sends none): the seq is the server's.
    let last_seq = if sb.studio() { "4" } else { "6" };
    assert_eq!(events[4]["seq"], last_seq, "{}", r.describe());
    assert!(events[4]["data"]["debug_url"]
        .as_str()
        .unwrap()
        .contains("execute_id="));
    // text: the contents as they stream, the line closed at the end.
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "m",
            "--param",
            "city=北京",
            "-o",
            "text",
        ]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}{}{}{end}\n", message(0), message(1), message(2))
    );
    // results: the output decoded, in each of the forms the API sends it.
    for (output, want) in [
        ("json", json!({ "output": params })),
        ("double", json!({"Output": { "output": params }})),
        ("text", json!("Echo: {\"city\":\"北京\"}")),
    ] {
        spec(&sb, json!({"workflow_id": "m", "output": output}));
        for how in ["--param", "--no-stream"] {
            let mut args = vec![
                "run",
                "--workflow",
                "m",
                "--param",
                "city=北京",
                "-o",
                "results",
            ];
            if how == "--no-stream" {
                args.push(how);
            }
            let r = run(wf(&sb).args(&args), "");
            r.ok();
            let res = result(&r);
            assert_eq!(res["output"], want, "{output} {how}: {}", r.describe());
            assert_eq!(res["status"], "success");
            assert_eq!(res["error"], Value::Null);
            assert_eq!(
                keys(&res),
                [
                    "type",
                    "id",
                    "workflow_id",
                    "execute_id",
                    "status",
                    "output",
                    "usage",
                    "debug_url",
                    "error"
                ]
            );
        }
    }
    // Run records' ids are echoed on every events line.
    let r = run(
        wf(&sb).args(["run", "--workflow", "m", "-o", "events"]),
        &format!(
            "{}\n",
            json!({"type": "run", "id": {"row": 7}, "parameters": {}})
        ),
    );
    r.ok();
    assert!(
        r.records().iter().all(|e| e["id"] == json!({"row": 7})),
        "{}",
        r.describe()
    );
}

/// A self-hosted Coze Studio before v0.3.0 sent lower-case event names; they read the
/// same (and are written as sent).
#[test]
fn lower_case_event_names_read_the_same() {
    let sb = logged_in_as("wf-lower", Dialect::Studio);
    spec(
        &sb,
        json!({"workflow_id": "l", "lowercase_events": true, "messages": 2,
        "question": "哪里?", "options": ["北京"]}),
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "l", "--params", "{}", "-o", "events"]),
        "",
    );
    r.expect_code(7);
    let names: Vec<Value> = r.records().iter().map(|e| e["event"].clone()).collect();
    assert_eq!(
        names,
        [
            json!("message"),
            json!("message"),
            json!("message"),
            json!("interrupt"),
            Value::Null
        ],
        "{}",
        r.describe()
    );
    let interrupt = &of(&r, "interrupt")[0];
    assert_eq!(
        (&interrupt["question"], &interrupt["options"]),
        (&json!("哪里?"), &json!(["北京"]))
    );
}

// ---------------------------------------------------------------- interrupts

fn an_interrupt_in_a_pipeline_waits_and_resume_answers_it(d: Dialect) {
    let sb = logged_in_as("wf-interrupt", d);
    spec(
        &sb,
        json!({"workflow_id": "q", "question": "哪个城市?", "options": ["北京", "上海"],
        "messages": 1}),
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "q", "--param", "a=1", "-o", "results"]),
        "",
    );
    r.expect_code(7);
    let interrupt = of(&r, "interrupt");
    assert_eq!(interrupt.len(), 1, "{}", r.describe());
    let i = &interrupt[0];
    assert_eq!(i["workflow_id"], "q");
    assert_eq!(i["question"], "哪个城市?");
    assert_eq!(i["options"], json!(["北京", "上海"]));
    assert_eq!(i["interrupt_type"], 2);
    assert_eq!(i["resumes"], 0);
    let event_id = i["event_id"].as_str().unwrap().to_owned();
    let execute_id = i["execute_id"].as_str().unwrap();
    assert!(event_id.starts_with(&format!("{execute_id}/")), "{i}");
    let res = result(&r);
    assert_eq!(
        (&res["status"], &res["error"]["exit_code"]),
        (&json!("interrupted"), &json!(7))
    );
    assert_eq!(res["id"], i["id"]);
    assert!(
        r.stderr
            .contains("the workflow waits for an answer to \"哪个城市?\" (北京 | 上海)"),
        "{}",
        r.describe()
    );
    // An answer that fits none of the options: asked again, a new event id.
    let r2 = run(
        wf(&sb).args(["resume", "--answer", "广州", "-o", "results"]),
        &r.stdout,
    );
    r2.expect_code(7);
    let again = &of(&r2, "interrupt")[0];
    assert_eq!(again["resumes"], 1);
    assert_ne!(again["event_id"], event_id.as_str());
    assert_eq!(again["id"], i["id"]);
    // One that fits: the run ends, its output carrying the answer.
    let r3 = run(
        wf(&sb).args(["resume", "--answer", "上海", "-o", "results"]),
        &r2.stdout,
    );
    r3.ok();
    let done = result(&r3);
    assert_eq!(done["status"], "success", "{}", r3.describe());
    assert_eq!(done["output"]["answer"], "上海");
    assert_eq!(done["id"], i["id"]);
    let seen = &runs(&sb)[0];
    assert_eq!(
        (&seen["resumes"], &seen["answers"]),
        (&json!(2), &json!(["广州", "上海"]))
    );
    assert_eq!(requests(&sb, "workflow.stream_resume"), 2);
    // The same with --event-id, in events mode: the resumed stream's ids start at 0.
    let r = run(
        wf(&sb).args(["run", "--workflow", "q", "--param", "a=2", "-o", "events"]),
        "",
    );
    r.expect_code(7);
    let event_id = of(&r, "interrupt")[0]["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(
        wf(&sb).args([
            "resume",
            "--answer",
            "北京",
            "--workflow",
            "q",
            "--event-id",
            &event_id,
            "-o",
            "events",
        ]),
        "",
    );
    r.ok();
    let events = r.records();
    assert_eq!(events[0]["seq"], "0", "{}", r.describe());
    assert_eq!(events.last().unwrap()["event"], "Done");
    // -o text writes text only: no record among it; the message names the command
    // that answers, which does.
    let r = run(
        wf(&sb).args(["run", "--workflow", "q", "--param", "a=3", "-o", "text"]),
        "",
    );
    r.expect_code(7);
    assert!(!r.stdout.contains("{\"type\""), "{}", r.describe());
    let command = r
        .stderr
        .split_once(": coze-workflow resume ")
        .and_then(|(_, rest)| rest.split_once(" answers it"))
        .map(|(args, _)| args.to_owned())
        .unwrap_or_else(|| panic!("no command: {}", r.describe()));
    let args: Vec<&str> = command.split(' ').collect();
    assert_eq!(
        (args.len(), args[0], args[1], args[2], &args[4..]),
        (
            6,
            "--workflow",
            "q",
            "--event-id",
            &["--answer", "TEXT"][..]
        ),
        "{}",
        r.describe()
    );
    let mut resume = vec!["resume"];
    resume.extend(&args[..4]);
    resume.extend(["--answer", "上海", "-o", "text"]);
    let r = run(wf(&sb).args(&resume), "");
    r.ok();
    assert!(r.stdout.contains("上海"), "{}", r.describe());
    // An event id that is no open interrupt: the server's 4000.
    let r = run(
        wf(&sb).args([
            "resume",
            "--answer",
            "北京",
            "--workflow",
            "q",
            "--event-id",
            &event_id,
        ]),
        "",
    );
    r.expect_code(1);
    assert!(r.stderr.contains("code 4000"), "{}", r.describe());
}

/// A coze.cn run started without streaming is answered through /v1/workflows/resume,
/// as its record says (Studio cannot interrupt a sync run: 6039, what to do).
fn a_sync_runs_interrupt(d: Dialect) {
    let sb = logged_in_as("wf-sync-interrupt", d);
    spec(
        &sb,
        json!({"workflow_id": "q", "question": "Your name?", "interrupt_type": 5}),
    );
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "q",
            "--params",
            "{}",
            "--no-stream",
            "-o",
            "results",
        ]),
        "",
    );
    if sb.studio() {
        r.expect_code(1);
        assert!(r.stderr.contains("code 6039"), "{}", r.describe());
        assert!(
            r.stderr.contains("run it streamed (without --no-stream)"),
            "{}",
            r.describe()
        );
        return;
    }
    r.expect_code(7);
    let i = &of(&r, "interrupt")[0];
    assert_eq!(
        (&i["sync"], &i["interrupt_type"], &i["question"]),
        (&json!(true), &json!(5), &json!("Your name?"))
    );
    let r = run(
        wf(&sb).args(["resume", "--answer", "Ada", "-o", "results"]),
        &r.stdout,
    );
    r.ok();
    assert_eq!(result(&r)["output"]["answer"], "Ada");
    assert_eq!(requests(&sb, "workflow.resume"), 1);
    assert_eq!(requests(&sb, "workflow.stream_resume"), 0);
    // -o text: the command named answers an input node, the way the run was made.
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "q",
            "--params",
            "{}",
            "--no-stream",
            "-o",
            "text",
        ]),
        "",
    );
    r.expect_code(7);
    assert!(
        r.stderr
            .contains(" --interrupt-type 5 --no-stream --answer TEXT answers it"),
        "{}",
        r.describe()
    );
}

/// An async run that stops at a question: `status` shows it waiting (exit 7), with the
/// record `resume` answers through /v1/workflows/resume, whose answer is followed to
/// the end. A Studio's history names no status for such a run (`<UNSET>`) and holds no
/// question: it is waiting all the same, and the message says it cannot be answered.
fn an_async_runs_question_is_answered_through_its_history(d: Dialect) {
    let sb = logged_in_as("wf-async-interrupt", d);
    spec(&sb, json!({"workflow_id": "73", "question": "Your name?"}));
    let r = run(
        wf(&sb).args(["run", "--workflow", "73", "--params", "{}", "--async"]),
        "",
    );
    r.ok();
    let execute_id = of(&r, "run_started")[0]["execute_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(
        wf(&sb).args(["status", "--workflow", "73", &execute_id, "--wait"]),
        "",
    );
    r.expect_code(7);
    assert_eq!(result(&r)["status"], "interrupted", "{}", r.describe());
    if sb.studio() {
        assert!(of(&r, "interrupt").is_empty(), "{}", r.describe());
        assert!(
            r.stderr.contains(&format!(
                "run {execute_id} waits for an answer, but the server's history does not \
                 say to what"
            )),
            "{}",
            r.describe()
        );
        assert!(
            r.stderr.contains("run it streamed (without --async)"),
            "{}",
            r.describe()
        );
        return;
    }
    let i = &of(&r, "interrupt")[0];
    assert_eq!(
        (&i["question"], &i["sync"]),
        (&json!("Your name?"), &json!(true))
    );
    let r = run(
        wf(&sb).args(["resume", "--answer", "Ada", "-o", "results"]),
        &r.stdout,
    );
    r.ok();
    let res = result(&r);
    assert_eq!(
        (&res["status"], &res["output"]["answer"]),
        (&json!("success"), &json!("Ada")),
        "{}",
        r.describe()
    );
    assert_eq!(res["execute_id"], execute_id.as_str());
    assert_eq!(requests(&sb, "workflow.resume"), 1);
}

#[test]
fn a_fourth_answer_is_refused_and_a_resume_needs_an_interrupt() {
    let sb = logged_in("wf-fourth");
    spec(
        &sb,
        json!({"workflow_id": "q", "question": "which?", "options": ["a"]}),
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "q", "--params", "{}", "-o", "results"]),
        "",
    );
    r.expect_code(7);
    // Three answers that do not fit: the server ends the run with an Error (exit 1).
    let mut input = r.stdout.clone();
    for n in 1..=3 {
        let r = run(
            wf(&sb).args(["resume", "--answer", "z", "-o", "results"]),
            &input,
        );
        if n < 3 {
            r.expect_code(7);
            assert_eq!(of(&r, "interrupt")[0]["resumes"], n);
        } else {
            r.expect_code(1);
            assert!(r.stderr.contains("after 3 resumes"), "{}", r.describe());
        }
        input = r.stdout;
    }
    // A record that says 3 answers were taken: refused here, before any request.
    let before = requests(&sb, "workflow.stream_resume");
    let record = json!({"type": "interrupt", "workflow_id": "q", "event_id": "7404830425073352713/1",
        "interrupt_type": 2, "question": "which?", "options": ["a"], "resumes": 3});
    let r = run(
        wf(&sb).args(["resume", "--answer", "a"]),
        &format!("{record}\n"),
    );
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("stdin line 1: interrupt record: the run has taken 3 answers already"),
        "{}",
        r.describe()
    );
    // Nothing to answer.
    let r = run(wf(&sb).args(["resume", "--answer", "a"]), "");
    r.expect_code(3);
    assert!(
        r.stderr.contains("no interrupt to answer"),
        "{}",
        r.describe()
    );
    assert_eq!(requests(&sb, "workflow.stream_resume"), before);
}

/// At a terminal (a real pty, through script(1)) the question is shown with its
/// options numbered, and the answer typed is sent: a number picks an option.
#[test]
fn an_interrupt_answered_at_a_terminal() {
    let sb = logged_in("wf-tty");
    spec(
        &sb,
        json!({"workflow_id": "q", "question": "哪个城市?", "options": ["北京", "上海"]}),
    );
    let inner = format!(
        "{} run --workflow q --param a=1 -o results",
        bin("coze-workflow").display()
    );
    let mut child = sb
        .cmd("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let screen = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let started = Instant::now();
    // A person answers once asked: so does this test.
    while !screen().contains("(3 of 3 answers left; Ctrl-D leaves it unanswered): ") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never asked:\n{}",
            screen()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"2\n").unwrap();
    let out = wait_with_deadline(
        child,
        Duration::from_secs(20),
        "coze-workflow at a terminal",
    );
    drop(stdin);
    reader.join().unwrap();
    let text = screen();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("coze-workflow: the workflow asks: 哪个城市?"),
        "{text}"
    );
    assert!(
        text.contains("  1. 北京") && text.contains("  2. 上海"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("{\"type\":\"result\""))
        .unwrap_or_else(|| panic!("no result:\n{text}"));
    let res: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(res["status"], "success");
    assert_eq!(res["output"]["answer"], "上海", "option 2");
    assert!(!text.contains("{\"type\":\"interrupt\""), "{text}");
    assert_eq!(runs(&sb)[0]["answers"], json!(["上海"]));
}

// ---------------------------------------------------------------- errors

fn errors_say_what_to_do(d: Dialect) {
    let sb = logged_in_as("wf-errors", d);
    spec(&sb, json!({"workflow_id": "np", "published": false}));
    for how in [None, Some("--no-stream")] {
        let mut args = vec!["run", "--workflow", "np", "--params", "{}"];
        args.extend(how);
        let r = run(wf(&sb).args(&args), "");
        r.expect_code(1);
        let code = match (sb.studio(), how) {
            (false, _) => "4200",
            (true, None) => "720702011",
            (true, Some(_)) => "6031",
        };
        assert!(
            r.stderr.contains(&format!("code {code}")),
            "{}",
            r.describe()
        );
        assert!(
            r.stderr
                .contains("(publish the workflow in the Coze editor, then run it again"),
            "{}",
            r.describe()
        );
    }
    spec(
        &sb,
        json!({"workflow_id": "rq", "required": ["city"], "async": false}),
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "rq", "--params", "{}"]),
        "",
    );
    r.expect_code(1);
    assert!(r.stderr.contains("city"), "{}", r.describe());
    assert!(
        r.stderr
            .contains("check the parameters against the workflow's start node"),
        "{}",
        r.describe()
    );
    if !sb.studio() {
        let r = run(
            wf(&sb).args(["run", "--workflow", "rq", "--param", "city=x", "--async"]),
            "",
        );
        r.expect_code(1);
        assert!(r.stderr.contains("code 6003"), "{}", r.describe());
        assert!(
            r.stderr
                .contains("run it streamed instead (without --async)"),
            "{}",
            r.describe()
        );
    }
    // An Error event: exit 1 with its code and message; its trace page named where
    // the server gave one (Studio's Error event, any sync failure).
    spec(
        &sb,
        json!({"workflow_id": "er", "error": {"code": 5000, "message": "boom"}, "messages": 2}),
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "er", "--params", "{}", "-o", "text"]),
        "",
    );
    r.expect_code(1);
    assert_eq!(
        r.stdout,
        format!("{}{}", message(0), message(1)),
        "the partial text is kept"
    );
    assert!(
        r.stderr.contains("the workflow failed: code 5000: boom"),
        "{}",
        r.describe()
    );
    if sb.studio() {
        assert!(r.stderr.contains("(debug_url: http://"), "{}", r.describe());
    }
    let r = run(
        wf(&sb).args([
            "run",
            "--workflow",
            "er",
            "--params",
            "{}",
            "--no-stream",
            "-o",
            "events",
        ]),
        "",
    );
    r.expect_code(1);
    assert!(r.stderr.contains("code 5000: boom"), "{}", r.describe());
    assert!(r.stderr.contains("(debug_url: http://"), "{}", r.describe());
    let err = &of(&r, "error")[0];
    assert_eq!((&err["code"], &err["exit_code"]), (&json!(5000), &json!(1)));
}

// ---------------------------------------------------------------- bad input

fn bad_input_is_refused_naming_it(d: Dialect) {
    let sb = logged_in_as("wf-bad", d);
    // A line that is not a JSON object: exit 3 naming it; the lines before it ran.
    let r = run(
        wf(&sb).args(["run", "--workflow", "73"]),
        "{\"a\":1}\n[1,2]\n{\"a\":3}\n",
    );
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("coze-workflow: stdin line 2: expected a JSON object, found an array"),
        "{}",
        r.describe()
    );
    assert_eq!(runs(&sb).len(), 1, "the run stops at the bad line");
    // With -o results the bad line is a record of its own and the others run.
    let r = run(
        wf(&sb).args(["run", "--workflow", "73", "-o", "results"]),
        "{\"a\":1}\nnot json\n{\"a\":3}\n",
    );
    r.expect_code(3);
    let statuses: Vec<Value> = of(&r, "result")
        .iter()
        .map(|x| x["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!("success"), json!("invalid"), json!("success")],
        "{}",
        r.describe()
    );
    // A line that is not UTF-8 is one bad line too: the lines after it still run.
    let r = run_bytes(
        wf(&sb).args(["run", "--workflow", "73", "-o", "results"]),
        b"\xff\xfe{}\n{\"a\":4}\n",
    );
    r.expect_code(3);
    let results = of(&r, "result");
    let statuses: Vec<&Value> = results.iter().map(|x| &x["status"]).collect();
    assert_eq!(
        statuses,
        [&json!("invalid"), &json!("success")],
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("stdin line 1: not valid UTF-8"),
        "{}",
        r.describe()
    );
    assert_eq!(results[1]["output"], json!({"output": {"a": 4}}));
    // Usage errors: before any request (the fake counts every API request it serves).
    let before = runs(&sb).len();
    let requests_before = sb.stats()["requests"].clone();
    for args in [
        &["run", "--workflow", "73", "--param", "novalue"][..],
        &[
            "run",
            "--workflow",
            "73",
            "--bot",
            "1",
            "--app",
            "2",
            "--params",
            "{}",
        ],
        &["run", "--workflow", "73", "--param", "n:=[1,"],
    ] {
        let r = run(wf(&sb).args(args), "{}\n");
        r.expect_code(2);
        assert!(
            r.stderr.ends_with("(see coze-workflow --help)\n"),
            "{}",
            r.describe()
        );
    }
    assert_eq!(runs(&sb).len(), before);
    assert_eq!(
        sb.stats()["requests"],
        requests_before,
        "a usage error sent a request"
    );
    // An output that is not JSON is kept as text, never an error.
    spec(&sb, json!({"workflow_id": "t", "output": "text"}));
    let r = run(
        wf(&sb).args(["run", "--workflow", "t", "--param", "a=1", "-o", "results"]),
        "",
    );
    r.ok();
    assert_eq!(result(&r)["output"], "Echo: {\"a\":\"1\"}");
}

/// A stream cut in the middle of a run: exit 5, and what was printed stays printed
/// (text as it came; the result record says the run failed, and why); the run is not
/// run again.
fn a_cut_stream_keeps_the_partial_output(d: Dialect) {
    let sb = logged_in_as("wf-cut", d);
    spec(&sb, json!({"workflow_id": "c", "messages": 5}));
    sb.fake.push_fault(
        "workflow.stream_run",
        json!({"type": "cut", "after_events": 2}),
        1,
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "c", "--params", "{}", "-o", "text"]),
        "",
    );
    r.expect_code(5);
    assert_eq!(
        r.stdout,
        format!("{}{}", message(0), message(1)),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr
            .contains("the workflow's stream was cut after 2 events"),
        "{}",
        r.describe()
    );
    sb.fake.push_fault(
        "workflow.stream_run",
        json!({"type": "reset_mid_body", "after_events": 3}),
        1,
    );
    let r = run(
        wf(&sb).args(["run", "--workflow", "c", "--params", "{}", "-o", "results"]),
        "",
    );
    r.expect_code(5);
    let res = result(&r);
    assert_eq!(
        (&res["status"], &res["error"]["exit_code"]),
        (&json!("failed"), &json!(5))
    );
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the workflow's stream was cut after 3 events"),
        "{res}"
    );
    assert_eq!(
        requests(&sb, "workflow.stream_run"),
        2,
        "a cut run is not run again"
    );
}

// ---------------------------------------------------------------- stopped from outside

/// `| head -1` mid-stream ends the run quietly with exit 0, in a single run as in a
/// batch writing results, where the runs in flight (a minute each, writing nothing
/// until their end) stop at once too; Ctrl-C ends a run with 130 and one line saying
/// so.
fn a_closed_stdout_or_ctrl_c_ends_the_run(d: Dialect) {
    let sb = logged_in_as("wf-stopped", d);
    spec(
        &sb,
        json!({"workflow_id": "73", "messages": 1200, "delay_ms": 50}),
    );
    // The first run is quick: its result is the line head takes.
    let batch = format!(
        "{}\n{}",
        json!({"type": "run", "id": "quick", "workflow_id": "74", "parameters": {}}),
        run_lines(7)
    );
    for (args, input) in [
        ("run --workflow 73 --param a=1 -o events", String::new()),
        ("run --workflow 73 --param a=1 -o text", String::new()),
        ("run --workflow 73 -o results --jobs 4", batch),
    ] {
        let script = format!(
            "'{}' {args} | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
            bin("coze-workflow").display()
        );
        let started = Instant::now();
        let r = run(sb.cmd("bash").args(["-c", &script]), &input);
        r.ok();
        assert_eq!(r.stderr, "status=0\n", "{args}: {}", r.describe());
        assert_eq!(r.stdout.lines().count(), 1, "{args}: {}", r.describe());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{args}: it ran on into a closed pipe ({:?})",
            started.elapsed()
        );
    }
    let (child, reader, what) = crate::chat::spawn_until_output(
        {
            let mut c = wf(&sb);
            c.args(["run", "--workflow", "73", "--param", "a=1", "-o", "events"]);
            c
        },
        "",
    );
    sigint(child.id());
    let out = wait_with_deadline(child, Duration::from_secs(20), &what);
    let stdout = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}\n{stdout}");
    assert_eq!(stderr, "coze-workflow: interrupted\n", "{stdout}");
    assert!(stdout.lines().count() < 400, "it stopped mid-run");
}

/// `n` lines of parameters, each its own.
fn run_lines(n: usize) -> String {
    (0..n)
        .map(|i| format!("{}\n", json!({ "row": i })))
        .collect()
}

both_dialects!(
    parameters_in_every_form,
    stdin_lines_objects_run_records_and_file_records,
    a_file_param_is_uploaded_and_passed_in_the_servers_form,
    streamed_sync_and_async_runs_and_status_wait,
    the_three_output_modes,
    an_interrupt_in_a_pipeline_waits_and_resume_answers_it,
    a_sync_runs_interrupt,
    an_async_runs_question_is_answered_through_its_history,
    errors_say_what_to_do,
    bad_input_is_refused_naming_it,
    a_cut_stream_keeps_the_partial_output,
    a_closed_stdout_or_ctrl_c_ends_the_run,
);
