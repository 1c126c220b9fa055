//! A batch run's progress on a terminal: one line at the bottom of stderr,
//!
//! ```text
//! coze-chat: 1,234/5,000 done, 3 failed, 12 retries, 8.1/s, ETA 7m45s
//! ```
//!
//! redrawn in place as items complete (at most five times a second; once a second
//! besides, for the rate and the time left), fit to the terminal's width, and erased at
//! the end: before the summary, the error that ended the run, or the exit on Ctrl-C.
//! Lines said meanwhile (warnings, a failed item's error) go above it: it is
//! `support::say`'s status line. The counts are the batch engine's (`batch::Counts`,
//! the summary's own), the retries the HTTP client's.
//!
//! The total is known when stdin is a regular file: its non-blank lines from where the
//! reader stands, counted on a descriptor of its own with pread(2), so the reader's
//! offset is never moved (in the background when there is more than 64 MiB to read).
//! It counts lines, not items: a `conversation` or `file` line is counted too.
//!
//! Whether it is shown ([`choose`]): never when stderr is not a terminal, whatever
//! the flags say (a log or a pipe must not fill with redraws); `--no-progress` never;
//! `--progress` whenever stderr is a terminal; by default when the items are stdin's
//! lines from a file or a pipe (not typed at the terminal) and the records do not go
//! to that terminal too (they would be written across the line). A terminal without
//! cursor control (`TERM` unset or `dumb`) gets a plain line every 15 s instead of a
//! line redrawn in place.

use std::fs::File;
use std::io::{self, IsTerminal, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Scope, Thread};
use std::time::{Duration, Instant};

use crate::batch::Counts;
use crate::config::Env;
use crate::support::say;

/// `--progress`, `--no-progress`, or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Want {
    /// Neither flag: shown where it bothers nobody ([`choose`]).
    #[default]
    Auto,
    /// `--progress`: shown whenever stderr is a terminal.
    Always,
    /// `--no-progress`: never shown.
    Never,
}

/// A progress line to show ([`choose`]); `cli::batch::run` shows it.
#[derive(Debug, Clone)]
pub struct Progress {
    /// No cursor control (`TERM` unset or `dumb`): a plain line every [`PLAIN_EVERY`].
    plain: bool,
    /// `COLUMNS`, for a terminal that does not say its width.
    columns: Option<usize>,
    /// The items are stdin's lines, whose count is the total when stdin is a file.
    stdin_lines: bool,
}

/// The progress line for a run, or None when it is not shown: `want` (the flags),
/// `stdin_lines` (the items are stdin's lines, not an argument's one item),
/// `records_on_terminal` (the records are written to a terminal: stdout is one and
/// they go there). What stderr and stdin are is asked here; `TERM` and `COLUMNS` come
/// from `env`.
pub fn choose(
    want: Want,
    stdin_lines: bool,
    records_on_terminal: bool,
    env: &Env,
) -> Option<Progress> {
    let typed = io::stdin().is_terminal();
    shown(
        want,
        say::stderr_is_terminal(),
        stdin_lines && !typed,
        records_on_terminal,
    )
    .then(|| Progress {
        plain: matches!(env.term.as_deref(), None | Some("dumb")),
        columns: env
            .columns
            .as_deref()
            .and_then(|c| c.trim().parse().ok())
            .filter(|&c| c > 0),
        stdin_lines,
    })
}

/// The rule of [`choose`], on what it found.
fn shown(want: Want, stderr_tty: bool, batch_from_stdin: bool, records_on_tty: bool) -> bool {
    match want {
        _ if !stderr_tty => false,
        Want::Never => false,
        Want::Always => true,
        Want::Auto => batch_from_stdin && !records_on_tty,
    }
}

/// How often a plain line is written on a terminal without cursor control.
pub const PLAIN_EVERY: Duration = Duration::from_secs(15);
/// The quickest redraw, after an item completes.
const QUICK: Duration = Duration::from_millis(200);
/// The redraw while nothing completes: the rate and the time left move on.
const SLOW: Duration = Duration::from_secs(1);
/// Stdin files up to this much are counted before the run starts (milliseconds);
/// beyond it, meanwhile.
const COUNT_AT_ONCE: u64 = 64 << 20;
/// The total not known (yet).
const UNKNOWN: u64 = u64::MAX;

