//! The notify module's hooks: connect, publish and play wait for their callback's answer (the
//! session holds everything else meanwhile); done, update and disconnect calls run beside the
//! session. arut's fields and answers; the client's own query arguments go with every call.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use rtmp_proto::http::Response;
use rtmp_proto::RawMessage;

use crate::core::hooks::{PlayReq, PublishReq, RecordDone, Resume, Step, Waiter};
use crate::core::peer::Peer;
use crate::core::session::Session;
use crate::log_info;
use crate::netcall::{self, CallError, CallHandle};
use crate::ngx::log::Log;
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};

use super::conf::{Format, Method, NotifyAppConf, NotifyMainConf, Url};
use super::fields::Fields;
use super::meta::{Change, MetaState};
use super::NotifyModule;

/// One publish or play of the session, for its done and update calls.
struct Entry {
    stream_id: u32,
    publishing: bool,
    state: Rc<EntryState>,
}

struct EntryState {
    name: RefCell<String>,
    args: String,
    /// The callback accepted it (or there was none): done calls are due.
    active: Cell<bool>,
    started_ms: Cell<u64>,
    update: RefCell<Option<Update>>,
}

/// `on_update`: a timer, then a call, then the timer again after a good answer.
struct Update {
    timer: Timer,
    /// The update call in flight (dropping it cancels it).
    _call: Rc<RefCell<Option<CallHandle>>>,
}

/// What update calls need from the session, taken while it is at hand.
#[derive(Clone)]
struct UpdateCtx {
    conf: &'static NotifyAppConf,
    url: Url,
    peer: Weak<Peer>,
    log: Log,
    base: Fields,
    opts: netcall::CallOptions,
}

impl UpdateCtx {
    fn new(s: &Session, conf: &'static NotifyAppConf) -> Option<UpdateCtx> {
        let url = conf.on_update?;
        let opts = options(s, conf, &Fields::default());
        Some(UpdateCtx { conf, url, peer: Rc::downgrade(&s.peer), log: s.log, base: base(s), opts })
    }
}

#[derive(Default)]
struct NotifyCtx {
    entries: Vec<Entry>,
    /// The call a waiting connect/publish/play depends on; dropping it cancels the call.
    waiting: Option<CallHandle>,
    /// What the published stream's headers said (on_meta, on_stream).
    meta: MetaState,
}

/// No callbacks for a relay's own connection (the stream it relays has its client's calls).
fn conf(s: &Session) -> Option<&'static NotifyAppConf> {
    if s.relay.is_some() {
        return None;
    }
    s.app_ctx.map(|a| a.app::<NotifyModule>())
}

fn ctx(s: &mut Session) -> Option<&mut NotifyCtx> {
    if s.ext.get::<NotifyCtx>().is_none() {
        s.ext.insert(NotifyCtx::default());
    }
    s.ext.get_mut::<NotifyCtx>()
}

/// What every call says about the session: `app flashver swfurl tcurl pageurl addr`.
fn session_fields(s: &Session) -> Fields {
    let mut f = Fields::default();
    f.add("app", &s.info.app)
        .add("flashver", &s.info.flashver)
        .add("swfurl", &s.info.swf_url)
        .add("tcurl", &s.info.tc_url)
        .add("pageurl", &s.info.page_url)
        .add("addr", s.conn.peer_addr().map(|a| a.to_string()).unwrap_or_default());
    f
}

/// The fields every call but connect starts with: the session's, `clientid`, and the arguments of
/// the connect URL (they go with every call of the session, as in arut).
fn base(s: &Session) -> Fields {
    let mut f = session_fields(s);
    f.add("clientid", s.peer.id).add_query(&s.info.args);
    f
}

fn options(s: &Session, conf: &NotifyAppConf, fields: &Fields) -> netcall::CallOptions {
    let (timeout_ms, max_response) = netcall::limits(s.app_ctx.unwrap_or(s.srv_ctx));
    let (form, json) = match conf.format() {
        Format::Form => (fields.0.clone(), None),
        Format::Json => (Vec::new(), Some(fields.to_json())),
    };
    netcall::CallOptions {
        timeout_ms,
        max_response,
        method: match conf.method() {
            Method::Get => netcall::Method::Get,
            Method::Post => netcall::Method::Post,
        },
        form,
        json,
    }
}

/// What an answer means for a waiting request: arut's rules, only the first digit counts.
enum Verdict {
    Go,
    Redirect(String),
    Refuse(String),
}

