//! The question a chatflow stops at (a question node or an input node): what it asks
//! and the answers it offers (a `protocol::Question`), read from the message that
//! carried it.
//!
//! The question comes as the chat's last answer message before
//! `conversation.chat.requires_action` (the Coze API docs, `workflow_chat`: the
//! chatflow is continued by asking it again with the answer), in one of the shapes
//! servers send:
//! - a card (`content_type` `card`): JSON text whose `x_properties.workflow_card_info`
//!   is JSON text holding `card_type` `QUESTION` and `question_card_data` (`Title`,
//!   `Options[].name`), or `INPUT` and `input_card_data` (the fields an input node
//!   wants). A self-hosted Coze Studio always sends a question with options so
//!   (coze-dev/coze-studio `backend/application/workflow/chatflow.go`,
//!   `renderQACardDSL`, `renderInputCardDSL`); coze.cn when the request's
//!   `ext.enable_card` asks for it, as coze-js's chat SDK does and reads it;
//! - plain text: a Studio's question without options is its text; coze.cn's question
//!   without a card is text of a form nothing documents, taken as the question, any
//!   answer going;
//! - the question node's own JSON (`Question::from_node`), as a workflow's
//!   `Interrupt` carries it, in case a server sends it as text.
//!
//! Anything else is taken as plain text: a question is never lost to a shape this
//! version does not know.

use serde_json::Value;

use crate::protocol::Question;

/// The question carried by an answer message of `content_type` (`text`, `card`, …).
pub fn from_message(content: &str, content_type: &str) -> Question {
    let json = serde_json::from_str::<Value>(content)
        .ok()
        .filter(Value::is_object);
    let Some(v) = json else {
        return Question::text(content.trim());
    };
    card(&v)
        .or_else(|| Question::from_node(&v))
        // A card or JSON that says nothing we know: shown as it came.
        .unwrap_or_else(|| {
            Question::text(if content_type == "card" {
                ""
            } else {
                content.trim()
            })
        })
}

/// A Studio card's question: `x_properties.workflow_card_info`, JSON text.
fn card(v: &Value) -> Option<Question> {
    let info = v.pointer("/x_properties/workflow_card_info")?.as_str()?;
    let info: Value = serde_json::from_str(info).ok()?;
    if let Some(q) = info.get("question_card_data") {
        return Some(Question {
            text: text_of(q, &["Title", "title"]),
            options: names(q.get("Options").or_else(|| q.get("options"))),
        });
    }
    // An input node asks for named fields; the answer is `name:value` lines.
    let fields = names(info.get("input_card_data"));
    (!fields.is_empty()).then(|| Question {
        text: format!("fill in: {}", fields.join(", ")),
        options: Vec::new(),
    })
}

/// The first of `keys` that holds text.
fn text_of(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Option or field names: `[{"name":…}]` or `["…"]`.
fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| match o {
            Value::String(s) => Some(s.clone()),
            o => text_of(o, &["name", "Name"]).into(),
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_shape_gives_its_question_and_options() {
        let q = from_message("What colour? ", "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("What colour?", 0));

        let node = json!({"messages":[{"type":"question","content_type":"option",
            "content":{"options":[{"name":"Red"},{"name":"Blue"}],"question":"What colour?"}}]});
        let q = from_message(&node.to_string(), "text");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);

        let text_node = json!({"messages":[{"type":"question","content_type":"text",
            "content":"Your name?"}]});
        let q = from_message(&text_node.to_string(), "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("Your name?", 0));

        let info = json!({"card_type":"QUESTION","question_card_data":
            {"Title":"What colour?","Options":[{"name":"Red"},{"name":"Blue"}]}});
        let card = json!({"card_type":3,"x_properties":{"workflow_card_info": info.to_string()}});
        let q = from_message(&card.to_string(), "card");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);

        let info = json!({"card_type":"INPUT","input_card_data":
            [{"name":"city","type":"string","required":true},{"name":"date"}]});
        let card = json!({"x_properties":{"workflow_card_info": info.to_string()}});
        let q = from_message(&card.to_string(), "card");
        assert_eq!(q.text, "fill in: city, date");

        // JSON of no known shape is text; a card of no known shape says nothing.
        let q = from_message(r#"{"answer":42}"#, "text");
        assert_eq!(q.text, r#"{"answer":42}"#);
        assert_eq!(from_message(r#"{"x":1}"#, "card"), Question::default());
    }

    /// The card a Studio's chatflow sends for a question with options, in full but for
    /// its page layout (`data`), which only a web page reads.
    fn studio_card(title: &str, options: &[&str]) -> String {
        let names: Vec<Value> = options.iter().map(|o| json!({ "name": o })).collect();
        let keys: Vec<Value> = options.iter().map(|o| json!({ "key": o })).collect();
        let layout = json!({"elements": {}, "rootID": "root", "variables": {"5fJt3qKpSz":
            {"id": "5fJt3qKpSz", "name": "list",
             "defaultValue": {"description": title, "list": keys}}}});
        let info = json!({"card_type": "QUESTION", "question_card_data": {"Title": title, "Options": names}});
        json!({"card_type": 3, "content_type": 50, "response_type": "card",
            "template_id": 7383997384420262000u64, "template_url": "",
            "data": layout.to_string(),
            "x_properties": {"workflow_card_info": info.to_string()}})
        .to_string()
    }

    #[test]
    fn the_messages_servers_send_give_the_question_and_its_options() {
        // A Studio's question with options (and coze.cn's, asked for a card).
        let q = from_message(&studio_card("What colour?", &["Red", "Blue"]), "card");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);
        assert_eq!(q.answer("2"), "Blue");
        // Its question without options: the text.
        let q = from_message("Your name?", "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("Your name?", 0));
        // coze.cn's text when no card was asked for: all of it is the question.
        let q = from_message("What colour? (Red / Blue)", "text");
        assert_eq!(
            (q.text.as_str(), q.options.len()),
            ("What colour? (Red / Blue)", 0)
        );
        assert_eq!(q.answer("2"), "2", "no options to number");
        // Options that are not text are left out; a card of no title still has them.
        let q = from_message(&studio_card("", &["", "Yes"]), "card");
        assert_eq!((q.text.as_str(), q.options), ("", vec!["Yes".to_owned()]));
    }
}
