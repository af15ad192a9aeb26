//! The play module's hooks: a play whose name is a file in a `play` directory is answered from
//! the file, paced at real time plus a lead, by a timer per play; seek, pause and closeStream act
//! on it. A name found in no directory is fetched from the `http://` entries when there are some
//! (`play_local_path` first, where complete downloads are kept), played while it downloads
//! (players of one file share its download); otherwise it goes on to the next module (live), or
//! is refused.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::{self, Amf0Value};
use rtmp_proto::command;
use rtmp_proto::message::{csid, msg_type, Control, UserControl};
use rtmp_proto::vod::{Source, TagKind, Tracks, VodError, VodFile, VodTag};
use rtmp_proto::RawMessage;

use crate::core::hooks::{PlayReq, Step};
use crate::core::peer::{Peer, Wire};
use crate::core::session::{encode, Session};
use crate::ngx::log::Log;
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};
use crate::{log_debug, log_info};

use super::conf::{Entry, PlayAppConf};
use super::names::file_name;
use super::remote::{Failure, FetchSpec, Opened, RemoteSource};
use super::source::FileSource;
use super::PlayModule;

/// Media sent ahead of real time (the C module: the client's buffer + 1 s).
const LEAD_MS: u32 = 1000;
/// Messages sent per timer run at most, so one player never holds the worker for long.
const BURST: usize = 200;
/// How long to wait when the player's queue is full.
const QUEUE_WAIT_MS: u64 = 20;
/// How often a remote file's opening is tried again while it downloads.
const OPEN_RETRY_MS: u64 = 50;

/// The VOD plays of a session, per message stream id.
#[derive(Default)]
struct PlayCtx {
    plays: Vec<Running>,
    /// Plays no play entry had, or whose name is no file name: answered if no later module
    /// takes the play.
    missed: Vec<Missed>,
}

/// A play this module did not take, and how to refuse it if no other module does.
struct Missed {
    stream_id: u32,
    /// The StreamNotFound status's description.
    status: String,
    /// The info line the session closes with.
    why: String,
}

struct Running {
    stream_id: u32,
    vod: Rc<RefCell<Player>>,
    timer: Timer,
}

/// A play: a remote file being opened, or a file being played.
enum Player {
    Opening(Opening),
    Playing(Box<Vod>),
    Ended,
}

/// What a play is about, before its file is open.
struct Params {
    peer: Rc<Peer>,
    log: Log,
    stream_id: u32,
    name: String,
    /// Where to start (ms): the play's start, or a seek before the file was open.
    start: u32,
    enhanced: bool,
    max_queued: usize,
    /// The MP4 tracks the play's arguments pick (`vindex=`, `aindex=`).
    tracks: Tracks,
}

/// A remote file downloading until its reader can open it.
struct Opening {
    params: Params,
    src: RemoteSource,
}

/// One file being played to one player.
struct Vod {
    peer: Rc<Peer>,
    log: Log,
    stream_id: u32,
    name: String,
    src: Box<dyn Source>,
    file: VodFile,
    enhanced: bool,
    /// Media timestamp at `epoch_ms`.
    base_ts: u32,
    epoch_ms: u64,
    /// A tag read but not due yet.
    next: Option<VodTag>,
    paused: bool,
    /// The player's position when it paused.
    paused_at: u32,
    /// Play reached the end (or failed): nothing more to send until a seek.
    done: bool,
    /// The most messages queued for this player before waiting.
    max_queued: usize,
    sent_bytes: u64,
}

fn conf(s: &Session) -> Option<&'static PlayAppConf> {
    let c = s.app_ctx?.app::<PlayModule>();
    (!c.entries.is_empty()).then_some(c)
}

fn with_ctx<R>(s: &mut Session, f: impl FnOnce(&mut PlayCtx) -> R) -> R {
    let mut c = s.ext.remove::<PlayCtx>().unwrap_or_default();
    let r = f(&mut c);
    s.ext.insert(c);
    r
}