fn verdict(url: Url, what: &str, r: Result<Response, CallError>) -> Verdict {
    match r {
        Err(e) => Verdict::Refuse(format!("notify: {what} {}: {e}", url.as_str())),
        Ok(resp) => match resp.status / 100 {
            2 => Verdict::Go,
            3 => match resp.location.filter(|l| !l.is_empty()) {
                Some(l) => Verdict::Redirect(l),
                None => Verdict::Go,
            },
            _ => Verdict::Refuse(format!("notify: {what} {} answered {}", url.as_str(), resp.status)),
        },
    }
}

/// Starts a call whose answer nobody waits for (done, disconnect): it lives in the worker's
/// list until it finishes.
fn detached(main: &'static NotifyMainConf, url: Url, opts: netcall::CallOptions, log: Log, what: &'static str) {
    let id = main.next_id.get().wrapping_add(1);
    main.next_id.set(id);
    let h = netcall::call(url, opts, log, move |r| {
        // The session (and its log context) may be gone by now.
        if let Err(e) = r {
            log_info!(Log::cycle(), "notify: {} {}: {}", what, url.as_str(), e);
        }
        main.detached.borrow_mut().retain(|(i, _)| *i != id);
    });
    main.detached.borrow_mut().push((id, h));
}

pub fn connect(s: &mut Session) -> Step {
    let Some(conf) = conf(s) else { return Step::Continue };
    let Some(url) = conf.on_connect else { return Step::Continue };
    let mut f = session_fields(s);
    f.add("epoch", s.started_ms).add("call", "connect").add_query(&s.info.args);
    let opts = options(s, conf, &f);
    let waiter = Waiter::new(s);
    let w = waiter.clone();
    let h = netcall::call(url, opts, s.log, move |r| {
        w.finish(match verdict(url, "on_connect", r) {
            Verdict::Go => Resume::Continue,
            Verdict::Redirect(app) => Resume::Rename(app),
            Verdict::Refuse(why) => Resume::Close(why),
        })
    });
    if let Some(c) = ctx(s) {
        c.waiting = Some(h);
    }
    Step::Wait(waiter)
}

/// Before live: `on_publish` decides whether the publish goes on, under which name.
pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = conf(s) else { return Step::Continue };
    let Some(url) = conf.on_publish else { return Step::Continue };
    let mut f = base(s);
    f.add("call", "publish").add("name", &req.name).add("type", &req.kind).add_query(&req.args);
    let refusal = ("NetStream.Publish.BadName", "Refused by on_publish");
    // Done and update calls start in `published`, once live accepted the stream too.
    wait_for(s, conf, url, f, "on_publish", req.stream_id, refusal, None)
}

pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    let Some(conf) = conf(s) else { return Step::Continue };
    let state = add_entry(s, req.stream_id, false, &req.name, &req.args);
    let update = UpdateCtx::new(s, conf);
    let Some(url) = conf.on_play else {
        activate(&state, update, false);
        return Step::Continue;
    };
    // A client that put a directory in the application ("vod/sub", FFmpeg's URL form) plays the
    // file "sub/<name>": on_play is asked about that name, so that a callback that allows files
    // by name cannot be sidestepped (a live stream of such a client is "<name>": the callback
    // then sees a name it does not know, and refuses rather than allows).
    let name = match s.app_instance.as_str() {
        "" => req.name.clone(),
        i => format!("{i}/{}", req.name),
    };
    let mut f = base(s);
    f.add("call", "play")
        .add("name", &name)
        .add("start", fmt_num(req.start))
        .add("duration", fmt_num(req.duration))
        .add("reset", u8::from(req.reset))
        .add_query(&req.args);
    let refusal = ("NetStream.Play.Failed", "Refused by on_play");
    let st = Rc::downgrade(&state);
    let accepted: Accepted = Box::new(move |renamed| {
        if let Some(st) = st.upgrade() {
            if let Some(n) = renamed {
                *st.name.borrow_mut() = n.to_string();
            }
            activate(&st, update, false);
        }
    });
    wait_for(s, conf, url, f, "on_play", req.stream_id, refusal, Some(accepted))
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs when a waited-for answer lets the request go on (with the new name of a redirect).
type Accepted = Box<dyn FnOnce(Option<&str>)>;

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[allow(clippy::too_many_arguments)]
fn wait_for(
    s: &mut Session,
    conf: &'static NotifyAppConf,
    url: Url,
    f: Fields,
    what: &'static str,
    stream_id: u32,
    refusal: (&'static str, &'static str),
    accepted: Option<Accepted>,
) -> Step {
    let opts = options(s, conf, &f);
    let waiter = Waiter::new(s);
    let w = waiter.clone();
    let peer = Rc::downgrade(&s.peer);
    let h = netcall::call(url, opts, s.log, move |r| {
        let resume = match verdict(url, what, r) {
            Verdict::Go => Resume::Continue,
            // arut: with notify_relay_redirect the local name is the MD5 of the URL, so every
            // client redirected to one URL shares one relay.
            Verdict::Redirect(l) if l.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("rtmp://")) => {
                let name = conf.relay_redirect().then(|| md5_hex(&l));
                Resume::Relay { url: l, name }
            }
            Verdict::Redirect(name) => Resume::Rename(name),
            Verdict::Refuse(why) => Resume::Close(why),
        };
        match (&resume, accepted) {
            (Resume::Close(_), _) => {
                if let Some(p) = peer.upgrade() {
                    p.send_status(stream_id, "error", refusal.0, refusal.1);
                }
            }
            (Resume::Rename(n) | Resume::Relay { name: Some(n), .. }, Some(f)) => f(Some(n)),
            (_, Some(f)) => f(None),
            (_, None) => {}
        }
        w.finish(resume)
    });
    if let Some(c) = ctx(s) {
        c.waiting = Some(h);
    }
    Step::Wait(waiter)
}

