//! The engine with a toy task: items that complete, fail or wait for each other
//! (through channels, never timing), keys, order, resume, bad lines, the stop.

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

use serde_json::Value;

use super::*;

/// What a toy item does.
enum Act {
    Complete,
    /// Ends without failing, in a status of its own (a chatflow's question).
    Ask,
    /// Fails with this error.
    Fail(fn() -> Error),
}

/// A toy item: writes `start <id>` (flushed) when it starts and `<id>` when it ends.
struct Toy {
    id: u64,
    key: Option<String>,
    act: Act,
    /// Waits for a message on this before ending.
    wait: Option<Receiver<()>>,
    /// Sends on this once started.
    started: Option<Sender<()>>,
}

impl Toy {
    fn new(id: u64) -> Toy {
        Toy {
            id,
            key: None,
            act: Act::Complete,
            wait: None,
            started: None,
        }
    }

    fn key(mut self, key: &str) -> Toy {
        self.key = Some(key.to_owned());
        self
    }

    fn ask(mut self) -> Toy {
        self.act = Act::Ask;
        self
    }

    fn fail(mut self, error: fn() -> Error) -> Toy {
        self.act = Act::Fail(error);
        self
    }

    fn wait(mut self, on: Receiver<()>) -> Toy {
        self.wait = Some(on);
        self
    }

    fn signal(mut self, to: Sender<()>) -> Toy {
        self.started = Some(to);
        self
    }
}

