//! WebSocket (RFC 6455), sans-IO: the handshake checks and accept key, server frame headers, and a
//! bounded reader of client frames; also the small client side our CLI and tests need.

use std::collections::VecDeque;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close status codes (RFC 6455 §7.4.1) the server sends.
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Control frames carry at most this many payload bytes.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(client_key: &str) -> String {
    let mut h = Sha1::new();
    h.update(client_key.trim().as_bytes());
    h.update(GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Whether a request's `Connection`, `Upgrade` and `Sec-WebSocket-Version` headers ask for a
/// WebSocket we speak. Browsers send `Connection: keep-alive, Upgrade`, hence the token list.
pub fn is_upgrade(connection: Option<&str>, upgrade: Option<&str>, version: Option<&str>) -> bool {
    let conn_ok = connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let upgrade_ok = upgrade.is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
    conn_ok && upgrade_ok && version.is_some_and(|v| v.trim() == "13")
}

/// An unmasked (server to client) frame header for a payload of `len` bytes: the bytes and how many
/// of them are used (2, 4 or 10). `len` must stay below 2^63, as the protocol has no room for more.
pub fn frame_header(opcode: u8, fin: bool, len: u64) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = (u8::from(fin) << 7) | (opcode & 0x0f);
    let used = if len < 126 {
        h[1] = len as u8;
        2
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&len.to_be_bytes());
        10
    };
    (h, used)
}

/// A whole unmasked close frame with a status code.
pub fn close_frame(code: u16) -> Vec<u8> {
    let (h, n) = frame_header(OP_CLOSE, true, 2);
    let mut out = h[..n].to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out
}

/// A whole unmasked pong echoing a ping's payload (cut to the 125 bytes a control frame holds).
pub fn pong_frame(payload: &[u8]) -> Vec<u8> {
    let p = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let (h, n) = frame_header(OP_PONG, true, p.len() as u64);
    let mut out = Vec::with_capacity(n + p.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(p);
    out
}

/// A whole masked (client to server) frame: what a client must send, and what tests feed the reader.
pub fn masked_frame(opcode: u8, fin: bool, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let (mut h, n) = frame_header(opcode, fin, payload.len() as u64);
    h[1] |= 0x80;
    let mut out = Vec::with_capacity(n + 4 + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The header of an unmasked (server) frame at the front of `buf`: opcode, fin, header length and
/// payload length. `None` until the header is complete, and for a masked frame, which a server must
/// never send (a client tells the two apart by the mask bit, `buf[1] & 0x80`).
pub fn parse_server_frame(buf: &[u8]) -> Option<(u8, bool, usize, u64)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    if b1 & 0x80 != 0 {
        return None;
    }
    let (len, header_len) = read_len(buf, b1)?;
    Some((b0 & 0x0f, b0 & 0x80 != 0, header_len, len))
}

/// The payload length and where the length field ends, `None` while it is incomplete.
fn read_len(buf: &[u8], b1: u8) -> Option<(u64, usize)> {
    match b1 & 0x7f {
        126 => {
            let b = buf.get(2..4)?;
            Some((u64::from(u16::from_be_bytes([b[0], b[1]])), 4))
        }
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some((u64::from_be_bytes(b), 10))
        }
        n => Some((u64::from(n), 2)),
    }
}

/// One client frame, unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub fin: bool,
    pub payload: Vec<u8>,
}

/// Why a client's frame stream is refused; each is a protocol error that closes that client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsError {
    /// RSV1-3 set: we negotiate no extension that would give them a meaning.
    ReservedBits(u8),
    /// An opcode RFC 6455 reserves.
    BadOpcode(u8),
    /// A client frame without a mask.
    Unmasked,
    /// A control frame split over fragments.
    FragmentedControl(u8),
    /// A control frame over 125 bytes.
    ControlTooLong(u64),
    /// A frame payload over the reader's limit.
    TooLarge { len: u64, max: usize },
    /// A continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open.
    ExpectedContinuation,
}

impl WsError {
    /// The close code to answer this error with.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooLarge { .. } => CLOSE_TOO_BIG,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::ReservedBits(b) => write!(f, "websocket frame with reserved bits {b:#x} set"),
            WsError::BadOpcode(op) => write!(f, "websocket frame with reserved opcode {op:#x}"),
            WsError::Unmasked => write!(f, "unmasked websocket frame from a client"),
            WsError::FragmentedControl(op) => write!(f, "fragmented websocket control frame (opcode {op:#x})"),
            WsError::ControlTooLong(n) => write!(f, "websocket control frame of {n} bytes (max 125)"),
            WsError::TooLarge { len, max } => write!(f, "websocket frame of {len} bytes (max {max})"),
            WsError::UnexpectedContinuation => write!(f, "websocket continuation frame outside a message"),
            WsError::ExpectedContinuation => write!(f, "websocket data frame inside a fragmented message"),
        }
    }
}

