//! coze-workflow's command line, parsed into a plain struct; nothing resolved yet (the
//! files of --file-param are checked, and credentials found, by `main`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use coze_core::cli::args::{self, Arg, Args};
use coze_core::cli::flags::{check_batch_output, ApiFlags, OutputKind, RecordNouns};
use coze_core::cli::progress::Want;
use coze_core::cli::Parsed;
use coze_core::protocol::params;
use coze_core::{Error, Result};

pub const HELP: &str = r##"coze-workflow: run Coze workflows, streamed, in batches, as JSON lines

USAGE:
    coze-workflow run --workflow ID [--param KEY=VALUE]... [OPTIONS]   one run
    coze-workflow run --workflow ID [OPTIONS] < RUNS                 one run a line
    coze-workflow status --workflow ID EXECUTE_ID... [--wait]
    coze-workflow resume --answer TEXT [OPTIONS] < INTERRUPTS
    coze-workflow resume --answer TEXT --workflow ID --event-id ID

run runs a workflow once with the parameters of the command line. Without any,
each line of stdin is one run: a JSON object of parameters, or a `run` record
{"type":"run","id":…,"parameters":{…},"workflow_id":…,"bot_id":…,"app_id":…}
(its own workflow_id then needs no --workflow); a `file` record (coze-file upload's
output) fills --file-param-from-stdin KEY of the next run. The run is streamed
(stream_run) unless --no-stream or --async says otherwise.

A workflow that stops at a question or an input node waits for an answer. On a
terminal the question is shown (its options numbered) and your answer sent (at
most 3 answers a run, as the API takes). In a pipeline an `interrupt` record is
written and the run ends with exit 7; `coze-workflow resume --answer TEXT` reads
such records on stdin and goes on in the same output modes. -o text writes no
record among the text: the message on stderr names the resume command instead.

status reads each run's history (an --async run's, or any run's by its id) and
writes its `result` record (and, for a run waiting for an answer, its `interrupt`
record: exit 7); with --wait it asks again every second while the run is Running.

PARAMETERS (run):
    --workflow ID          the workflow (published); a run record may name its own
    --param KEY=VALUE      the parameter KEY, the string VALUE (repeatable); as
                           KEY:=JSON, any JSON value: n:=3, on:=true,
                           tags:='["a","b"]' (as httpie reads :=)
    --params JSON|@FILE    a JSON object of parameters, or a file holding one; a
                           --param after it beats it for the keys both name
    --file-param KEY=PATH  upload the file at PATH and pass it as KEY (repeatable):
                           as the JSON string {"file_id":"…"}, or on a self-hosted
                           Coze Studio as the uploaded file's URL
    --file-param-from-stdin KEY
                           each `file` record on stdin fills KEY of the run on the
                           next line (repeatable: the records before a run fill
                           the KEYs in order; a file record with no run after it
                           is a run of its own)
    --bot ID               run in this bot (for nodes that use its database or
                           variables)
    --app ID               the app (project) the workflow belongs to; not with
                           --bot (the API refuses both)
    --workflow-version V   a library workflow's version [default: the latest]

HOW (run, resume):
    --no-stream            a synchronous run: one answer at its end; the server
                           drops the call after 90 s (a warning says so). resume:
                           the runs were started so (their answers go to
                           /v1/workflows/resume; a record says so itself)
    --async                start the run and print a `run_started` record at once;
                           `coze-workflow status` follows it (coze.cn and coze.com
                           offer it on paid plans only)

RESUME:
    --answer TEXT          the answer to send to every interrupt read
    --event-id ID          answer this interrupt (with --workflow) instead of the
                           records of stdin
    --interrupt-type N     its type [default: 2, a question node; 5 an input node]

STATUS:
    --wait                 ask again every second while a run is Running

