#!/usr/bin/env python3
"""Referee: the official Python SDK (cozepy 0.20.0) against coze-fake.

Usage: referee.py BASE_URL   (the fake must run with --device-interval 1)

If the SDK and the fake disagree, the fake is wrong (unless the Coze API docs show that
the SDK is).
Uses only cozepy (and pydantic's ValidationError, which cozepy raises), plus urllib for
the /_fake/ admin endpoints and for clicking the consent and device pages as a person
would. Prints one line per check and a final
"N passed, M failed"; exits 1 if any check failed.
"""

import hashlib
import json
import os
import secrets
import tempfile
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cozepy
import pydantic
from cozepy import (
    ChatEventType,
    ChatRequiredActionType,
    ChatStatus,
    ChatToolCallType,
    Coze,
    CozeAPIError,
    CozePKCEAuthError,
    CozePKCEAuthErrorType,
    DeviceOAuthApp,
    Message,
    MessageContentType,
    MessageObjectString,
    MessageType,
    PKCEOAuthApp,
    TokenAuth,
    ToolOutput,
    WorkflowEventType,
    WorkflowExecuteStatus,
    WorkflowRunMode,
)

BASE = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else sys.exit("usage: referee.py BASE_URL")
CLIENT_ID = "1234567890123456789.app.coze"
REDIRECT = "http://127.0.0.1:9/callback"
BOT = "7379462189365198898"
USER = "referee-user"

results = {"passed": 0, "failed": 0}


def check(name):
    """Decorator: run a check now, print one line, count the outcome."""

    def run(fn):
        try:
            fn()
            results["passed"] += 1
            print(f"ok   {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - a referee reports every failure
            results["failed"] += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(file=sys.stderr)
        return fn

    return run


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(method, url, data=None, content_type=None):
    """Returns (status, headers, body text) without following redirects."""
    body = None
    headers = {}
    if data is not None:
        body = data if isinstance(data, bytes) else data.encode()
        headers["Content-Type"] = content_type or "application/json"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def admin(path, payload=None):
    status, _, body = http("POST" if payload is not None else "GET", BASE + path,
                           None if payload is None else json.dumps(payload))
    assert status == 200, f"{path}: {status} {body}"
    return json.loads(body)


def fault(endpoint, f, count=1):
    admin("/_fake/fault", {"endpoint": endpoint, "fault": f, "count": count})


def click_consent(authorize_url, decision):
    """Follow authorize -> consent page -> submit; returns the redirect back (a dict)."""
    status, headers, _ = http("GET", authorize_url)
    assert status == 302, f"authorize answered {status}"
    consent = headers["Location"]
    status, _, page = http("GET", consent)
    assert status == 200 and 'id="approve"' in page and 'action="/oauth/consent"' in page, "consent page"
    key = urllib.parse.parse_qs(urllib.parse.urlparse(consent).query)["authorize_key"][0]
    form = urllib.parse.urlencode({"authorize_key": key, "decision": decision})
    status, headers, _ = http("POST", BASE + "/oauth/consent", form, "application/x-www-form-urlencoded")
    assert status == 302, f"consent answered {status}"
    back = headers["Location"]
    assert back.startswith(REDIRECT), back
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(back).query).items()}


def expect_raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError(f"expected {exc.__name__}")


admin("/_fake/reset", {})
pkce = PKCEOAuthApp(client_id=CLIENT_ID, base_url=BASE)
state = {}


@check("pkce: get_oauth_url (S256) is built on the fake's base")
def _():
    verifier = secrets.token_urlsafe(32)
    url = pkce.get_oauth_url(redirect_uri=REDIRECT, code_verifier=verifier,
                             code_challenge_method="S256", state="st-1")
    assert url.startswith(BASE + "/api/permission/oauth2/authorize?"), url
    q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert q["code_challenge_method"] == ["S256"] and q["state"] == ["st-1"]
    state["verifier"], state["url"] = verifier, url


@check("pkce: approve on the consent page -> code and state come back")
def _():
    back = click_consent(state["url"], "approve")
    assert back["state"] == "st-1" and back["code"].startswith("code_"), back
    state["code"] = back["code"]


@check("pkce: get_access_token -> absolute expires_in in the future")
def _():
    t = pkce.get_access_token(redirect_uri=REDIRECT, code=state["code"], code_verifier=state["verifier"])
    now = int(time.time())
    assert t.access_token.startswith("czu_"), t.access_token
    assert now < t.expires_in < now + 3600, f"expires_in {t.expires_in} is not now+900"
    assert t.refresh_token and t.token_type == "Bearer"
    state["token"] = t


@check("pkce: the same code again is rejected")
def _():
    e = expect_raises(CozeAPIError, pkce.get_access_token, redirect_uri=REDIRECT,
                      code=state["code"], code_verifier=state["verifier"])
    assert "invalid request" in str(e.msg), e


