//! What every fuzz target does with one input, shared by the cargo-fuzz targets (`fuzz/`) and the
//! corpus replay test (`crates/rtmp-proto/tests/fuzz_corpus.rs`). Each function must never panic
//! on any input except where an assertion below finds rtmp-proto breaking one of its promises.
//!
//! Inputs that need a feeding schedule start with one selector byte: `pieces` turns it into the
//! sizes the rest of the input is fed in, so real byte streams (captures) stay usable as seeds.

use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::{self, Amf0Value};
use rtmp_proto::caps::Capabilities;
use rtmp_proto::chunk::{encode_standalone, ChunkDecoder, ChunkEncoder, MAX_CHUNK_SIZE, MAX_MESSAGE_LEN};
use rtmp_proto::client::{ClientFlow, Outcome, Role, Stage};
use rtmp_proto::codec::{aac, avc, hevc, mp3};
use rtmp_proto::command::{self, Command};
use rtmp_proto::flv::{self, FlvReader, FlvTag};
use rtmp_proto::handshake::{ClientHandshake, HandshakeError, HandshakeState, ServerHandshake, HANDSHAKE_SIZE};
use rtmp_proto::hls::ll::{Block, LlPart, LlState, PartAvail, RenditionReport};
use rtmp_proto::message::{csid, msg_type, Control};
use rtmp_proto::mpegts::demux::Demuxer;
use rtmp_proto::mpegts::{SegEvent, Segmenter, SegmenterConf, SYNC_BYTE, TS_PACKET_SIZE};
use rtmp_proto::session::{ClientSession, ServerSession, SessionConfig, SessionError, SessionEvent};
use rtmp_proto::url::RtmpUrl;
use rtmp_proto::{amf3, RawMessage};

/// C0 + C1 + C2 (or S0 + S1 + S2).
const FULL_HANDSHAKE: usize = 1 + 2 * HANDSHAKE_SIZE;
/// Output a session may write per byte it consumed (replies to tiny commands included), beyond
/// its handshake answer. Anything above means output grows faster than input.
const OUT_PER_IN: usize = 64;
/// Caps lists are bounded per list (caps.rs `MAX_ENTRIES`).
const MAX_CAPS: usize = 64;

/// A cursor that reads fixed-size fields from the input, zeros once it runs out.
pub struct Src<'a> {
    data: &'a [u8],
}

impl<'a> Src<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Src { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    pub fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// Cuts `data` into the pieces a peer's bytes might arrive in: whole for selector 0, else sizes
/// drawn from a xorshift seeded with `sel`, up to 1, 7, 200 or 5000 bytes.
pub fn pieces(sel: u8, data: &[u8]) -> Vec<&[u8]> {
    if sel == 0 {
        return vec![data];
    }
    let max = [1usize, 7, 200, 5000][usize::from(sel & 3)];
    let mut x = u32::from(sel).wrapping_mul(0x9E37_79B9) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (1 + x as usize % max).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

fn split_sel(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&s, rest)) => (s, rest),
        None => (0, &[]),
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// The two session types behind one interface.
pub trait Peer {
    fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError>;
    fn poll_event(&mut self) -> Option<SessionEvent>;
    fn take_output(&mut self) -> BytesMut;
    fn bytes_received(&self) -> u64;
    fn handshake_done(&self) -> bool;
    /// What a server would answer to a command (our module's replies, in miniature).
    fn answer(&mut self, _stream_id: u32, _command: &Command) {}
}

impl Peer for ServerSession {
    fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        ServerSession::feed(self, input)
    }
    fn poll_event(&mut self) -> Option<SessionEvent> {
        ServerSession::poll_event(self)
    }
    fn take_output(&mut self) -> BytesMut {
        self.output().split()
    }
    fn bytes_received(&self) -> u64 {
        ServerSession::bytes_received(self)
    }
    fn handshake_done(&self) -> bool {
        ServerSession::handshake_done(self)
    }
    fn answer(&mut self, stream_id: u32, c: &Command) {
        match c {
            Command::Connect { tid, props, .. } => {
                let caps = Capabilities::from_connect(props);
                self.accept_connect(*tid, 0.0, caps.server_reply());
            }
            Command::CreateStream { tid } => self.send_command(0, command::create_stream_result(*tid, 1)),
            Command::Publish { name, .. } => self.send_status(stream_id, "status", "NetStream.Publish.Start", name),
            Command::Play { name, .. } => self.send_status(stream_id, "status", "NetStream.Play.Start", name),
            Command::GetStreamLength { tid, .. } => {
                self.send_command(stream_id, command::stream_length_result(*tid, 0.0))
            }
            _ => {}
        }
    }
}

impl Peer for ClientSession {
    fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        ClientSession::feed(self, input)
    }
    fn poll_event(&mut self) -> Option<SessionEvent> {
        ClientSession::poll_event(self)
    }
    fn take_output(&mut self) -> BytesMut {
        self.output().split()
    }
    fn bytes_received(&self) -> u64 {
        ClientSession::bytes_received(self)
    }
    fn handshake_done(&self) -> bool {
        ClientSession::handshake_done(self)
    }
}

/// A client session with the command exchange of our CLI and relays: what a hostile server
/// answers goes through `ClientFlow`.
pub struct FlowClient {
    session: ClientSession,
    flow: ClientFlow,
}

impl Peer for FlowClient {
    fn feed(&mut self, input: &mut BytesMut) -> Result<(), SessionError> {
        let r = self.session.feed(input);
        // The flow's connect goes out with the handshake's end, as the drivers do it.
        if self.session.handshake_done() && self.flow.stage() == Stage::Handshake {
            let connect = self.flow.connect();
            self.session.send_command(0, connect);
        }
        r
    }
    fn poll_event(&mut self) -> Option<SessionEvent> {
        self.session.poll_event()
    }
    fn take_output(&mut self) -> BytesMut {
        self.session.output().split()
    }
    fn bytes_received(&self) -> u64 {
        self.session.bytes_received()
    }
    fn handshake_done(&self) -> bool {
        self.session.handshake_done()
    }
    fn answer(&mut self, _stream_id: u32, c: &Command) {
        let before = self.flow.stage();
        match self.flow.on_command(c) {
            Outcome::Send { stream_id, payload } => {
                assert!(matches!(before, Stage::Connect | Stage::CreateStream), "a command from {before:?}");
                self.session.send_command(stream_id, payload);
            }
            Outcome::Started { stream_id } => {
                assert_eq!(before, Stage::Start);
                assert!(stream_id >= 1);
            }
            _ => {}
        }
    }
}

/// Feeds `stream` to `peer` in `pieces(sel)`, draining events and output after every feed.
/// Checks: bytes_received counts exactly what was consumed; the handshake completes exactly when
/// its bytes are in; events and output stay linear in the input; a failed session stays failed.
fn drive<P: Peer>(peer: &mut P, sel: u8, stream: &[u8], answer: bool, out_allowance: usize) {
    let mut input = BytesMut::new();
    let mut fed = 0usize;
    let mut out_total = peer.take_output().len();
    let mut events = 0usize;
    let mut handshake_events = 0usize;
    let version_ok = !matches!(stream.first(), Some(&v) if v != 3);
    for p in pieces(sel, stream) {
        input.extend_from_slice(p);
        fed += p.len();
        let result = peer.feed(&mut input);
        let consumed = fed - input.len();
        // After an error the count may miss the chunks of the failing call: the session is dead.
        if result.is_ok() {
            assert_eq!(peer.bytes_received(), consumed as u64, "bytes_received");
        } else {
            assert!(peer.bytes_received() <= consumed as u64);
        }
        while let Some(e) = peer.poll_event() {
            events += 1;
            match &e {
                SessionEvent::HandshakeDone => handshake_events += 1,
                SessionEvent::Command { stream_id, command, .. } if answer => peer.answer(*stream_id, command),
                SessionEvent::Media(m) => {
                    assert!(matches!(m.msg_type, msg_type::AUDIO | msg_type::VIDEO | msg_type::AMF0_DATA));
                }
                _ => {}
            }
        }
        out_total += peer.take_output().len();
        assert!(events <= consumed + 1, "{events} events from {consumed} bytes");
        assert!(
            out_total <= out_allowance + OUT_PER_IN * consumed,
            "{out_total} bytes of output for {consumed} bytes of input"
        );
        if let Err(e) = result {
            if matches!(e, SessionError::Handshake(_)) {
                assert!(!version_ok || matches!(e, SessionError::Handshake(HandshakeError::NotStarted)));
            }
            assert!(matches!(peer.feed(&mut BytesMut::from(&b"\x03"[..])), Err(SessionError::Closed)));
            return;
        }
        assert_eq!(peer.handshake_done(), fed >= FULL_HANDSHAKE && version_ok, "handshake_done");
    }
    assert!(handshake_events <= 1);
    assert_eq!(handshake_events == 1, peer.handshake_done());
}

