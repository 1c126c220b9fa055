//! The HTTP client: one agent per route and process, every default a decision.
//!
//! - Status codes are not errors (`http_status_as_error(false)`): the body says what
//!   went wrong, and `decode` makes it one `ApiError`.
//! - A connect timeout and an idle timeout (no byte for that long), never a total cap:
//!   an answer may stream for minutes.
//! - Proxies as `proxy` decides them, per request (`NO_PROXY` can exempt one host and
//!   not another): one agent per route, built on first use, so connections are reused
//!   (keep-alive) and nothing reads the environment behind our back (ureq would).
//!   Redirects are not followed (the API never redirects, and a redirect must not
//!   carry a bearer).
//! - TLS trusts what `tls` loads, read once on the first HTTPS request; a certificate
//!   the trust does not cover is `Error::Tls` (`failure`).
//! - Plain `http://` only to loopback, unless the user opted in (`--allow-http`); then
//!   one warning per process (see `url::check_transport`).
//! - Whole requests are retried as `retry` paces them (transient failures; a busy
//!   conversation waited out for `busy_wait`); once a stream has been handed to the
//!   caller, retrying is the caller's decision. A request the server acts on per copy
//!   (`Request::acts_once`: a workflow run) is not sent again once the server may have
//!   taken it: after its answer began, or a silence past the idle timeout. An upload's body is streamed from a
//!   source opened anew for each attempt (`Upload`), with its length sent up front.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use super::decode::{body_logid, decode, Dialect};
use super::failure::network_error;
use super::pace::Pacer;
use super::proxy::{ProxySettings, Route};
use super::retry::{
    backoff, busy_conversation, busy_gave_up, busy_step, in_words, parse_retry_after,
};
use super::tls::{Trust, TrustSettings};
use crate::error::{ApiCode, ApiError, Error, Result};
use crate::support::{redact, url};

/// Where requests may go and what they trust, resolved once from flags and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Which proxy each request goes through: `--proxy`, then the proxy variables.
    /// Defaults to none (direct).
    pub proxy: ProxySettings,
    /// Which CAs HTTPS trusts: the system store plus `--cacert` and the SSL variables.
    pub trust: TrustSettings,
    /// Plain `http://` to a host that is not loopback (`--allow-http`, `COZE_ALLOW_HTTP`).
    /// Defaults to false: refused.
    pub allow_http: bool,
}

/// The HTTP decisions a user can change (--help's CONNECTION and NETWORK flags).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// How long opening a connection may take; 0: as long as the system allows.
    /// Defaults to 10 s.
    pub connect_timeout: Duration,
    /// No byte for this long ends a request or a stream (exit 5); 0: no limit. Defaults
    /// to 120 s (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Attempts after the first for transient failures. Defaults to 4.
    pub retries: u32,
    /// First backoff step; doubled each attempt, capped at `backoff_cap`, with jitter.
    /// Defaults to 250 ms.
    pub backoff_base: Duration,
    /// The longest backoff step. Defaults to 8 s.
    pub backoff_cap: Duration,
    /// A `Retry-After` longer than this is not waited out: the error is reported.
    /// Defaults to 60 s.
    pub max_retry_after: Duration,
    /// How long a chat waits for its conversation while another chat runs in it (4016),
    /// from the first refusal (`--busy-wait`). Defaults to 120 s.
    pub busy_wait: Duration,
    /// `-v`: one line per request and response on stderr, secrets redacted. Defaults to
    /// false.
    pub verbose: bool,
    /// Requests per second across all threads (`--rate`); None: as fast as answered.
    /// Defaults to None.
    pub rate: Option<f64>,
    /// Proxies, trust and the plain-http opt-in. Defaults to direct, the system store,
    /// no plain http.
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
    /// `GET`, `POST`, `DELETE`, …
    pub method: &'static str,
    /// The whole URL, query included.
    pub url: String,
    /// Sent as `Authorization: Bearer …` (and redacted from `-v`); `None` sends no
    /// `Authorization` header.
    pub bearer: Option<&'a str>,
    /// The JSON body, sent with `Content-Type: application/json`; `None` sends none.
    pub body: Option<&'a Value>,
    /// Wait out 4016 (conversation busy) for `HttpConfig::busy_wait`: only for creating
    /// a chat.
    pub retry_busy: bool,
    /// Never resend this request as is: it carries something single-use (a JWT), so
    /// the caller retries with a new one.
    pub once: bool,
    /// Each copy the server takes, it acts on, and a second copy would act again (a
    /// workflow run would run twice, an answer be given twice): the request is sent
    /// again only while the server cannot have taken it (no connection, a reset before
    /// any byte of the answer, a refusal by status or envelope). Once its answer has
    /// begun, or the server has been silent on the whole request past the idle timeout
    /// (a sync workflow run answers only at its end), a failure is final: `Error::Cut`.
    pub acts_once: bool,
}

