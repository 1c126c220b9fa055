//! HTTP for the coze tools, layer 4: the client (`agent`: one agent per route and
//! process, every default a decision), the decoding of answers into values or one
//! `ApiError` (`decode`), when to ask again (`retry`), transport failures named for a
//! person (`failure`), and the three decisions the agent asks about: the pace of
//! requests (`pace`), the proxy of each (`proxy`) and the CAs trusted (`tls`).
//!
//! Not here: what the endpoints mean (`api`, `auth::oauth`), tokens (`auth`).

mod agent;
mod decode;
mod failure;
pub mod pace;
pub mod proxy;
mod retry;
pub mod tls;

pub use agent::{user_agent, Http, HttpConfig, Network, OpenBody, Request, Stream, Upload};
pub use decode::{decode, Dialect};
pub use failure::{describe_io, is_timeout, network_error};
pub use retry::{backoff, busy_step, in_words, parse_retry_after};
