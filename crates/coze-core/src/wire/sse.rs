//! Incremental Server-Sent-Events reader over any `BufRead`.
//!
//! The Coze chat API answers `stream:true` requests with `text/event-stream` (the Coze
//! API docs, `chat_v3`; coze-py's recording `tests/testdata/chat_text_stream_resp.txt`).
//! This module turns those bytes into [`Event`]s following the
//! WHATWG SSE parsing rules: LF, CRLF or lone CR line ends, `field:value` with one
//! optional space, `:` comments, multi-line `data` joined with `\n`, a blank line
//! dispatching the event. It yields each event as soon as its blank line has been
//! read, so it works on a live response body.
//!
//! It is not an HTTP client and knows nothing about Coze: it does not check the
//! `Content-Type`, parse the JSON in `data`, act on `done`/`error` events or honour
//! `retry` (the tools never reconnect). Four deliberate departures from the browser
//! rules: an event's `id` is its own, not carried over to the events after it (a Coze
//! workflow stream numbers each event, and an event without one, such as a
//! self-hosted Coze Studio's `error`, has none); an event with an `event:` or `data:`
//! field but empty data is
//! still dispatched (nothing is lost); a stream that ends after an event's last whole
//! line but before its blank line dispatches that event, as the official SDKs read
//! it (coze-py's `Stream` takes an event once it has its fields, blank line or not);
//! and a stream that ends in the middle of a line, or holds a line that is not UTF-8,
//! is an error instead of being silently dropped or patched.

use std::fmt;
use std::io::{self, BufRead, Read};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; `"message"` when the event had none (or an empty one).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The event's own `id:` field (the last, if it had several); None without one.
    pub id: Option<String>,
}

/// One dispatched event, borrowed from the reader until its next call: the hot path
/// reads 200,000 of them per long answer without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The `event:` field; `"message"` when the event had none (or an empty one).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
    /// The event's own `id:` field (the last, if it had several); None without one.
    pub id: Option<&'a str>,
}

impl EventRef<'_> {
    /// A copy that outlives the reader's next call.
    pub fn to_owned(self) -> Event {
        Event {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            id: self.id.map(str::to_owned),
        }
    }
}

/// Why [`SseReader::next_event`] could not produce an event.
#[derive(Debug)]
pub enum SseError {
    /// The underlying reader failed; the kind (e.g. `TimedOut`) is kept.
    Io(io::Error),
    /// The stream ended in the middle of a line of an event: the line may be cut short.
    Truncated {
        /// The event's name, if its `event:` line had arrived.
        partial_event: Option<String>,
        /// Its `data:` lines as far as they came, the last one perhaps cut; a caller
        /// that knows what whole data looks like may still take it (see `chat`).
        data: String,
    },
    /// Line `line` (1-based, counting every line of the stream) is not UTF-8.
    InvalidUtf8 {
        /// The line's number.
        line: u64,
    },
    /// The caller's `before_wait` hook failed (see [`SseReader::next_ref_with`]).
    Hook(io::Error),
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::Io(e) => write!(f, "reading the event stream: {e}"),
            SseError::Truncated {
                partial_event: Some(name),
                ..
            } => write!(f, "event stream ended in the middle of a {name:?} event"),
            SseError::Truncated {
                partial_event: None,
                ..
            } => f.write_str("event stream ended in the middle of an event"),
            SseError::InvalidUtf8 { line } => {
                write!(f, "event stream line {line}: not valid UTF-8")
            }
            SseError::Hook(e) => write!(f, "before reading the event stream: {e}"),
        }
    }
}