impl<'a> Request<'a> {
    /// A POST of `body` to `url`, without a bearer: resent after a transient failure,
    /// not waiting out a busy conversation (the builder methods below change that).
    pub fn post(url: impl Into<String>, body: &'a Value) -> Self {
        Request {
            method: "POST",
            url: url.into(),
            bearer: None,
            body: Some(body),
            retry_busy: false,
            once: false,
            acts_once: false,
        }
    }
    /// Sends `token` as the bearer.
    pub fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }
    /// Waits out a busy conversation (4016) when `yes` (see [`Request::retry_busy`]).
    pub fn retry_busy(mut self, yes: bool) -> Self {
        self.retry_busy = yes;
        self
    }
    /// Marks the request single-use: it is never resent (see [`Request::once`]).
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }
    /// Marks the request as one the server acts on per copy: never resent once the
    /// server may have taken it (see [`Request::acts_once`]).
    pub fn acts_once(mut self) -> Self {
        self.acts_once = true;
        self
    }
}

/// An event stream that is ready to read, with the logid of its response.
pub struct Stream {
    /// The response body, for `wire::sse::SseReader`; a read waits at most the idle
    /// timeout.
    pub reader: BufReader<Box<dyn Read + Send>>,
    /// The response's logid header (`x-tt-logid`, or Studio's `X-Log-ID`), if any.
    pub logid: Option<String>,
}

/// Opens a streamed body from its start: called once per attempt, so a retry sends
/// the whole body again (a file is reopened, never held in memory).
pub type OpenBody<'a> = dyn Fn() -> Result<Box<dyn Read + Send>> + Sync + 'a;

/// A request body streamed from a source that can be read again from its start, of a
/// length known before the first byte is sent (a file upload).
pub struct Upload<'a> {
    /// The body's `Content-Type` (`multipart/form-data; boundary=…`).
    pub content_type: String,
    /// The body's exact length, sent as `Content-Length` (never chunked: the servers
    /// want the length, and a body that ends sooner is then a failed upload).
    pub length: u64,
    /// Opens the body for one attempt.
    pub open: &'a OpenBody<'a>,
    /// Where the body's bytes come from, as the user named it (a file's path): a
    /// failure to read them is `Error::Io` on this name (exit 8), not the network's.
    pub source: String,
}

/// A shared slot for the first read error of an upload's source.
type ReadFailure = Arc<Mutex<Option<std::io::Error>>>;

/// An upload's body as ureq reads it, remembering a read error of its source: ureq
/// reports it as a transport failure like any other (which would be retried and end as
/// exit 5), while a file that shrank or cannot be read is local, and sending it again
/// would fail the same way.
struct Remembering {
    inner: Box<dyn Read + Send>,
    failed: ReadFailure,
}