/// Ends what `stream_id` plays (the timer goes with it).
fn stop(s: &mut Session, stream_id: u32) -> bool {
    let Some(c) = s.ext.get_mut::<PlayCtx>() else {
        return false;
    };
    c.missed.retain(|m| m.stream_id != stream_id);
    let before = c.plays.len();
    c.plays.retain(|r| r.stream_id != stream_id);
    before != c.plays.len()
}

pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    if s.relay.is_some() || s.internal || s.peer.wire() != Wire::Rtmp {
        return Step::Continue;
    }
    let Some(conf) = conf(s) else {
        return Step::Continue;
    };
    stop(s, req.stream_id);
    let rel = match file_name(&s.app_instance, &req.name) {
        Ok(r) => r,
        Err(why) => {
            // Not a file name: a later module (live, in an application with both) may still
            // take it; else `play_unhandled` refuses it.
            let name = match s.app_instance.as_str() {
                "" => req.name.clone(),
                i => format!("{i}/{}", req.name),
            };
            let missed = Missed {
                stream_id: req.stream_id,
                status: "Invalid stream name".into(),
                why: format!("play \"{name}\": {why} (\"play\")"),
            };
            with_ctx(s, |c| c.missed.push(missed));
            return Step::Continue;
        }
    };
    let start = if req.start.is_finite() && req.start > 0.0 {
        req.start.min(u32::MAX as f64) as u32
    } else {
        0
    };
    let params = Params {
        peer: s.peer.clone(),
        log: s.log,
        stream_id: req.stream_id,
        name: req.name.clone(),
        start,
        enhanced: s.info.caps.receives_video(*b"hvc1"),
        max_queued: (s.srv().out_queue() / 2).clamp(8, 512),
        tracks: Tracks::from_args(&req.args),
    };
    let mut remotes = Vec::new();
    let mut found = None;
    for e in &conf.entries {
        match e {
            Entry::Dir(dir) => {
                if found.is_some() {
                    continue;
                }
                let path = format!("{dir}/{rel}");
                match FileSource::open(&path) {
                    Ok(Some(src)) => found = Some((path, src)),
                    Ok(None) => log_debug!(s.log, "rtmp: play: \"{}\" not found", path),
                    Err(e) => log_info!(s.log, "rtmp: play: cannot open \"{}\": {}", path, e),
                }
            }
            Entry::Http(r) => remotes.push(r.clone()),
        }
    }
    if found.is_none() && !remotes.is_empty() {
        // Complete downloads kept earlier are played from there, not fetched again.
        if let Some(local) = conf.local_path() {
            let path = format!("{local}/{rel}");
            match FileSource::open(&path) {
                Ok(Some(src)) => found = Some((path, src)),
                Ok(None) => log_debug!(s.log, "rtmp: play: \"{}\" not found", path),
                Err(e) => log_info!(s.log, "rtmp: play: cannot open \"{}\": {}", path, e),
            }
        }
    }
    let player = match found {
        Some((path, src)) => {
            let mut src: Box<dyn Source> = Box::new(src);
            let opened = VodFile::open_tracks(&mut *src, params.tracks).and_then(|file| begin(&params, src, file, &path));
            match opened {
                Ok(vod) => Player::Playing(Box::new(vod)),
                Err(e) => {
                    s.send_status(
                        req.stream_id,
                        "error",
                        "NetStream.Play.Failed",
                        &format!("{}: {}", req.name, e),
                    );
                    return Step::Close(format!("play \"{}\": \"{}\": {}", req.name, path, e));
                }
            }
        }
        None if !remotes.is_empty() => {
            let timeout_ms = s
                .app_ctx
                .map_or(10_000, |ctx| crate::netcall::limits(ctx).0);
            let spec = FetchSpec {
                entries: remotes,
                rel,
                addr: s.peer.address(),
                args: req.args.clone(),
                temp_dir: conf.temp_path().to_string(),
                local_dir: conf.local_path().map(str::to_string),
                timeout_ms,
            };
            let (src, how) = RemoteSource::open(spec);
            if let Opened::Joined { written, total } = how {
                log_info!(
                    s.log,
                    "rtmp: play: \"{}\" joins the download of {} ({} of {} bytes so far)",
                    req.name,
                    src.url(),
                    written,
                    total.map_or_else(|| "unknown".to_string(), |t| t.to_string())
                );
            }
            Player::Opening(Opening { params, src })
        }
        None => {
            let missed = Missed {
                stream_id: req.stream_id,
                status: "Video on demand stream not found".into(),
                why: format!("play \"{}\": not found in any \"play\" entry", req.name),
            };
            with_ctx(s, |c| c.missed.push(missed));
            return Step::Continue;
        }
    };
    let vod = Rc::new(RefCell::new(player));
    let timer = pump_timer(Rc::downgrade(&vod));
    let first = tick(&vod);
    if let Again::After(ms) = first {
        timer.arm(ms);
    }
    with_ctx(s, |c| {
        c.plays.push(Running {
            stream_id: req.stream_id,
            vod,
            timer,
        })
    });
    Step::Stop
}

