//! A question put to the person at the terminal, for the tools that meet one (a
//! workflow's interrupt in coze-workflow, a chatflow's question in coze-chat): shown on
//! stderr with its options numbered, the answer read from the terminal itself
//! (`/dev/tty`), not from stdin, whose reader may hold it for the input's lines. A
//! number picks that option; any other text is the answer as typed; an empty line asks
//! again; the end of input (Ctrl-D) leaves the question unanswered, as in a pipeline.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};

use crate::protocol::Question;
use crate::support::say;

/// The longest answer taken: a line typed or pasted, not a file.
const MAX_ANSWER: u64 = 64 << 10;

/// Whether a person can be asked: stdin and stderr are a terminal (a tool running more
/// than one item at once must not ask: its reader of stdin would race the answer for
/// the terminal's lines).
pub fn possible() -> bool {
    io::stdin().is_terminal() && say::stderr_is_terminal()
}

/// Shows `q` as `TOOL: {who} asks: …` (`who`: "the workflow", "the chatflow"), its
/// options numbered, and reads the answer, `left` (such as "2 of 3 answers left") said
/// in the prompt. None when nobody answers: Ctrl-D, or a terminal that cannot be read
/// (a warning says why).
pub fn ask(who: &str, q: &Question, left: Option<&str>) -> Option<String> {
    let text = match q.text.trim_end() {
        "" => "(the server sent no question text)",
        text => text,
    };
    // A progress line would be drawn over the prompt and the answer being typed.
    let _hold = say::hold_status();
    // `say` shows the server's control characters instead of obeying them.
    crate::say!("{}: {who} asks: {text}", say::tool());
    for (i, option) in q.options.iter().enumerate() {
        crate::say!("  {}. {option}", i + 1);
    }
    let what = if q.options.is_empty() {
        "your answer"
    } else {
        "a number, or your own answer"
    };
    let left = left.map(|l| format!("{l}; ")).unwrap_or_default();
    let prompt =
        say::visible(&format!("{what} ({left}Ctrl-D leaves it unanswered): ")).into_owned();
    let tty = match File::open("/dev/tty") {
        Ok(f) => f,
        Err(e) => {
            say::warn(&format!(
                "cannot read the terminal: {e}; the question waits"
            ));
            return None;
        }
    };
    let mut reader = BufReader::new(tty.take(MAX_ANSWER));
    loop {
        // A prompt, not a line: the answer is typed after it, in one write.
        let mut err = io::stderr().lock();
        let _ = err.write_all(prompt.as_bytes()).and_then(|()| err.flush());
        drop(err);
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                // Ctrl-D: the cursor is still after the prompt.
                crate::say!("");
                return None;
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => return Some(q.answer(&line)),
            Err(e) => {
                say::warn(&format!("reading the terminal: {e}; the question waits"));
                return None;
            }
        }
    }
}
