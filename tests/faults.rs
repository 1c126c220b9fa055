//! The fault matrix: every API call the tools make against every fault coze-fake can
//! inject, each cell in a sandbox of its own, in parallel. The expected outcome of each
//! cell is a line of `tests/fault-matrix.expected`, so the expectations can be reviewed
//! in one place; the test checks, per cell, the exit status, the one stderr line (and
//! that its logid is one the fake sent: a `-v` response line carries it), that stdout
//! holds everything received before the fault, that retries are bounded (request counts)
//! and that the token file is still valid JSON, 0600 and usable afterwards. At the end it
//! prints the matrix (pass / FAIL / n/a) to stderr and to `target/fault-matrix.txt`.
//!
//! Here: the calls, the faults, the expectations files, the runner and the printed
//! matrix. tests/faults/cells.rs prepares and runs one cell; tests/faults/checks.rs
//! judges what it did.

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::*;

mod cells;
mod checks;

use cells::run_cell;

/// `--retries` given to coze-conv, coze-chat, coze-file, coze-workflow and coze-bot.
const RETRIES: u64 = 2;
/// coze-token has no `--retries`: HttpConfig's default.
const TOKEN_RETRIES: u64 = 4;
/// Cells run at once (each one a fake, a sandbox and a process or two).
const WORKERS: usize = 12;
/// Records per list: one full page of 50 and a second page of 5.
const LIST_LEN: usize = 55;
const PAGE: usize = 50;
const PROMPT: &str = "故障 fault 🧪";

const CALLS: &[&str] = &[
    "exchange",
    "refresh",
    "device",
    "conv.create",
    "conv.list",
    "conv.messages",
    "chat.stream",
    "chat.poll",
    "chat.cancel",
    "chat.submit",
    "chat.submit.poll",
    "file.upload",
    "file.get",
    "wf.stream",
    "wf.sync",
    "wf.resume",
    "wf.resume.sync",
    "wf.history",
    "bot.list",
    "bot.get",
];

const FAULTS: &[&str] = &[
    "refused",
    "reset1",
    "resetN",
    "midbody",
    "500x1",
    "500xN",
    "502x1",
    "502xN",
    "429RAx1",
    "429RAxN",
    "429x1",
    "429xN",
    "4100x1",
    "4100xN",
    "4013x1",
    "4013xN",
    "4016x1",
    "4016xN",
    "4028",
    "json_body",
    "malformed",
    "trunc_json",
    "stall",
    "cut",
    "error_ev",
    "chat_failed",
    "cut_upload",
];

/// One line of the expectations file.
#[derive(Clone, Debug)]
struct Expected {
    /// The server the fake imitates for this cell.
    dialect: Dialect,
    call: String,
    fault: String,
    /// None: n/a.
    exit: Option<i32>,
    note: String,
}

/// The calls a self-hosted Coze Studio takes part in: it has no OAuth (exchange,
/// refresh, device), the messages list's setup needs message create, which it lacks,
/// it serves no file retrieve (get), no /v1/workflows/resume, a sync run cannot
/// stop at a question there (wf.resume.sync), and it has no local plugins: its bots
/// never ask for tool outputs, nor does it serve submit_tool_outputs (chat.submit,
/// chat.submit.poll); it lists no bots (bot.list).
const STUDIO_CALLS: &[&str] = &[
    "conv.create",
    "conv.list",
    "chat.stream",
    "chat.poll",
    "chat.cancel",
    "file.upload",
    "wf.stream",
    "wf.sync",
    "wf.resume",
    "wf.history",
    "bot.get",
];

/// The cells of `file`, which must name every call of `calls` with every fault.
fn expectations(file: &str, calls: &[&str]) -> Vec<Expected> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cells = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(call), Some(fault), Some(exit)) = (words.next(), words.next(), words.next())
        else {
            panic!(
                "{}:{}: expected `call fault exit note`",
                path.display(),
                n + 1
            );
        };
        assert!(calls.contains(&call), "line {}: unknown call {call}", n + 1);
        assert!(
            FAULTS.contains(&fault),
            "line {}: unknown fault {fault}",
            n + 1
        );
        assert!(
            seen.insert((call.to_owned(), fault.to_owned())),
            "line {}: {call} {fault} twice",
            n + 1
        );
        let exit = match exit {
            "n/a" => None,
            e => Some(
                e.parse()
                    .unwrap_or_else(|_| panic!("line {}: exit {e:?}", n + 1)),
            ),
        };
        cells.push(Expected {
            dialect: Dialect::Coze,
            call: call.into(),
            fault: fault.into(),
            exit,
            note: words.collect::<Vec<_>>().join(" "),
        });
    }
    for call in calls {
        for fault in FAULTS {
            assert!(
                seen.contains(&(call.to_string(), fault.to_string())),
                "{}: no line for {call} {fault}",
                path.display()
            );
        }
    }
    cells
}

/// What a cell did.
struct Outcome {
    cell: Expected,
    /// None: n/a.
    problems: Option<Vec<String>>,
    describe: String,
    /// What the cell printed on stderr, `-v` lines left out.
    message: String,
    took: Duration,
}

