//! H.265: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3) an enhanced-RTMP publisher
//! sends as its video sequence header, the SPS inside it (ISO/IEC 23008-2 §7.3.2.2: profile, tier,
//! level, chroma format, cropped picture size, VUI frame rate), and the pieces needed to build such
//! a record from an Annex B byte stream.

use std::fmt::Write as _;

use super::bits::{unescape_rbsp, BitReader};
use super::CodecError;

const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;

/// Spec limits used to bound every loop over coded counts.
const MAX_SUB_LAYERS: u32 = 7;
const MAX_SHORT_TERM_RPS: u32 = 64;
const MAX_DELTA_POCS: usize = 16;
const MAX_LONG_TERM_REFS: u32 = 32;
/// abs_delta_rps_minus1 and delta_poc_s*_minus1 are at most 2^15 - 1.
const MAX_DELTA_POC_MINUS1: u32 = (1 << 15) - 1;
const MAX_PICTURE_SIDE: u32 = 65535;

#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    pub general_profile_space: u8,
    pub general_tier: bool,
    pub general_profile_idc: u8,
    /// general_profile_compatibility_flag[0..32], flag 0 in the most significant bit.
    pub general_profile_compat: u32,
    /// The 48 constraint indicator bits, starting with general_progressive_source_flag.
    pub general_constraint: [u8; 6],
    pub general_level_idc: u8,
    /// chroma_format_idc as the record states it.
    pub chroma_format: u32,
    pub bit_depth_luma: u32,
    /// Bytes in each NAL unit's length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    pub vps: Vec<Vec<u8>>,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    /// The first SPS, parsed.
    pub info: HevcSpsInfo,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HevcSpsInfo {
    pub profile_idc: u8,
    pub level_idc: u8,
    /// High tier.
    pub tier: bool,
    pub chroma_format: u32,
    pub bit_depth_luma: u32,
    /// Displayed size in luma samples, after the conformance window.
    pub width: u32,
    pub height: u32,
    /// time_scale / num_units_in_tick from the VUI timing info, when present.
    pub frame_rate: Option<f64>,
}

impl HevcConfig {
    /// The codec string of ISO/IEC 14496-15 Annex E.3 (RFC 6381), e.g. "hvc1.1.6.L93.90":
    /// profile space letter and profile idc, the compatibility flags in reverse bit order, tier and
    /// level, then the constraint bytes with trailing zero bytes left out.
    pub fn codec_string(&self) -> String {
        let space = match self.general_profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let tier = if self.general_tier { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{tier}{}",
            self.general_profile_idc,
            self.general_profile_compat.reverse_bits(),
            self.general_level_idc
        );
        let keep = self.general_constraint.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for b in self.general_constraint.iter().take(keep) {
            let _ = write!(s, ".{b:X}");
        }
        s
    }
}

/// The type of a NAL unit from its two-byte header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// Splits an Annex B byte stream at its 3- and 4-byte start codes. Bytes before the first start
/// code, the zero bytes that precede a start code and empty NAL units are dropped.
pub fn split_annexb(data: &[u8]) -> Vec<&[u8]> {
    fn push<'a>(out: &mut Vec<&'a [u8]>, nal: Option<&'a [u8]>) {
        let nal = nal.unwrap_or_default();
        let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if let Some(nal) = nal.get(..end).filter(|n| !n.is_empty()) {
            out.push(nal);
        }
    }
    let mut out = Vec::new();
    let mut start = None;
    let mut i = 0;
    while let Some(&[a, b, c]) = data.get(i..i + 3) {
        if a == 0 && b == 0 && c == 1 {
            if let Some(s) = start {
                push(&mut out, data.get(s..i));
            }
            i += 3;
            start = Some(i);
        } else if c > 1 {
            // No start code can begin at i, i + 1 or i + 2.
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push(&mut out, data.get(s..));
    }
    out
}

struct ByteReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.b.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        let s = self.take(1)?;
        s.first().copied().ok_or(CodecError::Truncated)
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        match *self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(CodecError::Truncated),
        }
    }
}

/// Parses an HEVCDecoderConfigurationRecord (the video sequence header payload after the FLV /
/// enhanced-RTMP video tag header). NAL unit arrays other than VPS, SPS and PPS (SEI) are skipped.
pub fn parse_config(b: &[u8]) -> Result<HevcConfig, CodecError> {
    let mut rd = ByteReader { b, pos: 0 };
    let head: [u8; 23] = rd.take(23)?.try_into().map_err(|_| CodecError::Truncated)?;
    // configurationVersion, profile space / tier / idc, compatibility flags, constraint flags,
    // level, min_spatial_segmentation_idc, parallelismType, chromaFormat, bit depths,
    // avgFrameRate, frame rate / layers / lengthSizeMinusOne, numOfArrays.
    let [version, ptl, c0, c1, c2, c3, k0, k1, k2, k3, k4, k5, level, rest @ ..] = head;
    let [_, _, _, chroma, luma, _, _, _, misc, n] = rest;
    if version != 1 {
        return Err(CodecError::Invalid("HEVC configuration version is not 1"));
    }
    let nal_length_size = (misc & 3) + 1;
    if nal_length_size == 3 {
        return Err(CodecError::Invalid("NAL length size 3"));
    }
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let kind = rd.u8()? & 0x3f;
        let count = rd.u16()?;
        for _ in 0..count {
            let len = usize::from(rd.u16()?);
            let nal = rd.take(len)?;
            match kind {
                NAL_VPS => vps.push(nal.to_vec()),
                NAL_SPS => sps.push(nal.to_vec()),
                NAL_PPS => pps.push(nal.to_vec()),
                _ => {}
            }
        }
    }
    let first = sps.first().ok_or(CodecError::Invalid("no SPS"))?;
    let info = parse_sps(first)?;
    Ok(HevcConfig {
        general_profile_space: ptl >> 6,
        general_tier: ptl & 0x20 != 0,
        general_profile_idc: ptl & 0x1f,
        general_profile_compat: u32::from_be_bytes([c0, c1, c2, c3]),
        general_constraint: [k0, k1, k2, k3, k4, k5],
        general_level_idc: level,
        chroma_format: u32::from(chroma & 3),
        bit_depth_luma: u32::from(luma & 7) + 8,
        nal_length_size,
        vps,
        sps,
        pps,
        info,
    })
}

