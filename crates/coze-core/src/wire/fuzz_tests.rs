//! Deterministic randomized tests over the wire parsers that read untrusted bytes: the
//! SSE reader, the JSON-lines reader and `json_pick` (`Record::from_line` and the
//! callback query parser have theirs in their modules, on the same generator:
//! `test_io`). `make fuzz` runs coverage-guided fuzzers over the same code for a
//! while; these run on every `make test` with a fixed seed and tens of thousands of
//! cases, so a regression shows up without a fuzzer.
//!
//! What they check: nothing panics; SSE: any chunking of any byte stream gives the
//! same results as one-piece reading, and a generated valid stream gives exactly the
//! events it was built from; JSON lines: numbering and content do not depend on the
//! buffer size or chunking and match a plain split on `\n`; `json_pick`: it reads what
//! serde_json reads, or declines.

use std::io::BufRead;

use serde_json::Value;

use crate::wire::jsonl::{LineError, LineReader};
use crate::wire::sse::{Event, SseError, SseReader};
use crate::wire::test_io::{chopped, mutate, random_bytes, Rng, RECORDED};

/// One outcome of `next_event`, comparable across readers.
#[derive(Debug, PartialEq)]
enum SseStep {
    Event(Event),
    Error(String),
    End,
}

/// Every outcome until the end of stream (at most `limit`); an I/O error ends it too.
fn sse_steps<R: BufRead>(reader: R, limit: usize) -> (Vec<SseStep>, u64) {
    let mut r = SseReader::new(reader);
    let mut out = Vec::new();
    while out.len() < limit {
        match r.next_event() {
            Ok(Some(e)) => out.push(SseStep::Event(e)),
            Ok(None) => {
                out.push(SseStep::End);
                break;
            }
            Err(SseError::Io(e)) => {
                out.push(SseStep::Error(e.to_string()));
                break;
            }
            Err(e) => out.push(SseStep::Error(e.to_string())),
        }
    }
    (out, r.lines_read())
}

/// Any chunking of any bytes reads the same as one piece: same events, same errors,
/// same line count. Half the inputs are mutations of the recorded stream.
#[test]
fn sse_random_bytes_read_the_same_in_any_chunking() {
    let mut rng = Rng::new(0x5EED_0001);
    for case in 0..20_000 {
        let bytes = if rng.chance(50) {
            mutate(RECORDED.as_bytes(), &mut rng)
        } else {
            random_bytes(&mut rng, 300)
        };
        let (want, lines) = sse_steps(&bytes[..], 10_000);
        assert!(
            matches!(want.last(), Some(SseStep::End)),
            "case {case}: never ended: {bytes:?}"
        );
        let (got, got_lines) = sse_steps(chopped(&bytes, &mut rng), 10_000);
        assert_eq!(got, want, "case {case}: {bytes:?}");
        assert_eq!(got_lines, lines, "case {case}: line count of {bytes:?}");
    }
}

