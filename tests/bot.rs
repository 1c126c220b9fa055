//! coze-bot end to end: the real binary against coze-fake. `list` walks every page of
//! every workspace (the request log shows the pages asked for), one workspace, the
//! --status filter; `workspaces`; `get`, published and draft, in both dialects; the
//! records on a pipe against the table (and the summary) on a terminal, --json, a
//! narrow and a dumb terminal, a bot's name full of control characters; the errors:
//! an unknown bot, a token without a permission, a Studio without the lists, one
//! workspace failing among others, usage errors that send nothing.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};

use crate::both_dialects;
use crate::util::*;

const PERSONAL: &str = "7400000000000000001";
const TEAM: &str = "7400000000000000002";

fn bot(sb: &Sandbox) -> Command {
    sb.cmd("coze-bot")
}

fn set_bots(sb: &Sandbox, settings: Value) {
    sb.fake.set_bots(settings).expect("bot settings");
}

/// The log's entries for `endpoint`, oldest first.
fn logged(sb: &Sandbox, endpoint: &str) -> Vec<Value> {
    sb.fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == endpoint)
        .cloned()
        .collect()
}

/// Runs `coze-bot ARGS` on a terminal (script(1) gives it one) with `env` (like
/// `COLUMNS=40`) before it; the screen's lines, carriage returns dropped.
fn on_a_terminal(sb: &Sandbox, env: &str, args: &str) -> (Run, Vec<String>) {
    let inner = format!("{env} \"$BOT_BIN\" {args}");
    let r = run(
        sb.cmd("script")
            .env("BOT_BIN", bin("coze-bot"))
            .args(["-qec", &inner, "/dev/null"]),
        "",
    );
    let lines = r
        .stdout
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect();
    (r, lines)
}

/// The display width of a terminal line: a CJK character takes two cells.
fn cells(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x3000..=0x9FFF | 0xFF00..=0xFF60 => 2,
            _ => 1,
        })
        .sum()
}

// ---------------------------------------------------------------- list

