//! Integration tests of coze-fake's workflows over real sockets, in both dialects, with
//! the raw HTTP/1.1 client of `common` so the wire is checked byte for byte: the
//! streamed, sync and async runs, the run history, the `/_fake/workflow` steering, and
//! the faults applied to the workflow endpoints.

mod common;

use std::time::{Duration, Instant};

use common::{call, Conn, Resp};
use coze_fake::{Dialect, Fake, Options};
use serde_json::{json, Value};

/// A PAT Studio's shape accepts (`pat_` and 64 hex digits); coze takes it as well.
const PAT: &str = "pat_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const FIRST: u64 = 7_404_830_425_073_352_713;
const WF: &str = "7400000000000000100";

fn start(dialect: Dialect) -> Fake {
    Fake::start(Options {
        static_tokens: vec![PAT.into()],
        dialect,
        ..Options::default()
    })
    .unwrap()
}

fn post(fake: &Fake, path: &str, body: &Value) -> Resp {
    common::post_json(fake, path, Some(PAT), body)
}

fn get(fake: &Fake, path: &str) -> Resp {
    common::get(fake, path, PAT)
}

fn set(fake: &Fake, spec: Value) {
    let r = common::post_json(fake, "/_fake/workflow", None, &spec);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn run_body(params: Value) -> Value {
    json!({"workflow_id": WF, "parameters": params})
}

/// One event of a workflow stream: its `id:`, name and data.
#[derive(Debug)]
struct Ev {
    id: Option<u64>,
    name: String,
    data: String,
}

impl Ev {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// The events of a stream written as `field: value` lines, each event ending with a
/// blank line; a line of any other shape fails the test.
fn parse(body: &str) -> Vec<Ev> {
    assert!(
        body.is_empty() || body.ends_with("\n\n"),
        "unterminated: {body:?}"
    );
    body.split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let mut ev = Ev {
                id: None,
                name: String::new(),
                data: String::new(),
            };
            for line in block.lines() {
                let (k, v) = line
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("bad line {line:?}"));
                match k {
                    "id" => ev.id = Some(v.parse().unwrap()),
                    "event" => ev.name = v.to_string(),
                    "data" => ev.data = v.to_string(),
                    _ => panic!("bad field {line:?}"),
                }
            }
            ev
        })
        .collect()
}

fn stream(fake: &Fake, body: &Value) -> (Resp, Vec<Ev>) {
    let r = post(fake, "/v1/workflow/stream_run", body);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8"),
        "{}",
        r.text()
    );
    let evs = parse(&r.text());
    (r, evs)
}

fn names(evs: &[Ev]) -> Vec<&str> {
    evs.iter().map(|e| e.name.as_str()).collect()
}

fn ids(evs: &[Ev]) -> Vec<u64> {
    evs.iter().map(|e| e.id.unwrap()).collect()
}

fn workflows(fake: &Fake) -> Value {
    let r = call(fake, "GET", "/_fake/workflow", &[], b"");
    assert_eq!(r.status, 200);
    r.json()
}

fn debug_url(fake: &Fake, execute_id: u64) -> String {
    format!(
        "{}/work_flow?execute_id={execute_id}&space_id=7309760604397600768&workflow_id={WF}",
        fake.base_url()
    )
}

/// The run history of `execute_id` of workflow WF, on the dialect's path.
fn history(fake: &Fake, execute_id: u64) -> Resp {
    if studio_of(fake) {
        get(
            fake,
            &format!("/v1/workflow/get_run_history?workflow_id={WF}&execute_id={execute_id}"),
        )
    } else {
        get(
            fake,
            &format!("/v1/workflows/{WF}/run_histories/{execute_id}"),
        )
    }
}

/// Whether `fake` speaks Studio's dialect (its logid header says so).
fn studio_of(fake: &Fake) -> bool {
    call(fake, "GET", "/nothing", &[], b"")
        .header("X-Log-ID")
        .is_some()
}

#[test]
fn a_default_run_streams_one_message_then_the_echo_then_done() {
    let fake = start(Dialect::Coze);
    let params = json!({"city": "杭州", "n": 3});
    let (r, evs) = stream(&fake, &run_body(params.clone()));
    assert!(r.text().starts_with("id: 0\nevent: Message\ndata: {"));
    assert_eq!(names(&evs), ["Message", "Message", "Done"]);
    assert_eq!(ids(&evs), [0, 1, 2]);
    assert_eq!(
        evs[0].data,
        r#"{"content":"0: 你好 🌏\n","node_is_finish":true,"node_seq_id":"0","node_title":"Message"}"#
    );
    let end = evs[1].json();
    assert_eq!(end["node_title"], "End");
    assert_eq!(end["node_is_finish"], true);
    let output = end["content"].as_str().unwrap();
    assert_eq!(output, json!({"output": params}).to_string());
    let input = params.to_string().chars().count() as u64;
    let out = output.chars().count() as u64;
    assert_eq!(
        end["usage"],
        json!({"input_count": input, "token_count": input + out, "output_count": out})
    );
    assert_eq!(end["cost"], "0.00");
    assert_eq!(evs[2].json(), json!({"debug_url": debug_url(&fake, FIRST)}));
    let book = fake.workflows();
    assert_eq!(book["runs"][0]["execute_id"], FIRST.to_string());
    assert_eq!(book["runs"][0]["mode"], "stream");
    assert_eq!(book["runs"][0]["status"], "Success");
    assert_eq!(book["runs"][0]["parameters"], params);
}

#[test]
fn messages_count_within_their_node_and_take_their_delay() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(dialect);
        set(
            &fake,
            json!({"workflow_id": WF, "messages": 4, "delay_ms": 100}),
        );
        let t = Instant::now();
        let (_, evs) = stream(&fake, &run_body(json!({})));
        assert!(t.elapsed() >= Duration::from_millis(400), "{dialect:?}");
        assert_eq!(
            names(&evs),
            ["Message"; 5]
                .iter()
                .chain(&["Done"])
                .copied()
                .collect::<Vec<_>>()
        );
        assert_eq!(ids(&evs), [0, 1, 2, 3, 4, 5]);
        for (i, e) in evs[..4].iter().enumerate() {
            let m = e.json();
            assert_eq!(m["content"], format!("{i}: 你好 🌏\n"));
            assert_eq!(m["node_seq_id"], i.to_string());
            assert_eq!(m["node_is_finish"], i == 3);
            assert_eq!(m["node_title"], "Message");
        }
        let end = evs[4].json();
        assert_eq!(end["node_seq_id"], "0");
        assert_eq!(end["node_title"], "End");
        if dialect == Dialect::Studio {
            // streamRunData's keys, in its order, and no usage.
            let first = evs[0].json();
            let keys: Vec<&str> = first
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "content",
                    "content_type",
                    "node_seq_id",
                    "node_id",
                    "node_is_finish",
                    "node_type",
                    "node_title"
                ]
            );
            assert!(end.get("usage").is_none());
            assert_eq!(end["node_type"], "End");
            assert!(end["token"].as_u64().unwrap() > 0);
        }
    }
}

