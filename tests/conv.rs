//! coze-conv end to end: the real binary against coze-fake. Each subcommand's records
//! checked against what the fake holds, both lists walked across pages (messages in both
//! orders), --limit, `| head -1`, the pipe into coze-chat, the one token refresh, every
//! failure shape with its exit code, a server that repeats its cursor, and usage errors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_dialects;
use crate::util::*;

const BOT: &str = "7301";

fn conv(sb: &Sandbox) -> Command {
    sb.cmd("coze-conv")
}

/// Creates `n` conversations of `bot` over raw HTTP; returns their ids, oldest first.
fn make_conversations(sb: &Sandbox, bot: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let v = api(
                sb,
                "POST",
                "/v1/conversation/create",
                Some(json!({"bot_id": bot, "name": format!("c{i}")})),
            );
            v["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Adds `n` messages to a conversation (user and assistant in turn); returns their
/// ids, oldest first.
fn make_messages(sb: &Sandbox, conversation_id: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            let v = api(
                sb,
                "POST",
                &format!("/v1/conversation/message/create?conversation_id={conversation_id}"),
                Some(json!({"role": role, "content": format!("m{i} 你好 🙂"), "content_type": "text"})),
            );
            v["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn retrieve(sb: &Sandbox, id: &str) -> Value {
    api(
        sb,
        "GET",
        &format!("/v1/conversation/retrieve?conversation_id={id}"),
        None,
    )["data"]
        .clone()
}

fn ids(records: &[Value], key: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r[key].as_str().expect("an id").to_owned())
        .collect()
}

/// The one error line: `coze-conv: …`, nothing on stdout.
fn assert_one_error_line(r: &Run, starts: &str) {
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr.starts_with(&format!("coze-conv: {starts}")),
        "{}",
        r.describe()
    );
}

/// The conversation record carries the API object: `id` as `conversation_id`, the
/// other fields as they are.
fn assert_matches_api(rec: &Value, api_obj: &Value) {
    assert_eq!(rec["type"], "conversation", "{rec}");
    assert_eq!(rec["conversation_id"], api_obj["id"], "{rec}");
    for (k, v) in api_obj.as_object().unwrap() {
        if k != "id" {
            assert_eq!(&rec[k], v, "field {k} of {rec} vs {api_obj}");
        }
    }
    assert!(rec.get("id").is_none(), "{rec}");
}

// ---------------------------------------------------------------- create, get

#[test]
fn create_prints_one_conversation_record_the_fake_agrees_with() {
    let sb = logged_in("conv-create");
    let r = run(
        conv(&sb).args([
            "create",
            "--bot",
            BOT,
            "--name",
            "旅行 plans",
            "--meta",
            "uuid=u-1",
            "--meta",
            "src=e2e=x",
        ]),
        "",
    );
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    let rec = &recs[0];
    assert_eq!(
        keys(rec)[..6],
        [
            "type",
            "conversation_id",
            "bot_id",
            "created_at",
            "meta_data",
            "last_section_id"
        ],
        "{rec}"
    );
    assert_eq!(rec["bot_id"], BOT);
    assert_eq!(rec["name"], "旅行 plans");
    assert_eq!(rec["meta_data"], json!({"uuid": "u-1", "src": "e2e=x"}));
    assert!(rec["created_at"].as_i64().unwrap() > now() - 60, "{rec}");
    for k in ["updated_at", "creator_id", "connector_id"] {
        assert!(rec.get(k).is_some(), "{k} was dropped: {rec}");
    }
    let id = rec["conversation_id"].as_str().unwrap();
    assert_matches_api(rec, &retrieve(&sb, id));
    // The fake recorded the bot: the conversation is in the bot's list.
    let listed = api(
        &sb,
        "GET",
        &format!("/v1/conversations?bot_id={BOT}&page_num=1&page_size=50"),
        None,
    );
    assert_eq!(listed["data"]["conversations"][0]["id"], id);
}

#[test]
fn create_needs_a_bot_and_takes_it_from_coze_bot_id() {
    let sb = logged_in("conv-create-env");
    let r = run(conv(&sb).arg("create"), "");
    r.expect_code(2);
    assert_one_error_line(&r, "create: ");
    assert!(
        r.stderr.contains("pass --bot or set COZE_BOT_ID"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/conversation.create"), 0);
    let r = run(conv(&sb).arg("create").env("COZE_BOT_ID", "env-bot"), "");
    r.ok();
    assert_eq!(r.records()[0]["bot_id"], "env-bot");
    // The flag beats the environment.
    let r = run(
        conv(&sb)
            .args(["create", "--bot", "flag-bot"])
            .env("COZE_BOT_ID", "env-bot"),
        "",
    );
    assert_eq!(r.ok().records()[0]["bot_id"], "flag-bot");
}

#[test]
fn get_prints_the_record_create_printed() {
    let sb = logged_in("conv-get");
    let created = run(
        conv(&sb).args(["create", "--bot", BOT, "--meta", "k=v"]),
        "",
    );
    let created = created.ok().records().remove(0);
    let id = created["conversation_id"].as_str().unwrap();
    let r = run(conv(&sb).args(["get", id, "--bot", BOT]), "");
    r.ok();
    assert_eq!(r.records(), vec![created.clone()]);
    // Without a bot the API's object has none to give.
    let r = run(conv(&sb).args(["get", id]), "");
    let rec = r.ok().records().remove(0);
    assert!(rec.get("bot_id").is_none(), "{rec}");
    assert_matches_api(&rec, &retrieve(&sb, id));
}

#[test]
fn a_created_conversation_pipes_into_coze_chat() {
    let sb = logged_in("conv-pipe-chat");
    // The example of both --help texts, as written there (with the record kept aside).
    let script = format!(
        "{{ '{}' create --bot {BOT} | tee created.json; echo hello; }} | '{}' --bot {BOT} -o answers",
        bin("coze-conv").display(),
        bin("coze-chat").display()
    );
    let r = run(sb.cmd("bash").args(["-c", &script]), "");
    r.ok();
    let answers = r.records();
    assert_eq!(answers.len(), 1, "{}", r.describe());
    let created: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("created.json")).unwrap()).unwrap();
    // The chat went into the conversation coze-conv created, not a new one.
    assert_eq!(
        answers[0]["conversation_id"],
        created["conversation_id"],
        "{}",
        r.describe()
    );
    let conversation_id = answers[0]["conversation_id"].as_str().unwrap().to_owned();
    let msgs = run(
        conv(&sb).args(["messages", &conversation_id, "--order", "asc"]),
        "",
    );
    let msgs = msgs.ok().records();
    assert_eq!(msgs[0]["role"], "user", "{msgs:?}");
    assert_eq!(msgs[0]["content"], "hello");
    assert_eq!(msgs[0]["message_type"], "question");
    for help in ["coze-conv", "coze-chat"] {
        let h = run(sb.cmd(help).arg("--help"), "");
        assert!(
            h.stdout.contains(
                "{ coze-conv create --bot $BOT; echo hello; } | coze-chat --bot $BOT -o text"
            ),
            "{help} --help shows the example this test runs"
        );
    }
}

// ---------------------------------------------------------------- list

#[test]
fn list_walks_every_page_and_limit_stops_early() {
    let sb = logged_in("conv-list");
    let made = make_conversations(&sb, BOT, 63);
    make_conversations(&sb, "other-bot", 2);
    sb.fake.reset();
    let r = run(conv(&sb).args(["list", "--bot", BOT]), "");
    r.ok();
    let recs = r.records();
    let mut newest_first = made.clone();
    newest_first.reverse();
    assert_eq!(
        ids(&recs, "conversation_id"),
        newest_first,
        "the API's order, each once"
    );
    assert!(recs
        .iter()
        .all(|c| c["type"] == "conversation" && c["bot_id"] == BOT));
    assert_eq!(recs[0]["name"], "c62");
    assert_eq!(stat(&sb, "/requests/conversation.list"), 2);

    sb.fake.reset();
    let r = run(
        conv(&sb)
            .args(["list", "--limit", "5"])
            .env("COZE_BOT_ID", BOT),
        "",
    );
    r.ok();
    assert_eq!(ids(&r.records(), "conversation_id"), newest_first[..5]);
    assert_eq!(stat(&sb, "/requests/conversation.list"), 1);

    sb.fake.reset();
    let r = run(conv(&sb).args(["list", "--bot", BOT, "--limit", "55"]), "");
    r.ok();
    assert_eq!(ids(&r.records(), "conversation_id"), newest_first[..55]);
    assert_eq!(stat(&sb, "/requests/conversation.list"), 2);

    // A bot without conversations: nothing, successfully.
    let r = run(conv(&sb).args(["list", "--bot", "no-such-bot"]), "");
    r.ok();
    assert!(r.stdout.is_empty(), "{}", r.describe());
}

fn head_1_ends_it_quietly_and_stops_paging(d: Dialect) {
    let sb = logged_in_as("conv-head", d);
    make_conversations(&sb, BOT, 120);
    sb.fake.reset();
    // Each page is answered late, so `head` is gone before page 2 is written at the latest.
    sb.fake
        .push_fault("conversation.list", json!({"type": "delay", "ms": 300}), 3);
    let script = format!(
        "'{}' list --bot {BOT} | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
        bin("coze-conv").display()
    );
    let r = run(sb.cmd("bash").args(["-c", &script]), "");
    r.ok();
    assert_eq!(r.stderr, "status=0\n", "{}", r.describe());
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    // head is gone during page 1 or, at the latest, page 2 (answered 300 ms late): the
    // next write fails, and coze-conv stops there, quietly, before page 3.
    let pages = stat(&sb, "/requests/conversation.list");
    assert!(
        (1..=2).contains(&pages),
        "{pages} pages fetched for a stdout closed after one line"
    );
}

// ---------------------------------------------------------------- clear, delete

#[test]
fn clear_prints_the_new_section() {
    let sb = logged_in("conv-clear");
    let id = make_conversations(&sb, BOT, 1).remove(0);
    let before = retrieve(&sb, &id)["last_section_id"].clone();
    let r = run(conv(&sb).args(["clear", &id]), "");
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    assert_eq!(recs[0]["type"], "section");
    assert_eq!(recs[0]["conversation_id"], id.as_str());
    let after = retrieve(&sb, &id)["last_section_id"].clone();
    assert_ne!(after, before);
    assert_eq!(recs[0]["id"], after, "the record names the new section");
}

#[test]
fn delete_then_get_fails_with_exit_1_and_the_logid() {
    let sb = logged_in("conv-delete");
    let id = make_conversations(&sb, BOT, 1).remove(0);
    let r = run(conv(&sb).args(["delete", &id]), "");
    r.ok();
    assert_eq!(
        r.records(),
        vec![json!({"type": "deleted", "conversation_id": id})]
    );
    let r = run(conv(&sb).args(["get", &id]), "");
    r.expect_code(1);
    assert_one_error_line(&r, &format!("retrieving conversation {id}: code 4200"));
    assert!(r.stderr.contains("(logid "), "{}", r.describe());
    // Deleting it again is the API's error too.
    let r = run(conv(&sb).args(["delete", &id]), "");
    r.expect_code(1);
    assert_one_error_line(&r, &format!("deleting conversation {id}: code 4200"));
}

// ---------------------------------------------------------------- messages

#[test]
fn messages_page_in_both_orders() {
    let sb = logged_in("conv-messages");
    let id = make_conversations(&sb, BOT, 1).remove(0);
    let made = make_messages(&sb, &id, 113);
    sb.fake.reset();

    let r = run(conv(&sb).args(["messages", &id, "--order", "asc"]), "");
    r.ok();
    let asc = r.records();
    assert_eq!(ids(&asc, "id"), made);
    assert_eq!(stat(&sb, "/requests/message.list"), 3);
    let first = &asc[0];
    assert_eq!(first["type"], "message");
    assert_eq!(first["message_type"], "question");
    assert_eq!(first["role"], "user");
    assert_eq!(first["content"], "m0 你好 🙂");
    assert_eq!(first["conversation_id"], id.as_str());
    assert_eq!(asc[1]["message_type"], "answer");
    // Every field of the API's object, only `type` renamed.
    let api_msg = api(
        &sb,
        "GET",
        &format!(
            "/v1/conversation/message/retrieve?conversation_id={id}&message_id={}",
            made[0]
        ),
        None,
    )["data"]
        .clone();
    let mut want = api_msg.as_object().unwrap().clone();
    let kind = want.remove("type").unwrap();
    want.insert("message_type".into(), kind);
    want.insert("type".into(), "message".into());
    assert_eq!(first, &Value::Object(want));

    sb.fake.reset();
    let r = run(conv(&sb).args(["messages", &id]), "");
    r.ok();
    let mut newest_first = made.clone();
    newest_first.reverse();
    assert_eq!(ids(&r.records(), "id"), newest_first, "desc is the default");
    assert_eq!(stat(&sb, "/requests/message.list"), 3);

    sb.fake.reset();
    let r = run(
        conv(&sb).args(["messages", &id, "--order", "desc", "--limit", "52"]),
        "",
    );
    r.ok();
    assert_eq!(ids(&r.records(), "id"), newest_first[..52]);
    assert_eq!(stat(&sb, "/requests/message.list"), 2);

    let empty = make_conversations(&sb, BOT, 1).remove(0);
    let r = run(conv(&sb).args(["messages", &empty]), "");
    r.ok();
    assert!(r.stdout.is_empty(), "{}", r.describe());
}

/// A server whose message list always says there is more, with the same cursor.
fn serve_a_repeating_cursor() -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let mut served = 0;
        // Bounded: a client that loops forever fails the test instead of hanging it.
        while served < 20 {
            let Ok((stream, _)) = listener.accept() else {
                break;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                // The test's own connect, to say it is done.
                break;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            served += 1;
            let reply = json!({"code": 0, "msg": "", "has_more": true,
                "first_id": "m1", "last_id": "m2", "detail": {"logid": "L"},
                "data": [{"id": "m1", "type": "answer"}, {"id": "m2", "type": "answer"}]})
            .to_string();
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
        served
    });
    (base, t)
}

