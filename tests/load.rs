//! coze-chat under load: 2,000 prompts through one process (memory and file
//! descriptors stay flat), then 8 processes × 250 prompts sharing one token file whose
//! tokens live 6 s, so the run crosses several expiries: every answer arrives exactly
//! once and the processes renew the token between them, single-flight, before it
//! expires (not on every use, as a fixed 120 s margin would with 6 s tokens).
//!
//! `LOAD_SCALE` (default 1) multiplies the prompt counts, e.g. `LOAD_SCALE=0.25` for a
//! quick look; the figures are printed with `--nocapture`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

/// Lifetime of the fake's access tokens: a 1 s renewal margin (a quarter of it).
const TOKEN_TTL: u64 = 6;

fn scale() -> f64 {
    std::env::var("LOAD_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()).round() as usize).max(1)
}

/// `n` prompt records with ids `{tag}{i}`.
fn prompts(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            let p =
                json!({"type":"prompt","id":format!("{tag}{i}"),"content":format!("第 {i} 问 🙂")});
            format!("{p}\n")
        })
        .collect()
}

/// Peak resident set (VmHWM) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The open descriptors of a live process: (files and pipes, sockets). The sockets
/// come and go with the HTTP connection of the moment; the rest must not change.
fn open_fds(pid: u32) -> (usize, usize) {
    let (mut files, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        match std::fs::read_link(entry.unwrap().path()) {
            Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
            _ => files += 1,
        }
    }
    (files, sockets)
}

/// What one `coze-chat -o answers` run over `n` prompts looked like from outside.
struct Watched {
    wall: Duration,
    peak_rss_kib: u64,
    /// Open descriptors (files and pipes, sockets) at about 5 % and 95 % of the answers.
    fds: ((usize, usize), (usize, usize)),
}

/// Runs `n` prompts through one coze-chat, reading its answers as they come; the
/// process is measured while it is alive (stdin stays open until the last answer).
fn watch_one_process(sb: &Sandbox, n: usize) -> Watched {
    let started = Instant::now();
    let mut child = sb
        .cmd("coze-chat")
        .args(["--bot", "7", "-o", "answers"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let (close, closed) = mpsc::channel::<()>();
    let input = prompts("p", n);
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).unwrap();
        let _ = closed.recv(); // hold stdin open until every answer has been read
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (early, late) = ((n / 20).max(1), n - (n / 20).max(1));
    let (mut fds_early, mut fds_late, mut peak) = ((0, 0), (0, 0), 0);
    let mut ids = HashSet::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let a: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(a["type"], "answer", "{a}");
        assert_eq!(a["status"], "completed", "{a}");
        assert!(
            ids.insert(a["id"].as_str().unwrap().to_owned()),
            "twice: {a}"
        );
        let count = ids.len();
        if count == early {
            fds_early = open_fds(pid);
        }
        if count == late {
            fds_late = open_fds(pid);
        }
        if count == n {
            peak = peak_rss_kib(pid);
            break;
        }
    }
    let _ = close.send(());
    writer.join().unwrap();
    let out = wait_with_deadline(child, Duration::from_secs(60), "coze-chat");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids.len(), n, "every prompt answered once");
    Watched {
        wall: started.elapsed(),
        peak_rss_kib: peak,
        fds: (fds_early, fds_late),
    }
}

