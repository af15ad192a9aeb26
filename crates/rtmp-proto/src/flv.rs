//! FLV: the tag headers that RTMP audio/video payloads carry (legacy and Enhanced RTMP), and the FLV
//! file container (header, tags, previous-tag sizes) for our client and recording.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

use crate::message::{msg_type, RawMessage};

/// Video codecs, legacy ids and Enhanced RTMP FourCCs together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    SorensonH263,
    Screen,
    Vp6,
    Vp6Alpha,
    Screen2,
    Avc,
    Hevc,
    Av1,
    Vp9,
    Other(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoTagInfo {
    pub codec: VideoCodec,
    pub keyframe: bool,
    /// The decoder configuration record (AVC/HEVC/AV1 sequence start).
    pub sequence_header: bool,
    /// Enhanced RTMP (FourCC) header.
    pub enhanced: bool,
    /// The Enhanced RTMP FourCC (`None` for legacy codec ids).
    pub fourcc: Option<[u8; 4]>,
}

/// Parses the video tag header at the front of a type 9 payload. `None` when it is empty, or an
/// Enhanced header too short to carry its FourCC.
pub fn video_tag_info(p: &[u8]) -> Option<VideoTagInfo> {
    let b0 = *p.first()?;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: frame type in bits 4-6, packet type in the low nibble, then FourCC.
        let frame_type = (b0 >> 4) & 0x07;
        let mut packet_type = b0 & 0x0f;
        let mut at = 1;
        if packet_type == 6 {
            // Multitrack: a byte of track layout and the real packet type; a single FourCC
            // follows unless every track has its own codec (then it is per track: not one codec).
            let b1 = *p.get(1)?;
            packet_type = b1 & 0x0f;
            at = if b1 >> 4 == 2 { usize::MAX } else { 2 };
        }
        let fourcc: [u8; 4] = match at.checked_add(4).and_then(|end| p.get(at..end)) {
            Some(f) => [f[0], f[1], f[2], f[3]],
            None if at == usize::MAX => *b"****",
            None => return None,
        };
        let fourcc = &fourcc;
        let codec = match fourcc {
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            b"avc1" => VideoCodec::Avc,
            f => VideoCodec::Other(u32::from_be_bytes([f[0], f[1], f[2], f[3]])),
        };
        return Some(VideoTagInfo {
            codec,
            // Metadata packets (type 4) are not pictures.
            keyframe: frame_type == 1 && packet_type != 4,
            // SequenceStart, or MPEG2TSSequenceStart (AV1 signalled the MPEG-TS way).
            sequence_header: packet_type == 0 || packet_type == 5,
            enhanced: true,
            fourcc: Some(*fourcc),
        });
    }
    let frame_type = b0 >> 4;
    let codec = match b0 & 0x0f {
        2 => VideoCodec::SorensonH263,
        3 => VideoCodec::Screen,
        4 => VideoCodec::Vp6,
        5 => VideoCodec::Vp6Alpha,
        6 => VideoCodec::Screen2,
        7 => VideoCodec::Avc,
        // Pre-standard HEVC and AV1 ids some encoders (and Chinese CDNs) use.
        12 => VideoCodec::Hevc,
        13 => VideoCodec::Av1,
        n => VideoCodec::Other(u32::from(n)),
    };
    let has_packet_type = matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1);
    let sequence_header = has_packet_type && p.get(1) == Some(&0);
    Some(VideoTagInfo { codec, keyframe: frame_type == 1, sequence_header, enhanced: false, fourcc: None })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Pcm,
    Adpcm,
    Mp3,
    PcmLe,
    Nellymoser,
    G711A,
    G711U,
    Aac,
    Speex,
    Opus,
    Other(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioTagInfo {
    pub codec: AudioCodec,
    /// The AAC AudioSpecificConfig (or Enhanced audio sequence start).
    pub sequence_header: bool,
    /// The Enhanced RTMP FourCC (`None` for legacy sound formats).
    pub fourcc: Option<[u8; 4]>,
}

/// Parses the audio tag header at the front of a type 8 payload.
pub fn audio_tag_info(p: &[u8]) -> Option<AudioTagInfo> {
    let b0 = *p.first()?;
    let format = b0 >> 4;
    if format == 9 {
        // Enhanced RTMP audio: packet type in the low nibble, then FourCC.
        let f = p.get(1..5)?;
        let fourcc = [f[0], f[1], f[2], f[3]];
        let codec = match &fourcc {
            b"Opus" => AudioCodec::Opus,
            b"mp4a" => AudioCodec::Aac,
            b".mp3" => AudioCodec::Mp3,
            f => AudioCodec::Other(u32::from_be_bytes([f[0], f[1], f[2], f[3]])),
        };
        return Some(AudioTagInfo { codec, sequence_header: b0 & 0x0f == 0, fourcc: Some(fourcc) });
    }
    let codec = match format {
        0 => AudioCodec::Pcm,
        1 => AudioCodec::Adpcm,
        2 | 14 => AudioCodec::Mp3,
        3 => AudioCodec::PcmLe,
        4..=6 => AudioCodec::Nellymoser,
        7 => AudioCodec::G711A,
        8 => AudioCodec::G711U,
        10 => AudioCodec::Aac,
        11 => AudioCodec::Speex,
        n => AudioCodec::Other(u32::from(n)),
    };
    let sequence_header = codec == AudioCodec::Aac && p.get(1) == Some(&0);
    Some(AudioTagInfo { codec, sequence_header, fourcc: None })
}

/// One FLV tag: type 8, 9 or 18, a 32-bit millisecond timestamp and the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct FlvTag {
    pub tag_type: u8,
    pub timestamp: u32,
    pub data: Bytes,
}

