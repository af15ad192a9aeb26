//! The relay module's hooks on clients' sessions: a publish starts its `push` targets (and a
//! notify redirect's push) and enters the worker directory; a play of a stream nobody publishes
//! here joins or starts a pull (a notify redirect's, another worker's, or a `pull` target's);
//! the end of a publish stops its pushes, the last player of a pull stops it.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::peer::Peer;
use crate::core::session::Session;
use crate::log_info;
use crate::ngx::log::Log;
use crate::ngx::module::CtxRef;
use crate::ngx::timer::Again;

use super::conf::Target;
use super::directory::{self, Entry};
use super::outgoing::{self, open, OpenError, Owner, PushEntry, PushSet, Role, Source, Spec};
use super::{Pull, RelayModule};

/// What a client's session started: pushes of its publishes, pulls its plays use, its streams
/// in the worker directory.
#[derive(Default)]
struct Started {
    pushes: Vec<(u32, Rc<RefCell<PushSet>>)>,
    pulls: Vec<(u32, (usize, String), u64)>,
    listed: Vec<(u32, Entry)>,
}

fn started(s: &mut Session) -> Option<&mut Started> {
    if s.ext.get::<Started>().is_none() {
        s.ext.insert(Started::default());
    }
    s.ext.get_mut::<Started>()
}

static NEXT_PULL: AtomicU64 = AtomicU64::new(1);

/// A notify redirect's URL as a target: its host must be an address (no lookup in a worker).
fn redirect_target(url: &str) -> Result<Target, String> {
    let mut t = Target::parse(&[url])?;
    let ip: std::net::IpAddr = if t.host.eq_ignore_ascii_case("localhost") {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        t.host.parse().map_err(|_| format!("{url}: the host must be an IP address (workers resolve no names)"))?
    };
    if t.app.is_none() {
        return Err(format!("{url}: no application"));
    }
    t.addrs = vec![std::net::SocketAddr::new(ip, t.port)];
    Ok(t)
}

fn spec(s: &Session, role: Role, local: &str, source: Source) -> Option<Spec> {
    let app_ctx = s.app_ctx?;
    let conf = app_ctx.app::<RelayModule>();
    let reconnect_ms = match (&source, role) {
        (Source::Worker, _) => crate::core::link::reconnect_ms(),
        (_, Role::Push) => conf.push_reconnect_ms(),
        (_, Role::Pull) => conf.pull_reconnect_ms(),
    };
    Some(Spec { role, srv_ctx: s.srv_ctx, app_ctx, app: s.info.app.clone(), local: local.to_string(), source, reconnect_ms })
}

fn entry_of(s: &Session, name: &str) -> Option<Entry> {
    Entry::of(s.srv_ctx, &s.info.app, name)
}

/// A publish of a stream another worker publishes is refused as a duplicate would be here.
pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    if s.relay.is_some() {
        return Step::Continue;
    }
    let Some(e) = entry_of(s, &req.name) else { return Step::Continue };
    // With publish_takeover the new publisher goes on (the old one, maybe a stale session of
    // the same encoder, times out in its worker); players that join now get the newest.
    let takeover = s.app_ctx.is_some_and(crate::live::view::takeover);
    if !takeover && directory::owner(s.srv_ctx, &e).is_some() {
        s.send_status(req.stream_id, "error", "NetStream.Publish.BadName", "Already publishing");
        return Step::Close(format!("publish \"{}\": already publishing in another worker", req.name));
    }
    Step::Continue
}

