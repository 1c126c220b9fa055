//! The token file: read it, write it safely, and renew it single-flight.
//!
//! Coze access tokens live 15 minutes and refresh tokens rotate on every use
//! (coze-api.md §2.2), so two processes that refresh the same file at once would lock
//! each other out. Every renewal therefore happens under an exclusive lock on a sibling
//! `<file>.lock`: take the lock, re-read the file, renew only if it is still stale,
//! write the new pair (temp file, fsync, rename, fsync the directory) and only then use
//! it. The lock is `flock`-style (`File::lock`), so a killed holder releases it and the
//! lock file itself never blocks a later run. Files are 0600 and directories we create
//! 0700, set by us, never left to the umask.
//!
//! A token file that is a symlink (kept in a dotfiles repository, or one file shared
//! under several names) is followed: the lock, the temp file and the rename are beside
//! the file the links finally name, so a link stays a link, the file it names gets the
//! new pair, and all links to one file share its one lock.
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
//! Renewing dispatches on the record: a `grant: "jwt"` token (a service app's) is
//! minted again from its key (`jwt`); any other is refreshed with its refresh token, a
//! web app's with the client secret read from the `client_secret_file` it names. The
//! files holding those secrets must be private: [`read_private_file`] refuses them
//! otherwise, as ssh refuses a loose key.
//!
//! Not here: how a person logs in (coze-auth), what the tools do with the token.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{
    DirBuilderExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::http::Http;
use crate::jwt::{self, JwtGrant};
use crate::oauth;
use crate::protocol::{Record, Token};
use crate::support::redact;
use crate::support::time::{ago, unix_now};

/// Renew when the token has less than this left (design.md §3).
pub const DEFAULT_MIN_TTL: i64 = 120;

/// The least room made for a renewed token before the renewal is asked for (bytes); a
/// token record is well under 1 KiB, and the room is four times the current file when
/// that is more (a record carrying large fields of a script's own).
const RESERVE_MIN: u64 = 8192;

/// The renewal margin the API tools use for `token`: `min_ttl`, but never more than a
/// quarter of the token's recorded lifetime. Coze's 15-minute tokens keep the 120 s
/// margin (a quarter is 225 s); a token issued for 6 s (a test fake) or 60 s (a short
/// JWT `--ttl`) is renewed 1 s or 15 s before it expires, instead of on every use,
/// which is what a fixed 120 s margin would do to any token living under 120 s. A
/// token without a recorded lifetime (written by an older version, or by hand) keeps
/// `min_ttl`.
pub fn renew_margin(token: &Token, min_ttl: i64) -> i64 {
    match token
        .extra
        .get(oauth::LIFETIME)
        .and_then(serde_json::Value::as_i64)
    {
        Some(lifetime) if lifetime > 0 => min_ttl.min(lifetime / 4),
        _ => min_ttl,
    }
}