@check("pkce: a wrong code_verifier is rejected")
def _():
    v = secrets.token_urlsafe(32)
    url = pkce.get_oauth_url(redirect_uri=REDIRECT, code_verifier=v, code_challenge_method="S256", state="s2")
    code = click_consent(url, "approve")["code"]
    e = expect_raises(CozeAPIError, pkce.get_access_token, redirect_uri=REDIRECT, code=code,
                      code_verifier=v + "x")
    assert e.msg == "invalid request: code_verifier", e.msg


@check("pkce: deny on the consent page -> error=access_denied")
def _():
    url = pkce.get_oauth_url(redirect_uri=REDIRECT, code_verifier="v" * 43, code_challenge_method="S256", state="s3")
    back = click_consent(url, "deny")
    assert back.get("error") == "access_denied" and back.get("state") == "s3" and "code" not in back, back


@check("pkce: refresh_access_token rotates; the old refresh token is then rejected")
def _():
    old = state["token"]
    new = pkce.refresh_access_token(old.refresh_token)
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    assert new.expires_in > int(time.time())
    expect_raises(CozeAPIError, pkce.refresh_access_token, old.refresh_token)
    state["token"] = new


device = DeviceOAuthApp(client_id=CLIENT_ID, base_url=BASE)


@check("device: get_device_code, pending, slow_down")
def _():
    code = device.get_device_code()
    assert code.verification_uri == BASE + "/oauth/device", code.verification_uri
    assert code.interval == 1 and code.expires_in == 300, code
    assert len(code.user_code) == 9 and code.user_code[4] == "-"
    e = expect_raises(CozePKCEAuthError, device.get_access_token, code.device_code)
    assert e.error == CozePKCEAuthErrorType.AUTHORIZATION_PENDING, e.error
    e = expect_raises(CozePKCEAuthError, device.get_access_token, code.device_code)
    assert e.error == CozePKCEAuthErrorType.SLOW_DOWN, e.error
    state["device"] = code


@check("device: approve through the page while get_access_token(poll=True) waits")
def _():
    code = device.get_device_code()  # fresh: no earlier poll, so no slow_down back-off

    def approve():
        time.sleep(1)
        status, _, page = http("GET", code.verification_url)
        assert status == 200 and code.user_code in page
        form = urllib.parse.urlencode({"user_code": code.user_code, "decision": "approve"})
        http("POST", BASE + "/oauth/device", form, "application/x-www-form-urlencoded")

    t = threading.Thread(target=approve)
    t.start()
    tok = device.get_access_token(code.device_code, poll=True)
    t.join()
    assert tok.access_token.startswith("czu_") and tok.expires_in > int(time.time())
    stats = admin("/_fake/stats")
    assert stats["grants"]["device_code"] == 1, stats["grants"]


coze = Coze(auth=TokenAuth(state["token"].access_token), base_url=BASE)


@check("auth: a bad token raises CozeAPIError 4100 with the logid")
def _():
    bad = Coze(auth=TokenAuth("czu_nope"), base_url=BASE)
    e = expect_raises(CozeAPIError, bad.users.me)
    assert e.code == 4100 and e.logid and len(e.logid) == 30, (e.code, e.logid)


@check("users.me")
def _():
    me = coze.users.me()
    assert me.user_name == "fake_user" and me.user_id


@check("conversations: create / retrieve")
def _():
    c = coze.conversations.create(bot_id=BOT, meta_data={"k": "v"},
                                  messages=[Message.build_user_question_text("你好"),
                                            Message.build_assistant_answer("你好！")])
    assert c.id and c.meta_data == {"k": "v"} and c.last_section_id
    r = coze.conversations.retrieve(conversation_id=c.id)
    assert r.id == c.id and r.created_at == c.created_at
    state["conv"] = c


@check("conversations: list iterates every page")
def _():
    ids = {state["conv"].id}
    for _ in range(4):
        ids.add(coze.conversations.create(bot_id=BOT).id)
    pages = list(coze.conversations.list(bot_id=BOT, page_size=2).iter_pages())
    seen = [c.id for p in pages for c in p.items]
    assert len(pages) >= 3, len(pages)
    assert ids <= set(seen) and len(seen) == len(set(seen)), seen


@check("conversations: clear gives a new section")
def _():
    s = coze.conversations.clear(conversation_id=state["conv"].id)
    assert s.conversation_id == state["conv"].id and s.id != state["conv"].last_section_id


@check("conversations.messages.list pages by last_id")
def _():
    cid = state["conv"].id
    for i in range(5):
        coze.conversations.messages.create(conversation_id=cid, role="user", content=f"m{i}", content_type="text")
    paged = coze.conversations.messages.list(conversation_id=cid, limit=2)
    pages = list(paged.iter_pages())
    items = [m for p in pages for m in p.items]
    assert len(items) == 7 and len(pages) == 4, (len(items), len(pages))
    assert items[0].content == "m4" and items[-1].content == "你好", [m.content for m in items]