#[test]
fn the_fault_matrix() {
    let started = Instant::now();
    let mut cells = expectations("tests/fault-matrix.expected", CALLS);
    cells.extend(
        expectations("tests/fault-matrix-studio.expected", STUDIO_CALLS)
            .into_iter()
            .map(|c| Expected {
                dialect: Dialect::Studio,
                ..c
            }),
    );
    let queue = Arc::new(Mutex::new(cells.clone()));
    let results = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, results) = (queue.clone(), results.clone());
            std::thread::spawn(move || loop {
                let Some(cell) = queue.lock().unwrap().pop() else {
                    return;
                };
                let t = Instant::now();
                let outcome = match cell.exit {
                    None => Outcome {
                        cell,
                        problems: None,
                        describe: String::new(),
                        message: String::new(),
                        took: Duration::ZERO,
                    },
                    Some(exit) => {
                        let r = catch_unwind(AssertUnwindSafe(|| {
                            run_cell(&cell.call, &cell.fault, exit, cell.dialect)
                        }));
                        let (problems, describe, message) = match r {
                            Ok(v) => v,
                            Err(p) => {
                                let msg = p
                                    .downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "panic".into());
                                (
                                    vec![format!("panicked: {msg}")],
                                    String::new(),
                                    String::new(),
                                )
                            }
                        };
                        Outcome {
                            cell,
                            problems: Some(problems),
                            describe,
                            message,
                            took: t.elapsed(),
                        }
                    }
                };
                results.lock().unwrap().push(outcome);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let results = std::mem::take(&mut *results.lock().unwrap());
    let runtime = started.elapsed();
    let report = [Dialect::Coze, Dialect::Studio]
        .iter()
        .map(|d| {
            let of: Vec<&Outcome> = results.iter().filter(|o| o.cell.dialect == *d).collect();
            format!("--- {} dialect\n{}", d.name(), matrix(&of, runtime))
        })
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{report}");
    // The file adds each cell's exit and stderr, for reviewing the messages themselves.
    let mut file = report.clone();
    let mut sorted: Vec<&Outcome> = results.iter().filter(|o| o.problems.is_some()).collect();
    sorted.sort_by_key(|o| {
        (
            o.cell.dialect == Dialect::Studio,
            CALLS.iter().position(|c| *c == o.cell.call),
            FAULTS.iter().position(|f| *f == o.cell.fault),
        )
    });
    for o in sorted {
        file.push_str(&format!(
            "\n{} {} {} -> exit {} ({})\n{}",
            o.cell.dialect.name(),
            o.cell.call,
            o.cell.fault,
            o.cell.exit.unwrap_or_default(),
            o.cell.note,
            o.message
        ));
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("fault-matrix.txt");
    std::fs::write(&out, &file).unwrap();
    let failed: Vec<&Outcome> = results
        .iter()
        .filter(|o| o.problems.as_ref().is_some_and(|p| !p.is_empty()))
        .collect();
    if !failed.is_empty() {
        let mut text = String::new();
        for o in &failed {
            text.push_str(&format!(
                "\n=== {} {} {} (expected exit {}: {})\n- {}\n{}\n",
                o.cell.dialect.name(),
                o.cell.call,
                o.cell.fault,
                o.cell.exit.unwrap(),
                o.cell.note,
                o.problems.as_ref().unwrap().join("\n- "),
                o.describe
            ));
        }
        panic!("{} cell(s) of the fault matrix failed:{text}", failed.len());
    }
}

/// The matrix as a table, with the figures under it.
fn matrix(results: &[&Outcome], runtime: Duration) -> String {
    let mut cell: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for o in results {
        let mark = match &o.problems {
            None => "n/a",
            Some(p) if p.is_empty() => "pass",
            Some(_) => "FAIL",
        };
        cell.insert((o.cell.call.as_str(), o.cell.fault.as_str()), mark);
    }
    let label = CALLS.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut text = format!("{:label$}", "");
    for f in FAULTS {
        text.push_str(&format!(" {:>w$}", f, w = f.len().max(4)));
    }
    text.push('\n');
    for c in CALLS
        .iter()
        .filter(|c| results.iter().any(|o| o.cell.call == **c))
    {
        text.push_str(&format!("{c:label$}"));
        for f in FAULTS {
            let mark = cell.get(&(*c, *f)).copied().unwrap_or("?");
            text.push_str(&format!(" {:>w$}", mark, w = f.len().max(4)));
        }
        text.push('\n');
    }
    let applicable = results.iter().filter(|o| o.problems.is_some()).count();
    let passed = results
        .iter()
        .filter(|o| o.problems.as_ref().is_some_and(|p| p.is_empty()))
        .count();
    let slowest = results
        .iter()
        .max_by_key(|o| o.took)
        .map(|o| {
            format!(
                "{} {} {:.1} s",
                o.cell.call,
                o.cell.fault,
                o.took.as_secs_f64()
            )
        })
        .unwrap_or_default();
    text.push_str(&format!(
        "\n{passed}/{applicable} applicable cells passed, {} n/a, {} cells in all; {:.1} s with {WORKERS} workers (slowest: {slowest})\n",
        results.len() - applicable,
        results.len(),
        runtime.as_secs_f64()
    ));
    text
}
