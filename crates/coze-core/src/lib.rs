//! coze-core: everything two coze tools share, written once.
//!
//! Pure parts (SSE decoding, JSON lines, PKCE, records, error mapping) take bytes,
//! `BufRead` and `Write` and are unit-tested with slices; I/O (HTTP, files, the
//! loopback listener) stays at the edges. Nothing below the binaries' `main` reads
//! the environment: `config` resolves flags and environment once, up front.

pub mod api;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod protocol;
pub mod support;
pub mod wire;

pub use error::{Error, Result};
