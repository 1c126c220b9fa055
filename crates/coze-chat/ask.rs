//! Asking one prompt: the chat request built from the run's plan and the prompt's
//! overrides, the chat itself and its printing; and coze-chat's task for the batch
//! engine (`Chats`), which asks each prompt of a run so.
//!
//! A chatflow's question (its chat ends in `requires_action`) is no failure: on a
//! terminal the person answers it and the chatflow is asked again in the same
//! conversation with the answer, as the Coze API docs (`workflow_chat`) say to
//! continue; in a pipeline the next prompt of that conversation answers it. `Chats`
//! keeps the questions still open, by conversation: one left at the end of the run is
//! the batch's `unanswered` (exit 7).

use std::io::{self, Write};
use std::sync::Mutex;

use serde_json::{Map, Value};

use coze_core::api::Client;
use coze_core::batch::{Bad, Outcome, Task};
use coze_core::chat::{self, Active, ChatSpec, ChatState, Target};
use coze_core::protocol::{Prompt, Question};
use coze_core::{cli, Error, Result};

use crate::attach::Uploads;
use crate::flags::Mode;
use crate::input::{self, Job};
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
    /// `--workflow`: a chatflow answers, in `bot` or in its app.
    pub chatflow: Option<Chatflow>,
}

/// The chatflow a run asks (`--workflow`, `--app`, `--param`).
pub struct Chatflow {
    pub workflow_id: String,
    /// `--app`; without it the chatflow runs in the prompt's bot or `Plan::bot`.
    pub app_id: Option<String>,
    /// `--param`s; a prompt record's own `parameters` are added to them.
    pub parameters: Map<String, Value>,
}

impl Plan {
    /// The chat request for `p` in `conversation` (the prompt's own wins).
    pub fn spec(&self, p: &Prompt, conversation: Option<String>) -> ChatSpec {
        let mut vars = self.vars.clone();
        vars.extend(p.custom_variables.clone().unwrap_or_default());
        let mut meta = self.meta.clone();
        meta.extend(p.meta_data.clone().unwrap_or_default());
        let bot = p.bot_id.clone().or_else(|| self.bot.clone());
        let target = match &self.chatflow {
            None => Target::Bot {
                bot_id: bot.unwrap_or_default(),
            },
            Some(flow) => {
                let mut parameters = flow.parameters.clone();
                parameters.extend(input::parameters(p));
                Target::Workflow {
                    workflow_id: flow.workflow_id.clone(),
                    app_id: flow.app_id.clone(),
                    bot_id: bot.filter(|_| flow.app_id.is_none()),
                    parameters,
                }
            }
        };
        ChatSpec {
            target,
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

/// Asks `spec` (whose prompt, as its record shows it, is `prompt`) and prints the
/// chat. `Ok` carries the chat and its failure, if any (already printed in the chosen
/// mode, not yet reported on stderr); only a closed stdout is an `Err`, since it ends
/// the whole run.
pub fn ask<W: Write>(
    client: &Client<'_>,
    plan: &Plan,
    active: &Active,
    spec: &ChatSpec,
    prompt: &str,
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
            "{TOOL}: warning: {} malformed event(s) in the stream: not read, but kept as they came in -o events",
            state.malformed
        );
    }
    printer
        .end(prompt, &state, error.as_ref())
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
    /// A person at the terminal answers a chatflow's questions.
    interactive: bool,
    /// The chatflow's questions still open, by conversation, oldest first: a later
    /// chat in the conversation that ends without one closes it.
    waiting: Mutex<Vec<(String, Question)>>,
}

impl<'a> Chats<'a> {
    /// Asks in `mode`, in `conversation` until a line switches it; a chatflow's
    /// questions are put to the person at the terminal when `interactive`.
    pub fn new(
        client: &'a Client<'a>,
        plan: &'a Plan,
        mode: Mode,
        conversation: Option<String>,
        interactive: bool,
    ) -> Self {
        Chats {
            client,
            plan,
            mode,
            active: Active::default(),
            uploads: Uploads::default(),
            conversation: Mutex::new(conversation),
            interactive,
            waiting: Mutex::default(),
        }
    }

    fn printer<W: Write>(&self, out: W) -> Printer<W> {
        let workflow = self.plan.chatflow.as_ref().map(|f| f.workflow_id.as_str());
        Printer::new(self.mode, workflow, out)
    }

