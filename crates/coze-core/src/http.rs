//! HTTP for the coze tools: one agent per route and process, every default a decision.
//!
//! - Status codes are not errors (`http_status_as_error(false)`): the body says what
//!   went wrong, in the `{code,msg,detail:{logid}}` envelope or an OAuth error shape,
//!   and both become one [`ApiError`] (decoding is pure and unit-tested below). The
//!   logid comes from the body, else the `x-tt-logid` header (coze.cn, coze.com), else
//!   `X-Log-ID` (a self-hosted Coze Studio).
//! - A connect timeout and an idle timeout (no byte for that long), never a total cap:
//!   an answer may stream for minutes.
//! - Proxies as `proxy` decides them, per request (`NO_PROXY` can exempt one host and
//!   not another): one agent per route, built on first use, so connections are reused
//!   (keep-alive) and nothing reads the environment behind our back (ureq would).
//!   Redirects are not followed (the API never redirects, and a redirect must not
//!   carry a bearer).
//! - TLS trusts what `tls` loads (the system store, `SSL_CERT_FILE`, `SSL_CERT_DIR`,
//!   `--cacert`), read once on the first HTTPS request. A certificate the trust does not
//!   cover is `Error::Tls`: never retried, and its message lists the trust sources and
//!   how to add a CA.
//! - Plain `http://` only to loopback, unless the user opted in (`--allow-http`); then
//!   one warning per process (see `url::check_transport`).
//! - Retries with exponential backoff and full jitter for connection errors, 429, 5xx
//!   and 4013/4020, honouring `Retry-After`. Only whole requests are retried: once a
//!   stream has been handed to the caller, retrying is the caller's decision (it knows
//!   whether anything was emitted).
//! - 4016 (another chat is running in the conversation) on a request that starts a chat
//!   is not a failure of the network or the server but a wait for the other chat, which
//!   may take minutes: it has its own budget, a time (`busy_wait`, `--busy-wait`) rather
//!   than the `--retries` count, with one stderr line saying why the run waits.
//!
//! Not here: what the endpoints mean (`api`, `oauth`), tokens (`token_store`).

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::error::{ApiCode, ApiError, Error, Result};
use crate::pace::Pacer;
use crate::proxy::{ProxySettings, Route};
use crate::support::{redact, url};
use crate::tls::{Trust, TrustSettings, ADD_A_CA};

/// Where requests may go and what they trust, resolved once from flags and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub proxy: ProxySettings,
    pub trust: TrustSettings,
    /// Plain `http://` to a host that is not loopback (`--allow-http`, `COZE_ALLOW_HTTP`).
    pub allow_http: bool,
}

/// The HTTP decisions a user can change (--help's CONNECTION and NETWORK flags).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// 0: no limit.
    pub connect_timeout: Duration,
    /// No byte for this long ends a request or a stream (exit 5); 0: no limit.
    pub idle_timeout: Duration,
    /// Attempts after the first for transient failures.
    pub retries: u32,
    /// First backoff step; doubled each attempt, capped at `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A `Retry-After` longer than this is not waited out: the error is reported.
    pub max_retry_after: Duration,
    /// How long a chat waits for its conversation while another chat runs in it (4016),
    /// from the first refusal (`--busy-wait`).
    pub busy_wait: Duration,
    /// `-v`: one line per request and response on stderr, secrets redacted.
    pub verbose: bool,
    /// Requests per second across all threads (`--rate`); None: as fast as answered.
    pub rate: Option<f64>,
    /// Proxies, trust and the plain-http opt-in.
    pub network: Network,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            retries: 4,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            // An answer often streams for a minute or more; two cover most of them.
            busy_wait: Duration::from_secs(120),
            verbose: false,
            rate: None,
            network: Network::default(),
        }
    }
}

/// The user agent every request carries.
pub fn user_agent() -> String {
    format!("coze-tools/{}", env!("CARGO_PKG_VERSION"))
}

