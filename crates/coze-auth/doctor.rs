//! `coze-auth doctor`: its command line and its run. The checks themselves are
//! `coze_core::doctor`; this reads the environment (once, here) and prints the report.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use coze_core::cli::{self, Parsed};
use coze_core::config::{Env, Region};
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
    clock          this machine's clock against the server's Date header
                   (warn from 10 s apart, FAIL from 60 s)
    redirect URI   the form coze-auth can serve: http://, a loopback host, an
                   explicit port, a path
    callback port  whether the redirect URI's port is free to listen on now
    proxy          the proxy variable in effect (ALL_PROXY, HTTPS_PROXY, HTTP_PROXY;
                   credentials shown as ***) and whether NO_PROXY exempts the API
    token file     present, and private (mode 0600)
    token          when the access token expires and whether it can be renewed
    api            a live GET /v1/users/me with the token

A check that cannot run because an earlier one failed says `skip`. Like every tool,
the live check renews a token that is about to run out; nothing else is changed.

OPTIONS:
    --redirect-uri URI     the redirect URI to check
                           [default: http://127.0.0.1:8080/callback]
    --token-file PATH      token file [env: COZE_TOKEN_FILE]; otherwise COZE_API_TOKEN;
                           otherwise $XDG_CONFIG_HOME/coze/token.json
                           (~/.config/coze/token.json)
    --base-url URL         API base [env: COZE_API_BASE] [default: the token's
                           base_url, else https://api.coze.cn]
    --region cn|com        https://api.coze.cn or https://api.coze.com
    --timeout SECONDS      connect and read timeout of the two requests [default: 10]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted)
    -h, --help             this text

ENVIRONMENT:
    HTTPS_PROXY, ALL_PROXY, HTTP_PROXY, NO_PROXY (and their lower-case forms)
                           the proxy the tools use, reported by the proxy check

EXAMPLES:
    coze-auth doctor
    coze-auth doctor --region com --redirect-uri http://127.0.0.1:9000/callback
    coze-auth doctor | grep -v '^ok'

EXIT STATUS
    0    no check failed (warnings allowed)
    1    a check failed
    4    the token check failed: log in again (coze-auth | coze-token --save)
    5    the server could not be reached
";

/// The doctor's flags, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub redirect_uri: String,
    pub token_file: Option<PathBuf>,
    pub base_url: Option<String>,
    pub region: Option<Region>,
    pub timeout: Duration,
    pub verbose: bool,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            redirect_uri: DEFAULT_REDIRECT_URI.to_owned(),
            token_file: None,
            base_url: None,
            region: None,
            timeout: Duration::from_secs(10),
            verbose: false,
        }
    }
}

/// Parses the arguments after `doctor`. Only records and validates.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    use lexopt::prelude::*;
    let mut f = Flags::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(cli::usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Long("redirect-uri") => {
                f.redirect_uri = cli::string("--redirect-uri", cli::value(&mut parser)?)?
            }
            Long("token-file") => {
                f.token_file = Some(cli::value(&mut parser)?.into());
            }
            Long("base-url") => {
                f.base_url = Some(cli::string("--base-url", cli::value(&mut parser)?)?)
            }
            Long("region") => {
                let v = cli::string("--region", cli::value(&mut parser)?)?;
                f.region = Some(Region::parse(&v)?);
            }
            Long("timeout") => {
                f.timeout = cli::seconds("--timeout", cli::value(&mut parser)?)?;
                if f.timeout.is_zero() {
                    return Err(Error::usage("--timeout: must be more than 0 seconds"));
                }
            }
            Short('v') | Long("verbose") => f.verbose = true,
            _ => return Err(cli::usage(arg.unexpected())),
        }
    }
    Ok(Parsed::Run(f))
}

/// Runs the checks; `Ok(code)` is the exit status the report calls for.
pub fn run(f: Flags, env: Env) -> Result<u8> {
    let setup = Setup {
        api: ApiFlags {
            token_file: f.token_file,
            base_url: f.base_url,
            region: f.region,
            verbose: f.verbose,
            idle_timeout: Some(f.timeout),
            connect_timeout: Some(f.timeout),
            // A diagnosis reports what happens now; it does not wait out a flaky server.
            retries: Some(0),
            rate: None,
        },
        redirect_uri: f.redirect_uri,
    };
    let checks = doctor::run(&setup, &env, &mut io::stdout().lock())?;
    Ok(doctor::exit_code(&checks))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(f.token_file, Some(PathBuf::from("/t.json")));
        assert_eq!(f.region, Some(Region::Com));
        assert_eq!(f.timeout, Duration::from_secs(2));
        assert!(f.verbose);
        assert!(matches!(p(&["--timeout", "1", "-h"]), Ok(Parsed::Help)));
        for bad in [
            &["--bogus"][..],
            &["--timeout", "0"],
            &["x"],
            &["--region", "eu"],
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
