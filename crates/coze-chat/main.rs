//! coze-chat: prompts in, the bot's answers out. A translator: flags → session →
//! coze-core's chat machine → a printer per output mode → exit code.

mod flags;
mod input;
mod output;

use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;

use serde_json::{Map, Value};

use coze_core::chat::{self, Active, ChatSpec};
use coze_core::cli::{self, Parsed};
use coze_core::config::Env;
use coze_core::records::Prompt;
use coze_core::session::{Session, API_FLAGS_HELP};
use coze_core::{interrupt, pkce, Error, Result};

use flags::{Flags, Mode, Source};
use input::{Item, Items};
use output::Printer;

const TOOL: &str = "coze-chat";

fn main() -> ExitCode {
    let mut status = 0u8;
    let code = cli::run(TOOL, || {
        match flags::parse(std::env::args_os().skip(1))? {
            Parsed::Help => {
                println!(
                    "{}{API_FLAGS_HELP}{}{}",
                    flags::HELP,
                    flags::HELP_TAIL,
                    coze_core::error::EXIT_CODES_HELP
                )
            }
            Parsed::Version => println!(
                "{}",
                cli::version_text(TOOL, option_env!("COZE_GIT_COMMIT"))
            ),
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

/// Everything every prompt shares.
struct Plan {
    bot: String,
    user: String,
    vars: Map<String, Value>,
    meta: Map<String, Value>,
    auto_save: bool,
    stream: bool,
    new_each: bool,
}

/// Runs every prompt; returns the exit status of the first failure (0 when none).
/// Failures of single prompts are reported as they happen; `Err` is for what ends the
/// whole run (usage, a closed stdout, a bad line without --keep-going).
fn run(f: Flags, env: &Env) -> Result<u8> {
    let bot = f
        .bot
        .clone()
        .or_else(|| env.bot_id.clone())
        .ok_or_else(|| Error::usage("no bot: pass --bot ID or set COZE_BOT_ID"))?;
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    let mode = f.mode.unwrap_or(if io::stdout().is_terminal() {
        Mode::Text
    } else {
        Mode::Events
    });
    let user = match f.user.clone().or_else(|| env.user_id.clone()) {
        Some(u) => u,
        None => format!(
            "coze-tools-{}",
            pkce::random_hex(8).map_err(|e| Error::Network(e.to_string()))?
        ),
    };
    let plan = Plan {
        bot,
        user,
        vars: f.vars.clone(),
        meta: f.meta.clone(),
        auto_save: !f.no_save,
        stream: !f.no_stream,
        new_each: f.new_each,
    };
    let active = Active::default();
    interrupt::guarded(
        TOOL,
        || active.cancel(&client, TOOL),
        || {
            let mut printer = Printer::new(mode, io::stdout().lock());
            let mut runner = Runner {
                client: &client,
                plan: &plan,
                active: &active,
                conversation: f.conversation.clone(),
                first_failure: 0,
            };
            match &f.source {
                Source::Argument(text) => runner.prompt(None, input::plain(text), &mut printer)?,
                Source::WholeStdin => {
                    let mut all = String::new();
                    io::stdin()
                        .lock()
                        .read_to_string(&mut all)
                        .map_err(|e| Error::BadInput {
                            line: None,
                            message: format!("reading stdin: {e}"),
                        })?;
                    let text = all.trim_end_matches(['\n', '\r']);
                    if text.trim().is_empty() {
                        return Err(Error::BadInput {
                            line: None,
                            message: "stdin is empty: nothing to ask".into(),
                        });
                    }
                    runner.prompt(None, input::plain(text), &mut printer)?;
                }
                Source::Lines => {
                    if io::stdin().is_terminal() {
                        eprintln!("{TOOL}: one prompt per line; Ctrl-D ends");
                    }
                    let mut items = Items::new(io::stdin().lock());
                    while let Some(item) = items.next_item() {
                        match item {
                            Ok(Item::Prompt { line, prompt }) => {
                                runner.prompt(Some(line), *prompt, &mut printer)?
                            }
                            Ok(Item::Switch { conversation_id }) => {
                                runner.conversation = Some(conversation_id)
                            }
                            Err(e) => {
                                cli::report(TOOL, &e);
                                runner.fail(e.exit_code());
                                if !f.keep_going {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Ok(runner.first_failure)
        },
    )
}

struct Runner<'a> {
    client: &'a coze_core::api::Client<'a>,
    plan: &'a Plan,
    active: &'a Active,
    /// The conversation the next prompt goes to, unless it names its own.
    conversation: Option<String>,
    first_failure: u8,
}

impl Runner<'_> {
    fn fail(&mut self, code: u8) {
        if self.first_failure == 0 {
            self.first_failure = code;
        }
    }

    /// Asks one prompt and prints its answer. Only a closed stdout is an `Err`.
    fn prompt<W: io::Write>(
        &mut self,
        line: Option<u64>,
        p: Prompt,
        printer: &mut Printer<W>,
    ) -> Result<()> {
        let mut vars = self.plan.vars.clone();
        vars.extend(p.custom_variables.clone().unwrap_or_default());
        let mut meta = self.plan.meta.clone();
        meta.extend(p.meta_data.clone().unwrap_or_default());
        let spec = ChatSpec {
            bot_id: p.bot_id.clone().unwrap_or_else(|| self.plan.bot.clone()),
            user_id: p.user_id.clone().unwrap_or_else(|| self.plan.user.clone()),
            content: p.content.clone(),
            conversation_id: p
                .conversation_id
                .clone()
                .or_else(|| self.conversation.clone()),
            custom_variables: vars,
            meta_data: meta,
            auto_save: self.plan.auto_save,
        };
        printer.begin(p.id.clone());
        let (state, result) = if self.plan.stream {
            chat::stream(self.client, &spec, printer, self.active)
        } else {
            chat::poll(self.client, &spec, printer, self.active)
        };
        let error = match result {
            Err(e) if e.is_closed_pipe() => return Err(e),
            Err(e) => Some(e),
            Ok(()) => None,
        };
        if state.malformed > 0 {
            eprintln!(
                "{TOOL}: warning: {} malformed event(s) in the stream were skipped",
                state.malformed
            );
        }
        printer
            .end(&p.content, &state, error.as_ref())
            .map_err(|e| Error::io("stdout", e))?;
        match error {
            None => {
                // Keep talking in the conversation the first chat made.
                if !self.plan.new_each && self.conversation.is_none() && p.conversation_id.is_none()
                {
                    self.conversation = state.conversation_id.clone();
                }
            }
            Some(e) => {
                let e = match line {
                    Some(n) => e.context(format!("prompt on line {n}")),
                    None => e,
                };
                cli::report(TOOL, &e);
                self.fail(e.exit_code());
            }
        }
        Ok(())
    }
}
