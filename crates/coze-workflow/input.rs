//! What coze-workflow reads, made the batch engine's items (`Job`s): the command line's
//! one run; one run per stdin line (a JSON object of parameters, or a `run` record,
//! with `file` records filling --file-param-from-stdin's keys); and for `resume`, the
//! `interrupt` records to answer (or the one --event-id names).
//!
//! Each line is checked here, before anything is sent: its length, that it is a JSON
//! object, its record's fields, that some workflow runs it. A run without an id of its
//! own gets one derived from its parameters, so `--resume` knows it again; the same
//! parameters again get `#2`, `#3`….

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;

use serde_json::{Map, Value};

use coze_core::batch::{self, Bad};
use coze_core::protocol::{self, params, Interrupt, Record, MAX_RESUMES};
use coze_core::wire::jsonl::{self, LineReader};
use coze_core::workflow::RunSpec;
use coze_core::Error;

/// What one item does.
#[derive(Debug)]
pub enum Work {
    /// Start a run.
    Start {
        spec: RunSpec,
        /// `--file-param KEY=PATH`: uploaded when the run starts, then passed as KEY.
        uploads: Vec<(String, PathBuf)>,
    },
    /// Answer a run's interrupt with `answer`.
    Answer {
        interrupt: Box<Interrupt>,
        answer: String,
    },
}

/// One item: a run to start or an interrupt to answer.
#[derive(Debug)]
pub struct Job {
    /// The stdin line it came from (none for the command line's).
    pub line: Option<u64>,
    /// Its id: its record's own, else one derived from its parameters.
    pub id: Value,
    /// Its record's own id, echoed on every events line.
    pub own_id: Option<Value>,
    pub work: Work,
}

impl batch::Item for Job {
    /// What `--resume` knows it by.
    fn id(&self) -> Value {
        self.id.clone()
    }

    /// Runs never wait for one another.
    fn key(&self) -> Option<&str> {
        None
    }
}

/// What the runs of stdin share: the command line's defaults.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// `--max-line-bytes`.
    pub max_line: usize,
    /// `--workflow`: runs whose record names none.
    pub workflow: Option<String>,
    pub bot: Option<String>,
    pub app: Option<String>,
    pub version: Option<String>,
    /// `--file-param-from-stdin` keys, in order.
    pub stdin_files: Vec<String>,
}

impl Rules {
    /// The run of `parameters`, its record's own fields beating the flags.
    fn spec(
        &self,
        parameters: Map<String, Value>,
        own: &Map<String, Value>,
    ) -> Result<RunSpec, String> {
        let text = |k: &str| -> Result<Option<String>, String> {
            match own.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                // A 64-bit id written as a number keeps its digits.
                Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
                Some(_) => Err(format!("run record: `{k}` must be a non-empty string")),
            }
        };
        let (bot, app) = (text("bot_id")?, text("app_id")?);
        // A record's own bot or app replaces the flags' (the API takes one of them).
        let (bot, app) = match (bot, app) {
            (None, None) => (self.bot.clone(), self.app.clone()),
            own => own,
        };
        if bot.is_some() && app.is_some() {
            return Err(
                "run record: bot_id and app_id cannot go together (the API refuses both)".into(),
            );
        }
        let Some(workflow_id) = text("workflow_id")?.or_else(|| self.workflow.clone()) else {
            return Err(
                "no workflow for this run: pass --workflow ID, or give the run record \
                        a workflow_id"
                    .into(),
            );
        };
        Ok(RunSpec {
            workflow_id,
            parameters,
            bot_id: bot,
            app_id: app,
            version: text("workflow_version")?.or_else(|| self.version.clone()),
        })
    }
}

/// The id of a run without one of its own: derived from its workflow and parameters.
pub fn derived_id(spec: &RunSpec, occurrence: u32) -> Value {
    let text = format!(
        "{}\n{}",
        spec.workflow_id,
        Value::Object(spec.parameters.clone())
    );
    let id = protocol::derived_prompt_id(&text);
    Value::String(match occurrence {
        0 | 1 => id,
        n => format!("{id}#{n}"),
    })
}

