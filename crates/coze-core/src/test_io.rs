//! For unit tests: readers that hand out bytes in chosen pieces, so parsers are tested
//! at every split point of their input (and an I/O error injected between two pieces),
//! and the recorded chat stream the SSE tests and the randomized tests share.

use std::io::{self, Read};

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

/// The recorded stream of coze-api.md §6.3 (py `chat_text_stream_resp.txt`), with
/// the elided chat.completed object written out in full.
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
