//! The relay's own sessions: what one connects to (`Spec`), opening it, the exchange with the
//! remote server (connect, createStream, then play or publish; once it says Start, the local
//! publish or play), and what happens when it ends: a push or a pull with players reconnects.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use rtmp_proto::amf0::Amf0Value;
use rtmp_proto::caps::{self, Capabilities};
use rtmp_proto::client::{self, ClientFlow, Outcome};
use rtmp_proto::command::Command;
use rtmp_proto::message::msg_type;
use rtmp_proto::url::RtmpUrl;
use rtmp_proto::RawMessage;

use crate::core::hooks::{PlayReq, PublishReq, Step};
use crate::core::peer::Peer;
use crate::core::session::{ConnectInfo, Outgoing, Session};
use crate::log_info;
use crate::ngx::log::Log;
use crate::ngx::module::CtxRef;
use crate::ngx::timer::{Again, Timer};
use crate::ngx::upstream::PeerAddr;

use super::conf::{Scheme, Target};
use super::directory::{self, Entry};
use super::RelayModule;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Pull,
    Push,
}

/// Where a relay connects.
#[derive(Clone)]
pub enum Source {
    /// A `push` / `pull` target, or a notify redirect's URL.
    Target(Rc<Target>),
    /// The worker of this nginx that publishes the stream (looked up at each attempt).
    Worker,
}

/// Everything needed to open (and reopen) one relay, without the client that started it.
#[derive(Clone)]
pub struct Spec {
    pub role: Role,
    pub srv_ctx: CtxRef,
    pub app_ctx: CtxRef,
    /// The local application's name.
    pub app: String,
    /// The stream's local name.
    pub local: String,
    pub source: Source,
    /// Delay before another attempt.
    pub reconnect_ms: u64,
}

impl Spec {
    /// "pull \"cam\" from rtmp://…" for log lines.
    pub fn describe(&self) -> String {
        let to = match &self.source {
            Source::Target(t) => t.url.clone(),
            Source::Worker => "another worker".to_string(),
        };
        match self.role {
            Role::Pull => format!("pull \"{}\" from {to}", self.local),
            Role::Push => format!("push \"{}\" to {to}", self.local),
        }
    }

    fn entry(&self) -> Option<Entry> {
        Entry::of(self.srv_ctx, &self.app, &self.local)
    }

    /// Whether another worker publishes this stream now.
    pub fn on_other_worker(&self) -> bool {
        self.entry().is_some_and(|e| directory::owner(self.srv_ctx, &e).is_some())
    }
}

/// What a relay session does when it ends.
#[derive(Clone)]
pub enum Owner {
    /// A push of a publisher: entry `idx` of its set.
    Push(Weak<RefCell<PushSet>>, usize),
    /// A pull in the worker's pull table, by key and id.
    Pull((usize, String), u64),
}

/// The pushes of one publish: reopened after `push_reconnect` until the publish ends.
pub struct PushSet {
    pub alive: bool,
    pub entries: Vec<PushEntry>,
}

pub struct PushEntry {
    pub spec: Spec,
    pub peer: Weak<Peer>,
    pub attempts: usize,
    pub timer: Option<Timer>,
}

/// State of a relay's own (outgoing) session.
struct RelayCtx {
    role: Role,
    /// connect, createStream, then play (pull) or publish (push) on the remote server.
    flow: ClientFlow,
    local: String,
    /// The local publish (pull) or play (push) has begun.
    started: bool,
    owner: Owner,
}

const LINK_FLASHVER: &str = "ngx-rtmp-rs worker link";

/// Why a relay did not open now.
#[derive(Debug)]
pub enum OpenError {
    /// Its host name is being looked up: the owner's retry runs once the answer is in.
    Resolving,
    Failed(String),
}

impl From<String> for OpenError {
    fn from(s: String) -> Self {
        OpenError::Failed(s)
    }
}

