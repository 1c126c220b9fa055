//! Conversations and their message list as a self-hosted Coze Studio serves them
//! (coze-dev/coze-studio: handlers in `backend/api/handler/coze/conversation_service.go`
//! and `message_service.go`, logic in `backend/application/conversation/conversation.go`
//! and `openapi_message.go`, storage in `backend/domain/conversation/*/internal/dal`).
//! Each handler fills its own subset of `ConversationData`, answers under its own key
//! (retrieve's is `ConversationData`, not `data`) and adds `BaseResp` where its
//! generated response struct has one; deletion is soft; list paging keeps Studio's
//! quirks. The fake's single user owns every conversation, so the "user not match"
//! branches never fire.

use super::path_id;
use serde_json::{json, Map, Value};

use crate::http::{Reply, Request};
use crate::router::studio::{
    bad_request, body_id, body_object, business, internal_error, ok_data, parse_id, query_id,
    recovered_panic, required,
};
use crate::router::Ctx;
use crate::state::Conversation;
use crate::util::{new_id, now_s};
use crate::App;

/// errno `ErrConversationNotFound` (`backend/types/errno/conversation.go`).
pub const NOT_FOUND: (i64, &str) = (103_000_002, "conversation not found");

/// The connector Studio files every OpenAPI conversation under (`consts.APIConnectorID`,
/// set by `OpenapiAuthMW`), and the Web SDK's, the only one a request may choose.
pub const API_CONNECTOR: &str = "1024";
const WEB_SDK_CONNECTOR: &str = "999";

/// The PAT owner's user id as the JSON number `ConversationData.account_id` declares
/// (`json:"account_id,omitempty"`, no `,string`). The same id as `oauth::USER_ID`.
pub const ACCOUNT_ID: u64 = 7_400_000_000_000_000_001;

fn not_found() -> Reply {
    business(NOT_FOUND.0, NOT_FOUND.1)
}

/// The optional fields of `ConversationData` a handler fills.
#[derive(Clone, Copy, Default)]
struct Fields {
    meta: bool,
    creator: bool,
    name: bool,
    user_id: bool,
}

/// `ConversationData` (`backend/api/model/conversation/conversation/conversation.go`) in
/// its field order: string ids, `meta_data` null when the handler leaves it unset,
/// `creator_d` (sic: the generated JSON tag's spelling). Studio's handlers never set
/// `account_id`; the fake always sends it, as the JSON number its type declares, so
/// clients meet the 64-bit number the schema allows.
fn conversation_data(c: &Conversation, f: Fields) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("created_at".into(), json!(c.created_at));
    let meta = if f.meta {
        c.meta_data.clone()
    } else {
        Value::Null
    };
    m.insert("meta_data".into(), meta);
    if f.creator {
        m.insert("creator_d".into(), json!(c.creator_id));
    }
    m.insert("connector_id".into(), json!(c.connector_id));
    m.insert("last_section_id".into(), json!(c.last_section_id));
    m.insert("account_id".into(), json!(ACCOUNT_ID));
    if f.name {
        m.insert("name".into(), json!(c.name));
    }
    if f.user_id {
        m.insert("user_id".into(), json!(c.user_id));
    }
    Value::Object(m)
}

/// `meta_data` is a `map[string]string`: null when absent, Studio's own round trip
/// otherwise (`parseMetaData` / `parseExt`).
fn meta_data(o: &Map<String, Value>) -> Result<Value, Reply> {
    match o.get("meta_data") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(Value::Object(m.clone())),
        Some(_) => Err(bad_request(
            "json: cannot unmarshal meta_data into Go struct field of type map[string]string",
        )),
    }
}

