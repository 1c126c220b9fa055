//! coze-token's command line: parsed into a plain struct, nothing resolved yet.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use coze_core::cli::{self, Parsed};
use coze_core::config::Region;
use coze_core::Result;

pub const HELP: &str = "\
coze-token: turn a grant into tokens; refresh, print and guard the token file

USAGE:
    coze-auth ... | coze-token [--save [PATH]]     grant records in, a token out
    coze-token refresh [--force]                    refresh the token file now
    coze-token print [--min-ttl S] [--header]       the bare access token, fresh
    coze-token status                               what the token file holds
    coze-token exec -- COMMAND [ARGS...]            run COMMAND with COZE_API_TOKEN set

Reads JSON-lines records on stdin: an `authorization_code` (from coze-auth) is
exchanged, a `device_code` (from coze-auth --device) is polled until the person
approves it, a `token` is refreshed. Writes one `token` record per grant: on stdout,
or with --save into the token file. Refresh tokens work once (Coze rotates them):
the new pair is on disk before it is used, and refreshes of one file are
single-flight across processes (a lock beside the file), so parallel jobs never lock
each other out. Token files are written 0600 and replaced atomically; when stdout is
a regular file (`> token.json`) it is tightened to 0600 as well.

OPTIONS:
    --save [PATH]          write the token file instead of stdout (default: the token
                           file below)
    --token-file PATH      the token file [env: COZE_TOKEN_FILE]
                           [default: $XDG_CONFIG_HOME/coze/token.json, else
                           ~/.config/coze/token.json]
    --min-ttl SECONDS      print/exec: refresh first if the token expires within this
                           [default: 120]
    --header               print: `Authorization: Bearer …`, for curl -H @-
    --force                refresh: even if the token is still fresh
    --base-url URL         API base when a record does not name one [env: COZE_API_BASE]
    --region cn|com        api.coze.cn or api.coze.com
    --timeout SECONDS      device flow: give up after this long [default: the device
                           code's own expiry]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted)
    -h, --help             this text
    -V, --version          version and commit

EXAMPLES:
    coze-auth --client-id 1234.app.coze | coze-token --save
    coze-auth --client-id 1234.app.coze --device | coze-token > token.json
    curl -H \"$(coze-token print --header)\" https://api.coze.cn/v1/users/me
    coze-token exec -- python3 my_bot_script.py
    coze-token status && echo logged in

";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Records on stdin.
    Grants,
    Refresh,
    Print,
    Status,
    Exec(Vec<OsString>),
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    /// `--save` given; the inner path if one was named.
    pub save: Option<Option<PathBuf>>,
    pub token_file: Option<PathBuf>,
    pub min_ttl: Duration,
    pub header: bool,
    pub force: bool,
    pub base_url: Option<String>,
    pub region: Option<Region>,
    pub timeout: Option<Duration>,
    pub verbose: bool,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut f = Flags {
        command: Command::Grants,
        save: None,
        token_file: None,
        min_ttl: Duration::from_secs(coze_core::token_store::DEFAULT_MIN_TTL as u64),
        header: false,
        force: false,
        base_url: None,
        region: None,
        timeout: None,
        verbose: false,
    };
    let mut command: Option<Command> = None;
    while let Some(arg) = p.next().map_err(cli::usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Long("save") => {
                let path = p
                    .optional_value()
                    .map(|v| cli::string("--save", v))
                    .transpose()?;
                f.save = Some(path.map(PathBuf::from));
            }
            Long("token-file") => f.token_file = Some(p.value().map_err(cli::usage)?.into()),
            Long("min-ttl") => {
                f.min_ttl = cli::seconds("--min-ttl", p.value().map_err(cli::usage)?)?
            }
            Long("header") => f.header = true,
            Long("force") => f.force = true,
            Long("base-url") => {
                f.base_url = Some(cli::string("--base-url", p.value().map_err(cli::usage)?)?)
            }
            Long("region") => {
                f.region = Some(Region::parse(&cli::string(
                    "--region",
                    p.value().map_err(cli::usage)?,
                )?)?)
            }
            Long("timeout") => {
                f.timeout = Some(cli::seconds("--timeout", p.value().map_err(cli::usage)?)?)
            }
            Short('v') | Long("verbose") => f.verbose = true,
            Value(v) if command.is_none() => {
                let word = cli::string("command", v)?;
                command = Some(match word.as_str() {
                    "refresh" => Command::Refresh,
                    "print" => Command::Print,
                    "status" => Command::Status,
                    "exec" => {
                        let rest: Vec<OsString> = p.raw_args().map_err(cli::usage)?.collect();
                        let rest = match rest.first() {
                            Some(a) if a == "--" => rest[1..].to_vec(),
                            _ => rest,
                        };
                        if rest.is_empty() {
                            return Err(coze_core::Error::usage(
                                "exec: name a command to run: exec -- COMMAND [ARGS...]",
                            ));
                        }
                        Command::Exec(rest)
                    }
                    // `--save PATH`: the path as the next word.
                    path if matches!(f.save, Some(None)) => {
                        f.save = Some(Some(PathBuf::from(path)));
                        continue;
                    }
                    other => {
                        return Err(coze_core::Error::usage(format!(
                            "unknown command {other:?} (expected refresh, print, status or exec)"
                        )))
                    }
                });
            }
            _ => return Err(cli::usage(arg.unexpected())),
        }
    }
    f.command = command.unwrap_or(Command::Grants);
    if f.save.is_some() && f.command != Command::Grants {
        return Err(coze_core::Error::usage(
            "--save goes with grant records on stdin, not with a subcommand",
        ));
    }
    Ok(Parsed::Run(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        match parse(args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn save_takes_an_optional_path() {
        assert_eq!(flags(&["--save"]).save, Some(None));
        assert_eq!(
            flags(&["--save", "t.json"]).save,
            Some(Some("t.json".into()))
        );
        assert_eq!(flags(&["--save=t.json"]).save, Some(Some("t.json".into())));
        assert_eq!(flags(&[]).save, None);
    }

    #[test]
    fn subcommands() {
        assert_eq!(flags(&["print", "--header"]).command, Command::Print);
        assert!(flags(&["print", "--header"]).header);
        assert_eq!(
            flags(&["exec", "--", "env", "-0"]).command,
            Command::Exec(vec!["env".into(), "-0".into()])
        );
        assert_eq!(
            flags(&["exec", "sh", "-c", "x"]).command,
            Command::Exec(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert!(parse(["exec"].map(OsString::from)).is_err());
        assert!(parse(["bogus"].map(OsString::from)).is_err());
        assert!(parse(["print", "--save"].map(OsString::from)).is_err());
    }
}
