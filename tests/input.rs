//! What the tools take in, and what they let out onto a terminal: every line and file
//! read is bounded (`< /dev/zero` is one line of error, not memory until the process
//! aborts); with `-o answers` a bad stdin line is an answer record and the batch goes
//! on; repeated lines get ids of their own; a byte-order mark, a prompt record's bot,
//! content type and meta_data, and a conversation id that is a dot segment are taken
//! as they should be; the bot's and the server's control characters are shown, not
//! obeyed, on a terminal; `make demo` writes no ANSI codes into a pipe; and no message
//! cites an internal document.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use coze_fake::{answer_text, follow_ups};
use serde_json::{json, Value};

use crate::util::*;

/// `coze-chat --bot 7` in the sandbox.
fn chat(sb: &Sandbox) -> Command {
    let mut c = sb.cmd("coze-chat");
    c.args(["--bot", "7"]);
    c
}

/// The `coze-chat` lines on stderr (a batch's summary aside).
fn error_lines(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("coze-chat: "))
        .collect()
}

/// How many requests the fake has seen.
fn requests(sb: &Sandbox) -> usize {
    sb.fake.log().as_array().map_or(0, Vec::len)
}

/// The peak resident memory every run of [`bounded`] must stay under. A debug
/// coze-chat holding an 8 MiB line stays near 20 MiB; the reader that grew with its
/// input peaked at 172 MB on a 10 MB line.
const PEAK_KIB: u64 = 64 << 10;

/// Runs `tool args` with stdin from the file `input`, in an address space of 1 GiB (a
/// reader that grows with its input then fails at once instead of taking the machine's
/// memory), and returns what it did and its peak resident memory in KiB (getrusage of
/// its parent, a python3 one-liner: the harness has no rusage of its own children).
fn bounded(sb: &Sandbox, tool: &str, args: &[&str], input: &Path) -> (Run, u64) {
    const WRAPPER: &str = "\
import resource, subprocess, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
with open(sys.argv[1], 'rb') as f:
    r = subprocess.run(sys.argv[2:], stdin=f, preexec_fn=cap)
sys.stderr.write('peak_rss_kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)
";
    let mut cmd = sb.cmd("python3");
    cmd.args(["-c", WRAPPER])
        .arg(input)
        .arg(bin(tool))
        .args(args);
    let mut r = run_deadline(&mut cmd, "", Duration::from_secs(120));
    let (rest, peak) = r
        .stderr
        .trim_end()
        .rsplit_once('\n')
        .map_or(("", r.stderr.trim_end()), |(a, b)| (a, b));
    let peak = peak
        .strip_prefix("peak_rss_kib=")
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no peak from the wrapper\n{}", r.describe()));
    r.stderr = if rest.is_empty() {
        String::new()
    } else {
        format!("{rest}\n")
    };
    (r, peak)
}

// ------------------------------------------------------------ 1. bounded reads

/// `coze-chat < /dev/zero` (one endless line) and a 20 MB line end at once with exit 3
/// and one line naming the line, in bounded memory; the lines before are answered, the
/// rest of the input is not read. `-` (all of stdin) is bounded the same way.
#[test]
fn an_endless_or_huge_stdin_line_is_refused_in_bounded_memory() {
    let sb = logged_in("input-zero");
    let zero = Path::new("/dev/zero");
    for extra in [
        &["-o", "text"][..],
        &["-o", "answers"],
        &["-o", "answers", "--jobs", "2"],
    ] {
        let (r, peak) = bounded(&sb, "coze-chat", &[&["--bot", "7"], extra].concat(), zero);
        r.expect_code(3);
        assert_eq!(
            r.stderr
                .lines()
                .find(|l| !l.starts_with("{\"type\":\"summary\"")),
            Some("coze-chat: stdin line 1: longer than 8 MiB; --max-line-bytes raises the limit"),
            "{extra:?}\n{}",
            r.describe()
        );
        assert_eq!(error_lines(&r).len(), 1, "{}", r.describe());
        assert!(peak < PEAK_KIB, "{extra:?}: peak RSS {peak} KiB");
    }
    assert_eq!(stat(&sb, "/chats"), 0);

    let (r, peak) = bounded(&sb, "coze-chat", &["--bot", "7", "-o", "text", "-"], zero);
    r.expect_code(3);
    assert_eq!(
        r.stderr,
        "coze-chat: stdin: larger than 8 MiB; --max-line-bytes raises the limit\n",
        "{}",
        r.describe()
    );
    assert!(peak < PEAK_KIB, "-: peak RSS {peak} KiB");

    let huge = sb.path("huge.txt");
    std::fs::write(&huge, format!("first\n{}\nlast\n", "x".repeat(20_000_000))).unwrap();
    let (r, peak) = bounded(&sb, "coze-chat", &["--bot", "7", "-o", "answers"], &huge);
    r.expect_code(3);
    let recs = r.records();
    assert_eq!(recs.len(), 2, "{}", r.describe());
    assert_eq!(recs[0]["status"], "completed");
    assert_eq!(recs[1]["status"], "invalid");
    assert_eq!(recs[1]["prompt"], "", "a line not read has no text");
    assert_eq!(recs[1]["error"]["exit_code"], 3);
    let message = recs[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("stdin line 2: longer than 8 MiB"),
        "{message}"
    );
    assert_eq!(error_lines(&r), [format!("coze-chat: {message}")]);
    assert!(peak < PEAK_KIB, "20 MB line: peak RSS {peak} KiB");
    assert_eq!(stat(&sb, "/chats"), 1, "only the first line is asked");
}

/// `--max-line-bytes` raises (or lowers) the limit, with K/M/G suffixes.
#[test]
fn max_line_bytes_sets_the_limit() {
    let sb = logged_in("input-max-line");
    let line = "长".repeat(500); // 1500 bytes
    let r = run(
        chat(&sb).args(["-o", "text", "--max-line-bytes", "1K"]),
        &format!("{line}\n"),
    );
    r.expect_code(3);
    assert_eq!(
        r.stderr,
        "coze-chat: stdin line 1: longer than 1 KiB; --max-line-bytes raises the limit\n"
    );
    let r = run(
        chat(&sb).args(["-o", "text", "--max-line-bytes", "2K"]),
        &format!("{line}\n"),
    );
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text(&line)));
    let r = run(chat(&sb).args(["--max-line-bytes", "lots", "hi"]), "");
    r.expect_code(2);
    assert!(r.stderr.contains("--max-line-bytes"), "{}", r.describe());
}

