//! The JSON-lines reader and `Record::from_line` on arbitrary bytes: no panic, the
//! same numbered lines in one piece and in fuzzer-chosen pieces, every record error
//! names its line (exit 3), and a parsed record survives a round trip.

#![no_main]

use std::io::BufRead;

use coze_core::wire::jsonl::{LineError, LineReader};
use coze_core::protocol::Record;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn lines<R: BufRead>(reader: R) -> Vec<Result<(u64, String), u64>> {
    let mut r = LineReader::new(reader);
    let mut out = Vec::new();
    loop {
        match r.next_line() {
            Ok(Some(l)) => out.push(Ok(l)),
            Ok(None) => break,
            Err(LineError::InvalidUtf8 { line }) => out.push(Err(line)),
            Err(LineError::Io(e)) => panic!("no I/O error possible: {e}"),
            Err(e @ LineError::TooLong { .. }) => panic!("no line is near the limit: {e}"),
        }
        assert!(out.len() <= 1 << 20, "the reader does not advance");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let chopped = common::chopped(data);
    let whole = lines(data);
    assert_eq!(whole, lines(chopped), "chunking changed the lines");
    for (i, l) in whole.iter().enumerate() {
        let n = i as u64 + 1;
        match l {
            Ok((line, text)) => {
                assert_eq!(*line, n);
                match Record::from_line(n, text) {
                    Ok(rec) => {
                        let serde_json::Value::Object(obj) = rec.to_value() else {
                            panic!("a record serializes to an object");
                        };
                        let again = Record::from_object(n, obj).expect("a record re-reads");
                        assert_eq!(again, rec);
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(msg.starts_with(&format!("stdin line {n}: ")), "{msg}");
                        assert_eq!(e.exit_code(), 3, "{msg}");
                    }
                }
            }
            Err(line) => assert_eq!(*line, n),
        }
    }
});
