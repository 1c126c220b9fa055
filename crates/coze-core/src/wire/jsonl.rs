//! JSON lines in and out: numbered line reading, one-object-per-line parsing with
//! errors that name the line, and a writer that emits one record per line.
//!
//! The coze tools read records from stdin and write them to stdout so they compose
//! in pipelines; this module holds the byte-level rules they share. The writer
//! flushes after every record so a downstream consumer sees each one the moment it
//! is complete (chat deltas must not sit in a buffer). It is not a schema layer:
//! which keys a record has is the caller's business, and it does not read
//! pretty-printed multi-line JSON.
//!
//! Every read here is bounded: a line longer than the reader's limit is an error
//! naming the line, found after reading at most the limit, so `< /dev/zero` or a
//! binary file ends in a one-line message instead of memory growing until the process
//! aborts. [`read_capped`] does the same for a whole file.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

/// The longest line a [`LineReader`] takes unless told otherwise: 8 MiB, far above any
/// prompt or record a person or a script writes (a long prompt is a few hundred KB).
pub const DEFAULT_MAX_LINE: usize = 8 << 20;

/// A Unicode byte-order mark, which editors on Windows put before the first line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

use serde_json::{Map, Value};

/// Reads lines from a `BufRead`, numbering them from 1; strips the trailing `\n`
/// or `\r\n`, and a byte-order mark before the first line.
pub struct LineReader<R> {
    inner: R,
    /// Reused between lines; also keeps the bytes of a line cut short by an I/O
    /// error, so a retry after e.g. `TimedOut` does not lose them.
    buf: Vec<u8>,
    line: u64,
    /// The longest line taken, in bytes (without its line end).
    max: usize,
    /// A line was too long: the rest of the input is not read (its end may be
    /// gigabytes away, or never come).
    ended: bool,
}

/// Why [`LineReader::next_line`] failed.
#[derive(Debug)]
pub enum LineError {
    /// Reading failed; the bytes read so far are kept, so the next call may retry.
    Io(io::Error),
    /// A line is not UTF-8; the lines after it can still be read.
    InvalidUtf8 {
        /// Its number, from 1.
        line: u64,
    },
    /// Line `line` is longer than `max` bytes; the reader has stopped.
    TooLong {
        /// Its number, from 1.
        line: u64,
        /// The reader's limit, in bytes.
        max: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Io(e) => write!(f, "reading input: {e}"),
            LineError::InvalidUtf8 { line } => write!(f, "line {line}: not valid UTF-8"),
            LineError::TooLong { line, max } => {
                write!(f, "line {line}: longer than {}", size(*max as u64))
            }
        }
    }
}

/// `8 MiB`, `1 KiB`, or `1000 bytes`: a limit as people read it.
pub fn size(bytes: u64) -> String {
    for (unit, name) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LineError::Io(e) => Some(e),
            LineError::InvalidUtf8 { .. } | LineError::TooLong { .. } => None,
        }
    }
}

impl From<io::Error> for LineError {
    fn from(e: io::Error) -> Self {
        LineError::Io(e)
    }
}

impl<R: BufRead> LineReader<R> {
    /// A reader of lines up to [`DEFAULT_MAX_LINE`] bytes.
    pub fn new(inner: R) -> Self {
        LineReader::with_max(inner, DEFAULT_MAX_LINE)
    }

    /// A reader of lines up to `max` bytes each.
    pub fn with_max(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            line: 0,
            max,
            ended: false,
        }
    }

    /// `Ok(None)` at EOF. A last line without `\n` is still returned. Blank lines are
    /// returned (as `""`) and counted, so numbers match what an editor shows. After
    /// [`LineError::TooLong`] nothing more is read: every later call is `Ok(None)`.
    pub fn next_line(&mut self) -> Result<Option<(u64, String)>, LineError> {
        if self.ended {
            return Ok(None);
        }
        // At most the limit, a byte-order mark and a CRLF: a longer line is known to
        // be too long without holding more of it. read_until retries `Interrupted`
        // itself and appends what it read before any other error to `buf`, which we
        // keep for the next call.
        let room = self
            .max
            .saturating_add(BOM.len() + 2)
            .saturating_sub(self.buf.len()) as u64;
        Read::take(&mut self.inner, room).read_until(b'\n', &mut self.buf)?;
        if self.buf.is_empty() {
            return Ok(None);
        }
        self.line += 1;
        let start = if self.line == 1 && self.buf.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let mut end = self.buf.len();
        if self.buf[end - 1] == b'\n' {
            end -= 1;
            if end > start && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if end - start > self.max {
            self.ended = true;
            self.buf = Vec::new();
            return Err(LineError::TooLong {
                line: self.line,
                max: self.max,
            });
        }
        let result = match std::str::from_utf8(&self.buf[start..end]) {
            Ok(text) => Ok(Some((self.line, text.to_owned()))),
            Err(_) => Err(LineError::InvalidUtf8 { line: self.line }),
        };
        self.buf.clear();
        result
    }

    /// Number of the last line returned (0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// The underlying reader, with whatever this one had not yet taken from it.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// All of `reader`, if it holds at most `max` bytes; a longer input is an error of
/// kind `FileTooLarge` ("larger than 1 MiB") after reading `max + 1` bytes of it.
pub fn read_capped(reader: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {}", size(max)),
        ));
    }
    Ok(bytes)
}

