//! HTTPS as curl does it: coze-fake serves TLS with a throwaway CA, and the tools trust
//! that CA only when it reaches them through one of the sources a person uses
//! (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `--cacert`, `COZE_CA_BUNDLE`). Without it the
//! server is refused at once (not retried), with a message naming what was trusted and
//! how to add a CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use coze_fake::TlsOptions;

use crate::util::*;

const PAT: &str = "pat_tls0123456789abcdef";

/// A sandbox whose fake serves HTTPS, its CA's certificate written to `ca.pem`.
fn https_sandbox(name: &str) -> (Sandbox, PathBuf) {
    let sb = Sandbox::with_options(
        name,
        Options {
            tls: Some(TlsOptions::Generate { ca_out: None }),
            static_tokens: vec![PAT.into()],
            ..Options::default()
        },
    );
    assert!(
        sb.base_url().starts_with("https://127.0.0.1:"),
        "{}",
        sb.base_url()
    );
    let ca = sb.path("ca.pem");
    std::fs::write(&ca, sb.fake.ca_pem().expect("a generated CA")).unwrap();
    (sb, ca)
}

fn conv(sb: &Sandbox) -> Command {
    let mut c = sb.cmd("coze-conv");
    c.env("COZE_API_TOKEN", PAT);
    c
}

