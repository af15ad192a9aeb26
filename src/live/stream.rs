//! A live stream: its publisher, its players and what a late joiner needs first (metadata and
//! codec sequence headers); fan-out encodes each message once per (chunk size, stream id).

use std::rc::Rc;

use bytes::Bytes;
use rtmp_proto::caps::Capabilities;
use rtmp_proto::command;
use rtmp_proto::flv::{audio_tag_info, video_tag_info, VideoCodec};
use rtmp_proto::message::{csid, msg_type, Control, UserControl};
use rtmp_proto::RawMessage;

use crate::core::peer::{Peer, Wire};
use crate::core::session::encode;
use crate::log_info;
use crate::ngx::now_ms;
use crate::ngx::timer::Timer;

use super::conf::{LiveAppConf, Meta, WriteMerge};
use super::encodings::{encode_for, flv_header, Encodings, Form, Framing};
use super::gop::{GopBudget, GopCache};
use super::meta::CodecInfo;
use rtmp_proto::stat::{self as stat, Bandwidth};

pub struct Publisher {
    pub id: u64,
    pub stream_id: u32,
    pub peer: Rc<Peer>,
}

pub struct Player {
    pub id: u64,
    pub stream_id: u32,
    pub peer: Rc<Peer>,
    video_started: bool,
    audio_started: bool,
    meta_sent: bool,
    /// The queue was full: skip everything up to the next keyframe.
    dropping: bool,
    pub paused: bool,
    pub recv_audio: bool,
    pub recv_video: bool,
    /// Enhanced RTMP codecs the player announced in `connect`.
    pub caps: Capabilities,
    /// The stream's video / audio codec is one this player cannot parse (logged once).
    video_refused: bool,
    audio_refused: bool,
    /// HTTP-FLV: the publisher timestamp this player's stream starts at (set by its first tag).
    flv_base: Option<u32>,
}

impl Player {
    pub fn new(id: u64, stream_id: u32, peer: Rc<Peer>) -> Self {
        Player {
            id,
            stream_id,
            peer,
            video_started: false,
            audio_started: false,
            meta_sent: false,
            dropping: false,
            paused: false,
            recv_audio: true,
            recv_video: true,
            caps: Capabilities::default(),
            video_refused: false,
            audio_refused: false,
            flv_base: None,
        }
    }

    /// How this player receives messages.
    fn form(&self) -> Form {
        match self.peer.wire() {
            Wire::Rtmp => Form::Chunks { size: self.peer.chunk_size.get(), stream_id: self.stream_id },
            w => Form::Flv { base: self.flv_base.unwrap_or(0), framing: framing(w) },
        }
    }

    fn is_flv(&self) -> bool {
        self.peer.wire() != Wire::Rtmp
    }

    /// An FLV player's first bytes: the file header with the tracks the stream has, and the
    /// timestamp its tags count from.
    fn begin_flv(&mut self, ts: u32, audio: bool, video: bool) {
        if !self.is_flv() {
            return;
        }
        if self.flv_base.is_none() {
            self.flv_base = Some(ts);
        }
        if self.peer.first_flv_header() {
            self.peer.push(flv_header(audio, video, framing(self.peer.wire())));
        }
    }

