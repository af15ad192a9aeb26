//! One RTMP connection: drives the sans-IO `ServerSession` from nginx events, answers the
//! NetConnection commands itself and hands publish/play/media to the feature modules' hooks.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::Amf0Value;
use rtmp_proto::caps::Capabilities;
use rtmp_proto::command::{self, Command};
use rtmp_proto::message::{csid, msg_type, Control, UserControl};
use rtmp_proto::session::{ServerEvent, ServerSession, SessionConfig, SessionError};
use rtmp_proto::{chunk, RawMessage};

use crate::ngx::conn::{Conn, Event, Flow, Handler, Recv};
use crate::ngx::listen::Accept;
use crate::ngx::log::Log;
use crate::ngx::module::CtxRef;
use crate::{log_debug, log_info};

use super::conf::{CoreAppConf, CoreSrvConf};
use super::ext::Ext;
use super::hooks::{PlayReq, PublishReq, Resume, Step, Waiter};
use super::names;
use super::peer::{Flush, Peer};
use super::{hooks, internal_hooks, CoreModule};

thread_local! {
    /// The worker's shared read buffer (see `Session::read_and_feed`).
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The read timer's period when `ping` is off (see `arm_read_timer`).
const IDLE_REARM_MS: u64 = 3_600_000;

/// Bytes read per wake-up before yielding to other connections.
const READ_BUDGET: usize = 1 << 20;
const READ_SIZE: usize = 64 * 1024;

/// What the client said in `connect`.
#[derive(Default, Debug, Clone)]
pub struct ConnectInfo {
    pub app: String,
    /// Query string of the app part of the URL (`rtmp://host/app?k=v/name`).
    pub args: String,
    pub tc_url: String,
    pub flashver: String,
    pub swf_url: String,
    pub page_url: String,
    pub object_encoding: f64,
    /// Enhanced RTMP codecs the client announced it can receive.
    pub caps: Capabilities,
}

mod outgoing;
mod proto;

pub use outgoing::Outgoing;
pub use proto::Proto;

pub struct Session {
    pub conn: Conn,
    pub log: Log,
    pub srv_ctx: CtxRef,
    /// The application, once `connect` succeeded.
    pub app_ctx: Option<CtxRef>,
    pub proto: Proto,
    /// An outgoing connection (a relay), described for log lines. Its local hooks run as for a
    /// client, but what they send (statuses, user control) is not meant for the remote server
    /// and is dropped: the relay module talks to the server with `send_upstream`.
    pub relay: Option<String>,
    /// A link between two workers of this nginx (one worker pulling a stream another one
    /// publishes): only the modules that serve links (live, relay, stat) see its events, so
    /// access, notify, record, HLS… act once, in the worker the client is on.
    pub internal: bool,
    pub peer: Rc<Peer>,
    pub info: ConnectInfo,
    /// What connect's `app` had after the application, between slashes (`vod/sub/dir` →
    /// `sub/dir`; Wowza's `_definst_` dropped). FFmpeg sends `rtmp://host/vod/sub/a.flv` as app
    /// `vod/sub` and name `a`: the play module looks for files under it; everyone else ignores it.
    pub app_instance: String,
    /// Message stream ids handed out by createStream.
    pub streams: Vec<u32>,
    next_stream: u32,
    /// Per-feature-module state.
    pub ext: Ext,
    input: BytesMut,
    connected: bool,
    ping_sent: bool,
    /// Set by hooks and the command layer: close after this event, logged at info.
    closing: Option<String>,
    /// Time the session started (ngx_current_msec), for stats and notify.
    pub started_ms: u64,
    /// A request waiting for a hook's asynchronous answer; nothing else from the client is
    /// handled meanwhile (it stays queued in the protocol session and the socket).
    hold: Option<Hold>,
    /// A player that is not an RTMP client (HTTP-FLV): its play, run once connect is accepted.
    pending_play: Option<PlayReq>,
    /// Its play was accepted by a module.
    playing: bool,
    /// The last error status a hook sent (`NetStream.Play.StreamNotFound`…), for HTTP players.
    pub refusal: Option<String>,
    /// Publish and play requests a module accepted, per stream id (for control redirects).
    accepted: Vec<Request>,
}

/// Where a virtual player's play request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayState {
    /// A hook waits for an answer (an HTTP callback).
    Waiting,
    Playing,
    /// Refused: the status code a hook sent, if any, and the reason logged.
    Refused { code: Option<String>, reason: String },
}

