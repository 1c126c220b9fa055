//! Integration tests of coze-fake's Studio dialect (`--dialect studio`, a self-hosted
//! Coze Studio) over real sockets, with a raw HTTP/1.1 client so the wire format — SSE
//! lines, header names, the digits of 64-bit numbers — is checked byte for byte. The
//! last tests check that the same requests still get coze.cn's answers by default.

mod common;

use std::time::Duration;

use common::{call, events, json_call, spawn_binary, stop_binary, Conn, Resp};
use coze_fake::{Dialect, Fake, Options};
use serde_json::{json, Value};

const PAT: &str = "pat_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BOT: &str = "7500000000000000001";
const BUSY: &str = "A chat is already in progress in this conversation. Please wait for it to finish or cancel it.";

fn bearer() -> String {
    format!("Bearer {PAT}")
}

/// A JSON request with the PAT.
fn send(fake: &Fake, method: &str, path: &str, body: &Value) -> Resp {
    json_call(fake, method, path, Some(PAT), body)
}

fn post(fake: &Fake, path: &str, body: &Value) -> Resp {
    send(fake, "POST", path, body)
}

fn get(fake: &Fake, path: &str) -> Resp {
    common::get(fake, path, PAT)
}

fn start(dialect: Dialect) -> Fake {
    Fake::start(Options {
        static_tokens: vec![PAT.into()],
        dialect,
        ..Options::default()
    })
    .unwrap()
}

fn studio() -> Fake {
    start(Dialect::Studio)
}

/// A chat request; `stream` None leaves the field out.
fn chat_body(prompt: &str, stream: Option<bool>) -> Value {
    let mut b = json!({"bot_id": BOT, "user_id": "u1",
        "additional_messages": [{"role":"user","content":prompt,"content_type":"text"}]});
    if let Some(s) = stream {
        b["stream"] = json!(s);
    }
    b
}

fn names(evs: &[(String, String)]) -> Vec<&str> {
    evs.iter().map(|(e, _)| e.as_str()).collect()
}

/// The logid header is Studio's, and no body carries a logid.
fn assert_studio_logid(r: &Resp) {
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "X-Log-ID" && !v.is_empty()),
        "{:?}",
        r.headers
    );
    assert!(
        !r.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-tt-logid")),
        "{:?}",
        r.headers
    );
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        !text.contains("logid") && !text.contains("\"detail\""),
        "{text}"
    );
}

