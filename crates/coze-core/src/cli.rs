//! What every coze binary does the same way: the `run` wrapper that turns a `Result`
//! into one stderr line and an exit code, help and version as values, and small flag
//! value parsers shared by all tools.
//!
//! Binaries stay thin: parse flags with lexopt into a plain struct, resolve config once,
//! call the library, and hand the `Result` to [`run`].

use std::borrow::Cow;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::redact;

/// What a parser produced: work to do, or a text to print before anything can fail.
#[derive(Debug)]
pub enum Parsed<T> {
    Run(T),
    Help,
    Version,
}

/// The running tool's name, for lines the library prints itself (warnings).
static TOOL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The name [`run`] was given, or "coze" before it ran.
pub fn tool() -> &'static str {
    TOOL.get().map(String::as_str).unwrap_or("coze")
}

/// One warning line on stderr: `coze-chat: warning: …`, secrets scrubbed.
pub fn warn(text: &str) {
    say(&format!("{}: warning: {}", tool(), redact::scrub(text)));
}

/// Runs a tool's work and translates the outcome: nothing printed on success or a
/// closed stdout; otherwise `tool: message` (secrets scrubbed) and the exit code.
pub fn run(tool: &str, work: impl FnOnce() -> Result<()>) -> ExitCode {
    let _ = TOOL.set(tool.split(' ').next().unwrap_or(tool).to_owned());
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

/// Writes `text` and a newline to stderr in one write(2). `eprintln!` issues a write
/// per formatted piece on the unbuffered stderr, so a line could be split by another
/// process sharing the stream (a BROWSER helper, parallel scripts) and reach a log or
/// a `grep` in pieces. One write of up to PIPE_BUF bytes to a pipe is never split.
///
/// On a terminal the text's control characters are shown, not obeyed ([`visible`]):
/// lines carry the server's words (error messages, follow-up suggestions, a device
/// code), which are not ours to let retitle or clear the person's terminal.
pub fn say(text: &str) {
    let text = if stderr_is_terminal() {
        visible(text)
    } else {
        Cow::Borrowed(text)
    };
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(&text);
    line.push('\n');
    // Nothing sensible is left to do when stderr itself is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Whether stderr is a terminal, asked once.
pub fn stderr_is_terminal() -> bool {
    static TTY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TTY.get_or_init(|| std::io::stderr().is_terminal())
}

/// `text` with its control characters shown instead of obeyed, for a terminal. The
/// bot's answer and the server's messages are untrusted: `ESC ]2;…BEL` would retitle
/// the terminal, `ESC [2J` clear it. Newline and tab stay; the other C0 controls and
/// DEL are written in caret notation (`^[`, `^G`, `^?`, as `cat -v` and `less` do);
/// a C1 control (U+0080 to U+009F, the one-character form of an ESC sequence) as the
/// sequence it stands for (`^[[` for CSI, U+009B). Everything else is unchanged.
pub fn visible(text: &str) -> Cow<'_, str> {
    let shown = |c: char| c == '\n' || c == '\t' || !c.is_control();
    if text.chars().all(shown) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if shown(c) => out.push(c),
            '\x7f' => out.push_str("^?"),
            // C0: ^@ to ^_.
            '\0'..='\x1f' => {
                out.push('^');
                out.push(char::from(c as u8 + 0x40));
            }
            // C1: ESC and the character 0x40 below it.
            c => {
                out.push_str("^[");
                out.push(char::from_u32(c as u32 - 0x40).unwrap_or('?'));
            }
        }
    }
    Cow::Owned(out)
}

/// `eprintln!` as one write: see [`say`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say(&format!($($arg)*))
    };
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
    Short(char),
    Long(String),
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

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
    fn control_characters_are_shown_not_obeyed() {
        assert!(matches!(
            visible("plain 中文\tand\nlines"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            visible("a\x1b]2;pwned\x07\x1b[2Jb\r\x00\x7f"),
            "a^[]2;pwned^G^[[2Jb^M^@^?"
        );
        // C1 controls (two bytes in UTF-8) as the ESC sequences they stand for.
        assert_eq!(
            visible("x\u{9b}31m\u{9d}0;t\u{9c}\u{85}"),
            "x^[[31m^[]0;t^[\\^[E"
        );
        // Neither a visible character nor a line break is touched.
        assert_eq!(visible("é\u{a0}\u{2028}👍"), "é\u{a0}\u{2028}👍");
    }

    #[test]
    fn version_mentions_commit_when_known() {
        assert!(version_text("coze-chat", Some("abc1234")).ends_with("(commit abc1234)"));
        assert!(!version_text("coze-chat", None).contains("commit"));
    }
}
