//! What a question or input node asks, pulled from its `Interrupt` event: the
//! question's text and its options. A self-hosted Coze Studio puts the node's message
//! in `interrupt_data.data` as JSON text,
//! `{"messages":[{"type":"question","content_type":"option","content":{"options":
//! [{"name":…}],"question":…}}]}` (coze-dev/coze-studio issue #2007), and sends the same
//! JSON as the Message before the Interrupt; coze.cn's docs show the question as the
//! Message before the Interrupt (the Coze API docs, `workflow_stream_run`). So: the
//! data when it says, else the message before, as JSON of that shape or as text.

use serde_json::Value;

/// A question a run stopped at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    /// What it asks; empty when the server said nothing readable.
    pub text: String,
    /// The answers it offers, in order; empty for a free answer.
    pub options: Vec<String>,
}

/// The question of an interrupt whose `interrupt_data.data` is `data` (a string or an
/// object), the Message before it having said `preceding`.
pub fn question(data: &Value, preceding: &str) -> Question {
    if let Some(q) = from_json(data, 3) {
        return q;
    }
    if let Value::String(s) = data {
        if !s.trim().is_empty() && !looks_json(s) {
            return Question {
                text: s.clone(),
                options: Vec::new(),
            };
        }
    }
    if let Some(q) = from_json(&Value::String(preceding.to_owned()), 3) {
        return q;
    }
    if !preceding.trim().is_empty() {
        return Question {
            text: preceding.trim_end_matches('\n').to_owned(),
            options: Vec::new(),
        };
    }
    // Something unreadable: shown as sent rather than lost.
    match data {
        Value::Null => Question::default(),
        Value::String(s) => Question {
            text: s.clone(),
            options: Vec::new(),
        },
        other => Question {
            text: other.to_string(),
            options: Vec::new(),
        },
    }
}

/// Whether `text` is a question node's message as JSON (`{"messages":[{"type":
/// "question",…}]}`): not text to print as the run's output, but the question the run
/// will ask.
pub fn is_question_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && text.contains("\"question\"")
        && from_json(&Value::String(text.to_owned()), 3).is_some()
}

fn looks_json(s: &str) -> bool {
    let t = s.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

/// The question a JSON value (or a string holding one) describes, at most `depth`
/// strings deep.
fn from_json(v: &Value, depth: usize) -> Option<Question> {
    if depth == 0 {
        return None;
    }
    match v {
        Value::String(s) if looks_json(s) => {
            from_json(&serde_json::from_str::<Value>(s).ok()?, depth - 1)
        }
        Value::Object(m) => {
            if let Some(Value::Array(messages)) = m.get("messages") {
                let asked = messages
                    .iter()
                    .rev()
                    .find(|msg| msg.get("type").and_then(Value::as_str) == Some("question"))
                    .or_else(|| messages.last())?;
                return match asked.get("content")? {
                    Value::String(s) if looks_json(s) => {
                        from_json(&serde_json::from_str::<Value>(s).ok()?, depth - 1)
                            .or_else(|| Some(text_only(s)))
                    }
                    Value::String(s) => Some(text_only(s)),
                    content @ Value::Object(_) => from_json(content, depth - 1),
                    _ => None,
                };
            }
            let text = m.get("question").and_then(Value::as_str)?.to_owned();
            let options = m
                .get("options")
                .and_then(Value::as_array)
                .map(|opts| {
                    opts.iter()
                        .filter_map(|o| match o {
                            Value::String(s) => Some(s.clone()),
                            other => other.get("name").and_then(Value::as_str).map(str::to_owned),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Question { text, options })
        }
        _ => None,
    }
}

fn text_only(s: &str) -> Question {
    Question {
        text: s.to_owned(),
        options: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn studio(content_type: &str, content: Value) -> String {
        json!({"messages": [{"type": "question", "content_type": content_type, "content": content}]})
            .to_string()
    }

    #[test]
    fn studios_question_json_with_options() {
        let data = studio(
            "option",
            json!({"options": [{"name": "北京"}, {"name": "上海"}], "question": "哪个城市?"}),
        );
        let q = question(&Value::String(data.clone()), "");
        assert_eq!(q.text, "哪个城市?");
        assert_eq!(q.options, ["北京", "上海"]);
        assert!(is_question_json(&data));
        // The same from an object, and from the message before when the data is empty.
        assert_eq!(question(&serde_json::from_str(&data).unwrap(), ""), q);
        assert_eq!(question(&json!(""), &data), q);
        // Content given as a string holding the JSON.
        let nested = studio(
            "option",
            Value::String(json!({"options": ["a"], "question": "q?"}).to_string()),
        );
        assert_eq!(
            question(&Value::String(nested), ""),
            Question {
                text: "q?".into(),
                options: vec!["a".into()]
            }
        );
    }

    #[test]
    fn a_text_question_and_the_message_before() {
        let data = studio("text", json!("你叫什么名字?"));
        let q = question(&Value::String(data), "");
        assert_eq!((q.text.as_str(), q.options.len()), ("你叫什么名字?", 0));
        // Data that is plain text is the question.
        assert_eq!(question(&json!("Which one?"), "ignored").text, "Which one?");
        // Data that says nothing readable: the message before, as text.
        assert_eq!(question(&json!({"x": 1}), "Your age?\n").text, "Your age?");
        assert_eq!(question(&Value::Null, "").text, "");
        // Nothing at all readable: shown as sent.
        assert_eq!(question(&json!({"x": 1}), "").text, "{\"x\":1}");
        assert!(!is_question_json("{\"output\":\"x\"}"));
        assert!(!is_question_json("plain text about a \"question\""));
    }
}