#[test]
fn a_server_that_repeats_its_cursor_is_an_error_not_a_loop() {
    let sb = Sandbox::new("conv-cursor");
    let (base, server) = serve_a_repeating_cursor();
    let r = run_deadline(
        conv(&sb)
            .args(["messages", "C1", "--base-url", &base])
            .env("COZE_API_TOKEN", "pat_x"),
        "",
        Duration::from_secs(20),
    );
    r.expect_code(1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .starts_with("coze-conv: listing messages of conversation C1: "),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("m2 twice"), "{}", r.describe());
    // What came before the repeat was printed: two pages, then the stop.
    assert_eq!(r.records().len(), 4, "{}", r.describe());
    // Unblock the server's accept and check how often it was asked.
    let _ = std::net::TcpStream::connect(base.trim_start_matches("http://"));
    assert_eq!(server.join().unwrap(), 2, "two pages, then the stop");
}

// ---------------------------------------------------------------- auth

#[test]
fn a_token_the_server_expired_is_refreshed_once() {
    let sb = logged_in("conv-expired");
    let id = make_conversations(&sb, BOT, 1).remove(0);
    let before = read_token(&sb.token_path());
    sb.fake.expire_tokens();
    let r = run(conv(&sb).args(["get", &id]), "");
    r.ok();
    assert_eq!(r.records()[0]["conversation_id"], id.as_str());
    assert_eq!(stat(&sb, "/refreshes"), 1);
    assert_eq!(
        stat(&sb, "/requests/conversation.retrieve"),
        2,
        "refused, then retried"
    );
    assert_ne!(
        read_token(&sb.token_path())["access_token"],
        before["access_token"]
    );
    let r = run(conv(&sb).args(["get", &id]), "");
    r.ok();
    assert_eq!(
        stat(&sb, "/refreshes"),
        1,
        "the renewed token is used as is"
    );
}

