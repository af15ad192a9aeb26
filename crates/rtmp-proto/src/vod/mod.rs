//! VOD: recorded FLV and MP4 files read for playback over RTMP (`play /dir;`), sans-IO.
//!
//! The caller owns the file and implements [`Source`] (pread on a file in nginx, a byte buffer in
//! the tests). A reader ([`VodFile`], or [`flv::FlvFile`] / [`mp4::Mp4File`] directly) opens the
//! file, states its metadata and codec sequence headers, seeks to a keyframe and hands out the
//! RTMP messages ([`VodTag`]: FLV tag bodies) in decode-time order.
//!
//! A source may answer [`SourceError::Pending`] (the bytes are not there yet: the file is still
//! being downloaded). Every reader method that returns [`VodError::Pending`] has changed nothing
//! that matters and is called again later with the same arguments.
//!
//! Nothing here panics on any input: every size and offset read from a file is checked against
//! the file's length and a cap before it is used or allocated.

pub mod flv;
pub mod mp4;

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::amf0::{self, Amf0Value};

/// Random access to the bytes of a file.
pub trait Source {
    /// The length of the whole file (also while it is still being downloaded).
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes at `offset`: exactly `len`, or fewer only where the file ends before
    /// `offset + len`. `Pending` when they are not available yet.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// Not there yet; retry the reader call later.
    Pending,
    Io(String),
}

fn read_mem(data: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = start.saturating_add(len).min(data.len());
    data.get(start..end).unwrap_or_default()
}

impl Source for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(Bytes::len(self));
        let end = start.saturating_add(len).min(Bytes::len(self));
        Ok(self.slice(start..end))
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        Ok(Bytes::copy_from_slice(read_mem(self, offset, len)))
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        Ok(Bytes::copy_from_slice(read_mem(self, offset, len)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VodError {
    /// The source has not got the bytes yet: call again later.
    Pending,
    Io(String),
    /// The file ends inside a structure the reader needs (a header, the MP4 `moov`).
    Truncated,
    /// Neither FLV nor MP4.
    UnknownFormat,
    NotFlv,
    NotMp4,
    /// Fragmented MP4 (`moof` / `mvex`): not played (yet).
    Fragmented,
    /// A structure over the reader's cap.
    TooBig {
        what: &'static str,
        size: u64,
    },
    /// No video or audio track of a codec RTMP carries.
    NoPlayableTrack,
    Invalid(&'static str),
}

impl fmt::Display for VodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VodError::Pending => write!(f, "file data not available yet"),
            VodError::Io(e) => write!(f, "read error: {e}"),
            VodError::Truncated => write!(f, "file truncated"),
            VodError::UnknownFormat => write!(f, "neither an FLV nor an MP4 file"),
            VodError::NotFlv => write!(f, "not an FLV file"),
            VodError::NotMp4 => write!(f, "not an MP4 file"),
            VodError::Fragmented => write!(f, "fragmented MP4 is not supported"),
            VodError::TooBig { what, size } => write!(f, "{what} too big ({size})"),
            VodError::NoPlayableTrack => write!(f, "no playable video or audio track"),
            VodError::Invalid(what) => write!(f, "invalid file: {what}"),
        }
    }
}

impl std::error::Error for VodError {}

impl From<SourceError> for VodError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Pending => VodError::Pending,
            SourceError::Io(s) => VodError::Io(s),
        }
    }
}

/// Exactly `len` bytes at `offset`, `Truncated` where the file is shorter.
pub(crate) fn read_exact<S: Source + ?Sized>(
    src: &mut S,
    offset: u64,
    len: usize,
) -> Result<Bytes, VodError> {
    let b = src.read_at(offset, len)?;
    if b.len() < len {
        return Err(VodError::Truncated);
    }
    Ok(b.slice(..len))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

impl TagKind {
    /// The RTMP message type (= FLV tag type).
    pub fn msg_type(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }
}

/// One RTMP message to send: the payload is an FLV tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodTag {
    pub kind: TagKind,
    /// Milliseconds (decode time).
    pub ts: u32,
    pub data: Bytes,
    /// A video keyframe or a video sequence header.
    pub key: bool,
}