#[test]
fn output_modes_encode_once_twice_or_not_at_all() {
    let fake = start(Dialect::Coze);
    let params = json!({"q": "x"});
    let inner = json!({"output": params}).to_string();
    set(&fake, json!({"workflow_id": WF, "output": "double"}));
    let (_, evs) = stream(&fake, &run_body(params.clone()));
    let content = evs[1].json()["content"].as_str().unwrap().to_string();
    let outer: Value = serde_json::from_str(&content).unwrap();
    let answer: Value = serde_json::from_str(outer["Output"].as_str().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"content_type":1,"data":inner,"original_result":null,"type_for_model":2})
    );
    set(&fake, json!({"workflow_id": WF, "output": "text"}));
    let r = post(&fake, "/v1/workflow/run", &run_body(params.clone())).json();
    assert_eq!(r["data"], r#"Echo: {"q":"x"}"#);
    assert!(serde_json::from_str::<Value>(r["data"].as_str().unwrap()).is_err());
}

#[test]
fn a_sync_run_answers_with_data_usage_and_debug_url() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "messages": 3, "delay_ms": 100}),
    );
    let params = json!({"a": [1, 2]});
    let t = Instant::now();
    let r = post(&fake, "/v1/workflow/run", &run_body(params.clone()));
    assert!(t.elapsed() >= Duration::from_millis(300));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["code", "msg", "data", "debug_url", "usage", "detail"]
    );
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"], json!({"output": params}).to_string());
    assert_eq!(v["debug_url"], debug_url(&fake, FIRST));
    assert_eq!(v["detail"]["logid"], r.header("x-tt-logid").unwrap());
    assert!(v["usage"]["token_count"].as_u64().unwrap() > 0);
    // A string holding the object is the same parameters.
    let s = post(
        &fake,
        "/v1/workflow/run",
        &json!({"workflow_id": WF, "parameters": params.to_string()}),
    )
    .json();
    assert_eq!(s["data"], v["data"]);
    let h = history(&fake, FIRST).json();
    assert_eq!(h["data"][0]["run_mode"], 0);
    assert_eq!(h["data"][0]["execute_status"], "Success");
    assert_eq!(h["data"][0]["output"], v["data"]);
}

#[test]
fn studio_sync_run_has_token_cost_and_nulls_not_usage() {
    let fake = start(Dialect::Studio);
    let r = post(&fake, "/v1/workflow/run", &run_body(json!({"k": "v"})));
    assert_eq!(r.status, 200);
    assert!(r.header("X-Log-ID").is_some());
    let text = r.text();
    let want_prefix = r#"{"code":0,"msg":null,"data":"{\"output\":{\"k\":\"v\"}}","token":"#;
    assert!(text.starts_with(want_prefix), "{text}");
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "code",
            "msg",
            "data",
            "token",
            "cost",
            "debug_url",
            "execute_id",
            "BaseResp"
        ]
    );
    assert_eq!(v["cost"], "0.00000");
    assert_eq!(v["execute_id"], FIRST.to_string());
    assert!(v["BaseResp"].is_null() && v.get("usage").is_none());
}

#[test]
fn an_unpublished_workflow_is_refused_before_any_stream() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "published": false}));
    for path in ["/v1/workflow/run", "/v1/workflow/stream_run"] {
        let r = post(&fake, path, &run_body(json!({})));
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(r.json()["code"], 4200, "{path}");
    }
    let studio = start(Dialect::Studio);
    set(&studio, json!({"workflow_id": WF, "published": false}));
    let r = post(&studio, "/v1/workflow/run", &run_body(json!({})));
    assert_eq!(r.json()["code"], 6031);
    assert!(r.json()["msg"]
        .as_str()
        .unwrap()
        .starts_with("Workflow not published."));
    assert!(r.json()["debug_url"].is_null());
    let r = post(&studio, "/v1/workflow/stream_run", &run_body(json!({})));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        r.json(),
        json!({"code": 720702011, "msg": "Workflow not published. The requested operation cannot be performed on an unpublished workflow. Please publish the workflow and try again."})
    );
    assert_eq!(fake.workflows()["runs"], json!([]));
}

#[test]
fn a_missing_required_parameter_is_refused_naming_it() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "required": ["city", "day"]}),
    );
    let r = post(
        &fake,
        "/v1/workflow/stream_run",
        &run_body(json!({"city": "x", "day": null})),
    );
    assert_eq!(r.json()["code"], 4000);
    assert_eq!(r.json()["msg"], "Missing required parameter: day");
    let (_, evs) = stream(&fake, &run_body(json!({"city": "x", "day": 1})));
    assert_eq!(evs.last().unwrap().name, "Done");
    let studio = start(Dialect::Studio);
    set(&studio, json!({"workflow_id": WF, "required": ["city"]}));
    let sync = post(&studio, "/v1/workflow/run", &run_body(json!({}))).json();
    assert_eq!(sync["code"], 4000);
    assert!(sync["msg"].as_str().unwrap().contains("’city‘"), "{sync}");
    let streamed = post(&studio, "/v1/workflow/stream_run", &run_body(json!({}))).json();
    assert_eq!(streamed["code"], 720702002);
}