fn create_conversation(fake: &Fake) -> String {
    let r = post(fake, "/v1/conversation/create", &json!({"bot_id": BOT}));
    r.json()["data"]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_bad_or_missing_pat_is_700012006_with_http_200() {
    let fake = studio();
    let body = chat_body("hi", None).to_string();
    let cases = [
        (None, "missing authorization in header"),
        (Some("Bearer "), "missing api_key in request"),
        // Studio splits the header on "Bearer": lower case loses the key.
        (Some("bearer pat_x"), "missing api_key in request"),
        (Some("Bearer pat_wrong"), "CheckPermission failed"),
    ];
    for (auth, reason) in cases {
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        let r = call(&fake, "POST", "/v3/chat", &h, body.as_bytes());
        assert_eq!(r.status, 200, "{auth:?}");
        assert_eq!(
            r.text(),
            format!("{{\"code\":700012006,\"msg\":\"authentication failed: {reason}\"}}")
        );
        assert_studio_logid(&r);
    }
    // A conversation path with a numeric id is on the allow-list too.
    let r = call(
        &fake,
        "DELETE",
        "/v1/conversations/123",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(r.json()["code"], 700012006);
}

#[test]
fn endpoints_studio_lacks_answer_401_missing_session_key() {
    let fake = studio();
    let auth = bearer();
    let with_pat = [("Authorization", auth.as_str())];
    let paths = [
        ("GET", "/v1/users/me"),
        ("POST", "/api/permission/oauth2/token"),
        ("POST", "/api/permission/oauth2/device/code"),
        ("GET", "/api/permission/oauth2/authorize?client_id=x"),
        ("GET", "/oauth/consent?authorize_key=k"),
        ("GET", "/oauth/device"),
        ("POST", "/v1/conversation/message/create?conversation_id=1"),
        (
            "GET",
            "/v1/conversation/message/retrieve?conversation_id=1&message_id=2",
        ),
        ("POST", "/v3/chat/submit_tool_outputs"),
        ("GET", "/no/such/path"),
        // Only numeric ids are on the allow-list.
        ("DELETE", "/v1/conversations/abc"),
    ];
    for (method, path) in paths {
        let r = call(&fake, method, path, &with_pat, b"{}");
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(
            r.text(),
            r#"{"code":401,"msg":"missing session_key in cookie"}"#,
            "{method} {path}"
        );
        assert_studio_logid(&r);
    }
    let requests = &fake.stats()["requests"];
    assert_eq!(requests["users.me"], 1);
    assert_eq!(requests["token"], 1);
    assert_eq!(requests["device_code"], 1);
    assert_eq!(requests["message.create"], 1);
    assert_eq!(requests["chat.submit_tool_outputs"], 1);
    assert_eq!(requests["unknown"], 1);
    assert_eq!(requests["conversation.delete"], 1);
    assert_eq!(fake.stats()["token_requests"], 0, "no token was issued");
    // An allow-listed path with a method Studio does not route: Hertz's plain 404.
    let r = call(&fake, "POST", "/v3/chat/retrieve", &with_pat, b"{}");
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found"));
}

#[test]
fn the_stream_is_studios_wire_format_and_the_default() {
    let fake = studio();
    fake.set_bot(json!({"reasoning": true}));
    // No "stream" field: Studio streams.
    let r = post(&fake, "/v3/chat", &chat_body("你好🌏", None));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(r.header("X-Accel-Buffering"), Some("no"));
    assert_studio_logid(&r);
    let body = r.text();
    for line in body.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("event:") || line.starts_with("data:"),
            "{line:?}"
        );
        assert!(
            !line.starts_with("event: ") && !line.starts_with("data: "),
            "{line:?}"
        );
    }
    assert!(!body.contains("\nid:") && !body.starts_with("id:"));
    assert!(
        body.ends_with("\n\nevent:conversation.stream.done\ndata:\n\n"),
        "{body}"
    );
    assert!(!body.contains("[DONE]") && !body.contains("event:done\n"));
    let evs = events(&body);
    let n = names(&evs);
    assert_eq!(
        n[..2],
        ["conversation.chat.created", "conversation.chat.in_progress"]
    );
    assert_eq!(
        n[n.len() - 3..],
        [
            "conversation.message.completed",
            "conversation.chat.completed",
            "conversation.stream.done"
        ]
    );
    let created: Value = serde_json::from_str(&evs[0].1).unwrap();
    assert_eq!(created["status"], "created");
    assert_eq!(created["completed_at"], 0);
    assert_eq!(created["failed_at"], 0);
    for key in ["last_error", "meta_data", "usage", "required_action"] {
        assert!(created.get(key).is_none(), "{key} in {created}");
    }
    assert!(created["id"].is_string() && created["conversation_id"].is_string());
    let completed: Value = serde_json::from_str(&evs[evs.len() - 2].1).unwrap();
    assert_eq!(completed["status"], "completed");
    assert!(completed["completed_at"].as_u64().unwrap() > 0);
    let answer = evs
        .iter()
        .find(|(e, d)| e == "conversation.message.completed" && d.contains("\"type\":\"answer\""))
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
        .unwrap();
    assert_eq!(answer["content"], coze_fake::answer_text("你好🌏"));
    assert!(answer.get("updated_at").is_none() && answer.get("meta_data").is_none());
}

