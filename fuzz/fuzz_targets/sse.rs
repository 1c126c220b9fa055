//! The SSE reader on arbitrary bytes, read in one piece and in fuzzer-chosen pieces:
//! no panic, and both readings give the same events, errors and line count.

#![no_main]

use std::io::BufRead;

use coze_core::wire::sse::{SseError, SseReader};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn steps<R: BufRead>(reader: R) -> (Vec<String>, u64) {
    let mut r = SseReader::new(reader);
    let mut out = Vec::new();
    loop {
        match r.next_event() {
            Ok(Some(e)) => out.push(format!("event {:?} {:?} {:?}", e.event, e.data, e.id)),
            Ok(None) => break,
            Err(SseError::Io(e)) => panic!("no I/O error possible: {e}"),
            Err(e) => out.push(format!("error {e}")),
        }
        assert!(out.len() <= 1 << 20, "the reader does not advance");
    }
    (out, r.lines_read())
}

fuzz_target!(|data: &[u8]| {
    let chopped = common::chopped(data);
    let whole = steps(data);
    let pieces = steps(chopped);
    assert_eq!(whole, pieces, "chunking changed the result");
});
