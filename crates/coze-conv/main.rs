//! coze-conv: conversations and their messages as JSON lines. A translator: flags →
//! session → coze-core's API client → records on stdout → exit code.
//!
//! What it is not: a chat client (coze-chat) or a store of its own; every record comes
//! straight from one API answer and is written (and flushed) as soon as it is known.

mod flags;

use std::collections::HashSet;
use std::io::{self, Write};
use std::process::ExitCode;

use coze_core::api::Client;
use coze_core::cli;
use coze_core::cli::flags::API_FLAGS_HELP;
use coze_core::cli::session::Session;
use coze_core::config::{self, Env};
use coze_core::error::EXIT_CODES_HELP;
use coze_core::protocol::{object_string, Conversation, Record};
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::{Error, Result};
use serde_json::{Map, Value};

use flags::{Command, Flags};

const TOOL: &str = "coze-conv";

/// The API's largest page, for both lists (the Coze API docs: `list_conversations`'
/// `page_size` and `list_message`'s `limit` are at most 50).
const PAGE: u64 = 50;

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
        |f| run(f, &Env::from_process()).map(|()| 0),
    )
}

fn run(f: Flags, env: &Env) -> Result<()> {
    let bot = config::bot_id(f.bot.as_deref(), env).map(|s| s.value);
    let need_bot = || {
        bot.clone().ok_or_else(|| {
            Error::usage(format!(
                "{}: which bot? pass --bot or set COZE_BOT_ID",
                match f.command {
                    Command::List => "list",
                    _ => "create",
                }
            ))
        })
    };
    // Usage is settled before credentials are looked at.
    let bot_needed = match f.command {
        Command::Create { .. } | Command::List => Some(need_bot()?),
        _ => None,
    };
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    let mut out = Out(JsonlWriter::new(io::stdout().lock()));
    match &f.command {
        Command::Create { name, meta } => {
            let bot = bot_needed.expect("create needs a bot, checked above");
            let conv = client
                .create_conversation(Some(&bot), name.as_deref(), meta)
                .map_err(|e| e.context(format!("creating a conversation for bot {bot}")))?;
            out.write(&conversation_record(conv, Some(&bot))?.to_value())
        }
        Command::Get(id) => {
            let what = || format!("retrieving conversation {id}");
            let conv = client
                .retrieve_conversation(id)
                .map_err(|e| e.context(what()))?;
            let rec = conversation_record(conv, bot.as_deref()).map_err(|e| e.context(what()))?;
            out.write(&rec.to_value())
        }
        Command::List => {
            let bot = bot_needed.expect("list needs a bot, checked above");
            list(&client, &bot, f.limit, &mut out)
                .map_err(|e| e.context(format!("listing conversations of bot {bot}")))
        }
        Command::Clear(id) => {
            let data = client
                .clear_conversation(id)
                .map_err(|e| e.context(format!("clearing conversation {id}")))?;
            out.write(&Value::Object(section_record(data, id)))
        }
        Command::Delete(id) => {
            client
                .delete_conversation(id)
                .map_err(|e| e.context(format!("deleting conversation {id}")))?;
            let mut rec = Map::new();
            rec.insert("type".into(), "deleted".into());
            rec.insert("conversation_id".into(), id.as_str().into());
            out.write(&Value::Object(rec))
        }
        Command::Messages(id) => messages(&client, id, f.order, f.limit, &mut out)
            .map_err(|e| e.context(format!("listing messages of conversation {id}"))),
    }
}

/// stdout as JSON lines; a write error (a reader gone away included) is an `Io`
/// error on "stdout", which `cli::run` turns into a quiet exit 0 for a closed pipe.
struct Out<W: Write>(JsonlWriter<W>);

impl<W: Write> Out<W> {
    fn write(&mut self, value: &Value) -> Result<()> {
        self.0.write(value).map_err(|e| Error::io("stdout", e))
    }
}