@check("chat.stream: events in order, deltas = the echo, usage filled")
def _():
    prompt = "今天天气怎么样？🌤"
    events = list(coze.chat.stream(bot_id=BOT, user_id=USER, conversation_id=state["conv"].id,
                                   additional_messages=[Message.build_user_question_text(prompt)]))
    kinds = [e.event for e in events]
    assert kinds[:2] == [ChatEventType.CONVERSATION_CHAT_CREATED, ChatEventType.CONVERSATION_CHAT_IN_PROGRESS], kinds
    assert kinds[-1] == ChatEventType.CONVERSATION_CHAT_COMPLETED, kinds[-1]
    deltas = [e.message.content for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA]
    want = f"收到：「{prompt}」👍 这是扣子假机器人的回答。"
    assert len(deltas) > 3 and "".join(deltas) == want, deltas
    done = [e.message for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert [m.type for m in done] == [MessageType.ANSWER, MessageType.VERBOSE] + [MessageType.FOLLOW_UP] * 3
    assert done[0].content == want
    chat = events[-1].chat
    assert chat.status == ChatStatus.COMPLETED and chat.usage.output_count > 0 and chat.usage.token_count > 0


@check("chat.stream: reasoning deltas come before the content")
def _():
    admin("/_fake/bot", {"reasoning": True})
    try:
        events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                       additional_messages=[Message.build_user_question_text("想一想")]))
    finally:
        admin("/_fake/bot", {})
    deltas = [e.message for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA]
    assert deltas[0].reasoning_content and not deltas[0].content, deltas[0]
    assert deltas[-1].content and not deltas[-1].reasoning_content


@check("chat.create_and_poll: completed, messages include the answer")
def _():
    poll = coze.chat.create_and_poll(bot_id=BOT, user_id=USER, conversation_id=state["conv"].id,
                                     additional_messages=[Message.build_user_question_text("轮询")])
    assert poll.chat.status == ChatStatus.COMPLETED, poll.chat.status
    answers = [m.content for m in poll.messages if m.type == MessageType.ANSWER]
    assert answers == ["收到：「轮询」👍 这是扣子假机器人的回答。"], answers


@check("chat.stream: a JSON body instead of a stream raises CozeAPIError with its code")
def _():
    fault("chat", {"type": "json_body", "code": 4000, "msg": "json fail"})
    e = expect_raises(CozeAPIError, lambda: list(coze.chat.stream(
        bot_id=BOT, user_id=USER, additional_messages=[Message.build_user_question_text("x")])))
    assert e.code == 4000 and e.msg == "json fail", (e.code, e.msg)


@check("chat.stream: a second chat in a busy conversation raises 4016")
def _():
    fault("chat", {"type": "api_error", "code": 4016, "msg": "conversation busy"})
    e = expect_raises(CozeAPIError, lambda: list(coze.chat.stream(
        bot_id=BOT, user_id=USER, additional_messages=[Message.build_user_question_text("x")])))
    assert e.code == 4016, e.code


@check("chat.stream: conversation.chat.failed (chat shape) reaches the caller")
def _():
    fault("chat", {"type": "chat_failed", "shape": "chat", "code": 5000, "msg": "event interval error"})
    events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                   additional_messages=[Message.build_user_question_text("x")]))
    last = events[-1]
    assert last.event == ChatEventType.CONVERSATION_CHAT_FAILED, last.event
    assert last.chat.status == ChatStatus.FAILED and last.chat.last_error.code == 5000


def tools(rounds, **more):
    admin("/_fake/bot", {"tools": {"rounds": rounds, **more}})


def text_of(events):
    return "".join(e.message.content for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA)