#[test]
fn an_unknown_pat_exits_4_without_a_region_hint() {
    let sb = Sandbox::new("conv-pat");
    let r = run(
        conv(&sb)
            .args(["list", "--bot", BOT])
            .env("COZE_API_TOKEN", "pat_not_known_to_the_fake"),
        "",
    );
    r.expect_code(4);
    assert_one_error_line(
        &r,
        &format!("listing conversations of bot {BOT}: code 4100"),
    );
    assert!(r.stderr.contains("(logid "), "{}", r.describe());
    assert!(
        !r.stderr.contains("--region"),
        "loopback needs no hint: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("pat_not_known"),
        "the token leaked: {}",
        r.stderr
    );
    assert_eq!(stat(&sb, "/token_requests"), 0, "a PAT is never refreshed");
}

#[test]
fn no_credentials_exits_4() {
    let sb = Sandbox::new("conv-nocreds");
    let r = run(conv(&sb).args(["get", "C1"]), "");
    r.expect_code(4);
    assert_one_error_line(&r, "retrieving conversation C1: ");
    assert_eq!(stat(&sb, "/requests/conversation.retrieve"), 0);
}

// ---------------------------------------------------------------- transient failures

fn a_500_is_retried_and_succeeds(d: Dialect) {
    let sb = logged_in_as("conv-500", d);
    sb.fake.reset();
    sb.fake.push_fault(
        "conversation.create",
        json!({"type": "http", "status": 500}),
        1,
    );
    let r = run(conv(&sb).args(["create", "--bot", BOT]), "");
    r.ok();
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/conversation.create"), 2);
    assert_eq!(stat(&sb, "/faults_fired"), 1);
    let listed = api(
        &sb,
        "GET",
        &format!("/v1/conversations?bot_id={BOT}&page_num=1&page_size=50"),
        None,
    );
    assert_eq!(listed["data"]["conversations"].as_array().unwrap().len(), 1);
}

