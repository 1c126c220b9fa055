//! Several accounts: `--profile`/`COZE_PROFILE` select a token file of their own, each
//! remembering its server; `coze-token profiles` lists them, `coze-token logout` removes
//! one (safely against a refresh in progress); a PAT can live in a profile; the
//! precedence of credentials is shown by `-v`.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

const BOT: &str = "7000000000000000001";

/// Logs `sb` in and saves the token into `profile` (None: the default profile), with
/// no COZE_API_BASE: the token record then carries the fake's base URL.
fn login_into(sb: &Sandbox, profile: Option<&str>) {
    let grant = sb.authorization_code("42.app.coze");
    let mut cmd = sb.cmd("coze-token");
    cmd.env_remove("COZE_API_BASE").arg("--save");
    if let Some(p) = profile {
        cmd.args(["--profile", p]);
    }
    run(&mut cmd, &format!("{grant}\n")).ok();
}

/// A tool run in `home`'s environment (its settings directory), with no base URL of
/// its own: each token says where it belongs.
fn tool(home: &Sandbox, name: &str) -> Command {
    let mut c = home.cmd(name);
    c.env_remove("COZE_API_BASE");
    c
}

fn profiles(home: &Sandbox) -> Vec<Value> {
    let r = run(tool(home, "coze-token").arg("profiles"), "");
    r.ok();
    r.records()
}

#[test]
fn each_profile_uses_its_own_token_and_server() {
    // Two servers, one settings directory: the default profile logs in to `cn`,
    // profile `other` to `com`.
    let cn = Sandbox::new("profiles-cn");
    let com = Sandbox::new("profiles-com");
    login_into(&cn, None);
    // The grant comes from `com`, the token file goes into `cn`'s settings directory.
    let grant = com.authorization_code("42.app.coze");
    run(
        tool(&cn, "coze-token").args(["--save", "--profile", "other"]),
        &format!("{grant}\n"),
    )
    .ok();
    let created = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = tool(&cn, "coze-conv");
        cmd.args(["create", "--bot", BOT, "-v"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let r = run(&mut cmd, "");
        r.ok();
        r
    };
    let r = created(&[], &[]);
    assert!(
        r.stderr.contains(&format!(
            "* credentials: the default token file {}",
            cn.token_path().display()
        )),
        "{}",
        r.describe()
    );
    let r = created(&["--profile", "other"], &[]);
    let other_file = cn.path("config/coze/profiles/other/token.json");
    assert!(
        r.stderr.contains(&format!(
            "* credentials: profile other ({}, from --profile); API base {}",
            other_file.display(),
            com.base_url()
        )),
        "{}",
        r.describe()
    );
    created(&[], &[("COZE_PROFILE", "other")]);
    // COZE_PROFILE beats COZE_API_TOKEN; --profile default beats COZE_PROFILE.
    created(
        &[],
        &[
            ("COZE_PROFILE", "other"),
            ("COZE_API_TOKEN", "pat_not_this_one"),
        ],
    );
    created(&["--profile", "default"], &[("COZE_PROFILE", "other")]);
    assert_eq!(stat(&cn, "/requests/conversation.create"), 2);
    assert_eq!(stat(&com, "/requests/conversation.create"), 3);
    assert_eq!(mode(&other_file), 0o600);
    // Both flags name a file: a usage error, before anything is sent.
    let r = run(
        tool(&cn, "coze-conv").args([
            "create",
            "--bot",
            BOT,
            "--profile",
            "x",
            "--token-file",
            "t",
        ]),
        "",
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("--token-file and --profile"),
        "{}",
        r.describe()
    );
    let r = run(
        tool(&cn, "coze-conv").args(["create", "--bot", BOT, "--profile", "../up"]),
        "",
    );
    r.expect_code(2);

    let list = profiles(&cn);
    let by_name = |n: &str| {
        list.iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("no profile {n}: {list:?}"))
            .clone()
    };
    let default = by_name("default");
    assert_eq!(default["state"], "valid");
    assert_eq!(default["base_url"], cn.base_url());
    assert_eq!(default["active"], true);
    let other = by_name("other");
    assert_eq!(other["base_url"], com.base_url());
    assert_eq!(other["token_file"], other_file.display().to_string());
    assert_eq!(other["active"], false);
    assert_eq!(list.len(), 2, "{list:?}");
}

