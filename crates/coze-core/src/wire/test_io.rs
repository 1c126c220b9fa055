//! For unit tests: readers that hand out bytes in chosen pieces, so parsers are tested
//! at every split point of their input (and an I/O error injected between two pieces),
//! the recorded chat stream the SSE tests and the randomized tests share, and the
//! seeded generator and byte mutations of the randomized tests (`fuzz_tests` here, and
//! those of the records and of the callback parser in their modules).

use std::io::{self, BufReader, Read};

/// Hands out its bytes in the given pieces, at most one piece per `read`.
pub struct Chunked {
    pieces: Vec<Vec<u8>>,
    next: usize,
    pos: usize,
    /// Fail once, with this kind, just before piece N.
    pub fail_before: Option<(usize, io::ErrorKind)>,
}

impl Chunked {
    /// `bytes` cut at `cuts` (sorted offsets; equal ones give empty pieces, skipped).
    pub fn new(bytes: &[u8], cuts: &[usize]) -> Self {
        let mut pieces = Vec::new();
        let mut last = 0;
        for &c in cuts {
            pieces.push(bytes[last..c].to_vec());
            last = c;
        }
        pieces.push(bytes[last..].to_vec());
        Chunked {
            pieces,
            next: 0,
            pos: 0,
            fail_before: None,
        }
    }
}

impl Read for Chunked {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.next < self.pieces.len() && self.pos == self.pieces[self.next].len() {
            self.next += 1;
            self.pos = 0;
        }
        if let Some((at, kind)) = self.fail_before {
            if at == self.next && self.pos == 0 {
                self.fail_before = None;
                return Err(io::Error::new(kind, "injected"));
            }
        }
        let Some(piece) = self.pieces.get(self.next) else {
            return Ok(0);
        };
        let n = out.len().min(piece.len() - self.pos);
        out[..n].copy_from_slice(&piece[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The recorded stream of coze-py's `tests/testdata/chat_text_stream_resp.txt` (also the
/// example of the Coze API docs, `chat_v3`), with the elided chat.completed object
/// written out in full.
pub const RECORDED: &str = concat!(
    "event:conversation.chat.created\n",
    r#"data:{"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","completed_at":1718792949,"last_error":{"code":0,"msg":""},"status":"created","usage":{"token_count":0,"output_count":0,"input_count":0}}"#,
    "\n\n",
    "event:conversation.message.delta\n",
    r#"data:{"id":"7382159494123470858","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","role":"assistant","type":"answer","content":"2","content_type":"text","chat_id":"7382159487131697202"}"#,
    "\n\n",
    "event:conversation.chat.completed\n",
    r#"data:{"id":"7382159487131697202","conversation_id":"7381473525342978089","bot_id":"7379462189365198898","completed_at":1718792951,"last_error":{"code":0,"msg":""},"status":"completed","usage":{"token_count":633,"output_count":19,"input_count":614}}"#,
    "\n\n",
    "event:done\n",
    "data:\"[DONE]\"\n",
    "\n",
);

/// xorshift64*: small, fast, and the same sequence on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `bytes` cut at random points (sorted, possibly equal: empty pieces are skipped).
pub(crate) fn random_chunks(bytes: &[u8], rng: &mut Rng) -> Chunked {
    let mut cuts: Vec<usize> = (0..rng.below(6))
        .map(|_| rng.below(bytes.len() + 1))
        .collect();
    if rng.chance(20) {
        // Byte by byte now and then: every boundary is a cut.
        cuts = (1..bytes.len()).collect();
    }
    cuts.sort_unstable();
    Chunked::new(bytes, &cuts)
}

/// `bytes` behind a random chunking and a random (small) buffer.
pub(crate) fn chopped(bytes: &[u8], rng: &mut Rng) -> BufReader<Chunked> {
    let cap = *rng.pick(&[1, 2, 3, 7, 16, 64, 8192]);
    BufReader::with_capacity(cap, random_chunks(bytes, rng))
}

/// Bytes that look like the inputs the parsers meet, broken in every way.
pub(crate) fn random_bytes(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"event",
        b"data",
        b"id",
        b"retry",
        b":",
        b": ",
        b" ",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"{",
        b"}",
        b"\"",
        b"\\",
        b",",
        b"[DONE]",
        b"conversation.message.delta",
        b"\xEF\xBB\xBF",
        "你好".as_bytes(),
        "🙂".as_bytes(),
        b"\xE4\xBD",
        b"\xFF",
        b"\x80",
        b"\0",
        b"%",
        b"%4",
        b"%C3%A9",
        b"+",
        b"=",
        b"&",
        b"?",
        b"#",
        b"/",
        b"://",
        b"[",
        b"]",
    ];
    let len = rng.below(max_len + 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        if rng.chance(30) {
            out.push(rng.next() as u8);
        } else {
            let piece: &&[u8] = rng.pick(PIECES);
            out.extend_from_slice(piece);
        }
    }
    out
}

/// `bytes` with a few random edits: deletions, insertions, replacements, a cut.
pub(crate) fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if at < v.len() => {
                v.remove(at);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if at < v.len() => v[at] = *rng.pick(b"\n\r:{}\"\\ ,0a\xFF"),
            3 => {
                let piece = random_bytes(rng, 8);
                v.splice(at..at, piece);
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// Text from a biased alphabet, valid UTF-8.
pub(crate) fn random_text(rng: &mut Rng, max_len: usize) -> String {
    String::from_utf8_lossy(&random_bytes(rng, max_len)).into_owned()
}
