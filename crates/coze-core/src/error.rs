//! The one error type of the coze tools, and the exit-code table.
//!
//! Every failure a tool can meet ends up here, classified once, so `main` only has to
//! print `Display` (one line, `what: why (logid …)`) and return `exit_code()`. Messages
//! are built from server text and our own words; they never carry a token (the
//! `redact` module scrubs registered secrets from anything printed, as a second line of
//! defence). This is not a logging facility: `-v` request lines live in `http`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The exit codes every tool shares, in one place: the table in `--help`
/// ([`EXIT_CODES_HELP`]), the README's "Exit codes" and docs/architecture.md say the same.
pub mod exit {
    /// Success, also when the reader of stdout went away early (a closed pipe).
    pub const OK: u8 = 0;
    /// The API answered with an error (or with something we cannot use).
    pub const API: u8 = 1;
    /// Bad flags or arguments.
    pub const USAGE: u8 = 2;
    /// A line on stdin we cannot use; the message names it.
    pub const BAD_INPUT: u8 = 3;
    /// Authentication needed: no credentials, a refresh refused, consent denied, a
    /// state mismatch. Logging in again is the way out.
    pub const AUTH: u8 = 4;
    /// Network: unreachable, timed out, a certificate nobody trusts, a stream cut
    /// before its chat could be followed.
    pub const NETWORK: u8 = 5;
    /// A rate limit or quota still refused after the retries.
    pub const RATE_LIMIT: u8 = 6;
    /// Waiting for an answer: a workflow stopped at a question or input node (or a
    /// chatflow's question) in a pipeline, where nobody can answer it; its `interrupt`
    /// record says what to answer.
    pub const WAITING: u8 = 7;
    /// A local file or stream could not be read or written: permission denied, a
    /// directory where a file should be, a full disk, a full stdout.
    pub const LOCAL_IO: u8 = 8;
    /// Ctrl-C (SIGINT): 128 + 2, as a shell reports it.
    pub const INTERRUPTED: u8 = 130;
    /// SIGTERM.
    pub const TERMINATED: u8 = 143;
}

/// The exit-code table as users read it in `--help` and the README.
pub const EXIT_CODES_HELP: &str = "\
EXIT STATUS
    0    success (also when the reader of stdout goes away early)
    1    the API answered with an error
    2    usage error (bad flags or arguments)
    3    bad input on stdin (the message names the line), or a file named on
         the command line that cannot be used (the message names it)
    4    authentication needed: no credentials, refresh rejected, consent denied,
         state mismatch
    5    network: unreachable, timed out, a certificate nobody trusts, or a stream
         cut before its chat could be followed
    6    rate limit or quota still refused after retries
    7    waiting for an answer: a workflow or chatflow asked a question and
         nobody is at a terminal to answer (see the `interrupt` record), or a
         bot called local tools and no --tool answers them
    8    a local file or stream could not be read or written (permission denied,
         a directory where a file should be, a full disk or stdout)
    130  interrupted (Ctrl-C)
    143  terminated (SIGTERM)";

/// What the server said, in any of its error shapes (envelope, OAuth, bare HTTP).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status of the response (200 for envelope errors sent with 200).
    pub status: u16,
    /// The server's code for the failure, in whichever shape it came.
    pub code: ApiCode,
    /// The server's message (`msg`, `error_message` or `error_description`; the body's
    /// text for a bare HTTP error), empty when it sent none.
    pub msg: String,
    /// The id the server's operators know the request by (`x-tt-logid`, Studio's
    /// `X-Log-ID`, or the body's `detail.logid`), when the response carried one.
    pub logid: Option<String>,
    /// `Retry-After` of a 429/503, when the server sent one.
    pub retry_after: Option<Duration>,
    /// The page tracing a failed workflow run node by node (`debug_url` beside the
    /// error, as coze-py's `CozeAPIError` keeps it), when the answer carried one.
    pub debug_url: Option<String>,
}

/// The server's own name for the failure.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCode {
    /// The `code` of the `{code,msg,detail}` envelope.
    Coze(i64),
    /// `error_code` / `error` of the OAuth token and device endpoints.
    OAuth(String),
    /// No code in the body (a gateway page, an empty body): only the HTTP status says.
    Http,
}

impl ApiError {
    /// The envelope's numeric `code` (4100, 4016, …), if the error came in that shape.
    pub fn coze_code(&self) -> Option<i64> {
        match self.code {
            ApiCode::Coze(c) => Some(c),
            _ => None,
        }
    }

    /// The OAuth endpoints' string code (`authorization_pending`, `access_denied`, …),
    /// if the error came in that shape.
    pub fn oauth_code(&self) -> Option<&str> {
        match &self.code {
            ApiCode::OAuth(c) => Some(c),
            _ => None,
        }
    }