/// What to send. Bodies are JSON; a bearer is optional (the token endpoint has none
/// for PKCE, or carries a client secret / JWT for other app types).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub bearer: Option<&'a str>,
    pub body: Option<&'a Value>,
    /// Wait out 4016 (conversation busy) for `HttpConfig::busy_wait`: only for creating
    /// a chat.
    pub retry_busy: bool,
    /// Never resend this request as is: it carries something single-use (a JWT), so
    /// the caller retries with a new one.
    pub once: bool,
}

impl<'a> Request<'a> {
    pub fn post(url: impl Into<String>, body: &'a Value) -> Self {
        Request {
            method: "POST",
            url: url.into(),
            bearer: None,
            body: Some(body),
            retry_busy: false,
            once: false,
        }
    }
    pub fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }
    pub fn retry_busy(mut self, yes: bool) -> Self {
        self.retry_busy = yes;
        self
    }
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }
}

/// How to read a response body's failure shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1`, `/v3`: `{code,msg,data,detail:{logid}}`.
    Envelope,
    /// The OAuth endpoints: a bare object, failures as `error_code`/`error_message` or
    /// `error`/`error_description`.
    OAuth,
}

/// An event stream that is ready to read, with the logid of its response.
pub struct Stream {
    pub reader: BufReader<Box<dyn Read + Send>>,
    pub logid: Option<String>,
}

/// An agent serves one route: direct, or through one proxy; with or without TLS trust.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AgentKey {
    proxy: Option<String>,
    tls: bool,
}

/// One HTTP client per process: connections are reused across requests (keep-alive).
pub struct Http {
    config: HttpConfig,
    /// Built on first use, one per route (see [`AgentKey`]).
    agents: Mutex<Vec<(AgentKey, ureq::Agent)>>,
    /// The trusted CAs, loaded on the first HTTPS request; the error is a usage error's
    /// message (an unreadable `--cacert`).
    trust: OnceLock<std::result::Result<Arc<Trust>, String>>,
    /// The one warning about plain http to a remote host has been printed.
    warned_plain: AtomicBool,
    /// Shared by every thread: `--rate` and the pool-wide pause after a 429.
    pacer: Pacer,
    /// Requests sent again after a transient failure (for the batch summary).
    retried: AtomicU64,
    /// The run is ending (its output has no reader): no more waiting for a busy
    /// conversation.
    stopped: AtomicBool,
}

