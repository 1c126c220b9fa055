//! A `--tool NAME=COMMAND`'s COMMAND split into a program and its arguments, the way a
//! shell splits words but without a shell: quotes group ('…' literally, "…" with `\"`
//! and `\\`), a backslash outside quotes takes the next character as it is, and nothing
//! is expanded (`$`, `~`, `*` and backquotes are plain characters). The person wrote
//! COMMAND; nothing the bot sends is ever split or expanded (it goes on stdin).

/// The words of `command`; an error says what is wrong with it.
pub fn split(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word is open even when empty: `''` is an empty argument.
    let mut open = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if open {
                    words.push(std::mem::take(&mut word));
                    open = false;
                }
            }
            '\'' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' quote is not closed".into()),
                    }
                }
            }
            '"' => {
                open = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a \" quote is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a \" quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                open = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("it ends with a lone backslash".into()),
                }
            }
            c => {
                open = true;
                word.push(c);
            }
        }
    }
    if open {
        words.push(word);
    }
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn words_are_split_as_a_shell_would_but_nothing_is_expanded() {
        let ok = |s: &str| split(s).unwrap();
        assert_eq!(ok("jq -r .city"), ["jq", "-r", ".city"]);
        assert_eq!(ok("  a\t b  "), ["a", "b"]);
        assert_eq!(
            ok(r#"sh -c 'echo "$HOME"'"#),
            ["sh", "-c", r#"echo "$HOME""#]
        );
        assert_eq!(ok(r#"x "a \"b\" \\ \n" ''"#), ["x", r#"a "b" \ \n"#, ""]);
        assert_eq!(ok(r"a\ b ~/x $Y *"), ["a b", "~/x", "$Y", "*"]);
        assert_eq!(ok("pre'fix'\"ed\""), ["prefixed"]);
        for bad in ["", "   ", "'open", "\"open", "x\\", "\"a\\"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }
}
