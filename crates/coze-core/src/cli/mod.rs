//! Layer 9, what every coze binary does the same way: the `run` wrapper that turns a
//! `Result` into one stderr line and an exit code, help and version as values, and
//! small flag value parsers shared by all tools (here); the flags every API tool shares
//! (`flags`) and the session they open (`session`); Ctrl-C, SIGTERM and SIGHUP for a
//! tool holding a chat open (`interrupt`); a reader of stdout gone away (`stdout_watch`);
//! a batch tool's run inside both, with its summary (`batch`).
//!
//! Binaries stay thin: parse flags with lexopt into a plain struct, resolve config once,
//! call the library, and hand the `Result` to [`run`].

pub mod batch;
pub mod flags;
pub mod interrupt;
pub mod session;
pub mod stdout_watch;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

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

/// Runs a tool's work and translates the outcome: nothing printed on success or a
/// closed stdout; otherwise `tool: message` (secrets scrubbed) and the exit code.
pub fn run(tool: &str, work: impl FnOnce() -> Result<()>) -> ExitCode {
    say::set_tool(tool.split(' ').next().unwrap_or(tool));
    match work() {
        Ok(()) => ExitCode::SUCCESS,
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

/// A lexopt argument that no longer borrows the parser, so a shared flag helper can
/// take the parser to read the flag's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `-x`: the letter.
    Short(char),
    /// `--name`: the name without its dashes.
    Long(String),
    /// A positional argument.
    Value(OsString),
}

impl From<lexopt::Arg<'_>> for Arg {
    fn from(a: lexopt::Arg<'_>) -> Arg {
        match a {
            lexopt::Arg::Short(c) => Arg::Short(c),
            lexopt::Arg::Long(l) => Arg::Long(l.to_owned()),
            lexopt::Arg::Value(v) => Arg::Value(v),
        }
    }
}

impl Arg {
    /// The usage error for an argument nobody took.
    pub fn unexpected(&self) -> Error {
        match self {
            Arg::Short(c) => Error::usage(format!("invalid option '-{c}'")),
            Arg::Long(l) => Error::usage(format!("invalid option '--{l}'")),
            Arg::Value(v) => Error::usage(format!("unexpected argument {:?}", v.to_string_lossy())),
        }
    }
}

/// Turns a lexopt error into a usage error (exit 2, not the 1 lexopt would give).
pub fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}

/// The value of the option just read; a missing one is a usage error.
pub fn value(p: &mut lexopt::Parser) -> Result<OsString> {
    p.value().map_err(usage)
}

/// The value of a flag as UTF-8, or a usage error naming the flag.
pub fn string(flag: &str, value: OsString) -> Result<String> {
    value
        .into_string()
        .map_err(|v| Error::usage(format!("{flag}: not valid UTF-8: {v:?}")))
}

/// A UTF-8 value with something in it besides spaces.
pub fn nonempty(flag: &str, value: OsString) -> Result<String> {
    let s = string(flag, value)?;
    if s.trim().is_empty() {
        return Err(Error::usage(format!("{flag}: must not be empty")));
    }
    Ok(s)
}

/// `KEY=VALUE` as given to `--var` / `--meta`.
pub fn key_value(flag: &str, value: OsString) -> Result<(String, String)> {
    let s = string(flag, value)?;
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Error::usage(format!(
            "{flag}: expected KEY=VALUE, got {s:?}"
        ))),
    }
}

/// A number of seconds (fractions allowed: `0.5`).
pub fn seconds(flag: &str, value: OsString) -> Result<Duration> {
    let s = string(flag, value)?;
    match s.parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(Error::usage(format!(
            "{flag}: expected a number of seconds, got {s:?}"
        ))),
    }
}

/// A whole number.
pub fn number<T: std::str::FromStr>(flag: &str, value: OsString) -> Result<T> {
    let s = string(flag, value)?;
    s.parse::<T>()
        .map_err(|_| Error::usage(format!("{flag}: expected a whole number, got {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_parsers_name_the_flag() {
        assert_eq!(
            key_value("--var", "a=b=c".into()).unwrap(),
            ("a".into(), "b=c".into())
        );
        let e = key_value("--var", "=x".into()).unwrap_err();
        assert_eq!(e.to_string(), "--var: expected KEY=VALUE, got \"=x\"");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            seconds("--timeout", "1.5".into()).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(seconds("--timeout", "-1".into()).is_err());
        assert_eq!(number::<u32>("--limit", "7".into()).unwrap(), 7);
        assert!(number::<u32>("--limit", "x".into()).is_err());
        assert_eq!(nonempty("--bot", "7".into()).unwrap(), "7");
        let e = nonempty("--bot", "  ".into()).unwrap_err();
        assert_eq!(e.to_string(), "--bot: must not be empty");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn version_mentions_commit_when_known() {
        assert!(version_text("coze-chat", Some("abc1234")).ends_with("(commit abc1234)"));
        assert!(!version_text("coze-chat", None).contains("commit"));
    }
}
