//! Where the API tools get their bearer token: `COZE_API_TOKEN` as is, or a token file
//! kept fresh through `renew` and `store`.

use std::sync::Mutex;

use super::renew::{renew_margin, Renewer};
use super::store::TokenStore;
use crate::error::Result;
use crate::http::Http;
use crate::protocol::Token;
use crate::support::time::unix_now;

/// Where the API tools get their bearer token.
///
/// A token file is read once and the token kept in memory while it has more than its
/// renewal margin left: a run of 2,000 prompts does not re-read and re-parse the file
/// for every request. That stays right when another process renews the file meanwhile,
/// since the token we hold is still valid until it expires; if the server refuses it
/// anyway, `after_rejection` goes back to the file (single-flight) for the new one.
#[derive(Debug)]
// One per process: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TokenSource {
    /// `COZE_API_TOKEN`: used as is, never refreshed.
    Static(String),
    /// A token file, renewed through the store.
    Store {
        /// The token file.
        store: TokenStore,
        /// Renew when less than this many seconds are left (scaled down for short-lived
        /// tokens by `renew_margin`). Defaults to `renew::DEFAULT_MIN_TTL` in the tools.
        min_ttl: i64,
        /// The API base a refresh or a mint goes to.
        api_base: String,
        /// The token last read or renewed.
        cached: Mutex<Option<Token>>,
    },
}

impl TokenSource {
    /// A token file source, primed with `loaded` when the caller has already read it.
    pub fn store(store: TokenStore, min_ttl: i64, api_base: String, loaded: Option<Token>) -> Self {
        TokenSource::Store {
            store,
            min_ttl,
            api_base,
            cached: Mutex::new(loaded),
        }
    }

    /// A usable access token now.
    pub fn current(&self, http: &Http) -> Result<String> {
        match self {
            TokenSource::Static(t) => Ok(t.clone()),
            TokenSource::Store {
                store,
                min_ttl,
                api_base,
                cached,
            } => {
                let margin = |t: &Token| renew_margin(t, *min_ttl);
                let mut cached = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = cached.as_ref().filter(|t| t.ttl(unix_now()) > margin(t)) {
                    return Ok(t.access_token.clone());
                }
                let renewer = Renewer {
                    http,
                    api_base,
                    client_secret: None,
                };
                let token = renewer.fresh_with(store, margin)?;
                let access = token.access_token.clone();
                *cached = Some(token);
                Ok(access)
            }
        }
    }

    /// After the server refused `rejected`: a renewed token to retry with, or None when
    /// there is nothing to renew (a static token).
    pub fn after_rejection(&self, http: &Http, rejected: &str) -> Result<Option<String>> {
        match self {
            TokenSource::Static(_) => Ok(None),
            TokenSource::Store {
                store,
                api_base,
                cached,
                ..
            } => {
                let renewer = Renewer {
                    http,
                    api_base,
                    client_secret: None,
                };
                let token = renewer.after_rejection(store, rejected)?;
                let access = token.access_token.clone();
                *cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
                Ok(Some(access))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testing::{tmpdir, token};
    use std::fs;

    #[test]
    fn a_token_source_reads_the_file_once_while_the_token_is_fresh() {
        let dir = tmpdir("source-cache");
        let store = TokenStore::new(dir.join("t.json"));
        store
            .save(&token("czu_cached_token", unix_now() + 900))
            .unwrap();
        let http = Http::new(crate::http::HttpConfig {
            retries: 0,
            ..Default::default()
        });
        let source = TokenSource::store(store.clone(), 120, "http://127.0.0.1:1".into(), None);
        assert_eq!(source.current(&http).unwrap(), "czu_cached_token");
        // The file changes under us: the fresh token in memory is still used...
        fs::write(store.path(), "not a token").unwrap();
        assert_eq!(source.current(&http).unwrap(), "czu_cached_token");
        // ...until it is within its margin; then the file is read again.
        let stale = TokenSource::store(
            store,
            120,
            "http://127.0.0.1:1".into(),
            Some(token("czu_old", unix_now() + 30)),
        );
        let e = stale.current(&http).unwrap_err();
        assert!(e.to_string().contains("is not a token file"), "{e}");
        let _ = fs::remove_dir_all(dir);
    }
}
