//! Bots and workspaces (the Coze API docs' `list_workspace`,
//! `bots_list_draft_published`, `get_metadata_draft_published` and `get_metadata`):
//! `GET /v1/workspaces`, `GET /v1/bots` (a workspace's bots, filtered by
//! `publish_status`), `GET /v1/bots/{id}` and the older `GET /v1/bot/get_online_info`
//! (one bot's `BotInfo`). Both lists page by number and say only their total (`total`,
//! `total_count`), never `has_more`. What the fake knows is set by `/_fake/bots`
//! ([`Catalog::set`]); `denied` makes an endpoint answer as for a token without its
//! permission. A self-hosted Coze Studio serves only the two single-bot paths, in its
//! own shapes ([`studio_info`]).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::http::{Reply, Request};
use crate::router::{err, ok, studio, Ctx};
use crate::util::now_s;
use crate::App;

/// The API's most per page (`list_workspace`: "max 50"; the bot list is held to the same).
const MAX_PAGE: usize = 50;

/// The first id `generate` hands out; each generated bot takes the next.
const FIRST_GENERATED: u64 = 7_500_000_000_000_000_001;

/// The endpoints `denied` may name (their fault and log names).
const DENIABLE: &[&str] = &["bots.list", "workspaces.list", "bots.get", "users.me"];

/// coze.cn's answer to a token without the permission an endpoint needs (seen in
/// coze-dev/coze-py issue #227): code 4101, HTTP 200. It does not name the permission.
pub const DENIED: (i64, &str) = (
    4101,
    "Your token does not have permission to access resource. Please verify whether the resource ID or token is correct.",
);

/// One bot the fake knows.
#[derive(Clone, Debug)]
pub struct BotEntry {
    pub id: String,
    pub name: String,
    pub workspace_id: String,
    pub description: String,
    pub published: bool,
    pub prologue: String,
    pub suggested_questions: Vec<String>,
    /// BotInfo fields merged over the generated ones (objects merged key by key).
    pub info: Map<String, Value>,
    /// Merged over `info` for the draft (`is_published=false`).
    pub draft: Map<String, Value>,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Everything `/_fake/bots` sets.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub workspaces: Vec<Value>,
    pub bots: Vec<BotEntry>,
    pub denied: BTreeSet<String>,
    next_id: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            workspaces: default_workspaces(),
            bots: Vec::new(),
            denied: BTreeSet::new(),
            next_id: FIRST_GENERATED,
        }
    }
}

fn default_workspaces() -> Vec<Value> {
    vec![
        json!({"id": "7400000000000000001", "name": "个人空间", "icon_url": "",
               "role_type": "owner", "workspace_type": "personal", "enterprise_id": ""}),
        json!({"id": "7400000000000000002", "name": "Team", "icon_url": "",
               "role_type": "member", "workspace_type": "team", "enterprise_id": ""}),
    ]
}

/// An id given as a string or a whole number, as a string.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn string_field(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}.{key} must be a string")),
    }
}

fn object_field(o: &Map<String, Value>, key: &str, at: &str) -> Result<Map<String, Value>, String> {
    match o.get(key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("{at}.{key} must be an object")),
    }
}

