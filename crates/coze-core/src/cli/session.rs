//! The session the shared flags resolve to: one HTTP client, one token source, one base
//! URL, resolved once before anything is sent ([`Session::open`]).

use super::flags::ApiFlags;
use crate::api::Client;
use crate::auth::renew::DEFAULT_MIN_TTL;
use crate::auth::source::TokenSource;
use crate::auth::store::TokenStore;
use crate::config::{self, Credentials, Env};
use crate::error::Result;
use crate::http::Http;

/// What an API tool talks through.
pub struct Session {
    /// The process's one HTTP client, configured by the flags.
    pub http: Http,
    /// Where every call's bearer comes from: `COZE_API_TOKEN` or a token file.
    pub tokens: TokenSource,
    /// The API base, resolved (flag, environment, the token's `base_url`, coze.cn).
    pub base: String,
    /// Where the token comes from, as a person reads it (for messages and -v).
    pub credentials: String,
    /// The same, resolved: named in the clients' authentication errors.
    pub resolved: Credentials,
}

impl Session {
    /// Resolves flags and environment once. Nothing is sent yet.
    pub fn open(flags: &ApiFlags, env: &Env) -> Result<Session> {
        let mut config = flags.http_config(env)?;
        let base_hint = config::api_base(flags.base_url.as_deref(), flags.region, env, None).value;
        let credentials = flags.credentials(env)?;
        let (tokens, loaded) = match &credentials {
            Credentials::Static(t) => (TokenSource::Static(t.clone()), None),
            Credentials::File { path, .. } => {
                let store = TokenStore::new(path.clone());
                // The token knows where it was issued; a missing file is reported on first
                // use. What is read here primes the source, so the file is read once.
                let loaded = store.load().ok();
                (
                    TokenSource::store(store, DEFAULT_MIN_TTL, base_hint, loaded.clone()),
                    loaded,
                )
            }
        };
        let recorded = loaded.as_ref().and_then(|t| t.base_url.clone());
        let base = config::api_base(
            flags.base_url.as_deref(),
            flags.region,
            env,
            recorded.as_deref(),
        );
        config.network.allow_http =
            config::plain_http(flags.net.allow_http, env, loaded.as_ref(), &base.value)?.value;
        let described = credentials.describe();
        if flags.verbose {
            crate::say!(
                "* credentials: {described}; API base {} (from {})",
                crate::support::redact::scrub(&base.value),
                base.source
            );
        }
        Ok(Session {
            http: Http::new(config),
            tokens,
            base: base.value,
            credentials: described,
            resolved: credentials,
        })
    }

    /// A client of the session's base that names its credentials in authentication
    /// errors.
    pub fn client(&self) -> Client<'_> {
        Client {
            credentials: Some(self.resolved.clone()),
            ..Client::new(&self.http, self.base.clone(), &self.tokens)
        }
    }
}
