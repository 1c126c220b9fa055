//! coze-workflow: Coze workflows run from the command line or from stdin lines,
//! streamed, synchronous or async, alone or in batches, their questions answered at
//! the terminal or left waiting as records. A translator: flags → session →
//! coze-core's batch engine running coze-workflow's task (`runs::Runs`: coze-core's
//! workflow engine, a printer per output mode) → exit code.
//!
//! What it is not: an editor or publisher of workflows, nor a chatflow client (a
//! chatflow is a conversation: coze-chat --workflow).

mod flags;
mod input;
mod output;
mod runs;
mod status;

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
use coze_core::config::Env;
use coze_core::error::EXIT_CODES_HELP;
use coze_core::protocol::Interrupt;
use coze_core::workflow::RunSpec;
use coze_core::{Error, Result};

use flags::{Command, Flags, How, Mode};
use input::{Job, Work};
use runs::{Plan, Runs};

pub const TOOL: &str = "coze-workflow";

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

/// Runs every run (or answer) through the batch engine; returns the exit status of the
/// first failure (0 when none). Failures of single runs are reported as they happen;
/// `Err` is for what ends the whole tool (usage, a closed stdout).
fn run(f: Flags, env: &Env) -> Result<u8> {
    let started = Instant::now();
    // --file-param's files are checked before anything is sent.
    for (_, path) in &f.file_params {
        files::inspect(path, files::Limit::API).map_err(|message| Error::BadFile {
            path: path.display().to_string(),
            message,
        })?;
    }
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    if let Command::Status(ids) = &f.command {
        let workflow = f.workflow.as_deref().unwrap_or_default();
        return status::run(&client, workflow, ids, f.wait);
    }
    if f.how == How::Sync {
        coze_core::support::say::warn(
            "--no-stream: the server drops a synchronous run's call after 90 s; a longer \
             run is lost (run it streamed, or with --async)",
        );
    }
    let mode = f.mode.unwrap_or(if io::stdout().is_terminal() {
        Mode::Text
    } else {
        Mode::Events
    });
    let plan = Plan {
        mode,
        how: f.how,
        ask: f.jobs == 1 && cli::ask::possible(),
    };
    let done = resume::Done {
        kind: "result",
        status: "success",
    };
    // Stdout, or with --append the --resume file (locked for the run).
    let output = resume::open(f.resume.as_deref(), f.append, f.max_line, done)?;
    let runs = Runs::new(&client, plan);
    let options = batch::Options {
        jobs: f.jobs,
        ordered: f.ordered,
        // -o results: a bad line is a record of the results file, and the batch goes on.
        keep_going: f.keep_going || mode == Mode::Results,
        done: output.done,
    };
    let batchy = f.jobs > 1 || f.api.rate.is_some() || f.resume.is_some();
    // Runs (or answers) from stdin lines, as the match below reads them.
    let stdin_lines = match f.command {
        Command::Resume => f.event_id.is_none(),
        _ => !f.one_run,
    };
    let on_terminal = output.to_stdout && io::stdout().is_terminal();
    let report = Report {
        started,
        watch_stdout: output.to_stdout,
        summary: Summary::choose(f.summary, batchy),
        progress: progress::choose(f.progress, stdin_lines, on_terminal, env),
    };
    let writer = output.writer;
    let sync = f.how == How::Sync;
    cli::batch::run(
        TOOL,
        &session,
        Batch::new(&runs, options),
        report,
        |batch| match (&f.command, &f.event_id) {
            (Command::Resume, Some(event_id)) => {
                let interrupt = Interrupt {
                    conversation_id: None,
                    workflow_id: f.workflow.clone().unwrap_or_default(),
                    event_id: event_id.clone(),
                    interrupt_type: f.interrupt_type,
                    question: String::new(),
                    options: Vec::new(),
                    id: None,
                    execute_id: None,
                    resumes: 0,
                    sync,
                    extra: Default::default(),
                };
                let answer = f.answer.clone().unwrap_or_default();
                let job = input::answer_job(None, interrupt, &answer, sync)?;
                batch.run([Ok(job)], writer)
            }
            (Command::Resume, None) => {
                let answer = f.answer.clone().unwrap_or_default();
                let stdin = io::stdin().lock();
                batch.run(
                    input::Interrupts::new(stdin, f.max_line, answer, sync),
                    writer,
                )
            }
            _ if f.one_run => {
                let spec = RunSpec {
                    workflow_id: f.workflow.clone().unwrap_or_default(),
                    parameters: f.params.clone(),
                    bot_id: f.bot.clone(),
                    app_id: f.app.clone(),
                    version: f.version.clone(),
                };
                let job = Job {
                    line: None,
                    id: input::derived_id(&spec, 1),
                    own_id: None,
                    work: Work::Start {
                        spec,
                        uploads: f.file_params.clone(),
                    },
                };
                batch.run([Ok(job)], writer)
            }
            _ => {
                if io::stdin().is_terminal() {
                    coze_core::say!(
                        "{TOOL}: one run per line (a JSON object of parameters); Ctrl-D ends"
                    );
                }
                let rules = input::Rules {
                    max_line: f.max_line,
                    workflow: f.workflow.clone(),
                    bot: f.bot.clone(),
                    app: f.app.clone(),
                    version: f.version.clone(),
                    stdin_files: f.stdin_files.clone(),
                };
                batch.run(input::RunLines::new(io::stdin().lock(), rules), writer)
            }
        },
    )
}
