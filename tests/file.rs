//! coze-file end to end: the real binary against coze-fake. Uploads and lookups in
//! both dialects with the record's shape, the bytes the fake received checked by
//! SHA-256 (200 MB of them once), stdin spooled and left nowhere, every bad file
//! refused before a byte of it is sent while the others go up, an unknown id, a 5xx
//! and a cut upload retried with the whole file, a cut that persists (exit 5, no
//! record), a file that shrinks mid-upload (exit 8, not sent again), the progress line
//! on a terminal (and none on a pipe), --jobs, and a closed stdout.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::both_dialects;
use crate::util::*;

fn file(sb: &Sandbox) -> Command {
    sb.cmd("coze-file")
}

/// Writes `bytes` to `rel` in the sandbox; returns its path.
fn put(sb: &Sandbox, rel: &str, bytes: &[u8]) -> PathBuf {
    let p = sb.path(rel);
    std::fs::write(&p, bytes).unwrap();
    p
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake image";

// ---------------------------------------------------------------- uploads and lookups

fn upload_and_get(d: Dialect) {
    let sb = logged_in_as("file-upload", d);
    put(&sb, "scan.jpg", PNG);
    put(&sb, "my notes.txt", "héllo wörld\n".as_bytes());
    let r = run(file(&sb).args(["upload", "scan.jpg", "my notes.txt"]), "");
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    let recs = r.records();
    assert_eq!(recs.len(), 2, "{}", r.describe());
    let held = sb.uploaded();
    assert_eq!(held.len(), 2);
    for (rec, (path, len)) in recs.iter().zip([
        ("scan.jpg", PNG.len()),
        ("my notes.txt", "héllo wörld\n".len()),
    ]) {
        let mut got = keys(rec);
        got.sort();
        let mut want = vec![
            "bytes",
            "created_at",
            "file_id",
            "file_name",
            "path",
            "type",
        ];
        if sb.studio() {
            want.push("url");
            want.sort();
        }
        assert_eq!(got, want, "{rec}");
        assert_eq!(rec["type"], "file");
        assert_eq!(rec["path"], path);
        assert_eq!(rec["file_name"], path);
        assert_eq!(rec["bytes"], len);
        assert!(rec["created_at"].as_i64().unwrap() > 1_600_000_000, "{rec}");
        let id = rec["file_id"].as_str().unwrap();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "{rec}"
        );
        let h = held.iter().find(|f| f["id"] == rec["file_id"]).unwrap();
        assert_eq!(h["sha256"], sha256_file(&sb.path(path)), "{h}");
    }
    // The type is the content's (a PNG named .jpg), then the extension's.
    assert_eq!(held[0]["content_type"], "image/png", "{held:?}");
    assert_eq!(held[1]["content_type"], "application/octet-stream");

    // get: the same records, without the path. A self-hosted Coze Studio has no
    // retrieve endpoint: said as such, exit 1.
    let ids: Vec<&str> = recs
        .iter()
        .map(|r| r["file_id"].as_str().unwrap())
        .collect();
    let r = run(file(&sb).arg("get").args(&ids), "");
    if sb.studio() {
        r.expect_code(1);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert!(
            r.stderr
                .lines()
                .all(|l| l.contains("this server does not offer GET /v1/files/retrieve")),
            "{}",
            r.describe()
        );
        return;
    }
    r.ok();
    let got = r.records();
    assert_eq!(got.len(), 2);
    for (g, u) in got.iter().zip(&recs) {
        let mut u = u.clone();
        u.as_object_mut().unwrap().remove("path");
        assert_eq!(g, &u);
    }
}

