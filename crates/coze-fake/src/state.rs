//! Everything the fake remembers, behind one mutex: issued codes and tokens, device
//! codes, used JWT ids, conversations with their messages, chats, the counters behind
//! `/_fake/stats`, the request log, queued faults, the bot's current behaviour and the
//! workflows' with their runs.
//! Handlers lock it only to read or change state, never while sleeping or writing to a
//! socket.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::util::{new_id, now_s};

/// An authorize request waiting on the consent page.
#[derive(Clone, Debug)]
pub struct PendingAuth {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub challenge: Option<String>,
    pub method: String,
}

/// An issued authorization code (single use).
#[derive(Clone, Debug)]
pub struct AuthCode {
    pub auth: PendingAuth,
    pub expires_ms: u64,
}

#[derive(Clone, Debug)]
pub struct RefreshToken {
    pub client_id: String,
    pub expires_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
}

#[derive(Clone, Debug)]
pub struct DeviceGrant {
    pub client_id: String,
    pub user_code: String,
    pub expires_ms: u64,
    pub last_poll_ms: Option<u64>,
    pub status: DeviceStatus,
}

#[derive(Debug)]
pub struct Conversation {
    pub id: String,
    pub name: String,
    pub bot_id: String,
    pub meta_data: Value,
    pub creator_id: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub last_section_id: String,
    pub connector_id: String,
    /// Creation sequence, to break ties between conversations created in one second.
    pub seq: u64,
    /// Messages in creation order (oldest first).
    pub messages: Vec<Value>,
    pub chats_in_flight: u32,
    /// Studio deletes softly: the conversation leaves the list but can still be
    /// retrieved and chatted in (`backend/domain/conversation/conversation/internal/dal/dao.go`
    /// `Delete` sets a status that only `List` filters on). The coze dialect removes it.
    pub deleted: bool,
    /// Studio's `user_id` of the conversation (from its create request or the chat that
    /// made it); empty when none was given.
    pub user_id: String,
}

impl Conversation {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "meta_data": self.meta_data,
            "creator_id": self.creator_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_section_id": self.last_section_id,
            "connector_id": self.connector_id,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChatStatus {
    Created,
    InProgress,
    Completed,
    Failed,
    RequiresAction,
    Canceled,
}

impl ChatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatStatus::Created => "created",
            ChatStatus::InProgress => "in_progress",
            ChatStatus::Completed => "completed",
            ChatStatus::Failed => "failed",
            ChatStatus::RequiresAction => "requires_action",
            ChatStatus::Canceled => "canceled",
        }
    }
    pub fn terminal(self) -> bool {
        !matches!(self, ChatStatus::Created | ChatStatus::InProgress)
    }
}

/// How a non-streamed chat will end when it settles (set from a queued fault).
#[derive(Clone, Debug)]
pub enum Ending {
    Complete,
    Fail(i64, String),
    RequiresAction,
}

#[derive(Debug)]
pub struct Chat {
    pub id: String,
    pub conversation_id: String,
    pub bot_id: String,
    pub section_id: String,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    pub failed_at: Option<u64>,
    pub meta_data: Value,
    pub status: ChatStatus,
    pub last_error: (i64, String),
    /// (input, output) counts; zero until the chat completes, like the real stream.
    pub usage: (u64, u64),
    pub final_usage: (u64, u64),
    pub required_action: Option<Value>,
    /// The answer, verbose and follow_up messages (what /v3/chat/message/list shows).
    pub messages: Vec<Value>,
    pub auto_save: bool,
    /// Non-streamed chats complete lazily once this instant has passed.
    pub ready_at: Option<Instant>,
    pub ending: Ending,
    /// Set by cancel; a stream of this chat polls it between events.
    pub cancel: Arc<AtomicBool>,
    /// Studio's cancel only rewrites the run record's status and lets the run go on
    /// (see `State::mark_cancelled`); set until the run ends.
    pub cancel_marked: bool,
    /// Whether this chat still counts in its conversation's `chats_in_flight`.
    pub holds_conversation: bool,
    /// The tool calls of a chat that makes them (the `tools` bot setting, or the
    /// `requires_action` fault), and the outputs it got.
    pub tools: Option<crate::chat::tools::ToolRun>,
}

