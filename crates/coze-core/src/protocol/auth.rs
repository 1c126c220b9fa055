//! The records of logging in: coze-auth's grants (`authorization_code`, `device_code`)
//! and the `token` coze-token makes of them, which every tool's token file holds. Their
//! secrets are never shown by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Extra;

/// coze-auth's grant: what coze-token needs to exchange a code.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    /// The one-time code the callback brought back. Secret until exchanged.
    pub code: String,
    /// PKCE's verifier; absent for a web app's (confidential) login without PKCE, which
    /// its client secret authenticates instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_verifier: Option<String>,
    /// The redirect URI the authorize URL named: the token endpoint wants it again.
    pub redirect_uri: String,
    /// The OAuth app's client id (`1234567890.app.coze`).
    pub client_id: String,
    /// The API base the code is for (`https://api.coze.cn`, …): the exchange goes there
    /// and the token remembers it.
    pub base_url: String,
    /// Fields this version does not know, kept for the next tool.
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("code", &"<redacted>")
            .field(
                "code_verifier",
                &self.code_verifier.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// coze-auth `--device`'s grant: what coze-token polls with.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCode {
    /// The server's handle on this login, sent with every poll. Secret.
    pub device_code: String,
    /// The short code the person types on the verification page (`WDJB-MJHT`).
    pub user_code: String,
    /// The page where the person approves, on any device.
    pub verification_uri: String,
    /// Minimum seconds between polls.
    pub interval: u64,
    /// Unix seconds after which the device code is dead.
    pub expires_at: i64,
    /// The OAuth app's client id (a *TV / device / CLI* app).
    pub client_id: String,
    /// The API base the polls go to.
    pub base_url: String,
    /// Fields this version does not know, kept for the next tool.
    #[serde(flatten)]
    pub extra: Extra,
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("device_code", &"<redacted>")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("interval", &self.interval)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An access token, and what is needed to renew it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// What goes after `Authorization: Bearer`. Secret.
    pub access_token: String,
    /// The scheme to send it with. Defaults to `Bearer`, the only one Coze uses.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Unix seconds; 0 when unknown (a bare PAT never expires for us).
    #[serde(default)]
    pub expires_at: i64,
    /// Trades once for a new pair (Coze rotates them: the one sent is spent). Absent for
    /// PATs and JWT service tokens. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The OAuth app the token was issued to, which a refresh must name; absent for a
    /// PAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The API base the token belongs to, so later commands need no `--base-url` or
    /// `--region`; absent when unknown (an older file, a bare token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Everything else, kept as is: how to renew it (`grant: "jwt"` with the key's path,
    /// `kid` and `ttl`; `client_secret_file`), the `lifetime` the server gave, a PAT's
    /// `allow_http` consent, a script's own fields.
    #[serde(flatten)]
    pub extra: Extra,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl Token {
    /// Seconds of life left at `now` (negative when expired); i64::MAX if unknown.
    pub fn ttl(&self, now: i64) -> i64 {
        if self.expires_at == 0 {
            i64::MAX
        } else {
            self.expires_at - now
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::protocol::Record;

    #[test]
    fn debug_never_shows_secrets() {
        let rec = Record::from_line(1, r#"{"type":"token","access_token":"czu_SECRET1","refresh_token":"SECRET2","expires_at":1}"#).unwrap();
        let dbg = format!("{rec:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        let rec = Record::from_line(1, r#"{"type":"authorization_code","code":"SECRET3","code_verifier":"SECRET4","redirect_uri":"r","client_id":"i","base_url":"b"}"#).unwrap();
        assert!(!format!("{rec:?}").contains("SECRET"));
    }
}
