//! The live module's hooks: publish and play join a stream, media fans out, closing a stream or
//! the connection leaves it.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use rtmp_proto::command;
use rtmp_proto::message::{csid, msg_type, UserControl};
use rtmp_proto::RawMessage;

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::peer::Wire;
use crate::core::session::Session;
use crate::{log_debug, log_info, log_warn};
use crate::ngx::module::CtxRef;
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};

use super::conf::LiveAppConf;
use super::stream::{Carry, Player, Stream};
use super::LiveModule;

type Key = (usize, String);

/// What this session does in live streams, per message stream id.
#[derive(Default)]
struct LiveCtx {
    entries: Vec<Entry>,
    /// Headers of the stream this session last published (see `Carry`).
    carry: Option<Carry>,
}

struct Entry {
    stream_id: u32,
    key: Key,
    stream: Rc<RefCell<Stream>>,
    publishing: bool,
}

fn app_conf(s: &Session) -> Option<(CtxRef, &'static LiveAppConf)> {
    let app = s.app_ctx?;
    let conf = app.app::<LiveModule>();
    conf.live().then_some((app, conf))
}

fn get_stream(s: &Session, key: &Key, create: bool) -> Option<Rc<RefCell<Stream>>> {
    let main = s.srv_ctx.main::<LiveModule>();
    let mut streams = main.streams.borrow_mut();
    if let Some(st) = streams.get(key) {
        return Some(st.clone());
    }
    if !create {
        return None;
    }
    let st = Rc::new(RefCell::new(Stream::new(&key.1, main.gop_budget().clone())));
    streams.insert(key.clone(), st.clone());
    Some(st)
}

fn add_entry(s: &mut Session, e: Entry) {
    if s.ext.get::<LiveCtx>().is_none() {
        s.ext.insert(LiveCtx::default());
    }
    if let Some(ctx) = s.ext.get_mut::<LiveCtx>() {
        ctx.entries.push(e);
    }
}

pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    let Some((app, conf)) = app_conf(s) else { return Step::Continue };
    let key = (app.id(), req.name.clone());
    // A stream id publishes or plays one stream at a time.
    leave(s, req.stream_id);
    let Some(stream) = get_stream(s, &key, true) else { return Step::Continue };
    let current = stream.borrow().publisher.as_ref().map(|p| p.peer.clone());
    if let Some(old) = current {
        if !conf.publish_takeover() {
            s.send_status(req.stream_id, "error", "NetStream.Publish.BadName", "Already publishing");
            return Step::Close(format!("publish \"{}\": already publishing", req.name));
        }
        // A reconnecting encoder replaces its stale session; players stay and restart at the
        // new publisher's first keyframe.
        log_info!(s.log, "rtmp: live: publish \"{}\" takes over from connection {}", req.name, old.id);
        old.request_close(format!("publish \"{}\" taken over by connection {}", req.name, s.peer.id));
    }
    stream.borrow_mut().begin_publish(s.peer.clone(), req.stream_id, conf);
    if let Some(carry) = s.ext.get_mut::<LiveCtx>().and_then(|c| c.carry.take()) {
        stream.borrow_mut().adopt(carry);
    }
    if let Some(idle) = conf.drop_idle_publisher_ms() {
        let timer = idle_publisher_timer(Rc::downgrade(&stream), idle);
        timer.arm(idle);
        stream.borrow_mut().idle_timer = Some(timer);
    }
    add_entry(s, Entry { stream_id: req.stream_id, key, stream, publishing: true });
    log_info!(s.log, "rtmp: live: publish \"{}\" ({})", req.name, req.kind);
    s.send_user_control(UserControl::StreamBegin(req.stream_id));
    s.send_status(req.stream_id, "status", "NetStream.Publish.Start", &format!("{} is now published.", req.name));
    Step::Stop
}

/// `drop_idle_publisher`: closes the stream's publisher once it has sent no audio or video for
/// `idle` ms (a stalled encoder whose TCP connection stays open would block its name).
fn idle_publisher_timer(stream: Weak<RefCell<Stream>>, idle: u64) -> Timer {
    Timer::new(move || {
        let Some(stream) = stream.upgrade() else { return Again::Stop };
        let Ok(st) = stream.try_borrow() else { return Again::After(idle) };
        let Some(p) = &st.publisher else { return Again::Stop };
        let since = now_ms().saturating_sub(st.last_media_ms);
        if since < idle {
            return Again::After(idle - since);
        }
        p.peer.request_close(format!("publisher idle for {since} ms (\"drop_idle_publisher\")"));
        Again::Stop
    })
}

pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    let Some((app, conf)) = app_conf(s) else { return Step::Continue };
    let key = (app.id(), req.name.clone());
    leave(s, req.stream_id);
    // An HTTP player of a stream nobody publishes gets 404 at once instead of a response that
    // hangs, unless a relay is about to pull the stream in.
    let http_now = s.peer.wire() != Wire::Rtmp && req.relay.is_none() && !req.incoming;
    let Some(stream) = get_stream(s, &key, conf.idle_streams() && !http_now) else {
        s.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", "No such stream");
        let why = if http_now { "nobody publishes it" } else { "stream not found and \"idle_streams\" is off" };
        return Step::Close(format!("play \"{}\": {}", req.name, why));
    };
    if (!conf.idle_streams() || http_now) && stream.borrow().publisher.is_none() {
        s.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", "No such stream");
        let why = if http_now { "nobody publishes it" } else { "no publisher and \"idle_streams\" is off" };
        return Step::Close(format!("play \"{}\": {}", req.name, why));
    }
    log_info!(s.log, "rtmp: live: play \"{}\"", req.name);
    s.send_user_control(UserControl::StreamBegin(req.stream_id));
    if req.reset || req.start >= 0.0 || req.start == -2.0 {
        s.send_status(req.stream_id, "status", "NetStream.Play.Reset", &format!("Playing and resetting {}.", req.name));
    }
    s.send_status(req.stream_id, "status", "NetStream.Play.Start", &format!("Started playing {}.", req.name));
    s.send(
        csid::DATA,
        &RawMessage::new(msg_type::AMF0_DATA, req.stream_id, 0, command::sample_access()),
    );
    s.peer.set_merge_ms(conf.write_merge_ms());
    let player = Player::new(s.peer.id, req.stream_id, s.peer.clone()).with_caps(s.info.caps.clone());
    stream.borrow_mut().join(player, conf);
    add_entry(s, Entry { stream_id: req.stream_id, key, stream, publishing: false });
    Step::Stop
}

pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    let Some((_, conf)) = app_conf(s) else { return Step::Continue };
    let Some(ctx) = s.ext.get::<LiveCtx>() else { return Step::Continue };
    // Publishers may send on stream id 0 or their own; take the entry they publish on.
    let entry = ctx
        .entries
        .iter()
        .find(|e| e.publishing && e.stream_id == msg.stream_id)
        .or_else(|| ctx.entries.iter().find(|e| e.publishing));
    if let Some(e) = entry {
        let mut st = e.stream.borrow_mut();
        // After a takeover the old publisher's last messages are not the stream's any more.
        if st.publisher.as_ref().is_some_and(|p| p.id == s.peer.id) {
            st.publish_message(msg, conf);
        }
    }
    enforce_gop_budget(s);
    Step::Continue
}

/// Over the worker's `gop_cache_budget`: drops the caches of the streams whose last player joined
/// longest ago until the caches fit again.
fn enforce_gop_budget(s: &Session) {
    let main = s.srv_ctx.main::<LiveModule>();
    let budget = main.gop_budget();
    if !budget.over() {
        return;
    }
    if budget.first_time_over() {
        log_warn!(
            s.log,
            "rtmp: live: GOP caches reached \"gop_cache_budget\" ({} bytes): the caches of streams \
             with the least recent players are dropped until a player joins them",
            budget.limit()
        );
    }
    let Ok(streams) = main.streams.try_borrow() else { return };
    while budget.over() {
        let coldest = streams
            .values()
            .filter_map(|st| st.try_borrow().ok().filter(|st| st.gop_bytes() > 0).map(|b| (b.gop_last_join_ms(), st)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, st)| st.clone());
        let Some(st) = coldest else { break };
        let Ok(mut st) = st.try_borrow_mut() else { break };
        log_debug!(s.log, "rtmp: live: GOP cache of \"{}\" dropped ({} bytes)", st.name, st.gop_bytes());
        st.evict_gop();
    }
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    if app_conf(s).is_some() {
        leave(s, stream_id);
    }
    Step::Continue
}

pub fn pause(s: &mut Session, stream_id: u32, paused: bool) -> Step {
    with_player(s, stream_id, |p| {
        p.paused = paused;
        if paused {
            p.send_status("status", "NetStream.Pause.Notify", "Paused live");
        } else {
            p.restart();
            p.send_status("status", "NetStream.Unpause.Notify", "Unpaused live");
        }
    });
    Step::Continue
}

pub fn receive(s: &mut Session, stream_id: u32, video: bool, flag: bool) -> Step {
    with_player(s, stream_id, |p| {
        if video {
            p.recv_video = flag;
        } else {
            p.recv_audio = flag;
        }
    });
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    let ids: Vec<u32> = s.ext.get::<LiveCtx>().map(|c| c.entries.iter().map(|e| e.stream_id).collect()).unwrap_or_default();
    for id in ids {
        leave(s, id);
    }
}

fn with_player(s: &mut Session, stream_id: u32, f: impl FnOnce(&mut Player)) {
    let Some(ctx) = s.ext.get::<LiveCtx>() else { return };
    let id = s.peer.id;
    if let Some(e) = ctx.entries.iter().find(|e| e.stream_id == stream_id && !e.publishing) {
        let mut st = e.stream.borrow_mut();
        if let Some(p) = st.players.iter_mut().find(|p| p.id == id && p.stream_id == stream_id) {
            f(p);
        }
    }
}

/// Leaves whatever `stream_id` publishes or plays; drops the stream when nobody is left.
fn leave(s: &mut Session, stream_id: u32) {
    let Some(ctx) = s.ext.get_mut::<LiveCtx>() else { return };
    let Some(i) = ctx.entries.iter().position(|e| e.stream_id == stream_id) else { return };
    let e = ctx.entries.swap_remove(i);
    let id = s.peer.id;
    let Some((_, conf)) = app_conf(s) else { return };
    let mut carry = None;
    let empty = {
        let mut st = e.stream.borrow_mut();
        if e.publishing {
            if st.publisher.as_ref().is_some_and(|p| p.id == id) {
                carry = Some(st.take_carry());
                st.end_publish(conf);
                log_info!(s.log, "rtmp: live: unpublish \"{}\"", st.name);
                s.send_status(stream_id, "status", "NetStream.Unpublish.Success", &format!("{} is now unpublished.", st.name));
            }
        } else {
            st.remove_player(id, stream_id);
        }
        st.is_empty()
    };
    if empty {
        let main = s.srv_ctx.main::<LiveModule>();
        main.streams.borrow_mut().remove(&e.key);
    }
    if let (Some(c), Some(ctx)) = (carry, s.ext.get_mut::<LiveCtx>()) {
        ctx.carry = Some(c);
    }
}
