//! `--resume FILE` and `--append`: what an earlier run already did, read from its
//! output (coze-chat's `-o answers`: records of type `answer`), and appending new
//! records to its file safely.
//!
//! A run killed with SIGKILL can leave a half-written last line; it is cut off before
//! appending, so the file stays valid JSON lines. Only `completed` records count as
//! done: failed items are run again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::support::say::tool;

/// A canonical key for an `id` value (ids are any JSON: "a", 7, {"k":1}).
pub fn key(id: &Value) -> String {
    id.to_string()
}

/// Where a batch run's records go, and what an earlier run already did.
pub struct Output {
    /// Stdout, or with `--append` the `--resume` file, open and locked.
    pub writer: Box<dyn Write + Send>,
    /// The records go to stdout (whose reader may go away: worth watching).
    pub to_stdout: bool,
    /// The [`key`]s of the ids `--resume` found completed.
    pub done: HashSet<String>,
}

/// Which records of a `--resume` file say that their item is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done<'a> {
    /// The records' `type`: `answer` (coze-chat), `result` (coze-workflow).
    pub kind: &'a str,
    /// The `status` of a done one: `completed` (an answer), `success` (a workflow run).
    pub status: &'a str,
}

/// Opens the output of a run: with `--resume FILE --append`, FILE (locked, its torn
/// last line cut), else stdout; and reads the ids of FILE's records that `done` says
/// are done. A record holds its input line (up to `max_line` bytes, the input's limit)
/// and what came of it: FILE's lines may be 8 times as long. The file is opened and
/// locked before its ids are read, so that they are read under the lock: a run that
/// ended meanwhile has its records counted.
pub fn open(
    resume: Option<&Path>,
    append: bool,
    max_line: usize,
    done: Done<'_>,
) -> Result<Output> {
    let (writer, to_stdout): (Box<dyn Write + Send>, bool) = match (resume, append) {
        (Some(path), true) => (Box::new(open_for_append(path)?), false),
        _ => (Box::new(io::stdout()), true),
    };
    let done = match resume {
        Some(path) => completed_ids(path, max_line.saturating_mul(8), done)?,
        None => HashSet::new(),
    };
    Ok(Output {
        writer,
        to_stdout,
        done,
    })
}

/// The ids of the records `wanted` names (`answer` records `completed`) in `path` (a
/// missing file: none yet).
///
/// Each line is parsed as it is read, keeping only `type`, `status` and `id`: an
/// answer's prompt and content are skipped over, never held, so memory does not grow
/// with the answers. A line longer than `max_line` bytes is a usage error naming it
/// (the file is not an answers file, such as `/dev/zero`, or `--max-line-bytes` must
/// be raised); it is found after reading at most that much of it.
pub fn completed_ids(path: &Path, max_line: usize, wanted: Done<'_>) -> Result<HashSet<String>> {
    let kind = wanted.kind;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(Error::io(path, e).context("--resume")),
    };
    let failed = |e: io::Error| Error::io(path, e).context("--resume");
    let mut reader = BufReader::new(file);
    if reader
        .fill_buf()
        .map_err(failed)?
        .starts_with(b"\xEF\xBB\xBF")
    {
        reader.consume(3);
    }
    let mut done = HashSet::new();
    let mut number = 0u64;
    while !reader.fill_buf().map_err(failed)?.is_empty() {
        number += 1;
        let mut line = Line {
            inner: &mut reader,
            max: max_line as u64,
            read: 0,
            ended: false,
        };
        // A torn last line or a foreign line is not an answer; skip it.
        let answer = serde_json::from_reader::<_, AnswerKey>(BufReader::new(&mut line));
        let rest = io::copy(&mut line, &mut io::sink());
        if line.read > line.max {
            return Err(Error::usage(format!(
                "--resume {}: line {number}: longer than {} (not {} {kind}s file? its \
                 lines may be 8 times --max-line-bytes)",
                path.display(),
                crate::wire::jsonl::size(line.max),
                if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                }
            )));
        }
        rest.map_err(failed)?;
        let Ok(a) = answer else {
            continue;
        };
        if a.kind.as_deref() == Some(kind) && a.status.as_deref() == Some(wanted.status) {
            if let Some(id) = a.id.filter(|i| !i.is_null()) {
                done.insert(key(&id));
            }
        }
    }
    Ok(done)
}

/// What `--resume` reads of a record; every other field is skipped unread.
#[derive(serde::Deserialize)]
struct AnswerKey {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    id: Option<Value>,
}

/// One line of `inner` as a reader: it ends at the line's `\n` (consumed, not
/// returned) or at the end of the input; past `max` bytes it fails.
struct Line<'a, R> {
    inner: &'a mut R,
    max: u64,
    read: u64,
    ended: bool,
}

impl<R: BufRead> Read for Line<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.ended || out.is_empty() {
            return Ok(0);
        }
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            self.ended = true;
            return Ok(0);
        }
        let (n, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i <= out.len() => (i, true),
            _ => (buf.len().min(out.len()), false),
        };
        out[..n].copy_from_slice(&buf[..n]);
        self.inner.consume(n + usize::from(newline));
        self.ended = newline;
        self.read += n as u64;
        if self.read > self.max {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "line too long"));
        }
        Ok(n)
    }
}

