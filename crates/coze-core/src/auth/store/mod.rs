//! The token file: read it, and write it safely under its lock.
//!
//! Coze access tokens live 15 minutes and refresh tokens rotate on every use
//! (the Coze API docs, `oauth_pkce`: the refresh token sent is dead once a new pair
//! is issued), so two processes that refresh the same file at once would lock
//! each other out. Every renewal therefore happens under an exclusive lock on a sibling
//! `<file>.lock` (`lock`): take the lock, re-read the file, renew only if it is still
//! stale, write the new pair (temp file, fsync, rename, fsync the directory: `temp`)
//! and only then use it. The lock is `flock`-style (`File::lock`), so a killed holder
//! releases it and the lock file itself never blocks a later run. Files are 0600 and
//! directories we create 0700, set by us, never left to the umask.
//!
//! A token file that is a symlink (kept in a dotfiles repository, or one file shared
//! under several names) is followed (`path`): the lock, the temp file and the rename
//! are beside the file the links finally name, so a link stays a link, the file it
//! names gets the new pair, and all links to one file share its one lock.
//!
//! A refresh spends the old refresh token, so the new pair must reach the disk. Before
//! anything is sent, the temp file is made and filled with zeros, several times the
//! token's size, and fsynced: a full disk or a file-size limit then stops the refresh
//! before the server rotates anything. If the write still fails after the rotation,
//! the new pair is kept in a file of its own beside the token file and the error says
//! where, and how to put it in place.
//!
//! A token file others may read is tightened to 0600, with a warning, when it is ours,
//! and refused when it is not (we could not fix it): a token others can read is no
//! longer a secret.
//!
//! Not here: what renewing means (`renew`, which drives [`TokenStore::renew_if`]), how
//! a person logs in (coze-auth), what the tools do with the token.

mod lock;
mod path;
mod temp;

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::secret_file::MAX_SECRET_FILE;
use crate::error::{Error, Result};
use crate::protocol::{Record, Token};
use crate::support::redact;
use lock::{in_flight_note, lock, lock_path, read_note, write_note};
use path::{not_a_file, parent_dir, resolve, sibling};
use temp::{remove_stale_temps, write_file, Temp};

/// The least room made for a renewed token before the renewal is asked for (bytes); a
/// token record is well under 1 KiB, and the room is four times the current file when
/// that is more (a record carrying large fields of a script's own).
const RESERVE_MIN: u64 = 8192;

