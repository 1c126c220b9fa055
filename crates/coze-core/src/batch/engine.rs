//! The run: input items in, through the task, records out, the tally kept.
//!
//! One job (`--jobs 1`) runs each item on the calling thread as soon as it is read,
//! before the next line is even read: an interactive pipe gets its answer at once,
//! a task may carry what one item learned to the next (coze-chat keeps the first
//! chat's conversation for the following prompts), and the output is written straight
//! through (text streamed per delta). N jobs run on N worker threads, started once for
//! the run, while the calling thread reads ahead a few items per worker; each job's
//! output goes out a line at a time as it is written, or whole in input order
//! (`--ordered`).
//!
//! Either way the input is read the same way: an item `--resume` found done is skipped,
//! a bad line is counted `invalid` (its record written) and ends the run unless the
//! run keeps going, and an authentication failure ends it (every later item would meet
//! it too). The exit status is that of the earliest failure in input order.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::output::{JobWriter, SharedOut};
use super::schedule::{Job, Scheduler};
use super::tally::Counts;
use super::{resume, Bad, Item, Outcome, Tally, Task};
use crate::error::{Error, Result};
use crate::support::say::tool;

/// How a batch runs its items.
#[derive(Debug, Default)]
pub struct Options {
    /// How many items run at once (`--jobs`); 1 runs each on the calling thread.
    pub jobs: usize,
    /// Write each item's records in input order (`--ordered`), not as they complete.
    pub ordered: bool,
    /// After a bad input line, go on with the next lines (`--keep-going`, or an output
    /// that records the bad line, such as coze-chat's `-o answers`).
    pub keep_going: bool,
    /// The [`resume::key`]s of the ids already done (`--resume`): skipped.
    pub done: HashSet<String>,
}

/// A batch run of `task`'s items.
pub struct Batch<'a, T: Task> {
    task: &'a T,
    options: Options,
    tally: Mutex<Tally>,
    /// [`Batch::cancel`] has run: what the pool's items meet since is nobody's news.
    cancelled: AtomicBool,
    /// An authentication failure: every later item would fail the same way.
    stopping: AtomicBool,
    /// Told the counts each time they change ([`Batch::on_count`]).
    observer: OnceLock<Observer>,
}

/// What [`Batch::on_count`] is given.
type Observer = Box<dyn Fn(Counts) + Send + Sync>;

/// What the reader found at one input position, for the jobs to do.
enum Step<'b, I> {
    /// An item to run.
    Run(u64, I),
    /// A bad line, counted already, whose record is to be written.
    Invalid(u64, &'b Bad),
    /// A position with nothing to run or write (an item done already, a usage error).
    Pass(u64),
}

impl<'a, T: Task> Batch<'a, T> {
    /// A run of `task`'s items as `options` say.
    pub fn new(task: &'a T, options: Options) -> Self {
        Batch {
            task,
            options,
            tally: Mutex::new(Tally::default()),
            cancelled: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            observer: OnceLock::new(),
        }
    }