/// The runs of stdin lines, read lazily (a run starts before the next line is read).
pub struct RunLines<R: BufRead> {
    lines: LineReader<R>,
    rules: Rules,
    /// How often each derived id has been given out.
    seen: HashMap<String, u32>,
    /// `file` records read since the last run: (line, the parameter's value).
    pending: Vec<(u64, Value)>,
    /// Items decided, waiting to be handed out (a file-only run and the line after it).
    ready: VecDeque<Result<Job, Bad>>,
    ended: bool,
}

impl<R: BufRead> RunLines<R> {
    pub fn new(reader: R, rules: Rules) -> Self {
        RunLines {
            lines: LineReader::with_max(reader, rules.max_line),
            rules,
            seen: HashMap::new(),
            pending: Vec::new(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The job of `spec` from `line`: its own id, or a derived one.
    fn job(&mut self, line: u64, spec: RunSpec, own_id: Option<Value>) -> Job {
        let id = match &own_id {
            Some(id) => id.clone(),
            None => {
                let first = derived_id(&spec, 1);
                let n = self.seen.entry(first.to_string()).or_default();
                *n += 1;
                derived_id(&spec, *n)
            }
        };
        Job {
            line: Some(line),
            id,
            own_id,
            work: Work::Start {
                spec,
                uploads: Vec::new(),
            },
        }
    }

    /// The pending file records as parameters, when they fill every key.
    fn take_files(&mut self, line: u64) -> Result<Map<String, Value>, Error> {
        let keys = &self.rules.stdin_files;
        if self.pending.is_empty() {
            return Ok(Map::new());
        }
        if self.pending.len() < keys.len() {
            let (first, count) = (self.pending[0].0, self.pending.len());
            self.pending.clear();
            return Err(Error::input(
                line,
                format!(
                    "the file records from line {first} fill {count} of the {} \
                     --file-param-from-stdin keys ({}) of this run",
                    keys.len(),
                    keys.join(", ")
                ),
            ));
        }
        Ok(keys
            .iter()
            .cloned()
            .zip(self.pending.drain(..).map(|(_, v)| v))
            .collect())
    }

    /// A run of the pending file records alone (no run line came after them).
    fn file_only_run(&mut self) -> Option<Result<Job, Bad>> {
        let line = self.pending.first()?.0;
        let files = match self.take_files(line) {
            Ok(files) => files,
            Err(error) => return Some(Err(bad(error, None))),
        };
        Some(match self.rules.spec(files, &Map::new()) {
            Ok(spec) => Ok(self.job(line, spec, None)),
            Err(m) => Err(bad(Error::input(line, m), None)),
        })
    }

    /// The next item of the input; None at its end.
    fn next_item(&mut self) -> Option<Result<Job, Bad>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.ended {
                return None;
            }
            let (line, text) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.ended = true;
                    if let Some(run) = self.file_only_run() {
                        self.ready.push_back(run);
                    }
                    continue;
                }
                Err(e) => return Some(Err(unreadable(e, &mut self.ended))),
            };
            if text.trim().is_empty() {
                continue;
            }
            let hint = "a run is a JSON object of parameters, or a run record";
            let (object, text) = match object_of(line, text, hint) {
                Ok(pair) => pair,
                Err(bad) => return Some(Err(*bad)),
            };
            match object.get("type").and_then(Value::as_str) {
                Some("file") => {
                    let value = match file_value(line, &object, &self.rules) {
                        Ok(v) => v,
                        Err(error) => return Some(Err(bad(error, Some(text)))),
                    };
                    if self.pending.len() == self.rules.stdin_files.len() {
                        // Every key is filled already: those records were a run.
                        if let Some(run) = self.file_only_run() {
                            self.ready.push_back(run);
                        }
                    }
                    self.pending.push((line, value));
                    continue;
                }
                Some("interrupt") => {
                    let error = Error::input(
                        line,
                        "an interrupt record is not a run (coze-workflow resume --answer \
                         TEXT answers it)",
                    );
                    return Some(Err(bad(error, Some(text))));
                }
                Some(kind) if OWN_RECORDS.contains(&kind) => {
                    let error = Error::input(line, format!("a {kind} record is not a run"));
                    return Some(Err(bad(error, Some(text))));
                }
                _ => {}
            }
            let own_id = object.get("id").filter(|v| !v.is_null()).cloned();
            return Some(match self.run_of(line, object) {
                Ok(spec) => Ok(self.job(line, spec, own_id)),
                Err(error) => Err(Bad {
                    id: own_id.or_else(|| Some(protocol::derived_prompt_id(&text).into())),
                    error,
                    text: Some(text),
                    fatal: false,
                }),
            });
        }
    }

    /// The run of one line: a plain object is the parameters; a `run` record carries
    /// them in `parameters` with its own overrides.
    fn run_of(&mut self, line: u64, mut object: Map<String, Value>) -> Result<RunSpec, Error> {
        let (mut parameters, own) = if object.get("type").and_then(Value::as_str) == Some("run") {
            let parameters = match object.remove("parameters") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p,
                Some(Value::String(s)) => params::object(&s)
                    .map_err(|m| Error::input(line, format!("run record: `parameters`: {m}")))?,
                Some(_) => {
                    return Err(Error::input(
                        line,
                        "run record: `parameters` must be a JSON object",
                    ))
                }
            };
            (parameters, object)
        } else {
            object.remove("id");
            (object, Map::new())
        };
        let files = self.take_files(line)?;
        parameters.extend(files);
        self.rules
            .spec(parameters, &own)
            .map_err(|m| Error::input(line, m))
    }
}

