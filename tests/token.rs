//! coze-token and the token store end to end: exchange, save, refresh rotation, the
//! single-flight refresh across 16 processes, a refresh killed mid-flight, print,
//! status (--check), whoami, exec and the device flow.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

/// No secret of `token` appears in `text`.
fn assert_no_secrets(token: &Value, text: &str) {
    for k in ["access_token", "refresh_token"] {
        if let Some(s) = token[k].as_str() {
            assert!(!text.contains(s), "{k} leaked into: {text}");
        }
    }
}

#[test]
fn exchange_prints_a_token_and_tightens_a_file_stdout() {
    let sb = Sandbox::new("exchange");
    let out = sb.path("token.json");
    std::fs::write(&out, "").unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let grant = sb.authorization_code("42.app.coze");
    let sh = format!("{} > {}", bin("coze-token").display(), out.display());
    let r = run(sb.cmd("sh").arg("-c").arg(&sh), &format!("{grant}\n"));
    r.ok();
    assert_eq!(mode(&out), 0o600, "stdout file must be tightened");
    let t = read_token(&out);
    assert_eq!(t["type"], "token");
    assert!(t["access_token"].as_str().unwrap().starts_with("czu_"));
    assert!(
        t["expires_at"].as_i64().unwrap() > now(),
        "expires_at is absolute: {t}"
    );
    assert_eq!(t["client_id"], "42.app.coze");
    assert_eq!(t["base_url"], sb.base_url());
    assert_no_secrets(&t, &r.stderr);
}

#[test]
fn a_used_code_is_refused_with_exit_4() {
    let sb = Sandbox::new("code-reuse");
    let grant = sb.authorization_code("42.app.coze");
    run(&mut sb.cmd("coze-token"), &format!("{grant}\n")).ok();
    let r = run(&mut sb.cmd("coze-token"), &format!("{grant}\n"));
    r.expect_code(4);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .starts_with("coze-token: exchanging the authorization code: invalid_request"),
        "{}",
        r.describe()
    );
    assert!(
        !r.stderr.contains(grant["code"].as_str().unwrap()),
        "the code leaked: {}",
        r.stderr
    );
}

#[test]
fn save_writes_a_private_file_in_a_private_directory() {
    let sb = Sandbox::new("save");
    let t = sb.login();
    assert_eq!(mode(&sb.token_path()), 0o600);
    assert_eq!(mode(sb.token_path().parent().unwrap()), 0o700);
    assert_eq!(t["type"], "token");
    let entries: Vec<String> = std::fs::read_dir(sb.token_path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|n| n.contains(".tmp-")),
        "temp file left behind: {entries:?}"
    );
}

#[test]
fn bad_stdin_names_the_line() {
    let sb = Sandbox::new("bad-stdin");
    let r = run(
        &mut sb.cmd("coze-token"),
        "\n{\"type\":\"prompt\",\"content\":\"x\"}\n",
    );
    r.expect_code(3);
    assert!(r.stderr.contains("stdin line 2"), "{}", r.describe());
    let r = run(&mut sb.cmd("coze-token"), "not json\n");
    r.expect_code(3);
    assert!(r.stderr.contains("stdin line 1"), "{}", r.describe());
    let r = run(&mut sb.cmd("coze-token"), "");
    r.expect_code(3);
}

#[test]
fn refresh_rotates_and_the_old_refresh_token_is_dead() {
    let sb = Sandbox::new("rotate");
    let before = sb.login();
    let r = run(sb.cmd("coze-token").args(["refresh", "--force"]), "");
    r.ok();
    let after = read_token(&sb.token_path());
    assert_ne!(before["access_token"], after["access_token"]);
    assert_ne!(before["refresh_token"], after["refresh_token"]);
    assert_no_secrets(&after, &r.stderr);
    // The fake refuses the retired refresh token: the rotation really happened there.
    let (status, body) = http_raw(
        "POST",
        &format!("{}/api/permission/oauth2/token", sb.base_url()),
        Some(json!({"grant_type":"refresh_token","refresh_token":before["refresh_token"],"client_id":"42.app.coze"}).to_string()),
        &[],
    );
    assert!(
        status >= 400 && body.contains("error"),
        "old refresh token still works: {status} {body}"
    );
    // A fresh token is left alone without --force.
    run(sb.cmd("coze-token").arg("refresh"), "").ok();
    assert_eq!(
        read_token(&sb.token_path())["access_token"],
        after["access_token"]
    );
    // Refreshing a token record from stdin.
    let r = run(&mut sb.cmd("coze-token"), &format!("{after}\n"));
    r.ok();
    assert_ne!(r.records()[0]["refresh_token"], after["refresh_token"]);
}

