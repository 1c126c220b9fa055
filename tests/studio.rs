//! A self-hosted Coze Studio end to end, against `coze-fake --dialect studio`: what a
//! person meets there besides the chat (whose tests run against both dialects in the
//! `chat*.rs` files): PAT only and what the tools say about OAuth, endpoints Studio
//! lacks, bad tokens, its logid header, its response shapes and 64-bit numbers, and
//! plain http to a server on the company network.

use std::time::Duration;

use serde_json::{json, Value};

use crate::socks_server::Socks;
use crate::util::*;

const BOT: &str = "7512345678901234567";

fn studio(name: &str) -> Sandbox {
    logged_in_as(name, Dialect::Studio)
}

#[test]
fn conversations_read_in_studio_shapes_keep_their_64_bit_numbers() {
    let sb = studio("studio-conv");
    let r = run(sb.cmd("coze-conv").args(["create", "--bot", BOT]), "");
    r.ok();
    // The number is printed with every digit (an f64 would end in ...000).
    assert!(
        r.stdout.contains("\"account_id\":7400000000000000001"),
        "{}",
        r.describe()
    );
    let created = r.records().remove(0);
    let id = created["conversation_id"].as_str().unwrap().to_owned();
    // Studio answers retrieve under `ConversationData`, not `data`.
    let r = run(sb.cmd("coze-conv").args(["get", &id]), "");
    r.ok();
    let got = r.records().remove(0);
    assert_eq!(got["conversation_id"], id.as_str(), "{}", r.describe());
    assert_eq!(got["last_section_id"], created["last_section_id"]);
    let r = run(sb.cmd("coze-conv").args(["list", "--bot", BOT]), "");
    r.ok();
    assert_eq!(r.records()[0]["conversation_id"], id.as_str());
    let r = run(sb.cmd("coze-conv").args(["clear", &id]), "");
    r.ok();
    assert_eq!(
        r.records()[0]["conversation_id"],
        id.as_str(),
        "{}",
        r.describe()
    );
    // A chat in it, then its messages.
    run(
        sb.cmd("coze-chat")
            .args(["--bot", BOT, "--conversation", &id, "-o", "text", "hello"]),
        "",
    )
    .ok();
    let r = run(sb.cmd("coze-conv").args(["messages", &id]), "");
    r.ok();
    let questions: Vec<Value> = r
        .records()
        .into_iter()
        .filter(|m| m["message_type"] == "question")
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(questions, [json!("hello")], "{}", r.describe());
}

#[test]
fn a_bad_pat_is_an_authentication_failure_with_the_logid_from_x_log_id() {
    let sb = studio("studio-bad-pat");
    let r = run(
        sb.cmd("coze-conv")
            .env("COZE_API_TOKEN", "pat_wrong0123456789")
            .args(["create", "--bot", BOT, "-v"]),
        "",
    );
    r.expect_code(4);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("coze-conv: "))
        .unwrap();
    assert!(
        line.contains("code 700012006: authentication failed"),
        "{}",
        r.describe()
    );
    // The logid is Studio's X-Log-ID, a UUID, the same the response line showed.
    // Followed by the credentials used: `(credentials: COZE_API_TOKEN …)`.
    let logid = line
        .split("(logid ")
        .nth(1)
        .and_then(|l| l.split(')').next())
        .unwrap_or_else(|| panic!("no logid: {line}"));
    assert!(
        line.ends_with("(credentials: COZE_API_TOKEN from the environment)"),
        "{line}"
    );
    assert_eq!(logid.len(), 36, "{line}");
    assert!(
        r.stderr.contains(&format!("logid={logid}")),
        "{}",
        r.describe()
    );
    assert!(
        !r.stderr.contains("pat_wrong0123456789"),
        "{}",
        r.describe()
    );
}

