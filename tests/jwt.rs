//! Unattended logins end to end: a service app's JWT (mint with both key formats, chat
//! with the token, re-mint single-flight when it runs out, the fake refusing forged
//! JWTs, loose key files refused, secrets kept off stderr) and a web app's client secret
//! (code exchange and refresh, by coze-token and by coze-chat).

use std::path::{Path, PathBuf};

use coze_core::auth::jwt::{self, Claims, Header, SigningKey};
use serde_json::{json, Value};

use crate::util::*;

const KID: &str = "kid-test-1";
const APP: &str = "7700000000001.app.coze";

/// A key pair made by openssl, as a person would make it for the Coze console.
struct Keys {
    /// PKCS#8 (`BEGIN PRIVATE KEY`), mode 0600.
    pkcs8: PathBuf,
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`) of the same key, mode 0600.
    pkcs1: PathBuf,
    /// SPKI (`BEGIN PUBLIC KEY`) text.
    public_pem: String,
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_keys(dir: &Path) -> Keys {
    std::fs::create_dir_all(dir).unwrap();
    let pkcs8 = dir.join("key.pem");
    let pkcs1 = dir.join("key-rsa.pem");
    let public = dir.join("public.pem");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &s(&pkcs8),
    ]);
    openssl(&["rsa", "-in", &s(&pkcs8), "-traditional", "-out", &s(&pkcs1)]);
    openssl(&["pkey", "-in", &s(&pkcs8), "-pubout", "-out", &s(&public)]);
    for p in [&pkcs8, &pkcs1] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    Keys {
        pkcs8,
        pkcs1,
        public_pem: std::fs::read_to_string(public).unwrap(),
    }
}

/// A sandbox whose fake knows the public key and kid, and a key pair in its directory.
fn service_app(name: &str) -> (Sandbox, Keys) {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("jwt-keys-{name}-{}", std::process::id()));
    let k = make_keys(&tmp);
    let sb = Sandbox::with_options(
        name,
        Options {
            jwt_public_key: Some(k.public_pem.clone()),
            jwt_kid: Some(KID.into()),
            ..Options::default()
        },
    );
    // The keys live in the sandbox, addressed relatively, as a person would.
    for p in [&k.pkcs8, &k.pkcs1] {
        std::fs::rename(p, sb.path(p.file_name().unwrap().to_str().unwrap())).unwrap();
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let keys = Keys {
        pkcs8: sb.path("key.pem"),
        pkcs1: sb.path("key-rsa.pem"),
        public_pem: k.public_pem,
    };
    (sb, keys)
}

/// `coze-token --jwt` for `key` (relative to the sandbox).
fn mint(sb: &Sandbox, key: &str) -> std::process::Command {
    let mut c = sb.cmd("coze-token");
    c.args(["--jwt", "--client-id", APP, "--key", key, "--kid", KID]);
    c
}

/// Neither the key (any line of its base64 body) nor a JWT (they all start with the
/// base64url of `{"`) appears in `text`.
fn assert_no_key_or_jwt(key: &Path, text: &str) {
    let pem = std::fs::read_to_string(key).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "key material leaked into: {text}");
    }
    assert!(!text.contains("PRIVATE KEY"), "key leaked into: {text}");
    assert!(!text.contains("eyJ"), "a JWT leaked into: {text}");
}

fn jwt_grants(sb: &Sandbox) -> u64 {
    sb.stats()["grants"]["jwt"].as_u64().unwrap()
}

