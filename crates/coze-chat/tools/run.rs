//! One run of a local tool: its program started without a shell in a process group of
//! its own, the call's arguments written on its stdin (from a thread, so a tool that
//! never reads cannot block us), its stdout read up to `MAX_OUTPUT`, and its group
//! killed when it outlives its time, writes too much, leaves children behind it, or the
//! run is stopped (Ctrl-C: [`kill_all`]). Its stderr is the person's (inherited).
//!
//! What a tool sees is decided here: the environment of coze-chat minus every variable
//! that holds or points at a token (the names in `Runner::hidden`), plus
//! `COZE_TOOL_NAME`, `COZE_TOOL_CALL_ID`, `COZE_CONVERSATION_ID`, `COZE_CHAT_ID`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most a tool may write: beyond it the output is refused (the bot is told).
pub const MAX_OUTPUT: usize = 1 << 20;

/// The process groups of the tools running now, for [`kill_all`].
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Set by [`kill_all`] (under `RUNNING`'s lock): no tool starts after it. The rest of
/// a round would start as the killed ones end, and outlive the process.
static STOPPED: AtomicBool = AtomicBool::new(false);

const SIGKILL: i32 = 9;

extern "C" {
    // libc's kill(2); std links libc already. A negative pid names a process group.
    fn kill(pid: i32, sig: i32) -> i32;
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) takes two plain ints; a group that is gone is ESRCH, ignored.
    unsafe {
        kill(-pgid, SIGKILL);
    }
}

/// Kills every tool running now, with everything each started (Ctrl-C, SIGTERM, a
/// closed stdout): a tool runs in a group of its own, which a terminal's Ctrl-C does
/// not reach. None starts after it: the run is over.
pub fn kill_all() {
    let running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    STOPPED.store(true, Ordering::SeqCst);
    for &pgid in running.iter() {
        kill_group(pgid);
    }
}

/// Lets tools start again after [`kill_all`]: the terminal chat goes on after Ctrl-C
/// stopped one answer (and its tools).
pub fn go_on() {
    let _running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    STOPPED.store(false, Ordering::SeqCst);
}

/// How to start a tool: its program (checked before the chat) and arguments.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
}

/// What a tool is told of its call.
pub struct Call<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub chat_id: &'a str,
    /// Written on its stdin, as the server sent it.
    pub arguments: &'a str,
}

/// How a run went.
#[derive(Debug)]
pub struct Ran {
    /// Its stdout, when it is usable.
    pub output: Option<String>,
    /// Its exit code; None when it was killed or never ran.
    pub exit_status: Option<i32>,
    pub ms: u64,
    /// What went wrong, in words for the bot and the person.
    pub problem: Option<String>,
}

/// Runs `program` for `call`, with `hidden` taken out of its environment, killed after
/// `timeout`.
pub fn run(program: &Program, call: &Call<'_>, hidden: &[OsString], timeout: Duration) -> Ran {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let mut cmd = Command::new(&program.path);
    cmd.args(&program.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    for name in hidden {
        cmd.env_remove(name);
    }
    cmd.env("COZE_TOOL_NAME", call.name)
        .env("COZE_TOOL_CALL_ID", call.id)
        .env("COZE_CONVERSATION_ID", call.conversation_id)
        .env("COZE_CHAT_ID", call.chat_id);
    // Registered before it can exist, so a Ctrl-C never misses it.
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    if STOPPED.load(Ordering::SeqCst) {
        return Ran {
            output: None,
            exit_status: None,
            ms: ms(),
            problem: Some("was not started: the run is being stopped".into()),
        };
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                output: None,
                exit_status: None,
                ms: ms(),
                problem: Some(format!("could not be started: {e}")),
            }
        }
    };
    // The group's id is the child's pid (process_group(0)).
    let pgid = child.id() as i32;
    running.push(pgid);
    drop(running);
    let arguments = call.arguments.as_bytes().to_vec();
    let mut stdin = child.stdin.take();
    // A tool that exits without reading makes this write fail (EPIPE): no matter.
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin.take() {
            let _ = s.write_all(&arguments);
        }
    });
    // The reader says whether it stopped for the limit, when it stops.
    let (tx, rx) = mpsc::channel::<bool>();
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = match stdout.take() {
            Some(s) => s.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out),
            None => Ok(0),
        };
        let over = out.len() > MAX_OUTPUT;
        let _ = tx.send(over);
        (out, over, read.err())
    });
    let deadline = started + timeout;
    let mut problem = None;
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            // It ended: whatever it left running in its group goes with it (and with
            // them any copy of the pipe that would keep the reader waiting).
            Ok(Some(status)) => {
                kill_group(pgid);
                break Some(status);
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(pgid);
                problem = Some(format!("could not be waited for: {e}"));
                let _ = child.wait();
                break None;
            }
        }
        if Instant::now() >= deadline {
            kill_group(pgid);
            problem = Some(format!(
                "timed out after {} s (--tool-timeout) and was stopped",
                timeout.as_secs_f64()
            ));
            let _ = child.wait();
            break None;
        }
        // Woken early by the reader's end; else a short tick to look at the child.
        match rx.recv_timeout(Duration::from_millis(10)) {
            // Too much output: the rest is not wanted, so the tool is stopped.
            Ok(true) => kill_group(pgid),
            Ok(false) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(5))
            }
        }
    };
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|&g| g != pgid);
    let _ = writer.join();
    let (out, over, read_err) = reader.join().unwrap_or((Vec::new(), false, None));
    let exit_status = status.and_then(|s| s.code());
    if problem.is_none() {
        problem = if over {
            Some(format!(
                "wrote more than {} MB; its output was not sent",
                MAX_OUTPUT >> 20
            ))
        } else if let Some(e) = read_err {
            Some(format!("its output could not be read: {e}"))
        } else {
            match status {
                Some(s) if s.success() => None,
                Some(s) => Some(match s.code() {
                    Some(c) => format!("exited with status {c}"),
                    None => describe_signal(s),
                }),
                None => Some("ended in an unknown way".into()),
            }
        };
    }
    let text = String::from_utf8(out);
    if problem.is_none() && text.is_err() {
        problem = Some("wrote output that is not UTF-8; it was not sent".into());
    }
    Ran {
        output: if over { None } else { text.ok() },
        exit_status,
        ms: ms(),
        problem,
    }
}

fn describe_signal(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match s.signal() {
        Some(sig) => format!("was killed by signal {sig}"),
        None => "ended without an exit status".into(),
    }
}
