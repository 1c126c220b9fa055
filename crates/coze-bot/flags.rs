//! coze-bot's command line: parsed into a plain struct, nothing resolved yet
//! (credentials, the base URL and whether stdout is a terminal are `main`'s business).

use std::ffi::OsString;

use coze_core::api::bots::Publish;
use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::ApiFlags;
use coze_core::cli::Parsed;
use coze_core::{Error, Result};

pub const HELP: &str = r#"coze-bot: your Coze bots and workspaces, and one bot's whole configuration

USAGE:
    coze-bot list [--workspace ID] [--status published|draft|all] [--json]
    coze-bot get BOT_ID [--draft] [--json]
    coze-bot workspaces [--json]

list writes the bots of one workspace, or of every workspace the token sees (the
workspaces first listed, then each one's bots), page after page. get writes one
bot's configuration: name, description, model, prompt, opening words (prologue)
and suggested questions, plugins, workflows, knowledge, shortcut commands.
workspaces writes the workspaces the token sees. The id coze-chat --bot wants is
the ID column (bot_id).

On a pipe stdout carries JSON lines, one record each, flushed as soon as its page
has arrived; on a terminal, once every page is in, an aligned table (get: a
readable summary), the server's text with its control characters shown (^[), cut
to the terminal's width (COLUMNS, else the terminal's own; not at all when
TERM=dumb or the width is unknown). --json writes the records on a terminal too.

RECORDS:
    list        {"type":"bot","bot_id":…,"name":…,"description":…,"is_published":…,
                "updated_at":…,"published_at":…,"icon_url":…,"folder_id":…,
                "owner_user_id":…,"workspace_id":…}: the API's list item, its `id`
                named bot_id, and the workspace it was listed from
    get         {"type":"bot","bot_id":…,"name":…,"onboarding_info":{"prologue":…,
                "suggested_questions":[…]},"model_info":{…},"prompt_info":{…},
                "plugin_info_list":[…],"workflow_info_list":[…],
                "shortcut_commands":[…],…}: the API's BotInfo, every field kept
    workspaces  {"type":"workspace","workspace_id":…,"name":…,"role_type":…,
                "workspace_type":…,"icon_url":…,"enterprise_id":…}
    Ids are strings, as the API sends them.

OPTIONS:
    --workspace ID         list: this workspace only [default: every workspace]
    --status published|draft|all
                           list: bots published to the API (the ones coze-chat
                           can talk to), bots never published, or both
                           [default: all]
    --draft                get: the version being edited, not the published one
    --json                 JSON lines even when stdout is a terminal
    -h, --help             this text
    -V, --version          version and commit

"#;

pub const HELP_TAIL: &str = r#"

A self-hosted Coze Studio serves a bot's configuration (get, the published version
whatever --draft says) but lists neither bots nor workspaces: list and workspaces
say that the server does not offer them (exit 1). A bot's id is in its address in
the Studio's web pages.

EXAMPLES:
    coze-bot list                                   # a table of every bot you have
    coze-bot list --status published | jq -r .bot_id
    coze-bot get 7380000000000000000                # its prologue, model, plugins…
    coze-bot get $BOT --draft --json | jq .onboarding_info.suggested_questions
    coze-bot workspaces
    BOT=$(coze-bot list --json | jq -r 'select(.name=="Tutor") | .bot_id')
    echo 你好 | coze-chat --bot "$BOT" -o text

"#;

/// Which subcommand, with its own argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `list`: the bots of `workspace`, or of every workspace.
    List {
        workspace: Option<String>,
        status: Publish,
    },
    /// `get BOT_ID`.
    Get { bot: String, draft: bool },
    /// `workspaces`.
    Workspaces,
}

