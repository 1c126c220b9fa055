//! Integration tests of coze-fake over real sockets, with a tiny raw HTTP/1.1 client
//! (no HTTP library) so that keep-alive and chunked framing are checked byte for byte:
//! chats streamed and polled, conversations and their messages, the queued faults and
//! wire styles, and the `coze-fake` program itself. The OAuth endpoints are tested in
//! oauth.rs.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use common::{events, get, post_json, spawn_binary, start, stop_binary, Conn, PAT};
use coze_fake::Options;
use serde_json::{json, Value};

fn chat_body(prompt: &str, stream: bool) -> Value {
    json!({"bot_id":"b1","user_id":"u1","stream":stream,"auto_save_history":true,
           "additional_messages":[{"role":"user","content":prompt,"content_type":"text"}]})
}

#[test]
fn stream_events_in_real_order_with_quoted_done() {
    let fake = start(Options::default());
    let r = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("你好🌏", true));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let evs = events(&r.text());
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "conversation.message.delta")
        .count();
    assert!(deltas >= 3);
    let mut want = vec!["conversation.chat.created", "conversation.chat.in_progress"];
    want.extend(std::iter::repeat_n("conversation.message.delta", deltas));
    want.extend(std::iter::repeat_n("conversation.message.completed", 5));
    want.extend(["conversation.chat.completed", "done"]);
    assert_eq!(names, want);
    assert_eq!(evs.last().unwrap().1, "\"[DONE]\"");
    let text = common::delta_text(&evs);
    assert_eq!(text, coze_fake::answer_text("你好🌏"));
    let kinds: Vec<String> = evs
        .iter()
        .filter(|(e, _)| e == "conversation.message.completed")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["answer", "verbose", "follow_up", "follow_up", "follow_up"]
    );
    let done: Value = serde_json::from_str(&evs[evs.len() - 2].1).unwrap();
    assert_eq!(done["status"], "completed");
    assert!(done["usage"]["output_count"].as_u64().unwrap() > 0);
}

#[test]
fn keep_alive_serves_many_requests_and_streams_on_one_connection() {
    let fake = start(Options::default());
    let mut c = Conn::open(&fake);
    let auth = format!("Bearer {PAT}");
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    assert_eq!(c.req("GET", "/v1/users/me", &h, b"").status, 200);
    for _ in 0..3 {
        let r = c.req(
            "POST",
            "/v3/chat",
            &h,
            chat_body("hi", true).to_string().as_bytes(),
        );
        assert!(r.text().ends_with("event:done\ndata:\"[DONE]\"\n\n"));
    }
    assert_eq!(c.req("GET", "/v1/users/me", &h, b"").status, 200);
    assert_eq!(fake.stats()["connections"], 1);
    assert_eq!(fake.stats()["requests"]["chat"], 3);
}

#[test]
fn queued_fault_fires_once_then_normal() {
    let fake = start(Options::default());
    fake.push_fault(
        "users.me",
        json!({"type":"http","status":429,"retry_after":2}),
        1,
    );
    let r = get(&fake, "/v1/users/me", PAT);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.json()["code"], 4013);
    assert_eq!(get(&fake, "/v1/users/me", PAT).status, 200);

    fake.push_fault("*", json!({"type":"http","status":502}), 1);
    let r = get(&fake, "/v1/users/me", PAT);
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));

    fake.push_fault(
        "chat",
        json!({"type":"json_body","code":4000,"msg":"json fail"}),
        1,
    );
    let r = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.json()["code"], 4000);

    fake.push_fault("chat", json!({"type":"cut","after_events":3}), 1);
    let r = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true));
    assert_eq!(events(&r.text()).len(), 3);

    fake.push_fault(
        "chat",
        json!({"type":"error_event","after_events":2,"code":5000,"msg":"boom"}),
        1,
    );
    let evs = events(&post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text());
    assert_eq!(evs.last().unwrap().0, "error");

    fake.push_fault(
        "chat",
        json!({"type":"chat_failed","shape":"bare","code":701231,"msg":"error"}),
        1,
    );
    let evs = events(&post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text());
    assert_eq!(evs[evs.len() - 2].0, "conversation.chat.failed");
    assert_eq!(evs[evs.len() - 2].1, r#"{"code":701231,"msg":"error"}"#);

    fake.push_fault("users.me", json!({"type":"reset"}), 1);
    let mut c = Conn::open(&fake);
    c.send("GET", "/v1/users/me", &[], b"");
    let mut buf = [0u8; 16];
    assert!(
        !matches!(c.r.read(&mut buf), Ok(n) if n > 0),
        "reset sends nothing"
    );

    assert_eq!(fake.stats()["faults_fired"], 7);
    let normal = events(&post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text());
    assert_eq!(normal.last().unwrap().0, "done");
}