/// The requests whose hooks may answer later.
#[derive(Clone)]
enum Request {
    Connect { tid: f64 },
    Publish(PublishReq),
    Play(PlayReq),
}

struct Hold {
    req: Request,
    /// The hook to run after the answer.
    next: usize,
    waiter: Waiter,
}

/// The accept handler of our listeners.
pub struct SessionStarter;

impl Accept for SessionStarter {
    fn accept(conn: Conn, server: CtxRef) {
        start_session(conn, server, false);
    }
}

/// The accept handler of the links between workers (see `core::link`).
pub struct LinkStarter;

impl Accept for LinkStarter {
    fn accept(conn: Conn, server: CtxRef) {
        start_session(conn, server, true);
    }
}

fn start_session(conn: Conn, server: CtxRef, internal: bool) {
    {
        let srv = server.srv::<CoreModule>();
        let cfg = SessionConfig {
            max_message: srv.max_message(),
            out_chunk_size: srv.chunk_size(),
            ack_window: srv.ack_window(),
        };
        let peer = Rc::new(Peer::new(conn, srv.out_queue()));
        let mut s = Session::with(conn, server, Proto::Server(ServerSession::new(cfg)), peer);
        if internal {
            log_debug!(conn.log(), "rtmp: worker link connected");
            s.internal = true;
        } else {
            super::peer::count_accepted();
            log_info!(conn.log(), "rtmp: client connected");
            if srv.so_keepalive == Some(true) && !conn.set_keepalive() {
                log_info!(conn.log(), "rtmp: setsockopt(SO_KEEPALIVE) failed");
            }
            set_nodelay(conn, srv);
        }
        conn.read_timer(srv.timeout_ms());
        conn.attach(s);
        if conn.read_ready() {
            conn.dispatch_read::<Session>();
        } else if !conn.handle_read_event() {
            log_info!(conn.log(), "rtmp: could not arm the read event");
        }
    }
}

/// `tcp_nodelay` on a connection accepted or opened (a relay).
fn set_nodelay(conn: Conn, srv: &CoreSrvConf) {
    if srv.tcp_nodelay() && !conn.set_nodelay() {
        log_info!(conn.log(), "rtmp: setsockopt(TCP_NODELAY) failed");
    }
}

impl Handler for Session {
    fn on_event(&mut self, conn: Conn, ev: Event) -> Flow {
        match ev {
            Event::Read => self.on_read(),
            Event::ReadTimeout => self.on_read_timeout(),
            Event::Write => self.on_write(),
            Event::WriteTimeout if self.peer.take_merge_timer() => self.on_write(),
            Event::WriteTimeout => self.close("write timed out (\"timeout\")"),
            Event::Shutdown => self.close("worker is shutting down"),
        }
        if let Some(reason) = self.peer.take_close_request() {
            self.close(&reason);
        }
        if let Some(r) = self.peer.take_redirect() {
            self.redirect(&r);
            self.drain_output();
        }
        for (rec, start) in self.peer.take_record_requests() {
            for h in &self.hooks().record_control {
                h(self, &rec, start);
            }
        }
        if let Some(reason) = self.closing.take() {
            // Best effort: a final status (BadName, StreamNotFound…) should reach the client.
            let _ = self.peer.flush();
            match &self.relay {
                Some(what) => log_info!(self.log, "rtmp: relay {}: closing: {}", what, reason),
                None => log_info!(self.log, "rtmp: closing: {}", reason),
            }
            self.disconnect();
            let _ = conn;
            return Flow::Close;
        }
        Flow::Keep
    }
}

