//! The flags every API tool shares (credentials, base URL, network, timeouts, -v), their
//! help texts, and what they resolve to: the HTTP decisions and the credentials. The
//! network flags alone ([`NetFlags`]) serve coze-auth too.
//!
//! Resolution, each rule written once in `config`: credentials as
//! `CREDENTIALS_PRECEDENCE`; base URL `--base-url`/`--region` > `COZE_API_BASE` > the
//! token's `base_url` > coze.cn (`api_base`, whose source `-v` names); plain http to a
//! remote host with `--allow-http`, `COZE_ALLOW_HTTP=1`, or a token saved with
//! `--allow-http` for that very base (`plain_http`). Proxies as `proxy` decides; trust
//! as `tls` loads it.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::args::Args;
use crate::config::{self, Credentials, Env, Region};
use crate::error::Result;
use crate::http::proxy::ProxySettings;
use crate::http::tls::TrustSettings;
use crate::http::{HttpConfig, Network};

/// The network flags: every tool that talks to a server takes them (coze-auth too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFlags {
    /// `--proxy URL` (`''` turns proxies off). Defaults to None: the proxy variables
    /// decide.
    pub proxy: Option<String>,
    /// `--cacert FILE`: one more PEM bundle to trust. Defaults to None
    /// (`COZE_CA_BUNDLE`, if set).
    pub cacert: Option<PathBuf>,
    /// `--allow-http`: plain http to a host that is not loopback. Defaults to false.
    pub allow_http: bool,
}

/// The network flags' help, as a macro so that [`API_FLAGS_HELP`] can include it.
macro_rules! net_flags_help {
    () => {
        "\
NETWORK:
    --proxy URL            the proxy for every request: http://, https://, socks4://,
                           socks4a://, socks5:// or socks5h:// (the proxy resolves
                           names), with user:password@ if it needs them; '' for none
                           [default: https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY
                           (http_proxy, HTTP_PROXY for http:// bases); no_proxy /
                           NO_PROXY exempts hosts, domains and CIDR ranges]
    --cacert FILE          also trust the CAs in this PEM file [env: COZE_CA_BUNDLE];
                           the system store, SSL_CERT_FILE and SSL_CERT_DIR are always
                           trusted
    --allow-http           allow plain http:// to a host that is not loopback (a
                           self-hosted Coze Studio on your network) [env:
                           COZE_ALLOW_HTTP=1]; the token then crosses the network
                           unencrypted"
    };
}

/// Help text for the network flags.
pub const NET_FLAGS_HELP: &str = net_flags_help!();

