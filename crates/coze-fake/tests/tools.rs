//! Integration tests of coze-fake's tool-calling bot over real sockets: the `tools`
//! bot setting, chats that stop in `requires_action` with the round's calls, and
//! `POST /v3/chat/submit_tool_outputs` continuing the same chat, streamed or polled,
//! its refusals and its faults, and `/_fake/tool_outputs`.

mod common;

use common::{call, delta_text, events, get, post_json, start, Resp, PAT};
use coze_fake::{Fake, Options};
use serde_json::{json, Value};

fn chat_body(prompt: &str, stream: bool) -> Value {
    json!({"bot_id":"b1","user_id":"u1","stream":stream,"auto_save_history":true,
           "additional_messages":[{"role":"user","content":prompt,"content_type":"text"}]})
}

/// A fake whose bot makes these rounds of calls.
fn fake_with(rounds: Value) -> Fake {
    let fake = start(Options::default());
    fake.set_bot(json!({"tools": {"rounds": rounds}}));
    fake
}

fn names(evs: &[(String, String)]) -> Vec<&str> {
    evs.iter().map(|(e, _)| e.as_str()).collect()
}

fn data(evs: &[(String, String)], i: usize) -> Value {
    serde_json::from_str(&evs[i].1).unwrap_or_else(|e| panic!("event {i} ({e}): {evs:?}"))
}

/// The data of the one event named `name`.
fn only(evs: &[(String, String)], name: &str) -> Value {
    let at: Vec<usize> = (0..evs.len()).filter(|&i| evs[i].0 == name).collect();
    assert_eq!(at.len(), 1, "{name} in {:?}", names(evs));
    data(evs, at[0])
}

/// The `conversation.message.completed` messages of a stream.
fn completed(evs: &[(String, String)]) -> Vec<Value> {
    (0..evs.len())
        .filter(|&i| evs[i].0 == "conversation.message.completed")
        .map(|i| data(evs, i))
        .collect()
}

fn kinds(msgs: &[Value]) -> Vec<&str> {
    msgs.iter().map(|m| m["type"].as_str().unwrap()).collect()
}

/// The `tool_calls` of a Chat waiting for outputs.
fn tool_calls(chat: &Value) -> Vec<Value> {
    assert_eq!(chat["status"], "requires_action", "{chat}");
    assert_eq!(
        chat["required_action"]["type"], "submit_tool_outputs",
        "{chat}"
    );
    chat["required_action"]["submit_tool_outputs"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool_calls: {chat}"))
        .clone()
}

fn submit_path(chat: &Value) -> String {
    format!(
        "/v3/chat/submit_tool_outputs?conversation_id={}&chat_id={}",
        chat["conversation_id"].as_str().unwrap(),
        chat["id"].as_str().unwrap()
    )
}

/// POST submit_tool_outputs for `chat` with `outputs` ([(tool_call_id, output)]).
fn submit(fake: &Fake, chat: &Value, outputs: &[(&str, &str)], stream: bool) -> Resp {
    let outs: Vec<Value> = outputs
        .iter()
        .map(|(id, o)| json!({"tool_call_id": id, "output": o}))
        .collect();
    post_json(
        fake,
        &submit_path(chat),
        Some(PAT),
        &json!({"tool_outputs": outs, "stream": stream}),
    )
}

/// A streamed chat: its events, and the Chat of its requires_action event.
fn ask(fake: &Fake, prompt: &str) -> (Vec<(String, String)>, Value) {
    let evs = events(&post_json(fake, "/v3/chat", Some(PAT), &chat_body(prompt, true)).text());
    let chat = only(&evs, "conversation.chat.requires_action");
    (evs, chat)
}

fn retrieve(fake: &Fake, chat: &Value) -> Value {
    let path = format!(
        "/v3/chat/retrieve?conversation_id={}&chat_id={}",
        chat["conversation_id"].as_str().unwrap(),
        chat["id"].as_str().unwrap()
    );
    let r = get(fake, &path, PAT).json();
    assert_eq!(r["code"], 0, "{r}");
    r["data"].clone()
}

fn chat_messages(fake: &Fake, chat: &Value) -> Vec<Value> {
    let path = format!(
        "/v3/chat/message/list?conversation_id={}&chat_id={}",
        chat["conversation_id"].as_str().unwrap(),
        chat["id"].as_str().unwrap()
    );
    let r = get(fake, &path, PAT).json();
    assert_eq!(r["code"], 0, "{r}");
    r["data"].as_array().unwrap().clone()
}

#[test]
fn the_tools_setting_is_shown_and_a_bad_one_refused_naming_the_field() {
    let fake = start(Options::default());
    let set = |body: Value| post_json(&fake, "/_fake/bot", None, &body);
    let rounds = json!([[{"name":"get_weather","arguments":{"city":"北京"}},
                         {"name":"raw","arguments":"not json"}],
                        [{"type":"reply_message","question":"哪天？"}]]);
    assert_eq!(set(json!({"tools":{"rounds":rounds}})).status, 200);
    let shown = get(&fake, "/_fake/bot", PAT).json();
    assert_eq!(
        shown["tools"],
        json!({"rounds":[[{"type":"function","name":"get_weather","arguments":{"city":"北京"}},
                          {"type":"function","name":"raw","arguments":"not json"}],
                         [{"type":"reply_message","question":"哪天？"}]],
               "usage_keys":"count"})
    );
    for (bad, field) in [
        (
            json!({"rounds":[[{"name":"f","arguments":3}]]}),
            "tools.rounds[0][0].arguments",
        ),
        (
            json!({"rounds":[[{"arguments":{}}]]}),
            "tools.rounds[0][0].name",
        ),
        (json!({"rounds":[]}), "tools.rounds"),
        (json!({"rounds":[[]]}), "tools.rounds[0]"),
        (json!({"rounds":[[{"name":"f","colour":1}]]}), "\"colour\""),
        (
            json!({"rounds":[[{"type":"reply_message","question":"a"},
                           {"type":"reply_message","question":"b"}]]}),
            "more than one reply_message",
        ),
        (
            json!({"rounds":[[{"name":"f"}]],"usage_keys":"tokens!"}),
            "tools.usage_keys",
        ),
        (json!({"round":[[{"name":"f"}]]}), "\"round\""),
    ] {
        let r = set(json!({ "tools": bad }));
        assert_eq!(r.status, 400, "{bad}");
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(field), "{bad}: {e}");
    }
    // A refused setting leaves the last good one.
    assert_eq!(
        get(&fake, "/_fake/bot", PAT).json()["tools"],
        shown["tools"]
    );
    assert_eq!(set(json!({})).status, 200);
    assert_eq!(get(&fake, "/_fake/bot", PAT).json()["tools"], Value::Null);
}