impl Http {
    pub fn new(config: HttpConfig) -> Http {
        let pacer = Pacer::new(config.rate);
        Http {
            config,
            agents: Mutex::new(Vec::new()),
            trust: OnceLock::new(),
            warned_plain: AtomicBool::new(false),
            pacer,
            retried: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// The run is ending: a wait for a busy conversation (which may last minutes) ends
    /// now, with the 4016 it was waiting out. Retries of transient failures (seconds,
    /// and the cancels sent as the run ends are among them) go on.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Sleeps `wait`, in short steps so that [`stop`](Self::stop) ends it; false if it
    /// did.
    fn pause(&self, wait: Duration) -> bool {
        let until = std::time::Instant::now() + wait;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return false;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// How many requests were sent again after a transient failure.
    pub fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// How many times the whole pool paused for the server's rate limit.
    pub fn rate_pauses(&self) -> u64 {
        self.pacer.pauses()
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The route a request to `url` takes (for `-v`, doctor and messages).
    pub fn route(&self, url: &str) -> Result<Route> {
        self.config.network.proxy.route(url)
    }

    /// The trusted CAs, loaded now if they were not yet.
    pub fn trust(&self) -> Result<Arc<Trust>> {
        let loaded = self.trust.get_or_init(|| {
            let mut warn = |w: &str| crate::support::say::warn(w);
            let trust = self.config.network.trust.load(&mut warn);
            if let Ok(t) = &trust {
                if self.config.verbose {
                    crate::say!("* trusted CAs: {}", t.describe());
                }
            }
            trust.map(Arc::new).map_err(|e| e.to_string())
        });
        loaded.clone().map_err(Error::Usage)
    }

    /// The agent for `route`, built the first time it is needed.
    fn agent(&self, route: &Route, tls: bool, target: &str) -> Result<ureq::Agent> {
        let key = AgentKey {
            proxy: route.proxy().map(|p| p.shown()),
            tls,
        };
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, agent)) = agents.iter().find(|(k, _)| *k == key) {
            return Ok(agent.clone());
        }
        let proxy = route.proxy().map(|p| p.to_ureq()).transpose()?;
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(limit(self.config.connect_timeout))
            .timeout_per_read(limit(self.config.idle_timeout))
            .timeout_per_write(limit(self.config.idle_timeout))
            .max_redirects(0)
            // Keep a connection per job of a `--jobs` batch (ureq keeps 3 per host by
            // default, so a pool of 4 or more jobs would reconnect for most chats).
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .user_agent(user_agent())
            // Explicitly: ureq would otherwise read the proxy variables itself.
            .proxy(proxy);
        if tls {
            let trust = self.trust()?;
            builder = builder.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(trust.root_certs())
                    .build(),
            );
        }
        if self.config.verbose {
            let host = url::parse(target).map(|p| p.host).unwrap_or_default();
            crate::say!("* {host}: {route}");
        }
        let agent = builder.build().new_agent();
        agents.push((key, agent.clone()));
        Ok(agent)
    }

    /// Sends `req` and decodes its JSON answer in `dialect`, retrying transient failures.
    pub fn json(&self, req: &Request<'_>, dialect: Dialect) -> Result<Value> {
        self.json_with_logid(req, dialect).map(|(v, _)| v)
    }

    /// [`json`](Self::json), and the logid of the answer (from the body or a header).
    pub fn json_with_logid(
        &self,
        req: &Request<'_>,
        dialect: Dialect,
    ) -> Result<(Value, Option<String>)> {
        self.with_retries(req, |resp| {
            let (status, logid, retry_after) = head_of(&resp);
            let mut body = Vec::new();
            resp.into_body()
                .into_reader()
                .read_to_end(&mut body)
                .map_err(|e| self.network_error(&req.url, &e.into()))?;
            self.log_response(status, &logid, body.len());
            let value =
                decode(status, logid.clone(), retry_after, &body, dialect).map_err(Error::Api)?;
            let logid = body_logid(&value).or(logid);
            Ok((value, logid))
        })
    }

    /// Sends `req`, expecting `text/event-stream`. A JSON answer is the API's error
    /// (failures before the stream starts come as `{code,msg}`).
    pub fn stream(&self, req: &Request<'_>) -> Result<Stream> {
        self.with_retries(req, |resp| {
            let (status, logid, retry_after) = head_of(&resp);
            let content_type = header(&resp, "content-type")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if status == 200 && content_type.starts_with("text/event-stream") {
                self.log_response(status, &logid, 0);
                let reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
                return Ok(Stream {
                    reader: BufReader::with_capacity(64 * 1024, reader),
                    logid,
                });
            }
            let mut body = Vec::new();
            resp.into_body()
                .into_reader()
                .take(1 << 20)
                .read_to_end(&mut body)
                .map_err(|e| self.network_error(&req.url, &e.into()))?;
            self.log_response(status, &logid, body.len());
            match decode(status, logid.clone(), retry_after, &body, Dialect::Envelope) {
                Err(api) => Err(Error::Api(api)),
                Ok(_) => Err(Error::Api(ApiError {
                    status,
                    code: ApiCode::Http,
                    msg: format!("expected an event stream, got {content_type:?}"),
                    logid,
                    retry_after: None,
                })),
            }
        })
    }

    /// One GET with no retries, for `coze-auth doctor`: the status and the `Date`
    /// header of whatever `url` answers.
    pub fn probe(&self, url: &str) -> Result<(u16, Option<String>)> {
        let req = Request {
            method: "GET",
            url: url.to_owned(),
            bearer: None,
            body: None,
            retry_busy: false,
            once: true,
        };
        self.check(&req.url)?;
        let resp = self.send_once(&req)?;
        let date = header(&resp, "date");
        Ok((resp.status().as_u16(), date))
    }

    /// Whether `url` may be sent at all; warns once about plain http to a remote host.
    fn check(&self, url: &str) -> Result<()> {
        let allow = self.config.network.allow_http;
        url::check_transport(url, allow).map_err(Error::Usage)?;
        if url::is_plain_remote(url) && !self.warned_plain.swap(true, Ordering::Relaxed) {
            let host = url::parse(url).map(|p| p.host).unwrap_or_default();
            crate::support::say::warn(&format!(
                "plain http:// to {host} (--allow-http): the token crosses the network \
                 unencrypted"
            ));
        }
        Ok(())
    }

    /// Runs `handle` on the response of `req`, retrying what is worth retrying.
    fn with_retries<T>(
        &self,
        req: &Request<'_>,
        mut handle: impl FnMut(ureq::http::Response<ureq::Body>) -> Result<T>,
    ) -> Result<T> {
        self.check(&req.url)?;
        let mut attempt = 0u32;
        // Set by the first 4016: when the wait began and how many waits followed.
        let mut busy: Option<(std::time::Instant, u32)> = None;
        loop {
            let outcome = self.send_once(req).and_then(&mut handle);
            let err = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if req.retry_busy && err.api().is_some_and(ApiError::is_busy) {
                let bound = self.config.busy_wait;
                let (since, waits) = busy.get_or_insert_with(|| {
                    if !bound.is_zero() {
                        crate::say!(
                            "{}: {} is busy with another chat: waiting up to {} (--busy-wait)",
                            crate::support::say::tool(),
                            busy_conversation(&req.url),
                            in_words(bound)
                        );
                    }
                    (std::time::Instant::now(), 0)
                });
                let Some(wait) = busy_step(bound, since.elapsed(), *waits) else {
                    return Err(err.context(busy_gave_up(&req.url, bound)));
                };
                if self.config.verbose {
                    crate::say!(
                        "* {}; asking again in {} ms",
                        redact::scrub(&err.to_string()),
                        wait.as_millis()
                    );
                }
                if !self.pause(wait) {
                    return Err(err);
                }
                *waits += 1;
                self.retried.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let wait = match self.retry_wait(&err, attempt) {
                Some(wait) if attempt < self.config.retries && !req.once => wait,
                _ => return Err(err),
            };
            if self.config.verbose {
                crate::say!(
                    "* {}; retrying in {} ms",
                    redact::scrub(&err.to_string()),
                    wait.as_millis()
                );
            }
            if err.api().is_some_and(ApiError::is_rate_limit) {
                // The whole pool slows down (once per slow-down: see `pace`); this
                // request waits out its own Retry-After all the same.
                self.pacer.throttled(wait);
            }
            // Not cut short by `stop`: the cancels a closed stdout sends retry here.
            std::thread::sleep(wait);
            self.retried.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
        }
    }

    fn send_once(&self, req: &Request<'_>) -> Result<ureq::http::Response<ureq::Body>> {
        let route = self.route(&req.url)?;
        let tls = req.url.starts_with("https:")
            || route
                .proxy()
                .is_some_and(|p| p.scheme == crate::proxy::Scheme::Https);
        let agent = self.agent(&route, tls, &req.url)?;
        let mut builder = ureq::http::Request::builder()
            .method(req.method)
            .uri(&req.url)
            .header("Accept", "application/json, text/event-stream");
        if let Some(token) = req.bearer {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        let body = match req.body {
            Some(v) => {
                builder = builder.header("Content-Type", "application/json");
                serde_json::to_vec(v).expect("serde_json::Value always serializes")
            }
            None => Vec::new(),
        };
        let request = builder.body(body).map_err(|e| {
            Error::Usage(format!("bad request to {}: {e}", redact::scrub(&req.url)))
        })?;
        self.pacer.acquire();
        if self.config.verbose {
            crate::say!("> {} {}", req.method, redact::scrub(&req.url));
        }
        agent
            .run(request)
            .map_err(|e| self.network_error(&req.url, &e))
    }

    /// A transport failure, named for a person: the route it took, and for a TLS
    /// failure the CAs that were trusted.
    fn network_error(&self, target: &str, err: &ureq::Error) -> Error {
        let route = self.route(target).ok();
        let trust = self.trust.get().and_then(|t| t.as_ref().ok()).cloned();
        network_error(target, err, route.as_ref(), trust.as_deref())
    }

    /// How long to wait before the next attempt, or None if `err` is final.
    fn retry_wait(&self, err: &Error, attempt: u32) -> Option<Duration> {
        let backoff = backoff(self.config.backoff_base, self.config.backoff_cap, attempt);
        match err.root() {
            Error::Network(_) => Some(backoff),
            Error::Api(api) if api.is_transient() => match api.retry_after {
                Some(after) if after > self.config.max_retry_after => None,
                Some(after) => Some(after),
                None => Some(backoff),
            },
            _ => None,
        }
    }

    fn log_response(&self, status: u16, logid: &Option<String>, bytes: usize) {
        if self.config.verbose {
            let logid = logid.as_deref().unwrap_or("-");
            crate::say!("< {status} logid={logid} {bytes} bytes");
        }
    }
}

/// A timeout of 0 is none at all (`--idle-timeout 0`, as curl reads 0), not an
/// immediate failure.
fn limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// The logid a JSON body carries (`detail.logid`, or an OAuth error's `error.logid`).
fn body_logid(value: &Value) -> Option<String> {
    value
        .pointer("/detail/logid")
        .or_else(|| value.pointer("/error/logid"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The first wait for a busy conversation, and the longest.
const BUSY_FIRST: Duration = Duration::from_secs(1);
const BUSY_CAP: Duration = Duration::from_secs(8);

/// The wait before asking a busy conversation again: 1 s, 2 s, 4 s, then every 8 s, the
/// last one cut short so that the final attempt falls on the bound; None once `elapsed`
/// (since the first 4016) has reached `bound`. No jitter: the wait is for one other
/// chat to end, not for a crowd of clients to spread out.
pub fn busy_step(bound: Duration, elapsed: Duration, waits: u32) -> Option<Duration> {
    let left = bound.checked_sub(elapsed).filter(|l| !l.is_zero())?;
    let step = BUSY_FIRST
        .saturating_mul(1u32 << waits.min(16))
        .min(BUSY_CAP);
    Some(step.min(left))
}

/// The conversation a chat request addresses (`/v3/chat?conversation_id=…`), for the
/// busy notice.
fn busy_conversation(target: &str) -> String {
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    match url::parse_query(query)
        .into_iter()
        .find(|(k, _)| k == "conversation_id")
    {
        Some((_, id)) => format!("conversation {id}"),
        None => "the conversation".to_owned(),
    }
}

/// What a chat that gave up on a busy conversation says.
fn busy_gave_up(target: &str, bound: Duration) -> String {
    let conv = busy_conversation(target);
    if bound.is_zero() {
        format!("{conv} is busy with another chat (--busy-wait 0: not waiting)")
    } else {
        format!(
            "{conv} was still busy with another chat after {} (--busy-wait)",
            in_words(bound)
        )
    }
}

/// A duration as a person says it: "2 min", "90 s", "1.5 s".
pub fn in_words(d: Duration) -> String {
    let s = d.as_secs_f64();
    if d.subsec_nanos() == 0 && d.as_secs() >= 60 && d.as_secs().is_multiple_of(60) {
        format!("{} min", d.as_secs() / 60)
    } else if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s} s")
    }
}

/// Full-jitter exponential backoff: uniform in [0.5, 1.0] × min(cap, base·2^attempt).
pub fn backoff(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let step = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    step.mul_f64(0.5 + f64::from(byte[0]) / 510.0)
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn head_of(resp: &ureq::http::Response<ureq::Body>) -> (u16, Option<String>, Option<Duration>) {
    let status = resp.status().as_u16();
    // coze.cn and coze.com send x-tt-logid; a self-hosted Coze Studio X-Log-ID.
    let logid = header(resp, "x-tt-logid")
        .filter(|s| !s.is_empty())
        .or_else(|| header(resp, "x-log-id").filter(|s| !s.is_empty()));
    let retry_after = header(resp, "retry-after").and_then(|v| parse_retry_after(&v));
    (status, logid, retry_after)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and treated as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Names a transport failure the way a person can act on it, and the proxy it went
/// through: a refused or timed-out connection is then the proxy's answer. A TLS failure
/// is `Error::Tls` (not retried); a certificate nobody trusts lists the trust sources.
pub fn network_error(
    target: &str,
    err: &ureq::Error,
    route: Option<&Route>,
    trust: Option<&Trust>,
) -> Error {
    let shown = redact::scrub(target);
    let via = route
        .and_then(Route::proxy)
        .map(|p| format!(" (through the proxy {p})"))
        .unwrap_or_default();
    if let Some(tls) = tls_failure(err) {
        let why = match tls {
            rustls::Error::InvalidCertificate(c) => {
                let sources = trust
                    .map(|t| format!("; trusted: {}", t.describe()))
                    .unwrap_or_default();
                format!("the server's certificate is not trusted ({c:?}){sources}; {ADD_A_CA}")
            }
            other => format!("TLS failed: {other}"),
        };
        return Error::Tls(format!("{shown}: {why}{via}"));
    }
    let why = match err {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::Io(e) => describe_io(e),
        other => other.to_string(),
    };
    Error::Network(format!("{shown}: {why}{via}"))
}

/// The rustls error inside a ureq error, if the failure was TLS's.
fn tls_failure(err: &ureq::Error) -> Option<&rustls::Error> {
    match err {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// An io error from a response body, which may wrap a ureq error (timeouts do).
pub fn describe_io(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return match inner {
            ureq::Error::Timeout(t) => format!("timed out ({t})"),
            other => other.to_string(),
        };
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection early".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// Whether a read failed because no byte came for the idle timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        Some(inner) => matches!(inner, ureq::Error::Timeout(_)),
        None => matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ),
    }
}

/// Decodes a JSON response in `dialect`: the value on success, the server's error
/// otherwise. Pure, so every shape is unit-tested.
pub fn decode(
    status: u16,
    header_logid: Option<String>,
    retry_after: Option<Duration>,
    body: &[u8],
    dialect: Dialect,
) -> std::result::Result<Value, ApiError> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let logid = parsed.as_ref().and_then(body_logid).or(header_logid);
    let fail = |code: ApiCode, msg: String| ApiError {
        status,
        code,
        msg,
        logid: logid.clone(),
        retry_after,
    };
    let Some(value) = parsed.filter(Value::is_object) else {
        // A token endpoint's success body holds tokens: a cut one is never quoted.
        if dialect == Dialect::OAuth && (200..300).contains(&status) {
            let msg = format!(
                "the answer is not whole JSON ({} bytes; not shown, it may hold tokens)",
                body.len()
            );
            return Err(fail(ApiCode::Http, msg));
        }
        // A self-hosted Coze Studio writes some errors as plain text in its errorx form,
        // `code=103200005 message=…` (coze-dev/coze-studio `pkg/errorx`): keep the code.
        let text = non_json_message(status, body);
        return Err(match errorx_code(&text) {
            Some(code) => fail(ApiCode::Coze(code), text),
            None => fail(ApiCode::Http, text),
        });
    };
    match dialect {
        Dialect::Envelope => match value.get("code").and_then(Value::as_i64) {
            Some(0) if status < 400 => Ok(value),
            Some(code) if code != 0 => {
                let msg = value
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                // Studio wraps some errors as {"code":400,"msg":"code=103200005 message=…"}:
                // the inner code is the one that says what happened.
                let code = errorx_code(&msg).unwrap_or(code);
                Err(fail(ApiCode::Coze(code), msg))
            }
            _ if status >= 400 => Err(fail(ApiCode::Http, non_json_message(status, body))),
            // A success without `code`: a self-hosted Coze Studio answers some calls so
            // (the chat cancel's `{"ChatV3ChatDetail":…}`, run histories).
            _ => Ok(value),
        },
        Dialect::OAuth => {
            let text = |k: &str| {
                value
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            if let Some(code) = text("error_code").or_else(|| text("error")) {
                let msg = text("error_message")
                    .or_else(|| text("error_description"))
                    .unwrap_or_default();
                return Err(fail(ApiCode::OAuth(code.to_owned()), msg.to_owned()));
            }
            // Some gateways answer the OAuth endpoints with the envelope.
            if let Some(code) = value
                .get("code")
                .and_then(Value::as_i64)
                .filter(|c| *c != 0)
            {
                let msg = text("msg").unwrap_or_default().to_owned();
                return Err(fail(ApiCode::Coze(code), msg));
            }
            if status >= 400 {
                return Err(fail(ApiCode::Http, non_json_message(status, body)));
            }
            Ok(value)
        }
    }
}

/// The code of an errorx text, `code=103200005 message=…`.
fn errorx_code(text: &str) -> Option<i64> {
    let rest = text.strip_prefix("code=")?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// A short, one-line excerpt of a body that is not the JSON we expected.
fn non_json_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = if text.trim_start().starts_with('<') {
        strip_tags(&text)
    } else {
        text.into_owned()
    };
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = line.chars().take(160).collect();
    if excerpt.len() < line.len() {
        excerpt.push('…');
    }
    if excerpt.is_empty() {
        match status {
            200..=299 => "empty or truncated response body".to_owned(),
            _ => String::new(),
        }
    } else if (200..300).contains(&status) {
        format!("not JSON: {excerpt}")
    } else {
        excerpt
    }
}

/// Gateway error pages are HTML; the text between tags is what a person wants to see.
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(status: u16, body: &str) -> std::result::Result<Value, ApiError> {
        decode(
            status,
            Some("HDR".into()),
            None,
            body.as_bytes(),
            Dialect::Envelope,
        )
    }

    fn oauth(status: u16, body: &str) -> std::result::Result<Value, ApiError> {
        decode(
            status,
            Some("HDR".into()),
            None,
            body.as_bytes(),
            Dialect::OAuth,
        )
    }

    #[test]
    fn envelope_success_and_errors() {
        let ok = env(
            200,
            r#"{"code":0,"msg":"","data":{"id":"1"},"detail":{"logid":"B"}}"#,
        )
        .unwrap();
        assert_eq!(ok["data"]["id"], "1");
        let e = env(
            200,
            r#"{"code":4016,"msg":"busy","detail":{"logid":"BODY"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code.clone(), e.msg.as_str(), e.logid.as_deref()),
            (ApiCode::Coze(4016), "busy", Some("BODY"))
        );
        assert!(e.is_busy());
        let e = env(401, r#"{"code":4100,"msg":"authentication is invalid"}"#).unwrap_err();
        assert_eq!(
            e.logid.as_deref(),
            Some("HDR"),
            "header logid when the body has none"
        );
        assert!(e.is_auth());
        assert_eq!(
            e.to_string(),
            "code 4100: authentication is invalid (logid HDR)"
        );
    }

    #[test]
    fn non_json_bodies_become_http_errors() {
        let e = env(502, "<html><body><h1>502 Bad Gateway</h1></body></html>").unwrap_err();
        assert_eq!(e.code, ApiCode::Http);
        assert_eq!(e.msg, "502 Bad Gateway");
        assert!(e.is_transient());
        let e = env(200, r#"{"code":0,"da"#).unwrap_err();
        assert!(e.msg.starts_with("not JSON"), "{}", e.msg);
        let cut = oauth(
            200,
            r#"{"access_token":"czu_x","refresh_token":"plainsecret1234"#,
        )
        .unwrap_err();
        assert!(!cut.msg.contains("plainsecret"), "{}", cut.msg);
        assert!(cut.msg.contains("not whole JSON"), "{}", cut.msg);
        let e = env(500, "").unwrap_err();
        assert_eq!(e.to_string(), "HTTP 500 (logid HDR)");
        let studio = env(200, r#"{"ChatV3ChatDetail":{"id":"1"},"BaseResp":null}"#).unwrap();
        assert_eq!(
            studio["ChatV3ChatDetail"]["id"], "1",
            "a success without code"
        );
        let e = env(
            400,
            "code=103200005 message=in progress can not be cancelled",
        )
        .unwrap_err();
        assert_eq!(
            e.coze_code(),
            Some(103_200_005),
            "Studio's errorx text keeps its code"
        );
        assert_eq!(
            e.msg,
            "code=103200005 message=in progress can not be cancelled"
        );
        let e = env(
            400,
            r#"{"code":400,"msg":"code=103200005 message=in progress can not be cancelled"}"#,
        )
        .unwrap_err();
        assert_eq!(e.coze_code(), Some(103_200_005));
        assert!(env(429, "").unwrap_err().is_rate_limit());
    }

    #[test]
    fn oauth_error_shapes() {
        let e = oauth(
            400,
            r#"{"error_code":"invalid_request","error_message":"invalid request: code"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid_request: invalid request: code (logid HDR)"
        );
        let e = oauth(
            400,
            r#"{"error":"authorization_pending","error_description":"wait"}"#,
        )
        .unwrap_err();
        assert_eq!(e.oauth_code(), Some("authorization_pending"));
        assert_eq!(e.msg, "wait");
        // Decided on the body, not the status (coze-api.md §2.2).
        let e = oauth(
            200,
            r#"{"error_code":"access_deny","error_message":"app off"}"#,
        )
        .unwrap_err();
        assert_eq!(e.oauth_code(), Some("access_deny"));
        let ok = oauth(
            200,
            r#"{"access_token":"t","expires_in":1720098388,"refresh_token":"r"}"#,
        )
        .unwrap();
        assert_eq!(
            ok,
            json!({"access_token":"t","expires_in":1720098388,"refresh_token":"r"})
        );
        let e = oauth(200, r#"{"code":4100,"msg":"bad"}"#).unwrap_err();
        assert_eq!(e.coze_code(), Some(4100));
    }

    #[test]
    fn a_busy_conversation_is_asked_again_until_the_bound() {
        let s = Duration::from_secs;
        let bound = s(120);
        // 1, 2, 4, 8, 8, … seconds.
        let steps: Vec<_> = (0..6).map(|n| busy_step(bound, s(0), n).unwrap()).collect();
        assert_eq!(steps, [s(1), s(2), s(4), s(8), s(8), s(8)]);
        // The last wait ends on the bound; at the bound, no more.
        assert_eq!(busy_step(bound, s(117), 9), Some(s(3)));
        assert_eq!(busy_step(bound, s(120), 9), None);
        assert_eq!(busy_step(bound, s(121), 9), None);
        // --busy-wait 1: one wait of a second, then give up.
        assert_eq!(busy_step(s(1), s(0), 0), Some(s(1)));
        assert_eq!(busy_step(s(1), Duration::from_millis(1003), 1), None);
        assert_eq!(busy_step(s(0), s(0), 0), None, "--busy-wait 0 never waits");
        assert_eq!(in_words(s(120)), "2 min");
        assert_eq!(in_words(s(90)), "90 s");
        assert_eq!(in_words(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(
            busy_gave_up("http://h/v3/chat?conversation_id=73", s(60)),
            "conversation 73 was still busy with another chat after 1 min (--busy-wait)"
        );
        assert_eq!(
            busy_conversation("http://h/v3/chat"),
            "the conversation",
            "a chat in a new conversation names none"
        );
    }

    #[test]
    fn retry_after_and_backoff() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        for attempt in 0..20 {
            let d = backoff(Duration::from_millis(100), Duration::from_secs(2), attempt);
            let step = Duration::from_millis(100)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(2));
            assert!(
                d >= step / 2 && d <= step,
                "attempt {attempt}: {d:?} vs {step:?}"
            );
        }
    }
}