    /// A chatflow's chat ended with a question: while a person at the terminal
    /// answers, the chatflow is asked again with the answer, in the same conversation
    /// (each answer's chat printed as a prompt of its own, with the prompt's id).
    /// Returns how the last chat ended, and the tokens of those asked here.
    fn answer_questions<W: Write>(
        &self,
        spec: &ChatSpec,
        p: &Prompt,
        printer: &mut Printer<W>,
        mut last: (ChatState, Option<Error>),
    ) -> Result<((ChatState, Option<Error>), u64)> {
        let mut tokens = 0;
        while self.interactive && last.1.is_none() {
            let Some(question) = &last.0.question else {
                break;
            };
            let Some(answer) = cli::ask::ask("the chatflow", question, None) else {
                break;
            };
            let spec = ChatSpec {
                content: answer.clone(),
                conversation_id: last
                    .0
                    .conversation_id
                    .clone()
                    .or(spec.conversation_id.clone()),
                ..spec.clone()
            };
            printer.begin(printed_id(self.mode, p));
            last = ask(
                self.client,
                self.plan,
                &self.active,
                &spec,
                &answer,
                printer,
            )?;
            tokens += tokens_of(&last.0);
        }
        Ok((last, tokens))
    }

    /// Keeps the question `state` ended with open for its conversation, or closes
    /// the conversation's: a chat that ran there without one answered it.
    fn note_question(&self, state: &ChatState, error: Option<&Error>, conversation: Option<&str>) {
        let conv = state
            .conversation_id
            .as_deref()
            .or(conversation)
            .unwrap_or_default()
            .to_owned();
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        match (&state.question, error) {
            (Some(q), None) => {
                waiting.retain(|(c, _)| *c != conv);
                waiting.push((conv, q.clone()));
            }
            (None, None) => waiting.retain(|(c, _)| *c != conv),
            // A failed chat (or one never started) left the question as it was.
            (_, Some(_)) => {}
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
        let mut printer = self.printer(out);
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
        let first = ask(
            self.client,
            self.plan,
            &self.active,
            &spec,
            &p.content,
            &mut printer,
        )?;
        let asked = tokens_of(&first.0);
        let ((state, error), answered) = self.answer_questions(&spec, p, &mut printer, first)?;
        if self.plan.chatflow.is_some() {
            self.note_question(&state, error.as_ref(), job.conversation.as_deref());
        }
        // Keep talking in the conversation the first chat made.
        if error.is_none() && !self.plan.new_each && p.conversation_id.is_none() {
            let mut current = self.conversation.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_none() {
                current.clone_from(&state.conversation_id);
            }
        }
        let mut outcome = outcome(&state, error, job.line);
        outcome.tokens = asked + answered;
        Ok(outcome)
    }

    fn invalid<W: Write>(&self, bad: &Bad, out: &mut W) -> io::Result<()> {
        let mut printer = self.printer(out);
        printer.begin(bad.id.clone());
        printer.invalid(bad.text.as_deref(), &bad.error)
    }

    fn report(&self, error: &Error) {
        cli::report(TOOL, error);
    }

    fn cancel(&self) {
        self.active.cancel(self.client, TOOL);
    }

    fn unanswered(&self) -> Option<Error> {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let (conv, q) = waiting.first()?;
        let options = match q.options.len() {
            0 => String::new(),
            _ => format!(" ({})", q.options.join(" | ")),
        };
        let more = match waiting.len() {
            1 => String::new(),
            n => format!("; and {} more conversation(s) wait", n - 1),
        };
        let how = match conv.as_str() {
            "" => "the server did not say in which conversation".to_owned(),
            conv => format!(
                "answer it with one more prompt in conversation {conv}: --conversation {conv}, \
                 or a prompt record with that conversation_id"
            ),
        };
        Some(Error::Waiting(format!(
            "the chatflow's question was not answered: {:?}{options}{more} ({how})",
            q.text
        )))
    }
}

/// The tokens a chat used, as its last `usage` says.
fn tokens_of(state: &ChatState) -> u64 {
    state
        .usage
        .as_ref()
        .and_then(|u| u.get("token_count"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// How a chat ended, for the tally: its failure naming the prompt's line, the status
/// its answer record shows, the tokens it used.
fn outcome(state: &ChatState, error: Option<Error>, line: Option<u64>) -> Outcome {
    let tokens = tokens_of(state);
    let Some(e) = error else {
        let mut done = Outcome::completed(tokens);
        if state.question.is_some() {
            // A chatflow's question: no failure, but not an answer either.
            done.status = "requires_action".to_owned();
        }
        return done;
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
