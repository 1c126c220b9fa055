//! Layer 6, the Coze REST API the tools use: conversations, messages and chat (the Coze
//! API docs: `create_conversation`, `list_message`, `chat_v3`, …), files (`upload_files`,
//! `retrieve_files`), workflows (`workflow_run`, `workflow_stream_run`, …) and the
//! bots and workspaces (`bots`), the current user,
//! with authentication handled once for all of them (`client`). This layer returns the
//! server's JSON (`data` unwrapped); what to print is the binaries' business.

pub mod bots;
mod chat;
mod client;
mod conversations;
pub mod files;
mod users;
mod workflows;

pub use client::{with_region_hint, Client, Page};
pub use files::{FileInfo, FileSource};
