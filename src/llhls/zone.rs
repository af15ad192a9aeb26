//! The Low-Latency HLS state every worker can read: one shared-memory slot per stream (the
//! `SlotZone` seqlock), holding the stream's application, name, file directory, sibling variants
//! and its `LlState`. The worker that has the publisher writes it at every part; the worker that
//! takes a playlist or part request (any of them) reads it. The zone outlives reloads, so
//! streams of old workers stay visible to new ones.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use rtmp_proto::hls::ll::LlState;

use crate::core::link::pid;
use crate::ngx::now_ms;
use crate::ngx::shm::SlotZone;

use super::LlModule;

/// Streams with Low-Latency HLS at once, in all workers together.
pub const SLOTS: usize = 128;
/// A stream's state at most (a playlist of about 1000 segments).
pub const SLOT_SIZE: usize = 128 * 1024;

pub struct Entry {
    pub app: String,
    pub name: String,
    pub dir: PathBuf,
    /// Since when (ms): the newest of two entries of one name wins (a republish elsewhere).
    pub since: u64,
    pub siblings: Vec<String>,
    pub state: LlState,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{}\t{}\t{}\t{}\t{}\n",
            self.app,
            self.name,
            self.dir.display(),
            self.since,
            self.siblings.join(",")
        )
        .into_bytes();
        out.extend_from_slice(&self.state.encode());
        out
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        let nl = b.iter().position(|c| *c == b'\n')?;
        let head = std::str::from_utf8(b.get(..nl)?).ok()?;
        let mut f = head.split('\t');
        let (app, name, dir, since, siblings) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        Some(Entry {
            app: app.to_string(),
            name: name.to_string(),
            dir: PathBuf::from(dir),
            since: since.parse().ok()?,
            siblings: siblings.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            state: LlState::decode(b.get(nl + 1..)?)?,
        })
    }

    /// The application and name, cheaply, without the state.
    fn key(b: &[u8]) -> Option<(&str, &str)> {
        let nl = b.iter().position(|c| *c == b'\n')?;
        let mut f = std::str::from_utf8(b.get(..nl)?).ok()?.split('\t');
        Some((f.next()?, f.next()?))
    }
}

fn zone() -> Option<&'static SlotZone> {
    // SAFETY: reads the module index nginx assigned at configuration.
    let root = unsafe { &*std::ptr::addr_of!(crate::core::ngx_rtmp_rs_module) };
    crate::ngx::block::running_root(root)?.main::<LlModule>().zone.as_ref()
}

thread_local! {
    /// This worker's slots: token → when it may be given back (None while its stream runs).
    static MINE: RefCell<HashMap<u64, (usize, Option<u64>)>> = RefCell::new(HashMap::new());
    static COUNTER: Cell<u32> = const { Cell::new(0) };
    /// Where each stream was last found: (app, name) → slot.
    static FOUND: RefCell<HashMap<(String, String), usize>> = RefCell::new(HashMap::new());
    /// Each slot's entry as last decoded, with the slot version it was read at.
    static CACHE: RefCell<HashMap<usize, (u64, Rc<Entry>)>> = RefCell::new(HashMap::new());
}

/// A slot owned by a running stream. The owner token is the pid in the high half, so another
/// worker can tell when its process is gone.
pub struct Publication {
    slot: usize,
    token: u64,
}

pub fn claim() -> Option<Publication> {
    let z = zone()?;
    reap(z);
    let n = COUNTER.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    let me = pid();
    let token = (me << 32) | u64::from(n);
    let slot = z.claim(token, |t| {
        let p = t >> 32;
        if p == me {
            MINE.with(|m| m.borrow().contains_key(&t))
        } else {
            crate::ngx::process::alive(p)
        }
    })?;
    MINE.with(|m| m.borrow_mut().insert(token, (slot, None)));
    Some(Publication { slot, token })
}