/// The files and other stdin readers are bounded too, each ending in one line that
/// names what it read: an answers file (`--resume`), a token file, coze-token's grant
/// records, and coze-auth's pasted redirect.
#[test]
fn every_file_and_stdin_read_is_bounded() {
    let sb = logged_in("input-files");
    let zero = Path::new("/dev/zero");
    let null = Path::new("/dev/null");
    // A token file must be a regular file (a device is a local error, tests/token_files.rs):
    // a huge regular one is read no further than its cap.
    std::fs::write(sb.path("huge.json"), vec![b' '; 2 << 20]).unwrap();
    std::fs::set_permissions(
        sb.path("huge.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cases: [(&str, Vec<&str>, &Path, i32, &str); 4] = [
        (
            "coze-chat",
            vec!["--bot", "7", "-o", "answers", "--resume", "/dev/zero"],
            null,
            2,
            "coze-chat: --resume /dev/zero: line 1: longer than 64 MiB",
        ),
        (
            "coze-conv",
            vec!["list", "--bot", "7", "--token-file", "huge.json"],
            null,
            4,
            "huge.json is not a token file (larger than 1 MiB)",
        ),
        (
            "coze-token",
            vec![],
            zero,
            3,
            "coze-token: stdin: line 1: longer than 1 MiB",
        ),
        (
            "coze-auth",
            vec!["--client-id", "42.app.coze", "--paste"],
            zero,
            3,
            "coze-auth: stdin: the pasted line is longer than 64 KiB",
        ),
    ];
    for (tool, args, input, code, says) in cases {
        let (r, peak) = bounded(&sb, tool, &args, input);
        r.expect_code(code);
        let last = r.stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("{tool}: ")) && last.contains(says),
            "{tool}: {last:?} does not say {says:?}\n{}",
            r.describe()
        );
        if tool != "coze-auth" {
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        }
        assert!(peak < PEAK_KIB, "{tool}: peak RSS {peak} KiB");
        assert!(r.stdout.is_empty(), "{}", r.describe());
    }
}