impl Session {
    /// A session in its initial state (not connected, no streams).
    pub(super) fn with(conn: Conn, srv_ctx: CtxRef, proto: Proto, peer: Rc<Peer>) -> Session {
        Session {
            conn,
            log: conn.log(),
            srv_ctx,
            app_ctx: None,
            proto,
            relay: None,
            internal: false,
            peer,
            info: ConnectInfo::default(),
            app_instance: String::new(),
            streams: Vec::new(),
            next_stream: 1,
            ext: Ext::default(),
            input: BytesMut::new(),
            connected: false,
            ping_sent: false,
            closing: None,
            started_ms: crate::ngx::now_ms(),
            hold: None,
            pending_play: None,
            playing: false,
            refusal: None,
            accepted: Vec::new(),
        }
    }

    /// A player that is not an RTMP client (an HTTP-FLV request): `info` stands for its
    /// `connect`; `start_play` then runs the application's connect and play hooks as for an RTMP
    /// client, and its peer gets the stream as the live module sends it.
    pub fn virtual_player(conn: Conn, srv_ctx: CtxRef, app_ctx: CtxRef, peer: Rc<Peer>, info: ConnectInfo) -> Session {
        let srv = srv_ctx.srv::<CoreModule>();
        let cfg = SessionConfig { max_message: srv.max_message(), out_chunk_size: srv.chunk_size(), ack_window: srv.ack_window() };
        peer.set_info(super::peer::PeerInfo {
            flashver: info.flashver.clone(),
            page_url: info.page_url.clone(),
            swf_url: info.swf_url.clone(),
            relay: false,
            internal: false,
        });
        let mut s = Session::with(conn, srv_ctx, Proto::Server(ServerSession::new(cfg)), peer);
        s.app_ctx = Some(app_ctx);
        s.info = info;
        s
    }

    /// Runs connect, then play of `name` (with its `args`), through the hooks.
    pub fn start_play(&mut self, name: &str, args: &str) {
        let mut req = PlayReq::new(1, 0.0, name, -1000.0, -1.0, false);
        req.args = args.to_string();
        self.pending_play = Some(req);
        self.run_request(Request::Connect { tid: 0.0 }, 0);
    }

    /// Resumes a request whose hook answered (after `Peer::wake`).
    pub fn resume(&mut self) {
        if self.hold.is_some() {
            self.try_resume();
        }
    }

    pub fn play_state(&self) -> PlayState {
        if let Some(reason) = &self.closing {
            return PlayState::Refused { code: self.refusal.clone(), reason: reason.clone() };
        }
        if self.playing {
            PlayState::Playing
        } else {
            PlayState::Waiting
        }
    }

    /// Ends a virtual player: the disconnect hooks run (it leaves its stream) and its peer
    /// takes no more bytes.
    pub fn end(&mut self, reason: &str) {
        if self.peer.is_closed() {
            return;
        }
        log_info!(self.log, "rtmp: closing: {}", reason);
        self.disconnect();
    }

    /// The control API's redirect: what this session publishes (and/or plays) stops and starts
    /// again under `r.name`, through the hooks, as the C module's `/control/redirect` does.
    pub fn redirect(&mut self, r: &super::peer::Redirect) {
        let (name, args) = command::split_name_args(&r.name);
        let todo: Vec<Request> = self
            .accepted
            .iter()
            .filter(|q| matches!(q, Request::Publish(_) if r.publishers) || matches!(q, Request::Play(_) if r.players))
            .cloned()
            .collect();
        for mut req in todo {
            let id = match &mut req {
                Request::Publish(p) => {
                    (p.name, p.args) = (name.to_string(), args.to_string());
                    p.stream_id
                }
                Request::Play(p) => {
                    (p.name, p.args) = (name.to_string(), args.to_string());
                    p.stream_id
                }
                Request::Connect { .. } => continue,
            };
            log_info!(self.log, "rtmp: redirected to \"{}\" (control)", name);
            self.close_stream(id);
            if self.closing.is_some() || self.hold.is_some() {
                break;
            }
            self.run_request(req, 0);
        }
    }

    /// Runs the `record_done` hooks (a recorder of this session closed a file).
    pub fn record_done(&mut self, done: &super::hooks::RecordDone) {
        let hooks = self.hooks();
        for h in &hooks.record_done {
            h(self, done);
        }
    }

