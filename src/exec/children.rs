//! The worker's children: managed ones (push, pull, static) are watched, killed as a process
//! group and respawned; one-shot ones are only reaped. A 100 ms timer, armed while any child
//! exists, drains their output pipes and reaps them, logging each exit with its status and the
//! last line the child wrote to stderr.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};

use crate::ngx::log::Log;
use crate::ngx::now_ms;
use crate::ngx::process::{self, signal_name, SpawnSpec};
use crate::ngx::timer::{Again, Timer};
use crate::{log_error, log_info, log_warn};

use super::eval::{self, Source};

const POLL_MS: u64 = 100;
/// A child that lived less than this was a quick death: respawns back off (1 s, 2 s, … 60 s)
/// whatever `respawn_timeout` is, so a failing command never spins.
const QUICK_MS: u64 = 1000;
const MAX_BACKOFF_MS: u64 = 60_000;
/// What is kept of a line a child is still writing.
const MAX_LINE: usize = 1024;

/// Looks a variable up by name.
pub type Vars<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A command ready to run: variables substituted, redirections split off.
pub struct Prepared {
    /// The directive (`exec_push`…) and what it runs for (`live/cam1`), for logs.
    pub what: String,
    pub program: String,
    pub args: Vec<String>,
    pub redirects: Vec<eval::Redirect>,
}

impl Prepared {
    /// `var: None`: arguments are taken literally (exec_static).
    pub fn new(what: String, program: &str, args: &[String], var: Option<Vars>) -> Prepared {
        let mut p = Prepared { what, program: program.to_string(), args: Vec::new(), redirects: Vec::new() };
        for a in args {
            let a = var.map_or_else(|| a.clone(), |v| eval::eval(a, v));
            match eval::redirect(&a) {
                None => p.args.push(a),
                Some(Ok(r)) => p.redirects.push(r),
                Some(Err(e)) => log_error!(Log::cycle(), "{}: ignoring redirection: {}", p.what, e),
            }
        }
        p
    }

    fn describe(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        if s.len() > 300 {
            let mut cut = 300;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }
}

/// The end of what a child wrote on one pipe: its last complete line and the line in progress.
#[derive(Default)]
struct Tail {
    last: String,
    partial: Vec<u8>,
}

impl Tail {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&self.partial);
                let line = line.trim();
                if !line.is_empty() {
                    self.last = line.to_string();
                }
                self.partial.clear();
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }
    fn last_line(&self) -> String {
        let partial = String::from_utf8_lossy(&self.partial);
        let partial = partial.trim();
        if partial.is_empty() {
            self.last.clone()
        } else {
            partial.to_string()
        }
    }
}

/// A child process being watched.
struct Running {
    child: Child,
    started_ms: u64,
    err: Tail,
    out: Tail,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads what the child wrote so far (bounded per call, so a chatty child cannot hold the
    /// worker); a pipe at its end is dropped.
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        if let Some(p) = self.child.stderr.as_mut() {
            if drain_pipe(p, &mut buf, &mut self.err) {
                self.child.stderr = None;
            }
        }
        if let Some(p) = self.child.stdout.as_mut() {
            if drain_pipe(p, &mut buf, &mut self.out) {
                self.child.stdout = None;
            }
        }
    }

    /// `Some` once the child exited: its status, or `None` when someone else reaped it.
    fn exited(&mut self) -> Option<Option<ExitStatus>> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(st)) => Some(Some(st)),
            Err(_) => Some(None),
        }
    }

    /// "exited with code 1, last stderr line: \"…\"" (never "exited on signal": nginx's wording for
    /// crashed workers).
    fn report(&self, status: Option<ExitStatus>) -> String {
        let mut s = match status {
            Some(st) => match (st.code(), st.signal()) {
                (Some(c), _) => format!("exited with code {c}"),
                (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
                _ => "exited".to_string(),
            },
            None => "exited (status unknown: reaped elsewhere)".to_string(),
        };
        let err = self.err.last_line();
        if !err.is_empty() {
            s.push_str(&format!(", last stderr line: \"{err}\""));
        } else {
            let out = self.out.last_line();
            if !out.is_empty() {
                s.push_str(&format!(", last stdout line: \"{out}\""));
            }
        }
        s
    }
}