// ------------------------------------------------------------ 2. bad lines in a batch

/// With `-o answers` a bad line is an answer record (status `invalid`, the error
/// naming the line, the record's own id when it has one) and the run goes on; the exit
/// status still reports it, and the README's "what failed" query finds it. With
/// `--jobs` too. Text mode keeps stopping at it (tests/chat.rs).
#[test]
fn a_bad_line_is_an_invalid_answer_and_the_batch_goes_on() {
    let sb = logged_in("input-bad-lines");
    let bad = [
        "{\"type\":\"prompt\",\"content\":",
        "{\"type\":\"prompt\",\"id\":\"t-3\",\"contnt\":\"x\"}",
        "{ what about braces?",
    ];
    let input = format!("first\n{}\n{}\n{}\nlast\n", bad[0], bad[1], bad[2]);
    for extra in [&[][..], &["--jobs", "2", "--ordered", "--summary"]] {
        let r = run(chat(&sb).args(["-o", "answers"]).args(extra), &input);
        r.expect_code(3);
        let recs: Vec<Value> = r
            .records()
            .into_iter()
            .filter(|v| v["type"] == "answer")
            .collect();
        let statuses: Vec<&str> = recs.iter().map(|v| v["status"].as_str().unwrap()).collect();
        assert_eq!(
            statuses,
            ["completed", "invalid", "invalid", "invalid", "completed"],
            "{}",
            r.describe()
        );
        assert_eq!(recs[4]["content"], answer_text("last"));
        // What the README's `select(.status != "completed") | .prompt` prints.
        let failed: Vec<Value> = recs
            .iter()
            .filter(|v| v["status"] != "completed")
            .map(|v| v["prompt"].clone())
            .collect();
        assert_eq!(failed, bad.map(Value::from));
        for (n, rec) in [(2, &recs[1]), (3, &recs[2]), (4, &recs[3])] {
            let message = rec["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("stdin line {n}: ")), "{rec}");
            assert_eq!(rec["error"]["exit_code"], 3, "{rec}");
            assert!(rec["id"].is_string(), "{rec}");
        }
        assert_eq!(recs[2]["id"], "t-3", "a bad record keeps its own id");
        assert_eq!(error_lines(&r).len(), 3, "{}", r.describe());
        if !extra.is_empty() {
            let summary = r.records().into_iter().last().unwrap();
            assert_eq!(summary["type"], "summary", "{summary}");
            assert_eq!(
                (
                    &summary["prompts"],
                    &summary["completed"],
                    &summary["by_status"]
                ),
                (&json!(5), &json!(2), &json!({"completed": 2, "invalid": 3})),
                "{summary}"
            );
        }
    }
    assert_eq!(stat(&sb, "/chats"), 4);
    // Events mode, like text mode, still stops at the bad line unless --keep-going.
    let r = run(chat(&sb).args(["-o", "events"]), &input);
    r.expect_code(3);
    assert_eq!(stat(&sb, "/chats"), 5);
}

// ------------------------------------------------------------ 3. ids of repeated lines

/// Two identical lines get ids of their own (`sha256:…` and `sha256:…#2`), the same in
/// every run, so `--resume` asks exactly the one an interrupted run did not finish.
#[test]
fn repeated_lines_get_ids_of_their_own_and_resume_tells_them_apart() {
    let sb = logged_in("input-dup-ids");
    let input = "same\nother\nsame\n";
    let r = run(chat(&sb).args(["-o", "answers"]), input);
    r.ok();
    let recs = r.records();
    let ids: Vec<&str> = recs.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let first = ids[0];
    assert!(first.starts_with("sha256:") && first.len() == 23, "{first}");
    assert_eq!(ids[2], format!("{first}#2"));
    assert_ne!(ids[1], first);
    // A run killed before its last answer: the resumed run asks that one only.
    let file = sb.path("answers.jsonl");
    std::fs::write(&file, format!("{}\n{}\n", recs[0], recs[1])).unwrap();
    let chats = stat(&sb, "/chats");
    let r = run(
        chat(&sb).args(["-o", "answers", "--resume", "answers.jsonl", "--append"]),
        input,
    );
    r.ok();
    assert_eq!(stat(&sb, "/chats"), chats + 1);
    let text = std::fs::read_to_string(&file).unwrap();
    let again: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again.len(), 3, "{text}");
    assert_eq!(again[2]["id"], ids[2]);
    assert_eq!(again[2]["prompt"], "same");
}

