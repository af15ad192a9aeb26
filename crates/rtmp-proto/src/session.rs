//! One RTMP connection as a state machine, for either end: handshake, chunk stream and protocol
//! control are handled here; commands and media come out as events for the caller to act on.

use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::amf0::Amf0Value;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError};
use crate::command::{self, Command};
use crate::handshake::{ClientHandshake, HandshakeError, HandshakeState, ServerHandshake};
use crate::message::{csid, msg_type, split_aggregate, Control, MessageError, RawMessage, UserControl};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Longest message accepted from the peer.
    pub max_message: usize,
    /// Chunk size we announce and send with once the connection is accepted.
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size and peer bandwidth we announce.
    pub ack_window: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { max_message: 1 << 20, out_chunk_size: 4096, ack_window: 5_000_000 }
    }
}

#[derive(Debug)]
pub enum SessionError {
    Handshake(HandshakeError),
    Chunk(ChunkError),
    /// A protocol control message (types 1–6) that does not parse.
    Control(MessageError),
    /// An aggregate message whose FLV tags do not parse.
    Aggregate(MessageError),
    /// `feed` after an earlier error: the session is dead.
    Closed,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Handshake(e) => write!(f, "handshake: {e}"),
            SessionError::Chunk(e) => write!(f, "chunk: {e}"),
            SessionError::Control(e) => write!(f, "control: {e}"),
            SessionError::Aggregate(e) => write!(f, "{e}"),
            SessionError::Closed => f.write_str("session already failed"),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Handshake(e) => Some(e),
            SessionError::Chunk(e) => Some(e),
            SessionError::Control(e) | SessionError::Aggregate(e) => Some(e),
            SessionError::Closed => None,
        }
    }
}

/// What the peer did, in arrival order.
#[derive(Debug)]
pub enum SessionEvent {
    HandshakeDone,
    /// A command (type 20 or 17), decoded. The session never answers commands itself.
    Command { stream_id: u32, timestamp: u32, command: Command },
    /// A command payload that does not decode; the caller may log it and go on, or close.
    BadCommand { stream_id: u32, reason: String },
    /// Audio (8), video (9) or data (18; AMF3 data, type 15, arrives as 18 without its format
    /// byte), aggregates already split into their messages.
    Media(RawMessage),
    /// Every protocol control message the peer sent. Set Chunk Size, Abort and Ping Request are
    /// already applied / answered when they show up here.
    Control(Control),
}

pub type ServerEvent = SessionEvent;
pub type ClientEvent = SessionEvent;

/// The part both ends share once the handshake is over.
#[derive(Debug)]
struct Core {
    cfg: SessionConfig,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: BytesMut,
    events: VecDeque<SessionEvent>,
    received: u64,
    /// The peer's Window Acknowledgement Size (0: none asked for).
    peer_window: u32,
    acked: u64,
    handshake_done: bool,
    dead: bool,
}

impl Core {
    fn new(cfg: SessionConfig, encoder: ChunkEncoder) -> Self {
        Core {
            decoder: ChunkDecoder::new(cfg.max_message),
            cfg,
            encoder,
            out: BytesMut::new(),
            events: VecDeque::new(),
            received: 0,
            peer_window: 0,
            acked: 0,
            handshake_done: false,
            dead: false,
        }
    }

    /// Runs `handshake` until done, then the chunk stream; marks the session dead on any error.
    fn feed(
        &mut self,
        input: &mut BytesMut,
        handshake: impl FnOnce(&mut BytesMut, &mut BytesMut) -> Result<HandshakeState, HandshakeError>,
    ) -> Result<(), SessionError> {
        if self.dead {
            return Err(SessionError::Closed);
        }
        let result = self.feed_inner(input, handshake);
        if result.is_err() {
            self.dead = true;
        }
        result
    }

    fn feed_inner(
        &mut self,
        input: &mut BytesMut,
        handshake: impl FnOnce(&mut BytesMut, &mut BytesMut) -> Result<HandshakeState, HandshakeError>,
    ) -> Result<(), SessionError> {
        if !self.handshake_done {
            let before = input.len();
            let state = handshake(input, &mut self.out).map_err(SessionError::Handshake)?;
            self.received += (before - input.len()) as u64;
            if state == HandshakeState::InProgress {
                return Ok(());
            }
            self.handshake_done = true;
            self.events.push_back(SessionEvent::HandshakeDone);
        }
        loop {
            let before = input.len();
            let msg = self.decoder.decode(input).map_err(SessionError::Chunk)?;
            self.received += (before - input.len()) as u64;
            self.maybe_ack();
            match msg {
                Some(m) => self.dispatch(m)?,
                None => return Ok(()),
            }
        }
    }

    fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.received - self.acked >= u64::from(self.peer_window) {
            self.acked = self.received;
            // The sequence number is a 32-bit counter that wraps.
            self.send_control(&Control::Ack(self.received as u32));
        }
    }

    fn dispatch(&mut self, m: RawMessage) -> Result<(), SessionError> {
        match m.msg_type {
            msg_type::SET_CHUNK_SIZE..=msg_type::SET_PEER_BANDWIDTH => {
                let c = Control::decode(m.msg_type, &m.payload).map_err(SessionError::Control)?;
                self.apply_control(&c)?;
                self.events.push_back(SessionEvent::Control(c));
            }
            msg_type::AMF0_COMMAND | msg_type::AMF3_COMMAND => {
                let event = match command::decode_command(m.msg_type, &m.payload) {
                    Ok(command) => SessionEvent::Command {
                        stream_id: m.stream_id,
                        timestamp: m.timestamp,
                        command,
                    },
                    Err(e) => SessionEvent::BadCommand { stream_id: m.stream_id, reason: e.to_string() },
                };
                self.events.push_back(event);
            }
            msg_type::AUDIO | msg_type::VIDEO | msg_type::AMF0_DATA => {
                self.events.push_back(SessionEvent::Media(m));
            }
            // The leading format byte is followed by plain AMF0.
            msg_type::AMF3_DATA if !m.payload.is_empty() => {
                let payload = m.payload.slice(1..);
                self.events.push_back(SessionEvent::Media(RawMessage {
                    msg_type: msg_type::AMF0_DATA,
                    payload,
                    ..m
                }));
            }
            msg_type::AGGREGATE => {
                let parts = split_aggregate(&m).map_err(SessionError::Aggregate)?;
                self.events.extend(parts.into_iter().map(SessionEvent::Media));
            }
            // Shared objects and unknown types: nothing we serve.
            _ => {}
        }
        Ok(())
    }

    fn apply_control(&mut self, c: &Control) -> Result<(), SessionError> {
        match c {
            Control::SetChunkSize(n) => self.decoder.set_chunk_size(*n).map_err(SessionError::Chunk)?,
            Control::Abort(cs) => self.decoder.abort(*cs),
            Control::WindowAckSize(n) => self.peer_window = *n,
            Control::UserControl(UserControl::PingRequest(t)) => {
                self.send_control(&Control::UserControl(UserControl::PingResponse(*t)));
            }
            _ => {}
        }
        Ok(())
    }

    fn send_message(&mut self, cs: u32, msg: &RawMessage) {
        self.encoder.encode(cs, msg, &mut self.out);
    }

    fn send_control(&mut self, c: &Control) {
        self.send_message(csid::PROTOCOL, &c.to_message());
        // The new size applies from the chunk after the one announcing it.
        if let Control::SetChunkSize(n) = c {
            self.encoder.set_chunk_size(*n);
        }
    }

    fn send_command(&mut self, stream_id: u32, payload: Bytes) {
        self.send_message(csid::COMMAND, &RawMessage::new(msg_type::AMF0_COMMAND, stream_id, 0, payload));
    }
}