#[test]
fn errors_after_binding_arrive_as_sse_error_events() {
    let fake = studio();
    let conv = create_conversation(&fake);
    let path = format!("/v3/chat?conversation_id={conv}");
    fake.set_bot(json!({"first_delta_hold_ms": 1500}));
    let mut a = Conn::open(&fake);
    a.send(
        "POST",
        &path,
        &[("Authorization", &bearer())],
        chat_body("one", None).to_string().as_bytes(),
    );
    let first = a.head();
    // A second chat in the busy conversation: HTTP 200, one error event, the end.
    let b = post(&fake, &path, &chat_body("two", None));
    assert_eq!(b.status, 200);
    assert_eq!(b.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(
        b.text(),
        format!("event:error\ndata:{{\"code\":103100001,\"msg\":\"{BUSY}\"}}\n\n")
    );
    assert_studio_logid(&b);
    assert!(a
        .body(first)
        .text()
        .ends_with("event:conversation.stream.done\ndata:\n\n"));
    fake.set_bot(json!({}));

    // A role Studio does not take.
    let mut bad = chat_body("x", None);
    bad["additional_messages"][0]["role"] = json!("system");
    let r = post(&fake, "/v3/chat", &bad);
    assert_eq!(
        events(&r.text()),
        [(
            "error".to_string(),
            r#"{"code":103100001,"msg":"additional message role only support user and assistant"}"#
                .to_string()
        )]
    );

    // Faults inside the run: an error event and nothing after it.
    fake.push_fault(
        "chat",
        json!({"type":"error_event","after_events":2,"msg":"模型超时"}),
        1,
    );
    let r = post(&fake, "/v3/chat", &chat_body("x", None));
    let evs = events(&r.text());
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "error"
        ]
    );
    assert_eq!(evs[2].1, r#"{"code":103100001,"msg":"模型超时"}"#);

    fake.push_fault(
        "chat",
        json!({"type":"chat_failed","code":5000,"msg":"boom"}),
        1,
    );
    let r = post(&fake, "/v3/chat", &chat_body("x", None));
    let evs = events(&r.text());
    assert_eq!(names(&evs).last(), Some(&"error"));
    assert_eq!(evs.last().unwrap().1, r#"{"code":103100001,"msg":"boom"}"#);
    assert!(!names(&evs).contains(&"conversation.chat.failed"));
    assert!(!names(&evs).contains(&"conversation.stream.done"));
    let chat: Value = serde_json::from_str(&evs[0].1).unwrap();
    let q = format!(
        "conversation_id={}&chat_id={}",
        chat["conversation_id"].as_str().unwrap(),
        chat["id"].as_str().unwrap()
    );
    let got = get(&fake, &format!("/v3/chat/retrieve?{q}")).json();
    assert_eq!(got["data"]["status"], "failed");
    assert!(got["data"].get("last_error").is_none(), "{got}");
}

#[test]
fn an_unknown_conversation_id_starts_a_new_conversation() {
    let fake = studio();
    let r = post(
        &fake,
        "/v3/chat?conversation_id=7999999999999999999",
        &chat_body("hi", None),
    );
    assert_eq!(r.status, 200);
    let evs = events(&r.text());
    assert_eq!(names(&evs).last(), Some(&"conversation.stream.done"));
    let created: Value = serde_json::from_str(&evs[0].1).unwrap();
    let conv = created["conversation_id"].as_str().unwrap();
    assert_ne!(conv, "7999999999999999999");
    let got = get(
        &fake,
        &format!("/v1/conversation/retrieve?conversation_id={conv}"),
    )
    .json();
    assert_eq!(got["code"], 0, "{got}");
}

#[test]
fn binding_errors_are_400_json() {
    let fake = studio();
    let auth = bearer();
    let h = [("Authorization", auth.as_str())];
    let not_json = call(&fake, "POST", "/v3/chat", &h, b"{not json");
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.json()["code"], 400);
    assert_studio_logid(&not_json);
    let cases = [
        (json!({"user_id":"u"}), "'BotID' field is a 'required' parameter, but the request body does not have this parameter 'bot_id'"),
        (json!({"bot_id":BOT}), "'User' field is a 'required' parameter, but the request body does not have this parameter 'user_id'"),
        (json!({"bot_id":BOT,"user_id":"u","parameters":"{}"}), "parameters field should be an object, not a string"),
        (json!({"bot_id":"0","user_id":"u"}), "code=103000000 message=invalid parameter : bot id is required"),
    ];
    for (body, msg) in cases {
        let r = post(&fake, "/v3/chat", &body);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.header("Content-Type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(r.json(), json!({"code": 400, "msg": msg}));
    }
    // An object `parameters` is fine.
    let mut ok = chat_body("p", None);
    ok["parameters"] = json!({"k": "v"});
    assert_eq!(
        post(&fake, "/v3/chat", &ok).header("Content-Type"),
        Some("text/event-stream")
    );
    assert_eq!(fake.stats()["chats"], 1);
}

#[test]
fn conversation_objects_are_studios() {
    let fake = studio();
    let r = post(
        &fake,
        "/v1/conversation/create",
        &json!({"bot_id": BOT, "user_id": "u9", "name": "ignored"}),
    );
    assert_studio_logid(&r);
    let raw = r.text();
    // account_id is a JSON number with every digit of the 64-bit id.
    assert!(raw.contains("\"account_id\":7400000000000000001,"), "{raw}");
    let v = r.json();
    assert_eq!((v["code"].clone(), v["msg"].clone()), (json!(0), json!("")));
    let d = &v["data"];
    let id = d["id"].as_str().unwrap().to_string();
    assert!(id.len() == 19 && id.bytes().all(|b| b.is_ascii_digit()));
    assert!(d["last_section_id"].is_string());
    assert_eq!(d["connector_id"], "1024");
    assert_eq!(d["meta_data"], Value::Null);
    assert_eq!(d["user_id"], "u9");
    assert!(d.get("name").is_none() && d.get("creator_d").is_none());

    let r = get(
        &fake,
        &format!("/v1/conversation/retrieve?conversation_id={id}"),
    );
    let v = r.json();
    assert!(v.get("data").is_none(), "{v}");
    let c = &v["ConversationData"];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["creator_d"], "7400000000000000001");
    assert_eq!(c["name"], "");
    assert_eq!(v["BaseResp"], Value::Null);

    let r = send(
        &fake,
        "PUT",
        &format!("/v1/conversations/{id}"),
        &json!({"name": "新名字"}),
    );
    let v = r.json();
    assert_eq!(v["data"]["name"], "新名字");
    assert_eq!(v["data"]["meta_data"], Value::Null);

    let r = post(&fake, &format!("/v1/conversations/{id}/clear"), &json!({}));
    let v = r.json();
    assert_eq!(v["data"]["conversation_id"], id.as_str());
    assert_ne!(v["data"]["id"], d["last_section_id"]);

    let list = get(
        &fake,
        &format!("/v1/conversations?bot_id={BOT}&page_num=1&page_size=10"),
    )
    .json();
    assert_eq!(list["data"]["has_more"], false);
    assert_eq!(list["data"]["conversations"][0]["id"], id.as_str());
    assert_eq!(list["data"]["conversations"][0]["name"], "新名字");
    assert!(list.as_object().unwrap().contains_key("BaseResp"));

    // Deleting is soft: gone from the list, still retrievable.
    let r = send(
        &fake,
        "DELETE",
        &format!("/v1/conversations/{id}"),
        &json!({}),
    );
    assert_eq!(r.text(), r#"{"code":0,"msg":"","BaseResp":null}"#);
    let list = get(
        &fake,
        &format!("/v1/conversations?bot_id={BOT}&page_num=1&page_size=10"),
    );
    assert!(
        list.text()
            .contains(r#""data":{"conversations":null,"has_more":false}"#),
        "{}",
        list.text()
    );
    let r = get(
        &fake,
        &format!("/v1/conversation/retrieve?conversation_id={id}"),
    );
    assert_eq!(r.json()["code"], 0);

    let r = get(&fake, "/v1/conversation/retrieve?conversation_id=123");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        r#"{"code":103000002,"msg":"conversation not found"}"#
    );
    let r = get(&fake, "/v1/conversations");
    assert_eq!(r.status, 400);
}

#[test]
fn polled_chat_and_cancel_as_studio_answers_them() {
    let fake = studio();
    fake.set_bot(json!({"latency_ms": 1500}));
    let r = post(&fake, "/v3/chat", &chat_body("轮询", Some(false)));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    let v = r.json();
    assert_eq!(
        (v["code"].clone(), v["BaseResp"].clone()),
        (json!(0), Value::Null)
    );
    assert_eq!(v["data"]["status"], "created");
    let (conv, chat) = (
        v["data"]["conversation_id"].as_str().unwrap().to_string(),
        v["data"]["id"].as_str().unwrap().to_string(),
    );
    let ids = json!({"conversation_id": conv, "chat_id": chat});
    let c = post(&fake, "/v3/chat/cancel", &ids);
    assert_eq!(c.status, 200);
    let v = c.json();
    assert!(v.get("code").is_none() && v.get("data").is_none(), "{v}");
    assert_eq!(
        v["ChatV3ChatDetail"]["status"],
        "conversation.chat.cancelled"
    );
    assert_eq!(v["BaseResp"], Value::Null);
    let q = format!("conversation_id={conv}&chat_id={chat}");
    let got = get(&fake, &format!("/v3/chat/retrieve?{q}")).json();
    assert_eq!(got["data"]["status"], "conversation.chat.cancelled");
    let again = post(&fake, "/v3/chat/cancel", &ids);
    assert_eq!(
        (again.status, again.json()),
        (
            400,
            json!({"code":400,"msg":"code=103200005 message=in progress can not be cancelled"})
        )
    );
    // The run was not stopped: it completes, with its usage.
    let mut got = Value::Null;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(50));
        got = get(&fake, &format!("/v3/chat/retrieve?{q}")).json();
        if got["data"]["status"] != "conversation.chat.cancelled" {
            break;
        }
    }
    assert_eq!(got["data"]["status"], "completed", "{got}");
    assert!(got["data"]["usage"]["output_count"].as_u64().unwrap() > 0);
    let msgs = get(&fake, &format!("/v3/chat/message/list?{q}")).json();
    let list = msgs["Messages"].as_array().unwrap();
    assert_eq!(
        list.iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "question",
            "answer",
            "verbose",
            "follow_up",
            "follow_up",
            "follow_up"
        ]
    );
    assert_eq!(list[1]["reasoning_content"], "");
    assert_eq!(fake.stats()["cancels"], 1);

    // Errors of retrieve and cancel.
    let r = get(
        &fake,
        &format!("/v3/chat/retrieve?conversation_id={conv}&chat_id=1"),
    );
    assert_eq!((r.status, r.text().as_str()), (500, "record not found"));
    let r = get(&fake, &format!("/v3/chat/retrieve?conversation_id={conv}"));
    assert_eq!(r.status, 400);
    let r = post(
        &fake,
        "/v3/chat/cancel",
        &json!({"conversation_id": conv, "chat_id": "1"}),
    );
    assert_eq!(
        (r.status, r.json()["msg"].clone()),
        (400, json!("record not found"))
    );
}

