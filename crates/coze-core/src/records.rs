//! The JSON-lines protocol of design.md §2: one record type per struct.
//!
//! Every record keeps the fields it does not know in `extra`, so a record passed through
//! a tool comes out with everything it went in with (a script's own annotations, fields
//! a newer version adds). Parsing names the line a record came from. Secrets in these
//! records are never printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// Fields a record carries that this version does not know about.
pub type Extra = Map<String, Value>;

/// Any record of the protocol, tagged by its `type` field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    AuthorizationCode(AuthorizationCode),
    DeviceCode(DeviceCode),
    Token(Token),
    Conversation(Conversation),
    Prompt(Prompt),
}

impl Record {
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::AuthorizationCode(_) => "authorization_code",
            Record::DeviceCode(_) => "device_code",
            Record::Token(_) => "token",
            Record::Conversation(_) => "conversation",
            Record::Prompt(_) => "prompt",
        }
    }

    /// Parses the JSON object of stdin line `line`; the error names the line and field.
    pub fn from_object(line: u64, object: Map<String, Value>) -> Result<Record, Error> {
        let kind = match object.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Error::input(line, "field `type` must be a string")),
            None => return Err(Error::input(line, "record has no `type` field")),
        };
        if !KNOWN_TYPES.contains(&kind.as_str()) {
            return Err(Error::input(
                line,
                format!(
                    "unknown record type {kind:?} (expected one of: {})",
                    KNOWN_TYPES.join(", ")
                ),
            ));
        }
        serde_json::from_value(Value::Object(object))
            .map_err(|e| Error::input(line, format!("{kind} record: {}", serde_message(&e))))
    }

    /// Parses one line of text (a JSON object) into a record.
    pub fn from_line(line: u64, text: &str) -> Result<Record, Error> {
        let object = crate::wire::jsonl::parse_object(line, text)
            .map_err(|e| Error::input(e.line, e.message))?;
        Record::from_object(line, object)
    }
}

/// The record types this version reads, for error messages.
pub const KNOWN_TYPES: &[&str] = &[
    "authorization_code",
    "device_code",
    "token",
    "conversation",
    "prompt",
];

/// serde's messages end with " at line 1 column 57", which is about the value we built,
/// not about anything the user can find; drop it.
fn serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::AuthorizationCode(r) => r.fmt(f),
            Record::DeviceCode(r) => r.fmt(f),
            Record::Token(r) => r.fmt(f),
            Record::Conversation(r) => r.fmt(f),
            Record::Prompt(r) => r.fmt(f),
        }
    }
}

