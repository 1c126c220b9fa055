//! Lines on stderr: [`say`] writes one whole line in one write(2), [`warn`] a warning
//! naming the running tool, and [`visible`] shows a terminal the control characters of
//! untrusted text instead of obeying them. The tool's name is set once by `cli::run`,
//! so library code below the binaries names the tool without being told.
//!
//! On a terminal, stderr may also carry one status line at its bottom (a batch's
//! progress: `cli::progress`), drawn without a newline and redrawn in place. Every
//! write to stderr that goes through here minds it: the line is erased, the text
//! written, the line drawn again below it, all in the same write under one lock, so a
//! warning never lands in the middle of the status and the status never in the middle
//! of a line. Text streamed in pieces ([`raw`]: a chat's reasoning) keeps the status
//! away until its line ends; a question at the terminal holds it off ([`hold_status`]).

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};

use crate::support::redact;

/// The running tool's name, for lines the library prints itself (warnings).
static TOOL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The name the tool's `main` gave `cli::run` (the first word of it), or "coze" before.
pub fn tool() -> &'static str {
    TOOL.get().map(String::as_str).unwrap_or("coze")
}

/// One warning line on stderr: `coze-chat: warning: …`, secrets scrubbed.
pub fn warn(text: &str) {
    say(&format!("{}: warning: {}", tool(), redact::scrub(text)));
}

/// Names the running tool for [`tool`]; the first call wins.
pub fn set_tool(name: &str) {
    let _ = TOOL.set(name.to_owned());
}

/// Writes `text` and a newline to stderr in one write(2). `eprintln!` issues a write
/// per formatted piece on the unbuffered stderr, so a line could be split by another
/// process sharing the stream (a BROWSER helper, parallel scripts) and reach a log or
/// a `grep` in pieces. One write of up to PIPE_BUF bytes to a pipe is never split.
///
/// On a terminal the text's control characters are shown, not obeyed ([`visible`]):
/// lines carry the server's words (error messages, follow-up suggestions, a device
/// code), which are not ours to let retitle or clear the person's terminal.
///
/// A status line on the screen is erased first and drawn again after the line, in the
/// same write (see the module's note).
pub fn say(text: &str) {
    let text = if stderr_is_terminal() {
        visible(text)
    } else {
        Cow::Borrowed(text)
    };
    let mut screen = screen();
    let bytes = screen.line(&text);
    write(&bytes);
}

/// Writes `text` to stderr as it is, no newline added: a piece of a line streamed
/// (a chat's reasoning as it comes, the escape sequences that dim it) or a whole line
/// of the caller's making. The caller has made the text safe to show ([`visible`]).
/// While the text leaves a line open, the status line waits for its end.
pub fn raw(text: &str) {
    let mut screen = screen();
    let bytes = screen.raw(text);
    write(&bytes);
}

/// Opens the status line: [`set_status`] draws from now on, until [`end_status`]. Only
/// for a stderr that is a terminal.
pub fn begin_status() {
    screen().begin();
}

/// Shows `line` as the status line (replacing the one shown), unless none is open
/// ([`begin_status`]) or it must wait (a line left open by [`raw`], a
/// [`hold_status`]), when it is kept to be drawn then. `line` must fit the terminal's
/// width (a wrapped line cannot be erased with one `\r`) and hold no newline.
pub fn set_status(line: &str) {
    let mut screen = screen();
    let bytes = screen.set(line);
    write(&bytes);
}

/// Erases the status line and closes it: a [`set_status`] after this draws nothing
/// (a ticker thread that draws once more is harmless).
pub fn end_status() {
    let mut screen = screen();
    let bytes = screen.end();
    write(&bytes);
}

/// Keeps the status line off the screen until the returned guard is dropped: for a
/// prompt typed at the terminal (`cli::ask`), which the status would overwrite.
pub fn hold_status() -> StatusHold {
    let mut screen = screen();
    let bytes = screen.hold();
    write(&bytes);
    StatusHold(())
}

/// The status line is held off while this lives ([`hold_status`]).
#[must_use = "the status line comes back when the hold is dropped"]
pub struct StatusHold(());

impl Drop for StatusHold {
    fn drop(&mut self) {
        let mut screen = screen();
        let bytes = screen.release();
        write(&bytes);
    }
}

/// Moves the cursor to the start of the line and erases the line.
const ERASE: &str = "\r\x1b[K";

/// What this process has put at the bottom of stderr, for the status line: kept under
/// one lock with every write made here, so that erasing, writing and redrawing never
/// interleave with another thread's.
#[derive(Debug)]
struct Screen {
    /// Between [`begin_status`] and [`end_status`].
    open: bool,
    /// The status line to show; empty: none yet.
    status: String,
    /// The status line is on the screen, the cursor after it.
    drawn: bool,
    /// Text from [`raw`] left a line without its end: the status waits for it.
    partial: bool,
    /// [`StatusHold`]s alive: the status waits for them.
    holds: u32,
}