impl From<&str> for OpenError {
    fn from(s: &str) -> Self {
        OpenError::Failed(s.to_string())
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Resolving => f.write_str("resolving"),
            OpenError::Failed(e) => f.write_str(e),
        }
    }
}

/// A resolver's answer for a host, and until when (nginx ms) it serves.
type Answer = (Result<Vec<std::net::IpAddr>, String>, u64);

thread_local! {
    /// Answers of the resolver just in, for the retry they wake (nginx's resolver keeps its own
    /// cache for `valid=`).
    static ANSWERS: RefCell<std::collections::HashMap<String, Answer>> = RefCell::new(std::collections::HashMap::new());
}

/// The target's addresses now: an IP as written, a fresh answer of the application's
/// resolver, or the addresses found at configuration time when it has none.
fn addresses(spec: &Spec, t: &Target, owner: &Owner) -> Result<Vec<std::net::SocketAddr>, OpenError> {
    let conf = spec.app_ctx.app::<RelayModule>();
    let resolver = match conf.resolver {
        Some(r) if t.host.parse::<std::net::IpAddr>().is_err() => r,
        _ => {
            if t.addrs.is_empty() {
                return Err(format!("host \"{}\" was not found at configuration time", t.host).into());
            }
            return Ok(t.addrs.clone());
        }
    };
    let now = crate::ngx::now_ms();
    let cached = ANSWERS.with(|a| a.borrow().get(&t.host).filter(|(_, until)| *until > now).map(|(r, _)| r.clone()));
    match cached {
        Some(Ok(ips)) if !ips.is_empty() => Ok(ips.into_iter().map(|ip| std::net::SocketAddr::new(ip, t.port)).collect()),
        Some(Ok(_)) => Err(format!("host \"{}\" has no address", t.host).into()),
        Some(Err(e)) => Err(format!("host \"{}\": {e}", t.host).into()),
        None => {
            let (host, owner, srv) = (t.host.clone(), owner.clone(), spec.srv_ctx);
            resolver.resolve(&t.host, conf.resolver_timeout_ms(), move |r| {
                ANSWERS.with(|a| a.borrow_mut().insert(host, (r, crate::ngx::now_ms() + 1000)));
                rearm(srv, &owner, 0);
            });
            Err(OpenError::Resolving)
        }
    }
}

/// Runs the owner's retry after `ms` (the resolver answered).
fn rearm(srv: CtxRef, owner: &Owner, ms: u64) {
    match owner {
        Owner::Push(set, idx) => {
            let Some(set_rc) = set.upgrade() else { return };
            let Ok(mut b) = set_rc.try_borrow_mut() else { return };
            let (weak, idx) = (set.clone(), *idx);
            if let Some(e) = b.entries.get_mut(idx) {
                arm(&mut e.timer, ms, move || retry_push(&weak, idx));
            }
        }
        Owner::Pull(key, id) => {
            let main = srv.main::<RelayModule>();
            let Ok(mut pulls) = main.pulls.try_borrow_mut() else { return };
            if let Some(p) = pulls.get_mut(key).filter(|p| p.id == *id) {
                let (key, id) = (key.clone(), *id);
                arm(&mut p.timer, ms, move || retry_pull(srv, &key, id));
            }
        }
    }
}

