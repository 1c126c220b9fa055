//! coze-chat: prompts in, the bot's answers out. A translator: flags → session →
//! coze-core's chat machine → a printer per output mode → exit code.

mod ask;
mod batch;
mod flags;
mod input;
mod output;
mod resume;

use std::collections::HashSet;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use coze_core::api::Client;
use coze_core::chat::Active;
use coze_core::cli::flags::API_FLAGS_HELP;
use coze_core::cli::session::Session;
use coze_core::cli::{self, interrupt, stdout_watch, Parsed};
use coze_core::config::{self, Env};
use coze_core::protocol::Prompt;
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::{Error, Result};

use ask::{ask, Plan, Tally};
use flags::{Flags, Mode, Source};
use input::{Item, Items};
use output::Printer;

pub const TOOL: &str = "coze-chat";

fn main() -> ExitCode {
    let mut status = 0u8;
    let code = cli::run(TOOL, || {
        match flags::parse(std::env::args_os().skip(1))? {
            Parsed::Help => cli::print(&format!(
                "{}{API_FLAGS_HELP}{}{}\n",
                flags::HELP,
                flags::HELP_TAIL,
                coze_core::error::EXIT_CODES_HELP
            ))?,
            Parsed::Version => cli::print(&format!(
                "{}\n",
                cli::version_text(TOOL, option_env!("COZE_GIT_COMMIT"))
            ))?,
            Parsed::Run(f) => status = run(f, &Env::from_process())?,
        }
        Ok(())
    });
    if status != 0 {
        ExitCode::from(status)
    } else {
        code
    }
}

/// The `id` a prompt's output lines carry: answers always have one (derived from the
/// content when the input gave none, so `--resume` can find it); events echo the input's.
pub fn printed_id(mode: Mode, p: &Prompt) -> Option<Value> {
    match mode {
        Mode::Answers => Some(p.effective_id()),
        _ => p.id.clone(),
    }
}

/// Runs every prompt; returns the exit status of the first failure (0 when none).
/// Failures of single prompts are reported as they happen; `Err` is for what ends the
/// whole run (usage, a closed stdout).
fn run(f: Flags, env: &Env) -> Result<u8> {
    let started = Instant::now();
    // Stdin lines may each name their bot (a prompt record's bot_id): a line that
    // does not, with no bot here, is refused when it is read.
    let bot = config::bot_id(f.bot.as_deref(), env).map(|s| s.value);
    if bot.is_none() && f.source != Source::Lines {
        return Err(Error::usage("no bot: pass --bot ID or set COZE_BOT_ID"));
    }
    let rules = input::Rules {
        max_line: f.max_line,
        has_bot: bot.is_some(),
        meta: f.meta.clone(),
    };
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    let mode = f.mode.unwrap_or(if io::stdout().is_terminal() {
        Mode::Text
    } else {
        Mode::Events
    });
    let user = match f.user.clone().or_else(|| env.user_id.clone()) {
        Some(u) => u,
        None => default_user(&f, env)?,
    };
    let plan = Plan {
        bot,
        user,
        vars: f.vars.clone(),
        meta: f.meta.clone(),
        auto_save: !f.no_save,
        stream: !f.no_stream,
        new_each: f.new_each || f.jobs > 1,
    };
    // Answers to stdout: when its reader goes away, the chats in flight are cancelled.
    let to_stdout = !(f.resume.is_some() && f.append);
    // Opened (and locked) before the completed ids are read, so that they are read
    // under the lock: a run that ended meanwhile has its answers counted.
    let out: Box<dyn Write + Send> = match (&f.resume, f.append) {
        (Some(path), true) => Box::new(resume::open_for_append(path)?),
        _ => Box::new(io::stdout()),
    };
    let done_ids = match &f.resume {
        // An answer record holds its prompt (up to max_line) and the answer.
        Some(path) => resume::completed_ids(path, f.max_line.saturating_mul(8))?,
        None => HashSet::new(),
    };
    let tally = Mutex::new(Tally::default());
    let active = Active::default();
    let outcome = interrupt::guarded(
        TOOL,
        || active.cancel(&client, TOOL),
        || {
            let on_close = || {
                session.http.stop();
                active.cancel(&client, TOOL);
            };
            if f.jobs > 1 {
                let shared = batch::SharedOut::new(out, f.ordered);
                let batch = batch::Batch {
                    client: &client,
                    plan: &plan,
                    active: &active,
                    mode,
                    jobs: f.jobs,
                    keep_going: f.keep_going,
                    conversation: f.conversation.clone(),
                    done_ids: &done_ids,
                    out: &shared,
                    tally: &tally,
                };
                stdout_watch::watch(to_stdout, on_close, || batch.run(io::stdin().lock(), rules))
            } else {
                let mut runner = Runner {
                    client: &client,
                    plan: &plan,
                    active: &active,
                    conversation: f.conversation.clone(),
                    tally: &tally,
                    done_ids: &done_ids,
                    mode,
                    seq: 0,
                    stop: false,
                };
                let printer = Printer::new(mode, io::BufWriter::with_capacity(64 << 10, out));
                stdout_watch::watch(to_stdout, on_close, || runner.run(&f, rules, printer))
            }
        },
    );
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    outcome?;
    let batchy = f.jobs > 1 || f.api.rate.is_some() || f.resume.is_some();
    if f.summary || batchy {
        let summary = tally.summary(
            started.elapsed(),
            session.http.retries(),
            session.http.rate_pauses(),
        );
        if f.summary {
            JsonlWriter::new(io::stdout().lock())
                .write(&summary)
                .map_err(|e| Error::io("stdout", e))?;
        } else {
            coze_core::say!("{summary}");
        }
    }
    Ok(tally.exit_status())
}