impl Read for Remembering {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => {
                let mut slot = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    // io::Error is not Clone: ureq gets the original, the slot its words.
                    *slot = Some(std::io::Error::new(e.kind(), e.to_string()));
                }
                Err(e)
            }
            other => other,
        }
    }
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
    /// The client of one process: no connection is opened, nor trust loaded, until the
    /// first request.
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

    /// Forgets a [`stop`](Self::stop): the terminal chat stops one answer with Ctrl-C
    /// (a busy wait included) and then goes on, its next prompts waiting as usual.
    pub fn go_on(&self) {
        self.stopped.store(false, Ordering::SeqCst);
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

    /// The settings it was made with (the retry counts and backoff steps of callers
    /// that retry on their own, such as `auth::oauth::mint`).
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
        self.json_answer(req, None, dialect)
    }

    /// POSTs `upload` (streamed, its whole body again on every retry) with `req`'s URL
    /// and bearer, and decodes the JSON answer in `dialect`, with its logid. A
    /// transport failure mid-body (the server cut the connection) is retried like any
    /// other; a failure to read the source is local (`Error::Io`) and is not.
    pub fn upload(
        &self,
        req: &Request<'_>,
        upload: &Upload<'_>,
        dialect: Dialect,
    ) -> Result<(Value, Option<String>)> {
        self.json_answer(req, Some(upload), dialect)
    }

    fn json_answer(
        &self,
        req: &Request<'_>,
        upload: Option<&Upload<'_>>,
        dialect: Dialect,
    ) -> Result<(Value, Option<String>)> {
        self.with_retries(req, upload, |resp| {
            let (status, logid, retry_after) = head_of(&resp);
            let mut body = Vec::new();
            resp.into_body()
                .into_reader()
                .read_to_end(&mut body)
                .map_err(|e| self.body_failure(req, &e.into(), status, &logid))?;
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
        self.with_retries(req, None, |resp| {
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
                .map_err(|e| self.body_failure(req, &e.into(), status, &logid))?;
            self.log_response(status, &logid, body.len());
            match decode(status, logid.clone(), retry_after, &body, Dialect::Envelope) {
                Err(api) => Err(Error::Api(api)),
                Ok(_) => Err(Error::Api(ApiError {
                    status,
                    code: ApiCode::Http,
                    msg: format!("expected an event stream, got {content_type:?}"),
                    logid,
                    retry_after: None,
                    debug_url: None,
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
            acts_once: false,
        };
        self.check(&req.url)?;
        let resp = self.send_once(&req, None)?;
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
        upload: Option<&Upload<'_>>,
        mut handle: impl FnMut(ureq::http::Response<ureq::Body>) -> Result<T>,
    ) -> Result<T> {
        self.check(&req.url)?;
        let mut attempt = 0u32;
        // Set by the first 4016: when the wait began and how many waits followed.
        let mut busy: Option<(std::time::Instant, u32)> = None;
        loop {
            let outcome = self.send_once(req, upload).and_then(&mut handle);
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

    fn send_once(
        &self,
        req: &Request<'_>,
        upload: Option<&Upload<'_>>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let route = self.route(&req.url)?;
        let tls = req.url.starts_with("https:")
            || route
                .proxy()
                .is_some_and(|p| p.scheme == super::proxy::Scheme::Https);
        let agent = self.agent(&route, tls, &req.url)?;
        let mut builder = ureq::http::Request::builder()
            .method(req.method)
            .uri(&req.url)
            .header("Accept", "application/json, text/event-stream");
        if let Some(token) = req.bearer {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(up) = upload {
            let failed = ReadFailure::default();
            let body = ureq::SendBody::from_owned_reader(Remembering {
                inner: (up.open)()?,
                failed: Arc::clone(&failed),
            });
            let builder = builder
                .header("Content-Type", up.content_type.as_str())
                // With a Content-Length ureq sends the body length-delimited, not chunked.
                .header("Content-Length", up.length.to_string());
            let sent = self.dispatch(&agent, builder, body, req, Some(up.length))?;
            return sent.map_err(|e| {
                match failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(local) => Error::io(&up.source, local),
                    None => self.network_error(&req.url, &e),
                }
            });
        }
        let body = match req.body {
            Some(v) => {
                builder = builder.header("Content-Type", "application/json");
                serde_json::to_vec(v).expect("serde_json::Value always serializes")
            }
            None => Vec::new(),
        };
        self.dispatch(&agent, builder, body, req, None)?
            .map_err(|e| {
                let failure = self.network_error(&req.url, &e);
                // No byte of the answer within the idle timeout, after the whole
                // request went out: the server has it.
                if req.acts_once && matches!(e, ureq::Error::Timeout(ureq::Timeout::PerRead)) {
                    taken(failure, None, false)
                } else {
                    failure
                }
            })
    }

    /// Sends one request, once: built (a bad URL is a usage error, the outer `Err`),
    /// paced, told on stderr under `-v` (with the body's size when it is streamed),
    /// then run; the transport's own failure is the caller's to name.
    fn dispatch(
        &self,
        agent: &ureq::Agent,
        builder: ureq::http::request::Builder,
        body: impl ureq::AsSendBody,
        req: &Request<'_>,
        streamed: Option<u64>,
    ) -> Result<std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>> {
        let request = builder.body(body).map_err(|e| {
            Error::Usage(format!("bad request to {}: {e}", redact::scrub(&req.url)))
        })?;
        self.pacer.acquire();
        if self.config.verbose {
            match streamed {
                Some(n) => crate::say!("> {} {} ({n} bytes)", req.method, redact::scrub(&req.url)),
                None => crate::say!("> {} {}", req.method, redact::scrub(&req.url)),
            }
        }
        Ok(agent.run(request))
    }

    /// A transport failure, named for a person: the route it took, and for a TLS
    /// failure the CAs that were trusted.
    fn network_error(&self, target: &str, err: &ureq::Error) -> Error {
        let route = self.route(target).ok();
        let trust = self.trust.get().and_then(|t| t.as_ref().ok()).cloned();
        network_error(target, err, route.as_ref(), trust.as_deref())
    }

    /// A transport failure while the answer's body was read (`status` and `logid` the
    /// answer's, told under `-v` as any answer is): final for a request that acts once
    /// (the server acted on it), else the network failure it is, retried.
    fn body_failure(
        &self,
        req: &Request<'_>,
        err: &ureq::Error,
        status: u16,
        logid: &Option<String>,
    ) -> Error {
        if self.config.verbose {
            let shown = logid.as_deref().unwrap_or("-");
            crate::say!("< {status} logid={shown} (its body broke off)");
        }
        let failure = self.network_error(&req.url, err);
        if req.acts_once {
            taken(failure, logid.clone(), true)
        } else {
            failure
        }
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

/// The failure of a request that acts once (`Request::acts_once`) after the server
/// took it, as a final `Error::Cut`: `answered` when part of its answer came (`logid`
/// its), else the server was silent past the idle timeout.
fn taken(failure: Error, logid: Option<String>, answered: bool) -> Error {
    let why = if answered {
        "after its answer began: not sent again, as the server acted on it"
    } else {
        "with no answer: not sent again, as the server took it and may still be acting on it"
    };
    Error::Cut {
        msg: format!("{failure}, {why}"),
        logid,
        recovery: None,
    }
}

/// A timeout of 0 is none at all (`--idle-timeout 0`, as curl reads 0), not an
/// immediate failure.
fn limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicU32;

    /// A loopback server that reads every request body to its end and never answers.
    fn reading_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &conn, &mut std::io::sink());
                });
            }
        });
        format!("http://{addr}/v1/files/upload")
    }

    /// `left` bytes, then a read error (a disk that fails mid-file).
    struct Failing {
        left: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other("Input/output error"));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    /// How the test server answers each request it reads.
    #[derive(Clone, Copy)]
    enum Answer {
        /// The head and part of a JSON body, then the connection closed.
        BrokenBody,
        /// Nothing, for a second.
        Silence,
    }

    /// A loopback server answering every request as `answer` says; the counter holds
    /// the requests it read whole.
    fn answering_server(answer: Answer) -> (String, Arc<AtomicU32>) {
        use std::io::{BufRead, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&taken);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    let mut r = std::io::BufReader::new(&conn);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(n) = lower.strip_prefix("content-length:") {
                            length = n.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Answer::BrokenBody => {
                            let _ = (&conn).write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                  Content-Length: 100\r\nx-tt-logid: L1\r\n\r\n{\"code\":0",
                            );
                        }
                        Answer::Silence => std::thread::sleep(Duration::from_secs(1)),
                    }
                });
            }
        });
        (format!("http://{addr}/v1/workflow/run"), taken)
    }

    /// A request the server acts on per copy is not sent again once its answer began,
    /// or once the server went silent on it past the idle timeout; any other request
    /// is, after the same failures.
    #[test]
    fn a_request_that_acts_once_is_not_sent_again_once_the_server_took_it() {
        let http = Http::new(HttpConfig {
            retries: 2,
            backoff_base: Duration::from_millis(1),
            idle_timeout: Duration::from_millis(200),
            ..HttpConfig::default()
        });
        let body = serde_json::json!({"workflow_id": "1"});
        for answer in [Answer::BrokenBody, Answer::Silence] {
            for acts_once in [true, false] {
                let (url, taken) = answering_server(answer);
                let mut req = Request::post(url, &body);
                req.acts_once = acts_once;
                let err = http.json(&req, Dialect::Envelope).unwrap_err();
                let sent = taken.load(Ordering::SeqCst);
                assert_eq!(err.exit_code(), 5, "{err}");
                if acts_once {
                    assert_eq!(sent, 1, "sent again: {err}");
                    assert!(matches!(err, Error::Cut { .. }), "{err:?}");
                    assert!(err.to_string().contains("not sent again"), "{err}");
                } else {
                    assert_eq!(sent, 3, "not retried: {err}");
                    assert!(matches!(err, Error::Network(_)), "{err:?}");
                }
                if let Answer::BrokenBody = answer {
                    // The head came: its logid names the lost answer.
                    assert_eq!(err.logid().is_some(), acts_once, "{err}");
                }
            }
        }
    }

    #[test]
    fn a_source_that_fails_mid_upload_is_local_io_and_not_sent_again() {
        let url = reading_server();
        let http = Http::new(HttpConfig {
            retries: 3,
            backoff_base: Duration::from_millis(1),
            ..HttpConfig::default()
        });
        let opened = AtomicU32::new(0);
        let open = || -> Result<Box<dyn Read + Send>> {
            opened.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Failing { left: 300_000 }))
        };
        let upload = Upload {
            content_type: "application/octet-stream".into(),
            length: 1_000_000,
            open: &open,
            source: "big.bin".into(),
        };
        let req = Request {
            method: "POST",
            url,
            bearer: None,
            body: None,
            retry_busy: false,
            once: false,
            acts_once: false,
        };
        let err = http.upload(&req, &upload, Dialect::Envelope).unwrap_err();
        assert_eq!(err.exit_code(), 8, "{err}");
        assert_eq!(err.to_string(), "big.bin: Input/output error");
        assert_eq!(opened.load(Ordering::SeqCst), 1, "sent again: {err}");
    }
}