    pub fn with_caps(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Enhanced RTMP video (a FourCC) goes only to players that announced that FourCC in
    /// `connect`: a legacy player would misread the ExVideoTagHeader as an H.264 frame.
    fn takes_video(&mut self, fourcc: Option<[u8; 4]>) -> bool {
        let Some(fc) = fourcc else { return true };
        if self.caps.receives_video(fc) {
            return true;
        }
        if !self.video_refused {
            self.video_refused = true;
            log_info!(
                self.peer.log(),
                "rtmp: live: player did not announce Enhanced RTMP support for \"{}\" in connect; video not sent",
                String::from_utf8_lossy(&fc)
            );
        }
        false
    }

    fn takes_audio(&mut self, fourcc: Option<[u8; 4]>) -> bool {
        let Some(fc) = fourcc else { return true };
        if self.caps.receives_audio(fc) {
            return true;
        }
        if !self.audio_refused {
            self.audio_refused = true;
            log_info!(
                self.peer.log(),
                "rtmp: live: player did not announce Enhanced RTMP support for \"{}\" in connect; audio not sent",
                String::from_utf8_lossy(&fc)
            );
        }
        false
    }

    /// Starts over as a new joiner (after a pause or a publisher change).
    pub fn restart(&mut self) {
        self.video_started = false;
        self.audio_started = false;
        self.meta_sent = false;
        self.dropping = false;
        // A new publisher's clock starts anew.
        self.flv_base = None;
    }

    fn send(&self, cs: u32, msg: &RawMessage) {
        self.peer.push(encode_for(cs, msg, self.form()));
    }

    pub fn send_status(&self, level: &str, code: &str, description: &str) {
        self.peer.send_status(self.stream_id, level, code, description);
    }

    pub fn send_user_control(&self, uc: UserControl) {
        if self.is_flv() {
            return;
        }
        let m = Control::UserControl(uc).to_message();
        self.peer.push(encode(csid::PROTOCOL, &m, self.peer.chunk_size.get()));
    }
}

#[derive(Default)]
pub struct Stream {
    pub name: String,
    pub publisher: Option<Publisher>,
    pub players: Vec<Player>,
    video_header: Option<RawMessage>,
    audio_header: Option<RawMessage>,
    meta: Option<RawMessage>,
    has_video: bool,
    has_audio: bool,
    /// FourCC of the publisher's Enhanced RTMP video / audio, None for classic FLV codec ids.
    video_fourcc: Option<[u8; 4]>,
    /// The video codec cannot be decoded without its sequence header (AVC, HEVC, AV1…).
    video_needs_header: bool,
    audio_fourcc: Option<[u8; 4]>,
    gop: GopCache,
    codec: CodecInfo,
    /// When the publisher last sent audio or video (nginx msec), for `drop_idle_publisher`.
    pub last_media_ms: u64,
    /// When the publisher last sent a video frame (nginx msec), for `write_merge auto`.
    last_video_ms: u64,
    /// `drop_idle_publisher`'s timer, running while a publisher is on.
    pub idle_timer: Option<Timer>,
    /// When the stream entry was made (nginx msec), and its traffic, for stat pages.
    created_ms: u64,
    meters: Meters,
    last_timestamp: u32,
}

/// What a publisher sent once that its stream needs for late joiners (sequence headers,
/// metadata, codec facts): kept with the session when it stops publishing, for a publish that
/// follows on the same connection (a control redirect renames the stream, as the C module keeps
/// its codec context per session).
#[derive(Default)]
pub struct Carry {
    video_header: Option<RawMessage>,
    audio_header: Option<RawMessage>,
    meta: Option<RawMessage>,
    codec: CodecInfo,
    video_fourcc: Option<[u8; 4]>,
    audio_fourcc: Option<[u8; 4]>,
    video_needs_header: bool,
    has_video: bool,
    has_audio: bool,
}

/// A stream's traffic as stat pages show it (the C module's 10-second bandwidth windows).
#[derive(Default)]
struct Meters {
    bw_in: Bandwidth,
    bw_audio: Bandwidth,
    bw_video: Bandwidth,
    bw_out: Bandwidth,
    /// Players' sent bytes at the last snapshot, for `bw_out`.
    out_seen: u64,
    /// Bytes sent to players that have left.
    out_gone: u64,
}

/// One message being fanned out, encoded once per (chunk size, message stream id).
struct Shared<'a> {
    cs: u32,
    msg: &'a RawMessage,
    enc: Encodings,
}

impl<'a> Shared<'a> {
    fn new(cs: u32, msg: &'a RawMessage) -> Self {
        Shared { cs, msg, enc: Encodings::default() }
    }
    fn bytes(&mut self, p: &Player) -> Bytes {
        self.enc.get(self.cs, self.msg, p.form()).0
    }
}

impl Stream {
    pub fn new(name: &str, budget: Rc<GopBudget>) -> Self {
        Stream { name: name.to_string(), gop: GopCache::new(budget, now_ms()), created_ms: now_ms(), ..Default::default() }
    }

