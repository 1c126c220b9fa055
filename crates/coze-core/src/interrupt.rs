//! Ctrl-C for tools that hold a chat open on the server.
//!
//! The handler only sets a flag (all a signal handler may safely do). A watcher thread
//! notices it, runs the tool's cleanup (cancelling the chat on the server, since
//! closing our socket does not stop it: coze-api.md §6.2), and ends the process with
//! 130. The main thread may be blocked in a socket read at that moment, which is why
//! the cleanup cannot wait for it. A second Ctrl-C ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIG_DFL: usize = 0;

extern "C" {
    // libc's signal(2); std links libc already. The handler type is a plain address.
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_signal(_signum: i32) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second Ctrl-C: the person means it. _exit is async-signal-safe.
        extern "C" {
            fn _exit(status: i32) -> !;
        }
        // SAFETY: _exit takes a plain int and never returns; it is async-signal-safe.
        unsafe { _exit(130) }
    }
}

/// Installs the SIGINT/SIGTERM handler.
pub fn install() {
    // SAFETY: `on_signal` is an `extern "C" fn(i32)` that only touches an atomic (or
    // calls _exit), which is what a signal handler may do.
    unsafe {
        signal(SIGINT, on_signal as extern "C" fn(i32) as usize);
        signal(SIGTERM, on_signal as extern "C" fn(i32) as usize);
    }
}

/// Restores the default actions (for tests and for children we spawn).
pub fn uninstall() {
    // SAFETY: SIG_DFL is the documented default-action value.
    unsafe {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
}

/// True once Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs `work` with a watcher that calls `cleanup` and exits 130 on Ctrl-C.
pub fn guarded<T>(tool: &str, cleanup: impl Fn() + Sync, work: impl FnOnce() -> T) -> T {
    install();
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if interrupted() {
                    cleanup();
                    crate::say!("{tool}: interrupted");
                    // Ends every thread, including the one blocked in a socket read.
                    std::process::exit(130);
                }
                // Parked rather than slept, so the end of `work` wakes it at once.
                std::thread::park_timeout(Duration::from_millis(20));
            }
        });
        let out = work();
        finished.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        out
    })
}