impl Item for Toy {
    fn id(&self) -> Value {
        self.id.into()
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

#[derive(Default)]
struct Toys {
    /// Keys with an item running.
    running: Mutex<HashSet<String>>,
    /// An item started while another with its key was running.
    overlap: AtomicBool,
    /// The items in the order they started.
    started: Mutex<Vec<u64>>,
    /// The reported failures' messages.
    reported: Mutex<Vec<String>>,
    cancelled: AtomicBool,
    /// The last item that ran asked a question nobody answered.
    waiting: AtomicBool,
}

impl Task for Toys {
    type Item = Toy;
    const ITEMS: &'static str = "toys";

    fn run<W: Write>(&self, item: &Toy, out: &mut W) -> Result<Outcome> {
        // As coze-chat refuses a chat once its chats were cancelled.
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(Error::io("stdout", io::ErrorKind::BrokenPipe.into()));
        }
        if let Some(k) = &item.key {
            if !self.running.lock().unwrap().insert(k.clone()) {
                self.overlap.store(true, Ordering::SeqCst);
            }
        }
        self.started.lock().unwrap().push(item.id);
        writeln!(out, "start {}", item.id).map_err(|e| Error::io("stdout", e))?;
        out.flush().map_err(|e| Error::io("stdout", e))?;
        if let Some(to) = &item.started {
            // The waiting item may be over (its receiver gone).
            let _ = to.send(());
        }
        if let Some(on) = &item.wait {
            on.recv().unwrap();
        }
        if let Some(k) = &item.key {
            self.running.lock().unwrap().remove(k);
        }
        writeln!(out, "{}", item.id).map_err(|e| Error::io("stdout", e))?;
        out.flush().map_err(|e| Error::io("stdout", e))?;
        self.waiting
            .store(matches!(item.act, Act::Ask), Ordering::SeqCst);
        Ok(match item.act {
            Act::Complete => Outcome::completed(10),
            Act::Ask => Outcome {
                error: None,
                status: "requires_action".into(),
                tokens: 2,
            },
            Act::Fail(error) => Outcome {
                error: Some(error()),
                status: "failed".into(),
                tokens: 1,
            },
        })
    }

    fn invalid<W: Write>(&self, bad: &Bad, out: &mut W) -> io::Result<()> {
        writeln!(out, "invalid {}", bad.text.as_deref().unwrap_or("?"))
    }

    fn report(&self, error: &Error) {
        self.reported.lock().unwrap().push(error.to_string());
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    fn unanswered(&self) -> Option<Error> {
        self.waiting
            .load(Ordering::SeqCst)
            .then(|| Error::Waiting("a question".into()))
    }
}

fn api() -> Error {
    Error::Protocol("an API failure".into())
}

fn network() -> Error {
    Error::Network("a network failure".into())
}

fn auth() -> Error {
    Error::Auth("no token".into())
}

fn bad_line(line: u64) -> Bad {
    Bad {
        error: Error::input(line, "not an item"),
        text: Some(format!("line {line}")),
        id: None,
        fatal: false,
    }
}

/// Runs `items` on `jobs` jobs; the output and the tally.
fn run(
    toys: &Toys,
    jobs: usize,
    ordered: bool,
    items: Vec<std::result::Result<Toy, Bad>>,
) -> (Result<()>, String, Tally) {
    run_with(
        toys,
        Options {
            jobs,
            ordered,
            ..Options::default()
        },
        items,
    )
}

fn run_with(
    toys: &Toys,
    options: Options,
    items: Vec<std::result::Result<Toy, Bad>>,
) -> (Result<()>, String, Tally) {
    let batch = Batch::new(toys, options);
    let mut out = Vec::new();
    let result = batch.run(items, &mut out);
    (result, String::from_utf8(out).unwrap(), batch.into_tally())
}

#[test]
fn one_job_runs_each_item_in_turn_and_counts_them() {
    let toys = Toys::default();
    let items = vec![Ok(Toy::new(0)), Ok(Toy::new(1).fail(api)), Ok(Toy::new(2))];
    let (result, out, tally) = run(&toys, 1, false, items);
    result.unwrap();
    assert_eq!(out, "start 0\n0\nstart 1\n1\nstart 2\n2\n");
    assert_eq!((tally.items, tally.completed, tally.tokens), (3, 2, 21));
    assert_eq!(tally.exit_status(), 1);
    assert_eq!(*toys.reported.lock().unwrap(), ["an API failure"]);
}

/// Item 1 finishes first: unordered output shows it first, `--ordered` holds it until
/// item 0 is written. Unordered, each line goes out as it is flushed.
#[test]
fn ordered_output_keeps_input_order_and_unordered_goes_as_it_completes() {
    for ordered in [false, true] {
        let toys = Toys::default();
        let (tx, rx) = channel();
        let items = vec![Ok(Toy::new(0).wait(rx)), Ok(Toy::new(1).signal(tx))];
        let (result, out, tally) = run(&toys, 2, ordered, items);
        result.unwrap();
        assert_eq!(tally.completed, 2);
        if ordered {
            assert_eq!(out, "start 0\n0\nstart 1\n1\n");
        } else {
            // Item 0 ended only after item 1 had started (item 1 signals once its
            // start line is out; its end line may then race item 0's), and item 1's
            // start went out while item 0 was still running: not held back for it, as
            // `--ordered` holds it.
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 4, "{out}");
            let at = |l: &str| lines.iter().position(|x| *x == l).unwrap();
            assert!(at("start 1") < at("0"), "{out}");
            assert!(at("start 0") < at("0") && at("start 1") < at("1"), "{out}");
        }
    }
}

/// Two items with one key and one without, on three jobs: item 0 holds key `k` until
/// another item has started. A scheduler that ignored the key would start item 1 (the
/// next in line) beside it; this one skips to item 2, and runs item 1 after item 0.
#[test]
fn a_key_never_runs_twice_at_once_and_keeps_its_order() {
    let toys = Toys::default();
    let (tx, rx) = channel();
    let items = vec![
        Ok(Toy::new(0).key("k").wait(rx)),
        Ok(Toy::new(1).key("k").signal(tx.clone())),
        Ok(Toy::new(2).signal(tx)),
    ];
    let (result, _, tally) = run(&toys, 3, false, items);
    result.unwrap();
    assert_eq!(tally.completed, 3);
    assert!(
        !toys.overlap.load(Ordering::SeqCst),
        "two items of key k ran at once"
    );
    let started = toys.started.lock().unwrap().clone();
    let at = |id: u64| started.iter().position(|s| *s == id).unwrap();
    assert!(at(0) < at(1), "{started:?}");
}

/// Item 1 fails (exit 1) before item 0 fails (exit 5) in time: the earliest in the
/// input decides the exit status.
#[test]
fn the_earliest_failure_in_input_order_decides_the_exit_status() {
    let toys = Toys::default();
    let (tx, rx) = channel();
    // Item 0 waits for item 2, which the other worker takes only once it has
    // counted item 1.
    let items = vec![
        Ok(Toy::new(0).fail(network).wait(rx)),
        Ok(Toy::new(1).fail(api)),
        Ok(Toy::new(2).signal(tx)),
    ];
    let (result, _, tally) = run(&toys, 2, false, items);
    result.unwrap();
    assert_eq!(tally.exit_status(), 5);
    assert_eq!(tally.by_status["failed"], 2);
    assert_eq!(
        *toys.reported.lock().unwrap(),
        ["an API failure", "a network failure"],
        "item 1 failed first"
    );
}

/// `--resume`: an item whose id is done is skipped, and counted as such.
#[test]
fn items_done_already_are_skipped() {
    for jobs in [1, 3] {
        let toys = Toys::default();
        let options = Options {
            jobs,
            ordered: true,
            done: HashSet::from([resume::key(&Value::from(1))]),
            ..Options::default()
        };
        let items = vec![Ok(Toy::new(0)), Ok(Toy::new(1)), Ok(Toy::new(2))];
        let (result, out, tally) = run_with(&toys, options, items);
        result.unwrap();
        assert_eq!(out, "start 0\n0\nstart 2\n2\n", "jobs {jobs}");
        assert_eq!((tally.items, tally.skipped, tally.completed), (2, 1, 2));
        let s = tally.summary(Toys::ITEMS, Default::default(), 0, 0);
        assert_eq!(
            (&s["toys"], &s["skipped"]),
            (&Value::from(3), &Value::from(1))
        );
    }
}

/// The observer (a progress line) is told the counts each time one changes: a skipped
/// item, a run, a failure, an invalid line; the last it hears are the run's.
#[test]
fn the_observer_hears_every_count() {
    for jobs in [1, 3] {
        let toys = Toys::default();
        let options = Options {
            jobs,
            keep_going: true,
            done: HashSet::from([resume::key(&Value::from(1))]),
            ..Options::default()
        };
        let batch = Batch::new(&toys, options);
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&heard);
        batch.on_count(move |c| log.lock().unwrap().push(c));
        let items = vec![
            Ok(Toy::new(0)),
            Ok(Toy::new(1)),
            Ok(Toy::new(2).fail(api)),
            Err(bad_line(4)),
        ];
        batch.run(items, Vec::new()).unwrap();
        let heard = heard.lock().unwrap().clone();
        assert_eq!(heard.len(), 4, "jobs {jobs}: {heard:?}");
        assert_eq!(
            batch.counts(),
            Counts {
                done: 3,
                failed: 2,
                skipped: 1
            },
            "jobs {jobs}"
        );
        // Each count heard once, after it was made (with several jobs, not
        // necessarily in the order they were made: the observer reads them as news).
        let mut seen: Vec<u64> = heard.iter().map(|c| c.done + c.skipped).collect();
        seen.sort();
        assert_eq!(seen, [1, 2, 3, 4], "jobs {jobs}: {heard:?}");
    }
}

