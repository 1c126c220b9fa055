//! coze-auth end to end: the real binary against coze-fake, with stand-in browsers
//! (tests/fixtures/browser-*.sh: bash + curl clicking through the fake's consent page)
//! and, for --paste, consent clicks done here with raw HTTP.
//!
//! Each test listens on a port of its own (the default 8080 may be busy, and tests run
//! in parallel): a free port is picked first and passed in --redirect-uri.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

const CLIENT_ID: &str = "7484523878843318300.app.coze";

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/callback")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// coze-auth with a client ID, its own redirect port and a bounded wait.
fn auth(sb: &Sandbox, port: u16) -> Command {
    let mut c = sb.cmd("coze-auth");
    c.args([
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        &redirect_uri(port),
    ])
    .args(["--timeout", "30"]);
    c
}

/// The authorize URL coze-auth printed on stderr.
fn authorize_url(r: &Run) -> String {
    r.stderr
        .lines()
        .map(str::trim)
        .find(|l| l.contains("/api/permission/oauth2/") && l.contains("/authorize?"))
        .unwrap_or_else(|| panic!("no authorize URL on stderr\n{}", r.describe()))
        .to_owned()
}

/// A query parameter of `url`, percent-decoded.
fn param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The one record on stdout, checked to be the only line.
fn one_record(r: &Run) -> Value {
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.describe());
    assert!(r.stdout.ends_with('\n'), "{}", r.describe());
    r.records().remove(0)
}

/// Exchanges the grant at the fake's token endpoint, as coze-token would, with raw HTTP.
fn exchange(sb: &Sandbox, rec: &Value) -> (u16, Value) {
    let body = json!({
        "grant_type": "authorization_code",
        "code": rec["code"],
        "redirect_uri": rec["redirect_uri"],
        "client_id": rec["client_id"],
        "code_verifier": rec["code_verifier"],
    });
    let url = format!("{}/api/permission/oauth2/token", sb.base_url());
    let (status, text) = http_raw("POST", &url, Some(body.to_string()), &[]);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Checks an `authorization_code` record and that the fake trades it for a token.
fn assert_grant_works(sb: &Sandbox, r: &Run, redirect: &str) -> Value {
    let rec = one_record(r);
    assert_eq!(rec["type"], "authorization_code", "{}", r.describe());
    assert_eq!(rec["client_id"], CLIENT_ID);
    assert_eq!(rec["redirect_uri"], redirect);
    assert_eq!(rec["base_url"], sb.base_url());
    let verifier = rec["code_verifier"].as_str().unwrap();
    assert!((43..=128).contains(&verifier.len()), "{verifier}");
    let code = rec["code"].as_str().unwrap();
    assert!(code.starts_with("code_"), "{code}");
    assert!(
        !r.stderr.contains(verifier),
        "the verifier is on stderr\n{}",
        r.describe()
    );
    assert!(
        !r.stderr.contains(code),
        "the code is on stderr\n{}",
        r.describe()
    );
    let (status, answer) = exchange(sb, &rec);
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap_or_default();
    assert!(token.starts_with("czu_"), "{answer}");
    rec
}

/// One HTTP/1.1 request; returns the status and the Location header.
fn http_redirect(method: &str, url: &str, form: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = form.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, location)
}

/// What a person does in a browser elsewhere: open the URL, approve, and copy the URL
/// the browser is sent back to.
fn click_approve(authorize: &str) -> String {
    let (status, consent) = http_redirect("GET", authorize, None);
    assert_eq!(status, 302, "authorize answered {status}");
    let key = param(&consent, "authorize_key").expect("consent URL has authorize_key");
    let post = consent.split('?').next().unwrap();
    let (status, back) = http_redirect(
        "POST",
        post,
        Some(&format!("authorize_key={key}&decision=approve")),
    );
    assert_eq!(status, 302, "consent answered {status}");
    back
}