#[test]
fn a_streamed_chat_asks_its_call_and_stops_in_requires_action() {
    let fake = fake_with(json!([[{"name":"get_weather","arguments":{"city":"北京"}}]]));
    let (evs, chat) = ask(&fake, "北京天气？");
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.created",
            "conversation.chat.in_progress",
            "conversation.message.completed",
            "conversation.message.completed",
            "conversation.chat.requires_action",
            "done"
        ]
    );
    assert_eq!(evs.last().unwrap().1, "\"[DONE]\"");
    // Chats that do not wait carry an empty required_action: only status tells.
    for i in 0..2 {
        let c = data(&evs, i);
        assert_ne!(c["status"], "requires_action");
        assert_eq!(
            c["required_action"],
            json!({"type":"","submit_tool_outputs":{"tool_calls":[]}}),
            "{c}"
        );
    }
    let msgs = completed(&evs);
    assert_eq!(kinds(&msgs), ["function_call", "verbose"]);
    let call: Value = serde_json::from_str(msgs[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], json!({"city":"北京"}));
    assert_eq!(call["plugin_type"], 6);
    assert!(msgs[1]["content"]
        .as_str()
        .unwrap()
        .contains("\"msg_type\":\"interrupt\""));
    let id = chat["id"].as_str().unwrap();
    assert_eq!(
        tool_calls(&chat),
        [json!({"id": format!("call_{id}_1_1"), "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"北京\"}"},
                "require_info": null})]
    );
    assert_eq!(chat["usage"]["output_count"], 0);
    // The chat waits: retrieve says so, and its messages so far are listed.
    assert_eq!(
        retrieve(&fake, &chat)["required_action"],
        chat["required_action"]
    );
    assert_eq!(
        kinds(&chat_messages(&fake, &chat)),
        ["function_call", "verbose"]
    );
}