#[test]
fn mint_with_either_key_format_writes_a_renewable_token_record() {
    let (sb, keys) = service_app("jwt-mint");
    for (key, path) in [("key.pem", &keys.pkcs8), ("key-rsa.pem", &keys.pkcs1)] {
        let r = run(mint(&sb, key).args(["-v", "--ttl", "3600"]), "");
        r.ok();
        let recs = r.records();
        assert_eq!(recs.len(), 1, "{}", r.describe());
        let t = &recs[0];
        assert_eq!(t["type"], "token");
        assert!(
            t["access_token"].as_str().unwrap().starts_with("czs_"),
            "{t}"
        );
        assert!(t.get("refresh_token").is_none(), "no refresh token: {t}");
        let exp = t["expires_at"].as_i64().unwrap();
        assert!(
            (now() + 3500..=now() + 3700).contains(&exp),
            "--ttl 3600: {t}"
        );
        assert_eq!(t["grant"], "jwt");
        assert_eq!(t["client_id"], APP);
        assert_eq!(t["base_url"], sb.base_url());
        assert_eq!(t["kid"], KID);
        assert_eq!(t["ttl"], 3600);
        assert_eq!(
            t["key_file"],
            path.to_str().unwrap(),
            "the path, made absolute"
        );
        assert!(t.get("session_name").is_none(), "{t}");
        // -v shows the request; neither the key nor the JWT is anywhere but the wire.
        assert!(r.stderr.contains("> POST "), "{}", r.describe());
        assert_no_key_or_jwt(path, &r.stdout);
        assert_no_key_or_jwt(path, &r.stderr);
        assert!(!r.what.contains("PRIVATE"), "argv holds the path only");
    }
    assert_eq!(jwt_grants(&sb), 2);
    // The one request that reached the fake: the JWT as bearer, the documented body.
    let log = sb.fake.log();
    assert!(log
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["endpoint"] == "token" && e["status"] == 200));

    // --save with a session name, then status calls it usable and renewable.
    let r = run(
        mint(&sb, "key.pem").args(["--session-name", "user-9", "--save"]),
        "",
    );
    r.ok();
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(r.stderr.contains("saved to"), "{}", r.describe());
    assert_eq!(mode(&sb.token_path()), 0o600);
    let t = read_token(&sb.token_path());
    assert_eq!(t["session_name"], "user-9");
    assert_eq!(t["ttl"], 900, "the default duration");
    let text = std::fs::read_to_string(sb.token_path()).unwrap();
    assert_no_key_or_jwt(&keys.pkcs8, &text);
    let r = run(sb.cmd("coze-token").arg("status"), "");
    r.ok();
    assert_eq!(r.records()[0]["refreshable"], true, "{}", r.describe());
}

#[test]
fn jwt_settings_come_from_the_environment_and_missing_ones_are_named() {
    let (sb, _keys) = service_app("jwt-env");
    let r = run(
        sb.cmd("coze-token")
            .arg("--jwt")
            .env("COZE_CLIENT_ID", APP)
            .env("COZE_JWT_KEY_FILE", "key-rsa.pem")
            .env("COZE_JWT_KID", KID),
        "",
    );
    r.ok();
    assert_eq!(r.records()[0]["grant"], "jwt");
    let r = run(
        sb.cmd("coze-token")
            .args(["--jwt", "--client-id", APP, "--key", "key.pem"]),
        "",
    );
    r.expect_code(2);
    assert!(r.stderr.contains("--kid"), "{}", r.describe());
    let r = run(mint(&sb, "key.pem").args(["--ttl", "86400"]), "");
    r.expect_code(2);
    assert!(r.stderr.contains("86399"), "{}", r.describe());
    let r = run(
        sb.cmd("coze-token").args(["--jwt", "--kid", KID, "print"]),
        "",
    );
    r.expect_code(2);
}

#[test]
fn a_jwt_token_chats_and_is_reminted_once_by_eight_processes() {
    let (sb, _keys) = service_app("jwt-remint");
    run(mint(&sb, "key.pem").arg("--save"), "").ok();
    let first = read_token(&sb.token_path());

    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "hi"]),
        "",
    );
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["status"], "completed", "{}", r.describe());
    assert_eq!(a["content"], coze_fake::answer_text("hi"));

    // Inside the renewal margin, and dead on the server too.
    set_expires_at(&sb.token_path(), now() + 30);
    sb.fake.expire_tokens();
    let before = jwt_grants(&sb);
    let outputs = print_tokens_at_once(&sb, 8);
    let after = read_token(&sb.token_path());
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            after["access_token"].as_str().unwrap()
        );
    }
    assert_eq!(
        jwt_grants(&sb) - before,
        1,
        "exactly one mint reaches the server"
    );
    assert_ne!(after["access_token"], first["access_token"]);
    for k in ["grant", "key_file", "kid", "ttl", "client_id", "base_url"] {
        assert_eq!(after[k], first[k], "{k} survives the re-mint");
    }
    assert!(after.get("refresh_token").is_none());

    // The server refuses the token before it looks stale (4100): coze-chat re-mints.
    sb.fake.expire_tokens();
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "again"]),
        "",
    );
    r.ok();
    assert_eq!(r.records()[0]["status"], "completed", "{}", r.describe());
    assert_eq!(jwt_grants(&sb) - before, 2);
}

