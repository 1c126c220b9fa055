//! A batch tool's run, the way every coze batch tool runs it: the [`Batch`] engine
//! inside the signal guard (Ctrl-C cancels what is in flight, then exits 130) and the
//! watch on stdout (its reader gone, a wait for a busy resource ends and the work in
//! flight is cancelled at once), with its progress line on a terminal (erased at the
//! end, and before the exit on Ctrl-C), then the `summary` record and the exit status.

use std::io;
use std::time::Instant;

use super::progress::{Meter, Progress};
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

/// What a batch run tells besides its records, and when it began.
#[derive(Debug)]
pub struct Report {
    /// When the run began (the tool's first moment): the summary's `wall_ms`, the
    /// progress line's rate.
    pub started: Instant,
    /// The records go to stdout: watch it for its reader going away.
    pub watch_stdout: bool,
    /// Where the `summary` record goes.
    pub summary: Summary,
    /// The progress line on stderr, when shown (`progress::choose`).
    pub progress: Option<Progress>,
}

/// Runs `work` (which calls [`Batch::run`]) under `tool`'s signal guard, with stdout
/// watched and the progress line shown as `report` says, then writes the summary.
/// Returns the exit status of the earliest failure (0 when none); `Err` is what ended
/// the whole run.
pub fn run<T: Task>(
    tool: &str,
    session: &Session,
    batch: Batch<'_, T>,
    report: Report,
    work: impl FnOnce(&Batch<'_, T>) -> Result<()>,
) -> Result<u8> {
    let meter = report.progress.map(|p| Meter::start(p, report.started));
    let outcome = std::thread::scope(|s| {
        if let Some(m) = &meter {
            batch.on_count(m.show(s, || batch.counts(), || session.http.retries()));
        }
        let outcome = interrupt::guarded(
            tool,
            || {
                // Erased before the message that the run was interrupted.
                if let Some(m) = &meter {
                    m.end();
                }
                batch.cancel()
            },
            || {
                let on_close = || {
                    session.http.stop();
                    batch.cancel();
                };
                stdout_watch::watch(report.watch_stdout, on_close, || work(&batch))
            },
        );
        // Erased before the summary, or the error that ended the run.
        if let Some(m) = &meter {
            m.end();
        }
        outcome
    });
    let tally = batch.into_tally();
    outcome?;
    let record = || {
        tally.summary(
            T::ITEMS,
            report.started.elapsed(),
            session.http.retries(),
            session.http.rate_pauses(),
        )
    };
    match report.summary {
        Summary::Stdout => JsonlWriter::new(io::stdout().lock())
            .write(&record())
            .map_err(|e| Error::io("stdout", e))?,
        Summary::Stderr => crate::say!("{}", record()),
        Summary::Off => {}
    }
    Ok(tally.exit_status())
}
