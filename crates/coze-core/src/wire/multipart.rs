//! A `multipart/form-data` body carrying one file, streamed: the part header and the
//! closing boundary are a few hundred bytes built up front, the file itself is read
//! as the request is written, so a 500 MB upload costs a buffer, not 500 MB. The
//! exact `Content-Length` is known before the first byte is sent (the prefix, the
//! file's size and the suffix), which the servers require and which lets a cut upload be told from a
//! finished one.
//!
//! The part header follows RFC 7578 and what curl `-F file=@…` sends: the file name
//! is kept as its own bytes (UTF-8 stays UTF-8, as browsers and curl send it), with
//! the few bytes that would end the quoted string or the header line escaped: `"` as
//! `%22`, CR as `%0D`, LF as `%0A` (the HTML form encoding curl uses), and `\` as
//! `\\`, since a parser of quoted strings (Go's `mime.ParseMediaType`, Python's
//! `email`) would read a lone backslash before the closing quote as escaping it.
//!
//! The part's `Content-Type` is decided from the content (magic bytes), then the
//! extension: png, jpeg, gif, webp, pdf, else `application/octet-stream`.
//!
//! The file is read straight into the sender's buffer, at a 64-byte boundary of it: the
//! kernel's copy from the page cache into a buffer that is not 64-byte aligned (ureq's
//! 128 KiB output buffer is a `malloc`ed block, 16 bytes past a page) took 3.4x as long
//! on the bench machine (AMD EPYC: 342 ms against 92 ms for 400 MiB in 128 KiB reads),
//! and it was most of coze-file's CPU. So the few bytes before that boundary come from
//! the previous read (kept back from its end) and each read of the file lands aligned
//! (docs/benchmarks.md, the upload case).

use std::io::{self, Read};

/// The type of a file whose first bytes are `head` and whose name is `name`: its
/// magic bytes first (a `.jpg` that is a PNG is a PNG), then the extension, else
/// `application/octet-stream`.
pub fn content_type(head: &[u8], name: &[u8]) -> &'static str {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if head.starts_with(b"\xFF\xD8\xFF") {
        return "image/jpeg";
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return "image/gif";
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    if head.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let ext = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => name[dot + 1..].to_ascii_lowercase(),
        None => Vec::new(),
    };
    match ext.as_slice() {
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `name` as it goes between the quotes of `filename="…"` (see the module's text).
fn escape_filename(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
    out
}

/// The framing of one file's `multipart/form-data` body: what goes before the file
/// and after it, and so the whole body's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    file_len: u64,
}

impl Multipart {
    /// The framing of a file of `file_len` bytes sent as the form field `field` with
    /// the name `file_name` and the type `part_type`, between lines of `boundary`
    /// (which the caller makes random: a boundary found in the file would cut it).
    pub fn new(
        boundary: &str,
        field: &str,
        file_name: &[u8],
        part_type: &str,
        file_len: u64,
    ) -> Multipart {
        let mut prefix = Vec::with_capacity(160 + file_name.len());
        prefix.extend_from_slice(b"--");
        prefix.extend_from_slice(boundary.as_bytes());
        prefix.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        prefix.extend_from_slice(&escape_filename(field.as_bytes()));
        prefix.extend_from_slice(b"\"; filename=\"");
        prefix.extend_from_slice(&escape_filename(file_name));
        prefix.extend_from_slice(b"\"\r\nContent-Type: ");
        prefix.extend_from_slice(part_type.as_bytes());
        prefix.extend_from_slice(b"\r\n\r\n");
        let suffix = format!("\r\n--{boundary}--\r\n").into_bytes();
        Multipart {
            boundary: boundary.to_owned(),
            prefix,
            suffix,
            file_len,
        }
    }

    /// A boundary no file is likely to hold: 32 random hex digits after a fixed
    /// stem (a file holding it would only cut its own upload short).
    pub fn random_boundary() -> io::Result<String> {
        let hex =
            crate::support::random::random_hex(16).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(format!("------------------------coze{hex}"))
    }

    /// The request's `Content-Type` header: `multipart/form-data; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The whole body's length in bytes: the request's `Content-Length`.
    pub fn content_length(&self) -> u64 {
        self.prefix.len() as u64 + self.file_len + self.suffix.len() as u64
    }

    /// The bytes before the file (the boundary and the part's header).
    #[cfg(test)]
    fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The body, reading exactly `file_len` bytes of `file` between the framing. A
    /// file that ends sooner is an error, not a short body: the length was promised.
    pub fn body<R: Read>(&self, file: R) -> Body<R> {
        Body {
            prefix: self.prefix.clone(),
            prefix_at: 0,
            file,
            file_left: self.file_len,
            carry: [0; ALIGN],
            carry_at: 0,
            carry_len: 0,
            pending: None,
            suffix: self.suffix.clone(),
            suffix_at: 0,
        }
    }
}

/// The body of a [`Multipart`]: its prefix, the file, its suffix, as one `Read`.
#[derive(Debug)]
pub struct Body<R> {
    prefix: Vec<u8>,
    prefix_at: usize,
    file: R,
    /// Bytes of the file not yet read from it.
    file_left: u64,
    /// Bytes read from the file but not yet handed out: `carry[carry_at..carry_len]`,
    /// kept back from the end of a read so that the next one lands aligned.
    carry: [u8; ALIGN],
    carry_at: usize,
    carry_len: usize,
    /// An error of the file met after bytes were already placed in the caller's
    /// buffer: those are handed out first, the error on the next read.
    pending: Option<io::Error>,
    suffix: Vec<u8>,
    suffix_at: usize,
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.prefix_at < self.prefix.len() {
            let n = copy(&self.prefix[self.prefix_at..], buf);
            self.prefix_at += n;
            return Ok(n);
        }
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        if self.file_left > 0 || self.carry_at < self.carry_len {
            return self.read_file(buf);
        }
        let n = copy(&self.suffix[self.suffix_at..], buf);
        self.suffix_at += n;
        Ok(n)
    }
}