#[test]
fn logout_removes_the_token_and_lock_and_waits_for_a_refresh() {
    let sb = Sandbox::new("profiles-logout");
    login_into(&sb, Some("work"));
    let dir = sb.path("config/coze/profiles/work");
    // The profile's user id is made by its first chat and outlives the logout.
    run(
        tool(&sb, "coze-chat").args(["--profile", "work", "--bot", BOT, "-o", "text", "hi"]),
        "",
    )
    .ok();
    let user_id = std::fs::read_to_string(dir.join("user_id")).unwrap();
    // A refresh that takes a while is in flight when logout runs: logout waits for the
    // lock, so the refreshed pair is written first and then removed, never left behind.
    sb.fake
        .push_fault("token", json!({"type": "delay", "ms": 1500}), 1);
    let refresh = tool(&sb, "coze-token")
        .args(["refresh", "--force", "--profile", "work"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Logout starts once the refresh holds the lock (its note is in the lock file).
    let lock = dir.join("token.json.lock");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| !s.starts_with("refreshing")) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refresh never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = run(
        tool(&sb, "coze-token").args(["logout", "--profile", "work"]),
        "",
    );
    r.ok();
    let out = wait_with_deadline(refresh, Duration::from_secs(30), "the refresh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stat(&sb, "/grants/refresh_token"),
        1,
        "the refresh finished first"
    );
    assert!(
        r.stderr.contains("logged out: removed profile work"),
        "{}",
        r.describe()
    );
    assert!(!dir.join("token.json").exists());
    assert!(!lock.exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("user_id")).unwrap(),
        user_id
    );
    let work = profiles(&sb)
        .into_iter()
        .find(|p| p["name"] == "work")
        .unwrap();
    assert_eq!(work["state"], "logged_out");
    assert_eq!(work["user_id"], user_id.trim());
    // The tools now ask for a login; a second logout says there was nothing to remove.
    let r = run(
        tool(&sb, "coze-conv").args(["create", "--bot", BOT, "--profile", "work"]),
        "",
    );
    r.expect_code(4);
    let r = run(
        tool(&sb, "coze-token").args(["logout", "--profile", "work"]),
        "",
    );
    r.ok();
    assert!(r.stderr.contains("not logged in"), "{}", r.describe());
}

#[test]
fn a_pat_lives_in_a_profile_with_its_server() {
    let pat = "pat_0123456789abcdef0123456789abcdef";
    let server = Sandbox::with_options(
        "profiles-pat",
        Options {
            static_tokens: vec![pat.into()],
            ..Options::default()
        },
    );
    let r = run(
        tool(&server, "coze-token").args([
            "--pat",
            "--base-url",
            &server.base_url(),
            "--profile",
            "studio",
            "--save",
        ]),
        &format!("{pat}\n"),
    );
    r.ok();
    assert!(!r.stderr.contains(pat), "{}", r.describe());
    let path = server.path("config/coze/profiles/studio/token.json");
    let saved = read_token(&path);
    assert_eq!(saved["access_token"], pat);
    assert_eq!(saved["base_url"], server.base_url());
    assert_eq!(mode(&path), 0o600);
    let r = run(
        tool(&server, "coze-chat").args(["--profile", "studio", "--bot", BOT, "-o", "text", "嗨"]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", coze_fake::answer_text("嗨")));
    // status reads the same credentials the tools use.
    let r = run(
        tool(&server, "coze-token").args(["status", "--profile", "studio"]),
        "",
    );
    r.ok();
    assert_eq!(r.records()[0]["usable"], true, "{}", r.describe());
    let r = run(
        tool(&server, "coze-token")
            .env("COZE_API_TOKEN", pat)
            .arg("status"),
        "",
    );
    r.ok();
    assert_eq!(
        r.records()[0]["credentials"],
        "COZE_API_TOKEN from the environment",
        "{}",
        r.describe()
    );
    // The PAT never appears in argv, so nothing but stdin carries it; a blank stdin is
    // bad input.
    let r = run(
        tool(&server, "coze-token").args(["--pat", "--base-url", &server.base_url()]),
        "\n",
    );
    r.expect_code(3);
}

#[test]
fn exec_gives_the_child_the_token_and_not_the_profile() {
    let sb = Sandbox::new("profiles-exec");
    login_into(&sb, Some("work"));
    let r = run(
        tool(&sb, "coze-token").env("COZE_PROFILE", "work").args([
            "exec",
            "--",
            "sh",
            "-c",
            "echo \"${COZE_PROFILE:-unset}\"",
        ]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout, "unset\n", "{}", r.describe());
}

/// On a terminal `profiles` is an aligned table with the profile in use marked; the PAT
/// prompt does not echo what is typed.
#[test]
fn on_a_terminal_profiles_is_a_table_and_the_pat_prompt_hides_the_token() {
    let sb = Sandbox::new("profiles-tty");
    login_into(&sb, None);
    login_into(&sb, Some("work"));
    let inner = format!("{} profiles", bin("coze-token").display());
    let r = run(
        tool(&sb, "script")
            .env("COZE_PROFILE", "work")
            .args(["-qec", &inner, "/dev/null"]),
        "",
    );
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines.len(), 3, "{}", r.describe());
    assert!(
        lines[0].starts_with("  PROFILE  STATE  BASE URL"),
        "{}",
        r.describe()
    );
    assert!(
        lines[1].starts_with("  default  valid  http://127.0.0.1:"),
        "{}",
        r.describe()
    );
    assert!(
        lines[2].starts_with("* work     valid  http://127.0.0.1:"),
        "{}",
        r.describe()
    );
    // The PAT typed at the prompt is not echoed back to the terminal.
    let pat = "pat_typed0123456789abcdef";
    let inner = format!(
        "{} --pat --base-url {} --profile typed --save",
        bin("coze-token").display(),
        sb.base_url()
    );
    // A person types after the prompt: so does this test.
    let mut child = tool(&sb, "script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let started = std::time::Instant::now();
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("not shown") {
        assert!(started.elapsed() < Duration::from_secs(10), "no prompt");
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, format!("{pat}\n").as_bytes()).unwrap();
    }
    let out = wait_with_deadline(child, Duration::from_secs(10), "coze-token --pat");
    reader.join().unwrap();
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(pat), "echoed: {text}");
    let saved = read_token(&sb.path("config/coze/profiles/typed/token.json"));
    assert_eq!(saved["access_token"], pat);
}
