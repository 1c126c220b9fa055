//! The flags every API tool shares (credentials, base URL, timeouts, -v) and the
//! session they resolve to: one HTTP agent, one token source, one base URL.
//!
//! Resolution follows design.md §3: credentials `--token-file` > `COZE_TOKEN_FILE` >
//! `COZE_API_TOKEN` > the default file; base URL `--base-url`/`--region` >
//! `COZE_API_BASE` > the token's `base_url` > coze.cn.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::Client;
use crate::cli;
use crate::config::{self, Credentials, Env, Region};
use crate::error::Result;
use crate::http::{Http, HttpConfig};
use crate::token_store::{TokenSource, TokenStore, DEFAULT_MIN_TTL};

/// The shared flags, as parsed.
#[derive(Debug, Clone, Default)]
pub struct ApiFlags {
    pub token_file: Option<PathBuf>,
    pub base_url: Option<String>,
    pub region: Option<Region>,
    pub verbose: bool,
    pub idle_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub retries: Option<u32>,
    /// Requests per second across all threads; set by tools that offer `--rate`
    /// (coze-chat), not parsed by `take`.
    pub rate: Option<f64>,
}

/// Help text for the shared flags, for each tool's --help.
pub const API_FLAGS_HELP: &str = "\
CONNECTION:
    --token-file PATH      token file [env: COZE_TOKEN_FILE]; otherwise COZE_API_TOKEN
                           (a bare token or PAT, never refreshed); otherwise
                           $XDG_CONFIG_HOME/coze/token.json (~/.config/coze/token.json)
    --base-url URL         API base [env: COZE_API_BASE] [default: the token's
                           base_url, else https://api.coze.cn]
    --region cn|com        https://api.coze.cn or https://api.coze.com
    --idle-timeout SECS    give up when the server sends nothing for this long
                           [default: 120]; there is no total time limit
    --connect-timeout SECS [default: 10]
    --retries N            retries of transient failures (network, 429, 5xx,
                           4013/4020) before any output [default: 4]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted)";

impl ApiFlags {
    /// Takes `arg` if it is one of the shared flags; false leaves it to the caller.
    pub fn take(&mut self, arg: &cli::Arg, p: &mut lexopt::Parser) -> Result<bool> {
        let Some(name) = (match arg {
            cli::Arg::Long(l) => Some(l.as_str()),
            cli::Arg::Short('v') => Some("verbose"),
            _ => None,
        }) else {
            return Ok(false);
        };
        match name {
            "token-file" => self.token_file = Some(cli::value(p)?.into()),
            "base-url" => self.base_url = Some(cli::string("--base-url", cli::value(p)?)?),
            "region" => {
                self.region = Some(Region::parse(&cli::string("--region", cli::value(p)?)?)?)
            }
            "idle-timeout" => {
                self.idle_timeout = Some(cli::seconds("--idle-timeout", cli::value(p)?)?)
            }
            "connect-timeout" => {
                self.connect_timeout = Some(cli::seconds("--connect-timeout", cli::value(p)?)?)
            }
            "retries" => self.retries = Some(cli::number("--retries", cli::value(p)?)?),
            "verbose" => self.verbose = true,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl ApiFlags {
    /// The HTTP decisions these flags change; the rest are `HttpConfig`'s defaults.
    pub fn http_config(&self, env: &Env) -> HttpConfig {
        let defaults = HttpConfig::default();
        HttpConfig {
            verbose: self.verbose,
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            connect_timeout: self.connect_timeout.unwrap_or(defaults.connect_timeout),
            retries: self.retries.unwrap_or(defaults.retries),
            rate: self.rate,
            proxy_vars: env.proxy_vars.clone(),
            ..defaults
        }
    }
}

/// What an API tool talks through.
pub struct Session {
    pub http: Http,
    pub tokens: TokenSource,
    pub base: String,
}

impl Session {
    /// Resolves flags and environment once. Nothing is sent yet.
    pub fn open(flags: &ApiFlags, env: &Env) -> Result<Session> {
        let http = Http::new(flags.http_config(env));
        let base_hint = config::api_base(flags.base_url.as_deref(), flags.region, env, None);
        let (tokens, recorded) = match config::credentials(flags.token_file.clone(), env)? {
            Credentials::Static(t) => (TokenSource::Static(t), None),
            Credentials::File(path) => {
                let store = TokenStore::new(path);
                // The token knows where it was issued; a missing file is reported on first
                // use. What is read here primes the source, so the file is read once.
                let loaded = store.load().ok();
                let recorded = loaded.as_ref().and_then(|t| t.base_url.clone());
                (
                    TokenSource::store(store, DEFAULT_MIN_TTL, base_hint, loaded),
                    recorded,
                )
            }
        };
        let base = config::api_base(
            flags.base_url.as_deref(),
            flags.region,
            env,
            recorded.as_deref(),
        );
        Ok(Session { http, tokens, base })
    }

    pub fn client(&self) -> Client<'_> {
        Client::new(&self.http, self.base.clone(), &self.tokens)
    }
}