/// Either reader.
#[derive(Debug)]
pub enum VodFile {
    Flv(flv::FlvFile),
    Mp4(mp4::Mp4File),
}

/// The first box types an MP4 / QuickTime file starts with.
const MP4_FIRST_BOXES: [&[u8; 4]; 9] = [
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"uuid", b"styp",
];

/// Which tracks of an MP4 file play. By default the first video and the first audio track of a
/// codec RTMP carries; the C module's play arguments `vindex=N` / `aindex=N` pick the N-th (from
/// 0) video / audio track of the file instead, and none of that kind when it has no such track
/// or one of another codec. FLV files have one track of each kind: they ignore it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<u32>,
    pub audio: Option<u32>,
}

impl Tracks {
    /// From a play's arguments (`"vindex=1&aindex=0&token=x"`): the first `vindex` and `aindex`
    /// that are numbers; other arguments are not ours.
    pub fn from_args(args: &str) -> Self {
        let pick = |key: &str| {
            args.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find_map(|(k, v)| if k == key { v.parse().ok() } else { None })
        };
        Tracks {
            video: pick("vindex"),
            audio: pick("aindex"),
        }
    }
}

impl VodFile {
    /// Opens an FLV or an MP4 file, told apart by their first bytes.
    pub fn open<S: Source + ?Sized>(src: &mut S) -> Result<Self, VodError> {
        Self::open_tracks(src, Tracks::default())
    }

    /// Opens an FLV or an MP4 file, playing `tracks` of an MP4 file.
    pub fn open_tracks<S: Source + ?Sized>(src: &mut S, tracks: Tracks) -> Result<Self, VodError> {
        let head = src.read_at(0, 8)?;
        if head.starts_with(b"FLV") {
            return flv::FlvFile::open(src).map(VodFile::Flv);
        }
        if let Some(kind) = head.get(4..8) {
            if MP4_FIRST_BOXES.iter().any(|k| &k[..] == kind) {
                return mp4::Mp4File::open_tracks(src, tracks).map(VodFile::Mp4);
            }
        }
        if head.len() < 8 && src.len() >= 8 {
            return Err(VodError::Truncated);
        }
        Err(VodError::UnknownFormat)
    }

    /// The length of the play, when known.
    pub fn duration_ms(&self) -> Option<u64> {
        match self {
            VodFile::Flv(f) => f.duration_ms(),
            VodFile::Mp4(f) => f.duration_ms(),
        }
    }

    /// The AMF0 payload `"onMetaData", {…}` (without `@setDataFrame`).
    pub fn metadata(&self) -> Bytes {
        match self {
            VodFile::Flv(f) => f.metadata(),
            VodFile::Mp4(f) => f.metadata(),
        }
    }

    /// The codec sequence headers, to send before the media and again after every seek; HEVC in
    /// Enhanced RTMP form when `enhanced`.
    pub fn headers(&self, enhanced: bool) -> Vec<VodTag> {
        match self {
            VodFile::Flv(f) => f.headers(enhanced),
            VodFile::Mp4(f) => f.headers(enhanced),
        }
    }

    /// Whether `next` gives HEVC in Enhanced RTMP form (the client announced `hvc1`).
    pub fn set_enhanced(&mut self, on: bool) {
        match self {
            VodFile::Flv(f) => f.set_enhanced(on),
            VodFile::Mp4(f) => f.set_enhanced(on),
        }
    }

    /// Positions at the video keyframe at or before `ms` (audio-only: the audio frame at or
    /// before), the first one when `ms` is before it; returns the timestamp play goes on from.
    pub fn seek<S: Source + ?Sized>(&mut self, src: &mut S, ms: u32) -> Result<u32, VodError> {
        match self {
            VodFile::Flv(f) => f.seek(src, ms),
            VodFile::Mp4(f) => f.seek(src, ms),
        }
    }

