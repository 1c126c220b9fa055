//! The terminal chat's history file: `$XDG_STATE_HOME/coze/history` (else
//! `~/.local/state/coze/history`), what was asked, one entry a line, so Up recalls the
//! prompts of earlier sessions. Prompts are private (they may hold anything the person
//! asked), so the file is created 0600 in a 0700 directory and kept so: its mode is
//! looked at when it is opened and after every entry written, and a file others may
//! read is tightened (or, when that fails, no longer written, with a warning).
//!
//! An entry's newlines (a multi-line prompt) and backslashes are escaped (`\n`, `\\`)
//! so each stays one line; each is appended with one write(2) (`O_APPEND`), so two
//! sessions at once interleave whole entries. Only the newest [`KEEP`] entries are
//! read, and a file grown past twice that is rewritten with them (a temporary file
//! beside it, renamed over it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coze_core::config::Env;
use coze_core::support::say;

/// How many entries are recalled, and kept when the file is rewritten.
pub const KEEP: usize = 1000;

/// The most read from the end of the file: the newest entries, whatever the file's size.
const READ_AT_MOST: u64 = 4 << 20;

/// The history file, open for appending (None: there is none, or it is not written).
pub struct History {
    path: Option<PathBuf>,
    file: Option<File>,
    /// The newest entry: one asked again right after is not written twice.
    last: Option<String>,
}

/// Where the history is kept: `$XDG_STATE_HOME/coze/history`, else
/// `$HOME/.local/state/coze/history` (the XDG base directories' place for "state that
/// should persist between restarts", history named there among it).
pub fn path(env: &Env) -> Option<PathBuf> {
    let base = match (&env.xdg_state_home, &env.home) {
        (Some(state), _) if state.is_absolute() => state.clone(),
        (_, Some(home)) => home.join(".local/state"),
        _ => return None,
    };
    Some(base.join("coze/history"))
}

impl History {
    /// A history that neither reads nor writes a file.
    pub fn none() -> History {
        History {
            path: None,
            file: None,
            last: None,
        }
    }

    /// Opens (creating) the file at `path` and reads its newest entries, oldest first.
    /// A problem is one warning line, and the chat goes on without a history file.
    pub fn open(path: &Path) -> (History, Vec<String>) {
        match Self::try_open(path) {
            Ok(opened) => opened,
            Err(why) => {
                say::warn(&format!(
                    "history {}: {why}; this session's prompts are not kept",
                    path.display()
                ));
                (History::none(), Vec::new())
            }
        }
    }

    fn try_open(path: &Path) -> Result<(History, Vec<String>), String> {
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating its directory: {e}"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| e.to_string())?;
        private(&file, path)?;
        let entries = read_entries(&mut file).map_err(|e| format!("reading it: {e}"))?;
        let mut history = History {
            path: Some(path.to_owned()),
            file: Some(file),
            last: entries.last().cloned(),
        };
        let kept = entries.len().saturating_sub(KEEP);
        if entries.len() > 2 * KEEP {
            history.rewrite(&entries[kept..]);
        }
        Ok((history, entries[kept..].to_vec()))
    }

    /// Appends `entry` (unless it is the newest already), then checks the file is still
    /// private; a failure is one warning line and the end of writing the file for this
    /// session.
    pub fn save(&mut self, entry: &str) {
        let (Some(file), Some(path)) = (self.file.as_mut(), self.path.as_deref()) else {
            return;
        };
        if self.last.as_deref() == Some(entry) {
            return;
        }
        self.last = Some(entry.to_owned());
        let mut line = escape(entry);
        line.push('\n');
        let written = file
            .write_all(line.as_bytes())
            .map_err(|e| format!("writing it: {e}"))
            .and_then(|()| private(file, path));
        if let Err(why) = written {
            say::warn(&format!(
                "history {}: {why}; the rest of this session's prompts are not kept",
                path.display()
            ));
            self.file = None;
        }
    }