fn created(r: &Run) -> String {
    r.ok();
    let rec = &r.records()[0];
    assert_eq!(rec["type"], "conversation", "{}", r.describe());
    rec["conversation_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_ca_in_ssl_cert_file_is_trusted() {
    let (sb, ca) = https_sandbox("tls-file");
    let r = run(
        conv(&sb)
            .env("SSL_CERT_FILE", &ca)
            .args(["create", "--bot", "7"]),
        "",
    );
    created(&r);
    assert_eq!(stat(&sb, "/requests/conversation.create"), 1);
}

#[test]
fn a_ca_in_ssl_cert_dir_is_trusted() {
    let (sb, ca) = https_sandbox("tls-dir");
    let dir = sb.path("certs");
    std::fs::create_dir(&dir).unwrap();
    // An OpenSSL hashed directory holds links named like this one.
    std::fs::copy(&ca, dir.join("5ed36f99.0")).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    let dirs = format!("{}:{}", sb.path("nothing-here").display(), dir.display());
    let r = run(
        conv(&sb)
            .env("SSL_CERT_DIR", &dirs)
            .args(["create", "--bot", "7"]),
        "",
    );
    created(&r);
    // The missing directory of the list is a warning, not a failure.
    assert!(
        r.stderr.contains("warning: SSL_CERT_DIR") && r.stderr.contains("nothing-here"),
        "{}",
        r.describe()
    );
}

#[test]
fn a_ca_given_with_cacert_or_coze_ca_bundle_is_trusted() {
    let (sb, ca) = https_sandbox("tls-cacert");
    let r = run(
        conv(&sb)
            .args(["create", "--bot", "7", "--cacert"])
            .arg(&ca),
        "",
    );
    created(&r);
    let r = run(
        conv(&sb)
            .env("COZE_CA_BUNDLE", &ca)
            .args(["create", "--bot", "7"]),
        "",
    );
    created(&r);
    // A streamed chat over TLS arrives whole.
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_API_TOKEN", PAT)
            .env("COZE_CA_BUNDLE", &ca)
            .args(["--bot", "7", "-o", "text", "你好 TLS"]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", coze_fake::answer_text("你好 TLS")),
        "{}",
        r.describe()
    );
}

#[test]
fn without_the_ca_the_server_is_refused_once_with_what_was_trusted() {
    let (sb, ca) = https_sandbox("tls-none");
    let other = sb.path("other.pem");
    // A CA that is not the fake's: trusted, and useless here.
    let second = Sandbox::with_options(
        "tls-none-other",
        Options {
            tls: Some(TlsOptions::Generate { ca_out: None }),
            ..Options::default()
        },
    );
    std::fs::write(&other, second.fake.ca_pem().unwrap()).unwrap();
    let r = run(
        conv(&sb)
            .env("SSL_CERT_FILE", &other)
            .args(["create", "--bot", "7", "-v"]),
        "",
    );
    r.expect_code(5);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("coze-conv: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.describe());
    let e = errors[0];
    for part in [
        "the server's certificate is not trusted (UnknownIssuer)",
        &format!("SSL_CERT_FILE {} (1 certificate)", other.display()),
        "--cacert FILE",
        "COZE_CA_BUNDLE",
    ] {
        assert!(e.contains(part), "{part:?} in {e}\n{}", r.describe());
    }
    if Path::new("/etc/ssl/certs/ca-certificates.crt").is_file() {
        assert!(
            e.contains("the system store /etc/ssl/certs/ca-certificates.crt"),
            "{e}"
        );
    }
    assert!(
        !r.stderr.contains("retrying"),
        "never retried: {}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/conversation.create"), 0);
    assert!(!ca.as_os_str().is_empty());
}

#[test]
fn a_cacert_that_cannot_be_used_is_a_usage_error_naming_it() {
    let (sb, _) = https_sandbox("tls-badfile");
    let r = run(
        conv(&sb).args(["create", "--bot", "7", "--cacert", "missing.pem"]),
        "",
    );
    r.expect_code(2);
    assert!(
        r.stderr
            .starts_with("coze-conv: --cacert missing.pem: cannot read it: "),
        "{}",
        r.describe()
    );
    std::fs::write(sb.path("empty.pem"), "no certificate\n").unwrap();
    let r = run(
        conv(&sb)
            .env("COZE_CA_BUNDLE", sb.path("empty.pem"))
            .args(["create", "--bot", "7"]),
        "",
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("COZE_CA_BUNDLE") && r.stderr.contains("no PEM certificate in it"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/conversation.create"), 0);
}

#[test]
fn doctor_reports_the_trust_sources_in_use() {
    let (sb, ca) = https_sandbox("tls-doctor");
    let r = run(
        sb.cmd("coze-auth")
            .env("COZE_API_TOKEN", PAT)
            .env("SSL_CERT_FILE", &ca)
            .args(["doctor", "--redirect-uri", "http://127.0.0.1:1/callback"]),
        "",
    );
    let trust = r
        .stdout
        .lines()
        .find(|l| l.contains(" trust: "))
        .unwrap_or_else(|| panic!("no trust line\n{}", r.describe()));
    assert!(trust.starts_with("ok    trust: "), "{}", r.describe());
    assert!(
        trust.contains(&format!("SSL_CERT_FILE {} (1 certificate)", ca.display())),
        "{}",
        r.describe()
    );
    let clock = r.stdout.lines().find(|l| l.contains(" clock: ")).unwrap();
    assert!(clock.starts_with("ok    "), "{}", r.describe());
    // Without the CA the doctor says so where it matters: the server is not trusted.
    let r = run(
        sb.cmd("coze-auth").env("COZE_API_TOKEN", PAT).args([
            "doctor",
            "--redirect-uri",
            "http://127.0.0.1:1/callback",
        ]),
        "",
    );
    let clock = r.stdout.lines().find(|l| l.contains(" clock: ")).unwrap();
    assert!(
        clock.starts_with("FAIL  clock: ") && clock.contains("not trusted"),
        "{}",
        r.describe()
    );
    r.expect_code(5);
}

#[test]
fn https_goes_through_socks5h_and_connect_proxies_with_the_same_trust() {
    let (sb, ca) = https_sandbox("tls-proxied");
    let socks = crate::socks_server::Socks::start();
    let base = sb.base_url().replace("127.0.0.1", "localhost");
    let r = run(
        conv(&sb)
            .env("COZE_API_BASE", &base)
            .env("HTTPS_PROXY", socks.url("socks5h"))
            .env("SSL_CERT_FILE", &ca)
            .args(["create", "--bot", "7"]),
        "",
    );
    created(&r);
    let conns = socks.connections_when_done(std::time::Duration::from_secs(5));
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert!(conns[0].by_name && conns[0].target.starts_with("localhost:"));
    let proxy = crate::proxy::Proxy::start();
    let r = run(
        conv(&sb)
            .env("https_proxy", &proxy.url)
            .env("SSL_CERT_FILE", &ca)
            .args(["create", "--bot", "7"]),
        "",
    );
    created(&r);
    let carried = proxy.sent_text();
    assert!(
        !carried.is_empty(),
        "the request went through the CONNECT proxy"
    );
    assert!(
        !carried.contains("conversation/create"),
        "the tunnel carries TLS, not readable requests"
    );
    assert_eq!(stat(&sb, "/requests/conversation.create"), 2);
}
