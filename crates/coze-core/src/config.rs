//! Where settings come from, resolved once: flags beat environment, environment beats
//! the token file, which beats defaults (design.md §3).
//!
//! `Env` is a snapshot of the variables the tools read, taken in `main`; everything
//! below works on that snapshot, so nothing else reads the environment and tests can
//! state an environment instead of mutating the process's.

use std::path::{Path, PathBuf};

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
    /// `COZE_PROFILE`: the profile whose token file the tools use.
    pub profile: Option<String>,
    /// `COZE_CA_BUNDLE`: one more CA bundle to trust (as `--cacert`).
    pub ca_bundle: Option<PathBuf>,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`: OpenSSL's trust variables, which curl and Python
    /// honour too.
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_cert_dir: Option<String>,
    /// `COZE_ALLOW_HTTP` as set (checked where it is used: `1`/`true`/`yes` or
    /// `0`/`false`/`no`).
    pub allow_http: Option<String>,
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
            profile: var("COZE_PROFILE"),
            ca_bundle: var("COZE_CA_BUNDLE").map(PathBuf::from),
            ssl_cert_file: var("SSL_CERT_FILE").map(PathBuf::from),
            ssl_cert_dir: var("SSL_CERT_DIR"),
            allow_http: var("COZE_ALLOW_HTTP"),
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

/// The tools' settings directory: `$XDG_CONFIG_HOME/coze`, else `~/.config/coze`.
pub fn config_dir(env: &Env) -> Option<PathBuf> {
    let base = match &env.xdg_config_home {
        Some(x) if x.is_absolute() => x.clone(),
        _ => env.home.as_ref()?.join(".config"),
    };
    Some(base.join("coze"))
}

/// `$XDG_CONFIG_HOME/coze/token.json`, else `~/.config/coze/token.json`.
pub fn default_token_path(env: &Env) -> Option<PathBuf> {
    Some(config_dir(env)?.join("token.json"))
}

/// The name of the default profile: its files are the ones outside `profiles/`.
pub const DEFAULT_PROFILE: &str = "default";

/// A profile name: letters, digits, `.`, `_`, `-`; not starting with `.`; at most 64.
pub fn check_profile_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "profile {name:?}: use letters, digits, '.', '_' and '-' (at most 64, not \
             starting with '.')"
        )))
    }
}

/// Where a profile keeps its token file and user id: the settings directory itself for
/// the default profile, `profiles/NAME/` in it for any other.
pub fn profile_dir(env: &Env, name: &str) -> Result<PathBuf> {
    check_profile_name(name)?;
    let dir = config_dir(env).ok_or_else(|| {
        Error::Auth(
            "HOME is not set, so there is no settings directory for profiles (set HOME or \
             XDG_CONFIG_HOME, or pass --token-file)"
                .to_owned(),
        )
    })?;
    Ok(if name == DEFAULT_PROFILE {
        dir
    } else {
        dir.join("profiles").join(name)
    })
}

/// The profile the flags and environment select: `--profile` > `COZE_PROFILE` >
/// the default.
pub fn selected_profile(flag_profile: Option<&str>, env: &Env) -> String {
    flag_profile
        .or(env.profile.as_deref())
        .unwrap_or(DEFAULT_PROFILE)
        .to_owned()
}

/// The precedence of credentials, as every tool's help and the README state it.
pub const CREDENTIALS_PRECEDENCE: &str = "--token-file > --profile > COZE_TOKEN_FILE > \
     COZE_PROFILE > COZE_API_TOKEN > the default profile's token file";

/// Where an API tool's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A token file, refreshed through the single-flight store.
    File { path: PathBuf, origin: Origin },
    /// `COZE_API_TOKEN`: a bare token or PAT, used as is and never refreshed.
    Static(String),
}

/// Why this token file: the rule of [`CREDENTIALS_PRECEDENCE`] that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    TokenFileFlag,
    TokenFileEnv,
    /// A named profile, from `--profile` (true) or `COZE_PROFILE`.
    Profile {
        name: String,
        flag: bool,
    },
    Default,
}

impl Credentials {
    /// The token file, if the credentials are one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Credentials::File { path, .. } => Some(path),
            Credentials::Static(_) => None,
        }
    }

    /// How a person reads where the token comes from: `profile work
    /// (/home/u/.config/coze/profiles/work/token.json, from --profile)`.
    pub fn describe(&self) -> String {
        match self {
            Credentials::Static(_) => "COZE_API_TOKEN from the environment".to_owned(),
            Credentials::File { path, origin } => {
                let p = path.display();
                match origin {
                    Origin::TokenFileFlag => format!("the token file {p} (--token-file)"),
                    Origin::TokenFileEnv => format!("the token file {p} (COZE_TOKEN_FILE)"),
                    Origin::Profile { name, flag } => {
                        let from = if *flag { "--profile" } else { "COZE_PROFILE" };
                        format!("profile {name} ({p}, from {from})")
                    }
                    Origin::Default => format!("the default token file {p}"),
                }
            }
        }
    }
}

