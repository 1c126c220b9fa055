//! `coze-auth doctor`: its command line and its run. The checks themselves are
//! `coze_core::doctor`; this reads the environment (once, here) and prints the report.

use std::ffi::OsString;
use std::io;
use std::time::Duration;

use coze_core::cli::{self, Parsed};
use coze_core::config::Env;
use coze_core::doctor::{self, Setup};
use coze_core::session::ApiFlags;
use coze_core::{Error, Result};

use crate::flags::DEFAULT_REDIRECT_URI;

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
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(cli::usage)? {
        let arg = cli::Arg::from(arg);
        let timing = matches!(&arg, cli::Arg::Long(l)
            if matches!(l.as_str(), "idle-timeout" | "connect-timeout" | "retries"));
        if !timing && f.api.take(&arg, &mut parser)? {
            continue;
        }
        let name = match &arg {
            cli::Arg::Short(c) => format!("-{c}"),
            cli::Arg::Long(l) => format!("--{l}"),
            cli::Arg::Value(_) => return Err(arg.unexpected()),
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--redirect-uri" => {
                f.redirect_uri = cli::string("--redirect-uri", cli::value(&mut parser)?)?
            }
            "--timeout" => {
                f.timeout = cli::seconds("--timeout", cli::value(&mut parser)?)?;
                if f.timeout.is_zero() {
                    return Err(Error::usage("--timeout: must be more than 0 seconds"));
                }
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Parsed::Run(f))
}

/// Runs the checks; `Ok(code)` is the exit status the report calls for.
pub fn run(f: Flags, env: Env) -> Result<u8> {
    let setup = Setup {
        api: ApiFlags {
            idle_timeout: Some(f.timeout),
            connect_timeout: Some(f.timeout),
            // A diagnosis reports what happens now; it does not wait out a flaky server.
            retries: Some(0),
            rate: None,
            ..f.api
        },
        redirect_uri: f.redirect_uri,
    };
    let checks = doctor::run(&setup, &env, &mut io::stdout().lock())?;
    Ok(doctor::exit_code(&checks))
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