/// A generated valid stream (random names and data, CJK and emoji, multi-line data,
/// comments, `id:`, LF / CRLF / CR line ends, with or without the space, a BOM, with
/// or without the last event's blank line) gives exactly the events it was built
/// from, in any chunking.
#[test]
fn sse_valid_streams_give_their_events_in_any_chunking() {
    const WORDS: &[&str] = &[
        "conversation.message.delta",
        "done",
        "error",
        "{\"content\":\"你好\"}",
        "🙂👍🏽",
        ":",
        " lead",
        "x",
        "[DONE]",
        "a:b",
        "\t",
        "é",
        "data:",
    ];
    let mut rng = Rng::new(0x5EED_0002);
    for case in 0..10_000 {
        let eol = *rng.pick(&["\n", "\r\n", "\r"]);
        let mut text = String::new();
        if rng.chance(10) {
            text.push('\u{FEFF}');
        }
        let mut want = Vec::new();
        let word =
            |rng: &mut Rng| -> String { (0..rng.below(4)).map(|_| *rng.pick(WORDS)).collect() };
        for _ in 0..rng.below(6) {
            if rng.chance(20) {
                text.push_str(&format!(":{}{eol}", word(&mut rng)));
            }
            let name = word(&mut rng);
            // The name line, if any, goes first or between data lines.
            let data: Vec<String> = (0..1 + rng.below(3)).map(|_| word(&mut rng)).collect();
            let name_at = rng.below(data.len() + 1);
            let mut id = None;
            for (i, d) in data.iter().enumerate() {
                if i == name_at && !name.is_empty() {
                    field(&mut text, "event", &name, eol, &mut rng);
                }
                if rng.chance(10) {
                    text.push_str(&format!("id: {i}{eol}"));
                    id = Some(i.to_string());
                }
                field(&mut text, "data", d, eol, &mut rng);
            }
            if name_at == data.len() && !name.is_empty() {
                field(&mut text, "event", &name, eol, &mut rng);
            }
            text.push_str(eol);
            if rng.chance(20) {
                text.push_str(eol); // blank lines between events dispatch nothing
            }
            want.push(SseStep::Event(Event {
                event: if name.is_empty() {
                    "message".into()
                } else {
                    name
                },
                data: data.join("\n"),
                id,
            }));
        }
        // The stream may end right after its last event's last line, without the
        // blank line (as coze-py's recorded streams do): the event still counts.
        if !want.is_empty() && text.ends_with(eol) && rng.chance(30) {
            text.truncate(text.len() - eol.len());
        }
        want.push(SseStep::End);
        let (one_piece, _) = sse_steps(text.as_bytes(), 1000);
        assert_eq!(one_piece, want, "case {case}: {text:?}");
        let (got, _) = sse_steps(chopped(text.as_bytes(), &mut rng), 1000);
        assert_eq!(got, want, "case {case} chopped: {text:?}");
    }
}

/// `name:value` with the optional space (always when the value starts with one, since
/// the reader strips exactly one).
fn field(text: &mut String, name: &str, value: &str, eol: &str, rng: &mut Rng) {
    let space = value.starts_with(' ') || rng.chance(50);
    let sep = if space { ": " } else { ":" };
    if name == "data" && value.is_empty() && rng.chance(30) {
        text.push_str(&format!("data{eol}")); // a bare field name: empty value
        return;
    }
    text.push_str(&format!("{name}{sep}{value}{eol}"));
}

/// What `LineReader` must produce: a plain split on `\n`, `\r\n` stripped, numbered,
/// without a byte-order mark before the first line.
fn expected_lines(bytes: &[u8]) -> Vec<Result<(u64, String), u64>> {
    let mut out = Vec::new();
    let mut rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if rest.is_empty() && !bytes.is_empty() {
        return vec![Ok((1, String::new()))];
    }
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        let (line, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                (line.strip_suffix(b"\r").unwrap_or(line), &rest[i + 1..])
            }
            None => (rest, &[][..]),
        };
        out.push(match std::str::from_utf8(line) {
            Ok(s) => Ok((n, s.to_owned())),
            Err(_) => Err(n),
        });
        rest = after;
    }
    out
}

fn read_lines<R: BufRead>(reader: R) -> Vec<Result<(u64, String), u64>> {
    let mut r = LineReader::new(reader);
    let mut out = Vec::new();
    loop {
        match r.next_line() {
            Ok(Some(l)) => out.push(Ok(l)),
            Ok(None) => break,
            Err(LineError::InvalidUtf8 { line }) => {
                assert_eq!(r.line_number(), line);
                out.push(Err(line));
            }
            Err(LineError::Io(e)) => panic!("no I/O error expected: {e}"),
            Err(e @ LineError::TooLong { .. }) => panic!("no line is near the limit: {e}"),
        }
        assert!(out.len() <= 100_000, "runaway reader");
    }
    out
}