/// A progress line being shown: started before the run, ended after it (or on Ctrl-C).
pub(crate) struct Meter {
    progress: Progress,
    began: Instant,
    /// The items to run, [`UNKNOWN`] until counted.
    total: AtomicU64,
    /// Stdin's file and where its reader stands, to be counted in the background.
    pending: Mutex<Option<(File, u64)>>,
    /// The run is over: the threads stop, the line is erased.
    stop: AtomicBool,
    /// The thread that draws, woken by a completion or by [`Meter::end`].
    ticker: OnceLock<Thread>,
}

impl Meter {
    /// Starts showing `progress` for a run begun at `began`: the total counted now
    /// when it is quick, the status line opened (so a line drawn after
    /// [`end`](Self::end) can never stay).
    pub(crate) fn start(progress: Progress, began: Instant) -> Meter {
        let mut total = UNKNOWN;
        let mut pending = None;
        if progress.stdin_lines {
            if let Some((file, at, len)) = stdin_file() {
                if len.saturating_sub(at) <= COUNT_AT_ONCE {
                    total = count_lines(&file, at, &AtomicBool::new(false)).unwrap_or(UNKNOWN);
                } else {
                    pending = Some((file, at));
                }
            }
        }
        if !progress.plain {
            say::begin_status();
        }
        Meter {
            progress,
            began,
            total: AtomicU64::new(total),
            pending: Mutex::new(pending),
            stop: AtomicBool::new(false),
            ticker: OnceLock::new(),
        }
    }

    /// Starts the threads of `scope` that draw the line from `counts` and `retries`
    /// (and count a big stdin file), until [`end`](Self::end). Returns what to call
    /// when an item is counted (`Batch::on_count`): it wakes the drawing thread.
    pub(crate) fn show<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        counts: impl Fn() -> Counts + Send + 'scope,
        retries: impl Fn() -> u64 + Send + 'scope,
    ) -> impl Fn(Counts) + Send + Sync + 'static {
        let ticker = scope.spawn(move || self.tick(counts, retries));
        let thread = ticker.thread().clone();
        let _ = self.ticker.set(thread.clone());
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((file, at)) = pending {
            scope.spawn(move || {
                if let Some(n) = count_lines(&file, at, &self.stop) {
                    self.total.store(n, Ordering::SeqCst);
                    self.wake();
                }
            });
        }
        move |_| thread.unpark()
    }

    /// Ends the line: the threads stop and it is erased. Called once the run is over,
    /// and on Ctrl-C before the message that says so; a second call does nothing.
    pub(crate) fn end(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        if !self.progress.plain {
            say::end_status();
        }
    }

    fn wake(&self) {
        if let Some(t) = self.ticker.get() {
            t.unpark();
        }
    }

    /// The drawing thread: at once, then after a completion (at most every [`QUICK`]),
    /// and every [`SLOW`] besides; plain lines every [`PLAIN_EVERY`].
    fn tick(&self, counts: impl Fn() -> Counts, retries: impl Fn() -> u64) {
        // When it was last drawn, and what it showed.
        let mut last: Option<(Instant, Counts, u64)> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let c = counts();
            let total = self.total.load(Ordering::SeqCst);
            let due = match last {
                None if self.progress.plain => self.began + PLAIN_EVERY,
                None => now,
                Some((at, _, _)) if self.progress.plain => at + PLAIN_EVERY,
                Some((at, seen, seen_total)) if (seen, seen_total) != (c, total) => at + QUICK,
                Some((at, _, _)) => at + SLOW,
            };
            if now < due {
                // Woken early by a completion or the end; parked anew if neither.
                thread::park_timeout(due - now);
                continue;
            }
            let total = (total != UNKNOWN).then_some(total);
            let width = terminal_width().or(self.progress.columns).unwrap_or(80);
            let text = line(say::tool(), c, retries(), total, now - self.began, width);
            if self.progress.plain {
                say::say(&text);
            } else {
                say::set_status(&text);
            }
            last = Some((now, c, total.unwrap_or(UNKNOWN)));
        }
    }
}

