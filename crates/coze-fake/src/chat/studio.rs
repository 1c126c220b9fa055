//! Chat v3 as a self-hosted Coze Studio serves it (coze-dev/coze-studio: handler
//! `backend/api/handler/coze/agent_run_service.go`, logic
//! `backend/application/conversation/openapi_agent_run.go`, generated types
//! `backend/api/model/conversation/run/run.go` and `.../message/message.go`): binding
//! `/v3/chat` (streamed unless `stream` is false), the SSE `error` event every later
//! failure becomes, the chat and message shapes, and retrieve, the chat's message list
//! and cancel with their own keys (`Messages`, `ChatV3ChatDetail`) and error paths.

use serde_json::{json, Map, Value};

use super::{format_event, ChatRequest, Style};
use crate::http::{ChunkedOut, Reply, Request, StreamEnd};
use crate::router::studio::{
    bad_request, body_object, errorx_text, parse_id, query_id, recovered_panic, required_body_id,
    required_in_body,
};
use crate::state::{Chat, ChatStatus};
use crate::App;

/// errno `ErrConversationAgentRunError` (`backend/types/errno/conversation.go`): the code
/// of every error raised while a chat runs, as the SSE `error` event reports it.
pub const AGENT_RUN_ERROR: i64 = 103_100_001;

/// `parameters` must be an object: `preprocessChatV3Parameters` refuses a string before
/// binding, and binding refuses anything else but null.
fn check_parameters(o: &Map<String, Value>) -> Result<(), Reply> {
    match o.get("parameters") {
        Some(Value::String(_)) => Err(bad_request(
            "parameters field should be an object, not a string",
        )),
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(_) => Err(bad_request(
            "json: cannot unmarshal parameters into Go struct field ChatV3Request.parameters of type string",
        )),
    }
}

/// `conversation_id` of the query: absent, empty or 0 all mean "a new conversation".
fn query_conversation(req: &Request) -> Result<Option<String>, Reply> {
    match req.query("conversation_id").filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(v) => match parse_id(v) {
            Ok(0) => Ok(None),
            Ok(id) => Ok(Some(id.to_string())),
            Err(e) => Err(bad_request(&e)),
        },
    }
}

/// Bind `/v3/chat` as `ChatV3` does: every failure here is a 400 JSON body; all that
/// goes wrong later arrives as an SSE `error` event. `stream` omitted means streamed;
/// `auto_save_history` is not a field (always saved); `meta_data` is never echoed.
pub fn bind(req: &Request) -> Result<ChatRequest, Reply> {
    let o = body_object(req)?;
    check_parameters(&o)?;
    let bot = required_body_id(&o, "bot_id", "BotID")?;
    let conversation_id = query_conversation(req)?;
    let user_id = match o.get("user_id") {
        None | Some(Value::Null) => return Err(bad_request(&required_in_body("User", "user_id"))),
        Some(Value::String(u)) => u.clone(),
        Some(_) => return Err(bad_request(
            "json: cannot unmarshal user_id into Go struct field ChatV3Request.user_id of type string",
        )),
    };
    let stream = match o.get("stream") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_request(
            "json: cannot unmarshal stream into Go struct field ChatV3Request.stream of type bool",
        )),
    };
    let additional = match o.get("additional_messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(|m| m.is_object() || m.is_null()) => {
            a.iter().filter(|m| m.is_object()).cloned().collect()
        }
        Some(_) => return Err(bad_request(
            "json: cannot unmarshal additional_messages into Go struct field ChatV3Request.additional_messages of type []*run.EnterMessage",
        )),
    };
    // `checkParamsV3` answers with the errorx error's full text.
    if bot == 0 {
        return Err(bad_request(&errorx_text(
            103_000_000,
            "invalid parameter : bot id is required",
        )));
    }
    Ok(ChatRequest {
        bot_id: bot.to_string(),
        user_id,
        stream,
        auto_save: true,
        additional,
        meta: json!({}),
        conversation_id,
        attachments: Vec::new(),
    })
}

/// `parseAdditionalMessages`' checks, which run after binding: the text of its error.
pub fn check_messages(additional: &[Value]) -> Result<(), &'static str> {
    for m in additional {
        let s = |k: &str| m.get(k).and_then(Value::as_str);
        if !matches!(s("role"), Some("user" | "assistant")) {
            return Err("additional message role only support user and assistant");
        }
        if !matches!(s("type"), None | Some("question" | "answer")) {
            return Err("additional message type only support question and answer now");
        }
        if s("type") == Some("answer") && s("content_type") == Some("object_string") {
            // Sic, with its leading space.
            return Err(" answer messages only support text content");
        }
    }
    Ok(())
}

/// An SSE answer as `sse.NewStream` (hertz-contrib/sse) and `ChatV3` set it up.
pub fn sse_reply() -> Reply {
    Reply::new(200, "text/event-stream", Vec::new()).with_header("X-Accel-Buffering", "no")
}

