//! coze-workflow as a batch runner: a thousand runs on eight jobs through injected 5xx
//! and 429 (every id ends exactly once), a run SIGKILLed halfway and resumed with
//! --resume/--append, --ordered, the summary record and the exit status of the first
//! failure.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// `n` run records with ids `r0..`, each its own parameters.
fn run_records(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type": "run", "id": format!("r{i}"), "parameters": {"row": i, "name": format!("行 {i}")}})
            )
        })
        .collect()
}

fn fault(sb: &Sandbox, endpoint: &str, fault: Value, probability: f64) {
    sb.admin_post(
        "/_fake/fault",
        &json!({"endpoint": endpoint, "fault": fault, "seed": 17, "probability": probability}),
    );
}

/// Each result record by id; panics on a duplicate.
fn by_id(records: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for r in records.iter().filter(|r| r["type"] == "result") {
        let id = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {r}"))
            .to_owned();
        assert!(
            map.insert(id.clone(), r.clone()).is_none(),
            "{id} ended twice"
        );
    }
    map
}

#[test]
fn a_thousand_runs_on_eight_jobs_through_5xx_and_429() {
    let sb = logged_in("wf-batch-1000");
    // 5 % of the runs answer 500, 3 % answer 429 (with Retry-After) before they start.
    fault(
        &sb,
        "workflow.stream_run",
        json!({"type": "http", "status": 500}),
        0.05,
    );
    fault(
        &sb,
        "workflow.stream_run",
        json!({"type": "http", "status": 429, "retry_after": 1}),
        0.03,
    );
    let r = run_deadline(
        sb.cmd("coze-workflow").args([
            "run",
            "--workflow",
            "73",
            "-o",
            "results",
            "--jobs",
            "8",
            "--retries",
            "8",
        ]),
        &run_records(1000),
        Duration::from_secs(240),
    );
    r.ok();
    let results = by_id(&r.records());
    assert_eq!(results.len(), 1000, "every id ended exactly once");
    for i in 0..1000 {
        let res = &results[&format!("r{i}")];
        assert_eq!(res["status"], "success", "{res}");
        assert_eq!(
            res["output"],
            json!({"output": {"row": i, "name": format!("行 {i}")}}),
            "each result is its own run's"
        );
    }
    // Every run started once on the server: a refused request started nothing.
    let runs = sb.fake.workflows()["runs"].as_array().unwrap().len();
    assert_eq!(runs, 1000);
    let summary: Value = serde_json::from_str(r.stderr.lines().last().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (&summary["runs"], &summary["completed"], &summary["failed"]),
        (&json!(1000), &json!(1000), &json!(0))
    );
    assert_eq!(summary["by_status"], json!({"success": 1000}));
    assert!(summary["retries"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["tokens"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn a_batch_killed_halfway_resumes_with_every_id_exactly_once() {
    let sb = logged_in("wf-batch-resume");
    let file = sb.path("results.jsonl");
    let input = run_records(120);
    sb.fake
        .set_workflow(json!({"workflow_id": "73", "messages": 2, "delay_ms": 20}))
        .unwrap();
    let args = [
        "run",
        "--workflow",
        "73",
        "-o",
        "results",
        "--jobs",
        "4",
        "--resume",
        "results.jsonl",
        "--append",
    ];
    let mut child = sb
        .cmd("coze-workflow")
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
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL, halfway
    child.wait().unwrap();
    let before = std::fs::read_to_string(&file).unwrap();
    let done_before = before.lines().filter(|l| l.contains("\"success\"")).count();
    assert!(
        (30..120).contains(&done_before),
        "killed halfway: {done_before} done"
    );

    sb.fake.set_workflow(json!({"workflow_id": "73"})).unwrap();
    let r = run(sb.cmd("coze-workflow").args(args), &input);
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
    let results = by_id(&records);
    assert_eq!(results.len(), 120);
    assert!(results.values().all(|a| a["status"] == "success"));
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
    let r = run(sb.cmd("coze-workflow").args(args), &input);
    r.ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

/// --ordered writes in input order; the exit status is the earliest failure's in the
/// input, whatever finished first (the slow failure of line 1, exit 1, decides over the
/// bad line 3, exit 3, found at once); --summary puts the record on stdout.
#[test]
fn ordered_output_and_the_first_failure_decides() {
    let sb = logged_in("wf-batch-order");
    sb.fake
        .set_workflow(json!({"workflow_id": "slow", "delay_ms": 300,
            "error": {"code": 5000, "message": "boom"}}))
        .unwrap();
    sb.fake
        .set_workflow(json!({"workflow_id": "np", "published": false}))
        .unwrap();
    let input = [
        json!({"type": "run", "id": "a", "workflow_id": "slow", "parameters": {}}).to_string(),
        json!({"type": "run", "id": "b", "workflow_id": "np", "parameters": {}}).to_string(),
        "[\"not a run\"]".to_owned(),
        json!({"type": "run", "id": "c", "workflow_id": "73", "parameters": {}}).to_string(),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>();
    let r = run(
        sb.cmd("coze-workflow").args([
            "run",
            "-o",
            "results",
            "--jobs",
            "3",
            "--ordered",
            "--summary",
        ]),
        &input,
    );
    r.expect_code(1);
    let records = r.records();
    let ids: Vec<&str> = records
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(ids[..2], ["a", "b"], "{}", r.describe());
    assert!(ids[2].starts_with("sha256:"), "{}", r.describe());
    assert_eq!(ids[3..], ["c", "-"], "{}", r.describe());
    let statuses: Vec<&Value> = records.iter().map(|v| &v["status"]).collect();
    assert_eq!(
        statuses[..4],
        [
            &json!("failed"),
            &json!("failed"),
            &json!("invalid"),
            &json!("success")
        ]
    );
    assert_eq!(records[0]["error"]["code"], 5000);
    assert_eq!(records[1]["error"]["code"], 4200);
    assert_eq!(records[2]["error"]["exit_code"], 3);
    let summary = &records[4];
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        summary["by_status"],
        json!({"failed": 2, "invalid": 1, "success": 1})
    );
    assert_eq!(summary["exit_code"], 1);
    assert!(
        r.stderr.contains("stdin line 3:") && r.stderr.contains("run on line 1:"),
        "{}",
        r.describe()
    );
}
