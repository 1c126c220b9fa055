//! `coze-token profiles` and `coze-token logout`: the token files a person keeps, one
//! per account or server.
//!
//! A profile is a directory: the default one is the settings directory itself
//! (`$XDG_CONFIG_HOME/coze`, holding `token.json`), any other is `profiles/NAME/` in
//! it. Each holds its token file, its lock and its default user id. Listing reads the
//! token files (nothing is sent); logging out removes a token file and its lock under
//! the lock, and keeps the user id, so a later login is the same user to the bots.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use coze_core::auth::renew;
use coze_core::auth::store::TokenStore;
use coze_core::config::{self, Credentials, Env, DEFAULT_PROFILE};
use coze_core::support::time::{ago, unix_now};
use coze_core::wire::jsonl::JsonlWriter;
use coze_core::{Error, Result};

use crate::flags::Flags;
use crate::TOOL;

/// One profile as listed.
struct Profile {
    name: String,
    token_file: PathBuf,
    /// `valid`, `refreshable`, `expired`, `logged_out` or `unreadable`.
    state: &'static str,
    detail: String,
    base_url: Option<String>,
    expires_at: Option<i64>,
    user_id: Option<String>,
    active: bool,
}

/// Lists every profile: a table on a terminal, `profile` records otherwise.
pub fn list(f: &Flags, env: &Env) -> Result<()> {
    let dir = config::config_dir(env).ok_or_else(|| {
        Error::Auth("HOME is not set, so there is no settings directory to list".into())
    })?;
    // The token file the tools would use now, to mark its profile.
    let in_use = f
        .api
        .credentials(env)
        .ok()
        .and_then(|c| c.path().map(Path::to_path_buf));
    let mut names = vec![DEFAULT_PROFILE.to_owned()];
    if let Ok(entries) = fs::read_dir(dir.join("profiles")) {
        let mut named: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| config::check_profile_name(n).is_ok() && n != DEFAULT_PROFILE)
            .collect();
        named.sort();
        names.extend(named);
    }
    let profiles: Vec<Profile> = names
        .into_iter()
        .map(|name| describe(&name, env, in_use.as_deref()))
        .collect::<Result<_>>()?;
    if io::stdout().is_terminal() {
        table(&profiles)
    } else {
        records(&profiles)
    }
}

fn describe(name: &str, env: &Env, in_use: Option<&Path>) -> Result<Profile> {
    let dir = config::profile_dir(env, name)?;
    let token_file = dir.join("token.json");
    let user_id = fs::read_to_string(dir.join("user_id"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let mut p = Profile {
        name: name.to_owned(),
        active: in_use == Some(token_file.as_path()),
        token_file,
        state: "logged_out",
        detail: "no token: log in, or coze-token --pat --save".into(),
        base_url: None,
        expires_at: None,
        user_id,
    };
    if !p.token_file.exists() {
        return Ok(p);
    }
    match TokenStore::new(&p.token_file).load() {
        Err(e) => {
            p.state = "unreadable";
            p.detail = e.root().to_string();
        }
        Ok(t) => {
            let now = unix_now();
            let renewable = renew::renewable(&t);
            (p.state, p.detail) = match t.ttl(now) {
                i64::MAX => (
                    "valid",
                    "no expiry recorded (a personal access token?)".into(),
                ),
                ttl if ttl > 0 => ("valid", format!("expires {}", ago(t.expires_at, now))),
                _ if renewable => (
                    "refreshable",
                    format!(
                        "expired {}; the next command refreshes it",
                        ago(t.expires_at, now)
                    ),
                ),
                _ => (
                    "expired",
                    format!("expired {}: log in again", ago(t.expires_at, now)),
                ),
            };
            p.base_url = t.base_url;
            p.expires_at = (t.expires_at != 0).then_some(t.expires_at);
        }
    }
    Ok(p)
}

fn records(profiles: &[Profile]) -> Result<()> {
    let mut out = JsonlWriter::new(io::stdout().lock());
    for p in profiles {
        let record = json!({
            "type": "profile",
            "name": p.name,
            "token_file": p.token_file.display().to_string(),
            "state": p.state,
            "base_url": p.base_url,
            "expires_at": p.expires_at,
            "user_id": p.user_id,
            "active": p.active,
        });
        out.write(&record).map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

/// `gh`-style aligned columns; `*` marks the profile the tools would use now.
fn table(profiles: &[Profile]) -> Result<()> {
    let rows: Vec<[String; 4]> = profiles
        .iter()
        .map(|p| {
            [
                format!("{} {}", if p.active { "*" } else { " " }, p.name),
                p.state.to_owned(),
                p.base_url.clone().unwrap_or_else(|| "-".into()),
                p.detail.clone(),
            ]
        })
        .collect();
    let header = ["  PROFILE", "STATE", "BASE URL", ""];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut text = String::new();
    for r in std::iter::once(header.map(str::to_owned)).chain(rows) {
        // Server text never reaches the terminal raw: control characters are dropped.
        let line = format!("{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3]);
        text.extend(line.trim_end().chars().filter(|c| !c.is_control()));
        text.push('\n');
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

/// Removes the chosen profile's token file and lock.
pub fn logout(chosen: &Credentials, env: &Env) -> Result<()> {
    let Some(path) = chosen.path() else {
        return Err(Error::usage("logout needs a token file"));
    };
    let removed = TokenStore::new(path).remove()?;
    let what = chosen.describe();
    if removed {
        coze_core::say!("{TOOL}: logged out: removed {what}");
    } else {
        coze_core::say!("{TOOL}: not logged in: there is no {what}");
    }
    if env.api_token.is_some() {
        coze_core::support::say::warn(
            "COZE_API_TOKEN is still set in this environment, and the tools use it when \
             no token file is named",
        );
    }
    Ok(())
}
