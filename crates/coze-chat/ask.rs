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
use coze_core::chat::{self, Active, ChatSpec, ChatState, Target, ToolCall, ToolOutput};
use coze_core::protocol::{Prompt, Question};
use coze_core::{cli, Error, Result};

use crate::attach::Uploads;
use crate::flags::Mode;
use crate::input::{self, Job};
use crate::output::Printer;
use crate::tools::{self, Call, Tools};
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
    /// `--tool`, `--tools`: the programs that answer a bot's tool calls.
    pub tools: Tools,
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
/// chat: when the bot calls tools, the round's outputs are submitted and the chat goes
/// on, round after round, to its answer. `Ok` carries the chat and its failure, if any
/// (already printed in the chosen mode, not yet reported on stderr); only a closed
/// stdout is an `Err`, since it ends the whole run. `interactive`: a person at the
/// terminal answers a bot's question (`reply_message`).
pub fn ask<W: Write>(
    client: &Client<'_>,
    plan: &Plan,
    active: &Active,
    spec: &ChatSpec,
    prompt: &str,
    printer: &mut Printer<W>,
    interactive: bool,
) -> Result<(ChatState, Option<Error>)> {
    let (mut state, mut result) = if plan.stream {
        chat::stream(client, spec, printer, active)
    } else {
        chat::poll(client, spec, printer, active)
    };
    let mut rounds = 0;
    while matches!(result, Err(Error::Waiting(_))) && !state.tool_calls.is_empty() {
        // Registered while its tools run, so Ctrl-C cancels it (the first part's end
        // forgot it).
        if !active.set(&state) {
            result = Err(chat::unwanted());
            break;
        }
        if rounds == plan.tools.max_rounds && plan.tools.any() {
            // A bot that never stops calling: the chat would wait for ever, so its
            // cancel is asked (a server may refuse to cancel a chat that waits, as
            // one that is over: 4104, not reported) and the prompt fails.
            active.cancel_mine(client, TOOL);
            result = Err(Error::Protocol(format!(
                "the bot called tools again after {rounds} rounds (--max-tool-rounds); \
                 its cancel was asked"
            )));
            break;
        }
        let answered = answer_round(plan, &state, printer, interactive);
        if active.stopped() {
            result = Err(chat::unwanted());
            break;
        }
        let Some(outputs) = answered? else {
            active.clear();
            break;
        };
        rounds += 1;
        (state, result) = chat::submit(client, state, &outputs, plan.stream, printer, active);
    }
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

/// The outputs for the calls `state`'s chat waits on: each function run by its tool
/// (those of a round at once), a question asked of the person at the terminal. None
/// when the round cannot be answered whole (no tools were given, or a question with
/// nobody to ask): the chat is left waiting, its calls in the output. Every call is
/// printed (`tool_call`, then `tool_output`), a failed tool with one warning line.
fn answer_round<W: Write>(
    plan: &Plan,
    state: &ChatState,
    printer: &mut Printer<W>,
    interactive: bool,
) -> Result<Option<Vec<ToolOutput>>> {
    let calls = &state.tool_calls;
    let functions = calls.iter().any(|c| !c.is_question());
    let questions = calls.iter().any(ToolCall::is_question);
    let answerable = (!functions || plan.tools.any()) && (!questions || interactive);
    let stdout = |e| Error::io("stdout", e);
    for call in calls {
        printer
            .tool_call(call, arguments_value(call))
            .map_err(stdout)?;
    }
    if !answerable {
        return Ok(None);
    }
    let conv = state.conversation_id.as_deref().unwrap_or_default();
    let chat_id = state.chat_id.as_deref().unwrap_or_default();
    let mut outputs = vec![String::new(); calls.len()];
    // The questions first, one by one: the person answers while no tool runs.
    for (i, call) in calls.iter().enumerate().filter(|(_, c)| c.is_question()) {
        let q = coze_core::protocol::Question::text(&call.question);
        let Some(answer) = cli::ask::ask("the bot", &q, None) else {
            return Ok(None);
        };
        printer
            .tool_output(&call.id, &answer, None, 0)
            .map_err(stdout)?;
        outputs[i] = answer;
    }
    let mut runs = Vec::new();
    for (i, call) in calls.iter().enumerate().filter(|(_, c)| !c.is_question()) {
        if arguments_value(call).is_string() {
            coze_core::support::say::warn(&format!(
                "tool {} (call {}): its arguments are not a JSON object; passed as sent",
                call.name, call.id
            ));
        }
        if let Some(program) = plan.tools.program(&call.name) {
            runs.push((
                i,
                (
                    program,
                    Call {
                        name: &call.name,
                        id: &call.id,
                        conversation_id: conv,
                        chat_id,
                        arguments: &call.arguments,
                    },
                ),
            ));
        }
    }
    let (at, jobs): (Vec<usize>, Vec<(tools::Program, Call<'_>)>) = runs.into_iter().unzip();
    let ran = plan.tools.run_all(&jobs);
    let mut results: Vec<Option<tools::Ran>> = calls.iter().map(|_| None).collect();
    for (i, r) in at.into_iter().zip(ran) {
        results[i] = Some(r);
    }
    for (i, call) in calls.iter().enumerate().filter(|(_, c)| !c.is_question()) {
        let (output, exit_status, ms) = match results[i].take() {
            Some(r) => match (&r.problem, r.output) {
                (None, Some(out)) => (out, r.exit_status, r.ms),
                (problem, out) => {
                    let why = problem.clone().unwrap_or_default();
                    coze_core::support::say::warn(&format!(
                        "tool {} (call {}) {why}",
                        call.name, call.id
                    ));
                    let said = out
                        .filter(|o| !o.trim().is_empty())
                        .map(|o| format!("; it wrote: {}", o.trim_end()))
                        .unwrap_or_default();
                    (
                        format!("error: the local tool {} {why}{said}", call.name),
                        r.exit_status,
                        r.ms,
                    )
                }
            },
            None => {
                coze_core::support::say::warn(&format!(
                    "no local tool named {} (call {}): pass --tool {}=COMMAND",
                    call.name, call.id, call.name
                ));
                (format!("error: no local tool named {}", call.name), None, 0)
            }
        };
        printer
            .tool_output(&call.id, &output, exit_status, ms)
            .map_err(stdout)?;
        outputs[i] = output;
    }
    Ok(Some(
        calls
            .iter()
            .zip(outputs)
            .map(|(c, output)| ToolOutput {
                tool_call_id: c.id.clone(),
                output,
            })
            .collect(),
    ))
}

/// A call's arguments as its records show them: the JSON object the server sent as
/// text, or (when that text is no object) the text itself.
fn arguments_value(call: &ToolCall) -> Value {
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if call.is_question() => Value::Null,
        _ => Value::String(call.arguments.clone()),
    }
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
    /// The terminal chat: text mode numbers the follow-ups (a number asks one), with
    /// escape sequences only when `Some(true)` (the terminal is not a dumb one).
    pub terminal: Option<bool>,
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
            terminal: None,
        }
    }

    fn printer<W: Write>(&self, out: W) -> Printer<W> {
        let workflow = self.plan.chatflow.as_ref().map(|f| f.workflow_id.as_str());
        let mut printer = Printer::new(self.mode, workflow, out);
        if let Some(styled) = self.terminal {
            printer.at_terminal(styled);
        }
        printer
    }

    /// After a [`Task::cancel`] stopped one prompt of a session at the terminal, the
    /// next prompts are asked as usual: chats are wanted and tools start again.
    pub fn go_on(&self) {
        self.active.reset();
        tools::go_on();
    }

    /// The conversation of the last chat that began, also one cancelled before its
    /// end (which `conversation` did not learn).
    pub fn latest_conversation(&self) -> Option<String> {
        self.active.latest_conversation()
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
                self.interactive,
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

impl Chats<'_> {
    /// [`Task::run`], also returning how the last chat ended (its follow-ups, its
    /// conversation), for the terminal chat.
    pub fn ask_job<W: Write>(&self, job: &Job, out: &mut W) -> Result<(Outcome, ChatState)> {
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
                return Ok((outcome(&state, Some(e), job.line), state));
            }
        }
        let first = ask(
            self.client,
            self.plan,
            &self.active,
            &spec,
            &p.content,
            &mut printer,
            self.interactive,
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
        Ok((outcome, state))
    }
}

impl Task for Chats<'_> {
    type Item = Job;
    const ITEMS: &'static str = "prompts";

    fn run<W: Write>(&self, job: &Job, out: &mut W) -> Result<Outcome> {
        self.ask_job(job, out).map(|(outcome, _)| outcome)
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
        // The tools first: they run in groups of their own, which Ctrl-C misses.
        tools::kill_all();
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

/// The tokens a chat used, as its last `usage` says: `token_count`, or the sum of
/// `input_tokens` and `output_tokens` (the spelling the Coze API docs show on the
/// chat a submit of tool outputs continues).
fn tokens_of(state: &ChatState) -> u64 {
    let Some(usage) = state.usage.as_ref() else {
        return 0;
    };
    let n = |k: &str| usage.get(k).and_then(Value::as_u64);
    n("token_count")
        .or_else(|| Some(n("input_tokens")? + n("output_tokens").unwrap_or(0)))
        .or_else(|| n("output_tokens"))
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