// ------------------------------------------------------------ 4. what a line asks for

/// A byte-order mark before the first line (or before all of stdin with `-`) is not
/// part of the prompt or its id.
#[test]
fn a_byte_order_mark_is_not_part_of_the_prompt() {
    let sb = logged_in("input-bom");
    let r = run(chat(&sb).args(["-o", "answers"]), "\u{feff}hello\n");
    r.ok();
    let rec = &r.records()[0];
    assert_eq!(rec["prompt"], "hello");
    // SHA-256("hello") = 2cf24dba5fb0a30e…
    assert_eq!(rec["id"], "sha256:2cf24dba5fb0a30e");
    let r = run(chat(&sb).args(["-o", "answers", "-"]), "\u{feff}hello\n");
    r.ok();
    assert_eq!(r.records()[0]["prompt"], "hello");
    // A grant record saved by an editor that writes one is read too.
    let grant = sb.authorization_code("42.app.coze");
    let r = run(&mut sb.cmd("coze-token"), &format!("\u{feff}{grant}\n"));
    r.ok();
    assert!(r.stdout.contains("\"access_token\""), "{}", r.describe());
}

/// A prompt record's bot_id is a bot: no --bot is needed for it. A line without a bot
/// (and none given) is a usage error that ends the run before anything is asked for it.
#[test]
fn a_prompt_record_bot_id_needs_no_bot_flag() {
    let sb = logged_in("input-record-bot");
    let r = run(
        sb.cmd("coze-chat").args(["-o", "answers"]),
        "{\"type\":\"prompt\",\"content\":\"hi\",\"bot_id\":\"7\"}\nplain\n{\"type\":\"prompt\",\"content\":\"never\",\"bot_id\":\"7\"}\n",
    );
    r.expect_code(2);
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{}", r.describe());
    assert_eq!(
        (&recs[0]["status"], &recs[0]["bot_id"]),
        (&json!("completed"), &json!("7"))
    );
    assert_eq!(
        r.stderr,
        "coze-chat: stdin line 2: no bot for this prompt: pass --bot ID, set COZE_BOT_ID, \
         or give the prompt record a bot_id (see coze-chat --help)\n"
    );
    assert_eq!(stat(&sb, "/chats"), 1);
    // With COZE_BOT_ID, a record's bot_id still wins.
    let r = run(
        sb.cmd("coze-chat")
            .env("COZE_BOT_ID", "8")
            .args(["-o", "answers"]),
        "{\"type\":\"prompt\",\"content\":\"hi\",\"bot_id\":\"7\"}\nplain\n",
    );
    r.ok();
    let bots: Vec<Value> = r.records().iter().map(|v| v["bot_id"].clone()).collect();
    assert_eq!(bots, [json!("7"), json!("8")]);
}

