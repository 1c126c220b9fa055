//! A streaming `multipart/form-data` reader (RFC 7578 over RFC 2046's framing): part
//! headers are parsed, part content is handed out in slices as it arrives and never
//! held whole, so an upload of any size costs the fake one small buffer. Every way a
//! body can be malformed (no boundary, a part cut short, no closing delimiter, headers
//! without their blank line) is an [`MpError::Malformed`] saying which, never a panic.

use std::io::{self, Read};

use memchr::memmem::Finder;

/// How much of the body is held at a time (plus the delimiter's length).
const CHUNK: usize = 64 << 10;
/// The most bytes a part's header block may take.
const MAX_HEADERS: usize = 16 << 10;

/// Why reading the form stopped.
#[derive(Debug)]
pub enum MpError {
    /// The body breaks the multipart framing; the text says how.
    Malformed(String),
    /// Reading the body failed (it ended before its declared length, the peer went away).
    Io(io::Error),
    /// The sink asked to stop (over a limit, a fault); nothing is wrong with the body.
    Stopped,
}

impl From<io::Error> for MpError {
    fn from(e: io::Error) -> Self {
        MpError::Io(e)
    }
}

/// One part's headers.
#[derive(Debug, Default)]
pub struct PartHead {
    /// `Content-Disposition`'s `name`.
    pub name: Option<String>,
    /// `Content-Disposition`'s `filename` (or its RFC 5987 `filename*`).
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
}

#[derive(PartialEq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: part headers or the closing `--` come next.
    AfterDelimiter,
    /// Inside a part's content.
    InPart,
    /// After the closing delimiter.
    Done,
}

/// The reader over a body `R`.
pub struct Multipart<R: Read> {
    r: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `\r\n--BOUNDARY`: the body is read as if it began with a CRLF, so the first
    /// delimiter (which may open the body) matches as every later one does.
    delim: Vec<u8>,
    state: State,
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type; Err says what is
/// wrong.
pub fn boundary(content_type: Option<&str>) -> Result<String, String> {
    let ct = content_type.ok_or("no Content-Type: want multipart/form-data with a boundary")?;
    let mut params = ct.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!(
            "Content-Type is {kind:?}: want multipart/form-data with a boundary"
        ));
    }
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim().trim_matches('"');
                if v.is_empty() || v.len() > 70 {
                    return Err(format!("bad multipart boundary {v:?} (1 to 70 characters)"));
                }
                return Ok(v.to_string());
            }
        }
    }
    Err("multipart/form-data without a boundary parameter".into())
}

impl<R: Read> Multipart<R> {
    /// A reader of `r`, whose parts are delimited by `boundary`.
    pub fn new(r: R, boundary: &str) -> Self {
        let mut buf = vec![0; CHUNK + boundary.len() + 8];
        buf[..2].copy_from_slice(b"\r\n");
        Multipart {
            r,
            buf,
            start: 0,
            end: 2,
            delim: format!("\r\n--{boundary}").into_bytes(),
            state: State::Preamble,
        }
    }

