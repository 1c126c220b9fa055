//! Local tools: the programs that answer a bot's tool calls (`--tool NAME=COMMAND`,
//! `--tools DIR`). A bot's chat that stops in `requires_action` names functions; each
//! is run here as a program (`run`), several at once, and their outputs go back to the
//! chat (`coze_core::chat::submit`). Only coze-chat runs tools, so they live with it.
//!
//! `words`: COMMAND split without a shell; `run`: one program run, its process group,
//! its limits and what it may see.

mod run;
pub mod words;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coze_core::{Error, Result};

pub use run::{go_on, kill_all, Call, Program, Ran};

/// At most this many tools of one round run at once.
pub const AT_ONCE: usize = 4;

/// The tools a run answers calls with, and how.
#[derive(Debug, Default)]
pub struct Tools {
    /// `--tool NAME=COMMAND`, checked: these win over `--tools DIR`.
    named: Vec<(String, Program)>,
    /// `--tools DIR`: an executable `DIR/NAME` answers function NAME.
    dir: Option<PathBuf>,
    /// `--tool-timeout`.
    pub timeout: Duration,
    /// `--max-tool-rounds`.
    pub max_rounds: u32,
    /// The environment variables a tool does not get: every one whose name says it
    /// holds or points at a token.
    hidden: Vec<OsString>,
}

/// Whether an environment variable's name says it holds a token (or where one is):
/// `COZE_API_TOKEN`, `COZE_TOKEN_FILE`, `GITHUB_TOKEN`…
fn is_token_name(name: &OsString) -> bool {
    name.to_string_lossy()
        .to_ascii_uppercase()
        .contains("TOKEN")
}

impl Tools {
    /// The tools `--tool` (`named`: NAME and COMMAND's words) and `--tools` give,
    /// checked now, before any chat: a program that is missing or not executable is a
    /// usage error. `path`: the PATH a bare program name is looked up in; `env_names`:
    /// the names of coze-chat's environment variables (the token ones are hidden).
    pub fn new(
        named: &[(String, Vec<String>)],
        dir: Option<PathBuf>,
        path: Option<OsString>,
        env_names: impl Iterator<Item = OsString>,
    ) -> Result<Tools> {
        let mut tools = Tools {
            timeout: Duration::from_secs(60),
            max_rounds: 8,
            hidden: env_names.filter(is_token_name).collect(),
            ..Tools::default()
        };
        for (name, words) in named {
            let program = &words[0];
            let found = if program.contains('/') {
                Some(PathBuf::from(program))
            } else {
                path.as_ref().and_then(|p| {
                    std::env::split_paths(p)
                        .map(|d| d.join(program))
                        .find(|c| executable(c))
                })
            };
            let path = match found {
                Some(p) if executable(&p) => p,
                Some(p) if p.exists() => {
                    return Err(Error::usage(format!(
                        "--tool {name}: {} is not an executable file",
                        p.display()
                    )))
                }
                _ => {
                    return Err(Error::usage(format!(
                        "--tool {name}: no program {program:?} (not found{})",
                        if program.contains('/') {
                            ""
                        } else {
                            " in PATH"
                        }
                    )))
                }
            };
            tools.named.retain(|(n, _)| n != name);
            tools.named.push((
                name.clone(),
                Program {
                    path,
                    args: words[1..].to_vec(),
                },
            ));
        }
        if let Some(d) = &dir {
            if !d.is_dir() {
                return Err(Error::usage(format!(
                    "--tools {}: not a directory",
                    d.display()
                )));
            }
        }
        tools.dir = dir;
        Ok(tools)
    }

    /// Whether any tool was given: without one, a chat's tool calls are left waiting.
    pub fn any(&self) -> bool {
        !self.named.is_empty() || self.dir.is_some()
    }

    /// The program that answers function `name`, if one does. The name is the bot's:
    /// only a plain file name is looked up in `--tools DIR`, never a path.
    pub fn program(&self, name: &str) -> Option<Program> {
        if let Some((_, p)) = self.named.iter().find(|(n, _)| n == name) {
            return Some(p.clone());
        }
        let dir = self.dir.as_ref()?;
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let path = dir.join(name);
        (plain && executable(&path)).then(|| Program {
            path,
            args: Vec::new(),
        })
    }

    /// Runs the calls, at most [`AT_ONCE`] at a time; the results in call order. A call
    /// no tool answers has none: the caller says so to the bot.
    pub fn run_all(&self, calls: &[(Program, Call<'_>)]) -> Vec<Ran> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<std::sync::Mutex<Option<Ran>>> =
            calls.iter().map(|_| Default::default()).collect();
        std::thread::scope(|s| {
            for _ in 0..calls.len().min(AT_ONCE) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((program, call)) = calls.get(i) else {
                        break;
                    };
                    let ran = run::run(program, call, &self.hidden, self.timeout);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(ran);
                });
            }
        });
        results
            .into_iter()
            .map(|r| {
                r.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    // Every index below calls.len() was taken by one worker.
                    .expect("every call was run")
            })
            .collect()
    }
}

/// A regular file someone may execute.
fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