#[test]
fn cancel_does_not_stop_a_stream() {
    let fake = studio();
    fake.set_bot(json!({"deltas": 200, "delta_delay_ms": 10}));
    let mut a = Conn::open(&fake);
    a.send(
        "POST",
        "/v3/chat",
        &[("Authorization", &bearer())],
        chat_body("long", None).to_string().as_bytes(),
    );
    assert_eq!(a.head().status, 200);
    let first = String::from_utf8(a.chunk().unwrap()).unwrap();
    let created: Value = serde_json::from_str(&events(&first)[0].1).unwrap();
    let c = post(
        &fake,
        "/v3/chat/cancel",
        &json!({"conversation_id": created["conversation_id"], "chat_id": created["id"]}),
    );
    assert_eq!(
        c.json()["ChatV3ChatDetail"]["status"],
        "conversation.chat.cancelled"
    );
    let mut body = first;
    while let Some(chunk) = a.chunk() {
        body.push_str(&String::from_utf8(chunk).unwrap());
    }
    let n: Vec<String> = events(&body).into_iter().map(|(e, _)| e).collect();
    assert!(
        n.contains(&"conversation.chat.completed".to_string()),
        "{n:?}"
    );
    assert_eq!(
        n.last().map(String::as_str),
        Some("conversation.stream.done")
    );
    assert!(!n.iter().any(|e| e.contains("cancel")), "{n:?}");
}

