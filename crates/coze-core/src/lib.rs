//! coze-core: everything two coze tools share, written once.
//!
//! One folder per concern, in layers that import only downward (and never each other
//! in a circle; `tests/layers.rs` checks both on the source): `error` and `support`
//! (time, random, say, redact, url) at the bottom, then `wire` (SSE, JSON lines),
//! `protocol` (the records), `config` (the environment, credentials, settings), `http`,
//! `auth` (grants, the token file, renewal), `api` (the endpoints), `chat` and
//! `workflow` (the chat and workflow engines), `batch` (the batch engine, over any
//! task) and `cli` (what every binary's `main` does the same way) on top.
//!
//! Pure parts (SSE decoding, JSON lines, PKCE, records, error mapping) take bytes,
//! `BufRead` and `Write` and are unit-tested with slices; I/O (HTTP, files, the
//! loopback listener) stays at the edges. Nothing below the binaries' `main` reads
//! the environment: `config` resolves flags and environment once, up front.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod batch;
pub mod chat;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod protocol;
pub mod support;
pub mod wire;
pub mod workflow;

pub use error::{Error, Result};