impl Catalog {
    /// Apply a `/_fake/bots` body: each key present replaces that part (`generate` adds
    /// to the bots), `{}` restores the defaults. Err names the field that is wrong; the
    /// catalog is left as it was.
    pub fn set(&mut self, v: &Value) -> Result<(), String> {
        let Some(o) = v.as_object() else {
            return Err("bots settings must be a JSON object".into());
        };
        if let Some(k) = o
            .keys()
            .find(|k| !["workspaces", "bots", "generate", "denied"].contains(&k.as_str()))
        {
            return Err(format!("unknown field {k:?}"));
        }
        if o.is_empty() {
            *self = Catalog::default();
            return Ok(());
        }
        let mut next = self.clone();
        if let Some(ws) = o.get("workspaces") {
            next.workspaces = parse_workspaces(ws)?;
        }
        let now = now_s();
        if let Some(bots) = o.get("bots") {
            let Some(list) = bots.as_array() else {
                return Err("bots must be an array".into());
            };
            next.bots.clear();
            for (i, b) in list.iter().enumerate() {
                let bot = next.parse_bot(b, &format!("bots[{i}]"), now - i as u64 * 60)?;
                next.bots.push(bot);
            }
        }
        if let Some(g) = o.get("generate") {
            next.generate(g, now)?;
        }
        if let Some(d) = o.get("denied") {
            let names = d
                .as_array()
                .ok_or("denied must be an array of endpoint names")?;
            let mut denied = BTreeSet::new();
            for n in names {
                match n.as_str() {
                    Some(s) if DENIABLE.contains(&s) => {
                        denied.insert(s.to_string());
                    }
                    _ => return Err(format!("denied: {n} is not one of {}", DENIABLE.join(", "))),
                }
            }
            next.denied = denied;
        }
        *self = next;
        Ok(())
    }

    fn parse_bot(&self, b: &Value, at: &str, updated_at: u64) -> Result<BotEntry, String> {
        let o = b.as_object().ok_or(format!("{at} must be an object"))?;
        let id = id_of(o.get("id")).ok_or(format!("{at}.id must be a non-empty string"))?;
        let name = string_field(o, "name", at)?.ok_or(format!("{at}.name is required"))?;
        let workspace_id = match o.get("workspace_id") {
            None => self.first_workspace()?,
            v => id_of(v).ok_or(format!("{at}.workspace_id must be a non-empty string"))?,
        };
        let published = match o.get("published") {
            None => true,
            Some(Value::Bool(p)) => *p,
            Some(_) => return Err(format!("{at}.published must be true or false")),
        };
        let suggested_questions = match o.get("suggested_questions") {
            None => Vec::new(),
            Some(Value::Array(qs)) => qs
                .iter()
                .map(|q| q.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("{at}.suggested_questions must be strings"))?,
            Some(_) => return Err(format!("{at}.suggested_questions must be an array")),
        };
        Ok(BotEntry {
            id,
            name,
            workspace_id,
            description: string_field(o, "description", at)?.unwrap_or_default(),
            published,
            prologue: string_field(o, "prologue", at)?.unwrap_or_default(),
            suggested_questions,
            info: object_field(o, "info", at)?,
            draft: object_field(o, "draft", at)?,
            created_at: updated_at.saturating_sub(86_400),
            updated_at,
        })
    }

    fn first_workspace(&self) -> Result<String, String> {
        self.workspaces
            .first()
            .and_then(|w| id_of(w.get("id")))
            .ok_or_else(|| "a bot needs a workspace_id when there are no workspaces".into())
    }

    /// `{"workspace_id","count","published"?}`: COUNT bots "bot 1".."bot N", with ids
    /// handed out in order, so a test sees the same ids on every run.
    fn generate(&mut self, g: &Value, now: u64) -> Result<(), String> {
        let o = g.as_object().ok_or("generate must be an object")?;
        let workspace_id = match o.get("workspace_id") {
            None => self.first_workspace()?,
            v => id_of(v).ok_or("generate.workspace_id must be a non-empty string")?,
        };
        let count = o
            .get("count")
            .and_then(Value::as_u64)
            .filter(|&c| c <= 100_000)
            .ok_or("generate.count must be a number from 0 to 100000")?;
        let published = match o.get("published") {
            None => true,
            Some(Value::Bool(p)) => *p,
            Some(_) => return Err("generate.published must be true or false".into()),
        };
        for n in 1..=count {
            let id = self.next_id.to_string();
            self.next_id += 1;
            self.bots.push(BotEntry {
                id,
                name: format!("bot {n}"),
                workspace_id: workspace_id.clone(),
                description: format!("generated bot {n}"),
                published,
                prologue: String::new(),
                suggested_questions: Vec::new(),
                info: Map::new(),
                draft: Map::new(),
                created_at: now.saturating_sub(86_400),
                updated_at: now.saturating_sub(n),
            });
        }
        Ok(())
    }