/// Opens the play of `file`: seeks to the start, sends the statuses, onMetaData and the codec
/// headers.
fn begin(
    p: &Params,
    mut src: Box<dyn Source>,
    mut file: VodFile,
    origin: &str,
) -> Result<Vod, VodError> {
    file.set_enhanced(p.enhanced);
    let base_ts = file.seek(&mut *src, p.start)?;
    log_info!(
        p.log,
        "rtmp: play: \"{}\" from \"{}\" at {} ms{}",
        p.name,
        origin,
        base_ts,
        if p.enhanced { " (Enhanced RTMP)" } else { "" }
    );
    let vod = Vod {
        peer: p.peer.clone(),
        log: p.log,
        stream_id: p.stream_id,
        name: p.name.clone(),
        src,
        file,
        enhanced: p.enhanced,
        base_ts,
        epoch_ms: now_ms(),
        next: None,
        paused: false,
        paused_at: 0,
        done: false,
        max_queued: p.max_queued,
        sent_bytes: 0,
    };
    vod.send_control(UserControl::StreamBegin(p.stream_id));
    vod.peer.send_status(
        p.stream_id,
        "status",
        "NetStream.Play.Reset",
        &format!("Playing and resetting {}.", p.name),
    );
    vod.peer.send_status(
        p.stream_id,
        "status",
        "NetStream.Play.Start",
        &format!("Started playing {}.", p.name),
    );
    vod.send_control(UserControl::StreamIsRecorded(p.stream_id));
    vod.send_data(0, command::sample_access());
    vod.send_data(base_ts, vod.file.metadata());
    vod.send_headers(base_ts);
    Ok(vod)
}

/// Runs a play once: sends what is due, or tries to open a downloading file.
fn tick(player: &Rc<RefCell<Player>>) -> Again {
    let Ok(mut p) = player.try_borrow_mut() else {
        return Again::After(QUEUE_WAIT_MS);
    };
    match &mut *p {
        Player::Playing(v) => return v.pump(),
        Player::Ended => return Again::Stop,
        Player::Opening(_) => {}
    }
    let Player::Opening(o) = std::mem::replace(&mut *p, Player::Ended) else {
        return Again::Stop;
    };
    let Opening { params, mut src } = o;
    if params.peer.is_closed() {
        return Again::Stop;
    }
    let refuse = |code: &str, why: String| {
        log_info!(params.log, "rtmp: play: \"{}\": {}", params.name, why);
        params
            .peer
            .send_status(params.stream_id, "error", code, &why);
        params
            .peer
            .request_close(format!("play \"{}\": {}", params.name, why));
        Again::Stop
    };
    let url = src.url();
    let opened = VodFile::open_tracks(&mut src, params.tracks);
    // A download that failed after its first bytes still plays what came (the reader may have
    // all it needs to open): the failure shows when the play reaches the missing bytes.
    let file = match (opened, src.failure()) {
        (Ok(f), _) => f,
        (Err(_), Some(Failure::NotFound)) => {
            return refuse(
                "NetStream.Play.StreamNotFound",
                "Video on demand stream not found".into(),
            )
        }
        (Err(_), Some(Failure::Error(e))) => {
            return refuse(
                "NetStream.Play.Failed",
                format!("{}: cannot fetch: {}", params.name, e),
            )
        }
        (Err(VodError::Pending), None) => {
            *p = Player::Opening(Opening { params, src });
            return Again::After(OPEN_RETRY_MS);
        }
        (Err(e), None) => {
            return refuse("NetStream.Play.Failed", format!("{}: {}", params.name, e))
        }
    };
    let boxed: Box<dyn Source> = Box::new(src);
    match begin(&params, boxed, file, &url) {
        Ok(vod) => {
            *p = Player::Playing(Box::new(vod));
            match &mut *p {
                Player::Playing(v) => v.pump(),
                _ => Again::Stop,
            }
        }
        Err(e) => refuse("NetStream.Play.Failed", format!("{}: {}", params.name, e)),
    }
}

