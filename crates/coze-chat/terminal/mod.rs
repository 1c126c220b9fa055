//! The terminal chat: `coze-chat --bot ID` with no PROMPT, its stdin and stdout a
//! terminal, is a conversation with a person rather than a filter of lines. Used by
//! coze-chat only, so it lives here: `session` (the loop: a prompt, its answer through
//! `ask::Chats`, the follow-ups numbered, the slash commands; Ctrl-C during an answer
//! cancels it and the session goes on), `editor` (rustyline, or plain lines for a dumb
//! terminal), `history` (the 0600 history file), `intro` (the bot's name, prologue and
//! suggested questions), `commands` (what a typed line means), `screen` (its own
//! lines on stderr, styled where the terminal takes it).
//!
//! Nothing of it happens on a pipe or a file, nor when a flag asks for what a
//! pipeline does (`-o events`/`-o answers`, `--jobs`, `--resume`, `--summary`): those
//! read stdin's lines as they always did.

mod commands;
mod editor;
mod history;
mod intro;
mod screen;
mod session;

use std::io::IsTerminal;

pub use session::{run, Setup};

use crate::flags::{Flags, Mode, Source};

/// Whether this run is a terminal chat: no PROMPT, stdin and stdout a terminal, text
/// output, and none of the batch flags.
pub fn wanted(f: &Flags) -> bool {
    f.source == Source::Lines
        && f.mode.unwrap_or(Mode::Text) == Mode::Text
        && f.jobs == 1
        && f.resume.is_none()
        && !f.summary
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
}
