//! The workflow endpoints (the Coze API docs: `workflow_run`, `workflow_stream_run`,
//! `workflow_resume`, `resume_workflow`, `workflow_history`): a run synchronous or
//! async, a streamed run, a streamed resume, the resume of a sync run, and a run's
//! history. The answers are the server's JSON: a run's envelope is flat (its `data` is
//! a string beside `code`), and the history's `data` is an array of one.
//!
//! A self-hosted Coze Studio keeps a run's history at another path
//! (`GET /v1/workflow/get_run_history?workflow_id=&execute_id=`, coze-dev/coze-studio
//! `backend/api/router/coze/api.go`) and has no `/v1/workflows/resume`: a history
//! asked where the server lacks it is asked again at Studio's path, which the client
//! then keeps using; the resume is named as an endpoint it lacks.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::client::{offered, Client};
use crate::error::{Error, Result};
use crate::http::{Request, Stream};
use crate::support::url;

impl Client<'_> {
    /// Runs a workflow without streaming (`POST /v1/workflow/run`): the whole answer
    /// (`data`, `debug_url`, `usage`, `execute_id`, `interrupt_data`…) and its logid.
    /// With `is_async: true` in `body` the answer is the started run's `execute_id`
    /// and `debug_url`.
    pub fn workflow_run(&self, body: &Value) -> Result<(Value, Option<String>)> {
        let url = self.url("/v1/workflow/run", &[]);
        self.act_with_logid(&url, body)
    }

    /// Runs a workflow streamed (`POST /v1/workflow/stream_run`): its events.
    pub fn workflow_stream(&self, body: &Value) -> Result<Stream> {
        self.workflow_events("/v1/workflow/stream_run", body)
    }

    /// Answers a streamed run's interrupt (`POST /v1/workflow/stream_resume`): the
    /// events of the rest of the run, numbered from 0 again.
    pub fn workflow_stream_resume(&self, body: &Value) -> Result<Stream> {
        self.workflow_events("/v1/workflow/stream_resume", body)
    }

    /// Answers a sync run's interrupt (`POST /v1/workflows/resume`, plural: the Coze
    /// API docs, `resume_workflow`): an answer shaped as [`workflow_run`](Self::workflow_run)'s.
    pub fn workflow_resume(&self, body: &Value) -> Result<(Value, Option<String>)> {
        let url = self.url("/v1/workflows/resume", &[]);
        self.act_with_logid(&url, body)
            .map_err(|e| lacking_as_404(e, "POST", &url))
    }

    /// The history of one run (`GET /v1/workflows/{workflow_id}/run_histories/{execute_id}`,
    /// or a self-hosted Coze Studio's `get_run_history`): the one history object of
    /// `data`, and the answer's logid.
    pub fn workflow_history(
        &self,
        workflow_id: &str,
        execute_id: &str,
    ) -> Result<(Value, Option<String>)> {
        let studio = || {
            let url = self.url(
                "/v1/workflow/get_run_history",
                &[("workflow_id", workflow_id), ("execute_id", execute_id)],
            );
            self.call_with_logid("GET", &url, None, false)
        };
        let answer = if self.studio_history.load(Ordering::Relaxed) {
            studio()
        } else {
            let path = format!(
                "/v1/workflows/{}/run_histories/{}",
                segment(workflow_id, "workflow id")?,
                segment(execute_id, "execute id")?
            );
            let url = self.url(&path, &[]);
            match self.call_with_logid("GET", &url, None, false) {
                Err(e) if lacks(&e) => {
                    let again = studio();
                    if again.is_ok() {
                        self.studio_history.store(true, Ordering::Relaxed);
                    }
                    again
                }
                other => other,
            }
        };
        let (body, logid) = answer?;
        match Self::data(body) {
            Value::Array(mut runs) if !runs.is_empty() => Ok((runs.swap_remove(0), logid)),
            Value::Object(run) => Ok((Value::Object(run), logid)),
            other => Err(Error::Protocol(format!(
                "the run history of {execute_id} holds no run: {}",
                crate::support::redact::scrub(&other.to_string())
            ))),
        }
    }

    /// Opens a workflow event stream: a POST of `body` to `path`.
    fn workflow_events(&self, path: &str, body: &Value) -> Result<Stream> {
        let url = self.url(path, &[]);
        self.authed(|token| {
            self.http
                .stream(&Request::post(url.clone(), body).bearer(token).acts_once())
        })
        .map_err(|e| offered(e, "POST", &url))
    }
}

/// Whether the server lacks the endpoint asked: a self-hosted Coze Studio answers a
/// path it does not route with 401 "missing session_key in cookie" (see
/// `ApiError::is_missing_endpoint`); a plain 404 says the same.
fn lacks(e: &Error) -> bool {
    e.api()
        .is_some_and(|a| a.is_missing_endpoint() || (a.status == 404 && a.coze_code().is_none()))
}

/// A 404 from an endpoint named as one this server lacks (`offered` names the 401
/// form already).
fn lacking_as_404(e: Error, method: &str, url: &str) -> Error {
    if e.api()
        .is_some_and(|a| a.status == 404 && a.coze_code().is_none())
    {
        let path = url::parse(url).map(|p| p.path).unwrap_or_default();
        e.context(format!(
            "this server does not offer {method} {path} (a self-hosted Coze Studio lacks it)"
        ))
    } else {
        e
    }
}

/// `id` as one path segment, or a usage error naming `what` it is.
fn segment(id: &str, what: &str) -> Result<String> {
    url::path_segment(id).ok_or_else(|| {
        Error::usage(format!(
            "{id:?} is not a {what} (it cannot be part of a URL path)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ApiCode, ApiError};

    fn api(status: u16, code: ApiCode, msg: &str) -> Error {
        Error::Api(ApiError {
            status,
            code,
            msg: msg.into(),
            logid: None,
            retry_after: None,
            debug_url: None,
        })
    }

    #[test]
    fn an_endpoint_is_lacking_by_studios_401_or_a_bare_404() {
        assert!(lacks(&api(
            401,
            ApiCode::Coze(401),
            "missing session_key in cookie"
        )));
        assert!(lacks(&api(404, ApiCode::Http, "not found")));
        assert!(!lacks(&api(404, ApiCode::Coze(4200), "workflow not found")));
        assert!(!lacks(&api(401, ApiCode::Coze(4100), "auth")));
        let e = lacking_as_404(
            api(404, ApiCode::Http, ""),
            "POST",
            "http://h:1/v1/workflows/resume",
        );
        assert!(
            e.to_string().starts_with(
                "this server does not offer POST /v1/workflows/resume (a self-hosted Coze Studio lacks it)"
            ),
            "{e}"
        );
        assert_eq!(segment("..", "workflow id").unwrap_err().exit_code(), 2);
    }
}
