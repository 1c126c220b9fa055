//! coze-token: grant records in, tokens out; refresh, print, status and exec over a
//! token file. A translator: flags → config → coze-core → exit code.

mod flags;
mod pat;
mod profiles;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use coze_core::auth::jwt::{self, JwtGrant};
use coze_core::auth::oauth::{self, DevicePoll};
use coze_core::auth::renew::{self, Renewer};
use coze_core::auth::secret_file::read_client_secret;
use coze_core::auth::store::TokenStore;
use coze_core::cli;
use coze_core::cli::session::Session;
use coze_core::config::{self, Credentials, Env};
use coze_core::error::EXIT_CODES_HELP;
use coze_core::http::Http;
use coze_core::protocol::{DeviceCode, Record, Token};
use coze_core::support::time::{ago, unix_now};
use coze_core::wire::jsonl::{JsonlWriter, LineReader};
use coze_core::{Error, Result};

use flags::{Command, Flags};

pub const TOOL: &str = "coze-token";

fn main() -> ExitCode {
    cli::main(
        TOOL,
        option_env!("COZE_GIT_COMMIT"),
        &[flags::HELP, EXIT_CODES_HELP],
        || flags::parse(std::env::args_os().skip(1)),
        |f| run(f, &Env::from_process(), &Secrets::from_process()),
    )
}

/// The environment only coze-token reads (service-app and web-app credentials), read
/// once in `main` like `Env`.
#[derive(Default)]
struct Secrets {
    jwt_key_file: Option<PathBuf>,
    jwt_kid: Option<String>,
    /// `COZE_CLIENT_SECRET`: a web app's secret itself.
    client_secret: Option<String>,
}

impl Secrets {
    fn from_process() -> Secrets {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Secrets {
            jwt_key_file: var("COZE_JWT_KEY_FILE").map(PathBuf::from),
            jwt_kid: var("COZE_JWT_KID"),
            client_secret: var("COZE_CLIENT_SECRET"),
        }
    }
}

/// A web app's client secret: `--client-secret-file` (whose absolute path the token
/// records) beats `COZE_CLIENT_SECRET`.
struct ClientSecret {
    secret: String,
    file: Option<PathBuf>,
}

fn client_secret(f: &Flags, secrets: &Secrets) -> Result<Option<ClientSecret>> {
    if let Some(path) = &f.client_secret_file {
        let file = absolute(path)?;
        return Ok(Some(ClientSecret {
            secret: read_client_secret(&file)?,
            file: Some(file),
        }));
    }
    Ok(secrets.client_secret.as_ref().map(|s| {
        coze_core::support::redact::register(s);
        ClientSecret {
            secret: s.clone(),
            file: None,
        }
    }))
}

/// `path` made absolute without resolving symlinks: a key mounted through a symlink
/// that is swapped on rotation (Kubernetes secrets) keeps working.
fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// Runs the command; the exit status is 0, or a child's under exec.
fn run(f: Flags, env: &Env, secrets: &Secrets) -> Result<u8> {
    let http = Http::new(f.api.http_config(env)?);
    let secret = client_secret(&f, secrets)?;
    // The file to write, refresh or remove: COZE_API_TOKEN names none.
    let token_path = || -> Result<PathBuf> {
        let chosen = f.api.token_file_choice(env)?;
        Ok(chosen.path().map(Path::to_path_buf).unwrap_or_default())
    };
    let api_base = config::api_base(f.api.base_url.as_deref(), f.api.region, env, None).value;
    let renewer = Renewer {
        http: &http,
        api_base: &api_base,
        client_secret: secret.as_ref().map(|s| s.secret.as_str()),
    };
    let min_ttl = f.min_ttl.as_secs() as i64;
    let save = || -> Result<Option<TokenStore>> {
        Ok(match &f.save {
            Some(Some(p)) => Some(TokenStore::new(p)),
            Some(None) => Some(TokenStore::new(token_path()?)),
            None => None,
        })
    };
    match &f.command {
        Command::Grants => grants(&http, &f, &renewer, secret.as_ref(), save()?.as_ref())?,
        Command::Jwt => {
            let grant = jwt_grant(&f, env, secrets)?;
            let token = oauth::mint(&http, &api_base, &grant, unix_now())?;
            emit(
                token,
                save()?.as_ref(),
                &mut JsonlWriter::new(io::stdout().lock()),
            )?;
        }
        Command::Pat => {
            let token = pat::read(&f, &api_base)?;
            emit(
                token,
                save()?.as_ref(),
                &mut JsonlWriter::new(io::stdout().lock()),
            )?;
        }
        Command::Refresh => {
            let chosen = f.api.token_file_choice(env)?;
            let store = TokenStore::new(chosen.path().map(Path::to_path_buf).unwrap_or_default());
            let t = if f.force {
                renewer.renew_now(&store)
            } else {
                renewer.fresh(&store, min_ttl)
            }
            .map_err(|e| chosen.name_in(e))?;
            coze_core::say!(
                "{TOOL}: {} refreshed; expires {}",
                store.path().display(),
                describe_expiry(&t)
            );
        }
        Command::Print => {
            let token = current_token(&f, env, &renewer, min_ttl)?;
            let mut out = io::stdout().lock();
            let line = if f.header {
                format!("Authorization: Bearer {token}\n")
            } else {
                format!("{token}\n")
            };
            out.write_all(line.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("stdout", e))?;
        }
        Command::Status => {
            let credentials = f.api.credentials(env)?;
            // The live check first, so that its outcome joins the one record.
            let check = if f.check {
                Some(Session::open(&f.api, env).and_then(|s| s.client().users_me()))
            } else {
                None
            };
            status(&credentials, check).map_err(|e| credentials.name_in(e))?
        }
        Command::Whoami => whoami(&f, env)?,
        Command::Exec(argv) => {
            let token = current_token(&f, env, &renewer, min_ttl)?;
            return Ok(exec(argv, &token));
        }
        Command::Profiles => profiles::list(&f, env)?,
        Command::Logout => profiles::logout(&f.api.token_file_choice(env)?, env)?,
    }
    Ok(0)
}

