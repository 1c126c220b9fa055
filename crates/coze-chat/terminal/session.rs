//! The session: the bot's introduction, then prompt after prompt until the person ends
//! it, each asked through coze-chat's own chat path (`ask::Chats`, one job at a time,
//! printed in text mode), and at the end the command that continues the conversation.
//!
//! An answer runs under `interrupt::guarded_step`: Ctrl-C cancels its chat on the
//! server (as it does in a pipeline) and stops printing it, and the session goes on in
//! the same conversation. A failed prompt is reported in its one line and the session
//! goes on, unless the credentials failed (every later prompt would too).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use coze_core::api::files;
use coze_core::api::Client;
use coze_core::batch::Task;
use coze_core::cli::{self, interrupt};
use coze_core::config::Env;
use coze_core::error::exit;
use coze_core::protocol::Attachment;
use coze_core::{Error, Result};

use super::commands::{self, Action};
use super::editor::{Editor, Typed};
use super::history::{self, History};
use super::intro;
use super::screen::Screen;
use crate::ask::Chats;
use crate::input;
use crate::TOOL;

/// The prompt marker.
const PROMPT: &str = "> ";

/// What a session needs from the run.
pub struct Setup<'a> {
    pub chats: Chats<'a>,
    pub client: &'a Client<'a>,
    /// The bot (`--bot`, `COZE_BOT_ID`): its introduction, and the command that
    /// continues.
    pub bot: Option<&'a str>,
    /// `--workflow` and `--app`: a chatflow answers (no introduction).
    pub workflow: Option<&'a str>,
    pub app: Option<&'a str>,
    /// `--attach`: sent with every prompt.
    pub attach: &'a [Attachment],
    /// `--new-each`: every prompt in a new conversation.
    pub new_each: bool,
    pub env: &'a Env,
    /// `--max-line-bytes`: the longest prompt taken.
    pub max_line: usize,
}

/// Runs the session; its exit status (0, or that of the failure that ended it).
pub fn run(mut setup: Setup<'_>) -> Result<u8> {
    let (mut history, recalled) = match history::path(setup.env) {
        Some(path) => History::open(&path),
        None => (History::none(), Vec::new()),
    };
    let mut editor = Editor::open(setup.env.term.as_deref(), &recalled, setup.max_line);
    let screen = Screen::new(editor.rich());
    setup.chats.terminal = Some(editor.rich());
    let s = &setup;
    let mut choices = match (s.workflow, s.bot) {
        (None, Some(bot)) => introduce(s.client, bot, screen)?,
        _ => Vec::new(),
    };
    let numbers = if choices.is_empty() {
        ""
    } else {
        "a number asks that question; "
    };
    screen.dim(&format!("({numbers}/help lists the commands; Ctrl-D ends)"));
    let mut next: Vec<Attachment> = Vec::new();
    let status = loop {
        let typed = match editor.read(PROMPT)? {
            Typed::End => break exit::OK,
            Typed::Line(t) => t,
        };
        let action = commands::parse(&typed, &choices);
        // What Up recalls: the question a number asked, else the line as typed.
        let entry = match &action {
            Action::Nothing => None,
            Action::Ask(text) | Action::Pick(text) => Some(text.clone()),
            _ => Some(typed.trim().to_owned()),
        };
        if let Some(entry) = entry {
            editor.remember(&entry);
            history.save(&entry);
        }
        if let Action::Pick(question) = &action {
            // Under the number typed, the question it asks.
            screen.dim(&format!("  {question}"));
        }
        match action {
            Action::Nothing => {}
            Action::Exit => break exit::OK,
            Action::Help => {
                for (what, does) in commands::HELP {
                    screen.plain(&format!("  {what:<14} {does}"));
                }
            }
            Action::New => {
                *s.chats
                    .conversation
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                choices.clear();
                screen.dim("(the next prompt starts a new conversation)");
            }
            Action::Attach(spec) => match attachment(spec, s) {
                Ok(a) => {
                    next.push(a);
                    screen.dim(&format!("({spec} goes with the next prompt)"));
                }
                Err(why) => screen.dim(&format!("(not attached: {why})")),
            },
            Action::Unknown(cmd) => {
                screen.dim(&format!("(no command {cmd}; /help lists them)"));
            }
            Action::Pick(text) | Action::Ask(text) => {
                let mut attachments = s.attach.to_vec();
                attachments.append(&mut next);
                match answer(s, &text, attachments, screen)? {
                    Answered::FollowUps(f) => choices = f,
                    Answered::Stopped => choices.clear(),
                    Answered::Failed(e) if e.exit_code() == exit::AUTH => {
                        break exit::AUTH;
                    }
                    Answered::Failed(_) => {}
                    Answered::Gone => return Ok(exit::OK),
                }
            }
        }
    };
    farewell(s, screen);
    Ok(status)
}

