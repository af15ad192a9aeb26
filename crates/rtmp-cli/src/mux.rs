//! `rtmp mux-hevc`: wraps a raw HEVC elementary stream (Annex B, as `ffmpeg -c:v libx265 -f hevc`
//! writes it) into an FLV file, as the legacy codec id 12 or as Enhanced RTMP `hvc1`, so that both
//! forms can be published (Debian's FFmpeg 5.1 cannot write HEVC into FLV).

use std::path::Path;

use bytes::BytesMut;
use rtmp_proto::codec::hevc;
use rtmp_proto::flv;
use rtmp_proto::message::msg_type;

use crate::CliError;

/// FLV's codec id for HEVC as Chinese CDNs and SRS used it before Enhanced RTMP.
const LEGACY_HEVC_ID: u8 = 12;
const ENHANCED: u8 = 0x80;
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES_X: u8 = 3;
const PACKET_SEQUENCE_END: u8 = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Form {
    /// Codec id 12 with an AVC-style packet type and composition time.
    Legacy,
    /// ExVideoTagHeader with FourCC `hvc1`.
    Enhanced,
}

/// One access unit: its NAL units and whether it can start decoding.
#[derive(Debug, PartialEq, Eq)]
pub struct AccessUnit<'a> {
    pub nals: Vec<&'a [u8]>,
    pub keyframe: bool,
}

fn is_vcl(t: u8) -> bool {
    t < 32
}

fn is_irap(t: u8) -> bool {
    (16..=23).contains(&t)
}

/// Splits NAL units into access units (H.265 §7.4.2.4.4): a new one starts at an access unit
/// delimiter, or at a parameter set / prefix SEI or a first slice segment after a picture's slices.
pub fn access_units<'a>(nals: &[&'a [u8]]) -> Vec<AccessUnit<'a>> {
    let mut out: Vec<AccessUnit> = Vec::new();
    let mut seen_vcl = false;
    for &nal in nals {
        let Some(t) = hevc::nal_type(nal) else { continue };
        let first_slice = is_vcl(t) && nal.get(2).is_some_and(|b| b & 0x80 != 0);
        let starts_new = t == 35 || (seen_vcl && (matches!(t, 32..=34 | 39 | 41..=44) || first_slice));
        if starts_new || out.is_empty() {
            out.push(AccessUnit { nals: Vec::new(), keyframe: false });
            seen_vcl = false;
        }
        let Some(au) = out.last_mut() else { continue };
        au.keyframe |= is_irap(t);
        seen_vcl |= is_vcl(t);
        au.nals.push(nal);
    }
    out.retain(|au| au.nals.iter().any(|n| hevc::nal_type(n).is_some_and(is_vcl)));
    out
}

fn header(form: Form, keyframe: bool, packet: u8) -> Vec<u8> {
    let frame_type = if keyframe { 1 } else { 2 };
    match form {
        Form::Legacy => {
            let avc_packet = match packet {
                PACKET_SEQUENCE_START => 0,
                PACKET_SEQUENCE_END => 2,
                _ => 1,
            };
            // Composition time 0: the input has no B-frames reordering we could know of.
            vec![(frame_type << 4) | LEGACY_HEVC_ID, avc_packet, 0, 0, 0]
        }
        Form::Enhanced => {
            let mut h = vec![ENHANCED | (frame_type << 4) | packet];
            h.extend_from_slice(b"hvc1");
            h
        }
    }
}