/// The server handshake on its own, then a `ServerSession` on the same bytes.
pub fn handshake_server(data: &[u8]) {
    let (sel, bytes) = split_sel(data);
    let version_ok = !matches!(bytes.first(), Some(&v) if v != 3);
    let mut hs = ServerHandshake::new();
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut fed = 0usize;
    let mut failed = false;
    for p in pieces(sel, bytes) {
        input.extend_from_slice(p);
        fed += p.len();
        match hs.process(&mut input, &mut out) {
            Ok(state) => {
                let expect_used = if fed >= FULL_HANDSHAKE {
                    FULL_HANDSHAKE
                } else if fed > HANDSHAKE_SIZE {
                    1 + HANDSHAKE_SIZE
                } else {
                    0
                };
                assert_eq!(fed - input.len(), expect_used, "handshake bytes consumed");
                assert_eq!(state == HandshakeState::Done, fed >= FULL_HANDSHAKE);
                assert_eq!(out.len(), if fed > HANDSHAKE_SIZE { FULL_HANDSHAKE } else { 0 });
            }
            Err(e) => {
                assert_eq!(e, HandshakeError::BadVersion(bytes[0]));
                assert!(!version_ok && out.is_empty());
                failed = true;
                break;
            }
        }
    }
    assert_eq!(failed, !version_ok);
    if !failed && fed >= FULL_HANDSHAKE {
        assert_eq!(&input[..], &bytes[FULL_HANDSHAKE..], "bytes after C2 are left alone");
    }
    if out.len() == FULL_HANDSHAKE {
        assert_eq!(out[0], 3);
        if hs.used_digest() {
            assert_eq!(out[5..9], [4, 5, 0, 1]);
        } else {
            assert_eq!(out[5..9], [0; 4]);
            assert_eq!(&out[1 + HANDSHAKE_SIZE..], &bytes[1..1 + HANDSHAKE_SIZE], "S2 echoes C1");
        }
    }
    drive(&mut ServerSession::new(SessionConfig::default()), sel, bytes, false, FULL_HANDSHAKE);
}

/// The client handshake on its own (signed or plain, from the selector's top bit) against
/// arbitrary S0S1S2 bytes, then a `ClientSession` on the same bytes.
pub fn handshake_client(data: &[u8]) {
    let (sel, bytes) = split_sel(data);
    let digest = sel & 0x80 != 0;
    let version_ok = !matches!(bytes.first(), Some(&v) if v != 3);
    let mut hs = ClientHandshake::new(digest);
    let mut out = BytesMut::new();
    let mut early = BytesMut::from(bytes);
    assert_eq!(hs.process(&mut early, &mut out), Err(HandshakeError::NotStarted));
    assert_eq!(early.len(), bytes.len());
    hs.start(&mut out);
    assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
    assert_eq!(out[0], 3);
    hs.start(&mut out);
    assert_eq!(out.len(), 1 + HANDSHAKE_SIZE, "start twice writes C0C1 once");
    let mut out = out.split_off(1 + HANDSHAKE_SIZE);

    let mut input = BytesMut::new();
    let mut fed = 0usize;
    let mut failed = false;
    for p in pieces(sel, bytes) {
        input.extend_from_slice(p);
        fed += p.len();
        match hs.process(&mut input, &mut out) {
            Ok(state) => {
                let done = fed >= FULL_HANDSHAKE;
                assert_eq!(state == HandshakeState::Done, done);
                assert_eq!(fed - input.len(), if done { FULL_HANDSHAKE } else { 0 });
                assert_eq!(out.len(), if done { HANDSHAKE_SIZE } else { 0 });
            }
            Err(e) => {
                assert_eq!(e, HandshakeError::BadVersion(bytes[0]));
                assert!(!version_ok);
                failed = true;
                break;
            }
        }
    }
    assert_eq!(failed, !version_ok);
    if !failed && fed >= FULL_HANDSHAKE {
        assert_eq!(&input[..], &bytes[FULL_HANDSHAKE..]);
        if !digest {
            // A plain client echoes S1 and has nothing to verify.
            assert_eq!(&out[..], &bytes[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
            assert!(!hs.server_verified());
        }
    }
    let mut session = if digest {
        ClientSession::new(SessionConfig::default())
    } else {
        ClientSession::with_plain_handshake(SessionConfig::default())
    };
    session.start();
    let role = if sel & 0x40 != 0 { Role::Publish } else { Role::Play };
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/cam").expect("a valid URL");
    let mut client = FlowClient { session, flow: ClientFlow::new(role, &url, Vec::new()) };
    // Our connect, createStream and publish/play go out too.
    drive(&mut client, sel, bytes, true, 1 + 2 * HANDSHAKE_SIZE + 1024);
}

/// A whole server session with the module's replies to commands. With the selector's top bit set,
/// a plain C0C1C2 is put in front of the input, which then is the chunk stream alone.
pub fn session(data: &[u8]) {
    let (sel, bytes) = split_sel(data);
    let owned;
    let stream = if sel & 0x80 != 0 {
        let mut v = vec![0u8; FULL_HANDSHAKE + bytes.len()];
        v[0] = 3;
        v[FULL_HANDSHAKE..].copy_from_slice(bytes);
        owned = v;
        &owned[..]
    } else {
        bytes
    };
    let cfg = SessionConfig { max_message: 1 << 16, ..SessionConfig::default() };
    drive(&mut ServerSession::new(cfg), sel & 0x7F, stream, true, FULL_HANDSHAKE);
}

// ---------------------------------------------------------------------------------------------
// Chunk stream

/// Both chunk checks on the same input.
pub fn chunk(data: &[u8]) {
    chunk_ops(data);
    chunk_round_trip(data);
}

/// Interprets the input as decoder operations: feed N bytes, Set Chunk Size, Abort.
pub fn chunk_ops(data: &[u8]) {
    let mut src = Src::new(data);
    let max = [128usize, 4096, 65536, 1 << 20][usize::from(src.u8() & 3)];
    let mut dec = ChunkDecoder::new(max);
    let mut input = BytesMut::new();
    while !src.is_empty() {
        let op = src.u8();
        match op {
            0xF0..=0xF7 => {
                let n = src.u32();
                let ok = dec.set_chunk_size(n).is_ok();
                assert_eq!(ok, (1..=MAX_CHUNK_SIZE).contains(&n));
                if ok {
                    assert_eq!(dec.chunk_size(), n);
                }
                continue;
            }
            0xF8..=0xFB => {
                dec.abort(u32::from(src.u16()));
                continue;
            }
            0xFC..=0xFF => {
                let rest = src.bytes(usize::MAX);
                input.extend_from_slice(rest);
            }
            n => input.extend_from_slice(src.bytes(usize::from(n) + 1)),
        }
        loop {
            let before = input.len();
            match dec.decode(&mut input) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= max, "message over max_message");
                    assert!(input.len() < before, "a message from no bytes");
                }
                Ok(None) => {
                    assert!(input.len() <= before);
                    break;
                }
                // The decoder's state is undefined after an error.
                Err(_) => return,
            }
        }
    }
}

fn chunk_size_from(v: u32) -> u32 {
    match v >> 30 {
        0 => v % 300 + 1,
        1 => v % 70_000 + 1,
        2 => MAX_CHUNK_SIZE - v % 3,
        _ => v % 16 + 1,
    }
}

