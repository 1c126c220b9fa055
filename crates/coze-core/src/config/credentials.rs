//! Where an API tool's token comes from: [`CREDENTIALS_PRECEDENCE`], resolved once, and
//! the rule of it that chose the token file ([`Origin`]), which messages and `-v` name.

use std::path::{Path, PathBuf};

use super::{default_token_path, profile_dir, Env, DEFAULT_PROFILE};
use crate::error::{Error, Result};

/// The precedence of credentials, as every tool's help and the README state it.
pub const CREDENTIALS_PRECEDENCE: &str = "--token-file > --profile > COZE_TOKEN_FILE > \
     COZE_PROFILE > COZE_API_TOKEN > the default profile's token file";

/// Where an API tool's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A token file, refreshed through the single-flight store.
    File {
        /// The token file (it may not exist yet: a tool that needs it says so).
        path: PathBuf,
        /// Which rule chose it.
        origin: Origin,
    },
    /// `COZE_API_TOKEN`: a bare token or PAT, used as is and never refreshed.
    Static(String),
}

/// Why this token file: the rule of [`CREDENTIALS_PRECEDENCE`] that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--token-file PATH`.
    TokenFileFlag,
    /// `COZE_TOKEN_FILE`.
    TokenFileEnv,
    /// A named profile, from `--profile` (true) or `COZE_PROFILE`.
    Profile {
        /// The profile's name (never `default`: that one is [`Origin::Default`]).
        name: String,
        /// True for `--profile`, false for `COZE_PROFILE`.
        flag: bool,
    },
    /// Nothing named one: the default profile's token file (`default` named
    /// explicitly counts as this too).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::tests::home_only as env;

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
}
