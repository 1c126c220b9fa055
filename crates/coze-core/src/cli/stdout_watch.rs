//! Noticing that the reader of stdout went away (`| head -1`) while nothing is written.
//!
//! A write to a closed pipe fails at once (EPIPE), but a run may not write for the
//! whole length of a chat: `-o answers` writes one record when an answer is complete,
//! `--ordered` holds output back, and `--jobs N` has N chats going. Before this, every
//! chat in flight ran to its end, and the next ones started, until some write failed.
//! A watcher thread blocks in poll(2) on fd 1, where a pipe whose read end is closed
//! reports POLLERR (a socket POLLHUP); files and terminals never do, so watching them
//! costs one sleeping thread. When it fires, the caller's `on_close` cancels what is in
//! flight (coze-chat: `chat::Active::cancel`, which also refuses chats that start
//! later; coze-workflow: each stream ends at its next event, as a workflow run has no
//! cancel), and the next write meets the closed pipe as before.

use std::io;
use std::os::fd::AsRawFd;

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 0x1;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;

extern "C" {
    // libc's poll(2); std links libc already. nfds_t is an unsigned long on Linux.
    fn poll(fds: *mut PollFd, nfds: std::ffi::c_ulong, timeout: i32) -> i32;
}

/// Whether `fd` reports that its other end is gone; blocks until that happens or
/// `wake` becomes readable (or reaches EOF). False: woken, or `fd` is not watchable.
fn wait_for_hangup(fd: i32, wake: i32) -> bool {
    let mut fds = [
        // events 0: POLLERR and POLLHUP are always reported, nothing else is asked.
        PollFd {
            fd,
            events: 0,
            revents: 0,
        },
        PollFd {
            fd: wake,
            events: POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two pollfd structs for the whole call, and
        // poll writes only their `revents`.
        let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as std::ffi::c_ulong, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue; // a signal (Ctrl-C is handled elsewhere)
            }
            return false;
        }
        if fds[1].revents != 0 || fds[0].revents & POLLNVAL != 0 {
            return false;
        }
        if fds[0].revents & (POLLERR | POLLHUP) != 0 {
            return true;
        }
    }
}

/// Runs `work`; meanwhile, when `watch` is true, a thread watches stdout and calls
/// `on_close` once if its reader goes away.
pub fn watch<T>(watch: bool, on_close: impl Fn() + Sync, work: impl FnOnce() -> T) -> T {
    if !watch {
        return work();
    }
    // Dropping the writer wakes the watcher when `work` is over.
    let Ok((wake, done)) = io::pipe() else {
        return work();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            if wait_for_hangup(io::stdout().as_raw_fd(), wake.as_raw_fd()) {
                on_close();
            }
        });
        let out = work();
        drop(done);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A pipe's write end reports the reader's going away; a wake-up ends the wait.
    #[test]
    fn a_closed_reader_is_seen_and_a_wake_up_ends_the_wait() {
        let (reader, writer) = io::pipe().unwrap();
        let (wake_r, wake_w) = io::pipe().unwrap();
        let fd = writer.as_raw_fd();
        let wake = wake_r.as_raw_fd();
        let t = std::thread::spawn(move || wait_for_hangup(fd, wake));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "nothing happened yet");
        drop(reader);
        assert!(t.join().unwrap(), "the reader went away");

        let (_reader, writer) = io::pipe().unwrap();
        let fd = writer.as_raw_fd();
        let start = Instant::now();
        let t = std::thread::spawn(move || wait_for_hangup(fd, wake));
        std::thread::sleep(Duration::from_millis(50));
        drop(wake_w);
        assert!(!t.join().unwrap(), "woken, the reader is still there");
        assert!(start.elapsed() < Duration::from_secs(5));
        drop(writer);
        drop(wake_r);
    }
}
