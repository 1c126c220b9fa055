//! Writing a token file atomically: this process's temp file beside it, filled (or
//! first reserved: zeros, fsynced, so that a full disk shows before a refresh is sent),
//! fsynced, renamed over the file and the directory fsynced; the temp files killed
//! writers left are removed under the lock. SIGXFSZ is ignored while writing, so a
//! file-size limit fails a write instead of killing the process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::path::{file_name, parent_dir, sibling};

/// A new file (0600) holding `bytes`, fsynced.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let _signal = FileSizeSignal::ignore();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// This process's temp file beside a token file (`.<name>.tmp-<pid>`), removed when
/// dropped unless it was renamed into place or is kept on purpose.
pub(super) struct Temp {
    pub(super) path: PathBuf,
    pub(super) file: File,
    /// Renamed, or to be left where it is: not removed on drop.
    pub(super) installed: bool,
}

impl Temp {
    /// Creates (or empties) the temp file, 0600.
    pub(super) fn create(target: &Path) -> io::Result<Temp> {
        let path = sibling(target, &format!(".tmp-{}", std::process::id()), true);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        let temp = Temp {
            path,
            file,
            installed: false,
        };
        // An existing file keeps its mode on open: set it explicitly.
        temp.file
            .set_permissions(fs::Permissions::from_mode(0o600))?;
        Ok(temp)
    }

    /// A temp file of `bytes` zeros, on disk: room that the new pair, written over it
    /// later, does not have to find any more. (std has no posix_fallocate; writing
    /// works on every file system. A copy-on-write one may still need fresh blocks for
    /// the overwrite: there the room is only likely, not certain.)
    pub(super) fn reserve(target: &Path, bytes: u64) -> io::Result<Temp> {
        let _signal = FileSizeSignal::ignore();
        let mut temp = Temp::create(target)?;
        let zeros = [0u8; 4096];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            temp.file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        temp.file.sync_all()?;
        Ok(temp)
    }

    /// Writes `line` from the start, cuts the file to it and fsyncs it.
    pub(super) fn fill(&mut self, line: &[u8]) -> io::Result<()> {
        let _signal = FileSizeSignal::ignore();
        self.file.write_all_at(line, 0)?;
        self.file.set_len(line.len() as u64)?;
        self.file.sync_all()
    }

    /// Renames the file over `target`, then fsyncs the directory (the rename's record).
    pub(super) fn install(&mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.installed = true;
        File::open(parent_dir(target))?.sync_all()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Removes temp files that killed writers left beside `target`. Only under the lock,
/// when no other writer can be active.
pub(super) fn remove_stale_temps(target: &Path) {
    let prefix = format!(".{}.tmp-", file_name(target));
    if let Ok(entries) = fs::read_dir(parent_dir(target)) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// SIGXFSZ ignored while token files are written. Its default action kills the process
/// when a write passes the file-size limit (`ulimit -f`, RLIMIT_FSIZE), which after a
/// refresh would lose the new pair without a word; ignored, the write fails with EFBIG
/// and the store reports it like a full disk. Held only while writing, and counted so
/// that parallel writers restore the previous disposition after the last one: an
/// ignored signal stays ignored across exec, and the programs coze-token runs must get
/// the default.
struct FileSizeSignal;

/// Linux's and the BSDs' number for SIGXFSZ.
const SIGXFSZ: i32 = 25;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;
const SIG_ERR: usize = usize::MAX;

/// How many writers hold [`FileSizeSignal`], and the disposition to restore after them.
static FILE_SIZE_SIGNAL: Mutex<(usize, usize)> = Mutex::new((0, SIG_DFL));

extern "C" {
    // libc's signal(2) (as in `cli::interrupt`); std links libc already.
    fn signal(signum: i32, handler: usize) -> usize;
}

impl FileSizeSignal {
    fn ignore() -> FileSizeSignal {
        let mut held = FILE_SIZE_SIGNAL.lock().unwrap_or_else(|p| p.into_inner());
        if held.0 == 0 {
            // SAFETY: SIG_IGN is a documented disposition; no handler of ours runs.
            let previous = unsafe { signal(SIGXFSZ, SIG_IGN) };
            held.1 = if previous == SIG_ERR {
                SIG_DFL
            } else {
                previous
            };
        }
        held.0 += 1;
        FileSizeSignal
    }
}

impl Drop for FileSizeSignal {
    fn drop(&mut self) {
        let mut held = FILE_SIZE_SIGNAL.lock().unwrap_or_else(|p| p.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            // SAFETY: restores the disposition signal(2) returned for this signal.
            unsafe { signal(SIGXFSZ, held.1) };
        }
    }
}