/// 120 bots in one workspace and 3 in the other: without --workspace, the workspaces
/// are listed, then each one's bots page by page (50 a page: 3 pages, then 1), every
/// bot written once with the workspace it came from.
#[test]
fn list_walks_every_page_of_every_workspace() {
    let sb = logged_in("bot-list-pages");
    set_bots(
        &sb,
        json!({"generate": {"workspace_id": TEAM, "count": 120}}),
    );
    set_bots(
        &sb,
        json!({"generate": {"workspace_id": PERSONAL, "count": 3}}),
    );
    let r = run(bot(&sb).arg("list"), "");
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 123, "{}", r.describe());
    let ids: BTreeSet<&str> = recs.iter().map(|b| b["bot_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 123, "a bot written twice");
    for (i, rec) in recs.iter().enumerate() {
        assert_eq!(rec["type"], "bot");
        assert!(rec["name"].as_str().unwrap().starts_with("bot "));
        assert!(rec.get("id").is_none(), "{rec}");
        let ws = if i < 3 { PERSONAL } else { TEAM };
        assert_eq!(rec["workspace_id"], ws, "{rec}");
    }
    assert_eq!(keys(&recs[0])[..2], ["type", "bot_id"]);
    assert_eq!(logged(&sb, "workspaces.list").len(), 1);
    let pages: Vec<(String, String)> = logged(&sb, "bots.list")
        .iter()
        .map(|e| {
            let q = &e["query"];
            assert_eq!(q["page_size"], "50", "{e}");
            assert_eq!(q["publish_status"], "all", "{e}");
            let field = |k: &str| q[k].as_str().unwrap().to_owned();
            (field("workspace_id"), field("page_num"))
        })
        .collect();
    let expected: Vec<(String, String)> = [(PERSONAL, "1"), (TEAM, "1"), (TEAM, "2"), (TEAM, "3")]
        .iter()
        .map(|(w, p)| (w.to_string(), p.to_string()))
        .collect();
    assert_eq!(pages, expected);
}

/// --workspace lists that one only, without asking for the workspaces; --status is
/// sent as the API's publish_status and filters.
#[test]
fn one_workspace_and_the_status_filter() {
    let sb = logged_in("bot-list-status");
    set_bots(
        &sb,
        json!({"bots": [
            {"id": "7600000000000000001", "name": "live", "workspace_id": TEAM},
            {"id": "7600000000000000002", "name": "sketch", "workspace_id": TEAM, "published": false},
            {"id": "7600000000000000003", "name": "elsewhere"},
        ]}),
    );
    let names = |status: &str| {
        let r = run(
            bot(&sb).args(["list", "--workspace", TEAM, "--status", status]),
            "",
        );
        r.ok();
        r.records()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("published"), ["live"]);
    assert_eq!(names("draft"), ["sketch"]);
    assert_eq!(names("all"), ["live", "sketch"]);
    let sent: Vec<String> = logged(&sb, "bots.list")
        .iter()
        .map(|e| e["query"]["publish_status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["published_online", "unpublished_draft", "all"]);
    assert!(logged(&sb, "workspaces.list").is_empty());
    // The draft is said to be one.
    let r = run(bot(&sb).args(["list", "--workspace", TEAM]), "");
    let recs = r.records();
    assert_eq!(recs[1]["is_published"], false);
    assert_eq!(recs[1]["workspace_id"], TEAM);
}

#[test]
fn workspaces_are_records_on_a_pipe_and_a_table_on_a_terminal() {
    let sb = logged_in("bot-workspaces");
    let r = run(bot(&sb).arg("workspaces"), "");
    r.ok();
    assert_eq!(
        r.records(),
        [
            json!({"type": "workspace", "workspace_id": PERSONAL, "name": "个人空间", "icon_url": "",
                   "role_type": "owner", "workspace_type": "personal", "enterprise_id": ""}),
            json!({"type": "workspace", "workspace_id": TEAM, "name": "Team", "icon_url": "",
                   "role_type": "member", "workspace_type": "team", "enterprise_id": ""}),
        ]
    );
    let (r, lines) = on_a_terminal(&sb, "COLUMNS=200", "workspaces");
    r.ok();
    assert_eq!(
        lines,
        [
            "ID                   NAME      ROLE    TYPE",
            "7400000000000000001  个人空间  owner   personal",
            "7400000000000000002  Team      member  team",
        ],
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------- tables

/// On a terminal: an aligned table (the columns start where their headers do, CJK
/// counted as two cells), nothing of JSON; --json gives the records there too.
#[test]
fn a_table_on_a_terminal_and_lines_with_json() {
    let sb = logged_in("bot-table");
    set_bots(
        &sb,
        json!({"bots": [
            {"id": "7600000000000000001", "name": "导师 Tutor", "workspace_id": TEAM},
            {"id": "7600000000000000002", "name": "sketch", "published": false},
        ]}),
    );
    let (r, lines) = on_a_terminal(&sb, "COLUMNS=200", "list");
    r.ok();
    assert_eq!(lines.len(), 3, "{}", r.describe());
    assert!(!r.stdout.contains('{'), "{}", r.describe());
    let header = &lines[0];
    assert!(
        header.starts_with("ID                   NAME"),
        "{header:?}"
    );
    for h in ["STATUS", "UPDATED", "WORKSPACE"] {
        assert!(header.contains(h), "{header:?}");
    }
    // Every row's STATUS starts in the header's STATUS column, counted in cells.
    let col = cells(&header[..header.find("STATUS").unwrap()]);
    let rows = &lines[1..];
    assert!(
        rows[0].starts_with("7600000000000000002  sketch"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("7600000000000000001  导师 Tutor"),
        "{rows:?}"
    );
    for (row, status) in rows.iter().zip(["draft", "published"]) {
        let at = row.find(status).unwrap_or_else(|| panic!("{row:?}"));
        assert_eq!(cells(&row[..at]), col, "{lines:#?}");
        assert!(!row.ends_with(' '), "{row:?}");
    }
    assert!(rows[0].ends_with("个人空间"), "{rows:?}");
    assert!(rows[1].ends_with("Team"), "{rows:?}");

    let (r, lines) = on_a_terminal(&sb, "", "list --json");
    r.ok();
    let recs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["type"], "bot");
}

/// A narrow terminal cuts the name first and every line to its width; a dumb one, or
/// a pipe, cuts nothing.
#[test]
fn a_narrow_terminal_cuts_and_a_dumb_one_does_not() {
    let sb = logged_in("bot-narrow");
    let long = "a bot whose name goes on and on, far past any column";
    set_bots(
        &sb,
        json!({"bots": [{"id": "7600000000000000001", "name": long}]}),
    );
    let (r, lines) = on_a_terminal(&sb, "COLUMNS=50", &format!("list --workspace {PERSONAL}"));
    r.ok();
    assert_eq!(lines.len(), 2, "{}", r.describe());
    for l in &lines {
        assert!(cells(l) <= 50, "{l:?} is wider than 50");
    }
    assert!(lines[1].contains('…'), "{lines:?}");
    assert!(
        lines[1].contains("published"),
        "the status column stays: {lines:?}"
    );

    let (r, lines) = on_a_terminal(
        &sb,
        "TERM=dumb COLUMNS=50",
        &format!("list --workspace {PERSONAL}"),
    );
    r.ok();
    assert!(lines[1].contains(long), "{lines:?}");
}

/// A bot's name carrying a title change, a screen clear, a bell and an 8-bit CSI is
/// shown (`^[`) in the table and the summary, never obeyed; on a pipe the record keeps
/// it exactly, as JSON escapes.
#[test]
fn control_characters_in_a_bot_name_never_reach_the_terminal_raw() {
    let sb = logged_in("bot-escapes");
    let evil = "evil\u{1b}]2;pwned\u{7}\u{1b}[2J\u{9b}31m\nbot";
    set_bots(
        &sb,
        json!({"bots": [{"id": "7600000000000000001", "name": evil,
                         "prologue": "hi\u{1b}[5m", "suggested_questions": ["q\u{7}"]}]}),
    );
    for args in ["list", "get 7600000000000000001"] {
        let (r, _) = on_a_terminal(&sb, "COLUMNS=200", args);
        r.ok();
        for raw in ["\u{1b}", "\u{7}", "\u{9b}"] {
            assert!(
                !r.stdout.contains(raw),
                "{args}: {raw:?} reached the terminal:\n{}",
                r.describe()
            );
        }
        assert!(
            r.stdout.contains("evil^[]2;pwned^G^[[2J^[[31m"),
            "{}",
            r.describe()
        );
    }
    let r = run(bot(&sb).args(["list", "--workspace", PERSONAL]), "");
    assert_eq!(r.records()[0]["name"], evil);
}

// ---------------------------------------------------------------- get

/// The whole configuration as one `bot` record: the published version, or with
/// --draft the one being edited (is_published=false on the wire).
fn get_reads_a_bots_configuration(d: Dialect) {
    let sb = logged_in_as("bot-get", d);
    set_bots(
        &sb,
        json!({"bots": [{
            "id": "7600000000000000009", "name": "Tutor", "description": "teaches",
            "prologue": "你好！", "suggested_questions": ["What is 2+2?", "Why?"],
            "info": {"plugin_info_list": [{"plugin_id": "1", "name": "search", "description": "",
                         "icon_url": "", "api_info_list": [{"api_id": "2", "name": "web", "description": ""}]}],
                     "workflow_info_list": [{"id": "3", "name": "wf", "description": "", "icon_url": ""}],
                     "shortcut_commands": [{"id": "4", "name": "weather", "command": "/weather",
                                            "description": "today's", "query_template": "", "icon_url": ""}]},
            "draft": {"onboarding_info": {"prologue": "draft hello"}},
        }]}),
    );
    let r = run(bot(&sb).args(["get", "7600000000000000009"]), "");
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    let rec = &recs[0];
    assert_eq!(keys(rec)[..2], ["type", "bot_id"]);
    assert_eq!(rec["bot_id"], "7600000000000000009");
    assert_eq!(rec["name"], "Tutor");
    assert_eq!(rec["onboarding_info"]["prologue"], "你好！");
    assert_eq!(
        rec["onboarding_info"]["suggested_questions"],
        json!(["What is 2+2?", "Why?"])
    );
    assert!(rec["model_info"]["model_id"].is_string());
    assert!(rec["prompt_info"]["prompt"].is_string());
    assert_eq!(rec["shortcut_commands"][0]["command"], "/weather");
    if sb.studio() {
        assert_eq!(rec["plugin_info_list"][0]["api_name"], "web");
        assert_eq!(rec["workflow_info_list"][0]["workflow_name"], "wf");
    } else {
        assert_eq!(
            rec["plugin_info_list"][0]["api_info_list"][0]["name"],
            "web"
        );
        assert_eq!(rec["workflow_info_list"][0]["name"], "wf");
    }
    let r = run(bot(&sb).args(["get", "7600000000000000009", "--draft"]), "");
    r.ok();
    let draft = &r.records()[0];
    // A Studio reads the published version whatever is asked.
    let want = if sb.studio() {
        "你好！"
    } else {
        "draft hello"
    };
    assert_eq!(draft["onboarding_info"]["prologue"], want);
    let asked: Vec<Value> = logged(&sb, "bots.get")
        .iter()
        .map(|e| e["query"]["is_published"].clone())
        .collect();
    assert_eq!(asked, [json!("true"), json!("false")]);
    assert_eq!(
        logged(&sb, "bots.get")[0]["path"],
        "/v1/bots/7600000000000000009"
    );

    // On a terminal: the summary, the questions numbered.
    let (r, lines) = on_a_terminal(&sb, "", "get 7600000000000000009");
    r.ok();
    let has = |l: &str| lines.iter().any(|x| x == l);
    for l in [
        "name        Tutor",
        "id          7600000000000000009",
        "prologue    你好！",
        "questions   1. What is 2+2?",
        "            2. Why?",
        "shortcuts   /weather (weather): today's",
    ] {
        assert!(has(l), "no {l:?} in\n{}", r.describe());
    }
    let plugins = if sb.studio() {
        "plugins     1: web"
    } else {
        "plugins     search: web"
    };
    assert!(has(plugins), "no {plugins:?} in\n{}", r.describe());
    assert!(has("workflows   wf (3)"), "{}", r.describe());
}

/// A bot id the server does not know: its error, and where ids are found; exit 1.
fn an_unknown_bot_says_where_ids_are(d: Dialect) {
    let sb = logged_in_as("bot-unknown", d);
    let r = run(bot(&sb).args(["get", "7699999999999999999"]), "");
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    let line = r.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{}", r.describe());
    assert!(
        line.starts_with("coze-bot: reading bot 7699999999999999999: code "),
        "{}",
        r.describe()
    );
    let (code, advice) = if sb.studio() {
        ("code 100000003", "a bot's id is in its address")
    } else {
        ("code 4200", "coze-bot list shows your bots")
    };
    assert!(line.contains(code), "{}", r.describe());
    assert!(line.contains(advice), "{}", r.describe());
    assert!(line.contains("(logid "), "{}", r.describe());
}

both_dialects!(
    get_reads_a_bots_configuration,
    an_unknown_bot_says_where_ids_are
);

// ---------------------------------------------------------------- refusals

/// A token without a permission: the API's 4101 (exit 4, as every refusal of the
/// token) and which permission to add.
#[test]
fn a_denied_permission_names_the_one_to_add() {
    let sb = logged_in("bot-denied");
    set_bots(
        &sb,
        json!({"generate": {"count": 1}, "denied": ["bots.list", "workspaces.list", "bots.get"]}),
    );
    for (args, said) in [
        (
            vec!["list", "--workspace", PERSONAL],
            "the token needs the listBot permission in workspace 7400000000000000001",
        ),
        (vec!["list"], "the permission to list workspaces"),
        (vec!["workspaces"], "the permission to list workspaces"),
        (
            vec!["get", "7500000000000000001"],
            "the permission to read bots",
        ),
    ] {
        let r = run(bot(&sb).args(&args), "");
        r.expect_code(4);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert!(r.stderr.contains("code 4101"), "{}", r.describe());
        assert!(r.stderr.contains(said), "{args:?}: {}", r.describe());
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.describe());
    }
}

/// One workspace's bots failing does not hide the others': they are written, then the
/// failure is the command's.
#[test]
fn one_workspace_failing_does_not_hide_the_others() {
    let sb = logged_in("bot-one-fails");
    set_bots(&sb, json!({"generate": {"workspace_id": TEAM, "count": 2}}));
    sb.fake.push_fault(
        "bots.list",
        json!({"type": "api_error", "code": 4000, "msg": "invalid parameter"}),
        1,
    );
    let r = run(bot(&sb).arg("list"), "");
    r.expect_code(1);
    assert_eq!(r.records().len(), 2, "{}", r.describe());
    assert!(
        r.stderr
            .contains("listing the bots of workspace 7400000000000000001 (个人空间): code 4000"),
        "{}",
        r.describe()
    );
}

/// A self-hosted Coze Studio has neither list: each says the server does not offer
/// it (exit 1, not an authentication failure), and what works there.
#[test]
fn a_studio_lacks_the_lists() {
    let sb = logged_in_as("bot-studio-lists", Dialect::Studio);
    for (args, path) in [
        (vec!["list"], "GET /v1/workspaces"),
        (vec!["workspaces"], "GET /v1/workspaces"),
        (vec!["list", "--workspace", PERSONAL], "GET /v1/bots"),
    ] {
        let r = run(bot(&sb).args(&args), "");
        r.expect_code(1);
        assert!(
            r.stderr
                .contains(&format!("this server does not offer {path}")),
            "{args:?}: {}",
            r.describe()
        );
        assert!(r.stderr.contains("coze-bot get BOT_ID"), "{}", r.describe());
    }
    // On a terminal: the one error line, no table and no "none found" before it.
    let (r, lines) = on_a_terminal(&sb, "", "list");
    r.expect_code(1);
    assert_eq!(lines.len(), 1, "{}", r.describe());
    assert!(lines[0].starts_with("coze-bot: listing the workspaces: this server does not offer"));
}

/// An empty list on a terminal says so (on stderr); on a pipe it is simply empty.
#[test]
fn an_empty_list_says_so_on_a_terminal_only() {
    let sb = logged_in("bot-empty");
    let (r, lines) = on_a_terminal(&sb, "", "list");
    r.ok();
    assert_eq!(lines, ["coze-bot: none found"], "{}", r.describe());
    let r = run(bot(&sb).arg("list"), "");
    r.ok();
    assert!(
        r.stdout.is_empty() && r.stderr.is_empty(),
        "{}",
        r.describe()
    );
}

/// Usage errors exit 2 before any request.
#[test]
fn usage_errors_send_nothing() {
    let sb = logged_in("bot-usage");
    let before = sb.fake.log().as_array().unwrap().len();
    for args in [
        vec![],
        vec!["get"],
        vec!["get", "../v1/workspaces"],
        vec!["list", "--draft"],
        vec!["list", "--status", "live"],
        vec!["frob"],
    ] {
        let r = run(bot(&sb).args(&args), "");
        r.expect_code(2);
        assert!(r.stdout.is_empty());
        assert!(r.stderr.starts_with("coze-bot: "), "{}", r.describe());
    }
    assert_eq!(sb.fake.log().as_array().unwrap().len(), before);
}
