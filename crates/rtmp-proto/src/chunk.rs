//! The chunk stream: cuts messages into chunks with compressed headers and reassembles them, with
//! memory bounded against hostile peers (no allocation ahead of the bytes that fill it).

use std::collections::HashMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::message::RawMessage;

/// Chunk size both ways until a Set Chunk Size says otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Set Chunk Size values must keep the top bit clear.
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
pub const MIN_CSID: u32 = 2;
/// The largest id the 3-byte basic header can carry (65535 + 64).
pub const MAX_CSID: u32 = 65599;
/// The message length field is 24 bits.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Chunk streams that may hold a half-received message at once.
pub const MAX_PARTIAL_STREAMS: usize = 64;
/// Distinct chunk stream ids a peer may use on one connection.
pub const MAX_CHUNK_STREAM_IDS: usize = 1024;

/// A timestamp field of this value means the real value follows as a 4-byte extended timestamp.
const EXTENDED: u32 = 0xFF_FFFF;
/// Bytes reserved up front for a message arriving in several chunks; larger ones grow as their
/// chunks arrive, so a peer that announces big messages and sends nothing costs little.
const PARTIAL_PREALLOC: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    MessageTooLarge { len: u32, max: usize },
    /// Set Chunk Size of 0 or with the top bit set.
    BadChunkSize(u32),
    /// A fmt 1/2/3 chunk on a chunk stream that never had a fmt 0 header.
    NoPreviousHeader { csid: u32 },
    /// More than `MAX_PARTIAL_STREAMS` chunk streams with a message in progress.
    TooManyChunkStreams,
    /// More than `MAX_CHUNK_STREAM_IDS` distinct chunk stream ids.
    TooManyChunkStreamIds,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::MessageTooLarge { len, max } => {
                write!(f, "message of {len} bytes over max_message {max}")
            }
            ChunkError::BadChunkSize(n) => write!(f, "invalid chunk size {n}"),
            ChunkError::NoPreviousHeader { csid } => {
                write!(f, "chunk stream {csid} continues a header it never sent")
            }
            ChunkError::TooManyChunkStreams => {
                write!(f, "over {MAX_PARTIAL_STREAMS} chunk streams with partial messages")
            }
            ChunkError::TooManyChunkStreamIds => {
                write!(f, "over {MAX_CHUNK_STREAM_IDS} distinct chunk stream ids")
            }
        }
    }
}

impl std::error::Error for ChunkError {}

/// What the last header on one incoming chunk stream left behind for the next.
#[derive(Debug)]
struct InStream {
    msg_type: u8,
    len: u32,
    stream_id: u32,
    /// Timestamp of the message last started on this chunk stream.
    timestamp: u32,
    /// What a fmt 3 chunk starting a message adds: the last header's timestamp field, which after a
    /// fmt 0 is the absolute timestamp (the spec says so, and FFmpeg reads and writes it that way).
    delta: u32,
    /// The last fmt 0/1/2 header used an extended timestamp, so fmt 3 chunks repeat it.
    extended: bool,
    /// Bytes of the message in progress; grows only as payload arrives.
    partial: Option<BytesMut>,
}

/// Header fields read from one chunk, before they are applied.
struct ChunkHeader {
    fmt: u8,
    csid: u32,
    /// Basic + message header + extended timestamp.
    size: usize,
    /// The timestamp or delta, extended value included.
    ts_field: u32,
    /// A fmt 0/1/2 header whose timestamp field said "extended".
    ext: bool,
    len: u32,
    msg_type: u8,
    stream_id: u32,
}

enum Step {
    NeedMore,
    Progress,
    Message(RawMessage),
}

