//! Records as a person reads them on a terminal: an aligned table (as `gh` prints its
//! lists), every cell one line of the server's text with its control characters shown
//! (`support::say::visible`, then line breaks and tabs as spaces), columns measured in
//! terminal cells (a CJK character takes two), the whole cut to the terminal's width
//! when that is known.

use std::io::{self, Write};

use coze_core::support::say::visible;

/// What we know of the terminal stdout is: its width in cells, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// Columns to fit in; None: unknown (a `TERM=dumb` terminal, a size nobody says),
    /// and then nothing is cut.
    pub width: Option<usize>,
}

impl Term {
    /// stdout's terminal as `ls` measures it: `COLUMNS` when it holds a positive
    /// number, else the size the terminal reports; a dumb terminal has none.
    pub fn of_stdout(term: Option<&str>, columns: Option<&str>) -> Term {
        if term == Some("dumb") {
            return Term { width: None };
        }
        let from_env = columns
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0);
        Term {
            width: from_env.or_else(stdout_columns),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const TIOCGWINSZ: std::ffi::c_ulong = 0x5413;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
const TIOCGWINSZ: std::ffi::c_ulong = 0x4008_7468;

#[repr(C)]
#[derive(Default)]
struct Winsize {
    ws_row: u16,
    ws_col: u16,
    ws_xpixel: u16,
    ws_ypixel: u16,
}

extern "C" {
    // libc's ioctl(2); std links libc already.
    fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
}

/// The columns of the terminal on fd 1, when it says (a pty nobody sized says 0).
fn stdout_columns() -> Option<usize> {
    let mut ws = Winsize::default();
    // SAFETY: TIOCGWINSZ writes one `struct winsize` (four u16s, the layout of
    // `Winsize`) through the pointer, which is valid for the whole call.
    let r = unsafe { ioctl(1, TIOCGWINSZ, &mut ws as *mut Winsize) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// `text` as one line for a cell: control characters shown (`^[`), line breaks and
/// tabs as spaces.
pub fn cell(text: &str) -> String {
    visible(text)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

/// The cells a character takes on a terminal: 2 for East Asian wide and fullwidth
/// characters (CJK, Hangul, kana, fullwidth forms, most emoji), 0 for combining marks
/// and zero-width characters, else 1. A table of ranges, not Unicode's whole list: it
/// covers the text bots are named in.
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F | 0x20D0..=0x20FF => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// The cells `s` takes on a terminal.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` cut to at most `max` cells, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        // Room is kept for the ellipsis (one cell).
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// `s` padded with spaces to `w` cells.
fn pad(s: &str, w: usize) -> String {
    let mut out = s.to_owned();
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out
}

/// Rows under headers; `flex` is the column that gives up room first when the table
/// is wider than the terminal (the name: ids, states and times keep theirs).
pub struct Table {
    headers: Vec<&'static str>,
    flex: usize,
    rows: Vec<Vec<String>>,
}

/// Two spaces between columns, as `gh` leaves.
const GAP: usize = 2;
/// A flexible column is never cut below this many cells.
const MIN_FLEX: usize = 8;

impl Table {
    pub fn new(headers: &[&'static str], flex: usize) -> Table {
        Table {
            headers: headers.to_vec(),
            flex,
            rows: Vec::new(),
        }
    }

    /// A row of server text; each value becomes a [`cell`].
    pub fn push(&mut self, values: &[&str]) {
        self.rows.push(values.iter().map(|v| cell(v)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table's lines: each column as wide as its widest cell, the flexible one
    /// narrowed (its cells cut with `…`) to fit `term`'s width, and any line still too
    /// wide cut at it. No trailing spaces.
    pub fn lines(&self, term: Term) -> Vec<String> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(width(c));
            }
        }
        if let Some(max) = term.width {
            let total: usize = widths.iter().sum::<usize>() + GAP * n.saturating_sub(1);
            if total > max {
                let floor = MIN_FLEX.max(width(self.headers[self.flex]));
                let excess = total - max;
                widths[self.flex] = widths[self.flex].saturating_sub(excess).max(floor);
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        std::iter::once(&header)
            .chain(&self.rows)
            .map(|row| {
                let mut line = String::new();
                for (i, c) in row.iter().enumerate().take(n) {
                    let c = truncate(c, widths[i]);
                    if i + 1 == n {
                        line.push_str(&c);
                    } else {
                        line.push_str(&pad(&c, widths[i] + GAP));
                    }
                }
                let line = line.trim_end().to_owned();
                match term.width {
                    Some(max) => truncate(&line, max),
                    None => line,
                }
            })
            .collect()
    }

    /// Writes the table to `out`, flushed.
    pub fn print(&self, term: Term, out: &mut impl Write) -> io::Result<()> {
        let mut text = String::new();
        for l in self.lines(term) {
            text.push_str(&l);
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: Term = Term { width: None };

    #[test]
    fn cells_show_control_characters_and_stay_on_one_line() {
        assert_eq!(cell("a\x1b]2;x\x07b\nc\td"), "a^[]2;x^Gb c d");
        assert_eq!(cell("x\u{9b}31m"), "x^[[31m");
        assert_eq!(cell("中文"), "中文");
    }

    #[test]
    fn widths_count_wide_characters_twice() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("个人空间"), 8);
        assert_eq!(width("ｱ"), 1); // halfwidth katakana is narrow
        assert_eq!(width("Ａ"), 2); // fullwidth Latin is wide
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(width("🤖"), 2);
    }

    #[test]
    fn truncation_keeps_within_the_cells_and_marks_the_cut() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello world", 6), "hello…");
        // A wide character that would straddle the edge is left out.
        assert_eq!(truncate("中文字符", 6), "中文…");
        assert!(width(&truncate("中文字符", 6)) <= 6);
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn columns_align_by_cells_and_the_last_has_no_padding() {
        let mut t = Table::new(&["ID", "NAME", "ROLE"], 1);
        t.push(&["1", "个人空间", "owner"]);
        t.push(&["22", "Team", "member"]);
        assert_eq!(
            t.lines(WIDE),
            [
                "ID  NAME      ROLE",
                "1   个人空间  owner",
                "22  Team      member"
            ]
        );
    }

    #[test]
    fn a_narrow_terminal_narrows_the_flexible_column_first() {
        let mut t = Table::new(&["ID", "NAME", "STATUS"], 1);
        t.push(&[
            "7500000000000000001",
            "a rather long bot name indeed",
            "published",
        ]);
        let lines = t.lines(Term { width: Some(45) });
        for l in &lines {
            assert!(width(l) <= 45, "{l:?}");
        }
        assert_eq!(lines[1], "7500000000000000001  a rather lon…  published");
        // Narrower than the fixed columns: the lines themselves are cut.
        let lines = t.lines(Term { width: Some(20) });
        assert!(lines.iter().all(|l| width(l) <= 20), "{lines:?}");
        // Unknown width: nothing is cut.
        assert!(t.lines(WIDE)[1].contains("indeed"));
    }

    #[test]
    fn dumb_terminals_have_no_width_and_columns_wins() {
        assert_eq!(Term::of_stdout(Some("dumb"), Some("80")).width, None);
        assert_eq!(Term::of_stdout(Some("xterm"), Some("77")).width, Some(77));
    }
}
