//! The environment, read once: [`Env`] is a snapshot of the variables the tools read,
//! taken in `main`; everything below works on that snapshot, so nothing else reads the
//! environment and tests can state an environment instead of mutating the process's.
//! The proxy variables' names are here too, so that `http::proxy` reads them from the
//! snapshot without reading the environment itself.

use std::path::PathBuf;

/// The environment variables the coze tools read, read once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `COZE_API_BASE`: the API's base URL, beaten by `--base-url` (the official SDKs'
    /// examples use the same name).
    pub api_base: Option<String>,
    /// `COZE_API_TOKEN`: a bare access token or PAT, used as is and never refreshed;
    /// below `--token-file`, `--profile`, `COZE_TOKEN_FILE` and `COZE_PROFILE`.
    pub api_token: Option<String>,
    /// `COZE_BOT_ID`: the bot to talk to when no `--bot` names one.
    pub bot_id: Option<String>,
    /// `COZE_WWW_BASE`: where the OAuth pages (authorize, consent) are, when not
    /// derived from the API base; beaten by coze-auth's `--www-url`.
    pub www_base: Option<String>,
    /// `COZE_TOKEN_FILE`: the token file to use instead of the profile's.
    pub token_file: Option<PathBuf>,
    /// `COZE_CLIENT_ID`: the OAuth app's client id, beaten by `--client-id`.
    pub client_id: Option<String>,
    /// `COZE_USER_ID`: who the chats are from, beaten by `--user`; else the profile's
    /// own user id.
    pub user_id: Option<String>,
    /// `XDG_CONFIG_HOME`: where `coze/` (token files, profiles) lives; else
    /// `$HOME/.config`.
    pub xdg_config_home: Option<PathBuf>,
    /// `HOME`: for `~/.config` when `XDG_CONFIG_HOME` is unset.
    pub home: Option<PathBuf>,
    /// `BROWSER`: the command coze-auth opens the authorize URL with; else
    /// `xdg-open` / `open`.
    pub browser: Option<String>,
    /// `TERM`: the terminal's type; unset or `dumb` means no cursor control, so a
    /// batch's progress is plain lines (`cli::progress`) and coze-chat's terminal chat
    /// reads plain lines and writes no escape sequences.
    pub term: Option<String>,
    /// `COLUMNS`: the terminal's width, when the terminal itself does not say.
    pub columns: Option<String>,
    /// The set proxy variables, as (name, value): see [`PROXY_VARS`] and `http::proxy`.
    pub proxy_vars: Vec<(String, String)>,
    /// `COZE_PROFILE`: the profile whose token file the tools use.
    pub profile: Option<String>,
    /// `COZE_CA_BUNDLE`: one more CA bundle to trust (as `--cacert`).
    pub ca_bundle: Option<PathBuf>,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`: OpenSSL's trust variables, which curl and Python
    /// honour too.
    pub ssl_cert_file: Option<PathBuf>,
    /// `SSL_CERT_DIR`: directories of CA files, `:`-separated (kept as one string).
    pub ssl_cert_dir: Option<String>,
    /// `COZE_ALLOW_HTTP` as set (checked where it is used: `1`/`true`/`yes` or
    /// `0`/`false`/`no`).
    pub allow_http: Option<String>,
    /// `TMPDIR`: where a tool spools what it must be able to read twice (coze-file's
    /// stdin, so a retry can resend it). None: `/tmp`.
    pub tmpdir: Option<PathBuf>,
    /// `XDG_STATE_HOME`: where coze-chat keeps its terminal chat's history
    /// (`coze/history`); else `$HOME/.local/state`.
    pub xdg_state_home: Option<PathBuf>,
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
            term: var("TERM"),
            columns: var("COLUMNS"),
            proxy_vars: proxy_vars_from_process(),
            profile: var("COZE_PROFILE"),
            ca_bundle: var("COZE_CA_BUNDLE").map(PathBuf::from),
            ssl_cert_file: var("SSL_CERT_FILE").map(PathBuf::from),
            ssl_cert_dir: var("SSL_CERT_DIR"),
            allow_http: var("COZE_ALLOW_HTTP"),
            tmpdir: var("TMPDIR").map(PathBuf::from),
            xdg_state_home: var("XDG_STATE_HOME").map(PathBuf::from),
        }
    }
}

/// The variables that can name a proxy, in no particular order (see
/// [`proxy_candidates`]).
pub const PROXY_VARS: [&str; 6] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];
/// The variables that exempt hosts, lower case first as curl reads them.
pub const NO_PROXY_VARS: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// The variables consulted for a request with this URL scheme, in order.
pub fn proxy_candidates(scheme: &str) -> [&'static str; 4] {
    if scheme.eq_ignore_ascii_case("http") {
        ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    }
}

/// The set proxy variables of this process, for [`Env::from_process`].
fn proxy_vars_from_process() -> Vec<(String, String)> {
    PROXY_VARS
        .iter()
        .chain(NO_PROXY_VARS.iter())
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (k.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::Env;

    /// An environment with only HOME set, for the tests of config's rules.
    pub(in crate::config) fn home_only() -> Env {
        Env {
            home: Some("/home/u".into()),
            ..Env::default()
        }
    }
}
