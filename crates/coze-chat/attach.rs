//! A prompt's attachments made the parts of its message (the Coze API docs, `chat_v3`,
//! "object_string object"): a local path is uploaded (`POST /v1/files/upload`) once per
//! run however many prompts carry it, and every prompt after the first that names it
//! sends the same file id; a `file_id` or a `file_url` is sent as given. Image or file
//! is told from the content (magic bytes), then the name.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use coze_core::api::files::{self, FileSource};
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

/// The uploads of a run, by path: each path's slot is locked while it uploads, so two
/// jobs wanting the same file upload it once.
#[derive(Default)]
pub struct Uploads {
    by_path: Mutex<HashMap<String, Arc<Mutex<Option<Sent>>>>>,
}

impl Uploads {
    /// The parts of `list`, uploading the paths not sent yet in this run.
    pub fn send(&self, client: &Client<'_>, list: &[Attachment]) -> Result<Vec<Sent>> {
        list.iter().map(|a| self.one(client, a)).collect()
    }

    fn one(&self, client: &Client<'_>, a: &Attachment) -> Result<Sent> {
        if let Some(path) = &a.path {
            let slot = {
                let mut all = self.by_path.lock().unwrap_or_else(|p| p.into_inner());
                all.entry(path.clone()).or_default().clone()
            };
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(sent) = &*slot {
                return Ok(sent.clone());
            }
            let sent = upload(client, path)?;
            *slot = Some(sent.clone());
            return Ok(sent);
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

/// Uploads the file at `path`, checked first as coze-file checks it.
fn upload(client: &Client<'_>, path: &str) -> Result<Sent> {
    let bad = |message: String| Error::BadFile {
        path: path.to_owned(),
        message,
    };
    let (file, length) = files::inspect(Path::new(path), files::MAX_UPLOAD).map_err(bad)?;
    let mut head = Vec::with_capacity(16);
    use std::io::Read;
    (&file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    let name = Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned());
    let open = || -> Result<Box<dyn std::io::Read + Send>> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Box::new(f))
    };
    let source = FileSource {
        name: name.as_bytes().to_vec(),
        length,
        head: head.clone(),
        open: &open,
        shown: path.to_owned(),
    };
    let info = client
        .upload_file(&source)
        .map_err(|e| e.context(format!("uploading {path}")))?;
    Ok(Sent {
        part: json!({ "type": kind(&head, &name), "file_id": info.id }),
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
