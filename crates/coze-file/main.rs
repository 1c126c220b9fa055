//! coze-file: files to the Coze API's file store, and back as records. A translator:
//! flags → session → the files checked → coze-core's batch engine running coze-file's
//! task (`Uploads`: each PATH an item, uploaded with `api::Client::upload_file`) →
//! `file` records on stdout → exit code.
//!
//! What it is not: a store of its own or a downloader (the API serves no content back),
//! nor an attacher of files to chats (coze-chat's business). Every record comes from
//! one API answer, and a file is reported as uploaded only once the server says so.

mod flags;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coze_core::api::files::{self, Limit};
use coze_core::api::{Client, FileInfo, FileSource};
use coze_core::batch::{self, Bad, Batch, Item, Outcome, Task};
use coze_core::cli;
use coze_core::cli::batch::{Report, Summary};
use coze_core::cli::flags::API_FLAGS_HELP;
use coze_core::cli::session::Session;
use coze_core::config::Env;
use coze_core::error::EXIT_CODES_HELP;
use coze_core::wire::jsonl::{size, JsonlWriter};
use coze_core::{Error, Result};
use serde_json::{Map, Value};

use flags::{Command, Flags};

const TOOL: &str = "coze-file";

/// Uploads smaller than this finish before a progress line would tell anything.
const PROGRESS_FROM: u64 = 4 << 20;

fn main() -> ExitCode {
    cli::main(
        TOOL,
        option_env!("COZE_GIT_COMMIT"),
        &[
            flags::HELP,
            API_FLAGS_HELP,
            "\n\n",
            flags::EXAMPLES,
            EXIT_CODES_HELP,
        ],
        || flags::parse(std::env::args_os().skip(1)),
        |f| run(f, &Env::from_process()),
    )
}

fn run(f: Flags, env: &Env) -> Result<u8> {
    let started = Instant::now();
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    match &f.command {
        Command::Get(ids) => get(&client, ids),
        Command::Upload(paths) => {
            // --max-bytes is the limit, and what moves it.
            let limit = Limit {
                bytes: f.max_bytes,
                set_by: "--max-bytes",
            };
            let items = paths
                .iter()
                .map(|p| check(p, f.name.as_deref(), limit, env))
                .collect::<Result<Vec<_>>>()?;
            let uploads = Uploads {
                client: &client,
                progress: f.jobs == 1 && coze_core::support::say::stderr_is_terminal(),
                cancelled: AtomicBool::new(false),
            };
            let options = batch::Options {
                jobs: f.jobs,
                ordered: false,
                // A file that fails its checks does not stop the others.
                keep_going: true,
                done: Default::default(),
            };
            let batchy = f.jobs > 1 || f.api.rate.is_some();
            cli::batch::run(
                TOOL,
                &session,
                Batch::new(&uploads, options),
                Report {
                    started,
                    watch_stdout: true,
                    summary: Summary::choose(f.summary, batchy),
                    // Each big upload shows its own progress line.
                    progress: None,
                },
                |batch| batch.run(items, io::stdout()),
            )
        }
    }
}

/// `get`: each id's record, in order; an id the server refuses is reported and the
/// others are still asked. The status is the first failure's.
fn get(client: &Client<'_>, ids: &[String]) -> Result<u8> {
    let mut out = JsonlWriter::new(io::stdout().lock());
    let mut status = 0;
    for id in ids {
        match client.retrieve_file(id) {
            Ok(info) => out
                .write(&record(&info, None, b""))
                .map_err(|e| Error::io("stdout", e))?,
            Err(e) => {
                let e = e.context(format!("retrieving file {id}"));
                cli::report(TOOL, &e);
                if status == 0 {
                    status = e.exit_code();
                }
            }
        }
    }
    Ok(status)
}

/// The `file` record of `info`; `path` as the user gave it, for an upload.
fn record(info: &FileInfo, path: Option<&str>, sent_name: &[u8]) -> Value {
    let mut r = Map::new();
    r.insert("type".into(), "file".into());
    r.insert("file_id".into(), info.id.clone().into());
    let name = if info.file_name.is_empty() {
        String::from_utf8_lossy(sent_name).into_owned()
    } else {
        info.file_name.clone()
    };
    r.insert("file_name".into(), name.into());
    r.insert("bytes".into(), info.bytes.into());
    r.insert("created_at".into(), info.created_at.into());
    if let Some(p) = path {
        r.insert("path".into(), p.into());
    }
    if let Some(u) = &info.url {
        r.insert("url".into(), u.clone().into());
    }
    Value::Object(r)
}

// --- the files, checked