#[test]
fn message_list_keeps_questions_and_answers_only() {
    let fake = studio();
    let conv = create_conversation(&fake);
    for p in ["一", "二"] {
        post(
            &fake,
            &format!("/v3/chat?conversation_id={conv}"),
            &chat_body(p, None),
        );
    }
    let path = format!("/v1/conversation/message/list?conversation_id={conv}");
    let v = post(&fake, &path, &json!({"limit": 3})).json();
    let types: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["answer", "question", "answer"]);
    assert_eq!(v["has_more"], true);
    assert_eq!(v["code"], 0);
    assert!(v.get("BaseResp").is_none() && v.get("detail").is_none());
    let last = v["last_id"].as_str().unwrap();
    let older = post(&fake, &path, &json!({"after_id": last})).json();
    assert_eq!(older["data"].as_array().unwrap().len(), 1);
    assert_eq!(older["has_more"], false);
    let r = post(&fake, &path, &json!({"before_id": "1"}));
    assert_eq!((r.status, r.json()["code"].clone()), (500, json!(500)));
    let empty = post(
        &fake,
        &format!(
            "/v1/conversation/message/list?conversation_id={}",
            create_conversation(&fake)
        ),
        &json!({}),
    );
    assert_eq!(
        empty.text(),
        r#"{"has_more":false,"first_id":"0","last_id":"0","code":0,"msg":""}"#
    );
}