impl<R: BufRead> Iterator for RunLines<R> {
    type Item = Result<Job, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item()
    }
}

/// A `file` record's value for a workflow parameter (`params::file_value`).
fn file_value(line: u64, object: &Map<String, Value>, rules: &Rules) -> Result<Value, Error> {
    if rules.stdin_files.is_empty() {
        return Err(Error::input(
            line,
            "a file record, but no --file-param-from-stdin KEY names the parameter it fills",
        ));
    }
    let text = |k: &str| {
        object
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(file_id) = text("file_id") else {
        return Err(Error::input(
            line,
            "file record: no `file_id` (coze-file upload prints one)",
        ));
    };
    Ok(params::file_value(file_id, text("url")))
}

/// The records coze-workflow writes besides `interrupt`: none is a run, and `resume`
/// passes them over, so `run -o results`' output can be piped in as it is.
const OWN_RECORDS: [&str; 4] = ["result", "run_started", "summary", "error"];

/// Line `line` as a JSON object, with its text back; else the bad line, `hint` saying
/// what a line should be (boxed: a `Bad` is large, and rare).
fn object_of(
    line: u64,
    text: String,
    hint: &str,
) -> Result<(Map<String, Value>, String), Box<Bad>> {
    match jsonl::parse_object(line, &text) {
        Ok(object) => Ok((object, text)),
        Err(e) => {
            let error = Error::input(line, format!("{} ({hint})", e.message));
            Err(Box::new(bad(error, Some(text))))
        }
    }
}

/// A bad line as the batch engine takes it: the line counts as an item of its own,
/// its id derived from its text (a results file lists it like any run).
fn bad(error: Error, text: Option<String>) -> Bad {
    Bad {
        error,
        id: text
            .as_deref()
            .map(|t| Value::String(protocol::derived_prompt_id(t))),
        text,
        fatal: false,
    }
}

/// The interrupts of stdin lines to answer with `answer`: `interrupt` records; the
/// other records coze-workflow writes (`result`, `run_started`, `summary`, `error`) are
/// passed over, so `run -o results`' output can be piped in as it is.
pub struct Interrupts<R: BufRead> {
    lines: LineReader<R>,
    answer: String,
    /// --no-stream: the records' runs were sync ones, whatever they say.
    sync: bool,
    /// An interrupt was read.
    any: bool,
    ended: bool,
}

impl<R: BufRead> Interrupts<R> {
    pub fn new(reader: R, max_line: usize, answer: String, sync: bool) -> Self {
        Interrupts {
            lines: LineReader::with_max(reader, max_line),
            answer,
            sync,
            any: false,
            ended: false,
        }
    }
}

impl<R: BufRead> Iterator for Interrupts<R> {
    type Item = Result<Job, Bad>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.ended {
                return None;
            }
            let (line, text) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => {
                    self.ended = true;
                    if self.any {
                        return None;
                    }
                    let error = Error::BadInput {
                        line: None,
                        message: "no interrupt to answer: stdin held no interrupt record \
                                  (coze-workflow run writes one when a run stops at a \
                                  question; or pass --workflow and --event-id)"
                            .into(),
                    };
                    return Some(Err(bad(error, None)));
                }
                Err(e) => return Some(Err(unreadable(e, &mut self.ended))),
            };
            if text.trim().is_empty() {
                continue;
            }
            let (object, text) = match object_of(line, text, "expected an interrupt record") {
                Ok(pair) => pair,
                Err(bad) => return Some(Err(*bad)),
            };
            if let Some(kind) = object.get("type").and_then(Value::as_str) {
                if OWN_RECORDS.contains(&kind) {
                    continue;
                }
            }
            let own_id = object.get("id").filter(|v| !v.is_null()).cloned();
            let interrupt = match Record::from_object(line, object) {
                Ok(Record::Interrupt(i)) => i,
                Ok(other) => {
                    let error = Error::input(
                        line,
                        format!(
                            "a {} record is not an interrupt to answer",
                            other.type_name()
                        ),
                    );
                    return Some(Err(Bad {
                        error,
                        text: Some(text),
                        id: own_id,
                        fatal: false,
                    }));
                }
                Err(error) => {
                    return Some(Err(Bad {
                        error,
                        text: Some(text),
                        id: own_id,
                        fatal: false,
                    }))
                }
            };
            self.any = true;
            return Some(
                answer_job(Some(line), interrupt, &self.answer, self.sync).map_err(|error| Bad {
                    error,
                    text: Some(text),
                    id: own_id,
                    fatal: false,
                }),
            );
        }
    }
}

