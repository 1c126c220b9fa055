//! Layer 9, what every coze binary does the same way: the `run` wrapper that turns a
//! `Result` into one stderr line and an exit code, help and version as values and
//! printed (here); the command line read one way (`args`); the flags every API tool shares
//! (`flags`) and the session they open (`session`); Ctrl-C, SIGTERM and SIGHUP for a
//! tool holding a chat open (`interrupt`); a reader of stdout gone away (`stdout_watch`);
//! a batch tool's run inside both, with its summary (`batch`) and its progress line on
//! a terminal (`progress`); a question put to the person at the terminal (`ask`).
//!
//! Binaries stay thin: parse flags with lexopt into a plain struct, resolve config once,
//! call the library, and hand the `Result` to [`run`].

pub mod args;
pub mod ask;
pub mod batch;
pub mod flags;
pub mod interrupt;
pub mod progress;
pub mod session;
pub mod stdout_watch;

use std::io::Write;
use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::support::redact;
use crate::support::say::{self, say};

/// What a parser produced: work to do, or a text to print before anything can fail.
#[derive(Debug)]
pub enum Parsed<T> {
    /// The flags parsed: do the work they describe.
    Run(T),
    /// `--help` (or `-h`): print the help text, exit 0.
    Help,
    /// `--version` (or `-V`): print [`version_text`], exit 0.
    Version,
}

impl Parsed<()> {
    /// Every argument read ([`args::read`]): `build` checks how they go together and
    /// makes the flags. Help and version pass through untouched, so `--help` works
    /// whatever else is on the line.
    pub fn then<T>(self, build: impl FnOnce() -> Result<T>) -> Result<Parsed<T>> {
        Ok(match self {
            Parsed::Run(()) => Parsed::Run(build()?),
            Parsed::Help => Parsed::Help,
            Parsed::Version => Parsed::Version,
        })
    }
}

/// A tool's `main`, whole: reads the flags with `parse`; `--help` prints `help` (its
/// parts in order), `--version` the version with the git `commit`; otherwise `work`
/// runs on the flags, and its `Ok` is the exit status (0, or that of a failure it has
/// already reported, such as a batch's earliest failed prompt). See [`run`].
pub fn main<T>(
    tool: &str,
    commit: Option<&str>,
    help: &[&str],
    parse: impl FnOnce() -> Result<Parsed<T>>,
    work: impl FnOnce(T) -> Result<u8>,
) -> ExitCode {
    run(tool, || match parse()? {
        Parsed::Help => print(&format!("{}\n", help.concat())).map(|()| 0),
        Parsed::Version => {
            let name = tool.split(' ').next().unwrap_or(tool);
            print(&format!("{}\n", version_text(name, commit))).map(|()| 0)
        }
        Parsed::Run(flags) => work(flags),
    })
}

/// Runs a tool's work and translates the outcome: `Ok(status)` exits with it, a
/// closed stdout quietly with 0; any other error prints `tool: message` (secrets
/// scrubbed) and exits with its code.
pub fn run(tool: &str, work: impl FnOnce() -> Result<u8>) -> ExitCode {
    say::set_tool(tool.split(' ').next().unwrap_or(tool));
    match work() {
        Ok(status) => ExitCode::from(status),
        Err(e) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            report(tool, &e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints the one error line: `tool: what failed: why (logid …) (hint)`.
pub fn report(tool: &str, e: &Error) {
    let mut line = redact::scrub(&e.to_string());
    if let Error::Usage(_) = e.root() {
        line.push_str(&format!(" (see {tool} --help)"));
    }
    say(&format!("{tool}: {line}"));
}

/// A failure as data, for the records that carry one (coze-workflow's `result` and
/// `error`): the one-line message (secrets scrubbed), the server's code and logid
/// whenever the failure names them (a cut stream's logid too), and the exit code it
/// maps to. coze-chat's answer records hold the same four fields.
pub fn error_json(e: &Error) -> serde_json::Value {
    let api = e.server_answer();
    serde_json::json!({
        "message": redact::scrub(&e.to_string()),
        "code": api.and_then(|a| a.coze_code()).map(serde_json::Value::from)
            .or_else(|| api.and_then(|a| a.oauth_code()).map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        "logid": e.logid(),
        "exit_code": e.exit_code(),
    })
}

/// The `error` record `-o events` ends a failed item with (a `type`, not an `event`:
/// only the server's events are events): `{"type":"error","id":…,"code":…,"msg":…,
/// "logid":…,"exit_code":…}`, the id only when the item has one of its own.
pub fn error_record(id: Option<&serde_json::Value>, e: &Error) -> serde_json::Value {
    let mut r = serde_json::Map::new();
    r.insert("type".into(), "error".into());
    if let Some(id) = id {
        r.insert("id".into(), id.clone());
    }
    let mut data = error_json(e);
    for (k, from) in [
        ("code", "code"),
        ("msg", "message"),
        ("logid", "logid"),
        ("exit_code", "exit_code"),
    ] {
        r.insert(k.into(), data[from].take());
    }
    serde_json::Value::Object(r)
}

/// Writes `text` to stdout (help, version). A closed stdout comes back as the error
/// [`run`] treats as a quiet success, so `coze-chat --help | head -1` cannot panic the
/// way `println!` does.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

/// A grant or a token written to `> file` must not be left for others to read: when
/// stdout is a regular file it is set to 0600 (the shell made it with the umask's
/// mode, 0644 as a rule). Pipes and terminals are left alone. Best effort: a file we
/// may not change is someone else's, and the write itself still tells.
pub fn tighten_stdout_file() {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        let file = std::fs::File::from(fd);
        if file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// `coze-chat 0.1.0 (commit abc1234)`; the commit is baked in at build time when the
/// source is a git checkout.
pub fn version_text(tool: &str, commit: Option<&str>) -> String {
    match commit.filter(|c| !c.is_empty()) {
        Some(c) => format!("{tool} {} (commit {c})", env!("CARGO_PKG_VERSION")),
        None => format!("{tool} {}", env!("CARGO_PKG_VERSION")),
    }
}
