//! coze-conv's command line: parsed into a plain struct, nothing resolved yet (the bot
//! from `COZE_BOT_ID`, credentials and the base URL are `main`'s business).

use std::ffi::OsString;

use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::ApiFlags;
use coze_core::cli::Parsed;
use coze_core::{Error, Result};
use serde_json::{Map, Value};

pub const HELP: &str = r#"coze-conv: create, list, inspect, clear and delete Coze conversations; list messages

USAGE:
    coze-conv create --bot ID [--name NAME] [--meta KEY=VALUE]...
    coze-conv get CONVERSATION_ID [--bot ID]
    coze-conv list --bot ID [--limit N]
    coze-conv clear CONVERSATION_ID
    coze-conv delete CONVERSATION_ID
    coze-conv messages CONVERSATION_ID [--order asc|desc] [--limit N]

Writes JSON lines on stdout, one record per line, each flushed the moment it is known:
lists are streamed page by page (conversations by page number, messages by cursor), so
`| head` stops the paging early and quietly.

RECORDS:
    create, get, list  {"type":"conversation","conversation_id":…,"bot_id":…,
                       "created_at":…,"meta_data":{…},"last_section_id":…, …} plus
                       every other field the API returned (name, updated_at,
                       creator_id, connector_id…); the API's `id` is `conversation_id`.
                       The API does not name the bot: bot_id is --bot (for get, when
                       --bot or COZE_BOT_ID is set). coze-chat reads these records on
                       stdin and switches to that conversation.
    clear              {"type":"section","id":NEW_SECTION_ID,"conversation_id":…}: the
                       model forgets the history; the messages stay listed
    delete             {"type":"deleted","conversation_id":…}
    messages           {"type":"message","message_type":"question"|"answer"|"verbose"|
                       "follow_up"|…,"id":…,"role":…,"content":…, …}: the Coze message
                       object with every field unchanged except its own `type`, which
                       is renamed `message_type` (`type` names the record); a message
                       of files and images (content_type "object_string") also gets
                       "parts": its content decoded, e.g. [{"type":"text","text":…},
                       {"type":"image","file_id":…}]

OPTIONS:
    --bot ID               the bot [env: COZE_BOT_ID]; create and list need one
    --name NAME            create: the conversation's name (at most 100 characters)
    --meta KEY=VALUE       create: one meta_data pair; repeat for more (at most 16
                           pairs; keys of 1 to 64 characters, values of 1 to 512)
    --order asc|desc       messages: oldest first, or newest first [default: desc]
    --limit N              list, messages: stop after N records [default: all]
    -h, --help             this text
    -V, --version          version and commit

"#;

pub const EXAMPLES: &str = r#"EXAMPLES:
    coze-conv create --bot $BOT | jq -r .conversation_id
    coze-conv list --bot $BOT --limit 5
    coze-conv messages $CONV --order asc | jq -r 'select(.message_type=="answer") | .content'
    { coze-conv create --bot $BOT; echo hello; } | coze-chat --bot $BOT -o text
    coze-conv list --bot $BOT | jq -r .conversation_id | xargs -n1 coze-conv delete

"#;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create {
        name: Option<String>,
        meta: Map<String, Value>,
    },
    Get(String),
    List,
    Clear(String),
    Delete(String),
    Messages(String),
}