fn pump_timer(vod: Weak<RefCell<Player>>) -> Timer {
    Timer::new(move || {
        let Some(vod) = vod.upgrade() else {
            return Again::Stop;
        };
        tick(&vod)
    })
}

/// No later module took a play whose name no entry had: refused as the C module does.
pub fn play_unhandled(s: &mut Session, req: &PlayReq) -> Step {
    let Some(c) = s.ext.get_mut::<PlayCtx>() else {
        return Step::Continue;
    };
    let Some(i) = c.missed.iter().position(|m| m.stream_id == req.stream_id) else {
        return Step::Continue;
    };
    let m = c.missed.swap_remove(i);
    s.send_status(req.stream_id, "error", "NetStream.Play.StreamNotFound", &m.status);
    Step::Close(m.why)
}

fn with_vod<R>(
    s: &mut Session,
    stream_id: u32,
    f: impl FnOnce(&mut Vod, &Timer) -> R,
) -> Option<R> {
    let c = s.ext.get_mut::<PlayCtx>()?;
    let r = c.plays.iter().find(|r| r.stream_id == stream_id)?;
    let mut p = r.vod.try_borrow_mut().ok()?;
    match &mut *p {
        Player::Playing(v) => Some(f(v, &r.timer)),
        _ => None,
    }
}

fn arm(timer: &Timer, again: Again) {
    if let Again::After(ms) = again {
        timer.arm(ms);
    }
}

pub fn seek(s: &mut Session, stream_id: u32, position_ms: f64) -> Step {
    let ms = if position_ms.is_finite() && position_ms > 0.0 {
        position_ms.min(u32::MAX as f64) as u32
    } else {
        0
    };
    if with_opening(s, stream_id, |o| o.params.start = ms) {
        // As the C module: a seek before the file is open is where the play starts.
        return Step::Stop;
    }
    let handled = with_vod(s, stream_id, |v, timer| {
        v.send_control(UserControl::StreamEof(v.stream_id));
        match v.file.seek(&mut *v.src, ms) {
            Ok(ts) => {
                log_info!(
                    v.log,
                    "rtmp: play: \"{}\" seek to {} ms: at {} ms",
                    v.name,
                    ms,
                    ts
                );
                v.restart_at(ts);
                v.next = None;
                v.paused_at = ts;
                v.done = false;
                v.send_control(UserControl::StreamBegin(v.stream_id));
                v.peer.send_status(
                    v.stream_id,
                    "status",
                    "NetStream.Seek.Notify",
                    &format!("Seeking {} (stream ID {}).", ts, v.stream_id),
                );
                v.peer.send_status(
                    v.stream_id,
                    "status",
                    "NetStream.Play.Start",
                    &format!("Started playing {}.", v.name),
                );
                v.send_headers(ts);
                if v.paused {
                    // One picture while paused, so the player shows where it is (the C module
                    // sends nothing and players jump back: nginx-rtmp-module #600).
                    v.send_until_keyframe();
                } else {
                    arm(timer, v.pump());
                }
            }
            Err(e) => v.fail(&e),
        }
    });
    if handled.is_some() {
        Step::Stop
    } else {
        Step::Continue
    }
}

