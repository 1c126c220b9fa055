//! Names beside a token file: the file its symlinks finally name (what is locked and
//! replaced), its directory, and the siblings (`.<name>.tmp-<pid>`, `<name>.lock`,
//! `<name>.unsaved`); and why a path is not a file we can read.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The file `path` finally names: each symlink followed (a relative one from the
/// directory of the link holding it), at most 40 of them as the kernel allows, whether
/// or not the last one exists yet; then its directory made canonical when it exists,
/// so that every link to one file names the same lock beside it.
pub(super) fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    let mut links = 0;
    while fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
        links += 1;
        if links > 40 {
            return Err(io::Error::other("too many levels of symbolic links"));
        }
        let next = fs::read_link(&p)?;
        p = if next.is_absolute() {
            next
        } else {
            parent_dir(&p).join(next)
        };
    }
    Ok(match (fs::canonicalize(parent_dir(&p)), p.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => p,
    })
}

/// Why `meta` is not a token file we can read, when it is not a regular file.
pub(super) fn not_a_file(meta: &Metadata) -> Option<io::Error> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Some(io::Error::other(format!("{what}, not a regular file")))
}

pub(super) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token.json".into())
}

/// `dir/.name<suffix>` (hidden) or `dir/name<suffix>`.
pub(super) fn sibling(path: &Path, suffix: &str, hidden: bool) -> PathBuf {
    let name = file_name(path);
    let dot = if hidden { "." } else { "" };
    parent_dir(path).join(format!("{dot}{name}{suffix}"))
}