/// [`read_capped`] of a file, as text (a file that is not UTF-8 is `InvalidData`).
pub fn read_file_capped(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read_capped(std::fs::File::open(path)?, max)?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// A line that is not a JSON object; `message` says why, without the line number.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// The line's number, as the caller counted it.
    pub line: u64,
    /// What is wrong ("expected a JSON object, found an array").
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line as a JSON object; the error names the line and says why, e.g.
/// "line 4: expected a JSON object, found an array" or
/// "line 4: invalid JSON: EOF while parsing a string at column 12".
pub fn parse_object(line_no: u64, text: &str) -> Result<Map<String, Value>, ParseError> {
    let fail = |message: String| ParseError {
        line: line_no,
        message,
    };
    if text.trim().is_empty() {
        return Err(fail(
            "expected a JSON object, found an empty line".to_owned(),
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(fail(format!(
            "expected a JSON object, found {}",
            kind_of(&other)
        ))),
        Err(e) => Err(fail(format!("invalid JSON: {}", describe(&e)))),
    }
}

/// What a JSON value is, in words, for a message ("found an array").
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message, with "at line 1 column N" shortened to "at column N": the
/// text is a single line and the caller's line number is the one that matters.
fn describe(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(msg) if e.line() == 1 => format!("{msg} at column {}", e.column()),
        _ => full,
    }
}

/// Writes one JSON value per line and flushes after each line (consumers see each
/// record the moment it is complete).
pub struct JsonlWriter<W: Write> {
    inner: W,
    /// Reused serialization buffer: the whole line goes out in one `write_all`, so
    /// concurrent writers to the same pipe cannot interleave inside a record.
    buf: Vec<u8>,
}

impl<W: Write> JsonlWriter<W> {
    /// A writer of lines to `inner` (stdout, an answers file, a `Vec` in tests).
    pub fn new(inner: W) -> Self {
        JsonlWriter {
            inner,
            buf: Vec::new(),
        }
    }

    /// Serializes `value` compactly, appends `\n`, writes the line and flushes.
    /// A value that cannot be serialized (a map with non-string keys, say) gives an
    /// `InvalidData` error and writes nothing.
    pub fn write<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, value)?;
        self.buf.push(b'\n');
        self.inner.write_all(&self.buf)?;
        self.inner.flush()
    }

    /// As [`write`](Self::write) without the flush, for a caller that flushes itself
    /// before it waits for more input (a stream of events arriving faster than one
    /// write per line is worth). The line still goes out in one `write_all`.
    pub fn write_unflushed<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, value)?;
        self.buf.push(b'\n');
        self.inner.write_all(&self.buf)
    }

    /// As [`write_unflushed`](Self::write_unflushed) for a line the caller writes
    /// itself into the reused buffer (`fill` appends one compact JSON value; the
    /// newline is added here): an event passed through as it came is copied, not
    /// serialised (`event_data`).
    pub fn write_line_with(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.buf.clear();
        fill(&mut self.buf)?;
        self.buf.push(b'\n');
        self.inner.write_all(&self.buf)
    }

    /// Flushes what [`write_unflushed`](Self::write_unflushed) left behind.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer, for bytes that are not records (`-o text`'s answer).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The underlying writer, with everything written so far handed to it.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// True for the errors a closed stdout gives (`BrokenPipe`, i.e. EPIPE); callers