fn be24(b: &[u8]) -> u32 {
    b.iter().take(3).fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn be32(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

/// Reassembles messages from the peer's chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    max_message: usize,
    chunk_size: u32,
    streams: HashMap<u32, InStream>,
    partials: usize,
}

impl ChunkDecoder {
    /// `max_message`: longest message accepted (the length field allows up to 16 MiB - 1).
    pub fn new(max_message: usize) -> Self {
        ChunkDecoder {
            max_message,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            partials: 0,
        }
    }

    /// Applies the peer's Set Chunk Size (1..=0x7FFF_FFFF). Nothing is sized by it: a chunk never
    /// holds more than what is left of its message, which `max_message` bounds.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The peer's Abort: forget the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid) {
            if st.partial.take().is_some() {
                self.partials = self.partials.saturating_sub(1);
            }
        }
    }

    /// Returns at most one complete message per call, so the caller can apply a Set Chunk Size
    /// before the next chunk is parsed. Consumes whole chunks only; `Ok(None)` means more bytes
    /// are needed. After an error the decoder's state is undefined.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            match self.step(input)? {
                Step::NeedMore => return Ok(None),
                Step::Message(m) => return Ok(Some(m)),
                Step::Progress => {}
            }
        }
    }

    fn read_header(&self, buf: &[u8]) -> Result<Option<ChunkHeader>, ChunkError> {
        let Some(&b0) = buf.first() else { return Ok(None) };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::NoPreviousHeader { csid });
        }
        let mut h = ChunkHeader {
            fmt,
            csid,
            size: 0,
            ts_field: 0,
            ext: false,
            len: prev.map_or(0, |p| p.len),
            msg_type: prev.map_or(0, |p| p.msg_type),
            stream_id: prev.map_or(0, |p| p.stream_id),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt & 3)];
        let Some(mh) = buf.get(pos..pos + header_len) else { return Ok(None) };
        pos += header_len;
        if fmt < 3 {
            h.ts_field = be24(mh);
            if fmt < 2 {
                h.len = be24(mh.get(3..).unwrap_or(&[]));
                h.msg_type = mh.get(6).copied().unwrap_or(0);
            }
            if fmt == 0 {
                let id = mh.get(7..11).unwrap_or(&[]);
                h.stream_id = id.iter().rev().fold(0, |acc, &x| (acc << 8) | u32::from(x));
            }
            if h.ts_field == EXTENDED {
                h.ext = true;
                let Some(ext) = buf.get(pos..pos + 4) else { return Ok(None) };
                h.ts_field = be32(ext);
                pos += 4;
            }
        } else if let Some(p) = prev.filter(|p| p.extended) {
            let Some(ext) = buf.get(pos..pos + 4) else { return Ok(None) };
            let value = be32(ext);
            if p.partial.is_none() {
                // A new message: the extended field is its delta, as FFmpeg reads it.
                h.ts_field = value;
                pos += 4;
            } else if value == p.delta {
                pos += 4;
            }
            // Otherwise a continuation chunk without the repeat that some old encoders leave
            // out: the bytes are payload.
        }
        h.size = pos;
        Ok(Some(h))
    }

    fn step(&mut self, input: &mut BytesMut) -> Result<Step, ChunkError> {
        let Some(h) = self.read_header(input)? else { return Ok(Step::NeedMore) };
        let chunk_size = self.chunk_size as usize;
        let continuing = self.streams.get(&h.csid).and_then(|s| s.partial.as_ref()).map(|p| p.len());

        // A header on a chunk stream with a message in progress continues that message whatever
        // its fmt, as FFmpeg, librtmp and nginx-rtmp-module do.
        let take = match continuing {
            Some(have) => {
                let len = self.streams.get(&h.csid).map_or(0, |s| s.len as usize);
                len.saturating_sub(have).min(chunk_size)
            }
            None => {
                if h.len as usize > self.max_message {
                    return Err(ChunkError::MessageTooLarge { len: h.len, max: self.max_message });
                }
                if h.fmt == 0
                    && !self.streams.contains_key(&h.csid)
                    && self.streams.len() >= MAX_CHUNK_STREAM_IDS
                {
                    return Err(ChunkError::TooManyChunkStreamIds);
                }
                let take = (h.len as usize).min(chunk_size);
                if take < h.len as usize && self.partials >= MAX_PARTIAL_STREAMS {
                    return Err(ChunkError::TooManyChunkStreams);
                }
                take
            }
        };
        if input.len() < h.size + take {
            return Ok(Step::NeedMore);
        }
        input.advance(h.size);

        if continuing.is_none() {
            let st = self.start_message(&h);
            if take == st.len as usize {
                let msg = RawMessage {
                    msg_type: st.msg_type,
                    stream_id: st.stream_id,
                    timestamp: st.timestamp,
                    // A copy, not a slice of the read buffer: a slice would pin the whole buffer
                    // for as long as the message lives (a GOP cache keeps hundreds of them).
                    payload: Bytes::copy_from_slice(input.get(..take).unwrap_or(&[])),
                };
                input.advance(take.min(input.len()));
                return Ok(Step::Message(msg));
            }
            // Sized once: the length was checked against the message limit above.
            st.partial = Some(BytesMut::with_capacity((st.len as usize).min(PARTIAL_PREALLOC)));
            self.partials += 1;
        }

        let Some(st) = self.streams.get_mut(&h.csid) else { return Ok(Step::Progress) };
        let Some(buf) = st.partial.as_mut() else { return Ok(Step::Progress) };
        buf.extend_from_slice(input.get(..take).unwrap_or(&[]));
        input.advance(take.min(input.len()));
        if buf.len() < st.len as usize {
            return Ok(Step::Progress);
        }
        let buf = st.partial.take().unwrap_or_default();
        // Growth by doubling can leave up to half a buffer unused; messages may live long (GOP
        // cache), so keep them at their size.
        let payload = if buf.capacity() > buf.len() + buf.len() / 4 {
            Bytes::copy_from_slice(&buf)
        } else {
            buf.freeze()
        };
        self.partials = self.partials.saturating_sub(1);
        Ok(Step::Message(RawMessage {
            msg_type: st.msg_type,
            stream_id: st.stream_id,
            timestamp: st.timestamp,
            payload,
        }))
    }

    /// Applies a header that starts a new message to its chunk stream's state.
    fn start_message(&mut self, h: &ChunkHeader) -> &mut InStream {
        let st = self.streams.entry(h.csid).or_insert(InStream {
            msg_type: 0,
            len: 0,
            stream_id: 0,
            timestamp: 0,
            delta: 0,
            extended: false,
            partial: None,
        });
        st.msg_type = h.msg_type;
        st.len = h.len;
        st.stream_id = h.stream_id;
        match h.fmt {
            0 => {
                st.timestamp = h.ts_field;
                st.delta = h.ts_field;
            }
            1 | 2 => {
                st.delta = h.ts_field;
                st.timestamp = st.timestamp.wrapping_add(h.ts_field);
            }
            _ => {
                if st.extended {
                    st.delta = h.ts_field;
                }
                st.timestamp = st.timestamp.wrapping_add(st.delta);
            }
        }
        if h.fmt < 3 {
            st.extended = h.ext;
        }
        st
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let f = fmt << 6;
    match csid {
        0..=63 => out.put_u8(f | csid as u8),
        64..=319 => {
            out.put_u8(f);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(f | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

fn put_timestamp_field(out: &mut BytesMut, value: u32) {
    out.put_uint(u64::from(value.min(EXTENDED)), 3);
}

/// Writes the payload in chunks after the first chunk's header: continuation chunks are fmt 3 and
/// repeat the extended timestamp when the header had one (FFmpeg and librtmp expect it).
fn put_payload(out: &mut BytesMut, csid: u32, payload: &[u8], chunk_size: u32, ext: Option<u32>) {
    let size = (chunk_size.max(1) as usize).min(payload.len().max(1));
    let mut chunks = payload.chunks(size);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for chunk in chunks {
        put_basic_header(out, 3, csid);
        if let Some(v) = ext {
            out.put_u32(v);
        }
        out.put_slice(chunk);
    }
}

fn reserve_for(out: &mut BytesMut, len: usize, chunk_size: u32) {
    let chunks = len / (chunk_size.max(1) as usize) + 1;
    out.reserve(18 + len + chunks.saturating_mul(7));
}

fn valid_csid(csid: u32) -> u32 {
    csid.clamp(MIN_CSID, MAX_CSID)
}

/// What we last sent on one outgoing chunk stream.
#[derive(Debug)]
struct OutStream {
    msg_type: u8,
    len: u32,
    stream_id: u32,
    timestamp: u32,
    /// The delta a fmt 3 message header would repeat; `None` right after a fmt 0, because readers
    /// disagree on what fmt 3 means there (FFmpeg: the absolute timestamp again; nginx-rtmp: zero).
    delta: Option<u32>,
}

/// Cuts our messages into chunks, compressing headers per chunk stream.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutStream>,
    /// Always fmt 0 first chunks: for a server whose other writers (fan-out) share the csids.
    standalone: bool,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder { chunk_size: DEFAULT_CHUNK_SIZE, streams: HashMap::new(), standalone: false }
    }

    /// An encoder whose every message starts with a full (fmt 0) header, so that bytes encoded
    /// elsewhere with `encode_standalone` can be interleaved on the same chunk streams.
    pub fn standalone() -> Self {
        ChunkEncoder { standalone: true, ..Self::new() }
    }

    /// Call after writing the Set Chunk Size message that announces it. Clamped to 1..=0x7FFF_FFFF.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `msg` to `out` on chunk stream `csid` (clamped to 2..=65599), with the smallest header
    /// the previous message on that csid allows. A payload over `MAX_MESSAGE_LEN` cannot be
    /// described by the 24-bit length field and is not written.
    pub fn encode(&mut self, csid: u32, msg: &RawMessage, out: &mut BytesMut) {
        let len = msg.payload.len();
        if len > MAX_MESSAGE_LEN {
            return;
        }
        let csid = valid_csid(csid);
        let len32 = len as u32;
        let fmt = match self.streams.get(&csid) {
            _ if self.standalone => 0,
            Some(p) if p.stream_id == msg.stream_id && msg.timestamp >= p.timestamp => {
                let delta = msg.timestamp - p.timestamp;
                if p.msg_type != msg.msg_type || p.len != len32 {
                    1
                } else if p.delta == Some(delta) {
                    3
                } else {
                    2
                }
            }
            _ => 0,
        };
        let prev_ts = self.streams.get(&csid).map_or(0, |p| p.timestamp);
        let field = if fmt == 0 { msg.timestamp } else { msg.timestamp.wrapping_sub(prev_ts) };
        let ext = (field >= EXTENDED).then_some(field);

        reserve_for(out, len, self.chunk_size);
        put_basic_header(out, fmt, csid);
        if fmt < 3 {
            put_timestamp_field(out, field);
        }
        if fmt < 2 {
            out.put_uint(len as u64, 3);
            out.put_u8(msg.msg_type);
        }
        if fmt == 0 {
            out.put_u32_le(msg.stream_id);
        }
        if let Some(v) = ext {
            out.put_u32(v);
        }
        put_payload(out, csid, &msg.payload, self.chunk_size, ext);

        self.streams.insert(
            csid,
            OutStream {
                msg_type: msg.msg_type,
                len: len32,
                stream_id: msg.stream_id,
                timestamp: msg.timestamp,
                delta: (fmt != 0).then_some(field),
            },
        );
    }
}

/// Stateless encoding for fan-out: a fmt 0 first chunk with the absolute timestamp, then fmt 3
/// chunks, so the same bytes serve every receiver with this chunk size and message stream id.
/// Callers never mix this with a `ChunkEncoder` on the same csid. Payloads over `MAX_MESSAGE_LEN`
/// are not written.
pub fn encode_standalone(csid: u32, msg: &RawMessage, chunk_size: u32, out: &mut BytesMut) {
    let len = msg.payload.len();
    if len > MAX_MESSAGE_LEN {
        return;
    }
    let csid = valid_csid(csid);
    let ext = (msg.timestamp >= EXTENDED).then_some(msg.timestamp);
    reserve_for(out, len, chunk_size);
    put_basic_header(out, 0, csid);
    put_timestamp_field(out, msg.timestamp);
    out.put_uint(len as u64, 3);
    out.put_u8(msg.msg_type);
    out.put_u32_le(msg.stream_id);
    if let Some(v) = ext {
        out.put_u32(v);
    }
    put_payload(out, csid, &msg.payload, chunk_size, ext);
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{csid, msg_type, Control};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn payload(len: usize, seed: u8) -> Bytes {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
    }

    /// Decodes everything `bytes` holds, fed in `pieces`, applying Set Chunk Size as it comes.
    fn decode_all(
        dec: &mut ChunkDecoder,
        bytes: &[u8],
        pieces: &[usize],
    ) -> Result<Vec<RawMessage>, ChunkError> {
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = bytes;
        let mut sizes = pieces.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            input.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(m) = dec.decode(&mut input)? {
                if m.msg_type == msg_type::SET_CHUNK_SIZE {
                    if let Ok(Control::SetChunkSize(n)) = Control::decode(m.msg_type, &m.payload) {
                        dec.set_chunk_size(n)?;
                    }
                }
                got.push(m);
            }
        }
        assert!(input.is_empty(), "{} bytes left over", input.len());
        Ok(got)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Msg { csid_idx: usize, msg_type: u8, stream_id: u32, delta: u32, len: usize },
        SetChunkSize(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let msg = (
            0usize..4,
            prop::sample::select(vec![8u8, 9, 18, 20]),
            0u32..3,
            prop_oneof![
                3 => Just(0u32),
                3 => 0u32..100,
                1 => Just(0xFF_FFFF),
                1 => 0xFF_FFF0u32..0x200_0000,
                1 => any::<u32>(),
            ],
            prop_oneof![3 => Just(10usize), 2 => Just(300usize), 3 => 0usize..700],
        )
            .prop_map(|(csid_idx, msg_type, stream_id, delta, len)| Op::Msg {
                csid_idx,
                msg_type,
                stream_id,
                delta,
                len,
            });
        prop_oneof![8 => msg, 1 => (1u32..70_000).prop_map(Op::SetChunkSize)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn round_trip(
            csids in prop::collection::vec(2u32..=65599, 4),
            ops in prop::collection::vec(op(), 1..40),
            pieces in prop::collection::vec(1usize..3000, 1..20),
            first_chunk in 1u32..70_000,
        ) {
            let mut enc = ChunkEncoder::new();
            let mut wire = BytesMut::new();
            let mut expect = Vec::new();
            let mut ts = [0u32; 4];
            let ops = std::iter::once(Op::SetChunkSize(first_chunk)).chain(ops);
            for (i, op) in ops.enumerate() {
                match op {
                    Op::Msg { csid_idx, msg_type, stream_id, delta, len } => {
                        ts[csid_idx] = ts[csid_idx].wrapping_add(delta);
                        let m = RawMessage::new(msg_type, stream_id, ts[csid_idx], payload(len, i as u8));
                        enc.encode(csids[csid_idx], &m, &mut wire);
                        expect.push(m);
                    }
                    Op::SetChunkSize(n) => {
                        let m = Control::SetChunkSize(n).to_message();
                        enc.encode(csid::PROTOCOL, &m, &mut wire);
                        enc.set_chunk_size(n);
                        expect.push(m);
                    }
                }
            }
            let mut dec = ChunkDecoder::new(1 << 20);
            let got = decode_all(&mut dec, &wire, &pieces).unwrap();
            prop_assert_eq!(got, expect);
        }

        #[test]
        fn standalone_round_trip(
            msgs in prop::collection::vec((2u32..=65599, any::<u32>(), 0u32..5, 0usize..900), 1..20),
            chunk in 1u32..70_000,
            pieces in prop::collection::vec(1usize..500, 1..10),
        ) {
            let mut wire = BytesMut::new();
            let mut expect = Vec::new();
            for (i, (csid, ts, sid, len)) in msgs.into_iter().enumerate() {
                let m = RawMessage::new(9, sid, ts, payload(len, i as u8));
                encode_standalone(csid, &m, chunk, &mut wire);
                expect.push(m);
            }
            let mut dec = ChunkDecoder::new(1 << 20);
            dec.set_chunk_size(chunk).unwrap();
            prop_assert_eq!(decode_all(&mut dec, &wire, &pieces).unwrap(), expect);
        }

        #[test]
        fn hostile_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..3000),
            chunk in prop_oneof![Just(128u32), 1u32..=MAX_CHUNK_SIZE],
            pieces in prop::collection::vec(1usize..200, 1..10),
        ) {
            let mut dec = ChunkDecoder::new(4096);
            dec.set_chunk_size(chunk).unwrap();
            let mut input = BytesMut::new();
            let mut rest = &bytes[..];
            let mut sizes = pieces.iter().cycle();
            'feed: while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                input.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                loop {
                    let before = input.len();
                    match dec.decode(&mut input) {
                        Ok(Some(m)) => {
                            prop_assert!(m.payload.len() <= 4096);
                            prop_assert!(input.len() < before);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    fn fmt0(csid: u8, ts: u32, len: usize, t: u8, sid: u32) -> Vec<u8> {
        let mut v = vec![csid];
        v.extend_from_slice(&ts.min(EXTENDED).to_be_bytes()[1..]);
        v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        v.push(t);
        v.extend_from_slice(&sid.to_le_bytes());
        if ts >= EXTENDED {
            v.extend_from_slice(&ts.to_be_bytes());
        }
        v
    }

    fn decode_bytes(dec: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<RawMessage>, ChunkError> {
        decode_all(dec, bytes, &[bytes.len().max(1)])
    }

    #[test]
    fn interleaved_chunk_streams() {
        let a = payload(300, 1);
        let b = payload(200, 2);
        let mut w = fmt0(4, 10, 300, 9, 1);
        w.extend_from_slice(&a[..128]);
        w.extend(fmt0(6, 11, 200, 8, 1));
        w.extend_from_slice(&b[..128]);
        w.push(0xC4);
        w.extend_from_slice(&a[128..256]);
        w.push(0xC6);
        w.extend_from_slice(&b[128..]);
        w.push(0xC4);
        w.extend_from_slice(&a[256..]);
        let got = decode_bytes(&mut ChunkDecoder::new(1000), &w).unwrap();
        assert_eq!(got, vec![RawMessage::new(8, 1, 11, b), RawMessage::new(9, 1, 10, a)]);
    }

    #[test]
    fn fmt3_new_message_timestamps() {
        // After fmt 0, a fmt 3 message repeats the absolute timestamp as its delta (spec, FFmpeg).
        let mut w = fmt0(6, 40, 2, 8, 1);
        w.extend_from_slice(b"ab");
        w.push(0xC6);
        w.extend_from_slice(b"cd");
        // fmt 2 delta 23, then fmt 3 repeats 23.
        w.extend_from_slice(&[0x86, 0, 0, 23]);
        w.extend_from_slice(b"ef");
        w.push(0xC6);
        w.extend_from_slice(b"gh");
        // fmt 1: new length and type, delta 5.
        w.extend_from_slice(&[0x46, 0, 0, 5, 0, 0, 1, 9]);
        w.extend_from_slice(b"i");
        let got = decode_bytes(&mut ChunkDecoder::new(1000), &w).unwrap();
        let ts: Vec<_> = got.iter().map(|m| (m.timestamp, m.msg_type, m.stream_id)).collect();
        assert_eq!(ts, vec![(40, 8, 1), (80, 8, 1), (103, 8, 1), (126, 8, 1), (131, 9, 1)]);
    }

    #[test]
    fn extended_timestamp_on_continuations() {
        let ts = 0x0123_4567;
        let p = payload(200, 3);
        // With the repeat (FFmpeg, librtmp) ...
        let mut w = fmt0(5, ts, 200, 9, 1);
        w.extend_from_slice(&p[..128]);
        w.push(0xC5);
        w.extend_from_slice(&ts.to_be_bytes());
        w.extend_from_slice(&p[128..]);
        // ... and without it (some old encoders).
        w.extend(fmt0(5, ts + 1, 200, 9, 1));
        w.extend_from_slice(&p[..128]);
        w.push(0xC5);
        w.extend_from_slice(&p[128..]);
        // A new fmt 3 message reads its delta from the extended field.
        w.push(0xC5);
        w.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        w.extend_from_slice(&p[..128]);
        w.push(0xC5);
        w.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        w.extend_from_slice(&p[128..]);
        let got = decode_bytes(&mut ChunkDecoder::new(1000), &w).unwrap();
        assert_eq!(
            got,
            vec![
                RawMessage::new(9, 1, ts, p.clone()),
                RawMessage::new(9, 1, ts + 1, p.clone()),
                RawMessage::new(9, 1, ts + 1 + 0x0100_0000, p.clone()),
            ]
        );
    }

    #[test]
    fn one_message_per_call() {
        let mut enc = ChunkEncoder::new();
        let mut w = BytesMut::new();
        enc.encode(3, &RawMessage::new(20, 0, 0, payload(5, 0)), &mut w);
        let first_len = w.len();
        enc.encode(3, &RawMessage::new(20, 0, 0, payload(5, 1)), &mut w);
        let mut dec = ChunkDecoder::new(100);
        let total = w.len();
        assert!(dec.decode(&mut w).unwrap().is_some());
        assert_eq!(w.len(), total - first_len);
        assert!(dec.decode(&mut w).unwrap().is_some());
        assert!(w.is_empty());
        assert_eq!(dec.decode(&mut w).unwrap(), None);
    }

    #[test]
    fn set_chunk_size_mid_stream() {
        let mut enc = ChunkEncoder::new();
        let mut w = BytesMut::new();
        let big = RawMessage::new(9, 1, 0, payload(5000, 9));
        enc.encode(7, &big, &mut w);
        enc.encode(2, &Control::SetChunkSize(1000).to_message(), &mut w);
        enc.set_chunk_size(1000);
        enc.encode(7, &big, &mut w);
        let got = decode_all(&mut ChunkDecoder::new(10_000), &w, &[1]).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], big);
    }

    #[test]
    fn abort_drops_partial() {
        let mut dec = ChunkDecoder::new(1000);
        let mut w = BytesMut::new();
        w.extend(fmt0(4, 0, 300, 9, 1));
        w.extend_from_slice(&payload(128, 0));
        assert_eq!(dec.decode(&mut w).unwrap(), None);
        assert!(w.is_empty());
        assert_eq!(dec.partials, 1);
        dec.abort(4);
        dec.abort(4);
        dec.abort(99);
        assert_eq!(dec.partials, 0);
        w.extend(fmt0(4, 5, 3, 8, 1));
        w.extend_from_slice(b"xyz");
        assert_eq!(dec.decode(&mut w).unwrap(), Some(RawMessage::new(8, 1, 5, &b"xyz"[..])));
    }

    #[test]
    fn limits() {
        // Too large: refused on the header alone, before any payload arrives.
        let mut dec = ChunkDecoder::new(1000);
        let mut w = BytesMut::from(&fmt0(4, 0, 1001, 9, 1)[..]);
        assert_eq!(dec.decode(&mut w), Err(ChunkError::MessageTooLarge { len: 1001, max: 1000 }));
        assert_eq!(
            ChunkError::MessageTooLarge { len: 2_000_000, max: 1_048_576 }.to_string(),
            "message of 2000000 bytes over max_message 1048576"
        );

        for first in [0x40u8, 0x80, 0xC0] {
            let mut dec = ChunkDecoder::new(1000);
            let mut w = BytesMut::from(&[first | 9, 0, 0, 0, 0, 0, 0, 0][..]);
            assert_eq!(dec.decode(&mut w), Err(ChunkError::NoPreviousHeader { csid: 9 }));
        }

        let mut dec = ChunkDecoder::new(1000);
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
        assert_eq!(dec.set_chunk_size(0x8000_0000), Err(ChunkError::BadChunkSize(0x8000_0000)));
        assert!(dec.set_chunk_size(MAX_CHUNK_SIZE).is_ok());

        // 64 partial messages are fine, the 65th is not.
        let mut dec = ChunkDecoder::new(1000);
        let mut enc_bytes = BytesMut::new();
        for i in 0..=MAX_PARTIAL_STREAMS as u32 {
            let csid = 100 + i;
            put_basic_header(&mut enc_bytes, 0, csid);
            enc_bytes.extend_from_slice(&fmt0(0, 0, 200, 9, 1)[1..]);
            enc_bytes.extend_from_slice(&payload(128, 0));
        }
        let mut res = Ok(None);
        for _ in 0..=MAX_PARTIAL_STREAMS {
            res = dec.decode(&mut enc_bytes);
            if res.is_err() {
                break;
            }
        }
        assert_eq!(res, Err(ChunkError::TooManyChunkStreams));
        assert_eq!(dec.partials, MAX_PARTIAL_STREAMS);

        // 1024 distinct chunk stream ids are fine, the 1025th is not.
        let mut dec = ChunkDecoder::new(1000);
        let mut enc = ChunkEncoder::new();
        let mut w = BytesMut::new();
        for csid in 2..2 + MAX_CHUNK_STREAM_IDS as u32 {
            enc.encode(csid, &RawMessage::new(8, 1, 0, payload(3, 0)), &mut w);
        }
        for _ in 0..MAX_CHUNK_STREAM_IDS {
            assert!(dec.decode(&mut w).unwrap().is_some());
        }
        enc.encode(5000, &RawMessage::new(8, 1, 0, payload(3, 0)), &mut w);
        assert_eq!(dec.decode(&mut w), Err(ChunkError::TooManyChunkStreamIds));
    }

    #[test]
    fn partial_buffers_grow_with_data() {
        let mut dec = ChunkDecoder::new(1 << 20);
        dec.set_chunk_size(100).unwrap();
        let mut w = BytesMut::from(&fmt0(4, 0, 1 << 20, 9, 1)[..]);
        w.extend_from_slice(&payload(100, 0));
        assert_eq!(dec.decode(&mut w).unwrap(), None);
        let cap = dec.streams[&4].partial.as_ref().unwrap().capacity();
        assert!(cap < 4096, "capacity {cap}");
    }

    #[test]
    fn header_compression() {
        let mut enc = ChunkEncoder::new();
        let mut lens = Vec::new();
        let mut heads = Vec::new();
        for (i, ts) in [0u32, 40, 80, 120, 150].into_iter().enumerate() {
            let mut w = BytesMut::new();
            let len = if i == 4 { 5 } else { 4 };
            enc.encode(6, &RawMessage::new(8, 1, ts, payload(len, 0)), &mut w);
            lens.push(w.len() - len);
            heads.push(w[0] >> 6);
        }
        // fmt 0, then fmt 2 (never fmt 3 straight after fmt 0), fmt 3, fmt 3, fmt 1.
        assert_eq!(heads, vec![0, 2, 3, 3, 1]);
        assert_eq!(lens, vec![12, 4, 1, 1, 8]);
        // A new message stream id or a timestamp going back needs fmt 0.
        let mut w = BytesMut::new();
        enc.encode(6, &RawMessage::new(8, 2, 200, payload(5, 0)), &mut w);
        enc.encode(6, &RawMessage::new(8, 2, 100, payload(5, 0)), &mut BytesMut::new());
        assert_eq!(w[0] >> 6, 0);
    }

    #[test]
    fn basic_header_forms() {
        for (csid, expect) in [
            (2u32, vec![0x02]),
            (63, vec![0x3F]),
            (64, vec![0x00, 0x00]),
            (319, vec![0x00, 0xFF]),
            (320, vec![0x01, 0x00, 0x01]),
            (65599, vec![0x01, 0xFF, 0xFF]),
        ] {
            let mut w = BytesMut::new();
            encode_standalone(csid, &RawMessage::new(8, 0, 0, Bytes::new()), 128, &mut w);
            assert_eq!(&w[..expect.len()], &expect[..], "csid {csid}");
            let got = decode_bytes(&mut ChunkDecoder::new(10), &w).unwrap();
            assert_eq!(got, vec![RawMessage::new(8, 0, 0, Bytes::new())]);
        }
    }

    #[test]
    fn standalone_extended_continuations() {
        let m = RawMessage::new(9, 1, 0xFF_FFFF, payload(300, 4));
        let mut w = BytesMut::new();
        encode_standalone(7, &m, 128, &mut w);
        // 12 + 4 header, then two fmt 3 chunks each carrying the 4-byte repeat.
        assert_eq!(w.len(), 16 + 300 + 2 * 5);
        assert_eq!(&w[16 + 128..16 + 128 + 5], &[0xC7, 0x00, 0xFF, 0xFF, 0xFF]);
        assert_eq!(decode_bytes(&mut ChunkDecoder::new(1000), &w).unwrap(), vec![m]);
    }
}
