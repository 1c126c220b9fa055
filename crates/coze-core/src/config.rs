//! Where settings come from, resolved once: flags beat environment, environment beats
//! the token file, which beats defaults (design.md §3).
//!
//! `Env` is a snapshot of the variables the tools read, taken in `main`; everything
//! below works on that snapshot, so nothing else reads the environment and tests can
//! state an environment instead of mutating the process's.

use std::path::PathBuf;

use crate::error::{Error, Result};

pub const CN_API: &str = "https://api.coze.cn";
pub const COM_API: &str = "https://api.coze.com";
pub const CN_WWW: &str = "https://www.coze.cn";
pub const COM_WWW: &str = "https://www.coze.com";

/// The environment variables the coze tools read, read once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub api_base: Option<String>,
    pub api_token: Option<String>,
    pub bot_id: Option<String>,
    pub www_base: Option<String>,
    pub token_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub user_id: Option<String>,
    pub xdg_config_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub browser: Option<String>,
    /// The set proxy variables, as (name, value): see `proxy`.
    pub proxy_vars: Vec<(String, String)>,
}

impl Env {
    /// Reads the process environment. Call from `main` only. Empty values count as unset
    /// (`COZE_API_TOKEN= cmd` is how people unset a variable for one command).
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            api_base: var("COZE_API_BASE"),
            api_token: var("COZE_API_TOKEN"),
            bot_id: var("COZE_BOT_ID"),
            www_base: var("COZE_WWW_BASE"),
            token_file: var("COZE_TOKEN_FILE").map(PathBuf::from),
            client_id: var("COZE_CLIENT_ID"),
            user_id: var("COZE_USER_ID"),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            browser: var("BROWSER"),
            proxy_vars: crate::proxy::vars_from_process(),
        }
    }
}

/// coze.cn (the default, as the official examples) or coze.com.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Cn,
    Com,
}

impl Region {
    pub fn parse(s: &str) -> Result<Region> {
        match s.to_ascii_lowercase().as_str() {
            "cn" | "coze.cn" => Ok(Region::Cn),
            "com" | "coze.com" => Ok(Region::Com),
            _ => Err(Error::usage(format!(
                "--region: expected cn or com, got {s:?}"
            ))),
        }
    }

    pub fn api_base(self) -> &'static str {
        match self {
            Region::Cn => CN_API,
            Region::Com => COM_API,
        }
    }
}

/// `$XDG_CONFIG_HOME/coze/token.json`, else `~/.config/coze/token.json`.
pub fn default_token_path(env: &Env) -> Option<PathBuf> {
    let base = match &env.xdg_config_home {
        Some(x) if x.is_absolute() => x.clone(),
        _ => env.home.as_ref()?.join(".config"),
    };
    Some(base.join("coze").join("token.json"))
}

/// Where an API tool's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A token file, refreshed through the single-flight store.
    File(PathBuf),
    /// `COZE_API_TOKEN`: a bare token or PAT, used as is and never refreshed.
    Static(String),
}

/// `--token-file` > `COZE_TOKEN_FILE` > `COZE_API_TOKEN` > the default path.
pub fn credentials(flag_token_file: Option<PathBuf>, env: &Env) -> Result<Credentials> {
    if let Some(path) = flag_token_file.or_else(|| env.token_file.clone()) {
        return Ok(Credentials::File(path));
    }
    if let Some(token) = &env.api_token {
        crate::redact::register(token);
        return Ok(Credentials::Static(token.clone()));
    }
    default_token_path(env)
        .map(Credentials::File)
        .ok_or_else(|| {
            Error::Auth(
                "no credentials: set COZE_API_TOKEN, pass --token-file, or log in with \
             `coze-auth | coze-token --save` (HOME is not set, so there is no default token file)"
                    .to_owned(),
            )
        })
}

/// The API base URL: `--base-url` / `--region` > `COZE_API_BASE` > the token's
/// `base_url` > coze.cn.
pub fn api_base(
    flag_base: Option<&str>,
    flag_region: Option<Region>,
    env: &Env,
    token_base: Option<&str>,
) -> String {
    let chosen = flag_base
        .map(str::to_owned)
        .or_else(|| flag_region.map(|r| r.api_base().to_owned()))
        .or_else(|| env.api_base.clone())
        .or_else(|| token_base.map(str::to_owned))
        .unwrap_or_else(|| CN_API.to_owned());
    crate::url::trim_base(&chosen).to_owned()
}

/// The web host of the authorize page: `--www-url` > `COZE_WWW_BASE` > www.coze.cn /
/// www.coze.com for the two official API hosts > the API base itself (coze-fake and
/// private deployments serve the pages on the API host; coze-api.md §1).
pub fn www_base(api_base: &str, flag_www: Option<&str>, env: &Env) -> String {
    if let Some(w) = flag_www.map(str::to_owned).or_else(|| env.www_base.clone()) {
        return crate::url::trim_base(&w).to_owned();
    }
    match crate::url::trim_base(api_base) {
        CN_API => CN_WWW.to_owned(),
        COM_API => COM_WWW.to_owned(),
        other => other.to_owned(),
    }
}

/// A hint for authentication failures that usually mean the wrong region: a coze.cn
/// token sent to coze.com or the reverse (coze-api.md §9.9).
pub fn region_hint(api_base: &str) -> Option<&'static str> {
    match crate::url::trim_base(api_base) {
        COM_API => Some("if this token is from coze.cn, try --region cn"),
        CN_API => Some("if this token is from coze.com, try --region com"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some("/home/u".into()),
            ..Env::default()
        }
    }

    #[test]
    fn credentials_precedence() {
        let mut e = env();
        assert_eq!(
            credentials(None, &e).unwrap(),
            Credentials::File("/home/u/.config/coze/token.json".into())
        );
        e.xdg_config_home = Some("/x".into());
        assert_eq!(
            credentials(None, &e).unwrap(),
            Credentials::File("/x/coze/token.json".into())
        );
        e.api_token = Some("pat_abcdefgh".into());
        assert_eq!(
            credentials(None, &e).unwrap(),
            Credentials::Static("pat_abcdefgh".into())
        );
        e.token_file = Some("/env.json".into());
        assert_eq!(
            credentials(None, &e).unwrap(),
            Credentials::File("/env.json".into())
        );
        assert_eq!(
            credentials(Some("/flag.json".into()), &e).unwrap(),
            Credentials::File("/flag.json".into())
        );
        let err = credentials(None, &Env::default()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn base_url_precedence() {
        let mut e = env();
        assert_eq!(api_base(None, None, &e, None), CN_API);
        assert_eq!(
            api_base(None, None, &e, Some("http://127.0.0.1:9/")),
            "http://127.0.0.1:9"
        );
        e.api_base = Some("https://api.coze.com".into());
        assert_eq!(
            api_base(None, None, &e, Some("http://127.0.0.1:9")),
            COM_API
        );
        assert_eq!(api_base(None, Some(Region::Cn), &e, None), CN_API);
        assert_eq!(
            api_base(Some("http://localhost:1"), Some(Region::Cn), &e, None),
            "http://localhost:1"
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
}