/// The encoding side of the round trip.
struct Wire {
    /// 0: compressing encoder, 1: standalone encoder, 2: `encode_standalone`.
    mode: u8,
    enc: ChunkEncoder,
    chunk_size: u32,
    bytes: BytesMut,
    expect: Vec<RawMessage>,
}

impl Wire {
    fn put(&mut self, cs: u32, m: RawMessage) {
        if self.mode == 2 {
            encode_standalone(cs, &m, self.chunk_size, &mut self.bytes);
        } else {
            self.enc.encode(cs, &m, &mut self.bytes);
        }
        self.expect.push(m);
    }

    fn set_chunk_size(&mut self, n: u32) {
        self.put(csid::PROTOCOL, Control::SetChunkSize(n).to_message());
        self.enc.set_chunk_size(n);
        self.chunk_size = n;
    }
}

/// Builds messages from the input, encodes them (compressing encoder, standalone encoder or
/// `encode_standalone`) with chunk size changes in between, and decodes them back in pieces.
pub fn chunk_round_trip(data: &[u8]) {
    let mut src = Src::new(data);
    let first = chunk_size_from(src.u32());
    let mode = src.u8() % 3;
    let sel = src.u8();
    let csids = [0; 4].map(|_| 2 + u32::from(src.u16()) % 65598);
    let enc = if mode == 1 { ChunkEncoder::standalone() } else { ChunkEncoder::new() };
    let mut w = Wire { mode, enc, chunk_size: 128, bytes: BytesMut::new(), expect: Vec::new() };
    w.set_chunk_size(first);
    let mut ts = [0u32; 4];
    while !src.is_empty() && w.expect.len() < 32 {
        let op = src.u8();
        if op >= 0xF0 {
            w.set_chunk_size(chunk_size_from(src.u32()));
            continue;
        }
        let i = usize::from(op & 3);
        let mut t = src.u8();
        if (msg_type::SET_CHUNK_SIZE..=msg_type::SET_PEER_BANDWIDTH).contains(&t) {
            t += 16;
        }
        let stream_id = if op & 4 != 0 { src.u32() } else { u32::from((op >> 3) & 1) };
        let delta = match (op >> 4) & 7 {
            0 | 1 => 0,
            2 | 3 => u32::from(src.u8()),
            4 => src.u32(),
            5 => 0xFF_FFFF - 2 + u32::from(src.u8() % 5),
            _ => u32::from(src.u16()),
        };
        ts[i] = ts[i].wrapping_add(delta);
        let len = usize::from(src.u16() & 0x07FF);
        let seed = w.expect.len() as u8;
        let payload: Vec<u8> = (0..len).map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let m = RawMessage::new(t, stream_id, ts[i], payload);
        w.put(csids[i], m);
    }
    let Wire { mode, bytes: wire, expect, .. } = w;

    let mut dec = ChunkDecoder::new(MAX_MESSAGE_LEN);
    let mut input = BytesMut::new();
    let mut got = Vec::new();
    // Byte-at-a-time feeding only for small streams, to keep executions fast.
    let sel = if wire.len() > 4096 && sel & 3 == 0 { sel | 1 } else { sel };
    for p in pieces(sel, &wire) {
        input.extend_from_slice(p);
        while let Some(m) = dec.decode(&mut input).expect("our own chunks decode") {
            if m.msg_type == msg_type::SET_CHUNK_SIZE {
                if let Ok(Control::SetChunkSize(n)) = Control::decode(m.msg_type, &m.payload) {
                    dec.set_chunk_size(n).expect("our own chunk size is valid");
                }
            }
            got.push(m);
        }
    }
    assert!(input.is_empty(), "{} bytes left over", input.len());
    assert_eq!(got.len(), expect.len());
    for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
        assert_eq!(g, e, "message {i} of {} (mode {mode})", expect.len());
    }
}

// ---------------------------------------------------------------------------------------------
// AMF and commands

/// A key or class name too long for a short string: the encoder cuts it, so it cannot round-trip.
fn has_long_name(v: &Amf0Value) -> bool {
    let long = |props: &[(String, Amf0Value)]| props.iter().any(|(k, v)| k.len() > 0xFFFF || has_long_name(v));
    match v {
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => long(p),
        Amf0Value::TypedObject { class, props } => class.len() > 0xFFFF || long(props),
        Amf0Value::StrictArray(items) => items.iter().any(has_long_name),
        _ => false,
    }
}

fn has_reference(v: &Amf0Value) -> bool {
    let refs = |props: &[(String, Amf0Value)]| props.iter().any(|(_, v)| has_reference(v));
    match v {
        Amf0Value::Reference(_) => true,
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) | Amf0Value::TypedObject { props: p, .. } => refs(p),
        Amf0Value::StrictArray(items) => items.iter().any(has_reference),
        _ => false,
    }
}