@check("chat.stream with local tools: requires_action as coze-py reads it; submit_tool_outputs(stream=True) goes on")
def _():
    tools([[{"name": "get_weather", "arguments": {"city": "北京"}}, {"name": "get_time"}]])
    try:
        events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                       additional_messages=[Message.build_user_question_text("北京天气和时间")]))
    finally:
        admin("/_fake/bot", {})
    kinds = [e.event for e in events]
    assert kinds[-1] == ChatEventType.CONVERSATION_CHAT_REQUIRES_ACTION, kinds
    # The chats before it carry an empty required_action, which coze-py reads as UNKNOWN.
    created = events[0].chat
    assert created.status == ChatStatus.CREATED and created.required_action.type == ChatRequiredActionType.UNKNOWN
    assert created.required_action.submit_tool_outputs.tool_calls == [], created.required_action
    done = [e.message.type for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert done == [MessageType.FUNCTION_CALL, MessageType.FUNCTION_CALL, MessageType.VERBOSE], done
    chat = events[-1].chat
    assert chat.status == ChatStatus.REQUIRES_ACTION, chat.status
    assert chat.required_action.type == ChatRequiredActionType.SUBMIT_TOOL_OUTPUTS
    calls = chat.required_action.submit_tool_outputs.tool_calls
    assert [c.type for c in calls] == [ChatToolCallType.FUNCTION] * 2, calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"], calls
    assert json.loads(calls[0].function.arguments) == {"city": "北京"} and calls[1].function.arguments == "{}"
    outputs = [ToolOutput(tool_call_id=calls[0].id, output="晴"), ToolOutput(tool_call_id=calls[1].id, output="12:00")]
    more = list(coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                              tool_outputs=outputs, stream=True))
    assert more[0].event == ChatEventType.CONVERSATION_CHAT_IN_PROGRESS and more[0].chat.id == chat.id, more[0]
    done = [e.message for e in more if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert [m.type for m in done[:3]] == [MessageType.TOOL_RESPONSE, MessageType.TOOL_RESPONSE, MessageType.ANSWER]
    assert [m.content for m in done[:2]] == ["晴", "12:00"], done[:2]
    assert text_of(more) == "工具结果 get_weather: 晴; get_time: 12:00", text_of(more)
    last = more[-1]
    assert last.event == ChatEventType.CONVERSATION_CHAT_COMPLETED and last.chat.status == ChatStatus.COMPLETED
    got = admin("/_fake/tool_outputs")
    assert got[-1]["stream"] is True and got[-1]["tool_outputs"] == [o.model_dump() for o in outputs], got


@check("chat.create with local tools, polled: submit_tool_outputs(stream=False) returns the Chat; two rounds")
def _():
    tools([[{"name": "find_city", "arguments": {"q": "首都"}}], [{"name": "get_weather", "arguments": "北京"}]])
    try:
        chat = coze.chat.create(bot_id=BOT, user_id=USER,
                                additional_messages=[Message.build_user_question_text("首都天气")])
        waiting = coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
        assert waiting.status == ChatStatus.REQUIRES_ACTION, waiting.status
        listed = coze.chat.messages.list(conversation_id=chat.conversation_id, chat_id=chat.id)
        assert [m.type for m in listed] == [MessageType.FUNCTION_CALL, MessageType.VERBOSE], listed
        call = waiting.required_action.submit_tool_outputs.tool_calls[0]
        r = coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                          tool_outputs=[ToolOutput(tool_call_id=call.id, output="北京")],
                                          stream=False)
        assert r.id == chat.id and r.status == ChatStatus.IN_PROGRESS, r
        again = coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
        second = again.required_action.submit_tool_outputs.tool_calls[0]
        assert second.id != call.id and second.function.arguments == "北京", second
        coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                      tool_outputs=[ToolOutput(tool_call_id=second.id, output="晴")], stream=False)
        done = coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
    finally:
        admin("/_fake/bot", {})
    assert done.status == ChatStatus.COMPLETED and done.usage.output_count > 0, done
    msgs = coze.chat.messages.list(conversation_id=chat.conversation_id, chat_id=chat.id)
    answers = [m.content for m in msgs if m.type == MessageType.ANSWER]
    assert answers == ["工具结果 find_city: 北京; get_weather: 晴"], answers
    assert [m.content for m in msgs if m.type == MessageType.TOOL_RESPONSE] == ["北京", "晴"]


@check("chat.stream: a question node's reply_message call (no id, no function) and its answer by submit")
def _():
    tools([[{"type": "reply_message", "question": "哪个城市？"}]])
    try:
        events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                       additional_messages=[Message.build_user_question_text("天气")]))
    finally:
        admin("/_fake/bot", {})
    assert text_of(events) == "哪个城市？", text_of(events)
    call = events[-1].chat.required_action.submit_tool_outputs.tool_calls[0]
    assert call.type == ChatToolCallType.REPLY_MESSAGE and call.function is None and call.id == "", call
    chat = events[-1].chat
    more = list(coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                              tool_outputs=[ToolOutput(tool_call_id="", output="北京")], stream=True))
    assert text_of(more) == "工具结果 reply_message: 北京", text_of(more)


@check("chat.submit_tool_outputs refusals raise CozeAPIError: not waiting, unknown id (4000), history not saved (5000)")
def _():
    tools([[{"name": "f"}]])
    try:
        events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                       additional_messages=[Message.build_user_question_text("x")]))
        unsaved = list(coze.chat.stream(bot_id=BOT, user_id=USER, auto_save_history=False,
                                        additional_messages=[Message.build_user_question_text("x")]))
    finally:
        admin("/_fake/bot", {})
    chat = events[-1].chat
    e = expect_raises(CozeAPIError, coze.chat.submit_tool_outputs, conversation_id=chat.conversation_id,
                      chat_id=chat.id, tool_outputs=[ToolOutput(tool_call_id="call_nope", output="o")], stream=False)
    assert e.code == 4000 and "call_nope" in e.msg and e.logid, (e.code, e.msg)
    u = unsaved[-1].chat
    call = u.required_action.submit_tool_outputs.tool_calls[0]
    e = expect_raises(CozeAPIError, lambda: list(coze.chat.submit_tool_outputs(
        conversation_id=u.conversation_id, chat_id=u.id,
        tool_outputs=[ToolOutput(tool_call_id=call.id, output="o")], stream=True)))
    assert e.code == 5000, (e.code, e.msg)
    call = chat.required_action.submit_tool_outputs.tool_calls[0]
    ok = [ToolOutput(tool_call_id=call.id, output="o")]
    coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id, tool_outputs=ok, stream=False)
    e = expect_raises(CozeAPIError, coze.chat.submit_tool_outputs, conversation_id=chat.conversation_id,
                      chat_id=chat.id, tool_outputs=ok, stream=False)
    assert e.code == 4000 and "not waiting" in e.msg, (e.code, e.msg)


