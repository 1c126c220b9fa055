//! The OAuth side of Coze: the authorize URL, and the token endpoint's grants
//! (authorization code + PKCE, refresh, device code, a service app's JWT; a web app's
//! client secret as bearer) as the Coze API docs describe them (`oauth_pkce`,
//! `oauth_device_code`, `oauth_jwt`, `oauth_code`) and the official SDKs send them
//! (coze-py `cozepy/auth/__init__.py`, coze-go `auth.go`).
//!
//! Bodies are JSON (not form-encoded); success bodies are bare objects whose
//! `expires_in` is an absolute Unix time, which we store as `expires_at`. Errors are
//! decided on the body (`error_code`/`error`), not the status. Signing a JWT is `jwt`'s
//! job, storing tokens `store`'s, deciding when to renew `renew`'s, getting a person's
//! consent coze-auth's.

use serde_json::{json, Map, Value};

use super::jwt::{audience, encode, Claims, Header, JwtGrant, SigningKey};
use crate::error::{ApiError, Error, Result};
use crate::http::{backoff, Dialect, Http, Request};
use crate::protocol::{AuthorizationCode, DeviceCode, Token};
use crate::support::{redact, url};

/// The `grant_type` of a device-code poll (RFC 8628's name).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The `grant_type` of a service app's JWT exchange (RFC 7523's name).
pub const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What goes into the authorize URL.
#[derive(Debug, Clone)]
pub struct Authorize<'a> {
    /// The web host of the pages (`https://www.coze.cn`; see `config::www_base`), not
    /// the API host.
    pub www_base: &'a str,
    /// The OAuth app's client id.
    pub client_id: &'a str,
    /// Where the browser comes back with the code: one of the app's registered
    /// redirect URLs.
    pub redirect_uri: &'a str,
    /// The random value the callback must bring back
    /// ([`random_state`](super::pkce::random_state)).
    pub state: &'a str,
    /// The PKCE S256 challenge of the verifier kept for the exchange.
    pub code_challenge: &'a str,
    /// A workspace to log in to (enterprise editions); `None` for the usual login.
    pub workspace_id: Option<&'a str>,
}

/// `{www}/api/permission/oauth2/authorize?...` (or the workspace variant), S256 always.
pub fn authorize_url(a: &Authorize<'_>) -> String {
    let path = match a.workspace_id {
        Some(ws) => format!(
            "/api/permission/oauth2/workspace_id/{}/authorize",
            url::encode(ws)
        ),
        None => "/api/permission/oauth2/authorize".to_owned(),
    };
    let query = url::query(&[
        ("response_type", "code"),
        ("client_id", a.client_id),
        ("redirect_uri", a.redirect_uri),
        ("state", a.state),
        ("code_challenge", a.code_challenge),
        ("code_challenge_method", "S256"),
    ]);
    format!("{}{path}?{query}", url::trim_base(a.www_base))
}

fn token_endpoint(api_base: &str) -> String {
    format!("{}/api/permission/oauth2/token", url::trim_base(api_base))
}

/// Values below this are lifetimes, not Unix times: a defensive reading of
/// `expires_in`, which Coze documents as absolute Unix seconds (the Coze API docs,
/// `oauth_pkce`; every official SDK reads it so).
const ABSOLUTE_TIME_FLOOR: i64 = 1_000_000_000;

/// Builds our `token` record from a token endpoint success body.
pub fn token_from_response(
    body: Value,
    client_id: Option<&str>,
    base_url: &str,
    now: i64,
) -> Result<Token> {
    let Value::Object(mut obj) = body else {
        return Err(Error::Protocol(
            "token endpoint answered something that is not a JSON object".into(),
        ));
    };
    let access_token = match obj.remove("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(Error::Api(ApiError {
                status: 200,
                code: crate::error::ApiCode::Http,
                msg: "the token endpoint's answer has no access_token".into(),
                logid: None,
                retry_after: None,
                debug_url: None,
            }))
        }
    };
    redact::register(&access_token);
    let expires_in = obj
        .remove("expires_in")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let expires_at = match expires_in {
        0 => 0,
        v if v < ABSOLUTE_TIME_FLOOR => now + v,
        v => v,
    };
    let refresh_token = match obj.remove("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => {
            redact::register(&s);
            Some(s)
        }
        _ => None,
    };
    let token_type = match obj.remove("token_type") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => "Bearer".to_owned(),
    };
    // How long the token was issued for: renewing scales its margin to it
    // (`renew::renew_margin`), so a short-lived token is not renewed on every use.
    let mut extra = Map::new();
    if expires_at > now {
        extra.insert(LIFETIME.to_owned(), (expires_at - now).into());
    }
    Ok(Token {
        access_token,
        token_type,
        expires_at,
        refresh_token,
        client_id: client_id.map(str::to_owned),
        base_url: Some(url::trim_base(base_url).to_owned()),
        extra,
    })
}

