//! coze-fake's files: `POST /v1/files/upload` and `GET /v1/files/retrieve` in both
//! dialects over the raw test client (real multipart bodies, Content-Length and chunked),
//! the streamed body (a 50 MB upload checked by SHA-256 while the fake's memory stays
//! flat), the limit, malformed forms, `/_fake/files`, `upload_bytes` and the faults.

mod common;

use std::io::Write;

use common::{form, form_type, get, send_streamed, start, upload_form, Conn, PAT};
use coze_fake::{Dialect, Fake, Options};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn studio() -> Fake {
    start(Options {
        dialect: Dialect::Studio,
        ..Options::default()
    })
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn one_file(name: &str, content: &[u8]) -> Vec<u8> {
    form(&[("file", Some(name), "text/plain", content)])
}

fn admin(fake: &Fake, path: &str) -> Value {
    common::call(fake, "GET", path, &[], b"").json()
}

fn upload_bytes(fake: &Fake) -> u64 {
    fake.stats()["upload_bytes"].as_u64().unwrap()
}

#[test]
fn coze_upload_and_retrieve_have_the_documented_shapes() {
    let fake = start(Options::default());
    let content = b"hello, file\r\n--not a boundary\r\n";
    let body = form(&[
        ("purpose", None, "", b"ignored"),
        ("file", Some("notes 1.txt"), "text/plain", content),
    ]);
    let r = upload_form(&fake, PAT, &form_type(), body).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("x-tt-logid").is_some_and(|l| !l.is_empty()));
    let v = r.json();
    assert_eq!(v["code"], 0);
    let data = &v["data"];
    let keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["bytes", "created_at", "file_name", "id"]);
    let id = data["id"].as_str().unwrap();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(data["bytes"], content.len());
    assert_eq!(data["file_name"], "notes 1.txt");
    assert!(data["created_at"].as_u64().unwrap() > 1_700_000_000);

    let got = get(&fake, &format!("/v1/files/retrieve?file_id={id}"), PAT);
    assert_eq!(got.status, 200);
    assert!(got.header("x-tt-logid").is_some());
    assert_eq!(got.json()["data"], *data);

    let files = admin(&fake, "/_fake/files");
    assert_eq!(
        files,
        json!({"files":[{"id": id, "file_name": "notes 1.txt", "bytes": content.len(),
               "sha256": sha_hex(content), "content_type": "text/plain",
               "created_at": data["created_at"]}]})
    );
    assert_eq!(
        admin(&fake, &format!("/_fake/files/{id}")),
        files["files"][0]
    );
    let stats = fake.stats();
    assert_eq!(stats["upload_bytes"], content.len());
    assert_eq!(stats["requests"]["files.upload"], 1);
    assert_eq!(stats["requests"]["files.retrieve"], 1);
}

#[test]
fn retrieve_knows_only_this_tokens_files() {
    let fake = Fake::start(Options {
        static_tokens: vec![PAT.into(), "pat_other".into()],
        ..Options::default()
    })
    .unwrap();
    let v = upload_form(&fake, PAT, &form_type(), one_file("a.txt", b"a"))
        .unwrap()
        .json();
    let id = v["data"]["id"].as_str().unwrap();
    for (token, path) in [
        ("pat_other", format!("/v1/files/retrieve?file_id={id}")),
        (
            PAT,
            "/v1/files/retrieve?file_id=7000000000000000001".to_string(),
        ),
    ] {
        let r = get(&fake, &path, token);
        assert_eq!(r.status, 200);
        assert!(r.header("x-tt-logid").is_some());
        let v = r.json();
        assert_eq!(v["code"], 4000, "{v}");
        assert!(v["msg"].as_str().unwrap().contains("does not exist"), "{v}");
    }
    let v = get(&fake, "/v1/files/retrieve", PAT).json();
    assert_eq!(v["code"], 4000);
    assert!(v["msg"].as_str().unwrap().contains("file_id"), "{v}");
}

