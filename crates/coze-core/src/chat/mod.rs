//! Layer 7, the chat engine: one chat with a bot or a chatflow, streamed or polled,
//! turned into the same sequence of events.
//!
//! `ChatState` is the event machine: it takes `(event name, data)` pairs in the order
//! Coze sends them (the Coze API docs, `chat_v3`, its streaming events) and keeps what
//! a caller needs (ids, the answer, reasoning, follow-ups, usage, the failure), while a
//! `Sink` sees every event as it arrives. The streamed path feeds it from the SSE
//! reader; `--no-stream` feeds it events synthesized from create → retrieve → message
//! list, so both produce the same answer. A stream that breaks once the chat exists is
//! finished the second way: the chat goes on on the server, so it is polled to its end
//! and the machine gives the sink only what the stream had not. Printing is the sink's
//! business (coze-chat), not this module's.
//!
//! A chatflow (`Target::Workflow`, `POST /v1/workflows/chat`) answers with the same
//! events, so it is the same engine with a different request: it only streams, and a
//! stream of it that breaks is not followed by polling (a chatflow's chat cannot be
//! retrieved: the answer so far is kept and the prompt fails); its questions
//! (`requires_action`) are kept as a `Question`, answered by asking it again.
//!
//! `spec`: what to ask, and who answers; `question`: a chatflow's question;
//! `status`: the chat's status, every spelling; `state`: the event
//! machine and the `Sink` it feeds; `stream` and `poll`: the two ways to run a chat;
//! `active`: the chats in progress, cancelled when the run is stopped; `submit`: a bot's
//! chat that waits for its tool calls' outputs, given them and run on.

mod active;
mod poll;
mod question;
mod spec;
mod state;
mod status;
mod stream;
mod submit;

pub use active::{unwanted, Active};
pub use poll::poll;
pub use spec::{ChatSpec, Target};
pub use state::{id_text, ChatState, Failure, Sink, ToolCall};
pub use status::ChatStatus;
pub use stream::stream;
pub use submit::{submit, ToolOutput};