    /// The state, as `GET /_fake/bots` shows it.
    pub fn to_json(&self) -> Value {
        let bots: Vec<Value> = self
            .bots
            .iter()
            .map(|b| {
                json!({"id": b.id, "name": b.name, "workspace_id": b.workspace_id,
                       "description": b.description, "published": b.published,
                       "prologue": b.prologue, "suggested_questions": b.suggested_questions,
                       "info": b.info, "draft": b.draft, "updated_at": b.updated_at})
            })
            .collect();
        json!({"workspaces": self.workspaces, "bots": bots, "denied": self.denied})
    }

    fn bot(&self, id: &str) -> Option<&BotEntry> {
        self.bots.iter().find(|b| b.id == id)
    }
}

fn parse_workspaces(ws: &Value) -> Result<Vec<Value>, String> {
    let list = ws.as_array().ok_or("workspaces must be an array")?;
    let mut out = Vec::new();
    for (i, w) in list.iter().enumerate() {
        let at = format!("workspaces[{i}]");
        let o = w.as_object().ok_or(format!("{at} must be an object"))?;
        let id = id_of(o.get("id")).ok_or(format!("{at}.id must be a non-empty string"))?;
        let name = string_field(o, "name", &at)?.ok_or(format!("{at}.name is required"))?;
        let mut full = json!({"id": id, "name": name, "icon_url": "", "role_type": "owner",
                              "workspace_type": "personal", "enterprise_id": ""});
        for k in ["role_type", "workspace_type", "icon_url", "enterprise_id"] {
            if let Some(v) = string_field(o, k, &at)? {
                full[k] = json!(v);
            }
        }
        out.push(full);
    }
    Ok(out)
}

