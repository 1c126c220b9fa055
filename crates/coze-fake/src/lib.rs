//! coze-fake: a faithful local stand-in for the Coze HTTP API (OAuth PKCE, device, web
//! (client secret) and JWT service-app flows, conversations, messages, Chat v3
//! streaming and polled with local tools (submit_tool_outputs), files, workflows and
//! chatflows, workspaces and bots), written from the Coze API docs
//! and the official SDKs (coze-py, coze-go, coze-js) independently of coze-core, so that
//! a misreading of the API cannot hide in code both sides share. Tests start it
//! in-process with [`Fake::start`]; scripts run the `coze-fake` binary. Both are steered
//! through the `/_fake/` admin endpoints.

mod admin;
mod bots;
mod chat;
mod conversations;
mod faults;
mod files;
mod http;
mod jwt;
mod multipart;
mod oauth;
mod objects;
mod pages;
mod router;
mod state;
mod tls;
mod util;
mod workflows;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use admin::ENDPOINTS as ADMIN_ENDPOINTS;
pub use chat::{answer_text, follow_ups};
pub use faults::TYPES as FAULT_TYPES;

/// Which server the fake imitates: coze.cn / coze.com, or a self-hosted Coze Studio,
/// which speaks a dialect of the same API (PAT only, other stream endings and error
/// shapes, its logid in `X-Log-ID`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    #[default]
    Coze,
    Studio,
}

impl Dialect {
    /// The name used on the command line and in the ready line.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Coze => "coze",
            Dialect::Studio => "studio",
        }
    }

    /// The response header that carries the logid.
    pub fn logid_header(self) -> &'static str {
        match self {
            Dialect::Coze => "x-tt-logid",
            Dialect::Studio => "X-Log-ID",
        }
    }
}

/// Serving HTTPS instead of plain HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsOptions {
    /// A certificate chain and its private key, PEM files (`--tls-cert`, `--tls-key`).
    Files { cert: PathBuf, key: PathBuf },
    /// A throwaway CA made at start and a certificate it signs for 127.0.0.1, ::1 and
    /// localhost; the CA's certificate (PEM) is written to `ca_out` when given
    /// (`--tls-ca-out`), for clients to trust.
    Generate { ca_out: Option<PathBuf> },
}

/// How the fake behaves; every field has a command-line flag in the binary.
#[derive(Clone, Debug)]
pub struct Options {
    /// Listen address; must be loopback. Port 0 picks a free port.
    pub addr: String,
    /// Skip the consent page: authorize redirects straight back with a code.
    pub auto_approve: bool,
    /// Access token lifetime in seconds.
    pub token_ttl: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl: u64,
    /// Device flow: minimum seconds between polls (`interval`).
    pub device_interval: u64,
    /// Device flow: device code lifetime in seconds (`expires_in`).
    pub device_ttl: u64,
    /// How long each chat takes to start answering (ms).
    pub chat_latency_ms: u64,
    /// Pause between answer deltas (ms).
    pub delta_delay_ms: u64,
    /// Bearer tokens always accepted (e.g. `pat_...` personal access tokens).
    pub static_tokens: Vec<String>,
    /// PEM public key (`BEGIN PUBLIC KEY`, SPKI) that JWT grants must be signed for.
    /// Without one every JWT grant is refused.
    pub jwt_public_key: Option<String>,
    /// If set, a JWT's header `kid` must equal it.
    pub jwt_kid: Option<String>,
    /// Web (confidential) apps: `(client_id, secret)`. Their code exchange and refresh
    /// need `Authorization: Bearer <secret>`; their authorize needs no PKCE.
    pub client_secrets: Vec<(String, String)>,
    /// Log one line per request to stderr.
    pub verbose: bool,
    /// The server imitated (`--dialect`).
    pub dialect: Dialect,
    /// Serve HTTPS (`--tls-cert`/`--tls-key`, or `--tls-ca-out`); None: plain HTTP.
    pub tls: Option<TlsOptions>,
    /// The upload limit in bytes (`--max-upload-bytes`): of a file's content on coze,
    /// of the whole request body on studio. None: the real servers' limits, 512 MiB of
    /// file content (the `upload_files` docs page) and Studio's 200 MiB request body.
    pub max_upload_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: "127.0.0.1:0".into(),
            auto_approve: false,
            token_ttl: 900,
            refresh_ttl: 30 * 86_400,
            device_interval: 5,
            device_ttl: 300,
            chat_latency_ms: 0,
            delta_delay_ms: 0,
            static_tokens: Vec::new(),
            jwt_public_key: None,
            jwt_kid: None,
            client_secrets: Vec::new(),
            verbose: false,
            dialect: Dialect::Coze,
            tls: None,
            max_upload_bytes: None,
        }
    }
}

/// Shared by every connection thread: options, state, and the server's stop machinery.
pub(crate) struct App {
    pub opts: Options,
    pub base_url: String,
    /// `opts.jwt_public_key` as the PKCS#1 RSAPublicKey DER ring verifies with.
    pub jwt_key: Option<Vec<u8>>,
    pub start: Instant,
    pub state: Mutex<state::State>,
    pub server: Arc<http::Server>,
}

