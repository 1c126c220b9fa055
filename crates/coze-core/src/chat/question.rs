//! The question a chatflow stops at (a question node or an input node): what it asks
//! and the answers it offers, read from the message that carried it, and a person's
//! reply turned into the answer to send.
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
//! - the question node's own JSON, `{"messages":[{"type":"question","content_type":
//!   "option","content":{"options":[{"name":…}],"question":…}}]}`, as a workflow's
//!   `Interrupt` carries it (coze-dev/coze-studio issue #2007), in case a server
//!   sends it as text.
//!
//! Anything else is taken as plain text: a question is never lost to a shape this
//! version does not know.

use serde_json::Value;

/// A question a chatflow waits on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    /// What it asks, as text (empty when the message said nothing readable).
    pub text: String,
    /// The answers it offers, in order; empty when any answer goes.
    pub options: Vec<String>,
}

impl Question {
    /// The question carried by an answer message of `content_type` (`text`, `card`, …).
    pub fn from_message(content: &str, content_type: &str) -> Question {
        let json = serde_json::from_str::<Value>(content)
            .ok()
            .filter(Value::is_object);
        let Some(v) = json else {
            return Question {
                text: content.trim().to_owned(),
                options: Vec::new(),
            };
        };
        card(&v)
            .or_else(|| question_node(&v))
            .unwrap_or_else(|| Question {
                // A card or JSON that says nothing we know: shown as it came.
                text: if content_type == "card" {
                    String::new()
                } else {
                    content.trim().to_owned()
                },
                options: Vec::new(),
            })
    }

    /// The answer to send for what a person typed: a number picks that option (1 is
    /// the first) when the question offers options; anything else goes as typed.
    pub fn answer(&self, typed: &str) -> String {
        let typed = typed.trim();
        match typed.parse::<usize>() {
            Ok(n) if (1..=self.options.len()).contains(&n) => self.options[n - 1].clone(),
            _ => typed.to_owned(),
        }
    }
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

/// The question node's JSON: `messages[].content` (an object with `question` and
/// `options`, or text), with a top-level `question` as the fallback text.
fn question_node(v: &Value) -> Option<Question> {
    let messages = v.get("messages").and_then(Value::as_array);
    let mut texts = Vec::new();
    let mut options = Vec::new();
    for m in messages.into_iter().flatten() {
        match m.get("content") {
            Some(Value::String(s)) if !s.trim().is_empty() => texts.push(s.trim().to_owned()),
            Some(c @ Value::Object(_)) => {
                let t = text_of(c, &["question"]);
                if !t.is_empty() {
                    texts.push(t);
                }
                options.extend(names(c.get("options")));
            }
            _ => {}
        }
    }
    if texts.is_empty() {
        let t = text_of(v, &["question"]);
        if !t.is_empty() {
            texts.push(t);
        }
    }
    if options.is_empty() {
        options = names(v.get("options"));
    }
    (!texts.is_empty() || !options.is_empty()).then(|| Question {
        text: texts.join("\n"),
        options,
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
        let q = Question::from_message("What colour? ", "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("What colour?", 0));

        let node = json!({"messages":[{"type":"question","content_type":"option",
            "content":{"options":[{"name":"Red"},{"name":"Blue"}],"question":"What colour?"}}]});
        let q = Question::from_message(&node.to_string(), "text");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);

        let text_node = json!({"messages":[{"type":"question","content_type":"text",
            "content":"Your name?"}]});
        let q = Question::from_message(&text_node.to_string(), "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("Your name?", 0));

        let info = json!({"card_type":"QUESTION","question_card_data":
            {"Title":"What colour?","Options":[{"name":"Red"},{"name":"Blue"}]}});
        let card = json!({"card_type":3,"x_properties":{"workflow_card_info": info.to_string()}});
        let q = Question::from_message(&card.to_string(), "card");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);

        let info = json!({"card_type":"INPUT","input_card_data":
            [{"name":"city","type":"string","required":true},{"name":"date"}]});
        let card = json!({"x_properties":{"workflow_card_info": info.to_string()}});
        let q = Question::from_message(&card.to_string(), "card");
        assert_eq!(q.text, "fill in: city, date");

        // JSON of no known shape is text; a card of no known shape says nothing.
        let q = Question::from_message(r#"{"answer":42}"#, "text");
        assert_eq!(q.text, r#"{"answer":42}"#);
        assert_eq!(
            Question::from_message(r#"{"x":1}"#, "card"),
            Question::default()
        );
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
        let q = Question::from_message(&studio_card("What colour?", &["Red", "Blue"]), "card");
        assert_eq!(q.text, "What colour?");
        assert_eq!(q.options, ["Red", "Blue"]);
        assert_eq!(q.answer("2"), "Blue");
        // Its question without options: the text.
        let q = Question::from_message("Your name?", "text");
        assert_eq!((q.text.as_str(), q.options.len()), ("Your name?", 0));
        // coze.cn's text when no card was asked for: all of it is the question.
        let q = Question::from_message("What colour? (Red / Blue)", "text");
        assert_eq!(
            (q.text.as_str(), q.options.len()),
            ("What colour? (Red / Blue)", 0)
        );
        assert_eq!(q.answer("2"), "2", "no options to number");
        // Options that are not text are left out; a card of no title still has them.
        let q = Question::from_message(&studio_card("", &["", "Yes"]), "card");
        assert_eq!((q.text.as_str(), q.options), ("", vec!["Yes".to_owned()]));
    }

    #[test]
    fn a_number_picks_an_option() {
        let q = Question {
            text: "?".into(),
            options: vec!["Red".into(), "Blue".into()],
        };
        assert_eq!(q.answer("2\n"), "Blue");
        assert_eq!(q.answer(" 1 "), "Red");
        assert_eq!(q.answer("3"), "3", "out of range: as typed");
        assert_eq!(q.answer("0"), "0");
        assert_eq!(q.answer("Green"), "Green");
        assert_eq!(Question::default().answer("2"), "2", "no options: as typed");
    }
}
