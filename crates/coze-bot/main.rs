//! coze-bot: the bots and workspaces a token sees, and one bot's configuration. A
//! translator: flags → session → coze-core's API client (`api::bots`) → `bot` and
//! `workspace` records on stdout, or on a terminal a table (`table.rs`) or a summary
//! (`summary.rs`) → exit code.
//!
//! What it is not: an editor of bots (creating, updating, publishing), or a cache: every
//! record comes from an API answer, written as soon as its page arrives.

mod flags;
mod records;
mod summary;
mod table;

use std::collections::HashSet;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use coze_core::api::bots::Publish;
use coze_core::api::Client;
use coze_core::cli;
use coze_core::cli::flags::API_FLAGS_HELP;
use coze_core::cli::session::Session;
use coze_core::config::Env;
use coze_core::error::EXIT_CODES_HELP;
use coze_core::support::time::unix_now;
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::{Error, Result};
use serde_json::{Map, Value};

use flags::{Command, Flags};
use records::{bad_reply, text};
use table::{Table, Term};

const TOOL: &str = "coze-bot";

/// The most either list gives a page (`list_workspace`: page_size at most 50; the bot
/// list takes the same), so the fewest requests.
const PAGE: u32 = 50;

fn main() -> ExitCode {
    cli::main(
        TOOL,
        option_env!("COZE_GIT_COMMIT"),
        &[
            flags::HELP,
            API_FLAGS_HELP,
            flags::HELP_TAIL,
            EXIT_CODES_HELP,
        ],
        || flags::parse(std::env::args_os().skip(1)),
        |f| run(f, &Env::from_process()).map(|()| 0),
    )
}

fn run(f: Flags, env: &Env) -> Result<()> {
    // A person at a terminal gets a table, unless --json asks for the records.
    let term = (!f.json && io::stdout().is_terminal()).then(|| {
        Term::of_stdout(
            std::env::var("TERM").ok().as_deref(),
            std::env::var("COLUMNS").ok().as_deref(),
        )
    });
    let session = Session::open(&f.api, env)?;
    let client = session.client();
    let mut out = Out::new(term);
    let done = match &f.command {
        Command::List { workspace, status } => {
            out.bots_table(workspace.is_none());
            list(&client, workspace.as_deref(), *status, &mut out)
        }
        Command::Get { bot, draft } => get(&client, bot, *draft, &mut out),
        Command::Workspaces => {
            out.workspaces_table();
            workspaces(&client, &mut |ws| out.workspace(ws))
                .map_err(|e| permission(e, Need::Workspaces).context("listing the workspaces"))
        }
    };
    // What arrived before a failure is still shown.
    let shown = out.finish(done.is_ok());
    done.and(shown)
}

/// Where records go: JSON lines as they come, or rows of a table printed at the end
/// (its columns are as wide as their widest cell, so it waits for the last page).
enum Out {
    Lines(JsonlWriter<io::StdoutLock<'static>>),
    Table {
        term: Term,
        table: Option<Table>,
        /// The bots' table names each one's workspace (when listing them all).
        with_workspace: bool,
    },
}

impl Out {
    fn new(term: Option<Term>) -> Out {
        match term {
            None => Out::Lines(JsonlWriter::new(io::stdout().lock())),
            Some(term) => Out::Table {
                term,
                table: None,
                with_workspace: false,
            },
        }
    }

    fn bots_table(&mut self, with_workspace: bool) {
        if let Out::Table {
            table,
            with_workspace: w,
            ..
        } = self
        {
            let mut headers = vec!["ID", "NAME", "STATUS", "UPDATED"];
            if with_workspace {
                headers.push("WORKSPACE");
            }
            *table = Some(Table::new(&headers, 1));
            *w = with_workspace;
        }
    }

    fn workspaces_table(&mut self) {
        if let Out::Table { table, .. } = self {
            *table = Some(Table::new(&["ID", "NAME", "ROLE", "TYPE"], 1));
        }
    }

    fn line(w: &mut JsonlWriter<io::StdoutLock<'static>>, rec: Map<String, Value>) -> Result<()> {
        w.write(&Value::Object(rec))
            .map_err(|e| Error::io("stdout", e))
    }

