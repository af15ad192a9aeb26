//! H.264: the AVCDecoderConfigurationRecord an RTMP publisher sends as its video sequence header,
//! and the SPS inside it (profile, level, chroma format, cropped picture size, frame rate).

use super::bits::{unescape_rbsp, BitReader};
use super::CodecError;

#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    pub profile: u8,
    pub compat: u8,
    pub level: u8,
    /// Bytes in each NAL unit's length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    /// The first SPS, parsed.
    pub info: SpsInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub profile: u8,
    pub level: u8,
    pub chroma_format: u32,
    pub bit_depth_luma: u32,
    /// Displayed size, after frame cropping.
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    pub sar: Option<(u32, u32)>,
}

impl AvcConfig {
    /// The RFC 6381 codec string, e.g. "avc1.64001f".
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile, self.compat, self.level)
    }
}

/// Parses an AVCDecoderConfigurationRecord (the video sequence header payload after the 5-byte
/// FLV video tag header).
pub fn parse_config(b: &[u8]) -> Result<AvcConfig, CodecError> {
    let mut pos = 0;
    let mut take = |n: usize| -> Result<&[u8], CodecError> {
        let s = b.get(pos..pos + n).ok_or(CodecError::Truncated)?;
        pos += n;
        Ok(s)
    };
    let head = take(6)?;
    if head[0] != 1 {
        return Err(CodecError::Invalid("AVC configuration version is not 1"));
    }
    let (profile, compat, level) = (head[1], head[2], head[3]);
    let nal_length_size = (head[4] & 3) + 1;
    if nal_length_size == 3 {
        return Err(CodecError::Invalid("NAL length size 3"));
    }
    let mut sps = Vec::new();
    for _ in 0..(head[5] & 0x1f) {
        let len = take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        sps.push(take(len)?.to_vec());
    }
    let mut pps = Vec::new();
    let count = take(1)?[0];
    for _ in 0..count {
        let len = take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        pps.push(take(len)?.to_vec());
    }
    let first = sps.first().ok_or(CodecError::Invalid("no SPS"))?;
    let info = parse_sps(first)?;
    Ok(AvcConfig { profile, compat, level, nal_length_size, sps, pps, info })
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), CodecError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            // delta_scale is -128..=127; a hostile one must not overflow the sum.
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::Invalid("delta_scale"));
            }
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses a sequence parameter set NAL unit (with its one-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    if nal.first().map(|h| h & 0x1f) != Some(7) {
        return Err(CodecError::Invalid("not an SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile = r.bits(8)? as u8;
    r.skip(8)?;
    let level = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format, mut separate_planes, mut bit_depth_luma) = (1, false, 8);
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = r.ue()?;
        if chroma_format > 3 {
            return Err(CodecError::Invalid("chroma_format_idc"));
        }
        if chroma_format == 3 {
            separate_planes = r.flag()?;
        }
        // bit_depth_luma_minus8 is at most 6; a hostile value must not overflow the + 8.
        bit_depth_luma = r.ue()?;
        if bit_depth_luma > 6 {
            return Err(CodecError::Invalid("bit_depth_luma_minus8"));
        }
        bit_depth_luma += 8;
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.skip(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(CodecError::Invalid("num_ref_frames_in_pic_order_cnt_cycle"));
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        2 => {}
        _ => return Err(CodecError::Invalid("pic_order_cnt_type")),
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Crop offsets count chroma samples (luma for 4:4:4 or monochrome / separate planes).
        let chroma_array_type = if separate_planes { 0 } else { chroma_format };
        let (unit_x, unit_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        crop_x = unit_x * (u64::from(left) + u64::from(right));
        crop_y = unit_y * (u64::from(top) + u64::from(bottom));
    }
    let full_w = width_mbs * 16;
    let full_h = height_units * 16 * field_factor;
    if crop_x >= full_w || crop_y >= full_h || full_w > 65536 || full_h > 65536 {
        return Err(CodecError::Invalid("picture size"));
    }
    let (mut frame_rate, mut sar) = (None, None);
    if r.flag()? {
        // VUI: only what precedes timing_info is needed.
        if r.flag()? {
            let idc = r.bits(8)?;
            sar = match idc {
                255 => Some((r.bits(16)?, r.bits(16)?)),
                1..=16 => Some(SAR_TABLE[(idc - 1) as usize]),
                _ => None,
            };
        }
        if r.flag()? {
            r.skip(1)?; // overscan_appropriate_flag
        }
        if r.flag()? {
            r.skip(4)?; // video_format, video_full_range_flag
            if r.flag()? {
                r.skip(24)?;
            }
        }
        if r.flag()? {
            r.ue()?;
            r.ue()?;
        }
        if r.flag()? {
            let units = r.bits(32)?;
            let scale = r.bits(32)?;
            if units > 0 && scale > 0 {
                frame_rate = Some(f64::from(scale) / (2.0 * f64::from(units)));
            }
        }
    }
    Ok(SpsInfo {
        profile,
        level,
        chroma_format,
        bit_depth_luma,
        width: (full_w - crop_x) as u32,
        height: (full_h - crop_y) as u32,
        frame_rate,
        sar,
    })
}

/// Table E-1: sample aspect ratios for aspect_ratio_idc 1..=16.
const SAR_TABLE: [(u32, u32); 16] = [
    (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11),
    (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1),
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HIGH_360: &[u8] = include_bytes!("../../tests/data/avc_high_640x360.bin");
    const HIGH_720: &[u8] = include_bytes!("../../tests/data/avc_high_1280x720.bin");
    const HIGH_240: &[u8] = include_bytes!("../../tests/data/avc_high_426x240.bin");
    const HIGH444: &[u8] = include_bytes!("../../tests/data/avc_high444_640x360.bin");
    const BASELINE: &[u8] = include_bytes!("../../tests/data/avc_baseline_320x240.bin");

    fn size(b: &[u8]) -> (u32, u32) {
        let c = parse_config(b).unwrap();
        (c.info.width, c.info.height)
    }

    #[test]
    fn cropped_sizes_from_libx264() {
        // 360 and 240 are not multiples of 16: only frame cropping gives the right height.
        assert_eq!(size(HIGH_360), (640, 360));
        assert_eq!(size(HIGH_720), (1280, 720));
        assert_eq!(size(HIGH_240), (426, 240));
        assert_eq!(size(BASELINE), (320, 240));
    }

    #[test]
    fn profiles_levels_and_rates() {
        let c = parse_config(HIGH_720).unwrap();
        assert_eq!((c.profile, c.level, c.nal_length_size), (100, 31, 4));
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(c.info.frame_rate, Some(25.0));
        assert_eq!((c.sps.len(), c.pps.len()), (1, 1));
        let c = parse_config(HIGH444).unwrap();
        assert_eq!((c.profile, c.info.chroma_format), (244, 3));
        assert_eq!((c.info.width, c.info.height), (640, 360));
        assert_eq!(c.info.frame_rate, Some(30.0));
        assert_eq!(parse_config(BASELINE).unwrap().profile, 66);
    }

    #[test]
    fn hostile() {
        assert_eq!(parse_config(&[]), Err(CodecError::Truncated));
        assert!(parse_config(&[2, 100, 0, 30, 0xff, 0xe1]).is_err());
        for n in 0..HIGH_360.len() {
            let _ = parse_config(&HIGH_360[..n]);
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..96)) {
            let _ = parse_config(&b);
            let mut nal = vec![0x67];
            nal.extend_from_slice(&b);
            let _ = parse_sps(&nal);
        }

        #[test]
        fn corrupted_real_configs_never_panic(i in 0usize..47, v in any::<u8>()) {
            let mut b = HIGH_360.to_vec();
            b[i] = v;
            let _ = parse_config(&b);
        }
    }
}
