//! The record of a workflow stopped at a question: `interrupt`, written where nobody
//! can answer it (coze-workflow in a pipeline; coze-chat's chatflows) and read back by
//! what answers it (`coze-workflow resume`).

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

/// The most answers one run takes (the Coze API docs, `workflow_resume`: "at most 3
/// resumes"; the third answer that still does not fit ends the run).
pub const MAX_RESUMES: u32 = 3;