impl Credentials {
    /// `e`, naming these credentials when it is an authentication failure (exit 4) that
    /// does not name them already: which token was refused, or could not be renewed, is
    /// the first thing a person needs to fix it (and, with several profiles and
    /// variables, the thing most often wrong). Never the token itself.
    pub fn name_in(&self, e: Error) -> Error {
        if e.exit_code() != crate::error::exit::AUTH {
            return e;
        }
        let named = match self {
            Credentials::Static(_) => "COZE_API_TOKEN".to_owned(),
            Credentials::File { path, .. } => path.display().to_string(),
        };
        if e.to_string().contains(&named) {
            return e;
        }
        e.with_hint(format!("credentials: {}", self.describe()))
    }
}

/// Resolves [`CREDENTIALS_PRECEDENCE`].
pub fn credentials(
    flag_token_file: Option<PathBuf>,
    flag_profile: Option<&str>,
    env: &Env,
) -> Result<Credentials> {
    if let Some(named) = named_token_file(flag_token_file, flag_profile, env)? {
        return Ok(named);
    }
    if let Some(token) = &env.api_token {
        crate::support::redact::register(token);
        return Ok(Credentials::Static(token.clone()));
    }
    default_credentials(env)
}

/// The token file to write or remove (`coze-token --save`, `refresh`, `logout`): the
/// precedence of [`credentials`] without `COZE_API_TOKEN`, which names no file.
pub fn token_file(
    flag_token_file: Option<PathBuf>,
    flag_profile: Option<&str>,
    env: &Env,
) -> Result<Credentials> {
    match named_token_file(flag_token_file, flag_profile, env)? {
        Some(named) => Ok(named),
        None => default_credentials(env),
    }
}

/// The file the flags, `COZE_TOKEN_FILE` or `COZE_PROFILE` name, if any.
fn named_token_file(
    flag_token_file: Option<PathBuf>,
    flag_profile: Option<&str>,
    env: &Env,
) -> Result<Option<Credentials>> {
    let file = |path: PathBuf, origin: Origin| Ok(Some(Credentials::File { path, origin }));
    let profile = |name: &str, flag: bool| {
        let origin = if name == DEFAULT_PROFILE {
            Origin::Default
        } else {
            Origin::Profile {
                name: name.to_owned(),
                flag,
            }
        };
        file(profile_dir(env, name)?.join("token.json"), origin)
    };
    match (flag_token_file, flag_profile) {
        (Some(_), Some(_)) => Err(Error::usage(
            "--token-file and --profile both name a token file: give one of them",
        )),
        (Some(path), None) => file(path, Origin::TokenFileFlag),
        (None, Some(name)) => profile(name, true),
        (None, None) => match (&env.token_file, &env.profile) {
            (Some(path), _) => file(path.clone(), Origin::TokenFileEnv),
            (None, Some(name)) => profile(name, false),
            (None, None) => Ok(None),
        },
    }
}