fn add_entry(s: &mut Session, stream_id: u32, publishing: bool, name: &str, args: &str) -> Rc<EntryState> {
    let state = Rc::new(EntryState {
        name: RefCell::new(name.to_string()),
        args: args.to_string(),
        active: Cell::new(false),
        started_ms: Cell::new(now_ms()),
        update: RefCell::new(None),
    });
    if let Some(c) = ctx(s) {
        c.entries.retain(|e| e.stream_id != stream_id);
        c.entries.push(Entry { stream_id, publishing, state: state.clone() });
    }
    state
}

/// After live accepted the publish: done and update calls are due from now on.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = conf(s) else { return Step::Continue };
    let state = add_entry(s, req.stream_id, true, &req.name, &req.args);
    activate(&state, UpdateCtx::new(s, conf), true);
    if let Some(c) = ctx(s) {
        c.meta = MetaState::default();
    }
    if let Some(url) = conf.on_stream {
        let mut f = base(s);
        f.add("call", "stream").add("event", "start").add("name", &req.name).add_query(&req.args);
        detached(s.srv_ctx.main::<NotifyModule>(), url, options(s, conf, &f), s.log, "on_stream");
    }
    Step::Continue
}

/// The publisher's sequence headers: `on_meta` once they are known and when they change,
/// `on_stream` with `event=update` on a change.
pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    let Some(conf) = conf(s) else { return Step::Continue };
    if conf.on_meta.is_none() && conf.on_stream.is_none() {
        return Step::Continue;
    }
    let Some(c) = s.ext.get_mut::<NotifyCtx>() else { return Step::Continue };
    let Some(e) = c.entries.iter().find(|e| e.publishing && e.state.active.get()) else { return Step::Continue };
    let (name, args) = (e.state.name.borrow().clone(), e.state.args.clone());
    let change = c.meta.observe(msg);
    let mut codec = Fields::default();
    c.meta.fields(&mut codec);
    let main = s.srv_ctx.main::<NotifyModule>();
    let report = |call: &str, event: Option<&str>, url: Url, what: &'static str| {
        let mut f = base(s);
        f.add("call", call);
        if let Some(ev) = event {
            f.add("event", ev);
        }
        f.add("name", &name);
        f.0.extend(codec.0.iter().cloned());
        f.add_query(&args);
        detached(main, url, options(s, conf, &f), s.log, what);
    };
    match change {
        Change::None => {}
        Change::First | Change::Update => {
            if let Some(url) = conf.on_meta {
                report("meta", None, url, "on_meta");
            }
            if let (Change::Update, Some(url)) = (change, conf.on_stream) {
                report("stream", Some("update"), url, "on_stream");
            }
        }
    }
    Step::Continue
}

/// A publish or play under way: its done calls are due, its updates start.
fn activate(state: &Rc<EntryState>, update: Option<UpdateCtx>, publishing: bool) {
    state.active.set(true);
    state.started_ms.set(now_ms());
    if let Some(u) = update {
        *state.update.borrow_mut() = Some(start_update(u, Rc::downgrade(state), publishing));
    }
}