/// The FLV video tag payloads for an Annex B HEVC stream: the sequence header, one tag per access
/// unit (parameter sets and delimiters left out; they are in the sequence header), the end.
pub fn video_tags(annexb: &[u8], form: Form) -> Result<Vec<(bool, Vec<u8>)>, CliError> {
    let nals = hevc::split_annexb(annexb);
    let of_type = |t: u8| -> Vec<&[u8]> {
        nals.iter().copied().filter(|n| hevc::nal_type(n) == Some(t)).take(1).collect()
    };
    let (vps, sps, pps) = (of_type(32), of_type(33), of_type(34));
    let config = hevc::build_config(&vps, &sps, &pps)
        .map_err(|e| CliError::Other(format!("HEVC stream: {e} (no usable VPS/SPS/PPS)")))?;
    let mut tags = Vec::new();
    let mut seq = header(form, true, PACKET_SEQUENCE_START);
    seq.extend_from_slice(&config);
    tags.push((true, seq));
    for au in access_units(&nals) {
        let mut tag = header(form, au.keyframe, PACKET_CODED_FRAMES_X);
        for nal in au.nals.iter().filter(|n| hevc::nal_type(n).is_some_and(|t| !(32..=35).contains(&t))) {
            let len = u32::try_from(nal.len()).map_err(|_| CliError::Other("NAL unit too large".into()))?;
            tag.extend_from_slice(&len.to_be_bytes());
            tag.extend_from_slice(nal);
        }
        tags.push((au.keyframe, tag));
    }
    tags.push((false, header(form, false, PACKET_SEQUENCE_END)));
    Ok(tags)
}

pub fn run(input: &Path, output: &Path, fps: f64, form: Form) -> Result<usize, CliError> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        return Err(CliError::Other(format!("--fps {fps}: expected a frame rate in (0, 1000]")));
    }
    let data = std::fs::read(input).map_err(|source| CliError::File { path: input.to_path_buf(), source })?;
    let tags = video_tags(&data, form)?;
    let mut out = BytesMut::new();
    flv::write_header(&mut out, false, true);
    let frames = tags.len().saturating_sub(2);
    for (i, (_, payload)) in tags.iter().enumerate() {
        // The sequence header and the first frame share timestamp 0; the end tag follows the last.
        let n = i.saturating_sub(1) as f64;
        flv::write_tag(&mut out, msg_type::VIDEO, (n * 1000.0 / fps).round() as u32, payload);
    }
    std::fs::write(output, &out[..]).map_err(|source| CliError::File { path: output.to_path_buf(), source })?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtmp_proto::flv::video_tag_info;

    fn nal(t: u8, first_slice: bool) -> Vec<u8> {
        vec![t << 1, 1, if first_slice { 0x80 } else { 0 }, 0xAA]
    }

    #[test]
    fn splits_access_units_without_delimiters() {
        let v = [nal(32, false), nal(33, false), nal(34, false), nal(39, false), nal(19, true), nal(19, false), nal(1, true), nal(39, false), nal(1, true)];
        let refs: Vec<&[u8]> = v.iter().map(Vec::as_slice).collect();
        let aus = access_units(&refs);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].keyframe && !aus[1].keyframe && !aus[2].keyframe);
        assert_eq!(aus[0].nals.len(), 6);
        assert_eq!(aus[1].nals.len(), 1);
        assert_eq!(aus[2].nals.len(), 2);
    }

    #[test]
    fn delimiters_start_access_units() {
        let v = [nal(35, false), nal(1, true), nal(35, false), nal(1, true), nal(1, false)];
        let refs: Vec<&[u8]> = v.iter().map(Vec::as_slice).collect();
        let aus = access_units(&refs);
        assert_eq!(aus.len(), 2);
        assert_eq!(aus[1].nals.len(), 3);
    }

    #[test]
    fn tags_parse_back_in_both_forms() {
        let stream = include_bytes!("../../rtmp-proto/tests/data/hevc_main_640x360.bin");
        for form in [Form::Legacy, Form::Enhanced] {
            let tags = video_tags(stream, form).expect("tags");
            let seq = video_tag_info(&tags[0].1).expect("sequence header");
            assert!(seq.sequence_header && seq.keyframe);
            assert_eq!(seq.fourcc, (form == Form::Enhanced).then_some(*b"hvc1"));
            // Both headers are 5 bytes: flags + AVC packet type + composition time, or flags + FourCC.
            let cfg = hevc::parse_config(&tags[0].1[5..]).expect("hvcC");
            assert_eq!((cfg.info.width, cfg.info.height), (640, 360));
        }
        assert!(video_tags(b"\0\0\x01\x02\x01", Form::Legacy).is_err());
    }
}
