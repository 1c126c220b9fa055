//! Integration tests of coze-fake serving HTTPS, over real loopback sockets: with its
//! own throwaway CA and with the user's certificate files, through ureq (the HTTP client
//! the tools use) and through a bare rustls client where the exact TLS behaviour
//! matters (the names the certificate covers, a clean close_notify at the end).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{spawn_binary, stop_binary};
use coze_fake::{Fake, Options, TlsOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

const PAT: &str = "pat_tls_test";

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("coze-fake-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(tls: TlsOptions) -> Fake {
    Fake::start(Options {
        static_tokens: vec![PAT.into()],
        tls: Some(tls),
        ..Options::default()
    })
    .unwrap()
}

/// A ureq agent trusting exactly `ca_pem` (None: ureq's default, the public web roots).
fn agent(ca_pem: Option<&str>) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(pem) = ca_pem {
        let cert = Certificate::from_pem(pem.as_bytes()).unwrap();
        tls = tls.root_certs(RootCerts::Specific(Arc::new(vec![cert])));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, String) {
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {PAT}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_str())
        .unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap())
}

fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String), ureq::Error> {
    let mut r = agent.get(url).call()?;
    let status = r.status().as_u16();
    Ok((status, r.body_mut().read_to_string()?))
}

/// The rustls error inside a ureq error, wherever ureq put it.
fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn assert_unknown_issuer(e: &ureq::Error) {
    assert_eq!(
        rustls_error(e),
        Some(&rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        )),
        "{e:?}"
    );
}

/// One request (sent with `Connection: close`) through a bare rustls client that checks
/// the certificate against `name`; the whole response, read to a TLS close_notify
/// (rustls reports a close without one as an error).
fn raw(
    fake: &Fake,
    name: &str,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<String, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let sock = TcpStream::connect(fake.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {name}\r\nAuthorization: Bearer {PAT}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n\
         {body}",
        body.len()
    )?;
    let mut out = String::new();
    tls.read_to_string(&mut out)?;
    Ok(out)
}

/// A generated-CA fake: trusted clients get answers, an untrusting one is refused
/// with UnknownIssuer, and the fake serves on afterwards.
#[test]
fn generated_ca_is_trusted_and_an_untrusting_client_is_refused() {
    let dir = TempDir::new("generated");
    let ca_file = dir.path("ca.pem");
    let fake = start(TlsOptions::Generate {
        ca_out: Some(ca_file.clone()),
    });
    let base = fake.base_url();
    assert_eq!(base, format!("https://{}", fake.addr()));
    assert!(fake.addr().ip().is_loopback(), "{base}");
    let ca = fake.ca_pem().expect("a generated CA");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(std::fs::read_to_string(&ca_file).unwrap(), ca);
    // Written atomically: nothing but the certificate is left in the directory.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ca.pem"]);

    let trusted = agent(Some(&ca));
    let (status, body) = get(&trusted, &format!("{base}/_fake/stats")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["connections"].is_u64());
    let (status, body) = post_json(
        &trusted,
        &format!("{base}/v1/conversation/create"),
        &json!({}),
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, &v["code"]), (200, &json!(0)), "{body}");
    assert!(v["data"]["id"].is_string(), "{body}");

    assert_unknown_issuer(&get(&agent(None), &format!("{base}/_fake/stats")).unwrap_err());
    // So is a client trusting another fake's CA.
    let other = start(TlsOptions::Generate { ca_out: None });
    let other_ca = other.ca_pem().unwrap();
    assert_ne!(other_ca, ca);
    assert_unknown_issuer(
        &get(&agent(Some(&other_ca)), &format!("{base}/_fake/stats")).unwrap_err(),
    );

    // The fake goes on serving, on fresh connections too.
    let (status, _) = get(&agent(Some(&ca)), &format!("{base}/_fake/stats")).unwrap();
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &trusted,
        &format!("{base}/v1/conversation/create"),
        &json!({}),
    );
    assert_eq!(status, 200);
}

/// The generated certificate covers every loopback spelling, and the fake ends a
/// `Connection: close` exchange with a TLS close_notify, not a bare TCP close.
#[test]
fn generated_certificate_names_loopback_and_closes_cleanly() {
    let fake = start(TlsOptions::Generate { ca_out: None });
    let ca = fake.ca_pem().unwrap();
    for name in ["127.0.0.1", "::1", "localhost"] {
        let out = raw(&fake, name, &ca, "GET", "/_fake/stats", "")
            .unwrap_or_else(|e| panic!("as {name}: {e}"));
        assert!(out.starts_with("HTTP/1.1 200 "), "as {name}: {out}");
        assert!(out.contains("\"connections\""), "as {name}: {out}");
    }
    let err = raw(&fake, "example.com", &ca, "GET", "/_fake/stats", "").unwrap_err();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            inner,
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
}

