//! The records of chatting: a `conversation` (coze-conv's output, coze-chat's input)
//! and a `prompt`, with the API's limits on `meta_data` and the stable id of a prompt
//! that has none of its own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Extra;

/// A conversation, as coze-conv prints it and coze-chat reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The API's id of the conversation (the `id` of its conversation object).
    pub conversation_id: String,
    /// The bot it was created for, when known (coze-chat still asks `--bot`'s or the
    /// prompt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// The string pairs it was created with, as the API returns them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Value>,
    /// The section the bot's context starts at: a clear starts a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_section_id: Option<String>,
    /// The API's other fields (`name`, `creator_id`, …) and a script's own, kept.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One prompt for coze-chat, with what it overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// The question, as text.
    pub content: String,
    /// Echoed on every output line the prompt causes; any JSON value the script chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The conversation to ask in, instead of the run's current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The bot to ask, instead of `--bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    /// Who is asking, instead of `--user` and the profile's own user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Values for the bot prompt's `{{variables}}`, added to (and beating) `--var`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_variables: Option<Map<String, Value>>,
    /// String pairs for the chat's `meta_data`, within [`check_meta_data`]'s limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Map<String, Value>>,
    /// Files and images sent with the question: local paths (uploaded once per run),
    /// uploaded files' ids, or public URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Fields this version does not know (a `content_type` of `text` among them), kept.
    #[serde(flatten)]
    pub extra: Extra,
    /// Which occurrence of its content, among the prompts of its input without an id
    /// of their own, this one is (1 the first; 0 when nobody counted): the second
    /// gets a derived id of its own. Not part of the record.
    #[serde(skip)]
    pub occurrence: u32,
}

/// A file or an image a prompt carries: exactly one of `path`, `file_id` and
/// `file_url` says where it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Attachment {
    /// A local file, uploaded before the chat (once per run, however many prompts
    /// carry it). From `--attach` it may be any bytes; in a record, JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// A file uploaded already (coze-file's `file_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// A publicly reachable URL the server fetches itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// The file's name, which decides image or file for a `file_id` or `file_url`
    /// without content to look at (its extension); coze-file's records carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl Attachment {
    /// `--attach`'s value as given: a path that is not UTF-8 is kept as it is.
    pub fn from_os_flag(spec: std::ffi::OsString) -> Attachment {
        match spec.into_string() {
            Ok(s) => Attachment::from_flag(&s),
            Err(os) => Attachment {
                path: Some(os.into()),
                ..Attachment::default()
            },
        }
    }

    /// `--attach`'s forms: `file_id:ID`, an `http://` or `https://` URL, else a path.
    pub fn from_flag(spec: &str) -> Attachment {
        if let Some(id) = spec.strip_prefix("file_id:") {
            return Attachment {
                file_id: Some(id.to_owned()),
                ..Attachment::default()
            };
        }
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            return Attachment {
                file_url: Some(spec.to_owned()),
                ..Attachment::default()
            };
        }
        Attachment {
            path: Some(spec.into()),
            ..Attachment::default()
        }
    }

    /// Why this attachment says no place, or more than one, if it does.
    pub fn check(&self) -> Result<(), String> {
        let path = self.path.as_ref().map(|p| p.to_string_lossy());
        let given = [
            path.as_deref(),
            self.file_id.as_deref(),
            self.file_url.as_deref(),
        ]
        .iter()
        .filter(|v| v.is_some_and(|s| !s.trim().is_empty()))
        .count();
        match given {
            1 => Ok(()),
            0 => Err("an attachment needs one of \"path\", \"file_id\" or \"file_url\"".into()),
            _ => Err(
                "an attachment takes one of \"path\", \"file_id\" and \"file_url\", not several"
                    .into(),
            ),
        }
    }
}