@check("chat.submit_tool_outputs: usage named input_tokens/output_tokens (the submit docs' example) is more than coze-py reads")
def _():
    tools([[{"name": "f"}]], usage_keys="tokens")
    try:
        events = list(coze.chat.stream(bot_id=BOT, user_id=USER,
                                       additional_messages=[Message.build_user_question_text("x")]))
    finally:
        admin("/_fake/bot", {})
    chat = events[-1].chat
    call = chat.required_action.submit_tool_outputs.tool_calls[0]
    more = list(coze.chat.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                              tool_outputs=[ToolOutput(tool_call_id=call.id, output="o")],
                                              stream=True))
    usage = more[-1].chat.usage
    # coze-py 0.20.0's ChatUsage knows only the *_count names: the others leave it 0.
    assert usage.token_count > 0 and usage.output_count == 0 and usage.input_count == 0, usage


@check("files.upload: a temp file through the SDK; the fake saw its bytes (SHA-256)")
def _():
    content = "referee 附件\n".encode() * 1000
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "referee notes.txt")
        with open(path, "wb") as f:
            f.write(content)
        up = coze.files.upload(file=Path(path))
    assert up.id and up.id.isdigit() and up.bytes == len(content), (up.id, up.bytes)
    assert up.file_name == "referee notes.txt" and up.created_at > 0, (up.file_name, up.created_at)
    kept = [f for f in admin("/_fake/files")["files"] if f["id"] == up.id]
    assert kept and kept[0]["sha256"] == hashlib.sha256(content).hexdigest(), kept
    state["file"] = up


@check("files.retrieve: the uploaded file's record; an unknown id raises 4000")
def _():
    got = coze.files.retrieve(file_id=state["file"].id)
    assert (got.id, got.bytes, got.file_name) == (state["file"].id, state["file"].bytes,
                                                   state["file"].file_name), got
    e = expect_raises(CozeAPIError, coze.files.retrieve, file_id="7000000000000000001")
    assert e.code == 4000 and e.logid, (e.code, e.logid)


@check("chat.stream: an object_string message (build_user_question_objects) names its attachment")
def _():
    f = state["file"]
    msg = Message.build_user_question_objects([
        MessageObjectString.build_text("总结一下"),
        MessageObjectString.build_file(file_id=f.id),
    ])
    events = list(coze.chat.stream(bot_id=BOT, user_id=USER, additional_messages=[msg]))
    text = "".join(e.message.content for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA)
    want = f"收到：「总结一下」👍 这是扣子假机器人的回答。 [attachments: file:{f.file_name}]"
    assert text == want, text
    assert events[-1].event == ChatEventType.CONVERSATION_CHAT_COMPLETED, events[-1].event


@check("chat.stream: an object_string message breaking a rule raises CozeAPIError 4000")
def _():
    msg = Message.build_user_question_objects([MessageObjectString.build_text("只有文字")])
    e = expect_raises(CozeAPIError, lambda: list(coze.chat.stream(
        bot_id=BOT, user_id=USER, additional_messages=[msg])))
    assert e.code == 4000 and "at least one file" in e.msg, (e.code, e.msg)


WF = "7400000000000000100"


def workflow(**spec):
    admin("/_fake/workflow", {"workflow_id": WF, **spec})


@check("workflows.runs.create: a sync run's data is the end node's JSON, with usage and debug_url")
def _():
    workflow(output="json")
    params = {"city": "杭州", "days": [1, 2]}
    r = coze.workflows.runs.create(workflow_id=WF, parameters=params)
    assert json.loads(r.data) == {"output": params}, r.data
    assert r.debug_url.startswith(BASE + "/work_flow?execute_id=") and f"workflow_id={WF}" in r.debug_url, r.debug_url
    assert r.usage and r.usage.token_count == r.usage.input_count + r.usage.output_count > 0, r.usage
    assert not r.execute_id, r.execute_id


@check("workflows.runs.create: the doubly encoded output decodes twice")
def _():
    workflow(output="double")
    r = coze.workflows.runs.create(workflow_id=WF, parameters={"q": 1})
    outer = json.loads(r.data)
    inner = json.loads(outer["Output"])
    assert inner["content_type"] == 1 and json.loads(inner["data"]) == {"output": {"q": 1}}, inner


