//! A prompt's attachments made the parts of its message (the Coze API docs, `chat_v3`,
//! "object_string object"): a local file is uploaded (`POST /v1/files/upload`) once per
//! run however many prompts carry it and however its path is spelled, and every prompt
//! after the first sends the same file id; a `file_id` or a `file_url` is sent as
//! given. Image or file is told from the content (magic bytes), then the name.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use coze_core::api::files::{self, FileSource, Limit};
use coze_core::api::Client;
use coze_core::protocol::Attachment;
use coze_core::{Error, Result};

/// One attachment as sent: its part of the message, and what the answer record lists.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `{"type":"image"|"file","file_id"|"file_url":…}`.
    pub part: Value,
    /// `{"file_id":…,"file_name":…}` (or `file_url`), for `-o answers`.
    pub listed: Value,
}

/// The uploads of a run, by file: each file's slot is locked while it uploads, so two
/// jobs wanting it upload it once. A file is known by its device and inode, so
/// `a.pdf`, `./a.pdf` and its absolute path are one upload; an upload that failed is
/// remembered too, so the prompts after it do not send it again.
#[derive(Default)]
pub struct Uploads {
    by_file: Mutex<HashMap<FileKey, Arc<Mutex<Option<Upload>>>>>,
}

/// A file's identity: its device and inode, or the path when it cannot be looked at
/// (its upload then fails with the reason).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    Inode(u64, u64),
    Path(PathBuf),
}

/// How a file's upload went: what to send, or why it failed (the first prompt got the
/// error itself).
type Upload = std::result::Result<Sent, String>;

impl Uploads {
    /// The parts of `list`, uploading the files not sent yet in this run.
    pub fn send(&self, client: &Client<'_>, list: &[Attachment]) -> Result<Vec<Sent>> {
        list.iter().map(|a| self.one(client, a)).collect()
    }

    fn one(&self, client: &Client<'_>, a: &Attachment) -> Result<Sent> {
        if let Some(path) = &a.path {
            let shown = &path.to_string_lossy().into_owned();
            let key = match std::fs::metadata(path) {
                Ok(m) => FileKey::Inode(m.dev(), m.ino()),
                Err(_) => FileKey::Path(path.clone()),
            };
            let slot = {
                let mut all = self.by_file.lock().unwrap_or_else(|p| p.into_inner());
                all.entry(key).or_default().clone()
            };
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(Ok(sent)) => return Ok(sent.clone()),
                Some(Err(why)) => {
                    return Err(Error::BadFile {
                        path: shown.clone(),
                        message: format!("its upload failed earlier in this run: {why}"),
                    })
                }
                None => {}
            }
            let outcome = upload(client, path, shown);
            *slot = Some(match &outcome {
                Ok(sent) => Ok(sent.clone()),
                Err(e) => Err(e.to_string()),
            });
            return outcome;
        }
        let name = a.file_name.as_deref();
        if let Some(id) = &a.file_id {
            let kind = kind(b"", name.unwrap_or_default());
            let mut listed = json!({ "file_id": id });
            if let Some(n) = name {
                listed["file_name"] = n.into();
            }
            return Ok(Sent {
                part: json!({ "type": kind, "file_id": id }),
                listed,
            });
        }
        let url = a.file_url.clone().unwrap_or_default();
        // The URL's path names the file: its extension says image or file.
        let path = url.split(['?', '#']).next().unwrap_or_default();
        let kind = kind(b"", name.unwrap_or(path));
        Ok(Sent {
            part: json!({ "type": kind, "file_url": url }),
            listed: json!({ "file_url": url }),
        })
    }
}

/// `image` or `file`, for a part.
fn kind(head: &[u8], name: &str) -> &'static str {
    if files::is_image(head, name.as_bytes()) {
        "image"
    } else {
        "file"
    }
}

/// Uploads the file at `path` (`shown` in messages), checked first as coze-file
/// checks it.
fn upload(client: &Client<'_>, path: &Path, shown: &str) -> Result<Sent> {
    let bad = |message: String| Error::BadFile {
        path: shown.to_owned(),
        message,
    };
    let local = files::inspect(path, Limit::API).map_err(bad)?;
    // The name as bytes: a name that is not UTF-8 goes up as it is, as coze-file's.
    let name_bytes = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| shown.as_bytes().to_vec());
    let name = String::from_utf8_lossy(&name_bytes).into_owned();
    let open = || -> Result<Box<dyn std::io::Read + Send>> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(shown, e))?;
        Ok(Box::new(f))
    };
    let source = FileSource {
        name: name_bytes,
        length: local.length,
        head: local.head.clone(),
        open: &open,
        shown: shown.to_owned(),
    };
    let info = client
        .upload_file(&source)
        .map_err(|e| e.context(format!("uploading {shown}")))?;
    Ok(Sent {
        part: json!({ "type": kind(&local.head, &name), "file_id": info.id }),
        listed: json!({ "file_id": info.id, "file_name": info.file_name }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name_when_there_is_no_content() {
        assert_eq!(kind(b"", "a.png"), "image");
        assert_eq!(kind(b"", "https://x.example/p/photo.jpeg"), "image");
        assert_eq!(kind(b"", "report.pdf"), "file");
        assert_eq!(kind(b"\xFF\xD8\xFF\xE0", "no-extension"), "image");
    }
}
