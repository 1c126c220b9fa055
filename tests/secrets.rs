//! Secrets stay secret: every tool in every mode, with `-v`, against coze-fake, while a
//! thread samples every process's argv (`/proc/*/cmdline`). Afterwards no access or
//! refresh token, authorization code, code_verifier or device code may appear on any
//! stderr, in any argv seen, in any file of the sandbox but the token file, or in any
//! error record on stdout, nor in a local tool's environment, argv or stdin. Also: the login's callback listener binds 127.0.0.1 only and
//! answers nothing but its path, and plain http:// to a non-loopback host is refused
//! before any connection is made.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

const CLIENT_ID: &str = "42.app.coze";

/// Samples the argv of every process on the machine every few milliseconds.
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashSet<String>>>,
    thread: std::thread::JoinHandle<()>,
}

impl ArgvWatch {
    fn start() -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(dir) = std::fs::read_dir("/proc") else {
                        return;
                    };
                    let mut batch = Vec::new();
                    for e in dir.flatten() {
                        let name = e.file_name();
                        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                            continue;
                        }
                        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
                            if !raw.is_empty() {
                                batch.push(String::from_utf8_lossy(&raw).replace('\0', " "));
                            }
                        }
                    }
                    seen.lock().unwrap().extend(batch);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        ArgvWatch { stop, seen, thread }
    }

    /// Every distinct argv seen.
    fn finish(self) -> HashSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// What the scenario learned (secrets) and everything a person or another process could
/// read (texts), checked against each other at the end.
#[derive(Default)]
struct Ledger {
    secrets: Vec<(String, String)>,
    texts: Vec<(String, String)>,
}

impl Ledger {
    fn secret(&mut self, what: &str, value: &Value) {
        if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
            if !self.secrets.iter().any(|(_, v)| v == s) {
                self.secrets.push((what.to_owned(), s.to_owned()));
            }
        }
    }

    /// The tokens in the token file now.
    fn token_file(&mut self, sb: &Sandbox) {
        if let Ok(t) = std::fs::read_to_string(sb.token_path()) {
            if let Ok(t) = serde_json::from_str::<Value>(t.trim()) {
                self.secret("access_token", &t["access_token"]);
                self.secret("refresh_token", &t["refresh_token"]);
            }
        }
    }

    /// A finished command: its stderr always counts, its stdout unless a secret is its
    /// stated output (coze-auth's grant, coze-token's token).
    fn run(&mut self, step: &str, r: &Run, stdout_is_public: bool) {
        self.texts
            .push((format!("{step}: stderr"), r.stderr.clone()));
        if stdout_is_public {
            self.texts
                .push((format!("{step}: stdout"), r.stdout.clone()));
        }
    }

    fn check(&self, what: &str, text: &str, failures: &mut Vec<String>) {
        for (kind, secret) in &self.secrets {
            if text.contains(secret.as_str()) {
                failures.push(format!("{kind} …{} found in {what}", tail(secret)));
            }
        }
        // A Coze-shaped token nobody told us about is a leak too.
        for prefix in ["czu_", "czs_"] {
            for (at, _) in text.match_indices(prefix) {
                let run = text[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .count();
                if run >= 8 {
                    failures.push(format!("a {prefix} token found in {what}"));
                }
            }
        }
    }
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(4)..]
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// LISTEN sockets on `port` in /proc/net/tcp and tcp6: (file, local address in hex).
fn listeners(port: u16) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16) == Ok(port) {
                found.push((file.to_owned(), addr.to_owned()));
            }
        }
    }
    found
}