#[test]
fn a_streamed_submit_continues_the_chat_and_echoes_the_output() {
    let fake = fake_with(json!([[{"name":"get_weather","arguments":{"city":"北京"}}]]));
    let (_, chat) = ask(&fake, "北京天气？");
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    let r = submit(&fake, &chat, &[(&id, "晴，25°C")], true);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let evs = events(&r.text());
    let n = names(&evs);
    assert_eq!(
        n[..2],
        [
            "conversation.chat.in_progress",
            "conversation.message.completed"
        ]
    );
    assert_eq!(n[n.len() - 2..], ["conversation.chat.completed", "done"]);
    assert!(!n.contains(&"conversation.chat.created"));
    let in_progress = data(&evs, 0);
    assert_eq!(in_progress["id"], chat["id"]);
    assert_eq!(in_progress["status"], "in_progress");
    let msgs = completed(&evs);
    assert_eq!(
        kinds(&msgs),
        [
            "tool_response",
            "answer",
            "verbose",
            "follow_up",
            "follow_up",
            "follow_up"
        ]
    );
    assert_eq!(msgs[0]["content"], "晴，25°C");
    let want = "工具结果 get_weather: 晴，25°C";
    assert_eq!(delta_text(&evs), want);
    assert_eq!(msgs[1]["content"], want);
    assert!(msgs.iter().all(|m| m["chat_id"] == chat["id"]));
    let done = only(&evs, "conversation.chat.completed");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["output_count"], want.chars().count());
    assert!(done.get("required_action").is_none(), "{done}");

    assert_eq!(
        fake.tool_outputs(),
        json!([{"conversation_id": chat["conversation_id"], "chat_id": chat["id"], "round": 1,
                "stream": true, "tool_outputs": [{"tool_call_id": id, "output": "晴，25°C"}]}])
    );
    // The admin endpoint says the same.
    assert_eq!(
        call(&fake, "GET", "/_fake/tool_outputs", &[], b"").json(),
        fake.tool_outputs()
    );
    assert_eq!(retrieve(&fake, &chat)["status"], "completed");
    assert_eq!(
        kinds(&chat_messages(&fake, &chat)),
        [
            "function_call",
            "verbose",
            "tool_response",
            "answer",
            "verbose",
            "follow_up",
            "follow_up",
            "follow_up"
        ]
    );
    // The chat answered, the conversation is free for the next one.
    let next = post_json(
        &fake,
        &format!(
            "/v3/chat?conversation_id={}",
            chat["conversation_id"].as_str().unwrap()
        ),
        Some(PAT),
        &chat_body("再来", true),
    );
    assert!(next.text().contains("conversation.chat.requires_action"));
}

#[test]
fn several_calls_of_a_round_are_asked_and_answered_together() {
    let fake = fake_with(json!([[
        {"name":"get_weather","arguments":{"city":"北京"}},
        {"name":"get_time","arguments":{"tz":"Asia/Shanghai"}}
    ]]));
    let (evs, chat) = ask(&fake, "天气和时间");
    let msgs = completed(&evs);
    assert_eq!(kinds(&msgs), ["function_call", "function_call", "verbose"]);
    let calls = tool_calls(&chat);
    let id = chat["id"].as_str().unwrap();
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [format!("call_{id}_1_1"), format!("call_{id}_1_2")]);
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(
        calls[1]["function"]["arguments"],
        "{\"tz\":\"Asia/Shanghai\"}"
    );
    // Submitted in another order: the bot takes them in call order.
    let evs = events(&submit(&fake, &chat, &[(ids[1], "12:00"), (ids[0], "晴")], true).text());
    let msgs = completed(&evs);
    assert_eq!(
        kinds(&msgs)[..3],
        ["tool_response", "tool_response", "answer"]
    );
    assert_eq!(
        (msgs[0]["content"].as_str(), msgs[1]["content"].as_str()),
        (Some("晴"), Some("12:00"))
    );
    assert_eq!(
        delta_text(&evs),
        "工具结果 get_weather: 晴; get_time: 12:00"
    );
    // The record keeps them as sent.
    assert_eq!(
        fake.tool_outputs()[0]["tool_outputs"],
        json!([{"tool_call_id": ids[1], "output": "12:00"}, {"tool_call_id": ids[0], "output": "晴"}])
    );
}

