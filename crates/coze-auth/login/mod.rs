//! Getting a person's consent back to coze-auth: the loopback listener that receives the
//! OAuth redirect (`listener`), the browser that is opened on the authorize URL
//! (`browser`), and the redirected URL pasted by hand when the browser runs on another
//! machine (`--paste`, read here). What a callback or a pasted line means is decided by
//! coze-core's `auth::callback`; exchanging the code is coze-token's job.

pub mod browser;
pub mod listener;

use std::io::{self, BufRead, Write};
use std::time::Duration;

use serde_json::Map;

use coze_core::auth::oauth::{self, Authorize};
use coze_core::auth::pkce::{self, Pkce};
use coze_core::protocol::AuthorizationCode;
use coze_core::support::{redact, url};
use coze_core::{Error, Result};

use browser::{open_browser, Browser};
use listener::{seconds, Listener, Loopback};

/// The longest line `--paste` reads: an authorize redirect is well under 4 KiB.
const MAX_PASTE: u64 = 64 << 10;

/// Everything a browser login needs, resolved by `main`.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// The API base, which goes into the record for coze-token.
    pub api_base: &'a str,
    /// The host of the authorize page.
    pub www_base: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub workspace_id: Option<&'a str>,
    pub timeout: Duration,
    pub browser: Browser,
    /// Read the redirected URL (or the code) from `input` instead of listening.
    pub paste: bool,
    /// One line per callback request on stderr.
    pub verbose: bool,
}

/// The authorization-code login with PKCE (S256) and a fresh random `state`: listen
/// (unless pasting), show the URL, open the browser, and wait for the code. Instructions
/// go to `stderr`; the verifier never does.
pub fn login(
    l: &Login<'_>,
    input: &mut dyn BufRead,
    stderr: &mut dyn Write,
) -> Result<AuthorizationCode> {
    let listener = if l.paste {
        url::parse(l.redirect_uri).map_err(|e| Error::usage(format!("--redirect-uri: {e}")))?;
        None
    } else {
        let loopback = Loopback::from_redirect_uri(l.redirect_uri)?;
        Some(Listener::bind(&loopback)?)
    };
    let no_random = |e: &dyn std::fmt::Display| {
        Error::io(
            "the OS random source",
            io::Error::other(format!("no randomness for PKCE: {e}")),
        )
    };
    let pkce = Pkce::generate().map_err(|e| no_random(&e))?;
    let state = pkce::random_state().map_err(|e| no_random(&e))?;
    redact::register(&pkce.verifier);
    let authorize = oauth::authorize_url(&Authorize {
        www_base: l.www_base,
        client_id: l.client_id,
        redirect_uri: l.redirect_uri,
        state: &state,
        code_challenge: &pkce.challenge,
        workspace_id: l.workspace_id,
    });
    let say = |e: io::Error| Error::io("stderr", e);
    let code = match listener {
        Some(listener) => {
            let lead = match l.browser {
                Browser::Off => "Open this URL in a browser to log in to Coze",
                _ => "Opening a browser to log in to Coze; if none opens, open this URL",
            };
            writeln!(
                stderr,
                "{lead} (waiting up to {} for the redirect to {}):\n\n    {authorize}\n",
                seconds(l.timeout),
                l.redirect_uri
            )
            .map_err(say)?;
            if let Err(e) = open_browser(&l.browser, &authorize) {
                writeln!(
                    stderr,
                    "coze-auth: warning: could not start the browser ({}); open the URL above \
                     by hand",
                    coze_core::http::describe_io(&e)
                )
                .map_err(say)?;
            }
            if l.verbose {
                writeln!(stderr, "coze-auth: listening on {}", listener.addr()).map_err(say)?;
            }
            let log = l.verbose.then_some(&mut *stderr as &mut dyn Write);
            listener.wait(&state, l.timeout, log)?
        }
        None => {
            writeln!(
                stderr,
                "Open this URL in a browser on any machine and log in to Coze:\n\n    \
                 {authorize}\n\nThe browser then goes to {} (the page may fail to load; that \
                 is expected). Paste that whole URL from its address bar here (or just the \
                 code) and press Enter:",
                l.redirect_uri
            )
            .map_err(say)?;
            stderr.flush().map_err(say)?;
            let mut line = String::new();
            loop {
                line.clear();
                // A URL or a code is far shorter: stdin that is not a paste (a file,
                // `/dev/zero`) is not read whole.
                let n = io::Read::take(&mut *input, MAX_PASTE)
                    .read_line(&mut line)
                    .map_err(|e| Error::io("stdin", e))?;
                if n as u64 == MAX_PASTE && !line.ends_with('\n') {
                    return Err(Error::BadInput {
                        line: None,
                        message: format!(
                            "the pasted line is longer than {}: paste the address the \
                             browser ended up on, or just its code",
                            coze_core::wire::jsonl::size(MAX_PASTE)
                        ),
                    });
                }
                if n == 0 || !line.trim().is_empty() {
                    break;
                }
            }
            coze_core::auth::callback::parse_pasted(&line, &state)?
        }
    };
    redact::register(&code);
    Ok(AuthorizationCode {
        code,
        code_verifier: Some(pkce.verifier),
        redirect_uri: l.redirect_uri.to_owned(),
        client_id: l.client_id.to_owned(),
        base_url: url::trim_base(l.api_base).to_owned(),
        extra: Map::new(),
    })
}
