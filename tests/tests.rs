//! End-to-end tests: the real binaries against coze-fake over loopback, real files,
//! real processes, real signals. Each module is one tool or one concern.

mod socks_server;
mod util;

mod auth;
mod basics;
mod batch;
mod batch_more;
mod browser;
mod busy;
mod chat;
mod chat_failures;
mod chat_signals;
mod conv;
mod crash;
mod doctor;
mod examples;
mod faults;
mod input;
mod jwt;
mod load;
mod packaging;
mod profiles;
mod proxy;
mod recovery;
mod secrets;
mod studio;
mod tls;
mod token;
mod token_files;
