//! coze-file's command line: parsed into a plain struct, nothing resolved yet (the
//! files are checked, and credentials found, by `main`).

use std::ffi::OsString;

use coze_core::cli::args::{self, Arg};
use coze_core::cli::flags::ApiFlags;
use coze_core::cli::Parsed;
use coze_core::{Error, Result};

pub const HELP: &str = r#"coze-file: upload files to Coze and look them up, as JSON lines

USAGE:
    coze-file upload PATH... [--name NAME] [--max-bytes N] [--jobs N] [--rate R]
    coze-file get FILE_ID...

upload sends each file (`-`: stdin) to the API's file store, streamed from disk (the
whole file is never in memory), and writes one `file` record per file on stdout, each
flushed the moment the server has answered. get writes the same record for files
uploaded earlier. A file id goes into a chat message that refers to the file.

Each file is checked before any byte of it is sent: it exists, is a regular file (not
a directory or FIFO), is readable, is not empty and is within --max-bytes. A file that
fails a check is one line on stderr naming it (exit 3); the other files are still
uploaded, and the exit status is that of the first file that failed. A transient
failure (network, 429, 5xx, a connection cut mid-upload) sends the whole file again;
a file still not uploaded after the retries is named on stderr (exit 5) and gets no
record: nothing half-uploaded is ever reported as uploaded.

On a terminal, an upload over 4 MiB shows a progress line on stderr (bytes sent, rate,
time left), cleared when it ends; never when stderr is a pipe or a file.

RECORDS:
    {"type":"file","file_id":…,"file_name":…,"bytes":…,"created_at":…,"path":…}
                           path is the PATH as given (shown lossily if it is not
                           UTF-8; `-` for stdin; absent for get); "url" is added
                           when the server gives one (a self-hosted Coze Studio)