/// Levels of nesting (1 for a scalar).
fn depth(v: &Amf0Value) -> usize {
    let props = |p: &[(String, Amf0Value)]| p.iter().map(|(_, v)| depth(v)).max().unwrap_or(0);
    1 + match v {
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) | Amf0Value::TypedObject { props: p, .. } => props(p),
        Amf0Value::StrictArray(items) => items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Decoded values re-encode to bytes that decode again, and (names short enough) to the same bytes.
/// Values nested deeper than AMF0 allows (AMF3 references and AVM+ switches can build them) are
/// refused when read back, so only the encoder is exercised for them.
fn check_amf0_reencode(values: &[Amf0Value]) {
    let mut b1 = BytesMut::new();
    amf0::encode_all(values, &mut b1);
    if values.iter().any(|v| depth(v) > amf0::MAX_DEPTH) {
        return;
    }
    let again = amf0::decode_all(&b1).expect("re-encoded AMF0 decodes");
    assert_eq!(again.len(), values.len());
    if values.iter().any(has_long_name) {
        return;
    }
    let mut b2 = BytesMut::new();
    amf0::encode_all(&again, &mut b2);
    assert!(b1 == b2, "AMF0 re-encoding is not stable");
}

pub fn amf0(data: &[u8]) {
    if let Ok((v, used)) = amf0::decode(data) {
        assert!(used >= 1 && used <= data.len());
        check_amf0_reencode(&[v]);
    }
    if let Ok(values) = amf0::decode_all(data) {
        check_amf0_reencode(&values);
    }
}

/// About the memory a value takes (amf3.rs weighs references the same way).
fn weight(v: &Amf0Value) -> usize {
    let props = |p: &[(String, Amf0Value)]| p.iter().map(|(k, v)| k.len() + weight(v)).sum::<usize>();
    48 + match v {
        Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => s.len(),
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => props(p),
        Amf0Value::TypedObject { class, props: p } => class.len() + props(p),
        Amf0Value::StrictArray(items) => items.iter().map(weight).sum(),
        _ => 0,
    }
}

pub fn amf3(data: &[u8]) {
    let direct = amf3::decode(data);
    if let Ok((v, used)) = &direct {
        assert!(*used >= 1 && *used <= data.len());
        // References copy values: what decodes must stay linear in the input, not a bomb.
        assert!(weight(v) <= 128 * used, "{used} bytes of AMF3 decode to a value of weight {}", weight(v));
        check_amf0_reencode(std::slice::from_ref(v));
    }
    // The same bytes behind an AVM+ marker, as type 17 commands carry them.
    let mut avm = Vec::with_capacity(data.len() + 1);
    avm.push(0x11);
    avm.extend_from_slice(data);
    match (amf0::decode(&avm), &direct) {
        (Ok((v, used)), Ok((w, n))) => {
            assert_eq!(used, n + 1);
            assert_eq!(format!("{v:?}"), format!("{w:?}"));
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("AVM+ and direct AMF3 disagree: {:?} vs {:?}", a.is_ok(), b.is_ok()),
    }
}

/// The command rebuilt from its fields: name, transaction id, values.
fn rebuild(c: &Command) -> (String, f64, Vec<Amf0Value>) {
    use Amf0Value::{Boolean, Null, Number};
    let s = |x: &str| Amf0Value::string(x);
    let (tid, values) = match c {
        Command::Connect { tid, props, args } => {
            (*tid, std::iter::once(Amf0Value::Object(props.clone())).chain(args.iter().cloned()).collect())
        }
        Command::CreateStream { tid } | Command::CloseStream { tid } => (*tid, vec![Null]),
        Command::ReleaseStream { tid, name }
        | Command::FcPublish { tid, name }
        | Command::FcUnpublish { tid, name }
        | Command::GetStreamLength { tid, name } => (*tid, vec![Null, s(name)]),
        Command::Publish { tid, name, kind } => (*tid, vec![Null, s(name), s(kind)]),
        Command::Play { tid, name, start, duration, reset } => {
            (*tid, vec![Null, s(name), Number(*start), Number(*duration), Boolean(*reset)])
        }
        Command::Play2 { tid, params } => (*tid, vec![Null, Amf0Value::Object(params.clone())]),
        Command::Pause { tid, pause, position_ms } => (*tid, vec![Null, Boolean(*pause), Number(*position_ms)]),
        Command::Seek { tid, position_ms } => (*tid, vec![Null, Number(*position_ms)]),
        Command::DeleteStream { tid, stream_id } => (*tid, vec![Null, Number(*stream_id)]),
        Command::ReceiveAudio { flag } | Command::ReceiveVideo { flag } => (0.0, vec![Null, Boolean(*flag)]),
        Command::Result { tid, args } | Command::Error { tid, args } | Command::Other { tid, args, .. } => {
            (*tid, args.clone())
        }
        Command::OnStatus { info } => (0.0, vec![Null, Amf0Value::Object(info.clone())]),
    };
    (c.name().to_string(), tid, values)
}

fn check_command_reencode(c: &Command) {
    let (name, tid, values) = rebuild(c);
    // A reference may point at a value the decoder dropped (say, a non-number transaction id);
    // long names and deep nesting do not survive re-encoding (see check_amf0_reencode).
    if values.iter().any(|v| has_reference(v) || has_long_name(v) || depth(v) > amf0::MAX_DEPTH) {
        return;
    }
    let bytes = command::encode_command(&name, tid, &values);
    let again = command::decode_command(msg_type::AMF0_COMMAND, &bytes).expect("re-encoded command decodes");
    assert_eq!(format!("{again:?}"), format!("{c:?}"), "command does not round-trip");
}

pub fn command(data: &[u8]) {
    for t in [msg_type::AMF0_COMMAND, msg_type::AMF3_COMMAND] {
        if let Ok(c) = command::decode_command(t, data) {
            check_command_reencode(&c);
            if let Command::Publish { name, .. } | Command::Play { name, .. } = &c {
                let (n, a) = command::split_name_args(name);
                assert_eq!(n.len() + a.len() + usize::from(name.contains('?')), name.len());
            }
            if let Command::Connect { props, .. } = &c {
                check_caps(props);
            }
        }
    }
    if let Ok(values) = command::decode_data(data) {
        check_amf0_reencode(&values);
    }
    let payload = Bytes::copy_from_slice(data);
    if let Some(rest) = command::strip_set_data_frame(&payload) {
        assert_eq!(rest.len() + 16, data.len());
        let _ = command::decode_data(&rest);
    }
}

fn check_caps(props: &[(String, Amf0Value)]) {
    let caps = Capabilities::from_connect(props);
    assert!(caps.video.len() <= MAX_CAPS && caps.audio.len() <= MAX_CAPS, "caps lists over their bound");
    let reply = caps.server_reply();
    assert_eq!(reply.is_empty(), !caps.enhanced);
    let _ = (caps.receives_video(*b"hvc1"), caps.receives_audio(*b"Opus"));
}

// ---------------------------------------------------------------------------------------------
// FLV and codecs

fn check_video_tag(d: &[u8]) {
    let Some(info) = flv::video_tag_info(d) else {
        assert!(d.is_empty() || d[0] & 0x80 != 0, "legacy video header always parses");
        return;
    };
    assert_eq!(info.enhanced, info.fourcc.is_some());
    if !info.sequence_header {
        return;
    }
    let body = d.get(5..).unwrap_or_default();
    match (info.codec, info.enhanced) {
        (flv::VideoCodec::Avc, false) => avc_config(body),
        (flv::VideoCodec::Hevc, _) => hevc_config(body),
        _ => {}
    }
}

fn check_audio_tag(d: &[u8]) {
    let Some(info) = flv::audio_tag_info(d) else {
        assert!(d.is_empty() || d[0] >> 4 == 9);
        return;
    };
    match info.codec {
        flv::AudioCodec::Aac if info.sequence_header && info.fourcc.is_none() => aac_config(&d[2..]),
        flv::AudioCodec::Mp3 if info.fourcc.is_none() => mp3_frames(&d[1..]),
        _ => {}
    }
}

fn check_tag(t: &FlvTag) {
    assert!(matches!(t.tag_type, msg_type::AUDIO | msg_type::VIDEO | msg_type::AMF0_DATA));
    match t.tag_type {
        msg_type::VIDEO => check_video_tag(&t.data),
        msg_type::AUDIO => check_audio_tag(&t.data),
        _ => {
            let _ = command::decode_data(&t.data);
        }
    }
}

/// The incremental reader fed in pieces agrees with `read_all`, and what it read re-muxes to the
/// same tags.
pub fn flv(data: &[u8]) {
    let (sel, bytes) = split_sel(data);
    let mut r = FlvReader::new();
    let mut tags = Vec::new();
    let mut err = None;
    let mut fed = 0usize;
    'feed: for p in pieces(sel, bytes) {
        r.extend(p);
        fed += p.len();
        loop {
            match r.next_tag() {
                Ok(Some(t)) => {
                    check_tag(&t);
                    tags.push(t);
                }
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
        }
        assert!(r.pending() <= fed);
    }
    let expect = match err {
        Some(e) => Err(e),
        None if r.pending() > 0 => Err(flv::FlvError::Truncated),
        None => Ok(tags.clone()),
    };
    assert_eq!(flv::read_all(bytes), expect);

    let mut out = BytesMut::new();
    flv::write_header(&mut out, true, true);
    for t in &tags {
        flv::write_tag(&mut out, t.tag_type, t.timestamp, &t.data);
    }
    assert_eq!(flv::read_all(&out), Ok(tags), "FLV re-mux");
}

fn check_picture(w: u32, h: u32) {
    assert!((1..=65536).contains(&w) && (1..=65536).contains(&h), "picture {w}x{h}");
}

fn avc_config(b: &[u8]) {
    if let Ok(c) = avc::parse_config(b) {
        assert!(matches!(c.nal_length_size, 1 | 2 | 4));
        assert_eq!(avc::parse_sps(&c.sps[0]).as_ref(), Ok(&c.info));
        check_picture(c.info.width, c.info.height);
        let _ = c.codec_string();
    }
}

fn avc_sps(b: &[u8]) {
    if let Ok(i) = avc::parse_sps(b) {
        check_picture(i.width, i.height);
    }
    for nal in hevc::split_annexb(b) {
        if nal[0] & 0x1f == 7 {
            if let Ok(i) = avc::parse_sps(nal) {
                check_picture(i.width, i.height);
            }
        }
    }
}

fn hevc_config(b: &[u8]) {
    if let Ok(c) = hevc::parse_config(b) {
        assert!(matches!(c.nal_length_size, 1 | 2 | 4));
        assert_eq!(hevc::parse_sps(&c.sps[0]).as_ref(), Ok(&c.info));
        check_picture(c.info.width, c.info.height);
        let _ = c.codec_string();
    }
}

/// Annex B in, parameter sets out, a configuration record built from them and parsed back.
fn hevc_annexb(b: &[u8]) {
    if let Ok(i) = hevc::parse_sps(b) {
        check_picture(i.width, i.height);
    }
    let nals = hevc::split_annexb(b);
    for nal in &nals {
        assert!(!nal.is_empty() && nal.last() != Some(&0));
    }
    let of = |t: u8| -> Vec<&[u8]> { nals.iter().copied().filter(|n| hevc::nal_type(n) == Some(t)).collect() };
    let (vps, sps, pps) = (of(32), of(33), of(34));
    if let Ok(record) = hevc::build_config(&vps, &sps, &pps) {
        let c = hevc::parse_config(&record).expect("a record we built parses");
        assert_eq!(c.vps, vps);
        assert_eq!(c.sps, sps);
        assert_eq!(c.pps, pps);
        assert_eq!(hevc::parse_sps(sps[0]).as_ref(), Ok(&c.info));
        assert_eq!(c.nal_length_size, 4);
    }
}

fn aac_config(b: &[u8]) {
    if let Ok(c) = aac::parse_config(b) {
        let _ = c.codec_string();
        for len in [0, 1, b.len(), 0x1FFF - 7, 0x1FFF - 6] {
            if let Ok(h) = aac::adts_header(&c, len) {
                assert_eq!((h[0], h[1] & 0xF6), (0xFF, 0xF0), "ADTS sync");
                let field = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
                assert_eq!(field, len + 7, "ADTS frame length");
            }
        }
    }
}

fn mp3_frames(b: &[u8]) {
    if let Ok(h) = mp3::parse_header(b) {
        assert!(h.frame_len.unwrap_or(4) >= 4, "frame shorter than its header");
        let _ = h.codec_string();
    }
    if let Some((at, h)) = mp3::find_frame(b) {
        assert!(at < b.len());
        assert_eq!(mp3::parse_header(&b[at..]), Ok(h));
    }
}

fn caps_from_amf(b: &[u8]) {
    fn walk(v: &Amf0Value, depth: usize) {
        if let Some(props) = v.properties() {
            check_caps(props);
            if depth < 4 {
                props.iter().for_each(|(_, v)| walk(v, depth + 1));
            }
        }
    }
    if let Ok(values) = amf0::decode_all(b) {
        values.iter().for_each(|v| walk(v, 0));
    }
}

/// One parser per input, chosen by the first byte.
pub fn codec(data: &[u8]) {
    let (sel, b) = split_sel(data);
    match sel % 8 {
        0 => avc_config(b),
        1 => avc_sps(b),
        2 => hevc_config(b),
        3 => hevc_annexb(b),
        4 => aac_config(b),
        5 => mp3_frames(b),
        6 => caps_from_amf(b),
        _ => {
            check_video_tag(b);
            check_audio_tag(b);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HLS segmenter

/// A record kind that is no message: the publisher leaves (`Segmenter::finish`), then maybe comes
/// back.
const SEGMENTER_FINISH: u8 = 0x3F;
/// TS bytes a message may produce per byte of its body (Annex B start codes for 1-byte NAL
/// lengths, AUDs, PES and packet headers), plus a fixed allowance per message.
const TS_PER_BYTE: usize = 3;
const TS_PER_MESSAGE: usize = 2048;

/// The segmenter's input format: a configuration byte, then records. A record is a kind byte (bit
/// 7: video, else audio; bit 6: a 32-bit absolute timestamp follows, else a signed 16-bit step
/// from the last one; `SEGMENTER_FINISH`: no message, the publisher leaves), the timestamp, a
/// 16-bit body length and the body. Builds such an input from messages (video?, timestamp, body).
pub fn segmenter_input(sel: u8, messages: &[(bool, u32, &[u8])], finish: bool) -> Vec<u8> {
    let mut v = vec![sel];
    let mut last = None;
    for (video, ts, body) in messages {
        let kind = if *video { 0x80 } else { 0x00 };
        // The first timestamp is absolute, so that inputs can be concatenated (after their
        // configuration byte) and start where they say.
        match last.and_then(|last: u32| i16::try_from(ts.wrapping_sub(last) as i32).ok()) {
            Some(step) => {
                v.push(kind);
                v.extend_from_slice(&step.to_be_bytes());
            }
            None => {
                v.push(kind | 0x40);
                v.extend_from_slice(&ts.to_be_bytes());
            }
        }
        let body = &body[..body.len().min(0xFFFF)];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        last = Some(*ts);
    }
    if finish {
        v.push(SEGMENTER_FINISH);
    }
    v
}

/// RTMP audio and video messages through the HLS segmenter: segments open and close in turn, their
/// data is whole TS packets that our strict demuxer reads back (tables, CRCs, continuity counters
/// across segments, PES framing), durations stay within the cut rules and output stays linear.
pub fn segmenter(data: &[u8]) {
    let mut src = Src::new(data);
    let sel = src.u8();
    let fragment_ms = [300u64, 1000, 2000, 5000][usize::from(sel & 3)];
    let conf = SegmenterConf {
        fragment_ms,
        max_fragment_ms: fragment_ms * [1, 2, 4, 10][usize::from((sel >> 2) & 3)],
        aligned: sel & 0x10 != 0,
        sync_ms: if sel & 0x20 != 0 { 0 } else { 2 },
        muxdelay_ms: if sel & 0x40 != 0 { 0 } else { 700 },
        max_audio_delay_ms: 300,
        audio_buffer_size: if sel & 0x80 != 0 { 200 } else { 1 << 20 },
    };
    // A cut comes at the latest max_fragment_ms (plus a second when audio forces it) after the
    // start, by a frame at most a jump ahead; the end of a last frame is estimated at most 1 s out.
    let max_duration = conf.max_fragment_ms + conf.jump_ms() + 3000;
    let mut s = Segmenter::new(conf);
    let mut demux = Demuxer::new();
    let (mut ts, mut open, mut notices) = (0u32, false, 0);
    let (mut out_bytes, mut allowance, mut largest_video) = (0usize, 0usize, 0usize);
    let mut check = |events: &[SegEvent], open: &mut bool, notices: &mut usize, allowance: usize| {
        let mut data_in_segment = 0;
        for e in events {
            match e {
                SegEvent::Open { .. } => {
                    assert!(!*open, "Open while a segment is open");
                    *open = true;
                    data_in_segment = 0;
                }
                SegEvent::Data(d) => {
                    assert!(*open, "Data outside a segment");
                    data_in_segment += 1;
                    assert_eq!(data_in_segment, 1, "one Data per message and segment");
                    assert!(!d.is_empty() && d.len() % TS_PACKET_SIZE == 0, "Data of {} bytes", d.len());
                    assert!(d.chunks(TS_PACKET_SIZE).all(|p| p[0] == SYNC_BYTE), "TS packet without sync byte");
                    out_bytes += d.len();
                    if let Err(e) = demux.push(d) {
                        panic!("the segmenter's TS does not demux: {e}");
                    }
                }
                SegEvent::Close { duration_ms } => {
                    assert!(*open, "Close without a segment");
                    *open = false;
                    assert!(*duration_ms <= max_duration, "segment of {duration_ms} ms");
                    if let Err(e) = demux.finish() {
                        panic!("a segment ends inside a PES: {e}");
                    }
                }
                SegEvent::Unsupported(_) => *notices += 1,
            }
        }
        assert!(*notices <= 5, "a notice said twice");
        assert!(out_bytes <= allowance, "{out_bytes} TS bytes from a {}-byte input", data.len());
    };
    while !src.is_empty() {
        let kind = src.u8();
        let mut events = Vec::new();
        if kind == SEGMENTER_FINISH {
            s.finish(&mut events);
        } else {
            ts = if kind & 0x40 != 0 { src.u32() } else { ts.wrapping_add(i32::from(src.u16() as i16) as u32) };
            let len = usize::from(src.u16());
            let body = src.bytes(len);
            // Parameter sets go before every keyframe: a keyframe may cost a sequence header.
            allowance += TS_PER_BYTE * body.len() + TS_PER_MESSAGE;
            if kind & 0x80 != 0 {
                largest_video = largest_video.max(body.len());
                allowance += largest_video;
                s.push_video(ts, body, &mut events);
            } else {
                s.push_audio(ts, body, &mut events);
            }
        }
        allowance += TS_PER_MESSAGE;
        check(&events, &mut open, &mut notices, allowance);
        assert_eq!(s.is_open(), open);
        let _ = s.media_info();
    }
    let mut events = Vec::new();
    s.finish(&mut events);
    check(&events, &mut open, &mut notices, allowance + TS_PER_MESSAGE);
    assert!(!open && !s.is_open(), "finish leaves a segment open");
}

// ---------------------------------------------------------------------------------------------
// CMAF packager

/// Record kinds of the `cmaf` input besides messages: end the open chunks (`end_part`), ask for a
/// segment cut (`end_segment`); `SEGMENTER_FINISH` flushes.
const CMAF_END_PART: u8 = 0x3E;
const CMAF_END_SEGMENT: u8 = 0x3D;

/// The boxes exactly filling `b`: (type, body).
fn cmaf_boxes(mut b: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut v = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 8, "box header past its parent");
        let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= b.len(), "box size {size} out of its parent");
        v.push((b[4..8].try_into().unwrap(), &b[8..size]));
        b = &b[size..];
    }
    v
}

fn cmaf_child<'a>(b: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let v = cmaf_boxes(b);
    let mut found = v.iter().filter(|(k, _)| k == kind);
    let one = found.next().expect("a child box").1;
    assert!(found.next().is_none(), "one child box of a kind");
    one
}

/// What the `cmaf` check follows per track.
type CmafTrackState = (Option<u64>, bool, u32, Option<u64>, Option<u64>, u32);

/// RTMP messages (the segmenter's input format, plus part and segment requests) through the CMAF
/// packager: every init is ftyp + moov, every chunk moof + mdat with its trun data offset at the
/// mdat payload and sizes covering it, durations > 0, tfdt continuing the previous chunk (or
/// not going back after a new init or a flush), segments numbered upwards and starting with a sync sample
/// when they say they are independent.
pub fn cmaf(data: &[u8]) {
    use rtmp_proto::cmaf::{CmafConf, CmafEvent, CmafPackager, TrackKind, SYNC_SAMPLE_FLAGS};
    let mut src = Src::new(data);
    let sel = src.u8();
    let segment_ms = [0u64, 300, 1000, 4000][usize::from(sel & 3)];
    let conf = CmafConf {
        segment_ms,
        max_segment_ms: [0, 500, 2000, 50_000][usize::from((sel >> 2) & 3)],
        part_ms: [0, 100, 200, 1000][usize::from((sel >> 4) & 3)],
        audio_sync_ms: if sel & 0x40 != 0 { 0 } else { 15 },
        max_interleave_ms: if sel & 0x80 != 0 { 0 } else { 500 },
        max_chunk_bytes: 1 << 16,
        first_segment: 1,
    };
    let mut p = CmafPackager::new(conf);
    // Per track: end of the last chunk, a new init since, last mfhd sequence, open segment
    // number, last ended segment number, timescale.
    let mut state: [CmafTrackState; 2] = [(None, false, 0, None, None, 0); 2];
    let mut notices = 0;
    let check = |events: &[CmafEvent], state: &mut [CmafTrackState; 2], notices: &mut usize| {
        for e in events {
            match e {
                CmafEvent::Init { track, bytes, timescale, .. } => {
                    let st = &mut state[*track as usize];
                    if st.5 != *timescale {
                        // Times in another unit: nothing to compare with.
                        st.0 = None;
                        st.5 = *timescale;
                    }
                    assert!(st.3.is_none(), "a new init inside a segment");
                    let top = cmaf_boxes(bytes);
                    assert_eq!(top.iter().map(|b| b.0).collect::<Vec<_>>(), [*b"ftyp", *b"moov"]);
                    let trak = cmaf_child(top[1].1, b"trak");
                    let _ = cmaf_child(cmaf_child(cmaf_child(cmaf_child(trak, b"mdia"), b"minf"), b"stbl"), b"stsd");
                    let _ = cmaf_child(cmaf_child(top[1].1, b"mvex"), b"trex");
                    st.1 = true;
                }
                CmafEvent::Chunk(c) => {
                    let st = &mut state[c.track as usize];
                    let top = cmaf_boxes(&c.bytes);
                    assert_eq!(top.iter().map(|b| b.0).collect::<Vec<_>>(), [*b"moof", *b"mdat"]);
                    let moof = top[0].1;
                    let seq = u32::from_be_bytes(cmaf_child(moof, b"mfhd")[4..8].try_into().unwrap());
                    assert!(seq > st.2, "mfhd sequence increases");
                    st.2 = seq;
                    let traf = cmaf_child(moof, b"traf");
                    let tfdt = cmaf_child(traf, b"tfdt");
                    assert_eq!(tfdt[0], 1);
                    let tfdt = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
                    assert_eq!(tfdt, c.start);
                    let trun = cmaf_child(traf, b"trun");
                    let flags = u32::from_be_bytes(trun[..4].try_into().unwrap()) & 0xFF_FFFF;
                    let count = u32::from_be_bytes(trun[4..8].try_into().unwrap()) as usize;
                    let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
                    assert_eq!(offset, moof.len() + 16, "data offset at the mdat payload");
                    let per = if flags & 0xC00 != 0 { 16 } else { 8 };
                    assert_eq!(trun.len(), 12 + count * per);
                    let (mut dur, mut size) = (0u64, 0usize);
                    for i in 0..count {
                        let at = 12 + i * per;
                        let d = u32::from_be_bytes(trun[at..at + 4].try_into().unwrap());
                        assert!(d > 0, "zero duration");
                        dur += u64::from(d);
                        size += u32::from_be_bytes(trun[at + 4..at + 8].try_into().unwrap()) as usize;
                        if i == 0 && per == 16 {
                            let f = u32::from_be_bytes(trun[at + 8..at + 12].try_into().unwrap());
                            assert_eq!(f == SYNC_SAMPLE_FLAGS, c.independent);
                        }
                    }
                    assert_eq!(size, top[1].1.len(), "sample sizes cover the mdat");
                    assert_eq!(dur, c.duration);
                    if let Some(end) = st.0 {
                        if st.1 {
                            assert!(tfdt >= end, "tfdt goes back after a new init");
                        } else {
                            assert_eq!(tfdt, end, "tfdt continues the previous chunk");
                        }
                    }
                    st.0 = Some(tfdt + dur);
                    st.1 = false;
                    match st.3 {
                        Some(n) => assert_eq!(n, c.segment),
                        None => {
                            assert_eq!(c.part, 0);
                            assert!(st.4.is_none_or(|l| c.segment > l), "segment numbers increase");
                            st.3 = Some(c.segment);
                        }
                    }
                }
                CmafEvent::SegmentEnd(s) => {
                    let st = &mut state[s.track as usize];
                    assert_eq!(st.3.take(), Some(s.number), "a segment ends after its chunks");
                    st.4 = Some(s.number);
                }
                CmafEvent::Unsupported { .. } => *notices += 1,
            }
        }
        assert!(*notices <= 6, "a notice said twice");
    };
    let mut ts = 0u32;
    while !src.is_empty() {
        let kind = src.u8();
        let mut events = Vec::new();
        match kind {
            SEGMENTER_FINISH => p.flush(&mut events),
            CMAF_END_PART => p.end_part(&mut events),
            CMAF_END_SEGMENT => p.end_segment(),
            _ => {
                ts = if kind & 0x40 != 0 { src.u32() } else { ts.wrapping_add(i32::from(src.u16() as i16) as u32) };
                let len = usize::from(src.u16());
                let body = src.bytes(len);
                if kind & 0x80 != 0 {
                    p.push_video(ts, body, &mut events);
                } else {
                    p.push_audio(ts, body, &mut events);
                }
            }
        }
        check(&events, &mut state, &mut notices);
        if kind == SEGMENTER_FINISH {
            // A stream after a flush may start later (video at its next keyframe).
            state.iter_mut().for_each(|s| s.1 = true);
        }
    }
    let mut events = Vec::new();
    p.flush(&mut events);
    check(&events, &mut state, &mut notices);
    assert!(state.iter().all(|s| s.3.is_none()), "flush leaves a segment open");
    let _ = (p.init_segment(TrackKind::Video), p.codec(TrackKind::Audio), p.stats());
}

/// One target's body.
pub type Check = fn(&[u8]);

// ---------------------------------------------------------------------------------------------
// HTTP answers of notify callbacks, and playlists read back from disk

/// A callback's answer fed in pieces to the response parser (bounded by its limit), then the same
/// bytes as a playlist left by an earlier publish: never a panic, never more than the limit kept.
pub fn http(data: &[u8]) {
    use rtmp_proto::hls::playlist;
    use rtmp_proto::http::{HttpError, ResponseParser};
    let (sel, body) = split_sel(data);
    let max = [64usize, 1024, 65536][usize::from(sel >> 6) % 3];
    let mut p = ResponseParser::new(max);
    let mut done = false;
    for piece in pieces(sel & 0x3f, body) {
        match p.feed(piece) {
            Ok(Some(r)) => {
                assert!(r.body.len() <= max, "a body larger than the limit was kept");
                assert!((100..600).contains(&r.status), "status {} passed", r.status);
                done = true;
                break;
            }
            Ok(None) => assert!(p.received() <= max.saturating_add(piece.len()), "read past the limit"),
            Err(HttpError::TooLarge(n)) => {
                assert_eq!(n, max);
                done = true;
                break;
            }
            Err(_) => {
                done = true;
                break;
            }
        }
    }
    if !done {
        if let Ok(r) = p.eof() {
            assert!(r.body.len() <= max);
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        if let Some(r) = playlist::parse(text) {
            let mut pl = playlist::Playlist::new(30_000, 2_000, sel & 1 == 1);
            pl.restore(r);
            let out = pl.render(&|s| format!("{}.ts", s.id), &|k| format!("{k}.key"));
            assert!(playlist::parse(&out).is_some(), "a rendered playlist does not read back");
        }
    }
}

/// Every target by name, for the replay test.
pub const TARGETS: [(&str, Check); 16] = [
    ("handshake_server", handshake_server),
    ("handshake_client", handshake_client),
    ("chunk", chunk),
    ("amf0", amf0),
    ("amf3", amf3),
    ("command", command),
    ("flv", flv),
    ("codec", codec),
    ("session", session),
    ("segmenter", segmenter),
    ("http", http),
    ("record", record),
    ("vod_flv", vod_flv),
    ("vod_mp4", vod_mp4),
    ("cmaf", cmaf),
    ("llhls", llhls),
];

/// Media and control operations through the FLV recorder: every file it makes (the actions
/// applied to an in-memory disk) is FLV our reader takes whole, starting with onMetaData, and its
/// timestamps never go down, whatever the stream does (headers late, timestamps backwards,
/// rotations, stops and failed opens in between).
pub fn record(data: &[u8]) {
    use rtmp_proto::record::{Action, FlvRecorder, RecordConfig};
    let mut src = Src::new(data);
    let sel = src.u8();
    let mut r = FlvRecorder::new(RecordConfig {
        audio: sel & 1 != 0,
        video: sel & 2 != 0,
        keyframes: sel & 4 != 0,
        max_size: if sel & 8 != 0 { 2000 + u64::from(src.u16()) } else { 0 },
        max_frames: if sel & 16 != 0 { u64::from(src.u8()) + 1 } else { 0 },
        index_capacity: usize::from(src.u8() % 8) + 1,
    });
    let mut files: Vec<Vec<u8>> = Vec::new();
    let mut open = false;
    let mut ts = 0u32;
    let apply = |actions: Vec<Action>, files: &mut Vec<Vec<u8>>, open: &mut bool| {
        for a in actions {
            match a {
                Action::Open => {
                    files.push(Vec::new());
                    *open = true;
                }
                Action::Write(b) => {
                    assert!(*open, "write without an open file");
                    files.last_mut().expect("open file").extend_from_slice(&b);
                }
                Action::Patch { offset, bytes } => {
                    let f = files.last_mut().expect("open file");
                    let end = offset as usize + bytes.len();
                    assert!(end <= f.len(), "patch past the end of the file");
                    f[offset as usize..end].copy_from_slice(&bytes);
                }
                Action::Close => *open = false,
            }
        }
    };
    while !src.is_empty() {
        let op = src.u8();
        ts = ts.wrapping_add(i32::from(src.u16() as i16) as u32);
        let len = usize::from(src.u8());
        let body = src.bytes(len);
        let mut p = BytesMut::new();
        let actions = match op % 12 {
            0 => {
                p.extend_from_slice(b"\x17\x00\x00\x00\x00");
                p.extend_from_slice(body);
                r.set_video_header(p.freeze());
                Vec::new()
            }
            1 => {
                p.extend_from_slice(b"\xaf\x00\x12\x10");
                r.set_audio_header(p.freeze());
                Vec::new()
            }
            2 | 3 => {
                p.extend_from_slice(b"\x17\x01\x00\x00\x00");
                p.extend_from_slice(body);
                r.push(9, ts, &p.freeze())
            }
            4..=6 => {
                p.extend_from_slice(b"\x27\x01\x00\x00\x00");
                p.extend_from_slice(body);
                r.push(9, ts, &p.freeze())
            }
            7 | 8 => {
                p.extend_from_slice(b"\xaf\x01");
                p.extend_from_slice(body);
                r.push(8, ts, &p.freeze())
            }
            9 => {
                r.rotate();
                Vec::new()
            }
            10 => r.stop(),
            _ => {
                if op & 0x80 != 0 {
                    r.failed();
                    open = false;
                } else {
                    r.start();
                }
                Vec::new()
            }
        };
        apply(actions, &mut files, &mut open);
    }
    apply(r.stop(), &mut files, &mut open);
    for f in files.iter().filter(|f| !f.is_empty()) {
        let tags = flv::read_all(f).expect("a recorded file reads back whole");
        if let Some(first) = tags.first() {
            assert_eq!(first.tag_type, msg_type::AMF0_DATA, "a file starts with onMetaData");
        }
        let mut last = 0;
        for t in tags.iter().skip(1) {
            assert!(t.timestamp >= last, "timestamps never go down in a file");
            last = t.timestamp;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VOD readers

/// A file in memory that answers `Pending` at reads a xorshift seeded by the selector picks, once
/// per (offset, length): a reader call retried gets further each time.
struct FlakyFile {
    data: Bytes,
    x: u32,
    failed: std::collections::HashSet<(u64, usize)>,
}

impl rtmp_proto::vod::Source for FlakyFile {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, rtmp_proto::vod::SourceError> {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 17;
        self.x ^= self.x << 5;
        if self.x % 4 == 1 && self.failed.insert((offset, len)) {
            return Err(rtmp_proto::vod::SourceError::Pending);
        }
        rtmp_proto::vod::Source::read_at(&mut self.data, offset, len)
    }
}

fn vod_retry<T>(mut f: impl FnMut() -> Result<T, rtmp_proto::vod::VodError>) -> Result<T, rtmp_proto::vod::VodError> {
    for _ in 0..1_000_000 {
        match f() {
            Err(rtmp_proto::vod::VodError::Pending) => continue,
            r => return r,
        }
    }
    panic!("a reader call answers Pending forever");
}

/// Plays a file: open, metadata, headers, every tag, then seeks each followed by a few tags; the
/// transcript of what it saw. Checks what the readers promise on the way.
fn vod_play<S: rtmp_proto::vod::Source>(src: &mut S, mp4: bool, sel: u8) -> Vec<String> {
    use rtmp_proto::vod::{flv::FlvFile, mp4::Mp4File, TagKind, Tracks, VodFile, VodTag};
    let enhanced = sel & 1 != 0;
    // Bits 6 and 7: the second video / audio track of an MP4 file (`vindex=1`, `aindex=1`).
    let tracks = Tracks { video: (sel & 0x40 != 0).then_some(1), audio: (sel & 0x80 != 0).then_some(1) };
    let mut out = Vec::new();
    let opened = if mp4 {
        vod_retry(|| Mp4File::open_tracks(src, tracks)).map(VodFile::Mp4)
    } else {
        vod_retry(|| FlvFile::open(src)).map(VodFile::Flv)
    };
    let mut f = match opened {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return vec![format!("{e:?}")];
        }
    };
    f.set_enhanced(enhanced);
    let meta = f.metadata();
    assert!(
        matches!(amf0::decode(&meta), Ok((Amf0Value::String(s), _)) if s == "onMetaData"),
        "metadata starts with onMetaData"
    );
    if mp4 {
        assert!(amf0::decode_all(&meta).is_ok(), "MP4 metadata decodes");
    }
    out.push(format!("meta {meta:?} {:?}", f.duration_ms()));
    let check = |t: &VodTag, last: &mut [u32; 3]| {
        match t.kind {
            TagKind::Video => {
                check_video_tag(&t.data);
                let info = flv::video_tag_info(&t.data).expect("a video tag has a header");
                if mp4 {
                    assert_eq!(info.keyframe, t.key, "MP4 key flag");
                    assert_eq!(info.enhanced, enhanced && info.codec == flv::VideoCodec::Hevc, "HEVC form");
                }
            }
            TagKind::Audio => check_audio_tag(&t.data),
            TagKind::Script => {}
        }
        let i = t.kind as usize;
        if mp4 {
            assert!(t.ts >= last[i], "MP4 decode times go down");
        }
        last[i] = t.ts;
    };
    let headers = f.headers(enhanced);
    for h in &headers {
        check(h, &mut [0; 3]);
        if h.kind == TagKind::Video {
            assert!(flv::video_tag_info(&h.data).is_some_and(|i| i.sequence_header), "video header");
        }
    }
    out.push(format!("headers {headers:?}"));
    let mut last = [0u32; 3];
    for _ in 0..5000 {
        match vod_retry(|| f.next(src)) {
            Ok(Some(t)) => {
                check(&t, &mut last);
                out.push(format!("{t:?}"));
            }
            r => {
                out.push(format!("end {r:?} {}", f.truncated()));
                break;
            }
        }
    }
    let duration = f.duration_ms().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    for ms in [u32::from(sel) * 40, duration / 2, 0, u32::MAX] {
        let r = vod_retry(|| f.seek(src, ms));
        out.push(format!("seek {ms} {r:?}"));
        let Ok(at) = r else { continue };
        let mut last = [at; 3];
        for h in f.headers(enhanced) {
            assert_eq!(h.ts, at, "headers after a seek are at its time");
        }
        for _ in 0..20 {
            match vod_retry(|| f.next(src)) {
                Ok(Some(t)) => {
                    check(&t, &mut last);
                    out.push(format!("{t:?}"));
                }
                r => {
                    out.push(format!("end {r:?}"));
                    break;
                }
            }
        }
    }
    out
}

fn vod(data: &[u8], mp4: bool) {
    let (sel, file) = split_sel(data);
    let file = Bytes::copy_from_slice(file);
    let plain = vod_play(&mut file.clone(), mp4, sel);
    let mut flaky = FlakyFile { data: file, x: u32::from(sel) << 8 | 0x5bd1, failed: Default::default() };
    let again = vod_play(&mut flaky, mp4, sel);
    assert_eq!(plain, again, "a source answering Pending then retried changes what is played");
}

/// An FLV file (after a selector byte: bit 0 asks for Enhanced RTMP HEVC, the rest picks seeks
/// and where the source answers Pending) through the VOD reader.
pub fn vod_flv(data: &[u8]) {
    vod(data, false);
}

/// An MP4 file through the VOD reader, as `vod_flv`; bits 6 and 7 of the selector pick the second
/// video / audio track.
pub fn vod_mp4(data: &[u8]) {
    vod(data, true);
}

// ---------------------------------------------------------------------------------------------
// Low-Latency HLS playlist state

/// Low-Latency HLS state (`rtmp_proto::hls::ll`): whatever `LlState::decode` accepts renders and
/// answers requests without panicking, and stays decodable after more writer calls. An input that
/// does not decode drives a fresh state through writer calls instead, so both the reader's and the
/// writer's side are explored.
pub fn llhls(data: &[u8]) {
    match LlState::decode(data) {
        Some(s) => {
            assert_eq!(LlState::decode(&s.encode()).as_ref(), Some(&s), "decode(encode) differs");
            llhls_serve(&s);
            // The writer goes on from a state another worker wrote.
            let mut s = s;
            s.add_part(LlPart { duration_ms: s.part_target_ms, independent: false, size: 100 });
            let map = s.open.map;
            s.end_segment(map.wrapping_add(1), true, 1);
            s.add_part(LlPart { duration_ms: 1, independent: true, size: 1 });
            s.finish();
            llhls_still_decodes(&s);
            llhls_serve(&s);
        }
        None => llhls_write(data),
    }
}

/// Writer calls chosen by the input, checking the state after each. The input: part target,
/// fragment and window / 8 (ms, u16 each), the first msn (u8; 255 and one more byte: near
/// u64::MAX), then ops: 0..=4 a part (u16: duration << 1 | independent), 5 and 6 the end of a
/// segment (map u8, flags u8 with bit 0 a discontinuity, date s u32), 7 the end of the stream.
fn llhls_write(data: &[u8]) {
    let mut src = Src::new(data);
    let part_target_ms = u64::from(src.u16()).clamp(1, 60_000);
    let fragment_ms = u64::from(src.u16()).max(1);
    let window_ms = u64::from(src.u16()).saturating_mul(8);
    let first_msn = match src.u8() {
        255 => u64::MAX - u64::from(src.u8() % 4),
        b => u64::from(b),
    };
    let mut s = LlState::new(part_target_ms, fragment_ms, window_ms, first_msn);
    let mut n: u32 = 0;
    while !src.is_empty() {
        match src.u8() % 8 {
            0..=4 => {
                let v = src.u16();
                s.add_part(LlPart { duration_ms: u64::from(v >> 1), independent: v & 1 == 1, size: u64::from(v) });
            }
            5 | 6 => {
                let (map, flags, date) = (u64::from(src.u8()), src.u8(), u64::from(src.u32()));
                let before = s.open.msn;
                for msn in s.end_segment(map, flags & 1 == 1, date.saturating_mul(1000)) {
                    assert!(msn < before, "dropped msn {msn} not older than the open segment {before}");
                    assert!(!s.segment_exists(msn), "dropped msn {msn} still listed");
                }
            }
            _ => {
                s.finish();
            }
        }
        // The full checks cost a render: after ops 1, 2, 4, 8… and at the end, the quick ones always.
        n = n.wrapping_add(1);
        if n.is_power_of_two() || src.is_empty() {
            llhls_still_decodes(&s);
            llhls_serve(&s);
        } else {
            llhls_newest(&s);
        }
    }
}

fn llhls_still_decodes(s: &LlState) {
    assert_eq!(LlState::decode(&s.encode()).as_ref(), Some(s), "the writer broke an invariant");
}

/// Everything a reading worker does with a state.
fn llhls_serve(s: &LlState) {
    let reports = [RenditionReport { uri: "a/index.m3u8".into(), last_msn: s.open.msn, last_part: 0 }];
    for skip in [false, true] {
        let text = s.render("p/", skip, &reports);
        assert!(text.starts_with("#EXTM3U\n") && text.ends_with('\n'));
        assert_eq!(text.contains("#EXT-X-PRELOAD-HINT"), !s.ended);
        assert_eq!(text.contains("#EXT-X-ENDLIST"), s.ended);
    }
    let _ = (s.target_duration_s(), s.oldest_listed_part_msn(), s.map_exists(s.open.map));
    llhls_newest(s);
    let open = s.open.msn;
    let hint = u32::try_from(s.open.parts.len()).unwrap_or(u32::MAX);
    let msns =
        [0, open.saturating_sub(2), open.saturating_sub(1), open, open.saturating_add(1), open.saturating_add(3)];
    for msn in msns {
        let _ = s.segment_exists(msn);
        for part in [0u32, 1, 4, hint, u32::MAX] {
            let _ = s.part_status(msn, part);
        }
        for part in [None, Some(0), Some(2), Some(u64::from(hint)), Some(u64::MAX)] {
            let _ = s.block(Some(msn), part);
        }
    }
    assert_eq!(s.block(None, Some(0)), Block::BadRequest);
    assert_eq!(s.block(None, None), Block::Ready);
}

/// The newest part is there and the hinted one is awaited.
fn llhls_newest(s: &LlState) {
    if let Some((msn, part)) = s.last() {
        assert_eq!(s.part_status(msn, part), PartAvail::Ready, "the last part is not there");
        assert_eq!(s.block(Some(msn), Some(u64::from(part))), Block::Ready, "blocks on the last part");
    }
    let hint = u32::try_from(s.open.parts.len()).unwrap_or(u32::MAX);
    let want = if s.ended { PartAvail::Gone } else { PartAvail::Wait };
    assert_eq!(s.part_status(s.open.msn, hint), want, "the hinted part");
}
