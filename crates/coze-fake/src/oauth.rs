//! OAuth as Coze does it (the Coze API docs: `oauth_pkce`, `oauth_code`,
//! `oauth_device_code`, `oauth_jwt`): the authorize redirect and consent page, the
//! token endpoint (JSON bodies only; authorization_code with PKCE or, for web apps, a
//! client secret as bearer; rotating refresh_token; device_code; a service app's JWT as
//! bearer, checked in `jwt`) and the device flow. Success bodies are bare (no envelope)
//! with an ABSOLUTE `expires_in`; errors are HTTP 400 with `error_code`/`error_message`
//! (device-flow states also carry `error`/`error_description`, since SDKs read either
//! pair); a bad client (secret or JWT) is HTTP 401 `invalid_client`.

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::{Reply, Request};
use crate::pages;
use crate::router::Ctx;
use crate::state::{AuthCode, DeviceGrant, DeviceStatus, PendingAuth, RefreshToken};
use crate::util::{form_encode, now_ms, now_s, random_string, ALNUM};
use crate::App;

const CODE_TTL_MS: u64 = 10 * 60 * 1000;
pub const USER_ID: &str = "7400000000000000001";

pub fn user_json(app: &App) -> Value {
    json!({
        "user_id": USER_ID,
        "user_name": "fake_user",
        "nick_name": "扣子测试用户",
        "avatar_url": format!("{}/static/avatar.png", app.base_url),
    })
}

fn oauth_error(code: &str, msg: &str) -> Reply {
    Reply::json(400, &json!({"error_code": code, "error_message": msg}))
}

/// Device-flow states: both field pairs, since py/go/java read `error_code` and js `error`.
fn device_error(code: &str, msg: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": code, "error_description": msg, "error_code": code, "error_message": msg}),
    )
}

/// A client that failed to authenticate (wrong secret, bad JWT): says which check.
fn invalid_client(msg: &str) -> Reply {
    Reply::json(
        401,
        &json!({"error_code": "invalid_client", "error_message": msg}),
    )
}

/// The bearer value of a request, if any.
fn bearer(req: &Request) -> Option<&str> {
    req.header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A web app (one with a client secret) must send it as bearer (the Coze API docs,
/// `oauth_code`).
fn client_secret_error(app: &App, req: &Request, client_id: &str) -> Option<Reply> {
    let (_, secret) = app
        .opts
        .client_secrets
        .iter()
        .find(|(id, _)| id == client_id)?;
    match bearer(req) {
        Some(b) if b == secret => None,
        Some(_) => Some(invalid_client("client secret is wrong")),
        None => Some(invalid_client(
            "this is a web app: send its client secret as Authorization: Bearer",
        )),
    }
}

fn invalid(param: &str) -> Reply {
    oauth_error("invalid_request", &format!("invalid request: {param}"))
}

fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut s = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        s.push(sep);
        s.push_str(k);
        s.push('=');
        s.push_str(&form_encode(v));
        sep = '&';
    }
    s
}

/// GET .../authorize: validate, then redirect to the consent page (or straight back).
pub fn authorize(app: &App, req: &Request) -> Reply {
    let q = |k: &str| req.query(k).filter(|v| !v.is_empty()).map(str::to_string);
    if req.query("response_type") != Some("code") {
        return Reply::html(
            400,
            pages::error("Invalid request", "response_type must be code"),
        );
    }
    let (Some(client_id), Some(redirect_uri)) = (q("client_id"), q("redirect_uri")) else {
        return Reply::html(
            400,
            pages::error("Invalid request", "client_id and redirect_uri are required"),
        );
    };
    let method = q("code_challenge_method").unwrap_or_else(|| "plain".into());
    if method != "S256" && method != "plain" {
        return Reply::html(
            400,
            pages::error(
                "Invalid request",
                "code_challenge_method must be S256 or plain",
            ),
        );
    }
    let auth = PendingAuth {
        client_id,
        redirect_uri,
        state: req.query("state").map(str::to_string),
        challenge: q("code_challenge"),
        method,
    };
    if app.opts.auto_approve {
        return Reply::redirect(&approve(app, auth));
    }
    let key = random_string(32, ALNUM);
    app.lock().consents.insert(key.clone(), auth);
    Reply::redirect(&format!(
        "{}/oauth/consent?authorize_key={key}",
        app.base_url
    ))
}