#[test]
fn a_second_round_follows_the_first_outputs_in_the_same_chat() {
    let fake = fake_with(json!([
        [{"name":"find_city","arguments":{"q":"首都"}}],
        [{"name":"get_weather","arguments":{"city":"北京"}}]
    ]));
    let (_, chat) = ask(&fake, "首都天气");
    let first = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    let evs = events(&submit(&fake, &chat, &[(&first, "北京")], true).text());
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.in_progress",
            "conversation.message.completed",
            "conversation.message.completed",
            "conversation.message.completed",
            "conversation.chat.requires_action",
            "done"
        ]
    );
    assert_eq!(
        kinds(&completed(&evs)),
        ["tool_response", "function_call", "verbose"]
    );
    let again = only(&evs, "conversation.chat.requires_action");
    assert_eq!(again["id"], chat["id"]);
    let calls = tool_calls(&again);
    let second = calls[0]["id"].as_str().unwrap().to_string();
    assert_eq!(second, format!("call_{}_2_1", chat["id"].as_str().unwrap()));
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    // The first round's id is no longer waited for.
    let r = submit(&fake, &again, &[(&first, "北京")], true).json();
    assert_eq!(r["code"], 4000, "{r}");
    let evs = events(&submit(&fake, &again, &[(&second, "晴")], true).text());
    assert_eq!(
        delta_text(&evs),
        "工具结果 find_city: 北京; get_weather: 晴"
    );
    assert_eq!(
        only(&evs, "conversation.chat.completed")["status"],
        "completed"
    );
    let rounds: Vec<u64> = fake
        .tool_outputs()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, [1, 2]);
    assert_eq!(
        kinds(&chat_messages(&fake, &chat))[..6],
        [
            "function_call",
            "verbose",
            "tool_response",
            "function_call",
            "verbose",
            "tool_response"
        ]
    );
}

#[test]
fn a_reply_message_call_asks_its_question_and_takes_the_answer() {
    let fake = fake_with(json!([[{"type":"reply_message","question":"哪个城市？"}]]));
    let (evs, chat) = ask(&fake, "天气");
    let n = names(&evs);
    assert_eq!(
        n[..2],
        ["conversation.chat.created", "conversation.chat.in_progress"]
    );
    assert_eq!(
        n[n.len() - 4..],
        [
            "conversation.message.completed",
            "conversation.message.completed",
            "conversation.chat.requires_action",
            "done"
        ]
    );
    // The question comes as the bot's answer, in deltas, before the call.
    assert_eq!(delta_text(&evs), "哪个城市？");
    let msgs = completed(&evs);
    assert_eq!(kinds(&msgs), ["answer", "verbose"]);
    assert_eq!(msgs[0]["content"], "哪个城市？");
    // As the Coze API docs (workflow_chat) show it: no id, no function.
    assert_eq!(
        tool_calls(&chat),
        [json!({"id":"","type":"reply_message","function":null,"require_info":null})]
    );
    let evs = events(&submit(&fake, &chat, &[("", "北京")], true).text());
    assert_eq!(delta_text(&evs), "工具结果 reply_message: 北京");
}

#[test]
fn raw_string_arguments_are_sent_as_given() {
    let fake = fake_with(json!([[
        {"name":"raw","arguments":"city=北京, not JSON"},
        {"name":"list","arguments":"[1,2]"},
        {"name":"none"}
    ]]));
    let (evs, chat) = ask(&fake, "x");
    let calls = tool_calls(&chat);
    let args: Vec<&str> = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, ["city=北京, not JSON", "[1,2]", "{}"]);
    let contents: Vec<Value> = completed(&evs)[..3]
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m["content"].as_str().unwrap()).unwrap()["arguments"]
                .clone()
        })
        .collect();
    assert_eq!(
        contents,
        [json!("city=北京, not JSON"), json!("[1,2]"), json!({})]
    );
}

/// A polled chat: the Chat once retrieve shows it settled.
fn ask_polled(fake: &Fake, prompt: &str) -> Value {
    let r = post_json(fake, "/v3/chat", Some(PAT), &chat_body(prompt, false)).json();
    assert_eq!(r["code"], 0, "{r}");
    assert_eq!(r["data"]["status"], "in_progress");
    let c = retrieve(fake, &r["data"]);
    assert_eq!(c["status"], "requires_action", "{c}");
    c
}