/// The line: `TOOL: DONE[/TOTAL] done[, N skipped], N failed, N retries[, RATE, ETA T]`,
/// whole fields only while they fit in `width` - 1 columns (the last column would
/// wrap some terminals to a new line, which `\r` cannot erase). The rate and the time
/// left appear once an item has run; skipped items (`--resume`) count as done but not
/// in the rate.
fn line(
    tool: &str,
    c: Counts,
    retries: u64,
    total: Option<u64>,
    elapsed: Duration,
    width: usize,
) -> String {
    let reached = c.done + c.skipped;
    let mut fields = vec![match total {
        Some(t) => format!(
            "{tool}: {}/{} done",
            thousands(reached),
            thousands(t.max(reached))
        ),
        None => format!("{tool}: {} done", thousands(reached)),
    }];
    if c.skipped > 0 {
        fields.push(format!("{} skipped", thousands(c.skipped)));
    }
    fields.push(format!("{} failed", thousands(c.failed)));
    let noun = if retries == 1 { "retry" } else { "retries" };
    fields.push(format!("{} {noun}", thousands(retries)));
    let secs = elapsed.as_secs_f64();
    if c.done > 0 && secs > 0.0 {
        let per_s = c.done as f64 / secs;
        fields.push(rate(per_s));
        let left = total.map_or(0, |t| t.saturating_sub(reached));
        if left > 0 {
            fields.push(format!("ETA {}", duration(left as f64 / per_s)));
        }
    }
    fit(&fields, width.saturating_sub(1))
}

/// `fields` joined by ", ", as many whole ones as fit in `room` characters; the first
/// cut when even it does not.
fn fit(fields: &[String], room: usize) -> String {
    let mut out = String::new();
    for f in fields {
        let sep = if out.is_empty() { 0 } else { 2 };
        if out.chars().count() + sep + f.chars().count() > room {
            break;
        }
        if sep > 0 {
            out.push_str(", ");
        }
        out.push_str(f);
    }
    if out.is_empty() {
        if let Some(first) = fields.first() {
            out = first.chars().take(room).collect();
        }
    }
    out
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Items a second, in the unit that keeps the number readable: `12/s`, `8.1/s`,
/// `3.5/min` (a workflow of 20 s), `2.0/h`.
fn rate(per_s: f64) -> String {
    let (n, unit) = if per_s >= 1.0 {
        (per_s, "s")
    } else if per_s * 60.0 >= 1.0 {
        (per_s * 60.0, "min")
    } else {
        (per_s * 3600.0, "h")
    };
    if n >= 10.0 {
        format!("{n:.0}/{unit}")
    } else {
        format!("{n:.1}/{unit}")
    }
}

/// Seconds as `45s`, `7m45s`, `2h05m`, `3d04h`.
fn duration(secs: f64) -> String {
    // `as` saturates: a rate near zero gives a long time, not a panic.
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..360_000 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Stdin's regular file, where its reader stands and the file's length; None for a
/// pipe, a terminal, a device. A descriptor of its own (dup(2)): reading it with
/// pread(2) moves no offset, and closing it leaves stdin open.
fn stdin_file() -> Option<(File, u64, u64)> {
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let mut file = File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    // lseek(fd, 0, SEEK_CUR): asks, moves nothing.
    let at = file.stream_position().ok()?;
    Some((file, at, meta.len()))
}

/// The non-blank lines of `file` from `at` to its end, read with pread(2); None when
/// `stop` is set meanwhile or the file cannot be read.
fn count_lines(file: &File, mut at: u64, stop: &AtomicBool) -> Option<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut lines = Lines::default();
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match file.read_at(&mut buf, at) {
            Ok(0) => return Some(lines.total()),
            Ok(n) => {
                lines.feed(&buf[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// A count of non-blank lines over bytes fed in pieces (a blank line is no item: the
/// readers skip it), the last line counted without its newline too.
#[derive(Debug, Default)]
struct Lines {
    /// Lines ended so far that held something.
    lines: u64,
    /// The line being read holds something other than whitespace.
    filled: bool,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8]) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', bytes) {
            self.see(&bytes[start..end]);
            self.lines += u64::from(self.filled);
            self.filled = false;
            start = end + 1;
        }
        self.see(&bytes[start..]);
    }

    /// Most lines start with their text: one byte looked at.
    fn see(&mut self, part: &[u8]) {
        if !self.filled {
            self.filled = part.iter().any(|b| !b.is_ascii_whitespace());
        }
    }

    fn total(&self) -> u64 {
        self.lines + u64::from(self.filled)
    }
}

#[repr(C)]
#[derive(Default)]
struct WinSize {
    rows: u16,
    cols: u16,
    xpixel: u16,
    ypixel: u16,
}

// The request number of TIOCGWINSZ: Linux's on most machines, the BSDs' (and macOS's)
// elsewhere, where Linux on PowerPC, MIPS and SPARC also has it.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc64"
    ))
))]
const TIOCGWINSZ: std::ffi::c_ulong = 0x5413;
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc64"
    ))
)))]
const TIOCGWINSZ: std::ffi::c_ulong = 0x4008_7468;

