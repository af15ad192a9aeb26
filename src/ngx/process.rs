//! Child processes of a worker (the exec module): spawned without blocking the event loop, with no
//! inherited nginx descriptors, in their own process group, and signalled as a group.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nginx_sys as sys;

/// The `PATH` children get when nginx left none in the environment (it clears it for workers).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What a child is started with.
pub struct SpawnSpec<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    /// `(file, fd)`: the child gets `file` as descriptor `fd` (redirections such as `2>>log`).
    pub files: &'a [(File, RawFd)],
    /// `(from, to)`: the child's `to` becomes a copy of its `from` (`2>&1`), after `files`.
    pub dups: &'a [(RawFd, RawFd)],
    /// A signal the child gets when this worker dies (PR_SET_PDEATHSIG), for managed children.
    pub death_signal: Option<i32>,
}

/// Starts a child: stdin from /dev/null, stdout and stderr to pipes (set non-blocking here) the
/// caller reads, in a new process group whose id is the child's pid. Every descriptor above 2 is
/// closed at exec by one `close_range` call, whatever the descriptor limit is.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Child> {
    let mut cmd = Command::new(spec.program);
    cmd.args(spec.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    let parent = std::process::id() as i32;
    let death = spec.death_signal;
    let mut moves: Vec<(RawFd, RawFd)> = spec.files.iter().map(|(f, to)| (f.as_raw_fd(), *to)).collect();
    moves.extend_from_slice(spec.dups);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (prctl, getppid, signal, close_range, fcntl, dup2, getrlimit); it allocates
    // nothing (`moves` was built in the parent).
    unsafe {
        cmd.pre_exec(move || {
            if let Some(sig) = death {
                if sys::prctl(sys::PR_SET_PDEATHSIG as i32, sig as std::ffi::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The worker died between fork and prctl: nobody would ever kill this child.
                if sys::getppid() != parent {
                    sys::_exit(1);
                }
            }
            // nginx ignores these; an ignored signal stays ignored across exec.
            sys::signal(sys::SIGPIPE as i32, None);
            sys::signal(sys::SIGSYS as i32, None);
            cloexec_from_3();
            for &(from, to) in &moves {
                if from == to {
                    sys::fcntl(to, sys::F_SETFD as i32, 0);
                } else if sys::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    for fd in [child.stdout.as_ref().map(|p| p.as_raw_fd()), child.stderr.as_ref().map(|p| p.as_raw_fd())]
        .into_iter()
        .flatten()
    {
        set_nonblocking(fd);
    }
    Ok(child)
}

/// Marks every descriptor from 3 up close-on-exec: one system call on Linux ≥ 5.11; older
/// kernels get a loop bounded by the descriptor limit, at most 65536 descriptors.
///
/// # Safety
/// Only in a forked child before exec.
unsafe fn cloexec_from_3() {
    // SAFETY: plain system calls on this process's descriptor table.
    unsafe {
        if sys::close_range(3, u32::MAX, sys::CLOSE_RANGE_CLOEXEC as i32) == 0 {
            return;
        }
        let mut lim = std::mem::MaybeUninit::<sys::rlimit>::zeroed();
        let max = if sys::getrlimit(sys::__rlimit_resource_RLIMIT_NOFILE, lim.as_mut_ptr()) == 0 {
            lim.assume_init().rlim_cur.min(65536) as i32
        } else {
            1024
        };
        for fd in 3..max {
            sys::fcntl(fd, sys::F_SETFD as i32, sys::FD_CLOEXEC as i32);
        }
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        let fl = sys::fcntl(fd, sys::F_GETFL as i32);
        if fl >= 0 {
            sys::fcntl(fd, sys::F_SETFL as i32, fl | sys::O_NONBLOCK as i32);
        }
    }
}

/// Sends `sig` to the process group `pgid` (a child started by `spawn`, with its own children).
/// False when the group no longer exists.
pub fn kill_group(pgid: u32, sig: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals that process group only.
    unsafe { sys::kill(-pgid, sig) == 0 }
}

/// Lets this worker reap its own children: nginx's SIGCHLD handler (inherited from the master)
/// would reap them first, losing their exit status and logging an alert for every one. Workers
/// have no other children.
pub fn reap_own_children() {
    // SAFETY: restores the default disposition of SIGCHLD in this worker only.
    unsafe {
        sys::signal(sys::SIGCHLD as i32, None);
    }
}

/// This worker's number (0 .. worker_processes-1); a new generation of workers after a reload
/// is numbered from 0 again.
pub fn worker_number() -> usize {
    super::worker_number()
}

/// True once this worker was asked to stop (graceful or not): it keeps serving its clients but
/// starts nothing new.
pub fn worker_exiting() -> bool {
    // SAFETY: flags written by this process's signal handler and event loop only.
    unsafe { sys::ngx_exiting != 0 || sys::ngx_quit != 0 || sys::ngx_terminate != 0 }
}

/// Signal numbers by the names `exec_kill_signal` accepts (POSIX.1-1990, as the C module).
pub const SIGNALS: &[(&str, u32)] = &[
    ("HUP", sys::SIGHUP),
    ("INT", sys::SIGINT),
    ("QUIT", sys::SIGQUIT),
    ("ILL", sys::SIGILL),
    ("ABRT", sys::SIGABRT),
    ("FPE", sys::SIGFPE),
    ("KILL", sys::SIGKILL),
    ("SEGV", sys::SIGSEGV),
    ("PIPE", sys::SIGPIPE),
    ("ALRM", sys::SIGALRM),
    ("TERM", sys::SIGTERM),
    ("USR1", sys::SIGUSR1),
    ("USR2", sys::SIGUSR2),
    ("CHLD", sys::SIGCHLD),
    ("CONT", sys::SIGCONT),
    ("STOP", sys::SIGSTOP),
    ("TSTP", sys::SIGTSTP),
    ("TTIN", sys::SIGTTIN),
    ("TTOU", sys::SIGTTOU),
];

/// The name of a signal number, for logs ("" when it has none here).
pub fn signal_name(sig: i32) -> &'static str {
    SIGNALS.iter().find(|(_, n)| *n as i32 == sig).map_or("", |(s, _)| s)
}

/// Whether process `pid` exists (a worker that crashed leaves its shared-memory entries behind).
pub fn alive(pid: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { sys::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(sys::EPERM as i32)
}