    /// Replaces the file with `entries`: a private temporary file beside it, renamed
    /// over it, so a crash leaves the old file or the new one. A failure keeps the old.
    fn rewrite(&mut self, entries: &[String]) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        let done = (|| -> io::Result<File> {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            let mut all = String::new();
            for e in entries {
                all.push_str(&escape(e));
                all.push('\n');
            }
            f.write_all(all.as_bytes())?;
            f.sync_all()?;
            fs::rename(&temp, &path)?;
            Ok(f)
        })();
        match done {
            Ok(f) => self.file = Some(f),
            Err(_) => {
                let _ = fs::remove_file(&temp);
            }
        }
    }
}

/// Checks that only its owner may read or write the open `file`; a wider mode is
/// tightened to 0600 with a warning, or refused when that fails (a file of someone
/// else's).
fn private(file: &File, path: &Path) -> Result<(), String> {
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| {
            format!("others may read it (mode {mode:o}) and it cannot be made private: {e}")
        })?;
    say::warn(&format!(
        "history {}: others could read it (mode {mode:o}); made private (0600)",
        path.display()
    ));
    Ok(())
}

/// The entries of the file's newest [`READ_AT_MOST`] bytes, oldest first (a line cut
/// by where the reading starts is dropped; a line that is not UTF-8 is skipped).
fn read_entries(file: &mut File) -> io::Result<Vec<String>> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(READ_AT_MOST);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(READ_AT_MOST).read_to_end(&mut bytes)?;
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    Ok(lines
        .into_iter()
        .filter(|l| !l.is_empty())
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(unescape)
        .collect())
}

/// An entry as one line: `\` as `\\`, a newline as `\n`, a carriage return as `\r`.
fn escape(entry: &str) -> String {
    let mut out = String::with_capacity(entry.len());
    for c in entry.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The entry a line of the file holds ([`escape`] undone; an unknown escape is kept as
/// written).
fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("coze-history-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn escaping_keeps_an_entry_on_one_line() {
        for entry in [
            "plain",
            "two\nlines",
            "a \\ back\\slash\\n",
            "cr\r\n",
            "中文\\",
        ] {
            let line = escape(entry);
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert_eq!(unescape(&line), entry);
        }
    }

    #[test]
    fn where_it_is_kept() {
        let env = Env {
            home: Some("/home/u".into()),
            ..Env::default()
        };
        assert_eq!(
            path(&env),
            Some(PathBuf::from("/home/u/.local/state/coze/history"))
        );
        let env = Env {
            xdg_state_home: Some("/s".into()),
            ..env
        };
        assert_eq!(path(&env), Some(PathBuf::from("/s/coze/history")));
        // A relative XDG_STATE_HOME is invalid (the spec says to ignore it).
        let env = Env {
            xdg_state_home: Some("rel".into()),
            ..env
        };
        assert_eq!(
            path(&env),
            Some(PathBuf::from("/home/u/.local/state/coze/history"))
        );
        assert_eq!(path(&Env::default()), None);
    }

    #[test]
    fn created_private_entries_read_back_and_a_loose_file_tightened() {
        let d = dir("rw");
        let p = d.join("coze/history");
        let (mut h, old) = History::open(&p);
        assert!(old.is_empty());
        h.save("first");
        h.save("two\nlines");
        h.save("two\nlines");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        // The next save notices and tightens it.
        h.save("third");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        let (_, read) = History::open(&p);
        assert_eq!(read, ["first", "two\nlines", "third"]);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_long_history_is_cut_to_its_newest_entries() {
        let d = dir("long");
        let p = d.join("history");
        fs::create_dir_all(&d).unwrap();
        let all: String = (0..2 * KEEP + 5).map(|i| format!("p{i}\n")).collect();
        fs::write(&p, all).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let (mut h, read) = History::open(&p);
        assert_eq!(read.len(), KEEP);
        assert_eq!(read[0], format!("p{}", KEEP + 5));
        h.save("new");
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().count(),
            KEEP + 1,
            "rewritten, then appended to"
        );
        assert!(text.ends_with("new\n"));
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&d);
    }
}
