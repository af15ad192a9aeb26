//! Elementary streams for MPEG-TS from RTMP payloads: the FLV audio/video tag headers (legacy and
//! Enhanced RTMP) taken apart, length-prefixed AVC/HEVC NAL units turned into an Annex B access unit
//! (AUD first, parameter sets before keyframes), raw AAC framed as ADTS, MP3 frames counted.

use std::fmt;

use super::stream_type;
use crate::codec::aac::{self, AacConfig};
use crate::codec::mp3::{self, Mp3Header, MpegVersion};
use crate::codec::{avc, hevc, CodecError};

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// Access unit delimiters, start code included. H.264: primary_pic_type 7 (any slice type).
const AVC_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];
/// HEVC: NAL type 35, nuh_temporal_id_plus1 1, pic_type 2 (any slice type).
const HEVC_AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// AAC frames carry 1024 samples (the 960-sample variant is not used over RTMP).
pub const AAC_SAMPLES_PER_FRAME: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodecKind {
    Avc,
    Hevc,
}

/// What a video message (type 9 payload) holds, as far as MPEG-TS is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket<'a> {
    /// The decoder configuration record.
    SequenceHeader { kind: VideoCodecKind, record: &'a [u8] },
    /// Length-prefixed NAL units of one picture; `cts` is the composition time offset in ms.
    Frame { kind: VideoCodecKind, keyframe: bool, cts: i32, data: &'a [u8] },
    /// Nothing to mux: end of sequence, metadata, command frames, multitrack, truncated headers.
    Ignored,
    /// A codec MPEG-TS does not carry here, by name.
    Unsupported(String),
}

/// What an audio message (type 8 payload) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket<'a> {
    /// AudioSpecificConfig.
    AacConfig(&'a [u8]),
    /// One raw AAC frame.
    AacFrame(&'a [u8]),
    /// One or more MPEG audio frames.
    Mp3(&'a [u8]),
    Ignored,
    Unsupported(String),
}

fn fourcc_name(f: &[u8]) -> String {
    f.escape_ascii().to_string()
}

/// The signed 24-bit composition time offset.
fn cts24(b: &[u8]) -> Option<i32> {
    let &[b0, b1, b2] = b else { return None };
    // Sign-extend by placing the 24 bits at the top of an i32 and shifting back.
    Some(i32::from_be_bytes([b0, b1, b2, 0]) >> 8)
}

fn frame(kind: VideoCodecKind, frame_type: u8, cts: i32, data: Option<&[u8]>) -> VideoPacket<'_> {
    match data {
        Some(data) => VideoPacket::Frame { kind, keyframe: frame_type == 1, cts, data },
        None => VideoPacket::Ignored,
    }
}

/// Takes a video message apart: legacy AVC (id 7) and HEVC (id 12) headers with a packet type and
/// a composition time, or Enhanced RTMP (`avc1`, `hvc1`) with the packet type in the first byte.
pub fn parse_video(p: &[u8]) -> VideoPacket<'_> {
    let Some(&b0) = p.first() else {
        return VideoPacket::Ignored;
    };
    if b0 & 0x80 != 0 {
        let (frame_type, packet_type) = ((b0 >> 4) & 0x07, b0 & 0x0F);
        // Multitrack (6) carries several tracks in one message: not for a one-program muxer.
        // ModEx (7) puts modifier data before the real packet type: not used by publishers we
        // know of, and dropped rather than misread.
        if packet_type == 6 || packet_type == 7 || frame_type == 5 {
            return VideoPacket::Ignored;
        }
        let Some(fourcc) = p.get(1..5) else {
            return VideoPacket::Ignored;
        };
        let kind = match fourcc {
            b"avc1" => VideoCodecKind::Avc,
            b"hvc1" => VideoCodecKind::Hevc,
            f => return VideoPacket::Unsupported(format!("video codec {}", fourcc_name(f))),
        };
        return match packet_type {
            0 => VideoPacket::SequenceHeader { kind, record: p.get(5..).unwrap_or_default() },
            1 => match p.get(5..8).and_then(cts24) {
                Some(cts) => frame(kind, frame_type, cts, p.get(8..)),
                None => VideoPacket::Ignored,
            },
            // CodedFramesX: no composition time, it is 0.
            3 => frame(kind, frame_type, 0, p.get(5..)),
            _ => VideoPacket::Ignored,
        };
    }
    let frame_type = b0 >> 4;
    let kind = match b0 & 0x0F {
        7 => VideoCodecKind::Avc,
        12 => VideoCodecKind::Hevc,
        id => {
            let name = match id {
                2 => "Sorenson H.263",
                3 => "Screen Video",
                4 => "On2 VP6",
                5 => "On2 VP6 with alpha",
                6 => "Screen Video 2",
                13 => "AV1",
                _ => "unknown",
            };
            return VideoPacket::Unsupported(format!("video codec {name} (FLV id {id})"));
        }
    };
    if frame_type == 5 {
        return VideoPacket::Ignored;
    }
    match p.get(1) {
        Some(0) => VideoPacket::SequenceHeader { kind, record: p.get(5..).unwrap_or_default() },
        Some(1) => match p.get(2..5).and_then(cts24) {
            Some(cts) => frame(kind, frame_type, cts, p.get(5..)),
            None => VideoPacket::Ignored,
        },
        _ => VideoPacket::Ignored,
    }
}

/// Takes an audio message apart: legacy AAC (format 10) and MP3 (2, 14), or Enhanced RTMP audio
/// (format 9) with FourCC `mp4a` or `.mp3`.
pub fn parse_audio(p: &[u8]) -> AudioPacket<'_> {
    let Some(&b0) = p.first() else {
        return AudioPacket::Ignored;
    };
    match b0 >> 4 {
        10 => match p.get(1) {
            Some(0) => AudioPacket::AacConfig(p.get(2..).unwrap_or_default()),
            Some(1) => AudioPacket::AacFrame(p.get(2..).unwrap_or_default()),
            _ => AudioPacket::Ignored,
        },
        2 | 14 => AudioPacket::Mp3(p.get(1..).unwrap_or_default()),
        9 => {
            // Multitrack (5) and ModEx (7) lay the message out differently: not for us.
            if matches!(b0 & 0x0F, 5 | 7) {
                return AudioPacket::Ignored;
            }
            let Some(fourcc) = p.get(1..5) else {
                return AudioPacket::Ignored;
            };
            let body = p.get(5..).unwrap_or_default();
            match (fourcc, b0 & 0x0F) {
                (b"mp4a", 0) => AudioPacket::AacConfig(body),
                (b"mp4a", 1) => AudioPacket::AacFrame(body),
                (b".mp3", 1) => AudioPacket::Mp3(body),
                (b"mp4a" | b".mp3", _) => AudioPacket::Ignored,
                (f, _) => AudioPacket::Unsupported(format!("audio codec {}", fourcc_name(f))),
            }
        }
        format => {
            let name = match format {
                0 | 3 => "linear PCM",
                1 => "ADPCM",
                4..=6 => "Nellymoser",
                7 => "G.711 A-law",
                8 => "G.711 mu-law",
                11 => "Speex",
                _ => "unknown",
            };
            AudioPacket::Unsupported(format!("audio codec {name} (FLV sound format {format})"))
        }
    }
}