#[test]
fn bad_requests_get_each_dialects_answer() {
    let fake = start(Dialect::Coze);
    for body in [
        json!({"parameters": {}}),
        json!({"workflow_id": WF, "parameters": [1]}),
        json!({"workflow_id": WF, "parameters": "not json"}),
        json!({"workflow_id": WF, "bot_id": "1", "app_id": "2"}),
    ] {
        let r = post(&fake, "/v1/workflow/stream_run", &body).json();
        assert_eq!(r["code"], 4000, "{body}");
    }
    let r = common::call(
        &fake,
        "POST",
        "/v1/workflow/run",
        &[("Authorization", &format!("Bearer {PAT}"))],
        b"{",
    );
    assert_eq!(r.json()["code"], 4000);
    let studio = start(Dialect::Studio);
    let r = post(&studio, "/v1/workflow/run", &run_body(json!([1])));
    assert_eq!(r.json()["code"], 4000);
    let r = post(&studio, "/v1/workflow/stream_run", &run_body(json!([1])));
    assert_eq!(r.json()["code"], 720702001);
    let both = json!({"workflow_id": WF, "bot_id": "1", "app_id": "2"});
    let r = post(&studio, "/v1/workflow/run", &both).json();
    assert_eq!(r["code"], 720701013);
    assert!(r["msg"]
        .as_str()
        .unwrap()
        .contains("cannot be set at the same time"));
    let r = common::call(
        &studio,
        "POST",
        "/v1/workflow/run",
        &[("Authorization", &format!("Bearer {PAT}"))],
        b"[]",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], 400);
    // Studio's PAT check comes first.
    let r = common::post_json(
        &studio,
        "/v1/workflow/run",
        Some("pat_nope"),
        &run_body(json!({})),
    );
    assert_eq!(r.json()["code"], 700012006);
}

#[test]
fn a_failing_workflow_ends_with_an_error_event_and_no_done() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(dialect);
        set(
            &fake,
            json!({"workflow_id": WF, "messages": 2, "error": {"code": 720701013, "message": "node failed"}}),
        );
        let (_, evs) = stream(&fake, &run_body(json!({})));
        assert_eq!(names(&evs), ["Message", "Message", "Error"], "{dialect:?}");
        let e = evs[2].json();
        assert_eq!(e["error_code"], 720701013);
        assert_eq!(e["error_message"], "node failed");
        assert_eq!(
            e.get("debug_url").is_some(),
            dialect == Dialect::Studio,
            "{e}"
        );
        let sync = post(&fake, "/v1/workflow/run", &run_body(json!({}))).json();
        assert_eq!(sync["code"], 720701013);
        assert_eq!(sync["msg"], "node failed");
        assert_eq!(sync["debug_url"], debug_url(&fake, FIRST + 1));
        let runs = &fake.workflows()["runs"];
        assert_eq!(runs[0]["status"], "Fail");
        assert_eq!(runs[1]["status"], "Fail");
    }
}

#[test]
fn async_runs_say_running_then_their_outcome() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "running_polls": 2}));
    let body = json!({"workflow_id": WF, "parameters": {"x": 1}, "is_async": true});
    let r = post(&fake, "/v1/workflow/run", &body).json();
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["debug_url", "execute_id", "msg", "detail"]);
    assert_eq!(r["execute_id"], FIRST.to_string());
    let mut seen = Vec::new();
    for _ in 0..4 {
        let h = history(&fake, FIRST).json();
        assert_eq!(h["code"], 0);
        let d = &h["data"][0];
        seen.push(d["execute_status"].as_str().unwrap().to_string());
        assert_eq!(d["run_mode"], 2);
        assert_eq!(d["is_output_trimmed"], false);
    }
    assert_eq!(seen, ["Running", "Running", "Success", "Success"]);
    let d = &history(&fake, FIRST).json()["data"][0];
    assert_eq!(d["output"], r#"{"output":{"x":1}}"#);
    assert_eq!(d["error_code"], "");
    assert_eq!(d["execute_id"], FIRST.to_string());

    set(
        &fake,
        json!({"workflow_id": WF, "running_polls": 0, "error": {"code": 5000, "message": "boom"}}),
    );
    post(&fake, "/v1/workflow/run", &body);
    let d = &history(&fake, FIRST + 1).json()["data"][0];
    assert_eq!(d["execute_status"], "Fail");
    assert_eq!(d["error_code"], "5000");
    assert_eq!(d["error_message"], "boom");

    set(&fake, json!({"workflow_id": WF, "async": false}));
    let r = post(&fake, "/v1/workflow/run", &body).json();
    assert_eq!(r["code"], 6003);
    // Another workflow's run, or none.
    let r = get(
        &fake,
        &format!("/v1/workflows/7400000000000000999/run_histories/{FIRST}"),
    );
    assert_eq!(r.json()["code"], 4200);
    let r = get(&fake, &format!("/v1/workflows/{WF}/run_histories/12"));
    assert_eq!(r.json()["code"], 4200);
}

