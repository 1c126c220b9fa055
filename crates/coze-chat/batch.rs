//! `--jobs N`: N prompts in flight at once, on threads (the tools stay synchronous).
//!
//! The reader (the main thread) turns stdin lines into jobs on a bounded board; workers
//! take the first job whose conversation is not busy, so one conversation never has
//! two chats at once (the API refuses that with 4016) and its prompts keep their input
//! order, while prompts without a conversation each get a new one and run freely.
//! Output goes through `SharedOut`: lines as they complete, or with `--ordered` each
//! job's output held until every earlier job has been written.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{self, BufRead, Write};
use std::sync::{Condvar, Mutex};

use coze_core::api::Client;
use coze_core::chat::Active;
use coze_core::protocol::Prompt;
use coze_core::{cli, Error, Result};

use crate::ask::{ask, Plan, Tally};
use crate::flags::Mode;
use crate::input::{Item, Items, Rules};
use crate::output::Printer;
use crate::{resume, TOOL};

/// One prompt to ask, with where it stood in the input.
pub struct Job {
    pub seq: u64,
    pub line: u64,
    pub prompt: Prompt,
    pub conversation: Option<String>,
}

struct Board {
    queue: VecDeque<Job>,
    /// Conversations with a chat in flight.
    busy: HashSet<String>,
    closed: bool,
    stopped: bool,
}

/// The jobs waiting and the conversations in use, shared by reader and workers.
pub struct Scheduler {
    board: Mutex<Board>,
    changed: Condvar,
    capacity: usize,
}