/// A content_type the tool does not send is refused (it used to go out as text), and
/// meta_data beyond the API's limits (16 pairs, keys of 1 to 64 characters, values of
/// 1 to 512) is refused before anything is sent: --meta (coze-chat, coze-conv) and a
/// prompt record's own.
#[test]
fn content_types_and_meta_data_the_api_would_not_take_are_refused() {
    let sb = logged_in("input-content-meta");
    let input = "{\"type\":\"prompt\",\"content\":\"[]\",\"content_type\":\"object_string\"}\n\
                 {\"type\":\"prompt\",\"content\":\"a\",\"content_type\":\"text\"}\n\
                 {\"type\":\"prompt\",\"content\":\"b\",\"meta_data\":{\"k\":\"\"}}\n";
    let r = run(chat(&sb).args(["-o", "answers"]), input);
    r.expect_code(3);
    let recs = r.records();
    let statuses: Vec<&str> = recs.iter().map(|v| v["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["invalid", "completed", "invalid"],
        "{}",
        r.describe()
    );
    let errors = error_lines(&r);
    assert!(
        errors[0].contains(
            "stdin line 1: prompt record: content_type \"object_string\" is not supported"
        ),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("stdin line 3: prompt record: meta_data:"),
        "{errors:?}"
    );
    assert_eq!(stat(&sb, "/chats"), 1);

    let seventeen: Vec<String> = (0..17).map(|i| format!("--meta=k{i}=v")).collect();
    let long_key = format!("--meta={}=v", "k".repeat(65));
    let long_value = format!("--meta=k={}", "v".repeat(513));
    let before = requests(&sb);
    for args in [
        seventeen.clone(),
        vec![long_key.clone()],
        vec![long_value.clone()],
    ] {
        let r = run(chat(&sb).args(&args).arg("hi"), "");
        r.expect_code(2);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr.starts_with("coze-chat: --meta: "),
            "{}",
            r.describe()
        );
        let r = run(
            sb.cmd("coze-conv")
                .args(["create", "--bot", "7"])
                .args(&args),
            "",
        );
        r.expect_code(2);
        assert!(
            r.stderr.starts_with("coze-conv: --meta: "),
            "{}",
            r.describe()
        );
    }
    assert_eq!(requests(&sb), before, "nothing is sent");
    // 16 pairs at the longest are taken.
    let mut sixteen: Vec<String> = (0..15).map(|i| format!("--meta=k{i}=v")).collect();
    sixteen.push(format!("--meta={}={}", "键".repeat(64), "值".repeat(512)));
    run(chat(&sb).args(&sixteen).args(["-o", "text", "hi"]), "").ok();
    run(
        sb.cmd("coze-conv")
            .args(["create", "--bot", "7"])
            .args(&sixteen),
        "",
    )
    .ok();
}

/// A conversation id of `.` or `..` would make `/v1/conversations/../clear` another
/// endpoint: it is a usage error, and nothing is sent.
#[test]
fn a_dot_segment_is_not_a_conversation_id() {
    let sb = logged_in("input-dot-id");
    let before = requests(&sb);
    for (sub, id) in [
        ("clear", ".."),
        ("delete", ".."),
        ("delete", "."),
        ("get", ".."),
        ("messages", ".."),
    ] {
        let r = run(sb.cmd("coze-conv").args([sub, id]), "");
        r.expect_code(2);
        assert_eq!(
            r.stderr,
            format!("coze-conv: CONVERSATION_ID: {id:?} is not a conversation id (see coze-conv --help)\n"),
            "{}",
            r.describe()
        );
    }
    assert_eq!(requests(&sb), before);
}

// ------------------------------------------------------------ 5. escapes on a terminal

/// A prompt the fake's bot echoes into its answer and its follow-ups, carrying a title
/// change, a screen clear and an 8-bit CSI.
const EVIL: &str = "hi \u{1b}]2;pwned\u{7}\u{1b}[2J\u{9b}31m!";

/// Runs `coze-chat ARGS "$P"` on a terminal (script(1)), with `P` the prompt.
fn on_a_terminal(sb: &Sandbox, args: &str, prompt: &str) -> Run {
    let inner = format!("\"$CHAT\" --bot 7 {args} \"$P\"");
    run(
        sb.cmd("script")
            .env("CHAT", bin("coze-chat"))
            .env("P", prompt)
            .args(["-qec", &inner, "/dev/null"]),
        "",
    )
}