/// A chat that failed after binding: streamed, HTTP 200 with one `error` event
/// `{"code":103100001,"msg":…}` and nothing after it (`ChatV3`'s error branch); not
/// streamed, `OpenapiAgentRunSync`'s error as a 400 (`invalidParamRequestResponse`).
pub fn refused(app: &App, stream: bool, msg: &str) -> Reply {
    if !stream {
        return bad_request(msg);
    }
    let style = app.lock().bot.style.clone();
    error_stream(style, AGENT_RUN_ERROR, msg)
}

fn error_stream(style: Style, code: i64, msg: &str) -> Reply {
    let data = json!({"code": code, "msg": msg}).to_string();
    let mut r = sse_reply();
    r.stream = Some(Box::new(move |out: &mut ChunkedOut<'_>| {
        format_event(&style, "error", data.as_bytes(), &mut out.buf);
        // The stream's only event is its last.
        let whole = out.buf.len();
        out.buf.truncate(whole - style.held_back().min(whole));
        match out.finish() {
            Ok(()) => StreamEnd::Finished,
            Err(_) => StreamEnd::Abort,
        }
    }));
    r
}

/// Where a chat object is read: the run's own events carry the status the code just
/// set and no usage (`buildSendRunRecord`, `buildARSM2ApiChatMessage`); retrieve and
/// cancel read the stored record, which has the usage once the run completed and the
/// status cancel wrote into it.
#[derive(Clone, Copy, PartialEq)]
pub enum Source {
    Stream,
    Record,
}

/// The status text: Studio's constants (`backend/domain/conversation/agentrun/entity/
/// const.go`), and for a cancelled record the EVENT name `conversation.chat.cancelled`,
/// which is what `RunRecordDAO.Cancel` writes into the status column.
fn status_text(c: &Chat, source: Source) -> &'static str {
    if source == Source::Record && c.cancel_marked && !c.status.terminal() {
        return "conversation.chat.cancelled";
    }
    match c.status {
        ChatStatus::Canceled => "cancelled",
        ChatStatus::RequiresAction => "required_action",
        s => s.as_str(),
    }
}

/// `ChatV3ChatDetail` in its field order: no `meta_data`, no `last_error`, and
/// `completed_at`/`failed_at` always present, 0 until set (`ptr.Of(int32(…/1000))`).
pub fn chat_detail(c: &Chat, source: Source) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("conversation_id".into(), json!(c.conversation_id));
    m.insert("bot_id".into(), json!(c.bot_id));
    m.insert("created_at".into(), json!(c.created_at));
    m.insert("completed_at".into(), json!(c.completed_at.unwrap_or(0)));
    m.insert("failed_at".into(), json!(c.failed_at.unwrap_or(0)));
    m.insert("status".into(), json!(status_text(c, source)));
    if source == Source::Record && c.status == ChatStatus::Completed {
        let (i, o) = c.usage;
        m.insert(
            "usage".into(),
            json!({"token_count": i + o, "output_count": o, "input_count": i}),
        );
    }
    m.insert("section_id".into(), json!(c.section_id));
    Value::Object(m)
}

/// `stream:false`: `OpenapiAgentRunSync` answers as soon as the run is created
/// (`RetrieveChatOpenResponse`, status `created`) and finishes it in the background.
pub fn sync_answer(c: &Chat) -> Reply {
    let mut detail = chat_detail(c, Source::Stream);
    detail["status"] = json!("created");
    Reply::json(
        200,
        &json!({"data": detail, "code": 0, "msg": "", "BaseResp": null}),
    )
}

/// A message as `ChatV3MessageDetail` writes it from the fake's stored message: the
/// stream's (`run.go`, `reasoning_content` only when there is one) or the chat message
/// list's (`message.go`, `reasoning_content` always). Both leave out an empty
/// `meta_data` and `updated_at`.
pub fn message_detail(m: &Value, always_reasoning: bool) -> Value {
    let s = |k: &str, d: &str| m.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let mut out = Map::new();
    for k in ["id", "conversation_id", "bot_id"] {
        out.insert(k.into(), json!(s(k, "0")));
    }
    for k in ["role", "type", "content", "content_type"] {
        out.insert(k.into(), json!(s(k, "")));
    }
    if let Some(meta) = m
        .get("meta_data")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    {
        out.insert("meta_data".into(), meta.clone());
    }
    out.insert("chat_id".into(), json!(s("chat_id", "0")));
    out.insert("section_id".into(), json!(s("section_id", "0")));
    out.insert(
        "created_at".into(),
        m.get("created_at").cloned().unwrap_or(json!(0)),
    );
    match m.get("reasoning_content").and_then(Value::as_str) {
        Some(r) => {
            out.insert("reasoning_content".into(), json!(r));
        }
        None if always_reasoning => {
            out.insert("reasoning_content".into(), json!(""));
        }
        None => {}
    }
    Value::Object(out)
}

/// Both required ids of the query (`RetrieveChatOpenRequest`,
/// `ListChatMessageApiRequest`), or the bind error.
fn query_ids(req: &Request) -> Result<(String, String), Reply> {
    let conv = query_id(req, "conversation_id", "ConversationID")?;
    let chat = query_id(req, "chat_id", "ChatID")?;
    Ok((conv.to_string(), chat.to_string()))
}

