//! Picks a few string members out of a JSON object in one strict pass, for the hot
//! path of a streamed answer: 200,000 `conversation.message.delta` events need only
//! `id`, `type`, `content` and `reasoning_content` each, and decoding them with
//! serde_json cost about 40% of coze-chat's CPU (docs/benchmarks.md).
//!
//! The contract that keeps it safe: [`pick`] either reads the text exactly as a JSON
//! parser would, or declines with `None` and the caller falls back to serde_json. It
//! declines on anything malformed and also on valid inputs it does not bother with:
//! a wanted key twice, a wanted key whose value is not a string, an escaped lone
//! surrogate, a number with an exponent or over 300 digits (serde_json may call those
//! out of range), nesting deeper than 128 (serde_json's limit). Unwanted members of
//! any shape are checked and skipped. The fuzz tests hold it to that contract against
//! serde_json.

use std::borrow::Cow;

/// Deepest nesting `pick` walks (the same limit as serde_json's recursion limit).
const MAX_DEPTH: usize = 128;
/// Longest run of digits in a number `pick` accepts.
const MAX_DIGITS: usize = 300;

/// The string values of `keys` in the JSON object `json`, in the order of `keys`;
/// `None` for a key the object does not have. `None` overall when `json` is not an
/// object `pick` reads with certainty (see the module notes).
pub fn pick<'a, const N: usize>(
    json: &'a str,
    keys: [&str; N],
) -> Option<[Option<Cow<'a, str>>; N]> {
    read(json, &keys, None)
}

/// Where a string member value of the top-level object lies in the text: its token,
/// from the opening quote to just after the closing one.
#[derive(Debug, Clone, Copy)]
struct Token {
    open: usize,
    end: usize,
    /// A picked value that held escapes: decoded, not borrowed.
    escaped: bool,
    /// The key it is the value of, as an index into the keys picked; None: unpicked.
    slot: Option<usize>,
}

/// Reads the object in `json`, recording its string member values in `tokens` when
/// given (for [`Picker`]).
fn read<'a, const N: usize>(
    json: &'a str,
    keys: &[&str; N],
    mut tokens: Option<&mut Vec<Token>>,
) -> Option<[Option<Cow<'a, str>>; N]> {
    let mut p = Parser {
        s: json.as_bytes(),
        text: json,
        i: 0,
    };
    let mut out: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if !p.peek_is(b'}') {
        loop {
            let key = p.string()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            let slot = keys.iter().position(|k| *k == key);
            let open = p.i;
            let escaped = match slot {
                Some(slot) => {
                    if out[slot].is_some() || !p.peek_is(b'"') {
                        return None;
                    }
                    let value = p.string()?;
                    let escaped = matches!(value, Cow::Owned(_));
                    out[slot] = Some(value);
                    escaped
                }
                None => {
                    p.value(1)?;
                    false // an unpicked value is never read from the token
                }
            };
            if let Some(tokens) = tokens.as_deref_mut() {
                if p.s[open] == b'"' {
                    tokens.push(Token {
                        open,
                        end: p.i,
                        escaped,
                        slot,
                    });
                }
            }
            p.ws();
            if p.peek_is(b',') {
                p.i += 1;
                p.ws();
                continue;
            }
            break;
        }
    }
    p.eat(b'}')?;
    p.ws();
    (p.i == p.s.len()).then_some(out)
}

/// [`pick`] for a run of objects of one shape, such as the deltas of one answer: each
/// differs from the one before only inside a few string values (the content, a
/// sequence number), while its keys, ids and the rest stay byte for byte the same.
/// The object last read in full is kept; the next one is compared with it, and only
/// the string values where they differ are read. When the rest is equal byte for
/// byte, the text is the same JSON with other strings in those places (each read as
/// `pick` reads a string), so it is valid exactly when they are, and its picks are
/// where the kept object's were, shifted by the lengths that changed. Anything else
/// (a difference in a key, a number, a nested value) is read in full, and kept.
#[derive(Debug, Clone, Default)]
pub struct Picker {
    /// The keys the kept object was read for.
    keys: Vec<&'static str>,
    /// The object last read in full: valid JSON, as `pick` reads it.
    kept: String,
    /// Its top-level string member values, in order.
    tokens: Vec<Token>,
    /// The first token that differed in the last object read by comparison.
    varied: usize,
    /// Objects read by comparison with the kept one (for the tests).
    #[cfg(test)]
    pub(crate) compared: usize,
}

