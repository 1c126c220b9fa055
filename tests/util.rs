//! The harness: a sandbox directory per test, an in-process coze-fake, and commands
//! with a cleared environment and a deadline. A failure prints the command, its status,
//! stdout and stderr.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use coze_fake::{Dialect, Fake, Options};

/// The personal access token of a Studio sandbox (Studio's shape: `pat_` + 64 hex).
pub const STUDIO_PAT: &str = "pat_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Runs each named test function (`fn NAME(dialect: Dialect)`) against both servers
/// the tools speak to: `NAME::coze` and `NAME::studio` (a self-hosted Coze Studio).
#[macro_export]
macro_rules! both_dialects {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn coze() {
                    super::$name($crate::util::Dialect::Coze)
                }
                #[test]
                fn studio() {
                    super::$name($crate::util::Dialect::Studio)
                }
            }
        )+
    };
}

/// Path of one of the root package's binaries.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "coze-auth" => PathBuf::from(env!("CARGO_BIN_EXE_coze-auth")),
        "coze-token" => PathBuf::from(env!("CARGO_BIN_EXE_coze-token")),
        "coze-conv" => PathBuf::from(env!("CARGO_BIN_EXE_coze-conv")),
        "coze-chat" => PathBuf::from(env!("CARGO_BIN_EXE_coze-chat")),
        "coze-file" => PathBuf::from(env!("CARGO_BIN_EXE_coze-file")),
        "coze-workflow" => PathBuf::from(env!("CARGO_BIN_EXE_coze-workflow")),
        "coze-bot" => PathBuf::from(env!("CARGO_BIN_EXE_coze-bot")),
        // Any other program (sh, curl) from PATH, with the same sandboxed environment.
        other => PathBuf::from(other),
    }
}