/// The alignment each read of the file lands at in the caller's buffer (a cache line).
const ALIGN: usize = 64;

impl<R: Read> Body<R> {
    /// The next bytes of the file into `buf` (not empty): `buf[..lead]`, before its
    /// first 64-byte boundary, from the bytes carried over (or a short read when there
    /// are none), then one read of the file into `buf[lead..]`, of which the last
    /// `lead` bytes are carried over to the next call. The sender passes the same
    /// buffer every time, so from the second read on, each is one aligned read.
    fn read_file(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // align_offset may say usize::MAX (no such offset); min() makes that "all of buf".
        let lead = buf.as_ptr().align_offset(ALIGN).min(buf.len());
        let carried = self.carry_len - self.carry_at;
        if carried > 0 && carried != lead {
            // A buffer of another alignment: hand out what is carried, start over.
            let n = copy(&self.carry[self.carry_at..self.carry_len], buf);
            self.carry_at += n;
            return Ok(n);
        }
        let mut filled = 0;
        if carried > 0 {
            buf[..lead].copy_from_slice(&self.carry[self.carry_at..self.carry_len]);
            self.carry_at = 0;
            self.carry_len = 0;
            filled = lead;
        } else if lead > 0 {
            let want = lead.min(self.left());
            let n = self.read_some(&mut buf[..want])?;
            if n < lead || self.file_left == 0 {
                return Ok(n);
            }
            filled = n;
        }
        if self.file_left == 0 || filled == buf.len() {
            return Ok(filled);
        }
        let want = (buf.len() - filled).min(self.left());
        let n = match self.read_some(&mut buf[filled..filled + want]) {
            Ok(n) => n,
            Err(e) if filled == 0 => return Err(e),
            Err(e) => {
                // buf[..filled] is the file's next bytes (already taken from it or the
                // carry): they go out first, the error next time.
                self.pending = Some(e);
                return Ok(filled);
            }
        };
        let end = filled + n;
        let keep = if lead > 0 && self.file_left > 0 && n > lead {
            lead
        } else {
            0
        };
        self.carry[..keep].copy_from_slice(&buf[end - keep..end]);
        self.carry_at = 0;
        self.carry_len = keep;
        Ok(end - keep)
    }

    /// The bytes of the file still to read, as far as one buffer goes.
    fn left(&self) -> usize {
        usize::try_from(self.file_left).unwrap_or(usize::MAX)
    }