    /// 4100 ("authentication is invalid"), 4101 (wrong token), 700012006 (a
    /// self-hosted Coze Studio's "authentication failed", sent with HTTP 200) or HTTP
    /// 401, but not the 401 Studio gives for an endpoint it lacks.
    pub fn is_auth(&self) -> bool {
        (matches!(self.coze_code(), Some(4100 | 4101 | 700_012_006)) || self.status == 401)
            && !self.is_missing_endpoint()
    }

    /// A self-hosted Coze Studio's answer for a path it does not implement: its session
    /// middleware runs before the 404 handler, so every unknown path answers 401
    /// `{"code":401,"msg":"missing session_key in cookie"}` (coze-dev/coze-studio
    /// `backend/api/middleware/session.go`).
    pub fn is_missing_endpoint(&self) -> bool {
        self.status == 401 && self.msg.contains("missing session_key")
    }

    /// Rate limit or quota: HTTP 429, 4013 (rate limited), 4020 (quota).
    pub fn is_rate_limit(&self) -> bool {
        self.status == 429 || matches!(self.coze_code(), Some(4013 | 4020))
    }

    /// 4016: another chat is in progress in this conversation.
    pub fn is_busy(&self) -> bool {
        self.coze_code() == Some(4016)
    }

    /// Worth trying again after a pause: 5xx and rate limits.
    pub fn is_transient(&self) -> bool {
        self.status >= 500 || self.is_rate_limit()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            // No server sends 0 for an error; it stands for "no code given" (a failed
            // chat without last_error, as a self-hosted Coze Studio reports it).
            ApiCode::Coze(0) => write!(f, "{}", self.msg)?,
            ApiCode::Coze(code) => write!(f, "code {code}: {}", self.msg)?,
            ApiCode::OAuth(code) if self.msg.is_empty() => write!(f, "{code}")?,
            ApiCode::OAuth(code) => write!(f, "{code}: {}", self.msg)?,
            ApiCode::Http if self.msg.is_empty() => write!(f, "HTTP {}", self.status)?,
            ApiCode::Http => write!(f, "HTTP {}: {}", self.status, self.msg)?,
        }
        if let Some(logid) = &self.logid {
            write!(f, " (logid {logid})")?;
        }
        Ok(())
    }
}

/// Every way a coze tool can fail.
#[derive(Debug)]
pub enum Error {
    /// Bad flags or arguments (exit 2).
    Usage(String),
    /// A line on stdin we cannot use (exit 3).
    BadInput {
        /// The 1-based stdin line, when the failure is one line's.
        line: Option<u64>,
        /// What is wrong with it.
        message: String,
    },
    /// A file named on the command line that cannot be used as it is: missing, not a
    /// regular file, unreadable, empty, too big (exit 3), found before any of it is sent.
    BadFile {
        /// The file as the user named it (shown lossily when not UTF-8).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The API said no (exit 1, or 4 / 6 by its code).
    Api(ApiError),
    /// We cannot authenticate: no credentials, a retired refresh token, consent denied,
    /// a state mismatch (exit 4).
    Auth(String),
    /// The server refused a refresh token itself (used up or expired), not the app,
    /// the network or a server fault: only a new login helps (exit 4). A kind of its
    /// own so that the token store can tell it from other authentication failures.
    RefreshRefused(String),
    /// Connection refused, DNS, timeouts, a cut stream (exit 5).
    Network(String),
    /// An answer broke before its end and cannot be had again (exit 5, never retried):
    /// a chat's stream whose chat could not be followed to its end, a workflow's
    /// stream, or the answer to a request the server acts on per copy
    /// (`http::Request::acts_once`), lost after the server took it. `msg` says how it
    /// broke, `logid` is the answer's, `recovery` why following the chat by polling
    /// failed, when it was tried.
    Cut {
        /// How the answer broke ("the answer stream was cut after N events, …").
        msg: String,
        /// The logid of the stream's response, when it had one.
        logid: Option<String>,
        /// Why following the chat by polling failed; `None` when it was not tried.
        recovery: Option<Box<Error>>,
    },
    /// TLS failed, usually a certificate no trusted CA signed (exit 5, never retried:
    /// it fails the same way every time).
    Tls(String),
    /// The server answered something we cannot use: a missing field, a cursor that
    /// repeats (exit 1, like any other answer that is the API's fault).
    Protocol(String),
    /// A local file could not be read or written.
    /// Exit 8, or 0 when the file is stdout and its reader went away (a closed pipe).
    Io {
        /// The file, or a name for the stream (`stdout`, `stdin`).
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A run stopped at a question nobody here can answer: a workflow's interrupt or a
    /// chatflow's question in a pipeline (exit 7). The message says what it asked and how
    /// to answer; the tool has already written its `interrupt` record.
    Waiting(String),
    /// Ctrl-C (exit 130).
    Interrupted,
    /// What we were doing when `source` happened, e.g. "creating a conversation".
    /// The exit code is `source`'s.
    Context {
        /// What we were doing, in words: shown before the cause.
        what: String,
        /// The failure itself.
        source: Box<Error>,
    },
    /// Any failure, plus advice for the user (e.g. "try --region cn"). The exit code is
    /// `source`'s.
    Hint {
        /// The failure itself.
        source: Box<Error>,
        /// The advice, shown in parentheses after the failure.
        hint: String,
    },
}

/// The `Result` of every fallible coze-core function: the error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A usage error (exit 2): `msg` is the whole message, flag and all.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// A bad stdin line (exit 3), shown as `stdin line N: msg`.
    pub fn input(line: u64, msg: impl Into<String>) -> Self {
        Error::BadInput {
            line: Some(line),
            message: msg.into(),
        }
    }

    /// A local I/O failure on `path` (exit 8; 0 for a closed pipe), shown as
    /// `path: what the system said`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps with what we were doing; `Display` shows `what: cause`.
    pub fn context(self, what: impl Into<String>) -> Self {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// Adds advice for the user; `Display` shows `cause (hint)`.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        Error::Hint {
            source: Box::new(self),
            hint: hint.into(),
        }
    }

