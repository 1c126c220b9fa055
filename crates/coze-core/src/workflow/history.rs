//! A run's history: how an async run (or any run, by its id) is going or ended (the
//! Coze API docs, `workflow_history`). Both dialects' records become one [`History`]:
//! coze.cn's ids are strings, its error is `error_code` (a string, `""` on success) and
//! `error_message`, its logid `logid`; a self-hosted Coze Studio's ids are JSON numbers
//! (64-bit: kept exact, as text), its message `error_msg`, its logid `log_id`, its
//! statuses include `Cancel`, and it sends no `usage` (coze-dev/coze-studio
//! `backend/api/model/workflow`, `GetWorkflowRunHistory`). An async run waiting for an
//! answer carries `interrupt_data` on coze.cn; on a Studio its status is `<UNSET>` (its
//! status 5, interrupted, has no name in `WorkflowExeStatus.String`:
//! `backend/domain/workflow/entity/workflow_execution.go`), and nothing says what it
//! asks.

use std::time::Duration;

use serde_json::Value;

use super::output;
use super::question;
use super::state::{code_of, failure, id_text, Interruption, RunState, Sink, Whole};
use crate::api::Client;
use crate::error::{Error, Result};

/// How often a running run's history is asked again: the official SDKs' examples
/// sleep one second between polls (coze-py `examples/workflow_async.py`, coze-go
/// `examples/workflows/runs/async_run`).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Where a run is, as its history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// `Running`.
    Running,
    /// `Success`.
    Success,
    /// `Fail`.
    Failed,
    /// `Cancel` (a self-hosted Coze Studio).
    Canceled,
    /// Waiting for an answer: `interrupt_data` present, or a Studio's `<UNSET>`.
    Interrupted,
    /// A status this version does not know, lower-cased.
    Other(String),
}

impl RunStatus {
    /// The status as a `result` record writes it: `running`, `success`, `failed`,
    /// `canceled`, `interrupted`, or the server's own, lower-cased.
    pub fn as_str(&self) -> &str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Other(s) => s,
        }
    }
}

/// One run's history, in either dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The run's id, as text.
    pub execute_id: Option<String>,
    /// Where it is.
    pub status: RunStatus,
    /// Its output as the server sent it (text), when it has one.
    pub output_text: Option<String>,
    /// The server's code (0 when it gave none) and message, for a failed run.
    pub error: Option<(i64, String)>,
    /// The page that traces it.
    pub debug_url: Option<String>,
    /// Its `usage`, when the server reports one.
    pub usage: Option<Value>,
    /// The run's logid (the record's `logid` or `log_id`, else the answer's).
    pub logid: Option<String>,
    /// What it asks, when it waits for an answer and the server says (a Studio does
    /// not).
    pub interrupt: Option<Interruption>,
    /// Its `interrupt_data` as sent, when it waits for an answer.
    interrupt_data: Option<Value>,
}

impl History {
    /// The history record `run` (the one object of the answer's `data`); `logid` is
    /// the answer's.
    pub fn read(run: &Value, logid: Option<String>) -> History {
        let text = |k: &str| {
            run.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let interrupt_data = run
            .get("interrupt_data")
            .filter(|d| id_text(d.get("event_id")).is_some())
            .cloned();
        let interrupt = interrupt_data.as_ref().map(|d| Interruption {
            event_id: id_text(d.get("event_id")).unwrap_or_default(),
            interrupt_type: d.get("type").and_then(Value::as_i64).unwrap_or(0),
            question: question::question(d.get("data").unwrap_or(&Value::Null), ""),
        });
        let status = match text("execute_status")
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            _ if interrupt.is_some() => RunStatus::Interrupted,
            Some(s) if s == "running" => RunStatus::Running,
            Some(s) if s == "success" => RunStatus::Success,
            Some(s) if s == "fail" || s == "failed" => RunStatus::Failed,
            Some(s) if s == "cancel" || s == "canceled" || s == "cancelled" => RunStatus::Canceled,
            // A Studio's only status without a name (see the module notes).
            Some(s) if s == "<unset>" => RunStatus::Interrupted,
            Some(s) => RunStatus::Other(s),
            None => RunStatus::Other("unknown".into()),
        };
        let code = code_of(run.get("error_code"));
        let message = text("error_message").or_else(|| text("error_msg"));
        let error = match status {
            RunStatus::Failed | RunStatus::Canceled => Some((
                code,
                message.unwrap_or_else(|| format!("the run ended {}", status.as_str())),
            )),
            _ => None,
        };
        let output_text = text("output");
        History {
            execute_id: id_text(run.get("execute_id")),
            output_text,
            error,
            debug_url: text("debug_url"),
            usage: run.get("usage").filter(|u| u.is_object()).cloned(),
            logid: text("logid").or_else(|| text("log_id")).or(logid),
            interrupt,
            interrupt_data,
            status,
        }
    }