/// Runs coze-auth `--paste`: waits for the authorize URL on its stderr, then types
/// what `answer` makes of it on stdin.
fn paste_login(mut cmd: Command, answer: impl FnOnce(&str) -> String) -> Run {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines() {
            let line = line.unwrap_or_default();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("/api/permission/oauth2/authorize?") => break l.trim().to_owned(),
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("{what}: no authorize URL on stderr ({e})");
            }
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", answer(&url)).unwrap();
    drop(stdin);
    let out = wait_with_deadline(child, Duration::from_secs(30), &what);
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: reader.join().unwrap(),
        what,
    }
}

#[test]
fn browser_login_gives_a_code_the_fake_accepts() {
    let sb = Sandbox::new("auth-login");
    let port = free_port();
    let r = run(
        auth(&sb, port).env("BROWSER", fixture("browser-approve.sh")),
        "",
    );
    r.ok();
    assert!(
        r.stderr.contains("browser-approve: ok"),
        "the browser did not see the logged-in page\n{}",
        r.describe()
    );
    let url = authorize_url(&r);
    assert!(
        url.starts_with(&format!(
            "{}/api/permission/oauth2/authorize?",
            sb.base_url()
        )),
        "{url}"
    );
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(param(&url, "redirect_uri"), Some(redirect_uri(port)));
    assert_grant_works(&sb, &r, &redirect_uri(port));
}

