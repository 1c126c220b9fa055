//! Profiles: the tools' settings directory and, in it, one directory per profile for
//! its token file and user id (the default profile's are the directory itself).

use std::path::PathBuf;

use super::Env;
use crate::error::{Error, Result};

/// The tools' settings directory: `$XDG_CONFIG_HOME/coze`, else `~/.config/coze`.
pub fn config_dir(env: &Env) -> Option<PathBuf> {
    let base = match &env.xdg_config_home {
        Some(x) if x.is_absolute() => x.clone(),
        _ => env.home.as_ref()?.join(".config"),
    };
    Some(base.join("coze"))
}

/// `$XDG_CONFIG_HOME/coze/token.json`, else `~/.config/coze/token.json`.
pub fn default_token_path(env: &Env) -> Option<PathBuf> {
    Some(config_dir(env)?.join("token.json"))
}

/// The name of the default profile: its files are the ones outside `profiles/`.
pub const DEFAULT_PROFILE: &str = "default";

/// A profile name: letters, digits, `.`, `_`, `-`; not starting with `.`; at most 64.
pub fn check_profile_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "profile {name:?}: use letters, digits, '.', '_' and '-' (at most 64, not \
             starting with '.')"
        )))
    }
}

/// Where a profile keeps its token file and user id: the settings directory itself for
/// the default profile, `profiles/NAME/` in it for any other.
pub fn profile_dir(env: &Env, name: &str) -> Result<PathBuf> {
    check_profile_name(name)?;
    let dir = config_dir(env).ok_or_else(|| {
        Error::Auth(
            "HOME is not set, so there is no settings directory for profiles (set HOME or \
             XDG_CONFIG_HOME, or pass --token-file)"
                .to_owned(),
        )
    })?;
    Ok(if name == DEFAULT_PROFILE {
        dir
    } else {
        dir.join("profiles").join(name)
    })
}

/// The profile the flags and environment select: `--profile` > `COZE_PROFILE` >
/// the default.
pub fn selected_profile(flag_profile: Option<&str>, env: &Env) -> String {
    flag_profile
        .or(env.profile.as_deref())
        .unwrap_or(DEFAULT_PROFILE)
        .to_owned()
}
