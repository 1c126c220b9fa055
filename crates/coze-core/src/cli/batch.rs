//! A batch tool's run, the way every coze batch tool runs it: the [`Batch`] engine
//! inside the signal guard (Ctrl-C cancels what is in flight, then exits 130) and the
//! watch on stdout (its reader gone, a wait for a busy resource ends and the work in
//! flight is cancelled at once), then the `summary` record and the exit status.

use std::io;
use std::time::Instant;

use super::session::Session;
use super::{interrupt, stdout_watch};
use crate::batch::{Batch, Task};
use crate::error::{Error, Result};
use crate::wire::jsonl::JsonlWriter;

/// Where the `summary` record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// The last line of stdout (`--summary`).
    Stdout,
    /// The last line of stderr: a run that is a batch (`--jobs`, `--rate`, `--resume`).
    Stderr,
    /// Nowhere: one prompt, or lines asked one after another.
    Off,
}

impl Summary {
    /// `--summary` puts it on stdout; without it, a run that is a batch tells it on
    /// stderr.
    pub fn choose(flag: bool, batch: bool) -> Summary {
        match (flag, batch) {
            (true, _) => Summary::Stdout,
            (false, true) => Summary::Stderr,
            (false, false) => Summary::Off,
        }
    }
}

/// Runs `work` (which calls [`Batch::run`]) under `tool`'s signal guard, with stdout
/// watched when `watch_stdout` (the records go there), then writes the summary of the
/// run begun at `started`. Returns the exit status of the earliest failure (0 when
/// none); `Err` is what ended the whole run.
pub fn run<T: Task>(
    tool: &str,
    session: &Session,
    batch: Batch<'_, T>,
    started: Instant,
    watch_stdout: bool,
    summary: Summary,
    work: impl FnOnce(&Batch<'_, T>) -> Result<()>,
) -> Result<u8> {
    let outcome = interrupt::guarded(
        tool,
        || batch.cancel(),
        || {
            let on_close = || {
                session.http.stop();
                batch.cancel();
            };
            stdout_watch::watch(watch_stdout, on_close, || work(&batch))
        },
    );
    let tally = batch.into_tally();
    outcome?;
    let record = || {
        tally.summary(
            T::ITEMS,
            started.elapsed(),
            session.http.retries(),
            session.http.rate_pauses(),
        )
    };
    match summary {
        Summary::Stdout => JsonlWriter::new(io::stdout().lock())
            .write(&record())
            .map_err(|e| Error::io("stdout", e))?,
        Summary::Stderr => crate::say!("{}", record()),
        Summary::Off => {}
    }
    Ok(tally.exit_status())
}