/// The largest token file, key file or client secret file read: a token record is
/// under 4 KiB and a private key a few KiB, so a larger file is not one (and
/// `--token-file /dev/zero` must not be read until memory runs out).
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// A token file on disk.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
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

    /// A token with more than `min_ttl` seconds left, renewed single-flight if needed
    /// (`coze-token print --min-ttl`: exactly the margin asked for).
    pub fn fresh(&self, http: &Http, min_ttl: i64, renewer: &Renewer<'_>) -> Result<Token> {
        self.fresh_with(http, |_| min_ttl, renewer)
    }

    /// A token renewed single-flight once it is within `margin(token)` seconds of
    /// its expiry (the API tools pass [`renew_margin`]).
    pub fn fresh_with(
        &self,
        http: &Http,
        margin: impl Fn(&Token) -> i64,
        renewer: &Renewer<'_>,
    ) -> Result<Token> {
        let token = self.load()?;
        if token.ttl(unix_now()) > margin(&token) {
            return Ok(token);
        }
        let target = self.target()?;
        let lock = lock(&target)?;
        let token = self.load()?;
        if token.ttl(unix_now()) > margin(&token) {
            return Ok(token); // another process renewed it while we waited
        }
        self.renew_locked(&target, &lock, http, &token, renewer)
    }

    /// The server refused `rejected` (4100): renew unless another process already did.
    pub fn renew_after_rejection(
        &self,
        http: &Http,
        rejected: &str,
        renewer: &Renewer<'_>,
    ) -> Result<Token> {
        let target = self.target()?;
        let lock = lock(&target)?;
        let token = self.load()?;
        if token.access_token != rejected {
            return Ok(token);
        }
        self.renew_locked(&target, &lock, http, &token, renewer)
    }

    /// Renews unconditionally (coze-token refresh --force, a `token` record on stdin).
    pub fn renew_now(&self, http: &Http, renewer: &Renewer<'_>) -> Result<Token> {
        let target = self.target()?;
        let lock = lock(&target)?;
        let token = self.load()?;
        self.renew_locked(&target, &lock, http, &token, renewer)
    }

    /// Renews `target` while holding `lock`.
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
        http: &Http,
        token: &Token,
        renewer: &Renewer<'_>,
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
        let fresh = renew(http, token, renewer).map_err(|e| {
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

/// A new file (0600) holding `bytes`, fsynced.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
struct Temp {
    path: PathBuf,
    file: File,
    /// Renamed, or to be left where it is: not removed on drop.
    installed: bool,
}

impl Temp {
    /// Creates (or empties) the temp file, 0600.
    fn create(target: &Path) -> io::Result<Temp> {
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
    fn reserve(target: &Path, bytes: u64) -> io::Result<Temp> {
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
    fn fill(&mut self, line: &[u8]) -> io::Result<()> {
        let _signal = FileSizeSignal::ignore();
        self.file.write_all_at(line, 0)?;
        self.file.set_len(line.len() as u64)?;
        self.file.sync_all()
    }

    /// Renames the file over `target`, then fsyncs the directory (the rename's record).
    fn install(&mut self, target: &Path) -> io::Result<()> {
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
fn remove_stale_temps(target: &Path) {
    let prefix = format!(".{}.tmp-", file_name(target));
    if let Ok(entries) = fs::read_dir(parent_dir(target)) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The lock beside `target`: `<target>.lock`.
fn lock_path(target: &Path) -> PathBuf {
    sibling(target, ".lock", false)
}

/// Takes the exclusive lock of `target`, creating its directory (0700) and lock file
/// (0600).
///
/// `coze-token logout` removes the lock file while holding it, so a process that
/// opened it before could lock a file no longer in place while a newcomer locks a new
/// one: after locking, the file locked must still be the one at the path, or we open
/// it again.
fn lock(target: &Path) -> Result<File> {
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

/// The file `path` finally names: each symlink followed (a relative one from the
/// directory of the link holding it), at most 40 of them as the kernel allows, whether
/// or not the last one exists yet; then its directory made canonical when it exists,
/// so that every link to one file names the same lock beside it.
fn resolve(path: &Path) -> io::Result<PathBuf> {
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
fn not_a_file(meta: &Metadata) -> Option<io::Error> {
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
    // libc's signal(2) (as in `interrupt`) and geteuid(2); std links libc already.
    fn signal(signum: i32, handler: usize) -> usize;
    fn geteuid() -> u32;
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

/// Our effective uid, the owner a private token file must have.
fn euid() -> u32 {
    // SAFETY: geteuid takes nothing, touches no memory of ours and cannot fail.
    unsafe { geteuid() }
}

/// Whether the open `file` is the one at `path` now (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What the lock file says while a refresh token is being sent: a fingerprint of the
/// token (never the token), so a later run can tell it is the same one.
fn in_flight_note(refresh_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(refresh_token.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("refreshing sha256:{hex}\n")
}

fn read_note(lock: &File) -> Option<String> {
    let mut buf = [0u8; 128];
    let n = lock.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok().map(str::to_owned)
}

/// Best effort: the note only improves a message, so a failure to write it is ignored.
/// One `pwrite` of a fixed-length note (no truncation first), so a kill leaves either
/// the old note or the new one. Not fsynced: it has to survive a killed process,
/// which the page cache does.
fn write_note(lock: &File, note: &str) {
    let _ = lock.write_all_at(note.as_bytes(), 0);
}

/// What renewing needs besides the token itself.
#[derive(Debug, Clone, Default)]
pub struct Renewer<'a> {
    /// Where to refresh when the token does not say (`--base-url`, env, default).
    pub api_base: &'a str,
    /// A web app's client secret, sent as bearer on refresh.
    pub client_secret: Option<&'a str>,
}

/// Renews `token`: a JWT token is minted again from its key, any other is refreshed
/// with its refresh token. The new token keeps the old one's extra fields.
pub fn renew(http: &Http, token: &Token, renewer: &Renewer<'_>) -> Result<Token> {
    let now = unix_now();
    let base = token.base_url.as_deref().unwrap_or(renewer.api_base);
    if let Some(grant) = JwtGrant::from_token(token) {
        let mut fresh = jwt::mint(http, base, &grant?, now)?;
        let mut extra = token.extra.clone();
        extra.append(&mut fresh.extra);
        fresh.extra = extra;
        return Ok(fresh);
    }
    let Some(refresh_token) = token.refresh_token.as_deref() else {
        return Err(Error::Auth(format!(
            "the token expired {} and has no refresh token: log in again with `coze-auth | coze-token --save`",
            ago(token.expires_at, now)
        )));
    };
    let Some(client_id) = token.client_id.as_deref() else {
        return Err(Error::Auth(
            "the token has a refresh token but no client_id, so it cannot be refreshed: log in again".into(),
        ));
    };
    // A web app's secret: the caller's, else the file the record names.
    let from_file;
    let client_secret = match (renewer.client_secret, client_secret_file(token)) {
        (Some(s), _) => Some(s),
        (None, Some(path)) => {
            from_file = oauth::read_client_secret(&path)?;
            Some(from_file.as_str())
        }
        (None, None) => None,
    };
    let mut fresh = oauth::refresh(http, base, refresh_token, client_id, client_secret, now)?;
    // The old record's extra fields survive; what the new answer says (its lifetime)
    // replaces them.
    let mut extra = token.extra.clone();
    extra.append(&mut fresh.extra);
    fresh.extra = extra;
    if fresh.base_url.is_none() {
        fresh.base_url = token.base_url.clone();
    }
    Ok(fresh)
}

/// The web-app secret file a token record names (`client_secret_file`), if any.
pub fn client_secret_file(token: &Token) -> Option<PathBuf> {
    token
        .extra
        .get("client_secret_file")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Whether `renew` has what it needs: a JWT grant, or a refresh token and client id.
pub fn renewable(token: &Token) -> bool {
    match JwtGrant::from_token(token) {
        Some(grant) => grant.is_ok(),
        None => token.refresh_token.is_some() && token.client_id.is_some(),
    }
}

/// Reads a file that holds a secret (a private key, a client secret), refusing it when
/// group or others may read or write it: `what` names it in the message ("key file").
/// The mode is checked on the open file, so it is the file that is then read.
pub fn read_private_file(path: &Path, what: &str) -> Result<String> {
    let mut file =
        File::open(path).map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?;
    let mode = file
        .metadata()
        .map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let who = if mode & 0o044 != 0 {
            "readable"
        } else {
            "accessible"
        };
        return Err(Error::Auth(format!(
            "{what} {p} is {who} by others (mode {m:04o}): chmod 600 {p}",
            p = path.display(),
            m = mode & 0o7777
        )));
    }
    let bytes = crate::wire::jsonl::read_capped(&mut file, MAX_SECRET_FILE)
        .map_err(|e| Error::io(path, e).context(format!("reading the {what}")))?;
    String::from_utf8(bytes).map_err(|_| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8");
        Error::io(path, e).context(format!("reading the {what}"))
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token.json".into())
}

/// `dir/.name<suffix>` (hidden) or `dir/name<suffix>`.
fn sibling(path: &Path, suffix: &str, hidden: bool) -> PathBuf {
    let name = file_name(path);
    let dot = if hidden { "." } else { "" };
    parent_dir(path).join(format!("{dot}{name}{suffix}"))
}

/// Where the API tools get their bearer token.
///
/// A token file is read once and the token kept in memory while it has more than its
/// renewal margin left: a run of 2,000 prompts does not re-read and re-parse the file
/// for every request. That stays right when another process renews the file meanwhile,
/// since the token we hold is still valid until it expires; if the server refuses it
/// anyway, `after_rejection` goes back to the file (single-flight) for the new one.
#[derive(Debug)]
// One per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TokenSource {
    /// `COZE_API_TOKEN`: used as is, never refreshed.
    Static(String),
    /// A token file, renewed through the store.
    Store {
        store: TokenStore,
        min_ttl: i64,
        api_base: String,
        /// The token last read or renewed.
        cached: Mutex<Option<Token>>,
    },
}

impl TokenSource {
    /// A token file source, primed with `loaded` when the caller has already read it.
    pub fn store(store: TokenStore, min_ttl: i64, api_base: String, loaded: Option<Token>) -> Self {
        TokenSource::Store {
            store,
            min_ttl,
            api_base,
            cached: Mutex::new(loaded),
        }
    }

    /// A usable access token now.
    pub fn current(&self, http: &Http) -> Result<String> {
        match self {
            TokenSource::Static(t) => Ok(t.clone()),
            TokenSource::Store {
                store,
                min_ttl,
                api_base,
                cached,
            } => {
                let margin = |t: &Token| renew_margin(t, *min_ttl);
                let mut cached = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = cached.as_ref().filter(|t| t.ttl(unix_now()) > margin(t)) {
                    return Ok(t.access_token.clone());
                }
                let renewer = Renewer {
                    api_base,
                    client_secret: None,
                };
                let token = store.fresh_with(http, margin, &renewer)?;
                let access = token.access_token.clone();
                *cached = Some(token);
                Ok(access)
            }
        }
    }

    /// After the server refused `rejected`: a renewed token to retry with, or None when
    /// there is nothing to renew (a static token).
    pub fn after_rejection(&self, http: &Http, rejected: &str) -> Result<Option<String>> {
        match self {
            TokenSource::Static(_) => Ok(None),
            TokenSource::Store {
                store,
                api_base,
                cached,
                ..
            } => {
                let renewer = Renewer {
                    api_base,
                    client_secret: None,
                };
                let token = store.renew_after_rejection(http, rejected, &renewer)?;
                let access = token.access_token.clone();
                *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
                Ok(Some(access))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    impl TokenStore {
        fn lock(&self) -> Result<File> {
            super::lock(&self.target()?)
        }

        fn lock_path(&self) -> PathBuf {
            super::lock_path(&self.target().unwrap())
        }
    }

    fn token(access: &str, expires_at: i64) -> Token {
        Token {
            access_token: access.into(),
            token_type: "Bearer".into(),
            expires_at,
            refresh_token: Some("refresh-1234567".into()),
            client_id: Some("c".into()),
            base_url: Some("http://127.0.0.1:1".into()),
            extra: Map::new(),
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("coze-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
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
    fn a_fresh_token_is_returned_without_any_request() {
        let dir = tmpdir("fresh");
        let store = TokenStore::new(dir.join("t.json"));
        store
            .save(&token("czu_valid_token", unix_now() + 900))
            .unwrap();
        // An HTTP client pointed nowhere: any request would fail the test.
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let t = store
            .fresh(
                &http,
                120,
                &Renewer {
                    api_base: "http://127.0.0.1:1",
                    client_secret: None,
                },
            )
            .unwrap();
        assert_eq!(t.access_token, "czu_valid_token");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_margin_scales_with_a_short_lifetime() {
        let mut t = token("czu_a", 1);
        assert_eq!(renew_margin(&t, 120), 120, "no recorded lifetime");
        for (lifetime, margin) in [
            (900, 120),
            (480, 120),
            (400, 100),
            (60, 15),
            (6, 1),
            (0, 120),
        ] {
            t.extra.insert(oauth::LIFETIME.into(), lifetime.into());
            assert_eq!(renew_margin(&t, 120), margin, "lifetime {lifetime}");
        }
        // A 6 s token with 3 s left is used as is: no request (the HTTP client points
        // nowhere), where a fixed 120 s margin would renew it on every use.
        let dir = tmpdir("margin");
        let store = TokenStore::new(dir.join("t.json"));
        let mut short = token("czu_short_token", unix_now() + 3);
        short.extra.insert(oauth::LIFETIME.into(), 6.into());
        store.save(&short).unwrap();
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let renewer = Renewer {
            api_base: "http://127.0.0.1:1",
            client_secret: None,
        };
        let got = store
            .fresh_with(&http, |t| renew_margin(t, 120), &renewer)
            .unwrap();
        assert_eq!(got.access_token, "czu_short_token");
        assert!(
            store.fresh(&http, 120, &renewer).is_err(),
            "an exact margin renews"
        );
        let _ = fs::remove_dir_all(dir);
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

    #[test]
    fn private_files_must_not_be_open_to_others() {
        let dir = tmpdir("private");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        fs::write(&path, "secret\n").unwrap();
        for (mode, who) in [
            (0o644, "readable"),
            (0o640, "readable"),
            (0o620, "accessible"),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = read_private_file(&path, "key file").unwrap_err();
            assert_eq!(e.exit_code(), 4);
            let p = path.display();
            assert_eq!(
                e.to_string(),
                format!("key file {p} is {who} by others (mode {mode:04o}): chmod 600 {p}")
            );
        }
        for mode in [0o600, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private_file(&path, "key file").unwrap(), "secret\n");
        }
        let e = read_private_file(&dir.join("none"), "key file").unwrap_err();
        assert!(e.to_string().starts_with("reading the key file: "), "{e}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn renewable_knows_jwt_and_refresh_tokens() {
        let mut t = token("czu_a", 1);
        assert!(renewable(&t));
        t.refresh_token = None;
        assert!(!renewable(&t));
        t.extra.insert("grant".into(), "jwt".into());
        assert!(!renewable(&t), "a jwt record without key_file and kid");
        t.extra.insert("key_file".into(), "/k.pem".into());
        t.extra.insert("kid".into(), "kid".into());
        assert!(renewable(&t));
        assert_eq!(client_secret_file(&t), None);
        t.extra.insert("client_secret_file".into(), "/s".into());
        assert_eq!(client_secret_file(&t), Some(PathBuf::from("/s")));
    }

    #[test]
    fn a_token_source_reads_the_file_once_while_the_token_is_fresh() {
        let dir = tmpdir("source-cache");
        let store = TokenStore::new(dir.join("t.json"));
        store
            .save(&token("czu_cached_token", unix_now() + 900))
            .unwrap();
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let source = TokenSource::store(store.clone(), 120, "http://127.0.0.1:1".into(), None);
        assert_eq!(source.current(&http).unwrap(), "czu_cached_token");
        // The file changes under us: the fresh token in memory is still used...
        fs::write(store.path(), "not a token").unwrap();
        assert_eq!(source.current(&http).unwrap(), "czu_cached_token");
        // ...until it is within its margin; then the file is read again.
        let stale = TokenSource::store(
            store,
            120,
            "http://127.0.0.1:1".into(),
            Some(token("czu_old", unix_now() + 30)),
        );
        let e = stale.current(&http).unwrap_err();
        assert!(e.to_string().contains("is not a token file"), "{e}");
        let _ = fs::remove_dir_all(dir);
    }
}