    /// The stream as stat pages show it (the C module's fields, our protocol per client).
    pub fn snapshot(&mut self) -> stat::Stream {
        let now = now_ms();
        let client = |peer: &Peer, publishing: bool, active: bool, ts: u32| {
            let info = peer.info();
            let relay = info.relay;
            stat::Client {
                id: peer.id,
                address: peer.address(),
                time_ms: now.saturating_sub(peer.started_ms()),
                flashver: info.flashver,
                pageurl: info.page_url,
                swfurl: info.swf_url,
                dropped: peer.dropped(),
                avsync: None,
                timestamp: u64::from(ts),
                publishing,
                active,
                protocol: match peer.wire() {
                    Wire::Rtmp if relay => "relay",
                    Wire::Rtmp => "rtmp",
                    Wire::Flv | Wire::FlvChunked => "http-flv",
                    Wire::WsFlv => "ws-flv",
                }
                .into(),
                bytes_in: peer.received(),
                bytes_out: peer.sent(),
            }
        };
        // Links between workers are not clients: a stream another worker feeds shows its players
        // here and its publisher (with its input) in that worker.
        let fed = self.publisher.as_ref().is_some_and(|p| p.peer.info().internal);
        let mut clients = Vec::with_capacity(self.players.len() + 1);
        if let Some(p) = self.publisher.as_ref().filter(|_| !fed) {
            clients.push(client(&p.peer, true, true, self.last_timestamp));
        }
        let mut out = self.meters.out_gone;
        for p in &self.players {
            if p.peer.info().internal {
                continue;
            }
            out += p.peer.sent();
            let started = p.video_started || p.audio_started;
            clients.push(client(&p.peer, false, started && !p.paused, self.last_timestamp));
        }
        // Players come and go: only growth since the last look is new traffic.
        let m = &mut self.meters;
        if out > m.out_seen {
            m.bw_out.add(out - m.out_seen, now);
        }
        m.out_seen = out;
        let publishing = self.publisher.is_some() && !fed;
        stat::Stream {
            name: self.name.clone(),
            time_ms: now.saturating_sub(self.created_ms),
            bw_in: if fed { 0 } else { m.bw_in.bits_per_sec(now) },
            bytes_in: if fed { 0 } else { m.bw_in.total() },
            bw_out: m.bw_out.bits_per_sec(now),
            bytes_out: out,
            bw_audio: m.bw_audio.bits_per_sec(now),
            bw_video: m.bw_video.bits_per_sec(now),
            clients,
            meta: if publishing { self.codec.stat_meta() } else { None },
            publishing,
            active: publishing,
        }
    }

    /// When a player last joined (or the publisher started), for the GOP cache budget.
    pub fn gop_last_join_ms(&self) -> u64 {
        self.gop.last_join_ms()
    }

    /// Bytes this stream's GOP cache holds.
    pub fn gop_bytes(&self) -> usize {
        self.gop.bytes()
    }

    /// Drops the GOP cache for the worker's budget; it starts again once a player joins.
    pub fn evict_gop(&mut self) {
        self.gop.evict();
    }

    /// What the publisher's sequence headers and metadata say (for stat, HLS, notify).
    pub fn codec(&self) -> &CodecInfo {
        &self.codec
    }

    /// A player leaves (its bytes stay in the stream's total).
    pub fn remove_player(&mut self, id: u64, stream_id: u32) {
        let gone: u64 = self.players.iter().filter(|p| p.id == id && p.stream_id == stream_id).map(|p| p.peer.sent()).sum();
        self.meters.out_gone += gone;
        self.players.retain(|p| !(p.id == id && p.stream_id == stream_id));
    }

    pub fn is_empty(&self) -> bool {
        self.publisher.is_none() && self.players.is_empty()
    }

    /// A new publisher: forget the previous one's headers.
    pub fn begin_publish(&mut self, peer: Rc<Peer>, stream_id: u32, conf: &LiveAppConf) {
        self.publisher = Some(Publisher { id: peer.id, stream_id, peer });
        self.last_media_ms = now_ms();
        self.idle_timer = None;
        self.video_header = None;
        self.audio_header = None;
        self.meta = None;
        self.has_video = false;
        self.has_audio = false;
        self.video_fourcc = None;
        self.audio_fourcc = None;
        self.video_needs_header = false;
        self.gop.clear();
        self.gop.touch(now_ms());
        self.codec = CodecInfo::default();
        for p in &mut self.players {
            p.restart();
            p.send_user_control(UserControl::StreamBegin(p.stream_id));
            if conf.publish_notify() {
                p.send_status("status", "NetStream.Play.PublishNotify", "Start publishing");
            }
            if conf.play_restart() {
                p.send_status("status", "NetStream.Play.Start", "Start live");
            }
        }
    }