#[test]
fn faults_keep_their_status_in_studio_shape() {
    let fake = studio();
    fake.push_fault(
        "chat",
        json!({"type":"http","status":429,"retry_after":2}),
        1,
    );
    let r = post(&fake, "/v3/chat", &chat_body("x", None));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("2"));
    assert_eq!(r.text(), r#"{"code":4013,"msg":"rate limited"}"#);
    assert_studio_logid(&r);
    fake.push_fault("chat", json!({"type":"http","status":500}), 1);
    let r = post(&fake, "/v3/chat", &chat_body("x", None));
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, r#"{"code":500,"msg":"internal server error"}"#)
    );
    fake.push_fault("*", json!({"type":"api_error","code":4100,"msg":"nope"}), 1);
    let r = post(&fake, "/v1/conversation/create", &json!({}));
    assert_eq!(r.text(), r#"{"code":4100,"msg":"nope"}"#);
    // Stream faults: cut ends the body without the done event; malformed goes on to it.
    fake.push_fault("chat", json!({"type":"cut","after_events":2}), 1);
    let body = post(&fake, "/v3/chat", &chat_body("x", None)).text();
    assert_eq!(
        names(&events(&body)),
        ["conversation.chat.created", "conversation.chat.in_progress"]
    );
    fake.push_fault("chat", json!({"type":"malformed","after_events":2}), 1);
    let body = post(&fake, "/v3/chat", &chat_body("x", None)).text();
    assert!(body.contains("data:{\"id\":\n\n"));
    assert!(body.ends_with("event:conversation.stream.done\ndata:\n\n"));
    // requires_action: Studio never sends it; the chat completes.
    fake.push_fault("chat", json!({"type":"requires_action"}), 1);
    let body = post(&fake, "/v3/chat", &chat_body("x", None)).text();
    assert!(!body.contains("requires_action") && !body.contains("required_action"));
    assert!(body.ends_with("event:conversation.stream.done\ndata:\n\n"));
    assert_eq!(fake.stats()["faults_fired"], 6);
}