#[test]
fn jsonl_numbering_and_content_do_not_depend_on_the_buffer() {
    let mut rng = Rng::new(0x5EED_0003);
    let seed_lines = concat!(
        "{\"type\":\"prompt\",\"id\":\"q1\",\"content\":\"你好 🙂\"}\n",
        "plain text prompt\r\n",
        "\n",
        "{\"type\":\"conversation\",\"conversation_id\":\"7\"}",
    );
    for case in 0..20_000 {
        let bytes = if rng.chance(40) {
            mutate(seed_lines.as_bytes(), &mut rng)
        } else {
            random_bytes(&mut rng, 400)
        };
        let want = expected_lines(&bytes);
        assert_eq!(read_lines(&bytes[..]), want, "case {case}: {bytes:?}");
        assert_eq!(
            read_lines(chopped(&bytes, &mut rng)),
            want,
            "case {case} chopped: {bytes:?}"
        );
    }
}

/// A random JSON value for `json_pick`: every scalar form, strings with every kind of
/// escape and raw Unicode, nested containers, and whitespace between tokens.
fn random_json(rng: &mut Rng, depth: usize, out: &mut String) {
    let ws = |rng: &mut Rng, out: &mut String| {
        if rng.chance(15) {
            out.push_str(rng.pick::<&str>(&[" ", "\n", "\t ", "\r\n  "]));
        }
    };
    ws(rng, out);
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 | 1 => random_json_string(rng, out),
        2 => out.push_str(rng.pick::<&str>(&[
            "0",
            "-0",
            "7",
            "-12.5",
            "1795611679",
            "0.001",
            "123456789012345678901234567890",
        ])),
        3 => out.push_str(rng.pick::<&str>(&["true", "false", "null"])),
        4 | 5 => random_json_string(rng, out),
        6 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                random_json(rng, depth + 1, out);
            }
            ws(rng, out);
            out.push(']');
        }
        _ => {
            random_json_object(rng, depth + 1, out);
        }
    }
    ws(rng, out);
}

const PICK_KEYS: [&str; 4] = ["id", "type", "content", "reasoning_content"];

/// Returns whether a wanted key appears twice in this object (not in nested ones).
fn random_json_object(rng: &mut Rng, depth: usize, out: &mut String) -> bool {
    out.push('{');
    let mut used = Vec::new();
    for i in 0..rng.below(8) {
        if i > 0 {
            out.push(',');
        }
        if rng.chance(40) {
            // A wanted key (maybe escaped), mostly with a string; now and then twice.
            let key = *rng.pick(&PICK_KEYS);
            if used.contains(&key) && !rng.chance(20) {
                continue;
            }
            used.push(key);
            if rng.chance(10) {
                out.push_str(&format!("\"\\u{:04x}{}\"", key.as_bytes()[0], &key[1..]));
            } else {
                out.push_str(&format!("\"{key}\""));
            }
            out.push(':');
            if rng.chance(85) {
                random_json_string(rng, out);
            } else {
                random_json(rng, depth, out);
            }
        } else {
            random_json_string(rng, out);
            out.push(':');
            random_json(rng, depth, out);
        }
    }
    out.push('}');
    let mut unique = used.clone();
    unique.sort();
    unique.dedup();
    unique.len() < used.len()
}

fn random_json_string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.below(12) {
        let piece = rng.pick::<&str>(&[
            "a",
            "Z",
            "7",
            " ",
            "字",
            "😀",
            "é",
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\n",
            "\\r",
            "\\t",
            "\\u00e9",
            "\\u4f60",
            "\\ud83d\\ude00",
            "\\u0000",
            "\\u001f",
            "'",
            "{",
            "}",
            ":",
            ",",
            "[",
        ]);
        out.push_str(piece);
        if rng.chance(1) {
            out.push_str("\\ud800"); // a lone surrogate: both must refuse it
        }
    }
    out.push('"');
}

/// What serde_json makes of `json` for the four keys `pick` is asked for: `None`
/// where `pick` must decline (not an object, a wanted key twice or not a string).
fn serde_pick(json: &str) -> Option<[Option<String>; 4]> {
    let Value::Object(map) = serde_json::from_str::<Value>(json).ok()? else {
        return None;
    };
    // serde_json keeps the last of duplicate keys; pick declines a wanted one twice.
    let mut out: [Option<String>; 4] = Default::default();
    for (slot, key) in PICK_KEYS.iter().enumerate() {
        let Some(v) = map.get(*key) else { continue };
        out[slot] = Some(v.as_str()?.to_owned());
    }
    Some(out)
}

