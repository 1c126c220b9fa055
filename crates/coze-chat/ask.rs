//! Asking one prompt, shared by the sequential run and the parallel batch: the chat
//! request built from the run's plan and the prompt's overrides, the chat itself, its
//! printing, and the tally every run keeps for its exit status and summary.

use std::io::Write;

use serde_json::{json, Map, Value};

use coze_core::api::Client;
use coze_core::chat::{self, Active, ChatSpec, ChatState};
use coze_core::protocol::Prompt;
use coze_core::{cli, Error, Result};

use crate::output::Printer;
use crate::TOOL;

/// What every prompt of a run shares.
pub struct Plan {
    /// `--bot` or `COZE_BOT_ID`; without it every prompt names its own (the input
    /// refuses a prompt that does not).
    pub bot: Option<String>,
    pub user: String,
    pub vars: Map<String, Value>,
    pub meta: Map<String, Value>,
    pub auto_save: bool,
    pub stream: bool,
    pub new_each: bool,
}

impl Plan {
    /// The chat request for `p` in `conversation` (the prompt's own wins).
    pub fn spec(&self, p: &Prompt, conversation: Option<String>) -> ChatSpec {
        let mut vars = self.vars.clone();
        vars.extend(p.custom_variables.clone().unwrap_or_default());
        let mut meta = self.meta.clone();
        meta.extend(p.meta_data.clone().unwrap_or_default());
        ChatSpec {
            bot_id: p
                .bot_id
                .clone()
                .or_else(|| self.bot.clone())
                .unwrap_or_default(),
            user_id: p.user_id.clone().unwrap_or_else(|| self.user.clone()),
            content: p.content.clone(),
            conversation_id: p.conversation_id.clone().or(conversation),
            custom_variables: vars,
            meta_data: meta,
            auto_save: self.auto_save,
        }
    }
}

/// Asks `p` and prints the chat. `Ok` carries the chat and its failure, if any (already
/// printed in the chosen mode, not yet reported on stderr); only a closed stdout is an
/// `Err`, since it ends the whole run.
pub fn ask<W: Write>(
    client: &Client<'_>,
    plan: &Plan,
    active: &Active,
    spec: &ChatSpec,
    p: &Prompt,
    printer: &mut Printer<W>,
) -> Result<(ChatState, Option<Error>)> {
    let (state, result) = if plan.stream {
        chat::stream(client, spec, printer, active)
    } else {
        chat::poll(client, spec, printer, active)
    };
    let error = match result {
        Err(e) if e.is_closed_pipe() => return Err(e),
        Err(e) => Some(e),
        Ok(()) => None,
    };
    if let Some(how) = &state.recovered {
        coze_core::say!("{TOOL}: warning: {how}; the rest of the chat was recovered by polling it");
    }
    if state.malformed > 0 {
        coze_core::say!(
            "{TOOL}: warning: {} malformed event(s) in the stream were skipped",
            state.malformed
        );
    }
    printer
        .end(&p.content, &state, error.as_ref())
        .map_err(|e| Error::io("stdout", e))?;
    Ok((state, error))
}

/// Counts of a run, for the exit status and the `summary` record.
#[derive(Debug, Default)]
pub struct Tally {
    pub prompts: u64,
    pub completed: u64,
    pub skipped: u64,
    /// Every prompt asked, by the status its answer record shows (`completed`,
    /// `failed`, `canceled`, ...), so that the counts add up to the prompts asked.
    pub by_status: std::collections::BTreeMap<String, u64>,
    pub tokens: u64,
    /// The exit status of the first failure in input order: (input sequence, status).
    pub first_failure: Option<(u64, u8)>,
}

impl Tally {
    /// Records a failure at input position `seq`; the earliest one decides the exit status.
    pub fn fail(&mut self, seq: u64, code: u8) {
        if self.first_failure.is_none_or(|(s, _)| seq < s) {
            self.first_failure = Some((seq, code));
        }
    }

    /// Records a stdin line that could not be asked (already reported): a prompt
    /// with status `invalid`.
    pub fn invalid(&mut self, seq: u64, code: u8) {
        self.prompts += 1;
        *self.by_status.entry("invalid".to_owned()).or_default() += 1;
        self.fail(seq, code);
    }

    /// Records one asked prompt; reports its failure on stderr. Returns true when the
    /// failure is one every later prompt would meet too (authentication: no or a dead
    /// token), so the run should stop rather than repeat it for every line.
    pub fn record(
        &mut self,
        seq: u64,
        line: Option<u64>,
        state: &ChatState,
        error: Option<Error>,
    ) -> bool {
        self.prompts += 1;
        self.tokens += state
            .usage
            .as_ref()
            .and_then(|u| u.get("token_count"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match error {
            None => {
                self.completed += 1;
                *self.by_status.entry("completed".to_owned()).or_default() += 1;
            }
            Some(e) => {
                let status = match state.status.as_str() {
                    "" | "created" | "in_progress" | "completed" => "failed",
                    other => other,
                };
                *self.by_status.entry(status.to_owned()).or_default() += 1;
                let e = match line {
                    Some(n) => e.context(format!("prompt on line {n}")),
                    None => e,
                };
                cli::report(TOOL, &e);
                self.fail(seq, e.exit_code());
                if e.exit_code() == coze_core::error::exit::AUTH {
                    return true;
                }
            }
        }
        false
    }

    pub fn exit_status(&self) -> u8 {
        self.first_failure.map_or(0, |(_, code)| code)
    }

    /// The `summary` record.
    /// `rate_pauses`: how often the whole pool paused for the server's rate limit.
    pub fn summary(&self, wall: std::time::Duration, retries: u64, rate_pauses: u64) -> Value {
        let failed: u64 = self.by_status.values().sum::<u64>() - self.completed;
        json!({
            "type": "summary",
            "prompts": self.prompts + self.skipped,
            "completed": self.completed,
            "failed": failed,
            "skipped": self.skipped,
            "by_status": self.by_status,
            "tokens": self.tokens,
            "wall_ms": wall.as_millis() as u64,
            "retries": retries,
            "rate_pauses": rate_pauses,
            "exit_code": self.exit_status(),
        })
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
}
