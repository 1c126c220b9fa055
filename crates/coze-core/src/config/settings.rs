//! The settings besides credentials, each resolved by one rule that returns the value
//! and where it came from ([`Setting`]): flags beat the environment, the environment
//! beats the token file, which beats defaults. The region and its hosts, the API base,
//! the web host of the authorize page, the client id, the bot, an extra CA bundle,
//! plain http to a remote host.

use std::fmt;
use std::path::PathBuf;

use super::Env;
use crate::error::{Error, Result};
use crate::protocol::Token;
use crate::support::url;

/// coze.cn's API base, the default (as in the official SDKs' examples).
pub const CN_API: &str = "https://api.coze.cn";
/// coze.com's API base (`--region com`).
pub const COM_API: &str = "https://api.coze.com";
/// coze.cn's web host: the authorize and device pages for [`CN_API`].
pub const CN_WWW: &str = "https://www.coze.cn";
/// coze.com's web host: the authorize and device pages for [`COM_API`].
pub const COM_WWW: &str = "https://www.coze.com";

/// Where a setting's value came from, as the doctor and `-v` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A flag, e.g. `--base-url`.
    Flag(&'static str),
    /// An environment variable, e.g. `COZE_API_BASE`.
    Env(&'static str),
    /// The token file's record (its `base_url`).
    TokenFile,
    /// None of them: the tools' default.
    Default,
}

impl Source {
    /// How messages name it: the flag or the variable, "the token file", "the default".
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag(name) | Source::Env(name) => name,
            Source::TokenFile => "the token file",
            Source::Default => "the default",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A setting's value and the [`Source`] it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value chosen.
    pub value: T,
    /// Which flag, variable, file or default it came from.
    pub source: Source,
}

impl<T> Setting<T> {
    fn new(value: T, source: Source) -> Setting<T> {
        Setting { value, source }
    }
}

/// coze.cn (the default, as the official examples) or coze.com.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// coze.cn: `https://api.coze.cn`, pages on `www.coze.cn`.
    Cn,
    /// coze.com: `https://api.coze.com`, pages on `www.coze.com`.
    Com,
}

impl Region {
    /// `--region`'s value: `cn` or `com` (or `coze.cn`, `coze.com`), any case; anything
    /// else is a usage error.
    pub fn parse(s: &str) -> Result<Region> {
        match s.to_ascii_lowercase().as_str() {
            "cn" | "coze.cn" => Ok(Region::Cn),
            "com" | "coze.com" => Ok(Region::Com),
            _ => Err(Error::usage(format!(
                "--region: expected cn or com, got {s:?}"
            ))),
        }
    }

    /// The region's API base URL ([`CN_API`] or [`COM_API`]).
    pub fn api_base(self) -> &'static str {
        match self {
            Region::Cn => CN_API,
            Region::Com => COM_API,
        }
    }
}

/// Reads `COZE_ALLOW_HTTP`: unset, `0`, `false`, `no` are off; `1`, `true`, `yes` on.
pub fn allow_http(env: &Env) -> Result<bool> {
    match env
        .allow_http
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(Error::usage(format!(
            "COZE_ALLOW_HTTP={other:?}: expected 1 (allow plain http to a non-loopback host) or 0"
        ))),
    }
}

/// The API base URL: `--base-url` / `--region` > `COZE_API_BASE` > the token's
/// `base_url` > coze.cn.
pub fn api_base(
    flag_base: Option<&str>,
    flag_region: Option<Region>,
    env: &Env,
    token_base: Option<&str>,
) -> Setting<String> {
    let (chosen, source) = match (flag_base, flag_region, &env.api_base, token_base) {
        (Some(b), ..) => (b, Source::Flag("--base-url")),
        (None, Some(r), ..) => (r.api_base(), Source::Flag("--region")),
        (None, None, Some(b), _) => (b.as_str(), Source::Env("COZE_API_BASE")),
        (None, None, None, Some(b)) => (b, Source::TokenFile),
        (None, None, None, None) => (CN_API, Source::Default),
    };
    Setting::new(url::trim_base(chosen).to_owned(), source)
}