impl std::error::Error for WsError {}

/// Parses the client to server frame stream incrementally: push bytes with `feed`, pull frames with
/// `next`. A frame is checked as soon as its header is in, so a bad or oversized one is refused
/// before its payload is buffered; after an error every `feed` returns it again.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    frames: VecDeque<Frame>,
    max_payload: usize,
    /// Inside a fragmented text or binary message.
    in_message: bool,
    failed: Option<WsError>,
}

impl FrameReader {
    /// A reader refusing frames whose payload exceeds `max_payload` bytes.
    pub fn new(max_payload: usize) -> FrameReader {
        FrameReader { buf: Vec::new(), frames: VecDeque::new(), max_payload, in_message: false, failed: None }
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<(), WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let r = loop {
            match self.parse_one(&self.buf[at..]) {
                Ok(Some((frame, used))) => {
                    at += used;
                    if frame.opcode & 0x08 == 0 {
                        self.in_message = !frame.fin;
                    }
                    self.frames.push_back(frame);
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    self.failed = Some(e.clone());
                    break Err(e);
                }
            }
        };
        self.buf.drain(..at);
        r
    }

    /// The next complete frame; frames parsed before an error are still returned.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// Bytes buffered of a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The frame at the front of `b` and its size, `None` when more bytes are needed.
    fn parse_one(&self, b: &[u8]) -> Result<Option<(Frame, usize)>, WsError> {
        let Some(&b0) = b.first() else { return Ok(None) };
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits((b0 & 0x70) >> 4));
        }
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        if !matches!(opcode, OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
            return Err(WsError::BadOpcode(opcode));
        }
        let control = opcode & 0x08 != 0;
        if control && !fin {
            return Err(WsError::FragmentedControl(opcode));
        }
        if opcode == OP_CONT && !self.in_message {
            return Err(WsError::UnexpectedContinuation);
        }
        if matches!(opcode, OP_TEXT | OP_BINARY) && self.in_message {
            return Err(WsError::ExpectedContinuation);
        }
        let Some(&b1) = b.get(1) else { return Ok(None) };
        if b1 & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        if control && b1 & 0x7f > MAX_CONTROL_PAYLOAD as u8 {
            return Err(WsError::ControlTooLong(u64::from(b1 & 0x7f)));
        }
        let Some((len, len_end)) = read_len(b, b1) else { return Ok(None) };
        let max = self.max_payload;
        let len_usize = usize::try_from(len).ok().filter(|&l| l <= max).ok_or(WsError::TooLarge { len, max })?;
        let Some(mask) = b.get(len_end..len_end + 4) else { return Ok(None) };
        let start = len_end + 4;
        let Some(masked) = b.get(start..start + len_usize) else { return Ok(None) };
        let payload = masked.iter().enumerate().map(|(i, x)| x ^ mask[i % 4]).collect();
        Ok(Some((Frame { opcode, fin, payload }, start + len_usize)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn upgrade_headers() {
        assert!(is_upgrade(Some("Upgrade"), Some("websocket"), Some("13")));
        assert!(is_upgrade(Some("keep-alive, UPGRADE"), Some("WebSocket"), Some("13")));
        assert!(!is_upgrade(Some("keep-alive"), Some("websocket"), Some("13")));
        assert!(!is_upgrade(Some("upgraded"), Some("websocket"), Some("13")));
        assert!(!is_upgrade(Some("upgrade"), Some("h2c"), Some("13")));
        assert!(!is_upgrade(Some("upgrade"), Some("websocket"), Some("8")));
        assert!(!is_upgrade(None, Some("websocket"), Some("13")));
        assert!(!is_upgrade(Some("upgrade"), Some("websocket"), None));
    }

    #[test]
    fn header_lengths() {
        let (h, n) = frame_header(OP_BINARY, true, 125);
        assert_eq!(&h[..n], &[0x82, 125]);
        let (h, n) = frame_header(OP_TEXT, false, 126);
        assert_eq!(&h[..n], &[0x01, 126, 0, 126]);
        let (h, n) = frame_header(OP_BINARY, true, 65535);
        assert_eq!(&h[..n], &[0x82, 126, 0xff, 0xff]);
        let (h, n) = frame_header(OP_BINARY, true, 65536);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        for len in [0, 125, 126, 65535, 65536, 1 << 40] {
            let (h, n) = frame_header(OP_BINARY, true, len);
            assert_eq!(parse_server_frame(&h[..n]), Some((OP_BINARY, true, n, len)));
            assert_eq!(parse_server_frame(&h[..n - 1]), None);
        }
        assert_eq!(close_frame(1000), vec![0x88, 2, 0x03, 0xe8]);
        assert_eq!(pong_frame(b"hi"), vec![0x8a, 2, b'h', b'i']);
        assert_eq!(pong_frame(&[0; 300]).len(), 2 + 125);
        assert_eq!(parse_server_frame(&masked_frame(OP_PONG, true, [1, 2, 3, 4], b"x")), None);
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 §5.7: a masked "Hello".
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(masked_frame(OP_TEXT, true, [0x37, 0xfa, 0x21, 0x3d], b"Hello"), wire);
        let mut r = FrameReader::new(1024);
        r.feed(&wire).unwrap();
        assert_eq!(r.next(), Some(Frame { opcode: OP_TEXT, fin: true, payload: b"Hello".to_vec() }));
        assert_eq!((r.next(), r.pending()), (None, 0));
    }

    fn first_error(bytes: &[u8], max: usize) -> WsError {
        FrameReader::new(max).feed(bytes).unwrap_err()
    }

    #[test]
    fn refused_frames() {
        let m = [9, 8, 7, 6];
        assert_eq!(first_error(&[0x82, 0x00], 64), WsError::Unmasked);
        assert_eq!(first_error(&[0xc2, 0x80], 64), WsError::ReservedBits(4));
        assert_eq!(first_error(&[0x83, 0x80], 64), WsError::BadOpcode(3));
        assert_eq!(first_error(&masked_frame(OP_PING, false, m, b""), 64), WsError::FragmentedControl(OP_PING));
        assert_eq!(first_error(&masked_frame(OP_PING, true, m, &[0; 126]), 1024), WsError::ControlTooLong(126));
        assert_eq!(first_error(&masked_frame(OP_BINARY, true, m, &[0; 65]), 64), WsError::TooLarge { len: 65, max: 64 });
        // Refused from the header alone, before the payload arrives.
        assert_eq!(first_error(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0], 64).close_code(), CLOSE_TOO_BIG);
        assert_eq!(first_error(&masked_frame(OP_CONT, true, m, b"x"), 64), WsError::UnexpectedContinuation);
        let mut two = masked_frame(OP_BINARY, false, m, b"a");
        two.extend(masked_frame(OP_TEXT, true, m, b"b"));
        assert_eq!(first_error(&two, 64), WsError::ExpectedContinuation);

        // The good frame before the bad one is kept, and the reader stays failed.
        let mut r = FrameReader::new(64);
        let mut b = masked_frame(OP_BINARY, true, m, b"ok");
        b.extend([0x82, 0x00]);
        assert_eq!(r.feed(&b), Err(WsError::Unmasked));
        assert_eq!(r.next().unwrap().payload, b"ok");
        assert_eq!(r.feed(&masked_frame(OP_BINARY, true, m, b"x")), Err(WsError::Unmasked));
        assert!(r.next().is_none());
    }

    #[test]
    fn fragments_and_interleaved_control() {
        let m = [1, 2, 3, 4];
        let mut b = masked_frame(OP_BINARY, false, m, b"ab");
        b.extend(masked_frame(OP_PING, true, m, b"p"));
        b.extend(masked_frame(OP_CONT, true, m, b"cd"));
        b.extend(masked_frame(OP_TEXT, true, m, b"t"));
        let mut r = FrameReader::new(64);
        r.feed(&b).unwrap();
        let got: Vec<(u8, bool)> = std::iter::from_fn(|| r.next()).map(|f| (f.opcode, f.fin)).collect();
        assert_eq!(got, vec![(OP_BINARY, false), (OP_PING, true), (OP_CONT, true), (OP_TEXT, true)]);
    }

    /// A valid client stream: messages split in fragments, with control frames between them.
    fn frames_strategy() -> impl Strategy<Value = Vec<Frame>> {
        let payload = || prop::collection::vec(any::<u8>(), 0..300);
        let message = (prop::sample::select(vec![OP_TEXT, OP_BINARY]), prop::collection::vec(payload(), 1..4))
            .prop_map(|(op, parts)| {
                let last = parts.len() - 1;
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, payload)| Frame { opcode: if i == 0 { op } else { OP_CONT }, fin: i == last, payload })
                    .collect::<Vec<_>>()
            });
        let control = (prop::sample::select(vec![OP_PING, OP_PONG, OP_CLOSE]), prop::collection::vec(any::<u8>(), 0..=125))
            .prop_map(|(opcode, payload)| vec![Frame { opcode, fin: true, payload }]);
        prop::collection::vec(prop_oneof![message, control], 0..8).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(
            frames in frames_strategy(),
            mask in any::<[u8; 4]>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let wire: Vec<u8> = frames.iter().flat_map(|f| masked_frame(f.opcode, f.fin, mask, &f.payload)).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut r = FrameReader::new(300);
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                r.feed(&wire[w[0]..w[1]]).unwrap();
                got.extend(std::iter::from_fn(|| r.next()));
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(r.pending(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
            max in 0usize..200,
        ) {
            let mut r = FrameReader::new(max);
            for c in &chunks {
                let _ = r.feed(c);
                while let Some(f) = r.next() {
                    prop_assert!(f.payload.len() <= max);
                }
                let _ = parse_server_frame(c);
            }
        }
    }
}