impl Command {
    fn word(&self) -> &'static str {
        match self {
            Command::List { .. } => "list",
            Command::Get { .. } => "get",
            Command::Workspaces => "workspaces",
        }
    }
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    /// `--json`: records even on a terminal.
    pub json: bool,
    pub api: ApiFlags,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut api = ApiFlags::default();
    let mut word: Option<String> = None;
    let mut id: Option<String> = None;
    let mut workspace = None;
    let mut status = None;
    let mut draft = false;
    let mut json = false;
    // Flags that belong to one subcommand only, as given, to refuse them elsewhere.
    let mut given: Vec<String> = Vec::new();
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) if word.is_none() => {
                word = Some(a.positional("subcommand", v)?);
                return Ok(true);
            }
            Arg::Value(v) if id.is_none() && word.as_deref() == Some("get") => {
                let given = a.nonempty_positional("BOT_ID", v)?;
                // Bot ids are numbers; anything else cannot name one, and in a URL
                // path (`..`, `/`) would name another endpoint.
                if !given.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(a.error(format!(
                        "{given:?} is not a bot id (bot ids are numbers; coze-bot list shows yours)"
                    )));
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
            "--workspace" => workspace = Some(a.nonempty()?),
            "--status" => {
                status = Some(a.choice(&[
                    ("published", Publish::Published),
                    ("draft", Publish::Draft),
                    ("all", Publish::All),
                ])?)
            }
            "--draft" => draft = true,
            "--json" => {
                json = true;
                return Ok(true);
            }
            _ => return Ok(false),
        }
        given.push(flag.to_owned());
        Ok(true)
    })?;
    parsed.then(|| {
        let Some(word) = word else {
            return Err(Error::usage("name a subcommand: list, get or workspaces"));
        };
        let command = match word.as_str() {
            "list" => Command::List {
                workspace,
                status: status.unwrap_or(Publish::All),
            },
            "get" => Command::Get {
                bot: id.ok_or_else(|| {
                    Error::usage(
                        "get: name the bot: coze-bot get BOT_ID (coze-bot list shows yours)",
                    )
                })?,
                draft,
            },
            "workspaces" => Command::Workspaces,
            other => {
                return Err(Error::usage(format!(
                    "unknown subcommand {other:?} (expected list, get or workspaces)"
                )))
            }
        };
        let allowed: &[&str] = match command {
            Command::List { .. } => &["--workspace", "--status"],
            Command::Get { .. } => &["--draft"],
            Command::Workspaces => &[],
        };
        if let Some(flag) = given.iter().find(|f| !allowed.contains(&f.as_str())) {
            return Err(Error::usage(format!(
                "{flag} does not go with {}",
                command.word()
            )));
        }
        Ok(Flags { command, json, api })
    })
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
        assert_eq!(
            flags(&["list"]).command,
            Command::List {
                workspace: None,
                status: Publish::All
            }
        );
        let f = flags(&[
            "list",
            "--workspace",
            "7",
            "--status",
            "draft",
            "--json",
            "-v",
        ]);
        assert_eq!(
            f.command,
            Command::List {
                workspace: Some("7".into()),
                status: Publish::Draft
            }
        );
        assert!(f.json && f.api.verbose);
        assert_eq!(
            flags(&["--status=published", "list"]).command,
            Command::List {
                workspace: None,
                status: Publish::Published
            }
        );
        assert_eq!(
            flags(&["get", "123", "--draft"]).command,
            Command::Get {
                bot: "123".into(),
                draft: true
            }
        );
        assert_eq!(
            flags(&["workspaces", "--json"]).command,
            Command::Workspaces
        );
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&[]).contains("name a subcommand"));
        assert!(usage(&["get"]).contains("BOT_ID"));
        assert!(usage(&["get", ".."]).contains("not a bot id"));
        assert!(usage(&["get", "12a"]).contains("not a bot id"));
        assert!(usage(&["frob"]).contains("unknown subcommand"));
        assert!(usage(&["list", "--status", "live"]).contains("published, draft or all"));
        assert!(usage(&["list", "--draft"]).contains("does not go with list"));
        assert!(usage(&["get", "1", "--workspace", "2"]).contains("does not go with get"));
        assert!(usage(&["workspaces", "--status", "all"]).contains("does not go with"));
        assert!(usage(&["get", "1", "2"]).contains("\"2\""));
        assert!(usage(&["list", "x"]).contains("x"));
        assert!(usage(&["list", "--workspace", ""]).contains("--workspace"));
    }
}