#[test]
fn studio_history_keeps_64_bit_ids_as_json_numbers() {
    let fake = start(Dialect::Studio);
    set(
        &fake,
        json!({"workflow_id": WF, "async": false, "error": {"code": 720702085, "message": "timeout"}}),
    );
    let body = json!({"workflow_id": WF, "parameters": {"x": 1}, "is_async": true, "bot_id": "7500000000000000001"});
    let r = post(&fake, "/v1/workflow/run", &body).json();
    assert_eq!(r["code"], 0);
    assert_eq!(r["execute_id"], FIRST.to_string());
    let first = history(&fake, FIRST);
    let text = first.text();
    assert!(text.starts_with(&format!(r#"{{"data":[{{"execute_id":{FIRST},"execute_status":"Running","bot_id":7500000000000000001,"connector_id":1024,"#)), "{text}");
    assert!(
        text.ends_with(r#""error_code":null,"error_msg":null}],"BaseResp":null}"#),
        "{text}"
    );
    let d = history(&fake, FIRST).json()["data"][0].clone();
    assert_eq!(d["execute_status"], "Fail");
    assert_eq!(d["error_code"], "720702085");
    assert_eq!(d["error_msg"], "timeout");
    assert_eq!(d["input"], r#"{"x":1}"#);
    assert!(d["output"].is_null() && d.get("usage").is_none() && d.get("log_id").is_some());
    // The sync run renames the internal code as `CodeForOpenAPI` does.
    let sync = post(&fake, "/v1/workflow/run", &run_body(json!({}))).json();
    assert_eq!(sync["code"], 6023);
    // No such run; the coze path is one a Studio does not serve.
    let r = get(
        &fake,
        &format!("/v1/workflow/get_run_history?workflow_id={WF}&execute_id=12"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["code"], 777777775);
    let r = get(
        &fake,
        &format!("/v1/workflow/get_run_history?execute_id={FIRST}"),
    );
    assert_eq!(r.status, 400);
    let r = get(&fake, &format!("/v1/workflows/{WF}/run_histories/{FIRST}"));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["msg"], "missing session_key in cookie");
    let coze = start(Dialect::Coze);
    let r = get(
        &coze,
        &format!("/v1/workflow/get_run_history?workflow_id={WF}&execute_id={FIRST}"),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn pings_come_before_the_end_on_coze_and_never_on_studio() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(dialect);
        set(
            &fake,
            json!({"workflow_id": WF, "messages": 1, "pings": 3, "ping_ms": 50}),
        );
        let t = Instant::now();
        let (_, evs) = stream(&fake, &run_body(json!({})));
        assert!(t.elapsed() >= Duration::from_millis(150));
        let want: &[&str] = match dialect {
            Dialect::Coze => &["Message", "PING", "PING", "PING", "Message", "Done"],
            Dialect::Studio => &["Message", "Message", "Done"],
        };
        assert_eq!(names(&evs), want);
        assert_eq!(ids(&evs), (0..want.len() as u64).collect::<Vec<_>>());
        if dialect == Dialect::Coze {
            assert_eq!(evs[1].data, "{}");
        }
    }
}

#[test]
fn lowercase_events_are_the_names_of_older_studios() {
    let fake = start(Dialect::Studio);
    set(&fake, json!({"workflow_id": WF, "lowercase_events": true}));
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["message", "message", "done"]);
    set(
        &fake,
        json!({"workflow_id": WF, "lowercase_events": true, "error": {"code": 1, "message": "x"}}),
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["message", "error"]);
}

#[test]
fn steering_checks_specs_and_lists_runs_until_reset() {
    let fake = start(Dialect::Coze);
    for (bad, names_field) in [
        (json!({"messages": 2}), "workflow_id"),
        (json!({"workflow_id": WF, "mesages": 2}), "mesages"),
        (json!({"workflow_id": WF, "messages": "2"}), "messages"),
        (json!({"workflow_id": WF, "output": "xml"}), "output"),
        (json!({"workflow_id": WF, "error": {"code": "1"}}), "error"),
        (json!({"workflow_id": WF, "required": [1]}), "required"),
    ] {
        let r = common::post_json(&fake, "/_fake/workflow", None, &bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(names_field),
            "{}",
            r.text()
        );
    }
    set(&fake, json!({"workflow_id": WF, "messages": 2}));
    set(&fake, json!({"workflow_id": WF, "messages": 3}));
    let v = workflows(&fake);
    assert_eq!(v["workflows"][WF]["messages"], 3);
    assert_eq!(v["workflows"][WF]["published"], true);
    stream(&fake, &run_body(json!({"a": 1})));
    post(&fake, "/v1/workflow/run", &json!({"workflow_id": "other"}));
    let runs = workflows(&fake)["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(
        runs[1],
        json!({"execute_id": (FIRST + 1).to_string(), "workflow_id": "other", "mode": "sync",
               "parameters": {}, "resumes": 0, "status": "Success", "answers": []})
    );
    assert_eq!(fake.workflows(), workflows(&fake));
    call(&fake, "POST", "/_fake/reset", &[], b"");
    assert_eq!(workflows(&fake), json!({"workflows": {}, "runs": []}));
    assert!(fake.set_workflow(json!({"workflow_id": 5})).is_err());
}

#[test]
fn faults_apply_to_the_workflow_endpoints() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "messages": 3}));
    fake.push_fault(
        "workflow.run",
        json!({"type":"http","status":429,"retry_after":1}),
        1,
    );
    let r = post(&fake, "/v1/workflow/run", &run_body(json!({})));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"json_body","code":4000,"msg":"json fail"}),
        1,
    );
    let r = post(&fake, "/v1/workflow/stream_run", &run_body(json!({})));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.json()["msg"], "json fail");

    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"cut","after_events":2}),
        1,
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["Message", "Message"]);
    let book = fake.workflows();
    let last = book["runs"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["status"], "Success",
        "a cut stream's run still ends on the server"
    );

    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"error_event","after_events":1,"code":5000,"msg":"boom"}),
        1,
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["Message", "Error"]);
    assert_eq!(ids(&evs), [0, 1]);
    assert_eq!(
        evs[1].json(),
        json!({"error_code": 5000, "error_message": "boom"})
    );
    let book = fake.workflows();
    assert_eq!(
        book["runs"].as_array().unwrap().last().unwrap()["status"],
        "Fail"
    );

    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"malformed","after_events":1}),
        1,
    );
    let r = post(&fake, "/v1/workflow/stream_run", &run_body(json!({})));
    let text = r.text();
    assert!(
        text.contains("id: 1\nevent: Message\ndata: {\"content\":\n\nid: 2\n"),
        "{text}"
    );
    assert!(text.contains("id: 5\nevent: Done\n"), "{text}");

    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"stall","after_events":1,"ms":300}),
        1,
    );
    let t = Instant::now();
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(evs.last().unwrap().name, "Done");

    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"reset_mid_body","after_events":2}),
        1,
    );
    let mut c = Conn::open(&fake);
    c.send(
        "POST",
        "/v1/workflow/stream_run",
        &[("Authorization", &format!("Bearer {PAT}"))],
        run_body(json!({})).to_string().as_bytes(),
    );
    let head = c.head();
    assert_eq!(head.status, 200);
    let mut got = Vec::new();
    loop {
        let mut l = String::new();
        match std::io::BufRead::read_line(&mut c.r, &mut l) {
            Ok(0) | Err(_) => break,
            Ok(_) => got.push(l),
        }
    }
    let body = got.concat();
    assert!(!body.contains("event: Done"), "{body}");
    assert!(body.contains("event: Message"), "{body}");

    fake.push_fault("workflow.history", json!({"type":"http","status":502}), 1);
    assert_eq!(history(&fake, FIRST).status, 502);
    fake.push_fault(
        "*",
        json!({"type":"api_error","code":4013,"msg":"slow down"}),
        1,
    );
    assert_eq!(
        post(&fake, "/v1/workflow/run", &run_body(json!({}))).json()["code"],
        4013
    );
    let s = fake.stats();
    assert_eq!(s["requests"]["workflow.stream_run"], 6);
    assert_eq!(s["faults_fired"], 9);
}

#[test]
fn studio_streams_inject_errors_its_way() {
    let fake = start(Dialect::Studio);
    fake.push_fault(
        "workflow.stream_run",
        json!({"type":"error_event","after_events":1}),
        1,
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["Message", "Error"]);
    assert_eq!(
        evs[1].json(),
        json!({"debug_url": debug_url(&fake, FIRST), "error_code": 720701013, "error_message": "internal error"})
    );
}