/// A bad line is an item with status `invalid` and its record; the run stops at it
/// unless it keeps going, or the bad line is `fatal`.
#[test]
fn bad_lines_are_invalid_items_and_stop_the_run_unless_it_keeps_going() {
    for jobs in [1, 2] {
        for keep_going in [false, true] {
            let toys = Toys::default();
            let options = Options {
                jobs,
                ordered: true,
                keep_going,
                ..Options::default()
            };
            let items = vec![Ok(Toy::new(0)), Err(bad_line(2)), Ok(Toy::new(2))];
            let (result, out, tally) = run_with(&toys, options, items);
            result.unwrap();
            let want = if keep_going {
                "start 0\n0\ninvalid line 2\nstart 2\n2\n"
            } else {
                "start 0\n0\ninvalid line 2\n"
            };
            assert_eq!(out, want, "jobs {jobs}, keep going {keep_going}");
            assert_eq!(tally.by_status["invalid"], 1);
            assert_eq!(tally.exit_status(), 3);
            assert_eq!(
                *toys.reported.lock().unwrap(),
                ["stdin line 2: not an item"]
            );
        }
    }
    let toys = Toys::default();
    let fatal = Bad {
        fatal: true,
        ..bad_line(2)
    };
    let options = Options {
        jobs: 1,
        keep_going: true,
        ..Options::default()
    };
    let items = vec![Ok(Toy::new(0)), Err(fatal), Ok(Toy::new(2))];
    let (_, out, _) = run_with(&toys, options, items);
    assert_eq!(out, "start 0\n0\ninvalid line 2\n");
    // A usage error found on a line (coze-chat: no bot) is no item: no record, and
    // the run ends with its status.
    let toys = Toys::default();
    let usage = Bad {
        error: Error::usage("no bot"),
        ..bad_line(1)
    };
    let items = vec![Err(usage), Ok(Toy::new(1))];
    let (_, out, tally) = run(&toys, 1, false, items);
    assert_eq!((out.as_str(), tally.items), ("", 0));
    assert_eq!(tally.exit_status(), 2);
}

