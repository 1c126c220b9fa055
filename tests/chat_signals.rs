//! coze-chat stopped from outside: Ctrl-C, SIGTERM and SIGHUP cancel the chat on the
//! server and exit 130, 143 or 129 (streaming or polling), the interrupted line starts
//! a line of its own on a terminal, and `| head -1` ends it quietly and cancels the
//! chat. Shared helpers are in tests/chat.rs.

use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_dialects;
use crate::chat::{chat, spawn_until_output};
use crate::util::*;

// ---------------------------------------------------------------- 1. Ctrl-C, SIGTERM, SIGHUP

fn sigint_cancels_the_chat_on_the_server_and_exits_130(d: Dialect) {
    a_signal_cancels_the_chat(d, "INT", 130, "coze-chat: interrupted");
}

/// SIGTERM (a service manager) and SIGHUP (a closed terminal) cancel the chat as Ctrl-C
/// does: a chat left running would refuse the next run's prompt with 4016.
fn sigterm_cancels_the_chat_and_exits_143(d: Dialect) {
    a_signal_cancels_the_chat(d, "TERM", 143, "coze-chat: terminated");
}

fn sighup_cancels_the_chat_and_exits_129(d: Dialect) {
    a_signal_cancels_the_chat(d, "HUP", 129, "coze-chat: the terminal closed");
}

fn a_signal_cancels_the_chat(d: Dialect, signal: &str, code: i32, said: &str) {
    let sb = logged_in_as(&format!("chat-sig{signal}"), d);
    sb.fake
        .set_bot(json!({"deltas": 200, "delta_delay_ms": 50}));
    let mut cmd = chat(&sb);
    cmd.args(["-o", "text", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut sent = false;
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if !sent {
                    let _ = tx.send(());
                    sent = true;
                }
            }
        })
    };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("no answer bytes within 30 s: {what}");
    }
    send_signal(child.id(), signal);
    let start = Instant::now();
    let out = wait_with_deadline(child, Duration::from_secs(20), &what);
    reader.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8(seen.lock().unwrap().clone()).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stderr}\n--- stdout\n{stdout}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(stderr.contains(said), "{stderr}");
    assert!(
        !stdout.is_empty() && stdout.len() < "春".len() * 200,
        "{stdout}"
    );
    assert!(
        "春夏秋冬".repeat(50).starts_with(stdout.trim_end()),
        "{stdout}"
    );
    assert_eq!(stat(&sb, "/cancels"), 1, "{stderr}");
}

/// On a terminal, Ctrl-C's line starts a line of its own instead of trailing the
/// partial answer.
#[test]
fn on_a_terminal_the_interrupted_line_is_not_glued_to_the_answer() {
    let sb = logged_in("chat-sigint-tty");
    sb.fake
        .set_bot(json!({"deltas": 200, "delta_delay_ms": 50}));
    // script(1) gives coze-chat a terminal; timeout(1) sends it SIGINT mid-answer.
    let inner = format!(
        "timeout -s INT 1.5 {} --bot 7 -o text slow",
        bin("coze-chat").display()
    );
    let r = run(sb.cmd("script").args(["-qec", &inner, "/dev/null"]), "");
    let screen = r.stdout.replace('\r', "");
    let at = screen
        .find("coze-chat: interrupted")
        .unwrap_or_else(|| panic!("no interrupted line\n{}", r.describe()));
    assert!(at > 0 && screen[..at].ends_with('\n'), "{}", r.describe());
    assert!(
        screen[..at].trim_end().ends_with(['春', '夏', '秋', '冬']),
        "{}",
        r.describe()
    );
}

fn sigint_while_polling_cancels_the_chat(d: Dialect) {
    let sb = logged_in_as("chat-sigint-poll", d);
    sb.fake.set_bot(json!({"latency_ms": 20000}));
    let mut cmd = chat(&sb);
    cmd.args(["-o", "events", "--no-stream", "slow"]);
    // Events mode prints chat.created as soon as the chat exists.
    let (child, reader, what) = spawn_until_output(cmd, "");
    sigint(child.id());
    let out = wait_with_deadline(child, Duration::from_secs(20), &what);
    let stdout = String::from_utf8(reader.join().unwrap()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}\n{stdout}");
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "conversation.chat.created");
    assert_eq!(stat(&sb, "/cancels"), 1, "{stderr}");
}

// ---------------------------------------------------------------- 2. | head -1

fn head_1_ends_it_quietly_and_cancels_the_chat(d: Dialect) {
    let sb = logged_in_as("chat-head", d);
    sb.fake
        .set_bot(json!({"deltas": 200, "delta_delay_ms": 50}));
    let script = format!(
        "'{}' --bot 7 -o events \"hi\" | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
        bin("coze-chat").display()
    );
    let start = Instant::now();
    let r = run(sb.cmd("bash").args(["-c", &script]), "");
    r.ok();
    assert_eq!(r.stderr, "status=0\n", "{}", r.describe());
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    assert_eq!(recs[0]["event"], "conversation.chat.created");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "coze-chat kept streaming into a closed pipe ({:?})",
        start.elapsed()
    );
    assert_eq!(stat(&sb, "/cancels"), 1);
}

both_dialects!(
    sigint_cancels_the_chat_on_the_server_and_exits_130,
    sigterm_cancels_the_chat_and_exits_143,
    sighup_cancels_the_chat_and_exits_129,
    sigint_while_polling_cancels_the_chat,
    head_1_ends_it_quietly_and_cancels_the_chat,
);