/// The most `meta_data` pairs a chat or a conversation takes, and the length of each
/// key and value in characters: the official API's limits (cozepy's `Message` and
/// `Chat`: "16 key-value pairs … key between 1 and 64 characters … value between 1
/// and 512 characters").
pub const META_MAX_PAIRS: usize = 16;
/// The longest `meta_data` key, in characters (see [`META_MAX_PAIRS`]).
pub const META_MAX_KEY: usize = 64;
/// The longest `meta_data` value, in characters (see [`META_MAX_PAIRS`]).
pub const META_MAX_VALUE: usize = 512;

/// Why `meta` is not something the API takes as `meta_data`, if it is not.
pub fn check_meta_data(meta: &Map<String, Value>) -> Result<(), String> {
    if meta.len() > META_MAX_PAIRS {
        return Err(format!(
            "{} pairs: the API takes at most {META_MAX_PAIRS}",
            meta.len()
        ));
    }
    for (k, v) in meta {
        let keys = k.chars().count();
        if keys == 0 || keys > META_MAX_KEY {
            return Err(format!(
                "key {k:?} has {keys} characters: the API takes 1 to {META_MAX_KEY}"
            ));
        }
        let Value::String(v) = v else {
            return Err(format!("the value of {k:?} is not a string"));
        };
        let n = v.chars().count();
        if n == 0 || n > META_MAX_VALUE {
            return Err(format!(
                "the value of {k:?} has {n} characters: the API takes 1 to {META_MAX_VALUE}"
            ));
        }
    }
    Ok(())
}

/// The id of a prompt that has none of its own: `sha256:` and the first 16 hex digits
/// of the SHA-256 of its content. Stable across runs, so `--resume` can recognise a
/// plain-text line it answered before; a repeat of the same content in the same input
/// gets `#2`, `#3`… after it (see [`Prompt::occurrence`]).
pub fn derived_prompt_id(content: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(content.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Prompt {
    /// The prompt's own `id`, or one derived from its content and occurrence.
    pub fn effective_id(&self) -> Value {
        self.id.clone().unwrap_or_else(|| {
            let id = derived_prompt_id(&self.content);
            Value::String(match self.occurrence {
                0 | 1 => id,
                n => format!("{id}#{n}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_ids_are_stable_and_content_based() {
        // SHA-256("hello") = 2cf24dba5fb0a30e...
        assert_eq!(derived_prompt_id("hello"), "sha256:2cf24dba5fb0a30e");
        assert_ne!(derived_prompt_id("hello "), derived_prompt_id("hello"));
        let mut p: Prompt = serde_json::from_value(json!({"content": "hello"})).unwrap();
        assert_eq!(p.effective_id(), "sha256:2cf24dba5fb0a30e");
        p.occurrence = 1;
        assert_eq!(p.effective_id(), "sha256:2cf24dba5fb0a30e");
        p.occurrence = 3;
        assert_eq!(p.effective_id(), "sha256:2cf24dba5fb0a30e#3");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"content": "hello"})
        );
        p.id = Some(json!("own"));
        assert_eq!(p.effective_id(), "own");
    }

    #[test]
    fn meta_data_within_the_api_limits() {
        let ok: Map<String, Value> = (0..16).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(check_meta_data(&ok), Ok(()));
        let mut too_many = ok.clone();
        too_many.insert("k16".into(), json!("v"));
        assert!(check_meta_data(&too_many).unwrap_err().contains("17 pairs"));
        let one = |k: &str, v: Value| Map::from_iter([(k.to_owned(), v)]);
        assert_eq!(
            check_meta_data(&one(&"键".repeat(64), json!("值".repeat(512)))),
            Ok(())
        );
        assert!(check_meta_data(&one(&"k".repeat(65), json!("v"))).is_err());
        assert!(check_meta_data(&one("", json!("v"))).is_err());
        assert!(check_meta_data(&one("k", json!("v".repeat(513)))).is_err());
        assert!(check_meta_data(&one("k", json!(""))).is_err());
        assert!(check_meta_data(&one("k", json!(1))).is_err());
    }
}