#[test]
fn oauth_against_studio_says_to_use_a_pat_before_any_browser_opens() {
    let sb = studio("studio-oauth");
    // A browser that leaves a mark if it is ever started.
    let browser = sb.path("browser.sh");
    write_script(&browser, "touch \"$(dirname \"$0\")/browser-ran\"\n");
    for args in [
        &["--client-id", "1.app.coze"][..],
        &["--client-id", "1.app.coze", "--device"],
    ] {
        let r = run(
            sb.cmd("coze-auth")
                .env("BROWSER", &browser)
                .args(args)
                .args(["--timeout", "5"]),
            "",
        );
        r.expect_code(4);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        for part in [
            "has no OAuth login",
            "personal access token",
            "coze-token --pat",
        ] {
            assert!(r.stderr.contains(part), "{part}: {}", r.describe());
        }
        assert!(r.stdout.is_empty(), "no grant record: {}", r.describe());
    }
    assert!(
        !sb.path("browser-ran").exists(),
        "a browser was opened for nothing"
    );
    // coze-token on a grant for such a server says the same.
    let grant = json!({
        "type": "authorization_code", "code": "c", "code_verifier": "v".repeat(43),
        "redirect_uri": "http://127.0.0.1:9/cb", "client_id": "1.app.coze",
        "base_url": sb.base_url(),
    });
    let r = run(sb.cmd("coze-token").arg("--save"), &format!("{grant}\n"));
    r.expect_code(4);
    assert!(r.stderr.contains("has no OAuth login"), "{}", r.describe());
}

#[test]
fn an_endpoint_studio_lacks_is_named_not_a_login_problem() {
    let sb = studio("studio-missing");
    let r = run(
        sb.cmd("coze-auth")
            .args(["doctor", "--redirect-uri", "http://127.0.0.1:1/callback"]),
        "",
    );
    r.ok();
    let api = r.stdout.lines().find(|l| l.contains(" api: ")).unwrap();
    assert!(
        api.starts_with("warn  api: this server has no GET /v1/users/me"),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/users.me"), 1);
    assert!(!r.stdout.contains("FAIL"), "{}", r.describe());
}

/// A company's Studio at a name only its network knows, over plain http: a PAT saved
/// with `--allow-http` for that base carries the consent, and each run warns once.
#[test]
fn a_pat_profile_remembers_the_plain_http_consent_for_its_server() {
    let sb = studio("studio-http");
    let socks = Socks::start();
    socks.map("studio.corp.test", sb.fake.addr());
    let base = format!("http://studio.corp.test:{}", sb.fake.addr().port());
    let pat = sb.pat.clone().unwrap();
    let mut save = sb.cmd("coze-token");
    save.env_remove("COZE_API_TOKEN")
        .env_remove("COZE_API_BASE")
        .args([
            "--pat",
            "--base-url",
            &base,
            "--profile",
            "studio",
            "--save",
        ]);
    // Without the consent a plain-http base is refused when saving, too.
    let r = run(&mut save, &format!("{pat}\n"));
    r.expect_code(2);
    assert!(r.stderr.contains("--allow-http"), "{}", r.describe());
    let r = run(save.arg("--allow-http"), &format!("{pat}\n"));
    r.ok();
    let saved = read_token(&sb.path("config/coze/profiles/studio/token.json"));
    assert_eq!(saved["allow_http"], true);
    assert_eq!(saved["base_url"], base.as_str());
    let r = run(
        sb.cmd("coze-chat")
            .env_remove("COZE_API_TOKEN")
            .env_remove("COZE_API_BASE")
            .env("ALL_PROXY", socks.url("socks5h"))
            .args([
                "--profile",
                "studio",
                "--bot",
                BOT,
                "-o",
                "text",
                "公司内网",
            ]),
        "",
    );
    r.ok();
    assert_eq!(
        r.stdout,
        format!("{}\n", coze_fake::answer_text("公司内网"))
    );
    assert_eq!(
        r.stderr
            .matches("warning: plain http:// to studio.corp.test (--allow-http): the token crosses the network unencrypted")
            .count(),
        1,
        "{}",
        r.describe()
    );
    assert!(socks.connections_when_done(Duration::from_secs(5))[0].by_name);
    // The consent is for that base only: pointed elsewhere, the record does not allow it.
    let r = run(
        sb.cmd("coze-conv")
            .env_remove("COZE_API_TOKEN")
            .env("ALL_PROXY", socks.url("socks5h"))
            .args([
                "--profile",
                "studio",
                "--base-url",
                "http://other.corp.test:1",
            ])
            .args(["create", "--bot", BOT]),
        "",
    );
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("refusing plain http:// to other.corp.test"),
        "{}",
        r.describe()
    );
}