/// Socket faults still end the connection with a TCP reset under TLS, and the fake
/// serves on afterwards.
#[test]
fn socket_faults_reset_tls_connections() {
    let fake = start(TlsOptions::Generate { ca_out: None });
    let ca = fake.ca_pem().unwrap();
    let create = |fake: &Fake| {
        raw(
            fake,
            "127.0.0.1",
            &ca,
            "POST",
            "/v1/conversation/create",
            "{}",
        )
    };
    fake.push_fault("conversation.create", json!({"type": "reset"}), 1);
    let err = create(&fake).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    let out = create(&fake).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");

    fake.push_fault(
        "chat",
        json!({"type": "reset_mid_body", "after_events": 3}),
        1,
    );
    let body = json!({"bot_id":"7","user_id":"u","stream":true,
        "additional_messages":[{"role":"user","content":"hi","content_type":"text"}]})
    .to_string();
    let chat = |fake: &Fake| raw(fake, "127.0.0.1", &ca, "POST", "/v3/chat", &body);
    let err = chat(&fake).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    let out = chat(&fake).unwrap();
    assert!(out.contains("event:done\n"), "{out}");
}

/// A streamed chat over TLS arrives whole, ending with `done`, and the connection is kept
/// alive across the completed stream.
#[test]
fn streamed_chat_arrives_whole_over_tls() {
    let fake = start(TlsOptions::Generate { ca_out: None });
    let base = fake.base_url();
    let trusted = agent(Some(&fake.ca_pem().unwrap()));
    let body = json!({"bot_id":"7","user_id":"u","stream":true,
        "additional_messages":[{"role":"user","content":"hi","content_type":"text"}]});
    let (status, text) = post_json(&trusted, &format!("{base}/v3/chat"), &body);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.starts_with("event:conversation.chat.created\n"),
        "{text}"
    );
    assert!(text.ends_with("event:done\ndata:\"[DONE]\"\n\n"), "{text}");
    let answer: String = text
        .split("\n\n")
        .filter_map(|ev| ev.strip_prefix("event:conversation.message.delta\ndata:"))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(answer, coze_fake::answer_text("hi"));

    // Big enough for many 16 KiB flushes, so many TLS records.
    fake.set_bot(json!({"deltas": 20_000}));
    let (status, text) = post_json(&trusted, &format!("{base}/v3/chat"), &body);
    assert_eq!(status, 200);
    assert_eq!(
        text.matches("event:conversation.message.delta\n").count(),
        20_000
    );
    assert!(text.ends_with("event:done\ndata:\"[DONE]\"\n\n"));

    let stats = fake.stats();
    assert_eq!(stats["requests"]["chat"], 2, "{stats}");
    assert_eq!(stats["connections"], 1, "{stats}");
}

/// `TlsOptions::Files` serves the given chain and key; bad files fail the start with
/// one line naming the file.
#[test]
fn certificate_files_are_served_and_bad_ones_named() {
    let dir = TempDir::new("files");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();

    let fake = start(TlsOptions::Files {
        cert: cert_file.clone(),
        key: key_file.clone(),
    });
    assert!(fake.base_url().starts_with("https://127.0.0.1:"));
    assert_eq!(fake.ca_pem(), None);
    let (status, body) = post_json(
        &agent(Some(&cert.pem())),
        &format!("{}/v1/conversation/create", fake.base_url()),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");

    let fails = |cert: &Path, key: &Path| -> String {
        match Fake::start(Options {
            tls: Some(TlsOptions::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }),
            ..Options::default()
        }) {
            Ok(_) => panic!("started with {} and {}", cert.display(), key.display()),
            Err(e) => {
                let e = e.to_string();
                assert_eq!(e.lines().count(), 1, "{e}");
                e
            }
        }
    };
    let missing = dir.path("missing.pem");
    let e = fails(&missing, &key_file);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let e = fails(&cert_file, &missing);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    // A certificate where the key should be, and the other way round.
    let e = fails(&cert_file, &cert_file);
    assert!(
        e.contains(&cert_file.display().to_string()) && e.contains("private key"),
        "{e}"
    );
    let e = fails(&key_file, &key_file);
    assert!(
        e.contains(&key_file.display().to_string()) && e.contains("certificate"),
        "{e}"
    );
    // A key that is not the certificate's.
    let other_key = dir.path("other-key.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let e = fails(&cert_file, &other_key);
    assert!(e.contains(&other_key.display().to_string()), "{e}");
}

/// The binary with `--tls-ca-out`: an https base URL and the CA file in the ready line,
/// the file a PEM certificate clients can trust.
#[test]
fn the_binary_announces_https_and_its_ca_file() {
    let dir = TempDir::new("binary");
    let ca_file = dir.path("fake-ca.pem");
    let ca_path = ca_file.to_str().unwrap();
    let (mut child, hello) = spawn_binary(["--pat", PAT, "--tls-ca-out", ca_path]);
    assert_eq!(hello["type"], "fake", "{hello}");
    assert_eq!(hello["ca_file"], ca_path, "{hello}");
    let base = hello["base_url"].as_str().unwrap();
    let addr: std::net::SocketAddr = base
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not https: {base}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback(), "{base}");
    let pem = std::fs::read_to_string(&ca_file).unwrap();
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----\n")
            && pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
    assert_eq!(CertificateDer::pem_slice_iter(pem.as_bytes()).count(), 1);
    let (status, body) = post_json(
        &agent(Some(&pem)),
        &format!("{base}/v1/conversation/create"),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");

    let status = stop_binary(&mut child);
    assert!(status.success(), "{status}");
}