OUTPUT:
    -o, --output MODE      events:  every workflow event as a JSON line, lossless
                                    ({"event":…,"data":…,"seq":…}; seq is the
                                    event's id: line, from 0 again after an
                                    answer; "id" the run's own, when its record
                                    has one); PING heartbeats are left out; a
                                    --no-stream run's answer comes as the events
                                    it stands for (a Message holding the output,
                                    then Done; or an Interrupt), without seq
                           text:    the contents of the Message events as they
                                    stream
                           results: one `result` record a run, its output
                                    decoded (JSON text becomes the value it holds,
                                    JSON inside JSON too; plain text stays text)
                           [default: text on a terminal, events otherwise]
    --keep-going           after a bad stdin line, go on with the next lines (the
                           exit status still reports it); -o results always goes
                           on, and writes the line as a result with status
                           "invalid"
    --max-line-bytes N     the longest stdin line taken [default: 8M] (K, M and G
                           suffixes: KiB, MiB, GiB)

BATCH (see README "Batch"):
    --jobs N               N runs in flight at once [default: 1]
    --rate R               at most R requests per second across all jobs; on 429
                           the whole pool pauses for its Retry-After
    --resume FILE          skip every run whose id has a `result` with status
                           "success" in FILE (an earlier -o results output); a line
                           without an id gets one derived from its parameters:
                           "sha256:" + the first 16 hex digits of the SHA-256 of
                           their JSON, "#2", "#3"… for the same again
    --append               with --resume: append the new records to FILE instead
                           of writing them to stdout; FILE is locked meanwhile
    --ordered              print in input order (default: as they complete)
    --summary              print the final `summary` record on stdout (by default
                           it goes to stderr when --jobs, --rate or --resume is
                           used): runs, completed, failed, skipped, by_status,
                           tokens, wall_ms, retries, rate_pauses, exit_code
    --progress             show the progress line (see PROGRESS) whenever stderr
                           is a terminal: also when stdin is one, or the records
                           go to it; never when stderr is not a terminal
    --no-progress          never show it
    -h, --help             this text
    -V, --version          version and commit

"##;

pub const HELP_TAIL: &str = r##"

RECORDS:
    result:      {"type":"result","id":…,"workflow_id":…,"execute_id":…,
                  "status":"success"|"failed"|"interrupted"|"invalid"|"running"…,
                  "output":…,"usage":{…}|null,"debug_url":…,
                  "error":null|{"message":…,"code":…,"logid":…,"exit_code":…}}
    interrupt:   {"type":"interrupt","workflow_id":…,"event_id":…,
                  "interrupt_type":2,"question":…,"options":[…],"id":…,
                  "execute_id":…,"resumes":0}  ("sync":true for a --no-stream run)
    run_started: {"type":"run_started","id":…,"workflow_id":…,"execute_id":…,
                  "debug_url":…}
    error:       {"type":"error","id":…,"code":…,"msg":…,"logid":…,"exit_code":…}
                 (events mode: a failed run's last line, the tool's own report)
    execute_id and other 64-bit ids are written as strings, digit for digit.

PROGRESS:
    Runs (or answers) read from a file or a pipe, with stderr a terminal and the
    records going elsewhere (a file, a pipe), show one line at the bottom of
    stderr:
        coze-workflow: 120/500 done, 2 failed, 5 retries, 3.5/min, ETA 1h48m
    redrawn in place as runs complete and erased at the end, before the summary.
    The total and the time left need stdin to be a regular file (its non-blank
    lines, counted without disturbing the reader); the runs that --resume skips
    count as done. Warnings and errors are written above the line. With TERM
    unset or dumb (no cursor control), a plain line every 15 s instead.

FAILURES:
    Network errors, 429, 5xx and 4013/4020 are retried before the run starts; a
    stream cut once the run has begun is not run again (a workflow run is not
    safe to repeat): exit 5, with what was printed kept. An unpublished workflow
    (4200; 6031 on a self-hosted Coze Studio), a bad parameter (4000), async on a
    plan without it (6003) and an Error event end the run with exit 1 and a line
    saying what to do; the run's trace page is named on that line (debug_url: …). A
    failed run does not stop the others; the exit status is that of the first.

