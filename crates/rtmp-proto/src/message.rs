//! RTMP messages as they leave the chunk layer, and the protocol control / user control messages
//! (types 1–6) that the session layer answers itself.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// Message type ids (RTMP spec 5.4 and 7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const AMF3_DATA: u8 = 15;
    pub const AMF3_SHARED_OBJECT: u8 = 16;
    pub const AMF3_COMMAND: u8 = 17;
    pub const AMF0_DATA: u8 = 18;
    pub const AMF0_SHARED_OBJECT: u8 = 19;
    pub const AMF0_COMMAND: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids we send on, as FMS and nginx-rtmp-module do.
pub mod csid {
    pub const PROTOCOL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const DATA: u32 = 5;
    pub const AUDIO: u32 = 6;
    pub const VIDEO: u32 = 7;
}

/// One whole message: header fields plus payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    pub msg_type: u8,
    /// Message stream id (0 for control and NetConnection commands).
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds (32-bit, wraps).
    pub timestamp: u32,
    pub payload: Bytes,
}

impl RawMessage {
    pub fn new(msg_type: u8, stream_id: u32, timestamp: u32, payload: impl Into<Bytes>) -> Self {
        RawMessage { msg_type, stream_id, timestamp, payload: payload.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// `Control::decode` was given a type that is not 1–6.
    NotControl(u8),
    /// The payload is shorter than the message type requires.
    Truncated { msg_type: u8, need: usize, got: usize },
    /// `split_aggregate` was given a message that is not type 22.
    NotAggregate(u8),
    /// The aggregate's FLV tags do not parse; `offset` is where the bad tag starts.
    BadAggregate { offset: usize, reason: &'static str },
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::NotControl(t) => write!(f, "message type {t} is not a control message"),
            MessageError::Truncated { msg_type, need, got } => {
                write!(f, "message type {msg_type}: {got} bytes, needs {need}")
            }
            MessageError::NotAggregate(t) => write!(f, "message type {t} is not an aggregate"),
            MessageError::BadAggregate { offset, reason } => {
                write!(f, "aggregate message: {reason} at byte {offset}")
            }
        }
    }
}

impl std::error::Error for MessageError {}

/// Protocol control messages (types 1–6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    SetChunkSize(u32),
    /// Drop the partial message on this chunk stream id.
    Abort(u32),
    /// Sequence number: bytes received so far.
    Ack(u32),
    WindowAckSize(u32),
    /// `limit`: 0 hard, 1 soft, 2 dynamic.
    SetPeerBandwidth { size: u32, limit: u8 },
    UserControl(UserControl),
}

/// User control events (message type 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength { stream_id: u32, ms: u32 },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// Events we do not interpret (e.g. 26/27, SWF verification), kept for logging.
    Other { event: u16, data: Bytes },
}

mod event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

fn be32_at(msg_type: u8, payload: &[u8], at: usize) -> Result<u32, MessageError> {
    payload
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(MessageError::Truncated { msg_type, need: at + 4, got: payload.len() })
}

impl Control {
    /// Decodes a type 1–6 payload. Bytes past the fields are ignored, as other servers do.
    pub fn decode(msg_type: u8, payload: &[u8]) -> Result<Control, MessageError> {
        let word = || be32_at(msg_type, payload, 0);
        Ok(match msg_type {
            msg_type::SET_CHUNK_SIZE => Control::SetChunkSize(word()?),
            msg_type::ABORT => Control::Abort(word()?),
            msg_type::ACK => Control::Ack(word()?),
            msg_type::WINDOW_ACK_SIZE => Control::WindowAckSize(word()?),
            // Some encoders leave out the limit type; dynamic is what everyone sends anyway.
            msg_type::SET_PEER_BANDWIDTH => Control::SetPeerBandwidth {
                size: word()?,
                limit: payload.get(4).copied().unwrap_or(2),
            },
            msg_type::USER_CONTROL => Control::UserControl(UserControl::decode(payload)?),
            other => return Err(MessageError::NotControl(other)),
        })
    }

    pub fn msg_type(&self) -> u8 {
        match self {
            Control::SetChunkSize(_) => msg_type::SET_CHUNK_SIZE,
            Control::Abort(_) => msg_type::ABORT,
            Control::Ack(_) => msg_type::ACK,
            Control::WindowAckSize(_) => msg_type::WINDOW_ACK_SIZE,
            Control::SetPeerBandwidth { .. } => msg_type::SET_PEER_BANDWIDTH,
            Control::UserControl(_) => msg_type::USER_CONTROL,
        }
    }

