//! coze-token's command line: parsed into a plain struct, nothing resolved yet.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::ApiFlags;
use coze_core::cli::Parsed;
use coze_core::Result;

pub const HELP: &str = "\
coze-token: turn a grant into tokens; refresh, print and guard the token file

USAGE:
    coze-auth ... | coze-token [--save [PATH]]     grant records in, a token out
    coze-token --jwt --client-id ID --key PATH --kid KEY_ID [--save [PATH]]
                                                    a service app's token, no person
    coze-token refresh [--force]                    refresh the token file now
    coze-token print [--min-ttl S] [--header]       the bare access token, fresh
    coze-token status [--check]                     what the credentials in use hold;
                                                    --check asks the server too
    coze-token whoami                               the user the token belongs to
    coze-token exec -- COMMAND [ARGS...]            become COMMAND, COZE_API_TOKEN set
    coze-token --pat [--base-url URL] --save [PATH] a personal access token (stdin) into
                                                    a token file (a profile)
    coze-token profiles                             the profiles and their state
    coze-token logout [--profile NAME]              remove a profile's tokens

Reads JSON-lines records on stdin: an `authorization_code` (from coze-auth) is
exchanged, a `device_code` (from coze-auth --device) is polled until the person
approves it, a `token` is refreshed. Writes one `token` record per grant: on stdout,
or with --save into the token file. Refresh tokens work once (Coze rotates them):
the new pair is on disk before it is used, and refreshes of one file are
single-flight across processes (a lock beside the file), so parallel jobs never lock
each other out. Token files are written 0600 and replaced atomically; when stdout is
a regular file (`> token.json`) it is tightened to 0600 as well. A token file others
can read is tightened to 0600 with a warning if it is yours, and refused if it is
not. A token file that is a symlink is followed: the file it names gets the new pair
(and the lock), the link stays. Before a refresh, room for the new pair is made on
disk: a full disk stops it before the old pair is spent (exit 8, nothing sent); a
pair the server issued but that cannot be written is kept in TOKEN_FILE.unsaved, and
the error says how to put it in place.

WHOAMI: `whoami` asks the server (GET /v1/users/me) whose token this is and writes one
`user` record: user_id, user_name, nick_name, avatar_url and the base_url asked. The
token is refreshed first when it is about to expire, as every tool does. `status
--check` makes the same request and adds `check` to its record: ok true, or ok false
with the server's code, msg and logid; exit 4 when the server refuses the
token, 5 when it cannot be reached, 1 when the server lacks the endpoint (a
self-hosted Coze Studio has no /v1/users/me). Without --check, status sends nothing.

EXEC: `exec` replaces coze-token with COMMAND (signals reach COMMAND, its exit status
is the one returned); COZE_API_TOKEN is in its environment, never its argv, and
COZE_TOKEN_FILE and COZE_PROFILE are removed. Exit 127 when COMMAND is not found,
126 when it cannot be executed.

SERVICE APPS (JWT): with --jwt, no stdin is read. coze-token signs a short RS256 JWT
with the app's private key and trades it for an access token (no refresh token). The
token record remembers the key's path, kid, --ttl and --session-name (never the key),
so every tool mints the next token by itself when this one runs out: a cron host
logs in once. The key file must be private (chmod 600), as ssh wants.

PERSONAL ACCESS TOKENS: with --pat, one line of stdin is a PAT (on a terminal it is
asked for and not shown); it is written as a token record with the --base-url it
belongs to, so the profile remembers the server: the way to keep a self-hosted Coze
Studio (PAT only) beside a coze.cn login. A PAT is used as is, never refreshed. With
--allow-http the record also allows plain http to that very base URL.

PROFILES: --profile NAME (or COZE_PROFILE) keeps a token file of its own at
$XDG_CONFIG_HOME/coze/profiles/NAME/token.json, with its own lock and default user
id; `default` is the token file below. Every tool takes --profile. `profiles` lists
them (a table on a terminal, `profile` records otherwise); `logout` removes a
profile's token file and lock (after any refresh in progress; the user id stays).
Credentials: --token-file > --profile > COZE_TOKEN_FILE > COZE_PROFILE >
COZE_API_TOKEN > the default token file.

