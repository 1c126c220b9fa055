//! Ctrl-C, SIGTERM and SIGHUP for tools that hold a chat open on the server.
//!
//! The handler only records the signal (all a signal handler may safely do). A watcher
//! thread notices it, runs the tool's cleanup (cancelling the chat on the server, since
//! closing our socket does not stop it; the API's cancel endpoint exists for this), and
//! ends the process with 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for a
//! closed terminal (SIGHUP), whose chat would otherwise run on and block the next run
//! with 4016. The main thread may be blocked in a socket read at that moment, which is
//! why the cleanup cannot wait for it. A second signal ends the process at once.
//! [`guarded_step`] is the terminal chat's variant: Ctrl-C cancels one answer and the
//! session goes on.

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
                    end(tool);
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

/// Runs `work`, one step of a session at the terminal (coze-chat's answer to one
/// prompt), where Ctrl-C stops the step and not the session: on Ctrl-C the watcher
/// calls `cleanup` (cancelling the chat on the server) and `work` is left to end by
/// itself (its stream ends once the chat is cancelled); the step then returns, true
/// saying Ctrl-C came, and the next Ctrl-C is a new one. A second Ctrl-C before the
/// step has ended still ends the process at once: whoever presses it twice means it.
/// SIGTERM and SIGHUP end the process as under [`guarded`], after `cleanup`.
pub fn guarded_step<T>(
    tool: &str,
    cleanup: impl Fn() + Sync,
    work: impl FnOnce() -> T,
) -> (T, bool) {
    install();
    let finished = AtomicBool::new(false);
    let stopped = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        let watcher = s.spawn(|| loop {
            // Read before the signal, so a signal that came before `work` ended is
            // seen by one more look.
            let last = finished.load(Ordering::SeqCst);
            match SIGNAL.load(Ordering::SeqCst) {
                0 => {}
                SIGINT => {
                    if !stopped.swap(true, Ordering::SeqCst) {
                        cleanup();
                    }
                }
                _ => {
                    if !stopped.swap(true, Ordering::SeqCst) {
                        cleanup();
                    }
                    end(tool);
                }
            }
            if last {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        });
        let out = work();
        finished.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        let _ = watcher.join();
        out
    });
    // Only a Ctrl-C is forgotten: a SIGTERM that came since the watcher's last look
    // stays, and the next guard ends the process for it.
    let interrupted = SIGNAL
        .compare_exchange(SIGINT, 0, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    (out, interrupted || stopped.load(Ordering::SeqCst))
}

/// Says why the process ends and ends it with 128 + the signal received.
fn end(tool: &str) -> ! {
    let why = match exit_status() - 128 {
        SIGTERM => "terminated",
        SIGHUP => "the terminal closed",
        _ => "interrupted",
    };
    // On a terminal showing both streams, a partial answer may have left the cursor
    // mid-line: the message starts a line of its own.
    let shared = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let nl = if shared { "\n" } else { "" };
    crate::say!("{nl}{tool}: {why}");
    // Ends every thread, including the one blocked in a socket read.
    std::process::exit(exit_status());
}