#[test]
fn unknown_file_id_is_the_apis_error_and_the_others_are_printed() {
    let sb = logged_in("file-unknown");
    put(&sb, "a.txt", b"a");
    let r = run(file(&sb).args(["upload", "a.txt"]), "");
    let id = r.ok().records()[0]["file_id"].as_str().unwrap().to_owned();
    let r = run(file(&sb).args(["get", &id, "7000000000000000999", &id]), "");
    r.expect_code(1);
    assert_eq!(r.records().len(), 2, "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr
            .starts_with("coze-file: retrieving file 7000000000000000999: "),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("(logid "), "{}", r.describe());
}

both_dialects!(upload_and_get);

#[test]
fn a_200_mb_file_arrives_whole() {
    let sb = logged_in("file-200mb");
    let p = sb.path("big.bin");
    {
        // Sparse, with a few written stretches so a misplaced byte shows in the hash.
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(200_000_000).unwrap();
        for at in [0u64, 65_535, 100_000_000, 199_999_990] {
            f.write_all_at(b"0123456789", at).unwrap();
        }
    }
    let r = run_deadline(
        file(&sb).args(["upload", "big.bin"]),
        "",
        std::time::Duration::from_secs(300),
    );
    r.ok();
    assert_eq!(r.records()[0]["bytes"], 200_000_000);
    let held = sb.uploaded();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["bytes"], 200_000_000);
    assert_eq!(held[0]["sha256"], sha256_file(&p));
}

#[test]
fn stdin_is_spooled_privately_and_needs_a_name() {
    let sb = logged_in("file-stdin");
    let tmp = sb.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let r = run(
        file(&sb)
            .args(["upload", "-", "--name", "notes.txt"])
            .env("TMPDIR", &tmp),
        "some notes\n",
    );
    r.ok();
    let rec = &r.records()[0];
    assert_eq!(rec["path"], "-");
    assert_eq!(rec["file_name"], "notes.txt");
    assert_eq!(rec["bytes"], 11);
    assert_eq!(sb.uploaded()[0]["sha256"], sha256_hex(b"some notes\n"));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "nothing left");

    // Spooled so that a retry can send it again: a 500, then the whole of it again.
    sb.fake
        .push_fault("files.upload", json!({"type": "http", "status": 500}), 1);
    let before = sb.stats()["upload_bytes"].as_u64().unwrap();
    let r = run(
        file(&sb)
            .args(["upload", "-", "--name", "again.txt"])
            .env("TMPDIR", &tmp),
        "sent twice\n",
    );
    r.ok();
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    assert_eq!(sb.stats()["upload_bytes"].as_u64().unwrap() - before, 22);
    assert_eq!(sb.uploaded()[1]["sha256"], sha256_hex(b"sent twice\n"));

    let r = run(file(&sb).args(["upload", "-"]), "x");
    r.expect_code(2);
    assert!(r.stderr.contains("needs --name"), "{}", r.describe());
    // Empty, or over the limit: refused, and nothing is sent.
    let r = run(file(&sb).args(["upload", "-", "--name", "e.txt"]), "");
    r.expect_code(3);
    assert!(
        r.stderr.starts_with("coze-file: -: is empty"),
        "{}",
        r.describe()
    );
    let r = run(
        file(&sb).args(["upload", "-", "--name", "e.txt", "--max-bytes", "1K"]),
        &"x".repeat(2000),
    );
    r.expect_code(3);
    assert!(
        r.stderr.contains("over the limit of 1 KiB"),
        "{}",
        r.describe()
    );
    assert_eq!(sb.uploaded().len(), 2);
}

// ---------------------------------------------------------------- bad files