#[test]
fn second_concurrent_chat_in_a_conversation_gets_4016() {
    let fake = start(Options::default());
    let conv = post_json(
        &fake,
        "/v1/conversation/create",
        Some(PAT),
        &json!({"bot_id":"b1"}),
    )
    .json();
    let cid = conv["data"]["id"].as_str().unwrap().to_string();
    fake.set_bot(json!({"first_delta_hold_ms": 1500}));
    let path = format!("/v3/chat?conversation_id={cid}");
    let mut a = Conn::open(&fake);
    let auth = format!("Bearer {PAT}");
    a.send(
        "POST",
        &path,
        &[("Authorization", &auth)],
        chat_body("one", true).to_string().as_bytes(),
    );
    let head = a.head();
    assert_eq!(head.status, 200);
    let b = post_json(&fake, &path, Some(PAT), &chat_body("two", true));
    assert!(b
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(b.json()["code"], 4016);
    let first = a.body(head);
    assert!(first.text().ends_with("data:\"[DONE]\"\n\n"));
    // Done means free: the next chat is accepted at once.
    fake.set_bot(json!({}));
    let c = post_json(&fake, &path, Some(PAT), &chat_body("three", true));
    assert!(c.text().contains("event:done"));
    let s = fake.stats();
    assert_eq!(s["busy_refusals"], 1);
    assert_eq!(s["max_chats_in_flight_per_conversation"], 2);
}

#[test]
fn polled_chat_completes_and_lists_messages_and_cancel() {
    let fake = start(Options::default());
    let r = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("轮询", false)).json();
    assert_eq!(r["data"]["status"], "in_progress");
    let (conv, chat) = (
        r["data"]["conversation_id"].as_str().unwrap(),
        r["data"]["id"].as_str().unwrap(),
    );
    let q = format!("conversation_id={conv}&chat_id={chat}");
    let got = get(&fake, &format!("/v3/chat/retrieve?{q}"), PAT).json();
    assert_eq!(got["data"]["status"], "completed");
    let msgs = get(&fake, &format!("/v3/chat/message/list?{q}"), PAT).json();
    let data = msgs["data"].as_array().unwrap();
    assert_eq!(data[0]["type"], "answer");
    assert_eq!(data[0]["content"], coze_fake::answer_text("轮询"));
    assert_eq!(data.len(), 5);
    let c = post_json(
        &fake,
        "/v3/chat/cancel",
        Some(PAT),
        &json!({"conversation_id":conv,"chat_id":chat}),
    )
    .json();
    assert_eq!(c["code"], 4104);

    fake.set_bot(json!({"latency_ms": 60_000}));
    let r = post_json(
        &fake,
        &format!("/v3/chat?conversation_id={conv}"),
        Some(PAT),
        &chat_body("slow", false),
    )
    .json();
    let chat = r["data"]["id"].as_str().unwrap();
    let c = post_json(
        &fake,
        "/v3/chat/cancel",
        Some(PAT),
        &json!({"conversation_id":conv,"chat_id":chat}),
    )
    .json();
    assert_eq!(c["data"]["status"], "canceled");
    assert_eq!(fake.stats()["cancels"], 1);
}