EXAMPLES:
    coze-workflow run --workflow $WF --param city=北京 --param days:=3
    coze-workflow run --workflow $WF --params @inputs.json -o results | jq .output
    jq -c '{city: .[0], days: (.[1] | tonumber)}' rows.json |
        coze-workflow run --workflow $WF -o results --jobs 4 > results.jsonl
    coze-file upload scan.png |
        coze-workflow run --workflow $WF --file-param-from-stdin image -o results
    coze-workflow run --workflow $WF --async --param q=x | jq -r .execute_id
    coze-workflow status --workflow $WF 7404830425073352713 --wait
    coze-workflow run --workflow $WF -o results < runs.jsonl > out.jsonl
    [ $? -eq 7 ] && coze-workflow resume --answer yes -o results < out.jsonl

"##;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Events,
    Text,
    Results,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the workflow: once, or once per stdin line.
    Run,
    /// Read the histories of these runs.
    Status(Vec<String>),
    /// Answer interrupts: stdin's records, or the one `--event-id` names.
    Resume,
}

/// How a run is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Stream,
    Sync,
    Async,
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    pub api: ApiFlags,
    pub workflow: Option<String>,
    /// The parameters of the command line (--params, then --param, in order).
    pub params: Map<String, Value>,
    /// Parameters came on the command line: one run, stdin not read.
    pub one_run: bool,
    /// `--file-param KEY=PATH`, in order.
    pub file_params: Vec<(String, PathBuf)>,
    /// `--file-param-from-stdin KEY`, in order.
    pub stdin_files: Vec<String>,
    pub bot: Option<String>,
    pub app: Option<String>,
    pub version: Option<String>,
    pub how: How,
    pub mode: Option<Mode>,
    pub answer: Option<String>,
    pub event_id: Option<String>,
    pub interrupt_type: i64,
    pub wait: bool,
    pub keep_going: bool,
    pub jobs: usize,
    pub resume: Option<PathBuf>,
    pub append: bool,
    pub ordered: bool,
    pub summary: bool,
    /// `--progress` / `--no-progress`: the progress line on a terminal.
    pub progress: Want,
    pub max_line: usize,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut f = Flags {
        command: Command::Run,
        api: ApiFlags::default(),
        workflow: None,
        params: Map::new(),
        one_run: false,
        file_params: Vec::new(),
        stdin_files: Vec::new(),
        bot: None,
        app: None,
        version: None,
        how: How::Stream,
        mode: None,
        answer: None,
        event_id: None,
        interrupt_type: 2,
        wait: false,
        keep_going: false,
        jobs: 1,
        resume: None,
        append: false,
        ordered: false,
        summary: false,
        progress: Want::Auto,
        max_line: coze_core::wire::jsonl::DEFAULT_MAX_LINE,
    };
    let mut word: Option<String> = None;
    let mut values: Vec<String> = Vec::new();
    // The flags given, as typed, to refuse those of another subcommand.
    let mut given: Vec<String> = Vec::new();
    let (mut no_stream, mut is_async, mut type_given) = (false, false, false);
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) if word.is_none() => {
                word = Some(a.positional("subcommand", v)?);
                return Ok(true);
            }
            Arg::Value(v) => {
                values.push(a.nonempty_positional("EXECUTE_ID", v)?);
                return Ok(true);
            }
            Arg::Flag(flag) => flag.clone(),
        };
        if f.api.take(&flag, a)? {
            return Ok(true);
        }
        match flag.as_str() {
            "--workflow" => f.workflow = Some(a.nonempty()?),
            "--param" => {
                let (k, v) = a.param()?;
                f.params.insert(k, v);
                f.one_run = true;
            }
            "--params" => {
                let text = params_text(a)?;
                let object = params::object(&text).map_err(|m| a.error(m))?;
                f.params.extend(object);
                f.one_run = true;
            }
            "--file-param" => {
                let (k, path) = a.key_value()?;
                if path.is_empty() {
                    return Err(a.error("expected KEY=PATH, with a path"));
                }
                f.file_params.push((k, PathBuf::from(path)));
                f.one_run = true;
            }
            "--file-param-from-stdin" => f.stdin_files.push(a.nonempty()?),
            "--bot" => f.bot = Some(a.nonempty()?),
            "--app" => f.app = Some(a.nonempty()?),
            "--workflow-version" => f.version = Some(a.nonempty()?),
            "--no-stream" => no_stream = true,
            "--async" => is_async = true,
            "--answer" => f.answer = Some(a.string()?),
            "--event-id" => f.event_id = Some(a.nonempty()?),
            "--interrupt-type" => {
                f.interrupt_type = a.number()?;
                type_given = true;
            }
            "--wait" => f.wait = true,
            "-o" | "--output" => {
                f.mode = Some(a.choice(&[
                    ("events", Mode::Events),
                    ("text", Mode::Text),
                    ("results", Mode::Results),
                ])?)
            }
            "--keep-going" => f.keep_going = true,
            "--max-line-bytes" => f.max_line = a.line_bytes()?,
            "-j" | "--jobs" => f.jobs = a.jobs(256)?,
            "--rate" => f.api.rate = Some(a.rate()?),
            "--resume" => f.resume = Some(a.path()?),
            "--append" => f.append = true,
            "--ordered" => f.ordered = true,
            "--summary" => f.summary = true,
            "--progress" => f.progress = Want::Always,
            "--no-progress" => f.progress = Want::Never,
            _ => return Ok(false),
        }
        given.push(flag);
        Ok(true)
    })?;
    parsed.then(|| {
        f.how = match (no_stream, is_async) {
            (true, true) => {
                return Err(Error::usage(
                    "--no-stream and --async are two ways to run: choose one",
                ))
            }
            (true, false) => How::Sync,
            (false, true) => How::Async,
            (false, false) => How::Stream,
        };
        let Some(word) = word else {
            return Err(Error::usage("name a subcommand: run, status or resume"));
        };
        f.command = match word.as_str() {
            "run" => Command::Run,
            "status" => Command::Status(std::mem::take(&mut values)),
            "resume" => Command::Resume,
            other => {
                return Err(Error::usage(format!(
                    "unknown subcommand {other:?} (expected run, status or resume)"
                )))
            }
        };
        if let Some(v) = values.first() {
            return Err(Error::usage(format!(
                "unexpected argument {v:?} ({word} takes no EXECUTE_ID)"
            )));
        }
        check(f, &given, type_given)
    })
}