/// Opens `path` for appending, locked for as long as the file stays open, then cuts
/// off a half-written last line. A file another run is appending to is refused at once
/// (exit 8), naming that run: two runs would each run, and append, every item the
/// file does not have yet, and the cut could tear the other run's last line. Refusing
/// rather than waiting suits cron: the next run resumes where this one would have.
/// The caller reads the completed ids after this, under the lock.
pub fn open_for_append(path: &Path) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::io(path, e).context("--append"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = holder_pid(&file)
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            let why = format!("another {}{who} is appending to it; not starting", tool());
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::WouldBlock, why),
            )
            .context("--append"));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io(path, e).context("--append: locking"))
        }
    }
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > 0 {
        // Find the last newline; everything after it is a torn record.
        let tail_len = len.min(1 << 20);
        file.seek(SeekFrom::Start(len - tail_len))
            .map_err(|e| Error::io(path, e))?;
        let mut tail = Vec::with_capacity(tail_len as usize);
        file.read_to_end(&mut tail)
            .map_err(|e| Error::io(path, e))?;
        if tail.last() != Some(&b'\n') {
            let keep = match tail.iter().rposition(|b| *b == b'\n') {
                Some(i) => len - tail_len + i as u64 + 1,
                None if tail_len == len => 0,
                None => len, // a last line over 1 MiB: leave it rather than guess
            };
            if keep < len {
                crate::say!(
                    "{}: {}: removing a half-written last line ({} bytes)",
                    tool(),
                    path.display(),
                    len - keep
                );
                file.set_len(keep).map_err(|e| Error::io(path, e))?;
            }
        }
    }
    Ok(file)
}

/// The process holding the flock on `file`, from /proc/locks (Linux; None elsewhere or
/// when it cannot be told). Lines read `1: FLOCK  ADVISORY  WRITE 4242 08:01:1311 0 EOF`.
fn holder_pid(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // A waiter's line has "->" after the number; ours is a holder's.
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let lock_ino = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (lock_ino == ino).then(|| f.get(4)?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWERS: Done<'static> = Done {
        kind: "answer",
        status: "completed",
    };

    /// A workflow's results file: `result` records whose status is `success` are done;
    /// a failed or interrupted run, or an answer record, is not.
    #[test]
    fn done_records_are_named_by_type_and_status() {
        let dir = std::env::temp_dir().join(format!("coze-resume-wf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"result\",\"id\":1,\"status\":\"success\"}\n\
             {\"type\":\"result\",\"id\":2,\"status\":\"failed\"}\n\
             {\"type\":\"result\",\"id\":3,\"status\":\"interrupted\"}\n\
             {\"type\":\"interrupt\",\"id\":3}\n\
             {\"type\":\"answer\",\"id\":4,\"status\":\"completed\"}\n\
             {\"type\":\"result\",\"id\":5,\"status\":\"completed\"}\n",
        )
        .unwrap();
        let results = Done {
            kind: "result",
            status: "success",
        };
        let done = completed_ids(&path, 1 << 20, results).unwrap();
        assert_eq!(done, HashSet::from(["1".to_owned()]));
        let output = open(Some(&path), false, 1 << 20, results).unwrap();
        assert_eq!(output.done, done);
        assert!(output.to_stdout);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn completed_ids_and_torn_lines() {
        let dir = std::env::temp_dir().join(format!("coze-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("answers.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"answer\",\"id\":\"a\",\"status\":\"completed\"}\n\
             {\"type\":\"answer\",\"id\":7,\"status\":\"failed\"}\n\
             {\"type\":\"answer\",\"id\":8,\"status\":\"completed\"}\n\
             {\"type\":\"answer\",\"id\":\"torn\",\"sta",
        )
        .unwrap();
        let done = completed_ids(&path, 1 << 20, ANSWERS).unwrap();
        assert!(done.contains("\"a\"") && done.contains("8") && !done.contains("7"));
        assert_eq!(done.len(), 2);
        drop(open_for_append(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\"completed\"}\n"), "{text}");
        assert!(completed_ids(&dir.join("none"), 1 << 20, ANSWERS)
            .unwrap()
            .is_empty());
        let e = completed_ids(&path, 16, ANSWERS).unwrap_err();
        assert!(
            e.to_string().contains(": line 1: longer than 16 bytes"),
            "{e}"
        );
        // A long answer is read through, not held; a BOM and CRLF line ends are
        // taken; a foreign line in the middle is skipped.
        let long = "x".repeat(1 << 20);
        std::fs::write(
            &path,
            format!(
                "\u{feff}{{\"type\":\"answer\",\"id\":\"b\",\"content\":\"{long}\",\"status\":\"completed\"}}\r\n\
                 not json\n\n\
                 {{\"type\":\"answer\",\"id\":\"c\",\"status\":\"completed\"}}"
            ),
        )
        .unwrap();
        let done = completed_ids(&path, 2 << 20, ANSWERS).unwrap();
        assert_eq!(
            done,
            HashSet::from(["\"b\"".to_owned(), "\"c\"".to_owned()])
        );
        let e = completed_ids(&path, 1 << 20, ANSWERS).unwrap_err();
        assert!(e.to_string().contains(": line 1: longer than 1 MiB"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// While one open holds the file, a second is refused, naming this process.
    #[test]
    fn a_second_append_is_refused_while_the_first_holds_the_file() {
        let dir = std::env::temp_dir().join(format!("coze-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("answers.jsonl");
        let first = open_for_append(&path).unwrap();
        let e = open_for_append(&path).unwrap_err();
        assert_eq!(e.exit_code(), 8, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "another {} (pid {}) is appending to it; not starting",
                tool(),
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
        drop(open_for_append(&path).unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