#[test]
fn coze_answers_4000_without_a_file_part_and_401_without_a_token() {
    let fake = start(Options::default());
    let body = form(&[("file", None, "", b"no filename"), ("x", None, "", b"y")]);
    let v = upload_form(&fake, PAT, &form_type(), body).unwrap().json();
    assert_eq!(v["code"], 4000, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("file"), "{v}");
    let r = upload_form(&fake, "nope", &form_type(), one_file("a", &[7; 100_000])).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], 4100);
    assert_eq!(
        upload_bytes(&fake),
        0,
        "a refused token's upload is not read"
    );
    assert_eq!(admin(&fake, "/_fake/files")["files"], json!([]));
}

#[test]
fn studio_upload_has_its_own_shape_and_errors() {
    let fake = studio();
    let r = upload_form(&fake, PAT, &form_type(), one_file("pic.png", b"\x89PNG")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.iter().any(|(k, _)| k == "X-Log-ID"));
    let v = r.json();
    assert_eq!(v["code"], 0);
    assert_eq!(v["msg"], "");
    let data = &v["data"];
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["CreatedAt", "bytes", "file_name", "id", "uri", "url"]
    );
    let id = data["id"].as_str().unwrap();
    assert_eq!(data["url"], format!("{}/_fake/files/{id}", fake.base_url()));
    assert_eq!(data["bytes"], 4);
    assert_eq!(data["file_name"], "pic.png");

    let none = upload_form(&fake, PAT, &form_type(), form(&[("x", None, "", b"1")]))
        .unwrap()
        .json();
    assert_eq!(none["code"], 104_000_006, "{none}");
    let two = form(&[("file", Some("a"), "", b"1"), ("file", Some("b"), "", b"2")]);
    let two = upload_form(&fake, PAT, &form_type(), two).unwrap().json();
    assert_eq!(two["code"], 104_000_007, "{two}");
    let bad = upload_form(&fake, "pat_wrong", &form_type(), one_file("a", b"1")).unwrap();
    assert_eq!(bad.json()["code"], 700_012_006);
    // Studio serves no retrieve: its session middleware answers.
    let r = get(&fake, &format!("/v1/files/retrieve?file_id={id}"), PAT);
    assert_eq!(r.status, 401);
    assert_eq!(
        admin(&fake, "/_fake/files")["files"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The fake's resident memory (this process: the fake runs in it).
fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_50_mb_upload_is_hashed_as_it_streams_never_held() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(Options {
            dialect,
            ..Options::default()
        });
        const BLOCK: usize = 64 << 10;
        const BLOCKS: usize = 800; // 52,428,800 bytes
        let block = |i: usize| -> Vec<u8> {
            (0..BLOCK)
                .map(|j| (i * 31 + j * 7 + j / 251) as u8)
                .collect()
        };
        let mut sha = Sha256::new();
        for i in 0..BLOCKS {
            sha.update(block(i));
        }
        let want: String = sha.finalize().iter().map(|x| format!("{x:02x}")).collect();
        let pre = format!(
            "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            common::BOUNDARY
        );
        let post = format!("\r\n--{}--\r\n", common::BOUNDARY);
        let total = pre.len() + BLOCK * BLOCKS + post.len();
        let head = format!(
            "POST /v1/files/upload HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {PAT}\r\nContent-Type: {}\r\nContent-Length: {total}\r\n\r\n",
            form_type()
        );
        let before = rss_kb();
        let r = send_streamed(fake.addr(), &head, move |w| {
            w.write_all(pre.as_bytes()).unwrap();
            for i in 0..BLOCKS {
                w.write_all(&block(i)).unwrap();
            }
            w.write_all(post.as_bytes()).unwrap();
        })
        .unwrap();
        let grown = rss_kb().saturating_sub(before);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["data"]["bytes"], BLOCK * BLOCKS);
        let f = &admin(&fake, "/_fake/files")["files"][0];
        assert_eq!(f["sha256"], want.as_str());
        assert_eq!(f["bytes"], BLOCK * BLOCKS);
        assert_eq!(upload_bytes(&fake), (BLOCK * BLOCKS) as u64);
        // 50 MB held anywhere would show; the test threads' own buffers are 64 KiB.
        assert!(
            grown < 24 << 10,
            "RSS grew by {grown} kB during a 50 MB upload"
        );
    }
}

