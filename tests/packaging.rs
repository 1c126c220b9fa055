//! The tools as installed: man pages and shell completions generated from --help (and
//! checked in, so they cannot drift from it), `make install` / `make uninstall` into a
//! prefix, and `--version` naming the git commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

const PAGES: [&str; 9] = [
    "coze-auth",
    "coze-auth-doctor",
    "coze-token",
    "coze-conv",
    "coze-chat",
    "coze-file",
    "coze-workflow",
    "coze-bot",
    "coze-fake",
];
const BINS: [&str; 8] = [
    "coze-auth",
    "coze-token",
    "coze-conv",
    "coze-chat",
    "coze-file",
    "coze-workflow",
    "coze-bot",
    "coze-fake",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of the binaries under test; coze-fake's binary is built there by
/// `make build` (`cargo build --workspace`), which `make test` runs first.
fn bin_dir() -> PathBuf {
    let dir = bin("coze-auth").parent().unwrap().to_path_buf();
    let fake = dir.join("coze-fake");
    assert!(
        fake.is_file(),
        "{} is missing: run `cargo build --workspace` (make build) first",
        fake.display()
    );
    dir
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The first line where two texts differ, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  checked in: {x}\n  generated:  {y}", n + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} vs {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn man_pages_and_completions_are_what_the_help_generates() {
    let sb = Sandbox::new("packaging-gen");
    let (man, comp) = (sb.path("man"), sb.path("completions"));
    run(
        sb.cmd("python3")
            .arg(root().join("scripts/gen-man.py"))
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--out")
            .arg(&man)
            .arg("--completions")
            .arg(&comp),
        "",
    )
    .ok();
    for (checked_in, generated) in [
        (root().join("man"), man),
        (root().join("completions"), comp),
    ] {
        let (want, got) = (files(&checked_in), files(&generated));
        assert_eq!(
            want,
            got,
            "{}/ does not hold the files the help generates: run make man",
            checked_in.display()
        );
        for rel in &want {
            let a = std::fs::read_to_string(checked_in.join(rel)).unwrap();
            let b = std::fs::read_to_string(generated.join(rel)).unwrap();
            assert!(
                a == b,
                "{} differs from what --help generates: run make man (and commit the \
                 result)\nfirst difference at {}",
                checked_in.join(rel).display(),
                first_difference(&a, &b)
            );
        }
    }
    let pages: BTreeSet<PathBuf> = PAGES
        .iter()
        .map(|p| PathBuf::from(format!("{p}.1")))
        .collect();
    assert_eq!(files(&root().join("man")), pages);
}

#[test]
fn every_man_page_renders_without_warnings() {
    let sb = Sandbox::new("packaging-man");
    for page in PAGES {
        let path = root().join("man").join(format!("{page}.1"));
        let r = run(
            sb.cmd("man")
                .args(["--warnings=all", "-l"])
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("LC_ALL", "C.UTF-8")
                .env("MANPAGER", "cat"),
            "",
        );
        r.ok();
        assert!(
            r.stderr.is_empty(),
            "man warned about {page}\n{}",
            r.describe()
        );
        let name = page.to_uppercase();
        assert!(r.stdout.contains(&format!("{name}(1)")), "{}", r.describe());
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                r.stdout.lines().any(|l| l == section),
                "{page}: no {section} section\n{}",
                r.describe()
            );
        }
        if page != "coze-fake" && page != "coze-auth" {
            assert!(
                r.stdout.lines().any(|l| l == "FILES"),
                "{page}: no FILES section\n{}",
                r.describe()
            );
        }
        // groff itself, every warning on: silent too.
        let r = run(
            sb.cmd("groff")
                .args(["-man", "-Tutf8", "-k", "-ww", "-z"])
                .arg(&path)
                .env("LC_ALL", "C.UTF-8"),
            "",
        );
        r.ok();
        assert!(
            r.stderr.is_empty(),
            "groff warned about {page}\n{}",
            r.describe()
        );
    }
    // The page says what --help says: every long flag of the help is on the page.
    let help = run(sb.cmd("coze-token").arg("--help"), "").stdout.clone();
    let page = run(
        sb.cmd("man")
            .arg("-l")
            .arg(root().join("man/coze-token.1"))
            .env("MANWIDTH", "200")
            .env("MANPAGER", "cat"),
        "",
    )
    .stdout
    .clone();
    for flag in help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[')
        .filter(|w| w.starts_with("--") && w.len() > 2)
    {
        let flag = flag.trim_end_matches([']', ')', '.', ';', '`']);
        assert!(
            page.contains(flag),
            "{flag} is in the help but not the man page"
        );
    }
}