/// Methods both ends offer, delegating to `Core`.
macro_rules! common_methods {
    () => {
        pub fn poll_event(&mut self) -> Option<SessionEvent> {
            self.core.events.pop_front()
        }

        pub fn handshake_done(&self) -> bool {
            self.core.handshake_done
        }

        /// Bytes to send (handshake, control, commands, media); take them with `split()`.
        pub fn output(&mut self) -> &mut BytesMut {
            &mut self.core.out
        }

        pub fn out_chunk_size(&self) -> u32 {
            self.core.encoder.chunk_size()
        }

        /// The chunk size the peer sends with.
        pub fn in_chunk_size(&self) -> u32 {
            self.core.decoder.chunk_size()
        }

        /// Encodes `msg` on chunk stream `csid` with the header-compressing encoder.
        pub fn send_message(&mut self, csid: u32, msg: &RawMessage) {
            self.core.send_message(csid, msg);
        }

        /// Sends on `csid::PROTOCOL`; a Set Chunk Size also switches our encoder to that size.
        pub fn send_control(&mut self, c: &Control) {
            self.core.send_control(c);
        }

        /// An AMF0 command (type 20) on `csid::COMMAND`.
        pub fn send_command(&mut self, stream_id: u32, payload: Bytes) {
            self.core.send_command(stream_id, payload);
        }

        /// Sends a Ping Request; the answer arrives as a `Control` event.
        pub fn ping(&mut self, timestamp: u32) {
            self.core.send_control(&Control::UserControl(UserControl::PingRequest(timestamp)));
        }

        /// Bytes consumed from the peer so far, handshake included.
        pub fn bytes_received(&self) -> u64 {
            self.core.received
        }
    };
}

/// The server end of a connection.
#[derive(Debug)]
pub struct ServerSession {
    handshake: ServerHandshake,
    core: Core,
}

impl ServerSession {
    pub fn new(cfg: SessionConfig) -> Self {
        // Fan-out writes pre-encoded fmt 0 messages on the same chunk streams, so every message
        // this session writes must not depend on the previous one either.
        ServerSession { handshake: ServerHandshake::new(), core: Core::new(cfg, ChunkEncoder::standalone()) }
    }

    /// Processes as much of `input` as it can (consuming what it used), queueing events and output.
    /// After an error the session is dead and every later call fails with `Closed`.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        let hs = &mut self.handshake;
        self.core.feed(input, |i, o| hs.process(i, o))
    }

    /// Whether the client's handshake carried a valid digest.
    pub fn used_digest(&self) -> bool {
        self.handshake.used_digest()
    }

    /// Accepts `connect` as nginx-rtmp-module does: Window Acknowledgement Size, Set Peer
    /// Bandwidth (dynamic), Set Chunk Size (which our encoder then uses), then `_result`.
    /// `extra` goes into the `_result` properties (Enhanced RTMP capabilities).
    pub fn accept_connect(&mut self, tid: f64, object_encoding: f64, extra: Vec<(String, Amf0Value)>) {
        let window = self.core.cfg.ack_window;
        let chunk = self.core.cfg.out_chunk_size;
        self.core.send_control(&Control::WindowAckSize(window));
        self.core.send_control(&Control::SetPeerBandwidth { size: window, limit: 2 });
        self.core.send_control(&Control::SetChunkSize(chunk));
        self.core.send_command(0, command::connect_result_with(tid, object_encoding, extra));
    }

    /// An `onStatus` with the given level, code and description.
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.core.send_command(stream_id, command::on_status(level, code, description, None));
    }

    common_methods!();
}

/// The client end, for our CLI and tests.
#[derive(Debug)]
pub struct ClientSession {
    handshake: ClientHandshake,
    core: Core,
}

impl ClientSession {
    /// A client that signs its handshake like Flash and FFmpeg do.
    pub fn new(cfg: SessionConfig) -> Self {
        ClientSession { handshake: ClientHandshake::new(true), core: Core::new(cfg, ChunkEncoder::new()) }
    }

    /// A client that sends the plain (digest-less) handshake.
    pub fn with_plain_handshake(cfg: SessionConfig) -> Self {
        ClientSession { handshake: ClientHandshake::new(false), core: Core::new(cfg, ChunkEncoder::new()) }
    }

    /// A signing client whose every message has a full (type 0) chunk header, so that other
    /// writers may share its chunk streams (a relay inside a server, whose fan-out writes
    /// pre-encoded messages on the same connection).
    pub fn standalone(cfg: SessionConfig) -> Self {
        ClientSession { handshake: ClientHandshake::new(true), core: Core::new(cfg, ChunkEncoder::standalone()) }
    }

    /// Writes C0C1 to `output()`; call once, before `feed`.
    pub fn start(&mut self) {
        self.handshake.start(&mut self.core.out);
    }