/// A video sequence header, ready for muxing.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub kind: VideoCodecKind,
    /// Bytes in each NAL unit's length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// The parameter sets (VPS, SPS, PPS for HEVC; SPS, PPS for H.264), each behind a start code.
    pub parameter_sets: Vec<u8>,
    /// RFC 6381.
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

impl VideoConfig {
    pub fn parse(kind: VideoCodecKind, record: &[u8]) -> Result<Self, CodecError> {
        let mut parameter_sets = Vec::new();
        let mut put = |sets: &[Vec<u8>]| {
            for nal in sets.iter().filter(|n| !n.is_empty()) {
                parameter_sets.extend_from_slice(&START_CODE);
                parameter_sets.extend_from_slice(nal);
            }
        };
        Ok(match kind {
            VideoCodecKind::Avc => {
                let c = avc::parse_config(record)?;
                put(&c.sps);
                put(&c.pps);
                VideoConfig {
                    kind,
                    nal_length_size: c.nal_length_size,
                    parameter_sets,
                    codec_string: c.codec_string(),
                    width: c.info.width,
                    height: c.info.height,
                    frame_rate: c.info.frame_rate,
                }
            }
            VideoCodecKind::Hevc => {
                let c = hevc::parse_config(record)?;
                put(&c.vps);
                put(&c.sps);
                put(&c.pps);
                VideoConfig {
                    kind,
                    nal_length_size: c.nal_length_size,
                    parameter_sets,
                    codec_string: c.codec_string(),
                    width: c.info.width,
                    height: c.info.height,
                    frame_rate: c.info.frame_rate,
                }
            }
        })
    }