/// The web host of the authorize page: `--www-url` > `COZE_WWW_BASE` > www.coze.cn /
/// www.coze.com for the two official API hosts > the API base itself (coze-fake and
/// private deployments serve the pages on the API host), as coze-py's
/// `_get_www_base_url` (`cozepy/auth/__init__.py`) derives it.
pub fn www_base(api_base: &str, flag_www: Option<&str>, env: &Env) -> String {
    if let Some(w) = flag_www.map(str::to_owned).or_else(|| env.www_base.clone()) {
        return url::trim_base(&w).to_owned();
    }
    match url::trim_base(api_base) {
        CN_API => CN_WWW.to_owned(),
        COM_API => COM_WWW.to_owned(),
        other => other.to_owned(),
    }
}

/// A hint for authentication failures that usually mean the wrong region: a coze.cn
/// token sent to coze.com or the reverse (coze-js warns the same on a 4101 from
/// coze.com, `src/fetcher.ts`).
pub fn region_hint(api_base: &str) -> Option<&'static str> {
    match url::trim_base(api_base) {
        COM_API => Some("if this token is from coze.cn, try --region cn"),
        CN_API => Some("if this token is from coze.com, try --region com"),
        _ => None,
    }
}

/// The OAuth app's client id: `--client-id` > `COZE_CLIENT_ID`.
pub fn client_id(flag: Option<&str>, env: &Env) -> Option<Setting<String>> {
    match (flag, &env.client_id) {
        (Some(id), _) => Some(Setting::new(id.to_owned(), Source::Flag("--client-id"))),
        (None, Some(id)) => Some(Setting::new(id.clone(), Source::Env("COZE_CLIENT_ID"))),
        (None, None) => None,
    }
}

/// The bot to chat with or list conversations of: `--bot` > `COZE_BOT_ID`.
pub fn bot_id(flag: Option<&str>, env: &Env) -> Option<Setting<String>> {
    match (flag, &env.bot_id) {
        (Some(id), _) => Some(Setting::new(id.to_owned(), Source::Flag("--bot"))),
        (None, Some(id)) => Some(Setting::new(id.clone(), Source::Env("COZE_BOT_ID"))),
        (None, None) => None,
    }
}

/// One more CA bundle to trust: `--cacert` > `COZE_CA_BUNDLE`.
pub fn ca_bundle(flag: Option<&PathBuf>, env: &Env) -> Option<Setting<PathBuf>> {
    match (flag, &env.ca_bundle) {
        (Some(p), _) => Some(Setting::new(p.clone(), Source::Flag("--cacert"))),
        (None, Some(p)) => Some(Setting::new(p.clone(), Source::Env("COZE_CA_BUNDLE"))),
        (None, None) => None,
    }
}

/// Whether a token record allows plain http to `base`: saved with `--allow-http` for
/// that very base URL (`coze-token --pat --allow-http --base-url http://…`).
pub fn token_allows_http(token: &Token, base: &str) -> bool {
    token
        .extra
        .get("allow_http")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
        && token
            .base_url
            .as_deref()
            .is_some_and(|b| url::trim_base(b) == url::trim_base(base))
}

