//! The board between the reader and the workers of `--jobs N`: the reader (the main
//! thread) puts jobs on it, at most a few per worker ahead; each worker takes the
//! first job whose key is not busy, so one key (coze-chat: a conversation) never has
//! two jobs at once and its jobs keep their input order, while jobs without a key run
//! freely.

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex};

use super::Item;

/// One item to run, with where it stood in the input.
pub(super) struct Job<I> {
    pub seq: u64,
    pub item: I,
}

struct Board<I> {
    queue: VecDeque<Job<I>>,
    /// Keys with a job in flight.
    busy: HashSet<String>,
    closed: bool,
    stopped: bool,
}

/// The jobs waiting and the keys in use, shared by reader and workers.
pub(super) struct Scheduler<I> {
    board: Mutex<Board<I>>,
    changed: Condvar,
    capacity: usize,
}

impl<I: Item> Scheduler<I> {
    pub fn new(capacity: usize) -> Scheduler<I> {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Board<I>> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job, waiting while the board is full (so a huge input is not read into
    /// memory ahead of the workers). False once the run has been stopped.
    pub fn push(&self, job: Job<I>) -> bool {
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

    /// Stop handing out jobs (a closed stdout, an authentication failure).
    pub fn stop(&self) {
        let mut b = self.lock();
        b.stopped = true;
        b.queue.clear();
        self.changed.notify_all();
    }

    /// The first job whose key is free, marking it busy; None when done.
    pub fn take(&self) -> Option<Job<I>> {
        let mut b = self.lock();
        loop {
            if b.stopped {
                return None;
            }
            let free = |j: &Job<I>| j.item.key().is_none_or(|k| !b.busy.contains(k));
            if let Some(i) = b.queue.iter().position(free) {
                let job = b.queue.remove(i).expect("position is in range");
                if let Some(k) = job.item.key() {
                    b.busy.insert(k.to_owned());
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

    /// The job's key is free again.
    pub fn done(&self, key: Option<&str>) {
        if let Some(k) = key {
            self.lock().busy.remove(k);
        }
        self.changed.notify_all();
    }
}
