//! Attachments in coze-chat end to end: `--attach` (a path, `file_id:ID`, a URL), a
//! `file` record from coze-file attaching to the next prompt line, a prompt record's
//! own `attachments`; a path uploaded once per run however many prompts carry it; the
//! message an object_string the fake checks by the API's rules and whose attachments
//! its bot names (` [attachments: TYPE:NAME, …]`); the answer record listing what was
//! sent; bad attachments refused before any request; coze-conv showing the parts.

use std::path::Path;

use serde_json::json;

use crate::both_dialects;
use crate::chat::chat;
use crate::util::*;

/// A PNG by its magic bytes, whatever its name says.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image";
const PDF: &[u8] = b"%PDF-1.7\n% a fake document\n";

fn write(sb: &Sandbox, name: &str, bytes: &[u8]) -> String {
    let p = sb.path(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

/// How often the fake was asked `endpoint`.
fn requests(sb: &Sandbox, endpoint: &str) -> u64 {
    sb.stats()["requests"][endpoint].as_u64().unwrap_or(0)
}

fn a_path_is_uploaded_once_for_every_prompt_that_carries_it(d: Dialect) {
    let sb = logged_in_as("attach-once", d);
    // Named .bin: its content makes it an image.
    let scan = write(&sb, "scan.bin", PNG);
    let r = run(
        chat(&sb).args(["-o", "answers", "--attach", &scan]),
        "what is it?\nand the colours?\nwho made it?\n",
    );
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    let files = sb.uploaded();
    assert_eq!(files.len(), 1, "one upload for three prompts: {files:?}");
    assert_eq!(requests(&sb, "files.upload"), 1);
    let id = files[0]["id"].as_str().unwrap();
    assert_eq!(files[0]["bytes"], PNG.len());
    for a in &recs {
        assert_eq!(a["status"], "completed", "{a}");
        assert!(
            a["content"]
                .as_str()
                .unwrap()
                .ends_with(" [attachments: image:scan.bin]"),
            "{a}"
        );
        assert_eq!(
            a["attachments"],
            json!([{"file_id": id, "file_name": "scan.bin"}]),
            "{a}"
        );
    }
}

fn jobs_at_once_still_upload_a_path_once(d: Dialect) {
    let sb = logged_in_as("attach-jobs", d);
    let doc = write(&sb, "big.pdf", PDF);
    // The upload takes about a second, so the other jobs want the file while it is
    // still going up: they wait for it rather than send it too.
    sb.fake.push_fault(
        "files.upload",
        json!({"type": "slow_upload", "bytes_per_s": 200}),
        1,
    );
    let input: String = (0..12).map(|i| format!("question {i}\n")).collect();
    let r = run(
        chat(&sb).args(["-o", "answers", "--jobs", "4", "--attach", &doc]),
        &input,
    );
    r.ok();
    assert_eq!(r.records().len(), 12, "{}", r.describe());
    assert_eq!(requests(&sb, "files.upload"), 1, "{}", r.describe());
    assert!(r.records().iter().all(|a| a["content"]
        .as_str()
        .unwrap()
        .ends_with("[attachments: file:big.pdf]")));
}

fn a_file_record_attaches_to_the_next_prompt_line_only(d: Dialect) {
    let sb = logged_in_as("attach-record", d);
    let doc = write(&sb, "report.pdf", PDF);
    let up = run(sb.cmd("coze-file").args(["upload", &doc]), "");
    up.ok();
    let file = up.records().remove(0);
    let input = format!("{file}\nwhat does it say?\nthanks\n");
    let r = run(chat(&sb).args(["-o", "answers"]), &input);
    r.ok();
    let recs = r.records();
    assert_eq!(recs.len(), 2, "{}", r.describe());
    assert!(
        recs[0]["content"]
            .as_str()
            .unwrap()
            .ends_with(" [attachments: file:report.pdf]"),
        "{}",
        recs[0]
    );
    assert_eq!(
        recs[0]["attachments"],
        json!([{"file_id": file["file_id"], "file_name": "report.pdf"}])
    );
    assert!(recs[1].get("attachments").is_none(), "{}", recs[1]);
    assert!(!recs[1]["content"]
        .as_str()
        .unwrap()
        .contains("[attachments"));
    // coze-chat uploaded nothing itself: the file came as an id.
    assert_eq!(requests(&sb, "files.upload"), 1);
}

fn a_prompt_record_carries_paths_ids_and_urls(d: Dialect) {
    let sb = logged_in_as("attach-prompt-record", d);
    let doc = write(&sb, "notes.pdf", PDF);
    let line = json!({"type": "prompt", "id": "q1", "content": "compare them",
        "attachments": [{"path": doc}, {"file_url": "https://files.example/photo.JPG?size=2"}]});
    let r = run(chat(&sb).args(["-o", "answers"]), &format!("{line}\n"));
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["id"], "q1");
    assert!(
        a["content"].as_str().unwrap().ends_with(
            " [attachments: file:notes.pdf, image:https://files.example/photo.JPG?size=2]"
        ),
        "{a}"
    );
    assert_eq!(
        a["attachments"][1],
        json!({"file_url": "https://files.example/photo.JPG?size=2"})
    );
    // The message went as an object_string, its text first.
    let conv = a["conversation_id"].as_str().unwrap();
    let m = run(sb.cmd("coze-conv").args(["messages", conv]), "");
    m.ok();
    let question = m
        .records()
        .into_iter()
        .find(|m| m["role"] == "user")
        .expect("the question is stored");
    assert_eq!(question["content_type"], "object_string", "{question}");
    assert_eq!(
        question["parts"][0],
        json!({"type": "text", "text": "compare them"})
    );
    assert_eq!(question["parts"][1]["type"], "file");
    assert_eq!(question["parts"][2]["type"], "image");
}

fn the_prompt_argument_and_dash_take_attach_too(d: Dialect) {
    let sb = logged_in_as("attach-argument", d);
    let scan = write(&sb, "page.png", PNG);
    let r = run(
        chat(&sb).args(["-o", "answers", "--attach", &scan, "read it"]),
        "",
    );
    r.ok();
    assert!(r.records()[0]["content"]
        .as_str()
        .unwrap()
        .ends_with("[attachments: image:page.png]"));
    let r = run(
        chat(&sb).args(["-o", "text", "--attach", &scan, "-"]),
        "all of it\n",
    );
    r.ok();
    assert!(
        r.stdout.contains("[attachments: image:page.png]"),
        "{}",
        r.describe()
    );
    // Polled (--no-stream), the same message is sent.
    let r = run(
        chat(&sb).args(["-o", "answers", "--no-stream", "--attach", &scan, "polled"]),
        "",
    );
    r.ok();
    assert!(r.records()[0]["content"]
        .as_str()
        .unwrap()
        .ends_with("[attachments: image:page.png]"));
}

both_dialects!(
    a_path_is_uploaded_once_for_every_prompt_that_carries_it,
    jobs_at_once_still_upload_a_path_once,
    a_file_record_attaches_to_the_next_prompt_line_only,
    a_prompt_record_carries_paths_ids_and_urls,
    the_prompt_argument_and_dash_take_attach_too,
);

#[test]
fn bad_attachments_are_refused_before_any_request() {
    let sb = logged_in("attach-bad");
    let dir = sb.path("a-dir");
    std::fs::create_dir(&dir).unwrap();
    let empty = write(&sb, "empty.pdf", b"");
    // --attach: one line naming the file, exit 3, nothing asked.
    for (path, why) in [
        (
            sb.path("missing.png").to_str().unwrap().to_owned(),
            "no such file",
        ),
        (dir.to_str().unwrap().to_owned(), "is a directory"),
        (empty.clone(), "is empty"),
    ] {
        let r = run(chat(&sb).args(["--attach", &path, "hi"]), "");
        r.expect_code(3);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr.contains(&path) && r.stderr.contains(why),
            "{}",
            r.describe()
        );
    }
    assert_eq!(requests(&sb, "chat"), 0);
    assert_eq!(requests(&sb, "files.upload"), 0);

    // Lines: each bad one an invalid answer naming its line; the good one asked.
    let good = write(&sb, "ok.png", PNG);
    let lines = [
        json!({"type": "prompt", "content": "a", "attachments": [{}]}).to_string(),
        json!({"type": "prompt", "content": "b", "attachments": [{"path": empty}]}).to_string(),
        json!({"type": "prompt", "content": "c",
               "attachments": [{"file_id": "1", "file_url": "https://x/y.png"}]})
        .to_string(),
        json!({"type": "file", "file_name": "no-id.pdf"}).to_string(),
        json!({"type": "prompt", "content": "d", "attachments": [{"path": good}]}).to_string(),
        json!({"type": "file", "file_id": "123", "file_name": "late.pdf"}).to_string(),
    ];
    let r = run(
        chat(&sb).args(["-o", "answers"]),
        &(lines.join("\n") + "\n"),
    );
    r.expect_code(3);
    let recs = r.records();
    let by_status = |s: &str| recs.iter().filter(|a| a["status"] == s).count();
    assert_eq!(
        (by_status("invalid"), by_status("completed")),
        (5, 1),
        "{}",
        r.describe()
    );
    for (n, want) in [
        (1, "needs one of"),
        (2, "is empty"),
        (3, "not several"),
        (4, "no `file_id`"),
        (6, "no prompt line after it"),
    ] {
        assert!(
            recs.iter().any(|a| a["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("line {n}")) && m.contains(want))),
            "line {n}: {want}: {}",
            r.describe()
        );
    }
    assert_eq!(requests(&sb, "chat"), 1);
}

#[test]
fn a_path_with_spaces_and_bytes_that_are_not_utf8_is_sent() {
    use std::os::unix::ffi::OsStrExt;
    let sb = logged_in("attach-odd-name");
    let name = std::ffi::OsStr::from_bytes(b"my scan \xff.png");
    let path = sb.dir.join(name);
    std::fs::write(&path, PNG).unwrap();
    let r = run(
        chat(&sb)
            .args(["-o", "answers", "--attach"])
            .arg(&path)
            .arg("what is it?"),
        "",
    );
    r.ok();
    let a = &r.records()[0];
    assert_eq!(a["status"], "completed", "{a}");
    assert!(
        a["content"]
            .as_str()
            .unwrap()
            .contains("[attachments: image:my scan "),
        "{a}"
    );
    let files = sb.uploaded();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["bytes"], PNG.len());
    // A missing one of that kind is named, lossily, with exit 3.
    let gone = sb.dir.join(std::ffi::OsStr::from_bytes(b"gone \xfe.png"));
    let r = run(chat(&sb).arg("--attach").arg(&gone).arg("hi"), "");
    r.expect_code(3);
    assert!(r.stderr.contains("gone \u{fffd}.png"), "{}", r.describe());
}

#[test]
fn one_file_is_one_upload_however_its_path_is_spelled_and_wherever_it_is_named() {
    let sb = logged_in("attach-spellings");
    let doc = write(&sb, "doc.pdf", PDF);
    std::fs::create_dir(sb.path("sub")).unwrap();
    let dir = sb.dir.to_str().unwrap();
    let lines = [
        json!({"type": "prompt", "content": "a", "attachments": [{"path": doc}]}),
        json!({"type": "prompt", "content": "b", "attachments": [{"path": format!("{dir}/sub/../doc.pdf")}]}),
        json!({"type": "prompt", "content": "c", "attachments": [{"path": doc}]}),
    ]
    .map(|l| l.to_string());
    let r = run(
        chat(&sb).args(["-o", "answers", "--attach", &format!("{dir}/./doc.pdf")]),
        &(lines.join("\n") + "\n"),
    );
    r.ok();
    assert_eq!(r.records().len(), 3, "{}", r.describe());
    assert_eq!(requests(&sb, "files.upload"), 1, "{}", r.describe());
}

#[test]
fn a_failed_upload_is_not_sent_again_for_the_prompts_after_it() {
    let sb = logged_in("attach-failed-once");
    let doc = write(&sb, "doc.pdf", PDF);
    sb.fake
        .push_fault("files.upload", json!({"type": "http", "status": 500}), 100);
    let line = json!({"type": "prompt", "content": "q", "attachments": [{"path": doc}]});
    let r = run(
        chat(&sb).args(["-o", "answers", "--retries", "1"]),
        &format!("{line}\n{line}\n{line}\n"),
    );
    assert_ne!(r.code(), 0, "{}", r.describe());
    let recs = r.records();
    assert_eq!(recs.len(), 3, "{}", r.describe());
    assert!(
        recs.iter().all(|a| a["status"] == "failed"),
        "{}",
        r.describe()
    );
    // The first prompt's upload and its one retry; the others are told, not sent.
    assert_eq!(requests(&sb, "files.upload"), 2, "{}", r.describe());
    assert!(
        recs[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("its upload failed earlier in this run"),
        "{}",
        recs[2]
    );
    assert_eq!(requests(&sb, "chat"), 0);
}

#[test]
fn a_file_id_the_server_does_not_know_is_its_error() {
    let sb = logged_in("attach-unknown-id");
    let r = run(
        chat(&sb).args(["-o", "answers", "--attach", "file_id:4242", "what is it?"]),
        "",
    );
    r.expect_code(1);
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["error"]["code"], 4000, "{a}");
    assert!(r.stderr.contains("4242"), "{}", r.describe());
    assert!(r.stderr.contains("logid"), "{}", r.describe());
}

#[test]
fn a_failed_upload_fails_its_prompt_and_nothing_is_asked() {
    let sb = logged_in("attach-upload-fails");
    let scan = write(&sb, "scan.png", PNG);
    // More 500s than the retries: the upload fails for good.
    sb.fake
        .push_fault("files.upload", json!({"type": "http", "status": 500}), 6);
    let r = run(
        chat(&sb).args(["-o", "answers", "--retries", "1", "--attach", &scan, "hi"]),
        "",
    );
    assert_ne!(r.code(), 0, "{}", r.describe());
    let a = &r.records()[0];
    assert_eq!(a["status"], "failed", "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uploading"),
        "{a}"
    );
    assert!(
        r.stderr.contains(Path::new(&scan).to_str().unwrap()),
        "{}",
        r.describe()
    );
    assert_eq!(requests(&sb, "chat"), 0);
}
