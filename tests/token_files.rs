//! The token file as a file: followed through symlinks, kept private, never losing a
//! renewed pair to a full disk, read only when it is a regular file; authentication
//! errors that name the credentials; a web app's code without PKCE; `coze-token exec`
//! becoming its program.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// The one stderr line of a failed run (panics unless there is exactly one).
fn one_line(r: &Run) -> &str {
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    r.stderr.trim_end()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The temp files (`.NAME.tmp-PID`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// Waits until `cond` holds, failing the test after 20 s.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A token file reached through two symlinks (a relative chain) is refreshed in the
/// file the links name: the links stay links, the file holds the new pair, the lock is
/// beside it, and a tool reading that file directly (or another link) goes on working
/// with the live refresh token. Processes using the link and the file at once share
/// one lock: one refresh for all of them.
#[test]
fn a_symlinked_token_file_is_refreshed_in_the_file_it_names() {
    let sb = Sandbox::new("tf-symlink");
    let real = sb.path("store/real.json");
    let grant = sb.authorization_code("42.app.coze");
    run(
        sb.cmd("coze-token").arg("--save").arg(&real),
        &format!("{grant}\n"),
    )
    .ok();
    let first = read_token(&real);
    std::fs::create_dir_all(sb.path("links")).unwrap();
    symlink("../store/real.json", sb.path("links/t.json")).unwrap();
    let link = sb.token_path();
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink("../../links/t.json", &link).unwrap();

    let r = run(sb.cmd("coze-token").args(["refresh", "--force"]), "");
    r.ok();
    assert!(
        is_symlink(&link),
        "the link was replaced:\n{}",
        r.describe()
    );
    assert!(is_symlink(&sb.path("links/t.json")));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../links/t.json")
    );
    let second = read_token(&real);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(read_token(&link), second, "the link reads the same file");
    assert_eq!(mode(&real), 0o600);
    assert!(
        sb.path("store/real.json.lock").exists(),
        "the lock is beside the file"
    );
    assert!(!link.with_file_name("token.json.lock").exists());
    assert_eq!(temp_files(&sb.path("store")), Vec::<String>::new());
    assert_eq!(temp_files(link.parent().unwrap()), Vec::<String>::new());

    // A second tool using the file itself: its refresh token is the live one.
    let r = run(
        sb.cmd("coze-token")
            .args(["refresh", "--force", "--token-file"])
            .arg(&real),
        "",
    );
    r.ok();
    let third = read_token(&real);
    assert_ne!(third["refresh_token"], second["refresh_token"]);
    run(sb.cmd("coze-conv").args(["create", "--bot", "7"]), "").ok();

    // Through the link and the file at once, on a stale token: one lock, one refresh.
    set_expires_at(&real, now() + 30);
    let refreshes = stat(&sb, "/grants/refresh_token");
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut c = sb.cmd("coze-token");
            c.arg("print");
            if i % 2 == 1 {
                c.arg("--token-file").arg(&real);
            }
            c.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let printed: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = wait_with_deadline(c, Duration::from_secs(60), "coze-token print");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        })
        .collect();
    assert_eq!(
        stat(&sb, "/grants/refresh_token") - refreshes,
        1,
        "one refresh for the link and the file"
    );
    let fourth = read_token(&real);
    assert!(printed.iter().all(|p| fourth["access_token"] == p.as_str()));
    assert!(is_symlink(&link));

    // Logging out through a link removes the link: the file may serve other links.
    run(sb.cmd("coze-token").arg("logout"), "").ok();
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "the link is gone"
    );
    assert_eq!(read_token(&real), fourth);
}