    /// The publisher's headers and metadata, taken as it leaves (see `Carry`).
    pub fn take_carry(&mut self) -> Carry {
        Carry {
            video_header: self.video_header.take(),
            audio_header: self.audio_header.take(),
            meta: self.meta.take(),
            codec: std::mem::take(&mut self.codec),
            video_fourcc: self.video_fourcc,
            audio_fourcc: self.audio_fourcc,
            video_needs_header: self.video_needs_header,
            has_video: self.has_video,
            has_audio: self.has_audio,
        }
    }

    /// A new publisher that published before on its connection: what it sent then holds until
    /// it sends new headers.
    pub fn adopt(&mut self, c: Carry) {
        self.video_header = c.video_header;
        self.audio_header = c.audio_header;
        self.meta = c.meta;
        self.codec = c.codec;
        self.video_fourcc = c.video_fourcc;
        self.audio_fourcc = c.audio_fourcc;
        self.video_needs_header = c.video_needs_header;
        self.has_video = c.has_video;
        self.has_audio = c.has_audio;
    }

    /// The publisher left: players are told, and closed unless `idle_streams` keeps them.
    pub fn end_publish(&mut self, conf: &LiveAppConf) {
        self.publisher = None;
        self.idle_timer = None;
        self.gop.clear();
        for p in &mut self.players {
            p.send_status("status", "NetStream.Play.UnpublishNotify", "Stream unpublished");
            p.send_user_control(UserControl::StreamEof(p.stream_id));
            if conf.play_restart() {
                p.send_status("status", "NetStream.Play.Stop", "Stop live");
            }
            if p.is_flv() {
                // An HTTP response ends with the stream (players reconnect as they see fit).
                p.peer.request_close("publisher left".into());
            } else if !conf.idle_streams() {
                p.peer.request_close("publisher left and \"idle_streams\" is off".into());
            }
            p.restart();
        }
    }

    /// Sends what a player needs before its first frame: metadata and sequence headers.
    fn start_player(
        p: &mut Player,
        meta: &Option<RawMessage>,
        headers: &[&Option<RawMessage>],
        ts: u32,
        audio_cs: u32,
        tracks: (bool, bool),
    ) {
        p.begin_flv(ts, tracks.0, tracks.1);
        if !p.meta_sent {
            if let Some(m) = meta {
                // Stored with timestamp 0: players (FFmpeg's FLV demuxer among them) treat
                // script data with a later timestamp as a data stream, not as metadata.
                p.send(csid::DATA, m);
            }
            p.meta_sent = true;
        }
        for h in headers.iter().copied().flatten() {
            let cs = if h.msg_type == msg_type::VIDEO { csid::VIDEO } else { audio_cs };
            p.send(cs, &RawMessage { timestamp: ts, ..h.clone() });
        }
    }

    /// Adds a player. With a GOP cached it gets metadata, sequence headers and the GOP from its
    /// keyframe at once, and goes on live from there.
    pub fn join(&mut self, mut p: Player, conf: &LiveAppConf) {
        self.gop.touch(now_ms());
        let whole_gop = p.takes_video(self.video_fourcc) && p.takes_audio(self.audio_fourcc);
        let decodable = !self.video_needs_header || self.video_header.is_some();
        if self.publisher.is_some() && conf.gop_cache() && !self.gop.is_empty() && whole_gop && decodable {
            let ah = if self.gop.has_audio() { &self.audio_header } else { &None };
            // Headers carry the timestamp of the frame they precede, as for any other joiner.
            let first = self.gop.first_timestamp();
            Self::start_player(&mut p, &self.meta, &[&self.video_header, ah], first, audio_cs(conf), self.tracks());
            for b in self.gop.encoded_for(p.form()) {
                p.peer.push(b);
            }
            p.video_started = true;
            p.audio_started = ah.is_some();
        }
        self.players.push(p);
    }