#[test]
fn consent_denied_exits_4_with_the_description() {
    let sb = Sandbox::new("auth-deny");
    let port = free_port();
    // A BROWSER with a space runs through sh, the URL as "$1".
    let browser = format!("bash {}", fixture("browser-deny.sh").display());
    let r = run(auth(&sb, port).env("BROWSER", browser), "");
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(r.stderr.contains("browser-deny: ok"), "{}", r.describe());
    assert!(
        r.stderr.contains("The user denied the request"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("coze-auth: consent was denied"),
        "{}",
        r.describe()
    );
}

#[test]
fn forged_callbacks_are_refused_and_the_real_one_still_works() {
    let sb = Sandbox::new("auth-forged-then-real");
    let port = free_port();
    let r = run(
        auth(&sb, port).env("BROWSER", fixture("browser-forged-then-approve.sh")),
        "",
    );
    r.ok();
    assert!(
        r.stderr
            .contains("browser-forged-then-approve: ok, the forged callbacks were refused"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr
            .contains("browser-forged-then-approve: ok, the callback page says logged in"),
        "{}",
        r.describe()
    );
    let rec = assert_grant_works(&sb, &r, &redirect_uri(port));
    assert_ne!(rec["code"], "code_forged");
}

#[test]
fn only_a_forged_callback_ends_in_exit_4_naming_the_state() {
    let sb = Sandbox::new("auth-forged");
    let port = free_port();
    let start = Instant::now();
    let r = run(
        auth(&sb, port)
            .args(["--timeout", "2"])
            .env("BROWSER", fixture("browser-forged.sh")),
        "",
    );
    r.expect_code(4);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{}",
        r.describe()
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(r.stderr.contains("browser-forged: ok"), "{}", r.describe());
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("coze-auth: a callback with a wrong state was refused"),
        "{}",
        r.describe()
    );
}

#[test]
fn no_callback_times_out_with_exit_4() {
    let sb = Sandbox::new("auth-timeout");
    let port = free_port();
    // The client ID from the environment this time.
    let start = Instant::now();
    let r = run(
        sb.cmd("coze-auth")
            .env("COZE_CLIENT_ID", "42.app.coze")
            .args(["--redirect-uri", &redirect_uri(port)])
            .args(["--no-browser", "--timeout", "1"]),
        "",
    );
    r.expect_code(4);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(
        param(&authorize_url(&r), "client_id").as_deref(),
        Some("42.app.coze")
    );
    assert!(
        r.stderr.contains("coze-auth: no callback within 1 s;"),
        "{}",
        r.describe()
    );
}

#[test]
fn a_busy_port_is_one_line_naming_the_port_and_the_flag() {
    let sb = Sandbox::new("auth-busy");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let r = run(auth(&sb, port).arg("--no-browser"), "");
    assert_ne!(r.code(), 0, "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .starts_with(&format!("coze-auth: cannot listen on 127.0.0.1:{port} ")),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("--redirect-uri"), "{}", r.describe());
    drop(held);
}

#[test]
fn stray_requests_get_404_and_the_login_still_works() {
    let sb = Sandbox::new("auth-stray");
    let port = free_port();
    let r = run(
        auth(&sb, port)
            .arg("-v")
            .env("BROWSER", fixture("browser-stray-then-approve.sh")),
        "",
    );
    r.ok();
    assert!(
        r.stderr
            .contains("browser-stray-then-approve: ok, stray requests got 404"),
        "{}",
        r.describe()
    );
    // -v logs each request (without its query or the code: assert_grant_works checks).
    assert!(
        r.stderr
            .contains("coze-auth: callback GET /favicon.ico: not the callback (404)"),
        "{}",
        r.describe()
    );
    assert_grant_works(&sb, &r, &redirect_uri(port));
}

#[test]
fn paste_the_redirected_url() {
    let sb = Sandbox::new("auth-paste-url");
    // Pasting works with a redirect URI coze-auth could not serve itself.
    let redirect = "https://example.com/coze/callback";
    let mut cmd = sb.cmd("coze-auth");
    cmd.args([
        "--client-id",
        CLIENT_ID,
        "--redirect-uri",
        redirect,
        "--paste",
    ]);
    let r = paste_login(cmd, |url| {
        let back = click_approve(url);
        assert!(back.starts_with(redirect), "{back}");
        back
    });
    r.ok();
    assert_grant_works(&sb, &r, redirect);
}

#[test]
fn paste_a_bare_code() {
    let sb = Sandbox::new("auth-paste-code");
    let port = free_port();
    let mut cmd = auth(&sb, port);
    cmd.arg("--paste");
    let r = paste_login(cmd, |url| param(&click_approve(url), "code").unwrap());
    r.ok();
    assert_grant_works(&sb, &r, &redirect_uri(port));
}

#[test]
fn paste_with_a_wrong_state_exits_4() {
    let sb = Sandbox::new("auth-paste-state");
    let port = free_port();
    let r = run(
        auth(&sb, port).arg("--paste"),
        &format!("{}?code=code_x&state=not-ours\n", redirect_uri(port)),
    );
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(r.stderr.contains("state"), "{}", r.describe());
}

#[test]
fn a_non_loopback_redirect_uri_needs_paste() {
    let sb = Sandbox::new("auth-nonloopback");
    let r = run(
        sb.cmd("coze-auth")
            .args(["--client-id", CLIENT_ID, "--no-browser"])
            .args(["--redirect-uri", "https://example.com/callback"]),
        "",
    );
    r.expect_code(2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(r.stderr.contains("--paste"), "{}", r.describe());
}

#[test]
fn device_flow_prints_a_device_code_record_and_the_user_code() {
    let sb = Sandbox::new("auth-device");
    let r = run(
        sb.cmd("coze-auth")
            .args(["--client-id", CLIENT_ID, "--device"]),
        "",
    );
    r.ok();
    let rec = one_record(&r);
    assert_eq!(rec["type"], "device_code", "{}", r.describe());
    assert_eq!(rec["client_id"], CLIENT_ID);
    assert_eq!(rec["base_url"], sb.base_url());
    let user_code = rec["user_code"].as_str().unwrap();
    let uri = rec["verification_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/oauth/device", sb.base_url()));
    assert!(rec["interval"].as_u64().unwrap() > 0);
    assert!(rec["expires_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(r.stderr.contains(user_code), "{}", r.describe());
    assert!(
        r.stderr.contains(&format!("{uri}?user_code={user_code}")),
        "{}",
        r.describe()
    );
    let device_code = rec["device_code"].as_str().unwrap();
    assert!(!r.stderr.contains(device_code), "{}", r.describe());
    // The record is good: approve it as the person would, then poll once.
    let (status, _) = http_redirect(
        "POST",
        uri,
        Some(&format!("user_code={user_code}&decision=approve")),
    );
    assert_eq!(status, 200);
    let body = json!({
        "client_id": CLIENT_ID,
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device_code,
    });
    let (status, text) = http_raw(
        "POST",
        &format!("{}/api/permission/oauth2/token", sb.base_url()),
        Some(body.to_string()),
        &[],
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"access_token\":\"czu_"), "{text}");
}

#[test]
fn the_state_is_random_and_the_challenge_s256() {
    let sb = Sandbox::new("auth-state");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let r = run(
            auth(&sb, port).args(["--no-browser", "--timeout", "0.2"]),
            "",
        );
        r.expect_code(4);
        let url = authorize_url(&r);
        assert_eq!(
            param(&url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        let state = param(&url, "state").unwrap();
        assert!(state.len() >= 32, "{state}");
        let challenge = param(&url, "code_challenge").unwrap();
        assert_eq!(challenge.len(), 43, "{challenge}");
        seen.push((state, challenge));
    }
    assert_ne!(seen[0].0, seen[1].0);
    assert_ne!(seen[0].1, seen[1].1);
}

/// Puts an `xdg-open` running `body` first on PATH; returns the PATH to use.
fn path_with_xdg_open(sb: &Sandbox, body: &str) -> String {
    let dir = sb.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    write_script(&dir.join("xdg-open"), body);
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn without_browser_set_xdg_open_opens_the_url() {
    let sb = Sandbox::new("auth-xdg-open");
    let port = free_port();
    let approve = fixture("browser-approve.sh");
    let path = path_with_xdg_open(
        &sb,
        &format!(
            "#!/usr/bin/env bash\necho \"xdg-open: called with $#\" >&2\nexec bash {} \"$@\"\n",
            approve.display()
        ),
    );
    let r = run(auth(&sb, port).env("PATH", path), "");
    r.ok();
    assert!(
        r.stderr.contains("xdg-open: called with 1"),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("browser-approve: ok"), "{}", r.describe());
    assert_grant_works(&sb, &r, &redirect_uri(port));
}

#[test]
fn a_failing_xdg_open_is_a_warning_and_the_login_still_waits() {
    let sb = Sandbox::new("auth-xdg-open-fails");
    let port = free_port();
    let path = path_with_xdg_open(&sb, "#!/bin/sh\nexit 3\n");
    let r = run(
        auth(&sb, port).env("PATH", path).args(["--timeout", "2"]),
        "",
    );
    // Nobody opened the URL, so the wait ends at the timeout, not at the failure.
    r.expect_code(4);
    assert!(
        r.stderr.contains(
            "coze-auth: warning: the browser command \"xdg-open\" exited with exit status: 3; \
             open the URL above by hand"
        ),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr.contains("coze-auth: no callback within 2 s;"),
        "{}",
        r.describe()
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
}

/// Where the authorize page is: `--region com` picks www.coze.com, `--workspace-id`
/// the workspace path, `--www-url` and `COZE_WWW_BASE` any host (the flag first).
#[test]
fn region_workspace_and_www_url_shape_the_authorize_url() {
    let sb = Sandbox::new("auth-www");
    let port = free_port();
    let url_for = |cmd: &mut Command| {
        let r = run(cmd.args(["--no-browser", "--timeout", "1"]), "");
        r.expect_code(4);
        authorize_url(&r)
    };
    let url = url_for(auth(&sb, port).env_remove("COZE_API_BASE").args([
        "--region",
        "com",
        "--workspace-id",
        "7400",
    ]));
    assert!(
        url.starts_with("https://www.coze.com/api/permission/oauth2/workspace_id/7400/authorize?"),
        "{url}"
    );
    let url = url_for(auth(&sb, port).env_remove("COZE_API_BASE"));
    assert!(
        url.starts_with("https://www.coze.cn/api/permission/oauth2/authorize?"),
        "{url}"
    );
    let url = url_for(auth(&sb, port).env("COZE_WWW_BASE", "http://127.0.0.1:9/"));
    assert!(
        url.starts_with("http://127.0.0.1:9/api/permission/oauth2/authorize?"),
        "{url}"
    );
    let url = url_for(
        auth(&sb, port)
            .env("COZE_WWW_BASE", "http://127.0.0.1:9/")
            .args(["--www-url", "http://localhost:8/"]),
    );
    assert!(
        url.starts_with("http://localhost:8/api/permission/oauth2/authorize?"),
        "{url}"
    );
}
