//! coze-workflow's task for the batch engine (`Runs`): each item a run to start or an
//! interrupt to answer, driven through coze-core's workflow engine and printed in the
//! run's mode. A run that stops at a question is asked of the person at the terminal
//! (at most 3 answers, as the API takes), or left waiting with its `interrupt` record
//! (exit 7).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use coze_core::api::files::{self, Limit};
use coze_core::api::{Client, FileSource};
use coze_core::batch::{Bad, Outcome, Task};
use coze_core::cli::{self, ask};
use coze_core::protocol::{params, Interrupt, MAX_RESUMES};
use coze_core::workflow::{self, advice, Answer, Call, During, End, RunSpec, RunState};
use coze_core::{Error, Result};

use crate::flags::{How, Mode};
use crate::input::{Job, Work};
use crate::output::Printer;
use crate::TOOL;

/// What every run of the tool shares.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub mode: Mode,
    pub how: How,
    /// A person at the terminal answers questions (stdin a terminal, one job).
    pub ask: bool,
}

/// coze-workflow's batch task.
pub struct Runs<'a> {
    client: &'a Client<'a>,
    plan: Plan,
    /// The run is being stopped: start nothing more, and end the streams in flight.
    cancelled: Arc<AtomicBool>,
}

/// How one run ended, before it is counted.
struct Ended {
    status: &'static str,
    failure: Option<Error>,
}

impl<'a> Runs<'a> {
    pub fn new(client: &'a Client<'a>, plan: Plan) -> Self {
        Runs {
            client,
            plan,
            cancelled: Arc::default(),
        }
    }

    /// Uploads `--file-param`'s files and adds them to the run's parameters.
    fn upload(&self, spec: &mut RunSpec, uploads: &[(String, PathBuf)]) -> Result<()> {
        for (key, path) in uploads {
            let shown = path.display().to_string();
            let local = files::inspect(path, Limit::API).map_err(|message| Error::BadFile {
                path: shown.clone(),
                message,
            })?;
            let open = || -> Result<Box<dyn Read + Send>> {
                Ok(Box::new(File::open(path).map_err(|e| Error::io(path, e))?))
            };
            let name = path
                .file_name()
                .map(|n| n.as_encoded_bytes().to_vec())
                .unwrap_or_else(|| b"file".to_vec());
            let source = FileSource {
                name,
                length: local.length,
                head: local.head,
                open: &open,
                shown: shown.clone(),
            };
            let info = self
                .client
                .upload_file(&source)
                .map_err(|e| e.context(format!("uploading {shown} for --file-param {key}")))?;
            spec.parameters.insert(
                key.clone(),
                params::file_value(&info.id, info.url.as_deref()),
            );
        }
        Ok(())
    }

    /// Runs `spec` (or, with `first`, answers its interrupt) to its end, answering its
    /// questions at the terminal when a person is there.
    fn drive<W: Write>(
        &self,
        printer: &mut Printer<W>,
        spec: &RunSpec,
        first: Option<Answer>,
        mut resumes: u32,
        sync: bool,
        state: &mut RunState,
    ) -> Result<Ended> {
        let mut next = first;
        loop {
            let (call, during) = match &next {
                Some(a) => (Call::Resume(a), During::Answer),
                None => (Call::Run(spec), During::Run),
            };
            let fed = if sync {
                workflow::sync(self.client, call, state, printer)
            } else {
                workflow::stream(self.client, call, state, printer)
            };
            if let Err(e) = fed {
                if e.is_closed_pipe() {
                    return Err(e);
                }
                return Ok(Ended {
                    status: "failed",
                    failure: Some(advice(e, during)),
                });
            }
            let asked = match &state.end {
                Some(End::Done) => {
                    return Ok(Ended {
                        status: "success",
                        failure: None,
                    })
                }
                Some(End::Failed { .. }) => {
                    return Ok(Ended {
                        status: "failed",
                        failure: state.error().map(|e| advice(e, during)),
                    })
                }
                Some(End::Interrupted(i)) => i.clone(),
                None => {
                    return Ok(Ended {
                        status: "failed",
                        failure: Some(Error::Protocol(
                            "the run's answer said nothing of its end".into(),
                        )),
                    })
                }
            };
            if resumes >= MAX_RESUMES {
                let e = Error::Protocol(format!(
                    "the workflow asked again after {MAX_RESUMES} answers, and the API takes \
                     no more"
                ));
                return Ok(Ended {
                    status: "failed",
                    failure: Some(match &state.debug_url {
                        Some(u) => e.with_hint(format!("debug_url: {u}")),
                        None => e,
                    }),
                });
            }
            if self.plan.ask {
                printer.close_line().map_err(|e| Error::io("stdout", e))?;
                let left = format!("{} of {MAX_RESUMES} answers left", MAX_RESUMES - resumes);
                if let Some(answer) = ask::ask("the workflow", &asked.question, Some(&left)) {
                    resumes += 1;
                    next = Some(Answer {
                        workflow_id: spec.workflow_id.clone(),
                        event_id: asked.event_id.clone(),
                        interrupt_type: asked.interrupt_type,
                        resume_data: answer,
                    });
                    *state = state.resumed();
                    continue;
                }
            }
            let record = Interrupt {
                conversation_id: None,
                workflow_id: spec.workflow_id.clone(),
                event_id: asked.event_id.clone(),
                interrupt_type: asked.interrupt_type,
                question: asked.question.text.clone(),
                options: asked.question.options.clone(),
                id: Some(printer.id().clone()),
                execute_id: state.execute_id.clone(),
                resumes,
                sync,
                extra: Default::default(),
            };
            let waiting = printer
                .interrupt(&record)
                .map_err(|e| Error::io("stdout", e))?;
            return Ok(Ended {
                status: "interrupted",
                failure: Some(waiting),
            });
        }
    }

