//! Files: upload one (`POST /v1/files/upload`, the Coze API docs `upload_files`) and
//! retrieve what the server knows of one (`GET /v1/files/retrieve`, `retrieve_files`).
//!
//! The upload is a `multipart/form-data` body with the file in the part named `file`,
//! streamed from its source (`wire::multipart`) and opened again for every attempt,
//! so a retry sends the whole file again and no attempt holds it in memory.
//!
//! Both dialects' answers become one [`FileInfo`]: coze.cn's `data` carries
//! `created_at`; a self-hosted Coze Studio's carries `CreatedAt` (the Go field name of
//! its response struct, coze-dev/coze-studio `backend/api/model`) and a `url`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use super::client::{offered, Client};
use crate::error::{Error, Result};
use crate::http::{Dialect, OpenBody, Request, Upload};
use crate::wire::jsonl::size;
use crate::wire::multipart::{self, Multipart};

/// What the server says of one uploaded file, in either dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The file's id, for `object_string` messages (`file_id`).
    pub id: String,
    /// The name the server stored (the part's filename).
    pub file_name: String,
    /// Its size in bytes, as the server counted it.
    pub bytes: u64,
    /// When it was uploaded (Unix s); 0 when the answer does not say.
    pub created_at: i64,
    /// Where the server serves it, when it says (a self-hosted Coze Studio does).
    pub url: Option<String>,
}

impl FileInfo {
    /// The file object of an answer's `data`, in either dialect; a `data` without an
    /// id is the server's fault (`Error::Protocol`).
    pub fn from_data(data: &Value) -> Result<FileInfo> {
        let id = match data.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(Error::Protocol(format!(
                    "the file answer has no id: {}",
                    crate::support::redact::scrub(&data.to_string())
                )))
            }
        };
        let int = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(FileInfo {
            id,
            file_name: data
                .get("file_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            bytes: int(data.get("bytes"))
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            created_at: int(data.get("created_at"))
                .or_else(|| int(data.get("CreatedAt")))
                .unwrap_or(0),
            url: data
                .get("url")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }
}

/// A file to upload: its name, its length, its first bytes (for its type), and how
/// to open it from its start (called once per attempt).
pub struct FileSource<'a> {
    /// The name sent as the part's filename (bytes: a name need not be UTF-8).
    pub name: Vec<u8>,
    /// Its exact length in bytes, checked by the caller.
    pub length: u64,
    /// Its first bytes (up to 16 are enough), from which its type is decided.
    pub head: Vec<u8>,
    /// Opens it from its start; each attempt sends what this returns.
    pub open: &'a OpenBody<'a>,
    /// It as the user named it (a path): a failure to read it mid-upload (it shrank,
    /// or the disk failed) is `Error::Io` on this name, exit 8, and is not sent again.
    pub shown: String,
}

impl Client<'_> {
    /// Uploads `file` (`POST /v1/files/upload`) and returns what the server says of it.
    pub fn upload_file(&self, file: &FileSource<'_>) -> Result<FileInfo> {
        let boundary =
            Multipart::random_boundary().map_err(|e| Error::io("the random source", e))?;
        let part_type = multipart::content_type(&file.head, &file.name);
        let framing = Multipart::new(&boundary, "file", &file.name, part_type, file.length);
        let open =
            || -> Result<Box<dyn Read + Send>> { Ok(Box::new(framing.body((file.open)()?))) };
        let upload = Upload {
            content_type: framing.content_type(),
            length: framing.content_length(),
            open: &open,
            source: file.shown.clone(),
        };
        let url = self.url("/v1/files/upload", &[]);
        let (body, _logid) = self
            .authed(|token| {
                let req = Request {
                    method: "POST",
                    url: url.clone(),
                    bearer: Some(token),
                    body: None,
                    retry_busy: false,
                    once: false,
                    acts_once: false,
                };
                self.http.upload(&req, &upload, Dialect::Envelope)
            })
            .map_err(|e| offered(e, "POST", &url))?;
        FileInfo::from_data(&Self::data(body))
    }

    /// What the server knows of the file `id` (`GET /v1/files/retrieve`).
    pub fn retrieve_file(&self, id: &str) -> Result<FileInfo> {
        let url = self.url("/v1/files/retrieve", &[("file_id", id)]);
        let body = self.call("GET", &url, None, false)?;
        FileInfo::from_data(&Self::data(body))
    }
}

/// The API's limit on one file (the Coze API docs, `upload_files`: 512 MB); a
/// self-hosted Coze Studio takes at most a 200 MiB request body.
pub const MAX_UPLOAD: u64 = 512 << 20;