#[test]
fn bad_files_are_refused_before_a_byte_is_sent_and_the_others_still_go() {
    let sb = logged_in("file-bad");
    put(&sb, "empty.txt", b"");
    put(&sb, "big.txt", &[b'x'; 2000]);
    put(&sb, "with space.txt", b"spaced");
    std::fs::create_dir(sb.path("adir")).unwrap();
    let fifo = sb.path("pipe");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let odd = OsStr::from_bytes(b"odd\xffname.txt");
    std::fs::write(sb.dir.join(odd), b"odd bytes").unwrap();
    let r = run(
        file(&sb)
            .args(["upload", "missing.txt", "with space.txt", "adir", "pipe"])
            .arg(odd)
            .args(["empty.txt", "big.txt", "--max-bytes", "1K"]),
        "",
    );
    r.expect_code(3);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "coze-file: missing.txt: no such file",
            "coze-file: adir: is a directory, not a file",
            "coze-file: pipe: is not a regular file (a FIFO, socket or device has no size \
             to send up front)",
            "coze-file: empty.txt: is empty (the API takes no empty file)",
            "coze-file: big.txt: is 2000 bytes, over the limit of 1 KiB (--max-bytes)",
        ],
        "{}",
        r.describe()
    );
    let recs = r.records();
    assert_eq!(recs.len(), 2, "{}", r.describe());
    assert_eq!(recs[0]["path"], "with space.txt");
    assert_eq!(recs[0]["file_name"], "with space.txt");
    assert_eq!(recs[1]["path"], "odd\u{fffd}name.txt", "shown lossily");
    assert_eq!(recs[1]["bytes"], 9);
    // Only the good files' bytes reached the server.
    assert_eq!(stat(&sb, "/upload_bytes"), 6 + 9);
    assert_eq!(stat(&sb, "/requests/files.upload"), 2);
}

/// The file first on the command line decides: its API error (1), not the later
/// missing file (3), though the check of that one was told first.
#[test]
fn the_exit_status_is_the_first_failures() {
    let sb = logged_in("file-first");
    put(&sb, "ok.txt", b"ok");
    sb.fake
        .push_fault("files.upload", json!({"type": "http", "status": 500}), 10);
    let r = run(
        file(&sb).args(["upload", "ok.txt", "missing", "--retries", "0"]),
        "",
    );
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "{}", r.describe());
}

/// Files belong to the account, not the token: once the token is refreshed, the files
/// the old one uploaded are still found (the fault matrix's `file.get 4100x1` found the
/// fake keeping them with the token).
#[test]
fn a_refreshed_token_still_finds_the_files_uploaded_before() {
    let sb = logged_in("file-refreshed");
    put(&sb, "a.txt", b"kept");
    let r = run(file(&sb).args(["upload", "a.txt"]), "");
    r.ok();
    let id = r.records()[0]["file_id"].as_str().unwrap().to_owned();
    sb.fake.expire_tokens();
    let r = run(file(&sb).args(["get", &id]), "");
    r.ok();
    assert_eq!(r.records()[0]["file_id"], id.as_str(), "{}", r.describe());
    assert_eq!(stat(&sb, "/grants/refresh_token"), 1, "{}", r.describe());
}

// ---------------------------------------------------------------- retries and cuts

#[test]
fn a_5xx_sends_the_whole_file_again_and_prints_one_record() {
    let sb = logged_in("file-5xx");
    put(&sb, "a.bin", &[7u8; 5000]);
    sb.fake
        .push_fault("files.upload", json!({"type": "http", "status": 503}), 1);
    let r = run(file(&sb).args(["upload", "a.bin"]), "");
    r.ok();
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/files.upload"), 2);
    assert_eq!(
        stat(&sb, "/upload_bytes"),
        2 * 5000,
        "the whole file, twice"
    );
    assert_eq!(sb.uploaded().len(), 1);
    assert_eq!(sb.uploaded()[0]["bytes"], 5000);
}

#[test]
fn a_cut_upload_is_sent_again() {
    let sb = logged_in("file-cut");
    let p = put(&sb, "a.bin", &[9u8; 300_000]);
    sb.fake
        .push_fault("files.upload", json!({"type": "cut_upload"}), 1);
    let r = run(file(&sb).args(["upload", "a.bin"]), "");
    r.ok();
    assert_eq!(r.records().len(), 1, "{}", r.describe());
    assert_eq!(stat(&sb, "/requests/files.upload"), 2);
    // About half the body (the fault's default), then the whole file.
    let received = stat(&sb, "/upload_bytes");
    assert!(
        (300_000 + 100_000..2 * 300_000).contains(&received),
        "{received}"
    );
    let held = sb.uploaded();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["sha256"], sha256_file(&p));
}

