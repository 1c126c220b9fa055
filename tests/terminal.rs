//! coze-chat as a chat at the terminal: stdin and stdout a real pty (script(1) gives
//! it one, and passes on what the test types, Ctrl-C and Ctrl-D as the bytes a keyboard
//! sends), driven a line at a time, each step waiting for what the screen shows.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coze_fake::{answer_text, follow_ups};
use serde_json::{json, Value};

use crate::util::*;

/// How long a step may take before the test fails (a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

/// What the session says before its first prompt.
const READY: &str = "/help lists the commands; Ctrl-D ends)";

/// coze-chat on a pty, and what the pty has shown so far.
struct Pty {
    child: Child,
    input: ChildStdin,
    shown: Arc<Mutex<Vec<u8>>>,
    /// Where the next [`Pty::expect`] starts looking, in [`Pty::screen`].
    from: usize,
}

impl Pty {
    /// `coze-chat ARGS` (shell words) on a terminal of kind `term` (None: TERM unset),
    /// its history under the sandbox's `state/`. The shell execs it: a shell left
    /// waiting would take the terminal's Ctrl-C as its own and end (dash exits 130).
    fn start(sb: &Sandbox, term: Option<&str>, args: &str) -> Pty {
        Pty::shell(sb, term, &format!("exec \"$CHAT\" {args}"))
    }