    /// The innermost error, past context and hints.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } | Error::Hint { source, .. } => source.root(),
            other => other,
        }
    }

    /// The server's answer, if this failure is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self.root() {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The server's answer behind this failure: [`api`](Self::api)'s, or the one that
    /// kept a cut stream's chat from being followed (which leaves the exit code a
    /// network failure's). For reports that carry the server's code.
    pub fn server_answer(&self) -> Option<&ApiError> {
        match self.root() {
            Error::Cut {
                recovery: Some(r), ..
            } => r.server_answer(),
            _ => self.api(),
        }
    }

    /// The logid that names this failure to the server's operators: the server
    /// answer's, else a cut stream's.
    pub fn logid(&self) -> Option<&str> {
        match (self.server_answer(), self.root()) {
            (Some(a), _) => a.logid.as_deref(),
            (None, Error::Cut { logid, .. }) => logid.as_deref(),
            _ => None,
        }
    }

    /// A write to stdout failed because its reader went away: a normal ending.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self.root(), Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The exit-code table (the [`exit`] codes; the README's "Exit codes"), in one match.
    pub fn exit_code(&self) -> u8 {
        match self.root() {
            Error::Usage(_) => exit::USAGE,
            Error::BadInput { .. } | Error::BadFile { .. } => exit::BAD_INPUT,
            Error::Auth(_) | Error::RefreshRefused(_) => exit::AUTH,
            Error::Network(_) | Error::Tls(_) | Error::Cut { .. } => exit::NETWORK,
            Error::Protocol(_) => exit::API,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Waiting(_) => exit::WAITING,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => exit::OK,
            Error::Io { .. } => exit::LOCAL_IO,
            Error::Api(e) if e.is_auth() => exit::AUTH,
            Error::Api(e) if e.is_rate_limit() => exit::RATE_LIMIT,
            Error::Api(e) => match e.oauth_code() {
                // The grant itself was refused: only a new login helps.
                Some("internal_error") | None => exit::API,
                Some(_) => exit::AUTH,
            },
            Error::Context { .. } | Error::Hint { .. } => unreachable!("root() unwraps these"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::BadInput {
                line: Some(n),
                message,
            } => write!(f, "stdin line {n}: {message}"),
            Error::BadInput {
                line: None,
                message,
            } => write!(f, "stdin: {message}"),
            Error::Api(e) => write!(f, "{e}"),
            Error::Auth(m)
            | Error::RefreshRefused(m)
            | Error::Network(m)
            | Error::Tls(m)
            | Error::Waiting(m)
            | Error::Protocol(m) => {
                write!(f, "{m}")
            }
            Error::Cut {
                msg,
                logid,
                recovery,
            } => {
                write!(f, "{msg}")?;
                if let Some(logid) = logid {
                    write!(f, " (logid {logid})")?;
                }
                if let Some(r) = recovery {
                    write!(f, "; following the chat by polling failed: {r}")?;
                }
                Ok(())
            }
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::BadFile { path, message } => write!(f, "{path}: {message}"),
            Error::Interrupted => write!(f, "interrupted"),
            Error::Context { what, source } => write!(f, "{what}: {source}"),
            Error::Hint { source, hint } => write!(f, "{source} ({hint})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Context { source, .. } | Error::Hint { source, .. } => Some(source.as_ref()),
            Error::Cut {
                recovery: Some(r), ..
            } => Some(r.as_ref()),
            _ => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_exits_7_and_is_in_the_help_table() {
        let e = Error::Waiting("the workflow asks: which city?".into()).context("run r1");
        assert_eq!(e.exit_code(), 7);
        assert_eq!(e.to_string(), "run r1: the workflow asks: which city?");
        assert!(EXIT_CODES_HELP.contains("\n    7    waiting for an answer"));
    }

    fn api(status: u16, code: ApiCode) -> Error {
        Error::Api(ApiError {
            status,
            code,
            msg: "m".into(),
            logid: Some("L1".into()),
            retry_after: None,
            debug_url: None,
        })
    }

    #[test]
    fn exit_codes_follow_the_table() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::input(3, "x").exit_code(), 3);
        assert_eq!(Error::Auth("x".into()).exit_code(), 4);
        assert_eq!(Error::RefreshRefused("x".into()).exit_code(), 4);
        assert_eq!(Error::Network("x".into()).exit_code(), 5);
        assert_eq!(Error::Protocol("x".into()).exit_code(), 1);
        assert_eq!(Error::Interrupted.exit_code(), 130);
        assert_eq!(api(200, ApiCode::Coze(4000)).exit_code(), 1);
        assert_eq!(api(401, ApiCode::Coze(4100)).exit_code(), 4);
        assert_eq!(api(200, ApiCode::Coze(700_012_006)).exit_code(), 4);
        assert_eq!(Error::Tls("x".into()).exit_code(), 5);
        let missing = Error::Api(ApiError {
            status: 401,
            code: ApiCode::Coze(401),
            msg: "missing session_key in cookie".into(),
            logid: None,
            retry_after: None,
            debug_url: None,
        });
        assert_eq!(missing.exit_code(), 1, "an endpoint the server lacks");
        assert_eq!(api(200, ApiCode::Coze(4101)).exit_code(), 4);
        assert_eq!(api(429, ApiCode::Http).exit_code(), 6);
        assert_eq!(api(200, ApiCode::Coze(4013)).exit_code(), 6);
        assert_eq!(api(200, ApiCode::Coze(4020)).exit_code(), 6);
        assert_eq!(api(500, ApiCode::Http).exit_code(), 1);
        assert_eq!(
            api(400, ApiCode::OAuth("invalid_request".into())).exit_code(),
            4
        );
        assert_eq!(
            api(500, ApiCode::OAuth("internal_error".into())).exit_code(),
            1
        );
        let pipe = Error::io("stdout", io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(pipe.context("writing").exit_code(), 0);
    }

    #[test]
    fn display_is_one_line_with_context_logid_and_hint() {
        let e = api(401, ApiCode::Coze(4100))
            .context("creating a conversation")
            .with_hint("try --region cn");
        assert_eq!(
            e.to_string(),
            "creating a conversation: code 4100: m (logid L1) (try --region cn)"
        );
        assert_eq!(e.exit_code(), 4);
        let o = Error::Api(ApiError {
            status: 400,
            code: ApiCode::OAuth("invalid_request".into()),
            msg: String::new(),
            logid: None,
            retry_after: None,
            debug_url: None,
        });
        assert_eq!(o.to_string(), "invalid_request");
        assert_eq!(
            Error::input(7, "expected a JSON object").to_string(),
            "stdin line 7: expected a JSON object"
        );
    }

    /// A cut stream is a network failure whatever stopped its recovery, and reports
    /// the server's code and logid when the server had a say.
    #[test]
    fn a_cut_stream_keeps_exit_5_and_names_the_server_answer() {
        let cut = |recovery: Option<Error>| Error::Cut {
            msg: "the answer stream was cut".into(),
            logid: Some("S".into()),
            recovery: recovery.map(Box::new),
        };
        let alone = cut(None);
        assert_eq!(alone.exit_code(), 5);
        assert_eq!(alone.to_string(), "the answer stream was cut (logid S)");
        assert_eq!((alone.server_answer(), alone.logid()), (None, Some("S")));
        let refused = cut(Some(api(200, ApiCode::Coze(4200)))).context("prompt on line 1");
        assert_eq!(refused.exit_code(), 5);
        assert_eq!(
            refused.to_string(),
            "prompt on line 1: the answer stream was cut (logid S); \
             following the chat by polling failed: code 4200: m (logid L1)"
        );
        assert_eq!(
            refused.server_answer().and_then(ApiError::coze_code),
            Some(4200)
        );
        assert_eq!(
            refused.logid(),
            Some("L1"),
            "the logid of the answer with the code"
        );
        assert!(refused.api().is_none(), "the exit code is not the API's");
        let unreachable = cut(Some(Error::Network("connection refused".into())));
        assert_eq!(
            (unreachable.exit_code(), unreachable.logid()),
            (5, Some("S"))
        );
        assert_eq!(api(200, ApiCode::Coze(4000)).logid(), Some("L1"));
    }
}