/// Issue a code for an approved request; returns the redirect back to the client.
fn approve(app: &App, auth: PendingAuth) -> String {
    let code = format!("code_{}", random_string(40, ALNUM));
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = auth.state.as_deref() {
        params.push(("state", s));
    }
    let url = with_query(&auth.redirect_uri, &params);
    app.lock().codes.insert(
        code.clone(),
        AuthCode {
            auth,
            expires_ms: now_ms() + CODE_TTL_MS,
        },
    );
    url
}

pub fn consent_page(app: &App, req: &Request) -> Reply {
    let key = req.query("authorize_key").unwrap_or("");
    let pending = app.lock().consents.get(key).cloned();
    match pending {
        Some(a) => Reply::html(200, pages::consent(key, &a.client_id, &a.redirect_uri)),
        None => Reply::html(
            400,
            pages::error(
                "Unknown request",
                "This authorization request is unknown or already decided.",
            ),
        ),
    }
}

pub fn consent_submit(app: &App, req: &Request) -> Reply {
    let form = req.form();
    let get = |k: &str| crate::util::field(&form, k).unwrap_or("");
    let pending = app.lock().consents.remove(get("authorize_key"));
    let Some(auth) = pending else {
        return Reply::html(
            400,
            pages::error(
                "Unknown request",
                "This authorization request is unknown or already decided.",
            ),
        );
    };
    match get("decision") {
        "approve" => Reply::redirect(&approve(app, auth)),
        _ => {
            let mut params = vec![
                ("error", "access_denied"),
                ("error_description", "The user denied the request"),
            ];
            if let Some(s) = auth.state.as_deref() {
                params.push(("state", s));
            }
            Reply::redirect(&with_query(&auth.redirect_uri, &params))
        }
    }
}

/// POST /api/permission/oauth2/token.
pub fn token(app: &App, req: &Request, _ctx: &mut Ctx) -> Reply {
    app.lock().stats.token_requests += 1;
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.contains("x-www-form-urlencoded") || ct.contains("multipart/") {
        return invalid("content type must be application/json");
    }
    let Some(body) = req.json().filter(Value::is_object) else {
        return invalid("body");
    };
    let b = Body(body);
    // One function per grant.
    match b.s("grant_type") {
        None => invalid("grant_type"),
        Some("authorization_code") => grant_code(app, req, &b),
        Some("refresh_token") => grant_refresh(app, req, &b),
        Some("urn:ietf:params:oauth:grant-type:device_code") => grant_device(app, &b),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => grant_jwt(app, req, &b),
        Some(other) => oauth_error(
            "unsupported_grant_type",
            &format!("not supported grant type: {other}"),
        ),
    }
}

/// A token request body; `s` gives a non-empty string field.
struct Body(Value);

impl Body {
    fn s(&self, k: &str) -> Option<&str> {
        self.0
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Mint an access/refresh pair and answer with the bare token body.
fn issue(app: &App, client_id: &str, grant: &str) -> Reply {
    let access = format!("czu_{}", random_string(48, ALNUM));
    let refresh = random_string(48, ALNUM);
    let now = now_ms();
    let expires_ms = now + app.opts.token_ttl * 1000;
    let mut st = app.lock();
    st.access.insert(access.clone(), expires_ms);
    st.refresh.insert(
        refresh.clone(),
        RefreshToken {
            client_id: client_id.to_string(),
            expires_ms: now + app.opts.refresh_ttl * 1000,
        },
    );
    *st.stats.grants.entry(grant.to_string()).or_insert(0) += 1;
    drop(st);
    Reply::json(
        200,
        &json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": now_s() + app.opts.token_ttl,
            "refresh_token": refresh,
        }),
    )
}

