//! What renewing a token means, and when: a `grant: "jwt"` token (a service app's) is
//! minted again from its key; any other is refreshed with its refresh token, a web
//! app's with the client secret read from the `client_secret_file` it names. A token is
//! renewed once it is within its margin of expiry, or when the server refused it, or
//! on request; the store (`store`) makes each renewal single-flight and safe on disk,
//! this module decides what to ask the server (`oauth`) for.

use std::path::PathBuf;

use super::jwt::JwtGrant;
use super::oauth;
use super::secret_file::read_client_secret;
use super::store::TokenStore;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::protocol::Token;
use crate::support::time::{ago, unix_now};

/// Renew when the token has less than this many seconds left: 2 minutes, so a token
/// taken for a request never expires on its way (the README's "Log in").
pub const DEFAULT_MIN_TTL: i64 = 120;

/// The renewal margin the API tools use for `token`: `min_ttl`, but never more than a
/// quarter of the token's recorded lifetime. Coze's 15-minute tokens keep the 120 s
/// margin (a quarter is 225 s); a token issued for 6 s (a test fake) or 60 s (a short
/// JWT `--ttl`) is renewed 1 s or 15 s before it expires, instead of on every use,
/// which is what a fixed 120 s margin would do to any token living under 120 s. A
/// token without a recorded lifetime (written by an older version, or by hand) keeps
/// `min_ttl`.
pub fn renew_margin(token: &Token, min_ttl: i64) -> i64 {
    match token
        .extra
        .get(oauth::LIFETIME)
        .and_then(serde_json::Value::as_i64)
    {
        Some(lifetime) if lifetime > 0 => min_ttl.min(lifetime / 4),
        _ => min_ttl,
    }
}

/// What renewing needs besides the token itself.
#[derive(Clone, Copy)]
pub struct Renewer<'a> {
    /// The client the grants are sent with.
    pub http: &'a Http,
    /// Where to refresh when the token does not say (`--base-url`, env, default).
    pub api_base: &'a str,
    /// A web app's client secret, sent as bearer on refresh.
    pub client_secret: Option<&'a str>,
}

impl Renewer<'_> {
    /// Renews `token`: a JWT token is minted again from its key, any other is
    /// refreshed with its refresh token. The new token keeps the old one's extra fields.
    pub fn renew(&self, token: &Token) -> Result<Token> {
        let now = unix_now();
        let base = token.base_url.as_deref().unwrap_or(self.api_base);
        if let Some(grant) = JwtGrant::from_token(token) {
            let mut fresh = oauth::mint(self.http, base, &grant?, now)?;
            let mut extra = token.extra.clone();
            extra.append(&mut fresh.extra);
            fresh.extra = extra;
            return Ok(fresh);
        }
        let Some(refresh_token) = token.refresh_token.as_deref() else {
            return Err(Error::Auth(format!(
                "the token expired {} and has no refresh token: log in again with `coze-auth | coze-token --save`",
                ago(token.expires_at, now)
            )));
        };
        let Some(client_id) = token.client_id.as_deref() else {
            return Err(Error::Auth(
                "the token has a refresh token but no client_id, so it cannot be refreshed: log in again".into(),
            ));
        };
        // A web app's secret: the caller's, else the file the record names.
        let from_file;
        let client_secret = match (self.client_secret, client_secret_file(token)) {
            (Some(s), _) => Some(s),
            (None, Some(path)) => {
                from_file = read_client_secret(&path)?;
                Some(from_file.as_str())
            }
            (None, None) => None,
        };
        let mut fresh = oauth::refresh(
            self.http,
            base,
            refresh_token,
            client_id,
            client_secret,
            now,
        )?;
        // The old record's extra fields survive; what the new answer says (its lifetime)
        // replaces them.
        let mut extra = token.extra.clone();
        extra.append(&mut fresh.extra);
        fresh.extra = extra;
        if fresh.base_url.is_none() {
            fresh.base_url = token.base_url.clone();
        }
        Ok(fresh)
    }

    /// A token with more than `min_ttl` seconds left, renewed single-flight if needed
    /// (`coze-token print --min-ttl`: exactly the margin asked for).
    pub fn fresh(&self, store: &TokenStore, min_ttl: i64) -> Result<Token> {
        self.fresh_with(store, |_| min_ttl)
    }

    /// A token renewed single-flight once it is within `margin(token)` seconds of
    /// its expiry (the API tools pass [`renew_margin`]).
    pub fn fresh_with(&self, store: &TokenStore, margin: impl Fn(&Token) -> i64) -> Result<Token> {
        let stale = |t: &Token| t.ttl(unix_now()) <= margin(t);
        let token = store.load()?;
        if !stale(&token) {
            return Ok(token);
        }
        store.renew_if(stale, |t| self.renew(t))
    }

    /// The server refused `rejected` (4100): renew unless another process already did.
    pub fn after_rejection(&self, store: &TokenStore, rejected: &str) -> Result<Token> {
        store.renew_if(|t| t.access_token == rejected, |t| self.renew(t))
    }

    /// Renews unconditionally (coze-token refresh --force).
    pub fn renew_now(&self, store: &TokenStore) -> Result<Token> {
        store.renew_if(|_| true, |t| self.renew(t))
    }
}