/// A directory of its own and a fake of its own, for one test.
pub struct Sandbox {
    pub dir: PathBuf,
    pub fake: Fake,
    /// The server the fake imitates.
    pub dialect: Dialect,
    /// Studio's credentials: the tools get it as `COZE_API_TOKEN` (Studio has no OAuth).
    pub pat: Option<String>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        Sandbox::with_options(name, Options::default())
    }

    pub fn with_options(name: &str, options: Options) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let dialect = options.dialect;
        let pat = (dialect == Dialect::Studio).then(|| STUDIO_PAT.to_owned());
        let mut options = options;
        options.static_tokens.extend(pat.clone());
        let fake = Fake::start(options).expect("coze-fake starts");
        Sandbox {
            dir,
            fake,
            dialect,
            pat,
        }
    }

    /// A sandbox whose fake speaks `dialect`, ready for API calls: logged in (coze), or
    /// holding a PAT (Studio, which has no OAuth).
    pub fn ready(name: &str, dialect: Dialect, options: Options) -> Sandbox {
        let sb = Sandbox::with_options(name, Options { dialect, ..options });
        if dialect == Dialect::Coze {
            sb.login();
        }
        sb
    }

    /// Whether the fake imitates a self-hosted Coze Studio.
    pub fn studio(&self) -> bool {
        self.dialect == Dialect::Studio
    }

    pub fn base_url(&self) -> String {
        self.fake.base_url()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The default token file of the sandbox's environment.
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("config/coze/token.json")
    }

    /// A command for `tool` with only what it needs in its environment.
    pub fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(bin(tool));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("COZE_API_BASE", self.base_url())
            .current_dir(&self.dir);
        if let Some(pat) = &self.pat {
            c.env("COZE_API_TOKEN", pat);
        }
        c
    }

    /// GET a /_fake/ admin path as JSON.
    pub fn admin_get(&self, path: &str) -> Value {
        http_json("GET", &format!("{}{path}", self.base_url()), None)
    }

    /// POST JSON to a /_fake/ admin path.
    pub fn admin_post(&self, path: &str, body: &Value) -> Value {
        http_json("POST", &format!("{}{path}", self.base_url()), Some(body))
    }

    pub fn stats(&self) -> Value {
        self.fake.stats()
    }

    /// What the fake holds of the uploaded files (`/_fake/files`), in upload order.
    pub fn uploaded(&self) -> Vec<Value> {
        self.fake.files()["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Gets an authorization code from the fake the way a browser would: the authorize
    /// URL, then Approve on the consent page (or the auto-approve redirect). Returns the
    /// `authorization_code` record coze-auth would print.
    pub fn authorization_code(&self, client_id: &str) -> Value {
        let verifier =
            "v0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~".to_owned();
        let challenge = coze_core::auth::pkce::challenge_s256(&verifier);
        let redirect = "http://127.0.0.1:9/callback";
        let url = format!(
            "{}/api/permission/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&state=st&code_challenge={challenge}&code_challenge_method=S256",
            self.base_url(),
            coze_core::support::url::encode(redirect)
        );
        let r = http_request("GET", &url, None, &[]);
        let mut location = r
            .header("location")
            .unwrap_or_else(|| panic!("authorize: no redirect: {}", r.body))
            .to_owned();
        if location.contains("/oauth/consent") {
            let key = location
                .split("authorize_key=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_owned();
            let r = http_request(
                "POST",
                &format!("{}/oauth/consent", self.base_url()),
                Some(format!("authorize_key={key}&decision=approve")),
                &[("Content-Type", "application/x-www-form-urlencoded")],
            );
            location = r.header("location").expect("consent redirects").to_owned();
        }
        let query = location.split_once('?').unwrap().1;
        let code = coze_core::support::url::parse_query(query)
            .into_iter()
            .find(|(k, _)| k == "code")
            .expect("code")
            .1;
        serde_json::json!({
            "type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": redirect, "client_id": client_id, "base_url": self.base_url(),
        })
    }

    /// Logs in through coze-token and saves the token file at the default path.
    pub fn login(&self) -> Value {
        let grant = self.authorization_code("42.app.coze");
        run(self.cmd("coze-token").arg("--save"), &format!("{grant}\n")).ok();
        read_token(&self.token_path())
    }
}

/// A sandbox with a saved login (the default token file).
pub fn logged_in(name: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.login();
    sb
}

/// [`logged_in`] for coze; for Studio a fake of its dialect and its PAT.
pub fn logged_in_as(name: &str, dialect: Dialect) -> Sandbox {
    Sandbox::ready(name, dialect, Options::default())
}

/// A counter of the fake: `path` like "/chats" or "/requests/chat" (absent is 0).
pub fn stat(sb: &Sandbox, path: &str) -> u64 {
    sb.stats()
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// An API call with the sandbox's saved access token over the harness's own HTTP; the
/// envelope must say success.
pub fn api(sb: &Sandbox, method: &str, path: &str, body: Option<Value>) -> Value {
    let token = match &sb.pat {
        Some(pat) => pat.clone(),
        None => read_token(&sb.token_path())["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let bearer = format!("Bearer {token}");
    let r = http_request(
        method,
        &format!("{}{path}", sb.base_url()),
        body.map(|b| b.to_string()),
        &[("Authorization", &bearer)],
    );
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.body));
    assert_eq!(
        (r.status, &v["code"]),
        (200, &serde_json::json!(0)),
        "{method} {path}: {v}"
    );
    v
}

/// Starts `n` copies of `coze-token print` at once and waits for them all: the
/// single-flight renewal tests.
pub fn print_tokens_at_once(sb: &Sandbox, n: usize) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            sb.cmd("coze-token")
                .arg("print")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| wait_with_deadline(c, Duration::from_secs(60), "coze-token print"))
        .collect()
}

/// The token record in a token file.
pub fn read_token(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text:?}", path.display()))
}

