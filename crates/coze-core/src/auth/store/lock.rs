//! The lock beside a token file (`<file>.lock`), taken for every write, and the note a
//! refresh leaves in it while a refresh token is being sent, so that the next run can
//! tell a token spent by an interrupted refresh.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::path::{parent_dir, sibling};
use crate::error::{Error, Result};

/// The lock beside `target`: `<target>.lock`.
pub(super) fn lock_path(target: &Path) -> PathBuf {
    sibling(target, ".lock", false)
}

/// Takes the exclusive lock of `target`, creating its directory (0700) and lock file
/// (0600).
///
/// `coze-token logout` removes the lock file while holding it, so a process that
/// opened it before could lock a file no longer in place while a newcomer locks a new
/// one: after locking, the file locked must still be the one at the path, or we open
/// it again.
pub(super) fn lock(target: &Path) -> Result<File> {
    let dir = parent_dir(target);
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e).context("creating the token directory"))?;
    }
    let lock_path = lock_path(target);
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e).context("opening the token lock"))?;
        file.lock()
            .map_err(|e| Error::io(&lock_path, e).context("locking the token file"))?;
        if same_file(&file, &lock_path) {
            return Ok(file);
        }
    }
}

/// Whether the open `file` is the one at `path` now (same device and inode).
pub(super) fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What the lock file says while a refresh token is being sent: a fingerprint of the
/// token (never the token), so a later run can tell it is the same one.
pub(super) fn in_flight_note(refresh_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(refresh_token.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("refreshing sha256:{hex}\n")
}

pub(super) fn read_note(lock: &File) -> Option<String> {
    let mut buf = [0u8; 128];
    let n = lock.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok().map(str::to_owned)
}

/// Best effort: the note only improves a message, so a failure to write it is ignored.
/// One `pwrite` of a fixed-length note (no truncation first), so a kill leaves either
/// the old note or the new one. Not fsynced: it has to survive a killed process,
/// which the page cache does.
pub(super) fn write_note(lock: &File, note: &str) {
    let _ = lock.write_all_at(note.as_bytes(), 0);
}