    /// A close a hook or another connection asked for (read by virtual players' owners).
    pub fn take_closing(&mut self) -> Option<String> {
        self.closing.take().or_else(|| self.peer.take_close_request())
    }

    /// The hooks this session's events run: the internal set for links between workers.
    pub fn hooks(&self) -> &'static super::hooks::Hooks {
        if self.internal {
            internal_hooks(self.srv_ctx)
        } else {
            hooks(self.srv_ctx)
        }
    }

    pub fn srv(&self) -> &'static CoreSrvConf {
        self.srv_ctx.srv::<CoreModule>()
    }

    pub fn app(&self) -> Option<&'static CoreAppConf> {
        self.app_ctx.map(|a| a.app::<CoreModule>())
    }

    /// Closes the connection after the current event.
    pub fn close(&mut self, reason: &str) {
        if self.closing.is_none() {
            self.closing = Some(reason.to_string());
        }
    }

    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Sends a message on a chunk stream, encoded with the chunk size the client was told
    /// (nothing on a relay: see `relay`).
    pub fn send(&self, cs: u32, msg: &RawMessage) {
        if self.relay.is_none() && self.peer.wire() == super::peer::Wire::Rtmp {
            self.peer.push(encode(cs, msg, self.peer.chunk_size.get()));
        }
    }

    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        if level == "error" {
            self.refusal = Some(code.to_string());
        }
        let payload = command::on_status(level, code, description, None);
        self.send(csid::COMMAND, &RawMessage::new(msg_type::AMF0_COMMAND, stream_id, 0, payload));
    }

    pub fn send_user_control(&self, uc: UserControl) {
        self.send(csid::PROTOCOL, &Control::UserControl(uc).to_message());
    }

    pub fn send_command(&self, stream_id: u32, payload: Bytes) {
        self.send(csid::COMMAND, &RawMessage::new(msg_type::AMF0_COMMAND, stream_id, 0, payload));
    }

    /// Reads once and parses what arrived. Players rarely send anything, so a session with no
    /// partial message pending reads into one per-worker buffer, and only the bytes of an
    /// incomplete message stay with it: an idle session holds no read buffer.
    fn read_and_feed(&mut self) -> (Recv, Result<(), SessionError>) {
        if !self.input.is_empty() {
            let r = self.conn.recv(&mut self.input, READ_SIZE);
            let fed = match r {
                Recv::Data(n) => {
                    self.peer.add_received(n);
                    self.proto.feed(&mut self.input)
                }
                _ => Ok(()),
            };
            return (r, fed);
        }
        SCRATCH.with(|scratch| {
            let Ok(mut buf) = scratch.try_borrow_mut() else {
                return (self.conn.recv(&mut self.input, READ_SIZE), Ok(()));
            };
            let r = self.conn.recv(&mut buf, READ_SIZE);
            let mut fed = Ok(());
            if let Recv::Data(n) = r {
                self.peer.add_received(n);
                fed = self.proto.feed(&mut buf);
                if !buf.is_empty() {
                    self.input.extend_from_slice(&buf);
                    buf.clear();
                }
            }
            (r, fed)
        })
    }

    fn on_read(&mut self) {
        if self.hold.is_some() {
            self.try_resume();
            self.drain_output();
            self.process_events();
            if self.hold.is_some() || self.closing.is_some() {
                return;
            }
        }
        let mut budget = READ_BUDGET;
        loop {
            let (got, fed) = self.read_and_feed();
            match got {
                Recv::Data(n) => {
                    budget = budget.saturating_sub(n);
                    self.ping_sent = false;
                    if let Err(e) = fed {
                        self.close(&format!("protocol error: {e}"));
                    }
                    self.drain_output();
                    self.process_events();
                    // While a request waits, the socket is read again only after the answer.
                    if self.closing.is_some() || self.hold.is_some() {
                        return;
                    }
                    if budget == 0 {
                        self.conn.post_read();
                        break;
                    }
                }
                Recv::Again => break,
                Recv::Eof => return self.close("client closed the connection"),
                Recv::Error => return self.close("recv() failed"),
            }
        }
        self.arm_read_timer();
        if !self.conn.handle_read_event() {
            self.close("could not arm the read event");
        }
    }

    /// Before the handshake completes the whole of `timeout` applies; then `ping` probes idle
    /// clients and `ping_timeout` ends them.
    fn arm_read_timer(&self) {
        if !self.proto.handshake_done() {
            return; // the accept-time timer runs until the handshake is done
        }
        let ping = self.srv().ping_ms();
        // With `ping 0` a timer still runs (and only re-arms itself): a worker shutting down
        // gracefully waits for sessions with timers, and would otherwise leave their sockets open.
        self.conn.read_timer(if ping > 0 { ping } else { IDLE_REARM_MS });
    }

    fn on_read_timeout(&mut self) {
        if !self.proto.handshake_done() {
            return self.close("handshake timed out");
        }
        if self.ping_sent {
            return self.close("ping timed out");
        }
        if self.srv().ping_ms() == 0 {
            return self.conn.read_timer(IDLE_REARM_MS);
        }
        self.ping_sent = true;
        self.proto.ping(crate::ngx::now_ms() as u32);
        self.drain_output();
        self.conn.read_timer(self.srv().ping_timeout_ms());
    }

    fn on_write(&mut self) {
        match self.peer.flush() {
            Flush::Done => self.conn.clear_write_timer(),
            Flush::Again => {
                self.conn.write_timer(self.srv().timeout_ms());
                if !self.conn.handle_write_event() {
                    self.close("could not arm the write event");
                }
            }
            Flush::Error => self.close("send failed"),
        }
    }

    /// Moves what the protocol session produced (handshake, acks, pongs) into the send queue.
    fn drain_output(&mut self) {
        let out = self.proto.output();
        if !out.is_empty() {
            let b = out.split().freeze();
            self.peer.push(b);
        }
    }

    fn process_events(&mut self) {
        while self.closing.is_none() && self.hold.is_none() {
            let Some(ev) = self.proto.poll_event() else { break };
            match ev {
                ServerEvent::HandshakeDone => {
                    log_debug!(self.log, "rtmp: handshake done");
                    self.arm_read_timer();
                    if self.relay.is_some() {
                        for h in &self.hooks().outgoing {
                            let s = h(self);
                            if !self.step(s) {
                                break;
                            }
                        }
                    }
                }
                ServerEvent::Command { stream_id, command, .. } => self.on_command(stream_id, command),
                ServerEvent::BadCommand { stream_id, reason } => {
                    self.close(&format!("undecodable command on stream {stream_id}: {reason}"));
                }
                ServerEvent::Media(msg) => self.on_media(msg),
                ServerEvent::Control(_) => {}
            }
            self.drain_output();
        }
    }

    fn on_media(&mut self, msg: RawMessage) {
        if !self.connected {
            return self.close("media before connect");
        }
        let hooks = self.hooks();
        for h in &hooks.media {
            let s = h(self, &msg);
            if !self.step(s) {
                break;
            }
        }
    }

    /// Applies a hook's answer; false stops the chain.
    fn step(&mut self, s: Step) -> bool {
        match s {
            Step::Continue => true,
            Step::Stop => false,
            Step::Close(reason) => {
                self.close(&reason);
                false
            }
            // Only connect, publish and play may wait; elsewhere a wait is a no-op.
            Step::Wait(_) | Step::Incoming => true,
        }
    }

    fn on_command(&mut self, stream_id: u32, cmd: Command) {
        log_debug!(self.log, "rtmp: command {:?} on stream {}", cmd, stream_id);
        if self.relay.is_some() {
            return self.on_reply(stream_id, cmd);
        }
        if !self.connected && !matches!(cmd, Command::Connect { .. }) {
            if let Command::Other { .. } | Command::Result { .. } | Command::Error { .. } = cmd {
                return;
            }
            return self.close("command before connect");
        }
        let hooks = self.hooks();
        match cmd {
            Command::Connect { tid, props, args } => self.on_connect(tid, props, args),
            Command::CreateStream { tid } => {
                if self.streams.len() >= self.srv().max_streams() as usize {
                    self.send_command(0, command::connect_error(tid, "NetConnection.Call.Failed", "too many streams"));
                    return self.close("too many streams (\"max_streams\")");
                }
                let id = self.next_stream;
                self.next_stream = self.next_stream.wrapping_add(1).max(1);
                self.streams.push(id);
                self.send_command(0, command::create_stream_result(tid, id));
            }
            Command::ReleaseStream { tid, .. } => self.reply_result(tid),
            Command::FcPublish { tid, name } => {
                self.send_command(0, command::on_fc_publish("NetStream.Publish.Start", &name));
                self.reply_result(tid);
            }
            Command::FcUnpublish { tid, name } => {
                self.send_command(0, command::on_fc_unpublish("NetStream.Unpublish.Success", &name));
                self.reply_result(tid);
            }
            Command::Publish { tid, name, kind } => {
                let (n, a) = command::split_name_args(&name);
                let req = PublishReq { stream_id, tid, name: n.to_string(), args: a.to_string(), kind, relay: None };
                if !self.check_stream(stream_id) || !names::stream_name_ok(&req.name, false) {
                    self.send_status(stream_id, "error", "NetStream.Publish.BadName", "Invalid stream name");
                    return self.close("publish: bad stream id or name");
                }
                self.run_request(Request::Publish(req), 0);
            }
            Command::Play { tid, name, start, duration, reset } => {
                self.play(PlayReq::new(stream_id, tid, &name, start, duration, reset));
            }
            Command::Play2 { tid, params } => {
                let name = params
                    .iter()
                    .find(|(k, _)| k == "streamName")
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                let start = params.iter().find(|(k, _)| k == "start").and_then(|(_, v)| v.as_f64()).unwrap_or(-2.0);
                self.play(PlayReq::new(stream_id, tid, &name, start, -1.0, false));
            }
            Command::Pause { pause, .. } => {
                for h in &hooks.pause {
                    let s = h(self, stream_id, pause);
                    if !self.step(s) {
                        break;
                    }
                }
            }
            Command::Seek { position_ms, .. } => {
                let mut handled = false;
                for h in &hooks.seek {
                    match h(self, stream_id, position_ms) {
                        Step::Continue => {}
                        s => {
                            handled = true;
                            if !self.step(s) {
                                break;
                            }
                        }
                    }
                }
                if !handled {
                    log_debug!(self.log, "rtmp: seek ignored on a live stream");
                }
            }
            Command::CloseStream { .. } => self.close_stream(stream_id),
            Command::DeleteStream { stream_id: id, .. } => {
                let id = if id.is_finite() && id >= 0.0 { id as u32 } else { stream_id };
                self.close_stream(id);
                self.streams.retain(|s| *s != id);
            }
            Command::GetStreamLength { tid, .. } => {
                self.send_command(0, command::stream_length_result(tid, 0.0));
            }
            Command::ReceiveAudio { flag } => self.receive(stream_id, false, flag),
            Command::ReceiveVideo { flag } => self.receive(stream_id, true, flag),
            Command::Result { .. } | Command::Error { .. } | Command::OnStatus { .. } => {}
            Command::Other { name, tid, .. } => {
                log_debug!(self.log, "rtmp: command \"{}\" ignored", name);
                if tid != 0.0 {
                    self.reply_result(tid);
                }
            }
        }
    }

    fn reply_result(&self, tid: f64) {
        if tid != 0.0 {
            self.send_command(0, command::simple_result(tid));
        }
    }

    fn play(&mut self, req: PlayReq) {
        if !self.check_stream(req.stream_id) || !names::stream_name_ok(&req.name, true) {
            self.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", "Invalid stream name");
            return self.close("play: bad stream id or name");
        }
        self.run_request(Request::Play(req), 0);
    }

    fn receive(&mut self, stream_id: u32, video: bool, flag: bool) {
        let hooks = self.hooks();
        for h in &hooks.receive {
            let s = h(self, stream_id, video, flag);
            if !self.step(s) {
                break;
            }
        }
    }

    /// Runs a request's hooks from `from` on, until one handles, refuses or waits.
    fn run_request(&mut self, mut req: Request, from: usize) {
        let hooks = self.hooks();
        let mut handled = false;
        for i in from.. {
            let step = match &req {
                Request::Connect { .. } => hooks.connect.get(i).map(|h| h(self)),
                Request::Publish(r) => hooks.publish.get(i).map(|h| h(self, r)),
                Request::Play(r) => hooks.play.get(i).map(|h| h(self, r)),
            };
            match step {
                None => break,
                Some(Step::Continue) => {}
                Some(Step::Incoming) => {
                    if let Request::Play(p) = &mut req {
                        p.incoming = true;
                    }
                }
                Some(Step::Stop) => {
                    handled = true;
                    break;
                }
                Some(Step::Close(reason)) => return self.refuse(req, &reason),
                Some(Step::Wait(waiter)) => {
                    self.hold = Some(Hold { req, next: i + 1, waiter });
                    return self.try_resume();
                }
            }
        }
        self.complete(req, handled);
    }

    /// Resumes a waiting request if its answer is there.
    fn try_resume(&mut self) {
        let Some(answer) = self.hold.as_ref().and_then(|h| h.waiter.take()) else { return };
        let Some(Hold { mut req, next, .. }) = self.hold.take() else { return };
        match answer {
            Resume::Continue => {}
            Resume::Rename(name) => {
                // A connect is renamed to an application: no '/' in it either.
                if !names::stream_name_ok(&name, matches!(req, Request::Play(_))) {
                    return self.refuse(req, &format!("redirected to a bad stream name \"{name}\""));
                }
                match &mut req {
                    Request::Publish(p) => p.name = name,
                    Request::Play(p) => p.name = name,
                    // A connect redirected to another application of this server.
                    Request::Connect { .. } => {
                        let found = self.srv().applications.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
                        let Some(app) = found else {
                            return self.refuse(req, &format!("redirected to unknown application \"{name}\""));
                        };
                        self.app_ctx = Some(app);
                        self.info.app = name;
                    }
                }
            }
            Resume::Close(reason) => return self.refuse(req, &reason),
            Resume::Relay { url, name } => {
                if let Some(n) = &name {
                    if !names::stream_name_ok(n, matches!(req, Request::Play(_))) {
                        return self.refuse(req, &format!("redirected to a bad stream name \"{n}\""));
                    }
                }
                match &mut req {
                    Request::Publish(p) => {
                        p.relay = Some(url);
                        p.name = name.unwrap_or(std::mem::take(&mut p.name));
                    }
                    Request::Play(p) => {
                        p.relay = Some(url);
                        p.name = name.unwrap_or(std::mem::take(&mut p.name));
                    }
                    Request::Connect { .. } => {
                        return self.refuse(req, &format!("connect redirected to {url}: only publish and play relay"))
                    }
                }
            }
        }
        self.run_request(req, next);
    }

    fn refuse(&mut self, req: Request, reason: &str) {
        if let Request::Connect { tid } = req {
            self.send_command(0, command::connect_error(tid, "NetConnection.Connect.Rejected", "Rejected"));
        }
        self.close(reason);
    }

    /// After the hooks: connect is accepted, a handled publish starts the recorders.
    fn complete(&mut self, req: Request, handled: bool) {
        let what = match req {
            Request::Connect { tid } => {
                self.connected = true;
                if let Proto::Server(p) = &mut self.proto {
                    p.accept_connect(tid, self.info.object_encoding, self.info.caps.server_reply());
                }
                self.peer.chunk_size.set(self.proto.out_chunk_size());
                if let Some(play) = self.pending_play.take() {
                    self.streams.push(play.stream_id);
                    self.play(play);
                }
                return;
            }
            Request::Publish(req) if handled => {
                self.accepted.push(Request::Publish(req.clone()));
                let hooks = self.hooks();
                for h in &hooks.published {
                    if self.closing.is_some() {
                        break;
                    }
                    let s = h(self, &req);
                    if !self.step(s) {
                        break;
                    }
                }
                return;
            }
            Request::Publish(_) => "publish",
            Request::Play(req) if handled => {
                self.accepted.push(Request::Play(req));
                self.playing = true;
                return;
            }
            Request::Play(req) => {
                let hooks = self.hooks();
                for h in &hooks.play_unhandled {
                    let s = h(self, &req);
                    if !self.step(s) {
                        return;
                    }
                }
                "play"
            }
        };
        if self.peer.wire() != super::peer::Wire::Rtmp {
            self.refusal.get_or_insert_with(|| "NetStream.Play.StreamNotFound".into());
            return self.close(&format!("{what}: no module of this application handles it"));
        }
        log_info!(self.log, "rtmp: {} refused: no module of this application handles it (is \"live on\" set?)", what);
    }

    pub fn close_stream(&mut self, stream_id: u32) {
        self.accepted.retain(|r| match r {
            Request::Publish(p) => p.stream_id != stream_id,
            Request::Play(p) => p.stream_id != stream_id,
            Request::Connect { .. } => false,
        });
        let hooks = self.hooks();
        for h in &hooks.close_stream {
            let s = h(self, stream_id);
            if !self.step(s) {
                break;
            }
        }
    }

    fn check_stream(&self, stream_id: u32) -> bool {
        self.streams.contains(&stream_id)
    }

    fn on_connect(&mut self, tid: f64, props: Vec<(String, Amf0Value)>, _args: Vec<Amf0Value>) {
        if self.connected {
            return self.close("connect sent twice");
        }
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let text = |k: &str| get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let raw_app = text("app");
        let (app, args) = command::split_name_args(&raw_app);
        // "app/instance" keeps only the application part (nginx-rtmp-module refuses it, unless
        // the instance is "_definst_"); the instance is kept aside for VOD.
        let app = app.trim_end_matches('/');
        let (app, instance) = app.split_once('/').unwrap_or((app, ""));
        let instance = instance.trim_matches('/');
        self.app_instance = if instance == "_definst_" { String::new() } else { instance.to_string() };
        let app = app.to_string();
        self.info = ConnectInfo {
            app: app.clone(),
            args: args.to_string(),
            tc_url: text("tcUrl"),
            flashver: text("flashVer"),
            swf_url: text("swfUrl"),
            page_url: text("pageUrl"),
            object_encoding: get("objectEncoding").and_then(|v| v.as_f64()).unwrap_or(0.0),
            caps: Capabilities::from_connect(&props),
        };
        self.peer.set_info(super::peer::PeerInfo {
            flashver: self.info.flashver.clone(),
            page_url: self.info.page_url.clone(),
            swf_url: self.info.swf_url.clone(),
            relay: false,
            internal: self.internal,
        });
        let found = self.srv().applications.iter().find(|(n, _)| *n == app).map(|(_, c)| *c);
        let Some(app_ctx) = found else {
            self.send_command(
                0,
                command::connect_error(tid, "NetConnection.Connect.Rejected", "Application not found"),
            );
            return self.close(&format!("connect: application \"{app}\" not found"));
        };
        self.app_ctx = Some(app_ctx);
        log_info!(
            self.log,
            "rtmp: connect app=\"{}\" flashver=\"{}\" tcurl=\"{}\"",
            app,
            self.info.flashver,
            self.info.tc_url
        );
        self.run_request(Request::Connect { tid }, 0);
    }

    /// Runs the disconnect hooks once; the connection is closed right after.
    fn disconnect(&mut self) {
        let hooks = self.hooks();
        for h in &hooks.disconnect {
            h(self);
        }
        self.peer.mark_closed();
    }
}

/// Chunk-encodes a message for one receiver: fmt 0 then fmt 3, so the bytes can be shared by
/// every receiver with the same chunk size and stream id.
pub fn encode(cs: u32, msg: &RawMessage, chunk_size: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.payload.len() + 18 + msg.payload.len() / chunk_size.max(1) as usize * 5);
    chunk::encode_standalone(cs, msg, chunk_size, &mut out);
    out.freeze()
}