    /// See `ServerSession::feed`.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        let hs = &mut self.handshake;
        self.core.feed(input, |i, o| hs.process(i, o))
    }

    /// Whether the server proved it knows the FMS key (only informative).
    pub fn server_verified(&self) -> bool {
        self.handshake.server_verified()
    }

    common_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkEncoder;

    fn cfg() -> SessionConfig {
        SessionConfig::default()
    }

    /// Moves bytes both ways until both sides are quiet.
    fn pump(c: &mut ClientSession, s: &mut ServerSession) {
        for _ in 0..20 {
            let mut to_server = c.output().split();
            let mut to_client = s.output().split();
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
            s.feed(&mut to_server).unwrap();
            assert!(to_server.is_empty());
            c.feed(&mut to_client).unwrap();
            assert!(to_client.is_empty());
        }
        panic!("sessions never went quiet");
    }

    fn drain(next: impl FnMut() -> Option<SessionEvent>) -> Vec<SessionEvent> {
        std::iter::from_fn(next).collect()
    }

    fn connected() -> (ClientSession, ServerSession) {
        let mut c = ClientSession::new(cfg());
        let mut s = ServerSession::new(cfg());
        c.start();
        pump(&mut c, &mut s);
        assert!(c.handshake_done() && s.handshake_done());
        assert!(matches!(drain(|| c.poll_event())[..], [SessionEvent::HandshakeDone]));
        assert!(matches!(drain(|| s.poll_event())[..], [SessionEvent::HandshakeDone]));
        (c, s)
    }

    fn media(events: Vec<SessionEvent>) -> Vec<RawMessage> {
        events
            .into_iter()
            .filter_map(|e| match e {
                SessionEvent::Media(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn controls(events: &[SessionEvent]) -> Vec<Control> {
        events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Control(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn handshake_variants() {
        let (c, s) = connected();
        assert!(s.used_digest() && c.server_verified());
        let mut c = ClientSession::with_plain_handshake(cfg());
        let mut s = ServerSession::new(cfg());
        c.start();
        pump(&mut c, &mut s);
        assert!(s.handshake_done() && !s.used_digest());
        assert_eq!(s.bytes_received(), 1 + 2 * 1536);
    }

    #[test]
    fn media_both_ways_with_chunk_size_changes() {
        let (mut c, mut s) = connected();
        let video = RawMessage::new(9, 1, 40, vec![7u8; 10_000]);
        let audio = RawMessage::new(8, 1, 0x0100_0000, vec![1u8; 300]);
        let meta = RawMessage::new(18, 1, 0, vec![2u8; 50]);
        c.send_message(csid::VIDEO, &video);
        c.send_message(csid::AUDIO, &audio);
        c.send_message(csid::DATA, &meta);
        c.send_control(&Control::SetChunkSize(100));
        assert_eq!(c.out_chunk_size(), 100);
        c.send_message(csid::VIDEO, &video);
        pump(&mut c, &mut s);
        assert_eq!(s.in_chunk_size(), 100);
        let got = media(drain(|| s.poll_event()));
        assert_eq!(got, vec![video.clone(), audio, meta, video.clone()]);

        s.send_control(&Control::SetChunkSize(4096));
        s.send_message(csid::VIDEO, &video);
        pump(&mut c, &mut s);
        assert_eq!(media(drain(|| c.poll_event())), vec![video]);
    }

    #[test]
    fn acknowledgements_follow_the_peer_window() {
        let (mut c, mut s) = connected();
        c.send_control(&Control::WindowAckSize(1000));
        for i in 0..5 {
            c.send_message(csid::AUDIO, &RawMessage::new(8, 1, i * 20, vec![0u8; 600]));
        }
        pump(&mut c, &mut s);
        let acks: Vec<u32> = controls(&drain(|| c.poll_event()))
            .into_iter()
            .filter_map(|c| match c {
                Control::Ack(n) => Some(n),
                _ => None,
            })
            .collect();
        assert!(acks.len() >= 2, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000));
        assert!(u64::from(*acks.last().unwrap()) <= s.bytes_received());
        assert!(s.bytes_received() - u64::from(*acks.last().unwrap()) < 1000);
    }

    #[test]
    fn ping_is_answered() {
        let (mut c, mut s) = connected();
        s.ping(77);
        pump(&mut c, &mut s);
        let ping = Control::UserControl(UserControl::PingRequest(77));
        assert_eq!(controls(&drain(|| c.poll_event())), vec![ping]);
        let pong = Control::UserControl(UserControl::PingResponse(77));
        assert_eq!(controls(&drain(|| s.poll_event())), vec![pong]);
    }

    #[test]
    fn amf3_data_and_aggregates_become_media() {
        let (mut c, mut s) = connected();
        c.send_message(csid::DATA, &RawMessage::new(15, 1, 5, vec![0u8, 2, 0, 1, b'x']));
        let mut agg = Vec::new();
        for (t, ts, data) in [(9u8, 100u32, &b"vid"[..]), (8, 120, &b"au"[..])] {
            agg.push(t);
            agg.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.extend_from_slice(&[0, 0, 0, 0]);
            agg.extend_from_slice(data);
            agg.extend_from_slice(&(data.len() as u32 + 11).to_be_bytes());
        }
        c.send_message(csid::VIDEO, &RawMessage::new(22, 1, 1000, agg));
        pump(&mut c, &mut s);
        assert_eq!(
            media(drain(|| s.poll_event())),
            vec![
                RawMessage::new(18, 1, 5, vec![2u8, 0, 1, b'x']),
                RawMessage::new(9, 1, 1000, &b"vid"[..]),
                RawMessage::new(8, 1, 1020, &b"au"[..]),
            ]
        );
    }

    #[test]
    fn abort_is_applied() {
        let (mut c, mut s) = connected();
        // Half a message on csid 6 by hand, then Abort, then a whole one.
        let mut enc = ChunkEncoder::new();
        let mut half = BytesMut::new();
        enc.encode(6, &RawMessage::new(8, 1, 0, vec![0u8; 200]), &mut half);
        half.truncate(12 + 128);
        s.feed(&mut half).unwrap();
        c.send_control(&Control::Abort(6));
        c.send_message(6, &RawMessage::new(8, 1, 0, vec![3u8; 5]));
        pump(&mut c, &mut s);
        let events = drain(|| s.poll_event());
        assert_eq!(controls(&events), vec![Control::Abort(6)]);
        assert_eq!(media(events), vec![RawMessage::new(8, 1, 0, vec![3u8; 5])]);
    }

    #[test]
    fn errors_kill_the_session() {
        let (mut c, mut s) = connected();
        c.send_message(csid::VIDEO, &RawMessage::new(9, 1, 0, vec![0u8; 2_000_000]));
        let mut bytes = c.output().split();
        let err = s.feed(&mut bytes).unwrap_err();
        assert_eq!(err.to_string(), "chunk: message of 2000000 bytes over max_message 1048576");
        assert!(matches!(s.feed(&mut BytesMut::new()), Err(SessionError::Closed)));

        let mut s = ServerSession::new(cfg());
        let err = s.feed(&mut BytesMut::from(&[6u8][..])).unwrap_err();
        assert!(matches!(err, SessionError::Handshake(HandshakeError::BadVersion(6))));

        let (mut c, mut s) = connected();
        c.send_message(csid::PROTOCOL, &RawMessage::new(1, 0, 0, vec![0u8, 0]));
        let err = s.feed(&mut c.output().split()).unwrap_err();
        assert!(matches!(err, SessionError::Control(_)), "{err}");

        let (mut c, mut s) = connected();
        c.send_control(&Control::SetChunkSize(0));
        let err = s.feed(&mut c.output().split()).unwrap_err();
        assert!(matches!(err, SessionError::Chunk(ChunkError::BadChunkSize(0))), "{err}");
    }

    #[test]
    fn byte_at_a_time() {
        let mut c = ClientSession::new(cfg());
        let mut s = ServerSession::new(cfg());
        c.start();
        let msg = RawMessage::new(9, 1, 33, vec![5u8; 1000]);
        // The client may send its first chunks right behind C2, as FFmpeg does.
        let mut to_server = c.output().split();
        let mut buf = BytesMut::new();
        for b in to_server.split().iter() {
            buf.extend_from_slice(&[*b]);
            s.feed(&mut buf).unwrap();
        }
        c.feed(&mut s.output().split()).unwrap();
        c.send_message(csid::VIDEO, &msg);
        for b in c.output().split().iter() {
            buf.extend_from_slice(&[*b]);
            s.feed(&mut buf).unwrap();
        }
        assert!(buf.is_empty());
        let events = drain(|| s.poll_event());
        assert!(matches!(events[0], SessionEvent::HandshakeDone));
        assert_eq!(media(events), vec![msg]);
    }
}
