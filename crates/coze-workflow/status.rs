//! `coze-workflow status`: each run's history as a `result` record, in the order the
//! runs are named; with --wait, a run still Running is asked again every second
//! (`workflow::history`) until it ends. A run that failed is reported (the exit status
//! is the first failure's); an async run waiting for an answer also gets its
//! `interrupt` record, for `resume` (exit 7), when the server says what it asks (a
//! self-hosted Coze Studio does not); one still running is no failure.

use std::io::{self, Write};

use serde_json::Value;

use coze_core::api::Client;
use coze_core::protocol::Interrupt;
use coze_core::workflow::{self, advice, During, RunStatus};
use coze_core::{cli, Error, Result};

use crate::flags::Mode;
use crate::output::Printer;
use crate::TOOL;

/// Writes the result of each of `ids` (runs of `workflow_id`) to stdout.
pub fn run(client: &Client<'_>, workflow_id: &str, ids: &[String], wait: bool) -> Result<u8> {
    let mut status = 0;
    let mut fail = |e: Error| {
        cli::report(TOOL, &e);
        if status == 0 {
            status = e.exit_code();
        }
    };
    for id in ids {
        let mut printer = Printer::new(
            Mode::Results,
            io::stdout().lock(),
            Value::String(id.clone()),
            None,
        );
        match workflow::history(client, workflow_id, id, wait) {
            Ok(h) => {
                printer
                    .history(workflow_id, &h)
                    .and_then(|()| io::stdout().flush())
                    .map_err(|e| Error::io("stdout", e))?;
                if let Some(e) = h.failure() {
                    fail(advice(e, During::Run).context(format!("run {id}")));
                }
                if let (RunStatus::Interrupted, None) = (&h.status, &h.interrupt) {
                    // A Studio's history: no event id to answer with, and no
                    // /v1/workflows/resume to answer an async run through.
                    fail(Error::Waiting(format!(
                        "run {id} waits for an answer, but the server's history does not \
                         say to what, and an async run's question cannot be answered \
                         without it: run it streamed (without --async) to answer its \
                         questions"
                    )));
                }
                if let (RunStatus::Interrupted, Some(asked)) = (&h.status, &h.interrupt) {
                    // An async run is answered the way it was started: through
                    // /v1/workflows/resume (the Coze API docs, `resume_workflow`).
                    let record = Interrupt {
                        conversation_id: None,
                        workflow_id: workflow_id.to_owned(),
                        event_id: asked.event_id.clone(),
                        interrupt_type: asked.interrupt_type,
                        question: asked.question.text.clone(),
                        options: asked.question.options.clone(),
                        id: Some(Value::String(id.clone())),
                        execute_id: h.execute_id.clone(),
                        resumes: 0,
                        sync: true,
                        extra: Default::default(),
                    };
                    let waiting = printer
                        .interrupt(&record)
                        .map_err(|e| Error::io("stdout", e))?;
                    fail(waiting.context(format!("run {id}")));
                }
            }
            Err(e) => fail(advice(e, During::History)),
        }
    }
    Ok(status)
}
