//! The chats in progress, one per worker thread, for cancelling them on the server when
//! the run is stopped (Ctrl-C, a closed stdout): closing our socket does not stop a
//! chat, and one left running blocks the conversation (4016).

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

use super::state::ChatState;
use crate::api::Client;
use crate::error::{Error, Result};
use crate::support::say::tool;

/// The chats in progress (one per worker thread), for cancelling them on Ctrl-C or a
/// closed stdout.
#[derive(Debug, Default)]
pub struct Active {
    chats: Mutex<Chats>,
    /// Signalled when [`Active::cancel`] has finished cancelling.
    settled: Condvar,
}

#[derive(Debug, Default)]
struct Chats {
    by_thread: HashMap<ThreadId, (String, String)>,
    /// Threads whose chat [`Active::cancel`] is cancelling right now.
    cancelling: HashSet<ThreadId>,
    /// [`Active::cancel`] has run: every chat is unwanted, also one that is only now
    /// learning its ids (it was being created while the others were cancelled).
    cancelled: bool,
    /// The conversation of the chat registered last, kept once it is over.
    latest: Option<String>,
}

impl Active {
    fn chats(&self) -> std::sync::MutexGuard<'_, Chats> {
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records this thread's chat once its ids are known. False once [`cancel`] has run:
    /// the caller must end the chat (recorded, so [`cancel_mine`] stops it on the
    /// server).
    ///
    /// [`cancel`]: Active::cancel
    /// [`cancel_mine`]: Active::cancel_mine
    #[must_use]
    pub fn set(&self, state: &ChatState) -> bool {
        let mut chats = self.chats();
        if let (Some(conv), Some(chat)) = (&state.conversation_id, &state.chat_id) {
            chats
                .by_thread
                .insert(std::thread::current().id(), (conv.clone(), chat.clone()));
            chats.latest = Some(conv.clone());
        }
        !chats.cancelled
    }

    /// Whether [`cancel`](Active::cancel) has run: the run is being stopped, so a
    /// stream that ends now ended because we cancelled it, and is not followed.
    pub fn stopped(&self) -> bool {
        self.chats().cancelled
    }

    /// Forgets a [`cancel`](Active::cancel): the chats registered from now on are
    /// wanted again. For a session at the terminal, where Ctrl-C cancels one answer and
    /// the next prompt is asked as usual; call it once the cancelled chat has ended.
    pub fn reset(&self) {
        self.chats().cancelled = false;
    }

    /// The conversation of the chat registered last, also once that chat is over or
    /// cancelled: a session whose first answer was cancelled goes on in the
    /// conversation that chat made.
    pub fn latest_conversation(&self) -> Option<String> {
        self.chats().latest.clone()
    }

    /// This thread's chat is over.
    pub fn clear(&self) {
        self.chats().by_thread.remove(&std::thread::current().id());
    }

    /// Cancels this thread's chat, if one is in progress. If [`cancel`](Active::cancel)
    /// is cancelling it already, waits for that: the caller keeps its stream open
    /// meanwhile (a server may end a chat whose client hung up, and a retried cancel
    /// would then find nothing to cancel).
    pub fn cancel_mine(&self, client: &Client<'_>, tool: &str) {
        let me = std::thread::current().id();
        let mut chats = self.chats();
        while chats.cancelling.contains(&me) {
            chats = self.settled.wait(chats).unwrap_or_else(|p| p.into_inner());
        }
        let mine = chats.by_thread.remove(&me);
        drop(chats);
        if let Some((conv, chat)) = mine {
            cancel_one(client, tool, &conv, &chat);
        }
    }

    /// The end of this thread's chat: cancelled on the server when `outcome` failed
    /// before the chat was over (unless `cancel` says the server already answered for
    /// it), then forgotten; a chat the server ended in failure makes that the outcome.
    pub(super) fn finish(
        &self,
        client: &Client<'_>,
        state: ChatState,
        outcome: Result<()>,
        logid: Option<&str>,
        cancel: bool,
    ) -> (ChatState, Result<()>) {
        if outcome.is_err() && !state.finished() && cancel {
            self.cancel_mine(client, tool());
        }
        self.clear();
        let outcome = outcome.and_then(|()| state.error(logid).map_or(Ok(()), Err));
        (state, outcome)
    }

    /// Whether [`cancel`](Active::cancel) has run: the run is stopping, and what its
    /// chats met since is nobody's news.
    pub fn cancelled(&self) -> bool {
        self.chats().cancelled
    }

    /// Cancels every chat in progress (Ctrl-C, a closed stdout), all at once: one after
    /// another, `--jobs 16` would wait 16 round trips. A chat that registers later is
    /// refused ([`set`](Active::set) says false).
    pub fn cancel(&self, client: &Client<'_>, tool: &str) {
        let all: Vec<(ThreadId, (String, String))> = {
            let mut chats = self.chats();
            chats.cancelled = true;
            let all: Vec<_> = chats.by_thread.drain().collect();
            chats.cancelling.extend(all.iter().map(|(t, _)| *t));
            all
        };
        std::thread::scope(|s| {
            for (_, (conv, chat)) in &all {
                s.spawn(move || cancel_one(client, tool, conv, chat));
            }
        });
        let mut chats = self.chats();
        for (t, _) in &all {
            chats.cancelling.remove(t);
        }
        self.settled.notify_all();
    }
}

/// What a chat started after [`Active::cancel`] ends with: its output has no reader
/// (or the process is exiting on a signal), so it ends as quietly as a closed stdout.
pub fn unwanted() -> Error {
    Error::io(
        "stdout",
        io::Error::new(io::ErrorKind::BrokenPipe, "the run was stopped"),
    )
}

/// Cancels one chat; failures are reported, not fatal.
fn cancel_one(client: &Client<'_>, tool: &str, conv: &str, chat: &str) {
    match client.chat_cancel(conv, chat) {
        // The chat already finished; nothing left to stop: 4104 on coze.cn, 103200005
        // ("in progress can not be cancelled", said of a chat that is over) on a
        // self-hosted Coze Studio (coze-dev/coze-studio
        // `backend/application/conversation/openapi_agent_run.go`).
        Err(e)
            if matches!(
                e.api().and_then(|a| a.coze_code()),
                Some(4104 | 103_200_005)
            ) => {}
        Err(e) => crate::say!(
            "{tool}: cancelling chat {chat}: {}",
            crate::support::redact::scrub(&e.to_string())
        ),
        Ok(_) => {}
    }
}