/// coze-auth's grant: what coze-token needs to exchange a code.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub code: String,
    /// PKCE's verifier; absent for a web app's (confidential) login without PKCE, which
    /// its client secret authenticates instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    pub redirect_uri: String,
    pub client_id: String,
    pub base_url: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("code", &"<redacted>")
            .field(
                "code_verifier",
                &self.code_verifier.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// coze-auth `--device`'s grant: what coze-token polls with.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    /// Minimum seconds between polls.
    pub interval: u64,
    /// Unix seconds after which the device code is dead.
    pub expires_at: i64,
    pub client_id: String,
    pub base_url: String,
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("interval", &self.interval)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An access token, and what is needed to renew it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Unix seconds; 0 when unknown (a bare PAT never expires for us).
    #[serde(default)]
    pub expires_at: i64,
    /// Absent for PATs and JWT service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl Token {
    /// Seconds of life left at `now` (negative when expired); i64::MAX if unknown.
    pub fn ttl(&self, now: i64) -> i64 {
        if self.expires_at == 0 {
            i64::MAX
        } else {
            self.expires_at - now
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A conversation, as coze-conv prints it and coze-chat reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_section_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One prompt for coze-chat, with what it overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub content: String,
    /// Echoed on every output line the prompt causes; any JSON value the script chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_variables: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Extra,
    /// Which occurrence of its content, among the prompts of its input without an id
    /// of their own, this one is (1 the first; 0 when nobody counted): the second
    /// gets a derived id of its own. Not part of the record.
    #[serde(skip)]
    pub occurrence: u32,
}

/// The most `meta_data` pairs a chat or a conversation takes, and the length of each
/// key and value in characters: the official API's limits (cozepy's `Message` and
/// `Chat`: "16 key-value pairs … key between 1 and 64 characters … value between 1
/// and 512 characters").
pub const META_MAX_PAIRS: usize = 16;
pub const META_MAX_KEY: usize = 64;
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

impl Record {
    /// The record as one JSON object, `type` first.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("records always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_io::{mutate, random_bytes, Rng};
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let line = r#"{"type":"token","access_token":"czu_x","token_type":"Bearer","expires_at":1,"refresh_token":"r","client_id":"c","base_url":"b","note":{"k":[1,2]},"grant":"pkce"}"#;
        let rec = Record::from_line(1, line).unwrap();
        let back = rec.to_value();
        let orig: Value = serde_json::from_str(line).unwrap();
        assert_eq!(back, orig);
        assert_eq!(back.as_object().unwrap().keys().next().unwrap(), "type");
    }

    #[test]
    fn every_type_parses() {
        let cases = [
            json!({"type":"authorization_code","code":"c","code_verifier":"v","redirect_uri":"r","client_id":"i","base_url":"b"}),
            json!({"type":"authorization_code","code":"c","redirect_uri":"r","client_id":"i","base_url":"b"}),
            json!({"type":"device_code","device_code":"d","user_code":"U","verification_uri":"v","interval":5,"expires_at":9,"client_id":"i","base_url":"b"}),
            json!({"type":"conversation","conversation_id":"1","bot_id":"2","created_at":3,"meta_data":{},"last_section_id":"4"}),
            json!({"type":"prompt","content":"hi","id":7,"custom_variables":{"a":"b"}}),
        ];
        for c in cases {
            let rec = Record::from_object(1, c.as_object().unwrap().clone()).unwrap();
            assert_eq!(rec.to_value(), c);
        }
    }

    #[test]
    fn bad_records_name_line_and_field() {
        let e = Record::from_line(4, r#"{"type":"prompt"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stdin line 4: prompt record: missing field `content`"
        );
        assert_eq!(e.exit_code(), 3);
        let e = Record::from_line(2, r#"{"type":"nope"}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("stdin line 2: unknown record type \"nope\""),
            "{e}"
        );
        let e = Record::from_line(5, r#"{"content":"x"}"#).unwrap_err();
        assert_eq!(e.to_string(), "stdin line 5: record has no `type` field");
        let e = Record::from_line(6, r#"{"type":"token","access_token":5}"#).unwrap_err();
        assert!(
            e.to_string().contains("line 6: token record: invalid type"),
            "{e}"
        );
        let e = Record::from_line(3, "[1]").unwrap_err();
        assert!(e.to_string().starts_with("stdin line 3:"), "{e}");
    }

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

    #[test]
    fn debug_never_shows_secrets() {
        let rec = Record::from_line(1, r#"{"type":"token","access_token":"czu_SECRET1","refresh_token":"SECRET2","expires_at":1}"#).unwrap();
        let dbg = format!("{rec:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        let rec = Record::from_line(1, r#"{"type":"authorization_code","code":"SECRET3","code_verifier":"SECRET4","redirect_uri":"r","client_id":"i","base_url":"b"}"#).unwrap();
        assert!(!format!("{rec:?}").contains("SECRET"));
    }

    /// Valid records of every type, the seeds of the record mutations.
    const RECORDS: &[&str] = &[
        r#"{"type":"authorization_code","code":"c0de","code_verifier":"v3r1f13r","redirect_uri":"http://127.0.0.1:8080/callback","client_id":"42.app.coze","base_url":"https://api.coze.cn"}"#,
        r#"{"type":"device_code","device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"https://www.coze.cn/device","interval":5,"expires_at":1718792949,"client_id":"42.app.coze","base_url":"https://api.coze.cn"}"#,
        r#"{"type":"token","access_token":"czu_x","token_type":"Bearer","expires_at":1718792949,"refresh_token":"r","client_id":"42.app.coze","base_url":"https://api.coze.cn","note":[1,{"a":null}]}"#,
        r#"{"type":"token","access_token":"czs_jwt","expires_at":1,"grant":"jwt","key_file":"/k.pem","kid":"k","ttl":900}"#,
        r#"{"type":"conversation","conversation_id":"7381473525342978089","bot_id":"737","created_at":1718792949,"meta_data":{"k":"v"},"last_section_id":"1"}"#,
        r#"{"type":"prompt","content":"你好 🙂","id":{"n":[1,2.5,-3e2]},"conversation_id":"1","bot_id":"2","user_id":"u","custom_variables":{"a":"b"},"meta_data":{}}"#,
        r#"{"type":"prompt","content":"","id":null}"#,
        r#"{"type":"answer","id":"q1","content":"x"}"#,
    ];

    #[test]
    fn records_never_panic_errors_name_the_line_and_round_trip() {
        let mut rng = Rng::new(0x5EED_0004);
        let mut parsed = 0;
        for case in 0..30_000u64 {
            let bytes = if rng.chance(85) {
                mutate(rng.pick(RECORDS).as_bytes(), &mut rng)
            } else {
                random_bytes(&mut rng, 200)
            };
            let text = String::from_utf8_lossy(&bytes);
            let line = 1 + case % 1000;
            match Record::from_line(line, &text) {
                Ok(rec) => {
                    parsed += 1;
                    let Value::Object(obj) = rec.to_value() else {
                        panic!("case {case}: a record is not an object: {text:?}");
                    };
                    assert_eq!(
                        obj.get("type").and_then(Value::as_str),
                        Some(rec.type_name())
                    );
                    let again = Record::from_object(line, obj)
                        .unwrap_or_else(|e| panic!("case {case}: {text:?} does not re-read: {e}"));
                    assert_eq!(again, rec, "case {case}: {text:?}");
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!("stdin line {line}: ")),
                        "case {case}: {msg:?} for {text:?}"
                    );
                    assert_eq!(e.exit_code(), 3, "case {case}: {msg}");
                    assert!(!msg.contains('\n'), "case {case}: one line: {msg:?}");
                }
            }
        }
        assert!(
            parsed > 1000,
            "the mutations must keep some records valid: {parsed}"
        );
    }
}