/// Builds an HEVCDecoderConfigurationRecord with 4-byte NAL lengths and complete arrays; the
/// general fields come from the first SPS. Empty arrays are left out.
pub fn build_config(vps: &[&[u8]], sps: &[&[u8]], pps: &[&[u8]]) -> Result<Vec<u8>, CodecError> {
    let first = sps.first().ok_or(CodecError::Invalid("no SPS"))?;
    let s = parse_sps_full(first)?;
    let p = &s.ptl;
    let (Some(luma), Some(chroma)) = (s.bit_depth_luma.checked_sub(8), s.bit_depth_chroma.checked_sub(8))
    else {
        return Err(CodecError::Invalid("bit depth"));
    };
    if luma > 7 || chroma > 7 {
        return Err(CodecError::Invalid("bit depth above 15 does not fit the record"));
    }
    let mut out = Vec::with_capacity(64);
    out.push(1);
    out.push((p.profile_space << 6) | (u8::from(p.tier) << 5) | p.profile_idc);
    out.extend_from_slice(&p.compat.to_be_bytes());
    out.extend_from_slice(&p.constraint);
    out.push(p.level_idc);
    out.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc 0: unknown
    out.push(0xfc); // parallelismType 0: unknown
    out.push(0xfc | (s.chroma_format & 3) as u8);
    out.push(0xf8 | luma as u8);
    out.push(0xf8 | chroma as u8);
    // avgFrameRate 0 (unspecified); constantFrameRate 0 (unknown), numTemporalLayers,
    // temporalIdNested, lengthSizeMinusOne 3.
    out.extend_from_slice(&[0, 0]);
    out.push((s.max_sub_layers << 3) | (u8::from(s.temporal_id_nesting) << 2) | 3);
    let arrays = [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)];
    out.push(arrays.iter().filter(|(_, nals)| !nals.is_empty()).count() as u8);
    for (kind, nals) in arrays.iter().filter(|(_, nals)| !nals.is_empty()) {
        let count = u16::try_from(nals.len()).map_err(|_| CodecError::Invalid("too many NAL units"))?;
        out.push(0x80 | kind);
        out.extend_from_slice(&count.to_be_bytes());
        for nal in nals.iter() {
            if nal_type(nal) != Some(*kind) {
                return Err(CodecError::Invalid("NAL unit of the wrong type in parameter set array"));
            }
            let len = u16::try_from(nal.len()).map_err(|_| CodecError::Invalid("NAL unit too long"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(nal);
        }
    }
    Ok(out)
}

/// The general part of profile_tier_level().
struct ProfileTierLevel {
    profile_space: u8,
    tier: bool,
    profile_idc: u8,
    compat: u32,
    constraint: [u8; 6],
    level_idc: u8,
}

/// Everything the SPS says that the info and the configuration record need.
struct Sps {
    ptl: ProfileTierLevel,
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma_format: u32,
    bit_depth_luma: u32,
    bit_depth_chroma: u32,
    width: u32,
    height: u32,
    frame_rate: Option<f64>,
}

/// profile_tier_level(1, max_sub_layers_minus1), §7.3.3.
fn profile_tier_level(r: &mut BitReader, max_sub_layers_minus1: u32) -> Result<ProfileTierLevel, CodecError> {
    let first = r.bits(8)?;
    let compat = r.bits(32)?;
    let mut constraint = [0u8; 6];
    for c in constraint.iter_mut() {
        *c = r.bits(8)? as u8;
    }
    let level_idc = r.bits(8)? as u8;
    let n = max_sub_layers_minus1.min(MAX_SUB_LAYERS - 1) as usize;
    let mut present = [(false, false); MAX_SUB_LAYERS as usize - 1];
    for p in present.iter_mut().take(n) {
        *p = (r.flag()?, r.flag()?);
    }
    if n > 0 {
        r.skip(2 * (8 - n))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(n) {
        if profile {
            r.skip(88)?; // sub_layer profile space .. inbld flag
        }
        if level {
            r.skip(8)?; // sub_layer_level_idc
        }
    }
    Ok(ProfileTierLevel {
        profile_space: (first >> 6) as u8,
        tier: first & 0x20 != 0,
        profile_idc: (first & 0x1f) as u8,
        compat,
        constraint,
        level_idc,
    })
}

/// scaling_list_data(), §7.3.4: read and discarded.
fn skip_scaling_list_data(r: &mut BitReader) -> Result<(), CodecError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for matrix_id in (0..6u32).step_by(step) {
            if !r.flag()? {
                // scaling_list_pred_matrix_id_delta: a copy of an earlier list (or the default).
                if r.ue()? > matrix_id / step as u32 {
                    return Err(CodecError::Invalid("scaling_list_pred_matrix_id_delta"));
                }
            } else {
                let coefs = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se()?; // scaling_list_dc_coef_minus8
                }
                for _ in 0..coefs {
                    r.se()?; // scaling_list_delta_coef
                }
            }
        }
    }
    Ok(())
}

