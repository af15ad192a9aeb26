//! A message's encodings, made on first use, one per wire form (RTMP chunks per chunk size and
//! message stream id; FLV tags per timestamp base): usually a single one, shared by every player
//! (live fan-out and the GOP cache).

use bytes::{Bytes, BytesMut};
use rtmp_proto::RawMessage;

use crate::core::session::encode;

/// How a player receives messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// RTMP chunks.
    Chunks { size: u32, stream_id: u32 },
    /// FLV tags with timestamps counted from `base` (HTTP-FLV), framed as `framing` says.
    Flv { base: u32, framing: Framing },
}

/// What wraps each FLV piece on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    /// A WebSocket binary frame.
    Ws,
    /// An HTTP/1.1 chunk, exactly as nginx's chunked filter would make it.
    Chunked,
}

#[derive(Default)]
pub struct Encodings(Vec<(Form, Bytes)>);

impl Encodings {
    /// `msg` on chunk stream `cs` in `form`; true when it was encoded now (not shared with an
    /// earlier player).
    pub fn get(&mut self, cs: u32, msg: &RawMessage, form: Form) -> (Bytes, bool) {
        if let Some((_, b)) = self.0.iter().find(|(f, _)| *f == form) {
            return (b.clone(), false);
        }
        let b = encode_for(cs, msg, form);
        self.0.push((form, b.clone()));
        (b, true)
    }
}

pub fn encode_for(cs: u32, msg: &RawMessage, form: Form) -> Bytes {
    match form {
        Form::Chunks { size, stream_id } => encode(cs, &RawMessage { stream_id, ..msg.clone() }, size),
        Form::Flv { base, framing } => flv_tag(msg, base, framing),
    }
}

/// One FLV tag (with its previous-tag size), its timestamp made relative to `base`: an HTTP-FLV
/// player's stream starts near 0 whatever the publisher's clock says.
fn flv_tag(msg: &RawMessage, base: u32, framing: Framing) -> Bytes {
    let len = rtmp_proto::flv::TAG_HEADER_LEN + msg.payload.len() + 4;
    framed(len, framing, |out| {
        rtmp_proto::flv::write_tag(out, msg.msg_type, msg.timestamp.saturating_sub(base), &msg.payload)
    })
}

/// The FLV file header a player gets first, with the tracks the stream has.
pub fn flv_header(audio: bool, video: bool, framing: Framing) -> Bytes {
    framed(13, framing, |out| rtmp_proto::flv::write_header(out, audio, video))
}

/// `len` bytes written by `body`, in their frame.
fn framed(len: usize, framing: Framing, body: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::with_capacity(len + 20);
    match framing {
        Framing::None => {}
        Framing::Ws => {
            let (h, n) = rtmp_proto::websocket::frame_header(rtmp_proto::websocket::OP_BINARY, true, len as u64);
            out.extend_from_slice(&h[..n]);
        }
        Framing::Chunked => out.extend_from_slice(format!("{len:x}\r\n").as_bytes()),
    }
    body(&mut out);
    if framing == Framing::Chunked {
        out.extend_from_slice(b"\r\n");
    }
    out.freeze()
}
