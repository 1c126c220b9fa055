//! `coze-auth doctor` end to end: one line per check against coze-fake, and the exit
//! status that the worst line calls for.

use std::net::TcpListener;

use crate::util::*;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn doctor(sb: &Sandbox, port: u16) -> std::process::Command {
    let mut c = sb.cmd("coze-auth");
    c.args([
        "doctor",
        "--redirect-uri",
        &format!("http://127.0.0.1:{port}/callback"),
    ]);
    c
}

/// The line of check `name`.
fn line<'a>(r: &'a Run, name: &str) -> &'a str {
    r.stdout
        .lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
        })
        .unwrap_or_else(|| panic!("no {name} line\n{}", r.describe()))
}

const CHECKS: [&str; 10] = [
    "region",
    "proxy",
    "trust",
    "clock",
    "redirect URI",
    "callback port",
    "credentials",
    "token file",
    "token",
    "api",
];

#[test]
fn after_a_login_every_check_is_ok() {
    let sb = Sandbox::new("doctor-ok");
    sb.login();
    let port = free_port();
    let r = run(&mut doctor(&sb, port), "");
    r.ok();
    assert_eq!(r.stdout.lines().count(), CHECKS.len(), "{}", r.describe());
    for name in CHECKS {
        let l = line(&r, name);
        assert!(l.starts_with("ok    "), "{name}: {l}\n{}", r.describe());
    }
    assert!(
        line(&r, "region").contains(&format!("a local API at {}", sb.base_url())),
        "{}",
        r.describe()
    );
    assert!(
        line(&r, "region").contains("COZE_API_BASE"),
        "{}",
        r.describe()
    );
    assert!(
        line(&r, "clock").contains("in step with the server") || line(&r, "clock").contains("1 s "),
        "{}",
        r.describe()
    );
    assert!(
        line(&r, "callback port").contains(&format!("127.0.0.1:{port} is free")),
        "{}",
        r.describe()
    );
    assert!(
        line(&r, "token file").contains("mode 0600"),
        "{}",
        r.describe()
    );
    assert!(line(&r, "token").contains("expires in"), "{}", r.describe());
    assert!(line(&r, "api").contains("扣子测试用户"), "{}", r.describe());
    assert!(r.stderr.is_empty(), "{}", r.describe());
    assert_eq!(sb.stats()["requests"]["users.me"], 1, "{}", sb.stats());
    // The token never appears.
    let token = read_token(&sb.token_path());
    assert!(
        !r.stdout.contains(token["access_token"].as_str().unwrap()),
        "{}",
        r.describe()
    );
}

#[test]
fn a_token_file_others_can_read_fails_with_exit_4() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new("doctor-0644");
    sb.login();
    let path = sb.token_path();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&mut doctor(&sb, free_port()), "");
    r.expect_code(4);
    let l = line(&r, "token file");
    assert!(l.starts_with("FAIL  token file: "), "{}", r.describe());
    assert!(
        l.contains("mode 0644") && l.contains(&format!("chmod 600 {}", path.display())),
        "{}",
        r.describe()
    );
    // The token itself still works, and the rest is still reported.
    assert!(line(&r, "api").starts_with("ok    "), "{}", r.describe());
    assert!(line(&r, "clock").starts_with("ok    "), "{}", r.describe());
}

#[test]
fn a_busy_callback_port_fails() {
    let sb = Sandbox::new("doctor-busy");
    sb.login();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let r = run(&mut doctor(&sb, port), "");
    r.expect_code(1);
    let l = line(&r, "callback port");
    assert!(
        l.starts_with(&format!("FAIL  callback port: 127.0.0.1:{port} is in use")),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("FAIL")).count(),
        1,
        "{}",
        r.describe()
    );
    drop(held);
}

#[test]
fn no_token_fails_and_skips_the_live_check() {
    let sb = Sandbox::new("doctor-none");
    let r = run(&mut doctor(&sb, free_port()), "");
    assert_ne!(r.code(), 0, "{}", r.describe());
    r.expect_code(4);
    let l = line(&r, "token file");
    assert!(
        l.starts_with("FAIL  token file: no token file at "),
        "{}",
        r.describe()
    );
    assert!(l.contains("coze-token --save"), "{}", r.describe());
    assert!(line(&r, "api").starts_with("skip  "), "{}", r.describe());
    assert_eq!(sb.stats()["requests"]["users.me"], serde_json::Value::Null);
}

#[test]
fn proxy_credentials_are_redacted_and_no_proxy_is_honoured() {
    let sb = Sandbox::new("doctor-proxy");
    sb.login();
    let r = run(
        doctor(&sb, free_port())
            .env("HTTP_PROXY", "http://ada:s3cret@127.0.0.1:9")
            .env("NO_PROXY", "localhost,127.0.0.0/8"),
        "",
    );
    r.ok();
    let l = line(&r, "proxy");
    assert_eq!(
        l,
        "ok    proxy: NO_PROXY=localhost,127.0.0.0/8 exempts 127.0.0.1: direct connections \
         to 127.0.0.1",
        "{}",
        r.describe()
    );
    // Without the exemption the report names the proxy, its variable, and no secret.
    let r = run(
        doctor(&sb, free_port()).env("HTTP_PROXY", "http://ada:s3cret@127.0.0.1:9"),
        "",
    );
    let l = line(&r, "proxy");
    assert!(
        l.starts_with(
            "warn  proxy: requests to 127.0.0.1 go through http://***@127.0.0.1:9 from HTTP_PROXY"
        ),
        "{}",
        r.describe()
    );
    for secret in ["s3cret", "ada"] {
        assert!(!r.stdout.contains(secret), "{}", r.describe());
        assert!(!r.stderr.contains(secret), "{}", r.describe());
    }
    // The report is the truth: the requests did go to the (closed) proxy port.
    assert!(
        line(&r, "clock").contains("through the proxy http://***@127.0.0.1:9"),
        "{}",
        r.describe()
    );
}

#[test]
fn a_bad_redirect_uri_fails_and_help_lists_the_checks() {
    let sb = Sandbox::new("doctor-redirect");
    sb.login();
    let r = run(
        sb.cmd("coze-auth")
            .args(["doctor", "--redirect-uri", "https://example.com/callback"]),
        "",
    );
    r.expect_code(1);
    assert!(
        line(&r, "redirect URI").starts_with("FAIL  "),
        "{}",
        r.describe()
    );
    assert!(
        line(&r, "callback port").starts_with("skip  "),
        "{}",
        r.describe()
    );
    let r = run(sb.cmd("coze-auth").args(["doctor", "--help"]), "");
    r.ok();
    for name in CHECKS {
        assert!(r.stdout.contains(name), "{name}\n{}", r.describe());
    }
    let r = run(sb.cmd("coze-auth").args(["doctor", "--bogus"]), "");
    r.expect_code(2);
}
