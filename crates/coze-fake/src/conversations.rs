//! Conversations and their messages (the Coze API docs: `create_conversation`,
//! `list_conversations`, `list_message`, …): create, retrieve, list (page_num /
//! page_size, nested `data.conversations`), rename, delete, clear (new section), and
//! the message endpoints, whose list answer is FLAT (`data`, `first_id`, `last_id`,
//! `has_more` at the top level) and pages by `before_id` / `after_id` relative to the
//! requested order. The Studio dialect's handlers are in [`studio`].

pub mod studio;

use serde_json::{json, Value};

use crate::http::{Reply, Request};
use crate::router::{err, ok, Ctx};
use crate::state::State;
use crate::util::{new_id, now_s};
use crate::App;

pub const NOT_FOUND: (i64, &str) = (4200, "conversation not found");

fn missing(ctx: &Ctx, p: &str) -> Reply {
    err(ctx, 4000, &format!("invalid parameter: {p} is required"))
}

fn not_found(ctx: &Ctx) -> Reply {
    err(ctx, NOT_FOUND.0, NOT_FOUND.1)
}

/// A message object as the API shows it.
#[allow(clippy::too_many_arguments)]
pub fn message(
    conv: &str,
    section: &str,
    role: &str,
    kind: &str,
    content: &str,
    content_type: &str,
    chat: Option<(&str, &str)>,
    meta: Value,
) -> Value {
    let now = now_s();
    let mut m = json!({
        "id": new_id(),
        "conversation_id": conv,
        "section_id": section,
        "role": role,
        "type": kind,
        "content": content,
        "content_type": content_type,
        "meta_data": if meta.is_object() { meta } else { json!({}) },
        "created_at": now,
        "updated_at": now,
    });
    if let Some((bot, chat_id)) = chat {
        m["bot_id"] = json!(bot);
        m["chat_id"] = json!(chat_id);
    }
    m
}

/// Turn an EnterMessage (`{role, type?, content, content_type, meta_data?}`) into a
/// stored message of `conv`.
pub fn enter_message(conv: &str, section: &str, m: &Value) -> Value {
    let s = |k: &str, d: &'static str| m.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let role = s("role", "user");
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if role == "user" {
                "question".into()
            } else {
                "answer".into()
            }
        });
    message(
        conv,
        section,
        &role,
        &kind,
        &s("content", ""),
        &s("content_type", "text"),
        None,
        m.get("meta_data").cloned().unwrap_or(json!({})),
    )
}

pub fn create(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let body = req.json().unwrap_or(json!({}));
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = s("name");
    if name.chars().count() > 100 {
        return err(
            ctx,
            4000,
            "invalid parameter: name is longer than 100 characters",
        );
    }
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if msgs.len() > 16 {
        return err(ctx, 4000, "invalid parameter: at most 16 messages");
    }
    let mut st = app.lock();
    let id = st.new_conversation(&s("bot_id"), crate::oauth::USER_ID);
    let c = st.conversations.get_mut(&id).expect("just created");
    c.name = name;
    if let Some(m) = body.get("meta_data").filter(|m| m.is_object()) {
        c.meta_data = m.clone();
    }
    let connector = s("connector_id");
    if !connector.is_empty() {
        c.connector_id = connector;
    }
    for m in &msgs {
        let stored = enter_message(&id, &c.last_section_id, m);
        c.messages.push(stored);
    }
    ctx.conversation_id = Some(id);
    ok(ctx, c.to_json())
}

fn conv_id_param(req: &Request) -> Option<String> {
    req.query("conversation_id")
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

pub(crate) fn path_id(req: &Request) -> String {
    req.path
        .trim_matches('/')
        .split('/')
        .nth(2)
        .unwrap_or("")
        .to_string()
}

pub fn retrieve(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(id) = conv_id_param(req) else {
        return missing(ctx, "conversation_id");
    };
    let st = app.lock();
    match st.conversations.get(&id) {
        Some(c) => ok(ctx, c.to_json()),
        None => not_found(ctx),
    }
}

pub fn list(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(bot_id) = req.query("bot_id").filter(|b| !b.is_empty()) else {
        return missing(ctx, "bot_id");
    };
    let num = |k: &str, d: usize| {
        req.query(k)
            .map(|v| v.parse::<usize>().ok())
            .unwrap_or(Some(d))
    };
    let (Some(page_num), Some(page_size)) = (num("page_num", 1), num("page_size", 50)) else {
        return err(
            ctx,
            4000,
            "invalid parameter: page_num and page_size must be numbers",
        );
    };
    if page_num == 0 || page_size == 0 || page_size > 50 {
        return err(
            ctx,
            4000,
            "invalid parameter: page_num >= 1 and 1 <= page_size <= 50",
        );
    }
    let asc = req
        .query("sort_order")
        .is_some_and(|o| o.eq_ignore_ascii_case("ASC"));
    let st = app.lock();
    let mut convs: Vec<_> = st
        .conversations
        .values()
        .filter(|c| c.bot_id == bot_id)
        .collect();
    convs.sort_by_key(|c| (c.created_at, c.seq));
    if !asc {
        convs.reverse();
    }
    let start = (page_num - 1) * page_size;
    let page: Vec<Value> = convs
        .iter()
        .skip(start)
        .take(page_size)
        .map(|c| c.to_json())
        .collect();
    let has_more = convs.len() > start + page_size;
    ok(ctx, json!({"has_more": has_more, "conversations": page}))
}

pub fn update(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let id = path_id(req);
    let name = req
        .json()
        .and_then(|b| b.get("name").and_then(Value::as_str).map(str::to_string));
    let Some(name) = name else {
        return missing(ctx, "name");
    };
    if name.chars().count() > 100 {
        return err(
            ctx,
            4000,
            "invalid parameter: name is longer than 100 characters",
        );
    }
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&id) else {
        return not_found(ctx);
    };
    c.name = name;
    c.updated_at = now_s();
    ok(ctx, c.to_json())
}