/// Where an upload's bytes come from.
enum Source {
    /// A regular file, opened again for each attempt.
    Path(PathBuf),
    /// Stdin spooled to a temp file already unlinked (nothing left behind, whatever
    /// ends the run), read from its start for each attempt.
    Spool(Arc<File>),
}

/// One file to upload, checked.
struct Upload {
    /// The PATH as given, lossily as text.
    shown: String,
    source: Source,
    /// The name sent as the part's filename.
    name: Vec<u8>,
    length: u64,
    head: Vec<u8>,
}

impl Item for Upload {
    fn id(&self) -> Value {
        self.shown.clone().into()
    }

    fn key(&self) -> Option<&str> {
        None
    }
}

/// `arg` as an item, or the one-line reason it cannot be uploaded (exit 3). `Err` is
/// for what ends the run before anything is sent (stdin could not be spooled).
fn check(
    arg: &OsString,
    name: Option<&str>,
    limit: Limit,
    env: &Env,
) -> Result<std::result::Result<Upload, Bad>> {
    let shown = arg.to_string_lossy().into_owned();
    let bad = |message: String| {
        Ok(Err(Bad {
            error: Error::BadFile {
                path: shown.clone(),
                message,
            },
            text: Some(shown.clone()),
            id: Some(shown.clone().into()),
            fatal: false,
        }))
    };
    if arg == "-" {
        let name = name.expect("flags: - is refused without --name");
        let (file, length) = match spool(env, limit)? {
            Ok(spooled) => spooled,
            Err(why) => return bad(why),
        };
        let head = files::head(&file).map_err(|e| Error::io("the stdin spool", e))?;
        return Ok(Ok(Upload {
            shown,
            source: Source::Spool(Arc::new(file)),
            name: name.as_bytes().to_vec(),
            length,
            head,
        }));
    }
    let path = PathBuf::from(arg);
    let local = match files::inspect(&path, limit) {
        Ok(local) => local,
        Err(why) => return bad(why),
    };
    let name = match name {
        Some(n) => n.as_bytes().to_vec(),
        None => match path.file_name() {
            Some(n) => n.as_bytes().to_vec(),
            None => return bad("has no file name (pass --name NAME)".into()),
        },
    };
    Ok(Ok(Upload {
        shown,
        source: Source::Path(path),
        name,
        length: local.length,
        head: local.head,
    }))
}

/// Stdin copied to a private (0600) temp file, unlinked at once, so a retry can send
/// it again: the file and its length, or why it cannot be uploaded (empty, over `max`:
/// reading stops there, so an endless stdin fills no disk).
fn spool(env: &Env, limit: Limit) -> Result<std::result::Result<(File, u64), String>> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = env.tmpdir.clone().unwrap_or_else(|| PathBuf::from("/tmp"));
    let suffix = coze_core::support::random::random_hex(8)
        .map_err(|e| Error::io("the random source", io::Error::other(e.to_string())))?;
    let path = dir.join(format!("coze-file-stdin-{suffix}"));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // Unlinked before a byte is written: no signal or crash can leave it behind.
    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    let copied =
        io::copy(&mut io::stdin().lock().take(limit.bytes + 1), &mut file).map_err(|e| match e
            .kind()
        {
            io::ErrorKind::StorageFull => Error::io(&dir, e),
            _ => Error::io("stdin", e),
        })?;
    if copied > limit.bytes {
        return Ok(Err(format!(
            "is over the limit of {} ({}); read no further",
            size(limit.bytes),
            limit.set_by
        )));
    }
    if let Err(why) = files::within(copied, limit) {
        return Ok(Err(why));
    }
    Ok(Ok((file, copied)))
}

/// A spooled file read from its start, without moving a shared offset.
struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

// --- the uploads, as a batch

/// coze-file's batch task: each item a file, uploaded and its record written.
struct Uploads<'a> {
    client: &'a Client<'a>,
    /// stderr is a terminal and one file is sent at a time: progress lines for big files.
    progress: bool,
    /// The run is being stopped: start no other upload.
    cancelled: AtomicBool,
}

