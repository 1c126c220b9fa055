//! What every tool does the same way: --help, --version, usage errors.

use crate::util::*;

const TOOLS: [&str; 4] = ["coze-auth", "coze-token", "coze-conv", "coze-chat"];

#[test]
fn help_and_version_for_every_tool() {
    let sb = Sandbox::new("help");
    for tool in TOOLS {
        let r = run(sb.cmd(tool).arg("--help"), "");
        r.ok();
        assert!(r.stdout.contains(tool), "{}", r.describe());
        assert!(r.stdout.contains("USAGE"), "{}", r.describe());
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
