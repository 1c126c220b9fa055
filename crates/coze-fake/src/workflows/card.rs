//! How a chatflow's question node speaks: the answer message that carries the question
//! before `conversation.chat.requires_action`.
//!
//! A self-hosted Coze Studio (`backend/application/workflow/chatflow.go`,
//! `convertToChatFlowRunResponseList` on `WorkflowInterrupted`, `renderQACardDSL`)
//! always renders the question node's interrupt data (its `{"messages":[…]}`, see
//! [`super::question_json`]) from its FIRST message:
//! - `content_type` `text`: the question itself, `content_type` `text`, sent as one
//!   `conversation.message.delta` and a `conversation.message.completed` with the same
//!   data;
//! - otherwise (`option`): a card, `content_type` `card`, only as
//!   `conversation.message.completed`: the JSON text of
//!   `{"card_type":3,"content_type":50,"response_type":"card","template_id":
//!   7383997384420262000,"template_url":"","data":DSL,"x_properties":
//!   {"workflow_card_info":INFO}}`, INFO the JSON text of `{"card_type":"QUESTION",
//!   "question_card_data":{"Title":QUESTION,"Options":[{"name":O},…]}}` and DSL the JSON
//!   text of the card's page layout (the chatflow's fixed template, its `list` variable
//!   `{"description":QUESTION,"list":[{"key":O},…]}`).
//!
//! The message's id is the interrupt's event id (`InterruptEvent.ID`, the number after
//! the `/` of `interrupt_data.event_id`). The question node's own Message output is not
//! streamed in a chatflow (its data messages from a question node are skipped).
//!
//! coze.cn (UNVERIFIED, inferred): a question node answers in text unless the request
//! asks for cards. The official Java SDK's issue #106 (coze-dev/coze-java) reports a
//! question node's message as `text` on `/v3/chat` and as `card` with `enable_card:
//! true`; the SDKs added `enable_card` to `/v3/chat` "for question node" cards; the
//! official JS chat SDK (coze-dev/coze-js `packages/chat-sdk`, chatflow `chat-service`)
//! asks `/v1/workflows/chat` with `ext.enable_card: "true"` and reads the card's
//! `x_properties.workflow_card_info` (`card_type` `QUESTION`, `question_card_data.Title`,
//! `Options[].name`), the keys Studio writes. So the fake's coze dialect sends Studio's
//! card when `ext.enable_card` is `"true"` (or `true`), and otherwise the question as
//! text, `QUESTION (O1 / O2)` when it has options: that text is the fake's own, nothing
//! documents coze.cn's.

use serde_json::{json, Value};

/// `template_id` of the chatflow's cards (`renderQACardDSL`).
const TEMPLATE_ID: u64 = 7_383_997_384_420_262_000;

/// The chatflow card's page layout (`cardTemplate` in Studio's `chatflow.go`), as Studio
/// sends it: its `actions` member is not in the struct it is read into, so it is dropped.
/// The `list` variable's `defaultValue` is filled per question.
const LAYOUT: &str = r#"{"elements":{
"root":{"id":"root","name":"Root","type":"@flowpd/cici-components/PageContainer",
 "props":{"backgroundColor":"grey","containerPadding":16,"containerRowGap":12},
 "children":["OpfZnYNHby","70zV0Jp5vy"],"directives":{}},
"OpfZnYNHby":{"id":"OpfZnYNHby","name":"FlowpdCiciComponentsColumnLayout",
 "type":"@flowpd/cici-components/ColumnLayout",
 "props":{"backgroundColor":"transparent","layoutColumnGap":4,"layoutPaddingGap":2,
  "borderRadius":0,"enableClickEvent":false,"action":"enableUrl",
  "Columns":[{"type":"slot","children":["KPa0BqoODo"],
   "config":{"width":"weighted","weight":1,"vertical":"top","horizontal":"left",
    "columnElementGap":4,"columnElementPadding":2,"enableClickEvent":false}}]},
 "children":[],
 "directives":{"repeat":{"type":"expression","value":"{{5fJt3qKpSz}}",
  "replaceMap":{"5fJt3qKpSz":"list"}}}},
"KPa0BqoODo":{"id":"KPa0BqoODo","name":"FlowpdCiciComponentsInput",
 "type":"@flowpd/cici-components/Input",
 "props":{"enableLabel":true,"label":{"type":"expression","value":"{{item.name}}"},
  "placeholder":"Please enter content.","maxLengthEnabled":false,"maxLength":140,
  "required":false,"enableSendIcon":true,"actionType":"enableMessage",
  "disableAfterAction":true,
  "message":{"type":"expression","value":"{{KPa0BqoODo_value}}"}},
 "children":[],"directives":{}},
"70zV0Jp5vy":{"id":"70zV0Jp5vy","name":"FlowpdCiciComponentsColumnLayout",
 "type":"@flowpd/cici-components/ColumnLayout",
 "props":{"backgroundColor":"transparent","layoutColumnGap":4,"layoutPaddingGap":2,
  "borderRadius":0,"enableClickEvent":false,"action":"enableUrl",
  "Columns":[{"type":"slot","children":["mH5BNaFTl1"],
   "config":{"width":"weighted","weight":1,"vertical":"top","horizontal":"right",
    "columnElementGap":4,"columnElementPadding":2,"enableClickEvent":false}}]},
 "children":[],"directives":{}},
