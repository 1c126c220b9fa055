//! End-to-end tests: the real binaries against coze-fake over loopback, real files,
//! real processes, real signals. Each module is one tool or one concern.

mod util;

mod auth;
mod basics;
mod token;
mod jwt;
mod batch;
mod chat;
mod conv;
mod faults;
mod secrets;
mod crash;
mod load;