static SCREEN: Mutex<Screen> = Mutex::new(Screen::new());

fn screen() -> MutexGuard<'static, Screen> {
    SCREEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// One write(2) of `bytes` to stderr (none when empty).
fn write(bytes: &str) {
    if !bytes.is_empty() {
        // Nothing sensible is left to do when stderr itself is gone.
        let _ = std::io::stderr().lock().write_all(bytes.as_bytes());
    }
}

/// Each operation returns the bytes to write, in order, as one write.
impl Screen {
    const fn new() -> Screen {
        Screen {
            open: false,
            status: String::new(),
            drawn: false,
            partial: false,
            holds: 0,
        }
    }

    fn erase(&mut self, out: &mut String) {
        if self.drawn {
            out.push_str(ERASE);
            self.drawn = false;
        }
    }

    fn redraw(&mut self, out: &mut String) {
        let may = self.open && !self.partial && self.holds == 0;
        if may && !self.drawn && !self.status.is_empty() {
            out.push_str(&self.status);
            self.drawn = true;
        }
    }

    fn line(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 1);
        self.erase(&mut out);
        out.push_str(text);
        out.push('\n');
        self.partial = false;
        self.redraw(&mut out);
        out
    }

    fn raw(&mut self, text: &str) -> String {
        let mut out = String::new();
        self.erase(&mut out);
        out.push_str(text);
        if !text.is_empty() {
            self.partial = !text.ends_with('\n');
        }
        self.redraw(&mut out);
        out
    }

    fn begin(&mut self) {
        self.open = true;
        self.status.clear();
    }

    fn set(&mut self, line: &str) -> String {
        let mut out = String::new();
        if !self.open || (self.drawn && self.status == line) {
            return out;
        }
        self.status.clear();
        self.status.push_str(line);
        self.erase(&mut out);
        self.redraw(&mut out);
        out
    }

    fn end(&mut self) -> String {
        let mut out = String::new();
        self.erase(&mut out);
        self.open = false;
        self.status.clear();
        out
    }

    fn hold(&mut self) -> String {
        let mut out = String::new();
        self.erase(&mut out);
        self.holds += 1;
        out
    }

    fn release(&mut self) -> String {
        let mut out = String::new();
        self.holds = self.holds.saturating_sub(1);
        self.redraw(&mut out);
        out
    }
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
        $crate::support::say::say(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a status line, a line is the text and its newline, nothing more (a pipe
    /// gets exactly what it got before there was a status line).
    #[test]
    fn without_a_status_a_line_is_only_the_line() {
        let mut s = Screen::new();
        assert_eq!(s.line("a"), "a\n");
        assert_eq!(s.set("status"), "", "not open: nothing drawn");
        assert_eq!(s.line("b"), "b\n");
        assert_eq!(s.raw("c"), "c");
        assert_eq!(s.end(), "");
    }

    /// A line said while the status shows erases it, is written whole on a line of its
    /// own, and the status is drawn again below it, in one write.
    #[test]
    fn a_line_goes_above_the_status() {
        let mut s = Screen::new();
        s.begin();
        assert_eq!(s.set("3/5 done"), "3/5 done");
        assert_eq!(s.set("3/5 done"), "", "the same line is not drawn again");
        assert_eq!(s.set("4/5 done"), "\r\x1b[K4/5 done");
        assert_eq!(s.line("tool: warning"), "\r\x1b[Ktool: warning\n4/5 done");
        assert_eq!(s.end(), "\r\x1b[K");
        assert_eq!(s.set("5/5 done"), "", "closed: a late tick draws nothing");
        assert_eq!(s.line("summary"), "summary\n");
    }

    /// Streamed text keeps the status away until its line ends, and the status drawn
    /// meanwhile is kept for then; a hold keeps it away until released.
    #[test]
    fn a_streamed_line_or_a_hold_keeps_the_status_away() {
        let mut s = Screen::new();
        s.begin();
        assert_eq!(s.set("1/5"), "1/5");
        assert_eq!(s.raw("\x1b[2mthinking"), "\r\x1b[K\x1b[2mthinking");
        assert_eq!(s.set("2/5"), "", "not over an open line");
        assert_eq!(s.raw(" more"), " more");
        assert_eq!(s.raw(""), "", "nothing written changes nothing");
        assert_eq!(s.raw("\x1b[0m\n"), "\x1b[0m\n2/5");
        let hold = s.hold();
        assert_eq!(hold, "\r\x1b[K");
        assert_eq!(s.set("3/5"), "");
        assert_eq!(s.line("the bot asks: ?"), "the bot asks: ?\n");
        let again = s.hold();
        assert_eq!(again, "", "holds nest");
        assert_eq!(s.release(), "");
        // The prompt and the typed answer (its newline the terminal's echo) went by
        // meanwhile; the status comes back below them.
        assert_eq!(s.release(), "3/5");
        assert_eq!(s.release(), "", "one release too many changes nothing");
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
}