impl NetFlags {
    /// Takes `flag` (as typed) if it is a network flag, reading its value from `a`;
    /// false leaves it to the caller.
    pub fn take(&mut self, flag: &str, a: &mut Args) -> Result<bool> {
        match flag {
            "--proxy" => self.proxy = Some(a.string()?),
            "--cacert" => self.cacert = Some(a.path()?),
            "--allow-http" => self.allow_http = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The network these flags and the environment describe.
    pub fn network(&self, env: &Env) -> Result<Network> {
        let extra =
            config::ca_bundle(self.cacert.as_ref(), env).map(|s| (s.value, s.source.as_str()));
        // Checked now, before anything is sent; the certificates themselves are read
        // on the first HTTPS request.
        if let Some((path, from)) = &extra {
            std::fs::File::open(path).map_err(|e| {
                crate::Error::usage(format!("{from} {}: cannot read it: {e}", path.display()))
            })?;
        }
        Ok(Network {
            proxy: ProxySettings {
                flag: self.proxy.clone(),
                vars: env.proxy_vars.clone(),
            },
            trust: TrustSettings {
                extra,
                ssl_cert_file: env.ssl_cert_file.clone(),
                ssl_cert_dir: env.ssl_cert_dir.clone(),
                ..TrustSettings::default()
            },
            allow_http: config::plain_http(self.allow_http, env, None, "")?.value,
        })
    }
}

/// The shared flags, as parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiFlags {
    /// `--token-file PATH`: beats every other source of credentials. Defaults to None.
    pub token_file: Option<PathBuf>,
    /// `--profile NAME`. Defaults to None (`COZE_PROFILE`, else the default profile).
    pub profile: Option<String>,
    /// `--base-url URL`: the API base. Defaults to None (`COZE_API_BASE`, the token's
    /// `base_url`, coze.cn).
    pub base_url: Option<String>,
    /// `--region cn|com`: coze.cn's or coze.com's API base (`--base-url` beats it).
    /// Defaults to None.
    pub region: Option<Region>,
    /// `--proxy`, `--cacert`, `--allow-http`.
    pub net: NetFlags,
    /// `-v`: the credentials, route and trusted CAs in use, and one stderr line per
    /// request. Defaults to false.
    pub verbose: bool,
    /// `--idle-timeout SECS`. Defaults to None: [`HttpConfig`]'s 120 s.
    pub idle_timeout: Option<Duration>,
    /// `--connect-timeout SECS`. Defaults to None: [`HttpConfig`]'s 10 s.
    pub connect_timeout: Option<Duration>,
    /// `--retries N`: retries of transient failures. Defaults to None: [`HttpConfig`]'s 4.
    pub retries: Option<u32>,
    /// Requests per second across all threads; set by tools that offer `--rate`
    /// (coze-chat), not parsed by `take`.
    pub rate: Option<f64>,
    /// How long a chat waits for a busy conversation (4016); set by coze-chat's
    /// `--busy-wait`, not parsed by `take`.
    pub busy_wait: Option<Duration>,
}

/// Help text for the shared flags, for each tool's --help.
pub const API_FLAGS_HELP: &str = concat!(
    "\
CONNECTION:
    --profile NAME         use profile NAME's token file [env: COZE_PROFILE]
                           (coze-token profiles lists them)
    --token-file PATH      token file [env: COZE_TOKEN_FILE]; otherwise COZE_API_TOKEN
                           (a bare token or PAT, never refreshed); otherwise
                           $XDG_CONFIG_HOME/coze/token.json (~/.config/coze/token.json).
                           Precedence: --token-file > --profile > COZE_TOKEN_FILE >
                           COZE_PROFILE > COZE_API_TOKEN > the default token file
    --base-url URL         API base [env: COZE_API_BASE] [default: the token's
                           base_url, else https://api.coze.cn]
    --region cn|com        https://api.coze.cn or https://api.coze.com
    --idle-timeout SECS    give up when the server sends nothing for this long
                           [default: 120; 0: never]; there is no total time limit
    --connect-timeout SECS [default: 10; 0: as long as the system allows]
    --retries N            retries of transient failures (network, 429, 5xx,
                           4013/4020) before any output [default: 4]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted), and
                           the credentials, route and trusted CAs in use

",
    net_flags_help!()
);

impl ApiFlags {
    /// Takes `flag` (as typed) if it is one of the shared flags, reading its value from
    /// `a`; false leaves it to the caller.
    pub fn take(&mut self, flag: &str, a: &mut Args) -> Result<bool> {
        if self.net.take(flag, a)? {
            return Ok(true);
        }
        match flag {
            "--token-file" => self.token_file = Some(a.path()?),
            "--profile" => {
                let name = a.string()?;
                config::check_profile_name(&name)?;
                self.profile = Some(name);
            }
            "--base-url" => self.base_url = Some(a.string()?),
            "--region" => self.region = Some(Region::parse(&a.string()?)?),
            "--idle-timeout" => self.idle_timeout = Some(a.seconds()?),
            "--connect-timeout" => self.connect_timeout = Some(a.seconds()?),
            "--retries" => self.retries = Some(a.number()?),
            "-v" | "--verbose" => self.verbose = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The HTTP decisions these flags change; the rest are `HttpConfig`'s defaults.
    pub fn http_config(&self, env: &Env) -> Result<HttpConfig> {
        let defaults = HttpConfig::default();
        Ok(HttpConfig {
            verbose: self.verbose,
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            connect_timeout: self.connect_timeout.unwrap_or(defaults.connect_timeout),
            retries: self.retries.unwrap_or(defaults.retries),
            rate: self.rate,
            busy_wait: self.busy_wait.unwrap_or(defaults.busy_wait),
            network: self.net.network(env)?,
            ..defaults
        })
    }

    /// The credentials these flags and the environment select.
    pub fn credentials(&self, env: &Env) -> Result<Credentials> {
        config::credentials(self.token_file.clone(), self.profile.as_deref(), env)
    }

    /// The token file to write, refresh or remove: the credentials' precedence without
    /// `COZE_API_TOKEN`, which names no file.
    pub fn token_file_choice(&self, env: &Env) -> Result<Credentials> {
        config::token_file(self.token_file.clone(), self.profile.as_deref(), env)
    }

    /// The selected profile's `user_id` file (the default profile's unless `--profile`
    /// or `COZE_PROFILE` names another): where the stable default user id lives.
    pub fn user_id_path(&self, env: &Env) -> Result<PathBuf> {
        let name = config::selected_profile(self.profile.as_deref(), env);
        Ok(config::profile_dir(env, &name)?.join("user_id"))
    }
}

/// What a batch tool's `-o` chose, as far as [`check_batch_output`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The tool's records, one per item (`-o results`, `-o answers`): what `--resume`
    /// reads back.
    Records,
    /// Plain text for people (`-o text`), which parallel items would interleave.
    Text,
    /// Anything else, or no `-o` given.
    Other,
}

/// How a batch tool names its records in [`check_batch_output`]'s messages.
#[derive(Debug, Clone, Copy)]
pub struct RecordNouns {
    /// The `-o` value of the records, e.g. `results`.
    pub mode: &'static str,
    /// A file of them, with its article, e.g. `a results file`.
    pub file: &'static str,
    /// What `--jobs > 1` would interleave in text, e.g. `the runs' text`.
    pub interleaved: &'static str,
}

/// How a batch tool's `--append`, `--resume FILE` and `--jobs N` go with its output:
/// `--append` only with `--resume`, `--resume` only with the records it reads back, and
/// more than one job never with text that the jobs would interleave.
pub fn check_batch_output(
    append: bool,
    resume: bool,
    jobs: usize,
    output: OutputKind,
    nouns: &RecordNouns,
) -> Result<()> {
    if append && !resume {
        return Err(crate::Error::usage(
            "--append goes with --resume FILE (it appends to FILE)",
        ));
    }
    if resume && output != OutputKind::Records {
        return Err(crate::Error::usage(format!(
            "--resume reads and continues {}: use it with -o {}",
            nouns.file, nouns.mode
        )));
    }
    if jobs > 1 && output == OutputKind::Text {
        return Err(crate::Error::usage(format!(
            "--jobs > 1 interleaves {}: use -o {} or -o events",
            nouns.interleaved, nouns.mode
        )));
    }
    Ok(())
}