    /// Read more of the body after what is held; false at its end.
    fn fill(&mut self) -> Result<bool, MpError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(MpError::Malformed(
                "a part's header line is too long".into(),
            ));
        }
        loop {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Hand the content up to the next delimiter to `sink`, and consume the delimiter.
    fn through_delimiter(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), MpError>,
        at_eof: &str,
    ) -> Result<(), MpError> {
        let finder = Finder::new(&self.delim).into_owned();
        let dlen = self.delim.len();
        loop {
            let held = &self.buf[self.start..self.end];
            if let Some(i) = finder.find(held) {
                // A delimiter is followed by `--`, padding or its line end; the boundary
                // followed by anything else is content, as Go's `mime/multipart` reads it.
                match held.get(i + dlen..i + dlen + 2) {
                    Some(b"--" | b"\r\n") | Some([b' ' | b'\t', _]) => {
                        sink(&held[..i])?;
                        self.start += i + dlen;
                        return Ok(());
                    }
                    Some(_) => {
                        sink(&held[..=i])?;
                        self.start += i + 1;
                        continue;
                    }
                    // Not enough held to tell: read more, keeping the candidate.
                    None => {
                        sink(&held[..i])?;
                        self.start += i;
                        if !self.fill()? {
                            return Err(MpError::Malformed(at_eof.into()));
                        }
                        continue;
                    }
                }
            }
            // All but a possible delimiter's beginning at the end is content.
            let safe = held.len().saturating_sub(dlen + 1);
            if safe > 0 {
                sink(&held[..safe])?;
                self.start += safe;
            }
            if !self.fill()? {
                return Err(MpError::Malformed(at_eof.into()));
            }
        }
    }

    /// At least `n` bytes held (false: the body ended first).
    fn want(&mut self, n: usize) -> Result<bool, MpError> {
        while self.end - self.start < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next part's headers; None after the closing delimiter. The content of a part
    /// not read with [`Multipart::read_part`] is skipped.
    pub fn next_part(&mut self) -> Result<Option<PartHead>, MpError> {
        match self.state {
            State::Done => return Ok(None),
            State::Preamble => self.through_delimiter(
                &mut |_| Ok(()),
                "no multipart boundary delimiter in the body",
            )?,
            State::InPart => self.read_part(&mut |_| Ok(()))?,
            State::AfterDelimiter => {}
        }
        if !self.want(2)? {
            return Err(MpError::Malformed(
                "the body ends after a delimiter: no closing boundary".into(),
            ));
        }
        if &self.buf[self.start..self.start + 2] == b"--" {
            self.state = State::Done;
            return Ok(None);
        }
        // Transport padding, then the CRLF that ends the delimiter line.
        let line = self.line()?;
        if !line.trim().is_empty() {
            return Err(MpError::Malformed(format!(
                "unexpected text after a boundary delimiter: {:?}",
                truncate(&line)
            )));
        }
        let mut head = PartHead::default();
        let mut total = 0;
        loop {
            let line = self.line()?;
            total += line.len() + 2;
            if total > MAX_HEADERS {
                return Err(MpError::Malformed("a part's headers are too long".into()));
            }
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(MpError::Malformed(format!(
                    "a part header without a colon: {:?}",
                    truncate(&line)
                )));
            };
            let v = v.trim();
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                disposition(v, &mut head);
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                head.content_type = Some(v.to_string());
            }
        }
        self.state = State::InPart;
        Ok(Some(head))
    }

    /// One CRLF-ended line of part headers, without its CRLF.
    fn line(&mut self) -> Result<String, MpError> {
        let mut from = 0;
        loop {
            let held = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memmem::find(&held[from..], b"\r\n") {
                let l = String::from_utf8_lossy(&held[..from + i]).into_owned();
                self.start += from + i + 2;
                return Ok(l);
            }
            // `fill` moves what is held to the front; the offset within it stays.
            from = held.len().saturating_sub(1);
            if !self.fill()? {
                return Err(MpError::Malformed(
                    "the body ends inside a part's headers".into(),
                ));
            }
        }
    }

    /// Hand the current part's content to `sink` in slices, up to the delimiter that
    /// ends it. `sink` may return `Err(MpError::Stopped)` to stop reading.
    pub fn read_part(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), MpError>,
    ) -> Result<(), MpError> {
        if self.state != State::InPart {
            return Ok(());
        }
        self.through_delimiter(
            sink,
            "the body ends inside a part: a truncated part or a missing closing boundary",
        )?;
        self.state = State::AfterDelimiter;
        Ok(())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// `form-data; name="file"; filename="a b.txt"` (and `filename*=UTF-8''a%20b.txt`).
fn disposition(v: &str, head: &mut PartHead) {
    let mut rest = v;
    // The disposition type, then `; key=value` pairs whose values may be quoted.
    if let Some(i) = rest.find(';') {
        rest = &rest[i + 1..];
    } else {
        return;
    }
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return;
        }
        let Some(eq) = rest.find('=') else { return };
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &q[end.min(q.len())..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        match key.as_str() {
            "name" => head.name = Some(value),
            "filename" if head.filename.is_none() => head.filename = Some(value),
            // RFC 5987: charset'language'percent-encoded; it wins over `filename`.
            "filename*" => {
                if let Some(enc) = value.splitn(3, '\'').nth(2) {
                    head.filename = Some(crate::util::percent_decode(enc));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &[u8], chunk: usize) -> Result<Vec<(PartHead, Vec<u8>)>, MpError> {
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut m = Multipart::new(Slow(body, chunk), "XyZ");
        let mut out = Vec::new();
        while let Some(h) = m.next_part()? {
            let mut content = Vec::new();
            m.read_part(&mut |s| {
                content.extend_from_slice(s);
                Ok(())
            })?;
            out.push((h, content));
        }
        Ok(out)
    }

    const BODY: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZx\r\n--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n--XyZ--\r\n";

    #[test]
    fn parts_at_every_read_size() {
        for chunk in [1, 2, 3, 7, 64, 100_000] {
            let p = parts(BODY, chunk).unwrap();
            assert_eq!(p.len(), 2, "chunk {chunk}");
            assert_eq!(p[0].0.name.as_deref(), Some("file"));
            assert_eq!(p[0].0.filename.as_deref(), Some("a \"b\".txt"));
            assert_eq!(p[0].0.content_type.as_deref(), Some("text/plain"));
            assert_eq!(p[0].1, b"hello\r\n--XyZx");
            assert_eq!(p[1].0.name.as_deref(), Some("x"));
            assert_eq!(p[1].1, b"");
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for cut in 0..BODY.len() - 4 {
            match parts(&BODY[..cut], 5) {
                Err(MpError::Malformed(_)) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            parts(b"no delimiter at all", 4),
            Err(MpError::Malformed(_))
        ));
    }

    #[test]
    fn rfc5987_filenames() {
        let mut h = PartHead::default();
        disposition(
            "form-data; name=file; filename=\"x\"; filename*=UTF-8''%E5%9B%BE.png",
            &mut h,
        );
        assert_eq!(h.name.as_deref(), Some("file"));
        assert_eq!(h.filename.as_deref(), Some("图.png"));
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary(Some("multipart/form-data; boundary=\"a b\"")).unwrap(),
            "a b"
        );
        assert!(boundary(Some("multipart/form-data")).is_err());
        assert!(boundary(Some("application/json")).is_err());
        assert!(boundary(None).is_err());
    }
}