/// `--params`' value: the JSON itself, or with `@FILE` the file's text, as long as a
/// stdin line may be by default (a file that never ends, such as /dev/zero, is not
/// read to the end of memory).
fn params_text(a: &mut Args) -> Result<String> {
    let value = a.string()?;
    match value.strip_prefix('@') {
        Some(path) => {
            let max = coze_core::wire::jsonl::DEFAULT_MAX_LINE as u64;
            coze_core::wire::jsonl::read_file_capped(Path::new(path), max)
                .map_err(|e| a.error(format!("{path}: {e}")))
        }
        None => Ok(value),
    }
}

/// The flags `run` and `resume` both take (output, batch, the workflow, how it runs).
const RUN_AND_RESUME: &[&str] = &[
    "-o",
    "--output",
    "--keep-going",
    "--max-line-bytes",
    "-j",
    "--jobs",
    "--rate",
    "--resume",
    "--append",
    "--ordered",
    "--summary",
    "--progress",
    "--no-progress",
    "--workflow",
    "--no-stream",
];
const RUN_ONLY: &[&str] = &[
    "--param",
    "--params",
    "--file-param",
    "--file-param-from-stdin",
    "--bot",
    "--app",
    "--workflow-version",
    "--async",
];
const RESUME_ONLY: &[&str] = &["--answer", "--event-id", "--interrupt-type"];
const STATUS: &[&str] = &["--workflow", "--wait"];

/// Whether `command` takes `flag` (the shared flags aside).
fn allowed(command: &Command, flag: &str) -> bool {
    match command {
        Command::Run => RUN_AND_RESUME.contains(&flag) || RUN_ONLY.contains(&flag),
        Command::Resume => RUN_AND_RESUME.contains(&flag) || RESUME_ONLY.contains(&flag),
        Command::Status(_) => STATUS.contains(&flag),
    }
}

