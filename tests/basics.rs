//! What every tool does the same way: --help, --version, usage errors.

use crate::util::*;

const TOOLS: [&str; 7] = [
    "coze-auth",
    "coze-token",
    "coze-conv",
    "coze-chat",
    "coze-file",
    "coze-workflow",
    "coze-bot",
];

#[test]
fn help_and_version_for_every_tool() {
    let sb = Sandbox::new("help");
    for tool in TOOLS {
        let r = run(sb.cmd(tool).arg("--help"), "");
        r.ok();
        assert!(r.stdout.contains(tool), "{}", r.describe());
        for section in ["USAGE", "EXAMPLES", "EXIT STATUS"] {
            assert!(
                r.stdout.contains(section),
                "{tool}: no {section}\n{}",
                r.describe()
            );
        }
        // The exit codes are listed with their meanings.
        for code in ["0 ", "2 ", "3 ", "4 ", "5 "] {
            assert!(
                r.stdout.lines().any(|l| l.trim_start().starts_with(code)),
                "{tool}: exit code {code}not listed\n{}",
                r.describe()
            );
        }
        let r = run(sb.cmd(tool).arg("--version"), "");
        r.ok();
        assert!(
            r.stdout
                .starts_with(&format!("{tool} {}", env!("CARGO_PKG_VERSION"))),
            "{}",
            r.describe()
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error_on_one_line() {
    let sb = Sandbox::new("usage");
    for tool in TOOLS {
        let r = run(sb.cmd(tool).arg("--no-such-flag"), "");
        r.expect_code(2);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.describe());
        assert!(
            r.stderr.starts_with(&format!("{tool}: ")),
            "{}",
            r.describe()
        );
        assert!(r.stderr.contains("--no-such-flag"), "{}", r.describe());
    }
}

/// Every error line leaves in one write(2), so a line is never split by another
/// process sharing stderr (CI saw a BROWSER helper's line land inside coze-auth's).
/// A datagram socket as stderr keeps write boundaries: one write, one datagram.
#[test]
fn each_error_line_is_written_at_once() {
    use std::os::unix::net::UnixDatagram;
    use std::process::Stdio;
    let sb = Sandbox::new("one-write");
    let prompt = sb.path("prompt.txt");
    std::fs::write(&prompt, "hi\n").unwrap();
    let cases: [(&str, &[&str], i32); 6] = [
        ("coze-auth", &["--no-such-flag"], 2),
        ("coze-token", &["print"], 4),
        ("coze-conv", &["get"], 2),
        ("coze-conv", &["create", "--bot", "7000000000000000001"], 4),
        ("coze-chat", &["--bot", "7000000000000000001"], 4),
        ("coze-chat", &["--no-such-flag"], 2),
    ];
    for (tool, args, code) in cases {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        ours.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let status = sb
            .cmd(tool)
            .args(args)
            .stdin(std::fs::File::open(&prompt).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "{tool} {args:?}");
        let mut buf = vec![0u8; 65536];
        let n = ours.recv(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            first.starts_with(&format!("{tool}: ")) && first.ends_with('\n'),
            "{tool} {args:?}: the first write was {first:?}"
        );
        assert_eq!(first.matches('\n').count(), 1, "{tool} {args:?}: {first:?}");
        ours.set_nonblocking(true).unwrap();
        assert!(
            ours.recv(&mut buf).is_err(),
            "{tool} {args:?}: more than one write after {first:?}"
        );
    }
}

/// `--help | head -1` and a full disk: help and version are output like any other,
/// so a closed stdout ends quietly and a failing one is one error line, never a panic.
#[test]
fn help_and_version_survive_a_closed_or_full_stdout() {
    use std::process::Stdio;
    let sb = Sandbox::new("help-closed");
    let runs: [&[&str]; 3] = [&["--help"], &["--version"], &["doctor", "--help"]];
    // coze-fake too: `make build` puts it next to the tools.
    let fake = bin("coze-auth").with_file_name("coze-fake");
    assert!(
        fake.is_file(),
        "{} is missing: run make build",
        fake.display()
    );
    let fake = fake.display().to_string();
    for tool in TOOLS.into_iter().chain([fake.as_str()]) {
        for args in runs {
            if args[0] == "doctor" && tool != "coze-auth" {
                continue;
            }
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = sb
                .cmd(tool)
                .args(args)
                .stdout(Stdio::from(writer))
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{tool} {args:?}: {stderr}");
            assert!(stderr.is_empty(), "{tool} {args:?}: {stderr}");

            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let out = sb.cmd(tool).args(args).stdout(full).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            // The tools' code for a local file or stream that failed; coze-fake's own
            // table has "could not start or serve" for it.
            let want = if tool == fake { 1 } else { 8 };
            assert_eq!(out.status.code(), Some(want), "{tool} {args:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{tool} {args:?}: {stderr}");
            assert!(stderr.contains(": stdout: "), "{tool} {args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{tool} {args:?}: {stderr}");
        }
    }
}