/// `b` merged into `a`: objects key by key, anything else replaced.
fn merge(a: &mut Value, b: &Map<String, Value>) {
    let Some(a) = a.as_object_mut() else { return };
    for (k, v) in b {
        match (a.get_mut(k), v) {
            (Some(old @ Value::Object(_)), Value::Object(new)) => merge(old, new),
            _ => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A bot's `BotInfo` as coze.cn answers it (`get_metadata_draft_published`), the
/// settings' `info` (and for the draft, `draft`) merged over it.
pub fn bot_info(app: &App, b: &BotEntry, draft: bool) -> Value {
    let mut info = json!({
        "bot_id": b.id,
        "name": b.name,
        "description": b.description,
        "icon_url": format!("{}/static/bot.png", app.base_url),
        "create_time": b.created_at,
        "update_time": b.updated_at,
        "version": format!("{}000", b.updated_at),
        "owner_user_id": crate::oauth::USER_ID,
        "folder_id": "",
        "bot_mode": 0,
        "prompt_info": {"prompt": format!("You are {}.", b.name), "prompt_mode": "standard"},
        "onboarding_info": {"prologue": b.prologue, "suggested_questions": b.suggested_questions},
        "model_info": {"model_id": "1737521813", "model_name": "豆包·1.5·Pro·32k",
                       "temperature": 0.8, "top_p": 0.7, "max_tokens": 4096,
                       "context_round": 3, "response_format": "text",
                       "presence_penalty": 0.0, "frequency_penalty": 0.0},
        "plugin_info_list": [],
        "knowledge": {"knowledge_infos": []},
        "workflow_info_list": [],
        "shortcut_commands": [],
        "variables": [],
        "voice_info_list": [],
        "default_user_input_type": "text",
        "suggest_reply_info": {"reply_mode": "enable", "customized_prompt": ""},
        "media_config": {"is_voice_call_closed": true},
    });
    merge(&mut info, &b.info);
    if draft {
        merge(&mut info, &b.draft);
    }
    info
}

/// The same bot as a self-hosted Coze Studio's `OpenAPIBotInfo`
/// (`backend/api/model/app/bot_common/bot_common.go`, filled by `getAgentInfo` in
/// `backend/application/singleagent/single_agent.go`): ids as strings, no times
/// (never set: 0), no owner or folder, a model without its name, one plugin entry per
/// API (`plugin_id`, `api_id`, `api_name`), workflows as `workflow_id`,
/// `workflow_name`, `desc`, and null for what it leaves unset.
pub fn studio_info(app: &App, b: &BotEntry) -> Value {
    let c = bot_info(app, b, false);
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let model = c.get("model_info").map(|m| {
        let mut m = m.clone();
        if let Some(o) = m.as_object_mut() {
            o.remove("model_name");
            o.remove("context_round");
            if let Some(id) = o.get("model_id").and_then(id_text) {
                o.insert("model_id".into(), json!(id));
            }
        }
        m
    });
    let plugins: Vec<Value> = list(&c, "plugin_info_list")
        .iter()
        .flat_map(|p| {
            let pid = p.get("plugin_id").and_then(id_text).unwrap_or_default();
            list(p, "api_info_list")
                .into_iter()
                .map(move |a| {
                    json!({"plugin_id": pid,
                           "api_id": a.get("api_id").and_then(id_text).unwrap_or_default(),
                           "api_name": a.get("name").cloned().unwrap_or(json!(""))})
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let workflows: Vec<Value> = list(&c, "workflow_info_list")
        .iter()
        .map(|w| {
            json!({"workflow_id": w.get("id").and_then(id_text).unwrap_or_default(),
                   "workflow_name": w.get("name").cloned().unwrap_or(json!("")),
                   "desc": w.get("description").cloned().unwrap_or(json!("")),
                   "flow_mode": 0})
        })
        .collect();
    let shortcuts: Vec<Value> = list(&c, "shortcut_commands")
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                for k in ["id", "agent_id"] {
                    if let Some(id) = o.get(k).and_then(id_text) {
                        o.insert(k.into(), json!(id));
                    }
                }
                o.entry("send_type").or_insert(json!("query"));
            }
            s
        })
        .collect();
    let mut info = json!({
        "bot_id": b.id,
        "name": get("name"),
        "description": get("description"),
        "icon_url": get("icon_url"),
        "create_time": 0,
        "update_time": 0,
        "version": get("version"),
        "prompt_info": {"prompt": c.pointer("/prompt_info/prompt").cloned().unwrap_or(json!(""))},
        "onboarding_info": get("onboarding_info"),
        "bot_mode": 0,
        "plugin_info_list": plugins,
        "workflow_info_list": workflows,
        "shortcut_commands": if shortcuts.is_empty() { Value::Null } else { json!(shortcuts) },
        "default_user_input_type": "",
        "suggest_reply_info": null,
        "background_image_info": null,
        "variables": null,
    });
    if let Some(m) = model {
        info["model_info"] = m;
    }
    info
}

fn list(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An id as the text Studio's `,string` tags write.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The page asked for: `page_num` (coze-py's `_list_v2` sends `page_index` instead,
/// taken when `page_num` is absent) and `page_size`, each 1 or more, the size at most
/// 50; defaults 1 and 20. Err is the 4000 answer's message.
fn paging(req: &Request) -> Result<(usize, usize), String> {
    let num = |k: &str| req.query(k).map(|v| v.parse::<usize>().ok());
    let page_num = num("page_num")
        .or_else(|| num("page_index"))
        .unwrap_or(Some(1));
    let page_size = num("page_size").unwrap_or(Some(20));
    match (page_num, page_size) {
        (Some(n), Some(s)) if n >= 1 && (1..=MAX_PAGE).contains(&s) => Ok((n, s)),
        _ => Err(format!(
            "invalid parameter: page_num must be 1 or more and page_size from 1 to {MAX_PAGE}"
        )),
    }
}

fn page_of<T: Clone>(all: &[T], page_num: usize, page_size: usize) -> Vec<T> {
    all.iter()
        .skip((page_num - 1).saturating_mul(page_size))
        .take(page_size)
        .cloned()
        .collect()
}

/// The permission error, when the settings deny `endpoint`.
pub fn denied(app: &App, ctx: &Ctx, endpoint: &str) -> Option<Reply> {
    app.lock()
        .bots
        .denied
        .contains(endpoint)
        .then(|| err(ctx, DENIED.0, DENIED.1))
}

/// `GET /v1/workspaces`.
pub fn workspaces(app: &App, req: &Request, ctx: &Ctx) -> Reply {
    if let Some(r) = denied(app, ctx, "workspaces.list") {
        return r;
    }
    let (page_num, page_size) = match paging(req) {
        Ok(p) => p,
        Err(m) => return err(ctx, 4000, &m),
    };
    let st = app.lock();
    let all = &st.bots.workspaces;
    let page = page_of(all, page_num, page_size);
    ok(ctx, json!({"workspaces": page, "total_count": all.len()}))
}

/// `GET /v1/bots?workspace_id&publish_status&page_num&page_size`.
pub fn list_bots(app: &App, req: &Request, ctx: &Ctx) -> Reply {
    if let Some(r) = denied(app, ctx, "bots.list") {
        return r;
    }
    let Some(workspace) = req.query("workspace_id").filter(|w| !w.is_empty()) else {
        return err(ctx, 4000, "invalid parameter: workspace_id is required");
    };
    let status = req.query("publish_status").unwrap_or("published_online");
    let keep: fn(&BotEntry) -> bool = match status {
        "published_online" | "published_draft" => |b| b.published,
        "unpublished_draft" => |b| !b.published,
        "all" => |_| true,
        _ => {
            return err(
                ctx,
                4000,
                "invalid parameter: publish_status must be all, published_online, published_draft or unpublished_draft",
            )
        }
    };
    let (page_num, page_size) = match paging(req) {
        Ok(p) => p,
        Err(m) => return err(ctx, 4000, &m),
    };
    let st = app.lock();
    // A workspace the token does not see is, to coze.cn, a resource it may not touch.
    if !st
        .bots
        .workspaces
        .iter()
        .any(|w| w.get("id").and_then(Value::as_str) == Some(workspace))
    {
        return err(ctx, DENIED.0, DENIED.1);
    }
    let all: Vec<&BotEntry> = st
        .bots
        .bots
        .iter()
        .filter(|b| b.workspace_id == workspace && keep(b))
        .collect();
    let items: Vec<Value> = page_of(&all, page_num, page_size)
        .into_iter()
        .map(|b| {
            let mut item = json!({
                "id": b.id,
                "name": b.name,
                "icon_url": format!("{}/static/bot.png", app.base_url),
                "folder_id": "",
                "updated_at": b.updated_at,
                "description": b.description,
                "is_published": b.published,
                "owner_user_id": crate::oauth::USER_ID,
            });
            if b.published {
                item["published_at"] = json!(b.updated_at);
            }
            item
        })
        .collect();
    ok(ctx, json!({"items": items, "total": all.len()}))
}

/// coze.cn's not-found answer for a bot id (seen in coze-dev/coze-py issue #318 and
/// coze-java #92): code 4200, HTTP 200.
fn no_bot(ctx: &Ctx, id: &str) -> Reply {
    err(
        ctx,
        4200,
        &format!(
            "Requested resource bot_id={id} does not exist. Ensure you are the correct resource identifier."
        ),
    )
}

/// `GET /v1/bots/{id}?is_published=…` (the draft when false) and the older
/// `GET /v1/bot/get_online_info?bot_id=…` (the published one), coze.cn's way.
pub fn get(app: &App, req: &Request, ctx: &Ctx, id: Option<&str>) -> Reply {
    if let Some(r) = denied(app, ctx, "bots.get") {
        return r;
    }
    let draft = id.is_some() && req.query("is_published") == Some("false");
    let Some(id) = id.or_else(|| req.query("bot_id")).filter(|i| !i.is_empty()) else {
        return err(ctx, 4000, "invalid parameter: bot_id is required");
    };
    let st = app.lock();
    match st.bots.bot(id) {
        // A bot never published has no published version to show.
        Some(b) if draft || b.published => ok(ctx, bot_info(app, b, draft)),
        _ => no_bot(ctx, id),
    }
}

/// A self-hosted Coze Studio's `/v1/bots/{id}` (`OpenGetBotInfo`) and
/// `/v1/bot/get_online_info` (`GetBotOnlineInfo`): both read the published version
/// (`is_published` is bound but not used), the first in `{data,code,msg}`, the second
/// as the bare `OpenAPIBotInfo` with no envelope at all. A bot it cannot find is
/// errno `ErrAgentPermissionCode` (100000003, `backend/types/errno/agent.go`).
pub fn studio_get(app: &App, req: &Request, id: Option<&str>) -> Reply {
    let id = match id {
        Some(i) => i.to_string(),
        None => match studio::query_id(req, "bot_id", "BotID") {
            Ok(i) => i.to_string(),
            Err(r) => return r,
        },
    };
    let st = app.lock();
    match st.bots.bot(&id).filter(|b| b.published) {
        Some(b) if req.path.starts_with("/v1/bots/") => studio::ok_data(studio_info(app, b)),
        Some(b) => Reply::json(200, &studio_info(app, b)),
        None => studio::business(100_000_003, "unauthorized access : agent not exist"),
    }
}

/// The id of `/v1/bots/{id}`.
pub fn path_id(req: &Request) -> Option<&str> {
    req.path
        .strip_prefix("/v1/bots/")
        .filter(|id| !id.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_leave_the_catalog_alone_when_wrong() {
        let mut c = Catalog::default();
        for (body, field) in [
            (json!({"bots": [{"name": "x"}]}), "bots[0].id"),
            (json!({"bots": [{"id": "1"}]}), "bots[0].name"),
            (
                json!({"workspaces": [{"id": "1", "name": 3}]}),
                "workspaces[0].name",
            ),
            (json!({"generate": {"count": -1}}), "generate.count"),
            (json!({"denied": ["chat"]}), "denied"),
            (json!({"bot": []}), "unknown field"),
        ] {
            let e = c.set(&body).unwrap_err();
            assert!(e.contains(field), "{body}: {e}");
        }
        assert_eq!(c.workspaces.len(), 2);
        assert!(c.bots.is_empty());
    }

    #[test]
    fn generated_ids_follow_on_and_reset_starts_again() {
        let mut c = Catalog::default();
        c.set(&json!({"generate": {"workspace_id": "7400000000000000002", "count": 2}}))
            .unwrap();
        c.set(&json!({"generate": {"count": 1, "published": false}}))
            .unwrap();
        let ids: Vec<&str> = c.bots.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "7500000000000000001",
                "7500000000000000002",
                "7500000000000000003"
            ]
        );
        assert_eq!(c.bots[2].workspace_id, "7400000000000000001");
        assert!(!c.bots[2].published);
        c.set(&json!({})).unwrap();
        assert!(c.bots.is_empty());
        c.set(&json!({"generate": {"count": 1}})).unwrap();
        assert_eq!(c.bots[0].id, "7500000000000000001");
    }

    #[test]
    fn merge_goes_into_objects_and_replaces_the_rest() {
        let mut a = json!({"m": {"x": 1, "y": 2}, "l": [1], "s": "a"});
        let b = json!({"m": {"y": 3}, "l": [], "n": true});
        merge(&mut a, b.as_object().unwrap());
        assert_eq!(
            a,
            json!({"m": {"x": 1, "y": 3}, "l": [], "s": "a", "n": true})
        );
    }
}