@check("workflows.runs.create(is_async) and run_histories.retrieve: Running, then Success with the output")
def _():
    workflow(running_polls=1)
    r = coze.workflows.runs.create(workflow_id=WF, parameters={"a": 1}, is_async=True)
    assert r.execute_id and int(r.execute_id) > 2**53 and r.debug_url, r
    first = coze.workflows.runs.run_histories.retrieve(workflow_id=WF, execute_id=r.execute_id)
    assert first.execute_status == WorkflowExecuteStatus.RUNNING, first.execute_status
    assert first.run_mode == WorkflowRunMode.ASYNCHRONOUS and first.execute_id == r.execute_id
    done = coze.workflows.runs.run_histories.retrieve(workflow_id=WF, execute_id=r.execute_id)
    assert done.execute_status == WorkflowExecuteStatus.SUCCESS, done.execute_status
    assert json.loads(done.output) == {"output": {"a": 1}} and done.error_code == 0, (done.output, done.error_code)
    assert done.usage.output_count > 0 and done.is_output_trimmed is False


@check("run_histories.retrieve: a failed async run has its error_code and error_message")
def _():
    workflow(running_polls=0, error={"code": 720701013, "message": "node failed"})
    r = coze.workflows.runs.create(workflow_id=WF, parameters={}, is_async=True)
    h = coze.workflows.runs.run_histories.retrieve(workflow_id=WF, execute_id=r.execute_id)
    assert h.execute_status == WorkflowExecuteStatus.FAIL, h.execute_status
    assert h.error_code == 720701013 and h.error_message == "node failed", (h.error_code, h.error_message)


@check("workflows.runs.stream: Message events with ids from 0, PINGs, the end node's output, usage")
def _():
    workflow(messages=3, pings=2)
    events = list(coze.workflows.runs.stream(workflow_id=WF, parameters={"x": "y"}))
    assert [e.id for e in events] == list(range(6)), [e.id for e in events]  # Done (id 6) ends it
    kinds = [e.event for e in events]
    assert kinds == [WorkflowEventType.MESSAGE] * 3 + [WorkflowEventType.UNKNOWN] * 2 + [WorkflowEventType.MESSAGE], kinds
    msgs = [e.message for e in events[:3]]
    assert [m.content for m in msgs] == [f"{i}: 你好 🌏\n" for i in range(3)], msgs
    assert [m.node_seq_id for m in msgs] == ["0", "1", "2"] and [m.node_is_finish for m in msgs] == [False, False, True]
    assert events[3].unknown["event"] == "PING", events[3].unknown
    end = events[-1].message
    assert end.node_title == "End" and json.loads(end.content) == {"output": {"x": "y"}}, end
    assert end.usage and end.usage.output_count == len(end.content), end.usage


@check("workflows.runs.stream: an Error event reaches the caller, no Done")
def _():
    workflow(messages=1, error={"code": 4000, "message": "Request parameter error"})
    events = list(coze.workflows.runs.stream(workflow_id=WF, parameters={}))
    assert [e.event for e in events] == [WorkflowEventType.MESSAGE, WorkflowEventType.ERROR], events
    assert events[1].error.error_code == 4000 and events[1].error.error_message == "Request parameter error"


@check("workflows.runs.stream: unpublished raises CozeAPIError 4200; a JSON body instead of a stream too")
def _():
    workflow(published=False)
    e = expect_raises(CozeAPIError, lambda: list(coze.workflows.runs.stream(workflow_id=WF, parameters={})))
    assert e.code == 4200 and e.logid, (e.code, e.logid)
    e = expect_raises(CozeAPIError, coze.workflows.runs.create, workflow_id=WF, parameters={})
    assert e.code == 4200, e.code
    workflow()
    fault("workflow.stream_run", {"type": "json_body", "code": 4000, "msg": "json fail"})
    e = expect_raises(CozeAPIError, lambda: list(coze.workflows.runs.stream(workflow_id=WF, parameters={})))
    assert e.code == 4000 and e.msg == "json fail", (e.code, e.msg)