#[test]
fn a_cut_that_persists_exits_5_naming_the_file_and_prints_nothing() {
    let sb = logged_in("file-cut-persists");
    put(&sb, "a.bin", &[9u8; 300_000]);
    sb.fake
        .push_fault("files.upload", json!({"type": "cut_upload"}), 10);
    let r = run(file(&sb).args(["upload", "a.bin", "--retries", "2"]), "");
    r.expect_code(5);
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
    assert!(
        r.stderr.starts_with("coze-file: uploading a.bin: "),
        "{}",
        r.describe()
    );
    assert_eq!(stat(&sb, "/requests/files.upload"), 3);
    assert!(sb.uploaded().is_empty());
}

/// A file that shrinks while it is being sent is a local failure, not the network's:
/// exit 8 naming it, sent once (sending it again would fail the same way), no record.
#[test]
fn a_file_that_shrinks_mid_upload_is_exit_8_naming_it_and_not_sent_again() {
    let sb = logged_in("file-shrinks");
    let p = put(&sb, "big.bin", &vec![5u8; 32 << 20]);
    // A slow link: the upload is still in flight when the file shrinks.
    sb.fake.push_fault(
        "files.upload",
        json!({"type": "slow_upload", "bytes_per_s": 2 << 20}),
        1,
    );
    let child = file(&sb)
        .args(["upload", "big.bin", "--retries", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The request's head has arrived: the file was checked and its body is being sent
    // (at most the socket buffers' worth of its 32 MiB read so far).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stat(&sb, "/requests/files.upload") == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    let out = wait_with_deadline(child, std::time::Duration::from_secs(60), "coze-file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(out.stdout.is_empty(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("coze-file: uploading big.bin: big.bin: the file ended ")
            && stderr.contains("bytes early (did it shrink while it was sent?)"),
        "{stderr}"
    );
    assert_eq!(stat(&sb, "/requests/files.upload"), 1, "{stderr}");
    assert!(sb.uploaded().is_empty());
}

// ---------------------------------------------------------------- progress on a terminal

/// On a terminal, an upload over 4 MiB shows a progress line on stderr (bytes, rate,
/// time left) that is cleared before the record; with stderr a pipe there is none.
#[test]
fn a_big_upload_shows_progress_on_a_terminal_only_and_clears_it() {
    let sb = logged_in("file-progress");
    put(&sb, "big.bin", &vec![3u8; 6 << 20]);
    // About 1.5 s on the fake's slow link: several redraws (one every 250 ms).
    let slow = json!({"type": "slow_upload", "bytes_per_s": 4 << 20});
    sb.fake.push_fault("files.upload", slow.clone(), 1);
    let r = run(
        sb.cmd("script").env("FILE", bin("coze-file")).args([
            "-qec",
            "\"$FILE\" upload big.bin",
            "/dev/null",
        ]),
        "",
    );
    r.ok();
    let screen = &r.stdout;
    let lines: Vec<&str> = screen
        .split("\r\x1b[K")
        .filter(|l| l.starts_with("big.bin: "))
        .collect();
    assert!(!lines.is_empty(), "no progress line\n{}", r.describe());
    for l in &lines {
        // `big.bin: 2.3 of 6.0 MiB (38%), 4.0 MiB/s, 1 s left`
        let rest = l.strip_prefix("big.bin: ").unwrap();
        let (sent, rest) = rest
            .split_once(" of 6.0 MiB (")
            .unwrap_or_else(|| panic!("{l:?}"));
        let (pct, rest) = rest.split_once("%), ").unwrap_or_else(|| panic!("{l:?}"));
        let (rate, left) = rest
            .split_once(" MiB/s, ")
            .unwrap_or_else(|| panic!("{l:?}"));
        assert!(sent.parse::<f64>().is_ok_and(|s| s <= 6.0), "{l:?}");
        assert!(pct.parse::<u32>().is_ok_and(|p| p <= 100), "{l:?}");
        assert!(rate.parse::<f64>().is_ok(), "{l:?}");
        assert!(
            left.strip_suffix(" s left")
                .is_some_and(|n| n.parse::<u64>().is_ok()),
            "{l:?}"
        );
    }
    // Cleared: the record follows an erased line, and no progress comes after it.
    let record = screen
        .find("{\"type\":\"file\"")
        .unwrap_or_else(|| panic!("no record\n{}", r.describe()));
    assert!(
        screen[..record].ends_with("\r\x1b[K"),
        "the progress line was not cleared before the record: {:?}",
        &screen[screen.len().min(record.saturating_sub(80))..]
    );
    assert!(!screen[record..].contains("big.bin: "), "{}", r.describe());
    // The same slow upload with stderr a pipe: not a byte of progress.
    sb.fake.push_fault("files.upload", slow, 1);
    let r = run(file(&sb).args(["upload", "big.bin"]), "");
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    assert_eq!(r.records().len(), 1, "{}", r.describe());
}

// ---------------------------------------------------------------- many files

#[test]
fn rate_paces_the_uploads_across_jobs() {
    let sb = logged_in("file-rate");
    let names: Vec<String> = (0..6).map(|i| format!("r{i}.txt")).collect();
    for n in &names {
        put(&sb, n, n.as_bytes());
    }
    let r = run(
        file(&sb)
            .arg("upload")
            .args(&names)
            .args(["--jobs", "4", "--rate", "2"]),
        "",
    );
    r.ok();
    assert_eq!(r.records().len(), 6, "{}", r.describe());
    // No one-second window saw more than the rate (plus one for the edges): unpaced,
    // all six arrive at once.
    let times: Vec<f64> = sb
        .fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "files.upload")
        .map(|e| e["t_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(times.len(), 6);
    let worst = (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|u| **u < times[i] + 1000.0)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        worst <= 3,
        "{worst} uploads in one second at --rate 2: {times:?}"
    );
}

#[test]
fn the_type_comes_from_the_name_when_the_content_says_nothing() {
    let sb = logged_in("file-type-by-name");
    put(&sb, "report.pdf", b"not the PDF magic");
    put(&sb, "photo.WEBP", b"nor the WebP magic");
    run(file(&sb).args(["upload", "report.pdf", "photo.WEBP"]), "").ok();
    let held = sb.uploaded();
    assert_eq!(held[0]["content_type"], "application/pdf", "{held:?}");
    assert_eq!(held[1]["content_type"], "image/webp", "{held:?}");
}

#[test]
fn jobs_4_uploads_8_files() {
    let sb = logged_in("file-jobs");
    let names: Vec<String> = (0..8).map(|i| format!("f{i}.txt")).collect();
    for (i, n) in names.iter().enumerate() {
        put(&sb, n, format!("file number {i}").as_bytes());
    }
    let r = run(
        file(&sb).arg("upload").args(&names).args(["--jobs", "4"]),
        "",
    );
    r.ok();
    let mut paths: Vec<String> = r
        .records()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, names);
    assert_eq!(sb.uploaded().len(), 8);
    // A batch run tells its summary on stderr.
    let summary: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["files"].as_u64(), summary["completed"].as_u64()),
        (Some(8), Some(8))
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let sb = logged_in("file-closed");
    let names: Vec<String> = (0..3).map(|i| format!("f{i}.txt")).collect();
    for n in &names {
        put(&sb, n, b"x");
    }
    let mut child = file(&sb)
        .arg("upload")
        .args(&names)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = wait_with_deadline(child, std::time::Duration::from_secs(60), "coze-file");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