/// The delta POCs of one short-term reference picture set: negatives (S0, decreasing) and
/// positives (S1, increasing).
#[derive(Default, Clone)]
struct StRps {
    s0: Vec<i64>,
    s1: Vec<i64>,
}

/// st_ref_pic_set(idx) as it appears in the SPS (§7.3.7, semantics §7.4.8).
fn st_ref_pic_set(r: &mut BitReader, idx: usize, sets: &[StRps]) -> Result<StRps, CodecError> {
    let inter = idx != 0 && r.flag()?;
    if inter {
        // In the SPS, delta_idx_minus1 is not coded: the reference is the previous set.
        let reference =
            idx.checked_sub(1).and_then(|i| sets.get(i)).ok_or(CodecError::Invalid("st_ref_pic_set"))?;
        let sign = r.flag()?;
        let abs = r.ue()?;
        if abs > MAX_DELTA_POC_MINUS1 {
            return Err(CodecError::Invalid("abs_delta_rps_minus1"));
        }
        let delta_rps = if sign { -(i64::from(abs) + 1) } else { i64::from(abs) + 1 };
        // One (used_by_curr_pic_flag, use_delta_flag) per reference entry, then one for the
        // reference picture itself: index j < S0.len() is S0[j], then S1, then deltaRps itself.
        let n = reference.s0.len() + reference.s1.len();
        let mut use_delta = [false; MAX_DELTA_POCS + 1];
        for u in use_delta.iter_mut().take(n + 1) {
            let used = r.flag()?;
            *u = used || r.flag()?;
        }
        let uses = |j: usize| use_delta.get(j).copied().unwrap_or(false);
        let neg = reference.s0.len();
        let mut out = StRps::default();
        // (7-61): negative deltas, nearest first.
        for (j, d) in reference.s1.iter().enumerate().rev() {
            let p = d + delta_rps;
            if p < 0 && uses(neg + j) {
                out.s0.push(p);
            }
        }
        if delta_rps < 0 && uses(n) {
            out.s0.push(delta_rps);
        }
        for (j, d) in reference.s0.iter().enumerate() {
            let p = d + delta_rps;
            if p < 0 && uses(j) {
                out.s0.push(p);
            }
        }
        // (7-62): positive deltas, nearest first.
        for (j, d) in reference.s0.iter().enumerate().rev() {
            let p = d + delta_rps;
            if p > 0 && uses(j) {
                out.s1.push(p);
            }
        }
        if delta_rps > 0 && uses(n) {
            out.s1.push(delta_rps);
        }
        for (j, d) in reference.s1.iter().enumerate() {
            let p = d + delta_rps;
            if p > 0 && uses(neg + j) {
                out.s1.push(p);
            }
        }
        if out.s0.len() + out.s1.len() > MAX_DELTA_POCS {
            return Err(CodecError::Invalid("too many delta POCs in predicted st_ref_pic_set"));
        }
        Ok(out)
    } else {
        let negatives = r.ue()? as usize;
        let positives = r.ue()? as usize;
        if negatives.saturating_add(positives) > MAX_DELTA_POCS {
            return Err(CodecError::Invalid("num_negative_pics + num_positive_pics"));
        }
        let mut out = StRps::default();
        let mut poc = 0i64;
        for _ in 0..negatives {
            let d = r.ue()?;
            if d > MAX_DELTA_POC_MINUS1 {
                return Err(CodecError::Invalid("delta_poc_s0_minus1"));
            }
            poc -= i64::from(d) + 1;
            out.s0.push(poc);
            r.skip(1)?; // used_by_curr_pic_s0_flag
        }
        poc = 0;
        for _ in 0..positives {
            let d = r.ue()?;
            if d > MAX_DELTA_POC_MINUS1 {
                return Err(CodecError::Invalid("delta_poc_s1_minus1"));
            }
            poc += i64::from(d) + 1;
            out.s1.push(poc);
            r.skip(1)?; // used_by_curr_pic_s1_flag
        }
        Ok(out)
    }
}

/// vui_parameters(), Annex E.2.1, up to the timing info: the frame rate, if signalled.
fn vui_frame_rate(r: &mut BitReader) -> Result<Option<f64>, CodecError> {
    if r.flag()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.skip(32)?; // sar_width, sar_height
        }
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.skip(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coeffs
        }
    }
    if r.flag()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    r.skip(3)?; // neutral_chroma_indication, field_seq, frame_field_info_present
    if r.flag()? {
        for _ in 0..4 {
            r.ue()?; // def_disp_win_{left,right,top,bottom}_offset
        }
    }
    if !r.flag()? {
        return Ok(None);
    }
    let units = r.bits(32)?;
    let scale = r.bits(32)?;
    Ok((units > 0 && scale > 0).then(|| f64::from(scale) / f64::from(units)))
}

