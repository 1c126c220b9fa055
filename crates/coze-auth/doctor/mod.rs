//! `coze-auth doctor`: what usually stands between a person and a working login, checked
//! one thing at a time, one line each: the region and base URL, the route to it (direct
//! or which proxy, exactly as the requests take it), the CAs trusted for HTTPS, the
//! clock against the server's `Date`, the callback port and the redirect URI's form,
//! which credentials are used and why, the token file (present, private, not expired)
//! and a live `GET /v1/users/me` with the token.
//!
//! Here: the command line, and [`report`], which does the observing (a bind, two
//! requests, a file read) and prints each line as soon as it is known; the checks
//! themselves are pure functions (`checks`). The environment is read by `main`, as
//! everywhere. Not here: fixing anything. The doctor changes nothing but, like any
//! tool, it renews a token that is about to run out before the live check.

mod checks;

use std::ffi::OsString;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use coze_core::auth::store::TokenStore;
use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::ApiFlags;
use coze_core::cli::session::Session;
use coze_core::cli::Parsed;
use coze_core::config::{self, Credentials, Env};
use coze_core::error::exit;
use coze_core::http::Http;
use coze_core::protocol::Token;
use coze_core::support::time::unix_now;
use coze_core::support::url;
use coze_core::{Error, Result};

use crate::flags::DEFAULT_REDIRECT_URI;
use checks::{
    callback_port, clock, exit_code, live, proxy, redirect_uri, region, token, token_file, trust,
    Check, Level,
};

pub const HELP: &str = "\
coze-auth doctor: check what a login and the API calls need, one line each

USAGE:
    coze-auth doctor [OPTIONS]

Prints one line per check on stdout, `ok`, `warn` or `FAIL` first, then what was
found and, for a failure, what to do:

    region         the API base in use and where it comes from (flag, COZE_API_BASE,
                   the token file, the default); plain http:// only to loopback
                   unless --allow-http
    proxy          the route requests take, exactly as the tools take it: direct, or
                   which proxy from which flag or variable (credentials shown as ***),
                   who resolves names, and whether NO_PROXY exempts the API
    trust          the CAs trusted for https: the system store, SSL_CERT_FILE,
                   SSL_CERT_DIR, --cacert / COZE_CA_BUNDLE, with their counts
    clock          this machine's clock against the server's Date header
                   (warn from 10 s apart, FAIL from 60 s)
    redirect URI   the form coze-auth can serve: http://, a loopback host, an
                   explicit port, a path
    callback port  whether the redirect URI's port is free to listen on now
    credentials    which token the tools use and the rule that chose it
    token file     present, and private (mode 0600)
    token          when the access token expires and whether it can be renewed
    api            a live GET /v1/users/me with the token (a warning on a server
                   without it, such as a self-hosted Coze Studio)

A check that cannot run because an earlier one failed says `skip`. Like every tool,
the live check renews a token that is about to run out; nothing else is changed.

OPTIONS:
    --redirect-uri URI     the redirect URI to check
                           [default: http://127.0.0.1:8080/callback]
    --profile NAME         check profile NAME's token file [env: COZE_PROFILE]
    --token-file PATH      token file [env: COZE_TOKEN_FILE]; otherwise COZE_API_TOKEN;
                           otherwise $XDG_CONFIG_HOME/coze/token.json
                           (~/.config/coze/token.json)
    --base-url URL         API base [env: COZE_API_BASE] [default: the token's
                           base_url, else https://api.coze.cn]
    --region cn|com        https://api.coze.cn or https://api.coze.com
    --proxy URL            check with this proxy instead of the variables'
    --cacert FILE          also trust the CAs in this PEM file [env: COZE_CA_BUNDLE]
    --allow-http           allow plain http:// to a non-loopback host [env:
                           COZE_ALLOW_HTTP=1]
    --timeout SECONDS      connect and read timeout of the two requests [default: 10]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted)
    -h, --help             this text

ENVIRONMENT:
    https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY, http_proxy, HTTP_PROXY,
    no_proxy, NO_PROXY     the proxy the tools use, reported by the proxy check
    SSL_CERT_FILE, SSL_CERT_DIR, COZE_CA_BUNDLE
                           CAs trusted besides the system store, reported by trust