/// An authentication failure ends the run: every later item would meet it too. (With
/// two jobs the items share a key, so that none is started beside the failing one.)
#[test]
fn an_authentication_failure_stops_the_run() {
    for jobs in [1, 2] {
        let toys = Toys::default();
        let items = vec![
            Ok(Toy::new(0).key("k").fail(auth)),
            Ok(Toy::new(1).key("k")),
            Ok(Toy::new(2).key("k")),
            Ok(Toy::new(3).key("k")),
        ];
        let (result, _, tally) = run(&toys, jobs, false, items);
        result.unwrap();
        assert_eq!(tally.exit_status(), 4);
        assert_eq!((tally.items, tally.completed), (1, 0), "jobs {jobs}");
        assert_eq!(*toys.started.lock().unwrap(), [0], "jobs {jobs}");
    }
}

/// After `cancel` (a closed stdout) the run ends quietly, its `Err` a closed pipe. With
/// several jobs an item's failure then is neither counted nor reported (with
/// `--ordered` its output would be held); with one it was written through, and is
/// counted like any other, and the task refuses the next item.
#[test]
fn after_cancel_the_run_ends_quietly() {
    for jobs in [1, 2] {
        let toys = Toys::default();
        let batch = Batch::new(
            &toys,
            Options {
                jobs,
                ..Options::default()
            },
        );
        let (tx, rx) = channel();
        let (started_tx, started) = channel();
        // Item 1 shares item 0's key: it would start only after item 0.
        let items = vec![
            Ok(Toy::new(0).key("k").fail(api).wait(rx).signal(started_tx)),
            Ok(Toy::new(1).key("k")),
        ];
        let mut out = Vec::new();
        let result = std::thread::scope(|s| {
            let run = s.spawn(|| batch.run(items, &mut out));
            // Item 0 has started: cancel, then let it end.
            started.recv().unwrap();
            batch.cancel();
            tx.send(()).unwrap();
            run.join().unwrap()
        });
        let e = result.unwrap_err();
        assert!(e.is_closed_pipe(), "{e}");
        assert!(toys.cancelled.load(Ordering::SeqCst));
        assert_eq!(*toys.started.lock().unwrap(), [0], "jobs {jobs}");
        let counted = batch.into_tally().items;
        let reported = toys.reported.lock().unwrap().len() as u64;
        assert_eq!((counted, reported), if jobs == 1 { (1, 1) } else { (0, 0) });
    }
}

/// A question is no failure: its item counts as completed under its own status, and
/// only one the run leaves unanswered makes the exit status 7, reported after every
/// item, and only when no item failed.
#[test]
fn a_question_left_unanswered_is_reported_last_and_exits_7() {
    let toys = Toys::default();
    let (result, _, tally) = run(
        &toys,
        1,
        false,
        vec![Ok(Toy::new(0).ask()), Ok(Toy::new(1))],
    );
    result.unwrap();
    assert_eq!(tally.exit_status(), 0, "answered by the next item");
    assert_eq!(
        (tally.completed, tally.by_status["requires_action"]),
        (2, 1)
    );
    assert!(toys.reported.lock().unwrap().is_empty());

    let toys = Toys::default();
    let (result, _, tally) = run(
        &toys,
        1,
        false,
        vec![Ok(Toy::new(0)), Ok(Toy::new(1).ask())],
    );
    result.unwrap();
    assert_eq!(tally.exit_status(), 7);
    assert_eq!(*toys.reported.lock().unwrap(), ["a question"]);
    let summary = tally.summary("toys", std::time::Duration::ZERO, 0, 0);
    assert_eq!(
        (&summary["failed"], &summary["exit_code"]),
        (&0.into(), &7.into())
    );

    let toys = Toys::default();
    let items = vec![Ok(Toy::new(0).fail(network)), Ok(Toy::new(1).ask())];
    let (_, _, tally) = run(&toys, 1, false, items);
    assert_eq!(tally.exit_status(), 5, "an item's failure comes first");

    let toys = Toys::default();
    toys.waiting.store(true, Ordering::SeqCst);
    toys.cancelled.store(true, Ordering::SeqCst);
    let batch = Batch::new(&toys, Options::default());
    batch.cancel();
    let _ = batch.run(Vec::new(), Vec::new());
    assert_eq!(
        batch.into_tally().exit_status(),
        0,
        "a stopped run asks nobody"
    );
}