/// `http.json` in the OAuth dialect. A server without OAuth gets the advice to use a
/// personal access token instead: a self-hosted Coze Studio has no OAuth endpoints and
/// answers them 401 "missing session_key in cookie" (coze-dev/coze-studio
/// `backend/api/middleware/session.go`).
fn oauth_json(http: &Http, req: &Request<'_>) -> Result<Value> {
    http.json(req, Dialect::OAuth).map_err(|e| {
        let base = url::parse(&req.url)
            .map(|p| match p.port {
                Some(port) => format!("{}://{}:{port}", p.scheme, p.host),
                None => format!("{}://{}", p.scheme, p.host),
            })
            .unwrap_or_default();
        without_oauth(e, &base)
    })
}

/// `e` unchanged, or, when it says the server has no OAuth endpoint, an authentication
/// error (exit 4) that says what to use instead.
pub fn without_oauth(e: Error, base: &str) -> Error {
    if !e
        .api()
        .is_some_and(crate::error::ApiError::is_missing_endpoint)
    {
        return e;
    }
    Error::Auth(format!(
        "{base} has no OAuth login (a self-hosted Coze Studio has none; it answered: {}): \
         use a personal access token instead: make one in the server's web UI (API \
         tokens), then `export COZE_API_TOKEN=pat_…`, or keep it in a profile with \
         `coze-token --pat --base-url {base} --save < pat.txt`",
        e.root()
    ))
}

/// Asks the token endpoint whether the server offers OAuth at all, before a person is
/// sent to a browser for nothing. Only the "no such endpoint" answer of a server
/// without OAuth is an error; any other answer (the expected complaint about an empty
/// request, a network failure) leaves the login to find out for itself.
pub fn check_offered(http: &Http, api_base: &str) -> Result<()> {
    let body = json!({});
    let req = Request::post(token_endpoint(api_base), &body).once();
    match oauth_json(http, &req) {
        Err(e @ Error::Auth(_)) => Err(e),
        _ => Ok(()),
    }
}

/// The token record field that holds the seconds a token was issued for.
pub const LIFETIME: &str = "lifetime";

/// Exchanges coze-auth's code (PKCE; a web app adds its client secret as bearer). A
/// web app's code may come without a verifier (a confidential client's login without
/// PKCE): then the secret is what authenticates the exchange, and without one the
/// code is not sent at all (the server would refuse it, and a code works once).
pub fn exchange_code(
    http: &Http,
    grant: &AuthorizationCode,
    client_secret: Option<&str>,
    now: i64,
) -> Result<Token> {
    redact::register(&grant.code);
    let verifier = grant.code_verifier.as_deref().filter(|v| !v.is_empty());
    if verifier.is_none() && client_secret.is_none() {
        return Err(Error::Auth(
            "the authorization code has no code_verifier (a web app's login without PKCE): \
             give the app's client secret with --client-secret-file PATH (or \
             COZE_CLIENT_SECRET)"
                .into(),
        ));
    }
    let mut body = json!({
        "grant_type": "authorization_code",
        "code": grant.code,
        "redirect_uri": grant.redirect_uri,
        "client_id": grant.client_id,
    });
    if let Some(v) = verifier {
        redact::register(v);
        body["code_verifier"] = v.into();
    }
    let mut req = Request::post(token_endpoint(&grant.base_url), &body);
    if let Some(secret) = client_secret {
        req = req.bearer(secret);
    }
    let answer = oauth_json(http, &req).map_err(|e| {
        let refused = e.api().and_then(|a| a.oauth_code()) == Some("invalid_client");
        let e = e.context("exchanging the authorization code");
        match (refused, client_secret) {
            (true, None) => {
                e.with_hint("a web app needs its client secret: --client-secret-file PATH")
            }
            _ => e,
        }
    })?;
    token_from_response(answer, Some(&grant.client_id), &grant.base_url, now)
}