/// end quietly with status 0 on it, like other Unix filters cut off by `head`.
pub fn is_closed_pipe(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::{BufReader, Cursor, Read};

    fn all_lines(bytes: &[u8]) -> Vec<(u64, String)> {
        let mut r = LineReader::new(bytes);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    fn l(n: u64, s: &str) -> (u64, String) {
        (n, s.to_owned())
    }

    #[test]
    fn numbering_blank_lines_crlf_and_unterminated_last_line() {
        let lines = all_lines(b"{\"a\":1}\n\n{\"b\":2}\r\n\r\n  \nlast");
        assert_eq!(
            lines,
            vec![
                l(1, "{\"a\":1}"),
                l(2, ""),
                l(3, "{\"b\":2}"),
                l(4, ""),
                l(5, "  "),
                l(6, "last")
            ]
        );
        assert_eq!(all_lines(b""), vec![]);
        assert_eq!(all_lines(b"\n"), vec![l(1, "")]);
        assert_eq!(all_lines(b"x\n"), vec![l(1, "x")]);
        // Only \n and \r\n end a line; a lone or doubled CR stays content.
        assert_eq!(all_lines(b"a\rb\r\r\n"), vec![l(1, "a\rb\r")]);
    }

    #[test]
    fn eof_is_sticky_and_numbers_survive() {
        let mut r = LineReader::new(&b"a\nb"[..]);
        assert_eq!(r.next_line().unwrap(), Some(l(1, "a")));
        assert_eq!(r.next_line().unwrap(), Some(l(2, "b")));
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.line_number(), 2);
    }

    #[test]
    fn long_lines_and_utf8_across_small_buffers() {
        let text = format!("{}\n中文🙂\n", "y".repeat(100_000));
        let mut r = LineReader::new(BufReader::with_capacity(3, text.as_bytes()));
        assert_eq!(r.next_line().unwrap().unwrap().1.len(), 100_000);
        assert_eq!(r.next_line().unwrap(), Some(l(2, "中文🙂")));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn invalid_utf8_names_the_line_and_reading_goes_on() {
        let mut r = LineReader::new(&b"ok\n\xC3\x28\nafter\n"[..]);
        assert_eq!(r.next_line().unwrap(), Some(l(1, "ok")));
        let err = r.next_line().unwrap_err();
        assert!(matches!(err, LineError::InvalidUtf8 { line: 2 }));
        assert_eq!(err.to_string(), "line 2: not valid UTF-8");
        assert_eq!(r.next_line().unwrap(), Some(l(3, "after")));
    }

    #[test]
    fn io_error_passes_through_and_partial_line_is_kept() {
        struct FailOnce {
            data: Cursor<&'static [u8]>,
            failed: bool,
        }
        impl Read for FailOnce {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.data.position() == 3 && !self.failed {
                    self.failed = true;
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "slow"));
                }
                self.data.read(&mut out[..1])
            }
        }
        let src = FailOnce {
            data: Cursor::new(b"abcdef\n"),
            failed: false,
        };
        let mut r = LineReader::new(BufReader::with_capacity(1, src));
        match r.next_line() {
            Err(LineError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(r.next_line().unwrap(), Some(l(1, "abcdef")));
    }

    #[test]
    fn a_line_over_the_limit_names_its_line_and_ends_the_input() {
        // The limit is the line's content: its CRLF does not count.
        let mut r = LineReader::with_max(&b"1234\r\n12345\nnever read\n"[..], 4);
        assert_eq!(r.next_line().unwrap(), Some(l(1, "1234")));
        let err = r.next_line().unwrap_err();
        assert!(
            matches!(err, LineError::TooLong { line: 2, max: 4 }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 2: longer than 4 bytes");
        assert_eq!(r.next_line().unwrap(), None);
        // An endless line is refused after at most the limit and a few bytes.
        let mut r = LineReader::with_max(BufReader::new(io::repeat(0).take(1 << 30)), 1 << 10);
        assert!(matches!(
            r.next_line(),
            Err(LineError::TooLong { line: 1, .. })
        ));
        let left = r.into_inner().into_inner().limit();
        assert!(left > (1 << 30) - (1 << 14), "{left}");
        // An unterminated last line over the limit too.
        let mut r = LineReader::with_max(&b"12345"[..], 4);
        assert!(matches!(
            r.next_line(),
            Err(LineError::TooLong { line: 1, .. })
        ));
        assert_eq!(
            LineError::TooLong {
                line: 3,
                max: 8 << 20
            }
            .to_string(),
            "line 3: longer than 8 MiB"
        );
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_dropped() {
        assert_eq!(
            all_lines(b"\xEF\xBB\xBFhello\n\xEF\xBB\xBFkept\n"),
            vec![l(1, "hello"), l(2, "\u{feff}kept")]
        );
        assert_eq!(all_lines(b"\xEF\xBB\xBF"), vec![l(1, "")]);
        // The mark does not count against the limit.
        let mut r = LineReader::with_max(&b"\xEF\xBB\xBF1234\r\n"[..], 4);
        assert_eq!(r.next_line().unwrap(), Some(l(1, "1234")));
    }

    #[test]
    fn read_capped_reads_at_most_one_byte_past_the_cap() {
        assert_eq!(read_capped(&b"abcd"[..], 4).unwrap(), b"abcd");
        let mut endless = io::repeat(b'x').take(1 << 30);
        let err = read_capped(&mut endless, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(err.to_string(), "larger than 1 MiB");
        assert_eq!(endless.limit(), (1 << 30) - (1 << 20) - 1);
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(size(3 << 30), "3 GiB");
    }

    #[test]
    fn parse_object_ok() {
        let m = parse_object(1, r#" {"role":"user","content":"hi","n":[1,2]} "#).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["role", "content", "n"]);
        assert_eq!(m["content"], "hi");
    }

    #[test]
    fn parse_object_rejects_non_objects() {
        for (text, found) in [
            ("[1,2]", "an array"),
            ("\"hi\"", "a string"),
            ("42", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
            ("", "an empty line"),
            ("   ", "an empty line"),
        ] {
            let err = parse_object(4, text).unwrap_err();
            assert_eq!(err.line, 4);
            assert_eq!(
                err.to_string(),
                format!("line 4: expected a JSON object, found {found}")
            );
        }
    }

    #[test]
    fn parse_object_reports_broken_json() {
        let err = parse_object(4, r#"{"content":"unterminated"#).unwrap_err();
        assert_eq!(
            err,
            ParseError {
                line: 4,
                message: "invalid JSON: EOF while parsing a string at column 24".to_owned()
            }
        );
        let err = parse_object(9, r#"{"a":1} x"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 9: invalid JSON: trailing characters at column 9"
        );
        let err = parse_object(2, "{'a':1}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: invalid JSON: key must be a string at column 2"
        );
    }

    /// Records each write and flush so tests can check what a consumer would see.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushed_at: Vec<usize>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushed_at.push(self.writes.len());
            Ok(())
        }
    }

    #[test]
    fn writer_writes_one_line_per_record_and_flushes_each() {
        let mut w = JsonlWriter::new(Recorder::default());
        w.write(&json!({"type":"answer","content":"a\nb"})).unwrap();
        w.write(&json!({"type":"done"})).unwrap();
        w.write("plain string").unwrap();
        let rec = w.into_inner();
        assert_eq!(
            rec.writes,
            vec![
                b"{\"type\":\"answer\",\"content\":\"a\\nb\"}\n".to_vec(),
                b"{\"type\":\"done\"}\n".to_vec(),
                b"\"plain string\"\n".to_vec(),
            ]
        );
        assert_eq!(rec.flushed_at, vec![1, 2, 3]);
    }

    #[test]
    fn writer_output_reads_back() {
        let mut w = JsonlWriter::new(Vec::new());
        let records = [json!({"a":"中文🙂"}), json!({"b":[1,{"c":null}]})];
        for r in &records {
            w.write(r).unwrap();
        }
        w.get_mut().extend_from_slice(b"{}\n");
        let out = w.into_inner();
        let lines = all_lines(&out);
        assert_eq!(lines.len(), 3);
        for ((n, text), want) in lines.iter().zip(&records) {
            assert_eq!(&Value::Object(parse_object(*n, text).unwrap()), want);
        }
    }

    #[test]
    fn unserializable_value_writes_nothing() {
        let mut m = std::collections::HashMap::new();
        m.insert((1, 2), 3);
        let mut w = JsonlWriter::new(Recorder::default());
        let err = w.write(&m).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        w.write(&json!(1)).unwrap();
        assert_eq!(w.into_inner().writes, vec![b"1\n".to_vec()]);
    }

    #[test]
    fn broken_pipe_is_a_closed_pipe() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = JsonlWriter::new(Closed);
        let err = w.write(&json!({"a":1})).unwrap_err();
        assert!(is_closed_pipe(&err));
        assert!(!is_closed_pipe(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(!is_closed_pipe(&io::Error::other("x")));
    }
}