    /// Its output, decoded (`output::decode`); null when it has none (yet).
    pub fn output(&self) -> Value {
        self.output_text
            .as_deref()
            .map_or(Value::Null, output::decode)
    }

    /// The run's end fed to `state` and `sink` as the events a stream would have
    /// carried: `Message` (the output, from `End`) and `Done`; `Error`; or `Interrupt`.
    /// A run still going feeds nothing.
    pub(super) fn feed(&self, state: &mut RunState, sink: &mut dyn Sink) -> std::io::Result<()> {
        let end = match (&self.status, &self.interrupt_data, &self.error) {
            (RunStatus::Interrupted, Some(asked), _) => Whole::Interrupt(asked),
            (_, _, Some((code, message))) => Whole::Failed {
                code: *code,
                message,
            },
            (RunStatus::Success, _, _) => Whole::Output {
                content: self.output_text.clone().unwrap_or_default(),
                usage: self.usage.as_ref(),
            },
            _ => return Ok(()),
        };
        state.feed_whole(
            self.execute_id.clone(),
            self.debug_url.as_deref(),
            end,
            sink,
        )
    }

    /// The failure the run ended with (its code and message, logid and trace page),
    /// for a failed or canceled run.
    pub fn failure(&self) -> Option<Error> {
        let (code, message) = self.error.as_ref()?;
        Some(failure(
            *code,
            message,
            self.logid.clone(),
            self.debug_url.clone(),
        ))
    }
}