/// Runs `f` on the play of `stream_id` if it is a remote file not open yet.
fn with_opening(s: &mut Session, stream_id: u32, f: impl FnOnce(&mut Opening)) -> bool {
    let Some(c) = s.ext.get_mut::<PlayCtx>() else {
        return false;
    };
    let Some(r) = c.plays.iter().find(|r| r.stream_id == stream_id) else {
        return false;
    };
    let Ok(mut p) = r.vod.try_borrow_mut() else {
        return false;
    };
    match &mut *p {
        Player::Opening(o) => {
            f(o);
            true
        }
        _ => false,
    }
}

pub fn pause(s: &mut Session, stream_id: u32, paused: bool) -> Step {
    if with_opening(s, stream_id, |_| {}) {
        // As the C module: ignored before the file is open.
        return Step::Stop;
    }
    let handled = with_vod(s, stream_id, |v, timer| {
        if paused {
            if !v.paused {
                v.paused_at = v.position();
            }
            v.paused = true;
            v.peer.send_status(
                v.stream_id,
                "status",
                "NetStream.Pause.Notify",
                "Paused video on demand",
            );
        } else {
            if v.paused {
                v.paused = false;
                v.restart_at(v.paused_at);
            }
            v.peer.send_status(
                v.stream_id,
                "status",
                "NetStream.Unpause.Notify",
                "Unpaused video on demand",
            );
            arm(timer, v.pump());
        }
    });
    if handled.is_some() {
        Step::Stop
    } else {
        Step::Continue
    }
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    let name = with_vod(s, stream_id, |v, _| {
        if !v.done {
            v.send_control(UserControl::StreamEof(v.stream_id));
            v.peer.send_status(
                v.stream_id,
                "status",
                "NetStream.Play.Stop",
                "Stop video on demand",
            );
        }
        v.name.clone()
    });
    if stop(s, stream_id) {
        log_info!(s.log, "rtmp: play: \"{}\" closed", name.unwrap_or_default());
    }
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    s.ext.remove::<PlayCtx>();
}

impl Vod {
    fn send_control(&self, uc: UserControl) {
        self.peer.push(encode(
            csid::PROTOCOL,
            &Control::UserControl(uc).to_message(),
            self.peer.chunk_size.get(),
        ));
    }

    fn send_data(&self, ts: u32, payload: Bytes) {
        let msg = RawMessage::new(msg_type::AMF0_DATA, self.stream_id, ts, payload);
        self.peer
            .push(encode(csid::DATA, &msg, self.peer.chunk_size.get()));
    }

    /// onMetaData's codec headers, stamped at the play position.
    fn send_headers(&self, ts: u32) {
        for h in self.file.headers(self.enhanced) {
            self.send_tag(&VodTag { ts, ..h }, false);
        }
    }

    fn send_tag(&self, t: &VodTag, media: bool) -> usize {
        let cs = match t.kind {
            TagKind::Audio => csid::AUDIO,
            TagKind::Video => csid::VIDEO,
            TagKind::Script => csid::DATA,
        };
        let msg = RawMessage::new(t.kind.msg_type(), self.stream_id, t.ts, t.data.clone());
        let b = encode(cs, &msg, self.peer.chunk_size.get());
        let n = b.len();
        if media {
            self.peer.push_media(b);
        } else {
            self.peer.push(b);
        }
        n
    }

    /// Real time restarts at media time `ts`.
    fn restart_at(&mut self, ts: u32) {
        self.base_ts = ts;
        self.epoch_ms = now_ms();
    }

