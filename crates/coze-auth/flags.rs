//! coze-auth's command line: parsed into a plain struct, nothing resolved yet (the
//! environment and the base URLs are `main`'s business).

use std::ffi::OsString;
use std::time::Duration;

use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::NetFlags;
use coze_core::cli::Parsed;
use coze_core::config::Region;
use coze_core::{Error, Result};

pub const HELP: &str = "\
coze-auth: log in to Coze in a browser and print the grant for coze-token

USAGE:
    coze-auth --client-id ID [OPTIONS] | coze-token --save
    coze-auth --client-id ID --paste [OPTIONS]       browser on another machine
    coze-auth --client-id ID --device [OPTIONS]      no browser at all (device flow)
    coze-auth doctor [OPTIONS]                       check the setup, one line per check
                                                     (coze-auth doctor --help)

Runs the OAuth authorization-code flow with PKCE (S256) for a Coze OAuth app of
the PKCE (\"mobile/PC/single-page\") type: listens on the loopback redirect URI,
opens the authorize page in a browser, waits for the person to approve, and
writes one `authorization_code` record (JSON, one line) on stdout for coze-token
to exchange. The authorize URL is always printed on stderr too. The redirect URI
must be one registered on the app, so its port is fixed; only 127.0.0.1,
localhost and [::1] are served (any other redirect URI needs --paste). A
callback with a wrong or missing state is refused and waiting goes on.

With --paste, open the URL in any browser, log in, and paste the URL it was
redirected to (or just the code) on stdin. With --device (an app of the device
type), a `device_code` record is written instead and the code to enter is
printed on stderr; coze-token polls until it is approved. When stdout is a
regular file (`> grant.json`) it is set to 0600: a code is a secret until used.

OPTIONS:
    --client-id ID         the OAuth app's client ID (required) [env: COZE_CLIENT_ID]
    --redirect-uri URI     the redirect URI registered on the app
                           [default: http://127.0.0.1:8080/callback]
    --region cn|com        coze.cn or coze.com [default: cn]
    --base-url URL         API base [env: COZE_API_BASE] [default: https://api.coze.cn]
    --www-url URL          host of the authorize page [env: COZE_WWW_BASE]
                           [default: www.coze.cn / www.coze.com for the official API
                           hosts, else the API base]
    --workspace-id ID      authorize for a workspace (enterprise edition)
    --timeout SECONDS      give up waiting for the callback after this long
                           [default: 300]
    --no-browser           do not open a browser; only print the URL
    --paste                read the redirected URL (or the code) from stdin instead of
                           listening; implies --no-browser
    --device               the device flow: print a code to enter, write a
                           `device_code` record
    -v, --verbose          one line per callback request and HTTP request on stderr
                           (secrets redacted)
    -h, --help             this text
    -V, --version          version and commit

";

/// The rest of the help, after the network flags.
pub const HELP_TAIL: &str = "

ENVIRONMENT:
    BROWSER                the browser command, given the URL as its one argument (a
                           command with spaces runs through sh) [default: xdg-open,
                           open on macOS]

EXAMPLES:
    coze-auth --client-id 1234.app.coze | coze-token --save
    coze-auth --client-id 1234.app.coze --region com | coze-token --save
    ssh box 'coze-auth --client-id 1234.app.coze --paste | coze-token --save'
    ALL_PROXY=socks5h://127.0.0.1:7890 coze-auth --client-id 1234.app.coze | coze-token --save
    coze-auth --client-id 1234.app.coze --device | coze-token --save
    coze-auth --client-id 1234.app.coze --redirect-uri http://localhost:9000/cb \\
        --no-browser > grant.json

";

pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8080/callback";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub client_id: Option<String>,
    pub redirect_uri: String,
    pub region: Option<Region>,
    pub base_url: Option<String>,
    pub www_url: Option<String>,
    pub workspace_id: Option<String>,
    pub timeout: Duration,
    pub no_browser: bool,
    pub paste: bool,
    pub device: bool,
    pub verbose: bool,
    /// `--proxy`, `--cacert`, `--allow-http`.
    pub net: NetFlags,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            client_id: None,
            redirect_uri: DEFAULT_REDIRECT_URI.to_owned(),
            region: None,
            base_url: None,
            www_url: None,
            workspace_id: None,
            timeout: DEFAULT_TIMEOUT,
            no_browser: false,
            paste: false,
            device: false,
            verbose: false,
            net: NetFlags::default(),
        }
    }
}

