//! AAC: the AudioSpecificConfig an RTMP publisher sends as its audio sequence header, and the
//! ADTS header that MPEG-TS segmenters put in front of each raw AAC frame.

use super::bits::BitReader;
use super::CodecError;

const RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS), after the escape for values over 30.
    pub object_type: u32,
    pub sample_rate: u32,
    pub channels: u32,
    /// Explicitly signalled SBR (HE-AAC); then `ext_sample_rate` is the output rate.
    pub sbr: bool,
    pub ps: bool,
    pub ext_sample_rate: Option<u32>,
    /// The sampling-frequency index, needed again for ADTS (15: explicit rate, no ADTS possible).
    pub rate_index: u32,
}

impl AacConfig {
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

fn object_type(r: &mut BitReader) -> Result<u32, CodecError> {
    let t = r.bits(5)?;
    Ok(if t == 31 { 32 + r.bits(6)? } else { t })
}

fn rate(r: &mut BitReader) -> Result<(u32, u32), CodecError> {
    let idx = r.bits(4)?;
    let rate = match idx {
        15 => r.bits(24)?,
        i => *RATES.get(i as usize).ok_or(CodecError::Invalid("sampling frequency index"))?,
    };
    Ok((idx, rate))
}

/// Parses an AudioSpecificConfig (the AAC sequence header payload after its 2-byte FLV header).
pub fn parse_config(b: &[u8]) -> Result<AacConfig, CodecError> {
    let mut r = BitReader::new(b);
    let mut object = object_type(&mut r)?;
    let (rate_index, sample_rate) = rate(&mut r)?;
    let channels = r.bits(4)?;
    let (mut sbr, mut ps, mut ext_sample_rate) = (false, false, None);
    if object == 5 || object == 29 {
        sbr = true;
        ps = object == 29;
        ext_sample_rate = Some(rate(&mut r)?.1);
        object = object_type(&mut r)?;
    }
    if object == 0 {
        return Err(CodecError::Invalid("audio object type 0"));
    }
    Ok(AacConfig { object_type: object, sample_rate, channels, sbr, ps, ext_sample_rate, rate_index })
}

/// The 7-byte ADTS header (no CRC) for one raw AAC frame of `frame_len` bytes.
pub fn adts_header(c: &AacConfig, frame_len: usize) -> Result<[u8; 7], CodecError> {
    let total = frame_len + 7;
    if total > 0x1FFF || c.rate_index > 12 {
        return Err(CodecError::Invalid("frame too long or rate not expressible in ADTS"));
    }
    // ADTS carries profile = object type - 1 in two bits: only types 1..=4 fit.
    let profile = c.object_type.clamp(1, 4) - 1;
    let ch = c.channels & 7;
    let len = total as u32;
    Ok([
        0xFF,
        0xF1,
        ((profile << 6) | (c.rate_index << 2) | (ch >> 2)) as u8,
        (((ch & 3) << 6) | (len >> 11)) as u8,
        ((len >> 3) & 0xFF) as u8,
        (((len & 7) << 5) | 0x1F) as u8,
        0xFC,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lc_from_ffmpeg() {
        // What FFmpeg's AAC encoder writes for 44.1 kHz mono (seen in the test media: 12 08).
        let c = parse_config(&[0x12, 0x08]).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels, c.sbr), (2, 44100, 1, false));
        assert_eq!(c.codec_string(), "mp4a.40.2");
        let c = parse_config(&[0x11, 0x90]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (48000, 2));
    }

    #[test]
    fn explicit_he_aac() {
        // SBR (5), 24 kHz core, stereo, extension 48 kHz, then AAC-LC.
        let c = parse_config(&[0x2B, 0x11, 0x88, 0x00]).unwrap();
        assert!(c.sbr && !c.ps);
        assert_eq!((c.object_type, c.sample_rate, c.channels, c.ext_sample_rate), (2, 24000, 2, Some(48000)));
    }

    #[test]
    fn adts() {
        let c = parse_config(&[0x12, 0x10]).unwrap();
        let h = adts_header(&c, 100).unwrap();
        assert_eq!(h, [0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC]);
        assert!(adts_header(&c, 9000).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..16), n in 0usize..10000) {
            if let Ok(c) = parse_config(&b) {
                let _ = adts_header(&c, n);
            }
        }
    }
}