    /// Where the player's clock is (media time).
    fn position(&self) -> u32 {
        let elapsed = now_ms().saturating_sub(self.epoch_ms).min(u32::MAX as u64) as u32;
        self.base_ts.saturating_add(elapsed)
    }

    /// Sends what is due (real time plus the lead); says when to look again.
    fn pump(&mut self) -> Again {
        if self.paused || self.done {
            return Again::Stop;
        }
        for _ in 0..BURST {
            if self.peer.is_closed() {
                return Again::Stop;
            }
            if self.peer.queued() >= self.max_queued {
                return Again::After(QUEUE_WAIT_MS);
            }
            let tag = match self.next.take() {
                Some(t) => t,
                None => match self.file.next(&mut *self.src) {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        self.complete();
                        return Again::Stop;
                    }
                    Err(VodError::Pending) => return Again::After(100),
                    Err(e) => {
                        self.fail(&e);
                        return Again::Stop;
                    }
                },
            };
            let due = self.position().saturating_add(LEAD_MS);
            if tag.ts > due {
                let wait = u64::from(tag.ts - due);
                self.next = Some(tag);
                return Again::After(wait.clamp(10, 500));
            }
            if tag.kind == TagKind::Script {
                // As the C module: cue points and other script tags of the file are not sent.
                continue;
            }
            self.sent_bytes += self.send_tag(&tag, true) as u64;
        }
        Again::After(1)
    }

    /// While paused after a seek: the frames up to the first video keyframe.
    fn send_until_keyframe(&mut self) {
        for _ in 0..BURST {
            match self.file.next(&mut *self.src) {
                Ok(Some(t)) if t.kind == TagKind::Script => {}
                Ok(Some(t)) => {
                    self.send_tag(&t, false);
                    if t.kind == TagKind::Video && t.key {
                        break;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        self.next = None;
    }

    /// The end of the file: as the C module, StreamEOF, onPlayStatus Play.Complete, Play.Stop.
    fn complete(&mut self) {
        self.done = true;
        if self.file.truncated() {
            log_info!(
                self.log,
                "rtmp: play: \"{}\": file truncated, play ended early",
                self.name
            );
            self.peer.send_status(
                self.stream_id,
                "error",
                "NetStream.Play.Failed",
                &format!("{}: file truncated", self.name),
            );
        } else {
            log_info!(self.log, "rtmp: play: \"{}\" complete", self.name);
        }
        self.send_control(UserControl::StreamEof(self.stream_id));
        let duration = self.file.duration_ms().unwrap_or(0) as f64 / 1000.0;
        self.send_data(
            0,
            play_status("NetStream.Play.Complete", duration, self.sent_bytes as f64),
        );
        self.peer.send_status(
            self.stream_id,
            "status",
            "NetStream.Play.Stop",
            &format!("Stopped playing {}.", self.name),
        );
    }

    /// A read error or a bad frame mid-play: that player gets an error status and the end.
    fn fail(&mut self, e: &VodError) {
        self.done = true;
        log_info!(self.log, "rtmp: play: \"{}\": {}", self.name, e);
        self.peer.send_status(
            self.stream_id,
            "error",
            "NetStream.Play.Failed",
            &format!("{}: {}", self.name, e),
        );
        self.send_control(UserControl::StreamEof(self.stream_id));
        self.peer.send_status(
            self.stream_id,
            "status",
            "NetStream.Play.Stop",
            &format!("Stopped playing {}.", self.name),
        );
    }
}

/// `onPlayStatus({code, level, duration, bytes})` as a data message.
fn play_status(code: &str, duration: f64, bytes: f64) -> Bytes {
    let mut out = BytesMut::new();
    amf0::encode_all(
        &[
            Amf0Value::string("onPlayStatus"),
            Amf0Value::Object(vec![
                ("code".into(), Amf0Value::string(code)),
                ("level".into(), Amf0Value::string("status")),
                ("duration".into(), Amf0Value::Number(duration)),
                ("bytes".into(), Amf0Value::Number(bytes)),
            ]),
        ],
        &mut out,
    );
    out.freeze()
}