fn parse_sps_full(nal: &[u8]) -> Result<Sps, CodecError> {
    if nal_type(nal) != Some(NAL_SPS) {
        return Err(CodecError::Invalid("not an SPS NAL unit"));
    }
    let rbsp = unescape_rbsp(nal.get(2..).ok_or(CodecError::Truncated)?);
    let mut r = BitReader::new(&rbsp);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 >= MAX_SUB_LAYERS {
        return Err(CodecError::Invalid("sps_max_sub_layers_minus1"));
    }
    let temporal_id_nesting = r.flag()?;
    let ptl = profile_tier_level(&mut r, max_sub_layers_minus1)?;
    if r.ue()? > 15 {
        return Err(CodecError::Invalid("sps_seq_parameter_set_id"));
    }
    let chroma_format = r.ue()?;
    if chroma_format > 3 {
        return Err(CodecError::Invalid("chroma_format_idc"));
    }
    if chroma_format == 3 {
        // separate_colour_plane_flag: SubWidthC and SubHeightC are 1 with or without it.
        r.skip(1)?;
    }
    let width = r.ue()?;
    let height = r.ue()?;
    if width == 0 || height == 0 || width > MAX_PICTURE_SIDE || height > MAX_PICTURE_SIDE {
        return Err(CodecError::Invalid("picture size"));
    }
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Offsets are in units of SubWidthC / SubHeightC luma samples (Table 6-1).
        let (sub_w, sub_h) = match chroma_format {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        crop_x = sub_w * (u64::from(left) + u64::from(right));
        crop_y = sub_h * (u64::from(top) + u64::from(bottom));
    }
    if crop_x >= u64::from(width) || crop_y >= u64::from(height) {
        return Err(CodecError::Invalid("conformance window"));
    }
    let bit_depth_luma = r.ue()?;
    let bit_depth_chroma = r.ue()?;
    if bit_depth_luma > 8 || bit_depth_chroma > 8 {
        return Err(CodecError::Invalid("bit depth"));
    }
    let log2_max_poc_lsb_minus4 = r.ue()?;
    if log2_max_poc_lsb_minus4 > 12 {
        return Err(CodecError::Invalid("log2_max_pic_order_cnt_lsb_minus4"));
    }
    let first_ordered = if r.flag()? { 0 } else { max_sub_layers_minus1 };
    for _ in first_ordered..=max_sub_layers_minus1 {
        if r.ue()? >= MAX_DELTA_POCS as u32 {
            return Err(CodecError::Invalid("sps_max_dec_pic_buffering_minus1"));
        }
        r.ue()?; // sps_max_num_reorder_pics
        r.ue()?; // sps_max_latency_increase_plus1
    }
    r.ue()?; // log2_min_luma_coding_block_size_minus3
    r.ue()?; // log2_diff_max_min_luma_coding_block_size
    r.ue()?; // log2_min_luma_transform_block_size_minus2
    r.ue()?; // log2_diff_max_min_luma_transform_block_size
    r.ue()?; // max_transform_hierarchy_depth_inter
    r.ue()?; // max_transform_hierarchy_depth_intra
    if r.flag()? && r.flag()? {
        // scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        skip_scaling_list_data(&mut r)?;
    }
    r.skip(2)?; // amp_enabled_flag, sample_adaptive_offset_enabled_flag
    if r.flag()? {
        // pcm_enabled_flag
        r.skip(8)?; // pcm_sample_bit_depth_{luma,chroma}_minus1
        r.ue()?; // log2_min_pcm_luma_coding_block_size_minus3
        r.ue()?; // log2_diff_max_min_pcm_luma_coding_block_size
        r.skip(1)?; // pcm_loop_filter_disabled_flag
    }
    let rps_count = r.ue()?;
    if rps_count > MAX_SHORT_TERM_RPS {
        return Err(CodecError::Invalid("num_short_term_ref_pic_sets"));
    }
    let mut sets: Vec<StRps> = Vec::with_capacity(rps_count as usize);
    for idx in 0..rps_count as usize {
        let set = st_ref_pic_set(&mut r, idx, &sets)?;
        sets.push(set);
    }
    if r.flag()? {
        // long_term_ref_pics_present_flag
        let count = r.ue()?;
        if count > MAX_LONG_TERM_REFS {
            return Err(CodecError::Invalid("num_long_term_ref_pics_sps"));
        }
        for _ in 0..count {
            // lt_ref_pic_poc_lsb_sps (log2_max_pic_order_cnt_lsb bits), used_by_curr_pic_lt_sps_flag
            r.skip(log2_max_poc_lsb_minus4 as usize + 5)?;
        }
    }
    r.skip(2)?; // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag

    // A damaged VUI costs only the frame rate.
    let frame_rate = if r.flag()? { vui_frame_rate(&mut r).ok().flatten() } else { None };
    Ok(Sps {
        ptl,
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nesting,
        chroma_format,
        bit_depth_luma: bit_depth_luma + 8,
        bit_depth_chroma: bit_depth_chroma + 8,
        width: (u64::from(width) - crop_x) as u32,
        height: (u64::from(height) - crop_y) as u32,
        frame_rate,
    })
}