/// The job answering `interrupt` with `answer`; refused when the record cannot be
/// answered (no event id, or the run took its 3 answers already).
pub fn answer_job(
    line: Option<u64>,
    mut interrupt: Interrupt,
    answer: &str,
    sync: bool,
) -> Result<Job, Error> {
    let refuse = |m: String| match line {
        Some(n) => Error::input(n, m),
        None => Error::usage(m),
    };
    if let Some(conversation) = &interrupt.conversation_id {
        return Err(refuse(format!(
            "interrupt record: a chatflow's question, answered in its conversation: \
             coze-chat --workflow {} --conversation {conversation} ANSWER",
            interrupt.workflow_id
        )));
    }
    if interrupt.event_id.trim().is_empty() {
        return Err(refuse("interrupt record: no `event_id` to answer".into()));
    }
    if interrupt.workflow_id.trim().is_empty() {
        return Err(refuse("interrupt record: no `workflow_id`".into()));
    }
    if interrupt.resumes >= MAX_RESUMES {
        return Err(refuse(format!(
            "interrupt record: the run has taken {} answers already, and the API takes \
             no more (at most {MAX_RESUMES})",
            interrupt.resumes
        )));
    }
    interrupt.sync |= sync;
    let id = interrupt
        .id
        .clone()
        .unwrap_or_else(|| Value::String(interrupt.event_id.clone()));
    Ok(Job {
        line,
        own_id: interrupt.id.clone(),
        id,
        work: Work::Answer {
            interrupt: Box::new(interrupt),
            answer: answer.to_owned(),
        },
    })
}

