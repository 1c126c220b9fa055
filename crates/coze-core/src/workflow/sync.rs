//! A run without streaming, and an async one. The sync answer (`run`, or
//! `/v1/workflows/resume` for a sync run's interrupt) is one flat envelope (the Coze
//! API docs, `workflow_run`: `data` a string beside `code`, `debug_url`, `usage`, and
//! `interrupt_data` when the run stopped at a question); it is fed to the same machine
//! as the events a stream would have carried, so every printer reads both the same
//! way: a `Message` holding `data` from the node `End`, then `Done`; or an `Interrupt`.
//! The server drops a sync call after 90 seconds (`workflow_run`); the async run
//! (`is_async`) answers at once with the run's `execute_id`, whose history says how it
//! ends (`history`), as does the answer to an async run's question.

use serde_json::{json, Value};

use super::history::history;
use super::spec::RunSpec;
use super::state::{id_text, RunState, Sink, Whole};
use super::stream::Call;
use crate::api::Client;
use crate::error::{Error, Result};

/// A run started without waiting for it (`is_async`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The run's id, for its history (64-bit, as text).
    pub execute_id: String,
    /// The page that traces it, when the answer gave one.
    pub debug_url: Option<String>,
}

/// Runs `call` without streaming and feeds its answer to `state` and `sink` as the
/// events it stands for. `Ok` once fed (`state.end` says how it ended); `Err` for the
/// server's refusal (its `debug_url` kept in the error) or a sink failure.
pub fn sync(
    client: &Client<'_>,
    call: Call<'_>,
    state: &mut RunState,
    sink: &mut dyn Sink,
) -> Result<()> {
    let (answer, logid) = match call {
        Call::Run(spec) => client
            .workflow_run(&spec.body(false))
            .map_err(|e| e.context("running the workflow"))?,
        Call::Resume(answer) => client
            .workflow_resume(&answer.body())
            .map_err(|e| e.context("answering the run's question"))?,
    };
    state.logid = logid;
    // The answer to an async run's question is the run going on, not its end (the
    // Coze API docs, `resume_workflow`): no `data`, its `execute_id` to follow.
    if let (Call::Resume(a), None, None, Some(id)) = (
        call,
        answer.get("data"),
        answer.get("interrupt_data").filter(|d| d.is_object()),
        id_text(answer.get("execute_id")),
    ) {
        let h = history(client, &a.workflow_id, &id, true)?;
        return h.feed(state, sink).map_err(|e| Error::io("stdout", e));
    }
    feed_answer(&answer, state, sink).map_err(|e| Error::io("stdout", e))
}

/// A sync answer fed as events; see the module notes.
fn feed_answer(answer: &Value, state: &mut RunState, sink: &mut dyn Sink) -> std::io::Result<()> {
    let end = match answer.get("interrupt_data").filter(|d| d.is_object()) {
        Some(asked) => Whole::Interrupt(asked),
        None => Whole::Output {
            content: match answer.get("data") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            },
            usage: answer.get("usage"),
        },
    };
    state.feed_whole(
        id_text(answer.get("execute_id")),
        answer.get("debug_url").and_then(Value::as_str),
        end,
        sink,
    )
}

/// Starts `spec` as an async run (`run` with `is_async`): the run's id and trace page.
pub fn start(client: &Client<'_>, spec: &RunSpec) -> Result<Started> {
    let (answer, _logid) = client
        .workflow_run(&spec.body(true))
        .map_err(|e| e.context("starting the run"))?;
    let Some(execute_id) = id_text(answer.get("execute_id")) else {
        return Err(Error::Protocol(format!(
            "the async run's answer has no execute_id: {}",
            crate::support::redact::scrub(&json!(answer).to_string())
        )));
    };
    Ok(Started {
        execute_id,
        debug_url: answer
            .get("debug_url")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::state::End;

    #[derive(Default)]
    struct Names(Vec<String>, String);

    impl Sink for Names {
        fn event(
            &mut self,
            name: &str,
            id: Option<&str>,
            _: crate::wire::event_data::Data<'_>,
        ) -> std::io::Result<()> {
            assert!(id.is_none(), "a synthesized event has no id");
            self.0.push(name.into());
            Ok(())
        }
        fn message(&mut self, text: &str) -> std::io::Result<()> {
            self.1.push_str(text);
            Ok(())
        }
    }

    #[test]
    fn a_sync_answer_is_a_message_and_done_or_an_interrupt() {
        // coze.cn's answer.
        let answer = json!({"code": 0, "msg": "", "data": "{\"output\":\"x\"}",
            "debug_url": "https://www.coze.cn/work_flow?execute_id=7404830425073352713",
            "usage": {"input_count": 50, "token_count": 150, "output_count": 100}});
        let (mut st, mut sink) = (RunState::default(), Names::default());
        feed_answer(&answer, &mut st, &mut sink).unwrap();
        assert_eq!(sink.0, ["Message", "Done"]);
        assert_eq!(sink.1, "{\"output\":\"x\"}");
        assert_eq!(st.end, Some(End::Done));
        assert_eq!(st.output(), json!({"output": "x"}));
        assert_eq!(st.usage.as_ref().unwrap()["token_count"], 150);
        assert_eq!(st.execute_id.as_deref(), Some("7404830425073352713"));
        // A self-hosted Coze Studio's: nulls, no usage, the id a number.
        let studio: Value = serde_json::from_str(
            r#"{"code":0,"msg":null,"data":"Echo","token":null,"cost":null,"debug_url":null,"execute_id":7404830425073352714,"BaseResp":null}"#,
        )
        .unwrap();
        let (mut st, mut sink) = (RunState::default(), Names::default());
        feed_answer(&studio, &mut st, &mut sink).unwrap();
        assert_eq!(st.output(), json!("Echo"));
        assert_eq!((st.usage.clone(), st.debug_url.clone()), (None, None));
        assert_eq!(st.execute_id.as_deref(), Some("7404830425073352714"));
        // An interrupt.
        let asked = json!({"code": 0, "data": "", "interrupt_data": {"event_id": "1/2", "type": 5,
            "data": "Your name?"}, "debug_url": "https://x/work_flow?execute_id=1"});
        let (mut st, mut sink) = (RunState::default(), Names::default());
        feed_answer(&asked, &mut st, &mut sink).unwrap();
        assert_eq!(sink.0, ["Interrupt"]);
        let Some(End::Interrupted(i)) = st.end else {
            panic!()
        };
        assert_eq!(
            (i.interrupt_type, i.question.text.as_str()),
            (5, "Your name?")
        );
    }
}
