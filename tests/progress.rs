//! The progress line of a batch on a terminal: coze-chat and coze-workflow under a
//! real pty (script(1)) for stderr, stdin a file or a pipe and stdout a file. What the
//! pty shows is script's stdout: every draw (`\r\x1b[K` and the line), the lines said
//! in between, and the erase at the end. With stderr a pipe there is never a line.

use serde_json::json;

use crate::util::*;

/// Moves to the start of the line and erases it: every redraw and the end.
const ERASE: &str = "\r\x1b[K";

/// `n` plain prompts, one a line.
fn prompts(sb: &Sandbox, n: usize) {
    let text: String = (0..n).map(|i| format!("问题 {i}\n")).collect();
    std::fs::write(sb.path("prompts.txt"), text).unwrap();
}

/// Chats slow enough to see the line move: four deltas 100 ms apart.
fn slow_bot(sb: &Sandbox) {
    sb.fake.set_bot(json!({"deltas": 4, "delta_delay_ms": 100}));
}

/// Runs `shell` (a command line for sh, `$CHAT` and `$WF` naming the tools) on a
/// terminal: script(1) gives it a pty, whose output is the returned `stdout`.
fn on_a_terminal(sb: &Sandbox, shell: &str, term: &str) -> Run {
    run(
        sb.cmd("script")
            .env("CHAT", bin("coze-chat"))
            .env("WF", bin("coze-workflow"))
            .env("TERM", term)
            .args(["-qec", shell, "/dev/null"]),
        "",
    )
}

/// The progress lines the screen shows, each as drawn (split at every erase and line
/// end): those starting `TOOL: ` and saying what is done.
fn progress_lines<'a>(screen: &'a str, tool: &str) -> Vec<&'a str> {
    screen
        .split(ERASE)
        .flat_map(|s| s.split(['\r', '\n']))
        .filter(|l| l.starts_with(&format!("{tool}: ")) && l.contains(" done"))
        .collect()
}

/// `coze-chat: 3/6 done, …`: (3, Some(6)); `coze-chat: 3 done, …`: (3, None).
fn done_of(line: &str) -> (u64, Option<u64>) {
    let (_, rest) = line.split_once(": ").unwrap();
    let (count, _) = rest
        .split_once(" done")
        .unwrap_or_else(|| panic!("{line:?}"));
    let n = |s: &str| {
        s.replace(',', "")
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{line:?}"))
    };
    match count.split_once('/') {
        Some((done, total)) => (n(done), Some(n(total))),
        None => (n(count), None),
    }
}

/// Every progress line has the fields in order, within the width it was given.
fn check_fields(lines: &[&str], width: usize, r: &Run) {
    for l in lines {
        assert!(
            l.len() < width,
            "wider than {width}: {l:?}\n{}",
            r.describe()
        );
        assert!(
            l.contains(" failed, ") && l.contains(" retries"),
            "{l:?}\n{}",
            r.describe()
        );
    }
}