    /// Fans one publisher message out to every player.
    pub fn publish_message(&mut self, msg: &RawMessage, conf: &LiveAppConf) {
        let now = now_ms();
        let n = msg.payload.len() as u64;
        self.meters.bw_in.add(n, now);
        match msg.msg_type {
            msg_type::VIDEO => self.meters.bw_video.add(n, now),
            msg_type::AUDIO => self.meters.bw_audio.add(n, now),
            _ => {}
        }
        if matches!(msg.msg_type, msg_type::VIDEO | msg_type::AUDIO) {
            self.last_media_ms = now;
            self.last_timestamp = msg.timestamp;
        }
        match msg.msg_type {
            msg_type::VIDEO => self.video(msg, conf),
            msg_type::AUDIO => self.audio(msg, conf),
            msg_type::AMF0_DATA => self.data(msg, conf),
            _ => {}
        }
    }

    fn video(&mut self, msg: &RawMessage, conf: &LiveAppConf) {
        let Some(info) = video_tag_info(&msg.payload) else { return };
        self.has_video = true;
        self.video_fourcc = info.fourcc;
        let mut shared = Shared::new(csid::VIDEO, msg);
        if info.sequence_header {
            self.video_header = Some(msg.clone());
            self.codec.video_header(&msg.payload);
            if conf.meta() == Meta::On {
                self.set_meta(self.codec.build(), msg);
            }
            for p in self.players.iter_mut().filter(|p| p.video_started) {
                if p.takes_video(info.fourcc) {
                    p.peer.push(shared.bytes(p));
                }
            }
            return;
        }
        self.last_video_ms = now_ms();
        if conf.gop_cache() {
            self.gop.push(csid::VIDEO, msg, true, info.keyframe, &conf.gop_limits());
        }
        let wait_key = conf.wait_key();
        let tracks = self.tracks();
        let (meta, vh, ah) = (&self.meta, &self.video_header, &self.audio_header);
        // A decoder cannot start on AVC/HEVC/AV1 frames without their configuration record, and
        // FFmpeg gives up probing a stream that began so: players start once the header came.
        self.video_needs_header = needs_video_header(info.codec, info.enhanced);
        let no_header = self.video_needs_header && vh.is_none();
        for p in &mut self.players {
            if p.paused || !p.recv_video || !p.takes_video(info.fourcc) {
                continue;
            }
            if !p.video_started {
                if (wait_key && !info.keyframe) || no_header {
                    continue;
                }
                let audio_hdr = if p.audio_started { &None } else { ah };
                Self::start_player(p, meta, &[vh, audio_hdr], msg.timestamp, audio_cs(conf), tracks);
                p.video_started = true;
                p.audio_started |= audio_hdr.is_some();
            } else if p.dropping {
                if !info.keyframe {
                    continue;
                }
                p.dropping = false;
                log_info!(p.peer.log(), "rtmp: live: player caught up at a keyframe");
            }
            if !p.peer.push_media(shared.bytes(p)) {
                p.dropping = true;
                log_info!(p.peer.log(), "rtmp: live: player queue full (\"out_queue\"), dropping to the next keyframe");
            }
        }
    }