#[test]
fn sixteen_processes_refresh_a_stale_file_exactly_once() {
    let sb = Sandbox::new("single-flight");
    sb.login();
    let path = sb.token_path();
    set_expires_at(&path, now() + 30); // inside the 120 s refresh margin
    let refreshes_before = sb.stats()["grants"]["refresh_token"].as_u64().unwrap_or(0);

    // A watcher reads the file the whole time: it must always be a whole token.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let text = std::fs::read_to_string(&path).expect("the token file always exists");
                let v: Value = serde_json::from_str(text.trim())
                    .unwrap_or_else(|e| panic!("torn read {text:?}: {e}"));
                assert_eq!(v["type"], "token");
                reads += 1;
            }
            reads
        })
    };
    let started = std::time::Instant::now();
    let outputs = print_tokens_at_once(&sb, 16);
    let wall = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let reads = watcher.join().unwrap();
    let after = read_token(&path);
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            after["access_token"].as_str().unwrap()
        );
    }
    let refreshes = sb.stats()["grants"]["refresh_token"].as_u64().unwrap() - refreshes_before;
    assert_eq!(refreshes, 1, "exactly one refresh must reach the server");
    assert!(reads > 0);
    eprintln!("16 processes: 1 refresh, all done in {wall:?}, {reads} whole reads of the file while they ran");
}

#[test]
fn a_refresh_killed_mid_flight_leaves_a_whole_file() {
    let sb = Sandbox::new("kill-refresh");
    let before = sb.login();
    sb.fake
        .push_fault("token", json!({"type":"delay","ms":3000}), 1);
    let mut child = sb
        .cmd("coze-token")
        .args(["refresh", "--force"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let t = read_token(&sb.token_path());
    assert_eq!(
        t["access_token"], before["access_token"],
        "the old pair stays until the new one is on disk"
    );
    assert_eq!(mode(&sb.token_path()), 0o600);
    // The server rotated the pair before the kill: the next refresh says so plainly.
    let r = run(sb.cmd("coze-token").args(["refresh", "--force"]), "");
    r.expect_code(4);
    assert!(r.stderr.contains("log in again"), "{}", r.describe());
    assert_no_secrets(&before, &r.stderr);
}

#[test]
fn print_header_status_and_exec() {
    let sb = Sandbox::new("print");
    let t = sb.login();
    let access = t["access_token"].as_str().unwrap();
    let r = run(sb.cmd("coze-token").arg("print"), "");
    assert_eq!(r.ok().stdout, format!("{access}\n"));
    let r = run(sb.cmd("coze-token").args(["print", "--header"]), "");
    assert_eq!(r.ok().stdout, format!("Authorization: Bearer {access}\n"));
    let r = run(sb.cmd("coze-token").arg("status"), "");
    r.ok();
    assert_eq!(r.records()[0]["usable"], true);
    assert_no_secrets(&t, &r.stdout);
    assert_no_secrets(&t, &r.stderr);
    // exec: the token reaches the child's environment, not its argv.
    let r = run(
        sb.cmd("coze-token").args([
            "exec",
            "--",
            "sh",
            "-c",
            "printenv COZE_API_TOKEN; tr '\\0' ' ' < /proc/$$/cmdline; exit 7",
        ]),
        "",
    );
    r.expect_code(7);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some(access));
    assert!(!lines.next().unwrap_or_default().contains(access));
    // A token that is expired and cannot be refreshed: status says so with exit 4.
    let mut dead = t.clone();
    dead["expires_at"] = (now() - 10).into();
    dead.as_object_mut().unwrap().remove("refresh_token");
    std::fs::write(sb.token_path(), format!("{dead}\n")).unwrap();
    run(sb.cmd("coze-token").arg("status"), "").expect_code(4);
    run(sb.cmd("coze-token").arg("print"), "").expect_code(4);
    // No token file at all.
    let r = run(
        sb.cmd("coze-token")
            .args(["print", "--token-file", "nope.json"]),
        "",
    );
    r.expect_code(4);
    assert!(r.stderr.contains("no token file"), "{}", r.describe());
}

#[test]
fn pat_from_the_environment_is_printed_as_is() {
    let sb = Sandbox::new("pat");
    let r = run(
        sb.cmd("coze-token")
            .arg("print")
            .env("COZE_API_TOKEN", "pat_example_123456"),
        "",
    );
    assert_eq!(r.ok().stdout, "pat_example_123456\n");
}

/// A fake that wants 1 s between device polls (and keeps its codes `device_ttl`
/// seconds, when given), and the `device_code` record coze-auth --device would print
/// for a code it handed out, good for five minutes.
fn device_code(name: &str, device_ttl: Option<u64>) -> (Sandbox, Value) {
    let defaults = Options::default();
    let sb = Sandbox::with_options(
        name,
        Options {
            device_interval: 1,
            device_ttl: device_ttl.unwrap_or(defaults.device_ttl),
            ..defaults
        },
    );
    let code: Value = http_json(
        "POST",
        &format!("{}/api/permission/oauth2/device/code", sb.base_url()),
        Some(&json!({"client_id":"42.app.coze"})),
    );
    let record = json!({
        "type":"device_code","device_code":code["device_code"],"user_code":code["user_code"],
        "verification_uri":code["verification_uri"],"interval":1,"expires_at":now()+300,
        "client_id":"42.app.coze","base_url":sb.base_url(),
    });
    (sb, record)
}

#[test]
fn device_flow_waits_for_approval_and_obeys_slow_down() {
    let (sb, record) = device_code("device", None);
    // One slow_down from the server: the client must add 5 s to its interval.
    sb.fake.push_fault(
        "token",
        json!({"type":"oauth_error","error_code":"slow_down","error_message":"slow down","status":400}),
        1,
    );
    let mut child = sb
        .cmd("coze-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{record}\n").as_bytes())
        .unwrap();
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let user_code = record["user_code"].as_str().unwrap();
    let (status, page) = http_raw(
        "POST",
        &format!("{}/oauth/device", sb.base_url()),
        Some(format!("user_code={user_code}&decision=approve")),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 200, "{page}");
    let out = wait_with_deadline(child, Duration::from_secs(60), "coze-token device");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(t["access_token"].as_str().unwrap().starts_with("czu_"));
    assert!(stderr.contains(user_code), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "slow_down must add 5 s: {:?}",
        started.elapsed()
    );
    let log = sb.fake.log();
    let polls = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "token")
        .count();
    assert!(polls >= 2, "polled {polls} times");
}