/// Every conversation of `bot`, page by page (page_num / page_size, until has_more is
/// false), each written as soon as its page arrives.
fn list<W: Write>(
    client: &Client<'_>,
    bot: &str,
    limit: Option<u64>,
    out: &mut Out<W>,
) -> Result<()> {
    // The page size stays the same for the whole walk: page_num counts in its units.
    let size = limit.map_or(PAGE, |n| n.min(PAGE)) as u32;
    let mut seen = HashSet::new();
    let mut written = 0u64;
    let mut page_num = 1u32;
    loop {
        let page = client.list_conversations(bot, page_num, size)?;
        let mut fresh = 0;
        for item in page.items {
            let rec = conversation_record(item, Some(bot))?;
            // Offsets shift when a conversation is created while we page: the one
            // pushed across the page boundary comes again. Print it once.
            if let Record::Conversation(c) = &rec {
                if !seen.insert(c.conversation_id.clone()) {
                    continue;
                }
            }
            fresh += 1;
            out.write(&rec.to_value())?;
            written += 1;
            if limit.is_some_and(|n| written >= n) {
                return Ok(());
            }
        }
        if !page.has_more {
            return Ok(());
        }
        if fresh == 0 {
            return Err(bad_reply(format!(
                "page {page_num} brought no new conversation although has_more is true; \
                 stopping instead of paging forever"
            )));
        }
        page_num = page_num
            .checked_add(1)
            .ok_or_else(|| bad_reply("more pages than a page number can count".into()))?;
    }
}

/// Every message of a conversation in `order`, paged by passing each page's `last_id`
/// as the next `after_id` (the page that follows it in the requested order: older for
/// desc, newer for asc).
fn messages<W: Write>(
    client: &Client<'_>,
    id: &str,
    order: flags::Order,
    limit: Option<u64>,
    out: &mut Out<W>,
) -> Result<()> {
    let mut after: Option<String> = None;
    let mut cursors = HashSet::new();
    let mut written = 0u64;
    loop {
        let want = limit.map_or(PAGE, |n| (n - written).min(PAGE)) as u32;
        let page = client.list_messages(id, order.as_str(), after.as_deref(), None, want)?;
        for item in page.items {
            out.write(&Value::Object(message_record(item)?))?;
            written += 1;
            if limit.is_some_and(|n| written >= n) {
                return Ok(());
            }
        }
        if !page.has_more {
            return Ok(());
        }
        let next = page.last_id.ok_or_else(|| {
            bad_reply("has_more is true but the page has no last_id to continue from".into())
        })?;
        // A server that hands back a cursor it gave before would have us loop forever.
        if !cursors.insert(next.clone()) {
            return Err(bad_reply(format!(
                "the server returned cursor {next} twice; stopping instead of looping"
            )));
        }
        after = Some(next);
    }
}

/// An answer we cannot page through or turn into a record: the API's fault (exit 1).
fn bad_reply(msg: String) -> Error {
    Error::Protocol(format!("unexpected API reply: {msg}"))
}

/// The Coze conversation object as a `conversation` record: `id` becomes
/// `conversation_id`, `bot_id` is filled from `bot` when the API does not say, and every
/// other field is kept.
fn conversation_record(obj: Value, bot: Option<&str>) -> Result<Record> {
    let Value::Object(mut m) = obj else {
        return Err(bad_reply(format!(
            "expected a conversation object, got {obj}"
        )));
    };
    let conversation_id = match m.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad_reply("the conversation has no id".into())),
    };
    let bot_id = match take_id(&mut m, "bot_id") {
        Some(b) => Some(b),
        None => bot.map(str::to_owned),
    };
    // Unix seconds; the Coze API docs' `list_message` example shows a timestamp as a
    // string once, so take both.
    let created_at = match m.get("created_at") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    if created_at.is_some() {
        m.remove("created_at");
    }
    let meta_data = m.remove("meta_data");
    let last_section_id = take_id(&mut m, "last_section_id");
    // `type` names the record; a field of that name would be a second `type` key.
    if let Some(t) = m.remove("type") {
        m.insert("conversation_type".into(), t);
    }
    m.remove("conversation_id");
    Ok(Record::Conversation(Conversation {
        conversation_id,
        bot_id,
        created_at,
        meta_data,
        last_section_id,
        extra: m,
    }))
}

/// Removes an ID field given as a string (or a number, said as one); anything else
/// stays where it is, as an unknown field.
fn take_id(m: &mut Map<String, Value>, key: &str) -> Option<String> {
    let id = match m.get(key)? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    m.remove(key);
    Some(id)
}

/// `{"type":"section", …the clear answer ({id, conversation_id})…}`.
fn section_record(data: Value, conversation_id: &str) -> Map<String, Value> {
    let mut rec = Map::new();
    rec.insert("type".into(), "section".into());
    if let Value::Object(fields) = data {
        rec.extend(fields.into_iter().filter(|(k, _)| k != "type"));
    }
    rec.entry("conversation_id")
        .or_insert_with(|| conversation_id.into());
    rec
}

