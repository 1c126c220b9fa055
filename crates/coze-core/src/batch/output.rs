//! The one output (stdout, or the `--append` file) the workers of `--jobs N` share:
//! whole lines at a time, as each job writes them, or with `--ordered` each job's
//! output held until every earlier job's has been written.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Mutex;

struct Out<W> {
    writer: W,
    ordered: bool,
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
}

/// The output all workers write to, whole lines at a time.
pub(super) struct SharedOut<W>(Mutex<Out<W>>);

impl<W: Write> SharedOut<W> {
    pub fn new(writer: W, ordered: bool) -> SharedOut<W> {
        SharedOut(Mutex::new(Out {
            writer,
            ordered,
            next: 0,
            pending: BTreeMap::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out<W>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ordered(&self) -> bool {
        self.lock().ordered
    }

    /// Writes complete lines now (unordered mode).
    fn write_now(&self, bytes: &[u8]) -> io::Result<()> {
        let mut o = self.lock();
        o.writer.write_all(bytes)?;
        o.writer.flush()
    }

    /// Job `seq` is over: write what it left (ordered mode: in input order). Every
    /// position of the input finishes, a skipped or bad line with nothing or its
    /// record, so that the ones after it are not held forever.
    pub fn finish(&self, seq: u64, bytes: Vec<u8>) -> io::Result<()> {
        let mut o = self.lock();
        if !o.ordered {
            if !bytes.is_empty() {
                o.writer.write_all(&bytes)?;
                o.writer.flush()?;
            }
            return Ok(());
        }
        o.pending.insert(seq, bytes);
        while let Some(bytes) = {
            let next = o.next;
            o.pending.remove(&next)
        } {
            o.writer.write_all(&bytes)?;
            o.next += 1;
        }
        o.writer.flush()
    }
}

/// One job's output: whole lines go to `SharedOut` on each flush (unordered), or are
/// kept until the job ends (ordered).
pub(super) struct JobWriter<'a, W: Write> {
    shared: &'a SharedOut<W>,
    ordered: bool,
    buf: Vec<u8>,
}

impl<'a, W: Write> JobWriter<'a, W> {
    pub fn new(shared: &'a SharedOut<W>) -> Self {
        JobWriter {
            shared,
            ordered: shared.ordered(),
            buf: Vec::new(),
        }
    }

    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl<W: Write> Write for JobWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.ordered {
            return Ok(());
        }
        if let Some(end) = self.buf.iter().rposition(|b| *b == b'\n') {
            let rest = self.buf.split_off(end + 1);
            let lines = std::mem::replace(&mut self.buf, rest);
            self.shared.write_now(&lines)?;
        }
        Ok(())
    }
}