    /// A shell command line on a terminal, as [`Pty::start`], `$CHAT` coze-chat.
    fn shell(sb: &Sandbox, term: Option<&str>, args: &str) -> Pty {
        let mut cmd = sb.cmd("script");
        cmd.env("CHAT", bin("coze-chat"))
            .env("XDG_STATE_HOME", sb.path("state"))
            .args(["-qec", args, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = term {
            cmd.env("TERM", t);
        }
        let mut child = cmd.spawn().expect("script(1) starts");
        let input = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Pty {
            child,
            input,
            shown,
            from: 0,
        }
    }

    /// Everything shown so far, without the terminal's carriage returns.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).replace('\r', "")
    }

    /// Waits until `text` shows after what earlier expectations matched; returns the
    /// screen from there to the end of `text`.
    fn expect(&mut self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if let Some(at) = screen.get(self.from..).and_then(|s| s.find(text)) {
                let seen = screen[self.from..self.from + at + text.len()].to_owned();
                self.from += at + text.len();
                return seen;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!(
                    "{text:?} never showed (after {} bytes); the screen:\n{screen}",
                    self.from
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types `keys` (`\r` is Enter, `\x03` Ctrl-C, `\x04` Ctrl-D).
    fn typing(&mut self, keys: &str) {
        self.input.write_all(keys.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Waits for the session at the prompt, then types `line` and Enter.
    fn ask(&mut self, line: &str) {
        self.expect("> ");
        self.typing(&format!("{line}\r"));
    }

    /// Waits for coze-chat to end; its exit status and the whole screen.
    fn end(mut self) -> (i32, String) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The reader has the last bytes once the pty is closed.
                std::thread::sleep(Duration::from_millis(50));
                return (st.code().unwrap_or(-1), self.screen());
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("coze-chat did not end; the screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The conversation of each chat the fake was asked for, in order.
fn chat_conversations(sb: &Sandbox) -> Vec<String> {
    sb.fake
        .log()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"] == "chat")
        .map(|e| e["conversation_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The bot the fake introduces: a name, a prologue and three suggested questions.
fn travel_bot(sb: &Sandbox, extra: Value) {
    let mut bot = json!({
        "id": "7",
        "name": "Travel helper",
        "prologue": "你好！I plan trips.",
        "suggested_questions": ["Where is warm in May?", "A weekend in Hangzhou?", "Visas?"],
    });
    bot.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    sb.admin_post("/_fake/bots", &json!({ "bots": [bot] }));
}

/// The terminal chat's first screen, prompt, answers and numbered suggestions: the
/// bot's name, prologue and suggested questions before the first prompt; typing a
/// suggestion's number asks it; an answer's follow-ups are numbered and replace them.
/// Ctrl-D ends (exit 0) with the command that continues the conversation; the prompts
/// asked are in the history file, which is private.
fn a_session_from_the_bot_s_introduction_to_ctrl_d(d: Dialect) {
    let sb = logged_in_as("term-session", d);
    travel_bot(&sb, json!({}));
    let mut t = Pty::start(&sb, Some("xterm"), "--bot 7");
    let intro = t.expect(READY);
    for line in [
        "Travel helper",
        "你好！I plan trips.",
        "  1. Where is warm in May?",
        "  2. A weekend in Hangzhou?",
        "  3. Visas?",
        "(a number asks that question; ",
    ] {
        assert!(intro.contains(line), "{line:?} is not in\n{intro}");
    }
    t.ask("2");
    t.expect(&answer_text("A weekend in Hangzhou?"));
    let ups = follow_ups("A weekend in Hangzhou?");
    t.expect(&format!(
        "  1. {}\n  2. {}\n  3. {}\n",
        ups[0], ups[1], ups[2]
    ));
    // The follow-ups' numbers replaced the bot's suggestions.
    t.ask("1");
    t.expect(&answer_text(&ups[0]));
    t.ask("in your words");
    t.expect(&answer_text("in your words"));
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let convs = chat_conversations(&sb);
    assert_eq!(convs.len(), 3, "{convs:?}");
    assert!(
        convs.iter().all(|c| *c == convs[0]),
        "one conversation: {convs:?}"
    );
    assert!(
        screen.contains(&format!(
            "coze-chat: conversation {0}; to continue it: coze-chat --bot 7 --conversation {0}\n",
            convs[0]
        )),
        "{screen}"
    );
    let history = sb.path("state/coze/history");
    assert_eq!(mode(&history), 0o600);
    assert_eq!(mode(&sb.path("state/coze")), 0o700);
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        format!("A weekend in Hangzhou?\n{}\nin your words\n", ups[0])
    );
}

crate::both_dialects!(a_session_from_the_bot_s_introduction_to_ctrl_d);

/// `/attach PATH` sends the file with the next prompt only (checked when it is typed:
/// a missing file is said so and attaches nothing); `--tool` answers the bot's tool
/// calls as in a pipeline, the call on its own line.
#[test]
fn attachments_and_tools_at_the_terminal() {
    let sb = logged_in("term-attach");
    std::fs::write(sb.path("report.pdf"), b"%PDF-1.4 a report").unwrap();
    let echo =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools/echo.sh");
    let mut t = Pty::start(
        &sb,
        Some("xterm"),
        &format!("--bot 7 --tool get_weather='{}'", echo.display()),
    );
    t.expect(READY);
    t.ask("/attach missing.pdf");
    t.expect("(not attached: missing.pdf: no such file)");
    t.ask("/attach report.pdf");
    t.expect("(report.pdf goes with the next prompt)");
    t.ask("read it");
    t.expect(&format!(
        "{} [attachments: file:report.pdf]",
        answer_text("read it")
    ));
    t.ask("and again");
    // Only the prompt after /attach carries the file.
    t.expect(&format!("{}\n", answer_text("and again")));
    sb.fake.set_bot(json!({"tools": {"rounds":
        [[{"name": "get_weather", "arguments": {"city": "北京"}}]]}}));
    t.ask("weather?");
    t.expect("↳ tool get_weather: exit 0");
    t.expect(r#"工具结果 get_weather: get_weather got {"city":"北京"} (token:none)"#);
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    assert_eq!(sb.uploaded().len(), 1, "{screen}");
}

/// `/new`: the next prompt goes to a new conversation (and the one after it stays
/// there); `/help` lists the commands; an unknown command is said to be one and asks
/// nothing; `//` sends a prompt that starts with `/`.
#[test]
fn slash_commands() {
    let sb = logged_in("term-new");
    let mut t = Pty::start(&sb, Some("xterm"), "--bot 7");
    t.expect(READY);
    t.ask("one");
    t.expect(&answer_text("one"));
    t.ask("/help");
    t.expect("/new ");
    t.expect("/attach PATH");
    t.ask("/frobnicate");
    t.expect("(no command /frobnicate; /help lists them)");
    t.ask("/new");
    t.expect("(the next prompt starts a new conversation)");
    t.ask("two");
    t.expect(&answer_text("two"));
    t.ask("//three");
    t.expect(&answer_text("/three"));
    t.ask("/exit");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let convs = chat_conversations(&sb);
    assert_eq!(convs.len(), 3, "{convs:?}\n{screen}");
    assert_ne!(convs[0], convs[1], "/new made a new conversation");
    assert_eq!(convs[1], convs[2], "and the session stays in it");
    assert!(
        screen.contains(&format!("--conversation {}\n", convs[2])),
        "{screen}"
    );
}

/// Ctrl-C during an answer cancels its chat on the server and stops printing it; the
/// session goes on, in the same conversation, and the next prompt is answered.
/// Ctrl-C on a typed line clears it; at an empty prompt it ends the session (exit 0).
fn ctrl_c_stops_an_answer_and_the_session_goes_on(d: Dialect) {
    let sb = logged_in_as("term-ctrl-c", d);
    sb.fake
        .set_bot(json!({"deltas": 400, "delta_delay_ms": 50}));
    let mut t = Pty::start(&sb, Some("xterm"), "--bot 7");
    t.expect(READY);
    t.ask("slow");
    t.expect("春夏");
    t.typing("\x03");
    t.expect("(stopped)");
    assert_eq!(stat(&sb, "/cancels"), 1);
    sb.fake.set_bot(json!({}));
    t.expect("> ");
    t.typing("never sent");
    t.typing("\x03");
    t.typing("fast\r");
    // Not 「never sentfast」: the typed line was cleared.
    t.expect(&answer_text("fast"));
    t.expect("> ");
    t.typing("\x03");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let convs = chat_conversations(&sb);
    assert_eq!(convs.len(), 2, "{convs:?}\n{screen}");
    assert_eq!(
        convs[0], convs[1],
        "the stopped chat's conversation goes on"
    );
    assert!(
        screen.contains(&format!("--conversation {}\n", convs[0])),
        "{screen}"
    );
    assert_eq!(stat(&sb, "/cancels"), 1, "{screen}");
}

crate::both_dialects!(ctrl_c_stops_an_answer_and_the_session_goes_on);

/// A trailing `\` goes on on the next line, and a bracketed paste with newlines is one
/// prompt: each is sent as one prompt, its lines joined by newlines.
#[test]
fn multi_line_prompts() {
    let sb = logged_in("term-lines");
    let mut t = Pty::start(&sb, Some("xterm"), "--bot 7");
    t.expect(READY);
    t.ask("first \\");
    t.typing("second\r");
    t.expect(&answer_text("first \nsecond"));
    t.expect("> ");
    t.typing("\x1b[200~pasted one\npasted two\x1b[201~\r");
    t.expect(&answer_text("pasted one\npasted two"));
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    assert_eq!(stat(&sb, "/chats"), 2, "{screen}");
}

/// `TERM=dumb` (and no TERM at all): plain lines, a plain prompt, not one escape
/// sequence (no line editor, no styles, not even the reasoning's dim); `\` still goes
/// on on the next line, and Ctrl-C at the prompt ends. The bot's words are shown with
/// their control characters visible, never obeyed.
#[test]
fn a_dumb_terminal_gets_plain_lines() {
    let sb = logged_in("term-dumb");
    travel_bot(
        &sb,
        json!({"name": "Evil\u{1b}]2;pwned\u{7}", "prologue": "clear\u{1b}[2J!"}),
    );
    // Reasoning, which a styled terminal shows dim.
    sb.fake.set_bot(json!({"reasoning": true}));
    for term in [Some("dumb"), None] {
        let mut t = Pty::start(&sb, term, "--bot 7");
        let intro = t.expect(READY);
        assert!(intro.contains("Evil^[]2;pwned^G\n"), "{intro}");
        assert!(intro.contains("clear^[[2J!\n"), "{intro}");
        t.ask("plain \\");
        t.expect("... ");
        t.typing("lines\r");
        t.expect("让我想想");
        t.expect(&answer_text("plain \nlines"));
        t.ask("3");
        t.expect(&answer_text(&follow_ups("plain \nlines")[2]));
        t.expect("> ");
        t.typing("\x03");
        let (code, screen) = t.end();
        assert_eq!(code, 0, "{term:?}\n{screen}");
        assert!(
            !screen.contains('\u{1b}') && !screen.contains('\u{7}'),
            "{term:?}: an escape sequence reached the terminal:\n{screen:?}"
        );
        assert!(
            screen.contains("to continue it: coze-chat --bot 7"),
            "{screen}"
        );
    }
}

/// A bot whose introduction cannot be read (the token lacks the permission, the bot is
/// not found) costs one line, and the chat goes on.
#[test]
fn a_bot_without_an_introduction_still_chats() {
    let sb = logged_in("term-no-intro");
    travel_bot(&sb, json!({}));
    sb.admin_post("/_fake/bots", &json!({"denied": ["bots.get"]}));
    for bot in ["7", "404404"] {
        let mut t = Pty::start(&sb, Some("xterm"), &format!("--bot {bot}"));
        let intro = t.expect(READY);
        assert_eq!(
            intro.matches("(no introduction: ").count(),
            1,
            "one line says why:\n{intro}"
        );
        assert!(!intro.contains("Travel helper"), "{intro}");
        t.ask("hi");
        t.expect(&answer_text("hi"));
        t.expect("> ");
        t.typing("\x04");
        let (code, screen) = t.end();
        assert_eq!(code, 0, "{screen}");
    }
}

/// Stderr elsewhere (a file): the session still runs on the terminal, and the
/// conversation and the command that continues it are on stderr.
#[test]
fn the_continue_command_is_on_stderr() {
    let sb = logged_in("term-stderr");
    let err = sb.path("err.txt");
    let mut t = Pty::start(
        &sb,
        Some("xterm"),
        &format!("--bot 7 2>'{}'", err.display()),
    );
    t.ask("hello");
    t.expect(&answer_text("hello"));
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let conv = &chat_conversations(&sb)[0];
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        stderr.ends_with(&format!(
            "coze-chat: conversation {conv}; to continue it: coze-chat --bot 7 --conversation {conv}\n"
        )),
        "{stderr}"
    );
    assert!(!screen.contains("to continue it"), "{screen}");
}

/// Pipes behave as they always did: with stdin a pipe (stdout the terminal), or stdout
/// a pipe (stdin the terminal), there is no prompt, no introduction, no history.
#[test]
fn not_on_a_pipe() {
    let sb = logged_in("term-pipe");
    travel_bot(&sb, json!({}));
    let r = run(
        sb.cmd("script")
            .env("CHAT", bin("coze-chat"))
            .env("TERM", "xterm")
            .env("XDG_STATE_HOME", sb.path("state"))
            .args(["-qec", "printf 'hello\\n' | \"$CHAT\" --bot 7", "/dev/null"]),
        "",
    );
    r.ok();
    let screen = r.stdout.replace('\r', "");
    assert!(screen.contains(&answer_text("hello")), "{}", r.describe());
    assert!(screen.contains(&format!("  › {}", follow_ups("hello")[0])));
    for absent in ["> ", "/help", "to continue it", "Travel helper"] {
        assert!(!screen.contains(absent), "{absent:?}\n{}", r.describe());
    }

    let mut t = Pty::shell(&sb, Some("xterm"), "\"$CHAT\" --bot 7 | cat");
    t.expect("coze-chat: one prompt per line; Ctrl-D ends");
    t.typing("hello\r");
    t.expect("conversation.message.delta");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    for absent in ["> ", "/help", "to continue it", "Travel helper"] {
        assert!(!screen.contains(absent), "{absent:?}\n{screen}");
    }
    assert!(!sb.path("state").exists(), "no history file on a pipe");
    let log = sb.fake.log();
    assert!(
        !log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"].as_str().unwrap().starts_with("/v1/bots")),
        "no introduction was asked for: {log}"
    );
}

/// A history file others may read is made private when the session opens it, with
/// one warning; what is recalled from it is what it held.
#[test]
fn a_loose_history_file_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let sb = logged_in("term-history");
    let history = sb.path("state/coze/history");
    std::fs::create_dir_all(history.parent().unwrap()).unwrap();
    std::fs::write(&history, "an old prompt\n").unwrap();
    std::fs::set_permissions(&history, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut t = Pty::start(&sb, Some("xterm"), "--bot 7");
    let opening = t.expect(READY);
    assert!(
        opening.contains("others could read it (mode 644); made private (0600)"),
        "{opening}"
    );
    assert_eq!(mode(&history), 0o600);
    // Up recalls the old prompt; Enter asks it (not written twice in a row).
    t.expect("> ");
    t.typing("\x1b[A\r");
    t.expect(&answer_text("an old prompt"));
    t.ask("a new one");
    t.expect(&answer_text("a new one"));
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    assert_eq!(
        std::fs::read_to_string(&history).unwrap(),
        "an old prompt\na new one\n"
    );
}

/// Ctrl-C while the prompt waits for a conversation busy with another chat (4016,
/// `--busy-wait`) ends the wait at once, and the session goes on: `/new` and the next
/// prompt is answered.
#[test]
fn ctrl_c_ends_a_wait_for_a_busy_conversation() {
    let sb = logged_in("term-busy");
    let conv = crate::busy::new_conversation(&sb);
    let (mut holder, _rest) = crate::busy::hold_the_conversation(&sb, &conv, 120);
    let mut t = Pty::start(
        &sb,
        Some("xterm"),
        &format!("--bot 7 --conversation {conv}"),
    );
    t.ask("second");
    t.expect("is busy with another chat");
    t.typing("\x03");
    t.expect("(stopped)");
    t.ask("/new");
    t.ask("fresh");
    t.expect(&answer_text("fresh"));
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let _ = holder.kill();
    let _ = holder.wait();
}

/// SIGTERM ends the session as it ends any coze-chat (143): at the prompt, with the
/// terminal given back as it was (line editing had it in raw mode: a shell after it
/// must still echo); during an answer, after cancelling its chat.
#[test]
fn sigterm_ends_the_session_and_gives_the_terminal_back() {
    let sb = logged_in("term-sigterm");
    // The shell records coze-chat's pid (it execs it), and after it shows the
    // terminal's mode.
    let line = r#"sh -c 'echo $$ > pid; exec "$CHAT" --bot 7'; echo "status=$?"; stty -a"#;
    let pid = || {
        let text = std::fs::read_to_string(sb.path("pid")).unwrap();
        text.trim().parse::<u32>().unwrap()
    };

    let mut t = Pty::shell(&sb, Some("xterm"), line);
    t.expect(READY);
    t.expect("> ");
    send_signal(pid(), "TERM");
    t.expect("coze-chat: terminated");
    t.expect("status=143");
    let modes = t.expect("eof");
    let (_, screen) = t.end();
    let modes = screen[screen.find("status=143").unwrap()..].to_owned() + &modes;
    let words: Vec<&str> = modes.split_whitespace().collect();
    for on in ["icanon", "echo", "isig"] {
        assert!(
            words.contains(&on),
            "{on:?} is off after coze-chat:\n{modes}"
        );
    }

    std::fs::remove_file(sb.path("pid")).unwrap();
    sb.fake
        .set_bot(json!({"deltas": 400, "delta_delay_ms": 50}));
    let mut t = Pty::shell(&sb, Some("xterm"), line);
    t.ask("slow");
    t.expect("春夏");
    send_signal(pid(), "TERM");
    t.expect("coze-chat: terminated");
    t.expect("status=143");
    drop(t);
    assert_eq!(stat(&sb, "/cancels"), 1);
}

/// A chatflow at the terminal: no introduction is asked for; its question is put to
/// the person (a number picks an option) and answered in the same conversation; the
/// command that continues names the chatflow and its app.
#[test]
fn a_chatflow_session() {
    let sb = logged_in("term-chatflow");
    let (flow, app) = ("7480000000000000001", "7480000000000000999");
    sb.admin_post(
        "/_fake/workflow",
        &json!({"workflow_id": flow, "question": "What colour?", "options": ["Red", "Blue"]}),
    );
    let mut t = Pty::start(
        &sb,
        Some("xterm"),
        &format!("--workflow {flow} --app {app}"),
    );
    let opening = t.expect(READY);
    assert!(!opening.contains("introduction"), "{opening}");
    t.ask("paint it");
    t.expect("coze-chat: the chatflow asks: What colour?\n  1. Red\n  2. Blue\n");
    t.expect("a number, or your own answer");
    t.typing("2\r");
    t.expect("Echo: Blue (answer to What colour?)");
    t.expect("> ");
    t.typing("\x04");
    let (code, screen) = t.end();
    assert_eq!(code, 0, "{screen}");
    let log = sb.fake.log();
    let paths: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/v1/bots")),
        "{paths:?}"
    );
    let conv = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| e["conversation_id"].as_str())
        .unwrap();
    assert!(
        screen.contains(&format!(
            "to continue it: coze-chat --workflow {flow} --app {app} --conversation {conv}\n"
        )),
        "{screen}"
    );
}