/// After live accepted a publish: it enters the directory, and its pushes start.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(app) = s.app_ctx else { return Step::Continue };
    {
        if let Some(e) = entry_of(s, &req.name) {
            directory::add(s.srv_ctx, e.clone());
            if let Some(st) = started(s) {
                st.listed.push((req.stream_id, e));
            }
        }
        // A worker pull waiting for this name gives way to the local publisher.
        let main = s.srv_ctx.main::<RelayModule>();
        let key = (app.id(), req.name.clone());
        let waiting = main.pulls.borrow().get(&key).is_some_and(|p| matches!(p.spec.source, Source::Worker));
        if waiting && s.relay.is_none() {
            if let Some(p) = main.pulls.borrow_mut().remove(&key) {
                if let Some(peer) = p.peer.upgrade() {
                    peer.request_close("the stream is published in this worker now".into());
                }
            }
        }
    }
    let conf = app.app::<RelayModule>();
    let mut sources: Vec<Source> = conf
        .pushes
        .iter()
        .filter(|t| t.matches(&req.name))
        .map(|t| Source::Target(Rc::new(t.clone())))
        .collect();
    if let Some(url) = req.relay.as_deref() {
        match redirect_target(url) {
            Ok(t) => sources.push(Source::Target(Rc::new(t))),
            // The local stream goes on; the log says why it is not relayed.
            Err(e) => log_info!(s.log, "rtmp: relay: push \"{}\" to {}: {}", req.name, url, e),
        }
    }
    if sources.is_empty() {
        return Step::Continue;
    }
    let entries = sources
        .into_iter()
        .filter_map(|src| spec(s, Role::Push, &req.name, src))
        .map(|spec| PushEntry { spec, peer: Weak::new(), attempts: 0, timer: None })
        .collect();
    // The set exists before any attempt, so a failure at once has somewhere to retry from.
    let set = Rc::new(RefCell::new(PushSet { alive: true, entries }));
    let n = set.borrow().entries.len();
    for idx in 0..n {
        let spec = set.borrow().entries[idx].spec.clone();
        match open(&spec, 0, Owner::Push(Rc::downgrade(&set), idx), s.log) {
            Ok(peer) => set.borrow_mut().entries[idx].peer = Rc::downgrade(&peer),
            Err(OpenError::Resolving) => {}
            Err(e) => {
                log_info!(s.log, "rtmp: relay: {}: {}; again in {} ms", spec.describe(), e, spec.reconnect_ms);
                let weak = Rc::downgrade(&set);
                let mut b = set.borrow_mut();
                outgoing::arm(&mut b.entries[idx].timer, spec.reconnect_ms, move || outgoing::retry_push(&weak, idx));
            }
        }
    }
    if let Some(st) = started(s) {
        st.pushes.push((req.stream_id, set));
    }
    Step::Continue
}

/// A play of a stream nobody publishes in this worker: join the pull that brings it, or start
/// one (notify redirect, another worker, a `pull` target).
pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    if s.relay.is_some() {
        return Step::Continue;
    }
    let Some(app) = s.app_ctx else { return Step::Continue };
    // A pulled stream is a live stream: nothing to pull into elsewhere.
    if !crate::live::view::enabled(app) {
        return Step::Continue;
    }
    let key = (app.id(), req.name.clone());
    let main = s.srv_ctx.main::<RelayModule>();
    // Players of a pulled stream count for the pull, even once it publishes here.
    let joined = main.pulls.borrow_mut().get_mut(&key).map(|p| {
        p.players.push((Rc::downgrade(&s.peer), req.stream_id));
        p.id
    });
    if let Some(id) = joined {
        if let Some(st) = started(s) {
            st.pulls.push((req.stream_id, key, id));
        }
        return Step::Incoming;
    }
    if req.relay.is_none() && crate::live::view::is_published(app, &req.name) {
        return Step::Continue;
    }
    let conf = app.app::<RelayModule>();
    let (source, incoming) = if let Some(url) = req.relay.as_deref() {
        match redirect_target(url) {
            Ok(t) => (Source::Target(Rc::new(t)), true),
            Err(e) => {
                s.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", "Relay failed");
                return Step::Close(format!("relay: pull \"{}\" from {}: {}", req.name, url, e));
            }
        }
    } else {
        let worker = spec(s, Role::Pull, &req.name, Source::Worker);
        let elsewhere = worker.as_ref().is_some_and(Spec::on_other_worker);
        let target = conf.pulls.iter().find(|t| !t.is_static && t.matches(&req.name));
        match (elsewhere, target) {
            (true, _) => (Source::Worker, true),
            (false, Some(t)) => (Source::Target(Rc::new(t.clone())), true),
            // Nobody has it yet: wait for another worker to publish it.
            (false, None) if worker.is_some() => (Source::Worker, false),
            (false, None) => return Step::Continue,
        }
    };
    let Some(spec) = spec(s, Role::Pull, &req.name, source) else { return Step::Continue };
    let id = NEXT_PULL.fetch_add(1, Ordering::Relaxed);
    let players = vec![(Rc::downgrade(&s.peer), req.stream_id)];
    let pull = Pull { id, spec: spec.clone(), peer: Weak::new(), players, is_static: false, started_once: false, timer: None };
    main.pulls.borrow_mut().insert(key.clone(), pull);
    if let Some(st) = started(s) {
        st.pulls.push((req.stream_id, key.clone(), id));
    }
    if incoming {
        start_pull(s.srv_ctx, &key, id, s.log);
        return Step::Incoming;
    }
    // Watch for the stream to appear in another worker.
    let mut pulls = main.pulls.borrow_mut();
    if let Some(p) = pulls.get_mut(&key) {
        let srv = s.srv_ctx;
        outgoing::arm(&mut p.timer, spec.reconnect_ms, move || outgoing::retry_pull(srv, &key, id));
    }
    Step::Continue
}