/// The bench streams 100,000 messages: they go out in big chunks (not a write per
/// event), and fast enough that a client, not the fake, is what a bench measures.
#[test]
fn a_hundred_thousand_messages_stream_in_big_chunks() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "messages": 100_000}));
    let t = Instant::now();
    let mut c = Conn::open(&fake);
    c.send(
        "POST",
        "/v1/workflow/stream_run",
        &[("Authorization", &format!("Bearer {PAT}"))],
        run_body(json!({})).to_string().as_bytes(),
    );
    let head = c.head();
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let mut chunks = 0;
    let mut body = Vec::new();
    while let Some(chunk) = c.chunk() {
        chunks += 1;
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    assert_eq!(text.matches("\"node_title\":\"Message\"").count(), 100_000);
    assert!(text.contains("id: 99999\nevent: Message\ndata: {\"content\":\"99999: 你好 🌏\\n\",\"node_is_finish\":true,"));
    assert!(text.ends_with(&format!(
        "id: 100001\nevent: Done\ndata: {{\"debug_url\":\"{}\"}}\n\n",
        debug_url(&fake, FIRST)
    )));
    assert!(chunks < 2_000, "{chunks} chunks for 100,000 events");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
}

fn resume_body(event_id: &str, answer: &str) -> Value {
    json!({"workflow_id": WF, "event_id": event_id, "resume_data": answer, "interrupt_type": 2})
}

fn resume(fake: &Fake, event_id: &str, answer: &str) -> (Resp, Vec<Ev>) {
    let r = post(
        fake,
        "/v1/workflow/stream_resume",
        &resume_body(event_id, answer),
    );
    let evs = if r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream")
    {
        parse(&r.text())
    } else {
        Vec::new()
    };
    (r, evs)
}

/// The event_id of interrupt `n` (from 0) of run `execute_id`.
fn event_id(execute_id: u64, n: u64) -> String {
    format!("{execute_id}/{}", 2_769_808_280_134_765_896 + n)
}

fn last_run(fake: &Fake) -> Value {
    fake.workflows()["runs"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

#[test]
fn a_question_interrupts_the_stream_and_a_resume_finishes_it() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "messages": 2, "question": "哪个城市？"}),
    );
    let (r, evs) = stream(&fake, &run_body(json!({"day": "today"})));
    assert_eq!(
        names(&evs),
        ["Message", "Message", "Message", "Interrupt"],
        "{}",
        r.text()
    );
    assert_eq!(ids(&evs), [0, 1, 2, 3]);
    assert_eq!(
        evs[2].json(),
        json!({"content": "哪个城市？", "content_type": "text", "node_is_finish": true,
               "node_seq_id": "0", "node_title": "Question"})
    );
    let data = json!({"messages": [{"type": "question", "content_type": "text",
                                     "content": "哪个城市？", "id": "154650_0"}]})
    .to_string();
    assert_eq!(
        evs[3].json(),
        json!({"interrupt_data": {"data": data, "event_id": event_id(FIRST, 0), "type": 2},
               "node_title": "Question"})
    );
    assert_eq!(last_run(&fake)["status"], "Interrupted");

    let (_, evs) = resume(&fake, &event_id(FIRST, 0), "杭州");
    assert_eq!(names(&evs), ["Message", "Done"]);
    assert_eq!(ids(&evs), [0, 1], "a resumed stream counts from 0 again");
    assert_eq!(
        evs[0].json()["content"],
        json!({"output": {"day": "today"}, "answer": "杭州"}).to_string()
    );
    let run = last_run(&fake);
    assert_eq!(run["status"], "Success");
    assert_eq!(run["resumes"], 1);
    assert_eq!(run["answers"], json!(["杭州"]));
    // It was answered: a second resume of the same event finds nothing to answer.
    let (r, _) = resume(&fake, &event_id(FIRST, 0), "杭州");
    assert_eq!(r.json()["code"], 4000);
    assert!(r.json()["msg"]
        .as_str()
        .unwrap()
        .contains("event not found or already resumed"));
}

#[test]
fn an_answer_that_fits_no_option_is_asked_again_and_the_third_fails_the_run() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "messages": 0, "question": "选一个", "options": ["红", "绿"]}),
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["Message", "Interrupt"]);
    for n in 0..2u64 {
        let (_, evs) = resume(&fake, &event_id(FIRST, n), "蓝");
        assert_eq!(names(&evs), ["Message", "Interrupt"], "resume {n}");
        let i = evs[1].json();
        assert_eq!(i["interrupt_data"]["event_id"], event_id(FIRST, n + 1));
        let data: Value =
            serde_json::from_str(i["interrupt_data"]["data"].as_str().unwrap()).unwrap();
        let msgs = data["messages"].as_array().unwrap();
        // The earlier questions and their answers, then the question again.
        assert_eq!(msgs.len(), 2 * (n as usize + 1) + 1);
        assert_eq!(
            msgs[1],
            json!({"type": "answer", "content_type": "option", "content": "蓝", "id": "154650_1"})
        );
        assert_eq!(
            msgs.last().unwrap()["content"],
            json!({"options": [{"name": "红"}, {"name": "绿"}], "question": "选一个"})
        );
        // The interrupt already answered is gone.
        assert_eq!(
            resume(&fake, &event_id(FIRST, n), "红").0.json()["code"],
            4000
        );
    }
    let (_, evs) = resume(&fake, &event_id(FIRST, 2), "蓝");
    assert_eq!(names(&evs), ["Error"]);
    assert_eq!(evs[0].json()["error_code"], 4000);
    let run = last_run(&fake);
    assert_eq!(run["status"], "Fail");
    assert_eq!(run["resumes"], 3);
    assert_eq!(run["answers"], json!(["蓝", "蓝", "蓝"]));
    // A fourth resume has nothing to answer.
    assert_eq!(
        resume(&fake, &event_id(FIRST, 3), "红").0.json()["code"],
        4000
    );

    // An answer naming an option (spaces around it do not matter) fits.
    stream(&fake, &run_body(json!({})));
    let (_, evs) = resume(&fake, &event_id(FIRST + 1, 0), " 绿 ");
    assert_eq!(names(&evs), ["Message", "Done"]);
    assert!(evs[0].json()["content"]
        .as_str()
        .unwrap()
        .contains("\"answer\":\" 绿 \""));
}