EXAMPLES:
    coze-auth doctor
    coze-auth doctor --region com --redirect-uri http://127.0.0.1:9000/callback
    coze-auth doctor | grep -v '^ok'
    coze-auth doctor --profile studio --allow-http

EXIT STATUS
    0    no check failed (warnings allowed)
    1    a check failed
    2    a proxy or CA file the tools cannot use
    4    the token check failed: log in again (coze-auth | coze-token --save)
    5    the server could not be reached
";

/// The doctor's flags, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub redirect_uri: String,
    /// The shared API flags; the doctor sets their timeouts from `--timeout`.
    pub api: ApiFlags,
    pub timeout: Duration,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            redirect_uri: DEFAULT_REDIRECT_URI.to_owned(),
            api: ApiFlags::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Parses the arguments after `doctor`. Only records and validates.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut f = Flags::default();
    let parsed = args::read(args, |a, arg| {
        let Arg::Flag(flag) = arg else {
            return Ok(false);
        };
        // The doctor's own --timeout sets every timeout and allows no retries.
        let timing = matches!(
            flag.as_str(),
            "--idle-timeout" | "--connect-timeout" | "--retries"
        );
        if !timing && f.api.take(flag, a)? {
            return Ok(true);
        }
        match flag.as_str() {
            "--redirect-uri" => f.redirect_uri = a.string()?,
            "--timeout" => {
                f.timeout = a.seconds()?;
                if f.timeout.is_zero() {
                    return Err(a.error("must be more than 0 seconds"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    parsed.then(|| Ok(f))
}

/// Runs the checks; `Ok(code)` is the exit status the report calls for.
pub fn run(f: Flags, env: Env) -> Result<u8> {
    let api = ApiFlags {
        idle_timeout: Some(f.timeout),
        connect_timeout: Some(f.timeout),
        // A diagnosis reports what happens now; it does not wait out a flaky server.
        retries: Some(0),
        rate: None,
        ..f.api
    };
    let checks = report(&api, &f.redirect_uri, &env, &mut io::stdout().lock())?;
    Ok(exit_code(&checks))
}

/// Runs every check of the API flags `api` (`--token-file`, `--base-url`, `--region`,
/// timeouts, -v) and the redirect URI, printing each line to `out` as soon as it is
/// known, and returns the lines.
fn report(api: &ApiFlags, redirect: &str, env: &Env, out: &mut dyn Write) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let mut say = |c: Check, checks: &mut Vec<Check>| -> Result<()> {
        // A base URL or proxy written with user:password@ shows as ***@.
        writeln!(out, "{}", coze_core::support::redact::scrub(&c.to_string()))
            .and_then(|_| out.flush())
            .map_err(|e| Error::io("stdout", e))?;
        checks.push(c);
        Ok(())
    };
    let now = unix_now;

    let credentials = api.credentials(env);
    let stored: Option<(std::path::PathBuf, io::Result<u32>, Result<Token>)> =
        match credentials.as_ref().ok().and_then(Credentials::path) {
            Some(path) => {
                let mode = file_mode(path);
                let loaded = TokenStore::new(path).load();
                Some((path.to_path_buf(), mode, loaded))
            }
            None => None,
        };
    let loaded_token = stored.as_ref().and_then(|(_, _, t)| t.as_ref().ok());
    let token_base = loaded_token.and_then(|t| t.base_url.clone());
    let f = api;
    let base = config::api_base(f.base_url.as_deref(), f.region, env, token_base.as_deref());
    let api_base = base.value;
    let mut config = f.http_config(env)?;
    config.network.allow_http =
        config::plain_http(f.net.allow_http, env, loaded_token, &api_base)?.value;
    let http = Http::new(config);
    let base_check = region(
        &api_base,
        base.source.as_str(),
        http.config().network.allow_http,
    );
    let mut reachable = base_check.level != Level::Fail;
    say(base_check, &mut checks)?;

    let route = http.route(&api_base);
    reachable &= route.is_ok();
    say(proxy(&route, &api_base), &mut checks)?;
    let trusted = api_base.starts_with("https:").then(|| http.trust());
    reachable &= !matches!(trusted, Some(Err(_)));
    say(trust(trusted.as_ref()), &mut checks)?;

    if reachable {
        let started = Instant::now();
        let before = now();
        let target = format!("{}/", url::trim_base(&api_base));
        let c = match http.probe(&target) {
            Ok((_, date)) => {
                let local = before + (started.elapsed().as_secs_f64() / 2.0).round() as i64;
                clock(local, date.as_deref())
            }
            Err(e) => Check::fail(
                "clock",
                format!(
                    "cannot ask the server: {}",
                    coze_core::support::redact::scrub(&e.to_string())
                ),
            )
            .code(exit::NETWORK),
        };
        say(c, &mut checks)?;
    } else {
        say(
            Check::skip("clock", "no usable base URL or route to ask"),
            &mut checks,
        )?;
    }

    let (form, addr) = redirect_uri(redirect);
    say(form, &mut checks)?;
    match addr {
        Some(addr) => {
            let bound = TcpListener::bind(addr).map(drop);
            say(callback_port(addr, &bound), &mut checks)?;
        }
        None => say(
            Check::skip("callback port", "no usable redirect URI"),
            &mut checks,
        )?,
    }

    say(checks::credentials(&credentials), &mut checks)?;
    let usable = match (&credentials, &stored) {
        (Err(_), _) => false,
        (Ok(Credentials::Static(_)), _) => {
            say(
                Check::ok(
                    "token",
                    "COZE_API_TOKEN is set (a bare token or PAT: used as is, never renewed)",
                ),
                &mut checks,
            )?;
            true
        }
        (Ok(Credentials::File { .. }), Some((path, mode, loaded))) => {
            say(token_file(path, mode), &mut checks)?;
            match loaded {
                Ok(t) => {
                    let c = token(t, &api_base, now());
                    let ok = c.level != Level::Fail;
                    say(c, &mut checks)?;
                    ok
                }
                Err(e) if mode.is_ok() => {
                    say(
                        Check::fail("token", e.to_string()).code(exit::AUTH),
                        &mut checks,
                    )?;
                    false
                }
                Err(_) => {
                    say(Check::skip("token", "no token file"), &mut checks)?;
                    false
                }
            }
        }
        (Ok(Credentials::File { .. }), None) => {
            unreachable!("a token file is always read above")
        }
    };
    if usable && reachable {
        let session = Session::open(api, env)?;
        let client = session.client();
        say(live(&client.users_me()), &mut checks)?;
    } else {
        say(
            Check::skip("api", "no usable token, base URL or route to try"),
            &mut checks,
        )?;
    }
    Ok(checks)
}

fn file_mode(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.permissions().mode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coze_core::config::Region;
    use std::path::PathBuf;

    fn p(args: &[&str]) -> Result<Parsed<Flags>> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags() {
        let Ok(Parsed::Run(f)) = p(&[]) else { panic!() };
        assert_eq!(f, Flags::default());
        let Ok(Parsed::Run(f)) = p(&[
            "--redirect-uri",
            "http://localhost:9/cb",
            "--token-file",
            "/t.json",
            "--base-url",
            "http://127.0.0.1:1",
            "--region",
            "com",
            "--timeout",
            "2",
            "-v",
        ]) else {
            panic!()
        };
        assert_eq!(f.redirect_uri, "http://localhost:9/cb");
        assert_eq!(f.api.token_file, Some(PathBuf::from("/t.json")));
        assert_eq!(f.api.region, Some(Region::Com));
        assert_eq!(f.timeout, Duration::from_secs(2));
        assert!(f.api.verbose);
        assert!(matches!(p(&["--timeout", "1", "-h"]), Ok(Parsed::Help)));
        for bad in [
            &["--bogus"][..],
            &["--timeout", "0"],
            &["x"],
            &["--region", "eu"],
            &["--retries", "3"],
        ] {
            assert_eq!(p(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn help_names_every_check_and_flag() {
        for s in [
            "region",
            "clock",
            "redirect URI",
            "callback port",
            "proxy",
            "trust",
            "credentials",
            "--profile",
            "--proxy",
            "--cacert",
            "--allow-http",
            "token file",
            "/v1/users/me",
            "--redirect-uri",
            "--token-file",
            "--base-url",
            "--region",
            "--timeout",
            "EXIT STATUS",
            "EXAMPLES",
        ] {
            assert!(HELP.contains(s), "{s}");
        }
    }
}