/// Trades a refresh token for a new pair. The refresh token sent is dead afterwards
/// (Coze rotates them): the caller must store the new pair before anything else. A
/// refresh token the server refused itself is [`Error::RefreshRefused`].
pub fn refresh(
    http: &Http,
    api_base: &str,
    refresh_token: &str,
    client_id: &str,
    client_secret: Option<&str>,
    now: i64,
) -> Result<Token> {
    redact::register(refresh_token);
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id});
    let mut req = Request::post(token_endpoint(api_base), &body);
    if let Some(secret) = client_secret {
        req = req.bearer(secret);
    }
    let answer = oauth_json(http, &req).map_err(|e| match e.api() {
        // The app, not the refresh token, was refused: a web app without its secret.
        Some(api) if api.oauth_code() == Some("invalid_client") => {
            let hint = if client_secret.is_some() {
                "check the web app's client secret"
            } else {
                "a web app refreshes with its client secret: --client-secret-file PATH"
            };
            e.context("refreshing the token").with_hint(hint)
        }
        // Coze says `invalid_request` (or similar) for a used or expired refresh token;
        // what the user needs to know is that only a new login helps.
        Some(api) if api.oauth_code().is_some() && api.oauth_code() != Some("internal_error") => {
            Error::RefreshRefused(format!(
                "the refresh token was refused ({api}); it is used up (refresh tokens work once) or expired: \
             log in again with `coze-auth | coze-token --save`"
            ))
        }
        _ => e.context("refreshing the token"),
    })?;
    token_from_response(answer, Some(client_id), api_base, now)
}

/// Trades a signed JWT (the Coze API docs, `oauth_jwt`; [`mint`] signs it) for an
/// access token. There is no refresh token: the next token takes a new JWT.
pub fn jwt_token(
    http: &Http,
    api_base: &str,
    jwt: &str,
    duration_seconds: u32,
    client_id: &str,
    now: i64,
) -> Result<Token> {
    redact::register(jwt);
    let body = json!({"duration_seconds": duration_seconds, "grant_type": JWT_GRANT});
    // Each JWT works once: a lost answer must not be retried with the same one
    // ([`mint`] signs a new JWT for each attempt).
    let req = Request::post(token_endpoint(api_base), &body)
        .bearer(jwt)
        .once();
    let answer = oauth_json(http, &req).map_err(|e| {
        let refused = e.api().and_then(|a| a.oauth_code()) == Some("invalid_client");
        let e = e.context("minting a token with the service app's JWT");
        if refused {
            e.with_hint(
                "check the app id, the kid, and that the key is the one whose public key \
                 is registered with the app",
            )
        } else {
            e
        }
    })?;
    let mut token = token_from_response(answer, Some(client_id), api_base, now)?;
    // A JWT token is renewed by minting, never refreshed, whatever the server sends.
    token.refresh_token = None;
    Ok(token)
}

