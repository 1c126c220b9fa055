//! The authenticated client of one API base: every call gets a fresh token from the
//! `TokenSource`; when the server answers 4100 (authentication invalid) the token is
//! renewed once (single-flight) and the call retried; when that is not possible the
//! error carries a region hint, since a coze.cn token sent to coze.com is the usual
//! cause, and names the credentials used. An endpoint a self-hosted Coze Studio lacks
//! is named as such. Transport retries are `http`'s.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use crate::auth::source::TokenSource;
use crate::config;
use crate::error::Result;
use crate::http::{Dialect, Http, Request, Stream};
use crate::support::url;

/// `id` as one path segment, or a usage error for an id no segment can carry (`..`
/// would make `/v1/conversations/../clear` another endpoint).
pub(super) fn segment(id: &str) -> Result<String> {
    url::path_segment(id).ok_or_else(|| {
        crate::Error::usage(format!(
            "{id:?} is not a conversation id (it cannot be part of a URL path)"
        ))
    })
}

/// An authenticated client of one API base.
pub struct Client<'a> {
    /// The process's HTTP client (retries, pacing, proxies, trust).
    pub http: &'a Http,
    /// The API base, without a trailing `/` (`https://api.coze.cn`).
    pub base: String,
    /// Where each call's bearer comes from, renewed when the server refuses it.
    pub tokens: &'a TokenSource,
    /// Where the token comes from, named in authentication errors (set by `Session`).
    pub credentials: Option<config::Credentials>,
    /// This server keeps workflow run histories at a self-hosted Coze Studio's path
    /// (learned from the first history asked, `workflows.rs`). Defaults to false.
    pub studio_history: AtomicBool,
}

/// An authentication error against one official host usually means a token of the other
/// (coze-js says the same of a 4101 from coze.com, `src/fetcher.ts`): say so. Other
/// errors and other hosts pass unchanged.
pub fn with_region_hint(e: crate::Error, base: &str) -> crate::Error {
    match (
        e.api().is_some_and(|a| a.is_auth()),
        config::region_hint(base),
    ) {
        (true, Some(hint)) => e.with_hint(hint),
        _ => e,
    }
}

/// `e` unchanged, or, when the server says it has no such endpoint (a self-hosted Coze
/// Studio answers every path it lacks with 401 "missing session_key in cookie"), which
/// endpoint this server does not offer: not a login problem (exit 1, not 4).
pub(super) fn offered(e: crate::Error, method: &str, url: &str) -> crate::Error {
    if e.api()
        .is_some_and(crate::error::ApiError::is_missing_endpoint)
    {
        let path = url::parse(url).map(|p| p.path).unwrap_or_default();
        e.context(format!(
            "this server does not offer {method} {path} (a self-hosted Coze Studio lacks it)"
        ))
    } else {
        e
    }
}

/// One page of a list.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The page's objects (conversations or messages), as the server sent them.
    pub items: Vec<Value>,
    /// The server says there is a next page.
    pub has_more: bool,
    /// The message list's cursor for the page before this one (`before_id`); `None`
    /// for conversations, which page by number.
    pub first_id: Option<String>,
    /// The message list's cursor for the page after this one (`after_id`); `None` for
    /// conversations.
    pub last_id: Option<String>,
}

