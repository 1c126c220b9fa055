//! The login with a real browser: headless Chromium does the person's part. coze-auth
//! opens coze-fake's consent page through `$BROWSER` (tests/browser/chromium.sh, which
//! starts Chromium with a fresh profile and a DevTools port), tests/browser/cdp.py
//! clicks Approve or Deny over the DevTools protocol, Chromium follows the redirect to
//! coze-auth's loopback callback, and the page it shows is read through the DOM and
//! saved as a screenshot in target/browser/. The device flow's page is approved the
//! same way.
//!
//! These tests need Chromium and python3. They fail, never skip, when Chromium is
//! missing: `apt-get install chromium` (.ci/run does it). `CHROMIUM=/path` picks
//! another binary.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const CLIENT_ID: &str = "7484523878843318300.app.coze";

/// One Chromium at a time: two cores, and each browser is a dozen processes.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

fn one_browser() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Chromium binary: `$CHROMIUM`, else chromium (Debian's package) on PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the real-browser tests need Chromium and found none on PATH: install it \
         (apt-get install chromium; .ci/run does) or set CHROMIUM=/path/to/chromium"
    );
}

/// Where the screenshots go: target/browser/.
fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp")
        .join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The directory of one browser (chromium.sh's COZE_BROWSER_DIR). Dropping it ends
/// that Chromium, whatever state the test left it in.
struct BrowserDir {
    dir: PathBuf,
}

impl BrowserDir {
    fn new(sb: &Sandbox) -> BrowserDir {
        let dir = sb.path("browser");
        let _ = std::fs::remove_dir_all(&dir);
        BrowserDir { dir }
    }

    /// The environment that makes `$BROWSER` this browser.
    fn env(&self, cmd: &mut Command) {
        cmd.env("BROWSER", root().join("tests/browser/chromium.sh"))
            .env("COZE_BROWSER_DIR", &self.dir)
            .env("CHROMIUM", chromium());
    }

    /// Opens `url` as coze-auth would, for the device flow (coze-auth opens nothing).
    fn open(&self, sb: &Sandbox, url: &str) {
        let mut c = sb.cmd("bash");
        c.arg(root().join("tests/browser/chromium.sh")).arg(url);
        self.env(&mut c);
        run_deadline(&mut c, "", Duration::from_secs(10)).ok();
    }

    /// Clicks `button` on `page` and returns cdp.py's report (form, result, screenshot).
    fn click(&self, sb: &Sandbox, page: &str, button: &str, shot: &str) -> Value {
        let shot = shots().join(shot);
        let form_shot = shots().join(format!("{page}-form.png"));
        let _ = std::fs::remove_file(&shot);
        let r = run_deadline(
            sb.cmd("python3")
                .arg(root().join("tests/browser/cdp.py"))
                .args(["--dir".as_ref(), self.dir.as_os_str()])
                .args(["--page", page, "--click", button])
                .args(["--shot".as_ref(), shot.as_os_str()])
                .args(["--form-shot".as_ref(), form_shot.as_os_str()])
                .args(["--timeout", "20"]),
            "",
            Duration::from_secs(30),
        );
        if r.code() != 0 {
            let log = std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "the browser driver failed\n{}\n--- chromium.log (last lines, newest first)\n{}",
                r.describe(),
                tail.join("\n")
            );
        }
        let report = r.records().pop().expect("cdp.py prints its report");
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{} is not a screenshot",
            shot.display()
        );
        report
    }
}

impl Drop for BrowserDir {
    fn drop(&mut self) {
        // chromium.sh starts Chromium with setsid: its pid is its process group.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("chromium.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // The profile is tens of megabytes; chromium.log stays for a post-mortem.
        let _ = std::fs::remove_dir_all(self.dir.join("profile"));
    }
}

/// `coze-auth ... | coze-token --save`, as two processes joined by a real pipe.
struct Pipeline {
    auth: std::process::Child,
    token: std::process::Child,
    what: String,
}

impl Pipeline {
    fn start(mut auth: Command, mut token: Command) -> Pipeline {
        let what = format!("{auth:?} | {token:?}");
        let mut a = auth
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = token
            .stdin(Stdio::from(a.stdout.take().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Pipeline {
            auth: a,
            token: t,
            what,
        }
    }

    /// coze-auth's stderr, line by line as it comes.
    fn auth_stderr(&mut self) -> mpsc::Receiver<String> {
        let err = self.auth.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// Both outcomes: (coze-auth, coze-token).
    fn finish(self) -> (Run, Run) {
        let deadline = Duration::from_secs(30);
        let a = wait_with_deadline(self.auth, deadline, &self.what);
        let t = wait_with_deadline(self.token, deadline, &self.what);
        let run = |o: std::process::Output, what: &str| Run {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what: what.to_owned(),
        };
        (
            run(a, &format!("coze-auth of {}", self.what)),
            run(t, &format!("coze-token of {}", self.what)),
        )
    }
}

/// Waits for a stderr line containing `needle`.
fn line_with(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
            }
            Err(e) => panic!("no stderr line with {needle:?} ({e}); stderr so far:\n{seen}"),
        }
    }
}