#[test]
fn resumes_are_checked_before_anything_runs() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "question": "q"}));
    stream(&fake, &run_body(json!({})));
    let good = event_id(FIRST, 0);
    for body in [
        json!({"workflow_id": WF, "event_id": good, "interrupt_type": 2}),
        json!({"workflow_id": WF, "event_id": good, "resume_data": "a"}),
        json!({"event_id": good, "resume_data": "a", "interrupt_type": 2}),
        json!({"workflow_id": "7400000000000000999", "event_id": good, "resume_data": "a", "interrupt_type": 2}),
        json!({"workflow_id": WF, "event_id": "nonsense", "resume_data": "a", "interrupt_type": 2}),
        json!({"workflow_id": WF, "event_id": event_id(FIRST, 1), "resume_data": "a", "interrupt_type": 2}),
    ] {
        let r = post(&fake, "/v1/workflow/stream_resume", &body);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(r.json()["code"], 4000, "{body}");
    }
    assert_eq!(last_run(&fake)["resumes"], 0);
    let studio = start(Dialect::Studio);
    let r = post(
        &studio,
        "/v1/workflow/stream_resume",
        &json!({"workflow_id": WF, "event_id": good, "resume_data": 5}),
    );
    assert_eq!(r.status, 400);
    let r = post(
        &studio,
        "/v1/workflow/stream_resume",
        &resume_body(&good, "a"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["code"], 4000);
}

#[test]
fn studio_interrupts_carry_the_nodes_json_and_no_node_title() {
    let fake = start(Dialect::Studio);
    set(
        &fake,
        json!({"workflow_id": WF, "messages": 1, "question": "Which?", "options": ["A", "B"],
               "interrupt_type": 5}),
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["Message", "Message", "Interrupt"]);
    let data = json!({"messages": [{"type": "question", "content_type": "option",
        "content": {"options": [{"name": "A"}, {"name": "B"}], "question": "Which?"},
        "id": "154650_0"}]})
    .to_string();
    let q = evs[1].json();
    assert_eq!(q["content"], data);
    assert_eq!(q["node_type"], "Question");
    assert_eq!(
        evs[2].data,
        json!({"debug_url": debug_url(&fake, FIRST),
               "interrupt_data": {"event_id": event_id(FIRST, 0), "type": 5, "data": data}})
        .to_string()
    );
    let (_, evs) = resume(&fake, &event_id(FIRST, 0), "B");
    assert_eq!(names(&evs), ["Message", "Done"]);
    assert_eq!(ids(&evs), [0, 1]);
    // Studio's sync run cannot interrupt; it has no /v1/workflows/resume.
    let r = post(&fake, "/v1/workflow/run", &run_body(json!({}))).json();
    assert_eq!(r["code"], 6039);
    assert!(r["debug_url"].is_null());
    let r = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST, 0), "B"),
    );
    assert_eq!(r.status, 401);
    set(
        &fake,
        json!({"workflow_id": WF, "question": "q", "lowercase_events": true}),
    );
    let (_, evs) = stream(&fake, &run_body(json!({})));
    assert_eq!(names(&evs), ["message", "message", "interrupt"]);
}

#[test]
fn a_sync_runs_interrupt_is_resumed_with_workflows_resume() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "question": "q", "options": ["y"]}),
    );
    let r = post(&fake, "/v1/workflow/run", &run_body(json!({"k": 1}))).json();
    assert_eq!(r["code"], 0);
    assert!(r.get("data").is_none());
    assert_eq!(r["execute_id"], FIRST.to_string());
    let i = &r["interrupt_data"];
    assert_eq!(i["event_id"], event_id(FIRST, 0));
    assert_eq!(i["type"], 2);
    assert_eq!(i["required_parameters"], json!({}));
    let again = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST, 0), "n"),
    )
    .json();
    assert_eq!(again["interrupt_data"]["event_id"], event_id(FIRST, 1));
    let done = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST, 1), "y"),
    )
    .json();
    assert_eq!(done["code"], 0);
    assert_eq!(done["data"], r#"{"output":{"k":1},"answer":"y"}"#);
    assert!(done["usage"]["output_count"].as_u64().unwrap() > 0);
    assert_eq!(last_run(&fake)["resumes"], 2);
    let r = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST, 1), "y"),
    )
    .json();
    assert_eq!(r["code"], 4000);
    // A question and an error: the run fails once the answer is taken.
    set(
        &fake,
        json!({"workflow_id": WF, "question": "q", "error": {"code": 5000, "message": "after"}}),
    );
    post(&fake, "/v1/workflow/run", &run_body(json!({})));
    let r = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST + 1, 0), "x"),
    )
    .json();
    assert_eq!(
        (r["code"].clone(), r["msg"].clone()),
        (json!(5000), json!("after"))
    );
}

#[test]
fn an_async_run_waits_at_its_question_in_the_history() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "question": "q", "running_polls": 0}),
    );
    let body = json!({"workflow_id": WF, "parameters": {}, "is_async": true});
    post(&fake, "/v1/workflow/run", &body);
    let d = history(&fake, FIRST).json()["data"][0].clone();
    assert_eq!(d["execute_status"], "Running");
    assert_eq!(d["interrupt_data"]["event_id"], event_id(FIRST, 0));
    let r = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST, 0), "a"),
    )
    .json();
    assert_eq!(r["execute_id"], FIRST.to_string());
    assert!(r.get("data").is_none());
    let d = history(&fake, FIRST).json()["data"][0].clone();
    assert_eq!(d["execute_status"], "Success");
    assert_eq!(d["output"], r#"{"output":{},"answer":"a"}"#);
    assert!(d.get("interrupt_data").is_none());

    let studio = start(Dialect::Studio);
    set(
        &studio,
        json!({"workflow_id": WF, "question": "q", "running_polls": 0}),
    );
    post(&studio, "/v1/workflow/run", &body);
    let d = history(&studio, FIRST).json()["data"][0].clone();
    assert_eq!(d["execute_status"], "<UNSET>");
}

#[test]
fn faults_apply_to_resumes() {
    let fake = start(Dialect::Coze);
    set(&fake, json!({"workflow_id": WF, "question": "q"}));
    stream(&fake, &run_body(json!({})));
    fake.push_fault(
        "workflow.stream_resume",
        json!({"type":"http","status":500}),
        1,
    );
    assert_eq!(resume(&fake, &event_id(FIRST, 0), "a").0.status, 500);
    // The refused request changed nothing: the interrupt is still open.
    fake.push_fault(
        "workflow.stream_resume",
        json!({"type":"cut","after_events":1}),
        1,
    );
    let (_, evs) = resume(&fake, &event_id(FIRST, 0), "a");
    assert_eq!(names(&evs), ["Message"]);
    assert_eq!(last_run(&fake)["status"], "Success");
    post(&fake, "/v1/workflow/run", &run_body(json!({})));
    fake.push_fault("workflow.resume", json!({"type":"http","status":429}), 1);
    let r = post(
        &fake,
        "/v1/workflows/resume",
        &resume_body(&event_id(FIRST + 1, 0), "a"),
    );
    assert_eq!(r.status, 429);
    let s = fake.stats();
    assert_eq!(s["requests"]["workflow.stream_resume"], 2);
    assert_eq!(s["requests"]["workflow.resume"], 1);
}