/// A file-size limit (`ulimit -f 1`: 512 bytes) smaller than the token file: the room
/// for the new pair cannot be made, so no refresh is sent and the old pair stays good.
/// (Before, the write after the rotation met SIGXFSZ and the process died with the new
/// pair unwritten and the old one spent.)
#[test]
fn a_disk_that_cannot_take_the_new_pair_stops_the_refresh_before_it_is_sent() {
    let sb = logged_in("tf-fsize");
    let path = sb.token_path();
    // A record keeps fields of a script's own: this one makes the file over 512 bytes.
    let mut t = read_token(&path);
    t["note"] = "x".repeat(1000).into();
    std::fs::write(&path, format!("{t}\n")).unwrap();
    let script = format!(
        "ulimit -f 1; exec {} refresh --force",
        bin("coze-token").display()
    );
    let r = run(sb.cmd("sh").args(["-c", &script]), "");
    r.expect_code(8);
    let line = one_line(&r);
    assert!(
        line.starts_with("coze-token: making room for the renewed token: ")
            && line.contains(&path.display().to_string())
            && line.contains("nothing was sent to the server"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/grants/refresh_token"), 0, "nothing was spent");
    assert_eq!(read_token(&path), t, "the token file is as it was");
    assert_eq!(temp_files(path.parent().unwrap()), Vec::<String>::new());
    // The old pair still works: its access token, then its refresh token.
    api(&sb, "GET", "/v1/users/me", None);
    run(sb.cmd("coze-token").args(["refresh", "--force"]), "").ok();
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1);
    assert_eq!(read_token(&path)["note"], t["note"]);
}

/// The server has rotated the pair and the write over the token file fails anyway
/// (here its place was taken by a directory while the answer was on its way): the new
/// pair is kept beside it, 0600, and the one error line says where and how to put it
/// in place. Done as told, the kept pair is the live one.
#[test]
fn a_renewed_pair_that_cannot_be_written_is_kept_and_named() {
    let sb = logged_in("tf-unsaved");
    let path = sb.token_path();
    let before = read_token(&path);
    sb.fake
        .push_fault("token", json!({"type":"delay","ms":1500}), 1);
    let child = sb
        .cmd("coze-token")
        .args(["refresh", "--force"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The fake rotates, then holds its answer: the file's place is taken meanwhile.
    wait_for("the fake rotated the pair", || {
        stat(&sb, "/grants/refresh_token") == 1
    });
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = wait_with_deadline(child, Duration::from_secs(60), "coze-token refresh");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let unsaved = path.with_file_name("token.json.unsaved");
    let (p, u) = (path.display(), unsaved.display());
    assert!(
        stderr.starts_with(&format!("coze-token: saving the renewed token: {p}: "))
            && stderr.contains("the server has already replaced the pair")
            && stderr.contains(&format!("`mv {u} {p}`")),
        "{stderr}"
    );
    assert_eq!(mode(&unsaved), 0o600);
    let kept = read_token(&unsaved);
    assert_ne!(kept["refresh_token"], before["refresh_token"]);
    for secret in [&kept["access_token"], &kept["refresh_token"]] {
        assert!(!stderr.contains(secret.as_str().unwrap()), "{stderr}");
    }

    // The old file put back: its refresh token is spent, and the message points at the
    // kept pair.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, format!("{before}\n")).unwrap();
    chmod(&path, 0o600);
    let r = run(sb.cmd("coze-token").args(["refresh", "--force"]), "");
    r.expect_code(4);
    let line = one_line(&r);
    assert!(
        line.contains("was already used") && line.contains(&format!("`mv {u} {p}`")),
        "{}",
        r.describe()
    );
    // Put in place as told, the kept pair is the live one.
    std::fs::rename(&unsaved, &path).unwrap();
    run(sb.cmd("coze-token").args(["refresh", "--force"]), "").ok();
    assert_eq!(stat(&sb, "/grants/refresh_token"), 2);
}

/// A token file group or others may read: ours, it is tightened to 0600 with a warning
/// and used; someone else's (here nobody's, uid 65534: root reads it anyway, so the
/// check is on the owner), it is refused with the fix and left as it is.
#[test]
fn a_token_file_open_to_others_is_tightened_when_ours_and_refused_when_not() {
    let sb = logged_in("tf-loose");
    let path = sb.token_path();
    let access = read_token(&path)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    chmod(&path, 0o644);
    let r = run(sb.cmd("coze-token").arg("print"), "");
    assert_eq!(r.ok().stdout, format!("{access}\n"));
    assert_eq!(
        one_line(&r),
        format!(
            "coze-token: warning: the token file {} was open to others (mode 0644): \
             tightened to 0600",
            path.display()
        )
    );
    assert_eq!(mode(&path), 0o600);
    chmod(&path, 0o640);
    let r = run(sb.cmd("coze-conv").args(["create", "--bot", "7"]), "");
    r.ok();
    assert!(
        r.stderr.contains("(mode 0640): tightened"),
        "{}",
        r.describe()
    );
    assert_eq!(mode(&path), 0o600);
    // Untouched at 0600: no warning.
    let r = run(sb.cmd("coze-token").arg("print"), "");
    assert_eq!(r.ok().stderr, "");

    // Not ours.
    if let Err(e) = std::os::unix::fs::chown(&path, Some(65534), Some(65534)) {
        eprintln!("skipping the part about someone else's file (chown needs root): {e}");
        return;
    }
    chmod(&path, 0o644);
    for cmd in [
        sb.cmd("coze-token").arg("print"),
        sb.cmd("coze-conv").args(["create", "--bot", "7"]),
    ] {
        let r = run(cmd, "");
        r.expect_code(4);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        let line = one_line(&r);
        assert!(
            line.contains("is open to others (mode 0644) and belongs to uid 65534")
                && line.contains(&format!("chmod 600 {}", path.display())),
            "{}",
            r.describe()
        );
        assert_eq!(mode(&path), 0o644, "someone else's file is left alone");
    }
}

/// `coze-auth > grant.json` leaves the grant (a code others could exchange first) 0600,
/// as `coze-token > token.json` does.
#[test]
fn coze_auth_tightens_a_grant_written_to_a_file() {
    let sb = Sandbox::new("tf-auth-file");
    let out = sb.path("grant.json");
    std::fs::write(&out, "").unwrap();
    chmod(&out, 0o644);
    let sh = format!(
        "{} --client-id 42.app.coze --device > grant.json",
        bin("coze-auth").display()
    );
    run(sb.cmd("sh").args(["-c", &sh]), "").ok();
    assert_eq!(mode(&out), 0o600);
    let grant: Value = serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(grant["type"], "device_code");
}

/// Every authentication failure of the API tools names the credentials it used, once:
/// a refused `COZE_API_TOKEN`, a token file whose refresh the server refuses (whichever
/// rule chose it), and not twice when the message names the file already.
#[test]
fn authentication_errors_name_the_credentials_used() {
    let sb = Sandbox::new("tf-cred-env");
    for cmd in [
        sb.cmd("coze-conv").args(["list", "--bot", "7"]),
        sb.cmd("coze-chat").args(["--bot", "7", "-o", "text", "hi"]),
    ] {
        let r = run(cmd.env("COZE_API_TOKEN", "pat_not_known_to_the_fake"), "");
        r.expect_code(4);
        let line = one_line(&r);
        assert!(
            line.contains("code 4100")
                && line.ends_with("(credentials: COZE_API_TOKEN from the environment)"),
            "{}",
            r.describe()
        );
        assert!(!line.contains("pat_not_known"), "{}", r.describe());
    }

    // A token file whose refresh token the server refuses (a new one each time: a
    // token refused twice is known to be spent, and that message names the file).
    let sb = logged_in("tf-cred-file");
    let path = sb.token_path();
    let mut t = read_token(&path);
    t["expires_at"] = (now() - 10).into();
    let p = path.display();
    for (i, (cmd, credentials)) in [
        (
            sb.cmd("coze-conv").args(["create", "--bot", "7"]),
            format!("the default token file {p}"),
        ),
        (
            sb.cmd("coze-chat").args(["--bot", "7", "-o", "text", "hi"]),
            format!("the default token file {p}"),
        ),
        (
            sb.cmd("coze-conv")
                .args(["create", "--bot", "7", "--token-file"])
                .arg(&path),
            format!("the token file {p} (--token-file)"),
        ),
        (
            sb.cmd("coze-token")
                .args(["refresh", "--force"])
                .env("COZE_TOKEN_FILE", &path),
            format!("the token file {p} (COZE_TOKEN_FILE)"),
        ),
        (
            sb.cmd("coze-token").arg("print"),
            format!("the default token file {p}"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        t["refresh_token"] = format!("not-a-live-refresh-token-{i}").into();
        std::fs::write(&path, format!("{t}\n")).unwrap();
        let r = run(cmd, "");
        r.expect_code(4);
        let line = one_line(&r);
        assert!(
            line.contains("the refresh token was refused")
                && line.ends_with(&format!("(credentials: {credentials})")),
            "{}",
            r.describe()
        );
        assert!(
            !line.contains("not-a-live-refresh-token"),
            "{}",
            r.describe()
        );
    }
    // A message that names the file already does not name it twice.
    let r = run(
        sb.cmd("coze-conv")
            .args(["create", "--bot", "7", "--token-file", "nope.json"]),
        "",
    );
    r.expect_code(4);
    let line = one_line(&r);
    assert!(
        line.contains("no token file at nope.json"),
        "{}",
        r.describe()
    );
    assert_eq!(line.matches("nope.json").count(), 1, "{}", r.describe());
}

/// A directory, a FIFO (which would block a read forever) or an unreadable token file
/// is a local error (exit 8) naming the file, in every tool and at once; a file that is
/// not a token asks for a login (exit 4) and speaks of the file, not of "stdin line 1".
#[test]
fn a_token_file_that_cannot_be_read_is_a_local_error_naming_it() {
    let sb = Sandbox::new("tf-unreadable");
    let path = sb.token_path();
    let p = path.display().to_string();
    let tools = |sb: &Sandbox| {
        [
            ("coze-token", &["print"][..]),
            ("coze-conv", &["list", "--bot", "7"]),
            ("coze-chat", &["--bot", "7", "-o", "text", "hi"]),
        ]
        .map(|(tool, args)| {
            let mut c = sb.cmd(tool);
            c.args(args);
            c
        })
    };
    std::fs::create_dir_all(&path).unwrap();
    for mut cmd in tools(&sb) {
        let r = run_deadline(&mut cmd, "", Duration::from_secs(20));
        r.expect_code(8);
        let line = one_line(&r);
        assert!(
            line.contains(&format!(
                "reading the token file: {p}: a directory, not a regular file"
            )),
            "{}",
            r.describe()
        );
    }
    std::fs::remove_dir(&path).unwrap();
    run(sb.cmd("mkfifo").arg(&path), "").ok();
    for mut cmd in tools(&sb) {
        let r = run_deadline(&mut cmd, "", Duration::from_secs(20));
        r.expect_code(8);
        let line = one_line(&r);
        assert!(
            line.contains(&format!("reading the token file: {p}: a FIFO (named pipe)")),
            "{}",
            r.describe()
        );
    }
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "{\"type\":\"tok").unwrap();
    chmod(&path, 0o600);
    for mut cmd in tools(&sb) {
        let r = run_deadline(&mut cmd, "", Duration::from_secs(20));
        r.expect_code(4);
        let line = one_line(&r);
        assert!(
            line.contains(&format!("{p} is not a token file (")) && !line.contains("stdin"),
            "{}",
            r.describe()
        );
    }
}

const WEB: &str = "5500000000002.app.coze";
const SECRET: &str = "web-secret-0b6d3c2e9f1a4c58b7e2";

/// A web app's (confidential client's) code without PKCE: an `authorization_code`
/// record without `code_verifier`, exchanged with the client secret. Without the
/// secret it is refused before anything is sent (the code stays good); a secret file
/// others can read is refused before stdin is read at all.
#[test]
fn a_web_app_code_without_a_verifier_is_exchanged_with_the_secret() {
    let sb = Sandbox::with_options(
        "tf-web-no-pkce",
        Options {
            auto_approve: true,
            client_secrets: vec![(WEB.into(), SECRET.into())],
            ..Options::default()
        },
    );
    let secret_file = sb.path("secret.txt");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    chmod(&secret_file, 0o600);
    let redirect = "http://127.0.0.1:9/callback";
    let url = format!(
        "{}/api/permission/oauth2/authorize?response_type=code&client_id={WEB}&redirect_uri={}&state=st",
        sb.base_url(),
        coze_core::support::url::encode(redirect)
    );
    let location = http_request("GET", &url, None, &[])
        .header("location")
        .expect("auto-approve redirects")
        .to_owned();
    let code = coze_core::support::url::parse_query(location.split_once('?').unwrap().1)
        .into_iter()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1;
    let grant = json!({"type":"authorization_code","code":code,"redirect_uri":redirect,
                       "client_id":WEB,"base_url":sb.base_url()});

    let r = run(&mut sb.cmd("coze-token"), &format!("{grant}\n"));
    r.expect_code(4);
    let line = one_line(&r);
    assert!(
        line.contains("no code_verifier") && line.contains("--client-secret-file"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/token_requests"), 0, "nothing sent");

    let r = run(
        sb.cmd("coze-token")
            .args(["--client-secret-file", "secret.txt", "--save"]),
        &format!("{grant}\n"),
    );
    r.ok();
    let t = read_token(&sb.token_path());
    assert!(t["refresh_token"].is_string(), "{t}");
    assert_eq!(t["client_secret_file"], secret_file.to_str().unwrap());
    run(sb.cmd("coze-token").args(["refresh", "--force"]), "").ok();

    // A loose secret file is refused while stdin is still open and empty.
    chmod(&secret_file, 0o644);
    let mut child = sb
        .cmd("coze-token")
        .args(["--client-secret-file", "secret.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let held_open = child.stdin.take();
    let out = wait_with_deadline(child, Duration::from_secs(20), "coze-token");
    drop(held_open);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

/// `coze-token exec` becomes its program: the same process (so a signal sent to it
/// reaches the program, and its status is the program's), 127 for a program that is
/// not there, 126 for one that cannot be executed, each with one error line.
#[test]
fn exec_becomes_the_program_and_says_126_or_127_when_it_cannot() {
    let sb = logged_in("tf-exec");
    // Bounded, so that a coze-token that only spawns it does not leave it behind.
    let script = "trap 'echo got TERM; exit 42' TERM; echo $$; \
                  i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 3";
    let mut child = sb
        .cmd("coze-token")
        .args(["exec", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(
        first.trim(),
        child.id().to_string(),
        "the program runs in coze-token's own process"
    );
    run(sb.cmd("kill").args(["-TERM", &child.id().to_string()]), "").ok();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(status.code(), Some(42), "{rest}");
    assert_eq!(rest, "got TERM\n");

    let r = run(
        sb.cmd("coze-token")
            .args(["exec", "--", "no-such-program-zq7"]),
        "",
    );
    r.expect_code(127);
    assert!(
        one_line(&r).starts_with("coze-token: exec: no-such-program-zq7: "),
        "{}",
        r.describe()
    );
    let not_executable = sb.path("plain.sh");
    std::fs::write(&not_executable, "echo hi\n").unwrap();
    chmod(&not_executable, 0o644);
    let r = run(sb.cmd("coze-token").args(["exec", "--", "./plain.sh"]), "");
    r.expect_code(126);
    assert!(
        one_line(&r).starts_with("coze-token: exec: ./plain.sh: "),
        "{}",
        r.describe()
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
}
