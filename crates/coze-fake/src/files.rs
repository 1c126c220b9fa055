//! Files: `POST /v1/files/upload` and `GET /v1/files/retrieve` (Coze API docs pages
//! `upload_files` and `retrieve_files`; coze-py `cozepy/files/__init__.py`, coze-go
//! `files.go`), and Studio's upload (`backend/application/upload/icon.go`
//! `UploadFileOpen` in coze-dev/coze-studio). The body is read as it streams: each file
//! part is hashed (SHA-256) and counted slice by slice and its content dropped, so an
//! upload of any size costs a 64 KiB buffer. What is kept per file is its id, name,
//! size, hash, part Content-Type, time and uploader (`state::StoredFile`).
//!
//! The fake's choices where the real servers' are not documented: a malformed multipart
//! body answers code 4000 (coze) or Studio's bind error (HTTP 400, code 400) naming the
//! fault; over the limit, coze answers code 4000 and Studio its server's HTTP 413, and
//! the rest of the body is not read (the connection then ends); a `file` part needs a
//! filename, as Go's `multipart.Form.File` and the SDKs' uploads have one.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{Action, Body, Reply, Request};
use crate::multipart::{self, MpError, Multipart};
use crate::router::{err, err_status, Ctx};
use crate::state::StoredFile;
use crate::{App, Dialect};

/// coze.cn's limit of one file's content (`upload_files`: 512 MB).
pub const COZE_LIMIT: u64 = 512 << 20;
/// Studio's request body limit (`backend/main.go`: `server.WithMaxRequestBodySize`).
pub const STUDIO_LIMIT: u64 = 200 << 20;
/// Studio's errno for an upload without a file (`ErrUploadEmptyFile`).
pub const STUDIO_NO_FILE: i64 = 104_000_006;
/// Studio's errno for an upload of several files (`ErrUploadMultipleFiles`).
pub const STUDIO_MANY_FILES: i64 = 104_000_007;

/// The owner of what `req` uploads: the account behind its bearer. Each static token
/// (`--pat`) is an account of its own; every token the fake's OAuth grants issue is its
/// one OAuth user's, so a refreshed token still finds the files the old one uploaded,
/// as the real API keeps files with the account, not the token.
pub fn owner(app: &App, req: &Request) -> String {
    let h = req.header("authorization").unwrap_or("");
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .unwrap_or(h)
        .trim();
    if app.opts.static_tokens.iter().any(|t| t == token) {
        format!("pat:{token}")
    } else {
        "oauth-user".to_string()
    }
}

/// The `data` object of `f` in `dialect`'s shape.
pub fn data_json(app: &App, f: &StoredFile) -> Value {
    match app.opts.dialect {
        Dialect::Coze => json!({
            "id": f.id,
            "bytes": f.bytes,
            "created_at": f.created_at,
            "file_name": f.file_name,
        }),
        Dialect::Studio => json!({
            "id": f.id,
            "uri": format!("fake_files/{}", f.id),
            "url": format!("{}/_fake/files/{}", app.base_url, f.id),
            "bytes": f.bytes,
            "file_name": f.file_name,
            "CreatedAt": f.created_at,
        }),
    }
}

/// `GET /_fake/files`: every upload, oldest first.
pub fn admin_list(app: &App) -> Value {
    let st = app.lock();
    json!({"files": st.files.iter().map(StoredFile::admin_json).collect::<Vec<_>>()})
}

/// `GET /_fake/files/ID`: one upload's record (what the Studio dialect's `url` points
/// at: the fake keeps no content to serve).
pub fn admin_one(app: &App, id: &str) -> Option<Value> {
    let st = app.lock();
    st.files
        .iter()
        .find(|f| f.id == id)
        .map(StoredFile::admin_json)
}

/// One `file` part as received.
struct Received {
    file_name: String,
    content_type: String,
    bytes: u64,
    sha256: String,
}

/// How reading the form ended.
enum Outcome {
    /// The whole form was read.
    Read,
    /// It breaks the multipart framing, or the body ended early: why.
    Malformed(String),
    /// A file's content went over the coze limit.
    FileTooLarge,
    /// The body reached its cap: a `cut_upload` fault's point, or Studio's body limit.
    Cut,
}