impl std::error::Error for SseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SseError::Io(e) | SseError::Hook(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SseError {
    fn from(e: io::Error) -> Self {
        SseError::Io(e)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`SseReader::read_line`] found.
enum Line {
    /// The end of the stream, no bytes pending.
    Eof,
    /// A line in `line` (the stream's last, unterminated one when `cut_line`).
    Gathered,
    /// A whole line at the start of the buffer (for [`SseReader::lines_in_buffer`]).
    InBuffer,
}

/// The fields of the event being read, as its lines arrive.
#[derive(Default)]
struct Pending {
    event: String,
    data: String,
    /// The `id:` value, meaningful when `seen_id`.
    id: String,
    seen_event: bool,
    seen_data: bool,
    seen_id: bool,
}

impl Pending {
    /// Applies one line to the pending event; true when it is the blank line that
    /// completes one (the event is then in `event`, `data` and `id`).
    fn apply(&mut self, text: &str) -> bool {
        let Pending {
            event,
            data,
            id,
            seen_event,
            seen_data,
            seen_id,
        } = self;
        if text.is_empty() {
            if *seen_event || *seen_data {
                return true;
            }
            *seen_id = false; // an id alone was no event
            return false;
        }
        // The fields of nearly every line are named outright; anything else is split
        // at its first colon.
        let (field, value) = if let Some(v) = text.strip_prefix("data:") {
            ("data", v.strip_prefix(' ').unwrap_or(v))
        } else if let Some(v) = text.strip_prefix("event:") {
            ("event", v.strip_prefix(' ').unwrap_or(v))
        } else if let Some(v) = text.strip_prefix("id:") {
            ("id", v.strip_prefix(' ').unwrap_or(v))
        } else {
            match memchr::memchr(b':', text.as_bytes()) {
                Some(0) => return false, // comment
                Some(i) => {
                    let value = &text[i + 1..];
                    (&text[..i], value.strip_prefix(' ').unwrap_or(value))
                }
                None => (text, ""),
            }
        };
        match field {
            "data" => {
                if *seen_data {
                    data.push('\n');
                }
                data.push_str(value);
                *seen_data = true;
            }
            "event" => {
                event.clear();
                event.push_str(value);
                *seen_event = true;
            }
            // An id holding NUL is ignored, as the browser rules say. An id alone does
            // not make an event: a blank line after it dispatches nothing.
            "id" if !value.contains('\0') => {
                id.clear();
                id.push_str(value);
                *seen_id = true;
            }
            // `retry` and unknown fields: nothing the tools act on.
            _ => {}
        }
        false
    }

    /// Forgets the event, keeping the buffers' capacity.
    fn reset(&mut self) {
        self.event.clear();
        self.data.clear();
        self.id.clear();
        self.seen_event = false;
        self.seen_data = false;
        self.seen_id = false;
    }
}

/// Reads [`Event`]s from a `BufRead` one at a time.
///
/// All state lives in the reader, so after an `Io` error (say a read timeout) the
/// next call carries on where the failed one stopped, without losing bytes.
pub struct SseReader<R> {
    inner: R,
    /// The line being assembled; kept across calls so its capacity is reused and a
    /// line interrupted by an I/O error is not lost.
    line: Vec<u8>,
    /// The last line ended in CR, so an LF at the start of the next read belongs to it.
    /// Deciding this lazily keeps a CR-terminated line from waiting for more input.
    skip_lf: bool,
    lines_read: u64,
    /// The event being read, field by field.
    pending: Pending,
    /// `event` and `data` hold the event handed out last; cleared on the next call.
    dispatched: bool,
    /// The stream's last line ended without a line terminator (at EOF).
    cut_line: bool,
    /// Everything `fill_buf` returned has been consumed, so the next `fill_buf` reads
    /// from the underlying stream (for a `BufReader`: it may block).
    drained: bool,
    /// The line ends found in the buffer in one pass, as positions in the buffer when
    /// they were found; `gone` bytes have been consumed since, and the next line ends
    /// at `ends[next_end]`.
    ends: Vec<usize>,
    next_end: usize,
    gone: usize,
    /// The bytes up to the last of `ends` are UTF-8, checked at once (else each of
    /// their lines is checked alone, to name the line that is not).
    ends_utf8: bool,
}

impl<R: BufRead> SseReader<R> {
    /// A reader of the events in `inner` (a response body, a byte slice in tests). A
    /// byte-order mark before the first line is skipped.
    pub fn new(inner: R) -> Self {
        SseReader {
            inner,
            line: Vec::new(),
            skip_lf: false,
            lines_read: 0,
            pending: Pending::default(),
            dispatched: false,
            cut_line: false,
            drained: true,
            ends: Vec::new(),
            next_end: 0,
            gone: 0,
            ends_utf8: false,
        }
    }

    /// Next complete event; `Ok(None)` at a clean end of stream (EOF with no pending
    /// fields). At EOF, pending fields whose lines all ended with a line terminator are
    /// dispatched as an event; a last line without one is `Truncated`. After
    /// `Truncated` the pending fields are dropped and the next call returns `Ok(None)`.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        Ok(self.next_ref_with(&mut || Ok(()))?.map(EventRef::to_owned))
    }

    /// [`next_event`](Self::next_event), borrowing the event (no allocation per event
    /// once the buffers have grown), and running `before_wait` before every read of the
    /// underlying stream, i.e. whenever the buffered bytes are used up and the next
    /// read may block on the network. A caller that batches its output flushes there:
    /// nothing then waits in its buffer while we wait for input, and no byte of the
    /// stream is looked at twice to decide it. Its error is returned as `Hook`.
    pub fn next_ref_with(
        &mut self,
        before_wait: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<Option<EventRef<'_>>, SseError> {
        if self.dispatched {
            self.dispatched = false;
            self.pending.reset();
        }
        loop {
            // Whole lines known to be left in the buffer are read where they lie. (Their
            // ends are forgotten whenever a line is gathered, and a CR awaiting its LF
            // is the buffer's last byte, so nothing is gathered or awaited here.)
            let found = if self.next_end < self.ends.len() {
                debug_assert!(self.line.is_empty() && !self.skip_lf);
                Line::InBuffer
            } else {
                self.read_line(before_wait)?
            };
            let whole = match found {
                Line::Eof => false,
                Line::Gathered => true,
                Line::InBuffer => match self.lines_in_buffer()? {
                    true => return Ok(Some(self.dispatch())),
                    false => continue,
                },
            };
            if !whole {
                if !(self.pending.seen_event || self.pending.seen_data) {
                    return Ok(None);
                }
                if self.cut_line {
                    // An empty `event:` value names no event, so report it as unnamed.
                    let name = std::mem::take(&mut self.pending.event);
                    let partial_event =
                        (self.pending.seen_event && !name.is_empty()).then_some(name);
                    let data = std::mem::take(&mut self.pending.data);
                    self.pending.reset();
                    return Err(SseError::Truncated {
                        partial_event,
                        data,
                    });
                }
                // Every line of the event is whole; only its blank line is missing.
                return Ok(Some(self.dispatch()));
            }
            self.lines_read += 1;
            let mut bytes = &self.line[..];
            if self.lines_read == 1 {
                bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            }
            let dispatched = match simdutf8::basic::from_utf8(bytes) {
                // `text` borrows `self.line` while `self.pending` is updated.
                Ok(text) => self.pending.apply(text),
                Err(_) => {
                    self.line.clear();
                    return Err(SseError::InvalidUtf8 {
                        line: self.lines_read,
                    });
                }
            };
            self.line.clear();
            if dispatched {
                return Ok(Some(self.dispatch()));
            }
        }
    }

    /// Applies the whole lines at the start of the buffer where they lie (the common
    /// case: no copy of the line first), up to the blank line that completes an
    /// event; true when one did. A buffer's line ends are found in one pass and its
    /// lines checked to be UTF-8 in one call, as far as its last line end (a line end
    /// is always a character boundary): one call per line made most of their cost on
    /// an event's short lines.
    fn lines_in_buffer(&mut self) -> Result<bool, SseError> {
        let buf = match self.inner.fill_buf() {
            Ok(buf) => buf,
            Err(e) => return Err(SseError::Io(e)),
        };
        let mut pos = 0;
        let mut dispatched = false;
        let mut invalid = false;
        loop {
            if self.next_end == self.ends.len() {
                self.ends.clear();
                self.next_end = 0;
                self.gone = 0;
                self.ends
                    .extend(memchr::memchr2_iter(b'\n', b'\r', &buf[pos..]).map(|i| pos + i));
                let Some(&last) = self.ends.last() else {
                    break;
                };
                self.ends_utf8 = simdutf8::basic::from_utf8(&buf[pos..=last]).is_ok();
            }
            // Found when the buffer began `gone` bytes earlier.
            let end = self.ends[self.next_end] - self.gone;
            self.next_end += 1;
            let mut used = end + 1;
            if buf[end] == b'\r' {
                match buf.get(used) {
                    Some(b'\n') => {
                        used += 1;
                        self.next_end += 1; // the LF's own entry
                    }
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            self.lines_read += 1;
            let mut bytes = &buf[pos..end];
            if self.lines_read == 1 {
                bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
            }
            let text = if self.ends_utf8 {
                // SAFETY: `bytes` ends at one of `ends`, so it lies inside the bytes from
                // where they were found to the last of them, found UTF-8 as a whole by
                // the one check above; and it starts and ends at character boundaries:
                // at that part's start, after a line end (ASCII) or after the BOM, and
                // right before a line end. A slice of valid UTF-8 cut at character
                // boundaries is valid UTF-8.
                Some(unsafe { std::str::from_utf8_unchecked(bytes) })
            } else {
                std::str::from_utf8(bytes).ok()
            };
            pos = used;
            let Some(text) = text else {
                invalid = true;
                break;
            };
            if self.pending.apply(text) {
                dispatched = true;
                break;
            }
        }
        self.drained = pos == buf.len();
        self.inner.consume(pos);
        self.gone += pos;
        if invalid {
            return Err(SseError::InvalidUtf8 {
                line: self.lines_read,
            });
        }
        Ok(dispatched)
    }

    /// Forgets the buffer's line ends (and their UTF-8 check): bytes were consumed
    /// other than line by line.
    fn forget_buffer(&mut self) {
        self.next_end = self.ends.len();
    }

    /// Hands out the pending event: its fields are done with; the text stays until the
    /// next call.
    fn dispatch(&mut self) -> EventRef<'_> {
        self.dispatched = true;
        let p = &mut self.pending;
        p.seen_event = false;
        p.seen_data = false;
        let event = match p.event.as_str() {
            "" => "message",
            name => name,
        };
        EventRef {
            event,
            data: &p.data,
            id: p.seen_id.then_some(p.id.as_str()),
        }
    }

    /// Lines consumed so far (the last, unterminated line at EOF included).
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// The underlying reader, positioned after the last line read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads and discards what is left of the stream after the last event, up to
    /// `limit` bytes; returns how many were discarded. Call it after the stream's
    /// final event (Coze's `done`), when the server ends the body right away: an HTTP
    /// body read to its end gives its connection back to the agent's pool (keep-alive),
    /// one dropped before then closes it. Never call it on a stream that may go on
    /// (it would block until the server ends it or the idle timeout).
    pub fn drain(&mut self, limit: u64) -> io::Result<u64> {
        self.forget_buffer();
        let mut rest = (&mut self.inner).take(limit);
        io::copy(&mut rest, &mut io::sink())
    }

    /// Finds the next line. One that lies whole in the buffer with nothing gathered
    /// before it is left there (`InBuffer`: `lines_in_buffer` reads it); one that
    /// spans reads is gathered into `self.line` (`Gathered`). Works on whole
    /// `fill_buf` slices rather than `read_until`, because a lone CR must end a line
    /// without waiting for the next LF (which may never come on a live stream).
    fn read_line(
        &mut self,
        before_wait: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<Line, SseError> {
        loop {
            if self.drained {
                before_wait().map_err(SseError::Hook)?;
            }
            let buf = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SseError::Io(e)),
            };
            if buf.is_empty() {
                self.skip_lf = false;
                if self.line.is_empty() {
                    return Ok(Line::Eof);
                }
                // The stream's last line, without its terminator: it may be cut short.
                self.cut_line = true;
                return Ok(Line::Gathered);
            }
            let mut start = 0;
            if self.skip_lf {
                self.skip_lf = false;
                if buf[0] == b'\n' {
                    start = 1;
                }
            }
            let rest = &buf[start..];
            match find_eol(rest) {
                Some(_) if self.line.is_empty() && start == 0 => return Ok(Line::InBuffer),
                Some(i) => {
                    let mut used = start + i + 1;
                    if rest[i] == b'\r' {
                        match buf.get(used) {
                            Some(b'\n') => used += 1,
                            Some(_) => {}
                            None => self.skip_lf = true,
                        }
                    }
                    self.line.extend_from_slice(&rest[..i]);
                    self.drained = used == buf.len();
                    self.inner.consume(used);
                    self.forget_buffer();
                    return Ok(Line::Gathered);
                }
                None => {
                    self.line.extend_from_slice(rest);
                    let used = buf.len();
                    self.inner.consume(used);
                    self.drained = true;
                    self.forget_buffer();
                }
            }
        }
    }
}

/// Position of the first CR or LF. This touches every byte of the stream, so it is
/// memchr's SIMD search: the hand-written 16-byte loop it replaced was 10% of a long
/// answer's CPU.
fn find_eol(s: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_io::{Chunked, RECORDED};
    use std::io::{BufReader, Cursor, Read};

    /// The hook runs exactly before the reads that may block: when the buffer is
    /// used up, never while a buffered event is still to be returned.
    #[test]
    fn before_wait_runs_only_when_the_buffer_is_used_up() {
        let stream = b"event:a\ndata:1\n\nevent:b\ndata:2\n\nevent:c\ndata:";
        // Two reads: the first 20 bytes (event a and part of b), then the rest.
        let chunked = Chunked::new(stream, &[20]);
        let mut r = SseReader::new(BufReader::with_capacity(1024, chunked));
        let mut waits = 0;
        let next = |r: &mut SseReader<_>, waits: &mut u32| {
            r.next_ref_with(&mut || {
                *waits += 1;
                Ok(())
            })
            .map(|e| e.map(EventRef::to_owned))
        };
        assert_eq!(next(&mut r, &mut waits).unwrap().unwrap().event, "a");
        assert_eq!(waits, 1, "one wait before the first read");
        assert_eq!(next(&mut r, &mut waits).unwrap().unwrap().event, "b");
        assert_eq!(waits, 2, "b was cut by the first read: one more wait");
        assert!(matches!(
            next(&mut r, &mut waits),
            Err(SseError::Truncated { .. })
        ));
        assert_eq!(
            waits, 4,
            "c: the rest of the buffer, then the end of the stream"
        );
        let mut r = SseReader::new(BufReader::new(&b"data:1\n\ndata:2\n\n"[..]));
        let failing = r.next_ref_with(&mut || Err(io::Error::other("stdout closed")));
        assert!(matches!(failing, Err(SseError::Hook(_))));
    }

    #[test]
    fn drain_reads_what_is_left() {
        let mut r = SseReader::new(BufReader::new(&b"event:done\ndata:1\n\ntrailer"[..]));
        assert_eq!(r.next_event().unwrap().unwrap().event, "done");
        assert_eq!(r.drain(1 << 16).unwrap(), 7);
        assert!(r.next_event().unwrap().is_none());
    }

    fn expected_recorded() -> Vec<Event> {
        let mut out = Vec::new();
        let mut lines = RECORDED.lines();
        while let Some(first) = lines.next() {
            if first.is_empty() {
                continue;
            }
            let data = lines.next().unwrap();
            out.push(ev(
                first.strip_prefix("event:").unwrap(),
                data.strip_prefix("data:").unwrap(),
            ));
        }
        out
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.to_owned(),
            data: data.to_owned(),
            id: None,
        }
    }

    fn read_all<R: BufRead>(reader: R) -> Result<Vec<Event>, SseError> {
        let mut r = SseReader::new(reader);
        let mut out = Vec::new();
        while let Some(e) = r.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    fn parse(s: &[u8]) -> Result<Vec<Event>, SseError> {
        read_all(Cursor::new(s))
    }

    /// A `Read` that hands out the bytes in the given pieces, one piece per call at
    /// most, optionally failing once with an error before a given piece.
    #[test]
    fn recorded_stream_no_space_form() {
        let events = parse(RECORDED.as_bytes()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events, expected_recorded());
        assert_eq!(events[0].event, "conversation.chat.created");
        assert!(events[1].data.contains(r#""content":"2""#));
        assert_eq!(events[3], ev("done", "\"[DONE]\""));
    }

    #[test]
    fn space_form() {
        let spaced = RECORDED
            .replace("event:", "event: ")
            .replace("data:", "data: ");
        assert_eq!(parse(spaced.as_bytes()).unwrap(), expected_recorded());
    }

    #[test]
    fn only_one_space_is_stripped() {
        let events = parse(b"data:  two\nevent:\tx\n\n").unwrap();
        assert_eq!(events, vec![ev("\tx", " two")]);
    }

    #[test]
    fn crlf_and_lone_cr() {
        let crlf = RECORDED.replace('\n', "\r\n");
        assert_eq!(parse(crlf.as_bytes()).unwrap(), expected_recorded());
        let cr = RECORDED.replace('\n', "\r");
        assert_eq!(parse(cr.as_bytes()).unwrap(), expected_recorded());
        let mixed = b"event:a\r\ndata:1\r\rdata:2\n\r\nevent:b\rdata:3\n\n";
        assert_eq!(
            parse(mixed).unwrap(),
            vec![ev("a", "1"), ev("message", "2"), ev("b", "3")]
        );
    }

    #[test]
    fn lone_cr_does_not_wait_for_more_input() {
        // A live stream using CR ends: the event must come out before the next byte.
        struct ThenBlock(Cursor<&'static [u8]>);
        impl Read for ThenBlock {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                match self.0.read(out)? {
                    0 => Err(io::Error::new(io::ErrorKind::WouldBlock, "no more yet")),
                    n => Ok(n),
                }
            }
        }
        let mut r = SseReader::new(BufReader::new(ThenBlock(Cursor::new(b"data:x\r\r"))));
        assert_eq!(r.next_event().unwrap(), Some(ev("message", "x")));
        match r.next_event() {
            Err(SseError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn multi_line_data_joined_with_newline() {
        let events = parse(b"data:first\ndata: second\ndata\ndata:\ndata:last\n\n").unwrap();
        assert_eq!(events, vec![ev("message", "first\nsecond\n\n\nlast")]);
    }

    #[test]
    fn comments_retry_and_unknown_fields_ignored_the_last_id_kept() {
        let s = b": keep-alive\n:\nid: 7\nretry: 3000\nfoo: bar\nevent:x\n: mid comment\nid\ndata:y\n\n";
        let mut want = ev("x", "y");
        // A bare `id` is an empty id, as the browser rules read it.
        want.id = Some(String::new());
        assert_eq!(parse(s).unwrap(), vec![want]);
        // A comment or id alone is not an event, and that id is no later event's.
        assert_eq!(parse(b": ping\n\nid: 1\n\n").unwrap(), vec![]);
        assert_eq!(
            parse(b"id: 1\n\ndata:a\n\n").unwrap(),
            vec![ev("message", "a")]
        );
        // An id holding NUL is ignored.
        assert_eq!(parse(b"id: 1\0\ndata:a\n\n").unwrap()[0].id, None);
    }

    /// A Coze workflow stream (the Coze API docs, `workflow_stream_run`): each event's
    /// `id:`, with or without the space, at every split point, and an event without
    /// one after it (a self-hosted Coze Studio's lower-case `error`) has none.
    #[test]
    fn workflow_events_carry_their_own_ids_at_every_split_point() {
        let spaced =
            "id: 0\nevent: Message\ndata: {\"content\":\"你好\",\"node_title\":\"End\"}\n\n\
                      id: 1\nevent: PING\ndata: {}\n\n\
                      event: error\ndata: internal\n\n\
                      id: 2\r\nevent: Done\r\ndata: {}\r\n\r\n";
        let tight = spaced.replace(": ", ":");
        for text in [spaced, tight.as_str()] {
            let events = parse(text.as_bytes()).unwrap();
            let ids: Vec<Option<&str>> = events.iter().map(|e| e.id.as_deref()).collect();
            assert_eq!(ids, [Some("0"), Some("1"), None, Some("2")], "{text:?}");
            assert_eq!(events[0].event, "Message");
            assert!(events[0].data.contains("你好"));
            let bytes = text.as_bytes();
            for cap in [1, 5] {
                for cut in 0..=bytes.len() {
                    let r = BufReader::with_capacity(cap, Chunked::new(bytes, &[cut]));
                    assert_eq!(read_all(r).unwrap(), events, "cap {cap} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn blank_lines_without_fields_dispatch_nothing() {
        assert_eq!(
            parse(b"\n\n\r\n\rdata:a\n\n\n\n").unwrap(),
            vec![ev("message", "a")]
        );
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(parse(b"\n").unwrap(), vec![]);
    }

    #[test]
    fn event_without_data_and_empty_data_are_dispatched() {
        assert_eq!(parse(b"event:ping\n\n").unwrap(), vec![ev("ping", "")]);
        assert_eq!(parse(b"data:\n\n").unwrap(), vec![ev("message", "")]);
        assert_eq!(
            parse(b"event:\ndata:z\n\n").unwrap(),
            vec![ev("message", "z")]
        );
    }

    #[test]
    fn event_name_does_not_leak_into_next_event() {
        let events = parse(b"event:a\nevent:b\ndata:1\n\ndata:2\n\n").unwrap();
        assert_eq!(events, vec![ev("b", "1"), ev("message", "2")]);
    }

    #[test]
    fn bom_at_start_is_skipped_only_there() {
        let mut s = BOM.to_vec();
        s.extend_from_slice(RECORDED.as_bytes());
        assert_eq!(parse(&s).unwrap(), expected_recorded());
        // A BOM later in the stream is content (here: part of the field name).
        let later = b"data:a\n\n\xEF\xBB\xBFdata:b\n\n";
        assert_eq!(parse(later).unwrap(), vec![ev("message", "a")]);
    }

    #[test]
    fn one_mib_data_line() {
        let big = "x".repeat(1 << 20);
        let s = format!("event:big\ndata:{big}\n\ndata:after\n\n");
        let events = read_all(BufReader::with_capacity(100, s.as_bytes())).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data.len(), 1 << 20);
        assert_eq!(events[0], ev("big", &big));
        assert_eq!(events[1], ev("message", "after"));
    }

    #[test]
    fn cjk_and_emoji() {
        let s = "event:conversation.message.delta\ndata:{\"content\":\"你好，世界 🙂👍🏽\"}\n\nevent:名前\ndata:😀\n\n";
        let events = parse(s.as_bytes()).unwrap();
        assert_eq!(
            events,
            vec![
                ev(
                    "conversation.message.delta",
                    "{\"content\":\"你好，世界 🙂👍🏽\"}"
                ),
                ev("名前", "😀"),
            ]
        );
        // Every split point, with a 1-byte buffer, splits each character somewhere.
        for cut in 0..=s.len() {
            let r = BufReader::with_capacity(1, Chunked::new(s.as_bytes(), &[cut]));
            assert_eq!(read_all(r).unwrap(), events, "cut at {cut}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = RECORDED.as_bytes();
        let want = expected_recorded();
        for cap in [1, 3, 8, 64] {
            for cut in 0..=bytes.len() {
                let r = BufReader::with_capacity(cap, Chunked::new(bytes, &[cut]));
                assert_eq!(read_all(r).unwrap(), want, "cap {cap} cut {cut}");
            }
        }
        let crlf = RECORDED.replace('\n', "\r\n");
        for cut in 0..=crlf.len() {
            let r = BufReader::with_capacity(16, Chunked::new(crlf.as_bytes(), &[cut]));
            assert_eq!(read_all(r).unwrap(), want, "crlf cut {cut}");
        }
    }

    #[test]
    fn every_pair_of_split_points_on_a_short_stream() {
        let s = "\u{FEFF}event:conversation.message.delta\r\ndata:{\"content\":\"é🙂\"}\r\r: c\ndata: x\n\nevent:done\rdata:\"[DONE]\"\r\n\r\n";
        let bytes = s.as_bytes();
        let want = parse(bytes).unwrap();
        assert_eq!(
            want,
            vec![
                ev("conversation.message.delta", "{\"content\":\"é🙂\"}"),
                ev("message", "x"),
                ev("done", "\"[DONE]\""),
            ]
        );
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let r = BufReader::with_capacity(5, Chunked::new(bytes, &[a, b]));
                assert_eq!(read_all(r).unwrap(), want, "cuts {a} {b}");
            }
        }
    }

    /// A stream that ends after its last event's whole lines but without the blank line
    /// (coze-py's recorded streams end so, and coze-py reads them) gives that event,
    /// whatever the line ends, in any chunking.
    #[test]
    fn a_last_event_without_its_blank_line_is_dispatched() {
        let want = expected_recorded();
        for eol in ["\n", "\r\n", "\r"] {
            let s = RECORDED.replace('\n', eol);
            let bytes = &s.as_bytes()[..s.len() - eol.len()]; // no final blank line
            assert_eq!(parse(bytes).unwrap(), want, "{eol:?}");
            for cut in 0..=bytes.len() {
                let r = BufReader::with_capacity(7, Chunked::new(bytes, &[cut]));
                assert_eq!(read_all(r).unwrap(), want, "{eol:?} cut {cut}");
            }
        }
        // Several fields, a comment among them; then nothing more.
        let mut r = SseReader::new(&b"data:a\n\nevent:x\n: c\ndata:1\ndata:2\n"[..]);
        assert_eq!(r.next_event().unwrap(), Some(ev("message", "a")));
        assert_eq!(r.next_event().unwrap(), Some(ev("x", "1\n2")));
        assert_eq!(r.next_event().unwrap(), None);
        assert_eq!(r.next_event().unwrap(), None);
    }

    /// Only a last line without its terminator is a cut: it may be short.
    #[test]
    fn truncated_last_event() {
        let cut = RECORDED.len() - 2; // drop the blank line and the data line's end
        match parse(&RECORDED.as_bytes()[..cut]) {
            Err(SseError::Truncated {
                partial_event,
                data,
            }) => {
                assert_eq!(partial_event.as_deref(), Some("done"));
                assert_eq!(data, "\"[DONE]\"", "the data as far as it came");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Data without a name, ending mid-line.
        let mut r = SseReader::new(&b"data:a\n\ndata:{\"par"[..]);
        assert_eq!(r.next_event().unwrap(), Some(ev("message", "a")));
        match r.next_event() {
            Err(e @ SseError::Truncated { .. }) => {
                assert!(matches!(
                    &e,
                    SseError::Truncated {
                        partial_event: None,
                        data,
                    } if data == "{\"par"
                ));
                assert!(e.to_string().contains("middle of an event"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.next_event().unwrap(), None);
        // Just the name line.
        assert!(matches!(
            parse(b"event:conversation.chat.completed"),
            Err(SseError::Truncated { partial_event: Some(n), .. }) if n == "conversation.chat.completed"
        ));
        // Whole data, then a cut comment: the event's lines are not known to be all there.
        assert!(matches!(
            parse(b"data:a\n: bye"),
            Err(SseError::Truncated { .. })
        ));
    }

    #[test]
    fn trailing_comment_or_id_without_blank_line_is_clean_eof() {
        assert_eq!(parse(b"data:a\n\n: bye").unwrap(), vec![ev("message", "a")]);
        assert_eq!(
            parse(b"data:a\n\nid: 4\n").unwrap(),
            vec![ev("message", "a")]
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let s = b"event:a\ndata:ok\n\nevent:b\ndata:\xFF\xFE\n\n";
        let mut r = SseReader::new(&s[..]);
        assert_eq!(r.next_event().unwrap(), Some(ev("a", "ok")));
        match r.next_event() {
            Err(e @ SseError::InvalidUtf8 { .. }) => {
                assert!(matches!(e, SseError::InvalidUtf8 { line: 5 }));
                assert_eq!(e.to_string(), "event stream line 5: not valid UTF-8");
            }
            other => panic!("unexpected {other:?}"),
        }
        // CR line ends count too, and a character cut by a line end is invalid.
        let s = b"data:a\r\rdata:\xE4\xBD\rdata:b\r\r";
        assert!(matches!(parse(s), Err(SseError::InvalidUtf8 { line: 3 })));
        assert!(matches!(
            parse(b"\xEF\xBB: comment\n"),
            Err(SseError::InvalidUtf8 { line: 1 })
        ));
    }

    #[test]
    fn io_error_passes_through_with_its_kind_and_reading_resumes() {
        let bytes = RECORDED.as_bytes();
        let mid = RECORDED.find("data:{\"id\":\"7382159494").unwrap() + 10;
        for kind in [io::ErrorKind::TimedOut, io::ErrorKind::ConnectionReset] {
            let mut chunked = Chunked::new(bytes, &[mid]);
            chunked.fail_before = Some((1, kind));
            let mut r = SseReader::new(BufReader::with_capacity(7, chunked));
            assert_eq!(
                r.next_event().unwrap(),
                Some(expected_recorded()[0].clone())
            );
            let err = r.next_event().unwrap_err();
            match &err {
                SseError::Io(e) => assert_eq!(e.kind(), kind),
                other => panic!("unexpected {other:?}"),
            }
            assert!(std::error::Error::source(&err).is_some());
            // Nothing was lost: the rest of the stream reads as if nothing happened.
            let mut rest = Vec::new();
            while let Some(e) = r.next_event().unwrap() {
                rest.push(e);
            }
            assert_eq!(rest, expected_recorded()[1..]);
        }
    }

    #[test]
    fn interrupted_is_retried() {
        let mut chunked = Chunked::new(b"data:a\n\n", &[3]);
        chunked.fail_before = Some((1, io::ErrorKind::Interrupted));
        assert_eq!(
            read_all(BufReader::with_capacity(2, chunked)).unwrap(),
            vec![ev("message", "a")]
        );
    }

    #[test]
    fn lines_read_and_into_inner() {
        let mut r = SseReader::new(Cursor::new(RECORDED.as_bytes()));
        assert_eq!(r.lines_read(), 0);
        r.next_event().unwrap();
        assert_eq!(r.lines_read(), 3);
        while r.next_event().unwrap().is_some() {}
        assert_eq!(r.lines_read(), 12);
        let inner = r.into_inner();
        assert_eq!(inner.position() as usize, RECORDED.len());
    }

    #[test]
    fn find_eol_all_positions() {
        for len in 0..40 {
            for pos in 0..len {
                for b in [b'\n', b'\r'] {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(find_eol(&v), Some(pos));
                }
            }
            assert_eq!(find_eol(&vec![b'a'; len]), None);
        }
    }
}
