//! The command line, read the one way every coze tool reads it: lexopt underneath,
//! `-h`/`--help` and `-V`/`--version` answered wherever they stand, each flag matched
//! by the name the person typed and named once in the parser (the value readers know
//! which flag they read for, so an error says `--jobs: expected a whole number, got
//! "x"` without the parser spelling `--jobs` again), and a usage error (exit 2) for
//! anything nobody took.

use std::ffi::OsString;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::Parsed;
use crate::error::{Error, Result};

/// One argument, as the parser's `take` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A flag as typed, without its value: `--bot`, `-o` (`--bot=X` gives `--bot`).
    Flag(String),
    /// A positional argument (a subcommand, a PROMPT, an id).
    Value(OsString),
}

impl Arg {
    /// The usage error for an argument nobody took.
    pub fn unexpected(&self) -> Error {
        match self {
            Arg::Flag(f) => Error::usage(format!("invalid option '{f}'")),
            Arg::Value(v) => Error::usage(format!("unexpected argument {:?}", v.to_string_lossy())),
        }
    }
}

/// The arguments being read, and the flag whose value is read next.
pub struct Args {
    parser: lexopt::Parser,
    flag: String,
}

/// Reads every argument of `args` (without the program's name). Help and version come
/// back as soon as they are seen, before anything later can fail; every other argument
/// goes to `take`, which returns false for one it does not know (a usage error naming
/// it). `Parsed::Run(())` means all were taken: the parser then checks how they go
/// together and builds its flags (see [`Parsed::then`]).
pub fn read(
    args: impl IntoIterator<Item = OsString>,
    mut take: impl FnMut(&mut Args, &Arg) -> Result<bool>,
) -> Result<Parsed<()>> {
    let mut a = Args {
        parser: lexopt::Parser::from_args(args),
        flag: String::new(),
    };
    while let Some(arg) = a.parser.next().map_err(usage)? {
        let arg = match arg {
            lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => return Ok(Parsed::Help),
            lexopt::Arg::Short('V') | lexopt::Arg::Long("version") => return Ok(Parsed::Version),
            lexopt::Arg::Short(c) => Arg::Flag(format!("-{c}")),
            lexopt::Arg::Long(l) => Arg::Flag(format!("--{l}")),
            lexopt::Arg::Value(v) => Arg::Value(v),
        };
        a.flag = match &arg {
            Arg::Flag(f) => f.clone(),
            Arg::Value(_) => String::new(),
        };
        if !take(&mut a, &arg)? {
            return Err(arg.unexpected());
        }
    }
    Ok(Parsed::Run(()))
}

/// `s` as bytes (see [`Args::bytes`]); None for anything else, 0 and overflow included.
fn byte_count(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()?.to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => n.checked_mul(1 << shift),
        _ => None,
    }
}

/// A lexopt error as a usage error (exit 2, not the 1 lexopt would give).
fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}

impl Args {
    /// The flag being read, as typed (`--jobs`, `-j`).
    pub fn flag(&self) -> &str {
        &self.flag
    }