OPTIONS:
    --name NAME            upload: the file name the server stores [default: the
                           PATH's last component]; needed for `-`; one PATH only
    --max-bytes N          upload: refuse a file over N bytes before sending any of
                           it [default: 512M, the API's limit; a self-hosted Coze
                           Studio takes 200M] (K, M and G suffixes: KiB, MiB, GiB)
    --jobs N               upload: N files in flight at once [default: 1]; records
                           come in the order the uploads end
    --rate R               at most R requests per second across all jobs (the API
                           takes 10 uploads a second on a personal plan); on 429 the
                           whole pool pauses for its Retry-After
    --summary              print the final `summary` record on stdout (by default
                           it goes to stderr when --jobs or --rate is used): files,
                           completed, failed, skipped, by_status, wall_ms, retries,
                           rate_pauses, exit_code
    -h, --help             this text
    -V, --version          version and commit

"#;

pub const EXAMPLES: &str = r#"EXAMPLES:
    coze-file upload report.pdf
    coze-file upload - --name notes.txt < notes.txt
    coze-file upload *.png | jq -r .file_id
    coze-file upload --jobs 4 --rate 8 scans/*.jpg > uploaded.jsonl
    coze-file get 7380541356124373033

"#;

/// The API's limit on one file (the Coze API docs, `upload_files`: 512 MB).
pub const DEFAULT_MAX_BYTES: u64 = coze_core::api::files::MAX_UPLOAD;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The PATHs as given (`-` is stdin), in order.
    Upload(Vec<OsString>),
    /// The file ids, in order.
    Get(Vec<String>),
}

#[derive(Debug)]
pub struct Flags {
    pub command: Command,
    /// `--name`: the stored name of the one file uploaded.
    pub name: Option<String>,
    pub max_bytes: u64,
    pub jobs: usize,
    pub summary: bool,
    pub api: ApiFlags,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed<Flags>> {
    let mut api = ApiFlags::default();
    let mut word: Option<String> = None;
    let mut values: Vec<OsString> = Vec::new();
    let mut name = None;
    let mut max_bytes = None;
    let mut jobs = 1usize;
    let mut summary = false;
    // The upload-only flags given, to refuse them with get.
    let mut upload_only: Vec<String> = Vec::new();
    let parsed = args::read(args, |a, arg| {
        let flag = match arg {
            Arg::Value(v) if word.is_none() => {
                word = Some(a.positional("subcommand", v)?);
                return Ok(true);
            }
            Arg::Value(v) => {
                values.push(v.clone());
                return Ok(true);
            }
            Arg::Flag(flag) => flag.as_str(),
        };
        if api.take(flag, a)? {
            return Ok(true);
        }
        match flag {
            "--name" => {
                let n = a.nonempty()?;
                if n.contains('/') || n.contains('\0') {
                    return Err(a.error("a file name, not a path (no '/')"));
                }
                name = Some(n);
            }
            "--max-bytes" => max_bytes = Some(a.bytes()?),
            "-j" | "--jobs" => jobs = a.jobs(64)?,
            "--rate" => {
                api.rate = Some(a.rate()?);
                return Ok(true);
            }
            "--summary" => {
                summary = true;
                return Ok(true);
            }
            _ => return Ok(false),
        }
        upload_only.push(flag.to_owned());
        Ok(true)
    })?;
    parsed.then(|| {
        let Some(word) = word else {
            return Err(Error::usage("name a subcommand: upload or get"));
        };
        let command = match word.as_str() {
            "upload" => {
                if values.is_empty() {
                    return Err(Error::usage(
                        "upload: name the files: coze-file upload PATH... (- for stdin)",
                    ));
                }
                let stdin = values.iter().filter(|v| *v == "-").count();
                if stdin > 1 {
                    return Err(Error::usage("upload: - (stdin) can be read only once"));
                }
                if name.is_some() && values.len() > 1 {
                    return Err(Error::usage(
                        "upload: --name names one file: give one PATH with it",
                    ));
                }
                if stdin == 1 && name.is_none() {
                    return Err(Error::usage(
                        "upload: - (stdin) needs --name NAME: stdin has no file name",
                    ));
                }
                Command::Upload(values)
            }
            "get" => {
                if let Some(flag) = upload_only.first() {
                    return Err(Error::usage(format!("{flag} does not go with get")));
                }
                if values.is_empty() {
                    return Err(Error::usage(
                        "get: name the files: coze-file get FILE_ID...",
                    ));
                }
                let mut ids = Vec::new();
                for v in values {
                    let id = v
                        .into_string()
                        .map_err(|v| Error::usage(format!("get: {v:?} is not a file id")))?;
                    if id.trim().is_empty() {
                        return Err(Error::usage("get: an empty FILE_ID"));
                    }
                    ids.push(id);
                }
                Command::Get(ids)
            }
            other => {
                return Err(Error::usage(format!(
                    "unknown subcommand {other:?} (expected upload or get)"
                )))
            }
        };
        Ok(Flags {
            command,
            name,
            max_bytes: max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            jobs,
            summary,
            api,
        })
    })
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

    fn usage(args: &[&str]) -> String {
        let e = parse(args.iter().map(OsString::from)).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn subcommands_and_their_flags() {
        let f = flags(&["upload", "a.png", "b c.pdf", "--jobs", "4", "--rate", "8"]);
        assert_eq!(
            f.command,
            Command::Upload(vec!["a.png".into(), "b c.pdf".into()])
        );
        assert_eq!((f.jobs, f.api.rate, f.max_bytes), (4, Some(8.0), 512 << 20));
        let f = flags(&["upload", "-", "--name", "notes.txt", "--max-bytes", "200M"]);
        assert_eq!(f.name.as_deref(), Some("notes.txt"));
        assert_eq!(f.max_bytes, 200 << 20);
        let f = flags(&["get", "1", "2", "-v"]);
        assert_eq!(f.command, Command::Get(vec!["1".into(), "2".into()]));
        assert!(f.api.verbose);
        assert_eq!(
            flags(&["upload", "--", "-odd"]).command,
            Command::Upload(vec!["-odd".into()])
        );
    }

    #[test]
    fn usage_errors() {
        assert!(usage(&[]).contains("name a subcommand"));
        assert!(usage(&["upload"]).contains("name the files"));
        assert!(usage(&["get"]).contains("FILE_ID"));
        assert!(usage(&["put", "x"]).contains("unknown subcommand"));
        assert!(usage(&["upload", "-"]).contains("needs --name"));
        assert!(usage(&["upload", "-", "-", "--name", "x"]).contains("only once"));
        assert!(usage(&["upload", "a", "b", "--name", "x"]).contains("one PATH"));
        assert!(usage(&["upload", "a", "--name", "d/x"]).contains("no '/'"));
        assert!(usage(&["upload", "a", "--max-bytes", "0"]).contains("--max-bytes"));
        assert!(usage(&["upload", "a", "--jobs", "0"]).contains("--jobs"));
        assert!(usage(&["upload", "a", "--rate", "-1"]).contains("--rate"));
        assert!(usage(&["get", "1", "--name", "x"]).contains("does not go with get"));
    }
}