fn chat_body(input: &str, conversation_id: Option<&str>, params: Value) -> Value {
    let mut b = json!({"workflow_id": WF, "app_id": "7500000000000000009",
        "additional_messages": [{"role": "user", "content": input, "content_type": "text"}],
        "parameters": params});
    if let Some(c) = conversation_id {
        b["conversation_id"] = json!(c);
    }
    b
}

fn chatflow(fake: &Fake, body: &Value) -> (Resp, Vec<Ev>) {
    let r = post(fake, "/v1/workflows/chat", body);
    assert_eq!(r.status, 200);
    let evs = if r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream")
    {
        parse(&r.text())
    } else {
        Vec::new()
    };
    (r, evs)
}

/// The answer the deltas of a chat stream carry, joined.
fn deltas(evs: &[Ev]) -> String {
    evs.iter()
        .filter(|e| e.name == "conversation.message.delta")
        .map(|e| e.json()["content"].as_str().unwrap().to_string())
        .collect()
}

fn without_deltas(evs: &[Ev]) -> Vec<&str> {
    names(evs)
        .into_iter()
        .filter(|n| *n != "conversation.message.delta")
        .collect()
}

#[test]
fn a_chatflow_answers_in_chat_events_ending_with_a_debug_url() {
    let fake = start(Dialect::Coze);
    let (r, evs) = chatflow(&fake, &chat_body("你好🌏", None, json!({})));
    assert!(
        r.text()
            .starts_with("event: conversation.chat.created\ndata: {"),
        "coze's chatflow has no id: lines"
    );
    assert!(evs.iter().all(|e| e.id.is_none()));
    assert_eq!(
        without_deltas(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.message.completed",
            "conversation.message.completed",
            "conversation.chat.completed",
            "done"
        ]
    );
    assert_eq!(deltas(&evs), "Echo: 你好🌏");
    let created = evs[0].json();
    let conv = created["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "created");
    assert_eq!(created["last_error"], json!({"code": 0, "msg": ""}));
    let n = evs.len();
    let answer = evs[n - 4].json();
    assert_eq!(answer["content"], "Echo: 你好🌏");
    assert_eq!(answer["type"], "answer");
    assert_eq!(answer["conversation_id"], conv.as_str());
    assert_eq!(evs[n - 3].json()["type"], "verbose");
    let completed = evs[n - 2].json();
    assert_eq!(completed["status"], "completed");
    assert!(completed["usage"]["output_count"].as_u64().unwrap() > 0);
    assert_eq!(
        evs[n - 1].json(),
        json!({"debug_url": debug_url(&fake, FIRST)})
    );
    assert_eq!(last_run(&fake)["mode"], "chat");
    assert_eq!(last_run(&fake)["parameters"]["USER_INPUT"], "你好🌏");
    // The conversation keeps the question and the answer.
    let msgs = post(
        &fake,
        &format!("/v1/conversation/message/list?conversation_id={conv}"),
        &json!({}),
    )
    .json();
    let contents: Vec<&str> = msgs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["Echo: 你好🌏", "你好🌏"]);
    // The same conversation again; an unknown one is refused before any stream.
    let (_, evs) = chatflow(&fake, &chat_body("再来", Some(&conv), json!({})));
    assert_eq!(evs[0].json()["conversation_id"], conv.as_str());
    let (r, evs) = chatflow(
        &fake,
        &chat_body("x", Some("7000000000000000001"), json!({})),
    );
    assert!(evs.is_empty());
    assert_eq!(r.json()["code"], 4200);
}

#[test]
fn a_chatflow_question_is_answered_by_the_next_message_in_its_conversation() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(dialect);
        set(
            &fake,
            json!({"workflow_id": WF, "question": "哪天？", "options": ["今天", "明天"]}),
        );
        // Studio needs a CONVERSATION_NAME when no conversation_id is given; the next
        // call with the same name finds the same conversation.
        let params = json!({"CONVERSATION_NAME": "Default"});
        let (_, evs) = chatflow(&fake, &chat_body("天气", None, params.clone()));
        assert_eq!(
            without_deltas(&evs),
            [
                "conversation.chat.created",
                "conversation.chat.in_progress",
                "conversation.message.completed",
                "conversation.chat.requires_action",
                "done"
            ],
            "{dialect:?}"
        );
        assert_eq!(deltas(&evs), "哪天？ (今天 / 明天)");
        let conv = evs[0].json()["conversation_id"]
            .as_str()
            .unwrap()
            .to_string();
        let requires = evs[evs.len() - 2].json();
        assert_eq!(requires["status"], "requires_action");
        assert_eq!(last_run(&fake)["status"], "Interrupted");
        let same = |answer: &str| {
            let conv_id = (dialect == Dialect::Coze).then_some(conv.as_str());
            chatflow(&fake, &chat_body(answer, conv_id, params.clone())).1
        };
        // An answer that is no option asks again.
        let evs = same("后天");
        assert_eq!(
            names(&evs)[names(&evs).len() - 2],
            "conversation.chat.requires_action"
        );
        let evs = same("明天");
        assert_eq!(evs[0].json()["conversation_id"], conv.as_str());
        assert_eq!(deltas(&evs), "Echo: 明天 (answer to 哪天？)");
        assert_eq!(names(&evs).last().unwrap(), &"done");
        let run = last_run(&fake);
        assert_eq!(run["status"], "Success");
        assert_eq!(run["resumes"], 2);
        assert_eq!(run["answers"], json!(["后天", "明天"]));
        // The run is over: the next message starts a new one.
        let evs = same("再问");
        assert_eq!(deltas(&evs), "哪天？ (今天 / 明天)");
        assert_eq!(fake.workflows()["runs"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn a_failing_chatflow_is_chat_failed_on_coze_and_an_error_event_on_studio() {
    let fake = start(Dialect::Coze);
    set(
        &fake,
        json!({"workflow_id": WF, "error": {"code": 720701013, "message": "node failed"}}),
    );
    let (_, evs) = chatflow(&fake, &chat_body("x", None, json!({})));
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.chat.failed",
            "done"
        ]
    );
    assert_eq!(
        evs[2].json(),
        json!({"code": "720701013", "msg": "node failed"})
    );
    assert_eq!(last_run(&fake)["status"], "Fail");
    set(&fake, json!({"workflow_id": WF}));
    let (_, evs) = chatflow(
        &fake,
        &chat_body("x", None, json!({"CONVERSATION_NAME": "Other"})),
    );
    assert_eq!(
        evs[2].json(),
        json!({"code": "720702204", "msg": "conversation name does not exist"})
    );

    let studio = start(Dialect::Studio);
    set(
        &studio,
        json!({"workflow_id": WF, "error": {"code": 720701013, "message": "node failed"}}),
    );
    let (r, evs) = chatflow(
        &studio,
        &chat_body("x", None, json!({"CONVERSATION_NAME": "Default"})),
    );
    assert!(r
        .text()
        .starts_with("id: 1\nevent: conversation.chat.created\n"));
    assert_eq!(ids(&evs), [1, 2, 3]);
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "error"
        ]
    );
    assert_eq!(
        evs[2].json(),
        json!({"code": "720701013", "msg": "node failed", "debug_url": debug_url(&studio, FIRST)})
    );
}