/// Opens a relay connection (attempt number `attempt`, for round-robin over addresses).
pub fn open(spec: &Spec, attempt: usize, owner: Owner, log: Log) -> Result<Rc<Peer>, OpenError> {
    let what = spec.describe();
    let mut tls = None;
    let (addr, url, flow_extra, flashver, tc_url, internal, range) = match &spec.source {
        Source::Target(t) => {
            if t.scheme == Scheme::Rtmps {
                let conf = spec.app_ctx.app::<RelayModule>();
                let ctx = if t.ssl_verify { conf.tls } else { conf.tls_noverify };
                tls = Some((ctx.ok_or("no TLS context for this application")?, t.host.clone()));
            }
            let addrs = addresses(spec, t, &owner)?;
            let addr = addrs[attempt % addrs.len()];
            let url = RtmpUrl {
                host: t.host.clone(),
                port: t.port,
                app: t.remote_app(&spec.app).to_string(),
                name: t.remote_name(&spec.local).to_string(),
            };
            // pageUrl and swfUrl go out even empty, as the C module sends them.
            let extra = vec![
                ("flashVer".to_string(), Amf0Value::string(&t.flash_ver)),
                ("pageUrl".into(), Amf0Value::string(&t.page_url)),
                ("swfUrl".into(), Amf0Value::string(&t.swf_url)),
            ];
            let tc = t.tc_url_for(&spec.app);
            (PeerAddr::Inet(addr), url, extra, t.flash_ver.clone(), tc, false, Some(t.play_range()))
        }
        Source::Worker => {
            let e = spec.entry().ok_or("this server is not in the running configuration")?;
            let (pid, srv) = directory::owner(spec.srv_ctx, &e).ok_or("no other worker publishes it")?;
            let path = crate::core::link::link_path(pid, srv);
            // A worker whose link socket could not be made (see its log) shares nothing.
            if std::fs::metadata(&path).is_err() {
                return Err(format!("worker {pid} has no link socket {path}").into());
            }
            let url = RtmpUrl { host: "localhost".into(), port: 0, app: spec.app.clone(), name: spec.local.clone() };
            let extra = vec![("flashVer".to_string(), Amf0Value::string(LINK_FLASHVER))];
            let tc = format!("rtmp://unix:{path}/{}", spec.app);
            (PeerAddr::Unix(path), url, extra, LINK_FLASHVER.to_string(), tc, true, None)
        }
    };
    let info = ConnectInfo {
        app: spec.app.clone(),
        tc_url: tc_url.clone(),
        flashver,
        // Whatever codec the stream has is relayed.
        caps: Capabilities { video: vec!["*".into()], audio: vec!["*".into()], enhanced: true },
        ..ConnectInfo::default()
    };
    if !internal {
        log_info!(log, "rtmp: relay: {}, connecting to {}", what, addr);
    }
    let mut flow = match spec.role {
        // Any Enhanced RTMP codec is welcome: it is only forwarded.
        Role::Pull => ClientFlow::new(client::Role::Play, &url, caps::client_props(&["*"])),
        Role::Push => ClientFlow::new(client::Role::Publish, &url, Vec::new()),
    };
    flow.add_props(flow_extra);
    flow = flow.with_tc_url(tc_url);
    if let Some((start, duration)) = range {
        flow = flow.with_play_range(start, duration);
    }
    let ctx = RelayCtx { role: spec.role, flow, local: spec.local.clone(), started: false, owner };
    let o = Outgoing { addr, internal, tls, srv_ctx: spec.srv_ctx, app_ctx: spec.app_ctx, info, what, log };
    Ok(Session::connect_out(o, |ext| ext.insert(ctx))?)
}

/// The relay's handshake is done: connect to the remote application.
pub fn outgoing(s: &mut Session) -> Step {
    let Some(ctx) = s.ext.get_mut::<RelayCtx>() else { return Step::Continue };
    let connect = ctx.flow.connect();
    s.set_out_chunk_size(s.srv().chunk_size());
    s.send_ack_window();
    s.send_upstream(0, connect);
    Step::Stop
}