/// The profile's stable user id, so the bot's memory of this user carries over from run
/// to run; without a settings directory, one for this run.
fn default_user(f: &Flags, env: &Env) -> Result<String> {
    let mut warn = |w: &str| coze_core::support::say::warn(w);
    let id = match f.api.user_id_path(env) {
        Ok(path) => coze_core::config::user_id::stable(&path, &mut warn),
        Err(e) => {
            warn(&format!(
                "{e}; using a new user id for this run (pass --user or set COZE_USER_ID)"
            ));
            coze_core::config::user_id::generate()
        }
    };
    id.map_err(|e| Error::io("the random source", e))
}

/// One prompt after another (`--jobs 1`): the first chat's conversation is kept for the
/// following prompts unless `--new-each`.
struct Runner<'a> {
    client: &'a Client<'a>,
    plan: &'a Plan,
    active: &'a Active,
    /// The conversation the next prompt goes to, unless it names its own.
    conversation: Option<String>,
    tally: &'a Mutex<Tally>,
    done_ids: &'a HashSet<String>,
    mode: Mode,
    seq: u64,
    /// An authentication failure ended the run.
    stop: bool,
}

impl Runner<'_> {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run<W: Write>(
        &mut self,
        f: &Flags,
        rules: input::Rules,
        mut printer: Printer<W>,
    ) -> Result<()> {
        match &f.source {
            Source::Argument(text) => self.prompt(None, input::plain(text), &mut printer),
            Source::WholeStdin => {
                let bad = |message: String| Error::BadInput {
                    line: None,
                    message,
                };
                let bytes =
                    coze_core::wire::jsonl::read_capped(io::stdin().lock(), f.max_line as u64)
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::FileTooLarge => {
                                bad(format!("{e}; --max-line-bytes raises the limit"))
                            }
                            _ => bad(format!("reading stdin: {e}")),
                        })?;
                let all = String::from_utf8(bytes)
                    .map_err(|_| bad("reading stdin: not valid UTF-8".into()))?;
                let text = all
                    .strip_prefix('\u{feff}')
                    .unwrap_or(&all)
                    .trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    return Err(Error::BadInput {
                        line: None,
                        message: "stdin is empty: nothing to ask".into(),
                    });
                }
                self.prompt(None, input::plain(text), &mut printer)
            }
            Source::Lines => {
                if io::stdin().is_terminal() {
                    coze_core::say!("{TOOL}: one prompt per line; Ctrl-D ends");
                }
                let mut items = Items::new(io::stdin().lock(), rules);
                while let Some(item) = items.next_item() {
                    if self.stop {
                        coze_core::say!(
                            "{TOOL}: stopping: the remaining prompts would fail the same way"
                        );
                        break;
                    }
                    match item {
                        Ok(Item::Prompt { line, prompt }) => {
                            self.prompt(Some(line), *prompt, &mut printer)?
                        }
                        Ok(Item::Switch { conversation_id }) => {
                            self.conversation = Some(conversation_id)
                        }
                        Err(bad) => {
                            cli::report(TOOL, &bad.error);
                            let seq = self.next_seq();
                            if !bad.is_line() {
                                self.tally().fail(seq, bad.error.exit_code());
                                break;
                            }
                            self.tally().invalid(seq, bad.error.exit_code());
                            // -o answers: the line is a record of the answers file,
                            // and the batch goes on.
                            if self.mode == Mode::Answers {
                                printer.begin(bad.id);
                                printer
                                    .invalid(bad.text.as_deref(), &bad.error)
                                    .map_err(|e| Error::io("stdout", e))?;
                            }
                            if bad.fatal || !(f.keep_going || self.mode == Mode::Answers) {
                                break;
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }

    /// Asks one prompt and prints its answer. Only a closed stdout is an `Err`.
    fn prompt<W: Write>(
        &mut self,
        line: Option<u64>,
        p: Prompt,
        printer: &mut Printer<W>,
    ) -> Result<()> {
        let seq = self.next_seq();
        if !self.done_ids.is_empty() && self.done_ids.contains(&resume::key(&p.effective_id())) {
            self.tally().skipped += 1;
            return Ok(());
        }
        let spec = self.plan.spec(&p, self.conversation.clone());
        printer.begin(printed_id(self.mode, &p));
        let (state, error) = ask(self.client, self.plan, self.active, &spec, &p, printer)?;
        // Keep talking in the conversation the first chat made.
        if error.is_none()
            && !self.plan.new_each
            && self.conversation.is_none()
            && p.conversation_id.is_none()
        {
            self.conversation = state.conversation_id.clone();
        }
        let fatal = self.tally().record(seq, line, &state, error);
        self.stop = fatal;
        Ok(())
    }
}
