//! The browser a login opens on the authorize URL: `--no-browser`, `$BROWSER` (a
//! program, or a shell command), or the system's opener. The URL is always one
//! argument, never spliced into shell text, and the browser never writes to our stdout.

use std::io;
use std::process::{Command, Stdio};

/// Which browser opens the authorize URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browser {
    /// `--no-browser` (and `--paste`): only print the URL.
    Off,
    /// `$BROWSER`: a program, or with spaces a shell command, given the URL.
    Command(String),
    /// `xdg-open` (Linux and other Unixes), `open` (macOS).
    System,
}

impl Browser {
    pub fn choose(no_browser: bool, browser_env: Option<&str>) -> Browser {
        match browser_env.map(str::trim).filter(|b| !b.is_empty()) {
            _ if no_browser => Browser::Off,
            Some(b) => Browser::Command(b.to_owned()),
            None => Browser::System,
        }
    }

    /// The command that opens `url`; `None` for `Off`. The URL is always one argument,
    /// never spliced into shell text.
    pub fn command(&self, url: &str) -> Option<Command> {
        let mut cmd = match self {
            Browser::Off => return None,
            Browser::Command(b) if b.contains(char::is_whitespace) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{b} \"$1\"")).arg("sh");
                c
            }
            Browser::Command(b) => Command::new(b),
            Browser::System if cfg!(target_os = "macos") => Command::new("open"),
            Browser::System => Command::new("xdg-open"),
        };
        cmd.arg(url);
        Some(cmd)
    }
}

/// Starts the browser on `url` without waiting for it: a thread reaps it and warns if
/// it fails. The browser writes to our stderr, never to our stdout (which carries the
/// one record). A browser that cannot start is an `Err` the caller reports as a warning.
pub fn open_browser(browser: &Browser, url: &str) -> io::Result<()> {
    let Some(mut cmd) = browser.command(url) else {
        return Ok(());
    };
    let stdout = stderr_for_child().unwrap_or_else(Stdio::null);
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd.stdin(Stdio::null()).stdout(stdout).spawn()?;
    std::thread::spawn(move || match child.wait() {
        Ok(status) if !status.success() => coze_core::say!(
            "coze-auth: warning: the browser command {what} exited with {status}; open the \
             URL above by hand"
        ),
        _ => {}
    });
    Ok(())
}

/// Our stderr, duplicated for a child to use as its stdout.
#[cfg(unix)]
fn stderr_for_child() -> Option<Stdio> {
    use std::os::fd::AsFd;
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(Stdio::from)
}

#[cfg(not(unix))]
fn stderr_for_child() -> Option<Stdio> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_choice_and_commands() {
        assert_eq!(Browser::choose(true, Some("firefox")), Browser::Off);
        assert_eq!(
            Browser::choose(false, Some("firefox")),
            Browser::Command("firefox".into())
        );
        assert_eq!(Browser::choose(false, Some(" ")), Browser::System);
        assert_eq!(Browser::choose(false, None), Browser::System);
        assert!(Browser::Off.command("u").is_none());
        let c = Browser::Command("firefox".into())
            .command("http://x/?a=1&b=2")
            .unwrap();
        assert_eq!(c.get_program(), "firefox");
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["http://x/?a=1&b=2"]);
        let c = Browser::Command("firefox --new-tab".into())
            .command("http://x/?a=1&b=$(id)")
            .unwrap();
        assert_eq!(c.get_program(), "sh");
        assert_eq!(
            c.get_args().collect::<Vec<_>>(),
            [
                "-c",
                "firefox --new-tab \"$1\"",
                "sh",
                "http://x/?a=1&b=$(id)"
            ]
        );
    }
}