extern "C" {
    // libc's ioctl(2); std links libc already.
    fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
}

/// The width of the terminal stderr is, asked at each draw (it may be resized); None
/// when it does not say.
fn terminal_width() -> Option<usize> {
    let mut ws = WinSize::default();
    // SAFETY: TIOCGWINSZ writes one `struct winsize` (four u16, as `WinSize`) through
    // the pointer, which is valid and exclusive for the call.
    let r = unsafe { ioctl(2, TIOCGWINSZ, &mut ws as *mut WinSize) };
    (r == 0 && ws.cols > 0).then_some(usize::from(ws.cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(done: u64, failed: u64, skipped: u64) -> Counts {
        Counts {
            done,
            failed,
            skipped,
        }
    }

    #[test]
    fn the_line_says_done_of_total_failed_retries_rate_and_time_left() {
        // 1,234 in 152 s: 8.1/s; the 3,766 left take 464 s.
        let c = counts(1234, 3, 0);
        let l = line(
            "coze-chat",
            c,
            12,
            Some(5000),
            Duration::from_secs(152),
            200,
        );
        assert_eq!(
            l,
            "coze-chat: 1,234/5,000 done, 3 failed, 12 retries, 8.1/s, ETA 7m44s"
        );
        // No total (stdin a pipe): no time left.
        let l = line("coze-chat", c, 1, None, Duration::from_secs(152), 200);
        assert_eq!(l, "coze-chat: 1,234 done, 3 failed, 1 retry, 8.1/s");
        // Nothing run yet: no rate, no time left.
        let l = line(
            "coze-workflow",
            counts(0, 0, 0),
            0,
            Some(7),
            Duration::ZERO,
            200,
        );
        assert_eq!(l, "coze-workflow: 0/7 done, 0 failed, 0 retries");
        // Skipped items (--resume) are done, but not in the rate: 100 run in 50 s is
        // 2/s, and 800 left take 400 s.
        let l = line(
            "t",
            counts(100, 0, 100),
            0,
            Some(1000),
            Duration::from_secs(50),
            200,
        );
        assert_eq!(
            l,
            "t: 200/1,000 done, 100 skipped, 0 failed, 0 retries, 2.0/s, ETA 6m40s"
        );
        // All done: no time left shown; a total smaller than what is done (lines that
        // were no items) grows to it.
        let l = line(
            "t",
            counts(9, 0, 0),
            0,
            Some(8),
            Duration::from_secs(3),
            200,
        );
        assert_eq!(l, "t: 9/9 done, 0 failed, 0 retries, 3.0/s");
    }

    /// Whole fields only, within the width less its last column; the first cut when
    /// even it does not fit.
    #[test]
    fn the_line_fits_the_width() {
        let c = counts(1234, 3, 0);
        let at = |w| line("coze-chat", c, 12, Some(5000), Duration::from_secs(152), w);
        let whole = at(200);
        assert_eq!(at(whole.len() + 1), whole);
        assert_eq!(
            at(whole.len()),
            "coze-chat: 1,234/5,000 done, 3 failed, 12 retries, 8.1/s"
        );
        assert_eq!(at(40), "coze-chat: 1,234/5,000 done, 3 failed");
        assert_eq!(at(29), "coze-chat: 1,234/5,000 done");
        assert_eq!(at(12), "coze-chat: ");
        assert_eq!(at(1), "");
        assert_eq!(at(0), "");
        for w in 0..100 {
            assert!(at(w).chars().count() < w.max(1), "{w}: {:?}", at(w));
        }
    }

    #[test]
    fn numbers_rates_and_durations_read_easily() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (65_536, "65,536"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(thousands(n), s);
        }
        for (r, s) in [
            (250.0, "250/s"),
            (12.4, "12/s"),
            (8.14, "8.1/s"),
            (1.0, "1.0/s"),
            (0.5, "30/min"),
            (0.05, "3.0/min"),
            (1.0 / 1800.0, "2.0/h"),
        ] {
            assert_eq!(rate(r), s, "{r}");
        }
        for (secs, s) in [
            (0.2, "0s"),
            (45.0, "45s"),
            (59.6, "1m00s"),
            (465.0, "7m45s"),
            (3600.0, "1h00m"),
            (7500.0, "2h05m"),
            (360_000.0, "4d04h"),
            (f64::INFINITY, "213503982334601d07h"),
        ] {
            assert_eq!(duration(secs), s, "{secs}");
        }
    }

    /// Non-blank lines, whatever the pieces the bytes come in: a last line without its
    /// newline counts, blank and whitespace-only lines do not.
    #[test]
    fn lines_are_counted_across_every_split() {
        let text = b"one\n\n  \r\ntwo\r\n \tthree\n{\"x\":1}\nlast";
        for split in 0..=text.len() {
            let mut l = Lines::default();
            l.feed(&text[..split]);
            l.feed(&text[split..]);
            assert_eq!(l.total(), 5, "split at {split}");
        }
        for (text, n) in [
            (&b""[..], 0),
            (b"\n\n", 0),
            (b"a", 1),
            (b"a\n", 1),
            (b"a\n ", 1),
            (b" a \n\t\n", 1),
        ] {
            let mut l = Lines::default();
            l.feed(text);
            assert_eq!(l.total(), n, "{text:?}");
        }
    }

    /// Counted from the offset given, with pread: the file's own offset stays.
    #[test]
    fn a_file_is_counted_from_where_its_reader_stands() {
        use std::io::{Read, Write};
        let path = std::env::temp_dir().join(format!("coze-progress-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(b"first\nsecond\n\nthird\n").unwrap();
        drop(f);
        let mut f = File::open(&path).unwrap();
        let mut first = [0u8; 6];
        f.read_exact(&mut first).unwrap();
        let at = f.stream_position().unwrap();
        assert_eq!(count_lines(&f, at, &AtomicBool::new(false)), Some(2));
        assert_eq!(count_lines(&f, 0, &AtomicBool::new(false)), Some(3));
        assert_eq!(count_lines(&f, 0, &AtomicBool::new(true)), None);
        assert_eq!(
            f.stream_position().unwrap(),
            at,
            "the reader's offset moved"
        );
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "second\n\nthird\n");
        std::fs::remove_file(&path).unwrap();
    }

    /// Never when stderr is not a terminal; the flags decide otherwise; by default
    /// only for a batch from a file or a pipe whose records do not go to the terminal.
    #[test]
    fn when_it_is_shown() {
        for want in [Want::Auto, Want::Always, Want::Never] {
            for batch in [false, true] {
                for records in [false, true] {
                    assert!(!shown(want, false, batch, records), "{want:?}");
                    assert_eq!(
                        shown(want, true, batch, records),
                        match want {
                            Want::Auto => batch && !records,
                            Want::Always => true,
                            Want::Never => false,
                        }
                    );
                }
            }
        }
    }
}