/// A token file on disk.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// The store of the token file at `path`; nothing is read or created until used.
    pub fn new(path: impl Into<PathBuf>) -> TokenStore {
        TokenStore { path: path.into() }
    }

    /// The path as given (a symlink stays named as such in messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file the path finally names, symlinks followed: what is locked and replaced.
    /// Resolved at each use, so a link pointed elsewhere meanwhile is followed anew.
    fn target(&self) -> Result<PathBuf> {
        resolve(&self.path)
            .map_err(|e| Error::io(&self.path, e).context("following the token file's links"))
    }

    fn missing(&self) -> Error {
        Error::Auth(format!(
            "no token file at {}: log in with `coze-auth --client-id ID | coze-token --save`, \
             or set COZE_API_TOKEN",
            self.path.display()
        ))
    }

    /// Reads the token file. A missing or broken file means a login is needed (exit 4);
    /// one that cannot be read (a directory, a FIFO, permission denied) is a local error
    /// (exit 8) naming the file.
    pub fn load(&self) -> Result<Token> {
        let reading = |e: io::Error| Error::io(&self.path, e).context("reading the token file");
        // Only a regular file is opened: opening a FIFO would wait for a writer forever.
        match fs::metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing()),
            Err(e) => return Err(reading(e)),
            Ok(meta) => not_a_file(&meta).map_or(Ok(()), |e| Err(reading(e)))?,
        }
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing()),
            Err(e) => return Err(reading(e)),
        };
        let meta = file.metadata().map_err(reading)?;
        if let Some(e) = not_a_file(&meta) {
            return Err(reading(e)); // swapped for something else since the check above
        }
        self.keep_private(&file, &meta)?;
        let not_a_token = |why: &str| {
            Error::Auth(format!(
                "{} is not a token file ({why}): log in again with `coze-auth | coze-token --save`",
                self.path.display()
            ))
        };
        // A token is a few hundred bytes: a huge file is not one (and is not read whole).
        let bytes = match crate::wire::jsonl::read_capped(&mut file, MAX_SECRET_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(not_a_token(&e.to_string()))
            }
            Err(e) => return Err(reading(e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| not_a_token("not UTF-8 text"))?;
        let first = text
            .trim_start_matches('\u{feff}')
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        let token = match Record::from_line(1, first) {
            Ok(Record::Token(t)) => t,
            Ok(other) => {
                return Err(Error::Auth(format!(
                    "{} holds a {} record, not a token: pipe it through coze-token first",
                    self.path.display(),
                    other.type_name()
                )))
            }
            // The record parser names a stdin line; this is a file, named above.
            Err(e) => match e.root() {
                Error::BadInput { message, .. } => return Err(not_a_token(message)),
                other => return Err(not_a_token(&other.to_string())),
            },
        };
        redact::register(&token.access_token);
        if let Some(r) = &token.refresh_token {
            redact::register(r);
        }
        Ok(token)
    }

    /// A token file group or others may read or write is tightened to 0600 when it is
    /// ours (with a warning: something loosened it), and refused when it is not: we
    /// cannot fix someone else's file, and the fix is theirs to make. The owner is
    /// compared with our effective uid, not tried by access: root reads anything. The
    /// open file is checked and changed, so it is the file then read.
    fn keep_private(&self, file: &File, meta: &Metadata) -> Result<()> {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let p = self.path.display();
        let me = euid();
        if meta.uid() != me {
            return Err(Error::Auth(format!(
                "the token file {p} is open to others (mode {mode:04o}) and belongs to uid \
                 {}, not to you (uid {me}), so it is neither used nor changed: its owner can \
                 chmod 600 {p}, or log in into a token file of your own",
                meta.uid()
            )));
        }
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                Error::Auth(format!(
                    "the token file {p} is open to others (mode {mode:04o}) and could not be \
                     tightened ({e}): chmod 600 {p}"
                ))
            })?;
        crate::support::say::warn(&format!(
            "the token file {p} was open to others (mode {mode:04o}): tightened to 0600"
        ));
        Ok(())
    }

    /// Replaces the file atomically with `token`, under the lock.
    pub fn save(&self, token: &Token) -> Result<()> {
        let target = self.target()?;
        let _lock = lock(&target)?;
        let written = Temp::create(&target).and_then(|mut temp| {
            temp.fill(&token_line(token))?;
            temp.install(&target)
        });
        // After the rename: nothing but the write stands between an answer and the disk.
        remove_stale_temps(&target);
        written.map_err(|e| Error::io(&target, e).context("saving the token"))
    }

    /// Removes the token file and its lock (`coze-token logout`), under the lock, so a
    /// refresh in progress finishes first and none starts from the removed file. True
    /// when there was a token file to remove. A symlink is removed itself: the file it
    /// names (and that file's lock) may serve other links.
    pub fn remove(&self) -> Result<bool> {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&self.path)
                .map_err(|e| Error::io(&self.path, e).context("removing the token link"))?;
            return Ok(true);
        }
        let target = self.target()?;
        if !parent_dir(&target).exists() {
            return Ok(false);
        }
        let _lock = lock(&target)?;
        let removed = match fs::remove_file(&target) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(&target, e).context("removing the token")),
        };
        remove_stale_temps(&target);
        // Still holding the lock: waiters re-check the path after they get it.
        let lock_path = lock_path(&target);
        if let Err(e) = fs::remove_file(&lock_path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(Error::io(&lock_path, e).context("removing the token lock"));
            }
        }
        Ok(removed)
    }

    /// Under the file's lock: re-reads the token and, if `stale` says so, replaces it
    /// with what `renew` makes of it; otherwise returns it as read (another process
    /// renewed it while we waited). What renewing means is the caller's (`renew`): the
    /// store only makes it safe.
    pub fn renew_if(
        &self,
        stale: impl Fn(&Token) -> bool,
        renew: impl FnOnce(&Token) -> Result<Token>,
    ) -> Result<Token> {
        let target = self.target()?;
        let lock = lock(&target)?;
        let token = self.load()?;
        if !stale(&token) {
            return Ok(token);
        }
        self.renew_locked(&target, &lock, &token, renew)
    }

    /// Renews `target` while holding `lock`, with `renew`.
    ///
    /// First the room for the new pair is made (a temp file of zeros, fsynced): if the
    /// disk cannot take it, nothing is sent and the old pair stays good. Then, before a
    /// refresh token is sent, its fingerprint is noted in the lock file: if this
    /// process dies after the server rotated the pair but before the new one reached
    /// the disk (a window no client can close), the next run finds its own note, and
    /// when the server then refuses the token it says plainly that the token was used
    /// by an interrupted refresh and a login is needed.
    fn renew_locked(
        &self,
        target: &Path,
        lock: &File,
        token: &Token,
        renew: impl FnOnce(&Token) -> Result<Token>,
    ) -> Result<Token> {
        let size = fs::metadata(target).map(|m| m.len()).unwrap_or(0);
        let mut temp =
            Temp::reserve(target, size.saturating_mul(4).max(RESERVE_MIN)).map_err(|e| {
                Error::io(target, e)
                    .context("making room for the renewed token")
                    .with_hint(
                        "nothing was sent to the server and the token file is as it was: \
                         free some space and retry",
                    )
            })?;
        let note = token.refresh_token.as_deref().map(in_flight_note);
        let interrupted = note.is_some() && read_note(lock) == note;
        if let Some(note) = &note {
            write_note(lock, note);
        }
        let fresh = renew(token).map_err(|e| {
            if interrupted && matches!(e.root(), Error::RefreshRefused(_)) {
                let unsaved = unsaved_path(target);
                let kept = if unsaved.exists() {
                    format!(
                        " (a renewed pair that could not be written is kept in {u}: if it is \
                         the newer, `mv {u} {t}` puts it in place)",
                        u = unsaved.display(),
                        t = target.display()
                    )
                } else {
                    String::new()
                };
                Error::Auth(format!(
                    "the refresh token in {} was already used (a refresh was interrupted \
                     after the server rotated it): log in again with \
                     `coze-auth | coze-token --save`{kept}",
                    self.path.display()
                ))
            } else {
                e
            }
        })?;
        // The old refresh token is dead from here on: the new pair reaches the disk
        // before anything else happens, so a crash cannot lose both.
        let line = token_line(&fresh);
        let outcome = match temp.fill(&line) {
            Ok(()) => temp.install(target).map_err(|e| (e, true)),
            Err(e) => Err((e, false)),
        };
        if let Err((e, filled)) = outcome {
            return Err(rescue(temp, filled, &line, target, e));
        }
        remove_stale_temps(target);
        Ok(fresh)
    }
}