    fn audio(&mut self, msg: &RawMessage, conf: &LiveAppConf) {
        let Some(info) = audio_tag_info(&msg.payload) else { return };
        self.audio_fourcc = info.fourcc;
        self.has_audio = true;
        let mut shared = Shared::new(audio_cs(conf), msg);
        if info.sequence_header {
            self.audio_header = Some(msg.clone());
            self.codec.audio_header(&msg.payload);
            if conf.meta() == Meta::On {
                self.set_meta(self.codec.build(), msg);
            }
            for p in self.players.iter_mut().filter(|p| p.audio_started) {
                if p.takes_audio(info.fourcc) {
                    p.peer.push(shared.bytes(p));
                }
            }
            return;
        }
        if self.codec.audio_frame(&msg.payload) && conf.meta() == Meta::On {
            self.set_meta(self.codec.build(), msg);
        }
        if conf.gop_cache() && self.has_video {
            self.gop.push(audio_cs(conf), msg, false, false, &conf.gop_limits());
        }
        let wait_video = conf.wait_video() && self.has_video;
        let has_video = self.has_video;
        // `write_merge auto`: while video flows, a player that gets it writes its audio together
        // with the next video frame (at most one frame interval later).
        let video_flows = conf.write_merge() == WriteMerge::Auto
            && has_video
            && now_ms().saturating_sub(self.last_video_ms) <= VIDEO_FLOW_MS;
        let tracks = self.tracks();
        let (meta, ah) = (&self.meta, &self.audio_header);
        for p in &mut self.players {
            if p.paused || !p.recv_audio || !p.takes_audio(info.fourcc) {
                continue;
            }
            if !p.audio_started {
                // A player refused the video codec is an audio-only player: no video to wait for.
                if wait_video && !p.video_started && !p.video_refused {
                    continue;
                }
                Self::start_player(p, meta, &[ah], msg.timestamp, audio_cs(conf), tracks);
                p.audio_started = true;
            }
            if p.dropping {
                if has_video {
                    continue;
                }
                p.dropping = false;
            }
            let held = video_flows && p.video_started && p.recv_video && !p.video_refused;
            let b = shared.bytes(p);
            let queued = if held { p.peer.push_media_held(b) } else { p.peer.push_media(b) };
            if !queued {
                p.dropping = true;
            }
        }
    }

    fn data(&mut self, msg: &RawMessage, conf: &LiveAppConf) {
        let stripped = command::strip_set_data_frame(&msg.payload);
        let payload = stripped.clone().unwrap_or_else(|| msg.payload.clone());
        let is_meta = stripped.is_some() || starts_with_string(&payload, "onMetaData");
        if is_meta {
            match conf.meta() {
                Meta::Off => {}
                Meta::Copy => self.set_meta(payload, msg),
                Meta::On => {
                    self.codec.publisher_meta(&payload);
                    self.set_meta(self.codec.build(), msg);
                }
            }
            return;
        }
        let mut shared = Shared::new(csid::DATA, msg);
        for p in self.players.iter().filter(|p| !p.paused && (p.video_started || p.audio_started)) {
            p.peer.push(shared.bytes(p));
        }
    }
}

impl Stream {
    /// (audio, video): the tracks the publisher has sent, for an FLV header.
    fn tracks(&self) -> (bool, bool) {
        (self.has_audio || self.audio_header.is_some(), self.has_video || self.video_header.is_some())
    }

    /// New metadata: kept for joiners and sent to players that already had the previous one.
    /// Stored with timestamp 0 (see `start_player`).
    fn set_meta(&mut self, payload: Bytes, from: &RawMessage) {
        let m = RawMessage::new(msg_type::AMF0_DATA, from.stream_id, 0, payload);
        let mut shared = Shared::new(csid::DATA, &m);
        for p in self.players.iter_mut().filter(|p| p.meta_sent) {
            p.peer.push(shared.bytes(p));
        }
        self.meta = Some(m);
    }
}

fn framing(w: Wire) -> Framing {
    match w {
        Wire::WsFlv => Framing::Ws,
        Wire::FlvChunked => Framing::Chunked,
        _ => Framing::None,
    }
}

/// Video that came within this long is flowing: audio may wait for its next frame (10 fps and up).
const VIDEO_FLOW_MS: u64 = 100;

fn needs_video_header(codec: VideoCodec, enhanced: bool) -> bool {
    enhanced || matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1 | VideoCodec::Vp9)
}

/// `interleave on` sends audio on the video chunk stream, as nginx-rtmp-module does for players
/// that need one chunk stream for both.
fn audio_cs(conf: &LiveAppConf) -> u32 {
    if conf.interleave() {
        csid::VIDEO
    } else {
        csid::AUDIO
    }
}

/// Does an AMF0 payload start with the string `s`?
fn starts_with_string(payload: &[u8], s: &str) -> bool {
    payload.len() >= 3 + s.len()
        && payload[0] == 0x02
        && u16::from_be_bytes([payload[1], payload[2]]) as usize == s.len()
        && &payload[3..3 + s.len()] == s.as_bytes()
}