#[test]
fn admin_endpoints_answer_the_same() {
    let fake = studio();
    let r = call(&fake, "POST", "/_fake/bot", &[], br#"{"deltas":3}"#);
    assert_eq!(r.text(), r#"{"ok":true}"#);
    let r = call(&fake, "GET", "/_fake/bot", &[], b"");
    assert_eq!(r.json()["deltas"], 3);
    let r = call(
        &fake,
        "POST",
        "/_fake/fault",
        &[],
        br#"{"endpoint":"chat","fault":{"type":"reset"}}"#,
    );
    assert_eq!(r.json()["ok"], true);
    let r = call(&fake, "GET", "/_fake/stats", &[], b"");
    assert_eq!(r.json()["requests"], json!({}));
    let r = call(&fake, "POST", "/_fake/reset", &[], b"");
    assert_eq!(r.text(), r#"{"ok":true}"#);
    assert_eq!(fake.log(), json!([]));
}

/// The same requests on the default dialect still get coze.cn's answers.
#[test]
fn the_coze_dialect_is_unchanged() {
    let fake = start(Dialect::Coze);
    let r = post(&fake, "/v3/chat", &chat_body("x", Some(true)));
    assert!(r.header("x-tt-logid").is_some() && r.header("X-Log-ID").is_none());
    assert_eq!(
        r.header("Content-Type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(r.text().ends_with("event:done\ndata:\"[DONE]\"\n\n"));
    // `stream` omitted: not streamed.
    let v = post(&fake, "/v3/chat", &chat_body("x", None)).json();
    assert_eq!(v["data"]["status"], "in_progress");
    assert!(v["detail"]["logid"].is_string());
    let r = get(&fake, "/v1/users/me");
    assert_eq!(
        (r.status, r.json()["data"]["user_name"].clone()),
        (200, json!("fake_user"))
    );
    let r = call(
        &fake,
        "GET",
        "/v1/users/me",
        &[("Authorization", "Bearer pat_wrong")],
        b"",
    );
    assert_eq!((r.status, r.json()["code"].clone()), (401, json!(4100)));
    let r = post(
        &fake,
        "/v3/chat?conversation_id=7999999999999999999",
        &chat_body("x", Some(true)),
    );
    assert_eq!(r.json()["code"], 4200);
    let d = post(&fake, "/v1/conversation/create", &json!({"bot_id": BOT})).json();
    assert!(d["data"].get("account_id").is_none() && d["data"]["meta_data"] == json!({}));
}

#[test]
fn the_ready_line_names_the_dialect() {
    for (flag, want) in [(None, "coze"), (Some("studio"), "studio")] {
        let args = flag.map(|d| ["--dialect", d]).into_iter().flatten();
        let (mut child, hello) = spawn_binary(args);
        let status = stop_binary(&mut child);
        assert_eq!(hello["dialect"], want, "{hello}");
        assert!(status.success());
    }
}

/// Studio's `X-Log-ID` is a UUID (coze-dev/coze-studio `backend/api/middleware/log.go`).
#[test]
fn x_log_id_is_a_uuid() {
    let fake = studio();
    let r = get(&fake, "/v1/users/me");
    let id = r.header("X-Log-ID").unwrap();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
}