/// The remote server's answers: createStream, then play or publish, then the local side starts.
pub fn reply(s: &mut Session, _stream_id: u32, cmd: &Command) -> Step {
    let Some(ctx) = s.ext.get_mut::<RelayCtx>() else { return Step::Continue };
    match ctx.flow.on_command(cmd) {
        Outcome::Send { stream_id, payload } => {
            let play = ctx.role == Role::Pull && ctx.flow.stage() == client::Stage::Start;
            s.send_upstream(stream_id, payload);
            // After `play`: how much the server may buffer for us (`relay_buffer`).
            if play {
                let ms = s.app_ctx.map_or(5000, |a| a.app::<RelayModule>().relay_buffer_ms());
                let ms = u32::try_from(ms).unwrap_or(u32::MAX);
                s.send_upstream_control(rtmp_proto::message::UserControl::SetBufferLength { stream_id, ms });
            }
        }
        Outcome::Rejected { what, code, description } => {
            return Step::Close(format!("the server refused {what}: {code} ({description})"));
        }
        Outcome::Status { code }
            if matches!(
                code.as_str(),
                "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" | "NetStream.Play.Complete"
            ) =>
        {
            return Step::Close(format!("the server ended the stream ({code})"));
        }
        Outcome::Started { stream_id } => {
            let (role, name) = (ctx.role, ctx.local.clone());
            ctx.started = true;
            let code = if role == Role::Pull { "NetStream.Play.Start" } else { "NetStream.Publish.Start" };
            if !s.internal {
                log_info!(s.log, "rtmp: relay: {}: {}", s.relay.as_deref().unwrap_or_default(), code);
            }
            if let Owner::Pull(key, id) = &ctx.owner {
                let main = s.srv_ctx.main::<RelayModule>();
                if let Some(p) = main.pulls.borrow_mut().get_mut(key).filter(|p| p.id == *id) {
                    p.started_once = true;
                }
            }
            match role {
                Role::Pull => s.publish_local(PublishReq {
                    stream_id,
                    tid: 0.0,
                    name,
                    args: String::new(),
                    kind: "live".into(),
                    relay: None,
                }),
                Role::Push => s.play_local(PlayReq { name, ..PlayReq::new(stream_id, 0.0, "", -1.0, -1.0, false) }),
            }
        }
        Outcome::Status { .. } | Outcome::Nothing => {}
    }
    Step::Stop
}

/// A pulled stream's server-side notes (`|RtmpSampleAccess`) are not media of the stream.
pub fn media(s: &mut Session, msg: &RawMessage) -> Step {
    // Every publisher's every message passes here: only a relay's own session looks further.
    if s.relay.is_none() || msg.msg_type != msg_type::AMF0_DATA {
        return Step::Continue;
    }
    if msg.payload.first() == Some(&0x02) && msg.payload.get(3) == Some(&b'|') {
        return Step::Stop;
    }
    Step::Continue
}

/// A relay session ends: a push reconnects while its publisher lives; a pull reconnects while
/// it has players (or is static), except one that never started, whose players are told.
pub fn disconnect(s: &mut Session) {
    let Some(ctx) = s.ext.get::<RelayCtx>() else { return };
    match &ctx.owner {
        Owner::Push(set, idx) => {
            let Some(set) = set.upgrade() else { return };
            let mut set_ref = set.borrow_mut();
            if !set_ref.alive {
                return;
            }
            let weak = Rc::downgrade(&set);
            let idx = *idx;
            let Some(e) = set_ref.entries.get_mut(idx) else { return };
            if !std::ptr::eq(e.peer.as_ptr(), Rc::as_ptr(&s.peer)) {
                return;
            }
            log_info!(s.log, "rtmp: relay: {}: again in {} ms", e.spec.describe(), e.spec.reconnect_ms);
            arm(&mut e.timer, e.spec.reconnect_ms, move || retry_push(&weak, idx));
        }
        Owner::Pull(key, id) => {
            let main = s.srv_ctx.main::<RelayModule>();
            let mut pulls = main.pulls.borrow_mut();
            let Some(p) = pulls.get_mut(key).filter(|p| p.id == *id) else { return };
            p.players.retain(|(w, _)| w.strong_count() > 0);
            let keep = p.is_static || (!p.players.is_empty() && (p.started_once || matches!(p.spec.source, Source::Worker)));
            if keep {
                if !s.internal {
                    log_info!(s.log, "rtmp: relay: {}: again in {} ms", p.spec.describe(), p.spec.reconnect_ms);
                }
                let (srv, key2, id) = (s.srv_ctx, key.clone(), *id);
                arm(&mut p.timer, p.spec.reconnect_ms, move || retry_pull(srv, &key2, id));
                return;
            }
            let Some(p) = pulls.remove(key) else { return };
            drop(pulls);
            // Players of a pull that never started would wait for nothing: they are told and
            // closed. (Once it ran, they got UnpublishNotify and stay, as players of any stream
            // that ends, and it reconnects.)
            let why = format!("relay: {} failed", p.spec.describe());
            for (peer, stream_id) in p.players {
                if let Some(peer) = peer.upgrade() {
                    peer.send_status(stream_id, "error", "NetStream.Play.StreamNotFound", "Relay failed");
                    peer.request_close(why.clone());
                }
            }
        }
    }
}