/// GET /v3/chat/retrieve. `RetrieveRunRecord` reads the chat by its id alone (a chat of
/// another conversation is found too) and answers a missing one with a plain-text 500;
/// it then dereferences the query's conversation, so an unknown one panics (empty 500).
pub fn retrieve(app: &App, req: &Request) -> Reply {
    let (conv, chat) = match query_ids(req) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut st = app.lock();
    let Some(own) = st.chats.get(&chat).map(|c| c.conversation_id.clone()) else {
        return Reply::new(500, "text/plain; charset=utf-8", "record not found");
    };
    if !st.conversations.contains_key(&conv) {
        return recovered_panic();
    }
    st.settle(&own);
    match st.chats.get(&chat) {
        Some(c) => Reply::json(
            200,
            &json!({"data": chat_detail(c, Source::Record), "code": 0, "msg": "", "BaseResp": null}),
        ),
        None => recovered_panic(),
    }
}

/// GET /v3/chat/message/list: every message of the run, the user's query included,
/// oldest first (`GetByRunIDs`), under `Messages` (left out when there are none).
pub fn message_list(app: &App, req: &Request) -> Reply {
    let (conv, chat) = match query_ids(req) {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut st = app.lock();
    if !st.conversations.contains_key(&conv) {
        return recovered_panic();
    }
    let own = st.chats.get(&chat).map(|c| c.conversation_id.clone());
    let mut out = Map::new();
    if let Some(own) = own {
        st.settle(&own);
        let msgs: Vec<Value> = st
            .conversations
            .get(&own)
            .map(|c| {
                c.messages
                    .iter()
                    .filter(|m| m["chat_id"] == chat.as_str())
                    .map(|m| message_detail(m, true))
                    .collect()
            })
            .unwrap_or_default();
        if !msgs.is_empty() {
            out.insert("Messages".into(), Value::Array(msgs));
        }
    }
    out.insert("code".into(), json!(0));
    out.insert("msg".into(), json!(""));
    out.insert("BaseResp".into(), Value::Null);
    Reply::json(200, &Value::Object(out))
}

/// POST /v3/chat/cancel with string ids in the body. Every refusal is a 400 carrying
/// the error's text (`CancelChatApi` uses `invalidParamRequestResponse`); success is
/// `{"ChatV3ChatDetail":…,"BaseResp":null}` with no code or msg. Cancel only marks the
/// record (`State::mark_cancelled`): the run and its stream go on.
pub fn cancel(app: &App, req: &Request) -> Reply {
    let ids = body_object(req).and_then(|o| {
        Ok((
            required_body_id(&o, "chat_id", "ChatID")?.to_string(),
            required_body_id(&o, "conversation_id", "ConversationID")?.to_string(),
        ))
    });
    let (chat, conv) = match ids {
        Ok(ids) => ids,
        Err(r) => return r,
    };
    let mut st = app.lock();
    let Some(own) = st.chats.get(&chat).map(|c| c.conversation_id.clone()) else {
        return bad_request("record not found");
    };
    if own != conv {
        return bad_request(&errorx_text(
            103_000_001,
            "unauthorized access : conversation not match",
        ));
    }
    st.settle(&own);
    let cancellable = st
        .chats
        .get(&chat)
        .is_some_and(|c| !c.status.terminal() && !c.cancel_marked);
    if !cancellable {
        return bad_request(&errorx_text(
            103_200_005,
            "in progress can not be cancelled",
        ));
    }
    st.mark_cancelled(&chat);
    st.stats.cancels += 1;
    match st.chats.get(&chat) {
        Some(c) => Reply::json(
            200,
            &json!({"ChatV3ChatDetail": chat_detail(c, Source::Record), "BaseResp": null}),
        ),
        None => recovered_panic(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additional_message_checks() {
        let ok = [json!({"role":"user","content":"hi","content_type":"text"})];
        assert_eq!(check_messages(&ok), Ok(()));
        let bad_role = [json!({"role":"system","content":"x"})];
        assert!(check_messages(&bad_role).unwrap_err().contains("role"));
        let bad_type = [json!({"role":"user","type":"function_call"})];
        assert!(check_messages(&bad_type).unwrap_err().contains("type"));
    }

    #[test]
    fn stream_message_drops_empty_meta_and_updated_at() {
        let m = json!({"id":"1","conversation_id":"2","bot_id":"3","role":"assistant",
            "type":"answer","content":"x","content_type":"text","meta_data":{},
            "chat_id":"4","section_id":"5","created_at":6,"updated_at":6});
        let d = message_detail(&m, false);
        assert!(d.get("meta_data").is_none() && d.get("updated_at").is_none());
        assert!(d.get("reasoning_content").is_none());
        assert_eq!(message_detail(&m, true)["reasoning_content"], "");
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "conversation_id",
                "bot_id",
                "role",
                "type",
                "content",
                "content_type",
                "chat_id",
                "section_id",
                "created_at"
            ]
        );
    }
}