/// Plain http to a host that is not loopback: `--allow-http` > `COZE_ALLOW_HTTP` > a
/// token (when one is loaded) saved with `--allow-http` for this very `base` > not
/// allowed.
pub fn plain_http(
    flag: bool,
    env: &Env,
    token: Option<&Token>,
    base: &str,
) -> Result<Setting<bool>> {
    Ok(if flag {
        Setting::new(true, Source::Flag("--allow-http"))
    } else if allow_http(env)? {
        Setting::new(true, Source::Env("COZE_ALLOW_HTTP"))
    } else if token.is_some_and(|t| token_allows_http(t, base)) {
        Setting::new(true, Source::TokenFile)
    } else {
        Setting::new(false, Source::Default)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::tests::home_only as env;

    #[test]
    fn allow_http_values() {
        let mut e = env();
        assert!(!allow_http(&e).unwrap());
        for (v, want) in [
            ("1", true),
            ("TRUE", true),
            ("yes", true),
            ("0", false),
            ("no", false),
        ] {
            e.allow_http = Some(v.into());
            assert_eq!(allow_http(&e).unwrap(), want, "{v}");
        }
        e.allow_http = Some("maybe".into());
        assert_eq!(allow_http(&e).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn base_url_precedence() {
        let mut e = env();
        let base = |flag_base, flag_region, e: &Env, token_base| {
            let s = api_base(flag_base, flag_region, e, token_base);
            (s.value, s.source.to_string())
        };
        assert_eq!(api_base(None, None, &e, None).value, CN_API);
        assert_eq!(
            base(None, None, &e, None),
            (CN_API.to_owned(), "the default".to_owned())
        );
        assert_eq!(
            api_base(None, None, &e, Some("http://127.0.0.1:9/")).value,
            "http://127.0.0.1:9"
        );
        assert_eq!(
            base(None, None, &e, Some("http://127.0.0.1:9/")).1,
            "the token file"
        );
        e.api_base = Some("https://api.coze.com".into());
        assert_eq!(
            api_base(None, None, &e, Some("http://127.0.0.1:9")).value,
            COM_API
        );
        assert_eq!(base(None, None, &e, None).1, "COZE_API_BASE");
        assert_eq!(api_base(None, Some(Region::Cn), &e, None).value, CN_API);
        assert_eq!(base(None, Some(Region::Cn), &e, None).1, "--region");
        assert_eq!(
            api_base(Some("http://localhost:1"), Some(Region::Cn), &e, None).value,
            "http://localhost:1"
        );
        assert_eq!(
            base(Some("http://localhost:1"), Some(Region::Cn), &e, None).1,
            "--base-url"
        );
    }

    #[test]
    fn www_derivation() {
        let e = env();
        assert_eq!(www_base(CN_API, None, &e), CN_WWW);
        assert_eq!(www_base("https://api.coze.com/", None, &e), COM_WWW);
        assert_eq!(
            www_base("http://127.0.0.1:5", None, &e),
            "http://127.0.0.1:5"
        );
        assert_eq!(
            www_base(CN_API, Some("https://w.example/"), &e),
            "https://w.example"
        );
        assert!(Region::parse("COM").is_ok());
        assert_eq!(Region::parse("eu").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn each_setting_says_where_it_came_from() {
        let mut e = env();
        let token = |allow: bool, base: &str| Token {
            access_token: "pat_x".into(),
            token_type: "Bearer".into(),
            expires_at: 0,
            refresh_token: None,
            client_id: None,
            base_url: Some(base.into()),
            extra: serde_json::Map::from_iter([("allow_http".to_owned(), allow.into())]),
        };
        let studio = "http://studio:8888";
        let plain = |flag, e: &Env, t: Option<&Token>| {
            let s = plain_http(flag, e, t, studio).unwrap();
            (s.value, s.source.to_string())
        };
        assert_eq!(plain(false, &e, None), (false, "the default".into()));
        let saved = token(true, "http://studio:8888/");
        assert_eq!(
            plain(false, &e, Some(&saved)),
            (true, "the token file".into())
        );
        let elsewhere = token(true, "http://other:8888");
        assert!(!plain(false, &e, Some(&elsewhere)).0, "another base");
        assert!(!plain(false, &e, Some(&token(false, studio))).0);
        e.allow_http = Some("1".into());
        assert_eq!(plain(false, &e, None), (true, "COZE_ALLOW_HTTP".into()));
        assert_eq!(plain(true, &e, None), (true, "--allow-http".into()));
        e.allow_http = Some("maybe".into());
        assert_eq!(
            plain_http(false, &e, None, studio).unwrap_err().exit_code(),
            2
        );

        assert_eq!(client_id(None, &e), None);
        e.client_id = Some("env.app.coze".into());
        let id = client_id(None, &e).unwrap();
        assert_eq!(
            (id.value.as_str(), id.source.as_str()),
            ("env.app.coze", "COZE_CLIENT_ID")
        );
        let id = client_id(Some("flag.app.coze"), &e).unwrap();
        assert_eq!(
            (id.value.as_str(), id.source.as_str()),
            ("flag.app.coze", "--client-id")
        );

        assert_eq!(bot_id(None, &e), None);
        e.bot_id = Some("737".into());
        let bot = bot_id(None, &e).unwrap();
        assert_eq!(
            (bot.value.as_str(), bot.source.as_str()),
            ("737", "COZE_BOT_ID")
        );
        let bot = bot_id(Some("738"), &e).unwrap();
        assert_eq!((bot.value.as_str(), bot.source.as_str()), ("738", "--bot"));

        assert_eq!(ca_bundle(None, &e), None);
        e.ca_bundle = Some("/env.pem".into());
        assert_eq!(
            ca_bundle(None, &e).unwrap().source.as_str(),
            "COZE_CA_BUNDLE"
        );
        let flag = PathBuf::from("/flag.pem");
        let ca = ca_bundle(Some(&flag), &e).unwrap();
        assert_eq!((ca.value, ca.source.as_str()), (flag, "--cacert"));
    }
}