/// The Coze message object as a `message` record: `"type":"message"` first, then the
/// object's fields in their order, its own `type` renamed `message_type` in place. An
/// `object_string` message (files and images with text) also gets its parts decoded
/// into `parts`, right after the raw `content` string, which stays as it came.
fn message_record(obj: Value) -> Result<Map<String, Value>> {
    let Value::Object(m) = obj else {
        return Err(bad_reply(format!("expected a message object, got {obj}")));
    };
    let parts = match (m.get("content_type"), m.get("content")) {
        (Some(Value::String(t)), Some(Value::String(c))) if t == object_string::CONTENT_TYPE => {
            object_string::decode(c)
        }
        _ => None,
    };
    let mut parts = parts.map(Value::Array);
    let mut rec = Map::new();
    rec.insert("type".into(), "message".into());
    for (k, v) in m {
        match k.as_str() {
            "type" => rec.insert("message_type".into(), v),
            "content" => {
                rec.insert(k, v);
                parts.take().and_then(|p| rec.insert("parts".into(), p))
            }
            _ => rec.insert(k, v),
        };
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversation_record_renames_id_and_keeps_the_rest() {
        let api = json!({"id":"7","name":"n","meta_data":{"k":"v"},"creator_id":"u",
            "created_at":1718289297,"updated_at":"1718289298","last_section_id":"9",
            "connector_id":"1024"});
        let rec = conversation_record(api, Some("B")).unwrap().to_value();
        assert_eq!(
            rec,
            json!({"type":"conversation","conversation_id":"7","bot_id":"B",
                "created_at":1718289297,"meta_data":{"k":"v"},"last_section_id":"9",
                "name":"n","creator_id":"u","updated_at":"1718289298","connector_id":"1024"})
        );
        let keys: Vec<&String> = rec.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["type", "conversation_id"]);
        // The record is one coze-chat can read back.
        let line = rec.to_string();
        assert!(matches!(
            Record::from_line(1, &line).unwrap(),
            Record::Conversation(_)
        ));
    }

    #[test]
    fn conversation_record_prefers_the_apis_bot_and_needs_an_id() {
        let rec = conversation_record(json!({"id":"7","bot_id":"A","type":"x"}), Some("B"))
            .unwrap()
            .to_value();
        assert_eq!(rec["bot_id"], "A");
        assert_eq!(rec["type"], "conversation");
        assert_eq!(rec["conversation_type"], "x");
        assert!(conversation_record(json!({"name":"x"}), None).is_err());
        assert!(conversation_record(Value::Null, None).is_err());
        let rec = conversation_record(json!({"id":"7"}), None)
            .unwrap()
            .to_value();
        assert!(rec.get("bot_id").is_none());
    }

    #[test]
    fn object_string_messages_get_their_parts_beside_the_content() {
        let content = r#"[{"type":"text","text":"what is it?"},{"type":"image","file_id":"7"}]"#;
        let m = json!({"id":"1","content_type":"object_string","content":content,"role":"user"});
        let rec = message_record(m).unwrap();
        let keys: Vec<&str> = rec.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["type", "id", "content_type", "content", "parts", "role"]
        );
        assert_eq!(rec["content"], content);
        assert_eq!(rec["parts"][1], json!({"type":"image","file_id":"7"}));
        // Text, and an object_string that is not an array, get no parts.
        for m in [
            json!({"content_type":"text","content":"[1]"}),
            json!({"content_type":"object_string","content":"not json"}),
        ] {
            assert!(!message_record(m).unwrap().contains_key("parts"));
        }
    }

    #[test]
    fn message_record_moves_the_coze_type_in_place() {
        let m = json!({"id":"1","role":"assistant","type":"answer","content":"hi"});
        let rec = Value::Object(message_record(m).unwrap());
        assert_eq!(
            rec,
            json!({"type":"message","id":"1","role":"assistant","message_type":"answer",
                "content":"hi"})
        );
        let keys: Vec<&String> = rec.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["type", "id", "role", "message_type", "content"]);
    }

    #[test]
    fn section_record_names_the_conversation() {
        let rec = section_record(json!({"id":"S"}), "C");
        assert_eq!(
            Value::Object(rec),
            json!({"type":"section","id":"S","conversation_id":"C"})
        );
    }
}
