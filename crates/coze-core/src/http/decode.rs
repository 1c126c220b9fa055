//! Decoding an answer: the `{code,msg,detail:{logid}}` envelope of `/v1` and `/v3`, the
//! OAuth endpoints' error shapes, and whatever a gateway sends instead (HTML, plain
//! text, a self-hosted Coze Studio's errorx text), all into the value or one
//! [`ApiError`]. The logid comes from the body, else the `x-tt-logid` header (coze.cn,
//! coze.com), else `X-Log-ID` (a self-hosted Coze Studio). Pure, so every shape is
//! unit-tested below.

use std::time::Duration;

use serde_json::Value;

use crate::error::{ApiCode, ApiError};

/// How to read a response body's failure shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1`, `/v3`: `{code,msg,data,detail:{logid}}`.
    Envelope,
    /// The OAuth endpoints: a bare object, failures as `error_code`/`error_message` or
    /// `error`/`error_description`.
    OAuth,
}

/// The logid a JSON body carries (`detail.logid`, or an OAuth error's `error.logid`).
pub(crate) fn body_logid(value: &Value) -> Option<String> {
    value
        .pointer("/detail/logid")
        .or_else(|| value.pointer("/error/logid"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
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
    // A failed workflow run's answer names its trace page beside the error (the Coze
    // API docs, `workflow_run`).
    let debug_url = parsed
        .as_ref()
        .and_then(|v| v.get("debug_url"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let fail = |code: ApiCode, msg: String| ApiError {
        status,
        code,
        msg,
        logid: logid.clone(),
        retry_after,
        debug_url: debug_url.clone(),
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
        assert_eq!(e.debug_url, None);
        // A failed workflow run's trace page, kept beside its error.
        let e = env(
            200,
            r#"{"code":4000,"msg":"bad parameter","debug_url":"https://www.coze.cn/work_flow?execute_id=1"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.coze_code(), e.debug_url.as_deref()),
            (
                Some(4000),
                Some("https://www.coze.cn/work_flow?execute_id=1")
            )
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
        // Decided on the body, not the status (as coze-py's `_format_requests_code_msg`:
        // it never looks at the status).
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
}