    /// A usage error about the flag being read: `--flag: message`.
    pub fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::usage(format!("{}: {message}", self.flag))
    }

    /// The flag's value as given (a path may be any bytes); a missing one is a usage
    /// error.
    pub fn os(&mut self) -> Result<OsString> {
        self.parser.value().map_err(usage)
    }

    /// The flag's value as a path.
    pub fn path(&mut self) -> Result<PathBuf> {
        self.os().map(PathBuf::from)
    }

    /// The flag's value as UTF-8.
    pub fn string(&mut self) -> Result<String> {
        let value = self.os()?;
        self.utf8(value)
    }

    /// `value` as UTF-8, or a usage error naming the flag (or `what`, for a positional
    /// argument: see [`Args::positional`]).
    fn utf8(&self, value: OsString) -> Result<String> {
        value
            .into_string()
            .map_err(|v| self.error(format!("not valid UTF-8: {v:?}")))
    }

    /// A positional argument as UTF-8; an error names it as `what` (`PROMPT`).
    pub fn positional(&mut self, what: &str, value: &OsString) -> Result<String> {
        self.flag = what.to_owned();
        self.utf8(value.clone())
    }

    /// The flag's value, with something in it besides spaces.
    pub fn nonempty(&mut self) -> Result<String> {
        let s = self.string()?;
        self.require_text(s)
    }

    /// A positional argument with something in it besides spaces; an error names it as
    /// `what`.
    pub fn nonempty_positional(&mut self, what: &str, value: &OsString) -> Result<String> {
        let s = self.positional(what, value)?;
        self.require_text(s)
    }

    fn require_text(&self, s: String) -> Result<String> {
        if s.trim().is_empty() {
            return Err(self.error("must not be empty"));
        }
        Ok(s)
    }

    /// The flag's value as a positive number of bytes: digits, with an optional `K`,
    /// `M` or `G` suffix (KiB, MiB, GiB; either case).
    pub fn bytes(&mut self) -> Result<u64> {
        let s = self.string()?;
        byte_count(&s).ok_or_else(|| {
            self.error(format!(
                "expected a number of bytes such as 65536, 512K or 64M, got {s:?}"
            ))
        })
    }

    /// The flag's value as the longest input line taken (`--max-line-bytes`): a
    /// [`bytes`](Self::bytes) count as a `usize` (a line is held in memory); a count
    /// this machine cannot address is refused in the same words.
    pub fn line_bytes(&mut self) -> Result<usize> {
        let n = self.bytes()?;
        usize::try_from(n).map_err(|_| {
            self.error(format!(
                "expected a number of bytes such as 65536, 512K or 64M, got \"{n}\""
            ))
        })
    }

    /// The flag's value as `KEY=VALUE` (`--var`, `--meta`); the value may hold `=`.
    pub fn key_value(&mut self) -> Result<(String, String)> {
        let s = self.string()?;
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(self.error(format!("expected KEY=VALUE, got {s:?}"))),
        }
    }

    /// The flag's value as one of a workflow's parameters (`--param`): `KEY=VALUE`
    /// gives the string VALUE, `KEY:=JSON` the JSON value (a number, an object…), as
    /// httpie reads them. The key ends at the first `=` (or the `:=` it is part of).
    pub fn param(&mut self) -> Result<(String, serde_json::Value)> {
        let s = self.string()?;
        crate::protocol::params::param(&s).map_err(|m| self.error(m))
    }

    /// The flag's value as a number of seconds (fractions allowed: `0.5`).
    pub fn seconds(&mut self) -> Result<Duration> {
        let s = self.string()?;
        match s.parse::<f64>() {
            Ok(v) if (0.0..1e9).contains(&v) => Ok(Duration::from_secs_f64(v)),
            _ => Err(self.error(format!("expected a number of seconds, got {s:?}"))),
        }
    }

    /// The flag's value as a number (`--jobs 4`, `--rate 2.5`).
    pub fn number<T: FromStr>(&mut self) -> Result<T> {
        let s = self.string()?;
        s.parse::<T>()
            .map_err(|_| self.error(format!("expected a whole number, got {s:?}")))
    }

    /// The flag's value as a number of jobs in flight at once (`--jobs`): 1 to `max`.
    pub fn jobs(&mut self, max: usize) -> Result<usize> {
        let n: usize = self.number()?;
        if !(1..=max).contains(&n) {
            return Err(self.error(format!("expected 1 to {max}")));
        }
        Ok(n)
    }

    /// The flag's value as requests per second (`--rate`): a positive number.
    pub fn rate(&mut self) -> Result<f64> {
        let r: f64 = self.number()?;
        if !(r.is_finite() && r > 0.0) {
            return Err(self.error("expected a positive number of requests per second"));
        }
        Ok(r)
    }

    /// The flag's value as one of `choices` (`("text", Mode::Text)`), compared without
    /// regard to case; an error lists them.
    pub fn choice<T: Copy>(&mut self, choices: &[(&str, T)]) -> Result<T> {
        let s = self.string()?;
        if let Some((_, v)) = choices.iter().find(|(c, _)| c.eq_ignore_ascii_case(&s)) {
            return Ok(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
        let expected = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(self.error(format!("expected {expected}, got {s:?}")))
    }

    /// The flag's value when it is attached (`--save=PATH`) or the next argument does
    /// not look like a flag; None otherwise.
    pub fn optional_string(&mut self) -> Result<Option<String>> {
        match self.parser.optional_value() {
            Some(v) => self.utf8(v).map(Some),
            None => Ok(None),
        }
    }

    /// Every argument left, as given, none of them read as a flag (`exec -- COMMAND`):
    /// a leading `--` is dropped.
    pub fn rest(&mut self) -> Result<Vec<OsString>> {
        let mut rest: Vec<OsString> = self.parser.raw_args().map_err(usage)?.collect();
        if rest.first().is_some_and(|a| a == "--") {
            rest.remove(0);
        }
        Ok(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `args`, handing each flag to `f` with the Args.
    fn with(
        args: &[&str],
        mut f: impl FnMut(&mut Args, &Arg) -> Result<bool>,
    ) -> Result<Parsed<()>> {
        read(args.iter().map(OsString::from), |a, arg| f(a, arg))
    }

    fn one<T>(args: &[&str], mut f: impl FnMut(&mut Args) -> Result<T>) -> Result<T> {
        let mut out = None;
        with(args, |a, _| {
            out = Some(f(a)?);
            Ok(true)
        })?;
        Ok(out.unwrap())
    }

    #[test]
    fn params_are_strings_or_json() {
        let p = |v: &str| one(&["--param", v], Args::param);
        assert_eq!(p("city=上海").unwrap(), ("city".into(), "上海".into()));
        assert_eq!(p("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert_eq!(p("n:=3").unwrap(), ("n".into(), 3.into()));
        assert_eq!(
            p(r#"o:={"a":[1]}"#).unwrap(),
            ("o".into(), serde_json::json!({"a":[1]}))
        );
        assert_eq!(p("t:x=1").unwrap(), ("t:x".into(), "1".into()));
        assert_eq!(p("e=").unwrap(), ("e".into(), "".into()));
        for bad in ["novalue", "=x", ":=1", "n:=nope"] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.to_string().starts_with("--param: "), "{e}");
        }
    }

    #[test]
    fn byte_counts_take_k_m_g_suffixes() {
        assert_eq!(one(&["--max-bytes", "65536"], Args::bytes).unwrap(), 65536);
        assert_eq!(
            one(&["--max-bytes", "200M"], Args::bytes).unwrap(),
            200 << 20
        );
        assert_eq!(one(&["--max-bytes", "1g"], Args::bytes).unwrap(), 1 << 30);
        assert_eq!(one(&["--max-bytes", "3k"], Args::bytes).unwrap(), 3072);
        assert_eq!(
            one(&["--max-line-bytes", "64m"], Args::line_bytes).unwrap(),
            64 << 20
        );
        for bad in [
            "0",
            "",
            "M",
            "1.5M",
            "-1",
            "12X",
            "99999999999999999999G",
            "+1",
        ] {
            let e = one(&["--max-bytes", bad], Args::bytes).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("--max-bytes: expected a number of bytes"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn value_readers_name_the_flag_as_typed() {
        assert_eq!(
            one(&["--var", "a=b=c"], Args::key_value).unwrap(),
            ("a".into(), "b=c".into())
        );
        let e = one(&["--var", "=x"], Args::key_value).unwrap_err();
        assert_eq!(e.to_string(), "--var: expected KEY=VALUE, got \"=x\"");
        assert_eq!(e.exit_code(), 2);
        let e = one(&["-j", "x"], Args::number::<u32>).unwrap_err();
        assert_eq!(e.to_string(), "-j: expected a whole number, got \"x\"");
        assert_eq!(one(&["--jobs", "8"], |a| a.jobs(64)).unwrap(), 8);
        for bad in ["0", "65"] {
            let e = one(&["--jobs", bad], |a| a.jobs(64)).unwrap_err();
            assert_eq!(e.to_string(), "--jobs: expected 1 to 64");
        }
        assert_eq!(
            one(&["--timeout=1.5"], Args::seconds).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(one(&["--timeout", "-1"], Args::seconds).is_err());
        let e = one(&["--name", " "], Args::nonempty).unwrap_err();
        assert_eq!(e.to_string(), "--name: must not be empty");
        let e = one(&["--bot"], Args::string).unwrap_err();
        assert!(e.to_string().contains("--bot"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn choices_ignore_case_and_are_listed() {
        let modes = [("events", 1), ("text", 2), ("answers", 3)];
        assert_eq!(one(&["-o", "TEXT"], |a| a.choice(&modes)).unwrap(), 2);
        let e = one(&["-o", "xml"], |a| a.choice(&modes)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "-o: expected events, text or answers, got \"xml\""
        );
    }

    #[test]
    fn help_and_version_win_where_they_stand() {
        let taken = |_: &mut Args, _: &Arg| Ok(true);
        assert!(matches!(
            with(&["x", "-h", "--bogus"], taken),
            Ok(Parsed::Help)
        ));
        assert!(matches!(with(&["--version"], taken), Ok(Parsed::Version)));
        // An error before them still counts.
        let refuse = |_: &mut Args, _: &Arg| Ok(false);
        assert!(with(&["--bogus", "--help"], refuse).is_err());
        assert!(matches!(with(&[], refuse), Ok(Parsed::Run(()))));
    }

    #[test]
    fn what_nobody_takes_is_named() {
        let refuse = |_: &mut Args, _: &Arg| Ok(false);
        let e = with(&["--bogus=1"], refuse).unwrap_err();
        assert_eq!(e.to_string(), "invalid option '--bogus'");
        let e = with(&["-x"], refuse).unwrap_err();
        assert_eq!(e.to_string(), "invalid option '-x'");
        let e = with(&["extra"], refuse).unwrap_err();
        assert_eq!(e.to_string(), "unexpected argument \"extra\"");
        // A value given to a flag that takes none.
        let flag = |_: &mut Args, _: &Arg| Ok(true);
        assert!(with(&["--keep-going=yes"], flag).is_err());
    }

    #[test]
    fn optional_values_and_the_rest() {
        assert_eq!(
            one(&["--save=p"], Args::optional_string).unwrap(),
            Some("p".into())
        );
        assert_eq!(one(&["--save"], Args::optional_string).unwrap(), None);
        let mut rest = Vec::new();
        with(&["exec", "--", "env", "-i"], |a, arg| {
            if *arg == Arg::Value("exec".into()) {
                rest = a.rest()?;
            }
            Ok(true)
        })
        .unwrap();
        assert_eq!(rest, ["env", "-i"]);
    }
}