impl Picker {
    /// As [`pick`]: the same answer for every text (the fuzz tests hold it to that).
    pub fn pick<'a, const N: usize>(
        &mut self,
        json: &'a str,
        keys: [&'static str; N],
    ) -> Option<[Option<Cow<'a, str>>; N]> {
        if self.keys.as_slice() == keys.as_slice() {
            if let Some(out) = self.like_kept(json) {
                #[cfg(test)]
                {
                    self.compared += 1;
                }
                return Some(out);
            }
        }
        self.tokens.clear();
        let out = read(json, &keys, Some(&mut self.tokens));
        match out {
            Some(_) => {
                self.kept.clear();
                self.kept.push_str(json);
                self.keys.clear();
                self.keys.extend_from_slice(&keys);
            }
            None => self.keys.clear(),
        }
        out
    }

    /// The picks of `json` when it differs from the kept object only inside string
    /// values; None otherwise.
    fn like_kept<'a, const N: usize>(
        &mut self,
        json: &'a str,
    ) -> Option<[Option<Cow<'a, str>>; N]> {
        let (new, old, tokens) = (json.as_bytes(), self.kept.as_bytes(), &self.tokens[..]);
        let mut out: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
        let mut p = Parser {
            s: new,
            text: json,
            i: 0,
        };
        // The first token where the texts may differ: everything before it agrees.
        // Most often it is the one that differed last time (an answer's content), which
        // one comparison of the text up to its quote confirms; else the first
        // difference is looked for, and must lie inside a token, after its quote.
        let first = match tokens.get(self.varied) {
            Some(tok) if new.get(..=tok.open) == old.get(..=tok.open) => self.varied,
            _ => {
                let same = common_prefix(new, old);
                if same == new.len() && new.len() == old.len() {
                    tokens.len()
                } else {
                    let t = tokens.iter().position(|tok| tok.end > same)?;
                    if tokens[t].open >= same {
                        return None;
                    }
                    t
                }
            }
        };
        // Read the differing tokens in turn, until the rest of the text agrees.
        let (mut t, mut open, mut shift) = (first, tokens.get(first).map_or(0, |tok| tok.open), 0);
        let mut changed = None;
        while let Some(&tok) = tokens.get(t) {
            // Token `t` starts at `open` in `json`, everything before it agreeing.
            p.i = open;
            let value = p.string()?;
            if changed.is_none() && new.get(open..p.i) != old.get(tok.open..tok.end) {
                changed = Some(t);
            }
            if let Some(slot) = tok.slot.filter(|&s| s < N) {
                out[slot] = Some(value);
            }
            if new.get(p.i..)? == old.get(tok.end..)? {
                shift = p.i as isize - tok.end as isize;
                break;
            }
            // The difference goes on: the text up to the next token must agree.
            let next = tokens.get(t + 1)?;
            let gap = old.get(tok.end..next.open)?;
            if new.get(p.i..p.i + gap.len())? != gap {
                return None;
            }
            open = p.i + gap.len();
            t += 1;
        }
        let last = t;
        // The picks not read above: where they were before the first differing token,
        // shifted by what changed after the last.
        for (k, tok) in tokens.iter().enumerate() {
            let Some(slot) = tok.slot.filter(|&s| s < N) else {
                continue;
            };
            if (first..=last).contains(&k) {
                continue;
            }
            let at = if k < first {
                tok.open
            } else {
                tok.open.checked_add_signed(shift)?
            };
            out[slot] = Some(if tok.escaped {
                p.i = at;
                p.string()?
            } else {
                Cow::Borrowed(json.get(at + 1..at + tok.end - tok.open - 1)?)
            });
        }
        self.varied = changed.unwrap_or(first);
        Some(out)
    }
}