#[test]
fn a_polled_chat_waits_in_requires_action_and_a_plain_submit_continues_it() {
    let fake = fake_with(json!([
        [{"name":"find_city","arguments":{"q":"首都"}}],
        [{"name":"get_weather","arguments":{"city":"北京"}}]
    ]));
    let chat = ask_polled(&fake, "首都天气");
    assert_eq!(
        kinds(&chat_messages(&fake, &chat)),
        ["function_call", "verbose"]
    );
    let first = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    // Not streamed: the Chat, running again, as the use_local_plugin guide shows.
    let r = submit(&fake, &chat, &[(&first, "北京")], false);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let r = r.json();
    assert_eq!(
        (r["code"].as_i64(), r["data"]["status"].as_str()),
        (Some(0), Some("in_progress")),
        "{r}"
    );
    assert_eq!(r["data"]["id"], chat["id"]);
    assert_eq!(r["data"]["required_action"]["type"], "", "{r}");
    // Polled on, it asks the second round, then completes with the echo.
    let again = retrieve(&fake, &chat);
    let second = tool_calls(&again)[0]["id"].as_str().unwrap().to_string();
    assert!(second.ends_with("_2_1"), "{second}");
    let r = submit(&fake, &again, &[(&second, "晴")], false).json();
    assert_eq!(r["code"], 0, "{r}");
    let done = retrieve(&fake, &chat);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done.get("required_action").is_none(), "{done}");
    let want = "工具结果 find_city: 北京; get_weather: 晴";
    assert_eq!(done["usage"]["output_count"], want.chars().count());
    let msgs = chat_messages(&fake, &chat);
    assert_eq!(
        kinds(&msgs),
        [
            "function_call",
            "verbose",
            "tool_response",
            "function_call",
            "verbose",
            "tool_response",
            "answer",
            "verbose",
            "follow_up",
            "follow_up",
            "follow_up"
        ]
    );
    assert_eq!(msgs[6]["content"], want);
    let streams: Vec<bool> = fake
        .tool_outputs()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stream"].as_bool().unwrap())
        .collect();
    assert_eq!(streams, [false, false]);
    // The completed chat's messages went to its conversation, after the question.
    let conv = chat["conversation_id"].as_str().unwrap();
    let listed = post_json(
        &fake,
        &format!("/v1/conversation/message/list?conversation_id={conv}"),
        Some(PAT),
        &json!({"order":"asc"}),
    )
    .json();
    let listed = listed["data"].as_array().unwrap().clone();
    assert_eq!(
        kinds(&listed)[..4],
        ["question", "function_call", "verbose", "tool_response"]
    );
}

#[test]
fn a_chat_running_on_after_a_submit_holds_its_conversation_and_can_be_cancelled() {
    let fake = fake_with(json!([[{"name":"f"}]]));
    let chat = ask_polled(&fake, "x");
    // A waiting chat leaves the conversation free…
    let conv = chat["conversation_id"].as_str().unwrap();
    fake.set_bot(json!({"tools":{"rounds":[[{"name":"f"}]]},"latency_ms":600_000}));
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    assert_eq!(submit(&fake, &chat, &[(&id, "o")], false).json()["code"], 0);
    assert_eq!(retrieve(&fake, &chat)["status"], "in_progress");
    // …a running one does not.
    let busy = post_json(
        &fake,
        &format!("/v3/chat?conversation_id={conv}"),
        Some(PAT),
        &chat_body("y", false),
    )
    .json();
    assert_eq!(busy["code"], 4016, "{busy}");
    let r = post_json(
        &fake,
        "/v3/chat/cancel",
        Some(PAT),
        &json!({"conversation_id": conv, "chat_id": chat["id"]}),
    )
    .json();
    assert_eq!(r["data"]["status"], "canceled", "{r}");
    let r = submit(&fake, &chat, &[(&id, "o")], false).json();
    assert_eq!(r["code"], 4000, "{r}");
    assert!(
        r["msg"].as_str().unwrap().contains("status canceled"),
        "{r}"
    );
}

#[test]
fn usage_keys_tokens_names_the_completed_usage_as_the_submit_docs_do() {
    let fake = start(Options::default());
    fake.set_bot(json!({"tools":{"rounds":[[{"name":"f"}]],"usage_keys":"tokens"}}));
    let (evs, chat) = ask(&fake, "x");
    assert!(data(&evs, 0)["usage"].get("output_count").is_some());
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    let evs = events(&submit(&fake, &chat, &[(&id, "out")], true).text());
    let usage = &only(&evs, "conversation.chat.completed")["usage"];
    let want = "工具结果 f: out".chars().count();
    assert_eq!(usage["output_tokens"], want, "{usage}");
    assert_eq!(usage["input_tokens"], 1 + 12 + 3, "{usage}");
    assert!(usage.get("output_count").is_none(), "{usage}");
    assert_eq!(retrieve(&fake, &chat)["usage"], *usage);
}