/// Rewrites a token file's `expires_at` (our record only; the fake keeps its own expiry).
pub fn set_expires_at(path: &Path, expires_at: i64) {
    let mut t = read_token(path);
    t["expires_at"] = expires_at.into();
    std::fs::write(path, format!("{t}\n")).unwrap();
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A tiny HTTP/1.1 client for admin calls, so the tests do not share code with the tools.
pub fn http_json(method: &str, url: &str, body: Option<&Value>) -> Value {
    let (status, text) = http_raw(method, url, body.map(|b| b.to_string()), &[]);
    assert!(status < 400, "{method} {url}: HTTP {status}: {text}");
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Sends one request with `Connection: close` and returns status and body text.
pub fn http_raw(
    method: &str,
    url: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let r = http_request(method, url, body, headers);
    (r.status, r.body)
}

/// A raw response: status, header lines (lower-cased names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 client (one request, `Connection: close`), so the tests share no
/// HTTP code with the tools they test.
pub fn http_request(
    method: &str,
    url: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Reply {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// What a finished command did.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with everything a reader needs unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit status\n{}",
            self.describe()
        );
        self
    }

    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }

    /// stdout as JSON lines.
    pub fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("stdout line {l:?} is not JSON: {e}\n{}", self.describe())
                })
            })
            .collect()
    }
}

/// Runs `cmd` with `stdin` as input, killing it after `deadline`.
pub fn run(cmd: &mut Command, stdin: &str) -> Run {
    run_deadline(cmd, stdin, Duration::from_secs(60))
}

pub fn run_deadline(cmd: &mut Command, stdin: &str, deadline: Duration) -> Run {
    run_bytes_deadline(cmd, stdin.as_bytes(), deadline)
}

/// Runs `cmd` with `stdin` as input, bytes that need not be UTF-8.
pub fn run_bytes(cmd: &mut Command, stdin: &[u8]) -> Run {
    run_bytes_deadline(cmd, stdin, Duration::from_secs(60))
}

fn run_bytes_deadline(cmd: &mut Command, stdin: &[u8], deadline: Duration) -> Run {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let input = stdin.to_owned();
    let mut sin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let output = wait_with_deadline(child, deadline, &what);
    let _ = writer.join();
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        what,
    }
}

/// Waits for `child`, killing it (and failing the test) past `deadline`.
pub fn wait_with_deadline(mut child: Child, deadline: Duration, what: &str) -> Output {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("{what} ran past its {deadline:?} deadline ({status:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Writes an executable script.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A loopback TCP port that refuses connections and stays so for the whole test run:
/// a socket bound to it and never listening, kept open. Binding a port and dropping the
/// listener (the usual trick) frees it for any other test's fake, which may then answer
/// where a refusal was expected. std has no bind without listen, hence libc.
pub fn refusing_port() -> u16 {
    use std::sync::OnceLock;
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        #[repr(C)]
        struct SockaddrIn {
            family: u16,
            port: u16,
            addr: u32,
            zero: [u8; 8],
        }
        extern "C" {
            fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
            fn bind(fd: i32, addr: *const SockaddrIn, len: u32) -> i32;
            fn getsockname(fd: i32, addr: *mut SockaddrIn, len: *mut u32) -> i32;
        }
        const AF_INET: i32 = 2;
        const SOCK_STREAM: i32 = 1;
        // Not inherited by the tools the tests start (they count their descriptors).
        const SOCK_CLOEXEC: i32 = 0o2000000;
        let mut addr = SockaddrIn {
            family: AF_INET as u16,
            port: 0,
            addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            zero: [0; 8],
        };
        let mut len = std::mem::size_of::<SockaddrIn>() as u32;
        // SAFETY: plain libc calls on a fresh descriptor with a properly sized, live
        // sockaddr_in; the descriptor is never closed (the port stays reserved).
        unsafe {
            let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let r = bind(fd, &addr, len);
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let r = getsockname(fd, &mut addr, &mut len);
            assert_eq!(r, 0, "getsockname: {}", std::io::Error::last_os_error());
        }
        u16::from_be(addr.port)
    })
}

/// The SHA-256 of `bytes` in lowercase hex, as `/_fake/files` reports an upload's.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`sha256_hex`] of a file, read as it streams (a 200 MB file is not held).
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of a JSON object in the order the record has them (serde_json keeps
/// insertion order here), for tests that pin a record's exact shape.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Sends `signal` (a name like "INT" or "TERM") to process `pid` through kill(1), the
/// way a shell or a terminal's Ctrl-C would reach it.
pub fn send_signal(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{signal} {pid}: {st:?}");
}

/// [`send_signal`] with SIGINT: Ctrl-C.
pub fn sigint(pid: u32) {
    send_signal(pid, "INT")
}