/// The bot's text is untrusted: on a terminal its control characters are shown (`^[`),
/// in the answer and in what goes to stderr (follow-ups, a server's error message);
/// newline and tab stay. On a pipe the answer's bytes are exactly what was sent.
#[test]
fn control_characters_from_the_bot_are_shown_on_a_terminal_and_kept_on_a_pipe() {
    let sb = logged_in("input-escapes");
    let shown = "hi ^[]2;pwned^G^[[2J^[[31m!";
    let r = on_a_terminal(&sb, "-o text", EVIL);
    r.ok();
    for raw in ["\u{1b}", "\u{7}", "\u{9b}"] {
        assert!(
            !r.stdout.contains(raw),
            "{raw:?} reached the terminal:\n{}",
            r.describe()
        );
    }
    assert!(r.stdout.contains(&answer_text(shown)), "{}", r.describe());
    assert!(r.stdout.contains(&follow_ups(shown)[0]), "{}", r.describe());

    // An error the server sends, on stderr.
    sb.fake.push_fault(
        "chat",
        json!({"type": "error_event", "after_events": 2, "code": 5000, "msg": "boom \u{1b}]2;evil\u{7}\ttabbed"}),
        1,
    );
    let r = on_a_terminal(&sb, "-o text", "hi");
    r.expect_code(1);
    assert!(!r.stdout.contains('\u{1b}'), "{}", r.describe());
    assert!(
        r.stdout.contains("boom ^[]2;evil^G\ttabbed"),
        "{}",
        r.describe()
    );

    // On a pipe: the bytes as sent, in the answer and on stderr.
    let r = run(chat(&sb).args(["-o", "text", EVIL]), "");
    r.ok();
    assert_eq!(r.stdout, format!("{}\n", answer_text(EVIL)));
    assert!(r.stderr.contains(&follow_ups(EVIL)[0]), "{}", r.describe());
}

// ------------------------------------------------------------ 6. make demo

/// `make demo` writes its commands in bold on a terminal only: piped into a log, its
/// stderr carries no ANSI codes.
#[test]
fn the_demo_writes_no_ansi_codes_into_a_pipe() {
    let sb = Sandbox::new("input-demo");
    let target: PathBuf = bin("coze-auth")
        .parent()
        .and_then(|debug| debug.parent())
        .unwrap()
        .to_path_buf();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let r = run_deadline(
        sb.cmd("bash").arg(&demo).env("CARGO_TARGET_DIR", &target),
        "",
        Duration::from_secs(60),
    );
    r.ok();
    assert!(
        r.stderr.contains("\n$ coze-token status\n"),
        "{}",
        r.describe()
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "ANSI codes in a pipe:\n{}",
        r.describe()
    );
    // On a terminal they are still there.
    let inner = format!("bash {}", demo.display());
    let r = run_deadline(
        sb.cmd("script")
            .env("CARGO_TARGET_DIR", &target)
            .args(["-qec", &inner, "/dev/null"]),
        "",
        Duration::from_secs(60),
    );
    r.ok();
    assert!(
        r.stdout.contains("\u{1b}[1m$ coze-token status\u{1b}[0m"),
        "{}",
        r.describe()
    );
}

// ------------------------------------------------------------ 7. plain words

/// The refusal of --no-save with --no-stream says why in plain words, not by citing a
/// document the user does not have.
#[test]
fn no_save_with_no_stream_says_why_in_plain_words() {
    let sb = logged_in("input-no-save");
    let before = requests(&sb);
    let r = run(chat(&sb).args(["--no-save", "--no-stream", "hi"]), "");
    r.expect_code(2);
    assert_eq!(
        r.stderr,
        "coze-chat: --no-save cannot go with --no-stream: the Coze API saves every chat it \
         does not stream (a polled answer is read back from the conversation's messages) \
         (see coze-chat --help)\n"
    );
    assert_eq!(requests(&sb), before);
    // Nor does any --help: no document file, no section sign.
    for tool in ["coze-auth", "coze-token", "coze-conv", "coze-chat"] {
        let r = run(sb.cmd(tool).arg("--help"), "");
        r.ok();
        for cite in [".md", "§"] {
            assert!(!r.stdout.contains(cite), "{tool} --help cites {cite}");
        }
    }
}