impl Chat {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("conversation_id".into(), json!(self.conversation_id));
        m.insert("bot_id".into(), json!(self.bot_id));
        m.insert("created_at".into(), json!(self.created_at));
        if let Some(c) = self.completed_at {
            m.insert("completed_at".into(), json!(c));
        }
        if let Some(f) = self.failed_at {
            m.insert("failed_at".into(), json!(f));
        }
        m.insert("meta_data".into(), self.meta_data.clone());
        m.insert(
            "last_error".into(),
            json!({"code": self.last_error.0, "msg": self.last_error.1}),
        );
        m.insert("status".into(), json!(self.status.as_str()));
        let (i, o) = self.usage;
        let tokens = self
            .tools
            .as_ref()
            .is_some_and(|t| t.tools.usage_tokens && self.status == ChatStatus::Completed);
        m.insert(
            "usage".into(),
            if tokens {
                // The key names of the `chat_submit_tool_outputs` docs' example.
                json!({"token_count": i + o, "output_tokens": o, "input_tokens": i})
            } else {
                json!({"token_count": i + o, "output_count": o, "input_count": i})
            },
        );
        match (&self.required_action, &self.tools) {
            (Some(ra), _) => {
                m.insert("required_action".into(), ra.clone());
            }
            (None, Some(_)) if !self.status.terminal() => {
                m.insert(
                    "required_action".into(),
                    crate::chat::tools::empty_required_action(),
                );
            }
            _ => {}
        }
        m.insert("section_id".into(), json!(self.section_id));
        Value::Object(m)
    }
}

/// Counters behind `/_fake/stats`.
#[derive(Default, Debug)]
pub struct Stats {
    pub connections: u64,
    pub requests: BTreeMap<String, u64>,
    pub grants: BTreeMap<String, u64>,
    pub token_requests: u64,
    pub refreshes: u64,
    pub cancels: u64,
    pub chats: u64,
    pub busy_refusals: u64,
    pub max_chats_in_flight_per_conversation: u64,
    pub faults_fired: u64,
    /// File-content bytes received by uploads, successful or not.
    pub upload_bytes: u64,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let mut grants = Map::new();
        for k in ["authorization_code", "refresh_token", "device_code", "jwt"] {
            grants.insert(k.into(), json!(self.grants.get(k).copied().unwrap_or(0)));
        }
        json!({
            "connections": self.connections,
            "requests": self.requests,
            "grants": grants,
            "token_requests": self.token_requests,
            "refreshes": self.refreshes,
            "cancels": self.cancels,
            "chats": self.chats,
            "busy_refusals": self.busy_refusals,
            "max_chats_in_flight_per_conversation": self.max_chats_in_flight_per_conversation,
            "faults_fired": self.faults_fired,
            "upload_bytes": self.upload_bytes,
        })
    }
}

/// An uploaded file: what the fake keeps of it, never its content.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub id: String,
    pub file_name: String,
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// The part's Content-Type ("" when it had none).
    pub content_type: String,
    pub created_at: u64,
    /// The bearer token that uploaded it: only that token may retrieve or attach it.
    pub owner: String,
}

impl StoredFile {
    /// The `/_fake/files` record.
    pub fn admin_json(&self) -> Value {
        json!({
            "id": self.id,
            "file_name": self.file_name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "created_at": self.created_at,
        })
    }
}

/// A fault waiting for the next `remaining` requests to `endpoint`.
#[derive(Clone, Debug)]
pub struct QueuedFault {
    pub endpoint: String,
    pub fault: Value,
    pub remaining: u32,
    /// Fire on each matching request with this probability (until `remaining` have
    /// fired) instead of on the next `remaining` requests: "5% of chats fail".
    pub probability: Option<f64>,
}

/// How many request-log entries the fake keeps (the oldest tenth goes when it is full).
pub const LOG_LIMIT: usize = 100_000;

