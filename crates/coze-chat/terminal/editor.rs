//! Reading what the person types at the prompt: through rustyline (line editing,
//! history, bracketed paste) on a terminal that takes escape sequences, else plain
//! lines (`TERM` unset or `dumb`: a prompt and nothing else is written).
//!
//! Either way a line ending in `\` goes on on the next line, and what is read is one
//! prompt: the lines joined by newlines. A paste with newlines stays in rustyline's
//! buffer as one prompt until Enter. Ctrl-D at an empty prompt ends; Ctrl-C clears a
//! typed line and ends at an empty one (plain lines: the terminal has dropped what was
//! typed when Ctrl-C comes, so Ctrl-C ends there).
//!
//! While rustyline waits the terminal is in raw mode: a SIGTERM or SIGHUP then puts
//! back the mode the session began with before the process ends, or the shell after it
//! would get a terminal that does not echo.

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::time::Duration;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{History as _, MemHistory};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{
    Cmd, ConditionalEventHandler, Config, Event, EventContext, EventHandler, KeyEvent, Movement,
    RepeatCount,
};

use coze_core::cli::interrupt;
use coze_core::{Error, Result};

use super::history::KEEP;
use crate::TOOL;

/// What the person did at the prompt.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    /// A prompt (its continuation lines joined), as typed.
    Line(String),
    /// Ctrl-D, or Ctrl-C at an empty prompt.
    End,
}

/// The prompt reader.
pub enum Editor {
    /// Line editing.
    Rich(Box<Rich>),
    /// Plain lines.
    Plain(Plain),
}

/// Whether `term` (the `TERM` variable) takes a line editor's escape sequences: not
/// unset, `dumb`, or the two others rustyline knows cannot (`cons25`, `emacs`).
pub fn capable(term: Option<&str>) -> bool {
    match term {
        None => false,
        Some(t) => !["", "dumb", "cons25", "emacs"]
            .iter()
            .any(|no| t.eq_ignore_ascii_case(no)),
    }
}

/// rustyline, and the terminal's mode to put back on SIGTERM.
pub struct Rich {
    ed: rustyline::Editor<Lines, MemHistory>,
    saved: Option<Termios>,
}

impl Editor {
    /// A reader for a terminal of kind `term`, recalling `history` (oldest first); at
    /// most `max` bytes a prompt.
    pub fn open(term: Option<&str>, history: &[String], max: usize) -> Editor {
        if capable(term) {
            if let Ok(ed) = rich(history) {
                let saved = Termios::get();
                return Editor::Rich(Box::new(Rich { ed, saved }));
            }
        }
        Editor::Plain(Plain::new(max))
    }

    /// Whether escape sequences may be written (not plain lines).
    pub fn rich(&self) -> bool {
        matches!(self, Editor::Rich(..))
    }

    /// Shows `prompt` and reads one prompt.
    pub fn read(&mut self, prompt: &str) -> Result<Typed> {
        match self {
            Editor::Rich(rich) => {
                let Rich { ed, saved } = &mut **rich;
                let saved = &*saved;
                let read = interrupt::guarded(
                    TOOL,
                    || {
                        if let Some(t) = saved {
                            t.set();
                        }
                    },
                    || ed.readline(prompt),
                );
                match read {
                    Ok(line) => Ok(Typed::Line(join(&line))),
                    Err(rustyline::error::ReadlineError::Eof)
                    | Err(rustyline::error::ReadlineError::Interrupted) => Ok(Typed::End),
                    Err(e) => Err(Error::io("the terminal", io::Error::other(e.to_string()))),
                }
            }
            Editor::Plain(plain) => plain.read(prompt),
        }
    }

    /// Adds `entry` to what Up recalls in this session.
    pub fn remember(&mut self, entry: &str) {
        if let Editor::Rich(rich) = self {
            let _ = rich.ed.history_mut().add(entry);
        }
    }
}

/// rustyline, set up: history in memory (the file is ours), Ctrl-C as a shell has it.
fn rich(history: &[String]) -> rustyline::Result<rustyline::Editor<Lines, MemHistory>> {
    let config = Config::builder()
        .max_history_size(KEEP)?
        .history_ignore_dups(true)?
        .auto_add_history(false)
        .bracketed_paste(true)
        .build();
    let history_kept = MemHistory::with_config(&config);
    let mut ed = rustyline::Editor::with_history(config, history_kept)?;
    for entry in history {
        let _ = ed.history_mut().add(entry);
    }
    ed.set_helper(Some(Lines));
    ed.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC)),
    );
    Ok(ed)
}

/// The lines of a prompt, as typed, into the prompt: each `\` before a newline (the
/// line went on) taken out, and the trailing newline of a paste dropped.
pub fn join(typed: &str) -> String {
    typed
        .replace("\\\n", "\n")
        .trim_end_matches(['\n', '\r'])
        .to_owned()
}

/// rustyline's helper: only the validator does something (a trailing `\` asks for
/// another line).
pub struct Lines;

impl Completer for Lines {
    type Candidate = String;
}

impl Hinter for Lines {
    type Hint = String;
}

impl Highlighter for Lines {}