@check("workflows.runs.resume: an Interrupt, a misfit asked again, then the answer; ids restart at 0")
def _():
    workflow(messages=1, question="哪个城市？", options=["杭州", "北京"])
    events = list(coze.workflows.runs.stream(workflow_id=WF, parameters={"day": 1}))
    assert [e.event for e in events] == [WorkflowEventType.MESSAGE] * 2 + [WorkflowEventType.INTERRUPT], events
    assert events[1].message.content == "哪个城市？" and events[1].message.node_title == "Question"
    it = events[2].interrupt
    assert it.node_title == "Question" and it.interrupt_data.type == 2 and "/" in it.interrupt_data.event_id, it
    again = list(coze.workflows.runs.resume(workflow_id=WF, event_id=it.interrupt_data.event_id,
                                            resume_data="上海", interrupt_type=it.interrupt_data.type))
    assert [e.id for e in again] == [0, 1] and again[1].event == WorkflowEventType.INTERRUPT, again
    it2 = again[1].interrupt.interrupt_data
    assert it2.event_id != it.interrupt_data.event_id, it2
    done = list(coze.workflows.runs.resume(workflow_id=WF, event_id=it2.event_id, resume_data="杭州",
                                           interrupt_type=it2.type))
    assert [e.id for e in done] == [0] and done[0].message.node_title == "End", done
    assert json.loads(done[0].message.content) == {"output": {"day": 1}, "answer": "杭州"}, done[0].message.content
    e = expect_raises(CozeAPIError, lambda: list(coze.workflows.runs.resume(
        workflow_id=WF, event_id=it2.event_id, resume_data="杭州", interrupt_type=2)))
    assert e.code == 4000, e.code
    runs = admin("/_fake/workflow")["runs"]
    assert runs[-1]["resumes"] == 2 and runs[-1]["answers"] == ["上海", "杭州"], runs[-1]