/// After the server has rotated the pair and writing it over `target` failed: keeps
/// the new pair in a file of its own beside it (the filled temp file renamed, or a new
/// file written once the temp file's room is given back) and says where, or says that
/// it is lost. Never the pair itself: the message goes to stderr.
fn rescue(mut temp: Temp, filled: bool, line: &[u8], target: &Path, e: io::Error) -> Error {
    let err = Error::io(target, e).context("saving the renewed token");
    if temp.installed {
        return err; // in place; only the directory's fsync failed
    }
    let unsaved = unsaved_path(target);
    let kept = if filled && fs::rename(&temp.path, &unsaved).is_ok() {
        temp.installed = true;
        Some(unsaved)
    } else if filled {
        temp.installed = true; // left where it is, whole
        Some(temp.path.clone())
    } else {
        drop(temp);
        write_file(&unsaved, line).ok().map(|()| unsaved)
    };
    match kept {
        Some(k) => err.with_hint(format!(
            "the server has already replaced the pair; the new one is kept in {k}: put it \
             in place with `mv {k} {t}`",
            k = k.display(),
            t = target.display()
        )),
        None => err.with_hint(
            "the server has already replaced the pair and the new one could not be kept \
             anywhere: log in again",
        ),
    }
}

/// Where a renewed pair that could not be written is kept: `<target>.unsaved`, not
/// hidden (a person is told to look for it) and not a temp file's name, which the next
/// write would clean up.
fn unsaved_path(target: &Path) -> PathBuf {
    sibling(target, ".unsaved", false)
}

/// A token as its file holds it: one JSON line.
fn token_line(token: &Token) -> Vec<u8> {
    // Strings, numbers and a JSON map: a token always serializes.
    let mut line = serde_json::to_vec(&Record::Token(token.clone())).expect("tokens serialize");
    line.push(b'\n');
    line
}

