//! The live module's read-only view for other features (stat pages, control): snapshots of an
//! application's streams, and its sessions found by name; nothing of its private structs.

use rtmp_proto::stat;

use crate::core::peer::Peer;
use crate::ngx::module::CtxRef;

use super::LiveModule;

/// The streams of application `app` in this worker, by name.
pub fn streams(app: CtxRef) -> Vec<stat::Stream> {
    let main = app.main::<LiveModule>();
    let Ok(map) = main.streams.try_borrow() else { return Vec::new() };
    let mut out: Vec<stat::Stream> = map
        .iter()
        .filter(|(k, _)| k.0 == app.id())
        .filter_map(|(_, st)| st.try_borrow_mut().ok().map(|mut st| st.snapshot()))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A session of a live stream, as control sees it.
pub struct Member {
    pub stream: String,
    pub publishing: bool,
    pub peer: std::rc::Rc<Peer>,
}

/// Everyone in application `app`'s streams (of this worker), optionally of one stream only.
pub fn members(app: CtxRef, name: Option<&str>) -> Vec<Member> {
    let main = app.main::<LiveModule>();
    let Ok(map) = main.streams.try_borrow() else { return Vec::new() };
    let mut out = Vec::new();
    for ((app_id, n), st) in map.iter() {
        if *app_id != app.id() || name.is_some_and(|x| x != n) {
            continue;
        }
        let Ok(st) = st.try_borrow() else { continue };
        if let Some(p) = &st.publisher {
            out.push(Member { stream: n.clone(), publishing: true, peer: p.peer.clone() });
        }
        for p in &st.players {
            out.push(Member { stream: n.clone(), publishing: false, peer: p.peer.clone() });
        }
    }
    out
}

/// Whether stream `name` of application `app` has a publisher in this worker.
pub fn is_published(app: CtxRef, name: &str) -> bool {
    let main = app.main::<LiveModule>();
    let Ok(map) = main.streams.try_borrow() else { return false };
    map.get(&(app.id(), name.to_string())).and_then(|st| st.try_borrow().ok()).is_some_and(|st| st.publisher.is_some())
}

/// Whether application `app` has `live on` (relays publish into live streams only there).
pub fn enabled(app: CtxRef) -> bool {
    app.app::<LiveModule>().live()
}

/// Whether application `app` lets a new publisher take a busy name over (`publish_takeover`).
pub fn takeover(app: CtxRef) -> bool {
    app.app::<LiveModule>().publish_takeover()
}