/// The bare token for print/exec: the credentials every tool would use, a token file's
/// refreshed if it expires within `min_ttl`.
fn current_token(f: &Flags, env: &Env, renewer: &Renewer<'_>, min_ttl: i64) -> Result<String> {
    let credentials = f.api.credentials(env)?;
    match &credentials {
        Credentials::Static(t) => Ok(t.clone()),
        Credentials::File { path, .. } => renewer
            .fresh(&TokenStore::new(path), min_ttl)
            .map(|t| t.access_token)
            .map_err(|e| credentials.name_in(e)),
    }
}

/// The service app's grant from flags and environment: every part is required.
fn jwt_grant(f: &Flags, env: &Env, secrets: &Secrets) -> Result<JwtGrant> {
    let missing = |flag: &str, var: &str| Error::usage(format!("--jwt needs {flag} (or {var})"));
    let client_id = config::client_id(f.client_id.as_deref(), env)
        .map(|s| s.value)
        .ok_or_else(|| missing("--client-id ID", "COZE_CLIENT_ID"))?;
    let key = f
        .key
        .clone()
        .or_else(|| secrets.jwt_key_file.clone())
        .ok_or_else(|| missing("--key PATH", "COZE_JWT_KEY_FILE"))?;
    let kid = f
        .kid
        .clone()
        .or_else(|| secrets.jwt_kid.clone())
        .ok_or_else(|| missing("--kid KEY_ID", "COZE_JWT_KID"))?;
    Ok(JwtGrant {
        client_id,
        key_file: absolute(&key)?,
        kid,
        ttl: f.ttl.unwrap_or(jwt::DEFAULT_TTL),
        session_name: f.session_name.clone(),
    })
}

/// Saves `token` into `save`, or writes it as a record on stdout.
fn emit(
    token: Token,
    save: Option<&TokenStore>,
    out: &mut JsonlWriter<io::StdoutLock<'_>>,
) -> Result<()> {
    match save {
        Some(store) => {
            store.save(&token)?;
            if token.expires_at == 0 {
                coze_core::say!(
                    "{TOOL}: saved to {} (no expiry recorded: used until the server refuses it)",
                    store.path().display()
                );
            } else {
                coze_core::say!(
                    "{TOOL}: saved to {}; expires {}",
                    store.path().display(),
                    describe_expiry(&token)
                );
            }
            Ok(())
        }
        None => {
            cli::tighten_stdout_file();
            out.write(&Record::Token(token))
                .map_err(|e| Error::io("stdout", e))
        }
    }
}