#[test]
fn retries_and_idle_timeout_are_flags_too() {
    let sb = Sandbox::new("token-retries");
    sb.login();
    sb.fake
        .push_fault("token", json!({"type":"http","status":500}), 5);
    let r = run(
        sb.cmd("coze-token")
            .args(["refresh", "--force", "--retries", "1"]),
        "",
    );
    r.expect_code(1);
    let tries = sb
        .fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "token")
        .count();
    assert_eq!(
        tries,
        1 + 2,
        "the login's exchange, then one try and one retry"
    );
    // A refresh answer held longer than --idle-timeout is a network error (exit 5).
    let sb = Sandbox::new("token-idle");
    sb.login();
    sb.fake
        .push_fault("token", json!({"type":"delay","ms":3000}), 1);
    let started = std::time::Instant::now();
    let r = run(
        sb.cmd("coze-token").args([
            "refresh",
            "--force",
            "--idle-timeout",
            "1",
            "--retries",
            "0",
        ]),
        "",
    );
    r.expect_code(5);
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn device_polling_shows_a_countdown_when_stderr_is_a_terminal() {
    let (sb, record) = device_code("device-tty", None);
    std::fs::write(sb.path("device.json"), format!("{record}\n")).unwrap();
    let user_code = record["user_code"].as_str().unwrap().to_owned();
    let base = sb.base_url();
    let approver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        http_raw(
            "POST",
            &format!("{base}/oauth/device"),
            Some(format!("user_code={user_code}&decision=approve")),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
    });
    // script(1) gives the command a terminal for stdout and stderr.
    let inner = format!("{} < device.json", bin("coze-token").display());
    let r = run(sb.cmd("script").args(["-qec", &inner, "/dev/null"]), "");
    approver.join().unwrap();
    r.ok();
    assert!(
        r.stdout.contains(" left"),
        "no countdown on the terminal:\n{}",
        r.describe()
    );
    assert!(r.stdout.contains("\"access_token\""), "{}", r.describe());
}