/// Our effective uid, the owner a private token file must have.
fn euid() -> u32 {
    extern "C" {
        // geteuid(2); std links libc already.
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid takes nothing, touches no memory of ours and cannot fail.
    unsafe { geteuid() }
}

#[cfg(test)]
mod tests {
    use super::lock::same_file;
    use super::*;
    use crate::auth::testing::{tmpdir, token};

    impl TokenStore {
        fn lock(&self) -> Result<File> {
            super::lock(&self.target()?)
        }

        fn lock_path(&self) -> PathBuf {
            super::lock_path(&self.target().unwrap())
        }
    }

    #[test]
    fn save_creates_private_dir_and_file_atomically() {
        let dir = tmpdir("save");
        let store = TokenStore::new(dir.join("sub/token.json"));
        store.save(&token("czu_first_token", 5)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("sub")), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(store.load().unwrap().access_token, "czu_first_token");
        // A stale temp file of a killed writer is cleaned up by the next write.
        fs::write(dir.join("sub/.token.json.tmp-999999"), "half").unwrap();
        store.save(&token("czu_second_token", 6)).unwrap();
        let names: Vec<String> = fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
        assert_eq!(store.load().unwrap().expires_at, 6);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn remove_takes_the_file_and_its_lock_and_a_waiter_sees_the_logout() {
        let dir = tmpdir("remove");
        let store = TokenStore::new(dir.join("t.json"));
        assert!(
            !store.remove().unwrap(),
            "nothing to remove, nothing created"
        );
        assert!(!dir.exists());
        store.save(&token("czu_gone_token", 5)).unwrap();
        // A refresh holds the lock: logout waits for it, then removes both files.
        let held = store.lock().unwrap();
        let remover = {
            let store = store.clone();
            std::thread::spawn(move || store.remove().unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(store.path().exists(), "logout waits for the lock");
        drop(held);
        assert!(remover.join().unwrap());
        assert!(!store.path().exists());
        assert!(!store.lock_path().exists());
        let e = store.load().unwrap_err();
        assert_eq!(e.exit_code(), 4, "{e}");
        // A new login after the logout locks a lock file of its own, the one at the path.
        store.save(&token("czu_new_token", 6)).unwrap();
        let lock = store.lock().unwrap();
        assert!(same_file(&lock, &store.lock_path()));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_loose_existing_file_is_tightened() {
        let dir = tmpdir("tighten");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        TokenStore::new(&path)
            .save(&token("czu_x_token", 1))
            .unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_and_broken_files_ask_for_a_login() {
        let dir = tmpdir("broken");
        fs::create_dir_all(&dir).unwrap();
        let store = TokenStore::new(dir.join("none.json"));
        let e = store.load().unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("no token file"), "{e}");
        fs::write(dir.join("bad.json"), "{\"type\":\"tok").unwrap();
        fs::set_permissions(dir.join("bad.json"), fs::Permissions::from_mode(0o600)).unwrap();
        let e = TokenStore::new(dir.join("bad.json")).load().unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("is not a token file"), "{e}");
        assert!(!e.to_string().contains("stdin"), "a file, not stdin: {e}");
        let _ = fs::remove_dir_all(dir);
    }

    /// The rescue after a rotation, each way (failures injected): the tests in
    /// tests/token_files.rs see the rename fail; here the write itself fails too, and
    /// the pair cannot be kept at all.

    #[test]
    fn a_pair_that_cannot_be_written_is_kept_beside_the_file_or_said_lost() {
        let dir = tmpdir("rescue");
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("t.json");
        let kept = unsaved_path(&target);
        let line = token_line(&token("czu_kept_token", 7));
        let told = format!("`mv {} {}`", kept.display(), target.display());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

        // The rename over the file failed after a whole write: the temp file is kept.
        let mut temp = Temp::reserve(&target, 64).unwrap();
        temp.fill(&line).unwrap();
        let e = rescue(temp, true, &line, &target, io::Error::other("injected"));
        assert_eq!(e.exit_code(), 8);
        assert!(e.to_string().contains(&told), "{e}");
        assert_eq!(fs::read(&kept).unwrap(), line);
        assert_eq!(mode(&kept), 0o600);
        fs::remove_file(&kept).unwrap();

        // The write over the room failed: the temp file is suspect and goes (giving its
        // room back), and the pair is written to a file of its own.
        let temp = Temp::reserve(&target, 64).unwrap();
        let temp_path = temp.path.clone();
        let e = rescue(temp, false, &line, &target, io::Error::other("injected"));
        assert!(e.to_string().contains(&told), "{e}");
        assert!(!temp_path.exists());
        assert_eq!(fs::read(&kept).unwrap(), line);
        assert_eq!(mode(&kept), 0o600);

        // Nowhere to keep it (the directory is gone): the message says so.
        let temp = Temp::reserve(&target, 64).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let e = rescue(temp, false, &line, &target, io::Error::other("injected"));
        assert_eq!(e.exit_code(), 8);
        assert!(
            e.to_string()
                .ends_with("the new one could not be kept anywhere: log in again)"),
            "{e}"
        );
        assert!(!e.to_string().contains("czu_kept_token"));
    }

    #[test]
    fn the_in_flight_note_names_the_token_without_showing_it() {
        let dir = tmpdir("note");
        fs::create_dir_all(&dir).unwrap();
        let store = TokenStore::new(dir.join("t.json"));
        let lock = store.lock().unwrap();
        assert_eq!(read_note(&lock).as_deref(), Some(""));
        let a = in_flight_note("refresh-token-a");
        let b = in_flight_note("refresh-token-b");
        assert_ne!(a, b);
        assert_eq!(
            a.len(),
            b.len(),
            "fixed length: one pwrite replaces the whole note"
        );
        assert!(!a.contains("refresh-token-a"));
        write_note(&lock, &a);
        write_note(&lock, &b);
        assert_eq!(read_note(&lock), Some(b));
        let _ = fs::remove_dir_all(dir);
    }
}
