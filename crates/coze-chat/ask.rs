//! Asking one prompt: the chat request built from the run's plan and the prompt's
//! overrides, the chat itself and its printing; and coze-chat's task for the batch
//! engine (`Chats`), which asks each prompt of a run so.

use std::io::{self, Write};
use std::sync::Mutex;

use serde_json::{Map, Value};

use coze_core::api::Client;
use coze_core::batch::{Bad, Outcome, Task};
use coze_core::chat::{self, Active, ChatSpec, ChatState};
use coze_core::protocol::Prompt;
use coze_core::{cli, Error, Result};

use crate::attach::Uploads;
use crate::flags::Mode;
use crate::input::Job;
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
            parts: Vec::new(),
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

/// The `id` a prompt's output lines carry: answers always have one (derived from the
/// content when the input gave none, so `--resume` can find it); events echo the input's.
fn printed_id(mode: Mode, p: &Prompt) -> Option<Value> {
    match mode {
        Mode::Answers => Some(p.effective_id()),
        _ => p.id.clone(),
    }
}

/// coze-chat's batch task: each item a prompt, asked and printed in the run's mode.
pub struct Chats<'a> {
    client: &'a Client<'a>,
    plan: &'a Plan,
    mode: Mode,
    /// The chats in progress, cancelled when the run is stopped.
    active: Active,
    /// The files this run has uploaded, by path: each is uploaded once.
    uploads: Uploads,
    /// The conversation the next prompt goes to unless it names its own: --conversation,
    /// a `conversation` line, or (one job, without --new-each) the one the first chat
    /// made, kept for the following prompts.
    pub conversation: Mutex<Option<String>>,
}

impl<'a> Chats<'a> {
    /// Asks in `mode`, in `conversation` until a line switches it.
    pub fn new(
        client: &'a Client<'a>,
        plan: &'a Plan,
        mode: Mode,
        conversation: Option<String>,
    ) -> Self {
        Chats {
            client,
            plan,
            mode,
            active: Active::default(),
            uploads: Uploads::default(),
            conversation: Mutex::new(conversation),
        }
    }

    /// `prompt` in the conversation in force now.
    pub fn job(&self, line: Option<u64>, prompt: Box<Prompt>) -> Job {
        Job::new(line, prompt, &self.conversation)
    }
}

impl Task for Chats<'_> {
    type Item = Job;
    const ITEMS: &'static str = "prompts";

    fn run<W: Write>(&self, job: &Job, out: &mut W) -> Result<Outcome> {
        let p = &job.prompt;
        let mut printer = Printer::new(self.mode, out);
        printer.begin(printed_id(self.mode, p));
        let mut spec = self.plan.spec(p, job.conversation.clone());
        match self.uploads.send(self.client, &p.attachments) {
            Ok(sent) => {
                printer.attachments(sent.iter().map(|s| s.listed.clone()).collect());
                spec.parts = sent.into_iter().map(|s| s.part).collect();
            }
            Err(e) => {
                // Nothing was asked: the prompt fails as a chat that never started.
                let state = ChatState::default();
                printer
                    .end(&p.content, &state, Some(&e))
                    .map_err(|e| Error::io("stdout", e))?;
                return Ok(outcome(&state, Some(e), job.line));
            }
        }
        let (state, error) = ask(self.client, self.plan, &self.active, &spec, p, &mut printer)?;
        // Keep talking in the conversation the first chat made.
        if error.is_none() && !self.plan.new_each && p.conversation_id.is_none() {
            let mut current = self.conversation.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_none() {
                current.clone_from(&state.conversation_id);
            }
        }
        Ok(outcome(&state, error, job.line))
    }

    fn invalid<W: Write>(&self, bad: &Bad, out: &mut W) -> io::Result<()> {
        let mut printer = Printer::new(self.mode, out);
        printer.begin(bad.id.clone());
        printer.invalid(bad.text.as_deref(), &bad.error)
    }

    fn report(&self, error: &Error) {
        cli::report(TOOL, error);
    }

    fn cancel(&self) {
        self.active.cancel(self.client, TOOL);
    }
}

/// How a chat ended, for the tally: its failure naming the prompt's line, the status
/// its answer record shows, the tokens it used.
fn outcome(state: &ChatState, error: Option<Error>, line: Option<u64>) -> Outcome {
    let tokens = state
        .usage
        .as_ref()
        .and_then(|u| u.get("token_count"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let Some(e) = error else {
        return Outcome::completed(tokens);
    };
    let status = match state.status.as_str() {
        "" | "created" | "in_progress" | "completed" => "failed",
        other => other,
    };
    let error = match line {
        Some(n) => e.context(format!("prompt on line {n}")),
        None => e,
    };
    Outcome {
        error: Some(error),
        status: status.to_owned(),
        tokens,
    }
}
