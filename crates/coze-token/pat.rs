//! `coze-token --pat`: a personal access token into a token record, so a profile can
//! hold one with the server it belongs to (a self-hosted Coze Studio has PATs only).
//!
//! The token comes from stdin, never from argv (where `ps` and shell history would show
//! it). On a terminal it is asked for with echo off, and echo is restored even when the
//! person presses Ctrl-C at the prompt.

use std::io::{self, BufRead, IsTerminal};
use std::process::{Command, Stdio};

use serde_json::Map;

use coze_core::cli::interrupt;
use coze_core::protocol::Token;
use coze_core::support::{redact, url};
use coze_core::{Error, Result};

use crate::flags::Flags;
use crate::TOOL;

/// The longest line taken as a token: anything longer is not one.
const MAX_LEN: usize = 4096;

/// Reads the PAT and makes its record for `api_base`.
pub fn read(f: &Flags, api_base: &str) -> Result<Token> {
    let stdin = io::stdin();
    let line = if stdin.is_terminal() {
        interrupt::guarded(
            TOOL,
            || {
                set_echo(true);
            },
            || prompt(&stdin),
        )?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .take_line(&mut line)
            .map_err(|e| Error::BadInput {
                line: Some(1),
                message: format!("reading the token: {e}"),
            })?;
        line
    };
    record(&line, api_base, f.api.net.allow_http)
}

/// The token record for `line` (one PAT), remembering `api_base` and, when the user
/// opted in for a plain-http base, that it may be used over plain http.
pub fn record(line: &str, api_base: &str, allow_http: bool) -> Result<Token> {
    let token = line.trim();
    if token.is_empty() {
        return Err(Error::BadInput {
            line: Some(1),
            message: "no token on stdin (one line: the personal access token)".into(),
        });
    }
    if token.contains(char::is_whitespace) || token.len() > MAX_LEN {
        return Err(Error::BadInput {
            line: Some(1),
            message: "not a token: one line with no spaces is expected".into(),
        });
    }
    redact::register(token);
    url::check_transport(api_base, allow_http).map_err(Error::Usage)?;
    if !token.starts_with("pat_") {
        coze_core::support::say::warn(
            "the token does not start with pat_: saved as given (a bare access token \
             expires, and cannot be refreshed)",
        );
    }
    let mut extra = Map::new();
    if allow_http && url::is_plain_remote(api_base) {
        // The user allowed plain http for this server once; every tool using this
        // record may then talk to it (and warns each run).
        extra.insert("allow_http".into(), true.into());
    }
    Ok(Token {
        access_token: token.to_owned(),
        token_type: "Bearer".into(),
        expires_at: 0,
        refresh_token: None,
        client_id: None,
        base_url: Some(url::trim_base(api_base).to_owned()),
        extra,
    })
}

/// Asks on the terminal with echo off.
fn prompt(stdin: &io::Stdin) -> Result<String> {
    // Echo goes off before the prompt shows, so nothing typed after it is echoed.
    let echo_off = set_echo(false);
    let hidden = if echo_off {
        "it is not shown"
    } else {
        "it will show"
    };
    coze_core::support::say::say(&format!(
        "{TOOL}: paste the personal access token ({hidden}), then Enter:"
    ));
    let mut line = String::new();
    let read = stdin.lock().take_line(&mut line);
    if echo_off {
        set_echo(true);
        coze_core::support::say::say("");
    }
    read.map_err(|e| Error::BadInput {
        line: Some(1),
        message: format!("reading the token: {e}"),
    })?;
    Ok(line)
}

/// Turns the terminal's echo on or off with stty(1) (POSIX, on every system these
/// tools run on); true when it worked.
fn set_echo(on: bool) -> bool {
    Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One line, at most [`MAX_LEN`] bytes read (a file of garbage is not read whole).
trait TakeLine {
    fn take_line(&mut self, line: &mut String) -> io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(&mut self, line: &mut String) -> io::Result<usize> {
        io::Read::take(self, MAX_LEN as u64 + 1).read_line(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pat_record_remembers_its_server() {
        let t = record("pat_0123456789abcdef\n", "https://studio.corp/", false).unwrap();
        assert_eq!(t.access_token, "pat_0123456789abcdef");
        assert_eq!(t.base_url.as_deref(), Some("https://studio.corp"));
        assert_eq!((t.expires_at, t.refresh_token.is_none()), (0, true));
        assert!(t.extra.is_empty());
        let t = record("pat_0123456789abcdef", "http://studio.corp:8888", true).unwrap();
        assert_eq!(t.extra["allow_http"], true);
        let e = record("pat_0123456789abcdef", "http://studio.corp:8888", false).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let t = record("pat_0123456789abcdef", "http://127.0.0.1:9", true).unwrap();
        assert!(t.extra.is_empty(), "loopback needs no opt-in");
        for bad in ["", "  \n", "pat_a pat_b"] {
            assert_eq!(record(bad, "https://x", false).unwrap_err().exit_code(), 3);
        }
    }
}