/// Reads grant records from stdin and writes one token for each.
fn grants(
    http: &Http,
    f: &Flags,
    renewer: &Renewer<'_>,
    secret: Option<&ClientSecret>,
    save: Option<&TokenStore>,
) -> Result<()> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        coze_core::say!(
            "{TOOL}: reading grant records from the terminal (pipe coze-auth into me; Ctrl-D ends)"
        );
    }
    // A grant record is well under 1 KiB; stdin that is not lines of records (a binary,
    // `/dev/zero`) ends at the first line over 1 MiB.
    let mut reader = LineReader::with_max(stdin.lock(), 1 << 20);
    let mut out = JsonlWriter::new(io::stdout().lock());
    let mut seen = 0;
    while let Some((line_no, text)) = reader.next_line().map_err(|e| Error::BadInput {
        line: None,
        message: e.to_string(),
    })? {
        if text.trim().is_empty() {
            continue;
        }
        seen += 1;
        let mut token = match Record::from_line(line_no, &text)? {
            Record::AuthorizationCode(grant) => {
                oauth::exchange_code(http, &grant, renewer.client_secret, unix_now())?
            }
            Record::DeviceCode(grant) => poll_device(http, &grant, f.timeout)?,
            Record::Token(old) => renewer.renew(&old)?,
            other => {
                return Err(Error::input(
                    line_no,
                    format!("a {} record is not a grant (expected authorization_code, device_code or token)", other.type_name()),
                ))
            }
        };
        // The path (never the secret) lets every tool refresh a web app's token.
        if let Some(file) = secret.and_then(|s| s.file.as_ref()) {
            token.extra.insert(
                "client_secret_file".into(),
                file.to_string_lossy().into_owned().into(),
            );
        }
        emit(token, save, &mut out)?;
    }
    if seen == 0 {
        return Err(Error::BadInput {
            line: None,
            message: "no grant record on stdin (pipe coze-auth into coze-token)".into(),
        });
    }
    Ok(())
}

/// Polls a device code until approved, denied or expired (the Coze API docs,
/// `oauth_device_code`; coze-py's `DeviceOAuthApp.get_access_token`).
fn poll_device(http: &Http, grant: &DeviceCode, timeout: Option<Duration>) -> Result<Token> {
    let started = Instant::now();
    let mut interval = Duration::from_secs(grant.interval.max(1));
    let countdown = io::stderr().is_terminal();
    coze_core::say!(
        "{TOOL}: waiting for approval of code {} at {}",
        grant.user_code,
        grant.verification_uri
    );
    loop {
        let now = unix_now();
        if now >= grant.expires_at {
            return Err(Error::Auth(format!(
                "the device code expired before code {} was approved: run coze-auth --device again",
                grant.user_code
            )));
        }
        if let Some(limit) = timeout {
            if started.elapsed() >= limit {
                return Err(Error::Auth(format!(
                    "no approval of code {} within {} s",
                    grant.user_code,
                    limit.as_secs()
                )));
            }
        }
        match oauth::poll_device(http, grant, now)? {
            DevicePoll::Token(t) => {
                if countdown {
                    coze_core::say!("");
                }
                return Ok(t);
            }
            DevicePoll::Pending => {}
            // RFC 8628 §3.5: every slow_down adds 5 seconds for the rest of the polling.
            DevicePoll::SlowDown => interval += Duration::from_secs(5),
        }
        if countdown {
            let left = grant.expires_at - unix_now();
            eprint!(
                "\r{TOOL}: code {} — {}:{:02} left ",
                coze_core::support::say::visible(&grant.user_code),
                left.max(0) / 60,
                left.max(0) % 60
            );
        }
        std::thread::sleep(interval);
    }
}

fn describe_expiry(t: &Token) -> String {
    if t.expires_at == 0 {
        return "an unknown time (no expiry recorded)".into();
    }
    ago(t.expires_at, unix_now())
}

/// A field of the server's user as a string: ids may come as JSON numbers, which lose
/// digits past 2^53 in many readers.
fn text(user: &serde_json::Value, key: &str) -> String {
    match user.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Writes the `user` record of the token's owner (`GET /v1/users/me`), through the
/// session every API tool opens: the token is refreshed first when near its expiry,
/// and an authentication error names the credentials.
fn whoami(f: &Flags, env: &Env) -> Result<()> {
    let session = Session::open(&f.api, env)?;
    let user = session.client().users_me()?;
    let record = serde_json::json!({
        "type": "user",
        "user_id": text(&user, "user_id"),
        "user_name": text(&user, "user_name"),
        "nick_name": text(&user, "nick_name"),
        "avatar_url": text(&user, "avatar_url"),
        "base_url": session.base,
    });
    JsonlWriter::new(io::stdout().lock())
        .write(&record)
        .map_err(|e| Error::io("stdout", e))?;
    if io::stderr().is_terminal() {
        let name = [text(&user, "nick_name"), text(&user, "user_name")]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| "(no name)".into());
        coze_core::say!(
            "{TOOL}: {} (user_id {}) at {}",
            name,
            text(&user, "user_id"),
            session.base
        );
    }
    Ok(())
}