/// Stdin a file of 6 prompts, stdout a file, stderr a terminal: the line shows x/6,
/// moves as prompts complete, and is erased before the summary, after which nothing
/// of it is drawn. The answers are all there.
#[test]
fn a_batch_from_a_file_shows_done_of_total_and_erases_it_before_the_summary() {
    let sb = logged_in("progress-file");
    slow_bot(&sb);
    prompts(&sb, 6);
    let r = on_a_terminal(
        &sb,
        "\"$CHAT\" --bot 7 -o answers --jobs 2 < prompts.txt > answers.jsonl",
        "xterm",
    );
    r.ok();
    let screen = &r.stdout;
    let lines = progress_lines(screen, "coze-chat");
    assert!(!lines.is_empty(), "no progress line\n{}", r.describe());
    check_fields(&lines, 80, &r);
    let counts: Vec<(u64, Option<u64>)> = lines.iter().map(|l| done_of(l)).collect();
    assert!(
        counts
            .iter()
            .all(|&(done, total)| total == Some(6) && done <= 6),
        "{counts:?}\n{}",
        r.describe()
    );
    // A chat takes 400 ms at least: a completion is drawn (at most 200 ms after the
    // draw before) while others still run.
    assert!(
        counts.iter().any(|&(done, _)| done >= 1),
        "{counts:?}\n{}",
        r.describe()
    );
    assert!(
        lines.iter().any(|l| l.contains("/s") || l.contains("/min")),
        "no rate once prompts completed\n{}",
        r.describe()
    );
    // Erased before the summary; nothing of it after.
    let summary = screen
        .find("{\"type\":\"summary\"")
        .unwrap_or_else(|| panic!("no summary\n{}", r.describe()));
    assert!(
        screen[..summary].ends_with(ERASE),
        "not erased before the summary: {:?}",
        &screen[summary.saturating_sub(120)..]
    );
    assert!(
        progress_lines(&screen[summary..], "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
    let answers = std::fs::read_to_string(sb.path("answers.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), 6, "{answers}");
    assert!(!answers.contains("\x1b"), "{answers}");
}

/// The total is counted from where stdin's reader stands, and counting it does not
/// move the reader: after the shell's `read` took the first line, 5 of 6 are left,
/// and 5 are asked. Blank lines are no prompts and are not counted.
#[test]
fn the_total_counts_from_the_reader_s_offset_without_moving_it() {
    let sb = logged_in("progress-offset");
    slow_bot(&sb);
    let text: String = (0..6).map(|i| format!("问题 {i}\n\n")).collect();
    std::fs::write(sb.path("prompts.txt"), text).unwrap();
    let r = on_a_terminal(
        &sb,
        "{ read -r first; \"$CHAT\" --bot 7 -o answers > answers.jsonl; } < prompts.txt",
        "xterm",
    );
    r.ok();
    let lines = progress_lines(&r.stdout, "coze-chat");
    assert!(!lines.is_empty(), "no progress line\n{}", r.describe());
    for l in &lines {
        assert_eq!(done_of(l).1, Some(5), "{l:?}\n{}", r.describe());
    }
    assert!(
        r.stdout.ends_with(ERASE),
        "not erased at the end\n{}",
        r.describe()
    );
    let answers = std::fs::read_to_string(sb.path("answers.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), 5, "{answers}");
    assert!(
        answers.contains("问题 1") && !answers.contains("问题 0"),
        "{answers}"
    );
}

/// Stdin a pipe: no total is known, the line counts what is done; and it fits a
/// narrow terminal (COLUMNS, when the pty does not say its width), whole fields only.
#[test]
fn from_a_pipe_there_is_no_total_and_the_line_fits_the_width() {
    let sb = logged_in("progress-pipe");
    slow_bot(&sb);
    prompts(&sb, 4);
    let r = run(
        sb.cmd("script")
            .env("CHAT", bin("coze-chat"))
            .env("TERM", "xterm")
            .env("COLUMNS", "36")
            .args([
                "-qec",
                "cat prompts.txt | \"$CHAT\" --bot 7 -o answers > answers.jsonl",
                "/dev/null",
            ]),
        "",
    );
    r.ok();
    let lines = progress_lines(&r.stdout, "coze-chat");
    assert!(!lines.is_empty(), "no progress line\n{}", r.describe());
    for l in &lines {
        assert_eq!(done_of(l).1, None, "{l:?}\n{}", r.describe());
        assert!(l.len() <= 35, "{l:?} is wider than 35\n{}", r.describe());
        // Whole fields: `coze-chat: 2 done, 0 failed` is 27 wide, with the retries 38.
        assert!(l.ends_with(" done") || l.ends_with(" failed"), "{l:?}");
    }
    assert!(r.stdout.ends_with(ERASE), "{}", r.describe());
}

/// With stderr a pipe there is no line, not even with --progress; under a pty,
/// --no-progress shows none, and neither does a batch whose records go to the same
/// terminal (unless --progress says so).
#[test]
fn never_on_a_pipe_and_the_flags_decide_on_a_terminal() {
    let sb = logged_in("progress-flags");
    slow_bot(&sb);
    prompts(&sb, 3);
    let input = std::fs::read_to_string(sb.path("prompts.txt")).unwrap();
    let r = run(
        sb.cmd("coze-chat").env("TERM", "xterm").args([
            "--bot",
            "7",
            "-o",
            "answers",
            "--progress",
        ]),
        &input,
    );
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.describe());
    assert_eq!(r.records().len(), 3, "{}", r.describe());

    let r = on_a_terminal(
        &sb,
        "\"$CHAT\" --bot 7 -o answers --no-progress < prompts.txt > answers.jsonl",
        "xterm",
    );
    r.ok();
    assert!(r.stdout.is_empty(), "{}", r.describe());

    // The answers on the terminal too: they would be written across the line.
    let r = on_a_terminal(&sb, "\"$CHAT\" --bot 7 -o answers < prompts.txt", "xterm");
    r.ok();
    assert!(!r.stdout.contains(ERASE), "{}", r.describe());
    assert!(progress_lines(&r.stdout, "coze-chat").is_empty());
    // ... unless asked for.
    let r = on_a_terminal(
        &sb,
        "\"$CHAT\" --bot 7 -o answers --progress < prompts.txt",
        "xterm",
    );
    r.ok();
    assert!(
        !progress_lines(&r.stdout, "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
}

/// A terminal without cursor control (TERM dumb, or unset): no redraws, no erase;
/// a plain line only every 15 s, which a short run never reaches.
#[test]
fn a_dumb_terminal_gets_no_cursor_tricks() {
    let sb = logged_in("progress-dumb");
    slow_bot(&sb);
    prompts(&sb, 3);
    for term in ["dumb", ""] {
        let r = on_a_terminal(
            &sb,
            "\"$CHAT\" --bot 7 -o answers < prompts.txt > answers.jsonl",
            term,
        );
        r.ok();
        assert!(!r.stdout.contains('\x1b'), "TERM={term}\n{}", r.describe());
        assert!(r.stdout.is_empty(), "TERM={term}\n{}", r.describe());
    }
}

/// A line said in the middle of the run (a conversation busy with another chat: the
/// wait's warning) erases the progress line, is written whole on a line of its own,
/// and the progress line is drawn again below it.
#[test]
fn a_warning_in_the_middle_goes_above_the_line_whole() {
    let sb = logged_in("progress-warning");
    slow_bot(&sb);
    prompts(&sb, 4);
    let busy = json!({"type": "api_error", "code": 4016, "msg": "A chat is already in progress"});
    // The second chat meets it: the line is on the screen by then.
    sb.fake
        .push_fault("chat", json!({"type": "delay", "ms": 0}), 1);
    sb.fake.push_fault("chat", busy, 1);
    let r = on_a_terminal(
        &sb,
        "\"$CHAT\" --bot 7 -o answers < prompts.txt > answers.jsonl",
        "xterm",
    );
    r.ok();
    let screen = &r.stdout;
    let at = screen
        .find("is busy with another chat")
        .unwrap_or_else(|| panic!("no warning\n{}", r.describe()));
    // The warning's line: from the erase before it to its line end.
    let start = screen[..at]
        .rfind(ERASE)
        .map(|i| i + ERASE.len())
        .unwrap_or_else(|| panic!("the line was not erased first\n{}", r.describe()));
    let end = at + screen[at..].find("\r\n").unwrap();
    let warning = &screen[start..end];
    assert!(
        warning.starts_with("coze-chat: ") && warning.ends_with("(--busy-wait)"),
        "the warning is not whole on its own line: {warning:?}\n{}",
        r.describe()
    );
    assert!(!warning.contains(" done,"), "{warning:?}");
    // The progress line was on the screen before it and comes back after it.
    assert!(
        !progress_lines(&screen[..start], "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
    assert!(
        !progress_lines(&screen[end..], "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
    assert!(screen.ends_with(ERASE), "{}", r.describe());
    let answers = std::fs::read_to_string(sb.path("answers.jsonl")).unwrap();
    assert_eq!(answers.lines().count(), 4, "{answers}");
}

/// `-o text` into a file streams each prompt's reasoning on stderr, a line written in
/// pieces: the progress line stays off it until it ends (a redraw in the middle would
/// cut it), and comes back after.
#[test]
fn streamed_reasoning_is_never_cut_by_the_line() {
    let sb = logged_in("progress-reasoning");
    // Three reasoning pieces 250 ms apart: the line's second-by-second redraw falls
    // inside one of them.
    sb.fake
        .set_bot(json!({"reasoning": true, "deltas": 2, "delta_delay_ms": 250}));
    prompts(&sb, 3);
    let r = on_a_terminal(
        &sb,
        "\"$CHAT\" --bot 7 -o text < prompts.txt > answers.txt",
        "xterm",
    );
    r.ok();
    let screen = &r.stdout;
    let reasoning = "\x1b[2m让我想想……这个问题很简单。\x1b[0m\r\n";
    assert_eq!(
        screen.matches(reasoning).count(),
        3,
        "the reasoning was cut\n{}",
        r.describe()
    );
    for (at, _) in screen.match_indices(reasoning) {
        let after = &screen[at + reasoning.len()..];
        assert!(
            after.starts_with("coze-chat: ") && after.contains(" done"),
            "the line does not come back after the reasoning: {:?}",
            &after[..after.len().min(80)]
        );
    }
    assert!(screen.ends_with(ERASE), "{}", r.describe());
}

/// Ctrl-C in the middle: the line is erased before the message that says so, and not
/// drawn again.
#[test]
fn ctrl_c_erases_the_line_before_the_message() {
    let sb = logged_in("progress-sigint");
    sb.fake
        .set_bot(json!({"deltas": 10, "delta_delay_ms": 100}));
    prompts(&sb, 10);
    let r = on_a_terminal(
        &sb,
        "timeout --preserve-status -s INT 1.5 \"$CHAT\" --bot 7 -o answers < prompts.txt > answers.jsonl",
        "xterm",
    );
    r.expect_code(130);
    let screen = &r.stdout;
    let at = screen
        .find("coze-chat: interrupted")
        .unwrap_or_else(|| panic!("no interrupted line\n{}", r.describe()));
    assert!(
        !progress_lines(&screen[..at], "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
    assert!(screen[..at].ends_with(ERASE), "{}", r.describe());
    assert!(
        progress_lines(&screen[at..], "coze-chat").is_empty(),
        "{}",
        r.describe()
    );
}

/// coze-workflow's batch the same way: runs from a file, x/N, erased at the end; and
/// --resume's done runs count as done, shown as skipped.
#[test]
fn a_workflow_batch_shows_it_too() {
    let sb = logged_in("progress-workflow");
    sb.fake
        .set_workflow(json!({"workflow_id": "73", "messages": 2, "delay_ms": 150}))
        .unwrap();
    let runs: String = (0..5)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type": "run", "id": format!("r{i}"), "parameters": {"n": i}})
            )
        })
        .collect();
    std::fs::write(sb.path("runs.jsonl"), runs).unwrap();
    let done = json!({"type": "result", "id": "r0", "status": "success"});
    std::fs::write(sb.path("done.jsonl"), format!("{done}\n")).unwrap();
    let r = on_a_terminal(
        &sb,
        "\"$WF\" run --workflow 73 -o results --resume done.jsonl < runs.jsonl > results.jsonl",
        "xterm",
    );
    r.ok();
    let screen = &r.stdout;
    let lines = progress_lines(screen, "coze-workflow");
    assert!(!lines.is_empty(), "no progress line\n{}", r.describe());
    check_fields(&lines, 80, &r);
    for l in &lines {
        let (done, total) = done_of(l);
        assert_eq!(total, Some(5), "{l:?}");
        if done >= 1 {
            assert!(l.contains(", 1 skipped, "), "{l:?}\n{}", r.describe());
        }
    }
    let summary = screen
        .find("{\"type\":\"summary\"")
        .unwrap_or_else(|| panic!("no summary\n{}", r.describe()));
    assert!(screen[..summary].ends_with(ERASE), "{}", r.describe());
    assert!(progress_lines(&screen[summary..], "coze-workflow").is_empty());
    let results = std::fs::read_to_string(sb.path("results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 4, "{results}");
}