#[test]
fn a_chunked_upload_is_read_as_well() {
    let fake = start(Options::default());
    let body = one_file("c.txt", &[b'z'; 70_000]);
    let head = format!(
        "POST /v1/files/upload HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {PAT}\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        form_type()
    );
    let r = send_streamed(fake.addr(), &head, move |w| {
        for c in body.chunks(1000) {
            write!(w, "{:x}\r\n", c.len()).unwrap();
            w.write_all(c).unwrap();
            w.write_all(b"\r\n").unwrap();
        }
        w.write_all(b"0\r\n\r\n").unwrap();
    })
    .unwrap();
    assert_eq!(r.json()["data"]["bytes"], 70_000);
    assert_eq!(
        admin(&fake, "/_fake/files")["files"][0]["sha256"],
        sha_hex(&[b'z'; 70_000])
    );
}

#[test]
fn over_the_limit_is_refused_without_reading_the_rest() {
    let size = 4 << 20;
    // coze: code 4000 once the file's content passes the limit.
    let fake = start(Options {
        max_upload_bytes: Some(100_000),
        ..Options::default()
    });
    let r = upload_form(&fake, PAT, &form_type(), one_file("big", &vec![1; size])).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    let v = r.json();
    assert_eq!(v["code"], 4000, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("100000"), "{v}");
    let counted = upload_bytes(&fake);
    assert!(counted > 100_000 && counted < 300_000, "{counted}");
    assert_eq!(admin(&fake, "/_fake/files")["files"], json!([]));
    // Exactly at the limit is fine.
    let ok = upload_form(&fake, PAT, &form_type(), one_file("b", &vec![2; 100_000])).unwrap();
    assert_eq!(ok.json()["data"]["bytes"], 100_000);

    // studio: HTTP 413 for a declared body over the limit, before reading any of it.
    let fake = start(Options {
        dialect: Dialect::Studio,
        max_upload_bytes: Some(100_000),
        ..Options::default()
    });
    let r = upload_form(&fake, PAT, &form_type(), one_file("big", &vec![1; size])).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(upload_bytes(&fake), 0);
    // ... and for a chunked one once it passes the limit.
    let head = format!(
        "POST /v1/files/upload HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {PAT}\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        form_type()
    );
    let body = one_file("big", &vec![1; size]);
    let r = send_streamed(fake.addr(), &head, move |w| {
        for c in body.chunks(50_000) {
            let _ = write!(w, "{:x}\r\n", c.len());
            let _ = w.write_all(c);
            let _ = w.write_all(b"\r\n");
        }
        let _ = w.write_all(b"0\r\n\r\n");
    })
    .unwrap();
    assert_eq!(r.status, 413);
    assert!(upload_bytes(&fake) <= 100_000);
    assert_eq!(admin(&fake, "/_fake/files")["files"], json!([]));
}

