//! `coze-workflow status`: each run's history as a `result` record, in the order the
//! runs are named; with --wait, a run still Running is asked again every second
//! (`workflow::history`) until it ends. A run that failed is reported (the exit status
//! is the first failure's); one running or waiting for an answer is no failure of the
//! status asked.

use std::io::{self, Write};

use serde_json::Value;

use coze_core::api::Client;
use coze_core::workflow::{self, advice, During};
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
            }
            Err(e) => fail(advice(e, During::History)),
        }
    }
    Ok(status)
}