/// POSTs `jwt` to the fake's token endpoint as a service app would.
fn post_jwt(sb: &Sandbox, jwt: &str, body: Value) -> (u16, Value) {
    let (status, text) = http_raw(
        "POST",
        &format!("{}/api/permission/oauth2/token", sb.base_url()),
        Some(body.to_string()),
        &[("Authorization", &format!("Bearer {jwt}"))],
    );
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v)
}

fn jwt_body() -> Value {
    json!({"duration_seconds": 900, "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"})
}

/// Expects `invalid_client` whose message contains `why`.
fn assert_refused(sb: &Sandbox, jwt: &str, why: &str) {
    let (status, v) = post_jwt(sb, jwt, jwt_body());
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error_code"], "invalid_client", "{v}");
    let msg = v["error_message"].as_str().unwrap();
    assert!(msg.contains(why), "expected {why:?} in {msg:?}");
}

#[test]
fn the_fake_refuses_reused_misaddressed_expired_and_forged_jwts() {
    let (sb, keys) = service_app("jwt-forged");
    let key = SigningKey::from_pem(&std::fs::read_to_string(&keys.pkcs8).unwrap()).unwrap();
    let aud = jwt::audience(&sb.base_url());
    let claims = || Claims::new(APP, &aud, now(), Some("u1")).unwrap();
    let sign = |c: &Claims| jwt::encode(&Header::rs256(KID), c, &key).unwrap();

    let good = sign(&claims());
    let (status, v) = post_jwt(&sb, &good, jwt_body());
    assert_eq!(status, 200, "{v}");
    assert!(v["access_token"].as_str().unwrap().starts_with("czs_"));
    assert!(
        v["expires_in"].as_i64().unwrap() > now() + 800,
        "absolute: {v}"
    );
    assert!(v.get("refresh_token").is_none(), "{v}");

    assert_refused(&sb, &good, "already used");
    assert_refused(
        &sb,
        &sign(&Claims {
            aud: "api.coze.cn".into(),
            ..claims()
        }),
        "aud",
    );
    assert_refused(
        &sb,
        &sign(&Claims {
            iat: now() - 7200,
            exp: now() - 3600,
            ..claims()
        }),
        "expired",
    );
    assert_refused(
        &sb,
        &sign(&Claims {
            iat: now() + 600,
            exp: now() + 1200,
            ..claims()
        }),
        "future",
    );
    // Tampered: other claims under a signature made for the original ones.
    let original = sign(&claims());
    let (_, sig) = original.rsplit_once('.').unwrap();
    let (header, _) = original.split_once('.').unwrap();
    let forged_claims = jwt::b64url(
        serde_json::to_string(&Claims {
            iss: "someone-else.app.coze".into(),
            ..claims()
        })
        .unwrap()
        .as_bytes(),
    );
    assert_refused(&sb, &format!("{header}.{forged_claims}.{sig}"), "signature");
    // Signed by another key.
    let other = make_keys(&sb.path("other"));
    let other_key = SigningKey::from_pem(&std::fs::read_to_string(&other.pkcs8).unwrap()).unwrap();
    let by_other = jwt::encode(&Header::rs256(KID), &claims(), &other_key).unwrap();
    assert_refused(&sb, &by_other, "signature");
    assert_refused(
        &sb,
        &jwt::encode(&Header::rs256("kid-x"), &claims(), &key).unwrap(),
        "kid",
    );
    let (status, v) = post_jwt(
        &sb,
        &sign(&claims()),
        json!({"duration_seconds": 86400, "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error_code"], "invalid_request");
    assert_eq!(jwt_grants(&sb), 1, "only the good JWT was honoured");

    // coze-token says what the server refused, in one line, exit 4, no secrets.
    let r = run(
        sb.cmd("coze-token").args([
            "--jwt",
            "--client-id",
            APP,
            "--key",
            "key.pem",
            "--kid",
            "kid-wrong",
            "-v",
        ]),
        "",
    );
    r.expect_code(4);
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.starts_with(
            "coze-token: minting a token with the service app's JWT: invalid_client: "
        ) && last.contains("kid"),
        "{}",
        r.describe()
    );
    assert_no_key_or_jwt(&keys.pkcs8, &r.stderr);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let (sb, keys) = service_app("jwt-loose-key");
    for m in [0o644, 0o640] {
        std::fs::set_permissions(&keys.pkcs8, std::os::unix::fs::PermissionsExt::from_mode(m))
            .unwrap();
        let r = run(&mut mint(&sb, "key.pem"), "");
        r.expect_code(4);
        let p = keys.pkcs8.display();
        assert_eq!(
            r.stderr,
            format!(
                "coze-token: key file {p} is readable by others (mode {m:04o}): chmod 600 {p}\n"
            ),
            "{}",
            r.describe()
        );
    }
    assert_eq!(
        sb.stats()["token_requests"],
        0,
        "refused before any request"
    );

    // A saved JWT token whose key became loose: the tools refuse to re-mint, exit 4.
    std::fs::set_permissions(
        &keys.pkcs8,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    run(mint(&sb, "key.pem").arg("--save"), "").ok();
    std::fs::set_permissions(
        &keys.pkcs8,
        std::os::unix::fs::PermissionsExt::from_mode(0o604),
    )
    .unwrap();
    set_expires_at(&sb.token_path(), now() + 10);
    let r = run(sb.cmd("coze-chat").args(["--bot", "7", "hi"]), "");
    r.expect_code(4);
    assert!(r.stderr.contains("chmod 600"), "{}", r.describe());
}

// --- web apps ---------------------------------------------------------------------

const WEB: &str = "5500000000001.app.coze";
const SECRET: &str = "web-secret-5f4dcc3b5aa765d61d83";

/// An authorization code for a web app: the authorize URL without PKCE (the Coze API
/// docs, `oauth_code`), approved at once.
fn web_code(sb: &Sandbox) -> Value {
    let redirect = "http://127.0.0.1:9/callback";
    let url = format!(
        "{}/api/permission/oauth2/authorize?response_type=code&client_id={WEB}&redirect_uri={}&state=st",
        sb.base_url(),
        coze_core::support::url::encode(redirect)
    );
    let r = http_request("GET", &url, None, &[]);
    let location = r.header("location").expect("auto-approve redirects");
    let code = coze_core::support::url::parse_query(location.split_once('?').unwrap().1)
        .into_iter()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1;
    json!({"type":"authorization_code","code":code,"code_verifier":"unused-by-web-apps",
           "redirect_uri":redirect,"client_id":WEB,"base_url":sb.base_url()})
}

#[test]
fn a_web_app_exchanges_and_refreshes_with_its_client_secret() {
    let sb = Sandbox::with_options(
        "web-app",
        Options {
            auto_approve: true,
            client_secrets: vec![(WEB.into(), SECRET.into())],
            ..Options::default()
        },
    );
    let secret_file = sb.path("secret.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let chmod = |m: u32| {
        std::fs::set_permissions(
            &secret_file,
            std::os::unix::fs::PermissionsExt::from_mode(m),
        )
        .unwrap()
    };
    let grant = web_code(&sb);

    // Without the secret the exchange is refused (and the code is not burnt).
    let r = run(sb.cmd("coze-token").arg("-v"), &format!("{grant}\n"));
    r.expect_code(4);
    assert!(r.stderr.contains("invalid_client"), "{}", r.describe());
    // A secret file others can read is refused before any request.
    chmod(0o644);
    let r = run(
        sb.cmd("coze-token")
            .args(["--client-secret-file", "secret.txt"]),
        &format!("{grant}\n"),
    );
    r.expect_code(4);
    assert!(
        r.stderr.contains("client secret file") && r.stderr.contains("chmod 600"),
        "{}",
        r.describe()
    );
    // The wrong secret is refused by the server (and the code still not burnt).
    std::fs::write(sb.path("wrong.txt"), "not-the-secret\n").unwrap();
    std::fs::set_permissions(
        sb.path("wrong.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let r = run(
        sb.cmd("coze-token")
            .args(["--client-secret-file", "wrong.txt"]),
        &format!("{grant}\n"),
    );
    r.expect_code(4);
    assert!(r.stderr.contains("invalid_client"), "{}", r.describe());
    assert!(!r.stderr.contains("not-the-secret"), "{}", r.describe());
    chmod(0o600);
    let r = run(
        sb.cmd("coze-token")
            .args(["--client-secret-file", "secret.txt", "--save", "-v"]),
        &format!("{grant}\n"),
    );
    r.ok();
    let mut all_stderr = r.stderr.clone();
    let t = read_token(&sb.token_path());
    assert!(t["refresh_token"].is_string(), "{t}");
    assert_eq!(t["client_secret_file"], secret_file.to_str().unwrap());
    let text = std::fs::read_to_string(sb.token_path()).unwrap();
    assert!(
        !text.contains(SECRET),
        "the secret itself is never recorded"
    );

    // coze-token refresh reads the recorded file.
    let refreshes = |sb: &Sandbox| sb.stats()["grants"]["refresh_token"].as_u64().unwrap();
    let r = run(sb.cmd("coze-token").args(["refresh", "--force", "-v"]), "");
    r.ok();
    all_stderr.push_str(&r.stderr);
    assert_eq!(refreshes(&sb), 1);
    // coze-chat refreshes a stale web-app token the same way.
    set_expires_at(&sb.token_path(), now() + 30);
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "-v", "hi"]),
        "",
    );
    r.ok();
    all_stderr.push_str(&r.stderr);
    assert_eq!(refreshes(&sb), 2);
    assert_eq!(
        read_token(&sb.token_path())["client_secret_file"],
        t["client_secret_file"]
    );

    // Without a recorded file the refresh is refused, and the refresh token survives.
    let mut bare = read_token(&sb.token_path());
    bare.as_object_mut().unwrap().remove("client_secret_file");
    std::fs::write(sb.token_path(), format!("{bare}\n")).unwrap();
    let r = run(sb.cmd("coze-token").args(["refresh", "--force"]), "");
    r.expect_code(4);
    assert!(r.stderr.contains("invalid_client"), "{}", r.describe());
    // COZE_CLIENT_SECRET works for coze-token itself.
    let r = run(
        sb.cmd("coze-token")
            .args(["refresh", "--force", "-v"])
            .env("COZE_CLIENT_SECRET", SECRET),
        "",
    );
    r.ok();
    all_stderr.push_str(&r.stderr);
    assert_eq!(refreshes(&sb), 3);
    assert!(
        !all_stderr.contains(SECRET),
        "the secret leaked: {all_stderr}"
    );
}

