//! Integration tests of coze-fake's OAuth side over real sockets, with the raw HTTP/1.1
//! client of tests/common: the consent page (approve, deny, auto-approve), PKCE and
//! code reuse, refresh-token rotation (even when the client gave up waiting), the
//! device flow's pending, slow_down and approval, and the 401 4100 (with its logid)
//! an API call with a bad bearer gets. The chat and conversation endpoints are tested
//! in fake.rs.

mod common;

use std::time::Duration;

use common::{call, get, post_json, start, Conn, Resp, PAT};
use coze_fake::{Fake, Options};
use serde_json::json;

fn query_param(url: &str, k: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&')
        .find_map(|p| p.strip_prefix(&format!("{k}=")).map(str::to_string))
}

const VERIFIER: &str = "code_verifier";
const CHALLENGE: &str = "73oehA2tBul5grZPhXUGQwNAjxh69zNES8bu2bVD0EM";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

fn authorize_path(state: &str) -> String {
    format!(
        "/api/permission/oauth2/authorize?response_type=code&client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state={state}&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )
}

/// Authorize, load the consent page, click `decision`; returns the redirect back.
fn click(fake: &Fake, decision: &str) -> String {
    let r = call(fake, "GET", &authorize_path("xyz"), &[], b"");
    assert_eq!(r.status, 302);
    let consent = r.header("location").unwrap().to_string();
    assert!(consent.starts_with(&format!("{}/oauth/consent?authorize_key=", fake.base_url())));
    let key = query_param(&consent, "authorize_key").unwrap();
    let page = call(fake, "GET", &consent[fake.base_url().len()..], &[], b"");
    assert_eq!(page.status, 200);
    let html = page.text();
    for needle in [
        "<form method=\"POST\" action=\"/oauth/consent\"",
        "id=\"approve\"",
        "id=\"deny\"",
        "cid",
        &key,
    ] {
        assert!(html.contains(needle), "consent page lacks {needle}");
    }
    let form = format!("authorize_key={key}&decision={decision}");
    let r = call(
        fake,
        "POST",
        "/oauth/consent",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(r.status, 302);
    r.header("location").unwrap().to_string()
}

fn exchange(fake: &Fake, code: &str, verifier: &str) -> Resp {
    post_json(
        fake,
        "/api/permission/oauth2/token",
        None,
        &json!({"grant_type":"authorization_code","code":code,"redirect_uri":REDIRECT,"client_id":"cid","code_verifier":verifier}),
    )
}

#[test]
fn consent_approve_gives_code_and_tokens() {
    let fake = start(Options::default());
    let back = click(&fake, "approve");
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("xyz"));
    let code = query_param(&back, "code").unwrap();
    assert!(code.starts_with("code_"));
    let r = exchange(&fake, &code, VERIFIER);
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert!(t["access_token"].as_str().unwrap().starts_with("czu_"));
    assert_eq!(t["token_type"], "Bearer");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = t["expires_in"].as_u64().unwrap();
    assert!(
        exp >= now + 890 && exp <= now + 910,
        "expires_in must be absolute"
    );
    let me = get(&fake, "/v1/users/me", t["access_token"].as_str().unwrap());
    assert_eq!(me.json()["data"]["user_name"], "fake_user");
    assert_eq!(fake.stats()["grants"]["authorization_code"], 1);
}

#[test]
fn auto_approve_redirects_straight_back() {
    let fake = start(Options {
        auto_approve: true,
        ..Options::default()
    });
    let r = call(&fake, "GET", &authorize_path("s1"), &[], b"");
    let back = r.header("location").unwrap();
    assert!(
        back.starts_with(&format!("{REDIRECT}?code=code_")),
        "{back}"
    );
}

#[test]
fn consent_deny_redirects_with_access_denied() {
    let fake = start(Options::default());
    let back = click(&fake, "deny");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("xyz"));
    assert!(query_param(&back, "code").is_none());
}

#[test]
fn pkce_mismatch_and_code_reuse_rejected() {
    let fake = start(Options::default());
    let code = query_param(&click(&fake, "approve"), "code").unwrap();
    let r = exchange(&fake, &code, "wrong_verifier");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_code"], "invalid_request");
    assert_eq!(r.json()["error_message"], "invalid request: code_verifier");

    let code = query_param(&click(&fake, "approve"), "code").unwrap();
    assert_eq!(exchange(&fake, &code, VERIFIER).status, 200);
    let again = exchange(&fake, &code, VERIFIER);
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error_code"], "invalid_request");

    // Form bodies are not what Coze takes.
    let r = call(
        &fake,
        "POST",
        "/api/permission/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=refresh_token&refresh_token=x",
    );
    assert_eq!(r.json()["error_code"], "invalid_request");
    let r = post_json(
        &fake,
        "/api/permission/oauth2/token",
        None,
        &json!({"grant_type":"password"}),
    );
    assert_eq!(r.json()["error_code"], "unsupported_grant_type");
    assert_eq!(
        r.json()["error_message"],
        "not supported grant type: password"
    );
}