    pub fn stream_type(&self) -> u8 {
        match self.kind {
            VideoCodecKind::Avc => stream_type::H264,
            VideoCodecKind::Hevc => stream_type::HEVC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsError {
    /// A NAL unit length runs past the end of the message.
    NalOverrun,
    /// A picture without a single NAL unit.
    Empty,
    Codec(CodecError),
}

impl fmt::Display for EsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EsError::NalOverrun => write!(f, "NAL unit length runs past the frame"),
            EsError::Empty => write!(f, "frame without NAL units"),
            EsError::Codec(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EsError {}

impl From<CodecError> for EsError {
    fn from(e: CodecError) -> Self {
        EsError::Codec(e)
    }
}

/// The NAL units of a length-prefixed frame; an error once a length runs past the data. Empty NAL
/// units are skipped.
struct NalUnits<'a> {
    rest: &'a [u8],
    size: usize,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], EsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            // The parsers allow 1, 2 and 4; a hand-made config with 0 would never advance.
            if !(1..=4).contains(&self.size) {
                self.rest = &[];
                return Some(Err(EsError::NalOverrun));
            }
            let Some(prefix) = self.rest.get(..self.size) else {
                self.rest = &[];
                return Some(Err(EsError::NalOverrun));
            };
            let len = prefix.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
            let nal = self.rest.get(self.size..).and_then(|r| r.get(..len));
            let Some(nal) = nal else {
                self.rest = &[];
                return Some(Err(EsError::NalOverrun));
            };
            self.rest = self.rest.get(self.size + len..).unwrap_or_default();
            if !nal.is_empty() {
                return Some(Ok(nal));
            }
        }
    }
}

/// The kinds of NAL unit the conversion cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalRole {
    Aud,
    Vps,
    Sps,
    Pps,
    Other,
}

fn nal_role(kind: VideoCodecKind, nal: &[u8]) -> NalRole {
    let Some(&h) = nal.first() else {
        return NalRole::Other;
    };
    match kind {
        VideoCodecKind::Avc => match h & 0x1F {
            9 => NalRole::Aud,
            7 => NalRole::Sps,
            8 => NalRole::Pps,
            _ => NalRole::Other,
        },
        VideoCodecKind::Hevc => match (h >> 1) & 0x3F {
            35 => NalRole::Aud,
            32 => NalRole::Vps,
            33 => NalRole::Sps,
            34 => NalRole::Pps,
            _ => NalRole::Other,
        },
    }
}

/// Appends one access unit in Annex B form: the frame's own AUD or ours, the parameter sets of
/// `cfg` before a keyframe that does not carry its own, then the frame's NAL units (further AUDs
/// left out: they would split the picture). Nothing is appended on error.
pub fn annexb_access_unit(cfg: &VideoConfig, data: &[u8], keyframe: bool, out: &mut Vec<u8>) -> Result<(), EsError> {
    let units = || NalUnits { rest: data, size: usize::from(cfg.nal_length_size) };
    let (mut count, mut first_is_aud) = (0usize, false);
    let (mut vps, mut sps, mut pps) = (false, false, false);
    for nal in units() {
        let role = nal_role(cfg.kind, nal?);
        if count == 0 {
            first_is_aud = role == NalRole::Aud;
        }
        count += 1;
        match role {
            NalRole::Vps => vps = true,
            NalRole::Sps => sps = true,
            NalRole::Pps => pps = true,
            _ => {}
        }
    }
    if count == 0 || (first_is_aud && count == 1) {
        return Err(EsError::Empty);
    }
    let carries_sets = sps && pps && (vps || cfg.kind == VideoCodecKind::Avc);
    out.reserve(data.len() + cfg.parameter_sets.len() + 8 + 4 * count);
    let mut nals = units().flatten().peekable();
    if first_is_aud {
        if let Some(aud) = nals.next() {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(aud);
        }
    } else {
        out.extend_from_slice(match cfg.kind {
            VideoCodecKind::Avc => &AVC_AUD[..],
            VideoCodecKind::Hevc => &HEVC_AUD[..],
        });
    }
    if keyframe && !carries_sets {
        out.extend_from_slice(&cfg.parameter_sets);
    }
    for nal in nals.filter(|n| nal_role(cfg.kind, n) != NalRole::Aud) {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Ok(())
}

/// An audio stream's configuration: the AudioSpecificConfig, or the first MP3 frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioConfig {
    Aac(AacConfig),
    Mp3(Mp3Header),
}