/// How many bytes `a` and `b` share from their start, compared eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            return i + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek_is(&self, b: u8) -> bool {
        self.s.get(self.i) == Some(&b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.peek_is(b).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    /// Checks and skips one value of any kind.
    fn value(&mut self, depth: usize) -> Option<()> {
        match *self.s.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keyed`) or an array, opened at `self.i`.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            if keyed {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            if self.eat(b',').is_none() {
                return self.eat(close);
            }
            self.ws();
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.s[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`; an exponent declines (see the module notes).
    fn number(&mut self) -> Option<()> {
        if self.peek_is(b'-') {
            self.i += 1;
        }
        match self.s.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.peek_is(b'.') {
            self.i += 1;
            if !self.s.get(self.i)?.is_ascii_digit() {
                return None;
            }
            self.digits()?;
        }
        match self.s.get(self.i) {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        (self.i - start <= MAX_DIGITS).then_some(())
    }

    /// A string opened at `self.i`: borrowed when it has no escapes, else decoded.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            self.skip_plain();
            let b = *self.s.get(self.i)?;
            match b {
                b'"' => {
                    let text = &self.text[start..self.i];
                    self.i += 1;
                    return Some(Cow::Borrowed(text));
                }
                b'\\' => return self.escaped(start).map(Cow::Owned),
                0x00..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// The rest of a string from its first backslash; `start` is its first byte.
    fn escaped(&mut self, start: usize) -> Option<String> {
        // Room for the rest too, most often: one allocation, not a few growing.
        let mut out = String::with_capacity(self.i - start + 32);
        out.push_str(&self.text[start..self.i]);
        loop {
            let b = *self.s.get(self.i)?;
            match b {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    let c = match *self.s.get(self.i)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.i += 1;
                            let unit = self.hex4()?;
                            let c = match unit {
                                0xD800..=0xDBFF => {
                                    // A high surrogate must be followed by `\u` and a low one.
                                    if !self.s[self.i..].starts_with(b"\\u") {
                                        return None;
                                    }
                                    self.i += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return None;
                                    }
                                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                    char::from_u32(code)?
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => char::from_u32(unit)?,
                            };
                            out.push(c);
                            continue;
                        }
                        _ => return None,
                    };
                    self.i += 1;
                    out.push(c);
                }
                0x00..=0x1f => return None,
                _ => {
                    // Copy the run up to the next quote, backslash or control byte at once.
                    let run = self.i;
                    while let Some(&b) = self.s.get(self.i) {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(&self.text[run..self.i]);
                }
            }
        }
    }

    /// Skips bytes that need no attention inside a string (anything but a quote, a
    /// backslash or a control byte), eight at a time: strings are most of a delta.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.s.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            // A byte of `has_zero(v)` has its high bit set where v's byte is zero,
            // counting from the lowest byte up to the first hit exactly.
            let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            let hits = has_zero(x ^ (ONES * b'"' as u64))
                | has_zero(x ^ (ONES * b'\\' as u64))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if hits != 0 {
                self.i += (hits.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELTA: &str = r#"{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"2","content_type":"text","chat_id":"7382159487131697202"}"#;

    fn picked(json: &str) -> Option<[Option<String>; 2]> {
        pick(json, ["id", "content"]).map(|a| a.map(|v| v.map(Cow::into_owned)))
    }

    #[test]
    fn reads_the_documented_delta_borrowing_its_strings() {
        let [id, kind, content, reasoning] =
            pick(DELTA, ["id", "type", "content", "reasoning_content"]).unwrap();
        assert_eq!(id.as_deref(), Some("7382159494123470858"));
        assert_eq!(kind.as_deref(), Some("answer"));
        assert!(matches!(content, Some(Cow::Borrowed("2"))));
        assert_eq!(reasoning, None);
    }

    #[test]
    fn decodes_escapes_in_wanted_and_checks_them_in_skipped_strings() {
        let json = r#"{"x":"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00","content":"line\none \u4f60\u597d \ud83d\ude00 \"q\""}"#;
        assert_eq!(
            picked(json),
            Some([None, Some("line\none 你好 😀 \"q\"".to_owned())])
        );
        // An escaped key is the key it decodes to.
        assert_eq!(
            picked(r#"{"con\u0074ent":"x"}"#),
            Some([None, Some("x".to_owned())])
        );
    }

    #[test]
    fn skips_nested_values_and_every_scalar() {
        let json = r#" { "meta_data" : {"a":[1,-2.5,true,false,null,{"b":[]},"s"],"c":{}} ,
            "n":0, "m":-0.25, "list":[ ], "id" : "i", "content":"" } "#;
        assert_eq!(
            picked(json),
            Some([Some("i".to_owned()), Some(String::new())])
        );
        assert_eq!(picked("{}"), Some([None, None]));
    }

    #[test]
    fn declines_what_it_does_not_read_with_certainty() {
        for json in [
            "",
            "[]",
            r#""s""#,
            r#"{"id":"a","id":"b"}"#, // a wanted key twice
            r#"{"content":null}"#,    // a wanted key that is not a string
            r#"{"content":1}"#,
            r#"{"x":1e5}"#,      // exponent: serde_json may call it out of range
            r#"{"x":"\ud800"}"#, // lone surrogates
            r#"{"x":"\udc00"}"#,
            r#"{"x":"\ud800\u0041"}"#,
            r#"{"x":01}"#, // malformed from here on
            r#"{"x":1.}"#,
            r#"{"x":-}"#,
            r#"{"x":+1}"#,
            r#"{"x":.5}"#,
            r#"{"x":tru}"#,
            r#"{"x":nul}"#,
            r#"{"x":"\x"}"#,
            r#"{"x":"\u12"}"#,
            r#"{"x":"\u12g4"}"#,
            "{\"x\":\"a\u{1}b\"}", // raw control character
            "{\"x\":\"a\nb\"}",
            r#"{"x":1,}"#,
            r#"{,"x":1}"#,
            r#"{"x" 1}"#,
            r#"{"x":1 "y":2}"#,
            r#"{x:1}"#,
            r#"{"x":[1,]}"#,
            r#"{"x":[1 2]}"#,
            r#"{"x":{"a"}}"#,
            r#"{"x":{"a":1,}}"#,
            r#"{"x":1}}"#,
            r#"{"x":1} x"#,
            r#"{"x":1"#,
            r#"{"x":"abc"#,
            r#"{"x":"#,
            "{",
        ] {
            assert!(picked(json).is_none(), "accepted {json:?}");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
                // Whatever it declined that is valid JSON is one of the documented cases.
                assert!(
                    !v.is_object()
                        || json.contains("\"id\":\"a\",\"id\"")
                        || json.contains("null")
                        || json.contains(":1}") && json.contains("content")
                        || json.contains("e5")
                        || json.contains("\\u"),
                    "declined valid {json:?}"
                );
            }
        }
    }

    #[test]
    fn deep_nesting_and_long_numbers_decline() {
        let deep = |n: usize| format!("{{\"x\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(picked(&deep(MAX_DEPTH - 1)).is_some());
        assert!(picked(&deep(MAX_DEPTH)).is_none());
        let long = |n: usize| format!("{{\"x\":{}}}", "9".repeat(n));
        assert!(picked(&long(MAX_DIGITS)).is_some());
        assert!(picked(&long(MAX_DIGITS + 1)).is_none());
    }
}