#[test]
fn refresh_rotates() {
    let fake = start(Options::default());
    let code = query_param(&click(&fake, "approve"), "code").unwrap();
    let first = exchange(&fake, &code, VERIFIER).json();
    let refresh = |rt: &str| {
        post_json(
            &fake,
            "/api/permission/oauth2/token",
            None,
            &json!({"grant_type":"refresh_token","refresh_token":rt,"client_id":"cid"}),
        )
    };
    let rt1 = first["refresh_token"].as_str().unwrap();
    let second = refresh(rt1);
    assert_eq!(second.status, 200);
    let second = second.json();
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    let old = refresh(rt1);
    assert_eq!(old.status, 400);
    assert_eq!(old.json()["error_code"], "invalid_request");
    assert_eq!(refresh(rt2).status, 200);
    // The old access token stays valid until it expires...
    assert_eq!(
        get(
            &fake,
            "/v1/users/me",
            first["access_token"].as_str().unwrap()
        )
        .status,
        200
    );
    // ...and /_fake/expire ends every one.
    fake.expire_tokens();
    let r = get(
        &fake,
        "/v1/users/me",
        second["access_token"].as_str().unwrap(),
    );
    assert_eq!(r.json()["code"], 4100);
    let s = fake.stats();
    assert_eq!(s["refreshes"], 2);
    assert_eq!(s["grants"]["refresh_token"], 2);
}

#[test]
fn bad_bearer_gets_401_4100_with_logid() {
    let fake = start(Options::default());
    for auth in [None, Some("Bearer nope")] {
        let h: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = call(&fake, "GET", "/v1/users/me", &h, b"");
        assert_eq!(r.status, 401);
        let b = r.json();
        assert_eq!(b["code"], 4100);
        assert_eq!(b["msg"], "authentication is invalid");
        let logid = r.header("x-tt-logid").unwrap();
        assert_eq!(logid.len(), 30);
        assert_eq!(b["detail"]["logid"], logid);
    }
    assert_eq!(get(&fake, "/v1/users/me", PAT).status, 200);
    let r = call(&fake, "GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
}

#[test]
fn device_flow_pending_slow_down_approve() {
    let fake = start(Options {
        device_interval: 1,
        ..Options::default()
    });
    let d = post_json(
        &fake,
        "/api/permission/oauth2/device/code",
        None,
        &json!({"client_id":"dev"}),
    )
    .json();
    assert_eq!(d["interval"], 1);
    assert_eq!(d["expires_in"], 300);
    assert_eq!(
        d["verification_uri"],
        format!("{}/oauth/device", fake.base_url())
    );
    let user_code = d["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    let poll = || {
        post_json(
            &fake,
            "/api/permission/oauth2/token",
            None,
            &json!({"grant_type":"urn:ietf:params:oauth:grant-type:device_code","device_code":d["device_code"],"client_id":"dev"}),
        )
    };
    let p = poll();
    assert_eq!(p.status, 400);
    assert_eq!(p.json()["error_code"], "authorization_pending");
    assert_eq!(p.json()["error"], "authorization_pending");
    assert_eq!(poll().json()["error_code"], "slow_down");

    let page = call(
        &fake,
        "GET",
        &format!("/oauth/device?user_code={user_code}"),
        &[],
        b"",
    );
    assert!(page.text().contains(&format!("value=\"{user_code}\"")));
    let form = format!("user_code={user_code}&decision=approve");
    let done = call(&fake, "POST", "/oauth/device", &[], form.as_bytes());
    assert_eq!(done.status, 200);
    assert!(done.text().contains("approved"));
    let t = poll();
    assert_eq!(t.status, 200, "{}", t.text());
    assert!(t.json()["refresh_token"].is_string());
    assert_eq!(
        poll().json()["error_code"],
        "invalid_request",
        "device code is spent"
    );
    let bad = call(
        &fake,
        "POST",
        "/oauth/device",
        &[],
        b"user_code=ZZZZ-ZZZZ&decision=approve",
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn delay_fault_still_rotates_the_refresh_token() {
    let fake = start(Options {
        auto_approve: true,
        ..Options::default()
    });
    let back = call(&fake, "GET", &authorize_path("d"), &[], b"")
        .header("location")
        .unwrap()
        .to_string();
    let t = exchange(&fake, &query_param(&back, "code").unwrap(), VERIFIER).json();
    let rt = t["refresh_token"].as_str().unwrap();
    fake.push_fault("token", json!({"type":"delay","ms":2000}), 1);
    {
        // The client gives up before the answer arrives.
        let mut c = Conn::open(&fake);
        let body =
            json!({"grant_type":"refresh_token","refresh_token":rt,"client_id":"cid"}).to_string();
        c.send(
            "POST",
            "/api/permission/oauth2/token",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = post_json(
        &fake,
        "/api/permission/oauth2/token",
        None,
        &json!({"grant_type":"refresh_token","refresh_token":rt,"client_id":"cid"}),
    );
    assert_eq!(
        r.json()["error_code"],
        "invalid_request",
        "the delayed refresh already rotated"
    );
    let log = fake.log();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|e| !e.to_string().contains(rt)),
        "log never holds tokens"
    );
}