impl Validator for Lines {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if ctx.input().ends_with('\\') {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl rustyline::Helper for Lines {}

/// Ctrl-C: clears a typed line (as a shell does), ends at an empty one.
struct CtrlC;

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext<'_>) -> Option<Cmd> {
        Some(if ctx.line().is_empty() {
            Cmd::Interrupt
        } else {
            Cmd::Kill(Movement::WholeBuffer)
        })
    }
}

/// Plain lines from stdin, read as they come: stdin is polled, so Ctrl-C (a signal
/// here: the terminal is not in raw mode) is seen while nothing is typed.
pub struct Plain {
    buf: Vec<u8>,
    eof: bool,
    max: usize,
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 0x1;

extern "C" {
    // libc's poll(2); std links libc already. nfds_t is an unsigned long on Linux.
    fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout: i32) -> i32;
}

impl Plain {
    fn new(max: usize) -> Plain {
        Plain {
            buf: Vec::new(),
            eof: false,
            max,
        }
    }

    /// Writes `prompt` (on stdout, as rustyline does) and reads one prompt, its
    /// continuation lines after `... `.
    fn read(&mut self, prompt: &str) -> Result<Typed> {
        let mut text = String::new();
        let mut shown = prompt;
        loop {
            write_prompt(shown);
            let (line, interrupted) = interrupt::guarded_step(TOOL, || {}, || self.line());
            if interrupted {
                // The cursor is still after the prompt.
                println!();
                return Ok(Typed::End);
            }
            let Some(line) = line? else {
                if !text.is_empty() {
                    return Ok(Typed::Line(text));
                }
                println!();
                return Ok(Typed::End);
            };
            let line = line.trim_end_matches(['\n', '\r']);
            match line.strip_suffix('\\') {
                Some(head) => {
                    text.push_str(head);
                    text.push('\n');
                    shown = "... ";
                }
                None => {
                    text.push_str(line);
                    return Ok(Typed::Line(text));
                }
            }
        }
    }

    /// The next line (None at the end of input, or when a signal came).
    fn line(&mut self) -> Result<Option<String>> {
        // stdin unbuffered, and not closed when this is dropped.
        // SAFETY: fd 0 is open for the life of the process.
        let mut stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let line = std::mem::replace(&mut self.buf, rest);
                return text(line).map(Some);
            }
            if self.eof {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => text(std::mem::take(&mut self.buf)).map(Some),
                };
            }
            if self.buf.len() > self.max {
                self.buf.clear();
                return Err(Error::BadInput {
                    line: None,
                    message: format!("a line longer than {} bytes (--max-line-bytes)", self.max),
                });
            }
            if interrupt::interrupted() {
                return Ok(None);
            }
            let mut fds = [PollFd {
                fd: 0,
                events: POLLIN,
                revents: 0,
            }];
            let timeout = Duration::from_millis(50).as_millis() as i32;
            // SAFETY: `fds` is a valid array of one pollfd for the whole call, and poll
            // writes only its `revents`.
            let n = unsafe { poll(fds.as_mut_ptr(), 1, timeout) };
            if n <= 0 {
                // Nothing yet, or a signal (seen at the top of the loop).
                continue;
            }
            let mut chunk = [0u8; 4096];
            match stdin.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("stdin", e)),
            }
        }
    }
}

/// A line read, as text (what is not UTF-8 is replaced: it was typed, not sent).
fn text(bytes: Vec<u8>) -> Result<String> {
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `prompt` on stdout without a newline, flushed.
fn write_prompt(prompt: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(prompt.as_bytes()).and_then(|()| out.flush());
}

/// A terminal's mode (`struct termios`, kept whole without being read: room for any
/// libc's layout).
pub struct Termios([u64; 32]);

extern "C" {
    // libc's; the struct is passed by address, as the bytes it is here.
    fn tcgetattr(fd: i32, termios: *mut std::ffi::c_void) -> i32;
    fn tcsetattr(fd: i32, optional_actions: i32, termios: *const std::ffi::c_void) -> i32;
}

impl Termios {
    /// Stdin's mode now, if it is a terminal.
    fn get() -> Option<Termios> {
        let mut t = Termios([0; 32]);
        // SAFETY: `t` is larger than any libc's struct termios and lives for the call.
        (unsafe { tcgetattr(0, t.0.as_mut_ptr().cast()) } == 0).then_some(t)
    }

    /// Puts this mode back on stdin, at once (TCSANOW).
    fn set(&self) {
        // SAFETY: `self` holds what tcgetattr wrote; the call only reads it.
        unsafe {
            tcsetattr(0, 0, self.0.as_ptr().cast());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_backslash_joins_lines() {
        assert_eq!(join("one\\\ntwo\\\nthree"), "one\ntwo\nthree");
        assert_eq!(join("pasted\nlines\n"), "pasted\nlines");
        assert_eq!(join("C:\\path"), "C:\\path");
    }

    #[test]
    fn which_terminals_get_line_editing() {
        assert!(capable(Some("xterm-256color")));
        assert!(capable(Some("screen")));
        for t in [None, Some(""), Some("dumb"), Some("DUMB"), Some("emacs")] {
            assert!(!capable(t), "{t:?}");
        }
    }
}
