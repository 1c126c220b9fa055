//! A chatflow's question put to the person at the terminal: shown on stderr (its
//! options numbered), the answer read from the terminal itself (`/dev/tty`), not from
//! stdin's reader, which holds stdin for the prompt lines and may be reading them.
//!
//! Only used when stdin and stderr are terminals and one prompt runs at a time
//! (`main`): then nobody else reads the terminal while the question waits.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};

use coze_core::chat::Question;

use crate::TOOL;

/// The longest answer taken: a line typed or pasted, not a file.
const MAX_ANSWER: u64 = 64 << 10;

/// Shows `q` and reads the person's answer: a number picks that option. `None` when
/// nobody answers (Ctrl-D, or no terminal to read), leaving the question open.
pub fn ask(q: &Question) -> Option<String> {
    let text = if q.text.is_empty() {
        "(see its message above)"
    } else {
        q.text.as_str()
    };
    // `say` shows the server's control characters instead of obeying them.
    coze_core::say!("{TOOL}: the chatflow asks: {text}");
    for (i, option) in q.options.iter().enumerate() {
        coze_core::say!("  {}) {option}", i + 1);
    }
    let what = if q.options.is_empty() {
        "your answer"
    } else {
        "a number or your own answer"
    };
    let tty = match File::open("/dev/tty") {
        Ok(f) => f,
        Err(e) => {
            coze_core::support::say::warn(&format!("cannot read the terminal: {e}"));
            return None;
        }
    };
    let mut reader = BufReader::new(tty.take(MAX_ANSWER));
    loop {
        prompt(&format!("{what} (Ctrl-D leaves it unanswered): "));
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                // Ctrl-D: the cursor is still after the prompt.
                coze_core::say!("");
                return None;
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => return Some(q.answer(&line)),
            Err(e) => {
                coze_core::support::say::warn(&format!("reading the terminal: {e}"));
                return None;
            }
        }
    }
}

/// Text that ends without a newline (the cursor waits after it), in one write.
fn prompt(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}