/// The web-app secret file a token record names (`client_secret_file`), if any.
pub fn client_secret_file(token: &Token) -> Option<PathBuf> {
    token
        .extra
        .get("client_secret_file")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Whether `renew` has what it needs: a JWT grant, or a refresh token and client id.
pub fn renewable(token: &Token) -> bool {
    match JwtGrant::from_token(token) {
        Some(grant) => grant.is_ok(),
        None => token.refresh_token.is_some() && token.client_id.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{tmpdir, token};
    use std::fs;

    #[test]
    fn a_fresh_token_is_returned_without_any_request() {
        let dir = tmpdir("fresh");
        let store = TokenStore::new(dir.join("t.json"));
        store
            .save(&token("czu_valid_token", unix_now() + 900))
            .unwrap();
        // An HTTP client pointed nowhere: any request would fail the test.
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let t = Renewer {
            http: &http,
            api_base: "http://127.0.0.1:1",
            client_secret: None,
        }
        .fresh(&store, 120)
        .unwrap();
        assert_eq!(t.access_token, "czu_valid_token");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn the_margin_scales_with_a_short_lifetime() {
        let mut t = token("czu_a", 1);
        assert_eq!(renew_margin(&t, 120), 120, "no recorded lifetime");
        for (lifetime, margin) in [
            (900, 120),
            (480, 120),
            (400, 100),
            (60, 15),
            (6, 1),
            (0, 120),
        ] {
            t.extra.insert(oauth::LIFETIME.into(), lifetime.into());
            assert_eq!(renew_margin(&t, 120), margin, "lifetime {lifetime}");
        }
        // A 6 s token with 3 s left is used as is: no request (the HTTP client points
        // nowhere), where a fixed 120 s margin would renew it on every use.
        let dir = tmpdir("margin");
        let store = TokenStore::new(dir.join("t.json"));
        let mut short = token("czu_short_token", unix_now() + 3);
        short.extra.insert(oauth::LIFETIME.into(), 6.into());
        store.save(&short).unwrap();
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let renewer = Renewer {
            http: &http,
            api_base: "http://127.0.0.1:1",
            client_secret: None,
        };
        let got = renewer
            .fresh_with(&store, |t| renew_margin(t, 120))
            .unwrap();
        assert_eq!(got.access_token, "czu_short_token");
        assert!(
            renewer.fresh(&store, 120).is_err(),
            "an exact margin renews"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn renewable_knows_jwt_and_refresh_tokens() {
        let mut t = token("czu_a", 1);
        assert!(renewable(&t));
        t.refresh_token = None;
        assert!(!renewable(&t));
        t.extra.insert("grant".into(), "jwt".into());
        assert!(!renewable(&t), "a jwt record without key_file and kid");
        t.extra.insert("key_file".into(), "/k.pem".into());
        t.extra.insert("kid".into(), "kid".into());
        assert!(renewable(&t));
        assert_eq!(client_secret_file(&t), None);
        t.extra.insert("client_secret_file".into(), "/s".into());
        assert_eq!(client_secret_file(&t), Some(PathBuf::from("/s")));
    }
}