impl Task for Uploads<'_> {
    type Item = Upload;
    const ITEMS: &'static str = "files";

    fn run<W: Write>(&self, item: &Upload, out: &mut W) -> Result<Outcome> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(Error::io(
                "stdout",
                io::Error::new(io::ErrorKind::BrokenPipe, "the run was stopped"),
            ));
        }
        let meter = (self.progress && item.length > PROGRESS_FROM)
            .then(|| Meter::new(&item.shown, item.length));
        let open = || -> Result<Box<dyn Read + Send>> {
            let reader: Box<dyn Read + Send> = match &item.source {
                Source::Path(p) => Box::new(File::open(p).map_err(|e| Error::io(p, e))?),
                Source::Spool(f) => Box::new(At {
                    file: Arc::clone(f),
                    pos: 0,
                }),
            };
            Ok(match &meter {
                Some(m) => Box::new(m.reader(reader)),
                None => reader,
            })
        };
        let source = FileSource {
            name: item.name.clone(),
            length: item.length,
            head: item.head.clone(),
            open: &open,
            shown: match &item.source {
                Source::Path(_) => item.shown.clone(),
                Source::Spool(_) => "the stdin spool".into(),
            },
        };
        let sent = self.client.upload_file(&source);
        if let Some(m) = &meter {
            m.clear();
        }
        match sent {
            Ok(info) => {
                let mut w = JsonlWriter::new(&mut *out);
                w.write(&record(&info, Some(&item.shown), &item.name))
                    .map_err(|e| Error::io("stdout", e))?;
                Ok(Outcome::completed(0))
            }
            Err(e) => Ok(Outcome {
                error: Some(e.context(format!("uploading {}", item.shown))),
                status: "failed".into(),
                tokens: 0,
            }),
        }
    }

    fn invalid<W: Write>(&self, _bad: &Bad, _out: &mut W) -> io::Result<()> {
        // A file that failed its checks has no record: its line on stderr says it.
        Ok(())
    }

    fn report(&self, error: &Error) {
        cli::report(TOOL, error);
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

// --- progress on a terminal

/// The progress of one upload on stderr: bytes sent, rate, time left, at most four
/// times a second; a retry starts it again from 0.
struct Meter {
    what: String,
    total: u64,
    sent: Arc<AtomicU64>,
    state: Arc<Mutex<(Instant, Instant)>>,
    shown: Arc<AtomicBool>,
}

impl Meter {
    fn new(what: &str, total: u64) -> Meter {
        let now = Instant::now();
        Meter {
            what: coze_core::support::say::visible(what).into_owned(),
            total,
            sent: Arc::new(AtomicU64::new(0)),
            state: Arc::new(Mutex::new((now, now))),
            shown: Arc::new(AtomicBool::new(false)),
        }
    }

    /// `inner` counted from its start (one attempt).
    fn reader(&self, inner: Box<dyn Read + Send>) -> Counted {
        self.sent.store(0, Ordering::Relaxed);
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), Instant::now());
        Counted {
            inner,
            what: self.what.clone(),
            total: self.total,
            sent: Arc::clone(&self.sent),
            state: Arc::clone(&self.state),
            shown: Arc::clone(&self.shown),
        }
    }

    /// Erases the line, if one was drawn.
    fn clear(&self) {
        if self.shown.swap(false, Ordering::SeqCst) {
            let _ = io::stderr().lock().write_all(b"\r\x1b[K");
        }
    }
}

/// A reader that counts what went through it and redraws the progress line.
struct Counted {
    inner: Box<dyn Read + Send>,
    what: String,
    total: u64,
    sent: Arc<AtomicU64>,
    /// When this attempt began, and when the line was last drawn.
    state: Arc<Mutex<(Instant, Instant)>>,
    shown: Arc<AtomicBool>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let sent = self.sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (began, drawn) = &mut *state;
        if drawn.elapsed() >= Duration::from_millis(250) {
            *drawn = Instant::now();
            let line = progress_line(&self.what, sent, self.total, began.elapsed());
            let _ = io::stderr().lock().write_all(line.as_bytes());
            self.shown.store(true, Ordering::SeqCst);
        }
        Ok(n)
    }
}

/// `\r` and the line: `report.pdf: 12.0 of 200.0 MiB (6%), 4.1 MiB/s, 46 s left`.
fn progress_line(what: &str, sent: u64, total: u64, took: Duration) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let rate = sent as f64 / took.as_secs_f64().max(0.001);
    let left = if rate > 0.0 {
        format!(
            "{} s left",
            ((total - sent.min(total)) as f64 / rate).ceil() as u64
        )
    } else {
        "time left unknown".into()
    };
    format!(
        "\r\x1b[K{what}: {:.1} of {:.1} MiB ({}%), {:.1} MiB/s, {left}",
        sent as f64 / MIB,
        total as f64 / MIB,
        sent.saturating_mul(100) / total.max(1),
        rate / MIB,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_says_bytes_rate_and_time_left() {
        let line = progress_line("a.iso", 50 << 20, 200 << 20, Duration::from_secs(10));
        assert_eq!(
            line,
            "\r\x1b[Ka.iso: 50.0 of 200.0 MiB (25%), 5.0 MiB/s, 30 s left"
        );
    }
}