/// First attempt of a pull in the table; a failure at once retries later.
fn start_pull(srv: CtxRef, key: &(usize, String), id: u64, log: Log) {
    let main = srv.main::<RelayModule>();
    let Some(spec) = main.pulls.borrow().get(key).map(|p| p.spec.clone()) else { return };
    match open(&spec, 0, Owner::Pull(key.clone(), id), log) {
        Ok(peer) => {
            if let Some(p) = main.pulls.borrow_mut().get_mut(key) {
                p.peer = Rc::downgrade(&peer);
            }
        }
        Err(OpenError::Resolving) => {}
        Err(e) => {
            log_info!(log, "rtmp: relay: {}: {}; again in {} ms", spec.describe(), e, spec.reconnect_ms);
            if let Some(p) = main.pulls.borrow_mut().get_mut(key) {
                let key = key.clone();
                outgoing::arm(&mut p.timer, spec.reconnect_ms, move || outgoing::retry_pull(srv, &key, id));
            }
        }
    }
}

/// How often worker 0 looks whether it is exiting (its static pulls then wind down).
const STATIC_WATCH_MS: u64 = 1000;

thread_local! {
    static STATIC_WATCH: RefCell<Option<crate::ngx::timer::Timer>> = const { RefCell::new(None) };
}

/// Static pulls run in worker 0 (the other workers pull from it when their players ask).
pub fn start_static_pulls() {
    if crate::ngx::worker_number() != 0 {
        return;
    }
    let mut any = false;
    let log = Log::cycle();
    for srv in crate::core::running_servers() {
        let core = srv.srv::<crate::core::CoreModule>();
        for (app_name, app) in &core.applications {
            for t in app.app::<RelayModule>().pulls.iter().filter(|t| t.is_static) {
                let Some(name) = t.name.clone() else { continue };
                let spec = Spec {
                    role: Role::Pull,
                    srv_ctx: srv,
                    app_ctx: *app,
                    app: app_name.clone(),
                    local: name.clone(),
                    source: Source::Target(Rc::new(t.clone())),
                    reconnect_ms: app.app::<RelayModule>().pull_reconnect_ms(),
                };
                let id = NEXT_PULL.fetch_add(1, Ordering::Relaxed);
                let key = (app.id(), name);
                let pull = Pull { id, spec, peer: Weak::new(), players: Vec::new(), is_static: true, started_once: false, timer: None };
                srv.main::<RelayModule>().pulls.borrow_mut().insert(key.clone(), pull);
                start_pull(srv, &key, id, log);
                any = true;
            }
        }
    }
    if any {
        let t = crate::ngx::timer::Timer::new(watch_static);
        t.arm(STATIC_WATCH_MS);
        STATIC_WATCH.with(|w| *w.borrow_mut() = Some(t));
    }
}