pub struct State {
    pub stats: Stats,
    pub log: Vec<Value>,
    pub faults: VecDeque<QueuedFault>,
    pub bot: crate::chat::Bot,
    pub consents: HashMap<String, PendingAuth>,
    pub codes: HashMap<String, AuthCode>,
    /// Access token -> expiry (Unix ms).
    pub access: HashMap<String, u64>,
    pub refresh: HashMap<String, RefreshToken>,
    pub devices: HashMap<String, DeviceGrant>,
    /// Every `jti` of an accepted JWT: each JWT works once.
    pub jtis: HashSet<String>,
    pub conversations: HashMap<String, Conversation>,
    pub chats: HashMap<String, Chat>,
    /// Polled (non-stream) chats not yet settled: `settle` looks only at these, so its
    /// cost does not grow with every chat the fake has ever run.
    pub polled: HashSet<String>,
    /// Uploaded files, in upload order.
    pub files: Vec<StoredFile>,
    pub conv_seq: u64,
    /// A deterministic generator for probabilistic faults (xorshift64*).
    pub rng: u64,
    /// The workflows' behaviours and runs.
    pub wf: crate::workflows::Book,
    /// Every accepted submit_tool_outputs, oldest first (`/_fake/tool_outputs`).
    pub tool_outputs: Vec<Value>,
    /// The workspaces and bots the account sees, and the permissions it lacks
    /// (`/_fake/bots`).
    pub bots: crate::bots::Catalog,
}

impl State {
    pub fn new() -> State {
        State {
            stats: Stats::default(),
            log: Vec::new(),
            faults: VecDeque::new(),
            bot: crate::chat::Bot::default(),
            consents: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            devices: HashMap::new(),
            jtis: HashSet::new(),
            conversations: HashMap::new(),
            chats: HashMap::new(),
            polled: HashSet::new(),
            files: Vec::new(),
            conv_seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            wf: Default::default(),
            tool_outputs: Vec::new(),
            bots: Default::default(),
        }
    }

    /// A uniform draw in [0, 1), reproducible for a given seed.
    pub fn draw(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn new_conversation(&mut self, bot_id: &str, creator: &str) -> String {
        let id = new_id();
        let now = now_s();
        self.conv_seq += 1;
        let c = Conversation {
            id: id.clone(),
            name: String::new(),
            bot_id: bot_id.to_string(),
            meta_data: json!({}),
            creator_id: creator.to_string(),
            created_at: now,
            updated_at: now,
            last_section_id: new_id(),
            connector_id: "1024".into(),
            seq: self.conv_seq,
            messages: Vec::new(),
            chats_in_flight: 0,
            deleted: false,
            user_id: String::new(),
        };
        self.conversations.insert(id.clone(), c);
        id
    }

    /// Finish every non-streamed chat of `conv` whose latency has passed, so the
    /// conversation's messages and busy state are current before a handler reads them.
    pub fn settle(&mut self, conv: &str) {
        let now = Instant::now();
        let chats = &self.chats;
        // Forget settled (or removed) chats; keep the rest for later calls.
        self.polled
            .retain(|id| chats.get(id).is_some_and(|c| !c.status.terminal()));
        let due: Vec<String> = self
            .polled
            .iter()
            .filter_map(|id| self.chats.get(id))
            .filter(|c| c.conversation_id == conv && c.ready_at.is_some_and(|t| t <= now))
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            let ending = self.chats.get(&id).map(|c| c.ending.clone());
            if let Some(e) = ending {
                self.finish_chat(&id, e);
            }
        }
    }