#[test]
fn message_list_pages_by_after_and_before_id() {
    let fake = start(Options::default());
    let msgs: Vec<Value> = (0..7)
        .map(|i| json!({"role":"user","content":format!("m{i}"),"content_type":"text"}))
        .collect();
    let conv = post_json(
        &fake,
        "/v1/conversation/create",
        Some(PAT),
        &json!({"bot_id":"b1","messages":msgs}),
    )
    .json();
    let cid = conv["data"]["id"].as_str().unwrap();
    let path = format!("/v1/conversation/message/list?conversation_id={cid}");
    let list = |body: Value| post_json(&fake, &path, Some(PAT), &body).json();
    let contents = |v: &Value| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    let p1 = list(json!({"order":"desc","limit":3}));
    assert_eq!(p1["code"], 0);
    assert_eq!(contents(&p1), ["m6", "m5", "m4"]);
    assert_eq!(p1["has_more"], true);
    assert_eq!(p1["first_id"], p1["data"][0]["id"]);
    assert_eq!(p1["last_id"], p1["data"][2]["id"]);
    let p2 = list(json!({"order":"desc","limit":3,"after_id":p1["last_id"]}));
    assert_eq!(contents(&p2), ["m3", "m2", "m1"]);
    let p3 = list(json!({"order":"desc","limit":3,"after_id":p2["last_id"]}));
    assert_eq!(contents(&p3), ["m0"]);
    assert_eq!(p3["has_more"], false);
    let back = list(json!({"order":"desc","limit":3,"before_id":p3["first_id"]}));
    assert_eq!(contents(&back), ["m3", "m2", "m1"]);
    let asc = list(json!({"order":"asc","limit":2}));
    assert_eq!(contents(&asc), ["m0", "m1"]);

    // Conversation list pages too.
    for _ in 0..3 {
        post_json(
            &fake,
            "/v1/conversation/create",
            Some(PAT),
            &json!({"bot_id":"b1"}),
        );
    }
    let l = get(
        &fake,
        "/v1/conversations?bot_id=b1&page_num=1&page_size=3",
        PAT,
    )
    .json();
    assert_eq!(l["data"]["conversations"].as_array().unwrap().len(), 3);
    assert_eq!(l["data"]["has_more"], true);
    let l2 = get(
        &fake,
        "/v1/conversations?bot_id=b1&page_num=2&page_size=3",
        PAT,
    )
    .json();
    assert_eq!(l2["data"]["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(l2["data"]["has_more"], false);
    let missing = get(&fake, "/v1/conversation/retrieve?conversation_id=1", PAT).json();
    assert_eq!(missing["code"], 4200);
}

#[test]
fn client_disconnect_mid_stream_frees_the_conversation() {
    let fake = start(Options::default());
    fake.set_bot(json!({"deltas": 200, "delta_delay_ms": 20}));
    let conv = post_json(
        &fake,
        "/v1/conversation/create",
        Some(PAT),
        &json!({"bot_id":"b1"}),
    )
    .json();
    let cid = conv["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/v3/chat?conversation_id={cid}");
    {
        let mut a = Conn::open(&fake);
        let auth = format!("Bearer {PAT}");
        a.send(
            "POST",
            &path,
            &[("Authorization", &auth)],
            chat_body("bye", true).to_string().as_bytes(),
        );
        a.head();
    } // dropped: the fake notices on its next write
    fake.set_bot(json!({}));
    let mut ok = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(30));
        let r = post_json(&fake, &path, Some(PAT), &chat_body("again", true));
        if r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
        {
            ok = true;
            break;
        }
    }
    assert!(ok, "conversation stayed busy after the client went away");
}

#[test]
fn big_stream_is_fast() {
    let fake = start(Options::default());
    fake.set_bot(json!({"deltas": 20_000}));
    let t = std::time::Instant::now();
    let r = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true));
    let n = r.text().matches("event:conversation.message.delta").count();
    assert_eq!(n, 20_000);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn styles_change_the_wire_format() {
    let fake = start(Options::default());
    fake.set_bot(json!({"style":{"space":true,"crlf":true,"comments":true,"done":"bare","multiline_data":true}}));
    let body = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text();
    assert!(body.contains("event: conversation.chat.created\r\n"));
    assert!(body.contains(": keep-alive\r\n"));
    assert!(body.contains("data: {\r\n"));
    assert!(body.ends_with("event: done\r\ndata: [DONE]\r\n\r\n"));
}