impl AudioConfig {
    pub fn stream_type(&self) -> u8 {
        match self {
            AudioConfig::Aac(_) => stream_type::AAC_ADTS,
            AudioConfig::Mp3(h) if h.version == MpegVersion::Mpeg1 => stream_type::MPEG1_AUDIO,
            AudioConfig::Mp3(_) => stream_type::MPEG2_AUDIO,
        }
    }

    pub fn codec_string(&self) -> String {
        match self {
            AudioConfig::Aac(c) => c.codec_string(),
            AudioConfig::Mp3(h) => h.codec_string().to_string(),
        }
    }

    /// The rate the frame durations count in (for HE-AAC the core rate, as frames are 1024
    /// samples of it).
    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioConfig::Aac(c) => c.sample_rate,
            AudioConfig::Mp3(h) => h.sample_rate,
        }
    }

    /// Whether a new header describes the same stream; MP3 headers differ frame to frame in bit
    /// rate and padding, which do not matter.
    pub fn same_stream(&self, other: &AudioConfig) -> bool {
        match (self, other) {
            (AudioConfig::Aac(a), AudioConfig::Aac(b)) => a == b,
            (AudioConfig::Mp3(a), AudioConfig::Mp3(b)) => {
                (a.version, a.layer, a.sample_rate, a.channels) == (b.version, b.layer, b.sample_rate, b.channels)
            }
            _ => false,
        }
    }
}

/// Appends one ADTS frame: the 7-byte header from the AudioSpecificConfig, then the raw frame.
pub fn adts_frame(cfg: &AacConfig, raw: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let header = aac::adts_header(cfg, raw.len())?;
    out.extend_from_slice(&header);
    out.extend_from_slice(raw);
    Ok(())
}