    /// Starts `spec` as an async run and prints its `run_started` record.
    fn start<W: Write>(&self, printer: &mut Printer<W>, spec: &RunSpec) -> Result<Ended> {
        match workflow::start(self.client, spec) {
            Ok(started) => {
                printer
                    .started(&spec.workflow_id, &started)
                    .map_err(|e| Error::io("stdout", e))?;
                Ok(Ended {
                    status: "started",
                    failure: None,
                })
            }
            Err(e) => Ok(Ended {
                status: "failed",
                failure: Some(advice(e, During::Run)),
            }),
        }
    }
}

impl Task for Runs<'_> {
    type Item = Job;
    const ITEMS: &'static str = "runs";

    fn run<W: Write>(&self, job: &Job, out: &mut W) -> Result<Outcome> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(Error::io(
                "stdout",
                io::Error::new(io::ErrorKind::BrokenPipe, "the run was stopped"),
            ));
        }
        let mut printer = Printer::new(self.plan.mode, out, job.id.clone(), job.own_id.clone())
            .stopped_by(self.cancelled.clone());
        let mut state = RunState::default();
        let (workflow_id, ended) = match &job.work {
            Work::Start { spec, uploads } => {
                let mut spec = spec.clone();
                let ended = match self.upload(&mut spec, uploads) {
                    Err(e) => Ended {
                        status: "failed",
                        failure: Some(e),
                    },
                    Ok(()) if self.plan.how == How::Async => self.start(&mut printer, &spec)?,
                    Ok(()) => self.drive(
                        &mut printer,
                        &spec,
                        None,
                        0,
                        self.plan.how == How::Sync,
                        &mut state,
                    )?,
                };
                (spec.workflow_id, ended)
            }
            Work::Answer { interrupt, answer } => {
                let spec = RunSpec {
                    workflow_id: interrupt.workflow_id.clone(),
                    ..RunSpec::default()
                };
                let first = Answer {
                    workflow_id: interrupt.workflow_id.clone(),
                    event_id: interrupt.event_id.clone(),
                    interrupt_type: interrupt.interrupt_type,
                    resume_data: answer.clone(),
                };
                state.execute_id = interrupt.execute_id.clone();
                let ended = self.drive(
                    &mut printer,
                    &spec,
                    Some(first),
                    interrupt.resumes + 1,
                    interrupt.sync || self.plan.how == How::Sync,
                    &mut state,
                )?;
                (spec.workflow_id, ended)
            }
        };
        if state.malformed > 0 {
            coze_core::say!(
                "{TOOL}: warning: {} malformed event(s) in the stream: not read, but kept as they came in -o events",
                state.malformed
            );
        }
        printer
            .end(&workflow_id, &state, ended.status, ended.failure.as_ref())
            .map_err(|e| Error::io("stdout", e))?;
        let tokens = state
            .usage
            .as_ref()
            .and_then(|u| u.get("token_count"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let what = match &job.work {
            Work::Start { .. } => "run",
            Work::Answer { .. } => "answer",
        };
        Ok(Outcome {
            error: ended.failure.map(|e| match job.line {
                Some(n) => e.context(format!("{what} on line {n}")),
                None => e,
            }),
            status: ended.status.to_owned(),
            tokens,
        })
    }

    fn invalid<W: Write>(&self, bad: &Bad, out: &mut W) -> io::Result<()> {
        let id = bad.id.clone().unwrap_or(Value::Null);
        Printer::new(self.plan.mode, out, id, None).invalid(&bad.error)
    }

    fn report(&self, error: &Error) {
        cli::report(TOOL, error);
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}
