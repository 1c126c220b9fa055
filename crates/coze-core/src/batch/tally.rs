//! The counts a batch run keeps, for its exit status and its `summary` record.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::Outcome;
use crate::error::exit;

/// Counts of a run, for the exit status and the `summary` record.
#[derive(Debug, Default)]
pub struct Tally {
    /// The items run or found invalid (not the skipped ones).
    pub items: u64,
    /// The items that did not fail (a chatflow's question among them).
    pub completed: u64,
    /// The items `--resume` found done already.
    pub skipped: u64,
    /// Every item run, by the status its record shows (`completed`, `failed`,
    /// `canceled`, `invalid`...; a workflow run's success is `success`), so that the
    /// counts add up to the items run.
    pub by_status: BTreeMap<String, u64>,
    /// The tokens the items used.
    pub tokens: u64,
    /// The exit status of the first failure in input order: (input sequence, status).
    pub first_failure: Option<(u64, u8)>,
}

/// How far a run has got, for a progress line: a copy of three of its counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// The items run or found invalid so far (not the skipped ones).
    pub done: u64,
    /// Of those, the ones that failed (an invalid line among them).
    pub failed: u64,
    /// The items `--resume` found done already.
    pub skipped: u64,
}

impl Tally {
    /// The counts so far, for a progress line; `failed` as the `summary` counts it.
    pub fn counts(&self) -> Counts {
        Counts {
            done: self.items,
            failed: self.items.saturating_sub(self.completed),
            skipped: self.skipped,
        }
    }

    /// Records a failure at input position `seq`; the earliest one decides the exit status.
    pub fn fail(&mut self, seq: u64, code: u8) {
        if self.first_failure.is_none_or(|(s, _)| seq < s) {
            self.first_failure = Some((seq, code));
        }
    }

    /// Records an input line that could not be run (already reported): an item with
    /// status `invalid`.
    pub fn invalid(&mut self, seq: u64, code: u8) {
        self.items += 1;
        *self.by_status.entry("invalid".to_owned()).or_default() += 1;
        self.fail(seq, code);
    }

    /// Records one item run at input position `seq`. Returns true when its failure is
    /// one every later item would meet too (authentication: no or a dead token), so
    /// the run should stop rather than repeat it for every line.
    pub fn record(&mut self, seq: u64, outcome: &Outcome) -> bool {
        self.items += 1;
        self.tokens += outcome.tokens;
        match &outcome.error {
            None => {
                self.completed += 1;
                *self.by_status.entry(outcome.status.clone()).or_default() += 1;
                false
            }
            Some(e) => {
                *self.by_status.entry(outcome.status.clone()).or_default() += 1;
                self.fail(seq, e.exit_code());
                e.exit_code() == exit::AUTH
            }
        }
    }

    /// The exit status of the run: that of the earliest failure in input order, 0
    /// when none.
    pub fn exit_status(&self) -> u8 {
        self.first_failure.map_or(0, |(_, code)| code)
    }

    /// The `summary` record; `items` names the count of items (`prompts`).
    /// `rate_pauses`: how often the whole pool paused for the server's rate limit.
    pub fn summary(&self, items: &str, wall: Duration, retries: u64, rate_pauses: u64) -> Value {
        let failed: u64 = self.by_status.values().sum::<u64>() - self.completed;
        let mut r = Map::new();
        r.insert("type".into(), "summary".into());
        r.insert(items.into(), (self.items + self.skipped).into());
        r.insert("completed".into(), self.completed.into());
        r.insert("failed".into(), failed.into());
        r.insert("skipped".into(), self.skipped.into());
        r.insert(
            "by_status".into(),
            Value::Object(
                self.by_status
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(*v)))
                    .collect(),
            ),
        );
        r.insert("tokens".into(), self.tokens.into());
        r.insert("wall_ms".into(), (wall.as_millis() as u64).into());
        r.insert("retries".into(), retries.into());
        r.insert("rate_pauses".into(), rate_pauses.into());
        r.insert("exit_code".into(), self.exit_status().into());
        Value::Object(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `--jobs`, failures arrive in any order; the exit status is that of the
    /// earliest failed prompt in the input, not of the first to fail in time.
    #[test]
    fn the_earliest_failed_prompt_decides_the_exit_status() {
        let mut t = Tally::default();
        assert_eq!(t.exit_status(), 0);
        t.fail(7, 1);
        t.fail(3, 5);
        t.fail(5, 4);
        assert_eq!(t.exit_status(), 5);
        t.fail(3, 1);
        assert_eq!(t.exit_status(), 5, "the same prompt again changes nothing");
    }

    /// The record's fields, in the order the README lists them, the items' count
    /// named by the tool.
    #[test]
    fn the_summary_names_the_items_and_adds_up() {
        let mut t = Tally {
            skipped: 2,
            ..Tally::default()
        };
        assert!(!t.record(0, &Outcome::completed(7)));
        t.invalid(1, 3);
        let failed = Outcome {
            error: Some(crate::Error::usage("x")),
            status: "canceled".into(),
            tokens: 1,
        };
        assert!(!t.record(2, &failed));
        assert_eq!(
            t.counts(),
            Counts {
                done: 3,
                failed: 2,
                skipped: 2
            },
            "the progress line's counts are the summary's"
        );
        let s = t.summary("prompts", Duration::from_millis(1500), 4, 1);
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "prompts",
                "completed",
                "failed",
                "skipped",
                "by_status",
                "tokens",
                "wall_ms",
                "retries",
                "rate_pauses",
                "exit_code"
            ]
        );
        assert_eq!(
            s,
            serde_json::json!({"type": "summary", "prompts": 5, "completed": 1, "failed": 2,
                "skipped": 2, "by_status": {"canceled": 1, "completed": 1, "invalid": 1},
                "tokens": 8, "wall_ms": 1500, "retries": 4, "rate_pauses": 1,
                "exit_code": 3})
        );
        // A success counts under the status its record shows (a workflow's `success`).
        let mut t = Tally::default();
        let success = Outcome {
            status: "success".into(),
            ..Outcome::completed(2)
        };
        assert!(!t.record(0, &success));
        let s = t.summary("runs", Duration::ZERO, 0, 0);
        assert_eq!(
            (&s["runs"], &s["completed"], &s["failed"], &s["by_status"]),
            (
                &serde_json::json!(1),
                &serde_json::json!(1),
                &serde_json::json!(0),
                &serde_json::json!({"success": 1})
            )
        );
    }
}
