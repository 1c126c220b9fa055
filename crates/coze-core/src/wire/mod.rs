//! Layer 1, bytes to values and back: the SSE reader (`sse`), JSON lines in and out
//! (`jsonl`), `json_pick`, the one-pass reader of a few string members for the hot
//! path of a streamed answer, `event_data`, an event's data passed through as it came
//! to a lossless printer, and `multipart`, one file's upload body streamed from disk.
//! They know nothing about Coze's records or endpoints.

pub mod event_data;
#[cfg(test)]
mod fuzz_tests;
pub mod json_pick;
pub mod jsonl;
pub mod multipart;
pub mod sse;
#[cfg(test)]
pub(crate) mod test_io;