/// Polling ends at the device code's expiry, both when our clock says so (the record's
/// `expires_at`) and when the server answers `expired_token` first: exit 4, one line
/// that says to start again, nothing on stdout.
#[test]
fn device_polling_stops_when_the_code_expires() {
    // Our clock: the record says the code is good for one more second.
    let (sb, mut record) = device_code("device-expiry-local", None);
    record["expires_at"] = (now() + 1).into();
    let r = run(&mut sb.cmd("coze-token"), &format!("{record}\n"));
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(
        r.stderr.contains("the device code expired before code")
            && r.stderr.contains("run coze-auth --device again"),
        "{}",
        r.describe()
    );
    // The server's: its codes live 1 s, the record claims five minutes.
    let (sb, record) = device_code("device-expiry-server", Some(1));
    let r = run(&mut sb.cmd("coze-token"), &format!("{record}\n"));
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(
        r.stderr
            .contains("the device code expired before it was approved"),
        "{}",
        r.describe()
    );
}

/// `--min-ttl` is the margin `print` renews at: the default (120 s) leaves a token with
/// ten minutes left alone, `--min-ttl 900` renews it first and prints the new one.
#[test]
fn print_min_ttl_sets_the_renewal_margin() {
    let sb = logged_in("token-min-ttl");
    let path = sb.token_path();
    set_expires_at(&path, now() + 600);
    let before = read_token(&path)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(sb.cmd("coze-token").arg("print"), "");
    assert_eq!(r.ok().stdout.trim(), before);
    assert_eq!(stat(&sb, "/grants/refresh_token"), 0);
    let r = run(sb.cmd("coze-token").args(["print", "--min-ttl", "900"]), "");
    let printed = r.ok().stdout.trim().to_owned();
    assert_ne!(printed, before);
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1);
    assert_eq!(read_token(&path)["access_token"], printed.as_str());
}

/// `--save PATH` writes exactly there (0600, its directory made 0700), and
/// `COZE_TOKEN_FILE` points every tool at it.
#[test]
fn an_explicit_token_path_and_coze_token_file() {
    let sb = Sandbox::new("token-paths");
    let path = sb.path("secrets/coze/bot-a.json");
    let grant = sb.authorization_code("42.app.coze");
    let r = run(
        sb.cmd("coze-token").arg("--save").arg(&path),
        &format!("{grant}\n"),
    );
    r.ok();
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert!(
        !sb.token_path().exists(),
        "the default path was written too"
    );
    let saved = read_token(&path)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run(
        sb.cmd("coze-token")
            .arg("print")
            .env("COZE_TOKEN_FILE", &path),
        "",
    );
    assert_eq!(r.ok().stdout.trim(), saved);
    let r = run(
        sb.cmd("coze-conv")
            .env("COZE_TOKEN_FILE", &path)
            .args(["create", "--bot", "7"]),
        "",
    );
    r.ok();
    // Without it, the default path is looked for, and is not there.
    run(sb.cmd("coze-token").arg("print"), "").expect_code(4);
}

/// The user the fake says every token belongs to (coze-fake's `oauth::user_json`).
fn fake_user(sb: &Sandbox) -> Value {
    json!({
        "type": "user",
        "user_id": "7400000000000000001",
        "user_name": "fake_user",
        "nick_name": "扣子测试用户",
        "avatar_url": format!("{}/static/avatar.png", sb.base_url()),
        "base_url": sb.base_url(),
    })
}

fn whoami_names_the_user(dialect: Dialect) {
    let sb = logged_in_as("whoami", dialect);
    let r = run(sb.cmd("coze-token").arg("whoami"), "");
    if sb.studio() {
        // A self-hosted Coze Studio has no /v1/users/me: an API error, not a login one.
        r.expect_code(1);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr
                .contains("this server does not offer GET /v1/users/me"),
            "{}",
            r.describe()
        );
        assert!(!r.stderr.contains(STUDIO_PAT), "{}", r.stderr);
        // status --check says the same: the server cannot tell, exit 1, not 4.
        let r = run(sb.cmd("coze-token").args(["status", "--check"]), "");
        r.expect_code(1);
        assert_eq!(r.records()[0]["check"]["ok"], false, "{}", r.describe());
        assert!(
            r.stderr
                .contains("this server does not offer GET /v1/users/me"),
            "{}",
            r.describe()
        );
        return;
    }
    r.ok();
    assert_eq!(r.records(), vec![fake_user(&sb)]);
    let t = read_token(&sb.token_path());
    assert_no_secrets(&t, &r.stdout);
    assert_no_secrets(&t, &r.stderr);
}

