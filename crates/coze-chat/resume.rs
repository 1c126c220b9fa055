//! `--resume FILE` and `--append`: what an earlier `-o answers` run already answered,
//! and appending new answers to its file safely.
//!
//! A run killed with SIGKILL can leave a half-written last line; it is cut off before
//! appending, so the file stays valid JSON lines. Only `completed` answers count as
//! done: failed prompts are asked again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use coze_core::jsonl::LineReader;
use coze_core::{Error, Result};

/// A canonical key for an `id` value (ids are any JSON: "a", 7, {"k":1}).
pub fn key(id: &Value) -> String {
    id.to_string()
}

/// The ids of the `completed` answers in `path` (a missing file: none yet).
pub fn completed_ids(path: &Path) -> Result<HashSet<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(Error::io(path, e).context("--resume")),
    };
    let mut done = HashSet::new();
    let mut lines = LineReader::new(BufReader::new(file));
    while let Some((_, text)) = lines
        .next_line()
        .map_err(|e| Error::usage(format!("--resume {}: {e}", path.display())))?
    {
        // A torn last line or a foreign line is not an answer; skip it.
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v.get("type").and_then(Value::as_str) == Some("answer")
            && v.get("status").and_then(Value::as_str) == Some("completed")
        {
            if let Some(id) = v.get("id").filter(|i| !i.is_null()) {
                done.insert(key(id));
            }
        }
    }
    Ok(done)
}

/// Opens `path` for appending, locked for as long as the file stays open, then cuts
/// off a half-written last line. A file another run is appending to is refused at once
/// (exit 8), naming that run: two runs would each ask, and append, every prompt the
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
            let why = format!("another coze-chat{who} is appending to it; not starting");
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
                coze_core::say!(
                    "coze-chat: {}: removing a half-written last line ({} bytes)",
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
        let done = completed_ids(&path).unwrap();
        assert!(done.contains("\"a\"") && done.contains("8") && !done.contains("7"));
        assert_eq!(done.len(), 2);
        drop(open_for_append(&path).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\"completed\"}\n"), "{text}");
        assert!(completed_ids(&dir.join("none")).unwrap().is_empty());
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
                "another coze-chat (pid {}) is appending to it; not starting",
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
        drop(open_for_append(&path).unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