/// The `check` field of `status --check`: what the server said of the token.
fn check_field(check: &Result<serde_json::Value>) -> serde_json::Value {
    match check {
        Ok(_) => serde_json::json!({"ok": true}),
        Err(e) => {
            let mut field = serde_json::json!({"ok": false});
            match e.api() {
                Some(api) => {
                    field["code"] = match api.coze_code() {
                        Some(c) => c.into(),
                        None => api.status.into(),
                    };
                    field["msg"] = coze_core::support::redact::scrub(&api.msg).into();
                    if let Some(logid) = &api.logid {
                        field["logid"] = logid.clone().into();
                    }
                }
                None => {
                    field["msg"] = coze_core::support::redact::scrub(&e.to_string()).into();
                }
            }
            field
        }
    }
}

/// Prints what the credentials in use hold; exit 0 when they can be used, 4 when not.
/// They are resolved exactly as the API tools resolve them. With `check` (the answer
/// to `GET /v1/users/me`), the record says what the server made of the token, and a
/// failed check is the exit status (4 refused, 5 unreachable, 1 no such endpoint).
fn status(credentials: &Credentials, check: Option<Result<serde_json::Value>>) -> Result<()> {
    let described = credentials.describe();
    let finish = |record: &mut serde_json::Value| -> Result<()> {
        if let Some(c) = &check {
            record["check"] = check_field(c);
        }
        JsonlWriter::new(io::stdout().lock())
            .write(&*record)
            .map_err(|e| Error::io("stdout", e))
    };
    // A failed check is the outcome even of usable credentials.
    fn checked(check: Option<Result<serde_json::Value>>, usable: Result<()>) -> Result<()> {
        match check {
            Some(Err(e)) => Err(e.context("checking the token with GET /v1/users/me")),
            _ => usable,
        }
    }
    let path = match credentials {
        Credentials::Static(_) => {
            let mut record = serde_json::json!({
                "type": "token_status",
                "credentials": described,
                "usable": true,
                "refreshable": false,
            });
            finish(&mut record)?;
            coze_core::say!(
                "{TOOL}: {described}: a bare token or PAT, used as is and never refreshed \
                 (its expiry is unknown here)"
            );
            return checked(check, Ok(()));
        }
        Credentials::File { path, .. } => path,
    };
    let store = TokenStore::new(path);
    let t = store.load()?;
    let now = unix_now();
    let ttl = t.ttl(now);
    let refreshable = renew::renewable(&t);
    let usable = ttl > 0 || refreshable;
    let mut record = serde_json::json!({
        "type": "token_status",
        "credentials": described,
        "path": path.display().to_string(),
        "usable": usable,
        "expires_at": t.expires_at,
        "expires_in": if t.expires_at == 0 { serde_json::Value::Null } else { ttl.into() },
        "refreshable": refreshable,
        "client_id": t.client_id,
        "base_url": t.base_url,
    });
    finish(&mut record)?;
    let state = if t.expires_at == 0 {
        "no expiry recorded (a personal access token?)".to_owned()
    } else if ttl > 0 {
        format!("valid, expires {}", describe_expiry(&t))
    } else {
        format!("expired {}", describe_expiry(&t))
    };
    let renew = if refreshable {
        "refreshable"
    } else {
        "not refreshable"
    };
    coze_core::say!(
        "{TOOL}: {described}: {state}; {renew}; {}",
        t.base_url.as_deref().unwrap_or("no base_url")
    );
    checked(
        check,
        if usable {
            Ok(())
        } else {
            Err(Error::Auth(format!(
                "{} holds an expired token that cannot be refreshed: log in again",
                path.display()
            )))
        },
    )
}

/// Becomes `argv` (exec(2)) with `COZE_API_TOKEN` in its environment only, never in
/// its argv: a signal sent to coze-token then reaches the program itself (Ctrl-C, a
/// supervisor's SIGTERM), and its exit status is the caller's without a relay. Returns
/// only when the program cannot run: 127 when it is not found, 126 when it cannot be
/// executed (as shells report them), after the one error line.
fn exec(argv: &[std::ffi::OsString], token: &str) -> u8 {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("COZE_API_TOKEN", token)
        // Either would beat COZE_API_TOKEN in a coze tool the child runs.
        .env_remove("COZE_TOKEN_FILE")
        .env_remove("COZE_PROFILE")
        .exec();
    let code = if err.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    cli::report(
        TOOL,
        &Error::io(PathBuf::from(&argv[0]), err).context("exec"),
    );
    code
}