/// Gives back this worker's slots of streams that ended long enough ago.
fn reap(z: &SlotZone) {
    let now = now_ms();
    MINE.with(|m| {
        m.borrow_mut().retain(|_, (slot, until)| {
            if until.is_some_and(|u| u <= now) {
                z.release(*slot);
                return false;
            }
            true
        })
    });
}

/// At worker exit: every slot of this worker goes.
pub fn release_all() {
    let Some(z) = zone() else { return };
    MINE.with(|m| {
        for (_, (slot, _)) in m.borrow_mut().drain() {
            z.release(slot);
        }
    });
}

impl Publication {
    /// False when the state does not fit in a slot.
    pub fn write(&self, e: &Entry) -> bool {
        zone().is_some_and(|z| z.write(self.slot, pid(), &e.encode()))
    }

    /// The stream ended: its last state stays readable for `keep_ms`.
    pub fn end(self, keep_ms: u64) {
        let until = now_ms().saturating_add(keep_ms);
        MINE.with(|m| {
            if let Some(v) = m.borrow_mut().get_mut(&self.token) {
                v.1 = Some(until);
            }
        });
    }
}

/// The entry in slot `i`, decoded once per version of the slot (held requests look often).
fn load(z: &SlotZone, i: usize, app: &str, name: &str) -> Option<Rc<Entry>> {
    let v = z.version(i);
    if v & 1 == 0 {
        if let Some(e) = CACHE.with(|c| c.borrow().get(&i).filter(|(ver, _)| *ver == v).map(|(_, e)| e.clone())) {
            return (e.app == app && e.name == name).then_some(e);
        }
    }
    let (ver, _, b) = z.read_versioned(i)?;
    if !matches(&b, app, name) {
        return None;
    }
    let e = Rc::new(Entry::decode(&b)?);
    CACHE.with(|c| c.borrow_mut().insert(i, (ver, e.clone())));
    Some(e)
}

/// The newest entry of `app`/`name` in any worker.
pub fn find(app: &str, name: &str) -> Option<Rc<Entry>> {
    let z = zone()?;
    let key = (app.to_string(), name.to_string());
    if let Some(i) = FOUND.with(|f| f.borrow().get(&key).copied()) {
        if let Some(e) = load(z, i, app, name) {
            // Another slot may hold a newer publish of the name: look only when this one ended.
            if !e.state.ended {
                return Some(e);
            }
        }
    }
    let mut best: Option<(usize, Rc<Entry>)> = None;
    for i in 0..z.slots() {
        if z.owner(i) == 0 {
            continue;
        }
        let Some(e) = load(z, i, app, name) else { continue };
        let better = best.as_ref().is_none_or(|(_, cur)| (cur.state.ended, e.since) > (e.state.ended, cur.since));
        if better {
            best = Some((i, e));
        }
    }
    let (i, e) = best?;
    FOUND.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() > 4 * SLOTS {
            f.clear();
        }
        f.insert(key, i);
    });
    Some(e)
}

/// A stream of `app` that is a variant of `base` (`hls_variant`: its name and its siblings' start
/// with `base`), in any worker.
pub fn variant_of(app: &str, base: &str) -> Option<Rc<Entry>> {
    let z = zone()?;
    (0..z.slots()).filter(|i| z.owner(*i) != 0).find_map(|i| {
        let (_, _, b) = z.read_versioned(i)?;
        let (a, n) = Entry::key(&b)?;
        if a != app || !n.starts_with(base) || n == base {
            return None;
        }
        let e = load(z, i, a, n)?;
        (!e.siblings.is_empty() && e.siblings.iter().all(|s| s.starts_with(base))).then_some(e)
    })
}

fn matches(b: &[u8], app: &str, name: &str) -> bool {
    Entry::key(b) == Some((app, name))
}

/// What `find` gives, built by the writer.
pub fn entry(app: &str, name: &str, dir: PathBuf, since: u64, siblings: Vec<String>, state: LlState) -> Entry {
    Entry { app: app.to_string(), name: name.to_string(), dir, since, siblings, state }
}