/// Logs in through coze-auth (a stand-in browser that waits for the test) and checks
/// the listener meanwhile. Returns coze-auth's run.
fn login_with_listener_checks(
    sb: &Sandbox,
    ledger: &mut Ledger,
    failures: &mut Vec<String>,
) -> Run {
    let port = free_port();
    let go = sb.path("go");
    let mut cmd = sb.cmd("coze-auth");
    cmd.args(["--client-id", CLIENT_ID, "-v", "--timeout", "30"])
        .args([
            "--redirect-uri",
            &format!("http://127.0.0.1:{port}/callback"),
        ])
        .env("BROWSER", fixture("browser-wait-then-approve.sh"))
        .env("COZE_TEST_GO", &go)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let child = cmd.spawn().unwrap();
    // While coze-auth waits for the browser: its LISTEN socket on the redirect port.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sockets = listeners(port);
    while sockets.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        sockets = listeners(port);
    }
    if sockets.is_empty() {
        failures.push(format!(
            "no LISTEN socket on port {port} while coze-auth waited"
        ));
    }
    for (file, addr) in &sockets {
        if !(file == "/proc/net/tcp" && addr == "0100007F") {
            failures.push(format!(
                "the callback listener is bound to {addr} in {file}, not 127.0.0.1 only"
            ));
        }
    }
    // Nothing but the callback path answers; the login goes on.
    for path in [
        "/",
        "/favicon.ico",
        "/elsewhere?code=x&state=y",
        "/callback/../x",
    ] {
        let r = http_request("GET", &format!("http://127.0.0.1:{port}{path}"), None, &[]);
        if r.status != 404 {
            failures.push(format!(
                "GET {path} on the listener: HTTP {}, expected 404",
                r.status
            ));
        }
    }
    std::fs::write(&go, "").unwrap();
    let out = wait_with_deadline(child, Duration::from_secs(40), &what);
    let r = Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        what,
    };
    std::fs::remove_file(&go).unwrap();
    r.ok();
    let grant = &r.records()[0];
    assert_eq!(grant["type"], "authorization_code", "{}", r.describe());
    ledger.secret("code", &grant["code"]);
    ledger.secret("code_verifier", &grant["code_verifier"]);
    ledger.run("coze-auth", &r, false);
    r
}