/// Signs a fresh JWT for `grant` and trades it at `api_base`'s token endpoint. The
/// token record that comes back says how to mint the next one.
pub fn mint(http: &Http, api_base: &str, grant: &JwtGrant, now: i64) -> Result<Token> {
    let key = SigningKey::load(&grant.key_file)?;
    let mut attempt = 0;
    loop {
        // A new JWT (new jti) for every attempt: the server refuses a reused one, and a
        // lost answer may mean the last one was already spent.
        let claims = Claims::new(
            &grant.client_id,
            &audience(api_base),
            now,
            grant.session_name.as_deref(),
        )?;
        let jwt = encode(&Header::rs256(&grant.kid), &claims, &key)?;
        redact::register(&jwt);
        match jwt_token(http, api_base, &jwt, grant.ttl, &grant.client_id, now) {
            Ok(mut token) => {
                grant.record_into(&mut token.extra);
                return Ok(token);
            }
            Err(e) if attempt < http.config().retries && transient(&e) => {
                let c = http.config();
                std::thread::sleep(backoff(c.backoff_base, c.backoff_cap, attempt));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Worth a new attempt: the network, 5xx, rate limits.
fn transient(e: &Error) -> bool {
    matches!(e.root(), Error::Network(_)) || e.api().is_some_and(|a| a.is_transient())
}

/// Asks for a device code (the Coze API docs, `oauth_device_code`), for an app of type
/// *TV / device / CLI*; `workspace_id` asks for the workspace variant.
pub fn request_device_code(
    http: &Http,
    api_base: &str,
    client_id: &str,
    workspace_id: Option<&str>,
    now: i64,
) -> Result<DeviceCode> {
    let base = url::trim_base(api_base);
    let endpoint = match workspace_id {
        Some(ws) => format!(
            "{base}/api/permission/oauth2/workspace_id/{}/device/code",
            url::encode(ws)
        ),
        None => format!("{base}/api/permission/oauth2/device/code"),
    };
    let body = json!({"client_id": client_id});
    let v = oauth_json(http, &Request::post(endpoint, &body))
        .map_err(|e| e.context("requesting a device code"))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let missing = |k: &str| Error::Protocol(format!("the device code answer has no {k}"));
    let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
    redact::register(&device_code);
    // The docs type user_code as an integer but show a string (`oauth_device_code`).
    let user_code = text("user_code")
        .or_else(|| {
            v.get("user_code")
                .and_then(Value::as_i64)
                .map(|n| n.to_string())
        })
        .ok_or_else(|| missing("user_code"))?;
    Ok(DeviceCode {
        device_code,
        user_code,
        verification_uri: text("verification_uri").ok_or_else(|| missing("verification_uri"))?,
        interval: v
            .get("interval")
            .and_then(Value::as_u64)
            .filter(|i| *i > 0)
            .unwrap_or(5),
        // Here expires_in is a lifetime (the opposite of the token endpoint's).
        expires_at: now + v.get("expires_in").and_then(Value::as_i64).unwrap_or(300),
        client_id: client_id.to_owned(),
        base_url: base.to_owned(),
        extra: Map::new(),
    })
}

/// What one device poll said.
#[derive(Debug)]
pub enum DevicePoll {
    /// Approved: the token, ready to store.
    Token(Token),
    /// `authorization_pending`: the person has not approved yet; poll again after the
    /// interval.
    Pending,
    /// `slow_down`: polling too often; lengthen the interval, then poll again.
    SlowDown,
}

/// Polls the token endpoint once for a device code.
pub fn poll_device(http: &Http, grant: &DeviceCode, now: i64) -> Result<DevicePoll> {
    redact::register(&grant.device_code);
    let body = json!({"client_id": grant.client_id, "grant_type": DEVICE_GRANT, "device_code": grant.device_code});
    match oauth_json(http, &Request::post(token_endpoint(&grant.base_url), &body)) {
        Ok(v) => Ok(DevicePoll::Token(token_from_response(
            v,
            Some(&grant.client_id),
            &grant.base_url,
            now,
        )?)),
        Err(e) => match e.api().and_then(|a| a.oauth_code()) {
            Some("authorization_pending") => Ok(DevicePoll::Pending),
            Some("slow_down") => Ok(DevicePoll::SlowDown),
            Some("access_denied") => Err(Error::Auth("the device login was denied".into())),
            Some("expired_token") => Err(Error::Auth(
                "the device code expired before it was approved: run coze-auth --device again"
                    .into(),
            )),
            _ => Err(e.context("polling for the device login")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_matches_the_sdk_vector() {
        // coze-py's vector (`tests/test_auth.py`, `TestPKCEOAuthApp`), modulo py's `+`
        // for spaces, which is the form encoding.
        let u = authorize_url(&Authorize {
            www_base: "https://www.coze.com/",
            client_id: "client id",
            redirect_uri: "https://example.com",
            state: "state",
            code_challenge: "73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM",
            workspace_id: None,
        });
        assert_eq!(
            u,
            "https://www.coze.com/api/permission/oauth2/authorize?response_type=code&client_id=client%20id\
             &redirect_uri=https%3A%2F%2Fexample.com&state=state\
             &code_challenge=73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM&code_challenge_method=S256"
        );
        let w = authorize_url(&Authorize {
            workspace_id: Some("77"),
            ..Authorize {
                www_base: "https://www.coze.cn",
                client_id: "c",
                redirect_uri: "r",
                state: "s",
                code_challenge: "x",
                workspace_id: None,
            }
        });
        assert!(
            w.starts_with("https://www.coze.cn/api/permission/oauth2/workspace_id/77/authorize?"),
            "{w}"
        );
    }

    #[test]
    fn expires_in_is_absolute_with_a_lifetime_fallback() {
        let now = 1_800_000_000;
        let t = token_from_response(
            json!({"access_token":"czu_abcdefgh","expires_in":1_800_000_900,"refresh_token":"r12345678"}),
            Some("c"),
            "http://127.0.0.1:1/",
            now,
        )
        .unwrap();
        assert_eq!(t.expires_at, 1_800_000_900);
        assert_eq!(t.extra[LIFETIME], 900, "the lifetime is recorded");
        assert_eq!(t.refresh_token.as_deref(), Some("r12345678"));
        assert_eq!(t.base_url.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(t.token_type, "Bearer");
        let t = token_from_response(
            json!({"access_token":"czs_abcdefgh","expires_in":900}),
            None,
            "b",
            now,
        )
        .unwrap();
        assert_eq!(t.expires_at, now + 900);
        assert_eq!(t.refresh_token, None);
        assert!(token_from_response(json!({"expires_in":1}), None, "b", now).is_err());
    }
}
