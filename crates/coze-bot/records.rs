//! The API's objects as coze-bot's records: `{"type":"bot",…}` and
//! `{"type":"workspace",…}`, the object's own `id` named for what it is (`bot_id`,
//! `workspace_id`, as a `conversation` record names its id) and every other field kept
//! in its order; ids as strings, whichever way the server wrote them.

use coze_core::{Error, Result};
use serde_json::{Map, Value};

/// Fields that are ids: written as strings even when a server sends numbers.
const IDS: &[&str] = &[
    "bot_id",
    "workspace_id",
    "owner_user_id",
    "folder_id",
    "enterprise_id",
];

/// An answer we cannot turn into a record: the API's fault (exit 1).
pub fn bad_reply(msg: impl Into<String>) -> Error {
    Error::Protocol(format!("unexpected API reply: {}", msg.into()))
}

/// The id at `v` as a string (a number said as one); None for anything else.
pub fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `obj` as a record of `kind`: `type` first, `id` renamed `id_key` in place (or
/// `id_key` itself when the object already has it, as a BotInfo does), the ids as
/// strings, the rest as it came; the object's own `type`, if any, as `KIND_type`.
fn record(kind: &str, id_key: &str, obj: Value) -> Result<Map<String, Value>> {
    let Value::Object(m) = obj else {
        return Err(bad_reply(format!("expected a {kind} object, got {obj}")));
    };
    // The field the id came from, which the record's `id_key` replaces.
    let from = if m.contains_key(id_key) { id_key } else { "id" };
    let Some(id) = id_text(m.get(from)) else {
        return Err(bad_reply(format!("the {kind} has no id")));
    };
    let mut rec = Map::new();
    rec.insert("type".into(), kind.into());
    rec.insert(id_key.into(), id.into());
    for (k, v) in m {
        if k == from {
            continue;
        }
        let v = match v {
            Value::Number(n) if IDS.contains(&k.as_str()) => Value::String(n.to_string()),
            v => v,
        };
        if k == "type" {
            rec.insert(format!("{kind}_type"), v);
        } else {
            rec.insert(k, v);
        }
    }
    Ok(rec)
}

/// A bot of a list (`{id,name,…}`) as a `bot` record, with the workspace it was
/// listed from.
pub fn listed_bot(obj: Value, workspace_id: &str) -> Result<Map<String, Value>> {
    let mut rec = record("bot", "bot_id", obj)?;
    rec.entry("workspace_id")
        .or_insert_with(|| workspace_id.into());
    Ok(rec)
}

/// A bot's configuration (`BotInfo`) as a `bot` record.
pub fn bot_info(obj: Value) -> Result<Map<String, Value>> {
    record("bot", "bot_id", obj)
}

/// A workspace as a `workspace` record.
pub fn workspace(obj: Value) -> Result<Map<String, Value>> {
    record("workspace", "workspace_id", obj)
}

/// A Unix time as a person reads it beside a list: "3 min ago", "just now" within a
/// minute either way (a server's clock a little ahead of ours says nothing useful).
pub fn when(at: i64, now: i64) -> String {
    if (now - at).abs() < 60 {
        "just now".to_owned()
    } else {
        coze_core::support::time::ago(at, now)
    }
}

/// The text at `key`, empty when absent or not text (numbers said as text).
pub fn text(rec: &Map<String, Value>, key: &str) -> String {
    match rec.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_listed_bot_names_its_id_and_workspace() {
        let rec = listed_bot(
            json!({"id":"7","name":"n","is_published":true,"updated_at":5,"owner_user_id":9}),
            "W",
        )
        .unwrap();
        assert_eq!(
            Value::Object(rec.clone()),
            json!({"type":"bot","bot_id":"7","name":"n","is_published":true,"updated_at":5,
                   "owner_user_id":"9","workspace_id":"W"})
        );
        let keys: Vec<&String> = rec.keys().collect();
        assert_eq!(keys[..2], ["type", "bot_id"]);
    }

    #[test]
    fn bot_info_keeps_every_field_and_strings_a_numeric_id() {
        let rec = bot_info(
            json!({"bot_id":7380,"name":"n","onboarding_info":{"prologue":"p"},
                                  "type":"x"}),
        )
        .unwrap();
        assert_eq!(rec["bot_id"], "7380");
        assert_eq!(rec["onboarding_info"]["prologue"], "p");
        assert_eq!(rec["type"], "bot");
        assert_eq!(rec["bot_type"], "x");
        assert!(bot_info(json!({"name":"no id"})).is_err());
        assert!(bot_info(json!([1])).is_err());
    }

    #[test]
    fn times_within_a_minute_are_just_now() {
        assert_eq!(when(1000, 1030), "just now");
        assert_eq!(when(1030, 1000), "just now");
        assert_eq!(when(1000, 1000 + 600), "10 min ago");
    }

    #[test]
    fn a_workspace_record() {
        let rec = workspace(json!({"id":"1","name":"个人空间","role_type":"owner"})).unwrap();
        assert_eq!(
            Value::Object(rec),
            json!({"type":"workspace","workspace_id":"1","name":"个人空间","role_type":"owner"})
        );
    }
}