crate::both_dialects!(whoami_names_the_user);

#[test]
fn whoami_refreshes_an_expired_token_first() {
    let sb = logged_in("whoami-refresh");
    let old = read_token(&sb.token_path());
    // The server no longer takes the old access token, and the file says it expired.
    sb.fake.expire_tokens();
    set_expires_at(&sb.token_path(), now() - 10);
    let r = run(sb.cmd("coze-token").arg("whoami"), "");
    r.ok();
    assert_eq!(r.records(), vec![fake_user(&sb)]);
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1, "{}", r.describe());
    let new = read_token(&sb.token_path());
    assert_ne!(new["access_token"], old["access_token"]);
    assert_no_secrets(&new, &r.stdout);
    assert_no_secrets(&new, &r.stderr);
}

/// A token file whose access token the server has revoked and that cannot be refreshed.
fn revoked(name: &str) -> (Sandbox, Value) {
    let sb = logged_in(name);
    let mut t = read_token(&sb.token_path());
    sb.fake.expire_tokens();
    t.as_object_mut().unwrap().remove("refresh_token");
    std::fs::write(sb.token_path(), format!("{t}\n")).unwrap();
    (sb, t)
}

#[test]
fn whoami_with_a_revoked_token_exits_4_naming_the_credentials() {
    let (sb, t) = revoked("whoami-revoked");
    let r = run(sb.cmd("coze-token").arg("whoami"), "");
    r.expect_code(4);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    let path = sb.token_path().display().to_string();
    assert!(r.stderr.contains(&path), "{}", r.describe());
    assert_no_secrets(&t, &r.stderr);
}

#[test]
fn status_check_asks_the_server() {
    let sb = logged_in("status-check");
    let t = read_token(&sb.token_path());
    // Without --check, status sends nothing.
    let before = sb.admin_get("/_fake/log").as_array().unwrap().len();
    let r = run(sb.cmd("coze-token").arg("status"), "");
    assert!(r.ok().records()[0].get("check").is_none(), "{}", r.stdout);
    assert_eq!(sb.admin_get("/_fake/log").as_array().unwrap().len(), before);

    let r = run(sb.cmd("coze-token").args(["status", "--check"]), "");
    let rec = &r.ok().records()[0];
    assert_eq!(rec["check"], json!({"ok": true}));
    assert_eq!(rec["usable"], true);
    assert_no_secrets(&t, &r.stdout);

    // Unreachable: exit 5, the record still written, saying why.
    let r = run(
        sb.cmd("coze-token")
            .args(["status", "--check", "--retries", "0"])
            .env(
                "COZE_API_BASE",
                format!("http://127.0.0.1:{}", refusing_port()),
            ),
        "",
    );
    r.expect_code(5);
    assert_eq!(r.records()[0]["check"]["ok"], false, "{}", r.describe());
}

#[test]
fn status_check_with_a_refused_token_exits_4() {
    // A token the server does not know: its own refusal, code and logid, in the record.
    let sb = Sandbox::new("status-check-refused");
    let r = run(
        sb.cmd("coze-token")
            .args(["status", "--check"])
            .env("COZE_API_TOKEN", "pat_not_known_to_the_fake"),
        "",
    );
    r.expect_code(4);
    let rec = &r.records()[0];
    assert_eq!(rec["check"]["ok"], false);
    assert_eq!(rec["check"]["code"], 4100, "{}", r.describe());
    assert!(rec["check"]["logid"].is_string(), "{}", r.describe());
    assert!(r.stderr.contains("checking the token"), "{}", r.describe());
    assert!(!r.stdout.contains("pat_not_known") && !r.stderr.contains("pat_not_known"));

    // A token file the server revoked: the file looks usable, only the server can tell.
    let (sb, t) = revoked("status-check-revoked");
    let r = run(sb.cmd("coze-token").args(["status", "--check"]), "");
    r.expect_code(4);
    let rec = &r.records()[0];
    assert_eq!(rec["usable"], true);
    assert_eq!(rec["check"]["ok"], false, "{}", r.describe());
    assert_no_secrets(&t, &r.stdout);
    assert_no_secrets(&t, &r.stderr);
}