/// The history of run `execute_id` of `workflow_id`, as it is now; with `wait`, asked
/// again every [`POLL_EVERY`] while it says Running.
pub fn history(
    client: &Client<'_>,
    workflow_id: &str,
    execute_id: &str,
    wait: bool,
) -> Result<History> {
    loop {
        let (run, logid) = client
            .workflow_history(workflow_id, execute_id)
            .map_err(|e| e.context(format!("reading the history of run {execute_id}")))?;
        let h = History::read(&run, logid);
        if !(wait && h.status == RunStatus::Running) {
            return Ok(h);
        }
        std::thread::sleep(POLL_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cozes_history_record() {
        let run = json!({"execute_id": "7404830425073352713", "bot_id": "0", "connector_id": "1024",
            "execute_status": "Success", "run_mode": 2, "output": "{\"output\":{\"a\":1}}",
            "error_code": "", "error_message": "", "debug_url": "https://x/work_flow?execute_id=7404830425073352713",
            "logid": "L1", "usage": {"token_count": 3}, "token": "0"});
        let h = History::read(&run, Some("answer".into()));
        assert_eq!(h.status, RunStatus::Success);
        assert_eq!(h.output(), json!({"output": {"a": 1}}));
        assert_eq!(h.error, None);
        assert!(h.failure().is_none());
        assert_eq!(h.logid.as_deref(), Some("L1"));
        assert_eq!(h.usage, Some(json!({"token_count": 3})));
        assert_eq!(h.execute_id.as_deref(), Some("7404830425073352713"));
        let failed = json!({"execute_status": "Fail", "error_code": "5000", "error_message": "boom",
            "debug_url": "https://x/d"});
        let h = History::read(&failed, None);
        assert_eq!(h.status.as_str(), "failed");
        let e = h.failure().unwrap();
        assert_eq!(e.to_string(), "the workflow failed: code 5000: boom");
        assert_eq!(e.api().unwrap().debug_url.as_deref(), Some("https://x/d"));
        assert_eq!(
            History::read(&json!({"execute_status": "Running"}), None).status,
            RunStatus::Running
        );
    }

    #[test]
    fn studios_history_record() {
        let run: Value = serde_json::from_str(
            r#"{"execute_id":7404830425073352713,"bot_id":7404830425073352999,"connector_id":1024,
                "execute_status":"Fail","error_code":"720701013","error_msg":"execute failed",
                "log_id":"S1","output":null,"token":null,"cost":null,"debug_url":null}"#,
        )
        .unwrap();
        let h = History::read(&run, None);
        assert_eq!(h.execute_id.as_deref(), Some("7404830425073352713"));
        assert_eq!(h.error, Some((720_701_013, "execute failed".into())));
        assert_eq!(
            (h.output(), h.usage.clone(), h.debug_url.clone()),
            (Value::Null, None, None)
        );
        assert_eq!(h.logid.as_deref(), Some("S1"));
        let h = History::read(&json!({"execute_status": "Cancel"}), None);
        assert_eq!(h.status, RunStatus::Canceled);
        assert!(h.failure().unwrap().to_string().contains("canceled"));
        let waiting = json!({"execute_status": "Running", "interrupt_data": {"event_id": "1/2", "type": 2,
            "data": "{\"question\":\"q?\",\"options\":[\"a\"]}"}});
        let h = History::read(&waiting, None);
        assert_eq!(h.status, RunStatus::Interrupted);
        let i = h.interrupt.unwrap();
        assert_eq!(
            (i.event_id.as_str(), i.question.text.as_str()),
            ("1/2", "q?")
        );
        // A run waiting at a question: Studio names no status for it, nor the question.
        let h = History::read(&json!({"execute_status": "<UNSET>", "execute_id": 7}), None);
        assert_eq!(
            (h.status, h.interrupt, h.error),
            (RunStatus::Interrupted, None, None)
        );
        assert_eq!(
            History::read(&json!({"execute_status": "Paused"}), None)
                .status
                .as_str(),
            "paused"
        );
    }

    /// A history fed to the machine ends it as the stream would have.
    #[test]
    fn a_history_feeds_the_events_it_stands_for() {
        struct Names(Vec<String>);
        impl Sink for Names {
            fn event(
                &mut self,
                name: &str,
                _: Option<&str>,
                _: crate::wire::event_data::Data<'_>,
            ) -> std::io::Result<()> {
                self.0.push(name.into());
                Ok(())
            }
        }
        let feed = |run: Value| {
            let (mut st, mut sink) = (RunState::default(), Names(Vec::new()));
            History::read(&run, None).feed(&mut st, &mut sink).unwrap();
            (st, sink.0)
        };
        let (st, names) = feed(json!({"execute_id": "7", "execute_status": "Success",
            "output": "{\"output\":1}", "usage": {"token_count": 2}}));
        assert_eq!(names, ["Message", "Done"]);
        assert_eq!(
            (st.output(), st.execute_id.as_deref()),
            (json!({"output": 1}), Some("7"))
        );
        assert_eq!(st.usage, Some(json!({"token_count": 2})));
        let (st, names) = feed(json!({"execute_status": "Fail", "error_code": "5000",
            "error_message": "boom", "debug_url": "https://x/d"}));
        assert_eq!(names, ["Error"]);
        assert_eq!(
            st.error().unwrap().to_string(),
            "the workflow failed: code 5000: boom"
        );
        let (st, names) = feed(json!({"execute_status": "Running", "interrupt_data":
            {"event_id": "7/1", "type": 2, "data": "q?"}}));
        assert_eq!(names, ["Interrupt"]);
        assert!(matches!(st.end, Some(crate::workflow::End::Interrupted(_))));
        let (st, names) = feed(json!({"execute_status": "Running"}));
        assert!(names.is_empty() && st.end.is_none());
    }
}
