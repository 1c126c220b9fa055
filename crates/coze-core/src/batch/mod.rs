//! Layer 8, the batch engine: many items from stdin lines, run one at a time or N at
//! once, over any [`Task`] a tool implements (coze-chat's prompts; a workflow's runs).
//!
//! What is the same for every batch tool lives here: the order of work (one job per
//! serialization key at a time, in input order: `schedule`), output in completion or
//! input order (`output`), the counts, the exit status of the earliest failure and the
//! `summary` record (`tally`), `--resume` and `--append` (`resume`), and the run itself
//! (`engine`): bad lines, skipped ids, the stop after an authentication failure, a
//! closed stdout. What an item is, how it runs and what its records look like is the
//! task's. Pacing (`--rate`, the pool's slow-down on 429) is the HTTP layer's, shared by
//! every thread of the process.

mod engine;
mod output;
pub mod resume;
mod schedule;
mod tally;

#[cfg(test)]
mod tests;

use std::io::{self, Write};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::wire::jsonl::{self, LineError};

pub use engine::{Batch, Options};
pub use tally::{Counts, Tally};

/// One unit of work, read from one input line.
pub trait Item: Send {
    /// The id its records carry, by which `--resume` knows it is done.
    fn id(&self) -> Value;

    /// Items with the same key never run at once, and run in input order (coze-chat:
    /// the conversation, which refuses a second chat while one runs); items without
    /// one run freely.
    fn key(&self) -> Option<&str>;
}

/// What a batch tool does with one item; the [`Batch`] engine does the rest.
pub trait Task: Sync {
    /// One input item.
    type Item: Item;

    /// What the items are called, in the `summary` record (its count) and on stderr:
    /// `prompts`.
    const ITEMS: &'static str;

    /// Runs `item`, writing its output records to `out` (flushed whenever the task
    /// would have a reader see them: a complete line, a streamed delta). `Ok` carries
    /// the item's own failure, already in its records; `Err` ends the whole run (only
    /// a closed stdout).
    fn run<W: Write>(&self, item: &Self::Item, out: &mut W) -> Result<Outcome>;

    /// Writes the record of an input line that could not be made an item, when the
    /// output has one (coze-chat: an `answer` with status `invalid` in `-o answers`).
    fn invalid<W: Write>(&self, bad: &Bad, out: &mut W) -> io::Result<()>;

    /// Tells of a failure, as it happens: one line on stderr (`cli::report`).
    fn report(&self, error: &Error);

    /// The run is being stopped (a signal, a closed stdout): end the work in flight
    /// and refuse any that starts later (coze-chat cancels its chats on the server).
    fn cancel(&self) {}

    /// Once every item has run: a question the run leaves unanswered (coze-chat: a
    /// chatflow's question no later prompt of its conversation answered), as the
    /// failure to report last (`Error::Waiting`, exit 7), after every record is
    /// written. It decides the exit status only when no item failed.
    fn unanswered(&self) -> Option<Error> {
        None
    }
}

/// How one item ended, for the tally.
#[derive(Debug)]
pub struct Outcome {
    /// Its failure (already written to its records; the engine reports it), or None.
    pub error: Option<Error>,
    /// The status its record shows (`failed`, `canceled`, ... when it failed), for
    /// the summary's `by_status`. An item that did not fail is `completed`, or ended in
    /// a way that is no failure (a chatflow's question: `requires_action`); either
    /// counts as completed.
    pub status: String,
    /// The tokens it used.
    pub tokens: u64,
}

impl Outcome {
    /// An item that completed.
    pub fn completed(tokens: u64) -> Outcome {
        Outcome {
            error: None,
            status: "completed".to_owned(),
            tokens,
        }
    }
}

/// An input line that cannot be made an item.
#[derive(Debug)]
pub struct Bad {
    /// What is wrong, naming the line.
    pub error: Error,
    /// The line, when it could be read as text.
    pub text: Option<String>,
    /// The id of its record: the line's own `id`, else one derived from the line.
    pub id: Option<Value>,
    /// Nothing after it is read or run: the input is not lines of items (a line over
    /// the limit, a read error), or every later item would fail the same way (coze-chat:
    /// no bot).
    pub fatal: bool,
}

impl Bad {
    /// A bad line, or a bad file an argument names (exit 3), counted as an item with
    /// status `invalid`; anything else found on a line (a usage error) ends the run.
    pub fn is_line(&self) -> bool {
        matches!(
            self.error.root(),
            Error::BadInput { .. } | Error::BadFile { .. }
        )
    }

    /// A line the reader of stdin could not hand over: one that is not UTF-8 is a bad
    /// line of its own; one over the limit, or stdin unreadable, ends the input (the
    /// reader cannot go on: reading again would most likely fail again).
    pub fn unreadable(e: LineError) -> Bad {
        let (error, fatal) = match e {
            LineError::InvalidUtf8 { line } => (Error::input(line, "not valid UTF-8"), false),
            LineError::TooLong { line, max } => (
                Error::input(
                    line,
                    format!(
                        "longer than {}; --max-line-bytes raises the limit",
                        jsonl::size(max as u64)
                    ),
                ),
                true,
            ),
            LineError::Io(e) => (
                Error::BadInput {
                    line: None,
                    message: format!("reading stdin: {e}"),
                },
                true,
            ),
        };
        Bad {
            error,
            text: None,
            id: None,
            fatal,
        }
    }
}