/// How big an upload may be, and what sets that limit (named in a refusal, so the
/// person knows what to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The most bytes a file may have.
    pub bytes: u64,
    /// What sets it: `--max-bytes`, or the API.
    pub set_by: &'static str,
}

impl Limit {
    /// The API's own limit, [`MAX_UPLOAD`].
    pub const API: Limit = Limit {
        bytes: MAX_UPLOAD,
        set_by: "the API's limit",
    };
}

/// A local file checked for an upload. It is not kept open: each attempt of the
/// upload opens it again (a retry sends the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Its length in bytes.
    pub length: u64,
    /// Its first bytes (up to 16), which decide its type.
    pub head: Vec<u8>,
}

/// Checks `path` for an upload: a regular, readable, non-empty file within `limit`;
/// its length and first bytes, else why not, in words. Its type is asked before
/// it is opened, since opening a FIFO would wait for a writer.
pub fn inspect(path: &Path, limit: Limit) -> std::result::Result<LocalFile, String> {
    let cannot_read = |e: io::Error| format!("cannot read it: {e}");
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => cannot_read(e),
    })?;
    if meta.is_dir() {
        return Err("is a directory, not a file".into());
    }
    if !meta.is_file() {
        return Err(
            "is not a regular file (a FIFO, socket or device has no size to send up front)".into(),
        );
    }
    let file = File::open(path).map_err(cannot_read)?;
    // The file as opened: it may have been replaced since it was looked at.
    let meta = file.metadata().map_err(cannot_read)?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    within(meta.len(), limit)?;
    let head = head(&file).map_err(cannot_read)?;
    Ok(LocalFile {
        length: meta.len(),
        head,
    })
}

/// The first bytes of `file` (up to 16: enough for every type [`multipart::content_type`]
/// knows), read without moving its offset.
pub fn head(file: &File) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 16];
    let n = file.read_at(&mut head, 0)?;
    Ok(head[..n].to_vec())
}

/// A length that can be uploaded: not empty (the API refuses an empty file), within
/// `limit`.
pub fn within(length: u64, limit: Limit) -> std::result::Result<(), String> {
    if length == 0 {
        return Err("is empty (the API takes no empty file)".into());
    }
    if length > limit.bytes {
        return Err(format!(
            "is {length} bytes, over the limit of {} ({})",
            size(limit.bytes),
            limit.set_by
        ));
    }
    Ok(())
}

/// Whether a file whose first bytes are `head` and whose name is `name` is an image
/// (a chat sends it as an `image` part, else a `file` part): its content first, then
/// its extension, as the upload's part type is decided.
pub fn is_image(head: &[u8], name: &[u8]) -> bool {
    multipart::content_type(head, name).starts_with("image/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_dialects_make_one_record() {
        let coze = json!({"id":"7380","bytes":12,"created_at":1715847583,"file_name":"a.png"});
        let f = FileInfo::from_data(&coze).unwrap();
        assert_eq!(
            f,
            FileInfo {
                id: "7380".into(),
                file_name: "a.png".into(),
                bytes: 12,
                created_at: 1715847583,
                url: None,
            }
        );
        let studio = json!({"id":"7381","uri":"u","url":"http://s/f","bytes":"12",
            "file_name":"a.png","CreatedAt":1715847584});
        let f = FileInfo::from_data(&studio).unwrap();
        assert_eq!((f.created_at, f.bytes), (1715847584, 12));
        assert_eq!(f.url.as_deref(), Some("http://s/f"));
        let numeric = json!({"id":7382});
        assert_eq!(FileInfo::from_data(&numeric).unwrap().id, "7382");
    }

    #[test]
    fn an_answer_without_an_id_is_the_servers_fault() {
        let e = FileInfo::from_data(&json!({"bytes":1})).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("no id"), "{e}");
        assert!(FileInfo::from_data(&Value::Null).is_err());
    }

    #[test]
    fn lengths_outside_the_limits_are_refused_in_words() {
        let limit = Limit {
            bytes: 10,
            set_by: "--max-bytes",
        };
        assert!(within(0, limit).unwrap_err().contains("empty"));
        assert_eq!(
            within(11, limit).unwrap_err(),
            "is 11 bytes, over the limit of 10 bytes (--max-bytes)"
        );
        assert!(within(10, limit).is_ok());
    }

    #[test]
    fn images_by_content_then_name() {
        assert!(is_image(b"\x89PNG\r\n\x1a\n....", b"scan.bin"));
        assert!(is_image(b"", b"photo.JPG"));
        assert!(!is_image(b"%PDF-1.7", b"looks.png"));
        assert!(!is_image(b"", b"notes.txt"));
    }
}