/// True at end of file (or on an error other than "nothing yet").
fn drain_pipe(p: &mut impl Read, buf: &mut [u8], tail: &mut Tail) -> bool {
    for _ in 0..64 {
        match p.read(buf) {
            Ok(0) => return true,
            Ok(n) => tail.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    false
}

fn clean_ok(status: Option<ExitStatus>) -> bool {
    status.is_some_and(|s| s.success())
}

/// Starts a child for `cmd`; managed children die with the worker (PR_SET_PDEATHSIG).
fn spawn(cmd: &Prepared, death_signal: Option<i32>) -> Result<Running, String> {
    let mut files: Vec<(File, i32)> = Vec::new();
    let mut dups = Vec::new();
    for r in &cmd.redirects {
        match &r.source {
            Source::Fd(from) => dups.push((*from, r.fd)),
            Source::File { path, append, read } => {
                let mut o = OpenOptions::new();
                if *read {
                    o.read(true);
                } else {
                    o.write(true).create(true).mode(0o644);
                    if *append {
                        o.append(true);
                    } else {
                        o.truncate(true);
                    }
                }
                match o.open(path) {
                    Ok(f) => files.push((f, r.fd)),
                    Err(e) => log_error!(Log::cycle(), "{}: cannot open \"{}\" for {}: {}", cmd.what, path, r.fd, e),
                }
            }
        }
    }
    let spec = SpawnSpec { program: &cmd.program, args: &cmd.args, files: &files, dups: &dups, death_signal };
    let t0 = std::time::Instant::now();
    let child = process::spawn(&spec).map_err(|e| format!("cannot run \"{}\": {}", cmd.program, e))?;
    let us = t0.elapsed().as_micros();
    log_info!(
        Log::cycle(),
        "{}: started \"{}\", pid {} (spawned in {}.{:03} ms)",
        cmd.what,
        cmd.describe(),
        child.id(),
        us / 1000,
        us % 1000
    );
    Ok(Running { child, started_ms: now_ms(), err: Tail::default(), out: Tail::default() })
}

/// Which lifetime a managed child has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Push,
    Pull,
    Static,
}

enum State {
    Running(Running),
    /// Respawn due at this time.
    Waiting(u64),
    /// Exited, not to be respawned.
    Dead,
}

struct Managed {
    id: u64,
    kind: Kind,
    cmd: Prepared,
    /// The delay before a respawn; `None`: respawn off.
    respawn_ms: Option<u64>,
    kill_signal: i32,
    state: State,
    quick_deaths: u32,
}

impl Managed {
    fn launch(&mut self) {
        self.state = match spawn(&self.cmd, Some(self.kill_signal)) {
            Ok(r) => State::Running(r),
            Err(e) => {
                log_error!(Log::cycle(), "{}: {}", self.cmd.what, e);
                self.quick_deaths += 1;
                self.next_after_death()
            }
        };
    }

    fn next_after_death(&self) -> State {
        match self.respawn_ms {
            None => State::Dead,
            Some(ms) => {
                let backoff = if self.quick_deaths == 0 {
                    0
                } else {
                    (QUICK_MS << (self.quick_deaths - 1).min(6)).min(MAX_BACKOFF_MS)
                };
                State::Waiting(now_ms() + ms.max(backoff))
            }
        }
    }

    /// One look at the child: reaps it and plans its respawn.
    fn poll(&mut self, now: u64) {
        match &mut self.state {
            State::Running(r) => {
                r.drain();
                let Some(status) = r.exited() else { return };
                r.drain();
                let lived = now.saturating_sub(r.started_ms);
                let report = r.report(status);
                let pid = r.pid();
                // What the child left behind in its group goes with it.
                process::kill_group(pid, self.kill_signal);
                if lived < QUICK_MS {
                    self.quick_deaths += 1;
                } else {
                    self.quick_deaths = 0;
                }
                self.state = self.next_after_death();
                let plan = match self.state {
                    State::Waiting(at) => format!("respawning in {} ms", at.saturating_sub(now)),
                    _ => "not respawned (respawn off)".to_string(),
                };
                log_warn!(
                    Log::cycle(),
                    "{}: \"{}\" (pid {}) {}; {}",
                    self.cmd.what,
                    self.cmd.program,
                    pid,
                    report,
                    plan
                );
            }
            State::Waiting(at) if now >= *at => self.launch(),
            _ => {}
        }
    }

    /// Signals the whole group; the process is reaped later as a detached child.
    fn stop(self) -> Option<Detached> {
        match self.state {
            State::Running(r) => {
                process::kill_group(r.pid(), self.kill_signal);
                Some(Detached { what: self.cmd.what, program: self.cmd.program, run: r, stopped: true })
            }
            _ => None,
        }
    }
}

/// A child nobody waits for: a one-shot command, or a managed one that was stopped.
struct Detached {
    what: String,
    program: String,
    run: Running,
    stopped: bool,
}

impl Detached {
    /// True once reaped (and logged).
    fn poll(&mut self) -> bool {
        self.run.drain();
        let Some(status) = self.run.exited() else {
            return false;
        };
        self.run.drain();
        let report = self.run.report(status);
        let pid = self.run.pid();
        if self.stopped || clean_ok(status) {
            log_info!(Log::cycle(), "{}: \"{}\" (pid {}) {}", self.what, self.program, pid, report);
        } else {
            log_warn!(Log::cycle(), "{}: \"{}\" (pid {}) {}", self.what, self.program, pid, report);
        }
        true
    }
}

/// The children of exec_pull lines for one stream: started with its first player.
struct Pull {
    players: usize,
    ids: Vec<u64>,
}

#[derive(Default)]
struct Registry {
    managed: Vec<Managed>,
    detached: Vec<Detached>,
    pulls: HashMap<(usize, String), Pull>,
    timer: Option<Timer>,
    armed: bool,
    next_id: u64,
}

thread_local! {
    static REG: RefCell<Registry> = RefCell::new(Registry::default());
}

impl Registry {
    fn watch(&mut self) {
        if self.armed {
            return;
        }
        let t = self.timer.get_or_insert_with(|| Timer::new(tick));
        t.arm(POLL_MS);
        self.armed = true;
    }

    fn start(&mut self, kind: Kind, cmd: Prepared, respawn_ms: Option<u64>, kill_signal: i32) -> u64 {
        self.next_id += 1;
        let mut m =
            Managed { id: self.next_id, kind, cmd, respawn_ms, kill_signal, state: State::Dead, quick_deaths: 0 };
        m.launch();
        self.managed.push(m);
        self.watch();
        self.next_id
    }

    fn stop(&mut self, id: u64) {
        if let Some(i) = self.managed.iter().position(|m| m.id == id) {
            let m = self.managed.swap_remove(i);
            if let Some(d) = m.stop() {
                self.detached.push(d);
            }
        }
    }

    fn poll(&mut self) -> bool {
        let now = now_ms();
        if process::worker_exiting() && self.managed.iter().any(|m| m.kind == Kind::Static) {
            // A worker of an old generation: the new worker 0 runs the static commands now.
            let ids: Vec<u64> = self.managed.iter().filter(|m| m.kind == Kind::Static).map(|m| m.id).collect();
            for id in ids {
                self.stop(id);
            }
        }
        for m in &mut self.managed {
            m.poll(now);
        }
        self.detached.retain_mut(|d| !d.poll());
        !self.managed.is_empty() || !self.detached.is_empty()
    }
}

fn tick() -> Again {
    REG.with(|r| {
        let mut r = r.borrow_mut();
        if r.poll() {
            Again::After(POLL_MS)
        } else {
            r.armed = false;
            Again::Stop
        }
    })
}

/// Runs a one-shot command (exec_publish, exec_play_done, exec_record_done…).
pub fn run_once(cmd: Prepared) {
    match spawn(&cmd, None) {
        Ok(run) => REG.with(|r| {
            let mut r = r.borrow_mut();
            r.detached.push(Detached { what: cmd.what, program: cmd.program, run, stopped: false });
            r.watch();
        }),
        Err(e) => log_error!(Log::cycle(), "{}: {}", cmd.what, e),
    }
}

/// Starts a managed child; `stop` with the returned id ends it.
pub fn start(kind: Kind, cmd: Prepared, respawn_ms: Option<u64>, kill_signal: i32) -> u64 {
    REG.with(|r| r.borrow_mut().start(kind, cmd, respawn_ms, kill_signal))
}

pub fn stop(id: u64) {
    REG.with(|r| r.borrow_mut().stop(id));
}

/// A player of `key` arrived: the first one starts the commands `make` prepares.
pub fn pull_join(key: (usize, String), make: impl FnOnce() -> Vec<(Prepared, Option<u64>, i32)>) {
    REG.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(p) = r.pulls.get_mut(&key) {
            p.players += 1;
            return;
        }
        let ids = make().into_iter().map(|(cmd, respawn, sig)| r.start(Kind::Pull, cmd, respawn, sig)).collect();
        r.pulls.insert(key, Pull { players: 1, ids });
    })
}

/// A player of `key` left: the last one stops its commands.
pub fn pull_leave(key: &(usize, String)) {
    REG.with(|r| {
        let mut r = r.borrow_mut();
        let Some(p) = r.pulls.get_mut(key) else {
            return;
        };
        p.players -= 1;
        if p.players == 0 {
            let p = r.pulls.remove(key).unwrap_or(Pull { players: 0, ids: Vec::new() });
            for id in p.ids {
                r.stop(id);
            }
        }
    })
}

/// The worker exits: every managed child's group gets its kill signal; the watch timer goes
/// while the event loop still exists. One-shot children are left to finish.
pub fn stop_all() {
    REG.with(|r| {
        let mut r = r.borrow_mut();
        let ids: Vec<u64> = r.managed.iter().map(|m| m.id).collect();
        if !ids.is_empty() {
            log_info!(Log::cycle(), "exec: worker exits, stopping {} child(ren)", ids.len());
        }
        for id in ids {
            r.stop(id);
        }
        r.pulls.clear();
        r.timer = None;
        r.armed = false;
    })
}