/// What bash completes for `words` (the last one is the word being completed).
fn bash_complete(sb: &Sandbox, prog: &str, words: &[&str]) -> Vec<String> {
    let func = format!("_{}", prog.replace('-', "_"));
    let script = format!(
        "source {comp}\ncomplete -p {prog}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n{func} {prog}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        comp = root().join("completions/bash").join(prog).display(),
        words = std::iter::once(prog)
            .chain(words.iter().copied())
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len(),
    );
    let r = run(
        sb.cmd("bash")
            .args(["--norc", "--noprofile", "-c", &script]),
        "",
    );
    r.ok();
    let mut lines = r.stdout.lines();
    let spec = lines.next().unwrap_or_default();
    assert_eq!(
        spec,
        format!("complete -F {func} {prog}"),
        "{}",
        r.describe()
    );
    lines.filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn bash_completes_subcommands_flags_and_values() {
    let sb = Sandbox::new("packaging-bash");
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        bash_complete(&sb, "coze-conv", &[""]),
        set(&["create", "get", "list", "clear", "delete", "messages"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-conv", &["c"]),
        set(&["create", "clear"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-token", &[""]),
        set(&["refresh", "print", "status", "whoami", "exec", "profiles", "logout"])
    );
    assert_eq!(bash_complete(&sb, "coze-auth", &["d"]), set(&["doctor"]));
    // Once a subcommand is there, no second one is offered.
    assert!(bash_complete(&sb, "coze-conv", &["get", ""]).is_empty());
    // Flags, including the shared connection flags and a subcommand's.
    assert_eq!(
        bash_complete(&sb, "coze-token", &["--reg"]),
        set(&["--region"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-token", &["print", "--hea"]),
        set(&["--header"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-conv", &["messages", "--or"]),
        set(&["--order"])
    );
    assert!(bash_complete(&sb, "coze-chat", &["--"]).contains(&"--conversation".to_owned()));
    assert!(bash_complete(&sb, "coze-auth", &["doctor", "--redi"])
        .contains(&"--redirect-uri".to_owned()));
    // Values: choices, and files for paths.
    assert_eq!(
        bash_complete(&sb, "coze-token", &["--region", ""]),
        set(&["cn", "com"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-conv", &["messages", "x", "--order", ""]),
        set(&["asc", "desc"])
    );
    assert_eq!(
        bash_complete(&sb, "coze-chat", &["-o", ""]),
        set(&["events", "text", "answers"])
    );
    std::fs::write(sb.path("tok-a.json"), "{}").unwrap();
    assert_eq!(
        bash_complete(&sb, "coze-token", &["--token-file", "tok-"]),
        set(&["tok-a.json"])
    );
    // After `exec --`, a command.
    assert!(bash_complete(&sb, "coze-token", &["exec", "--", "bas"]).contains(&"bash".to_owned()));
}

#[test]
fn zsh_and_fish_completions_parse() {
    // Both shells are required, like Chromium: a missing one fails, never skips.
    let sb = Sandbox::new("packaging-shells");
    for (shell, dir, name) in [("zsh", "zsh", "_{}"), ("fish", "fish", "{}.fish")] {
        assert!(
            Command::new(shell).arg("--version").output().is_ok(),
            "{shell} is missing: apt-get install {shell} (.ci/run does)"
        );
        for prog in BINS {
            let path = root()
                .join("completions")
                .join(dir)
                .join(name.replace("{}", prog));
            assert!(path.is_file(), "{}", path.display());
            run(sb.cmd(shell).arg("-n").arg(&path), "").ok();
        }
    }
}

#[test]
fn make_install_and_uninstall_into_a_prefix() {
    let sb = Sandbox::new("packaging-install");
    let prefix = sb.path("prefix");
    let make = |target: &str| {
        let mut c = sb.cmd("make");
        c.arg("-s")
            .arg("-C")
            .arg(root())
            .arg(target)
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("BINDIR_SRC={}", bin_dir().display()));
        c
    };
    run(&mut make("install"), "").ok();
    let mut want = BTreeSet::new();
    for b in BINS {
        want.insert(PathBuf::from(format!("bin/{b}")));
        want.insert(PathBuf::from(format!(
            "share/bash-completion/completions/{b}"
        )));
        want.insert(PathBuf::from(format!("share/zsh/site-functions/_{b}")));
        want.insert(PathBuf::from(format!(
            "share/fish/vendor_completions.d/{b}.fish"
        )));
    }
    for p in PAGES {
        want.insert(PathBuf::from(format!("share/man/man1/{p}.1")));
    }
    assert_eq!(files(&prefix), want);
    for b in BINS {
        assert_eq!(mode(&prefix.join("bin").join(b)), 0o755, "{b}");
        // The installed binary is the one built.
        let r = run(
            sb.cmd(prefix.join("bin").join(b).to_str().unwrap())
                .arg("--version"),
            "",
        );
        r.ok();
        assert!(r.stdout.starts_with(&format!("{b} ")), "{}", r.describe());
    }
    assert_eq!(mode(&prefix.join("share/man/man1/coze-chat.1")), 0o644);
    // man finds the installed pages through the prefix.
    let r = run(
        sb.cmd("man")
            .arg("coze-token")
            .env("MANPATH", prefix.join("share/man"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80"),
        "",
    );
    r.ok();
    assert!(r.stdout.contains("COZE-TOKEN(1)"), "{}", r.describe());

    run(&mut make("uninstall"), "").ok();
    assert_eq!(
        files(&prefix),
        BTreeSet::new(),
        "uninstall left files behind"
    );
}

#[test]
fn version_names_the_git_commit() {
    let sb = Sandbox::new("packaging-version");
    let in_git = root().join(".git").exists();
    if !in_git {
        // A source tarball has no commit to name; CI builds a clean clone.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI builds from a git clone, but there is no .git"
        );
        return;
    }
    let r = run(sb.cmd("coze-auth").arg("--version"), "");
    r.ok();
    let line = r.stdout.trim();
    let commit = line
        .split("(commit ")
        .nth(1)
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no commit in {line:?}"));
    let hash = commit.trim_end_matches("-dirty");
    assert!(
        hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line:?}"
    );
    assert_eq!(
        line,
        format!("coze-auth {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
    // It names a commit of this repository.
    let r = run(
        sb.cmd("git")
            .arg("-C")
            .arg(root())
            .args(["cat-file", "-t", hash]),
        "",
    );
    r.ok();
    assert_eq!(r.stdout.trim(), "commit", "{}", r.describe());
    // Every tool carries the same one.
    for b in ["coze-token", "coze-conv", "coze-chat"] {
        let r = run(sb.cmd(b).arg("--version"), "");
        assert!(
            r.stdout.contains(&format!("(commit {commit})")),
            "{}",
            r.describe()
        );
    }
}
