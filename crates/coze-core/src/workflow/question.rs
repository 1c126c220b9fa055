//! What a question or input node asks, pulled from its `Interrupt` event: the
//! question's text and its options. A self-hosted Coze Studio puts the question node's
//! JSON (`protocol::Question::from_node`) in `interrupt_data.data` as text (coze-dev/
//! coze-studio issue #2007), and sends the same JSON as the Message before the
//! Interrupt; coze.cn's docs show the question as the Message before the Interrupt (the
//! Coze API docs, `workflow_stream_run`). So: the data when it says, else the message
//! before, as that JSON or as text.

use serde_json::Value;

use crate::protocol::{looks_json, Question};

/// The question of an interrupt whose `interrupt_data.data` is `data` (a string or an
/// object), the Message before it having said `preceding`.
pub fn question(data: &Value, preceding: &str) -> Question {
    if let Some(q) = Question::from_node(data) {
        return q;
    }
    if let Value::String(s) = data {
        if !s.trim().is_empty() && !looks_json(s) {
            return Question::text(s);
        }
    }
    if let Some(q) = Question::from_node(&Value::String(preceding.to_owned())) {
        return q;
    }
    if !preceding.trim().is_empty() {
        return Question::text(preceding.trim_end_matches('\n'));
    }
    // Something unreadable: shown as sent rather than lost.
    match data {
        Value::Null => Question::default(),
        Value::String(s) => Question::text(s),
        other => Question::text(&other.to_string()),
    }
}

/// Whether `text` is a question node's message as JSON (`{"messages":[{"type":
/// "question",…}]}`): not text to print as the run's output, but the question the run
/// will ask.
pub fn is_question_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && text.contains("\"question\"")
        && Question::from_node(&Value::String(text.to_owned())).is_some()
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