impl Command {
    fn word(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create",
            Command::Get(_) => "get",
            Command::List => "list",
            Command::Clear(_) => "clear",
            Command::Delete(_) => "delete",
            Command::Messages(_) => "messages",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    /// `--bot`; `main` falls back to `COZE_BOT_ID`.
    pub bot: Option<String>,
    pub order: Order,
    pub limit: Option<u64>,
    pub api: ApiFlags,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut api = ApiFlags::default();
    let mut word: Option<String> = None;
    let mut id: Option<String> = None;
    let mut bot = None;
    let mut name_flag = None;
    let mut meta = Map::new();
    let mut order = None;
    let mut limit = None;
    // Flags that belong to one subcommand only, as given, to refuse them elsewhere.
    let mut given: Vec<String> = Vec::new();
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) if word.is_none() => {
                word = Some(a.positional("subcommand", v)?);
                return Ok(true);
            }
            Arg::Value(v) if id.is_none() && word.as_deref().is_some_and(takes_id) => {
                let given = a.nonempty_positional("CONVERSATION_ID", v)?;
                // `..` would turn /v1/conversations/ID/clear into another endpoint.
                if coze_core::support::url::path_segment(&given).is_none() {
                    return Err(a.error(format!("{given:?} is not a conversation id")));
                }
                id = Some(given);
                return Ok(true);
            }
            Arg::Value(_) => return Ok(false),
            Arg::Flag(flag) => flag.as_str(),
        };
        if api.take(flag, a)? {
            return Ok(true);
        }
        match flag {
            "--bot" => bot = Some(a.nonempty()?),
            "--name" => name_flag = Some(a.string()?),
            "--meta" => {
                let (k, v) = a.key_value()?;
                if meta.contains_key(&k) {
                    return Err(a.error(format!("key {k:?} given twice")));
                }
                meta.insert(k, Value::String(v));
            }
            "--order" => order = Some(a.choice(&[("asc", Order::Asc), ("desc", Order::Desc)])?),
            "--limit" => {
                let n: u64 = a.number()?;
                if n == 0 {
                    return Err(a.error("expected 1 or more, got 0"));
                }
                limit = Some(n);
            }
            _ => return Ok(false),
        }
        given.push(flag.to_owned());
        Ok(true)
    })?;
    parsed.then(|| {
        coze_core::protocol::check_meta_data(&meta)
            .map_err(|m| Error::usage(format!("--meta: {m}")))?;
        let Some(word) = word else {
            return Err(Error::usage(
                "name a subcommand: create, get, list, clear, delete or messages",
            ));
        };
        let need_id = || {
            id.clone().ok_or_else(|| {
                Error::usage(format!(
                    "{word}: name the conversation: coze-conv {word} CONVERSATION_ID"
                ))
            })
        };
        let command = match word.as_str() {
            "create" => Command::Create {
                name: name_flag,
                meta,
            },
            "get" => Command::Get(need_id()?),
            "list" => Command::List,
            "clear" => Command::Clear(need_id()?),
            "delete" => Command::Delete(need_id()?),
            "messages" => Command::Messages(need_id()?),
            other => {
                return Err(Error::usage(format!(
            "unknown subcommand {other:?} (expected create, get, list, clear, delete or messages)"
        )))
            }
        };
        let allowed: &[&str] = match command {
            Command::Create { .. } => &["--bot", "--name", "--meta"],
            Command::Get(_) => &["--bot"],
            Command::List => &["--bot", "--limit"],
            Command::Clear(_) | Command::Delete(_) => &[],
            Command::Messages(_) => &["--order", "--limit"],
        };
        if let Some(flag) = given.iter().find(|f| !allowed.contains(&f.as_str())) {
            return Err(Error::usage(format!(
                "{flag} does not go with {}",
                command.word()
            )));
        }
        Ok(Flags {
            command,
            bot,
            order: order.unwrap_or(Order::Desc),
            limit,
            api,
        })
    })
}

fn takes_id(word: &str) -> bool {
    matches!(word, "get" | "clear" | "delete" | "messages")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(f) => f,
            other => panic!("{other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        let e = parse(args.iter().map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn subcommands_and_their_flags() {
        let f = flags(&[
            "create",
            "--bot",
            "B",
            "--name",
            "n",
            "--meta",
            "a=1",
            "--meta=b=x=y",
        ]);
        let Command::Create { name, meta } = f.command else {
            panic!()
        };
        assert_eq!(name.as_deref(), Some("n"));
        assert_eq!(meta["a"], "1");
        assert_eq!(meta["b"], "x=y");
        assert_eq!(f.bot.as_deref(), Some("B"));
        let f = flags(&["--limit", "3", "messages", "C", "--order", "asc", "-v"]);
        assert_eq!(f.command, Command::Messages("C".into()));
        assert_eq!((f.order, f.limit), (Order::Asc, Some(3)));
        assert!(f.api.verbose);
        assert_eq!(flags(&["messages", "C"]).order, Order::Desc);
        assert_eq!(flags(&["list"]).command, Command::List);
        assert_eq!(
            flags(&["get", "C", "--bot", "B"]).command,
            Command::Get("C".into())
        );
        assert_eq!(
            flags(&["delete", "--", "-odd"]).command,
            Command::Delete("-odd".into())
        );
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&[]).contains("name a subcommand"));
        assert!(usage(&["get"]).contains("CONVERSATION_ID"));
        assert!(usage(&["frob"]).contains("unknown subcommand"));
        assert!(usage(&["messages", "C", "--order", "up"]).contains("asc or desc"));
        assert!(usage(&["create", "--meta", "novalue"]).contains("KEY=VALUE"));
        assert!(usage(&["create", "--meta", "a=1", "--meta", "a=2"]).contains("twice"));
        assert!(usage(&["create", "--meta", "a="]).contains("1 to 512"));
        assert!(usage(&["clear", ".."]).contains("not a conversation id"));
        assert!(usage(&["delete", "."]).contains("not a conversation id"));
        assert!(usage(&["list", "--limit", "0"]).contains("--limit"));
        assert!(usage(&["clear", "C", "--order", "asc"]).contains("does not go with clear"));
        assert!(usage(&["get", "C", "D"]).contains("D"));
        assert!(usage(&["list", "X"]).contains("X"));
    }
}