@check("workflows.chat.stream: chat events, the echo, completed; done ends the stream")
def _():
    workflow()
    events = list(coze.workflows.chat.stream(workflow_id=WF, app_id="7500000000000000009",
                                             additional_messages=[Message.build_user_question_text("你好🌏")]))
    kinds = [e.event for e in events]
    assert kinds[:2] == [ChatEventType.CONVERSATION_CHAT_CREATED, ChatEventType.CONVERSATION_CHAT_IN_PROGRESS], kinds
    assert kinds[-1] == ChatEventType.CONVERSATION_CHAT_COMPLETED, kinds
    text = "".join(e.message.content for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA)
    assert text == "Echo: 你好🌏", text
    done = [e.message for e in events if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert [m.type for m in done] == [MessageType.ANSWER, MessageType.VERBOSE] and done[0].content == text
    assert events[-1].chat.status == ChatStatus.COMPLETED and events[-1].chat.usage.output_count == len(text)


@check("workflows.chat.stream: a question is requires_action; the next message in the conversation answers it")
def _():
    workflow(question="哪天？")
    first = list(coze.workflows.chat.stream(workflow_id=WF, app_id="7500000000000000009",
                                            additional_messages=[Message.build_user_question_text("天气")]))
    assert first[-1].event == ChatEventType.CONVERSATION_CHAT_REQUIRES_ACTION, first[-1].event
    conv = first[-1].chat.conversation_id
    asked = [e.message.content for e in first if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert asked == ["哪天？"], asked
    second = list(coze.workflows.chat.stream(workflow_id=WF, app_id="7500000000000000009", conversation_id=conv,
                                             additional_messages=[Message.build_user_question_text("明天")]))
    text = "".join(e.message.content for e in second if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA)
    assert text == "Echo: 明天 (answer to 哪天？)" and second[0].chat.conversation_id == conv, text


@check("workflows.chat.stream: asked with ext.enable_card, a question with options is a card message coze-py reads")
def _():
    workflow(question="哪天？", options=["今天", "明天"])
    first = list(coze.workflows.chat.stream(workflow_id=WF, app_id="7500000000000000009",
                                            additional_messages=[Message.build_user_question_text("天气")],
                                            ext={"enable_card": "true"}))
    assert first[-1].event == ChatEventType.CONVERSATION_CHAT_REQUIRES_ACTION, first[-1].event
    assert not [e for e in first if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA], "a card is not streamed"
    cards = [e.message for e in first if e.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED]
    assert [m.content_type for m in cards] == [MessageContentType.CARD], cards
    info = json.loads(json.loads(cards[0].content)["x_properties"]["workflow_card_info"])
    assert info == {"card_type": "QUESTION",
                    "question_card_data": {"Title": "哪天？", "Options": [{"name": "今天"}, {"name": "明天"}]}}, info
    conv = first[-1].chat.conversation_id
    second = list(coze.workflows.chat.stream(workflow_id=WF, app_id="7500000000000000009", conversation_id=conv,
                                             additional_messages=[Message.build_user_question_text("明天")]))
    text = "".join(e.message.content for e in second if e.event == ChatEventType.CONVERSATION_MESSAGE_DELTA)
    assert text == "Echo: 明天 (answer to 哪天？)", text
    workflow()


@check("workflows.chat.stream: a failure as the docs show it ({\"code\":\"<string>\"}) is more than coze-py's Chat model reads")
def _():
    workflow(error={"code": 720702204, "message": "会话名不存在"})
    # The workflow_chat docs' failure event carries {"code":"720702204","msg":…}, not a
    # Chat: coze-py 0.20.0 validates it as a Chat and raises. The SDK is wrong here.
    e = expect_raises(pydantic.ValidationError, lambda: list(coze.workflows.chat.stream(
        workflow_id=WF, app_id="7500000000000000009", additional_messages=[Message.build_user_question_text("x")])))
    assert "id" in str(e) and "720702204" in str(e), e
    workflow()


TEAM = "7400000000000000002"


@check("workspaces.list: every page, paged on total_count (no has_more)")
def _():
    pages = list(coze.workspaces.list(page_size=1).iter_pages())
    ws = [w for p in pages for w in p.items]
    assert len(pages) == 2 and [w.id for w in ws] == ["7400000000000000001", TEAM], [w.id for w in ws]
    assert ws[0].role_type == "owner" and ws[0].workspace_type == "personal" and ws[0].enterprise_id == ""
    assert ws[1].workspace_type == "team" and ws[1].name == "Team"


@check("bots.list (v2, /v1/bots): every bot once across several pages, publish_status filters")
def _():
    admin("/_fake/bots", {"generate": {"workspace_id": TEAM, "count": 45},
                          "bots": [{"id": "7600000000000000001", "name": "draft", "workspace_id": TEAM,
                                    "published": False}]})
    pages = list(coze.bots.list(space_id=TEAM, page_size=20, use_api_version=2).iter_pages())
    bots = [b for p in pages for b in p.items]
    assert [len(p.items) for p in pages] == [20, 20, 5], [len(p.items) for p in pages]
    assert len({b.id for b in bots}) == 45 and all(b.is_published for b in bots)
    assert bots[0].name == "bot 1" and bots[0].bot_id == bots[0].id and bots[0].updated_at > 0
    drafts = list(coze.bots.list(space_id=TEAM, use_api_version=2,
                                 publish_status=cozepy.PublishStatus.UNPUBLISHED_DRAFT))
    assert [b.id for b in drafts] == ["7600000000000000001"] and not drafts[0].is_published
    every = list(coze.bots.list(space_id=TEAM, use_api_version=2, publish_status=cozepy.PublishStatus.ALL))
    assert len(every) == 46, len(every)


@check("bots.retrieve: BotInfo by /v1/bots/{id} (published, draft) and /v1/bot/get_online_info")
def _():
    admin("/_fake/bots", {"bots": [{
        "id": "7600000000000000009", "name": "Tutor", "prologue": "你好！",
        "suggested_questions": ["一", "二"],
        "info": {"plugin_info_list": [{"plugin_id": "1", "name": "search", "description": "d", "icon_url": "",
                                       "api_info_list": [{"api_id": "2", "name": "web", "description": ""}]}],
                 "workflow_info_list": [{"id": "3", "name": "wf", "description": "", "icon_url": ""}]},
        "draft": {"onboarding_info": {"prologue": "草稿"}}}]})
    bot = coze.bots.retrieve(bot_id="7600000000000000009", use_api_version=2)
    assert bot.bot_id == "7600000000000000009" and bot.name == "Tutor", bot
    assert bot.onboarding_info.prologue == "你好！" and bot.onboarding_info.suggested_questions == ["一", "二"]
    assert bot.model_info.model_id and bot.prompt_info.prompt and bot.bot_mode == 0
    assert bot.plugin_info_list[0].api_info_list[0].name == "web" and bot.workflow_info_list[0].name == "wf"
    draft = coze.bots.retrieve(bot_id="7600000000000000009", is_published=False, use_api_version=2)
    assert draft.onboarding_info.prologue == "草稿"
    old = coze.bots.retrieve(bot_id="7600000000000000009")
    assert old.name == "Tutor" and old.onboarding_info.prologue == "你好！"
    e = expect_raises(CozeAPIError, coze.bots.retrieve, bot_id="7699999999999999999", use_api_version=2)
    assert e.code == 4200 and "7699999999999999999" in e.msg, (e.code, e.msg)


@check("a denied permission raises CozeAPIError 4101")
def _():
    admin("/_fake/bots", {"denied": ["bots.list", "users.me"]})
    e = expect_raises(CozeAPIError, lambda: list(coze.bots.list(space_id=TEAM, use_api_version=2)))
    assert e.code == 4101 and e.logid, (e.code, e.logid)
    e = expect_raises(CozeAPIError, coze.users.me)
    assert e.code == 4101
    admin("/_fake/bots", {})
    assert coze.users.me().user_name == "fake_user"


@check("stats: counters agree with what the referee did")
def _():
    s = admin("/_fake/stats")
    assert s["grants"]["authorization_code"] == 1 and s["refreshes"] == 1, s
    assert s["max_chats_in_flight_per_conversation"] == 1 and s["busy_refusals"] == 0, s
    assert s["faults_fired"] == 4, s
    assert s["requests"]["files.upload"] == 1 and s["upload_bytes"] == state["file"].bytes, s
    assert s["requests"]["workflow.stream_run"] == 5 and s["requests"]["workflow.stream_resume"] == 3, s
    assert s["requests"]["workflow.history"] == 3 and s["requests"]["workflow.chat"] == 6, s
    assert s["requests"]["chat.submit_tool_outputs"] == 9, s
    assert len(admin("/_fake/tool_outputs")) == 6


print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