#[test]
fn malformed_forms_get_a_clear_4000_never_a_panic() {
    let whole = one_file("m.txt", b"some content");
    let b = common::BOUNDARY;
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        ("boundary", "multipart/form-data".into(), whole.clone()),
        ("multipart/form-data", "application/json".into(), b"{}".to_vec()),
        ("delimiter", form_type(), b"no delimiter in here".to_vec()),
        (
            "ends inside a part",
            form_type(),
            whole[..whole.len() - 20].to_vec(),
        ),
        (
            "missing closing boundary",
            form_type(),
            format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nabc\r\n--{b}")
                .into_bytes(),
        ),
        (
            "headers",
            form_type(),
            format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"").into_bytes(),
        ),
    ];
    for dialect in [Dialect::Coze, Dialect::Studio] {
        let fake = start(Options {
            dialect,
            ..Options::default()
        });
        for (says, ct, body) in &cases {
            let r = upload_form(&fake, PAT, ct, body.clone()).unwrap();
            let v = r.json();
            let msg = v["msg"].as_str().unwrap();
            match dialect {
                Dialect::Coze => assert_eq!((r.status, &v["code"]), (200, &json!(4000)), "{v}"),
                Dialect::Studio => assert_eq!((r.status, &v["code"]), (400, &json!(400)), "{v}"),
            }
            assert!(msg.contains(says), "{says}: {msg}");
        }
        // A body shorter than its Content-Length: the client stops sending.
        let head = format!(
            "POST /v1/files/upload HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {PAT}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            form_type(),
            whole.len() + 10
        );
        let short = whole.clone();
        let r = send_streamed(fake.addr(), &head, move |w| {
            w.write_all(&short).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        })
        .unwrap();
        assert!(r.text().contains("declared length"), "{}", r.text());
        // The fake goes on serving.
        assert!(
            upload_form(&fake, PAT, &form_type(), whole.clone())
                .unwrap()
                .status
                == 200
        );
        assert_eq!(
            admin(&fake, "/_fake/files")["files"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}

fn fault(fake: &Fake, endpoint: &str, f: Value) {
    let r = common::post_json(
        fake,
        "/_fake/fault",
        None,
        &json!({"endpoint": endpoint, "fault": f}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn upload_faults_fire_and_count() {
    let fake = start(Options::default());
    let content = vec![9u8; 300_000];
    // A 500 once the upload is received: counted, not kept.
    fault(&fake, "files.upload", json!({"type":"http","status":500}));
    let r = upload_form(&fake, PAT, &form_type(), one_file("f", &content)).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(upload_bytes(&fake), 300_000);
    assert_eq!(admin(&fake, "/_fake/files")["files"], json!([]));
    // 429 with Retry-After.
    fault(
        &fake,
        "files.upload",
        json!({"type":"http","status":429,"retry_after":2}),
    );
    let r = upload_form(&fake, PAT, &form_type(), one_file("f", &content)).unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")));
    // A reset before reading anything.
    fault(&fake, "files.upload", json!({"type":"reset"}));
    assert!(upload_form(&fake, PAT, &form_type(), one_file("f", &content)).is_none());
    assert_eq!(upload_bytes(&fake), 600_000);
    // Cut mid-body: the connection ends after 1000 bytes of body, without an answer.
    fault(
        &fake,
        "files.upload",
        json!({"type":"cut_upload","after_bytes":1000}),
    );
    assert!(upload_form(&fake, PAT, &form_type(), one_file("f", &content)).is_none());
    let cut = upload_bytes(&fake) - 600_000;
    assert!(cut > 0 && cut < 1000, "{cut}");
    assert_eq!(admin(&fake, "/_fake/files")["files"], json!([]));
    // Then the upload goes through.
    let r = upload_form(&fake, PAT, &form_type(), one_file("f", &content)).unwrap();
    assert_eq!(r.json()["data"]["bytes"], 300_000);
    assert_eq!(fake.stats()["requests"]["files.upload"], 5);
    assert_eq!(fake.stats()["faults_fired"], 4);
    // A slow link: the body read in slices at 3 MB/s, the whole file taken all the same.
    fault(
        &fake,
        "files.upload",
        json!({"type":"slow_upload","bytes_per_s":3_000_000}),
    );
    let r = upload_form(&fake, PAT, &form_type(), one_file("s", &content)).unwrap();
    assert_eq!(r.json()["data"]["bytes"], 300_000);
    let held = admin(&fake, "/_fake/files")["files"].clone();
    assert_eq!(held[0]["sha256"], held[1]["sha256"], "{held}");
    // A slow answer, and a retrieve fault.
    fault(&fake, "files.upload", json!({"type":"delay","ms":10}));
    assert_eq!(
        upload_form(&fake, PAT, &form_type(), one_file("g", b"1"))
            .unwrap()
            .status,
        200
    );
    fault(&fake, "files.retrieve", json!({"type":"http","status":503}));
    assert_eq!(get(&fake, "/v1/files/retrieve?file_id=1", PAT).status, 503);
    // Keep-alive after a complete upload.
    let mut c = Conn::open(&fake);
    let auth = format!("Bearer {PAT}");
    let ct = form_type();
    for _ in 0..2 {
        let r = c.req(
            "POST",
            "/v1/files/upload",
            &[("Authorization", &auth), ("Content-Type", &ct)],
            &one_file("k", b"kept alive"),
        );
        assert_eq!(r.json()["code"], 0);
    }
}

fn upload_id(fake: &Fake, name: &str) -> String {
    let v = upload_form(fake, PAT, &form_type(), one_file(name, b"attached"))
        .unwrap()
        .json();
    v["data"]["id"].as_str().unwrap().to_string()
}

fn objects_msg(objects: Value) -> Value {
    json!({"role":"user","content":objects.to_string(),"content_type":"object_string"})
}

fn chat_with(messages: Vec<Value>, stream: bool) -> Value {
    // A numeric bot id, as Studio binds it.
    json!({"bot_id":"7400000000000000001","user_id":"u1","stream":stream,
           "auto_save_history":true,"additional_messages":messages})
}

/// The answer text of a chat: the deltas of a stream, or the answer message once a
/// polled chat completes.
fn answer_of(fake: &Fake, r: &common::Resp, stream: bool) -> String {
    if stream {
        return common::delta_text(&common::events(&r.text()));
    }
    let v = r.json();
    let chat = &v["data"];
    let (cid, conv) = (
        chat["id"].as_str().unwrap(),
        chat["conversation_id"].as_str().unwrap(),
    );
    let q = format!("chat_id={cid}&conversation_id={conv}");
    for _ in 0..100 {
        let _ = get(fake, &format!("/v3/chat/retrieve?{q}"), PAT);
        let m = get(fake, &format!("/v3/chat/message/list?{q}"), PAT).json();
        // coze's `data`, Studio's `Messages`.
        let list = if m["data"].is_array() {
            &m["data"]
        } else {
            &m["Messages"]
        };
        if let Some(a) = list
            .as_array()
            .and_then(|a| a.iter().find(|m| m["type"] == "answer"))
        {
            return a["content"].as_str().unwrap().to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no answer")
}

#[test]
fn object_string_answers_name_the_attachments() {
    for dialect in [Dialect::Coze, Dialect::Studio] {
        for stream in [true, false] {
            let fake = start(Options {
                dialect,
                ..Options::default()
            });
            let id = upload_id(&fake, "report q3.pdf");
            let objects = json!([{"type":"text","text":"summarise this"},
                                 {"type":"file","file_id":id},
                                 {"type":"image","file_url":"https://example.com/p.png"}]);
            let msg = objects_msg(objects.clone());
            let r = common::post_json(&fake, "/v3/chat", Some(PAT), &chat_with(vec![msg], stream));
            assert_eq!(r.status, 200, "{}", r.text());
            let want = coze_fake::answer_text("summarise this")
                + " [attachments: file:report q3.pdf, image:https://example.com/p.png]";
            assert_eq!(
                answer_of(&fake, &r, stream),
                want,
                "{dialect:?} stream {stream}"
            );
            // Only files, with the question as the next message.
            let only = objects_msg(json!([{"type":"image","file_id":id}]));
            let text = json!({"role":"user","content":"what is it?","content_type":"text"});
            let r = common::post_json(
                &fake,
                "/v3/chat",
                Some(PAT),
                &chat_with(vec![only, text], stream),
            );
            assert_eq!(
                answer_of(&fake, &r, stream),
                coze_fake::answer_text("what is it?") + " [attachments: image:report q3.pdf]"
            );
        }
    }
}

#[test]
fn object_string_is_stored_as_sent() {
    let fake = start(Options::default());
    let id = upload_id(&fake, "a.txt");
    let content = json!([{"type":"text","text":"read"},{"type":"file","file_id":id}]).to_string();
    let msg = json!({"role":"user","content":content,"content_type":"object_string"});
    let r = common::post_json(&fake, "/v3/chat", Some(PAT), &chat_with(vec![msg], true));
    let conv = common::events(&r.text())
        .iter()
        .find(|(e, _)| e == "conversation.chat.created")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["conversation_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let list = common::post_json(
        &fake,
        &format!("/v1/conversation/message/list?conversation_id={conv}"),
        Some(PAT),
        &json!({}),
    )
    .json();
    let stored = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone();
    assert_eq!(stored["content_type"], "object_string");
    assert_eq!(stored["content"], content.as_str());
}

#[test]
fn object_string_rules_answer_4000_naming_the_rule() {
    let fake = Fake::start(Options {
        static_tokens: vec![PAT.into(), "pat_other".into()],
        ..Options::default()
    })
    .unwrap();
    let id = upload_id(&fake, "x.png");
    let text = json!({"role":"user","content":"and?","content_type":"text"});
    let file = |id: &str| json!({"type":"file","file_id":id});
    let cases = vec![
        (
            vec![objects_msg(json!([{"type":"text","text":"a"}]))],
            "at least one file",
        ),
        (
            vec![objects_msg(
                json!([{"type":"text","text":"a"},{"type":"text","text":"b"},file(&id)]),
            )],
            "at most one text",
        ),
        (
            vec![objects_msg(json!([file(&id)]))],
            "just before or after",
        ),
        (
            vec![
                objects_msg(json!([file("7000000000000000009")])),
                text.clone(),
            ],
            "file_id 7000000000000000009 does not exist",
        ),
        (
            vec![objects_msg(json!([{"type":"image"}])), text.clone()],
            "file_id or a file_url",
        ),
        (
            vec![
                objects_msg(json!([{"type":"video","file_url":"u"}])),
                text.clone(),
            ],
            "unknown object type",
        ),
        (
            vec![json!({"role":"user","content":"not json","content_type":"object_string"})],
            "JSON array",
        ),
    ];
    for (msgs, says) in cases {
        for stream in [true, false] {
            let r = common::post_json(
                &fake,
                "/v3/chat",
                Some(PAT),
                &chat_with(msgs.clone(), stream),
            );
            assert_eq!(r.status, 200);
            let v = r.json();
            assert_eq!(v["code"], 4000, "{v}");
            assert!(v["msg"].as_str().unwrap().contains(says), "{says}: {v}");
        }
    }
    // Another token's file is unknown to this one.
    let msg = objects_msg(json!([{"type":"text","text":"a"}, file(&id)]));
    let r = common::post_json(
        &fake,
        "/v3/chat",
        Some("pat_other"),
        &chat_with(vec![msg], false),
    );
    assert!(r.json()["msg"].as_str().unwrap().contains("does not exist"));
    assert_eq!(fake.stats()["chats"], 0);
}

#[test]
fn studio_refuses_a_broken_object_string_its_own_way() {
    let fake = studio();
    let msg = objects_msg(json!([{"type":"text","text":"alone"}]));
    let r = common::post_json(
        &fake,
        "/v3/chat",
        Some(PAT),
        &chat_with(vec![msg.clone()], true),
    );
    let evs = common::events(&r.text());
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].0, "error");
    let e: Value = serde_json::from_str(&evs[0].1).unwrap();
    assert_eq!(e["code"], 103_100_001);
    assert!(e["msg"].as_str().unwrap().contains("at least one file"));
    let r = common::post_json(&fake, "/v3/chat", Some(PAT), &chat_with(vec![msg], false));
    assert_eq!(r.status, 400);
}