/// The header of the first MPEG audio frame in an MP3 message and how many frames follow each
/// other from there (free-format frames, whose length is unknown, count as one).
pub fn mp3_frames(data: &[u8]) -> Option<(Mp3Header, u32)> {
    let (at, first) = match mp3::parse_header(data) {
        Ok(h) => (0, h),
        Err(_) => mp3::find_frame(data)?,
    };
    let mut rest = data.get(at..).unwrap_or_default();
    let mut frames = 0u32;
    while let Ok(h) = mp3::parse_header(rest) {
        frames = frames.saturating_add(1);
        match h.frame_len.filter(|&n| n >= 4) {
            Some(n) => rest = rest.get(n..).unwrap_or_default(),
            None => break,
        }
    }
    Some((first, frames.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC_RECORD: &[u8] = include_bytes!("../../tests/data/avc_high_640x360.bin");
    const HEVC_RECORD: &[u8] = include_bytes!("../../tests/data/hevc_hvcc_main_640x360.bin");

    fn avcc(nals: &[&[u8]], size: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes()[4 - size..]);
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn video_headers() {
        assert_eq!(
            parse_video(&[0x17, 0, 0, 0, 0, 1, 2]),
            VideoPacket::SequenceHeader { kind: VideoCodecKind::Avc, record: &[1, 2] }
        );
        assert_eq!(
            parse_video(&[0x27, 1, 0xFF, 0xFF, 0xD8, 9]),
            VideoPacket::Frame { kind: VideoCodecKind::Avc, keyframe: false, cts: -40, data: &[9] }
        );
        assert_eq!(
            parse_video(&[0x1C, 1, 0, 0, 80, 9]),
            VideoPacket::Frame { kind: VideoCodecKind::Hevc, keyframe: true, cts: 80, data: &[9] }
        );
        assert_eq!(
            parse_video(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 40, 7]),
            VideoPacket::Frame { kind: VideoCodecKind::Hevc, keyframe: true, cts: 40, data: &[7] }
        );
        assert_eq!(
            parse_video(&[0xA3, b'a', b'v', b'c', b'1', 7]),
            VideoPacket::Frame { kind: VideoCodecKind::Avc, keyframe: false, cts: 0, data: &[7] }
        );
        assert_eq!(
            parse_video(&[0x90, b'h', b'v', b'c', b'1', 3]),
            VideoPacket::SequenceHeader { kind: VideoCodecKind::Hevc, record: &[3] }
        );
        assert!(matches!(parse_video(&[0x91, b'a', b'v', b'0', b'1']), VideoPacket::Unsupported(_)));
        assert!(matches!(parse_video(&[0x14, 0]), VideoPacket::Unsupported(s) if s.contains("VP6")));
        for ignored in [
            &[][..],
            &[0x17],
            &[0x17, 2, 0, 0, 0],
            &[0x27, 1, 0],
            &[0x57, 0],
            &[0x96, 0, b'a', b'v', b'c', b'1'],
            &[0x97, 0, b'a', b'v', b'c', b'1'],
            &[0x92, b'a', b'v', b'c', b'1'],
            &[0x94, b'h', b'v', b'c', b'1', 1],
            &[0x91, b'h', b'v'],
            &[0x91, b'h', b'v', b'c', b'1', 0],
        ] {
            assert_eq!(parse_video(ignored), VideoPacket::Ignored, "{ignored:?}");
        }
    }

    #[test]
    fn audio_headers() {
        assert_eq!(parse_audio(&[0xAF, 0, 0x12, 0x10]), AudioPacket::AacConfig(&[0x12, 0x10]));
        assert_eq!(parse_audio(&[0xAF, 1, 5]), AudioPacket::AacFrame(&[5]));
        assert_eq!(parse_audio(&[0x2E, 0xFF, 0xFB]), AudioPacket::Mp3(&[0xFF, 0xFB]));
        assert_eq!(parse_audio(&[0x90, b'm', b'p', b'4', b'a', 0x11]), AudioPacket::AacConfig(&[0x11]));
        assert_eq!(parse_audio(&[0x91, b'm', b'p', b'4', b'a', 1]), AudioPacket::AacFrame(&[1]));
        assert_eq!(parse_audio(&[0x91, b'.', b'm', b'p', b'3', 1]), AudioPacket::Mp3(&[1]));
        assert!(
            matches!(parse_audio(&[0x91, b'O', b'p', b'u', b's']), AudioPacket::Unsupported(s) if s.contains("Opus"))
        );
        assert!(matches!(parse_audio(&[0xB6]), AudioPacket::Unsupported(s) if s.contains("Speex")));
        assert_eq!(parse_audio(&[]), AudioPacket::Ignored);
        assert_eq!(parse_audio(&[0xAF]), AudioPacket::Ignored);
        assert_eq!(parse_audio(&[0x95, b'm', b'p', b'4', b'a']), AudioPacket::Ignored);
        // Multitrack: a track layout byte where a FourCC would be.
        assert_eq!(parse_audio(&[0x95, 0x01, b'O', b'p', b'u', b's']), AudioPacket::Ignored);
    }

    #[test]
    fn avcc_to_annexb_with_aud_and_parameter_sets() {
        let cfg = VideoConfig::parse(VideoCodecKind::Avc, AVC_RECORD).unwrap();
        assert_eq!(cfg.codec_string, "avc1.64001e");
        let c = avc::parse_config(AVC_RECORD).unwrap();
        let (sps, pps) = (&c.sps[0], &c.pps[0]);
        assert_eq!(cfg.parameter_sets, [&START_CODE[..], sps, &START_CODE, pps].concat());
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let sei: &[u8] = &[0x06, 0x05, 0x01];
        let mut out = Vec::new();
        annexb_access_unit(&cfg, &avcc(&[sei, idr], 4), true, &mut out).unwrap();
        let want = [&AVC_AUD[..], &cfg.parameter_sets, &START_CODE, sei, &START_CODE, idr].concat();
        assert_eq!(out, want);
        // Not a keyframe: AUD only. Two-byte lengths.
        let cfg2 = VideoConfig { nal_length_size: 2, ..cfg.clone() };
        out.clear();
        annexb_access_unit(&cfg2, &avcc(&[&[0x41, 0x9A]], 2), false, &mut out).unwrap();
        assert_eq!(out, [&AVC_AUD[..], &START_CODE, &[0x41, 0x9A]].concat());
        // A frame with its own AUD and parameter sets keeps them and gets nothing added.
        out.clear();
        let aud: &[u8] = &[0x09, 0x10];
        annexb_access_unit(&cfg, &avcc(&[aud, sps, pps, idr], 4), true, &mut out).unwrap();
        assert_eq!(out, [&START_CODE[..], aud, &START_CODE, sps, &START_CODE, pps, &START_CODE, idr].concat());
        // Its own AUD but no parameter sets: they go after the AUD; empty NAL units vanish.
        out.clear();
        annexb_access_unit(&cfg, &avcc(&[aud, &[], idr], 4), true, &mut out).unwrap();
        assert_eq!(out, [&START_CODE[..], aud, &cfg.parameter_sets, &START_CODE, idr].concat());
    }

    #[test]
    fn broken_frames_are_errors_and_write_nothing() {
        let cfg = VideoConfig::parse(VideoCodecKind::Avc, AVC_RECORD).unwrap();
        let mut out = vec![1];
        let mut bad = avcc(&[&[0x65, 1, 2]], 4);
        bad.pop();
        assert_eq!(annexb_access_unit(&cfg, &bad, true, &mut out), Err(EsError::NalOverrun));
        assert_eq!(annexb_access_unit(&cfg, &[0xFF, 0xFF, 0xFF, 0xFF, 1], true, &mut out), Err(EsError::NalOverrun));
        assert_eq!(annexb_access_unit(&cfg, &[0, 0], true, &mut out), Err(EsError::NalOverrun));
        assert_eq!(annexb_access_unit(&cfg, &[], true, &mut out), Err(EsError::Empty));
        assert_eq!(annexb_access_unit(&cfg, &[0, 0, 0, 0], true, &mut out), Err(EsError::Empty));
        assert_eq!(annexb_access_unit(&cfg, &avcc(&[&[0x09, 0xF0]], 4), true, &mut out), Err(EsError::Empty));
        assert_eq!(out, [1]);
    }

    #[test]
    fn hevc_parameter_sets_in_order() {
        let cfg = VideoConfig::parse(VideoCodecKind::Hevc, HEVC_RECORD).unwrap();
        assert_eq!(cfg.stream_type(), 0x24);
        assert_eq!((cfg.width, cfg.height), (640, 360));
        let sets = hevc::split_annexb(&cfg.parameter_sets);
        let types: Vec<_> = sets.iter().map(|n| hevc::nal_type(n)).collect();
        assert_eq!(types, [Some(32), Some(33), Some(34)]);
        let idr: &[u8] = &[0x26, 0x01, 0xAF];
        let mut out = Vec::new();
        annexb_access_unit(&cfg, &avcc(&[idr], 4), true, &mut out).unwrap();
        assert_eq!(out, [&HEVC_AUD[..], &cfg.parameter_sets, &START_CODE, idr].concat());
        out.clear();
        annexb_access_unit(&cfg, &avcc(&[&[0x02, 0x01, 0xD0]], 4), false, &mut out).unwrap();
        assert!(out.starts_with(&HEVC_AUD));
    }

    #[test]
    fn adts_framing() {
        let cfg = aac::parse_config(&[0x12, 0x10]).unwrap();
        let mut out = Vec::new();
        adts_frame(&cfg, &[0xAA; 100], &mut out).unwrap();
        assert_eq!(out[..7], [0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]);
        assert_eq!(out.len(), 107);
        // The frame length field counts the header.
        let len = (usize::from(out[3] & 3) << 11) | (usize::from(out[4]) << 3) | usize::from(out[5] >> 5);
        assert_eq!(len, 107);
        assert!(adts_frame(&cfg, &[0; 9000], &mut out).is_err());
        assert_eq!(out.len(), 107);
        assert_eq!(AudioConfig::Aac(cfg).stream_type(), 0x0F);
    }

    #[test]
    fn mp3_frame_counts() {
        let data = include_bytes!("../../tests/data/mp3_l3_44100_stereo_128k.bin");
        let (h, n) = mp3_frames(data).unwrap();
        assert_eq!((h.sample_rate, h.layer), (44100, 3));
        // 417 + 418 + 418 bytes: three frames, the last two padded.
        assert_eq!(n, 3);
        assert_eq!(AudioConfig::Mp3(h).stream_type(), 0x03);
        let (h, _) = mp3_frames(include_bytes!("../../tests/data/mp3_l3_22050_mono_32k.bin")).unwrap();
        assert_eq!(AudioConfig::Mp3(h).stream_type(), 0x04);
        assert_eq!(AudioConfig::Mp3(h).codec_string(), "mp4a.40.34");
        assert!(mp3_frames(&[1, 2, 3]).is_none());
    }
}
