//! This worker's snapshot: built from the running configuration and the live module's view,
//! published in its shared-memory slot shortly after sessions come or go (at most every 100 ms)
//! and every second, so that every worker's stat page sees it. A worker shutting down after a
//! reload goes on publishing (its timer is cancelable: it never holds the exit up) until it
//! exits, so the new workers' pages list the sessions it still has.

use std::cell::RefCell;

use rtmp_proto::stat::{self, Bandwidth};

use crate::core::peer::worker_totals;
use crate::core::{running_servers, CoreModule};
use crate::core::hooks::Step;
use crate::live::LiveModule;
use crate::ngx::now_ms;
use crate::ngx::shm::SlotZone;
use crate::ngx::timer::{Again, Timer};

use super::StatModule;

/// Publish at most this often when sessions change.
const MIN_GAP_MS: u64 = 100;
const PERIOD_MS: u64 = 1000;

#[derive(Default)]
struct Publisher {
    timer: Option<Timer>,
    /// When the snapshot was last published (nginx msec).
    last_ms: u64,
    /// A publish is scheduled sooner than the period.
    soon: bool,
    /// `worker_totals` at the last snapshot, for the worker's bandwidth.
    seen_in: u64,
    seen_out: u64,
    bw_in: Bandwidth,
    bw_out: Bandwidth,
    started_s: u64,
    too_big_logged: bool,
    /// This worker's slot in the zone, taken by pid at start (or, when every slot was in use,
    /// at a later publish).
    slot: Option<usize>,
    no_slot_logged: bool,
    /// The worker exits: its slot was given back and is not taken again.
    exited: bool,
}

thread_local! {
    static STATE: RefCell<Publisher> = RefCell::new(Publisher::default());
}

fn my_pid() -> u64 {
    u64::from(std::process::id())
}

fn my_slot(zone: &SlotZone) -> Option<usize> {
    STATE.with(|st| {
        let mut st = st.try_borrow_mut().ok()?;
        if st.slot.is_none() && !st.exited {
            st.slot = zone.claim(my_pid(), crate::ngx::process::alive);
            if st.slot.is_none() && !st.no_slot_logged {
                st.no_slot_logged = true;
                crate::log_warn!(
                    crate::ngx::log::Log::cycle(),
                    "rtmp stat: every slot of the shared zone is in use; other workers' pages do not list this worker's sessions until one is free"
                );
            }
        }
        st.slot
    })
}

/// The worker starts: it takes a slot, and the period timer runs from now on.
pub fn start() {
    if let Some(z) = zone() {
        my_slot(z);
    }
    STATE.with(|st| {
        let mut st = st.borrow_mut();
        st.started_s = crate::ngx::files::unix_time().max(0) as u64;
        let t = Timer::new(|| {
            publish();
            Again::After(PERIOD_MS)
        });
        t.arm(PERIOD_MS);
        st.timer = Some(t);
    });
}

/// The worker exits: its slot empties and is free, so pages stop listing it.
pub fn stop() {
    let slot = STATE.with(|st| {
        let mut st = st.borrow_mut();
        st.timer = None;
        st.exited = true;
        st.slot.take()
    });
    if let (Some(zone), Some(slot)) = (zone(), slot) {
        zone.release(slot);
    }
}

/// A hook saw a session change: publish soon.
pub fn changed() -> Step {
    mark_dirty();
    Step::Continue
}

pub fn mark_dirty() {
    STATE.with(|st| {
        let Ok(mut st) = st.try_borrow_mut() else { return };
        if st.soon {
            return;
        }
        let since = now_ms().saturating_sub(st.last_ms);
        if let Some(t) = &st.timer {
            t.arm(MIN_GAP_MS.saturating_sub(since));
        }
        st.soon = true;
    });
}

fn zone() -> Option<&'static SlotZone> {
    // SAFETY: reads the module index nginx assigned at configuration.
    let root = unsafe { &*std::ptr::addr_of!(crate::core::ngx_rtmp_rs_module) };
    crate::ngx::block::running_root(root)?.main::<StatModule>().zone.as_ref()
}

/// Builds and publishes this worker's snapshot; returns it.
pub fn publish() -> stat::Worker {
    let w = local_snapshot();
    if let Some((zone, slot)) = zone().and_then(|z| Some((z, my_slot(z)?))) {
        let bytes = serde_json::to_vec(&w).unwrap_or_default();
        let pid = u64::from(w.pid);
        if !zone.write(slot, pid, &bytes) {
            // Too many clients for the slot: other workers' pages show this one without them.
            let mut lean = w.clone();
            for s in lean.servers.iter_mut().flat_map(|s| s.applications.iter_mut()).flat_map(|a| a.streams.iter_mut()) {
                s.clients.clear();
            }
            let _ = zone.write(slot, pid, &serde_json::to_vec(&lean).unwrap_or_default());
            STATE.with(|st| {
                if let Ok(mut st) = st.try_borrow_mut() {
                    if !st.too_big_logged {
                        st.too_big_logged = true;
                        crate::log_warn!(
                            crate::ngx::log::Log::cycle(),
                            "rtmp stat: this worker's snapshot ({} bytes) exceeds its shared slot; other workers list its streams without clients",
                            bytes.len()
                        );
                    }
                }
            });
        }
    }
    w
}

/// This worker's streams and counters now.
pub fn local_snapshot() -> stat::Worker {
    let now = now_ms();
    let totals = worker_totals();
    let (bw_in, bw_out) = STATE.with(|st| {
        let Ok(mut st) = st.try_borrow_mut() else { return (0, 0) };
        let (din, dout) = (totals.bytes_in.saturating_sub(st.seen_in), totals.bytes_out.saturating_sub(st.seen_out));
        st.seen_in = totals.bytes_in;
        st.seen_out = totals.bytes_out;
        st.bw_in.add(din, now);
        st.bw_out.add(dout, now);
        st.last_ms = now;
        st.soon = false;
        (st.bw_in.bits_per_sec(now), st.bw_out.bits_per_sec(now))
    });
    let servers = running_servers()
        .into_iter()
        .enumerate()
        .map(|(index, srv)| {
            let conf = srv.srv::<CoreModule>();
            stat::Server {
                index,
                port: conf.listens.first().map_or(0, |l| l.port),
                applications: conf
                    .applications
                    .iter()
                    .map(|(name, app)| {
                        let live = app.app::<LiveModule>().live();
                        stat::Application {
                            name: name.clone(),
                            live,
                            streams: if live { crate::live::view::streams(*app) } else { Vec::new() },
                            recorders: Vec::new(),
                            relays: Vec::new(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    stat::Worker {
        pid: std::process::id(),
        naccepted: totals.accepted,
        bytes_in: totals.bytes_in,
        bytes_out: totals.bytes_out,
        bw_in,
        bw_out,
        servers,
    }
}

/// Seconds since this worker started.
pub fn uptime_s() -> u64 {
    let now = crate::ngx::files::unix_time().max(0) as u64;
    STATE.with(|st| st.try_borrow().map_or(0, |st| now.saturating_sub(st.started_s)))
}

/// The last published snapshot of every other live worker, this configuration's and (during a
/// reload) the old one's: one per process, none of a process that is gone.
pub fn others() -> Vec<stat::Worker> {
    let Some(zone) = zone() else { return Vec::new() };
    zone.read_claimed(my_pid(), crate::ngx::process::alive)
        .into_iter()
        .filter_map(|(_, _, blob)| serde_json::from_slice::<stat::Worker>(&blob).ok())
        .collect()
}