/// Parses a sequence parameter set NAL unit (with its two-byte NAL header).
pub fn parse_sps(nal: &[u8]) -> Result<HevcSpsInfo, CodecError> {
    let s = parse_sps_full(nal)?;
    Ok(HevcSpsInfo {
        profile_idc: s.ptl.profile_idc,
        level_idc: s.ptl.level_idc,
        tier: s.ptl.tier,
        chroma_format: s.chroma_format,
        bit_depth_luma: s.bit_depth_luma,
        width: s.width,
        height: s.height,
        frame_rate: s.frame_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // libx265 (ffmpeg -f lavfi -i testsrc ... -c:v libx265 -f hevc): the Annex B parameter sets
    // at the start of each stream, cut before the first SEI.
    const MAIN_360: &[u8] = include_bytes!("../../tests/data/hevc_main_640x360.bin");
    const MAIN_720: &[u8] = include_bytes!("../../tests/data/hevc_main_1280x720.bin");
    const MAIN10_360: &[u8] = include_bytes!("../../tests/data/hevc_main10_640x360.bin");
    const REXT444_360: &[u8] = include_bytes!("../../tests/data/hevc_rext444_640x360.bin");
    // yuv422p10le, 426x240 at 30000/1001, temporal-layers, sar, colour description, display
    // window, HRD.
    const REXT422_240: &[u8] = include_bytes!("../../tests/data/hevc_rext422_10bit_426x240.bin");
    // A custom scaling-list file (explicit and predicted lists) and two temporal sub-layers.
    const SCALING_240: &[u8] = include_bytes!("../../tests/data/hevc_main_scaling_320x240.bin");
    // The hvcC boxes ffmpeg's mp4 muxer wrote for two of the streams above.
    const HVCC_360: &[u8] = include_bytes!("../../tests/data/hevc_hvcc_main_640x360.bin");
    const HVCC_422: &[u8] = include_bytes!("../../tests/data/hevc_hvcc_rext422_10bit_426x240.bin");

    const ANNEXB: [&[u8]; 6] = [MAIN_360, MAIN_720, MAIN10_360, REXT444_360, REXT422_240, SCALING_240];

    fn config_of(annexb: &[u8]) -> HevcConfig {
        let nals = split_annexb(annexb);
        let of = |t: u8| -> Vec<&[u8]> { nals.iter().copied().filter(|n| nal_type(n) == Some(t)).collect() };
        let record = build_config(&of(NAL_VPS), &of(NAL_SPS), &of(NAL_PPS)).unwrap();
        parse_config(&record).unwrap()
    }

    #[test]
    fn splits_annexb() {
        for f in ANNEXB {
            let types: Vec<_> = split_annexb(f).iter().map(|n| nal_type(n).unwrap()).collect();
            assert_eq!(types, [NAL_VPS, NAL_SPS, NAL_PPS]);
        }
        let mixed = [9, 0, 0, 1, 0x40, 1, 0, 0, 0, 0, 1, 0x42, 1, 5, 0, 0, 1, 0, 0, 1, 0x44, 1, 0];
        let want: [&[u8]; 3] = [&[0x40, 1], &[0x42, 1, 5], &[0x44, 1]];
        assert_eq!(split_annexb(&mixed), want);
        assert!(split_annexb(&[]).is_empty());
        assert!(split_annexb(&[0x40, 1, 2, 3]).is_empty());
        assert!(split_annexb(&[0, 0, 1, 0, 0, 0, 1]).is_empty());
        assert_eq!(nal_type(&[0x42, 0x01]), Some(33));
        assert_eq!(nal_type(&[]), None);
    }

    #[test]
    fn fixtures_from_libx265() {
        // (stream, width, height, profile_idc, chroma_format, bit depth, frame rate)
        type Case = (&'static [u8], u32, u32, u8, u32, u32, f64);
        let cases: [Case; 6] = [
            (MAIN_360, 640, 360, 1, 1, 8, 25.0),
            (MAIN_720, 1280, 720, 1, 1, 8, 30.0),
            (MAIN10_360, 640, 360, 2, 1, 10, 30.0),
            (REXT444_360, 640, 360, 4, 3, 8, 25.0),
            (REXT422_240, 426, 240, 4, 2, 10, 30000.0 / 1001.0),
            (SCALING_240, 320, 240, 1, 1, 8, 24.0),
        ];
        for (f, w, h, profile, chroma, depth, rate) in cases {
            let c = config_of(f);
            let i = &c.info;
            // 360 is coded as 368 and 426 as 432: only the conformance window gives these.
            assert_eq!((i.width, i.height), (w, h));
            assert_eq!((i.profile_idc, i.chroma_format, i.bit_depth_luma), (profile, chroma, depth));
            assert_eq!((c.general_profile_idc, c.chroma_format, c.bit_depth_luma), (profile, chroma, depth));
            assert_eq!(i.frame_rate, Some(rate));
            assert!(!i.tier);
            assert_eq!(c.nal_length_size, 4);
        }
    }

    #[test]
    fn codec_strings() {
        // Checked against the hvcC boxes of the same streams muxed by ffmpeg (-tag:v hvc1); ffprobe
        // reports the same profiles (Main, Main 10, Rext) and levels (63 = 2.1, 93 = 3.1, 60 = 2).
        assert_eq!(config_of(MAIN_360).codec_string(), "hvc1.1.6.L63.90");
        assert_eq!(config_of(MAIN_720).codec_string(), "hvc1.1.6.L93.90");
        assert_eq!(config_of(MAIN10_360).codec_string(), "hvc1.2.4.L63.90");
        assert_eq!(config_of(REXT444_360).codec_string(), "hvc1.4.10.L63.9E.8");
        assert_eq!(config_of(REXT422_240).codec_string(), "hvc1.4.10.L60.9D.8");
        let mut c = config_of(MAIN_720);
        c.general_profile_space = 1;
        c.general_tier = true;
        c.general_level_idc = 120;
        c.general_constraint = [0xb0, 0, 0, 0, 0, 0x23];
        assert_eq!(c.codec_string(), "hvc1.A1.6.H120.B0.0.0.0.0.23");
        c.general_constraint = [0; 6];
        assert_eq!(c.codec_string(), "hvc1.A1.6.H120");
    }

    #[test]
    fn records_from_ffmpeg() {
        for (record, annexb) in [(HVCC_360, MAIN_360), (HVCC_422, REXT422_240)] {
            let theirs = parse_config(record).unwrap();
            let ours = config_of(annexb);
            assert_eq!(theirs, ours);
            // Byte for byte too, except what needs more than the SPS: min_spatial_segmentation_idc,
            // parallelismType and avgFrameRate.
            let nals = split_annexb(annexb);
            let built = build_config(&nals[..1], &nals[1..2], &nals[2..]).unwrap();
            assert_eq!(built.len(), record.len());
            for (i, (a, b)) in built.iter().zip(record).enumerate() {
                if !(13..16).contains(&i) && !(19..21).contains(&i) {
                    assert_eq!(a, b, "byte {i}");
                }
            }
        }
    }

    #[test]
    fn build_parse_round_trip() {
        for f in ANNEXB {
            let nals = split_annexb(f);
            let (vps, sps, pps) = (&nals[..1], &nals[1..2], &nals[2..]);
            let c = parse_config(&build_config(vps, sps, pps).unwrap()).unwrap();
            assert_eq!(c.vps, [vps[0].to_vec()]);
            assert_eq!(c.sps, [sps[0].to_vec()]);
            assert_eq!(c.pps, [pps[0].to_vec()]);
            assert_eq!(c.info, parse_sps(sps[0]).unwrap());
            assert_eq!(c.general_level_idc, c.info.level_idc);
            // Without VPS and PPS arrays, with two SPS.
            let c = parse_config(&build_config(&[], &[sps[0], sps[0]], &[]).unwrap()).unwrap();
            assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (0, 2, 0));
        }
        let nals = split_annexb(MAIN_360);
        assert_eq!(build_config(&[], &[], &[]), Err(CodecError::Invalid("no SPS")));
        assert!(build_config(&[nals[1]], &[nals[1]], &[]).is_err());
        assert!(build_config(&[], &[nals[1]], &[&[]]).is_err());
    }

    #[test]
    fn hostile_records() {
        assert_eq!(parse_config(&[]), Err(CodecError::Truncated));
        let mut b = HVCC_360.to_vec();
        b[0] = 0;
        assert!(matches!(parse_config(&b), Err(CodecError::Invalid(_))));
        let mut b = HVCC_360.to_vec();
        b[21] = (b[21] & !3) | 2;
        assert_eq!(parse_config(&b), Err(CodecError::Invalid("NAL length size 3")));
        let mut b = HVCC_360.to_vec();
        b[22] = 4; // one array more than present
        assert_eq!(parse_config(&b), Err(CodecError::Truncated));
        let mut b = HVCC_360[..23].to_vec();
        b[22] = 0;
        assert_eq!(parse_config(&b), Err(CodecError::Invalid("no SPS")));
        assert!(parse_sps(&[0x40, 0x01, 0xff]).is_err());
        assert_eq!(parse_sps(&[0x42]), Err(CodecError::Truncated));
    }

    /// An RBSP bit writer for synthetic parameter sets.
    #[derive(Default)]
    struct W(Vec<bool>);

    impl W {
        fn u(&mut self, n: u32, v: u64) {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
        }
        fn f(&mut self, b: bool) {
            self.0.push(b);
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.u(len - 1, 0);
            self.u(len, x);
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 { 2 * v as u32 - 1 } else { 2 * v.unsigned_abs() });
        }
        /// rbsp_trailing_bits, bytes, emulation prevention, behind the NAL header.
        fn nal(mut self, header: [u8; 2]) -> Vec<u8> {
            self.0.push(true);
            self.0.resize(self.0.len().div_ceil(8) * 8, false);
            let mut out = header.to_vec();
            let mut zeros = 0;
            for byte in self.0.chunks(8) {
                let b = byte.iter().fold(0u8, |a, &bit| (a << 1) | u8::from(bit));
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Vui {
        Full,
        Cut,
        Absent,
    }

    #[derive(Clone, Copy)]
    struct Opts {
        rps_count: u32,
        set0_negatives: u32,
        vui: Vui,
    }

    const RICH: Opts = Opts { rps_count: 6, set0_negatives: 2, vui: Vui::Full };

    /// An SPS using what libx265 does not: four sub-layers with sub-layer profile and level,
    /// 4:4:4 with separate colour planes, 12 bits, PCM, short-term RPS sets predicted from one
    /// another, long-term references and a VUI with every field before the timing info.
    /// (Cross-checked with ffmpeg's trace_headers bitstream filter.)
    fn rich_sps(o: Opts) -> Vec<u8> {
        let mut w = W::default();
        w.u(4, 0); // sps_video_parameter_set_id
        w.u(3, 3); // sps_max_sub_layers_minus1
        w.f(false); // sps_temporal_id_nesting_flag
        w.u(2, 0); // general_profile_space
        w.f(true); // general_tier_flag
        w.u(5, 4); // general_profile_idc
        w.u(32, 1 << 27); // general_profile_compatibility_flag[4]
        w.u(48, 0x9c08_0000_0000); // progressive, frame only, max 12 bit, max 10 bit, lower bit rate
        w.u(8, 153); // general_level_idc
        for (profile, level) in [(true, true), (false, true), (true, false)] {
            w.f(profile);
            w.f(level);
        }
        w.u(10, 0); // reserved_zero_2bits for sub-layers 3..8
        w.u(8, 2); // sub-layer 0 profile: Main 10
        w.u(32, 1 << 29);
        w.u(48, 0x9000_0000_0000);
        w.u(8, 120); // sub-layer 0 level
        w.u(8, 93); // sub-layer 1 level
        w.u(8, 1); // sub-layer 2 profile: Main
        w.u(32, 0x6000_0000);
        w.u(48, 0x9000_0000_0000);
        w.ue(0); // sps_seq_parameter_set_id
        w.ue(3); // chroma_format_idc
        w.f(true); // separate_colour_plane_flag
        w.ue(1928); // pic_width_in_luma_samples
        w.ue(1088); // pic_height_in_luma_samples
        w.f(true); // conformance_window_flag
        for offset in [2, 6, 0, 8] {
            w.ue(offset);
        }
        w.ue(4); // bit_depth_luma_minus8
        w.ue(4); // bit_depth_chroma_minus8
        w.ue(4); // log2_max_pic_order_cnt_lsb_minus4
        w.f(true); // sps_sub_layer_ordering_info_present_flag
        for _ in 0..4 {
            w.ue(4);
            w.ue(2);
            w.ue(0);
        }
        for v in [0, 3, 0, 3, 1, 1] {
            w.ue(v); // block sizes and transform depths
        }
        w.f(true); // scaling_list_enabled_flag
        w.f(true); // sps_scaling_list_data_present_flag
        for size_id in 0..4 {
            for matrix_id in (0..6).step_by(if size_id == 3 { 3 } else { 1 }) {
                if matrix_id % 2 == 1 {
                    w.f(false); // scaling_list_pred_mode_flag
                    w.ue(1); // scaling_list_pred_matrix_id_delta
                } else {
                    w.f(true);
                    if size_id > 1 {
                        w.se(-3); // scaling_list_dc_coef_minus8
                    }
                    for i in 0..(16 << (2 * size_id)).min(64) {
                        w.se(if i % 3 == 0 { -5 } else { 7 });
                    }
                }
            }
        }
        w.f(true); // amp_enabled_flag
        w.f(true); // sample_adaptive_offset_enabled_flag
        w.f(true); // pcm_enabled_flag
        w.u(4, 7);
        w.u(4, 7);
        w.ue(0);
        w.ue(1);
        w.f(true); // pcm_loop_filter_disabled_flag
        w.ue(o.rps_count); // num_short_term_ref_pic_sets
        for idx in 0..o.rps_count {
            match idx {
                0 => {
                    // {-1, -3 | +2}
                    w.ue(o.set0_negatives);
                    w.ue(1);
                    for i in 0..o.set0_negatives {
                        w.ue(i % 2);
                        w.f(true);
                    }
                    w.ue(1);
                    w.f(true);
                }
                1 => {
                    // From set 0 with deltaRps -1: {-1, -2, -4 |}.
                    w.f(true);
                    w.f(true); // delta_rps_sign
                    w.ue(0); // abs_delta_rps_minus1
                    for (used, use_delta) in [(true, true), (false, true), (false, false), (true, true)] {
                        w.f(used);
                        if !used {
                            w.f(use_delta);
                        }
                    }
                }
                2 => {
                    // From set 1 with deltaRps +3: {-1 | +1, +2, +3}.
                    w.f(true);
                    w.f(false);
                    w.ue(2);
                    for _ in 0..4 {
                        w.f(true);
                    }
                }
                3 => {
                    // From set 2 (four pictures, five flags) with deltaRps -2: {-3 | +1}.
                    w.f(true);
                    w.f(true);
                    w.ue(1);
                    for used in [true, false, true, true, false] {
                        w.f(used);
                        if !used {
                            w.f(false);
                        }
                    }
                }
                4 => {
                    // From set 3 (two pictures, three flags) with deltaRps +1: {-2 | +1, +2}.
                    w.f(true);
                    w.f(false);
                    w.ue(0);
                    for _ in 0..3 {
                        w.f(true);
                    }
                }
                _ => {
                    w.f(false); // inter_ref_pic_set_prediction_flag
                    w.ue(0);
                    w.ue(0);
                }
            }
        }
        w.f(true); // long_term_ref_pics_present_flag
        w.ue(2);
        for lsb in [17, 200] {
            w.u(8, lsb);
            w.f(true);
        }
        w.f(true); // sps_temporal_mvp_enabled_flag
        w.f(true); // strong_intra_smoothing_enabled_flag
        w.f(o.vui != Vui::Absent); // vui_parameters_present_flag
        if o.vui != Vui::Absent {
            w.f(true);
            w.u(8, 255); // aspect_ratio_idc: Extended_SAR
            if o.vui == Vui::Cut {
                return w.nal([0x42, 0x01]);
            }
            w.u(16, 4);
            w.u(16, 3);
            w.f(true);
            w.f(true); // overscan
            w.f(true);
            w.u(3, 5);
            w.f(true);
            w.f(true);
            w.u(24, 0x09_10_09); // colour description
            w.f(true);
            w.ue(2);
            w.ue(2); // chroma sample location
            w.u(3, 0);
            w.f(true); // default_display_window_flag
            for offset in [16, 16, 8, 8] {
                w.ue(offset);
            }
            w.f(true); // vui_timing_info_present_flag
            w.u(32, 1001);
            w.u(32, 60000);
            w.f(false); // vui_poc_proportional_to_timing_flag
            w.f(false); // vui_hrd_parameters_present_flag
            w.f(false); // bitstream_restriction_flag
        }
        w.f(false); // sps_extension_present_flag
        w.nal([0x42, 0x01])
    }

    #[test]
    fn rich_synthetic_sps() {
        let nal = rich_sps(RICH);
        let full = parse_sps_full(&nal).unwrap();
        assert_eq!((full.max_sub_layers, full.temporal_id_nesting, full.bit_depth_chroma), (4, false, 12));
        assert_eq!(full.ptl.constraint, [0x9c, 0x08, 0, 0, 0, 0]);
        let info = parse_sps(&nal).unwrap();
        assert_eq!(
            info,
            HevcSpsInfo {
                profile_idc: 4,
                level_idc: 153,
                tier: true,
                chroma_format: 3,
                bit_depth_luma: 12,
                width: 1920,
                height: 1080,
                frame_rate: Some(60000.0 / 1001.0),
            }
        );
        let c = parse_config(&build_config(&[], &[&nal], &[]).unwrap()).unwrap();
        assert_eq!(c.codec_string(), "hvc1.4.10.H153.9C.8");
        assert_eq!(c.info, info);

        // A damaged or missing VUI loses only the frame rate.
        let cut = parse_sps(&rich_sps(Opts { vui: Vui::Cut, ..RICH })).unwrap();
        assert_eq!(cut, HevcSpsInfo { frame_rate: None, ..info.clone() });
        let absent = parse_sps(&rich_sps(Opts { vui: Vui::Absent, ..RICH })).unwrap();
        assert_eq!(absent, HevcSpsInfo { frame_rate: None, ..info.clone() });
        // 64 sets are fine (the rest are empty), 65 are not.
        assert_eq!(parse_sps(&rich_sps(Opts { rps_count: 64, ..RICH })).unwrap(), info);
        assert_eq!(
            parse_sps(&rich_sps(Opts { rps_count: 65, ..RICH })),
            Err(CodecError::Invalid("num_short_term_ref_pic_sets"))
        );
        assert_eq!(
            parse_sps(&rich_sps(Opts { rps_count: 1, set0_negatives: 16, ..RICH })),
            Err(CodecError::Invalid("num_negative_pics + num_positive_pics"))
        );
        let ok = parse_sps(&rich_sps(Opts { rps_count: 1, set0_negatives: 15, ..RICH })).unwrap();
        assert_eq!(ok.width, 1920);
    }

    #[test]
    fn sps_limits() {
        // A minimal Main SPS: 64x64, no RPS, no VUI.
        fn sps(sub_layers_minus1: u64, chroma: u32, width: u32, crop_right: u32, depth: u32) -> Vec<u8> {
            let mut w = W::default();
            w.u(4, 0);
            w.u(3, sub_layers_minus1);
            w.f(true);
            w.u(8, 1);
            w.u(32, 0x6000_0000);
            w.u(48, 0);
            w.u(8, 30);
            w.ue(0);
            w.ue(chroma);
            w.ue(width);
            w.ue(64);
            w.f(true);
            for offset in [0, crop_right, 0, 0] {
                w.ue(offset);
            }
            w.ue(depth);
            w.ue(depth);
            w.ue(0);
            w.f(false);
            w.ue(1);
            w.ue(0);
            w.ue(0);
            for v in [0, 3, 0, 3, 1, 1] {
                w.ue(v);
            }
            w.u(4, 0); // scaling lists, amp, sao, pcm
            w.ue(0);
            w.u(4, 0); // long-term, mvp, smoothing, vui
            w.nal([0x42, 0x01])
        }
        let ok = parse_sps(&sps(0, 1, 64, 4, 0)).unwrap();
        assert_eq!((ok.width, ok.height, ok.chroma_format, ok.frame_rate), (56, 64, 1, None));
        assert_eq!(parse_sps(&sps(0, 2, 64, 4, 0)).unwrap().width, 56);
        assert_eq!(parse_sps(&sps(0, 0, 64, 4, 0)).unwrap().width, 60);
        assert!(parse_sps(&sps(7, 1, 64, 0, 0)).is_err());
        assert!(parse_sps(&sps(0, 4, 64, 0, 0)).is_err());
        assert!(parse_sps(&sps(0, 1, 0, 0, 0)).is_err());
        assert!(parse_sps(&sps(0, 1, 64, 32, 0)).is_err());
        assert!(parse_sps(&sps(0, 1, 64, u32::MAX - 1, 0)).is_err());
        assert!(parse_sps(&sps(0, 1, 64, 0, 9)).is_err());
        // 16-bit video has no bitDepthLumaMinus8 in the record.
        let deep = sps(0, 1, 64, 0, 8);
        assert_eq!(parse_sps(&deep).unwrap().bit_depth_luma, 16);
        assert!(build_config(&[], &[&deep], &[]).is_err());
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn poke(b: &[u8]) {
        let _ = parse_config(b);
        let _ = parse_sps(b);
        let nals = split_annexb(b);
        for nal in &nals {
            let _ = parse_sps(nal);
            let _ = nal_type(nal);
        }
        let _ = build_config(&nals, &nals, &nals);
        let _ = build_config(&[], &nals, &[]);
        if let Ok(c) = parse_config(b) {
            let _ = c.codec_string();
        }
    }

    #[test]
    fn never_panics() {
        let mut inputs: Vec<Vec<u8>> = ANNEXB.iter().map(|f| f.to_vec()).collect();
        inputs.push(HVCC_360.to_vec());
        inputs.push(HVCC_422.to_vec());
        for f in ANNEXB {
            let nals = split_annexb(f);
            inputs.push(build_config(&nals[..1], &nals[1..2], &nals[2..]).unwrap());
            inputs.push(nals[1].to_vec());
        }
        let rich = rich_sps(RICH);
        inputs.push(build_config(&[], &[&rich], &[]).unwrap());
        inputs.push(rich);
        for b in &inputs {
            for n in 0..=b.len() {
                poke(&b[..n]);
                poke(&b[n..]);
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let pick = (xorshift(&mut state) % inputs.len() as u64) as usize;
            let mut b = inputs[pick].clone();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let at = (xorshift(&mut state) % b.len() as u64) as usize;
                let r = xorshift(&mut state);
                b[at] ^= if r & 0x100 == 0 { 1 << (r % 8) } else { r as u8 | 1 };
            }
            poke(&b);
            let mut noise = vec![0x42, 0x01];
            noise.extend((0..xorshift(&mut state) % 64).map(|_| xorshift(&mut state) as u8));
            poke(&noise);
        }
    }
}