#[test]
fn submits_the_chat_cannot_take_are_refused_and_it_still_waits() {
    let fake = fake_with(json!([[{"name":"a"},{"name":"b"}]]));
    let (_, chat) = ask(&fake, "x");
    let calls = tool_calls(&chat);
    let (a, b) = (
        calls[0]["id"].as_str().unwrap().to_string(),
        calls[1]["id"].as_str().unwrap().to_string(),
    );
    let path = submit_path(&chat);
    let raw = |body: &[u8]| {
        call(
            &fake,
            "POST",
            &path,
            &[
                ("Authorization", &format!("Bearer {PAT}")),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .json()
    };
    let refused = |r: Value, code: i64, words: &str| {
        assert_eq!(r["code"], code, "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(msg.contains(words), "{words:?} not in {msg:?}");
        assert!(r["detail"]["logid"].is_string(), "{r}");
    };
    refused(raw(b"[1]"), 4000, "JSON object");
    refused(raw(br#"{"stream":true}"#), 4000, "tool_outputs is required");
    refused(
        raw(br#"{"tool_outputs":[]}"#),
        4000,
        "tool_outputs is required",
    );
    refused(
        raw(br#"{"tool_outputs":[{"tool_call_id":"x","output":{"a":1}}]}"#),
        4000,
        "tool_outputs[0].output must be a string",
    );
    refused(
        raw(br#"{"tool_outputs":[{"output":"o"}]}"#),
        4000,
        "tool_outputs[0].tool_call_id",
    );
    refused(
        raw(br#"{"tool_outputs":[{"tool_call_id":"x","output":"o"}],"stream":"yes"}"#),
        4000,
        "stream must be a boolean",
    );
    let no_chat_id = post_json(
        &fake,
        &format!(
            "/v3/chat/submit_tool_outputs?conversation_id={}",
            chat["conversation_id"].as_str().unwrap()
        ),
        Some(PAT),
        &json!({"tool_outputs":[{"tool_call_id":a,"output":"o"}]}),
    );
    refused(no_chat_id.json(), 4000, "chat_id");
    let mut other = chat.clone();
    other["id"] = json!("7000000000000000001");
    refused(
        submit(&fake, &other, &[(&a, "o"), (&b, "o")], true).json(),
        4200,
        "chat not found",
    );
    refused(
        submit(&fake, &chat, &[(&a, "o"), ("call_nope", "o")], true).json(),
        4000,
        "\"call_nope\"",
    );
    refused(
        submit(&fake, &chat, &[(&a, "o"), (&a, "p"), (&b, "o")], true).json(),
        4000,
        "more than one output",
    );
    refused(
        submit(&fake, &chat, &[(&a, "o")], true).json(),
        4000,
        &format!("{b:?} (b)"),
    );
    // Without a token, the usual 4100.
    let r = post_json(&fake, &path, None, &json!({"tool_outputs":[]}));
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(4100)));

    // Nothing was taken: the chat still waits, and a good submit goes through once.
    assert_eq!(retrieve(&fake, &chat)["status"], "requires_action");
    assert_eq!(fake.tool_outputs(), json!([]));
    let r = submit(&fake, &chat, &[(&a, "1"), (&b, "2")], false).json();
    assert_eq!(r["code"], 0, "{r}");
    refused(
        submit(&fake, &chat, &[(&a, "1"), (&b, "2")], false).json(),
        4000,
        "not waiting",
    );
    assert_eq!(fake.tool_outputs().as_array().unwrap().len(), 1);
    assert_eq!(fake.stats()["requests"]["chat.submit_tool_outputs"], 14);

    // A chat that asked no tool is not waiting either.
    fake.set_bot(json!({}));
    let evs = events(&post_json(&fake, "/v3/chat", Some(PAT), &chat_body("hi", true)).text());
    let plain = only(&evs, "conversation.chat.completed");
    refused(
        submit(&fake, &plain, &[("x", "o")], true).json(),
        4000,
        "(status completed)",
    );
}

#[test]
fn a_chat_without_saved_history_cannot_take_outputs_5000() {
    let fake = fake_with(json!([[{"name":"f"}]]));
    let mut body = chat_body("x", true);
    body["auto_save_history"] = json!(false);
    let evs = events(&post_json(&fake, "/v3/chat", Some(PAT), &body).text());
    let chat = only(&evs, "conversation.chat.requires_action");
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    let r = submit(&fake, &chat, &[(&id, "o")], true);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let r = r.json();
    assert_eq!(r["code"], 5000, "{r}");
    assert!(
        r["msg"].as_str().unwrap().contains("auto_save_history"),
        "{r}"
    );
    assert_eq!(fake.tool_outputs(), json!([]));
}

#[test]
fn the_requires_action_fault_takes_outputs_too() {
    let fake = start(Options::default());
    fake.push_fault("chat", json!({"type":"requires_action"}), 1);
    let (evs, chat) = ask(&fake, "杭州天气");
    assert!(completed(&evs).is_empty());
    let calls = tool_calls(&chat);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let id = calls[0]["id"].as_str().unwrap().to_string();
    let evs = events(&submit(&fake, &chat, &[(&id, "雨")], true).text());
    assert_eq!(delta_text(&evs), "工具结果 get_weather: 雨");
}

/// A fake whose bot makes one call, a chat waiting for it, and the call's id.
fn waiting() -> (Fake, Value, String) {
    let fake = fake_with(json!([[{"name":"get_weather","arguments":{"city":"北京"}}]]));
    let (_, chat) = ask(&fake, "天气");
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    (fake, chat, id)
}

#[test]
fn faults_that_replace_the_answer_leave_the_chat_waiting() {
    let (fake, chat, id) = waiting();
    let ep = "chat.submit_tool_outputs";
    fake.push_fault(ep, json!({"type":"http","status":429,"retry_after":2}), 1);
    let r = submit(&fake, &chat, &[(&id, "晴")], true);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("2")));
    assert_eq!(r.json()["code"], 4013);
    fake.push_fault(ep, json!({"type":"http","status":502}), 1);
    let r = submit(&fake, &chat, &[(&id, "晴")], true);
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    fake.push_fault(
        ep,
        json!({"type":"json_body","code":4000,"msg":"json fail"}),
        1,
    );
    let r = submit(&fake, &chat, &[(&id, "晴")], true);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.json()["msg"], "json fail");
    fake.push_fault(ep, json!({"type":"api_error","code":5000,"msg":"boom"}), 1);
    assert_eq!(
        submit(&fake, &chat, &[(&id, "晴")], false).json()["code"],
        5000
    );
    fake.push_fault(ep, json!({"type":"reset"}), 1);
    let mut c = common::Conn::open(&fake);
    c.send("POST", &submit_path(&chat), &[], b"{}");
    let mut buf = [0u8; 16];
    assert!(
        !matches!(std::io::Read::read(&mut c.r, &mut buf), Ok(n) if n > 0),
        "reset sends nothing"
    );
    // None of them reached the chat: it still waits, and takes the outputs once.
    assert_eq!(retrieve(&fake, &chat)["status"], "requires_action");
    assert_eq!(fake.tool_outputs(), json!([]));
    let evs = events(&submit(&fake, &chat, &[(&id, "晴")], true).text());
    assert_eq!(delta_text(&evs), "工具结果 get_weather: 晴");
    assert_eq!(fake.stats()["faults_fired"], 5);
}

#[test]
fn stream_faults_apply_to_the_continued_stream_after_the_outputs_are_taken() {
    // cut: no done, but the server took the outputs and the chat completed.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"cut","after_events":2}),
        1,
    );
    let evs = events(&submit(&fake, &chat, &[(&id, "晴")], true).text());
    assert_eq!(
        names(&evs),
        [
            "conversation.chat.in_progress",
            "conversation.message.completed"
        ]
    );
    assert_eq!(retrieve(&fake, &chat)["status"], "completed");
    assert_eq!(fake.tool_outputs().as_array().unwrap().len(), 1);
    // A second submit after the cut is refused: the outputs were taken.
    let r = submit(&fake, &chat, &[(&id, "晴")], true).json();
    assert_eq!(r["code"], 4000, "{r}");

    // error_event: the stream ends in an error event and the chat failed.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"error_event","after_events":3,"code":5000,"msg":"boom"}),
        1,
    );
    let evs = events(&submit(&fake, &chat, &[(&id, "晴")], true).text());
    assert_eq!(evs.len(), 4);
    assert_eq!(
        evs[3],
        (
            "error".to_string(),
            r#"{"code":5000,"msg":"boom"}"#.to_string()
        )
    );
    assert_eq!(retrieve(&fake, &chat)["status"], "failed");

    // chat_failed: the answer's deltas, then conversation.chat.failed and done.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"chat_failed","code":5000,"msg":"event interval error"}),
        1,
    );
    let evs = events(&submit(&fake, &chat, &[(&id, "晴")], true).text());
    let n = names(&evs);
    assert_eq!(n[n.len() - 2..], ["conversation.chat.failed", "done"]);
    let failed = only(&evs, "conversation.chat.failed");
    assert_eq!(failed["last_error"]["code"], 5000, "{failed}");
    assert_eq!(retrieve(&fake, &chat)["status"], "failed");

    // malformed: one event that is not JSON, then the rest.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"malformed","after_events":1}),
        1,
    );
    let body = submit(&fake, &chat, &[(&id, "晴")], true).text();
    assert!(body.contains("data:{\"id\":\n\n"), "{body}");
    assert!(body.ends_with("event:done\ndata:\"[DONE]\"\n\n"));

    // reset_mid_body: the connection dies mid-stream; the chat still completes.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"reset_mid_body","after_events":2}),
        1,
    );
    let mut c = common::Conn::open(&fake);
    let body =
        json!({"tool_outputs":[{"tool_call_id":id,"output":"晴"}],"stream":true}).to_string();
    c.send(
        "POST",
        &submit_path(&chat),
        &[
            ("Authorization", &format!("Bearer {PAT}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let head = c.head();
    assert_eq!(head.status, 200);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c.r, &mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("conversation.chat.in_progress") && !rest.contains("event:done"),
        "{rest}"
    );
    assert_eq!(retrieve(&fake, &chat)["status"], "completed");
}

#[test]
fn a_non_streamed_submit_takes_faults_as_json_answers_do() {
    // chat_failed: the continued chat fails when polled.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"chat_failed","code":5001,"msg":"x"}),
        1,
    );
    assert_eq!(
        submit(&fake, &chat, &[(&id, "晴")], false).json()["code"],
        0
    );
    let c = retrieve(&fake, &chat);
    assert_eq!(
        (c["status"].as_str(), c["last_error"]["code"].as_i64()),
        (Some("failed"), Some(5001))
    );
    // truncated_json: a body cut short, the outputs taken all the same.
    let (fake, chat, id) = waiting();
    fake.push_fault(
        "chat.submit_tool_outputs",
        json!({"type":"truncated_json"}),
        1,
    );
    let r = submit(&fake, &chat, &[(&id, "晴")], false);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert_eq!(retrieve(&fake, &chat)["status"], "completed");
    assert_eq!(fake.tool_outputs().as_array().unwrap().len(), 1);
}

/// A self-hosted Coze Studio has no local plugins: the setting changes nothing, no
/// chat waits, and the submit endpoint is one it lacks.
#[test]
fn a_studio_never_asks_for_tools_and_lacks_submit_tool_outputs() {
    let fake = Fake::start(Options {
        static_tokens: vec![PAT.into()],
        dialect: coze_fake::Dialect::Studio,
        ..Options::default()
    })
    .unwrap();
    fake.set_bot(json!({"tools":{"rounds":[[{"name":"get_weather"}]]}}));
    let mut body = chat_body("天气", true);
    body["bot_id"] = json!("7500000000000000001");
    let text = post_json(&fake, "/v3/chat", Some(PAT), &body).text();
    assert!(
        !text.contains("requires_action")
            && !text.contains("required_action")
            && !text.contains("function_call"),
        "{text}"
    );
    assert!(
        text.contains("conversation.chat.completed")
            && text.contains(&coze_fake::answer_text("天气")),
        "{text}"
    );
    let r = post_json(
        &fake,
        "/v3/chat/submit_tool_outputs?conversation_id=1&chat_id=2",
        Some(PAT),
        &json!({"tool_outputs":[{"tool_call_id":"x","output":"o"}],"stream":true}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.text(),
        r#"{"code":401,"msg":"missing session_key in cookie"}"#
    );
    assert_eq!(fake.stats()["requests"]["chat.submit_tool_outputs"], 1);
    assert_eq!(fake.tool_outputs(), json!([]));
}

/// A client may submit the moment it reads requires_action, before its stream has
/// ended: the end of that stream must not undo the submit.
#[test]
fn a_submit_before_the_asking_stream_ends_is_not_undone_by_its_end() {
    let fake = fake_with(json!([[{"name":"f"}]]));
    // The stream stops for a while after requires_action, before done.
    fake.push_fault("chat", json!({"type":"stall","after_events":5,"ms":300}), 1);
    let mut c = common::Conn::open(&fake);
    let body = chat_body("x", true).to_string();
    c.send(
        "POST",
        "/v3/chat",
        &[
            ("Authorization", &format!("Bearer {PAT}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(c.head().status, 200);
    let mut seen = String::new();
    while !seen.contains("event:conversation.chat.requires_action") {
        seen.push_str(&String::from_utf8(c.chunk().expect("the stream ended early")).unwrap());
    }
    assert!(!seen.contains("event:done"), "{seen}");
    let chat = only(&events(&seen), "conversation.chat.requires_action");
    let id = tool_calls(&chat)[0]["id"].as_str().unwrap().to_string();
    // Submitted (not streamed; the continued chat takes long), then the first stream ends.
    fake.set_bot(json!({"tools":{"rounds":[[{"name":"f"}]]},"latency_ms":600_000}));
    assert_eq!(submit(&fake, &chat, &[(&id, "o")], false).json()["code"], 0);
    while let Some(chunk) = c.chunk() {
        seen.push_str(&String::from_utf8(chunk).unwrap());
    }
    assert!(seen.ends_with("event:done\ndata:\"[DONE]\"\n\n"), "{seen}");
    let now = retrieve(&fake, &chat);
    assert_eq!(now["status"], "in_progress", "{now}");
}
