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
