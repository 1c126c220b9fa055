//! What coze-chat reads: the PROMPT argument, all of stdin as one prompt, or one item
//! per stdin line (plain text, or a `prompt` / `conversation` record).

use std::io::BufRead;

use coze_core::jsonl::LineReader;
use coze_core::records::{Prompt, Record};
use coze_core::{Error, Result};

/// One thing to do, from one line.
#[derive(Debug)]
pub enum Item {
    Prompt {
        line: u64,
        prompt: Box<Prompt>,
    },
    /// Chat in this conversation from now on.
    Switch {
        conversation_id: String,
    },
}

/// Reads items lazily, so a prompt is answered before the next line is even read
/// (an interactive pipe gets its answer right away).
pub struct Items<R: BufRead> {
    lines: LineReader<R>,
}

impl<R: BufRead> Items<R> {
    pub fn new(reader: R) -> Self {
        Items {
            lines: LineReader::new(reader),
        }
    }

    /// The next item; `Err` names a line that cannot be used (reading may go on).
    pub fn next_item(&mut self) -> Option<Result<Item>> {
        loop {
            let (line, text) = match self.lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => {
                    return Some(Err(Error::BadInput {
                        line: None,
                        message: e.to_string(),
                    }))
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(parse_line(line, &text));
        }
    }
}

/// A line starting with `{` is a record; anything else is a plain-text prompt.
pub fn parse_line(line: u64, text: &str) -> Result<Item> {
    if !text.trim_start().starts_with('{') {
        return Ok(Item::Prompt {
            line,
            prompt: Box::new(plain(text)),
        });
    }
    match Record::from_line(line, text)? {
        Record::Prompt(p) if p.content.trim().is_empty() => {
            Err(Error::input(line, "prompt record: `content` is empty"))
        }
        Record::Prompt(prompt) => Ok(Item::Prompt {
            line,
            prompt: Box::new(prompt),
        }),
        Record::Conversation(c) => Ok(Item::Switch {
            conversation_id: c.conversation_id,
        }),
        other => Err(Error::input(
            line,
            format!(
                "a {} record is not something to chat with (expected prompt or conversation)",
                other.type_name()
            ),
        )),
    }
}

pub fn plain(text: &str) -> Prompt {
    Prompt {
        content: text.to_owned(),
        id: None,
        conversation_id: None,
        bot_id: None,
        user_id: None,
        custom_variables: None,
        meta_data: None,
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_items() {
        let input = "hello\n\n{\"type\":\"prompt\",\"content\":\"x\",\"id\":\"a\"}\n{\"type\":\"conversation\",\"conversation_id\":\"9\"}\n{bad\n{\"type\":\"token\",\"access_token\":\"t\"}\n";
        let mut items = Items::new(input.as_bytes());
        assert!(matches!(
            items.next_item(),
            Some(Ok(Item::Prompt { line: 1, .. }))
        ));
        match items.next_item() {
            Some(Ok(Item::Prompt { line: 3, prompt })) => assert_eq!(prompt.id, Some("a".into())),
            other => panic!("{other:?}"),
        }
        assert!(matches!(items.next_item(), Some(Ok(Item::Switch { .. }))));
        let e = items.next_item().unwrap().unwrap_err();
        assert!(e.to_string().starts_with("stdin line 5:"), "{e}");
        let e = items.next_item().unwrap().unwrap_err();
        assert!(e.to_string().contains("line 6: a token record"), "{e}");
        assert!(items.next_item().is_none());
    }
}
