//! The bottom layer (with `error`): small helpers every other layer may use and that
//! use nothing above them. `time` (now, "3 min ago"), `random` (ids from the OS),
//! `say` (whole lines on stderr, warnings naming the tool, control characters shown),
//! `redact` (secrets kept out of what a person reads) and `url` (the little URL
//! handling the tools need).

pub mod random;
pub mod redact;
pub mod say;
pub mod time;
pub mod url;
