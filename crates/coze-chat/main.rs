//! coze-chat: prompts in, the bot's (or a chatflow's) answers out. A translator:
//! flags → session → coze-core's batch engine running coze-chat's task (`ask::Chats`:
//! coze-core's chat machine, a printer per output mode) → exit code.

mod ask;
mod attach;
mod flags;
mod input;
mod output;
mod terminal;
mod tools;

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Instant;

use coze_core::api::files;
use coze_core::batch::{self, resume, Batch};
use coze_core::cli;
use coze_core::cli::batch::{Report, Summary};
use coze_core::cli::flags::API_FLAGS_HELP;
use coze_core::cli::progress;
use coze_core::cli::session::Session;
use coze_core::config::{self, Env};
use coze_core::error::EXIT_CODES_HELP;
use coze_core::{Error, Result};

use ask::{Chatflow, Chats, Plan};
use flags::{Flags, Mode, Source};

pub const TOOL: &str = "coze-chat";

fn main() -> ExitCode {
    cli::main(
        TOOL,
        option_env!("COZE_GIT_COMMIT"),
        &[
            flags::HELP,
            API_FLAGS_HELP,
            flags::HELP_TAIL,
            EXIT_CODES_HELP,
        ],
        || flags::parse(std::env::args_os().skip(1)),
        |f| run(f, &Env::from_process()),
    )
}

/// Runs every prompt through the batch engine (one at a time, or `--jobs` at once);
/// returns the exit status of the first failure (0 when none). Failures of single
/// prompts are reported as they happen; `Err` is for what ends the whole run (usage, a
/// closed stdout).
fn run(f: Flags, env: &Env) -> Result<u8> {
    let started = Instant::now();
    // Stdin lines may each name their bot (a prompt record's bot_id): a line that
    // does not, with no bot here, is refused when it is read. A chatflow in an app
    // runs in no bot: COZE_BOT_ID is not sent with --app (the API refuses both).
    let bot = match (&f.workflow, &f.app) {
        (Some(_), Some(_)) => None,
        _ => config::bot_id(f.bot.as_deref(), env).map(|s| s.value),
    };
    let chatflow = f.workflow.clone().map(|workflow_id| Chatflow {
        workflow_id,
        app_id: f.app.clone(),
        parameters: f.params.clone(),
    });
    if bot.is_none() && f.app.is_none() && f.source != Source::Lines {
        return Err(Error::usage(match chatflow {
            None => "no bot: pass --bot ID or set COZE_BOT_ID",
            Some(_) => "a chatflow runs in an app or in a bot: pass --app ID or --bot ID",
        }));
    }
    // --attach's files are checked before anything is asked.
    for a in &f.attach {
        if let Some(path) = &a.path {
            files::inspect(path, files::Limit::API).map_err(|message| Error::BadFile {
                path: path.to_string_lossy().into_owned(),
                message,
            })?;
        }
    }
    let rules = input::Rules {
        max_line: f.max_line,
        has_bot: bot.is_some() || f.app.is_some(),
        chatflow: chatflow.is_some(),
        app: f.app.is_some(),
        meta: f.meta.clone(),
        attach: f.attach.clone(),
        checked: Default::default(),
    };
    // The tools' programs are checked before anything is asked. Their environment is
    // this process's minus the token variables, named here (below main nothing reads
    // the environment).
    let mut tools = tools::Tools::new(
        &f.tools,
        f.tools_dir.clone(),
        std::env::var_os("PATH"),
        std::env::vars_os().map(|(k, _)| k),
    )?;
    tools.timeout = f.tool_timeout;
    tools.max_rounds = f.max_tool_rounds;
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
        chatflow,
        tools,
    };
    // Stdout, or with --append the --resume file (locked for the run).
    let done = resume::Done {
        kind: "answer",
        status: "completed",
    };
    let output = resume::open(f.resume.as_deref(), f.append, f.max_line, done)?;
    // A chatflow's question is asked of a person where one can answer, one prompt at
    // a time.
    let interactive = f.jobs == 1 && cli::ask::possible();
    let chats = Chats::new(&client, &plan, mode, f.conversation.clone(), interactive);
    if terminal::wanted(&f) {
        // A person at the terminal: a chat session instead of a filter of lines.
        return terminal::run(terminal::Setup {
            chats,
            client: &client,
            bot: plan.bot.as_deref(),
            workflow: f.workflow.as_deref(),
            app: f.app.as_deref(),
            attach: &f.attach,
            new_each: f.new_each,
            env,
            max_line: f.max_line,
        });
    }
    let options = batch::Options {
        jobs: f.jobs,
        ordered: f.ordered,
        // -o answers: a bad line is a record of the answers file, and the batch goes on.
        keep_going: f.keep_going || mode == Mode::Answers,
        done: output.done,
    };
    let batchy = f.jobs > 1 || f.api.rate.is_some() || f.resume.is_some();
    let on_terminal = output.to_stdout && io::stdout().is_terminal();
    let report = Report {
        started,
        // Answers to stdout: when its reader goes away, the chats in flight are
        // cancelled.
        watch_stdout: output.to_stdout,
        summary: Summary::choose(f.summary, batchy),
        progress: progress::choose(f.progress, f.source == Source::Lines, on_terminal, env),
    };
    let writer = output.writer;
    cli::batch::run(
        TOOL,
        &session,
        Batch::new(&chats, options),
        report,
        |batch| match &f.source {
            Source::Argument(text) => {
                let mut prompt = input::plain(text);
                prompt.attachments = f.attach.clone();
                batch.run([Ok(chats.job(None, Box::new(prompt)))], writer)
            }
            Source::WholeStdin => {
                let mut prompt = input::whole_stdin(f.max_line)?;
                prompt.attachments = f.attach.clone();
                batch.run([Ok(chats.job(None, Box::new(prompt)))], writer)
            }
            Source::Lines => {
                if io::stdin().is_terminal() {
                    coze_core::say!("{TOOL}: one prompt per line; Ctrl-D ends");
                }
                let stdin = io::stdin().lock();
                batch.run(input::Jobs::new(stdin, rules, &chats.conversation), writer)
            }
        },
    )
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
