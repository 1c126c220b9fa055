//! What to run and what to answer: the request bodies of `run`/`stream_run` (the Coze
//! API docs, `workflow_run`, `workflow_stream_run`) and of `stream_resume` and
//! `/v1/workflows/resume` (`workflow_resume`, `resume_workflow`).

use serde_json::{Map, Value};

/// One run of a workflow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    /// The workflow (published: an unpublished one is refused with 4200).
    pub workflow_id: String,
    /// The start node's inputs, sent as an object.
    pub parameters: Map<String, Value>,
    /// The bot it runs in (for bot-scoped nodes); never with `app_id` (the API refuses
    /// both with 4000).
    pub bot_id: Option<String>,
    /// The app (project) it lives in.
    pub app_id: Option<String>,
    /// A library workflow's version (`v0.0.5`); the latest when None. A self-hosted
    /// Coze Studio always runs the latest published version.
    pub version: Option<String>,
}

impl RunSpec {
    /// The body of `run` (`is_async` for an async run) or `stream_run` (`is_async`
    /// false).
    pub fn body(&self, is_async: bool) -> Value {
        let mut b = Map::new();
        b.insert("workflow_id".into(), self.workflow_id.clone().into());
        b.insert("parameters".into(), Value::Object(self.parameters.clone()));
        if let Some(bot) = &self.bot_id {
            b.insert("bot_id".into(), bot.clone().into());
        }
        if let Some(app) = &self.app_id {
            b.insert("app_id".into(), app.clone().into());
        }
        if let Some(v) = &self.version {
            b.insert("workflow_version".into(), v.clone().into());
        }
        if is_async {
            b.insert("is_async".into(), true.into());
        }
        Value::Object(b)
    }
}

/// An answer to a run's interrupt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The workflow that asked.
    pub workflow_id: String,
    /// The interrupt's `event_id`, verbatim (`EXECUTE_ID/N`).
    pub event_id: String,
    /// The interrupt's `type` (2 a question node, 5 an input node).
    pub interrupt_type: i64,
    /// The answer, as text (`resume_data` is a string; a file's is JSON text).
    pub resume_data: String,
}

impl Answer {
    /// The body of `stream_resume` and of `/v1/workflows/resume`.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "workflow_id": self.workflow_id,
            "event_id": self.event_id,
            "interrupt_type": self.interrupt_type,
            "resume_data": self.resume_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies() {
        let mut spec = RunSpec {
            workflow_id: "73".into(),
            ..RunSpec::default()
        };
        spec.parameters.insert("n".into(), json!(3));
        assert_eq!(
            spec.body(false),
            json!({"workflow_id": "73", "parameters": {"n": 3}})
        );
        spec.app_id = Some("a".into());
        spec.version = Some("v0.0.5".into());
        assert_eq!(
            spec.body(true),
            json!({"workflow_id": "73", "parameters": {"n": 3}, "app_id": "a",
                "workflow_version": "v0.0.5", "is_async": true})
        );
        let answer = Answer {
            workflow_id: "73".into(),
            event_id: "7404830425073352713/2".into(),
            interrupt_type: 2,
            resume_data: "北京".into(),
        };
        assert_eq!(
            answer.body(),
            json!({"workflow_id": "73", "event_id": "7404830425073352713/2",
                "interrupt_type": 2, "resume_data": "北京"})
        );
    }
}