/// POST /v1/conversation/create: `CreateConversationRequest` has no `name` or
/// `messages`, so both are ignored; the connector is the API's unless 999 is asked for.
pub fn create(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let o = match body_object(req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let (bot, connector, meta) = match (
        body_id(&o, "bot_id"),
        body_id(&o, "connector_id"),
        meta_data(&o),
    ) {
        (Ok(b), Ok(c), Ok(m)) => (b.unwrap_or(0), c, m),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    let user = o.get("user_id").and_then(Value::as_str).unwrap_or("");
    let mut st = app.lock();
    let id = st.new_conversation(&bot.to_string(), crate::oauth::USER_ID);
    let Some(c) = st.conversations.get_mut(&id) else {
        return internal_error();
    };
    c.meta_data = meta;
    c.user_id = user.to_string();
    if connector == Some(999) {
        c.connector_id = WEB_SDK_CONNECTOR.into();
    }
    ctx.conversation_id = Some(id);
    let f = Fields {
        meta: true,
        user_id: true,
        ..Fields::default()
    };
    ok_data(conversation_data(c, f))
}

/// GET /v1/conversation/retrieve: the one answer under `ConversationData`
/// (`RetrieveConversationApiResponse`'s JSON tag), with `creator_d`.
pub fn retrieve(app: &App, req: &Request, ctx: &mut Ctx) -> Reply {
    let id = match query_id(req, "conversation_id", "ConversationID") {
        Ok(id) => id.to_string(),
        Err(r) => return r,
    };
    ctx.conversation_id = Some(id.clone());
    let st = app.lock();
    let Some(c) = st.conversations.get(&id) else {
        return not_found();
    };
    let f = Fields {
        meta: true,
        creator: true,
        name: true,
        ..Fields::default()
    };
    Reply::json(
        200,
        &json!({"ConversationData": conversation_data(c, f), "code": 0, "msg": "", "BaseResp": null}),
    )
}

/// A numeric query parameter that may be absent (then 0, Go's zero value).
fn query_num(req: &Request, name: &str) -> Result<i64, Reply> {
    match req.query(name) {
        None => Ok(0),
        Some(v) => parse_id(v).map_err(|e| bad_request(&e)),
    }
}

/// GET /v1/conversations. Paging as `ConversationDAO.List` does it: offset
/// `(page_num-1)*page_size`, one extra row fetched to set `has_more`, and no limit at
/// all when `page_size` is 0 — which then drops the last row and says `has_more`.
/// An empty page is `"conversations":null`.
pub fn list(app: &App, req: &Request) -> Reply {
    let bot = match query_id(req, "bot_id", "BotID") {
        Ok(b) => b.to_string(),
        Err(r) => return r,
    };
    let (page, size) = match (query_num(req, "page_num"), query_num(req, "page_size")) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let connector = match req.query("connector_id") {
        Some(WEB_SDK_CONNECTOR) => WEB_SDK_CONNECTOR,
        _ => API_CONNECTOR,
    };
    let asc = req
        .query("sort_order")
        .is_some_and(|o| o.eq_ignore_ascii_case("asc"));
    let user = req.query("user_id");
    let st = app.lock();
    let mut convs: Vec<&Conversation> = st
        .conversations
        .values()
        .filter(|c| c.bot_id == bot && c.connector_id == connector && !c.deleted)
        .filter(|c| user.is_none_or(|u| c.user_id == u))
        .collect();
    convs.sort_by_key(|c| (c.created_at, c.seq));
    if !asc {
        convs.reverse();
    }
    let (rows, has_more) = page_of(convs, page, size);
    let f = Fields {
        meta: true,
        name: true,
        user_id: true,
        ..Fields::default()
    };
    let items: Value = if rows.is_empty() {
        Value::Null
    } else {
        rows.iter().map(|c| conversation_data(c, f)).collect()
    };
    Reply::json(
        200,
        &json!({"code": 0, "msg": "", "data": {"conversations": items, "has_more": has_more}, "BaseResp": null}),
    )
}

/// One page of `rows` by `ConversationDAO.List`'s arithmetic (see [`list`]).
fn page_of<T>(rows: Vec<T>, page: i64, size: i64) -> (Vec<T>, bool) {
    let offset = ((page - 1) * size).max(0) as usize;
    let mut rows: Vec<T> = rows.into_iter().skip(offset).collect();
    if size > 0 {
        rows.truncate(size as usize + 1);
    }
    if rows.is_empty() {
        return (rows, false);
    }
    let has_more = rows.len() as i64 > size;
    if has_more {
        rows.pop();
    }
    (rows, has_more)
}

/// PUT /v1/conversations/{id}: an empty name changes nothing (`ConversationDAO.Update`);
/// the answer has no `meta_data` (null).
pub fn update(app: &App, req: &Request) -> Reply {
    let o = match body_object(req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let name = o.get("name").and_then(Value::as_str).unwrap_or("");
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&path_id(req)) else {
        return not_found();
    };
    if !name.is_empty() {
        c.name = name.to_string();
    }
    c.updated_at = now_s();
    let f = Fields {
        name: true,
        ..Fields::default()
    };
    Reply::json(
        200,
        &json!({"data": conversation_data(c, f), "code": 0, "msg": "", "BaseResp": null}),
    )
}

/// DELETE /v1/conversations/{id}: soft (the conversation only leaves the list), and
/// repeatable.
pub fn delete(app: &App, req: &Request) -> Reply {
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&path_id(req)) else {
        return not_found();
    };
    c.deleted = true;
    c.updated_at = now_s();
    Reply::json(200, &json!({"code": 0, "msg": "", "BaseResp": null}))
}

/// POST /v1/conversations/{id}/clear: a new section, answered as `Section`.
pub fn clear(app: &App, req: &Request) -> Reply {
    let mut st = app.lock();
    let Some(c) = st.conversations.get_mut(&path_id(req)) else {
        return not_found();
    };
    c.last_section_id = new_id();
    c.updated_at = now_s();
    Reply::json(
        200,
        &json!({"code": 0, "msg": "", "data": {"id": c.last_section_id, "conversation_id": c.id}, "BaseResp": null}),
    )
}

/// A message as `OpenMessageApi` (`backend/api/model/conversation/message/message.go`)
/// writes it, from the fake's stored message.
pub fn open_message(m: &Value) -> Value {
    let s = |k: &str, d: &str| m.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    json!({
        "id": s("id", "0"),
        "bot_id": s("bot_id", "0"),
        "role": s("role", ""),
        "content": s("content", ""),
        "conversation_id": s("conversation_id", "0"),
        "meta_data": m.get("meta_data").cloned().unwrap_or(Value::Null),
        "created_at": m.get("created_at").cloned().unwrap_or(json!(0)),
        "updated_at": m.get("updated_at").cloned().unwrap_or(json!(0)),
        "chat_id": s("chat_id", "0"),
        "content_type": s("content_type", "text"),
        "type": s("type", ""),
        "section_id": s("section_id", "0"),
        "reasoning_content": s("reasoning_content", ""),
    })
}

/// Where the message list starts reading (`GetApiMessageList`): `before_id` reads the
/// newer messages oldest first, `after_id` the older ones newest first.
enum Cursor {
    None,
    Newer(String),
    Older(String),
}

/// The bound `ListMessageApiRequest` body.
struct ListBody {
    limit: i64,
    chat_id: Option<String>,
    cursor: Cursor,
}

fn list_body(req: &Request) -> Result<ListBody, Reply> {
    let o = body_object(req)?;
    let limit = match o.get("limit") {
        None | Some(Value::Null) => 50,
        Some(v) => v.as_i64().ok_or_else(|| {
            bad_request("json: cannot unmarshal limit into Go struct field of type int64")
        })?,
    };
    let chat_id = body_id(&o, "chat_id")?.map(|c| c.to_string());
    let cursor = match (body_id(&o, "before_id")?, body_id(&o, "after_id")?) {
        (Some(b), _) if b > 0 => Cursor::Newer(b.to_string()),
        (Some(_), _) => Cursor::None,
        (None, Some(a)) if a > 0 => Cursor::Older(a.to_string()),
        _ => Cursor::None,
    };
    Ok(ListBody {
        limit,
        chat_id,
        cursor,
    })
}

/// POST /v1/conversation/message/list?conversation_id=. Studio lists only `question`
/// and `answer` messages and ignores `order` (`MessageDAO.List` orders by the cursor's
/// direction alone); an unknown cursor id is a database error (500). The answer is
/// flat, `data` left out when empty and `first_id`/`last_id` "0" then.
pub fn message_list(app: &App, req: &Request) -> Reply {
    let conv = match req.query("conversation_id") {
        None => return bad_request(&required("ConversationID")),
        Some(v) => match parse_id(v) {
            Ok(id) => id.to_string(),
            Err(e) => return bad_request(&e),
        },
    };
    let body = match list_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut st = app.lock();
    st.settle(&conv);
    let Some(c) = st.conversations.get(&conv) else {
        return not_found();
    };
    // The cursor may name any message (`MessageDAO.List` looks it up by id alone); the
    // type and chat filters apply to what it selects.
    let all: Vec<&Value> = c.messages.iter().collect();
    let Some(selected) = read_from(&all, &body.cursor) else {
        return internal_error();
    };
    let mut page: Vec<&Value> = selected
        .into_iter()
        .filter(|m| matches!(m["type"].as_str(), Some("question" | "answer")))
        .filter(|m| {
            body.chat_id
                .as_ref()
                .is_none_or(|ch| m["chat_id"] == ch.as_str())
        })
        .collect();
    // `messageList[:limit]` with a negative limit panics in Go.
    if body.limit < 0 {
        return recovered_panic();
    }
    let has_more = page.len() as i64 > body.limit;
    page.truncate(body.limit as usize);
    let id_of = |m: Option<&&Value>| m.and_then(|m| m["id"].as_str()).unwrap_or("0").to_string();
    let mut out = Map::new();
    if !page.is_empty() {
        out.insert(
            "data".into(),
            page.iter().map(|m| open_message(m)).collect(),
        );
    }
    out.insert("has_more".into(), json!(has_more));
    out.insert("first_id".into(), json!(id_of(page.first())));
    out.insert("last_id".into(), json!(id_of(page.last())));
    out.insert("code".into(), json!(0));
    out.insert("msg".into(), json!(""));
    Reply::json(200, &Value::Object(out))
}

/// The messages `cursor` selects from `all` (oldest first), in the order Studio returns
/// them; None when the cursor names no message.
fn read_from<'a>(all: &[&'a Value], cursor: &Cursor) -> Option<Vec<&'a Value>> {
    let pos = |id: &str| all.iter().position(|m| m["id"] == id);
    Some(match cursor {
        Cursor::None => all.iter().rev().copied().collect(),
        Cursor::Newer(id) => all[pos(id)? + 1..].to_vec(),
        Cursor::Older(id) => all[..pos(id)?].iter().rev().copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_is_the_fake_users_id() {
        assert_eq!(ACCOUNT_ID.to_string(), crate::oauth::USER_ID);
        assert!(ACCOUNT_ID < i64::MAX as u64);
    }

    #[test]
    fn paging_keeps_studios_arithmetic() {
        let rows: Vec<u32> = (1..=5).collect();
        assert_eq!(page_of(rows.clone(), 1, 2), (vec![1, 2], true));
        assert_eq!(page_of(rows.clone(), 3, 2), (vec![5], false));
        assert_eq!(page_of(rows.clone(), 4, 2), (vec![], false));
        // No page_size: every row but the last, and has_more.
        assert_eq!(page_of(rows.clone(), 0, 0), (vec![1, 2, 3, 4], true));
        assert_eq!(page_of(Vec::<u32>::new(), 1, 0), (vec![], false));
    }
}
