//! RFC 6381 codec strings (MPD `@codecs`, HLS `CODECS=`) straight from the decoder configuration
//! bytes an RTMP publisher sends, and the video/audio descriptions built from them.

use std::fmt::{self, Write as _};

use super::{AudioInfo, VideoInfo};
use crate::codec::{aac, avc, hevc, CodecError};

/// `avc1.PPCCLL` from an AVCDecoderConfigurationRecord (its bytes 1–3 are the SPS's
/// profile_idc, constraint flags and level_idc).
pub fn avc_codec_string(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, p, c, l, ..] => Some(format!("avc1.{p:02x}{c:02x}{l:02x}")),
        _ => None,
    }
}

/// `avc1.PPCCLL` from an SPS NAL unit (with its one-byte header).
pub fn avc_codec_string_from_sps(sps: &[u8]) -> Option<String> {
    match sps {
        [h, p, c, l, ..] if h & 0x1f == 7 => Some(format!("avc1.{p:02x}{c:02x}{l:02x}")),
        _ => None,
    }
}

/// `hvc1.<space><profile_idc>.<compat>.<tier><level>[.<constraint bytes>]` (ISO/IEC 14496-15
/// Annex E.3) from an HEVCDecoderConfigurationRecord: profile space as "", A, B, C; the 32
/// compatibility flags in reverse bit order (flag 31 most significant) in hex without leading
/// zeros; L (Main tier) or H (High tier) and general_level_idc in decimal; the six constraint
/// indicator bytes in hex, dot-separated, trailing zero bytes left out. Main profile, level 3.1,
/// progressive + frame-only constraints: `hvc1.1.6.L93.B0`.
pub fn hevc_codec_string(hvcc: &[u8]) -> Option<String> {
    let h: &[u8; 13] = hvcc.get(..13)?.try_into().ok()?;
    if h[0] != 1 {
        return None;
    }
    let space = match h[1] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if h[1] & 0x20 != 0 { 'H' } else { 'L' };
    let idc = h[1] & 0x1f;
    let compat = u32::from_be_bytes([h[2], h[3], h[4], h[5]]).reverse_bits();
    let level = h[12];
    let mut s = format!("hvc1.{space}{idc}.{compat:X}.{tier}{level}");
    let constraint = &h[6..12];
    let keep = constraint.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    for b in &constraint[..keep] {
        let _ = write!(s, ".{b:X}");
    }
    Some(s)
}

/// `mp4a.40.<aot>` from an AudioSpecificConfig: 2 for AAC-LC, 5 for explicitly signalled SBR
/// (HE-AAC), 29 for explicit PS (HE-AAC v2), otherwise the object type itself.
pub fn aac_codec_string(asc: &[u8]) -> Option<String> {
    let c = aac::parse_config(asc).ok()?;
    Some(format!("mp4a.40.{}", aac_object_type(&c)))
}

fn aac_object_type(c: &aac::AacConfig) -> u32 {
    match (c.sbr, c.ps) {
        (_, true) => 29,
        (true, false) => 5,
        _ => c.object_type,
    }
}

