//! The token store under SIGKILL: a refreshing process (`coze-token refresh --force`,
//! or `coze-token print` on a stale file) killed at 200 points spread over its whole
//! life, before, during and after the fake's answer. After every kill the file is a
//! whole token (JSON, 0600, never empty or torn) holding the old pair or the new one,
//! no temp or lock file stops the next run, and when the kill landed in the one window
//! no client can close (the server rotated the pair, the new one never reached the
//! disk) the next run says so plainly and exits 4.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::*;

const KILLS: usize = 200;

/// xorshift64*: the kill points are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Rotations the fake has performed so far.
fn rotations(sb: &Sandbox) -> u64 {
    sb.stats()["refreshes"].as_u64().unwrap_or(0)
}

/// The file is a whole token, private: never empty, never half-written.
fn check_whole(path: &Path, what: &str) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{what}: the token file is gone: {e}"));
    assert!(text.ends_with('\n'), "{what}: torn file {text:?}");
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:?}"));
    assert_eq!(v["type"], "token", "{what}: {text:?}");
    assert_eq!(mode(path), 0o600, "{what}");
    v
}

fn pair(t: &Value) -> (String, String) {
    (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Time from spawn to exit of an undisturbed refresh: the fake answers just before.
fn calibrate(sb: &Sandbox) -> Duration {
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            run(sb.cmd("coze-token").args(["refresh", "--force"]), "").ok();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn a_refresh_killed_at_200_points_keeps_one_whole_pair() {
    let started = Instant::now();
    let sb = Sandbox::new("crash");
    sb.login();
    let path = sb.token_path();
    let dir = path.parent().unwrap().to_path_buf();
    let answer = calibrate(&sb);
    let mut rng = Rng(0x00C0_FFEE_2024);
    let (mut before_answer, mut window_hits, mut after_write, mut finished) = (0, 0, 0, 0);
    let (mut delayed, mut stray_temps, mut held_hits) = (0, 0, 0);
    let mut slowest_next = Duration::ZERO;
    let mut hit_message = String::new();
    for i in 0..KILLS {
        let what = format!("kill {i}");
        let print = i % 2 == 1;
        if print {
            // Inside the 120 s margin of `print`: it refreshes.
            set_expires_at(&path, now() + 30);
        }
        let old = pair(&check_whole(&path, &what));
        let rotations_before = rotations(&sb);
        // A third of the runs: the fake rotates the pair, then holds its answer.
        let hold_ms = if rng.below(3) == 0 {
            delayed += 1;
            let ms = 10 + rng.below(50);
            sb.fake
                .push_fault("token", json!({"type":"delay","ms":ms}), 1);
            ms
        } else {
            0
        };
        // Anywhere from the spawn to the answer (half the runs) or to ~60 ms past it:
        // an undisturbed run exits a few ms after the answer, so a plain 0-60 ms
        // spread past it would mostly kill processes that are already gone.
        let past = if rng.below(2) == 0 { 60_000 } else { 0 };
        let span_us = (answer.as_micros() as u64) + hold_ms * 1000 + past;
        let kill_at = Duration::from_micros(rng.below(span_us));
        let mut cmd = sb.cmd("coze-token");
        if print {
            cmd.arg("print");
        } else {
            cmd.args(["refresh", "--force"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_at);
        let _ = child.kill(); // SIGKILL; a no-op on a process that already exited
        let status = child.wait().unwrap();
        let killed = status.signal() == Some(9);
        assert!(killed || status.success(), "{what}: {status:?}");
        finished += usize::from(!killed);

        let after = check_whole(&path, &what);
        let now_pair = pair(&after);
        let kept_old = now_pair == old;
        if !kept_old {
            assert_ne!(now_pair.0, old.0, "{what}: half of a new pair");
            assert_ne!(now_pair.1, old.1, "{what}: half of a new pair");
        }
        let temps = temp_files(&dir);
        stray_temps += usize::from(!temps.is_empty());

        // The next run: neither a temp file nor the lock file (the killed process may
        // have held it) stops it; it succeeds, or fails cleanly with exit 4.
        let t0 = Instant::now();
        let next = run_deadline(
            sb.cmd("coze-token").args(["refresh", "--force"]),
            "",
            Duration::from_secs(5),
        );
        slowest_next = slowest_next.max(t0.elapsed());
        let rotated_by_killed = rotations(&sb) - rotations_before - u64::from(next.code() == 0);
        match (kept_old, next.code()) {
            (false, 0) => {
                // Killed after the new pair was written (or it finished).
                assert_eq!(rotated_by_killed, 1, "{what}");
                after_write += 1;
            }
            (true, 0) => {
                // Killed before the server rotated anything: the old pair still works.
                assert_eq!(rotated_by_killed, 0, "{what}");
                assert!(killed, "{what}: a run that finished must have written");
                before_answer += 1;
            }
            (true, 4) => {
                // The window: the server rotated, the kill came before the write.
                assert_eq!(rotated_by_killed, 1, "{what}: {}", next.describe());
                assert!(killed, "{what}");
                let line = next.stderr.trim_end();
                assert_eq!(next.stderr.lines().count(), 1, "{}", next.describe());
                assert!(
                    line.contains(&format!(
                        "the refresh token in {} was already used (a refresh was \
                         interrupted after the server rotated it): log in again with",
                        path.display()
                    )),
                    "{what}: {}",
                    next.describe()
                );
                assert!(!line.contains(&old.1), "{what}: the refresh token leaked");
                hit_message = line.to_owned();
                window_hits += 1;
                held_hits += usize::from(hold_ms > 0);
                sb.login();
            }
            _ => panic!("{what}: unexpected next run\n{}", next.describe()),
        }
        check_whole(&path, &format!("{what}, after the next run"));
        assert_eq!(
            temp_files(&dir),
            Vec::<String>::new(),
            "{what}: a temp file outlived the next write"
        );
    }
    eprintln!(
        "{KILLS} kills ({delayed} with the answer held 10-60 ms; refresh took {answer:?} \
         undisturbed): {before_answer} before the rotation (old pair, still valid), \
         {window_hits} in the rotation window (old pair, retired: next run exit 4; \
         {held_hits} of them while the answer was held, {} on an undisturbed run), \
         {after_write} after the write (new pair; {finished} had already finished); \
         {stray_temps} left a temp file (removed by the next write); slowest next run \
         {slowest_next:?}; {:?} in all\n  window message: {hit_message}",
        window_hits - held_hits,
        started.elapsed()
    );
    assert_eq!(before_answer + window_hits + after_write, KILLS);
    // The spread must really cover the three phases.
    assert!(before_answer >= 10, "too few kills before the answer");
    assert!(window_hits >= 5, "too few kills in the window");
    assert!(after_write >= 10, "too few kills after the write");
    assert!(
        slowest_next < Duration::from_secs(1),
        "a run after a kill took {slowest_next:?}: something blocked it"
    );
}