impl App {
    pub fn lock(&self) -> MutexGuard<'_, state::State> {
        // A panicking handler must not take the whole fake down with a poisoned lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleep in small slices so that stopping the fake is never held up by a long delay.
    pub fn sleep_ms(&self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        while !self.server.stopping() {
            let now = Instant::now();
            if now >= end {
                return;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

/// A running fake server. Dropping it stops the server and joins its threads.
pub struct Fake {
    app: Arc<App>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    /// The generated CA's certificate (PEM), when serving HTTPS with one.
    ca_pem: Option<String>,
}

impl Fake {
    /// Bind `opts.addr` (loopback only) and start serving on background threads.
    pub fn start(opts: Options) -> io::Result<Fake> {
        let addr = opts
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing non-loopback address {addr}: the fake is for local tests only"),
            ));
        }
        let jwt_key = match &opts.jwt_public_key {
            Some(pem) => Some(jwt::public_key_der(pem).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("JWT public key: {e}"))
            })?),
            None => None,
        };
        // Built before binding, so a bad certificate file fails the start at once.
        let tls = opts.tls.as_ref().map(tls::setup).transpose()?;
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        // Written only once the fake is sure to start, and before anyone is told it did.
        if let (Some(TlsOptions::Generate { ca_out: Some(path) }), Some(t)) = (&opts.tls, &tls) {
            if let Some(pem) = &t.ca_pem {
                tls::write_atomically(path, pem)?;
            }
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (tls_config, ca_pem) = match tls {
            Some(t) => (Some(t.config), t.ca_pem),
            None => (None, None),
        };
        let server = http::Server::new(opts.dialect.logid_header(), tls_config, opts.verbose);
        let app = Arc::new(App {
            base_url: format!("{scheme}://{addr}"),
            jwt_key,
            opts,
            start: Instant::now(),
            state: Mutex::new(state::State::new()),
            server: server.clone(),
        });
        let handler: Arc<dyn http::Handler> = Arc::new(router::Router(app.clone()));
        let accept = std::thread::Builder::new()
            .name("coze-fake-accept".into())
            .spawn(move || http::serve(listener, server, handler))?;
        Ok(Fake {
            app,
            addr,
            accept: Some(accept),
            ca_pem,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving TLS): the API base and also the
    /// web (authorize) base.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    /// The certificate (PEM) of the CA generated for [`TlsOptions::Generate`], for
    /// clients to trust; None when serving plain HTTP or the user's certificate files.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters of `GET /_fake/stats`.
    pub fn stats(&self) -> Value {
        self.app.lock().stats.to_json()
    }

    /// The request log of `GET /_fake/log`.
    pub fn log(&self) -> Value {
        Value::Array(self.app.lock().log.clone())
    }

    /// Queue `fault` (an object with `"type"`, see `--help`) for the next `count` requests
    /// to `endpoint` (e.g. `"chat"`, `"token"`, `"*"`).
    pub fn push_fault(&self, endpoint: &str, fault: Value, count: u32) {
        faults::push(&mut self.app.lock(), endpoint, fault, count);
    }

    /// Set the bot's behaviour, as `POST /_fake/bot` (`{}` resets to defaults).
    ///
    /// # Panics
    /// On a `tools` setting `POST /_fake/bot` would refuse (a test's own mistake),
    /// naming the field.
    pub fn set_bot(&self, bot: Value) {
        match chat::Bot::from_json(&bot) {
            Ok(b) => self.app.lock().bot = b,
            Err(e) => panic!("coze-fake: bad bot settings: {e}"),
        }
    }

    /// Every accepted `submit_tool_outputs`, oldest first, as `GET /_fake/tool_outputs`
    /// lists them: `[{conversation_id, chat_id, round, stream, tool_outputs}]`.
    pub fn tool_outputs(&self) -> Value {
        Value::Array(self.app.lock().tool_outputs.clone())
    }

    /// The uploaded files, as `GET /_fake/files` lists them.
    pub fn files(&self) -> Value {
        files::admin_list(&self.app)
    }

    /// Set one workflow's behaviour, as `POST /_fake/workflow` (see `--help`); Err names
    /// a field that is wrong.
    pub fn set_workflow(&self, spec: Value) -> Result<(), String> {
        workflows::admin_set(&self.app, &spec)
    }

    /// The workflows set and every run, as `GET /_fake/workflow` shows them.
    pub fn workflows(&self) -> Value {
        self.app.lock().wf.to_json()
    }

    /// Set the workspaces and bots the account sees, as `POST /_fake/bots` (see
    /// `--help`); Err names a field that is wrong.
    pub fn set_bots(&self, settings: Value) -> Result<(), String> {
        self.app.lock().bots.set(&settings)
    }

    /// The workspaces, bots and denied permissions, as `GET /_fake/bots` shows them.
    pub fn bots(&self) -> Value {
        self.app.lock().bots.to_json()
    }

    /// As `POST /_fake/reset`: clear faults, counters, log, bot settings, workflows and
    /// their runs.
    pub fn reset(&self) {
        admin::reset(&self.app);
    }

    /// As `POST /_fake/expire`: every issued access token expires now.
    pub fn expire_tokens(&self) {
        admin::expire(&self.app);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.app.server.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then closes every connection and joins its threads.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.app.server.close_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