fn login_cmd(sb: &Sandbox, browser: &BrowserDir, port: u16) -> Command {
    let mut c = sb.cmd("coze-auth");
    c.args(["--client-id", CLIENT_ID])
        .args([
            "--redirect-uri",
            &format!("http://127.0.0.1:{port}/callback"),
        ])
        .args(["--timeout", "25"]);
    browser.env(&mut c);
    c
}

#[test]
fn approve_in_chromium_logs_in_and_saves_the_token() {
    let _one = one_browser();
    let sb = Sandbox::new("browser-approve");
    let browser = BrowserDir::new(&sb);
    let port = free_port();
    let mut token = sb.cmd("coze-token");
    token.arg("--save");
    let p = Pipeline::start(login_cmd(&sb, &browser, port), token);
    let report = browser.click(&sb, "consent", "approve", "login-ok.png");
    let (auth, token) = p.finish();
    auth.ok();
    token.ok();

    // The consent page the person saw names the app and where it sends them.
    let form = &report["form"];
    assert_eq!(form["title"], "Authorize application", "{report:#}");
    assert!(
        form["text"].as_str().unwrap().contains(CLIENT_ID),
        "{report:#}"
    );
    // Chromium followed the redirect to coze-auth's callback, which said so.
    let result = &report["result"];
    let url = result["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/callback?code=")),
        "{report:#}"
    );
    assert_eq!(result["title"], "coze-auth: logged in", "{report:#}");
    assert!(
        result["text"]
            .as_str()
            .unwrap()
            .contains("You are logged in; you can close this tab"),
        "{report:#}"
    );
    // The code reached coze-token, which saved a working token, privately.
    let saved = read_token(&sb.token_path());
    assert_eq!(saved["type"], "token");
    assert_eq!(saved["client_id"], CLIENT_ID);
    assert_eq!(mode(&sb.token_path()), 0o600);
    run(sb.cmd("coze-token").arg("status"), "").ok();
    assert_eq!(
        sb.stats()["grants"]["authorization_code"],
        1,
        "{}",
        sb.stats()
    );
}

#[test]
fn deny_in_chromium_exits_4_and_the_page_says_not_approved() {
    let _one = one_browser();
    let sb = Sandbox::new("browser-deny");
    let browser = BrowserDir::new(&sb);
    let port = free_port();
    let mut token = sb.cmd("coze-token");
    token.arg("--save");
    let p = Pipeline::start(login_cmd(&sb, &browser, port), token);
    let report = browser.click(&sb, "consent", "deny", "login-denied.png");
    let (auth, token) = p.finish();
    auth.expect_code(4);
    assert!(auth.stdout.is_empty(), "{}", auth.describe());
    assert!(
        auth.stderr.contains("coze-auth: consent was denied"),
        "{}",
        auth.describe()
    );
    // No grant came down the pipe, so coze-token saved nothing.
    assert!(!sb.token_path().exists(), "{}", token.describe());

    let result = &report["result"];
    let url = result["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/callback?"))
            && url.contains("error=access_denied"),
        "{report:#}"
    );
    assert_eq!(result["title"], "coze-auth: login denied", "{report:#}");
    let text = result["text"].as_str().unwrap();
    assert!(text.contains("The login was not approved"), "{report:#}");
    assert!(text.contains("access_denied"), "{report:#}");
    assert_eq!(
        sb.stats()["grants"]["authorization_code"],
        0,
        "{}",
        sb.stats()
    );
}

#[test]
fn the_device_page_in_chromium_approves_the_user_code() {
    let _one = one_browser();
    let sb = Sandbox::with_options(
        "browser-device",
        Options {
            device_interval: 1,
            ..Options::default()
        },
    );
    let browser = BrowserDir::new(&sb);
    let mut auth = sb.cmd("coze-auth");
    auth.args(["--client-id", CLIENT_ID, "--device"]);
    let mut token = sb.cmd("coze-token");
    token.arg("--save");
    let mut p = Pipeline::start(auth, token);
    let stderr = p.auth_stderr();
    let line = line_with(&stderr, "?user_code=");
    let url = line
        .split_whitespace()
        .find(|w| w.contains("?user_code="))
        .unwrap()
        .to_owned();
    let user_code = url.split("user_code=").nth(1).unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/oauth/device?", sb.base_url())),
        "{url}"
    );

    browser.open(&sb, &url);
    let report = browser.click(&sb, "device", "approve", "device-approved.png");
    let (auth, token) = p.finish();
    auth.ok();
    token.ok();

    // The page came prefilled with the code coze-auth printed.
    assert_eq!(
        report["form"]["fields"]["user_code"],
        user_code.as_str(),
        "{report:#}"
    );
    assert_eq!(report["result"]["title"], "Device approved", "{report:#}");
    assert!(
        report["result"]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("approved: the device with code {user_code}")),
        "{report:#}"
    );
    let saved = read_token(&sb.token_path());
    assert_eq!(saved["type"], "token");
    assert_eq!(mode(&sb.token_path()), 0o600);
    assert_eq!(sb.stats()["grants"]["device_code"], 1, "{}", sb.stats());
}
