//! coze-auth: get a grant from a person. The browser login (PKCE, loopback callback or
//! `--paste`) writes an `authorization_code` record, `--device` a `device_code` record;
//! coze-token turns either into tokens.
//!
//! A translator, not a worker: parse flags, resolve settings from the one snapshot of
//! the environment, call `login::login` or coze-core's `oauth::request_device_code`,
//! write the one record, and let `cli::run` turn the outcome into an exit code.

mod doctor;
mod flags;
mod login;

use std::io;
use std::process::ExitCode;

use coze_core::auth::oauth;
use coze_core::cli;
use coze_core::cli::flags::NET_FLAGS_HELP;
use coze_core::config::{self, Env};
use coze_core::error::EXIT_CODES_HELP;
use coze_core::http::{Http, HttpConfig};
use coze_core::protocol::Record;
use coze_core::support::time::unix_now;
use coze_core::support::url;
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::{Error, Result};

use flags::Flags;
use login::browser::Browser;
use login::Login;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "doctor") {
        args.next();
        // The report's exit status is the checks' verdict, not an error.
        return cli::main(
            "coze-auth doctor",
            COMMIT,
            &[doctor::HELP],
            || doctor::parse(args),
            |f| doctor::run(f, Env::from_process()),
        );
    }
    cli::main(
        "coze-auth",
        COMMIT,
        &[
            flags::HELP,
            NET_FLAGS_HELP,
            flags::HELP_TAIL,
            EXIT_CODES_HELP,
        ],
        || flags::parse(args),
        |f| run(f, Env::from_process()).map(|()| 0),
    )
}

const COMMIT: Option<&str> = option_env!("COZE_GIT_COMMIT");

fn run(f: Flags, env: Env) -> Result<()> {
    let client_id = config::client_id(f.client_id.as_deref(), &env)
        .map(|s| s.value)
        .ok_or_else(|| {
            Error::usage(
                "no client ID: pass --client-id or set COZE_CLIENT_ID (the OAuth app's client ID, \
             like 1234….app.coze)",
            )
        })?;
    let api_base = config::api_base(f.base_url.as_deref(), f.region, &env, None).value;
    let http = Http::new(HttpConfig {
        verbose: f.verbose,
        network: f.net.network(&env)?,
        ..HttpConfig::default()
    });
    url::check_transport(&api_base, http.config().network.allow_http)
        .map_err(|e| Error::usage(format!("API base: {e}")))?;
    // A server of one's own may have no OAuth at all (a self-hosted Coze Studio): say
    // so before a person is sent to a browser for nothing.
    if config::region_hint(&api_base).is_none() {
        oauth::check_offered(&http, &api_base)?;
    }
    let record = if f.device {
        device(&http, &f, &api_base, &client_id)?
    } else {
        let www_base = config::www_base(&api_base, f.www_url.as_deref(), &env);
        url::parse(&www_base).map_err(|e| Error::usage(format!("--www-url: {e}")))?;
        let login = Login {
            api_base: &api_base,
            www_base: &www_base,
            client_id: &client_id,
            redirect_uri: &f.redirect_uri,
            workspace_id: f.workspace_id.as_deref(),
            timeout: f.timeout,
            browser: Browser::choose(f.no_browser || f.paste, env.browser.as_deref()),
            paste: f.paste,
            verbose: f.verbose,
        };
        let grant = login::login(&login, &mut io::stdin().lock(), &mut io::stderr())?;
        Record::AuthorizationCode(grant)
    };
    // `coze-auth > grant.json`: a code (or device code) others could read is theirs to
    // exchange first.
    cli::tighten_stdout_file();
    JsonlWriter::new(io::stdout().lock())
        .write(&record)
        .map_err(|e| Error::io("stdout", e))
}

/// The device flow's first half: get a code, tell the person where to enter it.
fn device(http: &Http, f: &Flags, api_base: &str, client_id: &str) -> Result<Record> {
    let now = unix_now();
    let dc = oauth::request_device_code(http, api_base, client_id, f.workspace_id.as_deref(), now)?;
    let sep = if dc.verification_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    coze_core::say!(
        "To log in to Coze, open {} in a browser on any device and enter the code\n\n    \
         {}\n\nor open {}{sep}user_code={}\n\nThe code expires in {} s; coze-token waits \
         for the approval.",
        dc.verification_uri,
        dc.user_code,
        dc.verification_uri,
        url::encode(&dc.user_code),
        dc.expires_at - now
    );
    Ok(Record::DeviceCode(dc))
}