    /// A bot of a list, from the workspace named `workspace_name`.
    fn bot(&mut self, rec: Map<String, Value>, workspace_name: &str) -> Result<()> {
        match self {
            Out::Lines(w) => Self::line(w, rec),
            Out::Table {
                table: Some(t),
                with_workspace,
                ..
            } => {
                let status = match rec.get("is_published").and_then(Value::as_bool) {
                    Some(true) => "published",
                    Some(false) => "draft",
                    None => "",
                };
                let updated = rec
                    .get("updated_at")
                    .and_then(Value::as_i64)
                    .filter(|&t| t > 0)
                    .map(|t| records::when(t, unix_now()))
                    .unwrap_or_default();
                let (id, name) = (text(&rec, "bot_id"), text(&rec, "name"));
                let mut row = vec![id.as_str(), name.as_str(), status, updated.as_str()];
                if *with_workspace {
                    row.push(workspace_name);
                }
                t.push(&row);
                Ok(())
            }
            Out::Table { table: None, .. } => unreachable!("the table is made before listing"),
        }
    }

    fn workspace(&mut self, rec: Map<String, Value>) -> Result<()> {
        match self {
            Out::Lines(w) => Self::line(w, rec),
            Out::Table { table: Some(t), .. } => {
                t.push(&[
                    &text(&rec, "workspace_id"),
                    &text(&rec, "name"),
                    &text(&rec, "role_type"),
                    &text(&rec, "workspace_type"),
                ]);
                Ok(())
            }
            Out::Table { table: None, .. } => unreachable!("the table is made before listing"),
        }
    }

    /// One bot's configuration: its record, or the summary.
    fn bot_info(&mut self, rec: Map<String, Value>, draft: bool) -> Result<()> {
        match self {
            Out::Lines(w) => Self::line(w, rec),
            Out::Table { .. } => {
                let mut text = summary::lines(&rec, draft).join("\n");
                text.push('\n');
                print(text.as_bytes())
            }
        }
    }

