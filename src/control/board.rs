//! Each worker's side of the control board: a heartbeat and a look for new commands every
//! 100 ms; a command runs on this worker's sessions and is answered with its count. A worker
//! shutting down after a reload goes on (its timer is cancelable: it never holds the exit up),
//! so commands posted by the new workers reach the sessions it still has.

use std::cell::{Cell, RefCell};

use serde_json::Value;

use crate::core::peer::Redirect;
use crate::core::running_servers;
use crate::core::CoreModule;
use crate::live::view;
use crate::ngx::shm::Board;
use crate::ngx::timer::{Again, Timer};

use super::ControlModule;

const POLL_MS: u64 = 100;

thread_local! {
    static POLL: RefCell<Option<Timer>> = const { RefCell::new(None) };
    /// The last command this worker ran (or posted).
    static DONE: Cell<u64> = const { Cell::new(0) };
    /// This worker's entry on the board, taken by pid at start.
    static ENTRY: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This worker's entry on the board; `usize::MAX` without one (every entry is another's).
pub fn worker_slot() -> usize {
    ENTRY.with(|e| e.get()).unwrap_or(usize::MAX)
}

pub fn pid() -> u64 {
    u64::from(std::process::id())
}

pub fn board() -> Option<&'static Board> {
    // SAFETY: reads the module index nginx assigned at configuration.
    let root = unsafe { &*std::ptr::addr_of!(crate::core::ngx_rtmp_rs_module) };
    crate::ngx::block::running_root(root)?.main::<ControlModule>().board.as_ref()
}

pub fn start() {
    let t = Timer::new(|| {
        poll();
        Again::After(POLL_MS)
    });
    t.arm(POLL_MS);
    POLL.with(|p| *p.borrow_mut() = Some(t));
    if let Some(b) = board() {
        let entry = b.join(pid(), crate::ngx::process::alive);
        if entry.is_none() {
            crate::log_warn!(
                crate::ngx::log::Log::cycle(),
                "rtmp control: every entry of the board is in use; commands from other workers reach this worker's sessions uncounted"
            );
        }
        ENTRY.with(|e| e.set(entry));
        // Commands posted before this worker started are not its own to run.
        DONE.with(|d| d.set(b.seq()));
        b.beat(worker_slot());
    }
}

pub fn stop() {
    POLL.with(|p| *p.borrow_mut() = None);
    if let (Some(b), Some(i)) = (board(), ENTRY.with(|e| e.take())) {
        b.leave(i);
    }
}

/// This worker posted command `seq` itself (and ran it already).
pub fn mark_done(seq: u64) {
    DONE.with(|d| d.set(seq));
}

fn poll() {
    let Some(b) = board() else { return };
    b.beat(worker_slot());
    let done = DONE.with(|d| d.get());
    let Some((seq, cmd)) = b.pending(done) else { return };
    DONE.with(|d| d.set(seq));
    let count = serde_json::from_slice::<Value>(&cmd).map_or(0, |c| execute(&c));
    b.ack(worker_slot(), seq, count);
}

/// Runs a command on this worker's sessions; returns how many it acted on.
pub fn execute(cmd: &Value) -> u64 {
    let text = |k: &str| cmd.get(k).and_then(Value::as_str).map(str::to_string);
    let who = text("who").unwrap_or_default();
    let Some(srv) = cmd.get("srv").and_then(Value::as_u64).and_then(|i| running_servers().get(i as usize).copied())
    else {
        return 0;
    };
    let (app, name, addr) = (text("app"), text("name"), text("addr"));
    let clientid = cmd.get("clientid").and_then(Value::as_u64);
    let newname = text("newname");
    let mut count = 0;
    for (app_name, app_ctx) in &srv.srv::<CoreModule>().applications {
        if app.as_ref().is_some_and(|a| a != app_name) {
            continue;
        }
        for m in view::members(*app_ctx, name.as_deref()) {
            // Links between workers are not clients: the stream's publisher and players are
            // acted on in the workers that have them.
            if m.peer.info().internal {
                continue;
            }
            let wanted = match who.as_str() {
                "publisher" => m.publishing,
                "subscriber" => !m.publishing,
                _ => true,
            };
            if !wanted
                || addr.as_ref().is_some_and(|a| *a != m.peer.address())
                || clientid.is_some_and(|id| id != m.peer.id)
            {
                continue;
            }
            match (text("action").as_deref(), &newname) {
                (Some("drop"), _) => m.peer.request_close("dropped by the control API".into()),
                (Some("record"), _) => {
                    // Publishers whose application has that recorder.
                    let rec = text("rec").unwrap_or_default();
                    if !m.publishing || !crate::record::has_recorder(*app_ctx, &rec) {
                        continue;
                    }
                    let start = cmd.get("start").and_then(Value::as_bool).unwrap_or(false);
                    m.peer.request_record(&rec, start);
                }
                (Some("redirect"), Some(n)) => m.peer.request_redirect(Redirect {
                    name: n.clone(),
                    publishers: m.publishing,
                    players: !m.publishing,
                }),
                _ => continue,
            }
            count += 1;
        }
    }
    count
}