/// A body that stops at `cap` bytes: `limit` past which the body is too large, or the
/// point where a `cut_upload` fault hangs up; read at most `rate` bytes a second (a
/// `slow_upload` fault: a slow link, so that an upload takes a while).
struct Capped<'a, 'b> {
    body: &'a mut Body<'b>,
    cap: u64,
    hit: bool,
    rate: Option<(u64, Instant)>,
}

impl Read for Capped<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.cap.saturating_sub(self.body.read);
        if left == 0 && !buf.is_empty() {
            self.hit = true;
            return Err(io::Error::other("capped"));
        }
        let mut n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some((rate, since)) = self.rate {
            // Slices of a twentieth of a second's worth, each read once its time came.
            n = n.min(usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1));
            let due = Duration::from_secs_f64(self.body.read as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(since.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        self.body.read(&mut buf[..n])
    }
}

/// Read the form from `body`: the `file` parts hashed and counted, other parts skipped.
/// `file_limit` caps each file's content, `cap` the raw body.
fn read_form(
    body: &mut Body<'_>,
    boundary: &str,
    file_limit: Option<u64>,
    cap: Option<u64>,
    rate: Option<u64>,
    counted: &mut u64,
) -> (Vec<Received>, Outcome) {
    let mut capped = Capped {
        body,
        cap: cap.unwrap_or(u64::MAX),
        hit: false,
        rate: rate.map(|r| (r.max(1), Instant::now())),
    };
    let mut files = Vec::new();
    let mut over = false;
    let mut m = Multipart::new(&mut capped, boundary);
    let result = (|| -> Result<(), MpError> {
        while let Some(head) = m.next_part()? {
            let is_file = head.name.as_deref() == Some("file") && head.filename.is_some();
            if !is_file {
                continue;
            }
            let mut hasher = Sha256::new();
            let mut bytes = 0u64;
            let res = m.read_part(&mut |slice| {
                bytes += slice.len() as u64;
                *counted += slice.len() as u64;
                if file_limit.is_some_and(|l| bytes > l) {
                    over = true;
                    return Err(MpError::Stopped);
                }
                hasher.update(slice);
                Ok(())
            });
            res?;
            files.push(Received {
                file_name: head.filename.unwrap_or_default(),
                content_type: head.content_type.unwrap_or_default(),
                bytes,
                sha256: hex(&hasher.finalize()),
            });
        }
        Ok(())
    })();
    drop(m);
    // The epilogue, up to the body's declared end: read and dropped, so that a body
    // shorter than declared is caught and the connection can serve the next request.
    let result = result.and_then(|()| {
        io::copy(&mut capped, &mut io::sink())
            .map(|_| ())
            .map_err(MpError::Io)
    });
    let outcome = match result {
        Ok(()) => Outcome::Read,
        Err(_) if over => Outcome::FileTooLarge,
        Err(_) if capped.hit => Outcome::Cut,
        Err(MpError::Malformed(why)) => Outcome::Malformed(why),
        Err(MpError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Outcome::Malformed("the request body ended before its declared length".into())
        }
        Err(MpError::Io(e)) => Outcome::Malformed(format!("reading the request body: {e}")),
        Err(MpError::Stopped) => Outcome::Malformed("stopped".into()),
    };
    (files, outcome)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /v1/files/upload`, its body unread in `body`. Authentication first (nothing is
/// read for a refused token), then the form, then the queued fault, then the answer.
pub fn upload(app: &Arc<App>, req: &Request, body: &mut Body<'_>, ctx: &mut Ctx) -> Action {
    let studio = app.opts.dialect == Dialect::Studio;
    if studio {
        if let Some(reason) = crate::router::studio::pat_failure(app, req) {
            return Action::Reply(crate::router::studio::auth_failed(reason));
        }
    } else if !crate::router::bearer_ok(app, req) {
        return Action::Reply(err_status(ctx, 401, 4100, "authentication is invalid"));
    }
    let fault = ctx.fault_type().to_string();
    if fault == "reset" {
        return Action::Reset;
    }
    let limit = app.opts.max_upload_bytes;
    // Studio refuses a declared body over its limit before reading any of it.
    let body_limit = studio.then(|| limit.unwrap_or(STUDIO_LIMIT));
    if let (Some(l), Some(n)) = (body_limit, body.declared_len()) {
        if n > l {
            return Action::Reply(too_large());
        }
    }
    let boundary = match multipart::boundary(req.header("content-type")) {
        Ok(b) => b,
        Err(why) => return Action::Reply(malformed(ctx, studio, &why)),
    };
    let cut_at = (fault == "cut_upload").then(|| {
        ctx.fault
            .as_ref()
            .and_then(|f| f.get("after_bytes"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| body.declared_len().map_or(64 << 10, |n| n / 2))
    });
    let cap = match (cut_at, body_limit) {
        (Some(c), _) => Some(c),
        (None, Some(l)) => Some(l),
        (None, None) => None,
    };
    let file_limit = (!studio).then(|| limit.unwrap_or(COZE_LIMIT));
    let mut counted = 0;
    let rate = (fault == "slow_upload").then(|| {
        ctx.fault
            .as_ref()
            .and_then(|f| f.get("bytes_per_s"))
            .and_then(Value::as_u64)
            .unwrap_or(1 << 20)
    });
    let (files, outcome) = read_form(body, &boundary, file_limit, cap, rate, &mut counted);
    app.lock().stats.upload_bytes += counted;
    match outcome {
        Outcome::Cut if cut_at.is_some() => return Action::Reset,
        // The cap was Studio's body limit.
        Outcome::Cut => return Action::Reply(too_large()),
        Outcome::FileTooLarge => {
            let l = file_limit.unwrap_or(COZE_LIMIT);
            return Action::Reply(err(
                ctx,
                4000,
                &format!("the file is larger than the upload limit of {l} bytes"),
            ));
        }
        Outcome::Malformed(why) => return Action::Reply(malformed(ctx, studio, &why)),
        Outcome::Read => {}
    }
    if cut_at.is_some() {
        // The body was shorter than where the fault would cut: hang up all the same.
        return Action::Reset;
    }
    // Faults that replace the answer fire once the upload has been received, as a
    // server failing after it took the file.
    if let Some(a) = crate::faults::pre_handler(ctx, "files.upload") {
        return a;
    }
    let file =
        match (files.len(), studio) {
            (0, false) => return Action::Reply(err(
                ctx,
                4000,
                "missing required field: file (a multipart part named \"file\" with a filename)",
            )),
            (0, true) => {
                return Action::Reply(crate::router::studio::business(
                    STUDIO_NO_FILE,
                    "no file uploaded: the form has no part named \"file\"",
                ))
            }
            (1, _) | (_, false) => &files[0],
            (_, true) => {
                return Action::Reply(crate::router::studio::business(
                    STUDIO_MANY_FILES,
                    "only one file may be uploaded at a time",
                ))
            }
        };
    let stored = StoredFile {
        id: crate::util::new_id(),
        file_name: file.file_name.clone(),
        bytes: file.bytes,
        sha256: file.sha256.clone(),
        content_type: file.content_type.clone(),
        created_at: crate::util::now_s(),
        owner: owner(app, req),
    };
    let data = data_json(app, &stored);
    app.lock().files.push(stored);
    crate::faults::post_handler(app, ctx, crate::router::ok(ctx, data))
}

/// A body over the limit: coze's documented 4000 is answered by the caller; this is
/// the HTTP 413 of Studio's server (Hertz), plain text.
fn too_large() -> Reply {
    Reply::new(413, "text/plain; charset=utf-8", "Request Entity Too Large")
}

fn malformed(ctx: &Ctx, studio: bool, why: &str) -> Reply {
    let msg = format!("invalid multipart/form-data body: {why}");
    if studio {
        crate::router::studio::bad_request(&msg)
    } else {
        err(ctx, 4000, &msg)
    }
}

/// `GET /v1/files/retrieve?file_id=ID` (coze only: Studio serves no such path).
pub fn retrieve(app: &Arc<App>, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(id) = req.query("file_id").filter(|s| !s.is_empty()) else {
        return err(ctx, 4000, "missing required parameter: file_id");
    };
    let owner = owner(app, req);
    let found = app.lock().file(id, &owner).cloned();
    match found {
        Some(f) => crate::router::ok(ctx, data_json(app, &f)),
        None => err(
            ctx,
            4000,
            &format!("file not found: the file {id} does not exist"),
        ),
    }
}