/// How the flags go together, checked once all are read.
fn check(f: Flags, given: &[String], type_given: bool) -> Result<Flags> {
    let word = match f.command {
        Command::Run => "run",
        Command::Status(_) => "status",
        Command::Resume => "resume",
    };
    if let Some(flag) = given.iter().find(|g| !allowed(&f.command, g)) {
        return Err(Error::usage(format!("{flag} does not go with {word}")));
    }
    if f.bot.is_some() && f.app.is_some() {
        return Err(Error::usage(
            "--bot and --app cannot go together: the API refuses a run with both (4000)",
        ));
    }
    let output = match f.mode {
        Some(Mode::Results) => OutputKind::Records,
        Some(Mode::Text) => OutputKind::Text,
        _ => OutputKind::Other,
    };
    let nouns = RecordNouns {
        mode: "results",
        file: "a results file",
        interleaved: "the runs' text",
    };
    check_batch_output(f.append, f.resume.is_some(), f.jobs, output, &nouns)?;
    match &f.command {
        Command::Run => {
            if f.one_run && !f.stdin_files.is_empty() {
                return Err(Error::usage(
                    "--file-param-from-stdin reads the runs of stdin: the command line's \
                     parameters make one run that reads none",
                ));
            }
            if f.one_run && f.workflow.is_none() {
                return Err(Error::usage("run: name the workflow: --workflow ID"));
            }
            if f.one_run && f.jobs > 1 {
                return Err(Error::usage(
                    "--jobs runs the lines of stdin; the command line's parameters make one run",
                ));
            }
        }
        Command::Status(ids) => {
            if f.workflow.is_none() {
                return Err(Error::usage("status: name the workflow: --workflow ID"));
            }
            if ids.is_empty() {
                return Err(Error::usage(
                    "status: name the runs: coze-workflow status --workflow ID EXECUTE_ID...",
                ));
            }
        }
        Command::Resume => {
            if f.answer.is_none() {
                return Err(Error::usage("resume: give the answer: --answer TEXT"));
            }
            if f.how == How::Async {
                return Err(Error::usage("--async does not go with resume"));
            }
            if f.event_id.is_some() && f.workflow.is_none() {
                return Err(Error::usage(
                    "resume: --event-id needs --workflow ID (the workflow that asked)",
                ));
            }
            if type_given && f.event_id.is_none() {
                return Err(Error::usage(
                    "--interrupt-type goes with --event-id (a record names its own type)",
                ));
            }
            if f.event_id.is_some() && f.jobs > 1 {
                return Err(Error::usage(
                    "--jobs answers the records of stdin; --event-id is one answer",
                ));
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flags(args: &[&str]) -> Flags {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(f) => f,
            other => panic!("{other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        let e = parse(args.iter().map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        e.to_string()
    }

    #[test]
    fn parameters_in_every_form() {
        let dir = std::env::temp_dir().join(format!("coze-wf-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.json");
        std::fs::write(&file, r#"{"a":"from file","b":[1]}"#).unwrap();
        let at = format!("@{}", file.display());
        let f = flags(&[
            "run",
            "--workflow",
            "73",
            "--params",
            &at,
            "--param",
            "a=over",
            "--param",
            "n:=3",
            "--param",
            "s=x=y",
            "--file-param",
            "img=a b.png",
        ]);
        assert!(f.one_run);
        assert_eq!(
            Value::Object(f.params.clone()),
            json!({"a": "over", "b": [1], "n": 3, "s": "x=y"})
        );
        assert_eq!(
            f.file_params,
            [("img".to_owned(), PathBuf::from("a b.png"))]
        );
        assert_eq!(f.how, How::Stream);
        let f = flags(&["run", "--workflow", "7", "--params", "{}", "--no-stream"]);
        assert!(f.one_run && f.params.is_empty());
        assert_eq!(f.how, How::Sync);
        let f = flags(&[
            "run",
            "--file-param-from-stdin",
            "image",
            "-o",
            "results",
            "--jobs",
            "8",
        ]);
        assert!(!f.one_run);
        assert_eq!(
            (f.stdin_files.len(), f.jobs, f.mode),
            (1, 8, Some(Mode::Results))
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn subcommands() {
        let f = flags(&["status", "--workflow", "7", "1", "2", "--wait"]);
        assert_eq!(f.command, Command::Status(vec!["1".into(), "2".into()]));
        assert!(f.wait);
        let f = flags(&[
            "resume",
            "--answer",
            "北京",
            "--workflow",
            "7",
            "--event-id",
            "1/2",
        ]);
        assert_eq!(f.command, Command::Resume);
        assert_eq!((f.answer.as_deref(), f.interrupt_type), (Some("北京"), 2));
        let f = flags(&["resume", "--answer", "", "-o", "results"]);
        assert_eq!(f.answer.as_deref(), Some(""));
        // The progress line: for run and resume, the last of the two flags wins.
        assert_eq!(flags(&["run", "--workflow", "7"]).progress, Want::Auto);
        let f = flags(&["run", "--workflow", "7", "--no-progress", "--progress"]);
        assert_eq!(f.progress, Want::Always);
        let f = flags(&["resume", "--answer", "a", "--progress", "--no-progress"]);
        assert_eq!(f.progress, Want::Never);
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&[]).contains("name a subcommand"));
        assert!(usage(&["go"]).contains("unknown subcommand"));
        assert!(usage(&["run", "--param", "novalue"]).starts_with("--param: expected KEY=VALUE"));
        assert!(usage(&["run", "--param", "n:=tru"]).starts_with("--param: n:= takes a JSON value"));
        assert!(usage(&["run", "--params", "[1]"]).starts_with("--params: expected a JSON object"));
        assert!(usage(&["run", "--params", "@/nonexistent/p.json"])
            .starts_with("--params: /nonexistent/p.json:"));
        assert_eq!(
            usage(&["run", "--params", "@/dev/zero"]),
            "--params: /dev/zero: larger than 8 MiB"
        );
        assert!(
            usage(&["run", "--workflow", "7", "--bot", "1", "--app", "2"])
                .contains("--bot and --app")
        );
        assert!(usage(&["run", "--workflow", "7", "--no-stream", "--async"]).contains("choose one"));
        assert!(usage(&["run", "--param", "a=1"]).contains("--workflow ID"));
        assert!(usage(&[
            "run",
            "--workflow",
            "7",
            "--param",
            "a=1",
            "--file-param-from-stdin",
            "f"
        ])
        .contains("--file-param-from-stdin"));
        assert!(
            usage(&["run", "--workflow", "7", "--param", "a=1", "--jobs", "2"]).contains("--jobs")
        );
        assert!(usage(&["run", "--jobs", "2", "-o", "text"]).contains("interleaves"));
        assert!(usage(&["run", "--resume", "r.jsonl"]).contains("-o results"));
        assert!(usage(&["run", "--append"]).contains("--resume FILE"));
        assert!(usage(&["run", "--wait"]).contains("--wait does not go with run"));
        assert!(usage(&["run", "1"]).contains("takes no EXECUTE_ID"));
        assert!(usage(&["status", "1"]).contains("--workflow ID"));
        assert!(usage(&["status", "--workflow", "7"]).contains("name the runs"));
        assert!(usage(&["status", "--workflow", "7", "1", "--param", "a=1"])
            .contains("does not go with status"));
        assert!(usage(&["resume"]).contains("--answer TEXT"));
        assert!(usage(&["resume", "--answer", "a", "--event-id", "1/2"]).contains("--workflow ID"));
        assert!(usage(&["resume", "--answer", "a", "--interrupt-type", "5"]).contains("--event-id"));
        assert!(usage(&["resume", "--answer", "a", "--async"]).contains("does not go with resume"));
        assert!(usage(&["run", "--workflow-version", " "]).contains("must not be empty"));
        assert!(usage(&["status", "--workflow", "7", "1", "--progress"])
            .contains("--progress does not go with status"));
    }
}