pub fn delete(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let id = path_id(req);
    let mut st = app.lock();
    match st.conversations.remove(&id) {
        Some(_) => {
            st.chats.retain(|_, c| c.conversation_id != id);
            ok(ctx, json!({}))
        }
        None => not_found(ctx),
    }
}

pub fn clear(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let id = path_id(req);
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&id) else {
        return not_found(ctx);
    };
    c.last_section_id = new_id();
    c.updated_at = now_s();
    ok(
        ctx,
        json!({"id": c.last_section_id, "conversation_id": c.id}),
    )
}

pub fn message_create(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(id) = conv_id_param(req) else {
        return missing(ctx, "conversation_id");
    };
    let Some(body) = req.json().filter(Value::is_object) else {
        return missing(ctx, "content");
    };
    if body.get("content").and_then(Value::as_str).is_none() {
        return missing(ctx, "content");
    }
    match body.get("role").and_then(Value::as_str) {
        Some("user" | "assistant") => {}
        _ => {
            return err(
                ctx,
                4000,
                "invalid parameter: role must be user or assistant",
            )
        }
    }
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&id) else {
        return not_found(ctx);
    };
    let m = enter_message(&id, &c.last_section_id, &body);
    c.messages.push(m.clone());
    ok(ctx, m)
}

pub fn message_retrieve(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(id) = conv_id_param(req) else {
        return missing(ctx, "conversation_id");
    };
    let Some(mid) = req.query("message_id") else {
        return missing(ctx, "message_id");
    };
    let mut st = app.lock();
    st.settle(&id);
    let Some(c) = st.conversations.get(&id) else {
        return not_found(ctx);
    };
    match c.messages.iter().find(|m| m["id"] == mid) {
        Some(m) => ok(ctx, m.clone()),
        None => err(ctx, 4200, "message not found"),
    }
}

/// POST /v1/conversation/message/list. `after_id` = the page that follows that message
/// in the requested order (how the SDKs page: `after_id = last_id`); `before_id` = the
/// page that precedes it.
pub fn message_list(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let Some(id) = conv_id_param(req) else {
        return missing(ctx, "conversation_id");
    };
    let body = req.json().unwrap_or(json!({}));
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let desc = !s("order").is_some_and(|o| o.eq_ignore_ascii_case("asc"));
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(50);
    if !(1..=50).contains(&limit) {
        return err(
            ctx,
            4000,
            "invalid parameter: limit must be between 1 and 50",
        );
    }
    let limit = limit as usize;
    let mut st: std::sync::MutexGuard<'_, State> = app.lock();
    st.settle(&id);
    let Some(c) = st.conversations.get(&id) else {
        return not_found(ctx);
    };
    let mut all: Vec<&Value> = c
        .messages
        .iter()
        .filter(|m| s("chat_id").is_none_or(|ch| m["chat_id"] == ch))
        .collect();
    if desc {
        all.reverse();
    }
    let pos = |mid: &str| all.iter().position(|m| m["id"] == mid);
    let (page, has_more): (&[&Value], bool) = if let Some(a) = s("after_id") {
        let Some(p) = pos(a) else {
            return err(ctx, 4000, "invalid parameter: after_id");
        };
        let rest = &all[p + 1..];
        let n = rest.len().min(limit);
        (&rest[..n], rest.len() > n)
    } else if let Some(b) = s("before_id") {
        let Some(p) = pos(b) else {
            return err(ctx, 4000, "invalid parameter: before_id");
        };
        let start = p.saturating_sub(limit);
        (&all[start..p], start > 0)
    } else {
        let n = all.len().min(limit);
        (&all[..n], all.len() > n)
    };
    let id_of = |m: Option<&&Value>| m.and_then(|m| m["id"].as_str()).unwrap_or("").to_string();
    Reply::json(
        200,
        &json!({
            "code": 0,
            "msg": "",
            "data": page,
            "first_id": id_of(page.first()),
            "last_id": id_of(page.last()),
            "has_more": has_more,
            "detail": {"logid": ctx.logid},
        }),
    )
}