/// BASE64URL-no-pad(SHA256(verifier)) for S256, equality for plain (RFC 7636).
fn pkce_ok(method: &str, challenge: &str, verifier: &str) -> bool {
    match method {
        "S256" => {
            let digest = Sha256::digest(verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
        }
        _ => verifier == challenge,
    }
}

fn grant_code(app: &App, req: &Request, b: &Body) -> Reply {
    let Some(code) = b.s("code") else {
        return invalid("code");
    };
    // A web app's secret is checked before the code is touched: a client that forgot
    // its secret does not burn the person's code.
    if let Some(refused) = b
        .s("client_id")
        .and_then(|c| client_secret_error(app, req, c))
    {
        return refused;
    }
    // Removed on any attempt: a code is single use even when the attempt fails.
    let entry = app.lock().codes.remove(code);
    let Some(entry) = entry else {
        return invalid("code");
    };
    if entry.expires_ms < now_ms() {
        return invalid("code");
    }
    let a = &entry.auth;
    if b.s("client_id") != Some(a.client_id.as_str()) {
        return invalid("client_id");
    }
    if b.s("redirect_uri") != Some(a.redirect_uri.as_str()) {
        return invalid("redirect_uri");
    }
    if let Some(ch) = &a.challenge {
        match b.s("code_verifier") {
            Some(v) if pkce_ok(&a.method, ch, v) => {}
            _ => return invalid("code_verifier"),
        }
    }
    issue(app, &a.client_id, "authorization_code")
}

fn grant_refresh(app: &App, req: &Request, b: &Body) -> Reply {
    let Some(rt) = b.s("refresh_token") else {
        return invalid("refresh_token");
    };
    let mut st = app.lock();
    let owner = st
        .refresh
        .get(rt)
        .filter(|r| r.expires_ms > now_ms() && b.s("client_id").is_none_or(|c| c == r.client_id))
        .map(|r| r.client_id.clone());
    let Some(owner) = owner else {
        return invalid("refresh_token");
    };
    // Before rotation: a refused client keeps its refresh token.
    if let Some(refused) = client_secret_error(app, req, &owner) {
        return refused;
    }
    // Rotation: the refresh token sent is retired; access tokens live on until expiry.
    let old = st
        .refresh
        .remove(rt)
        .map(|r| r.client_id)
        .unwrap_or_default();
    st.stats.refreshes += 1;
    drop(st);
    issue(app, &old, "refresh_token")
}

fn grant_device(app: &App, b: &Body) -> Reply {
    let Some(dc) = b.s("device_code") else {
        return invalid("device_code");
    };
    let now = now_ms();
    let interval_ms = app.opts.device_interval * 1000;
    let mut st = app.lock();
    let Some(d) = st.devices.get_mut(dc) else {
        return invalid("device_code");
    };
    let last = d.last_poll_ms.replace(now);
    if d.expires_ms <= now {
        return device_error("expired_token", "The device code has expired.");
    }
    match d.status {
        DeviceStatus::Denied => device_error(
            "access_denied",
            "The user denied the authorization request.",
        ),
        DeviceStatus::Approved => {
            let client = d.client_id.clone();
            st.devices.remove(dc);
            drop(st);
            issue(app, &client, "device_code")
        }
        DeviceStatus::Pending => {
            if last.is_some_and(|l| now.saturating_sub(l) < interval_ms) {
                device_error("slow_down", "Polling too frequently, slow down.")
            } else {
                device_error(
                    "authorization_pending",
                    "The user has not yet completed authorization.",
                )
            }
        }
    }
}

/// The JWT grant (the Coze API docs, `oauth_jwt`): the signed JWT is the bearer; the
/// body asks for `duration_seconds` (default 900, at most 86399). The answer has no
/// refresh token.
fn grant_jwt(app: &App, req: &Request, b: &Body) -> Reply {
    let Some(jwt) = bearer(req) else {
        return invalid_client("send the signed JWT as Authorization: Bearer");
    };
    let duration = match b.0.get("duration_seconds") {
        None | Some(Value::Null) => 900,
        Some(v) => match v.as_u64() {
            Some(d @ 1..=86_399) => d,
            _ => return invalid("duration_seconds"),
        },
    };
    // host:port, whether the fake serves http or https.
    let audience = app
        .base_url
        .split_once("://")
        .map_or(app.base_url.as_str(), |(_, authority)| authority);
    let now = now_s() as i64;
    let jti = match crate::jwt::verify(
        jwt,
        app.jwt_key.as_deref(),
        app.opts.jwt_kid.as_deref(),
        audience,
        now,
    ) {
        Ok(c) => c,
        Err(why) => return invalid_client(&why),
    };
    let access = format!("czs_{}", random_string(48, ALNUM));
    let expires_s = now_s() + duration;
    let mut st = app.lock();
    if !st.jtis.insert(jti.clone()) {
        return invalid_client(&format!(
            "jwt jti {jti:?} was already used: every JWT works once"
        ));
    }
    st.access.insert(access.clone(), expires_s * 1000);
    *st.stats.grants.entry("jwt".to_string()).or_insert(0) += 1;
    drop(st);
    Reply::json(
        200,
        &json!({"access_token": access, "expires_in": expires_s}),
    )
}

/// POST .../device/code.
pub fn device_code(app: &App, req: &Request, _ctx: &mut Ctx) -> Reply {
    let body = req.json().unwrap_or(Value::Null);
    let Some(client_id) = body
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    else {
        return invalid("client_id");
    };
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let user_code = format!(
        "{}-{}",
        random_string(4, LETTERS),
        random_string(4, LETTERS)
    );
    let device_code = random_string(40, ALNUM);
    app.lock().devices.insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client_id.to_string(),
            user_code: user_code.clone(),
            expires_ms: now_ms() + app.opts.device_ttl * 1000,
            last_poll_ms: None,
            status: DeviceStatus::Pending,
        },
    );
    Reply::json(
        200,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{}/oauth/device", app.base_url),
            "expires_in": app.opts.device_ttl,
            "interval": app.opts.device_interval,
        }),
    )
}

