//! For the unit tests of `auth`: a token record and a fresh temporary directory.

use std::fs;
use std::path::PathBuf;

use serde_json::Map;

use crate::protocol::Token;

/// A refreshable token record of a test server that is never reached.
pub(crate) fn token(access: &str, expires_at: i64) -> Token {
    Token {
        access_token: access.into(),
        token_type: "Bearer".into(),
        expires_at,
        refresh_token: Some("refresh-1234567".into()),
        client_id: Some("c".into()),
        base_url: Some("http://127.0.0.1:1".into()),
        extra: Map::new(),
    }
}

/// An empty path under the system's temp directory, for test `name` of this process.
pub(crate) fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coze-store-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}
