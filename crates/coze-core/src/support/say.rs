//! Lines on stderr: [`say`] writes one whole line in one write(2), [`warn`] a warning
//! naming the running tool, and [`visible`] shows a terminal the control characters of
//! untrusted text instead of obeying them. The tool's name is set once by `cli::run`,
//! so library code below the binaries names the tool without being told.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

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
        $crate::support::say::say(&format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

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