/// Parses `args` (without the program name). Only records and validates.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut f = Flags::default();
    let parsed = args::read(args, |a, arg| {
        let Arg::Flag(flag) = arg else {
            return Ok(false);
        };
        if f.net.take(flag, a)? {
            return Ok(true);
        }
        match flag.as_str() {
            "--client-id" => f.client_id = Some(a.nonempty()?),
            "--redirect-uri" => f.redirect_uri = a.nonempty()?,
            "--region" => f.region = Some(Region::parse(&a.string()?)?),
            "--base-url" => f.base_url = Some(a.nonempty()?),
            "--www-url" => f.www_url = Some(a.nonempty()?),
            "--workspace-id" => f.workspace_id = Some(a.nonempty()?),
            "--timeout" => {
                f.timeout = a.seconds()?;
                if f.timeout.is_zero() {
                    return Err(a.error("must be more than 0 seconds"));
                }
            }
            "--no-browser" => f.no_browser = true,
            "--paste" => f.paste = true,
            "--device" => f.device = true,
            "-v" | "--verbose" => f.verbose = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    parsed.then(|| check(f))
}

/// How the flags go together, checked once all are read.
fn check(f: Flags) -> Result<Flags> {
    if f.device && f.paste {
        return Err(Error::usage(
            "--device and --paste are two different ways to log in; pick one",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed<Flags>> {
        parse(args.iter().map(OsString::from))
    }

    fn flags(args: &[&str]) -> Flags {
        match p(args) {
            Ok(Parsed::Run(f)) => f,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let f = flags(&[]);
        assert_eq!(f, Flags::default());
        assert_eq!(f.redirect_uri, "http://127.0.0.1:8080/callback");
        assert_eq!(f.timeout, Duration::from_secs(300));
    }

    #[test]
    fn every_flag() {
        let f = flags(&[
            "--client-id=1.app.coze",
            "--redirect-uri",
            "http://localhost:9/cb",
            "--region",
            "com",
            "--base-url",
            "http://127.0.0.1:1",
            "--www-url",
            "http://127.0.0.1:2",
            "--workspace-id",
            "77",
            "--timeout",
            "1.5",
            "--no-browser",
            "-v",
            "--proxy",
            "socks5h://127.0.0.1:1080",
            "--cacert",
            "corp.pem",
            "--allow-http",
        ]);
        assert_eq!(
            f.net,
            NetFlags {
                proxy: Some("socks5h://127.0.0.1:1080".into()),
                cacert: Some("corp.pem".into()),
                allow_http: true
            }
        );
        assert_eq!(f.client_id.as_deref(), Some("1.app.coze"));
        assert_eq!(f.redirect_uri, "http://localhost:9/cb");
        assert_eq!(f.region, Some(Region::Com));
        assert_eq!(f.base_url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(f.www_url.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(f.workspace_id.as_deref(), Some("77"));
        assert_eq!(f.timeout, Duration::from_millis(1500));
        assert!(f.no_browser && f.verbose && !f.paste && !f.device);
        assert!(flags(&["--paste"]).paste);
        assert!(flags(&["--device"]).device);
    }

    #[test]
    fn help_and_version_come_first() {
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help)));
        assert!(matches!(p(&["--timeout", "1", "-h"]), Ok(Parsed::Help)));
        assert!(matches!(p(&["-V"]), Ok(Parsed::Version)));
    }

    #[test]
    fn usage_errors_exit_2_and_name_the_flag() {
        for (args, needle) in [
            (&["--bogus"][..], "--bogus"),
            (&["--timeout", "soon"], "--timeout"),
            (&["--timeout", "0"], "--timeout"),
            (&["--region", "eu"], "--region"),
            (&["--client-id"], "--client-id"),
            (&["--client-id", ""], "--client-id"),
            (&["--device", "--paste"], "--device"),
            (&["extra"], "extra"),
            (&["--proxy"], "--proxy"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_names_every_flag_and_the_examples() {
        for flag in [
            "--client-id",
            "--redirect-uri",
            "--region",
            "--base-url",
            "--www-url",
            "--workspace-id",
            "--timeout",
            "--no-browser",
            "--paste",
            "--device",
            "--verbose",
            "--proxy",
            "--cacert",
            "--allow-http",
            "COZE_CLIENT_ID",
            "COZE_API_BASE",
            "COZE_WWW_BASE",
            "BROWSER",
            "| coze-token --save",
            "EXAMPLES",
        ] {
            let all = format!("{HELP}{}{HELP_TAIL}", coze_core::cli::flags::NET_FLAGS_HELP);
            assert!(all.contains(flag), "{flag}");
        }
    }
}