#[test]
fn a_failed_mint_is_retried_with_a_new_jwt() {
    let (sb, keys) = service_app("jwt-retry");
    // The first answer is lost after the server accepted (and so spent) the JWT: the
    // retry must sign a new one, or the server refuses the reused jti.
    sb.fake
        .push_fault("token", json!({"type":"reset_mid_body","after_bytes":5}), 1);
    let r = run(&mut mint(&sb, keys.pkcs8.to_str().unwrap()), "");
    r.ok();
    assert!(jwt_grants(&sb) >= 1, "{}", r.describe());
    assert!(r.records()[0]["access_token"]
        .as_str()
        .unwrap()
        .starts_with("czs_"));
    let tokens = sb
        .fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "token")
        .count();
    assert_eq!(tokens, 2, "one failed attempt, one retry");
}

/// Over HTTPS the JWT's `aud` is still the server's host:port (the scheme is not part
/// of it), and the fake checks it the same way.
#[test]
fn a_service_app_mints_over_https() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("jwt-keys-https-{}", std::process::id()));
    let k = make_keys(&tmp);
    let sb = Sandbox::with_options(
        "jwt-https",
        Options {
            jwt_public_key: Some(k.public_pem.clone()),
            jwt_kid: Some(KID.into()),
            tls: Some(coze_fake::TlsOptions::Generate { ca_out: None }),
            ..Options::default()
        },
    );
    std::fs::write(sb.path("ca.pem"), sb.fake.ca_pem().unwrap()).unwrap();
    let r = run(
        mint(&sb, &k.pkcs8.display().to_string())
            .env("COZE_CA_BUNDLE", sb.path("ca.pem"))
            .arg("--save"),
        "",
    );
    r.ok();
    assert_eq!(jwt_grants(&sb), 1, "{}", r.describe());
    let _ = std::fs::remove_dir_all(&tmp);
}