impl FlvTag {
    pub fn into_message(self, stream_id: u32) -> RawMessage {
        RawMessage::new(self.tag_type, stream_id, self.timestamp, self.data)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FlvError {
    NotFlv,
    /// A tag header with a type that is neither audio, video nor script data.
    BadTagType(u8),
    Truncated,
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::NotFlv => write!(f, "not an FLV file (no \"FLV\" signature)"),
            FlvError::BadTagType(t) => write!(f, "FLV tag of unknown type {t}"),
            FlvError::Truncated => write!(f, "FLV data truncated"),
        }
    }
}

impl std::error::Error for FlvError {}

pub const FLV_HEADER_LEN: usize = 9;
pub const TAG_HEADER_LEN: usize = 11;

/// Appends the 9-byte FLV header and the first (zero) previous-tag size.
pub fn write_header(out: &mut BytesMut, audio: bool, video: bool) {
    out.put_slice(b"FLV\x01");
    out.put_u8((u8::from(audio) << 2) | u8::from(video));
    out.put_u32(FLV_HEADER_LEN as u32);
    out.put_u32(0);
}

/// Appends a tag and its previous-tag size. Payloads over 16 MiB cannot be framed and are skipped.
pub fn write_tag(out: &mut BytesMut, tag_type: u8, timestamp: u32, data: &[u8]) {
    if data.len() > 0xFF_FFFF {
        return;
    }
    out.reserve(TAG_HEADER_LEN + data.len() + 4);
    out.put_u8(tag_type);
    out.put_uint(data.len() as u64, 3);
    out.put_uint(u64::from(timestamp & 0xFF_FFFF), 3);
    out.put_u8((timestamp >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(data);
    out.put_u32((TAG_HEADER_LEN + data.len()) as u32);
}

/// Parses an FLV byte stream incrementally: push bytes with `extend`, pull tags with `next_tag`.
#[derive(Debug, Default)]
pub struct FlvReader {
    buf: BytesMut,
    header_done: bool,
}

impl FlvReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if !self.header_done {
            if self.buf.len() < 3 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError::NotFlv);
            }
            if self.buf.len() < FLV_HEADER_LEN {
                return Ok(None);
            }
            let offset = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            let skip = offset.max(FLV_HEADER_LEN) + 4;
            if self.buf.len() < skip {
                return Ok(None);
            }
            self.buf.advance(skip);
            self.header_done = true;
        }
        if self.buf.len() < TAG_HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..TAG_HEADER_LEN];
        // Bit 5 is the "filter" (encrypted) flag; the low 5 bits are the type.
        let tag_type = h[0] & 0x1f;
        if !matches!(tag_type, msg_type::AUDIO | msg_type::VIDEO | msg_type::AMF0_DATA) {
            return Err(FlvError::BadTagType(tag_type));
        }
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = (u32::from(h[7]) << 24) | (u32::from(h[4]) << 16) | (u32::from(h[5]) << 8) | u32::from(h[6]);
        if self.buf.len() < TAG_HEADER_LEN + len + 4 {
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let data = self.buf.split_to(len).freeze();
        self.buf.advance(4);
        Ok(Some(FlvTag { tag_type, timestamp: ts, data }))
    }

    /// Bytes buffered but not yet returned as tags.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Parses a whole FLV file; a truncated last tag is an error.