#[test]
fn json_pick_reads_what_serde_json_reads_or_declines() {
    use crate::wire::json_pick::pick;
    let mut rng = Rng::new(0x5EED_0006);
    let (mut accepted, mut declined_valid) = (0, 0);
    for case in 0..40_000 {
        let mut json = String::new();
        let dup = random_json_object(&mut rng, 0, &mut json);
        let is_mutated = rng.chance(40);
        let mutated;
        let text = if is_mutated {
            mutated = String::from_utf8_lossy(&mutate(json.as_bytes(), &mut rng)).into_owned();
            mutated.as_str()
        } else {
            json.as_str()
        };
        let ours = pick(text, PICK_KEYS).map(|a| a.map(|v| v.map(|c| c.into_owned())));
        let theirs = serde_pick(text);
        match (&ours, &theirs) {
            // Whatever pick accepts, serde_json reads the same way.
            (Some(o), Some(t)) => {
                assert_eq!(o, t, "case {case}: {text:?}");
                accepted += 1;
            }
            (Some(o), None) => panic!("case {case}: pick read {o:?} from {text:?}"),
            (None, Some(_)) => {
                // Valid, but one of the documented declines: of what the generator
                // makes, only a wanted key twice (serde_json refuses lone surrogates
                // too, and the generator writes no exponents or deep nesting).
                assert!(dup || is_mutated, "case {case}: declined {text:?}");
                declined_valid += 1;
            }
            (None, None) => {}
        }
    }
    // The generator must exercise both sides, or this test proves nothing.
    assert!(accepted > 10_000, "accepted {accepted}");
    assert!(declined_valid > 100, "declined valid {declined_valid}");
}

/// `text` with the body of one random quoted run (from a quote to the next) replaced
/// by a random string body: mostly another value of a member, now and then a key, or
/// a run between two strings (which breaks the JSON).
fn restring(text: &str, rng: &mut Rng) -> String {
    let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
    if quotes.len() < 2 {
        return text.to_owned();
    }
    let k = rng.below(quotes.len() - 1);
    let mut body = String::new();
    random_json_string(rng, &mut body);
    let body = &body[1..body.len() - 1];
    format!("{}{}{}", &text[..=quotes[k]], body, &text[quotes[k + 1]..])
}

#[test]
fn json_picker_answers_as_pick_does_for_runs_of_objects() {
    use crate::wire::json_pick::{pick, Picker};
    let mut rng = Rng::new(0x5EED_0007);
    let (mut same, mut valid, mut compared) = (0, 0, 0);
    for case in 0..3_000 {
        let mut base = String::new();
        random_json_object(&mut rng, 0, &mut base);
        let mut picker = Picker::default();
        let mut text = base.clone();
        for step in 0..20 {
            text = match rng.below(10) {
                0 => base.clone(),
                1 => String::from_utf8_lossy(&mutate(text.as_bytes(), &mut rng)).into_owned(),
                2 => {
                    let mut other = String::new();
                    random_json_object(&mut rng, 0, &mut other);
                    other
                }
                _ => restring(&text, &mut rng),
            };
            let theirs = pick(&text, PICK_KEYS).map(|a| a.map(|v| v.map(|c| c.into_owned())));
            let ours = picker
                .pick(&text, PICK_KEYS)
                .map(|a| a.map(|v| v.map(|c| c.into_owned())));
            assert_eq!(ours, theirs, "case {case} step {step}: {text:?}");
            same += 1;
            valid += usize::from(theirs.is_some());
        }
        compared += picker.compared;
    }
    // Both ways of reading, and both answers, or this test proves nothing.
    assert!(
        valid > 10_000 && same - valid > 10_000 && compared > 4_000,
        "{valid} valid of {same}, {compared} read by comparison"
    );
}