/// A line that could not be read, as the bad item it is. A line that is not UTF-8 is
/// one bad line and reading goes on after it; `ended` is set when the reader cannot go
/// on (a line too long, stdin unreadable).
fn unreadable(e: jsonl::LineError, ended: &mut bool) -> Bad {
    let bad = Bad::unreadable(e);
    *ended = bad.fatal;
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(files: &[&str]) -> Rules {
        Rules {
            max_line: 1 << 20,
            workflow: Some("73".into()),
            stdin_files: files.iter().map(|s| s.to_string()).collect(),
            ..Rules::default()
        }
    }

    fn runs(input: &str, rules: Rules) -> Vec<Result<Job, Bad>> {
        RunLines::new(input.as_bytes(), rules).collect()
    }

    fn params(job: &Result<Job, Bad>) -> Value {
        match job {
            Ok(Job {
                work: Work::Start { spec, .. },
                ..
            }) => Value::Object(spec.parameters.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn objects_and_run_records() {
        let input = "{\"city\":\"北京\",\"n\":3}\n\n\
                     {\"type\":\"run\",\"id\":\"r1\",\"parameters\":{\"a\":1},\"workflow_id\":\"99\",\"bot_id\":7404830425073352713}\n\
                     [1]\n\
                     {\"type\":\"run\",\"parameters\":\"{\\\"s\\\":1}\"}\n\
                     {\"type\":\"interrupt\",\"workflow_id\":\"1\"}\n";
        let items = runs(input, rules(&[]));
        assert_eq!(items.len(), 5);
        assert_eq!(params(&items[0]), json!({"city": "北京", "n": 3}));
        let Ok(first) = &items[0] else { panic!() };
        assert!(first.id.as_str().unwrap().starts_with("sha256:"));
        assert_eq!((first.line, first.own_id.clone()), (Some(1), None));
        let Ok(Job {
            id,
            work: Work::Start { spec, .. },
            ..
        }) = &items[1]
        else {
            panic!()
        };
        assert_eq!(id, &json!("r1"));
        assert_eq!(spec.workflow_id, "99");
        assert_eq!(spec.bot_id.as_deref(), Some("7404830425073352713"));
        let Err(e) = &items[2] else { panic!() };
        assert_eq!(
            e.error.to_string(),
            "stdin line 4: expected a JSON object, found an array (a run is a JSON object of \
             parameters, or a run record)"
        );
        assert_eq!(e.error.exit_code(), 3);
        assert_eq!(params(&items[3]), json!({"s": 1}));
        let Err(e) = &items[4] else { panic!() };
        assert!(
            e.error.to_string().contains("coze-workflow resume"),
            "{}",
            e.error
        );
        // No workflow anywhere: the line says so.
        let none = Rules {
            workflow: None,
            ..rules(&[])
        };
        let items = runs("{}\n", none);
        let Err(e) = &items[0] else { panic!() };
        assert!(e.error.to_string().contains("--workflow ID"), "{}", e.error);
    }

    #[test]
    fn the_same_parameters_again_get_ids_of_their_own() {
        let items = runs("{\"a\":1}\n{\"a\":1}\n{\"a\":2}\n", rules(&[]));
        let ids: Vec<Value> = items
            .iter()
            .map(|j| j.as_ref().unwrap().id.clone())
            .collect();
        let first = ids[0].as_str().unwrap();
        assert_eq!(ids[1], json!(format!("{first}#2")));
        assert_ne!(ids[2], ids[0]);
        // Stable across runs: the same input gives the same ids.
        let again: Vec<Value> = runs("{\"a\":1}\n", rules(&[]))
            .iter()
            .map(|j| j.as_ref().unwrap().id.clone())
            .collect();
        assert_eq!(again[0], ids[0]);
    }

    #[test]
    fn file_records_fill_the_next_run() {
        let file = |id: &str, url: Option<&str>| {
            let mut r = json!({"type": "file", "file_id": id, "file_name": "a.png", "bytes": 3});
            if let Some(u) = url {
                r["url"] = u.into();
            }
            format!("{r}\n")
        };
        let input = format!(
            "{}{{\"q\":\"describe\"}}\n{}{}{}",
            file("1", None),
            file("2", Some("http://studio/f/2.png")),
            file("3", None),
            file("4", None),
        );
        let items = runs(&input, rules(&["image"]));
        assert_eq!(items.len(), 4);
        assert_eq!(
            params(&items[0]),
            json!({"q": "describe", "image": "{\"file_id\":\"1\"}"})
        );
        // Records with no run after them are runs of their own.
        assert_eq!(params(&items[1]), json!({"image": "http://studio/f/2.png"}));
        assert_eq!(params(&items[2]), json!({"image": "{\"file_id\":\"3\"}"}));
        assert_eq!(params(&items[3]), json!({"image": "{\"file_id\":\"4\"}"}));
        assert_eq!(items[1].as_ref().unwrap().line, Some(3));
        // Two keys: the records fill them in order; one short is a bad line.
        let items = runs(
            &format!(
                "{}{}{{}}\n{}{{}}\n",
                file("a", None),
                file("b", None),
                file("c", None)
            ),
            rules(&["front", "back"]),
        );
        assert_eq!(
            params(&items[0]),
            json!({"front": "{\"file_id\":\"a\"}", "back": "{\"file_id\":\"b\"}"})
        );
        let Err(e) = &items[1] else { panic!() };
        assert!(
            e.error.to_string().starts_with("stdin line 5:"),
            "{}",
            e.error
        );
        // A file record without the flag is a bad line.
        let items = runs(&file("1", None), rules(&[]));
        let Err(e) = &items[0] else { panic!() };
        assert!(
            e.error.to_string().contains("--file-param-from-stdin"),
            "{}",
            e.error
        );
    }

    #[test]
    fn interrupts_to_answer() {
        let record = |resumes: u32| {
            json!({"type": "interrupt", "workflow_id": "73", "event_id": "7404830425073352713/1",
                "interrupt_type": 2, "question": "q?", "options": [], "id": "r1", "resumes": resumes})
        };
        let input = format!(
            "{}\n{}\n{}\n{}\n",
            json!({"type": "result", "id": "r0", "status": "success"}),
            record(0),
            record(3),
            json!({"type": "prompt", "content": "x"})
        );
        let items: Vec<_> =
            Interrupts::new(input.as_bytes(), 1 << 20, "北京".into(), false).collect();
        assert_eq!(items.len(), 3, "the result record is passed over");
        let Ok(Job {
            id,
            work: Work::Answer { interrupt, answer },
            ..
        }) = &items[0]
        else {
            panic!()
        };
        assert_eq!((id, answer.as_str()), (&json!("r1"), "北京"));
        assert_eq!(interrupt.event_id, "7404830425073352713/1");
        let Err(e) = &items[1] else { panic!() };
        assert!(e.error.to_string().contains("takes no more"), "{}", e.error);
        assert_eq!(e.error.exit_code(), 3);
        let Err(e) = &items[2] else { panic!() };
        assert!(
            e.error.to_string().contains("not an interrupt"),
            "{}",
            e.error
        );
        // A line that is not UTF-8 is one bad line: the record after it is answered.
        let input = [&b"\xff\n"[..], record(0).to_string().as_bytes(), b"\n"].concat();
        let items: Vec<_> = Interrupts::new(&input[..], 1 << 20, "a".into(), false).collect();
        assert_eq!(items.len(), 2);
        assert!(!items[0].as_ref().unwrap_err().fatal);
        assert!(items[1].is_ok());
        // Nothing to answer at all.
        let items: Vec<_> = Interrupts::new(&b"\n"[..], 1 << 20, "a".into(), false).collect();
        let Err(e) = &items[0] else { panic!() };
        assert!(
            e.error.to_string().contains("no interrupt to answer"),
            "{}",
            e.error
        );
    }
}
