//! The terminal chat's own lines on stderr: the bot's name in bold, hints and notices
//! dim, each one whole line in one write. Styles only where escape sequences are
//! welcome (stderr a terminal, `TERM` not dumb); the server's words (a bot's name,
//! prologue, suggestions) always go through `support::say::visible` on a terminal, so
//! their control characters are shown, never obeyed.

use std::io::Write;

use coze_core::support::say;

/// How the session's lines look.
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    /// Bold and dim may be written.
    styled: bool,
}

impl Screen {
    /// Styled when `rich` (the line editor runs: the terminal takes escape sequences)
    /// and stderr is that terminal.
    pub fn new(rich: bool) -> Screen {
        Screen {
            styled: rich && say::stderr_is_terminal(),
        }
    }

    /// A line as it is.
    pub fn plain(&self, text: &str) {
        self.line(None, text);
    }

    /// A line in bold.
    pub fn bold(&self, text: &str) {
        self.line(Some("1"), text);
    }

    /// A line in dim, for what is said about the session rather than by the bot.
    pub fn dim(&self, text: &str) {
        self.line(Some("2"), text);
    }

    fn line(&self, style: Option<&str>, text: &str) {
        let Some(style) = style.filter(|_| self.styled) else {
            say::say(text);
            return;
        };
        // `say` would show our own ESC as ^[: the text is made visible here instead,
        // and the style put around it.
        let shown = say::visible(text);
        let line = format!("\x1b[{style}m{shown}\x1b[0m\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