fn start_update(u: UpdateCtx, state: Weak<EntryState>, publishing: bool) -> Update {
    let call = Rc::new(RefCell::new(None));
    let every = u.conf.update_timeout_ms();
    let slot = Rc::downgrade(&call);
    let timer = Timer::new(move || {
        let (Some(st), Some(slot)) = (state.upgrade(), slot.upgrade()) else { return Again::Stop };
        let elapsed = now_ms().saturating_sub(st.started_ms.get());
        let mut f = u.base.clone();
        f.add("call", if publishing { "update_publish" } else { "update_play" })
            .add("time", elapsed / 1000)
            .add("timestamp", elapsed)
            .add("name", st.name.borrow().as_str())
            .add_query(&st.args);
        let mut opts = u.opts.clone();
        match u.conf.format() {
            Format::Form => opts.form = f.0,
            Format::Json => opts.json = Some(f.to_json()),
        }
        let (peer, state, url, conf) = (u.peer.clone(), state.clone(), u.url, u.conf);
        let h = netcall::call(url, opts, u.log, move |r| {
            let ok = match &r {
                Ok(resp) => resp.status / 100 == 2 || (resp.status / 100 == 3 && !conf.update_strict()),
                Err(_) => false,
            };
            if ok {
                if let Some(st) = state.upgrade() {
                    if let Ok(u) = st.update.try_borrow() {
                        if let Some(u) = u.as_ref() {
                            u.timer.arm(every);
                        }
                    }
                }
                return;
            }
            let why = match r {
                Ok(resp) => format!("answered {}", resp.status),
                Err(e) => e.to_string(),
            };
            if let Some(p) = peer.upgrade() {
                p.request_close(format!("notify: on_update {}: {}", url.as_str(), why));
            }
        });
        *slot.borrow_mut() = Some(h);
        Again::Stop
    });
    timer.arm(every);
    Update { timer, _call: call }
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    finish_entries(s, Some(stream_id));
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    finish_entries(s, None);
    if let Some(ctx) = s.ext.get_mut::<NotifyCtx>() {
        ctx.waiting = None;
    }
    let Some(conf) = conf(s) else { return };
    if let Some(url) = conf.on_disconnect {
        let mut f = base(s);
        f.add("call", "disconnect");
        let opts = options(s, conf, &f);
        detached(s.srv_ctx.main::<NotifyModule>(), url, opts, s.log, "on_disconnect");
    }
}

/// The done calls of the session's publishes and plays (of one stream id, or all), once each.
fn finish_entries(s: &mut Session, stream_id: Option<u32>) {
    let Some(conf) = conf(s) else { return };
    let Some(c) = s.ext.get_mut::<NotifyCtx>() else { return };
    let (done, keep): (Vec<Entry>, Vec<Entry>) =
        c.entries.drain(..).partition(|e| stream_id.is_none_or(|id| id == e.stream_id));
    c.entries = keep;
    let main = s.srv_ctx.main::<NotifyModule>();
    for e in done {
        e.state.update.borrow_mut().take();
        if !e.state.active.get() {
            continue;
        }
        let name = e.state.name.borrow().clone();
        let (url, call, what) = if e.publishing {
            (conf.on_publish_done, "publish_done", "on_publish_done")
        } else {
            (conf.on_play_done, "play_done", "on_play_done")
        };
        let mut f = base(s);
        f.add("call", call)
            .add("name", &name)
            .add("bytes_in", s.proto.bytes_received())
            .add("bytes_out", s.conn.sent())
            .add_query(&e.state.args);
        if let Some(url) = url {
            detached(main, url, options(s, conf, &f), s.log, what);
        }
        if let Some(url) = conf.on_done {
            if let Some(c) = f.0.iter_mut().find(|(k, _)| k == "call") {
                c.1 = "done".to_string();
            }
            detached(main, url, options(s, conf, &f), s.log, "on_done");
        }
        if let (true, Some(url)) = (e.publishing, conf.on_stream) {
            let mut f = base(s);
            f.add("call", "stream").add("event", "done").add("name", &name).add_query(&e.state.args);
            detached(main, url, options(s, conf, &f), s.log, "on_stream");
        }
    }
}

/// `on_record_done`: a recorder closed a file (read from the recorder's own block if it has
/// one); nobody waits for the answer.
pub fn record_done(s: &mut Session, d: &RecordDone) {
    let conf = d.conf.app::<NotifyModule>();
    let Some(url) = conf.on_record_done else {
        return;
    };
    let mut f = base(s);
    f.add("call", "record_done")
        .add("recorder", &d.recorder)
        .add("name", &d.name)
        .add("path", &d.path)
        .add_query(&d.args);
    detached(
        s.srv_ctx.main::<NotifyModule>(),
        url,
        options(s, conf, &f),
        s.log,
        "on_record_done",
    );
}