/// Shows the bot's introduction; returns its suggested questions (numbered on screen).
fn introduce(client: &Client<'_>, bot: &str, screen: Screen) -> Result<Vec<String>> {
    let intro = match intro::fetch(client, bot)? {
        Ok(intro) => intro,
        Err(why) => {
            screen.dim(&why);
            return Ok(Vec::new());
        }
    };
    if !intro.name.is_empty() {
        screen.bold(&intro.name);
    }
    if !intro.prologue.is_empty() {
        screen.plain(&intro.prologue);
    }
    for (i, q) in intro.questions.iter().enumerate() {
        screen.plain(&format!("  {}. {q}", i + 1));
    }
    Ok(intro.questions)
}

/// How one prompt went.
enum Answered {
    /// Answered; its follow-up suggestions, numbered on screen.
    FollowUps(Vec<String>),
    /// Ctrl-C stopped it.
    Stopped,
    /// It failed (reported already).
    Failed(Error),
    /// The terminal went away.
    Gone,
}

/// Asks `text` with `attachments` in the conversation in force, printing the answer.
fn answer(
    s: &Setup<'_>,
    text: &str,
    attachments: Vec<Attachment>,
    screen: Screen,
) -> Result<Answered> {
    let mut prompt = input::plain(text);
    prompt.attachments = attachments;
    let job = s.chats.job(None, Box::new(prompt));
    let open = AtomicBool::new(true);
    let (asked, stopped) = interrupt::guarded_step(
        TOOL,
        || {
            // Nothing more of this answer is shown, a wait for a busy conversation
            // ends, and its chat is cancelled.
            open.store(false, Ordering::SeqCst);
            s.client.http.stop();
            Task::cancel(&s.chats);
        },
        || {
            let mut out = Gate { open: &open };
            s.chats.ask_job(&job, &mut out)
        },
    );
    if stopped {
        s.client.http.go_on();
        s.chats.go_on();
        // A first chat stopped before its end did not make its conversation the
        // session's: the next prompt goes on in it all the same.
        let mut current = s
            .chats
            .conversation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if current.is_none() && !s.new_each {
            *current = s.chats.latest_conversation();
        }
        drop(current);
        // The answer may have left the cursor mid-line.
        screen.plain("");
        screen.dim("(stopped)");
        return Ok(Answered::Stopped);
    }
    match asked {
        Ok((outcome, state)) => match outcome.error {
            Some(e) => {
                cli::report(TOOL, &e);
                Ok(Answered::Failed(e))
            }
            None => Ok(Answered::FollowUps(state.follow_ups)),
        },
        Err(e) if e.is_closed_pipe() => Ok(Answered::Gone),
        Err(e) => Err(e),
    }
}

/// Stdout while an answer prints; once Ctrl-C closes it, a write fails as a closed
/// pipe does, which ends the chat's reading at its next event.
struct Gate<'a> {
    open: &'a AtomicBool,
}

impl Gate<'_> {
    fn check(&self) -> io::Result<()> {
        match self.open.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the answer was stopped",
            )),
        }
    }
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        io::stdout().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        io::stdout().flush()
    }
}

/// `/attach`'s file, checked now (as `--attach`'s are before anything is asked).
fn attachment(spec: &str, s: &Setup<'_>) -> std::result::Result<Attachment, String> {
    if s.workflow.is_some() {
        return Err("a chatflow takes text only".into());
    }
    // `~/` as a shell would have it: the line is not a shell's.
    let spec = match (spec.strip_prefix("~/"), &s.env.home) {
        (Some(rest), Some(home)) => home.join(rest).to_string_lossy().into_owned(),
        _ => spec.to_owned(),
    };
    let a = Attachment::from_flag(&spec);
    a.check()?;
    if let Some(path) = &a.path {
        files::inspect(path, files::Limit::API).map_err(|why| format!("{spec}: {why}"))?;
    }
    Ok(a)
}

/// The conversation on stderr, with the command that continues it.
fn farewell(s: &Setup<'_>, screen: Screen) {
    let conversation = s
        .chats
        .conversation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .or_else(|| s.chats.latest_conversation());
    let Some(conv) = conversation else {
        return;
    };
    let mut words = vec![TOOL.to_owned()];
    let mut flag = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            words.push(name.to_owned());
            words.push(shell_word(v));
        }
    };
    flag("--workflow", s.workflow);
    flag("--app", s.app);
    flag("--bot", s.bot.filter(|_| s.app.is_none()));
    flag("--conversation", Some(&conv));
    screen.plain(&format!(
        "{TOOL}: conversation {conv}; to continue it: {}",
        words.join(" ")
    ));
}

/// `word` as one shell word: as it is when it needs no quoting, else single-quoted.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_a_shell_reads_back() {
        assert_eq!(shell_word("7412345"), "7412345");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(x)"), "'$(x)'");
        assert_eq!(shell_word(""), "''");
    }
}