fn default_credentials(env: &Env) -> Result<Credentials> {
    default_token_path(env)
        .map(|path| Credentials::File {
            path,
            origin: Origin::Default,
        })
        .ok_or_else(|| {
            Error::Auth(
                "no credentials: set COZE_API_TOKEN, pass --token-file, or log in with \
             `coze-auth | coze-token --save` (HOME is not set, so there is no default token file)"
                    .to_owned(),
            )
        })
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
) -> String {
    let chosen = flag_base
        .map(str::to_owned)
        .or_else(|| flag_region.map(|r| r.api_base().to_owned()))
        .or_else(|| env.api_base.clone())
        .or_else(|| token_base.map(str::to_owned))
        .unwrap_or_else(|| CN_API.to_owned());
    crate::support::url::trim_base(&chosen).to_owned()
}

/// The web host of the authorize page: `--www-url` > `COZE_WWW_BASE` > www.coze.cn /
/// www.coze.com for the two official API hosts > the API base itself (coze-fake and
/// private deployments serve the pages on the API host; coze-api.md §1).
pub fn www_base(api_base: &str, flag_www: Option<&str>, env: &Env) -> String {
    if let Some(w) = flag_www.map(str::to_owned).or_else(|| env.www_base.clone()) {
        return crate::support::url::trim_base(&w).to_owned();
    }
    match crate::support::url::trim_base(api_base) {
        CN_API => CN_WWW.to_owned(),
        COM_API => COM_WWW.to_owned(),
        other => other.to_owned(),
    }
}

/// A hint for authentication failures that usually mean the wrong region: a coze.cn
/// token sent to coze.com or the reverse (coze-api.md §9.9).
pub fn region_hint(api_base: &str) -> Option<&'static str> {
    match crate::support::url::trim_base(api_base) {
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
        let c = |flag_file: Option<&str>, flag_profile: Option<&str>, e: &Env| {
            credentials(flag_file.map(PathBuf::from), flag_profile, e)
                .map(|c| c.describe())
                .unwrap_or_else(|e| format!("error {}: {e}", e.exit_code()))
        };
        let mut e = env();
        assert_eq!(
            c(None, None, &e),
            "the default token file /home/u/.config/coze/token.json"
        );
        e.xdg_config_home = Some("/x".into());
        assert_eq!(
            c(None, None, &e),
            "the default token file /x/coze/token.json"
        );
        e.api_token = Some("pat_abcdefgh".into());
        assert_eq!(c(None, None, &e), "COZE_API_TOKEN from the environment");
        e.profile = Some("work".into());
        assert_eq!(
            c(None, None, &e),
            "profile work (/x/coze/profiles/work/token.json, from COZE_PROFILE)"
        );
        e.token_file = Some("/env.json".into());
        assert_eq!(
            c(None, None, &e),
            "the token file /env.json (COZE_TOKEN_FILE)"
        );
        assert_eq!(
            c(None, Some("home"), &e),
            "profile home (/x/coze/profiles/home/token.json, from --profile)"
        );
        assert_eq!(
            c(None, Some("default"), &e),
            "the default token file /x/coze/token.json"
        );
        assert_eq!(
            c(Some("/flag.json"), None, &e),
            "the token file /flag.json (--token-file)"
        );
        assert!(c(Some("/f"), Some("p"), &e).starts_with("error 2: --token-file and --profile"));
        assert!(c(None, Some("../up"), &e).starts_with("error 2: profile \"../up\""));
        let err = credentials(None, None, &Env::default()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn authentication_errors_name_the_credentials_once() {
        let file = Credentials::File {
            path: "/t/token.json".into(),
            origin: Origin::TokenFileFlag,
        };
        let e = file.name_in(Error::Auth("the refresh token was refused".into()));
        assert_eq!(
            e.to_string(),
            "the refresh token was refused (credentials: the token file /t/token.json \
             (--token-file))"
        );
        assert_eq!(e.exit_code(), 4);
        let named = file.name_in(Error::Auth("no token file at /t/token.json".into()));
        assert_eq!(named.to_string(), "no token file at /t/token.json");
        let other = file.name_in(Error::usage("x"));
        assert_eq!(other.to_string(), "x", "only authentication errors");
        let env = Credentials::Static("pat_secret_value".into());
        let e = env.name_in(Error::Auth("code 4100".into()));
        assert_eq!(
            e.to_string(),
            "code 4100 (credentials: COZE_API_TOKEN from the environment)"
        );
        assert!(!e.to_string().contains("pat_secret_value"));
    }

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