    /// The message to send on `csid::PROTOCOL` (message stream 0, timestamp 0).
    pub fn to_message(&self) -> RawMessage {
        let mut p = BytesMut::with_capacity(10);
        match self {
            Control::SetChunkSize(v)
            | Control::Abort(v)
            | Control::Ack(v)
            | Control::WindowAckSize(v) => p.put_u32(*v),
            Control::SetPeerBandwidth { size, limit } => {
                p.put_u32(*size);
                p.put_u8(*limit);
            }
            Control::UserControl(uc) => uc.encode(&mut p),
        }
        RawMessage::new(self.msg_type(), 0, 0, p.freeze())
    }
}

impl UserControl {
    pub fn decode(payload: &[u8]) -> Result<UserControl, MessageError> {
        let t = msg_type::USER_CONTROL;
        let Some((ev, data)) = payload.split_first_chunk::<2>() else {
            return Err(MessageError::Truncated { msg_type: t, need: 2, got: payload.len() });
        };
        let word = |i: usize| be32_at(t, payload, 2 + 4 * i);
        Ok(match u16::from_be_bytes(*ev) {
            event::STREAM_BEGIN => UserControl::StreamBegin(word(0)?),
            event::STREAM_EOF => UserControl::StreamEof(word(0)?),
            event::STREAM_DRY => UserControl::StreamDry(word(0)?),
            event::SET_BUFFER_LENGTH => {
                UserControl::SetBufferLength { stream_id: word(0)?, ms: word(1)? }
            }
            event::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(word(0)?),
            event::PING_REQUEST => UserControl::PingRequest(word(0)?),
            event::PING_RESPONSE => UserControl::PingResponse(word(0)?),
            other => UserControl::Other { event: other, data: Bytes::copy_from_slice(data) },
        })
    }

    fn encode(&self, p: &mut BytesMut) {
        let (ev, words): (u16, &[u32]) = match self {
            UserControl::StreamBegin(v) => (event::STREAM_BEGIN, std::slice::from_ref(v)),
            UserControl::StreamEof(v) => (event::STREAM_EOF, std::slice::from_ref(v)),
            UserControl::StreamDry(v) => (event::STREAM_DRY, std::slice::from_ref(v)),
            UserControl::SetBufferLength { stream_id, ms } => {
                p.put_u16(event::SET_BUFFER_LENGTH);
                p.put_u32(*stream_id);
                p.put_u32(*ms);
                return;
            }
            UserControl::StreamIsRecorded(v) => (event::STREAM_IS_RECORDED, std::slice::from_ref(v)),
            UserControl::PingRequest(v) => (event::PING_REQUEST, std::slice::from_ref(v)),
            UserControl::PingResponse(v) => (event::PING_RESPONSE, std::slice::from_ref(v)),
            UserControl::Other { event, data } => {
                p.put_u16(*event);
                p.put_slice(data);
                return;
            }
        };
        p.put_u16(ev);
        for w in words {
            p.put_u32(*w);
        }
    }
}

const FLV_TAG_HEADER: usize = 11;
const FLV_BACK_POINTER: usize = 4;

