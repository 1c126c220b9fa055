//! The record of a workflow stopped at a question: `interrupt`, written where nobody
//! can answer it (coze-workflow in a pipeline; coze-chat's chatflows) and read back by
//! what answers it (`coze-workflow resume`); and the `Question` it carries, as both
//! engines read it: a workflow's `Interrupt` and a chatflow's question message.
//!
//! A question node describes itself in JSON, which a workflow's `Interrupt` carries
//! (and a self-hosted Coze Studio also sends as the Message before it):
//! `{"messages":[{"type":"question","content_type":"option","content":{"options":
//! [{"name":…}],"question":…}}]}` (coze-dev/coze-studio issue #2007), the earlier
//! questions and the answers that did not fit first, the question asked now last.
//! [`Question::from_node`] reads it, whichever engine met it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Extra;

/// A workflow run waiting for an answer: what it asked, and what a resume needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupt {
    /// The workflow (or chatflow) that asked.
    pub workflow_id: String,
    /// The interrupt's id (`interrupt_data.event_id`, `EXECUTE_ID/N`), passed back
    /// verbatim when answering.
    #[serde(default)]
    pub event_id: String,
    /// `interrupt_data.type`: 2 a question node, 5 an input node (the Coze API docs,
    /// `workflow_resume`); 0 when the writer had none.
    #[serde(default)]
    pub interrupt_type: i64,
    /// The question, as text (empty when the server sent none).
    #[serde(default)]
    pub question: String,
    /// The answers the question offers, in order; empty for a free answer.
    #[serde(default)]
    pub options: Vec<String>,
    /// The run's id, echoed from its input (a `run` record's, or one derived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// A chatflow's question (written by coze-chat): the conversation whose next user
    /// message answers it. A workflow run's interrupt has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The run, when known (64-bit ids written as strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_id: Option<String>,
    /// How many answers the run has taken so far: the API takes at most 3.
    #[serde(default)]
    pub resumes: u32,
    /// The run was not streamed (`--no-stream`): its answer goes to
    /// `/v1/workflows/resume`, not `stream_resume` (the Coze API docs,
    /// `workflow_resume`: a run is resumed the way it was started).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync: bool,
    /// The server's other fields and a script's own, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a question or input node asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    /// What it asks, as text (empty when the server said nothing readable).
    pub text: String,
    /// The answers it offers, in order; empty when any answer goes.
    pub options: Vec<String>,
}

/// How many strings deep a question node's JSON is looked for: enough for every shape
/// servers send, bounded for the hostile ones.
const NODE_DEPTH: usize = 3;

impl Question {
    /// A question of `text` alone, any answer going.
    pub fn text(text: &str) -> Question {
        Question {
            text: text.to_owned(),
            options: Vec::new(),
        }
    }

    /// The question a question node's JSON describes (see the module notes), given as
    /// a value or as a string holding it; also `{"question":…,"options":[…]}` alone.
    /// None when `v` is no such JSON.
    pub fn from_node(v: &Value) -> Option<Question> {
        from_json(v, NODE_DEPTH)
    }

    /// The answer to send for what a person typed: a number picks that option (1 is
    /// the first) when the question offers options; anything else goes as typed,
    /// without the spaces around it.
    pub fn answer(&self, typed: &str) -> String {
        let typed = typed.trim();
        match typed.parse::<usize>() {
            Ok(n) if (1..=self.options.len()).contains(&n) => self.options[n - 1].clone(),
            _ => typed.to_owned(),
        }
    }
}

/// Whether `s` may hold a JSON object or array.
pub(crate) fn looks_json(s: &str) -> bool {
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
                // The question asked now: the last of type `question`.
                let asked = messages
                    .iter()
                    .rev()
                    .find(|msg| msg.get("type").and_then(Value::as_str) == Some("question"))
                    .or_else(|| messages.last())?;
                return match asked.get("content")? {
                    Value::String(s) if looks_json(s) => {
                        from_json(&serde_json::from_str::<Value>(s).ok()?, depth - 1)
                            .or_else(|| Some(Question::text(s)))
                    }
                    Value::String(s) => Some(Question::text(s)),
                    content @ Value::Object(_) => from_json(content, depth - 1),
                    _ => None,
                };
            }
            let text = m.get("question").and_then(Value::as_str)?.to_owned();
            let options = m
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|o| match o {
                    Value::String(s) => Some(s.as_str()),
                    other => other.get("name").and_then(Value::as_str),
                })
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            Some(Question { text, options })
        }
        _ => None,
    }
}

/// The most answers one run takes (the Coze API docs, `workflow_resume`: "at most 3
/// resumes"; the third answer that still does not fit ends the run).
pub const MAX_RESUMES: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(content_type: &str, content: Value) -> String {
        json!({"messages": [{"type": "question", "content_type": content_type, "content": content}]})
            .to_string()
    }

    #[test]
    fn a_question_nodes_json_in_every_wrapping() {
        let data = node(
            "option",
            json!({"options": [{"name": "北京"}, {"name": "上海"}, {"name": ""}], "question": "哪个城市?"}),
        );
        let want = Question {
            text: "哪个城市?".into(),
            options: vec!["北京".into(), "上海".into()],
        };
        assert_eq!(
            Question::from_node(&Value::String(data.clone())),
            Some(want.clone())
        );
        assert_eq!(
            Question::from_node(&serde_json::from_str(&data).unwrap()),
            Some(want)
        );
        // Content given as a string holding the JSON; a text question.
        let nested = node(
            "option",
            Value::String(json!({"options": ["a"], "question": "q?"}).to_string()),
        );
        assert_eq!(
            Question::from_node(&Value::String(nested)).unwrap().options,
            ["a"]
        );
        let text = node("text", json!("你叫什么名字?"));
        assert_eq!(
            Question::from_node(&Value::String(text)),
            Some(Question::text("你叫什么名字?"))
        );
        // The earlier questions and answers come first: the last question is asked.
        let again = json!({"messages": [
            {"type": "question", "content": {"question": "first?", "options": ["x"]}},
            {"type": "answer", "content": "z"},
            {"type": "question", "content": {"question": "again?", "options": ["x"]}}]});
        assert_eq!(Question::from_node(&again).unwrap().text, "again?");
        // Not a question node's JSON.
        for v in [
            json!({"output": "x"}),
            json!("plain text"),
            json!(3),
            Value::Null,
        ] {
            assert_eq!(Question::from_node(&v), None, "{v}");
        }
    }

    #[test]
    fn a_number_picks_an_option() {
        let q = Question {
            text: "?".into(),
            options: vec!["Red".into(), "Blue".into()],
        };
        assert_eq!(q.answer("2\n"), "Blue");
        assert_eq!(q.answer(" 1 \r\n"), "Red");
        assert_eq!(q.answer("3"), "3", "out of range: as typed");
        assert_eq!(q.answer("0"), "0");
        assert_eq!(q.answer("Green"), "Green");
        assert_eq!(Question::default().answer("2"), "2", "no options: as typed");
    }
}