WEB APPS: a confidential app's code exchange and refreshes need its client secret:
--client-secret-file PATH (or COZE_CLIENT_SECRET). The file's path, never the secret,
is recorded in the token, so the other tools can refresh it too. Its login may skip
PKCE: an `authorization_code` record without `code_verifier` is exchanged with the
secret alone.

OPTIONS:
    --save [PATH]          write the token file instead of stdout (default: the token
                           file below)
    --profile NAME         the token file of profile NAME [env: COZE_PROFILE]
    --token-file PATH      the token file [env: COZE_TOKEN_FILE]
                           [default: $XDG_CONFIG_HOME/coze/token.json, else
                           ~/.config/coze/token.json]
    --pat                  read a personal access token from stdin (see above)
    --min-ttl SECONDS      print/exec: refresh first if the token expires within this
                           [default: 120]
    --header               print: `Authorization: Bearer …`, for curl -H @-
    --force                refresh: even if the token is still fresh
    --check                status: also ask the server whether the token works
    --base-url URL         API base when a record does not name one [env: COZE_API_BASE]
    --region cn|com        api.coze.cn or api.coze.com
    --timeout SECONDS      device flow: give up after this long [default: the device
                           code's own expiry]
    --client-secret-file PATH
                           a web app's client secret, for the code exchange and
                           refreshes; the file must be 0600 [env: COZE_CLIENT_SECRET
                           holds the secret itself]
    --retries N            retries of transient failures (network, 429, 5xx)
                           [default: 4]
    --connect-timeout SECS [default: 10; 0: as long as the system allows]
    --idle-timeout SECS    give up when the server sends nothing for this long
                           [default: 120; 0: never]
    -v, --verbose          one line per HTTP request on stderr (tokens redacted)
    -h, --help             this text
    -V, --version          version and commit

NETWORK:
    --proxy URL            the proxy for every request (http, https, socks4, socks4a,
                           socks5, socks5h; '' for none) [default: https_proxy,
                           HTTPS_PROXY, all_proxy, ALL_PROXY; NO_PROXY exempts]
    --cacert FILE          also trust the CAs in this PEM file [env: COZE_CA_BUNDLE]
    --allow-http           allow plain http:// to a host that is not loopback
                           [env: COZE_ALLOW_HTTP=1]; with --pat, recorded in the token

JWT (SERVICE APP) OPTIONS:
    --jwt                  mint a token with the app's key instead of reading stdin
    --client-id ID         the service app's id [env: COZE_CLIENT_ID]
    --key PATH             its RSA private key, PEM (PKCS#8 or PKCS#1), mode 0600
                           [env: COZE_JWT_KEY_FILE]
    --kid KEY_ID           the public key's id from the app's page [env: COZE_JWT_KID]
    --ttl SECONDS          lifetime of each token, 1..86399 [default: 900]
    --session-name NAME    the `session_name` claim: your user id, which isolates
                           conversations per user

EXAMPLES:
    coze-auth --client-id 1234.app.coze | coze-token --save
    coze-auth --client-id 1234.app.coze --device | coze-token > token.json
    coze-token --jwt --client-id 1234.app.coze --key ~/.config/coze/key.pem \\
        --kid _JrQwMkA0tlu2hR1T3vnpUuJ1x4 --save     # then cron jobs just run
    curl -H \"$(coze-token print --header)\" https://api.coze.cn/v1/users/me
    coze-token exec -- python3 my_bot_script.py
    coze-token status && echo logged in
    coze-token status --check || echo the server refuses this token
    coze-token whoami | jq -r .user_name
    coze-auth --region com --client-id 1234.app.coze | coze-token --profile com --save
    coze-token --pat --base-url http://studio.corp:8888 --allow-http --profile studio \
        --save < pat.txt                          # then: coze-chat --profile studio ...
    coze-token profiles
    coze-token logout --profile com

";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Records on stdin.
    Grants,
    Refresh,
    Print,
    Status,
    /// `whoami`: the user behind the token.
    Whoami,
    Exec(Vec<OsString>),
    /// `--jwt`: mint a service app's token.
    Jwt,
    /// `--pat`: a personal access token from stdin.
    Pat,
    Profiles,
    Logout,
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    /// `--save` given; the inner path if one was named.
    pub save: Option<Option<PathBuf>>,
    /// The connection flags every API tool shares (token file, base URL, region,
    /// retries, timeouts, -v).
    pub api: ApiFlags,
    pub min_ttl: Duration,
    pub header: bool,
    pub force: bool,
    /// `status --check`: ask the server too.
    pub check: bool,
    pub timeout: Option<Duration>,
    pub client_secret_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub key: Option<PathBuf>,
    pub kid: Option<String>,
    /// `duration_seconds` of a JWT token, validated 1..=86399.
    pub ttl: Option<u32>,
    pub session_name: Option<String>,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut f = Flags {
        command: Command::Grants,
        save: None,
        api: ApiFlags::default(),
        min_ttl: Duration::from_secs(coze_core::auth::renew::DEFAULT_MIN_TTL as u64),
        header: false,
        force: false,
        check: false,
        timeout: None,
        client_secret_file: None,
        client_id: None,
        key: None,
        kid: None,
        ttl: None,
        session_name: None,
    };
    let mut command: Option<Command> = None;
    let mut jwt = false;
    let mut pat = false;
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) if command.is_none() => {
                let word = a.positional("command", v)?;
                command = Some(match word.as_str() {
                    "refresh" => Command::Refresh,
                    "print" => Command::Print,
                    "status" => Command::Status,
                    "whoami" => Command::Whoami,
                    "profiles" => Command::Profiles,
                    "logout" => Command::Logout,
                    "exec" => {
                        let rest = a.rest()?;
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
                        return Ok(true);
                    }
                    other => {
                        return Err(coze_core::Error::usage(format!(
                            "unknown command {other:?} (expected refresh, print, status, whoami, \
                             exec, profiles or logout)"
                        )))
                    }
                });
                return Ok(true);
            }
            Arg::Value(_) => return Ok(false),
            Arg::Flag(flag) => flag.as_str(),
        };
        if f.api.take(flag, a)? {
            return Ok(true);
        }
        match flag {
            "--save" => f.save = Some(a.optional_string()?.map(PathBuf::from)),
            "--min-ttl" => f.min_ttl = a.seconds()?,
            "--header" => f.header = true,
            "--force" => f.force = true,
            "--check" => f.check = true,
            "--timeout" => f.timeout = Some(a.seconds()?),
            "--client-secret-file" => f.client_secret_file = Some(a.path()?),
            "--jwt" => jwt = true,
            "--pat" => pat = true,
            "--client-id" => f.client_id = Some(a.string()?),
            "--key" => f.key = Some(a.path()?),
            "--kid" => f.kid = Some(a.string()?),
            "--ttl" => {
                let ttl: u32 = a.number()?;
                if !(1..=coze_core::auth::jwt::MAX_TTL).contains(&ttl) {
                    return Err(a.error(format!(
                        "Coze grants 1 to {} seconds, not {ttl}",
                        coze_core::auth::jwt::MAX_TTL
                    )));
                }
                f.ttl = Some(ttl);
            }
            "--session-name" => f.session_name = Some(a.string()?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    parsed.then(|| check(f, command, jwt, pat))
}

/// How the flags go together, checked once all are read.
fn check(mut f: Flags, command: Option<Command>, jwt: bool, pat: bool) -> Result<Flags> {
    f.command = match (command, jwt, pat) {
        (_, true, true) => {
            return Err(coze_core::Error::usage(
                "--jwt and --pat are two kinds of token: give one",
            ))
        }
        (None, true, false) => Command::Jwt,
        (None, false, true) => Command::Pat,
        (Some(_), true, _) | (Some(_), _, true) => {
            return Err(coze_core::Error::usage(
                "--jwt and --pat make a token and save or print it: they take no subcommand",
            ))
        }
        (c, false, false) => c.unwrap_or(Command::Grants),
    };
    let jwt_only = [
        ("--client-id", f.client_id.is_some()),
        ("--key", f.key.is_some()),
        ("--kid", f.kid.is_some()),
        ("--ttl", f.ttl.is_some()),
        ("--session-name", f.session_name.is_some()),
    ];
    if let Some((flag, _)) = jwt_only.iter().find(|(_, given)| *given && !jwt) {
        return Err(coze_core::Error::usage(format!("{flag} goes with --jwt")));
    }
    if jwt && f.client_secret_file.is_some() {
        return Err(coze_core::Error::usage(
            "--client-secret-file is for web apps; a service app (--jwt) signs with --key",
        ));
    }
    if pat && f.client_secret_file.is_some() {
        return Err(coze_core::Error::usage(
            "--client-secret-file is for web apps' OAuth; a PAT needs no secret",
        ));
    }
    if f.check && f.command != Command::Status {
        return Err(coze_core::Error::usage("--check goes with status"));
    }
    if f.save.is_some() && !matches!(f.command, Command::Grants | Command::Jwt | Command::Pat) {
        return Err(coze_core::Error::usage(
            "--save goes with grant records on stdin, not with a subcommand",
        ));
    }
    Ok(f)
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
        assert_eq!(flags(&["profiles"]).command, Command::Profiles);
        assert_eq!(flags(&["whoami"]).command, Command::Whoami);
        assert!(flags(&["status", "--check"]).check);
        assert!(!flags(&["status"]).check);
        assert_eq!(
            flags(&["logout", "--profile", "w"]).api.profile.as_deref(),
            Some("w")
        );
        let f = flags(&[
            "--pat",
            "--base-url",
            "http://s:8888",
            "--allow-http",
            "--save",
        ]);
        assert_eq!(f.command, Command::Pat);
        assert!(f.api.net.allow_http);
        for bad in [
            &["--pat", "--jwt"][..],
            &["--pat", "print"],
            &["logout", "--save"],
            &["print", "--check"],
            &["whoami", "--check"],
        ] {
            let e = parse(bad.iter().map(OsString::from)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }

    #[test]
    fn jwt_flags() {
        let f = flags(&[
            "--jwt",
            "--client-id",
            "1.app.coze",
            "--key",
            "k.pem",
            "--kid",
            "K",
            "--ttl",
            "3600",
            "--session-name",
            "u1",
            "--save",
        ]);
        assert_eq!(f.command, Command::Jwt);
        assert_eq!(f.ttl, Some(3600));
        assert_eq!(f.key, Some("k.pem".into()));
        assert_eq!(f.save, Some(None));
        assert_eq!(flags(&["--jwt"]).command, Command::Jwt);
        let err = |args: &[&str]| match parse(args.iter().map(OsString::from)) {
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                e.to_string()
            }
            Ok(other) => panic!("{args:?} parsed: {other:?}"),
        };
        assert!(err(&["--jwt", "--ttl", "86400"]).contains("1 to 86399"));
        assert!(err(&["--jwt", "--ttl", "0"]).contains("1 to 86399"));
        assert!(err(&["--kid", "K"]).contains("--kid goes with --jwt"));
        assert!(err(&["--jwt", "print"]).contains("no subcommand"));
        assert!(err(&["--jwt", "--client-secret-file", "s"]).contains("web apps"));
        assert_eq!(
            flags(&["refresh", "--client-secret-file", "s"]).client_secret_file,
            Some("s".into())
        );
    }
}
