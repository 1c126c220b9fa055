//! An event's data on its way to a lossless printer (`-o events`): the server's JSON
//! text, passed through as it came, or a value.
//!
//! The events mode is what a tool writes whenever stdout is a pipe, so its cost per
//! event is the cost of every script's default. Its data is already JSON: parsing it
//! into a tree only to serialise the tree again cost four times what reading the
//! stream did (docs/benchmarks.md). So the text is checked to be JSON (by serde_json
//! where the tool needs the tree anyway, by `json_pick` on the hot path of answer
//! deltas and workflow Messages) and then copied. The one thing a JSON value may hold
//! that a JSON line may not is a line break between its tokens (an SSE event whose
//! data spans several `data:` lines): such data is written from its tree instead.

use serde_json::Value;

/// An event's data, for [`write_to`](Data::write_to).
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    /// JSON text exactly as the server sent it, known to be one valid JSON value with
    /// no line break ([`Data::checked`]).
    Json(&'a str),
    /// A value: data parsed from text that could not pass as it came, data recovered
    /// by polling, or text that is not JSON at all (as a JSON string).
    Value(&'a Value),
}

impl<'a> Data<'a> {
    /// `text`, already known to be valid JSON, as it came when it fits on one line;
    /// else `parsed`, the value it holds.
    pub fn checked(text: &'a str, parsed: &'a Value) -> Data<'a> {
        if fits_one_line(text) {
            Data::Json(text)
        } else {
            Data::Value(parsed)
        }
    }

    /// Appends the data as JSON to `buf`.
    pub fn write_to(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Data::Json(text) => {
                buf.extend_from_slice(text.as_bytes());
                Ok(())
            }
            Data::Value(v) => serde_json::to_writer(buf, v).map_err(Into::into),
        }
    }
}

/// One `-o events` line of coze-chat or coze-workflow:
/// `{"event":…,"data":…,"id":…,"seq":…,"recovered":true}`, the last three only when
/// given (the input line's id, the event's own `id:` line, an event recovered by
/// polling after the stream broke).
#[derive(Debug, Clone, Copy)]
pub struct EventLine<'a> {
    /// The event's name, as sent.
    pub event: &'a str,
    /// Its data.
    pub data: Data<'a>,
    /// The `id` of the input line that caused it.
    pub id: Option<&'a Value>,
    /// The event's own `id:` line (a workflow's sequence number).
    pub seq: Option<&'a str>,
    /// It was recovered by polling, not streamed.
    pub recovered: bool,
}

impl EventLine<'_> {
    /// Appends the line's object (no newline) to `buf`.
    pub fn write_to(&self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.extend_from_slice(b"{\"event\":");
        write_str(buf, self.event)?;
        buf.extend_from_slice(b",\"data\":");
        self.data.write_to(buf)?;
        if let Some(id) = self.id {
            buf.extend_from_slice(b",\"id\":");
            serde_json::to_writer(&mut *buf, id)?;
        }
        if let Some(seq) = self.seq {
            buf.extend_from_slice(b",\"seq\":");
            write_str(buf, seq)?;
        }
        if self.recovered {
            buf.extend_from_slice(b",\"recovered\":true");
        }
        buf.push(b'}');
        Ok(())
    }
}

/// Calls `with` on `text` parsed: its value and how a lossless printer gets it (as
/// it came, when it is JSON that fits on one line). Text that is not JSON (a bare
/// `[DONE]`, a malformed line) is still passed on, as a JSON string of itself.
pub fn parsed<R>(text: &str, with: impl FnOnce(&Value, Data<'_>) -> R) -> R {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => with(&v, Data::checked(text, &v)),
        Err(_) => {
            let v = Value::String(text.to_owned());
            with(&v, Data::Value(&v))
        }
    }
}

/// Whether JSON text can go into a JSON line as it is: it holds no line break (which
/// valid JSON can only have as whitespace between tokens: inside a string a line
/// break must be escaped).
pub fn fits_one_line(text: &str) -> bool {
    memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none()
}

/// Appends `s` to `buf` as a JSON string. An event's name rarely needs escaping; one
/// that does not is copied between quotes (serde_json's escaper looks up every byte).
fn write_str(buf: &mut Vec<u8>, s: &str) -> std::io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(buf, s).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(d: Data<'_>) -> String {
        let mut buf = Vec::new();
        d.write_to(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn text_on_one_line_passes_as_it_came() {
        let text = r#"{"content":"\u4f60","n":1.0e2, "big":123456789012345678901234567890}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(written(Data::checked(text, &v)), text);
    }

    #[test]
    fn text_with_a_line_break_is_written_from_its_value() {
        let text = "{\"a\":\n1,\r\n\"b\":\"x\"}";
        let v: Value = serde_json::from_str(text).unwrap();
        let out = written(Data::checked(text, &v));
        assert_eq!(out, r#"{"a":1,"b":"x"}"#);
        assert!(!out.contains('\n'));
    }

    #[test]
    fn text_that_is_not_json_passes_as_a_string_of_itself() {
        for text in ["[DONE]", "{\"id\":", "", "\"\\ud800\""] {
            let out = parsed(text, |v, d| (v.clone(), written(d)));
            assert_eq!(out.0, Value::String(text.into()), "{text}");
            assert_eq!(out.1, serde_json::to_string(text).unwrap());
        }
        let out = parsed("\"[DONE]\"", |v, d| (v.clone(), written(d)));
        assert_eq!(out, (json!("[DONE]"), "\"[DONE]\"".to_owned()));
    }

    #[test]
    fn an_event_line_has_its_fields_in_order_and_only_when_given() {
        let line = |l: EventLine<'_>| {
            let mut buf = Vec::new();
            l.write_to(&mut buf).unwrap();
            String::from_utf8(buf).unwrap()
        };
        let id = json!(7);
        let bare = EventLine {
            event: "Message",
            data: Data::Json(r#"{"content":"\u4f60"}"#),
            id: None,
            seq: None,
            recovered: false,
        };
        assert_eq!(
            line(bare),
            r#"{"event":"Message","data":{"content":"\u4f60"}}"#
        );
        let all = EventLine {
            event: "a\"b",
            id: Some(&id),
            seq: Some("3"),
            recovered: true,
            ..bare
        };
        assert_eq!(
            line(all),
            r#"{"event":"a\"b","data":{"content":"\u4f60"},"id":7,"seq":"3","recovered":true}"#
        );
        for name in ["a\\b", "tab\there", "\u{1}", "\u{7f}é字"] {
            let written = line(EventLine {
                event: name,
                ..bare
            });
            let back: Value = serde_json::from_str(&written).unwrap();
            assert_eq!(back["event"], name, "{written}");
        }
    }

    #[test]
    fn a_value_is_written_compactly() {
        let v = json!({"x": [1, "二"]});
        assert_eq!(written(Data::Value(&v)), r#"{"x":[1,"二"]}"#);
    }
}
