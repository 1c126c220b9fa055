//! Ctrl-C, SIGTERM and SIGHUP for tools that hold a chat open on the server.
//!
//! The handler only records the signal (all a signal handler may safely do). A watcher
//! thread notices it, runs the tool's cleanup (cancelling the chat on the server, since
//! closing our socket does not stop it; the API's cancel endpoint exists for this), and
//! ends the process with 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for a
//! closed terminal (SIGHUP), whose chat would otherwise run on and block the next run
//! with 4016. The main thread may be blocked in a socket read at that moment, which is
//! why the cleanup cannot wait for it. A second signal ends the process at once.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// The signal received, 0 before any.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const SIG_DFL: usize = 0;

extern "C" {
    // libc's signal(2); std links libc already. The handler type is a plain address.
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_signal(signum: i32) {
    if SIGNAL.swap(signum, Ordering::SeqCst) != 0 {
        // A second signal: the person means it. _exit is async-signal-safe.
        extern "C" {
            fn _exit(status: i32) -> !;
        }
        // SAFETY: _exit takes a plain int and never returns; it is async-signal-safe.
        unsafe { _exit(128 + signum) }
    }
}

/// Installs the SIGINT/SIGTERM handler.
pub fn install() {
    // SAFETY: `on_signal` is an `extern "C" fn(i32)` that only touches an atomic (or
    // calls _exit), which is what a signal handler may do.
    unsafe {
        signal(SIGINT, on_signal as extern "C" fn(i32) as usize);
        signal(SIGTERM, on_signal as extern "C" fn(i32) as usize);
        signal(SIGHUP, on_signal as extern "C" fn(i32) as usize);
    }
}

/// Restores the default actions (for tests and for children we spawn).
pub fn uninstall() {
    // SAFETY: SIG_DFL is the documented default-action value.
    unsafe {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
    }
}

/// True once Ctrl-C was pressed (or SIGTERM or SIGHUP came).
pub fn interrupted() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// What the process ends with for the signal received: 128 + its number.
fn exit_status() -> i32 {
    128 + SIGNAL.load(Ordering::SeqCst)
}

/// Runs `work` with a watcher that calls `cleanup` and exits 128 + the signal on
/// Ctrl-C, SIGTERM or SIGHUP.
pub fn guarded<T>(tool: &str, cleanup: impl Fn() + Sync, work: impl FnOnce() -> T) -> T {
    install();
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if interrupted() {
                    cleanup();
                    let why = match exit_status() - 128 {
                        SIGTERM => "terminated",
                        SIGHUP => "the terminal closed",
                        _ => "interrupted",
                    };
                    // On a terminal showing both streams, a partial answer may have left
                    // the cursor mid-line: the message starts a line of its own.
                    let shared = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
                    let nl = if shared { "\n" } else { "" };
                    crate::say!("{nl}{tool}: {why}");
                    // Ends every thread, including the one blocked in a socket read.
                    std::process::exit(exit_status());
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
