//! Asking the person at the terminal what a workflow wants to know: the question and
//! its options (numbered) on stderr, the answer read from the terminal itself
//! (`/dev/tty`, not stdin, whose lines may be runs). A number picks that option; any
//! other text is the answer as typed. An empty line asks again; the end of input
//! (Ctrl-D) leaves the question unanswered, as in a pipeline.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};

use coze_core::protocol::MAX_RESUMES;
use coze_core::support::say;
use coze_core::workflow::Question;

use crate::TOOL;

/// Whether a person can be asked: stdin and stderr are a terminal, and the terminal
/// can be opened.
pub fn possible() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal() && tty().is_ok()
}

fn tty() -> io::Result<File> {
    File::open("/dev/tty")
}

/// Asks `q` (the run has taken `answered` answers so far); None when the person
/// ended the input instead of answering.
pub fn ask(q: &Question, answered: u32) -> io::Result<Option<String>> {
    let mut lines = BufReader::new(tty()?);
    let text = if q.text.trim().is_empty() {
        "(no question text)"
    } else {
        q.text.trim_end()
    };
    say::say(&format!("{TOOL}: the workflow asks: {text}"));
    for (i, option) in q.options.iter().enumerate() {
        say::say(&format!("  {}. {option}", i + 1));
    }
    let left = MAX_RESUMES - answered;
    let how = if q.options.is_empty() {
        "your answer"
    } else {
        "a number, or your own answer"
    };
    loop {
        // A prompt, not a line: the answer is typed after it.
        let prompt = format!("{how} ({left} of {MAX_RESUMES} left; Ctrl-D to leave it waiting): ");
        let mut err = io::stderr().lock();
        err.write_all(say::visible(&prompt).as_bytes())?;
        err.flush()?;
        drop(err);
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            eprintln!();
            return Ok(None);
        }
        if let Some(answer) = choose(&line, &q.options) {
            return Ok(Some(answer));
        }
    }
}

/// The answer a typed `line` gives: an option by its number, else the text as typed
/// (without its line end); None for an empty line.
pub fn choose(line: &str, options: &[String]) -> Option<String> {
    let typed = line.trim_end_matches(['\n', '\r']);
    if typed.trim().is_empty() {
        return None;
    }
    if let Ok(n) = typed.trim().parse::<usize>() {
        if (1..=options.len()).contains(&n) {
            return Some(options[n - 1].clone());
        }
    }
    Some(typed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_picks_an_option_anything_else_is_the_answer() {
        let options = vec!["北京".to_owned(), "上海".to_owned()];
        assert_eq!(choose("2\n", &options).as_deref(), Some("上海"));
        assert_eq!(choose(" 1 \r\n", &options).as_deref(), Some("北京"));
        assert_eq!(choose("3\n", &options).as_deref(), Some("3"), "no option 3");
        assert_eq!(choose("广州\n", &options).as_deref(), Some("广州"));
        assert_eq!(choose("  \n", &options), None);
        assert_eq!(choose("1\n", &[]).as_deref(), Some("1"));
    }
}
