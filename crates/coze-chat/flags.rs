//! coze-chat's command line, parsed into a plain struct; nothing resolved yet.

use std::ffi::OsString;

use serde_json::{Map, Value};

use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::{check_batch_output, ApiFlags, OutputKind, RecordNouns};
use coze_core::cli::progress::Want;
use coze_core::cli::Parsed;
use coze_core::protocol::Attachment;
use coze_core::{Error, Result};

pub const HELP: &str = "\
coze-chat: prompts in, the bot's answers out

USAGE:
    coze-chat --bot ID [OPTIONS] PROMPT      one prompt
    coze-chat --bot ID [OPTIONS] -           all of stdin as one prompt
    coze-chat --bot ID [OPTIONS] < FILE      one prompt per line
    coze-chat --bot ID [OPTIONS]             at a terminal: a chat (INTERACTIVE)
    coze-chat --workflow ID (--app ID | --bot ID) [OPTIONS] ...
                                             the same, to a chatflow

Each line of stdin is a prompt: plain text, or a JSON record. A `prompt` record
({\"type\":\"prompt\",\"content\":\"…\",\"id\":…}) may carry an `id` (echoed on every
output line it causes), `conversation_id`, `bot_id` (then it needs no --bot),
`user_id`, `custom_variables` and `meta_data`; a `content_type` must be \"text\".
A `conversation` record (from coze-conv) switches the conversation for the lines
after it. A `file` record (from coze-file upload) attaches that file to the next
prompt line; a `prompt` record may carry its own \"attachments\":
[{\"path\":…}|{\"file_id\":…}|{\"file_url\":…}]; a local path is uploaded once per
run. Without --conversation, the first chat's conversation is kept for the
following prompts, so a multi-line script is one conversation; --new-each gives
every prompt its own.

INTERACTIVE:
With no PROMPT and stdin and stdout a terminal (text output; not with --jobs,
--resume or --summary), coze-chat is a chat: first the bot's name, its prologue
and its suggested questions, numbered (skipped, with one line saying why, when
the token may not read the bot or the server lacks the endpoint), then a prompt
(\"> \") with line editing and history, kept in $XDG_STATE_HOME/coze/history
(else ~/.local/state/coze/history; mode 0600, a looser file is tightened). A
number asks that suggestion; each answer's follow-ups are numbered in their
turn. A line ending in \\ goes on on the next line; a paste of several lines is
one prompt. /new starts a new conversation, /attach PATH sends a file with the
next prompt, /help lists the commands, /exit or Ctrl-D ends: the conversation
and the command that continues it (coze-chat --bot ID --conversation ID) are
then on stderr. Ctrl-C during an answer cancels its chat on the server and
comes back to the prompt (twice: exit 130); Ctrl-C clears a typed line, and at
an empty prompt ends. --tool and --attach work as in a pipeline. With TERM
unset or dumb: plain lines, no line editing, no escape sequences. On a pipe or
a file none of this: stdin's lines are read as they always are.

CHATFLOWS:
With --workflow, each prompt is the user input of a chatflow (a published workflow
that chats), run in an app (--app) or in a bot (--bot or COZE_BOT_ID), never
both; the output modes, conversations and batch flags work as for a bot. Its
text only is sent (no attachments: pass files as parameters with
coze-workflow). When the chatflow asks a question (a question or input node),
on a terminal the question is shown (its options numbered) and your answer is
sent to the chatflow in the same conversation; in a pipeline the answer record
says \"requires_action\" (and -o events adds an `interrupt` record), and the
next prompt line of that conversation is the answer. A question nobody
answered by the end of the run makes the exit status 7. The trace of each run
(`debug_url`) is in its answer record, in the `done` event, and on stderr when
the chatflow fails. A cut chatflow stream is not followed (no API retrieves a
chatflow's chat): the answer so far is kept and the prompt fails (exit 5).

    --workflow ID          ask this chatflow instead of a bot
    --app ID               the app whose chatflow it is (not with --bot)
    --param KEY=VALUE      a chatflow parameter (repeatable): VALUE is a string;
                           KEY:=JSON gives a JSON value instead (n:=3). A prompt
                           record's own \"parameters\" object is added to these

OPTIONS:
    --bot ID               the bot [env: COZE_BOT_ID]
    --conversation ID      continue this conversation
    --new-each             a new conversation for every prompt
    --user ID              your user id for the bot's memory [env: COZE_USER_ID]
                           [default: one made once per profile and kept in its
                           directory (user_id beside the token file), so the bot
                           knows you from run to run]
    --var KEY=VALUE        a custom variable for the bot's prompt (repeatable)
    --meta KEY=VALUE       meta_data for the chat (repeatable; at most 16 pairs,
                           keys of 1 to 64 characters, values of 1 to 512)
    --attach FILE          send a file or an image with every prompt (repeatable):
                           a local path (uploaded once per run, however many
                           prompts carry it), file_id:ID (uploaded already, e.g. by
                           coze-file), or an https:// URL the server fetches;
                           image or file is told from the content, then the name
    --no-save              do not save the exchange in the conversation
                           (auto_save_history false; needs streaming)
    --no-stream            create the chat, poll until it is done, then list its
                           messages; the same text and answers as streaming; in
                           -o events only the polled chat's events (no deltas,
                           each message whole as conversation.message.completed)
    --busy-wait SECS       when another chat is running in the conversation (4016),
                           wait up to this long for it to end, asking again after
                           1, 2, 4, then every 8 s [default: 120]; 0: do not wait
    -o, --output MODE      events: every Coze event as a JSON line, lossless
                                   ({\"event\":…,\"data\":…,\"id\":…})
                           text:   the answer only, streamed; reasoning and
                                   follow-up suggestions on stderr
                           answers: one `answer` record per prompt
                           [default: text on a terminal, events otherwise]
    --keep-going           after a bad stdin line, go on with the next lines
                           (the exit status still reports it); -o answers always
                           goes on, and writes the line as an answer record with
                           status \"invalid\"
    --max-line-bytes N     the longest stdin line (and, with -, all of stdin) taken:
                           a longer one ends the run with exit 3 naming the line;
                           a line of the --resume FILE may be 8 times as long
                           [default: 8M] (K, M and G suffixes: KiB, MiB, GiB)

LOCAL TOOLS (see README \"Local tools\"):
A bot with a local plugin (端插件) stops its chat to call a function, and waits for
its output. With --tool, coze-chat runs a program for it and sends its output back;
the chat goes on (streamed to the same output) until the bot answers.
    --tool NAME=COMMAND    function NAME is answered by COMMAND (repeatable): its
                           words split as a shell would (quotes, backslashes) but
                           nothing expanded, and run without a shell. The call's
                           arguments (a JSON object) are its stdin; its stdout is
                           the output; its stderr is yours. Its environment is
                           yours minus every variable whose name holds TOKEN,
                           plus COZE_TOOL_NAME, COZE_TOOL_CALL_ID,
                           COZE_CONVERSATION_ID and COZE_CHAT_ID. It runs in a
                           process group of its own, killed with it
    --tools DIR            an executable DIR/NAME answers function NAME (a --tool
                           of the same name wins)
    --tool-timeout SECS    a tool still running after this long is killed, with its
                           process group [default: 60]
    --max-tool-rounds N    at most N rounds of calls per prompt; one more cancels
                           the chat and fails the prompt [default: 8]
The calls of one round run at once (at most 4 at a time) and are sent together. A
tool that exits non-zero, times out, writes more than 1 MB or output that is not
UTF-8, or a function no tool answers: the bot gets \"error: …\" saying so, and you
one warning line. -o events adds {\"type\":\"tool_call\",\"tool_call_id\",\"name\",
\"arguments\"} and {\"type\":\"tool_output\",\"tool_call_id\",\"output\",
\"exit_status\",\"ms\"} records between the server's events; -o answers a
`tool_calls` array on the answer; -o text one line per call on stderr. Without
tools, a chat that calls one ends the prompt with exit 7 (waiting), its calls in
the output. A bot's question (a reply_message call) is asked on a terminal and
the answer sent as its output; in a pipeline it exits 7. --tool needs history
saved (not --no-save).

BATCH (see README \"Batch\"):
    --jobs N               N prompts in flight at once [default: 1]; with N > 1
                           each prompt gets a new conversation unless it names one,
                           and one conversation never has two chats at once
    --rate R               at most R requests per second across all jobs. On 429
                           (or 4013/4020) the whole pool pauses for its Retry-After
                           and halves its rate, once, then climbs back by a tenth a
                           second; the 429s that arrive meanwhile wait out their own
                           Retry-After only (see README \"Batch\")
    --resume FILE          skip every prompt whose id is already `completed` in
                           FILE (an earlier -o answers output). A line without an
                           id gets one derived from its content:
                           \"sha256:\" + the first 16 hex digits of its SHA-256;
                           the same content again in the same input gets \"#2\",
                           \"#3\"… after that, so every line has an id of its own
    --append               with --resume: append the new answers to FILE instead of
                           writing them to stdout; FILE is locked meanwhile, and a
                           second run on it refuses at once (exit 8)
    --ordered              print in input order (default: as they complete)
    --summary              print the final `summary` record on stdout (by default
                           it goes to stderr when --jobs, --rate or --resume is used):
                           prompts, completed, failed, skipped, by_status (every
                           prompt asked, by its answer's status, completed too),
                           tokens, wall_ms, retries, rate_pauses, exit_code
    --progress             show the progress line (see PROGRESS) whenever stderr
                           is a terminal: also when stdin is one, or the records
                           go to it; never when stderr is not a terminal
    --no-progress          never show it
    -h, --help             this text
    -V, --version          version and commit

";

pub const HELP_TAIL: &str = "

OUTPUT RECORDS:
    answer: {\"type\":\"answer\",\"id\":…,\"prompt\":…,\"content\":…,
             \"reasoning_content\":…,\"follow_ups\":[…],\"conversation_id\":…,
             \"chat_id\":…,\"bot_id\":…,\"usage\":{…},\"status\":\"completed\"|\"failed\"|…,
             \"error\":null|{\"message\":…,\"code\":…,\"logid\":…,\"exit_code\":…}}
    A stdin line that cannot be asked is an answer with status \"invalid\": its
    prompt is the line, its error names the line (exit_code 3).
    error:  {\"type\":\"error\",\"id\":…,\"code\":…,\"msg\":…,\"logid\":…,\"exit_code\":…}
    In events mode a failed prompt ends with an `error` record: coze-chat's own
    report, a `type` and not an `event` (only the server's events are events).
    Events recovered by polling a chat whose stream broke (see FAILURES) carry
    \"recovered\":true.

PROGRESS:
    Prompts read from a file or a pipe, with stderr a terminal and the records
    going elsewhere (a file, a pipe), show one line at the bottom of stderr:
        coze-chat: 1,234/5,000 done, 3 failed, 12 retries, 8.1/s, ETA 7m45s
    redrawn in place as prompts complete and erased at the end, before the
    summary. The total and the time left need stdin to be a regular file (its
    non-blank lines, counted without disturbing the reader); the prompts that
    --resume skips count as done. Warnings and errors are written above the
    line. With TERM unset or dumb (no cursor control), a plain line every 15 s
    instead.

FAILURES:
    Network errors, 429, 5xx and 4013/4020 are retried while nothing of that
    prompt's answer has been printed; 4016 (another chat is running in the
    conversation) is waited out for up to --busy-wait, with one line on stderr
    saying so; an expired token is refreshed once. A failed prompt is reported and the next
    prompts still run (but an authentication failure, exit 4, ends the run: every
    later prompt would meet it too); the exit status is that of the first
    failure. Ctrl-C
    cancels the chat on the server and exits 130 (SIGTERM 143, a closed
    terminal 129); a closed stdout (| head -1) cancels every chat in flight at
    once and exits 0.

    A stream that breaks once the chat exists (cut, reset, ended early) is not
    asked again: the chat goes on on the server, so it is followed to its end by
    polling (retrieve, then its messages) and the rest is printed: -o answers
    gets the whole answer, -o text the part not yet printed, -o events the
    --no-stream events of the rest, marked \"recovered\":true; one warning line
    on stderr says so. Only a chat that cannot be found then fails (exit 5). A
    stream silent past --idle-timeout, or a --no-save chat (not saved, it cannot
    be polled), is not followed: it ends the prompt (exit 5).

EXAMPLES:
    coze-chat --bot $BOT \"你好\"
    echo \"Summarize: $(cat notes.txt)\" | coze-chat --bot $BOT -o text -
    printf 'hi\\nand again?\\n' | coze-chat --bot $BOT -o text
    { coze-conv create --bot $BOT; echo hello; } | coze-chat --bot $BOT -o text
    coze-chat --bot $BOT -o answers < questions.txt > answers.jsonl
    coze-chat --bot $BOT -o answers < questions.txt | jq -r 'select(.status==\"failed\") | .id'
    coze-chat --bot $BOT -o events \"hi\" | jq -c 'select(.event==\"conversation.message.delta\") | .data.content'
    coze-chat --workflow $FLOW --app $APP --param lang=en -o answers < q.txt | jq -r .debug_url
    coze-chat --bot $BOT --tool get_weather=./weather.sh \"北京的天气?\"
    coze-chat --bot $BOT --tools ./tools --tool-timeout 10 -o answers < q.txt | jq .tool_calls

";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Events,
    Text,
    Answers,
}

/// Where prompts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The PROMPT argument.
    Argument(String),
    /// `-`: all of stdin is one prompt.
    WholeStdin,
    /// One prompt per stdin line.
    Lines,
}

#[derive(Debug)]
pub struct Flags {
    pub api: ApiFlags,
    pub bot: Option<String>,
    pub conversation: Option<String>,
    pub new_each: bool,
    pub user: Option<String>,
    pub vars: Map<String, Value>,
    pub meta: Map<String, Value>,
    pub no_save: bool,
    pub no_stream: bool,
    pub mode: Option<Mode>,
    pub keep_going: bool,
    pub source: Source,
    pub jobs: usize,
    pub resume: Option<std::path::PathBuf>,
    pub append: bool,
    pub ordered: bool,
    pub summary: bool,
    /// `--progress` / `--no-progress`: the progress line on a terminal.
    pub progress: Want,
    /// `--max-line-bytes`: the longest stdin line taken.
    pub max_line: usize,
    /// `--attach`: files and images sent with every prompt.
    pub attach: Vec<Attachment>,
    /// `--workflow`: a chatflow answers instead of a bot.
    pub workflow: Option<String>,
    /// `--app`: the app the chatflow runs in.
    pub app: Option<String>,
    /// `--param`: the chatflow's parameters.
    pub params: Map<String, Value>,
    /// `--tool NAME=COMMAND`: COMMAND's words answer function NAME.
    pub tools: Vec<(String, Vec<String>)>,
    /// `--tools DIR`: an executable `DIR/NAME` answers function NAME.
    pub tools_dir: Option<std::path::PathBuf>,
    /// `--tool-timeout`.
    pub tool_timeout: std::time::Duration,
    /// `--max-tool-rounds`.
    pub max_tool_rounds: u32,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut f = Flags {
        api: ApiFlags::default(),
        bot: None,
        conversation: None,
        new_each: false,
        user: None,
        vars: Map::new(),
        meta: Map::new(),
        no_save: false,
        no_stream: false,
        mode: None,
        keep_going: false,
        source: Source::Lines,
        jobs: 1,
        resume: None,
        append: false,
        ordered: false,
        summary: false,
        progress: Want::Auto,
        max_line: coze_core::wire::jsonl::DEFAULT_MAX_LINE,
        attach: Vec::new(),
        workflow: None,
        app: None,
        params: Map::new(),
        tools: Vec::new(),
        tools_dir: None,
        tool_timeout: std::time::Duration::from_secs(60),
        max_tool_rounds: 8,
    };
    let mut prompt: Option<String> = None;
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) => {
                if prompt.is_some() {
                    return Err(Error::usage(
                        "more than one PROMPT argument (quote the prompt, or send several prompts on stdin)",
                    ));
                }
                prompt = Some(a.positional("PROMPT", v)?);
                return Ok(true);
            }
            Arg::Flag(flag) => flag.as_str(),
        };
        if f.api.take(flag, a)? {
            return Ok(true);
        }
        match flag {
            "--bot" => f.bot = Some(a.string()?),
            "--workflow" => f.workflow = Some(a.nonempty()?),
            "--app" => f.app = Some(a.nonempty()?),
            "--param" => {
                let (k, v) = a.param()?;
                f.params.insert(k, v);
            }
            "--conversation" => f.conversation = Some(a.string()?),
            "--new-each" => f.new_each = true,
            "--user" => f.user = Some(a.string()?),
            "--var" => {
                let (k, v) = a.key_value()?;
                f.vars.insert(k, v.into());
            }
            "--meta" => {
                let (k, v) = a.key_value()?;
                f.meta.insert(k, v.into());
            }
            "--attach" => {
                let spec = a.os()?;
                if spec.is_empty() {
                    return Err(a.error("must not be empty"));
                }
                let attachment = Attachment::from_os_flag(spec);
                attachment.check().map_err(|m| a.error(m))?;
                f.attach.push(attachment);
            }
            "--tool" => {
                let (name, command) = a.key_value()?;
                let words = crate::tools::words::split(&command)
                    .map_err(|why| a.error(format!("{name}: {why}")))?;
                f.tools.push((name, words));
            }
            "--tools" => f.tools_dir = Some(a.path()?),
            "--tool-timeout" => {
                f.tool_timeout = a.seconds()?;
                if f.tool_timeout.is_zero() {
                    return Err(a.error("must be more than 0"));
                }
            }
            "--max-tool-rounds" => {
                f.max_tool_rounds = a.number()?;
                if f.max_tool_rounds == 0 {
                    return Err(a.error("must be at least 1"));
                }
            }
            "--no-save" => f.no_save = true,
            "--no-stream" => f.no_stream = true,
            "--keep-going" => f.keep_going = true,
            "-j" | "--jobs" => f.jobs = a.jobs(256)?,
            "--rate" => f.api.rate = Some(a.rate()?),
            "--busy-wait" => f.api.busy_wait = Some(a.seconds()?),
            "--resume" => f.resume = Some(a.path()?),
            "--append" => f.append = true,
            "--ordered" => f.ordered = true,
            "--summary" => f.summary = true,
            "--progress" => f.progress = Want::Always,
            "--no-progress" => f.progress = Want::Never,
            "--max-line-bytes" => f.max_line = a.line_bytes()?,
            "-o" | "--output" => {
                f.mode = Some(a.choice(&[
                    ("events", Mode::Events),
                    ("text", Mode::Text),
                    ("answers", Mode::Answers),
                ])?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    parsed.then(|| check(f, prompt))
}

/// How the flags go together, checked once all are read.
fn check(mut f: Flags, prompt: Option<String>) -> Result<Flags> {
    f.source = match prompt {
        Some(p) if p == "-" => Source::WholeStdin,
        Some(p) if p.trim().is_empty() => return Err(Error::usage("the PROMPT argument is empty")),
        Some(p) => Source::Argument(p),
        None => Source::Lines,
    };
    if f.no_save && f.no_stream {
        return Err(Error::usage(
            "--no-save cannot go with --no-stream: the Coze API saves every chat it does \
             not stream (a polled answer is read back from the conversation's messages)",
        ));
    }
    let tools = !f.tools.is_empty() || f.tools_dir.is_some();
    if tools && f.no_save {
        return Err(Error::usage(
            "--tool cannot go with --no-save: the API takes a chat's tool outputs only \
             when its history is saved",
        ));
    }
    if tools && f.workflow.is_some() {
        return Err(Error::usage(
            "--tool cannot go with --workflow: a chatflow's questions are answered by \
             the next prompt, not by tools",
        ));
    }
    coze_core::protocol::check_meta_data(&f.meta)
        .map_err(|m| Error::usage(format!("--meta: {m}")))?;
    let output = match f.mode {
        Some(Mode::Answers) => OutputKind::Records,
        Some(Mode::Text) => OutputKind::Text,
        _ => OutputKind::Other,
    };
    let nouns = RecordNouns {
        mode: "answers",
        file: "an answers file",
        interleaved: "answers",
    };
    check_batch_output(f.append, f.resume.is_some(), f.jobs, output, &nouns)?;
    check_chatflow(&f)?;
    if f.jobs > 1 && f.source != Source::Lines {
        return Err(Error::usage(
            "--jobs runs the prompts of stdin lines; a PROMPT argument is one prompt",
        ));
    }
    Ok(f)
}

/// What a chatflow cannot take (the Coze API docs, `workflow_chat`), refused before
/// anything is asked.
fn check_chatflow(f: &Flags) -> Result<()> {
    if f.workflow.is_none() {
        for (given, flag) in [
            (f.app.is_some(), "--app"),
            (!f.params.is_empty(), "--param"),
        ] {
            if given {
                return Err(Error::usage(format!(
                    "{flag} goes with --workflow (it is a chatflow's)"
                )));
            }
        }
        return Ok(());
    }
    if f.app.is_some() && f.bot.is_some() {
        return Err(Error::usage(
            "--app and --bot cannot go together: a chatflow runs in an app or in a bot, \
             not both (the API refuses both)",
        ));
    }
    let refused = [
        (f.no_stream, "--no-stream", "a chatflow only streams"),
        (
            f.no_save,
            "--no-save",
            "a chatflow keeps its conversation's history",
        ),
        (
            !f.vars.is_empty(),
            "--var",
            "a chatflow takes --param instead of a bot's variables",
        ),
        (
            !f.meta.is_empty(),
            "--meta",
            "a chatflow's chat has no meta_data",
        ),
        (
            !f.attach.is_empty(),
            "--attach",
            "a chatflow takes text only; pass files as parameters with coze-workflow",
        ),
    ];
    match refused.iter().find(|(given, _, _)| *given) {
        Some((_, flag, why)) => Err(Error::usage(format!(
            "{flag} cannot go with --workflow: {why}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Parsed<Flags>> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn sources_and_modes() {
        let Parsed::Run(f) = flags(&["--bot", "b", "-o", "answers", "hi there"]).unwrap() else {
            panic!()
        };
        assert_eq!(f.source, Source::Argument("hi there".into()));
        assert_eq!(f.mode, Some(Mode::Answers));
        let Parsed::Run(f) = flags(&["-"]).unwrap() else {
            panic!()
        };
        assert_eq!(f.source, Source::WholeStdin);
        let Parsed::Run(f) =
            flags(&["--var", "a=1", "--meta", "m=x", "-v", "--idle-timeout", "3"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(f.source, Source::Lines);
        assert_eq!(f.progress, Want::Auto);
        assert_eq!(f.vars["a"], "1");
        assert!(f.api.verbose);
        assert_eq!(f.max_line, 8 << 20);
        // The progress line's two flags: the last one wins.
        for (args, want) in [
            (&["--progress"][..], Want::Always),
            (&["--no-progress"], Want::Never),
            (&["--progress", "--no-progress"], Want::Never),
            (&["--no-progress", "--progress"], Want::Always),
        ] {
            let Parsed::Run(f) = flags(args).unwrap() else {
                panic!()
            };
            assert_eq!(f.progress, want, "{args:?}");
        }
        for (arg, want) in [("65536", 65536), ("512K", 512 << 10), ("64m", 64 << 20)] {
            let Parsed::Run(f) = flags(&["--max-line-bytes", arg]).unwrap() else {
                panic!()
            };
            assert_eq!(f.max_line, want, "{arg}");
        }
    }

    #[test]
    fn a_chatflow_s_flags() {
        let Parsed::Run(f) = flags(&[
            "--workflow",
            "w",
            "--app",
            "a",
            "--param",
            "lang=en",
            "--param",
            "n:=2",
            "hi",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.workflow.as_deref(), f.app.as_deref()),
            (Some("w"), Some("a"))
        );
        assert_eq!(
            Value::Object(f.params),
            serde_json::json!({"lang":"en","n":2})
        );
        let e = flags(&["--workflow", "w", "--app", "a", "--bot", "b"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--app and --bot cannot go together: a chatflow runs in an app or in a bot, \
             not both (the API refuses both)"
        );
        let e = flags(&["--workflow", "w", "--attach", "a.pdf"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("pass files as parameters with coze-workflow"),
            "{e}"
        );
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["-o", "xml"][..],
            &["a", "b"],
            &["--no-save", "--no-stream"],
            &["--var", "novalue"],
            &[""],
            &["--max-line-bytes", "0"],
            &["--max-line-bytes", "12X"],
            &["--max-line-bytes", "-1"],
            &["--max-line-bytes", "+1"],
            &["--max-line-bytes", "1.5M"],
            &["--workflow", "w", "--app", "a", "--bot", "b"],
            &["--app", "a"],
            &["--param", "k=v"],
            &["--workflow", "w", "--param", "novalue"],
            &["--workflow", "w", "--no-stream"],
            &["--workflow", "w", "--no-save"],
            &["--workflow", "w", "--var", "a=1"],
            &["--workflow", "w", "--meta", "a=1"],
            &["--workflow", "w", "--attach", "x.png"],
            &["--workflow", ""],
            &["--tool", "get_weather"],
            &["--tool", "f=sh -c 'unclosed"],
            &["--tool", "f="],
            &["--tool", "f=x", "--no-save"],
            &["--tools", "d", "--no-save"],
            &["--tool", "f=x", "--workflow", "w"],
            &["--tool-timeout", "0"],
            &["--max-tool-rounds", "0"],
        ] {
            let e = flags(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            if args[0] == "--max-line-bytes" {
                // Args::bytes's words, as coze-file's --max-bytes says them.
                assert_eq!(
                    e.to_string(),
                    format!(
                        "--max-line-bytes: expected a number of bytes such as 65536, 512K \
                         or 64M, got {:?}",
                        args[1]
                    )
                );
            }
        }
    }
}