    /// Move an unfinished chat to its terminal state: completed (its messages saved to the
    /// conversation when auto_save_history), failed or requires_action. Frees the
    /// conversation for the next chat.
    pub fn finish_chat(&mut self, chat_id: &str, ending: Ending) {
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return;
        };
        if chat.status.terminal() {
            return;
        }
        let now = now_s();
        match ending {
            Ending::Complete => {
                chat.status = ChatStatus::Completed;
                chat.completed_at = Some(now);
                chat.usage = chat.final_usage;
            }
            Ending::Fail(code, msg) => {
                chat.status = ChatStatus::Failed;
                chat.failed_at = Some(now);
                chat.last_error = (code, msg);
                chat.messages.clear();
            }
            Ending::RequiresAction => {
                chat.status = ChatStatus::RequiresAction;
                let run = chat.tools.get_or_insert_with(|| {
                    crate::chat::tools::ToolRun::new(crate::chat::tools::Tools::fault_default(), "")
                });
                chat.required_action = Some(run.required_action(&chat.id));
            }
        }
        chat.cancel_marked = false;
        let save = chat.auto_save && chat.status == ChatStatus::Completed;
        let msgs = if save {
            chat.messages.clone()
        } else {
            Vec::new()
        };
        let conv_id = chat.conversation_id.clone();
        self.release(&conv_id, chat_id);
        if let Some(conv) = self.conversations.get_mut(&conv_id) {
            conv.messages.extend(msgs);
            conv.updated_at = now;
        }
    }

    /// Cancel an unfinished chat (cancel endpoint, or its stream's client went away).
    pub fn cancel_chat(&mut self, chat_id: &str) -> bool {
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return false;
        };
        if chat.status.terminal() {
            return false;
        }
        chat.status = ChatStatus::Canceled;
        chat.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        chat.messages.clear();
        let conv_id = chat.conversation_id.clone();
        self.release(&conv_id, chat_id);
        true
    }

    /// Studio's cancel (`backend/domain/conversation/agentrun/internal/dal/dao.go`
    /// `Cancel`): the run record's status becomes `conversation.chat.cancelled`, nothing
    /// stops the run, and its end overwrites that status. The conversation is freed at
    /// once, since Studio never refuses a second chat in a conversation.
    pub fn mark_cancelled(&mut self, chat_id: &str) {
        let Some(chat) = self.chats.get_mut(chat_id) else {
            return;
        };
        chat.cancel_marked = true;
        let conv_id = chat.conversation_id.clone();
        self.release(&conv_id, chat_id);
    }

    /// Count `chat_id` in its conversation's `chats_in_flight` again: a chat that waited
    /// for tool outputs runs on.
    pub fn hold(&mut self, conv_id: &str, chat_id: &str) {
        let was = self
            .chats
            .get_mut(chat_id)
            .map(|c| std::mem::replace(&mut c.holds_conversation, true));
        if was == Some(false) {
            if let Some(conv) = self.conversations.get_mut(conv_id) {
                conv.chats_in_flight += 1;
            }
        }
    }

    /// Stop counting `chat_id` in its conversation's `chats_in_flight` (once).
    fn release(&mut self, conv_id: &str, chat_id: &str) {
        let held = self
            .chats
            .get_mut(chat_id)
            .is_some_and(|c| std::mem::replace(&mut c.holds_conversation, false));
        if let Some(conv) = self.conversations.get_mut(conv_id) {
            if held {
                conv.chats_in_flight = conv.chats_in_flight.saturating_sub(1);
            }
        }
    }

    /// The file `id` if `owner` uploaded it.
    pub fn file(&self, id: &str, owner: &str) -> Option<&StoredFile> {
        self.files.iter().find(|f| f.id == id && f.owner == owner)
    }

    /// Take the next queued fault for `endpoint` (or `*`, which `api` endpoints match).
    pub fn take_fault(&mut self, endpoint: &str, api: bool) -> Option<Value> {
        let matching: Vec<usize> = (0..self.faults.len())
            .filter(|&i| {
                self.faults[i].endpoint == endpoint || (api && self.faults[i].endpoint == "*")
            })
            .collect();
        let mut chosen = None;
        for i in matching {
            match self.faults[i].probability {
                None => {
                    chosen = Some(i);
                    break;
                }
                Some(p) => {
                    if self.draw() < p {
                        chosen = Some(i);
                        break;
                    }
                }
            }
        }
        let idx = chosen?;
        let f = &mut self.faults[idx];
        let fault = f.fault.clone();
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining == 0 {
            self.faults.remove(idx);
        }
        self.stats.faults_fired += 1;
        Some(fault)
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}