/// After a reload (or on `nginx -s quit`) the old worker 0 keeps serving its players, and the
/// new worker 0 runs the static pulls: each static pull of the old one stops as soon as nobody in
/// its worker plays the stream (players of other workers go to the new one's), so the old worker
/// can leave instead of pulling beside the new one for as long as the origin streams.
fn watch_static() -> Again {
    if !crate::ngx::process::worker_exiting() {
        return Again::After(STATIC_WATCH_MS);
    }
    let mut left = false;
    for srv in crate::core::running_servers() {
        let main = srv.main::<RelayModule>();
        let Ok(mut pulls) = main.pulls.try_borrow_mut() else { return Again::After(100) };
        let idle: Vec<(usize, String)> = pulls
            .iter()
            .filter(|(_, p)| p.is_static)
            .filter(|(_, p)| {
                let watched = crate::live::view::members(p.spec.app_ctx, Some(&p.spec.local)).iter().any(|m| !m.publishing);
                left |= watched;
                !watched
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            let Some(p) = pulls.remove(&key) else { continue };
            log_info!(Log::cycle(), "rtmp: relay: {}: stops, nobody plays it in this exiting worker", p.spec.describe());
            if let Some(peer) = p.peer.upgrade() {
                peer.request_close("the worker exits".into());
            }
        }
    }
    if left {
        Again::After(STATIC_WATCH_MS)
    } else {
        Again::Stop
    }
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    // `session_relay on`: pushes outlive closeStream (they end with the connection).
    let keep_pushes = s.app_ctx.is_some_and(|a| a.app::<RelayModule>().session_relay());
    finish(s, Some(stream_id), keep_pushes);
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    finish(s, None, false);
}

/// The client's publish (or play) of `stream_id` (or all) ended: its pushes stop, it leaves
/// the directory, its pulls lose a player and stop with the last one.
fn finish(s: &mut Session, stream_id: Option<u32>, keep_pushes: bool) {
    let srv = s.srv_ctx;
    let Some(st) = s.ext.get_mut::<Started>() else { return };
    let ends = |id: u32| stream_id.is_none_or(|x| x == id);
    let mut pushes = Vec::new();
    if !keep_pushes {
        let (gone, keep): (Vec<_>, Vec<_>) = st.pushes.drain(..).partition(|(id, _)| ends(*id));
        st.pushes = keep;
        pushes = gone;
    }
    let (pulls, keep): (Vec<_>, Vec<_>) = st.pulls.drain(..).partition(|(id, _, _)| ends(*id));
    st.pulls = keep;
    let (listed, keep): (Vec<_>, Vec<_>) = st.listed.drain(..).partition(|(id, _)| ends(*id));
    st.listed = keep;
    for (_, e) in listed {
        directory::remove(srv, &e);
    }
    for (_, set) in pushes {
        let entries = {
            let mut set = set.borrow_mut();
            set.alive = false;
            std::mem::take(&mut set.entries)
        };
        for e in entries {
            if let Some(p) = e.peer.upgrade() {
                p.request_close("the published stream ended".into());
            }
        }
    }
    let me: *const Peer = Rc::as_ptr(&s.peer);
    let mut all = srv.main::<RelayModule>().pulls.borrow_mut();
    for (_, key, id) in pulls {
        let Some(pull) = all.get_mut(&key).filter(|p| p.id == id) else { continue };
        pull.players.retain(|(p, sid)| !(std::ptr::eq(p.as_ptr(), me) && stream_id.is_none_or(|x| x == *sid)));
        pull.players.retain(|(p, _)| p.strong_count() > 0);
        if pull.players.is_empty() && !pull.is_static {
            if let Some(p) = pull.peer.upgrade() {
                p.request_close("no player left".into());
            }
            all.remove(&key);
        }
    }
}
