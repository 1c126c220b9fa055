//! What a typed line means: a slash command, the number of a suggestion on screen, or
//! a prompt. Pure, so every case is tested here.

/// What the person asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Ask this.
    Ask(String),
    /// Ask this suggestion, picked by its number.
    Pick(String),
    /// `/new`: the next prompt starts a new conversation.
    New,
    /// `/help`: list the commands.
    Help,
    /// `/exit` (or `/quit`): end the session.
    Exit,
    /// `/attach PATH`: send this file (or `file_id:…`, a URL) with the next prompt.
    Attach(&'a str),
    /// A slash command there is none of (or one missing its argument).
    Unknown(&'a str),
    /// An empty line.
    Nothing,
}

/// The commands, as `/help` lists them.
pub const HELP: &[(&str, &str)] = &[
    ("N", "ask suggestion N (the numbers on screen)"),
    ("/new", "start a new conversation"),
    (
        "/attach PATH",
        "send a file or an image with the next prompt (also file_id:ID, or a URL)",
    ),
    ("/help", "this list"),
    ("/exit", "end (also Ctrl-D, or Ctrl-C at an empty prompt)"),
    ("//…", "a prompt that starts with / (one / is taken off)"),
    (
        "\\ at the end",
        "go on on the next line (a paste may have many lines)",
    ),
    (
        "Ctrl-C",
        "during an answer: stop it; on a typed line: clear it",
    ),
];

/// What `typed` means, `choices` being the suggestions on screen (numbered from 1).
pub fn parse<'a>(typed: &'a str, choices: &[String]) -> Action<'a> {
    let text = typed.trim();
    if text.is_empty() {
        return Action::Nothing;
    }
    if let Some(n) = text
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=choices.len()).contains(n))
    {
        return Action::Pick(choices[n - 1].clone());
    }
    // A command is one line; a prompt of several lines is a prompt.
    if text.starts_with('/') && !text.contains('\n') {
        if let Some(rest) = text.strip_prefix("//") {
            return Action::Ask(format!("/{rest}"));
        }
        let (word, arg) = match text.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (text, ""),
        };
        return match (word, arg) {
            ("/new", "") => Action::New,
            ("/help" | "/?", "") => Action::Help,
            ("/exit" | "/quit", "") => Action::Exit,
            ("/attach", path) if !path.is_empty() => Action::Attach(path),
            _ => Action::Unknown(text),
        };
    }
    Action::Ask(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_into_actions() {
        let choices = vec!["first?".to_owned(), "second?".to_owned()];
        let ask = |s: &str| Action::Ask(s.to_owned());
        let pick = |s: &str| Action::Pick(s.to_owned());
        for (typed, want) in [
            ("", Action::Nothing),
            ("   ", Action::Nothing),
            ("2", pick("second?")),
            (" 1 ", pick("first?")),
            // Not a number on screen: asked as typed.
            ("3", ask("3")),
            ("0", ask("0")),
            ("hello", ask("hello")),
            ("/new", Action::New),
            ("/help", Action::Help),
            ("/exit", Action::Exit),
            ("/quit", Action::Exit),
            ("/attach a b.pdf", Action::Attach("a b.pdf")),
            ("/attach", Action::Unknown("/attach")),
            ("/new now", Action::Unknown("/new now")),
            ("/frobnicate", Action::Unknown("/frobnicate")),
            ("//etc/hosts?", ask("/etc/hosts?")),
            ("/new\nand more", ask("/new\nand more")),
            ("two\nlines", ask("two\nlines")),
        ] {
            assert_eq!(parse(typed, &choices), want, "{typed:?}");
        }
        assert_eq!(parse("1", &[]), ask("1"));
    }
}