#[test]
fn a_429_past_the_retries_exits_6() {
    let sb = logged_in("conv-429");
    let id = make_conversations(&sb, BOT, 1).remove(0);
    make_messages(&sb, &id, 3);
    sb.fake.reset();
    sb.fake
        .push_fault("message.list", json!({"type": "http", "status": 429}), 3);
    let start = Instant::now();
    let r = run(conv(&sb).args(["messages", &id, "--retries", "2"]), "");
    r.expect_code(6);
    assert_one_error_line(&r, &format!("listing messages of conversation {id}: "));
    assert_eq!(
        stat(&sb, "/requests/message.list"),
        3,
        "one try and two retries"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    // The queue is spent: the next run goes through.
    let r = run(conv(&sb).args(["messages", &id]), "");
    assert_eq!(r.ok().records().len(), 3);
}

#[test]
fn a_closed_port_exits_5_on_one_line() {
    let sb = Sandbox::new("conv-refused");
    let port = refusing_port();
    let r = run(
        conv(&sb)
            .args(["list", "--bot", BOT, "--retries", "1"])
            .args(["--base-url", &format!("http://127.0.0.1:{port}")])
            .env("COZE_API_TOKEN", "pat_x"),
        "",
    );
    r.expect_code(5);
    assert_one_error_line(&r, &format!("listing conversations of bot {BOT}: "));
}

// ---------------------------------------------------------------- usage

#[test]
fn usage_errors_exit_2_before_anything_is_sent() {
    let sb = logged_in("conv-usage");
    sb.fake.reset();
    let cases: &[(&[&str], &str)] = &[
        (&[], "name a subcommand"),
        (&["frob"], "unknown subcommand \"frob\""),
        (&["get"], "get: name the conversation"),
        (&["messages"], "messages: name the conversation"),
        (&["delete"], "delete: name the conversation"),
        (&["clear"], "clear: name the conversation"),
        (&["list"], "list: which bot? pass --bot or set COZE_BOT_ID"),
        (
            &["messages", "C", "--order", "sideways"],
            "--order: expected asc or desc",
        ),
        (
            &["create", "--bot", BOT, "--meta", "novalue"],
            "--meta: expected KEY=VALUE",
        ),
        (
            &["create", "--bot", BOT, "--meta", "=v"],
            "--meta: expected KEY=VALUE",
        ),
        (
            &["list", "--bot", BOT, "--limit", "x"],
            "--limit: expected a whole number",
        ),
        (
            &["list", "--bot", BOT, "--limit", "0"],
            "--limit: expected 1 or more",
        ),
        (&["get", "C", "D"], "unexpected argument \"D\""),
        (
            &["delete", "C", "--name", "x"],
            "--name does not go with delete",
        ),
        (&["list", "--bot", BOT, "--no-such-flag"], "--no-such-flag"),
    ];
    for (args, want) in cases {
        let r = run(conv(&sb).args(*args), "");
        r.expect_code(2);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr.starts_with("coze-conv: ") && r.stderr.contains(want),
            "want {want:?}\n{}",
            r.describe()
        );
    }
    let requests = sb.stats()["requests"].clone();
    assert!(
        requests.as_object().is_none_or(|m| m.is_empty()),
        "usage errors send nothing: {requests}"
    );
}

#[test]
fn help_documents_records_examples_and_exit_codes() {
    let sb = Sandbox::new("conv-help");
    let r = run(conv(&sb).arg("--help"), "");
    r.ok();
    for want in [
        "coze-conv create --bot ID",
        "coze-conv messages CONVERSATION_ID",
        "message_type",
        "{\"type\":\"section\"",
        "{\"type\":\"deleted\"",
        "CONNECTION:",
        "--token-file",
        "coze-conv list --bot $BOT --limit 5",
        "{ coze-conv create --bot $BOT; echo hello; } | coze-chat --bot $BOT -o text",
        "EXIT STATUS",
        "6    rate limit",
    ] {
        assert!(
            r.stdout.contains(want),
            "--help lacks {want:?}:\n{}",
            r.stdout
        );
    }
}

both_dialects!(
    head_1_ends_it_quietly_and_stops_paging,
    a_500_is_retried_and_succeeds,
);
