//! The JSON-lines protocol the tools speak to each other (docs/architecture.md, "The
//! protocol"): one record type per struct, one file per family (`auth`: the grants and
//! the token; `chat`: conversations and prompts; `workflow`: a run's `interrupt` and the
//! `Question` it carries), all
//! named from here; `object_string` is the parts array of a message that carries files;
//! `params` reads a workflow run's parameters. Records only a binary writes (`answer`,
//! `summary`, `profile`, `result`, …) are built there.
//!
//! Every record keeps the fields it does not know in `extra`, so a record passed through
//! a tool comes out with everything it went in with (a script's own annotations, fields
//! a newer version adds). Parsing names the line a record came from. Secrets in these
//! records are never printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

mod auth;
mod chat;
pub mod object_string;
pub mod params;
mod workflow;

pub use auth::{AuthorizationCode, DeviceCode, Token};
pub use chat::{
    check_meta_data, derived_prompt_id, Attachment, Conversation, Prompt, META_MAX_KEY,
    META_MAX_PAIRS, META_MAX_VALUE,
};
pub(crate) use workflow::looks_json;
pub use workflow::{Interrupt, Question, MAX_RESUMES};

/// Fields a record carries that this version does not know about.
pub type Extra = Map<String, Value>;

/// Any record of the protocol, tagged by its `type` field.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// `authorization_code`: coze-auth's grant from a browser login.
    AuthorizationCode(AuthorizationCode),
    /// `device_code`: coze-auth `--device`'s grant, for coze-token to poll with.
    DeviceCode(DeviceCode),
    /// `token`: coze-token's output, and what a token file holds.
    Token(Token),
    /// `conversation`: coze-conv's output; on coze-chat's stdin it switches the
    /// conversation for the lines after it.
    Conversation(Conversation),
    /// `prompt`: one question for coze-chat, with its own overrides.
    Prompt(Prompt),
    /// `interrupt`: a workflow run waiting for an answer, for `coze-workflow resume`.
    Interrupt(Interrupt),
}

impl Record {
    /// The record's `type` as written on the line (`"authorization_code"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::AuthorizationCode(_) => "authorization_code",
            Record::DeviceCode(_) => "device_code",
            Record::Token(_) => "token",
            Record::Conversation(_) => "conversation",
            Record::Prompt(_) => "prompt",
            Record::Interrupt(_) => "interrupt",
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
    "interrupt",
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
            Record::Interrupt(r) => r.fmt(f),
        }
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
            json!({"type":"interrupt","workflow_id":"w","event_id":"7404830425073352713/1","interrupt_type":2,"question":"哪里?","options":["北京","上海"],"id":"r1","execute_id":"7404830425073352713","resumes":1,"sync":true,"note":1}),
            json!({"type":"interrupt","workflow_id":"w","event_id":"e","interrupt_type":5,"question":"","options":[],"resumes":0}),
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

    /// Valid records of every type, the seeds of the record mutations.
    const RECORDS: &[&str] = &[
        r#"{"type":"authorization_code","code":"c0de","code_verifier":"v3r1f13r","redirect_uri":"http://127.0.0.1:8080/callback","client_id":"42.app.coze","base_url":"https://api.coze.cn"}"#,
        r#"{"type":"device_code","device_code":"dc","user_code":"ABCD-EFGH","verification_uri":"https://www.coze.cn/device","interval":5,"expires_at":1718792949,"client_id":"42.app.coze","base_url":"https://api.coze.cn"}"#,
        r#"{"type":"token","access_token":"czu_x","token_type":"Bearer","expires_at":1718792949,"refresh_token":"r","client_id":"42.app.coze","base_url":"https://api.coze.cn","note":[1,{"a":null}]}"#,
        r#"{"type":"token","access_token":"czs_jwt","expires_at":1,"grant":"jwt","key_file":"/k.pem","kid":"k","ttl":900}"#,
        r#"{"type":"conversation","conversation_id":"7381473525342978089","bot_id":"737","created_at":1718792949,"meta_data":{"k":"v"},"last_section_id":"1"}"#,
        r#"{"type":"prompt","content":"你好 🙂","id":{"n":[1,2.5,-3e2]},"conversation_id":"1","bot_id":"2","user_id":"u","custom_variables":{"a":"b"},"meta_data":{}}"#,
        r#"{"type":"prompt","content":"","id":null}"#,
        r#"{"type":"interrupt","workflow_id":"73","event_id":"7404830425073352713/2","interrupt_type":2,"question":"which?","options":["a","b"],"id":1,"resumes":2}"#,
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