/// A frame rate as the MPD writes it: `25`, or `30000/1001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// The nearest of: an integer rate, an NTSC rate (n×1000/1001), or a rate in thousandths.
    pub fn from_f64(fps: f64) -> Option<FrameRate> {
        if !fps.is_finite() || fps <= 0.0 || fps > 1000.0 {
            return None;
        }
        let int = fps.round();
        if (fps - int).abs() < 1e-3 {
            return Some(FrameRate { num: int as u32, den: 1 });
        }
        let ntsc = (fps * 1.001).round();
        if (fps - ntsc * 1000.0 / 1001.0).abs() < 1e-3 {
            return Some(FrameRate { num: ntsc as u32 * 1000, den: 1001 });
        }
        let (mut num, mut den) = ((fps * 1000.0).round() as u32, 1000);
        let g = gcd(num, den);
        num /= g;
        den /= g;
        Some(FrameRate { num, den })
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// The packager's video timescale.
pub const VIDEO_TIMESCALE: u32 = 90_000;

impl VideoInfo {
    /// From an AVCDecoderConfigurationRecord (FLV AVC sequence header payload).
    pub fn from_avc_config(avcc: &[u8]) -> Result<VideoInfo, CodecError> {
        let c = avc::parse_config(avcc)?;
        Ok(VideoInfo {
            timescale: VIDEO_TIMESCALE,
            codecs: c.codec_string(),
            width: c.info.width,
            height: c.info.height,
            frame_rate: c.info.frame_rate.and_then(FrameRate::from_f64),
            sar: c.info.sar,
            bandwidth: None,
        })
    }

    /// From an HEVCDecoderConfigurationRecord (enhanced-RTMP `hvc1` sequence start).
    pub fn from_hevc_config(hvcc: &[u8]) -> Result<VideoInfo, CodecError> {
        let c = hevc::parse_config(hvcc)?;
        let codecs = hevc_codec_string(hvcc).ok_or(CodecError::Truncated)?;
        Ok(VideoInfo {
            timescale: VIDEO_TIMESCALE,
            codecs,
            width: c.info.width,
            height: c.info.height,
            frame_rate: c.info.frame_rate.and_then(FrameRate::from_f64),
            sar: None,
            bandwidth: None,
        })
    }
}

impl AudioInfo {
    /// From an AudioSpecificConfig. Timescale and `audioSamplingRate` are the output rate (the
    /// SBR extension rate for HE-AAC); HE-AAC v2 (PS) decodes to stereo.
    pub fn from_aac_config(asc: &[u8]) -> Result<AudioInfo, CodecError> {
        let c = aac::parse_config(asc)?;
        let rate = c.ext_sample_rate.unwrap_or(c.sample_rate);
        let channels = if c.ps { 2 } else { c.channels };
        Ok(AudioInfo {
            timescale: rate,
            codecs: format!("mp4a.40.{}", aac_object_type(&c)),
            sample_rate: rate,
            channels,
            bandwidth: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIGH_720: &[u8] = include_bytes!("../../tests/data/avc_high_1280x720.bin");
    const HVCC_360: &[u8] = include_bytes!("../../tests/data/hevc_hvcc_main_640x360.bin");

    #[test]
    fn avc() {
        // libx264 High@3.1: the record and its SPS agree.
        assert_eq!(avc_codec_string(HIGH_720).as_deref(), Some("avc1.64001f"));
        assert_eq!(avc_codec_string_from_sps(&HIGH_720[8..]).as_deref(), Some("avc1.64001f"));
        // Constrained baseline 3.0 (constraint_set0+1).
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00];
        assert_eq!(avc_codec_string_from_sps(&sps).as_deref(), Some("avc1.42c01e"));
        assert_eq!(avc_codec_string(&[1, 0x42, 0xc0, 0x1e, 0xff, 0xe1]).as_deref(), Some("avc1.42c01e"));
        assert_eq!(avc_codec_string(&[0, 0x42, 0xc0, 0x1e]), None);
        assert_eq!(avc_codec_string_from_sps(&[0x68, 0x42, 0xc0, 0x1e]), None);
        assert_eq!(avc_codec_string_from_sps(&[0x67, 0x42]), None);
        let v = VideoInfo::from_avc_config(HIGH_720).unwrap();
        assert_eq!((v.codecs.as_str(), v.width, v.height), ("avc1.64001f", 1280, 720));
        assert_eq!(v.frame_rate, Some(FrameRate { num: 25, den: 1 }));
    }

    #[test]
    fn hevc() {
        // A typical Main profile record: space 0, Main tier, profile 1, compatibility flags 1
        // and 2, progressive + frame-only (0xB0), level 93 (3.1).
        let mut h = vec![1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93];
        assert_eq!(hevc_codec_string(&h).as_deref(), Some("hvc1.1.6.L93.B0"));
        // Main 10, High tier, level 4 (120), constraints 0x90.
        h[1] = 0x22;
        h[2] = 0x20;
        h[6] = 0x90;
        h[12] = 120;
        assert_eq!(hevc_codec_string(&h).as_deref(), Some("hvc1.2.4.H120.90"));
        // Profile space 1 and a constraint byte further out.
        h[1] = 0x41;
        h[11] = 0x23;
        assert_eq!(hevc_codec_string(&h).as_deref(), Some("hvc1.A1.4.L120.90.0.0.0.0.23"));
        h[6..12].fill(0);
        assert_eq!(hevc_codec_string(&h).as_deref(), Some("hvc1.A1.4.L120"));
        assert_eq!(hevc_codec_string(&h[..12]), None);
        // ffmpeg's record for libx265 Main 640x360 (level 2.1, constraint 0x90).
        assert_eq!(hevc_codec_string(HVCC_360).as_deref(), Some("hvc1.1.6.L63.90"));
        let v = VideoInfo::from_hevc_config(HVCC_360).unwrap();
        assert_eq!((v.codecs.as_str(), v.width, v.height), ("hvc1.1.6.L63.90", 640, 360));
        // Agrees with the codec module's own string.
        assert_eq!(hevc::parse_config(HVCC_360).unwrap().codec_string(), v.codecs);
    }

    #[test]
    fn aac() {
        assert_eq!(aac_codec_string(&[0x12, 0x10]).as_deref(), Some("mp4a.40.2"));
        // Explicit SBR: 24 kHz core, stereo, 48 kHz output.
        assert_eq!(aac_codec_string(&[0x2B, 0x11, 0x88, 0x00]).as_deref(), Some("mp4a.40.5"));
        let a = AudioInfo::from_aac_config(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!((a.sample_rate, a.timescale, a.channels), (48000, 48000, 2));
        // Explicit PS: object type 29, 24 kHz mono core, 48 kHz, then AAC-LC.
        assert_eq!(aac_codec_string(&[0xEB, 0x09, 0x88, 0x00]).as_deref(), Some("mp4a.40.29"));
        let a = AudioInfo::from_aac_config(&[0xEB, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!((a.codecs.as_str(), a.sample_rate, a.channels), ("mp4a.40.29", 48000, 2));
        let a = AudioInfo::from_aac_config(&[0x11, 0x90]).unwrap();
        assert_eq!((a.codecs.as_str(), a.sample_rate, a.channels), ("mp4a.40.2", 48000, 2));
        assert_eq!(aac_codec_string(&[]), None);
    }

    #[test]
    fn frame_rates() {
        let f = |x: f64| FrameRate::from_f64(x).map(|r| r.to_string());
        assert_eq!(f(25.0).as_deref(), Some("25"));
        assert_eq!(f(30000.0 / 1001.0).as_deref(), Some("30000/1001"));
        assert_eq!(f(60000.0 / 1001.0).as_deref(), Some("60000/1001"));
        assert_eq!(f(24000.0 / 1001.0).as_deref(), Some("24000/1001"));
        assert_eq!(f(12.5).as_deref(), Some("25/2"));
        assert_eq!(f(0.0), None);
        assert_eq!(f(f64::NAN), None);
    }
}