#[test]
fn thousands_of_prompts_keep_memory_fds_and_tokens_in_order() {
    let sb = Sandbox::with_options(
        "load",
        Options {
            token_ttl: TOKEN_TTL,
            ..Options::default()
        },
    );
    sb.login();

    // One process, 2,000 prompts in a row, against a 20-prompt run of the same.
    let n = scaled(2000);
    let small = watch_one_process(&sb, 20);
    let big = watch_one_process(&sb, n);
    eprintln!(
        "one process: {n} prompts in {:.1} s ({:.1} ms each), peak RSS {} KiB \
         (20 prompts: {} KiB), open fds (files+pipes, sockets) {:?} at answer {} and \
         {:?} at answer {}",
        big.wall.as_secs_f64(),
        big.wall.as_secs_f64() * 1000.0 / n as f64,
        big.peak_rss_kib,
        small.peak_rss_kib,
        big.fds.0,
        (n / 20).max(1),
        big.fds.1,
        n - (n / 20).max(1)
    );
    assert!(
        (big.peak_rss_kib as f64) < 1.5 * small.peak_rss_kib as f64,
        "peak RSS grew with the prompts: {} KiB for {n}, {} KiB for 20",
        big.peak_rss_kib,
        small.peak_rss_kib
    );
    assert_eq!(big.fds.0 .0, big.fds.1 .0, "file descriptors leaked");
    assert!(big.fds.1 .1 <= 1, "sockets leaked: {:?}", big.fds);

    // 8 processes × 250 prompts, one token file, tokens living 6 s. The bot's latency
    // stretches the phase over several expiries.
    let (procs, per) = (8, scaled(250));
    let latency_ms = 70;
    sb.fake.set_bot(json!({"latency_ms": latency_ms}));
    let stats_before = sb.stats();
    let log_before = sb.fake.log().as_array().map_or(0, Vec::len);
    let started = Instant::now();
    let workers: Vec<_> = (0..procs)
        .map(|w| {
            let mut cmd = sb.cmd("coze-chat");
            cmd.args(["--bot", "7", "-o", "answers"]);
            let input = prompts(&format!("w{w}-"), per);
            std::thread::spawn(move || run_deadline(&mut cmd, &input, Duration::from_secs(300)))
        })
        .collect();
    let mut ids = HashSet::new();
    for w in workers {
        let r = w.join().unwrap();
        r.ok();
        for a in r.records() {
            assert_eq!(a["status"], "completed", "{a}");
            assert!(
                ids.insert(a["id"].as_str().unwrap().to_owned()),
                "twice: {a}"
            );
        }
    }
    let wall = started.elapsed();
    assert_eq!(ids.len(), procs * per, "every answer present exactly once");
    for w in 0..procs {
        for i in 0..per {
            assert!(ids.contains(&format!("w{w}-{i}")), "w{w}-{i} missing");
        }
    }
    let stats = sb.stats();
    let refreshes =
        stats["refreshes"].as_u64().unwrap() - stats_before["refreshes"].as_u64().unwrap();
    let log = sb.fake.log();
    let refused = log.as_array().unwrap()[log_before..]
        .iter()
        .filter(|e| e["status"] == 401)
        .count();
    let expiries = wall.as_secs_f64() / TOKEN_TTL as f64;
    let count = |k: &str| stats[k].as_u64().unwrap_or(0) - stats_before[k].as_u64().unwrap_or(0);
    eprintln!(
        "{procs} processes × {per} prompts (bot latency {latency_ms} ms) in {:.1} s: \
         {:.1} token lifetimes, {refreshes} refreshes, {refused} requests refused (401), \
         {} chats over {} connections",
        wall.as_secs_f64(),
        expiries,
        count("chats"),
        count("connections")
    );
    if scale() >= 1.0 {
        assert!(expiries >= 2.0, "the phase must outlive several tokens");
    }
    // Single-flight: about one refresh per token lifetime, never one per process.
    assert!(
        refreshes as f64 >= expiries.floor() - 1.0,
        "{refreshes} refreshes in {expiries:.1} lifetimes"
    );
    assert!(
        (refreshes as f64) <= 2.0 * expiries + 2.0,
        "{refreshes} refreshes in {expiries:.1} lifetimes: not single-flight"
    );
    // The margin renews a token a second before it expires, so a request meets an
    // expired token (401, then one refresh and a retry) only when a starved CPU holds
    // it back for that second: a few at most, and every answer above completed anyway.
    assert!(
        refused <= procs,
        "{refused} requests used a token past its expiry"
    );
}