impl<'a> Client<'a> {
    /// A client of `base` (a trailing `/` is dropped) with tokens from `tokens`; it
    /// names no credentials in errors until `credentials` is set.
    pub fn new(http: &'a Http, base: impl Into<String>, tokens: &'a TokenSource) -> Client<'a> {
        Client {
            http,
            base: url::trim_base(&base.into()).to_owned(),
            tokens,
            credentials: None,
            studio_history: AtomicBool::new(false),
        }
    }

    pub(super) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, url::query(query))
        }
    }

    /// Runs `send` with a current token; on an authentication error renews once and
    /// retries; a final authentication error gets the region hint. Any authentication
    /// failure (the server's, or a token that cannot be read or renewed) names the
    /// credentials used.
    pub(super) fn authed<T>(&self, send: impl FnMut(&str) -> Result<T>) -> Result<T> {
        self.authed_once(send).map_err(|e| match &self.credentials {
            Some(c) => c.name_in(e),
            None => e,
        })
    }

    fn authed_once<T>(&self, mut send: impl FnMut(&str) -> Result<T>) -> Result<T> {
        let token = self.tokens.current(self.http)?;
        let first = send(&token);
        let err = match first {
            Err(e) if e.api().is_some_and(|a| a.is_auth()) => e,
            other => return other,
        };
        let retried = match self.tokens.after_rejection(self.http, &token)? {
            Some(renewed) => send(&renewed),
            None => Err(err),
        };
        retried.map_err(|e| with_region_hint(e, &self.base))
    }

    /// A JSON call in the envelope dialect; returns the whole body. `retry_busy` waits
    /// out a conversation busy with another chat (4016), for creating a chat only.
    pub fn call(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&Value>,
        retry_busy: bool,
    ) -> Result<Value> {
        self.call_with_logid(method, url, body, retry_busy)
            .map(|(v, _)| v)
    }

    /// [`call`](Self::call), and the logid of the answer (from its body, or a header:
    /// a self-hosted Coze Studio sends it only as `X-Log-ID`).
    pub fn call_with_logid(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&Value>,
        retry_busy: bool,
    ) -> Result<(Value, Option<String>)> {
        self.send_json(method, url, body, retry_busy, false)
    }

    /// A POST of `body` that the server acts on per copy (a workflow run, an answer
    /// to its question), and its logid: never sent again once the server may have
    /// taken it (`Request::acts_once`).
    pub(super) fn act_with_logid(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<(Value, Option<String>)> {
        self.send_json("POST", url, Some(body), false, true)
    }

    fn send_json(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&Value>,
        retry_busy: bool,
        acts_once: bool,
    ) -> Result<(Value, Option<String>)> {
        self.authed(|token| {
            let req = Request {
                method,
                url: url.to_owned(),
                bearer: Some(token),
                body,
                retry_busy,
                once: false,
                acts_once,
            };
            self.http.json_with_logid(&req, Dialect::Envelope)
        })
        .map_err(|e| offered(e, method, url))
    }

    /// Opens an event stream (a POST with a JSON body).
    pub fn stream(&self, url: &str, body: &Value) -> Result<Stream> {
        self.authed(|token| {
            self.http
                .stream(&Request::post(url, body).bearer(token).retry_busy(true))
        })
        .map_err(|e| offered(e, "POST", url))
    }

    /// Opens an event stream with a POST the server acts on per copy (an answer to a
    /// chat's tool calls): never sent again once the server may have taken it.
    pub(super) fn stream_once(&self, url: &str, body: &Value) -> Result<Stream> {
        self.authed(|token| {
            self.http
                .stream(&Request::post(url, body).bearer(token).acts_once())
        })
        .map_err(|e| offered(e, "POST", url))
    }

    pub(super) fn data(body: Value) -> Value {
        Self::data_under(body, "data")
    }

    /// The answer's payload: under `data`, or under the key a self-hosted Coze Studio
    /// uses for this call instead (`ConversationData`, `Messages`, `ChatV3ChatDetail`:
    /// the field names of its generated response structs, coze-dev/coze-studio
    /// `backend/api/model`).
    pub(super) fn data_under(mut body: Value, studio_key: &str) -> Value {
        match body.get_mut("data").filter(|d| !d.is_null()) {
            Some(d) => d.take(),
            None => body
                .get_mut(studio_key)
                .map(Value::take)
                .unwrap_or(Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiCode, ApiError, Error};

    fn api(code: i64, status: u16) -> Error {
        Error::Api(ApiError {
            status,
            code: ApiCode::Coze(code),
            msg: "m".into(),
            logid: None,
            retry_after: None,
            debug_url: None,
        })
    }

    #[test]
    fn auth_errors_on_official_hosts_get_the_region_hint() {
        let e = with_region_hint(api(4101, 200), "https://api.coze.com");
        assert!(
            e.to_string()
                .ends_with("(if this token is from coze.cn, try --region cn)"),
            "{e}"
        );
        let e = with_region_hint(api(4100, 401), "https://api.coze.cn/");
        assert!(e.to_string().contains("try --region com"), "{e}");
        // Not for other errors, nor for other hosts (coze-fake, private deployments).
        assert!(!with_region_hint(api(4000, 200), "https://api.coze.com")
            .to_string()
            .contains("region"));
        assert!(!with_region_hint(api(4100, 401), "http://127.0.0.1:9")
            .to_string()
            .contains("region"));
    }

    #[test]
    fn an_endpoint_the_server_lacks_is_named_and_is_not_a_login_problem() {
        let lacking = Error::Api(ApiError {
            status: 401,
            code: ApiCode::Coze(401),
            msg: "missing session_key in cookie".into(),
            logid: Some("L".into()),
            retry_after: None,
            debug_url: None,
        });
        let e = offered(lacking, "GET", "http://studio:8888/v1/users/me?x=1");
        assert_eq!(
            e.to_string(),
            "this server does not offer GET /v1/users/me (a self-hosted Coze Studio lacks \
             it): code 401: missing session_key in cookie (logid L)"
        );
        assert_eq!(e.exit_code(), 1);
        let auth = offered(api(4100, 401), "GET", "http://x/v1/users/me");
        assert_eq!(auth.exit_code(), 4, "a real 401 stays a login problem");
        assert!(!auth.to_string().contains("does not offer"));
    }
}