#[test]
fn socket_and_stream_faults() {
    let fake = start(Options::default());
    let auth = format!("Bearer {PAT}");

    // reset_mid_body on a JSON answer: headers and 10 bytes, then the connection dies.
    fake.push_fault(
        "users.me",
        json!({"type":"reset_mid_body","after_bytes":10}),
        1,
    );
    let mut c = Conn::open(&fake);
    c.send("GET", "/v1/users/me", &[("Authorization", &auth)], b"");
    let h = c.head();
    assert_eq!(h.status, 200);
    let mut got = Vec::new();
    let _ = c.r.read_to_end(&mut got);
    assert_eq!(got.len(), 10);

    // reset_mid_body on a stream counts events.
    fake.push_fault("chat", json!({"type":"reset_mid_body","after_events":2}), 1);
    let mut c = Conn::open(&fake);
    c.send(
        "POST",
        "/v3/chat",
        &[("Authorization", &auth)],
        chat_body("x", true).to_string().as_bytes(),
    );
    c.head();
    let mut got = Vec::new();
    let _ = c.r.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("event:").count(), 2);
    assert!(
        !text.contains("\r\n0\r\n\r\n"),
        "no terminating chunk after a reset"
    );

    // truncated_json: honest Content-Length, broken JSON.
    fake.push_fault("users.me", json!({"type":"truncated_json"}), 1);
    let r = get(&fake, "/v1/users/me", PAT);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    // malformed: one broken event, then the stream goes on to done.
    fake.push_fault("chat", json!({"type":"malformed","after_events":2}), 1);
    let body = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text();
    assert!(body.contains("data:{\"id\":\n\n"));
    assert!(body.ends_with("event:done\ndata:\"[DONE]\"\n\n"));

    // stall: a pause mid-stream.
    fake.push_fault("chat", json!({"type":"stall","after_events":3,"ms":300}), 1);
    let t = std::time::Instant::now();
    let body = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(body.contains("event:done"));

    // requires_action ends with a Chat carrying one tool call.
    fake.push_fault("chat", json!({"type":"requires_action"}), 1);
    let evs = events(&post_json(&fake, "/v3/chat", Some(PAT), &chat_body("x", true)).text());
    let (name, data) = &evs[evs.len() - 2];
    assert_eq!(name, "conversation.chat.requires_action");
    let chat: Value = serde_json::from_str(data).unwrap();
    assert_eq!(chat["status"], "requires_action");
    assert_eq!(
        chat["required_action"]["submit_tool_outputs"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // split_writes still yields a well-formed stream.
    fake.set_bot(json!({"style":{"split_writes":true}}));
    let body = post_json(&fake, "/v3/chat", Some(PAT), &chat_body("分开写", true)).text();
    assert!(body.ends_with("event:done\ndata:\"[DONE]\"\n\n"));
    fake.set_bot(json!({}));
}

/// The `coze-fake` program as users run it: the base URL as its first stdout line, the
/// flags doing what `--help` says, loopback only, and gone when its stdin closes.
#[test]
fn the_binary_serves_until_stdin_closes_and_stays_on_loopback() {
    let (mut child, hello) =
        spawn_binary(["--pat", PAT, "--auto-approve", "--addr", "127.0.0.1:0"]);
    assert_eq!(hello["type"], "fake", "{hello}");
    let base = hello["base_url"].as_str().unwrap();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    assert!(addr.ip().is_loopback(), "{base}");
    let mut c = Conn::to(addr);
    // --pat: the token is accepted.
    let r = c.req(
        "GET",
        "/v1/users/me",
        &[("Authorization", &format!("Bearer {PAT}"))],
        b"",
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (200, json!(0)),
        "{}",
        r.text()
    );
    // --auto-approve: the authorize page redirects straight back with a code.
    let r = c.req(
        "GET",
        "/api/permission/oauth2/authorize?response_type=code&client_id=1.app.coze&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s&code_challenge=abc&code_challenge_method=S256",
        &[],
        b"",
    );
    let location = r.header("location").unwrap_or_default().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/cb?") && location.contains("code="),
        "{} {location}",
        r.status
    );
    drop(c);
    // Closing stdin ends it, promptly and cleanly.
    let status = stop_binary(&mut child);
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );

    // A non-loopback address is refused before anything is bound.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coze-fake"))
        .args(["--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing non-loopback address"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// `coze-fake --help` documents every flag its parser takes and every admin endpoint
/// it serves: both lists are read from the sources, so a new one without help fails.
#[test]
fn help_documents_every_flag_and_admin_endpoint() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coze-fake"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let src = |file: &str| {
        std::fs::read_to_string(format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let quoted_after = |text: &str, marker: &str| -> Vec<String> {
        text.split(marker)
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(str::to_owned))
            .collect()
    };
    let flags = quoted_after(&src("main.rs"), "Long(\"");
    assert!(flags.len() >= 10, "{flags:?}");
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag}")),
            "--{flag} is not in --help"
        );
    }
    let endpoints = quoted_after(&src("admin.rs"), "\"/_fake/");
    assert!(endpoints.len() >= 5, "{endpoints:?}");
    for e in endpoints {
        assert!(
            help.contains(&format!("/_fake/{e}")),
            "/_fake/{e} is not in --help"
        );
    }
}