    /// One read of the file into `buf` (not empty, at most `file_left`); the file
    /// ending early is an error, not a short body: the length was promised.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes early (did it shrink while it was sent?)",
                    self.file_left
                ),
            ));
        }
        self.file_left -= n as u64;
        Ok(n)
    }
}

fn copy(from: &[u8], to: &mut [u8]) -> usize {
    let n = from.len().min(to.len());
    to[..n].copy_from_slice(&from[..n]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing() -> Multipart {
        Multipart::new("BOUND", "file", "a \"b\".png".as_bytes(), "image/png", 5)
    }

    #[test]
    fn the_body_is_prefix_file_suffix_and_its_length_is_exact() {
        let m = framing();
        let mut got = Vec::new();
        m.body(&b"hello"[..]).read_to_end(&mut got).unwrap();
        let want = b"--BOUND\r\nContent-Disposition: form-data; name=\"file\"; \
filename=\"a %22b%22.png\"\r\nContent-Type: image/png\r\n\r\nhello\r\n--BOUND--\r\n";
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
        assert_eq!(m.content_length(), got.len() as u64);
        assert_eq!(m.content_type(), "multipart/form-data; boundary=BOUND");
    }

    #[test]
    fn every_read_size_gives_the_same_bytes() {
        let m = framing();
        let mut whole = Vec::new();
        m.body(&b"hello"[..]).read_to_end(&mut whole).unwrap();
        for size in 1..=whole.len() + 1 {
            // The file handed out whole, or cut at each of its split points.
            for cut in 0..=5 {
                let file = crate::wire::test_io::Chunked::new(b"hello", &[cut]);
                let mut body = m.body(file);
                let mut got = Vec::new();
                let mut buf = vec![0u8; size];
                loop {
                    let n = body.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, whole, "read size {size}, cut {cut}");
            }
        }
    }

    /// A slice of `size` bytes starting `off` bytes past a 64-byte boundary.
    fn at_offset(store: &mut Vec<u8>, off: usize, size: usize) -> &mut [u8] {
        store.resize(size + 2 * ALIGN, 0);
        let base = store.as_ptr().align_offset(ALIGN);
        &mut store[base + off..base + off + size]
    }

    #[test]
    fn every_alignment_of_the_buffer_gives_the_same_bytes_and_reads_land_aligned() {
        // Content no two reads agree on by chance.
        let content: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let m = Multipart::new("B", "file", b"x.bin", "application/octet-stream", 70_000);
        let mut want = Vec::new();
        m.body(&content[..]).read_to_end(&mut want).unwrap();
        let mut store = Vec::new();
        let mut other = Vec::new();
        for off in 0..ALIGN {
            for size in [1, 7, 63, 64, 65, 200, 4096, 65_536 + 5] {
                // The file whole, or in pieces (short reads), and the same buffer each
                // time or one that moves every third read (another alignment).
                for cuts in [&[][..], &[1, 100, 5_000, 5_001, 69_999][..]] {
                    for moving in [false, true] {
                        let mut body = m.body(AlignCheck {
                            inner: crate::wire::test_io::Chunked::new(&content, cuts),
                            big: 0,
                            aligned: 0,
                        });
                        let mut got = Vec::new();
                        for i in 0.. {
                            let buf = if moving && i % 3 == 2 {
                                at_offset(&mut other, (off + 17) % ALIGN, size)
                            } else {
                                at_offset(&mut store, off, size)
                            };
                            let n = body.read(buf).unwrap();
                            if n == 0 {
                                break;
                            }
                            got.extend_from_slice(&buf[..n]);
                        }
                        let case = format!("offset {off}, size {size}, cuts {cuts:?}, {moving}");
                        assert_eq!(got.len(), want.len(), "{case}");
                        assert!(got == want, "{case}");
                        if size >= 4096 && cuts.is_empty() && !moving {
                            // At most one read to reach the boundary and the last one
                            // may miss it; every other big read lands on it.
                            let (big, aligned) = (body.file.big, body.file.aligned);
                            assert!(big >= 2 && aligned + 2 >= big, "{case}: {aligned} of {big}");
                        }
                    }
                }
            }
        }
    }

    /// Counts the reads of at least 4 KiB that land 64-byte aligned.
    /// Counts the big reads of the file (1 KiB or more asked) and those whose buffer
    /// starts on a 64-byte boundary.
    struct AlignCheck<R> {
        inner: R,
        big: usize,
        aligned: usize,
    }

    impl<R: Read> Read for AlignCheck<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if buf.len() >= 1024 {
                self.big += 1;
                if buf.as_ptr().align_offset(ALIGN) == 0 {
                    self.aligned += 1;
                }
            }
            self.inner.read(buf)
        }
    }

    #[test]
    fn an_error_after_some_bytes_comes_on_the_next_read() {
        let content = vec![7u8; 10_000];
        let m = Multipart::new("B", "file", b"x", "text/plain", 10_000);
        let mut store = Vec::new();
        for off in [0, 1, 16, 63] {
            // Fail before the second piece, whichever read of the body meets it.
            let mut file = crate::wire::test_io::Chunked::new(&content, &[5_000]);
            file.fail_before = Some((1, io::ErrorKind::Other));
            let mut body = m.body(file);
            let mut sent = 0;
            let err = loop {
                match body.read(at_offset(&mut store, off, 8192)) {
                    Ok(0) => panic!("offset {off}: the body ended without the error"),
                    Ok(n) => sent += n,
                    Err(e) => break e,
                }
            };
            assert_eq!(err.to_string(), "injected", "offset {off}");
            // Every byte read from the file before the error was handed out.
            assert_eq!(sent, m.prefix().len() + 5_000, "offset {off}");
        }
    }

    #[test]
    fn a_read_error_of_the_file_reaches_the_sender() {
        let mut file = crate::wire::test_io::Chunked::new(b"hello", &[2]);
        file.fail_before = Some((1, io::ErrorKind::Other));
        let err = framing()
            .body(file)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.to_string(), "injected");
    }

    #[test]
    fn a_file_shorter_than_promised_is_an_error_and_a_longer_one_is_cut() {
        let m = framing();
        let err = m
            .body(&b"hel"[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("2 bytes early"), "{err}");
        let mut got = Vec::new();
        m.body(&b"hello world"[..]).read_to_end(&mut got).unwrap();
        assert_eq!(got.len() as u64, m.content_length());
    }

    #[test]
    fn file_names_cannot_break_the_header() {
        assert_eq!(escape_filename(b"a\"b\\c\r\nd"), b"a%22b\\\\c%0D%0Ad");
        // UTF-8 and other bytes pass as they are.
        assert_eq!(
            escape_filename("résumé 1.pdf".as_bytes()),
            "résumé 1.pdf".as_bytes()
        );
        assert_eq!(escape_filename(b"\xff.bin"), b"\xff.bin");
        let m = Multipart::new("B", "file", b"x\r\nEvil: 1", "text/plain", 0);
        let head = String::from_utf8_lossy(m.prefix()).into_owned();
        assert_eq!(head.matches("\r\n").count(), 4, "{head:?}");
    }

    #[test]
    fn content_type_by_magic_then_extension() {
        assert_eq!(
            content_type(b"\x89PNG\r\n\x1a\nrest", b"x.jpg"),
            "image/png"
        );
        assert_eq!(content_type(b"\xFF\xD8\xFF\xE0", b"x"), "image/jpeg");
        assert_eq!(content_type(b"GIF89a..", b"x.bin"), "image/gif");
        assert_eq!(content_type(b"RIFF\0\0\0\0WEBPVP8 ", b"x"), "image/webp");
        assert_eq!(content_type(b"%PDF-1.7", b"x"), "application/pdf");
        assert_eq!(content_type(b"plain", b"scan.JPEG"), "image/jpeg");
        assert_eq!(content_type(b"plain", b"doc.pdf"), "application/pdf");
        assert_eq!(content_type(b"plain", b"a.webp"), "image/webp");
        assert_eq!(
            content_type(b"plain", b"notes.txt"),
            "application/octet-stream"
        );
        assert_eq!(content_type(b"", b"noext"), "application/octet-stream");
        assert_eq!(content_type(b"RIFF", b"short"), "application/octet-stream");
    }

    #[test]
    fn boundaries_are_random() {
        let a = Multipart::random_boundary().unwrap();
        let b = Multipart::random_boundary().unwrap();
        assert_ne!(a, b);
        assert!(a.len() <= 70, "RFC 2046 allows at most 70 characters");
    }
}