pub fn read_all(data: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    let mut r = FlvReader::new();
    r.extend(data);
    let mut tags = Vec::new();
    while let Some(t) = r.next_tag()? {
        tags.push(t);
    }
    if r.pending() > 0 {
        return Err(FlvError::Truncated);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn legacy_video_headers() {
        let i = video_tag_info(&[0x17, 0x00, 0, 0, 0]).unwrap();
        assert_eq!((i.codec, i.keyframe, i.sequence_header), (VideoCodec::Avc, true, true));
        let i = video_tag_info(&[0x27, 0x01, 0, 0, 0]).unwrap();
        assert_eq!((i.keyframe, i.sequence_header), (false, false));
        assert!(video_tag_info(&[]).is_none());
    }

    #[test]
    fn enhanced_video_headers() {
        let i = video_tag_info(&[0x90, b'h', b'v', b'c', b'1']).unwrap();
        assert_eq!((i.codec, i.keyframe, i.sequence_header, i.enhanced), (VideoCodec::Hevc, true, true, true));
        let i = video_tag_info(&[0xA1, b'a', b'v', b'0', b'1', 0, 0, 0]).unwrap();
        assert_eq!((i.codec, i.keyframe, i.sequence_header), (VideoCodec::Av1, false, false));
        assert!(video_tag_info(&[0x90, b'h']).is_none());
        // MPEG2TSSequenceStart is a sequence header; Metadata is no picture, key or not.
        assert!(video_tag_info(&[0x95, b'a', b'v', b'0', b'1']).unwrap().sequence_header);
        let i = video_tag_info(&[0x94, b'h', b'v', b'c', b'1']).unwrap();
        assert!(!i.keyframe && !i.sequence_header);
        // Multitrack, one codec for all tracks: the FourCC follows the track byte.
        let i = video_tag_info(&[0x96, 0x01, b'h', b'v', b'c', b'1', 0]).unwrap();
        assert_eq!((i.codec, i.fourcc), (VideoCodec::Hevc, Some(*b"hvc1")));
        // Multitrack with a codec per track: no single FourCC.
        assert_eq!(video_tag_info(&[0x96, 0x21, 0]).unwrap().fourcc, Some(*b"****"));
    }

    #[test]
    fn audio_headers() {
        let i = audio_tag_info(&[0xAF, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!((i.codec, i.sequence_header), (AudioCodec::Aac, true));
        let i = audio_tag_info(&[0xAF, 0x01]).unwrap();
        assert!(!i.sequence_header);
        assert_eq!(audio_tag_info(&[0x2F]).unwrap().codec, AudioCodec::Mp3);
        assert_eq!(audio_tag_info(&[0x90, b'O', b'p', b'u', b's']).unwrap().codec, AudioCodec::Opus);
    }

    #[test]
    fn file_round_trip_byte_by_byte() {
        let mut b = BytesMut::new();
        write_header(&mut b, true, true);
        write_tag(&mut b, 9, 0x0100_0002, &[0x17, 0, 1, 2]);
        write_tag(&mut b, 8, 3, &[0xAF, 1]);
        assert_eq!(read_all(&b).unwrap().len(), 2);
        let mut r = FlvReader::new();
        let mut tags = Vec::new();
        for byte in b.iter() {
            r.extend(&[*byte]);
            while let Some(t) = r.next_tag().unwrap() {
                tags.push(t);
            }
        }
        assert_eq!(tags[0], FlvTag { tag_type: 9, timestamp: 0x0100_0002, data: Bytes::from_static(&[0x17, 0, 1, 2]) });
        assert_eq!(tags[1].timestamp, 3);
    }

    #[test]
    fn bad_files() {
        assert_eq!(read_all(b"XYZ"), Err(FlvError::NotFlv));
        let mut b = BytesMut::new();
        write_header(&mut b, true, true);
        write_tag(&mut b, 9, 0, &[1, 2, 3]);
        assert_eq!(read_all(&b[..b.len() - 1]), Err(FlvError::Truncated));
    }

    proptest! {
        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = video_tag_info(&b);
            let _ = audio_tag_info(&b);
            let mut v = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
            v.extend_from_slice(&b);
            let _ = read_all(&v);
        }
    }
}
