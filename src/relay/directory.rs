//! Who publishes what, for all workers: each worker lists its published streams in its slot of a
//! shared-memory zone; a worker whose player asks for a stream published elsewhere finds the
//! owner's pid there and pulls it over that worker's link socket.

use std::cell::RefCell;

use crate::ngx::module::CtxRef;
use crate::ngx::process;
use crate::ngx::shm::SlotZone;

use super::RelayModule;

/// Bytes per worker: about a thousand stream names.
pub const SLOT_SIZE: usize = 64 * 1024;

/// A published stream: its `server{}` (index in the publisher's configuration, which names its
/// link socket, and the server's listen addresses, which tell it across configurations: a reload
/// that adds or moves a server changes the indexes, not the addresses), application, name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub srv: usize,
    pub server: String,
    pub app: String,
    pub name: String,
}

impl Entry {
    /// Stream `name` of application `app` in `server{}` `srv_ctx` of the running configuration.
    pub fn of(srv_ctx: CtxRef, app: &str, name: &str) -> Option<Entry> {
        Some(Entry { srv: srv_index(srv_ctx)?, server: server_key(srv_ctx), app: app.to_string(), name: name.to_string() })
    }

    /// The same stream, in whichever configuration each one was published.
    fn same_stream(&self, other: &Entry) -> bool {
        (&self.server, &self.app, &self.name) == (&other.server, &other.app, &other.name)
    }
}

/// A `server{}`'s listen addresses, sorted: "0.0.0.0:1935,[::]:1935".
fn server_key(srv_ctx: CtxRef) -> String {
    let mut addrs: Vec<&str> =
        srv_ctx.srv::<crate::core::CoreModule>().listens.iter().map(|l| l.addr_text.as_str()).collect();
    addrs.sort_unstable();
    addrs.join(",")
}

thread_local! {
    /// This worker's published streams (with a count: two publishes of one name may overlap
    /// during a takeover).
    static MINE: RefCell<Vec<(Entry, usize, u64)>> = const { RefCell::new(Vec::new()) };
    static TOO_BIG_LOGGED: RefCell<bool> = const { RefCell::new(false) };
    /// This worker's slot in the zone, taken on first use.
    static SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn my_slot(z: &SlotZone) -> Option<usize> {
    SLOT.with(|s| {
        if s.get().is_none() {
            s.set(z.claim(crate::core::link::pid(), process::alive));
        }
        s.get()
    })
}

fn zone(srv_ctx: CtxRef) -> Option<&'static SlotZone> {
    srv_ctx.main::<RelayModule>().directory.as_ref()
}

/// The index of a `server{}` in the running configuration (names its link socket).
fn srv_index(srv_ctx: CtxRef) -> Option<usize> {
    crate::core::running_servers().iter().position(|s| s.id() == srv_ctx.id())
}

/// One line per stream: server index, server addresses, since (wall-clock ms), application,
/// name.
fn encode(list: &[(Entry, usize, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (e, _, since) in list {
        out.extend_from_slice(format!("{}\t{}\t{}\t{}\t{}\n", e.srv, e.server, since, e.app, e.name).as_bytes());
    }
    out
}

fn decode(blob: &[u8]) -> impl Iterator<Item = (Entry, u64)> + '_ {
    blob.split(|b| *b == b'\n').filter_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let mut f = line.splitn(5, '\t');
        let srv = f.next()?.parse().ok()?;
        let server = f.next()?.to_string();
        let since = f.next()?.parse().ok()?;
        Some((Entry { srv, server, app: f.next()?.to_string(), name: f.next()?.to_string() }, since))
    })
}

fn write(srv_ctx: CtxRef, list: &[(Entry, usize, u64)]) {
    let Some(z) = zone(srv_ctx) else { return };
    let Some(slot) = my_slot(z) else { return };
    if !z.write(slot, crate::core::link::pid(), &encode(list)) {
        TOO_BIG_LOGGED.with(|l| {
            if !l.replace(true) {
                crate::log_info!(
                    crate::ngx::log::Log::cycle(),
                    "rtmp: relay: too many streams in this worker for the worker directory; the latest are not shared"
                );
            }
        });
    }
}

/// This worker publishes `e` (from now until `remove`).
pub fn add(srv_ctx: CtxRef, e: Entry) {
    MINE.with(|m| {
        let mut m = m.borrow_mut();
        let now = crate::ngx::shm::wall_ms();
        match m.iter_mut().find(|(x, _, _)| *x == e) {
            Some((_, n, since)) => {
                *n += 1;
                *since = now;
            }
            None => m.push((e, 1, now)),
        }
        write(srv_ctx, &m);
    });
}

pub fn remove(srv_ctx: CtxRef, e: &Entry) {
    MINE.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(i) = m.iter().position(|(x, _, _)| x == e) {
            m[i].1 -= 1;
            if m[i].1 == 0 {
                m.remove(i);
            }
        }
        write(srv_ctx, &m);
    });
}

/// The worker exits: its streams leave the directory.
pub fn clear(srv_ctx: CtxRef) {
    MINE.with(|m| m.borrow_mut().clear());
    if let Some(z) = zone(srv_ctx) {
        if let Some(slot) = SLOT.with(|s| s.take()) {
            z.release(slot);
        }
    }
}

/// Another live worker that publishes `e` (the latest publish when several do: a takeover): its
/// pid and the index of the stream's server in its configuration (which names its link socket).
pub fn owner(srv_ctx: CtxRef, e: &Entry) -> Option<(u64, usize)> {
    let z = zone(srv_ctx)?;
    let me = crate::core::link::pid();
    z.read_others(usize::MAX)
        .into_iter()
        .filter(|(_, pid, _)| *pid != me && process::alive(*pid))
        .filter_map(|(_, pid, blob)| decode(&blob).find(|(x, _)| x.same_stream(e)).map(|(x, since)| (since, pid, x.srv)))
        .max()
        .map(|(_, pid, srv)| (pid, srv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs() {
        let e = |s, a: &str, n: &str| {
            (Entry { srv: s, server: "0.0.0.0:1935,[::]:1935".into(), app: a.into(), name: n.into() }, 1, 7)
        };
        let list = vec![e(0, "live", "cam"), e(1, "app", "a b\tc")];
        let got: Vec<(Entry, u64)> = decode(&encode(&list)).collect();
        assert_eq!(got, list.iter().map(|(x, _, t)| (x.clone(), *t)).collect::<Vec<_>>());
        assert_eq!(decode(b"junk\nx\ty\n\n0\t127.0.0.1:1935\t5\tlive\tcam").count(), 1);
        // The same stream in another configuration, where its server has another index.
        let (a, b) = (e(0, "live", "cam").0, e(3, "live", "cam").0);
        assert!(a.same_stream(&b));
        assert!(!a.same_stream(&Entry { server: "0.0.0.0:1936".into(), ..b }));
    }
}