    /// Calls `observer` with the counts each time an item is counted (run, invalid or
    /// skipped), on the thread that counted it, after the count: a progress line
    /// drawn as items complete. One observer per run; a second is ignored.
    pub fn on_count(&self, observer: impl Fn(Counts) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(observer));
    }

    /// The counts so far, from any thread.
    pub fn counts(&self) -> Counts {
        self.tally().counts()
    }

    /// Changes the tally with `change`, then tells the observer the new counts (the
    /// lock released first: an observer may take its time).
    fn count<R>(&self, change: impl FnOnce(&mut Tally) -> R) -> R {
        let (r, counts) = {
            let mut tally = self.tally();
            let r = change(&mut tally);
            (r, tally.counts())
        };
        if let Some(observer) = self.observer.get() {
            observer(counts);
        }
        r
    }

    /// Stops the run from another thread (a signal, a closed stdout): the task ends
    /// what is in flight and refuses what starts later, and the failures this causes
    /// end the run quietly instead of being counted.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.task.cancel();
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counts of the run, once it is over.
    pub fn into_tally(self) -> Tally {
        self.tally.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs every item of `input` (read lazily) and writes their records to `out`.
    /// Failures of single items are reported and counted ([`into_tally`](Self::into_tally));
    /// `Err` is for what ends the whole run: a closed output, or what the task's
    /// [`run`](Task::run) returned as such. A question the task says is left
    /// unanswered ([`Task::unanswered`]) is reported last and counted after every item.
    pub fn run<I, W>(&self, input: I, out: W) -> Result<()>
    where
        I: IntoIterator<Item = std::result::Result<T::Item, Bad>>,
        W: Write + Send,
    {
        if self.options.jobs <= 1 {
            self.one_at_a_time(input, out)?;
        } else {
            self.pool(input, out)?;
        }
        if !self.cancelled.load(Ordering::SeqCst) {
            if let Some(e) = self.task.unanswered() {
                self.task.report(&e);
                // After every input position: any item's failure comes first.
                self.tally().fail(u64::MAX, e.exit_code());
            }
        }
        Ok(())
    }

    /// `--jobs 1`: each item on this thread, written straight through. After a cancel
    /// the item in flight meets the closed stdout when it writes, and the task refuses
    /// the next one.
    fn one_at_a_time<I, W>(&self, input: I, out: W) -> Result<()>
    where
        I: IntoIterator<Item = std::result::Result<T::Item, Bad>>,
        W: Write,
    {
        let mut out = BufWriter::with_capacity(64 << 10, out);
        self.read(input, |step| match step {
            Step::Run(seq, item) => {
                let outcome = self.task.run(&item, &mut out)?;
                self.settle(seq, outcome)?;
                Ok(true)
            }
            Step::Invalid(_, bad) => {
                self.task.invalid(bad, &mut out).map_err(stdout)?;
                Ok(true)
            }
            Step::Pass(_) => Ok(true),
        })
    }

    /// `--jobs N`: N workers, this thread reading ahead of them.
    fn pool<I, W>(&self, input: I, out: W) -> Result<()>
    where
        I: IntoIterator<Item = std::result::Result<T::Item, Bad>>,
        W: Write + Send,
    {
        let jobs = self.options.jobs;
        let shared = SharedOut::new(out, self.options.ordered);
        let sched = Scheduler::new(jobs * 4);
        let closed: Mutex<Option<Error>> = Mutex::new(None);
        let end = |e: Error| {
            sched.stop();
            closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        };
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| self.worker(&sched, &shared, &end));
            }
            let read = self.read(input, |step| {
                match step {
                    Step::Run(seq, item) => return Ok(sched.push(Job { seq, item })),
                    Step::Invalid(seq, bad) => {
                        let mut record = Vec::new();
                        self.task.invalid(bad, &mut record).map_err(stdout)?;
                        shared.finish(seq, record).map_err(stdout)?;
                    }
                    Step::Pass(seq) => shared.finish(seq, Vec::new()).map_err(stdout)?,
                }
                Ok(true)
            });
            if let Err(e) = read {
                end(e);
            }
            sched.close();
        });
        match closed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One worker of the pool: takes jobs until there are none, or the run ends.
    fn worker<W: Write>(
        &self,
        sched: &Scheduler<T::Item>,
        shared: &SharedOut<W>,
        end: &(dyn Fn(Error) + Sync),
    ) {
        while let Some(job) = sched.take() {
            let mut out = JobWriter::new(shared);
            let ran = self.task.run(&job.item, &mut out);
            let finished = shared.finish(job.seq, out.into_buffer());
            let settled = match (ran, finished) {
                // The run was cancelled (its output has no reader): an --ordered job's
                // output is still held, and its failure is no news.
                (Ok(_), Ok(())) if self.cancelled.load(Ordering::SeqCst) => Err(stdout(
                    io::Error::new(io::ErrorKind::BrokenPipe, "the run was stopped"),
                )),
                (Ok(outcome), Ok(())) => self.settle(job.seq, outcome),
                (Err(e), _) => Err(e),
                (_, Err(e)) => Err(stdout(e)),
            };
            // Stopped before the key is free: the next item of an authentication
            // failure's key is not started.
            if let Err(e) = settled {
                end(e);
            } else if self.stopping.load(Ordering::SeqCst) {
                sched.stop();
            }
            sched.done(job.item.key());
        }
    }

    /// Reads `input` to its end (or the run's), numbering its positions, and hands
    /// each to `step`, which says false when the run was stopped meanwhile.
    fn read<I>(
        &self,
        input: I,
        mut step: impl FnMut(Step<'_, T::Item>) -> Result<bool>,
    ) -> Result<()>
    where
        I: IntoIterator<Item = std::result::Result<T::Item, Bad>>,
    {
        let done = &self.options.done;
        for (this, next) in (0u64..).zip(input) {
            if self.stopping.load(Ordering::SeqCst) {
                self.say_stopping();
                return Ok(());
            }
            let go_on = match next {
                Ok(item) => {
                    if !done.is_empty() && done.contains(&resume::key(&item.id())) {
                        self.count(|t| t.skipped += 1);
                        step(Step::Pass(this))?
                    } else {
                        step(Step::Run(this, item))?
                    }
                }
                Err(bad) => {
                    self.task.report(&bad.error);
                    let code = bad.error.exit_code();
                    if !bad.is_line() {
                        self.tally().fail(this, code);
                        step(Step::Pass(this))?;
                        return Ok(());
                    }
                    self.count(|t| t.invalid(this, code));
                    step(Step::Invalid(this, &bad))?;
                    if bad.fatal || !self.options.keep_going {
                        return Ok(());
                    }
                    true
                }
            };
            if !go_on {
                if self.stopping.load(Ordering::SeqCst) {
                    self.say_stopping();
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Counts how the item at `seq` ended and reports its failure.
    fn settle(&self, seq: u64, outcome: Outcome) -> Result<()> {
        if let Some(e) = &outcome.error {
            self.task.report(e);
        }
        if self.count(|t| t.record(seq, &outcome)) {
            self.stopping.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn say_stopping(&self) {
        crate::say!(
            "{}: stopping: the remaining {} would fail the same way",
            tool(),
            T::ITEMS
        );
    }
}

/// A failed write of the output.
fn stdout(e: io::Error) -> Error {
    Error::io("stdout", e)
}
