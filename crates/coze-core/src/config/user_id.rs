//! The default `user_id` a chat is sent with: made once per profile and kept in the
//! profile's directory (`user_id`, beside its token file), so a bot's per-user memory
//! and variables carry over from one run of a script to the next. `--user` and
//! `COZE_USER_ID` still override it (the binaries decide that).
//!
//! The file is created so that two processes starting at once agree on one id: each
//! writes a private temp file and hard-links it to the final name, which fails for all
//! but the first; the others read the winner's id. When the directory cannot be written
//! (a read-only home, no HOME at all) the run still works with an id of its own, after
//! one warning line.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::support::random::random_hex;

/// A new random id: `coze-tools-` and 16 hex digits.
pub fn generate() -> io::Result<String> {
    let hex = random_hex(8).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(format!("coze-tools-{hex}"))
}

/// The id kept at `path`, made now if there is none. `Err` only when no id could be
/// had at all (the random source failed); a file that cannot be kept is a warning and a
/// fresh id for this run.
pub fn stable(path: &Path, warn: &mut dyn FnMut(&str)) -> io::Result<String> {
    match read(path) {
        Ok(Some(id)) => return Ok(id),
        Ok(None) => {}
        Err(e) => {
            warn(&format!(
                "cannot read the user id at {}: {e}; using a new one for this run (pass \
                 --user or set COZE_USER_ID)",
                path.display()
            ));
            return generate();
        }
    }
    let id = generate()?;
    match create(path, &id) {
        Ok(()) => Ok(id),
        // Another process created it first: theirs is the one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read(path) {
            Ok(Some(theirs)) => Ok(theirs),
            _ => Ok(id),
        },
        Err(e) => {
            warn(&format!(
                "cannot keep a user id at {}: {e}; the bot will not recognise the next run \
                 as the same user (pass --user or set COZE_USER_ID)",
                path.display()
            ));
            Ok(id)
        }
    }
}

/// The id in the file; None when there is no file, or it holds no usable id (then a new
/// one replaces it).
fn read(path: &Path) -> io::Result<Option<String>> {
    // An id is at most 128 bytes: a longer file is not read whole, and not used.
    match crate::wire::jsonl::read_file_capped(path, 4096) {
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            let _ = fs::remove_file(path);
            Ok(None)
        }
        Ok(text) => {
            let id = text.trim();
            let usable = !id.is_empty() && id.len() <= 128 && !id.contains(char::is_whitespace);
            if !usable {
                // A file we cannot use would otherwise block every later run.
                let _ = fs::remove_file(path);
            }
            Ok(usable.then(|| id.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `id` to `path` only if nothing is there yet: temp file, fsync, hard link.
fn create(path: &Path, id: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    // Unique per attempt, not just per process: threads of one process race too.
    let tmp = dir.join(format!(".user_id.tmp-{}-{id}", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("coze-uid-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn made_once_then_kept() {
        let d = dir("kept");
        let path = d.join("profiles/work/user_id");
        let mut warnings = Vec::new();
        let first = stable(&path, &mut |w| warnings.push(w.to_owned())).unwrap();
        assert!(
            first.starts_with("coze-tools-") && first.len() == 27,
            "{first}"
        );
        assert_eq!(stable(&path, &mut |_| {}).unwrap(), first);
        assert!(warnings.is_empty(), "{warnings:?}");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&d.join("profiles/work")), 0o700);
        let names: Vec<_> = fs::read_dir(d.join("profiles/work")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file is left behind");
        // A hand-written id is used as is; an unusable file is replaced.
        fs::write(&path, "ada-lovelace\n").unwrap();
        assert_eq!(stable(&path, &mut |_| {}).unwrap(), "ada-lovelace");
        fs::write(&path, "  \n").unwrap();
        let fresh = stable(&path, &mut |_| {}).unwrap();
        assert!(fresh.starts_with("coze-tools-"), "{fresh}");
        assert_eq!(stable(&path, &mut |_| {}).unwrap(), fresh);
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn parallel_first_runs_agree_on_one_id() {
        let d = dir("race");
        let path = d.join("user_id");
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| stable(&path, &mut |_| {}).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn an_unwritable_directory_warns_and_still_gives_an_id() {
        let d = dir("ro");
        fs::create_dir_all(&d).unwrap();
        // A file where the directory should be: creating it fails even for root.
        fs::write(d.join("blocker"), "").unwrap();
        let mut warnings = Vec::new();
        let id = stable(&d.join("blocker/user_id"), &mut |w| {
            warnings.push(w.to_owned())
        })
        .unwrap();
        assert!(id.starts_with("coze-tools-"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("pass --user"), "{warnings:?}");
        let _ = fs::remove_dir_all(d);
    }
}