"mH5BNaFTl1":{"id":"mH5BNaFTl1","name":"FlowpdCiciComponentsButton",
 "type":"@flowpd/cici-components/Button",
 "props":{"content":"Button","type":"primary","size":"small","width":"hug",
  "widthPx":160,"textAlign":"center","enableLines":false,"lines":1,
  "positionStyle":{"type":"default"},"actionType":"enableMessage",
  "disableAfterAction":true,
  "message":{"type":"expression","value":"{{KPa0BqoODo_value}}"}},
 "children":[],"directives":{}}},
"rootID":"root",
"variables":{"5fJt3qKpSz":{"id":"5fJt3qKpSz","name":"list","defaultValue":[]}}}"#;

/// The answer message a chatflow's question becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Said {
    /// The message's `content`.
    pub content: String,
    /// Its `content_type`: `text` or `card`.
    pub content_type: &'static str,
}

impl Said {
    /// Whether the message streams as deltas before its `completed` (a card does not).
    pub fn is_card(&self) -> bool {
        self.content_type == "card"
    }
}

/// What a question node says in a chatflow, from its interrupt data (`data`, the node's
/// `{"messages":[…]}`): Studio's rendering when `card` (a Studio always; coze when the
/// request asked for cards), else the fake's text (`text`).
pub fn question(data: &str, card: bool, text: &str) -> Said {
    let plain = || Said {
        content: text.to_string(),
        content_type: "text",
    };
    if !card {
        return plain();
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return plain();
    };
    // Sic: the first message, not the last: a question asked again shows the first one.
    let Some(first) = v.pointer("/messages/0") else {
        return plain();
    };
    if first.get("content_type").and_then(Value::as_str) == Some("text") {
        return Said {
            content: first
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            content_type: "text",
        };
    }
    let content = first.get("content").cloned().unwrap_or(Value::Null);
    let title = content
        .get("question")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names: Vec<&str> = content
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|o| o.get("name").and_then(Value::as_str).unwrap_or_default())
        .collect();
    Said {
        content: card_json(title, &names),
        content_type: "card",
    }
}

/// The card of a question with options, as `renderQACardDSL` marshals it.
fn card_json(title: &str, names: &[&str]) -> String {
    let mut layout: Value = serde_json::from_str(LAYOUT).expect("the layout is JSON");
    let keys: Vec<Value> = names.iter().map(|n| json!({ "key": n })).collect();
    layout["variables"]["5fJt3qKpSz"]["defaultValue"] = json!({"description": title, "list": keys});
    let options: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
    let info = json!({
        "card_type": "QUESTION",
        "question_card_data": {"Title": title, "Options": options},
    });
    json!({
        "card_type": 3,
        "content_type": 50,
        "response_type": "card",
        "template_id": TEMPLATE_ID,
        "template_url": "",
        "data": layout.to_string(),
        "x_properties": {"workflow_card_info": info.to_string()},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: Value) -> String {
        json!({"messages": [first, {"type": "answer", "content_type": "option",
            "content": "Green", "id": "154650_1"}]})
        .to_string()
    }

    #[test]
    fn an_option_question_is_a_card_and_a_text_one_is_text() {
        let data = node(json!({"type": "question", "content_type": "option",
            "content": {"options": [{"name": "Red"}, {"name": "Blue"}], "question": "Colour?"},
            "id": "154650_0"}));
        let said = question(&data, true, "unused");
        assert!(said.is_card());
        let card: Value = serde_json::from_str(&said.content).unwrap();
        let keys: Vec<&str> = card
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "card_type",
                "content_type",
                "response_type",
                "template_id",
                "template_url",
                "data",
                "x_properties"
            ],
            "the order of Studio's struct"
        );
        assert_eq!(card["template_id"].as_u64(), Some(TEMPLATE_ID));
        let info: Value =
            serde_json::from_str(card["x_properties"]["workflow_card_info"].as_str().unwrap())
                .unwrap();
        assert_eq!(
            info,
            json!({"card_type": "QUESTION", "question_card_data":
                {"Title": "Colour?", "Options": [{"name": "Red"}, {"name": "Blue"}]}})
        );
        let dsl: Value = serde_json::from_str(card["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            dsl["variables"]["5fJt3qKpSz"]["defaultValue"],
            json!({"description": "Colour?", "list": [{"key": "Red"}, {"key": "Blue"}]})
        );
        assert!(dsl.get("actions").is_none() && dsl["rootID"] == "root");

        let data = node(json!({"type": "question", "content_type": "text",
            "content": "Your name?", "id": "154650_0"}));
        let said = question(&data, true, "unused");
        assert_eq!(
            (said.content.as_str(), said.content_type),
            ("Your name?", "text")
        );
        // Without cards: the given text.
        let said = question(&data, false, "Your name? (A / B)");
        assert_eq!(said.content, "Your name? (A / B)");
        assert!(!said.is_card());
    }
}