#[test]
fn no_token_code_or_verifier_leaks_into_stderr_argv_files_or_errors() {
    let sb = Sandbox::with_options(
        "secrets",
        Options {
            device_interval: 1,
            ..Options::default()
        },
    );
    let watch = ArgvWatch::start();
    let mut ledger = Ledger::default();
    let mut failures = Vec::new();

    // ---- coze-auth (browser) | coze-token --save
    let auth = login_with_listener_checks(&sb, &mut ledger, &mut failures);
    let r = run(sb.cmd("coze-token").args(["--save", "-v"]), &auth.stdout);
    r.ok();
    ledger.run("coze-token --save", &r, true);
    ledger.token_file(&sb);

    // ---- coze-auth --device | coze-token (the token record on stdout)
    let r = run(
        sb.cmd("coze-auth")
            .args(["--client-id", CLIENT_ID, "--device", "-v"]),
        "",
    );
    r.ok();
    let device = r.records()[0].clone();
    ledger.secret("device_code", &device["device_code"]);
    ledger.run("coze-auth --device", &r, false);
    let (status, page) = http_raw(
        "POST",
        &format!("{}/oauth/device", sb.base_url()),
        Some(format!(
            "user_code={}&decision=approve",
            device["user_code"].as_str().unwrap()
        )),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 200, "{page}");
    let r = run(sb.cmd("coze-token").arg("-v"), &auth_line(&device));
    r.ok();
    let other = r.records()[0].clone();
    ledger.secret("access_token", &other["access_token"]);
    ledger.secret("refresh_token", &other["refresh_token"]);
    ledger.run("coze-token (device)", &r, false);
    // A token record on stdin is refreshed ("exchange" of a token).
    let r = run(sb.cmd("coze-token").arg("-v"), &format!("{other}\n"));
    r.ok();
    let renewed = r.records()[0].clone();
    ledger.secret("access_token", &renewed["access_token"]);
    ledger.secret("refresh_token", &renewed["refresh_token"]);
    ledger.run("coze-token (token record)", &r, false);

    // ---- coze-token refresh / print / status / exec
    for args in [
        &["refresh", "--force", "-v"][..],
        &["refresh", "-v"],
        &["status", "-v"],
        &[
            "-v",
            "exec",
            "--",
            "sh",
            "-c",
            "test -n \"$COZE_API_TOKEN\"",
        ],
    ] {
        let r = run(sb.cmd("coze-token").args(args), "");
        r.ok();
        ledger.token_file(&sb);
        ledger.run(&format!("coze-token {}", args.join(" ")), &r, true);
    }
    for args in [&["print", "-v"][..], &["print", "--header", "-v"]] {
        let r = run(sb.cmd("coze-token").args(args), "");
        r.ok();
        ledger.run(&format!("coze-token {}", args.join(" ")), &r, false);
    }

    // ---- coze-conv, every subcommand
    let r = run(sb.cmd("coze-conv").args(["create", "--bot", "7", "-v"]), "");
    r.ok();
    let conv = r.records()[0]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    ledger.run("coze-conv create", &r, true);

    // ---- coze-chat: three modes, streamed and polled, and a batch
    for mode in ["events", "text", "answers"] {
        for poll in [false, true] {
            let mut c = sb.cmd("coze-chat");
            c.args(["--bot", "7", "-o", mode, "-v", "--conversation", &conv]);
            if poll {
                c.arg("--no-stream");
            }
            let r = run(c.arg("秘密 secret"), "");
            r.ok();
            ledger.run(&format!("coze-chat -o {mode} poll={poll}"), &r, true);
        }
    }
    let answers = sb.path("answers.jsonl");
    let r = run(
        sb.cmd("coze-chat")
            .args([
                "--bot", "7", "-o", "answers", "--jobs", "2", "-v", "--resume",
            ])
            .arg(&answers)
            .arg("--append"),
        "one\ntwo\nthree\nfour\n",
    );
    r.ok();
    ledger.run("coze-chat --jobs 2", &r, true);

    for args in [
        vec!["get".to_owned(), conv.clone()],
        vec!["list".into(), "--bot".into(), "7".into()],
        vec!["messages".into(), conv.clone()],
        vec!["clear".into(), conv.clone()],
        vec!["delete".into(), conv.clone()],
    ] {
        let r = run(sb.cmd("coze-conv").args(&args).arg("-v"), "");
        r.ok();
        ledger.run(&format!("coze-conv {}", args[0]), &r, true);
    }

    // ---- failure paths
    // The server expires every token: the tools refresh (once) and go on.
    sb.fake.expire_tokens();
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "answers", "-v", "hi"]),
        "",
    );
    r.ok();
    ledger.token_file(&sb);
    ledger.run("coze-chat after expiry", &r, true);
    // A refresh the server refuses.
    sb.fake.push_fault(
        "token",
        json!({"type": "oauth_error", "error_code": "invalid_grant", "error_message": "refresh token revoked", "status": 400}),
        1,
    );
    let r = run(sb.cmd("coze-token").args(["refresh", "--force", "-v"]), "");
    r.expect_code(4);
    ledger.run("coze-token refresh (refused)", &r, true);
    sb.fake.expire_tokens();
    set_expires_at(&sb.token_path(), now() - 10);
    sb.fake.push_fault(
        "token",
        json!({"type": "oauth_error", "error_code": "invalid_grant", "error_message": "refresh token revoked", "status": 400}),
        1,
    );
    let r = run(
        sb.cmd("coze-chat")
            .args(["--bot", "7", "-o", "events", "-v", "hi"]),
        "",
    );
    r.expect_code(4);
    ledger.run("coze-chat (refresh refused)", &r, true);
    // A static token the server does not know: 4100, no refresh possible. A random one,
    // so only registration (not its shape) can hide it.
    let bad = format!(
        "static{}",
        coze_core::support::random::random_hex(16).unwrap()
    );
    ledger.secret("static token", &json!(bad));
    for tool in ["coze-conv", "coze-chat", "coze-workflow", "coze-bot"] {
        let mut c = sb.cmd(tool);
        c.env("COZE_API_TOKEN", &bad);
        match tool {
            "coze-conv" => c.args(["list", "--bot", "7", "-v"]),
            "coze-bot" => c.args(["list", "-v"]),
            "coze-chat" => c.args(["--bot", "7", "-o", "answers", "-v", "hi"]),
            _ => c.args([
                "run",
                "--workflow",
                "73",
                "--params",
                "{}",
                "-o",
                "results",
                "-v",
            ]),
        };
        let r = run(&mut c, "");
        r.expect_code(4);
        ledger.run(&format!("{tool} with a bad static token"), &r, true);
    }
    // The token endpoint's answer cut in half: its excerpt must not show the token.
    let grant = sb.authorization_code(CLIENT_ID);
    ledger.secret("code", &grant["code"]);
    ledger.secret("code_verifier", &grant["code_verifier"]);
    sb.fake
        .push_fault("token", json!({"type": "truncated_json"}), 1);
    let r = run(sb.cmd("coze-token").arg("-v"), &format!("{grant}\n"));
    r.expect_code(1);
    ledger.run("coze-token (truncated answer)", &r, true);

    let argv = watch.finish();
    ledger.token_file(&sb);

    // ---- the checks
    assert!(
        ledger.secrets.len() >= 10,
        "too few secrets learned: {}",
        ledger.secrets.len()
    );
    for (what, text) in &ledger.texts {
        ledger.check(what, text, &mut failures);
    }
    let tools: Vec<&String> = argv.iter().filter(|a| a.contains("coze-")).collect();
    assert!(
        tools.iter().any(|a| a.contains("coze-auth"))
            && tools.iter().any(|a| a.contains("coze-chat")),
        "the argv watch saw no coze tool: {tools:?}"
    );
    for a in &argv {
        ledger.check(&format!("argv {a:?}"), a, &mut failures);
    }
    let token_file = sb.token_path();
    for file in walk(&sb.dir) {
        if file == token_file {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        ledger.check(&format!("file {}", file.display()), &text, &mut failures);
    }
    eprintln!(
        "secrets: {} secrets checked against {} outputs, {} distinct argv sampled, {} files",
        ledger.secrets.len(),
        ledger.texts.len(),
        argv.len(),
        walk(&sb.dir).len()
    );
    assert!(
        failures.is_empty(),
        "{} leak(s) or listener problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The device record as coze-token's stdin.
fn auth_line(record: &Value) -> String {
    format!("{record}\n")
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_connecting() {
    // 192.0.2.1 is TEST-NET-1: never routed. The refusal must come before any
    // connection; --connect-timeout 1 only bounds the test if it did not.
    let sb = Sandbox::new("plain-http");
    sb.login();
    sb.fake.reset();
    let base = "http://192.0.2.1";
    let mut cases: Vec<(String, Command)> = Vec::new();
    let mut conv = sb.cmd("coze-conv");
    conv.env("COZE_API_BASE", base).args([
        "list",
        "--bot",
        "7",
        "--connect-timeout",
        "1",
        "--retries",
        "0",
    ]);
    cases.push(("coze-conv list".into(), conv));
    let mut chat = sb.cmd("coze-chat");
    chat.env("COZE_API_BASE", base).args([
        "--bot",
        "7",
        "--connect-timeout",
        "1",
        "--retries",
        "0",
        "hi",
    ]);
    cases.push(("coze-chat".into(), chat));
    let mut flag = sb.cmd("coze-chat");
    flag.args([
        "--bot",
        "7",
        "--base-url",
        base,
        "--connect-timeout",
        "1",
        "hi",
    ]);
    cases.push(("coze-chat --base-url".into(), flag));
    let mut device = sb.cmd("coze-auth");
    device
        .env("COZE_API_BASE", base)
        .args(["--client-id", CLIENT_ID, "--device"]);
    cases.push(("coze-auth --device".into(), device));
    // A token whose own base_url is plain http elsewhere, due for a refresh.
    let mut t = read_token(&sb.token_path());
    t["base_url"] = base.into();
    t["expires_at"] = (now() - 10).into();
    let elsewhere = sb.path("elsewhere.json");
    std::fs::write(&elsewhere, format!("{t}\n")).unwrap();
    // Private, as a token file must be (a loose one is tightened with a warning).
    std::fs::set_permissions(
        &elsewhere,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut refresh = sb.cmd("coze-token");
    refresh
        .env_remove("COZE_API_BASE")
        .arg("refresh")
        .arg("--token-file")
        .arg(&elsewhere);
    cases.push(("coze-token refresh".into(), refresh));
    for (name, mut cmd) in cases {
        let start = Instant::now();
        let r = run_deadline(&mut cmd, "", Duration::from_secs(20));
        let took = start.elapsed();
        r.expect_code(2);
        // A connection attempt would take the whole 1 s connect timeout; the margin
        // below it is for a loaded CI machine.
        assert!(
            took < Duration::from_millis(950),
            "{name}: took {took:?}: it must refuse before connecting\n{}",
            r.describe()
        );
        // coze-chat reports a failed prompt on stdout too, as its `error` record.
        assert!(
            r.records()
                .iter()
                .all(|e| e["type"] == "error" && e["exit_code"] == 2),
            "{name}\n{}",
            r.describe()
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}\n{}", r.describe());
        assert!(
            lines[0].contains("plain http://") && lines[0].contains("192.0.2.1"),
            "{name}: the message must say plain http is refused\n{}",
            r.describe()
        );
    }
    assert_eq!(
        sb.stats()
            .pointer("/requests")
            .map(|r| r.as_object().map_or(0, |o| o.len())),
        Some(0),
        "nothing reached the fake either"
    );
}

/// A local tool (coze-chat --tool) never sees the access token: not in its
/// environment (COZE_API_TOKEN and every variable naming a token are taken out), its
/// argv or its stdin; nor does any other process's argv carry it meanwhile.
#[test]
fn a_local_tool_never_sees_the_token() {
    const CANARY: &str = "pat_canary_for_local_tools_0123456789";
    let sb = Sandbox::with_options(
        "secrets-tools",
        coze_fake::Options {
            static_tokens: vec![CANARY.into()],
            ..Default::default()
        },
    );
    sb.fake.set_bot(json!({"tools": {"rounds": [[
        {"name": "get_weather", "arguments": {"city": "北京"}},
        {"name": "get_time", "arguments": {}}
    ]]}}));
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools/echo.sh");
    let log = sb.path("tool-log");
    let watch = ArgvWatch::start();
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_API_TOKEN", CANARY)
            .env("MY_GITHUB_TOKEN", CANARY)
            .env("A_TOKEN_PATH", "/not/the/token")
            .env("TOOL_LOG", &log)
            .args(["--bot", "7", "-v", "-o", "events"])
            .arg("--tool")
            .arg(format!("get_weather={}", echo.display()))
            .arg("--tool")
            .arg(format!("get_time={} --flag", echo.display()))
            .arg("天气?"),
        "",
    );
    let argvs = watch.finish();
    r.ok();
    let files = walk(&log);
    // Two calls, each leaving its env, argv and stdin.
    assert_eq!(files.len(), 6, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains(CANARY), "{}: {text}", f.display());
        if f.extension().is_some_and(|e| e == "env") {
            // No variable naming a token (COZE_TOKEN_FILE: where one is) either.
            let token_named = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .any(|(k, _)| k.contains("TOKEN"));
            assert!(!token_named, "{}: {text}", f.display());
            assert!(text.contains("COZE_TOOL_NAME="), "{text}");
        }
    }
    assert!(
        !r.stdout.contains(CANARY) && !r.stderr.contains(CANARY),
        "{}",
        r.describe()
    );
    assert!(
        !argvs.iter().any(|a| a.contains(CANARY)),
        "an argv held the token"
    );
}