/// Splits an aggregate (type 22) into its messages. The payload is a run of FLV tags (11-byte
/// header, data, 4-byte back pointer); sub-message timestamps are rebased so the first tag gets the
/// aggregate's own timestamp, and all take the aggregate's message stream id.
pub fn split_aggregate(msg: &RawMessage) -> Result<Vec<RawMessage>, MessageError> {
    if msg.msg_type != msg_type::AGGREGATE {
        return Err(MessageError::NotAggregate(msg.msg_type));
    }
    let payload = &msg.payload;
    let mut out = Vec::new();
    let mut first_ts: Option<u32> = None;
    let mut offset = 0usize;
    while offset < payload.len() {
        let bad = |reason| MessageError::BadAggregate { offset, reason };
        let header: [u8; FLV_TAG_HEADER] = payload
            .get(offset..offset + FLV_TAG_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or(bad("truncated tag header"))?;
        let tag_type = header[0];
        if !matches!(tag_type, msg_type::AUDIO | msg_type::VIDEO | msg_type::AMF0_DATA) {
            return Err(bad("tag type is not audio, video or data"));
        }
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let ts = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let start = offset + FLV_TAG_HEADER;
        let end = start + size;
        if payload.len() < end + FLV_BACK_POINTER {
            return Err(bad("truncated tag"));
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(RawMessage {
            msg_type: tag_type,
            stream_id: msg.stream_id,
            timestamp: msg.timestamp.wrapping_add(ts.wrapping_sub(base)),
            payload: payload.slice(start..end),
        });
        offset = end + FLV_BACK_POINTER;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trips() {
        let all = [
            Control::SetChunkSize(4096),
            Control::Abort(7),
            Control::Ack(123_456),
            Control::WindowAckSize(5_000_000),
            Control::SetPeerBandwidth { size: 5_000_000, limit: 2 },
            Control::UserControl(UserControl::StreamBegin(1)),
            Control::UserControl(UserControl::StreamEof(1)),
            Control::UserControl(UserControl::StreamDry(1)),
            Control::UserControl(UserControl::SetBufferLength { stream_id: 1, ms: 3000 }),
            Control::UserControl(UserControl::StreamIsRecorded(1)),
            Control::UserControl(UserControl::PingRequest(99)),
            Control::UserControl(UserControl::PingResponse(99)),
            Control::UserControl(UserControl::Other { event: 26, data: Bytes::from_static(&[0]) }),
        ];
        for c in all {
            let m = c.to_message();
            assert_eq!((m.stream_id, m.timestamp), (0, 0));
            assert_eq!(Control::decode(m.msg_type, &m.payload).unwrap(), c);
        }
    }

    #[test]
    fn control_wire_format() {
        let m = Control::UserControl(UserControl::SetBufferLength { stream_id: 1, ms: 3000 })
            .to_message();
        assert_eq!(m.msg_type, 4);
        assert_eq!(&m.payload[..], &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8]);
        let m = Control::SetPeerBandwidth { size: 2_500_000, limit: 2 }.to_message();
        assert_eq!(&m.payload[..], &[0x00, 0x26, 0x25, 0xA0, 2]);
        assert_eq!(
            Control::decode(6, &[0, 0, 1, 0]).unwrap(),
            Control::SetPeerBandwidth { size: 256, limit: 2 }
        );
    }

    #[test]
    fn control_errors() {
        assert_eq!(
            Control::decode(1, &[0, 0, 1]),
            Err(MessageError::Truncated { msg_type: 1, need: 4, got: 3 })
        );
        assert!(Control::decode(4, &[0]).is_err());
        assert!(Control::decode(4, &[0, 3, 0, 0, 0, 1]).is_err());
        assert_eq!(Control::decode(8, &[]), Err(MessageError::NotControl(8)));
        for len in 0..12 {
            for t in 1..=6 {
                let _ = Control::decode(t, &vec![0xFF; len]);
            }
        }
    }

    fn tag(t: u8, ts: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(data);
        v.extend_from_slice(&((data.len() + 11) as u32).to_be_bytes());
        v
    }

    #[test]
    fn aggregate_split_rebases() {
        let mut p = tag(9, 0x0100_0000 + 500, b"video");
        p.extend(tag(8, 0x0100_0000 + 520, b"au"));
        p.extend(tag(18, 0x0100_0000 + 540, b""));
        let agg = RawMessage::new(22, 1, 1000, p);
        let subs = split_aggregate(&agg).unwrap();
        assert_eq!(
            subs,
            vec![
                RawMessage::new(9, 1, 1000, &b"video"[..]),
                RawMessage::new(8, 1, 1020, &b"au"[..]),
                RawMessage::new(18, 1, 1040, &b""[..]),
            ]
        );
        assert_eq!(split_aggregate(&RawMessage::new(22, 1, 0, Bytes::new())).unwrap(), vec![]);
    }

    #[test]
    fn aggregate_garbage_is_an_error() {
        let good = tag(9, 0, b"abcdef");
        for cut in 1..good.len() {
            let m = RawMessage::new(22, 1, 0, good[..cut].to_vec());
            assert!(split_aggregate(&m).is_err(), "cut {cut}");
        }
        let mut bad = good.clone();
        bad[0] = 7;
        assert!(split_aggregate(&RawMessage::new(22, 1, 0, bad)).is_err());
        let mut huge = good.clone();
        huge[1] = 0xFF;
        assert!(split_aggregate(&RawMessage::new(22, 1, 0, huge)).is_err());
        assert_eq!(
            split_aggregate(&RawMessage::new(9, 1, 0, good)),
            Err(MessageError::NotAggregate(9))
        );
    }
}