impl Scheduler {
    pub fn new(capacity: usize) -> Scheduler {
        Scheduler {
            board: Mutex::new(Board {
                queue: VecDeque::new(),
                busy: HashSet::new(),
                closed: false,
                stopped: false,
            }),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job, waiting while the board is full (so a huge input is not read into
    /// memory ahead of the workers). False once the run has been stopped.
    pub fn push(&self, job: Job) -> bool {
        let mut b = self.lock();
        while b.queue.len() >= self.capacity && !b.stopped {
            b = self.changed.wait(b).unwrap_or_else(|p| p.into_inner());
        }
        if b.stopped {
            return false;
        }
        b.queue.push_back(job);
        self.changed.notify_all();
        true
    }

    /// No more jobs will come.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Stop handing out jobs (a closed stdout).
    pub fn stop(&self) {
        let mut b = self.lock();
        b.stopped = true;
        b.queue.clear();
        self.changed.notify_all();
    }

    /// The first job whose conversation is free, marking it busy; None when done.
    pub fn take(&self) -> Option<Job> {
        let mut b = self.lock();
        loop {
            if b.stopped {
                return None;
            }
            let free = |j: &Job| j.conversation.as_ref().is_none_or(|c| !b.busy.contains(c));
            if let Some(i) = b.queue.iter().position(free) {
                let job = b.queue.remove(i).expect("position is in range");
                if let Some(c) = &job.conversation {
                    b.busy.insert(c.clone());
                }
                self.changed.notify_all();
                return Some(job);
            }
            if b.closed && b.queue.is_empty() {
                return None;
            }
            b = self.changed.wait(b).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The job's conversation is free again.
    pub fn done(&self, conversation: Option<&str>) {
        if let Some(c) = conversation {
            self.lock().busy.remove(c);
        }
        self.changed.notify_all();
    }
}

struct Out {
    writer: Box<dyn Write + Send>,
    ordered: bool,
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
}

/// The one stdout (or `--append` file) all workers write to, whole lines at a time.
pub struct SharedOut(Mutex<Out>);

impl SharedOut {
    pub fn new(writer: Box<dyn Write + Send>, ordered: bool) -> SharedOut {
        SharedOut(Mutex::new(Out {
            writer,
            ordered,
            next: 0,
            pending: BTreeMap::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ordered(&self) -> bool {
        self.lock().ordered
    }

    /// Writes complete lines now (unordered mode).
    fn write_now(&self, bytes: &[u8]) -> io::Result<()> {
        let mut o = self.lock();
        o.writer.write_all(bytes)?;
        o.writer.flush()
    }

    /// Job `seq` is over: write what it left (ordered mode: in input order).
    pub fn finish(&self, seq: u64, bytes: Vec<u8>) -> io::Result<()> {
        let mut o = self.lock();
        if !o.ordered {
            if !bytes.is_empty() {
                o.writer.write_all(&bytes)?;
                o.writer.flush()?;
            }
            return Ok(());
        }
        o.pending.insert(seq, bytes);
        while let Some(bytes) = {
            let next = o.next;
            o.pending.remove(&next)
        } {
            o.writer.write_all(&bytes)?;
            o.next += 1;
        }
        o.writer.flush()
    }
}

/// One job's output: whole lines go to `SharedOut` on each flush (unordered), or are
/// kept until the job ends (ordered).
pub struct JobWriter<'a> {
    shared: &'a SharedOut,
    ordered: bool,
    buf: Vec<u8>,
}

impl<'a> JobWriter<'a> {
    pub fn new(shared: &'a SharedOut) -> Self {
        JobWriter {
            shared,
            ordered: shared.ordered(),
            buf: Vec::new(),
        }
    }

    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl Write for JobWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.ordered {
            return Ok(());
        }
        if let Some(end) = self.buf.iter().rposition(|b| *b == b'\n') {
            let rest = self.buf.split_off(end + 1);
            let lines = std::mem::replace(&mut self.buf, rest);
            self.shared.write_now(&lines)?;
        }
        Ok(())
    }
}

/// What the parallel run needs besides the plan.
pub struct Batch<'a> {
    pub client: &'a Client<'a>,
    pub plan: &'a Plan,
    pub active: &'a Active,
    pub mode: Mode,
    pub jobs: usize,
    pub keep_going: bool,
    pub conversation: Option<String>,
    pub done_ids: &'a HashSet<String>,
    pub out: &'a SharedOut,
    pub tally: &'a Mutex<Tally>,
}

impl Batch<'_> {
    /// Reads stdin and runs its prompts on `jobs` workers. `Err` only for a closed stdout.
    pub fn run(&self, input: impl BufRead, rules: Rules) -> Result<()> {
        let sched = Scheduler::new(self.jobs * 4);
        let closed: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.jobs {
                s.spawn(|| self.worker(&sched, &closed));
            }
            self.read(input, rules, &sched);
            sched.close();
        });
        match closed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read(&self, input: impl BufRead, rules: Rules, sched: &Scheduler) {
        let mut items = Items::new(input, rules);
        let mut conversation = self.conversation.clone();
        let mut seq = 0u64;
        while let Some(item) = items.next_item() {
            match item {
                Ok(Item::Prompt { line, prompt }) => {
                    let this = seq;
                    seq += 1;
                    if self.done_ids.contains(&resume::key(&prompt.effective_id())) {
                        self.tally.lock().unwrap_or_else(|p| p.into_inner()).skipped += 1;
                        let _ = self.out.finish(this, Vec::new());
                        continue;
                    }
                    let conversation = prompt
                        .conversation_id
                        .clone()
                        .or_else(|| conversation.clone());
                    if !sched.push(Job {
                        seq: this,
                        line,
                        prompt: *prompt,
                        conversation,
                    }) {
                        return;
                    }
                }
                Ok(Item::Switch { conversation_id }) => conversation = Some(conversation_id),
                Err(bad) => {
                    cli::report(TOOL, &bad.error);
                    let this = seq;
                    seq += 1;
                    let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
                    if !bad.is_line() {
                        tally.fail(this, bad.error.exit_code());
                        drop(tally);
                        let _ = self.out.finish(this, Vec::new());
                        return;
                    }
                    tally.invalid(this, bad.error.exit_code());
                    drop(tally);
                    // -o answers: the line is a record of the answers file, and the
                    // batch goes on.
                    let mut printer = Printer::new(self.mode, Vec::new());
                    printer.begin(bad.id);
                    let _ = printer.invalid(bad.text.as_deref(), &bad.error);
                    let _ = self.out.finish(this, printer.into_inner());
                    if bad.fatal || !(self.keep_going || self.mode == Mode::Answers) {
                        return;
                    }
                }
            }
        }
    }

    fn worker(&self, sched: &Scheduler, closed: &Mutex<Option<Error>>) {
        while let Some(job) = sched.take() {
            let mut printer = Printer::new(self.mode, JobWriter::new(self.out));
            printer.begin(crate::printed_id(self.mode, &job.prompt));
            let spec = self.plan.spec(&job.prompt, job.conversation.clone());
            let asked = ask(
                self.client,
                self.plan,
                self.active,
                &spec,
                &job.prompt,
                &mut printer,
            );
            let finished = self.out.finish(job.seq, printer.into_inner().into_buffer());
            sched.done(job.conversation.as_deref());
            let failure = match (asked, finished) {
                // The reader of stdout went away and every chat was cancelled: an
                // --ordered job's output is still held, and its failure is no news.
                (Ok(_), Ok(())) if self.active.cancelled() => coze_core::chat::unwanted(),
                (Ok((state, error)), Ok(())) => {
                    let fatal = self.tally.lock().unwrap_or_else(|p| p.into_inner()).record(
                        job.seq,
                        Some(job.line),
                        &state,
                        error,
                    );
                    if fatal {
                        sched.stop();
                    }
                    continue;
                }
                (Err(e), _) => e,
                (_, Err(e)) => Error::io("stdout", e),
            };
            // The reader of stdout went away: stop everything, quietly.
            sched.stop();
            closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(failure);
            return;
        }
    }
}