/// Arms `slot`'s timer (made on first use) to run `f` after `ms`, and again as it asks.
pub fn arm(slot: &mut Option<Timer>, ms: u64, f: impl FnMut() -> Again + 'static) {
    let t = Timer::new(f);
    t.arm(ms);
    *slot = Some(t);
}

/// A push's reconnect timer: reopens it while its publisher lives.
pub fn retry_push(set: &Weak<RefCell<PushSet>>, idx: usize) -> Again {
    let Some(set) = set.upgrade() else { return Again::Stop };
    let (spec, attempt) = {
        let Ok(mut s) = set.try_borrow_mut() else { return Again::After(100) };
        if !s.alive {
            return Again::Stop;
        }
        let Some(e) = s.entries.get_mut(idx) else { return Again::Stop };
        if e.peer.strong_count() > 0 {
            return Again::Stop;
        }
        e.attempts += 1;
        (e.spec.clone(), e.attempts)
    };
    let log = Log::cycle();
    match open(&spec, attempt, Owner::Push(Rc::downgrade(&set), idx), log) {
        Ok(peer) => {
            if let Some(e) = set.borrow_mut().entries.get_mut(idx) {
                e.peer = Rc::downgrade(&peer);
            }
            Again::Stop
        }
        Err(OpenError::Resolving) => Again::Stop,
        Err(e) => {
            log_info!(log, "rtmp: relay: {}: {}; again in {} ms", spec.describe(), e, spec.reconnect_ms);
            Again::After(spec.reconnect_ms)
        }
    }
}

/// A pull's reconnect timer: reopens it while it has players (or is static).
pub fn retry_pull(srv: CtxRef, key: &(usize, String), id: u64) -> Again {
    let main = srv.main::<RelayModule>();
    let (spec, attempt) = {
        let Ok(mut pulls) = main.pulls.try_borrow_mut() else { return Again::After(100) };
        let Some(p) = pulls.get_mut(key).filter(|p| p.id == id) else { return Again::Stop };
        if p.peer.strong_count() > 0 {
            return Again::Stop;
        }
        p.players.retain(|(w, _)| w.strong_count() > 0);
        let local = crate::live::view::is_published(p.spec.app_ctx, &p.spec.local);
        // (A static pull keeps trying even then: it is configured to run.)
        if !p.is_static && (p.players.is_empty() || local) {
            // Nobody waits any more, or someone publishes it here now.
            pulls.remove(key);
            return Again::Stop;
        }
        (p.spec.clone(), 0)
    };
    let log = Log::cycle();
    match open(&spec, attempt, Owner::Pull(key.clone(), id), log) {
        Ok(peer) => {
            if let Some(p) = main.pulls.borrow_mut().get_mut(key).filter(|p| p.id == id) {
                p.peer = Rc::downgrade(&peer);
            }
            Again::Stop
        }
        Err(OpenError::Resolving) => Again::Stop,
        Err(e) => {
            // A worker pull waiting for its stream to appear somewhere polls quietly.
            if !matches!(spec.source, Source::Worker) {
                log_info!(log, "rtmp: relay: {}: {}; again in {} ms", spec.describe(), e, spec.reconnect_ms);
            }
            Again::After(spec.reconnect_ms)
        }
    }
}