#[test]
fn studio_chatflow_events_have_ids_and_its_own_shapes() {
    let fake = start(Dialect::Studio);
    let body = chat_body("hi", None, json!({"CONVERSATION_NAME": "Default"}));
    let (_, evs) = chatflow(&fake, &body);
    assert_eq!(ids(&evs), (1..=evs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        without_deltas(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.message.completed",
            "conversation.chat.completed",
            "done"
        ]
    );
    let created = evs[0].json();
    let keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "conversation_id",
            "status",
            "execute_id",
            "section_id"
        ]
    );
    assert_eq!(created["execute_id"], FIRST.to_string());
    let n = evs.len();
    let msg = evs[n - 3].json();
    let keys: Vec<&str> = msg
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "chat_id",
            "conversation_id",
            "bot_id",
            "role",
            "type",
            "content",
            "content_type",
            "section_id"
        ]
    );
    assert_eq!(msg["bot_id"], "7500000000000000009");
    let done = evs[n - 2].json();
    assert_eq!(done["bot_id"], "7500000000000000009");
    let out = done["usage"]["output_count"].as_u64().unwrap();
    assert_eq!(done["usage"]["token_count"], 2 * out, "Studio's sum, sic");
    // Without a conversation_id Studio needs a CONVERSATION_NAME.
    let r = post(
        &fake,
        "/v1/workflows/chat",
        &chat_body("hi", None, json!({})),
    );
    assert_eq!(
        r.json(),
        json!({"code": 777777775, "msg": "Workflow operation failure: conversation name is requried"})
    );
}

#[test]
fn chatflow_requests_are_checked_before_the_stream() {
    let fake = start(Dialect::Coze);
    let user = |c: &str| json!({"role": "user", "content": c, "content_type": "text"});
    for body in [
        json!({"additional_messages": [user("x")]}),
        json!({"workflow_id": WF, "additional_messages": []}),
        json!({"workflow_id": WF, "additional_messages": [{"role": "assistant", "content": "x"}]}),
        json!({"workflow_id": WF, "additional_messages": [{"role": "user", "content": "[]", "content_type": "object_string"}]}),
        json!({"workflow_id": WF, "additional_messages": vec![user("x"); 51]}),
        json!({"workflow_id": WF, "additional_messages": [user("x")], "bot_id": "1", "app_id": "2"}),
        json!({"workflow_id": WF, "additional_messages": [user("x")], "parameters": [1]}),
    ] {
        let r = post(&fake, "/v1/workflows/chat", &body);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(r.json()["code"], 4000, "{body}");
    }
    set(&fake, json!({"workflow_id": WF, "published": false}));
    assert_eq!(
        chatflow(&fake, &chat_body("x", None, json!({}))).0.json()["code"],
        4200
    );
    set(&fake, json!({"workflow_id": WF, "required": ["city"]}));
    assert_eq!(
        chatflow(&fake, &chat_body("x", None, json!({}))).0.json()["code"],
        4000
    );

    let studio = start(Dialect::Studio);
    let r = post(
        &studio,
        "/v1/workflows/chat",
        &json!({"workflow_id": WF, "additional_messages": []}),
    );
    assert_eq!(
        r.json()["msg"],
        "Workflow operation failure: additional_messages is requird"
    );
    set(&studio, json!({"workflow_id": WF, "published": false}));
    let named = json!({"CONVERSATION_NAME": "Default"});
    assert_eq!(
        chatflow(&studio, &chat_body("x", None, named)).0.json()["code"],
        720702011
    );
}

#[test]
fn faults_apply_to_chatflows() {
    let fake = start(Dialect::Coze);
    fake.push_fault(
        "workflow.chat",
        json!({"type":"chat_failed","code":5000,"msg":"event interval error"}),
        1,
    );
    let (_, evs) = chatflow(&fake, &chat_body("x", None, json!({})));
    assert_eq!(
        evs[2].json(),
        json!({"code": "5000", "msg": "event interval error"})
    );
    fake.push_fault("workflow.chat", json!({"type":"cut","after_events":3}), 1);
    let (_, evs) = chatflow(&fake, &chat_body("abcdefgh", None, json!({})));
    assert_eq!(evs.len(), 3);
    assert_eq!(last_run(&fake)["status"], "Success");
    fake.push_fault(
        "workflow.chat",
        json!({"type":"error_event","after_events":2,"code":4000,"msg":"bad"}),
        1,
    );
    let (_, evs) = chatflow(&fake, &chat_body("x", None, json!({})));
    assert_eq!(names(&evs).last().unwrap(), &"error");
    assert_eq!(
        evs.last().unwrap().json(),
        json!({"code": 4000, "msg": "bad"})
    );
    assert_eq!(last_run(&fake)["status"], "Fail");
    fake.push_fault("workflow.chat", json!({"type":"http","status":503}), 1);
    assert_eq!(
        post(
            &fake,
            "/v1/workflows/chat",
            &chat_body("x", None, json!({}))
        )
        .status,
        503
    );
    assert_eq!(fake.stats()["requests"]["workflow.chat"], 4);
}