    /// The next message in decode order; `None` at the end of the file.
    #[allow(clippy::should_implement_trait)]
    pub fn next<S: Source + ?Sized>(&mut self, src: &mut S) -> Result<Option<VodTag>, VodError> {
        match self {
            VodFile::Flv(f) => f.next(src),
            VodFile::Mp4(f) => f.next(src),
        }
    }

    /// Play ended early at a frame the file does not hold whole.
    pub fn truncated(&self) -> bool {
        match self {
            VodFile::Flv(f) => f.truncated(),
            VodFile::Mp4(f) => f.truncated(),
        }
    }
}

/// Legacy FLV video codec ids and the Enhanced RTMP packet types used here.
pub(crate) const CODEC_AVC: u8 = 7;
pub(crate) const CODEC_HEVC: u8 = 12;
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_CODED_FRAMES_X: u8 = 3;

/// What a video message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoPacket {
    SequenceStart,
    Frame { key: bool, cts: i32 },
    SequenceEnd,
}

fn put_cts(out: &mut BytesMut, cts: i32) {
    let c = cts.clamp(-0x80_0000, 0x7F_FFFF) as u32;
    out.put_slice(&c.to_be_bytes()[1..]);
}

/// A video payload: legacy `[frametype|codec, AVCPacketType, cts24]` (codec id 7 or 12), or, for
/// HEVC when `enhanced`, `[0x80|frametype|packettype, "hvc1", (cts24)]`; then `data`.
pub(crate) fn video_payload(codec: u8, enhanced: bool, packet: VideoPacket, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    let frame_type: u8 = match packet {
        VideoPacket::Frame { key: false, .. } => 2,
        _ => 1,
    };
    if enhanced && codec == CODEC_HEVC {
        let (packet_type, cts) = match packet {
            VideoPacket::SequenceStart => (PACKET_SEQUENCE_START, None),
            VideoPacket::SequenceEnd => (PACKET_SEQUENCE_END, None),
            VideoPacket::Frame { cts: 0, .. } => (PACKET_CODED_FRAMES_X, None),
            VideoPacket::Frame { cts, .. } => (PACKET_CODED_FRAMES, Some(cts)),
        };
        out.put_u8(0x80 | (frame_type << 4) | packet_type);
        out.put_slice(b"hvc1");
        if let Some(cts) = cts {
            put_cts(&mut out, cts);
        }
    } else {
        let (packet_type, cts) = match packet {
            VideoPacket::SequenceStart => (0, 0),
            VideoPacket::Frame { cts, .. } => (1, cts),
            VideoPacket::SequenceEnd => (2, 0),
        };
        out.put_u8((frame_type << 4) | codec);
        out.put_u8(packet_type);
        put_cts(&mut out, cts);
    }
    out.put_slice(data);
    out.freeze()
}

/// A legacy HEVC payload (codec id 12) in Enhanced RTMP form; `None` for anything else.
pub fn hevc_legacy_to_enhanced(p: &[u8]) -> Option<Bytes> {
    let (&b0, rest) = p.split_first()?;
    if b0 & 0x80 != 0 || b0 & 0x0f != CODEC_HEVC {
        return None;
    }
    let [packet_type, c0, c1, c2, data @ ..] = rest else {
        return None;
    };
    let cts = i32::from_be_bytes([*c0, *c1, *c2, 0]) >> 8;
    let packet = match packet_type {
        0 => VideoPacket::SequenceStart,
        1 => VideoPacket::Frame {
            key: b0 >> 4 == 1,
            cts,
        },
        2 => VideoPacket::SequenceEnd,
        _ => return None,
    };
    Some(video_payload(CODEC_HEVC, true, packet, data))
}

/// The `onMetaData` payload of these properties.
pub(crate) fn encode_metadata(props: Vec<(String, Amf0Value)>) -> Bytes {
    let mut out = BytesMut::new();
    amf0::encode(&Amf0Value::string("onMetaData"), &mut out);
    amf0::encode(&Amf0Value::EcmaArray(props), &mut out);
    out.freeze()
}

/// Milliseconds as the seconds AMF0 metadata states.
pub(crate) fn secs(ms: u64) -> Amf0Value {
    Amf0Value::Number(ms as f64 / 1000.0)
}