/// `wdjb mjht` / `WDJBMJHT` -> `WDJB-MJHT`.
fn normalize_user_code(s: &str) -> String {
    let c: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    if c.len() == 8 {
        format!("{}-{}", &c[..4], &c[4..])
    } else {
        c
    }
}

pub fn device_page(_app: &App, req: &Request) -> Reply {
    Reply::html(200, pages::device(req.query("user_code").unwrap_or("")))
}

pub fn device_submit(app: &App, req: &Request) -> Reply {
    let form = req.form();
    let get = |k: &str| crate::util::field(&form, k).unwrap_or("");
    let code = normalize_user_code(get("user_code"));
    let approve = get("decision") == "approve";
    let now = now_ms();
    let mut st = app.lock();
    let found = st
        .devices
        .values_mut()
        .find(|d| d.user_code == code && d.expires_ms > now && d.status == DeviceStatus::Pending);
    match found {
        Some(d) => {
            d.status = if approve {
                DeviceStatus::Approved
            } else {
                DeviceStatus::Denied
            };
            Reply::html(200, pages::device_done(approve, &code))
        }
        None => Reply::html(
            400,
            pages::error(
                "Unknown code",
                "This code is unknown, expired or already used.",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn s256_vector() {
        // coze-py's test vector (`tests/test_auth.py`, `TestPKCEOAuthApp`).
        assert!(super::pkce_ok(
            "S256",
            "73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM",
            "code_verifier"
        ));
        assert!(!super::pkce_ok(
            "S256",
            "73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM",
            "other"
        ));
        assert!(super::pkce_ok("plain", "abc", "abc"));
    }
}
