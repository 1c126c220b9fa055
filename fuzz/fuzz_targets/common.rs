//! Shared by the fuzz targets: a reader that hands out its bytes in pieces chosen by
//! the fuzzer, so splits land everywhere (inside CRLF, inside a UTF-8 character).

#![allow(dead_code)]

use std::io::{self, BufReader, Read};

pub struct Chunked<'a> {
    pieces: Vec<&'a [u8]>,
    next: usize,
    pos: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.next < self.pieces.len() && self.pos == self.pieces[self.next].len() {
            self.next += 1;
            self.pos = 0;
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

/// `data` behind a `BufReader` of a capacity from 1 to 64 bytes, over pieces of 1 to
/// 17 bytes. Both are drawn from a hash of the data itself, so the seeds stay plain
/// streams and every mutation the fuzzer makes also moves the cuts.
pub fn chopped(data: &[u8]) -> BufReader<Chunked<'_>> {
    // FNV-1a, then xorshift64 for the piece lengths.
    let mut x = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let cap = 1 + (next() % 64) as usize;
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = 1 + (next() % 17) as usize;
        let (a, b) = rest.split_at(n.min(rest.len()));
        pieces.push(a);
        rest = b;
    }
    let reader = Chunked {
        pieces,
        next: 0,
        pos: 0,
    };
    BufReader::with_capacity(cap, reader)
}