    /// Prints the table, if there is one with rows; a list that came back empty
    /// (`complete`: not cut short by a failure, which says enough) says so on stderr.
    fn finish(self, complete: bool) -> Result<()> {
        match self {
            Out::Lines(_) => Ok(()),
            Out::Table {
                term,
                table: Some(t),
                ..
            } => {
                if t.is_empty() {
                    if complete {
                        coze_core::say!("{TOOL}: none found");
                    }
                    return Ok(());
                }
                t.print(term, &mut io::stdout().lock())
                    .map_err(|e| Error::io("stdout", e))
            }
            Out::Table { table: None, .. } => Ok(()),
        }
    }
}

fn print(bytes: &[u8]) -> Result<()> {
    let mut o = io::stdout().lock();
    o.write_all(bytes)
        .and_then(|()| o.flush())
        .map_err(|e| Error::io("stdout", e))
}

/// Walks a list that pages by number, calling `each` with every item as its page
/// arrives. An item seen before is skipped: offsets shift when one is added while we
/// page, and the one pushed across a page boundary comes again.
fn walk(
    mut page: impl FnMut(u32) -> Result<coze_core::api::Page>,
    id_key: &str,
    mut each: impl FnMut(Value) -> Result<()>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut page_num = 1u32;
    loop {
        let p = page(page_num)?;
        let mut fresh = 0;
        for item in p.items {
            let id = records::id_text(item.get(id_key));
            if id.is_some_and(|id| !seen.insert(id)) {
                continue;
            }
            fresh += 1;
            each(item)?;
        }
        if !p.has_more {
            return Ok(());
        }
        if fresh == 0 {
            return Err(bad_reply(format!(
                "page {page_num} brought nothing new although the total says there is \
                 more; stopping instead of paging forever"
            )));
        }
        page_num = page_num
            .checked_add(1)
            .ok_or_else(|| bad_reply("more pages than a page number can count"))?;
    }
}

/// Every workspace the token sees, each handed to `each` as a record.
fn workspaces(
    client: &Client<'_>,
    each: &mut dyn FnMut(Map<String, Value>) -> Result<()>,
) -> Result<()> {
    walk(
        |n| client.list_workspaces(n, PAGE),
        "id",
        |item| each(records::workspace(item)?),
    )
}

/// The bots of `workspace`, or of every workspace. A workspace whose bots cannot be
/// listed does not stop the others; the first such failure is the command's, once
/// the rest are out.
fn list(
    client: &Client<'_>,
    workspace: Option<&str>,
    status: Publish,
    out: &mut Out,
) -> Result<()> {
    if let Some(w) = workspace {
        return bots_of(client, w, "", status, out);
    }
    let mut all = Vec::new();
    workspaces(client, &mut |ws| {
        all.push(ws);
        Ok(())
    })
    .map_err(|e| permission(e, Need::Workspaces).context("listing the workspaces"))?;
    let mut failed: Vec<Error> = Vec::new();
    for ws in &all {
        let (id, name) = (text(ws, "workspace_id"), text(ws, "name"));
        match bots_of(client, &id, &name, status, out) {
            Ok(()) => {}
            // stdout gone, or a failure no other workspace can escape: stop now.
            Err(e) if !matches!(e.root(), Error::Api(_)) => return Err(e),
            Err(e) => failed.push(e),
        }
    }
    let more = failed.len().saturating_sub(1);
    match failed.into_iter().next() {
        None => Ok(()),
        Some(first) if more == 0 => Err(first),
        Some(first) => Err(first.with_hint(format!(
            "and {more} more workspace{} failed",
            if more == 1 { "" } else { "s" }
        ))),
    }
}

/// One workspace's bots, page by page.
fn bots_of(
    client: &Client<'_>,
    workspace: &str,
    name: &str,
    status: Publish,
    out: &mut Out,
) -> Result<()> {
    walk(
        |n| client.list_bots(workspace, status, n, PAGE),
        "id",
        |item| out.bot(records::listed_bot(item, workspace)?, name),
    )
    .map_err(|e| {
        let label = match name {
            "" => workspace.to_owned(),
            n => format!("{workspace} ({n})"),
        };
        permission(e, Need::ListBot(workspace))
            .context(format!("listing the bots of workspace {label}"))
    })
}

/// `coze-bot get`: the bot's configuration, published or the draft.
fn get(client: &Client<'_>, bot: &str, draft: bool, out: &mut Out) -> Result<()> {
    let what = || {
        format!(
            "reading bot {bot}{}",
            if draft { " (its draft)" } else { "" }
        )
    };
    let info = client
        .bot(bot, draft)
        .map_err(|e| not_found(permission(e, Need::GetBot)).context(what()))?;
    let rec = records::bot_info(info).map_err(|e| e.context(what()))?;
    out.bot_info(rec, draft)
}

/// What the call needed, for the advice on a refusal.
enum Need<'a> {
    ListBot(&'a str),
    Workspaces,
    GetBot,
}

/// A refusal for want of a permission (coze.cn's 4101: "Your token does not have
/// permission to access resource", which does not say which) with the one to add; a
/// server without the endpoint (a self-hosted Coze Studio) with what does work there.
/// Other errors pass unchanged.
fn permission(e: Error, need: Need<'_>) -> Error {
    if e.api().is_some_and(|a| a.is_missing_endpoint()) {
        return e.with_hint(
            "a self-hosted Coze Studio lists bots and workspaces only in its web pages; \
             coze-bot get BOT_ID reads a bot there",
        );
    }
    if e.api().and_then(|a| a.coze_code()) != Some(4101) {
        return e;
    }
    let advice = match need {
        Need::ListBot(w) => format!(
            "the token needs the listBot permission in workspace {w}: add it to the \
             token's permissions (coze-bot workspaces shows the workspaces it sees)"
        ),
        Need::Workspaces => "the token needs the permission to list workspaces: add it to \
                             the token's permissions, or name one with --workspace ID"
            .to_owned(),
        Need::GetBot => "the token needs the permission to read bots in the bot's \
                         workspace: add it to the token's permissions (coze-bot list shows \
                         your bots)"
            .to_owned(),
    };
    e.with_hint(advice)
}

/// A bot id the server does not know: coze.cn's 4200 ("Requested resource bot_id=…
/// does not exist"), or a self-hosted Coze Studio's 100000003 ("agent not exist",
/// also for a bot not published), with where ids are found.
fn not_found(e: Error) -> Error {
    match e.api().and_then(|a| a.coze_code()) {
        Some(4200) => e.with_hint("coze-bot list shows your bots"),
        Some(100_000_003) => e.with_hint(
            "the bot is not published, or not yours; a bot's id is in its address in the \
             Studio's web pages",
        ),
        _ => e,
    }
}
