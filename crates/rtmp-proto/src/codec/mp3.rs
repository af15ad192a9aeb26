//! MPEG-1/2/2.5 audio Layer I/II/III (MP1, MP2, MP3): the 4-byte header in front of every frame
//! an FLV MP3 tag carries (there is no sequence header), and a resync scan for payloads with junk.

use super::CodecError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    /// ISO 11172-3.
    Mpeg1,
    /// ISO 13818-3 low sampling frequencies (half the MPEG-1 rates).
    Mpeg2,
    /// The unofficial Fraunhofer extension to a quarter of the MPEG-1 rates, common in the wild.
    Mpeg25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Header {
    pub version: MpegVersion,
    /// 1..=3.
    pub layer: u8,
    /// 0 = free format: the rate is fixed but not signalled, so the frame length is unknown.
    pub bitrate_kbps: u32,
    pub sample_rate: u32,
    /// 1 for single channel mode, else 2 (stereo, joint stereo, dual channel).
    pub channels: u8,
    pub padding: bool,
    pub samples_per_frame: u32,
    /// Whole frame including this header; None for free format.
    pub frame_len: Option<usize>,
}

// Bit rates in kbit/s by bitrate_index 1..=14 (0 is free format, 15 is forbidden), one row per
// table of the standards: MPEG-1 has one per layer, MPEG-2 LSF (and 2.5) share one for II and III.
const BITRATES: [[u16; 14]; 5] = [
    [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

// MPEG-1 sampling frequencies by index 0..=2; MPEG-2 halves them and MPEG-2.5 quarters them.
const RATES: [u32; 3] = [44100, 48000, 32000];

impl Mp3Header {
    /// The RFC 6381 codecs parameter: MPEG-4 audio object type 34 (Layer-3) for MP3, else the
    /// MP4 object type indication of the standard the stream follows (0x6B 11172-3, 0x69 13818-3).
    pub fn codec_string(&self) -> &'static str {
        match (self.layer, self.version) {
            (3, _) => "mp4a.40.34",
            (_, MpegVersion::Mpeg1) => "mp4a.6B",
            _ => "mp4a.69",
        }
    }
}

/// Parses the 4-byte frame header at `b[0..4]`.
pub fn parse_header(b: &[u8]) -> Result<Mp3Header, CodecError> {
    let [b0, b1, b2, b3] = match b {
        [b0, b1, b2, b3, ..] => [*b0, *b1, *b2, *b3],
        _ => return Err(CodecError::Truncated),
    };
    // 11 set bits of sync; MPEG-2.5 took the last bit of the original 12-bit sync for its version.
    if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
        return Err(CodecError::Invalid("mpeg audio frame sync"));
    }
    let (version, rate_shift) = match (b1 >> 3) & 3 {
        0 => (MpegVersion::Mpeg25, 2),
        2 => (MpegVersion::Mpeg2, 1),
        3 => (MpegVersion::Mpeg1, 0),
        _ => return Err(CodecError::Invalid("reserved mpeg audio version")),
    };
    let layer = match (b1 >> 1) & 3 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => return Err(CodecError::Invalid("reserved mpeg audio layer")),
    };
    let rate_index = usize::from((b2 >> 2) & 3);
    let sample_rate = RATES.get(rate_index).ok_or(CodecError::Invalid("reserved sampling frequency"))? >> rate_shift;
    let bitrate_index = usize::from(b2 >> 4);
    if bitrate_index == 15 {
        return Err(CodecError::Invalid("forbidden bitrate index"));
    }
    let row = match (version, layer) {
        (MpegVersion::Mpeg1, 1) => 0,
        (MpegVersion::Mpeg1, 2) => 1,
        (MpegVersion::Mpeg1, _) => 2,
        (_, 1) => 3,
        _ => 4,
    };
    let bitrate_kbps = match bitrate_index.checked_sub(1) {
        None => 0,
        Some(i) => u32::from(*BITRATES.get(row).and_then(|r| r.get(i)).ok_or(CodecError::Invalid("bitrate index"))?),
    };
    let padding = b2 & 2 != 0;
    let lsf = version != MpegVersion::Mpeg1;
    let samples_per_frame = match layer {
        1 => 384,
        3 if lsf => 576,
        _ => 1152,
    };
    // Bytes per frame = samples/8 * bitrate / rate, truncated; the padding bit adds back
    // the slot that keeps the average rate exact (a slot is 4 bytes in Layer I, 1 byte otherwise).
    let frame_len = (bitrate_kbps != 0).then(|| {
        let bps = bitrate_kbps * 1000;
        let pad = u32::from(padding);
        let len = match layer {
            1 => (12 * bps / sample_rate + pad) * 4,
            _ => samples_per_frame / 8 * bps / sample_rate + pad,
        };
        len as usize
    });
    Ok(Mp3Header {
        version,
        layer,
        bitrate_kbps,
        sample_rate,
        channels: if b3 >> 6 == 3 { 1 } else { 2 },
        padding,
        samples_per_frame,
        frame_len,
    })
}

/// The first offset in `b` holding a frame header that is confirmed by the header of the frame
/// after it (same version, layer and rate) when that header lies wholly inside `b`.
///
/// An 11-bit sync pattern turns up in compressed data about once per 2 KiB, so a lone header is
/// weak evidence; a frame ending exactly where `b` ends is the normal case for a whole FLV tag.
/// Free-format frames cannot be followed without searching, so their header alone is accepted.
pub fn find_frame(b: &[u8]) -> Option<(usize, Mp3Header)> {
    (0..b.len()).find_map(|i| {
        let rest = b.get(i..)?;
        let h = parse_header(rest).ok()?;
        let Some(len) = h.frame_len else { return Some((i, h)) };
        match parse_header(rest.get(len..).unwrap_or_default()) {
            Ok(n) if (n.version, n.layer, n.sample_rate) == (h.version, h.layer, h.sample_rate) => Some((i, h)),
            Err(CodecError::Truncated) => Some((i, h)),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use MpegVersion::*;

    // The first three frames of FFmpeg output (sine tone, `-write_xing 0 -id3v2_version 0`);
    // frame lengths cross-checked against ffprobe's packet sizes.
    const L3_44100: &[u8] = include_bytes!("../../tests/data/mp3_l3_44100_stereo_128k.bin");
    const L3_22050: &[u8] = include_bytes!("../../tests/data/mp3_l3_22050_mono_32k.bin");
    const L3_11025: &[u8] = include_bytes!("../../tests/data/mp3_l3_11025_mono_16k.bin");
    const L2_48000: &[u8] = include_bytes!("../../tests/data/mp3_l2_48000_stereo_192k.bin");
    const L2_24000: &[u8] = include_bytes!("../../tests/data/mp3_l2_24000_mono_64k.bin");
    // FFmpeg's default MP3 muxer output: a 45-byte ID3v2 tag, the LAME Info frame, one audio frame.
    const ID3_INFO: &[u8] = include_bytes!("../../tests/data/mp3_id3_info_44100.bin");
    const FIXTURES: [&[u8]; 6] = [L3_44100, L3_22050, L3_11025, L2_48000, L2_24000, ID3_INFO];

    /// Walks whole frames from `at`, checking every one repeats the first header's stream
    /// parameters; returns the frame lengths, which must end exactly at the end of `b`.
    fn walk(b: &[u8], mut at: usize) -> Vec<usize> {
        let first = parse_header(&b[at..]).unwrap();
        let mut lens = Vec::new();
        while at < b.len() {
            let h = parse_header(&b[at..]).unwrap();
            assert_eq!(
                (h.version, h.layer, h.sample_rate, h.channels),
                (first.version, first.layer, first.sample_rate, first.channels)
            );
            assert_eq!(h.bitrate_kbps, first.bitrate_kbps);
            at += h.frame_len.unwrap();
            lens.push(h.frame_len.unwrap());
        }
        assert_eq!(at, b.len(), "frame walk overran the fixture");
        lens
    }

    /// Fixture, version, layer, kbit/s, rate, channels, samples per frame, frame lengths, codecs.
    type Case = (&'static [u8], MpegVersion, u8, u32, u32, u8, u32, [usize; 3], &'static str);

    #[test]
    fn ffmpeg_fixtures() {
        #[rustfmt::skip]
        let cases: [Case; 5] = [
            (L3_44100, Mpeg1, 3, 128, 44100, 2, 1152, [417, 418, 418], "mp4a.40.34"),
            (L3_22050, Mpeg2, 3, 32, 22050, 1, 576, [104, 105, 104], "mp4a.40.34"),
            (L3_11025, Mpeg25, 3, 16, 11025, 1, 576, [104, 105, 104], "mp4a.40.34"),
            (L2_48000, Mpeg1, 2, 192, 48000, 2, 1152, [576, 576, 576], "mp4a.6B"),
            (L2_24000, Mpeg2, 2, 64, 24000, 1, 1152, [384, 384, 384], "mp4a.69"),
        ];
        for (b, version, layer, kbps, rate, channels, samples, lens, codec) in cases {
            let h = parse_header(b).unwrap();
            assert_eq!(
                (h.version, h.layer, h.bitrate_kbps, h.sample_rate, h.channels),
                (version, layer, kbps, rate, channels)
            );
            assert_eq!((h.samples_per_frame, h.frame_len, h.padding), (samples, Some(lens[0]), false));
            assert_eq!(h.codec_string(), codec);
            assert_eq!(walk(b, 0), lens);
            assert_eq!(find_frame(b), Some((0, h)));
        }
    }

    #[test]
    fn id3_tag_and_info_frame() {
        // ID3v2: "ID3", version, flags, then a 28-bit syncsafe size excluding the 10-byte header
        // (plus a 10-byte footer when flag 0x10 is set).
        assert_eq!(&ID3_INFO[..3], b"ID3");
        let size = ID3_INFO[6..10].iter().fold(0usize, |n, &x| n << 7 | usize::from(x & 0x7F));
        let skip = 10 + size + if ID3_INFO[5] & 0x10 != 0 { 10 } else { 0 };
        assert_eq!(skip, 45);
        // The Info frame is an ordinary (silent) frame, so resync stops on it, not on the audio.
        let info = parse_header(&ID3_INFO[skip..]).unwrap();
        assert_eq!((info.version, info.layer, info.bitrate_kbps, info.frame_len), (Mpeg1, 3, 128, Some(417)));
        assert_eq!(&ID3_INFO[skip + 36..skip + 40], b"Info");
        assert_eq!(walk(ID3_INFO, skip), [417, 417]);
        assert_eq!(find_frame(ID3_INFO), Some((skip, info)));
    }

    #[test]
    fn resync_past_junk() {
        // A fake Layer I header at 1 claims a 32-byte frame whose successor would be mid-frame in
        // the real data.
        let junk = [0x00, 0xFF, 0xFF, 0x10, 0xC0, 0xAA];
        assert!(parse_header(&junk[1..]).is_ok());
        for f in [L3_44100, L3_22050, L3_11025, L2_48000, L2_24000] {
            let b = [&junk[..], f].concat();
            assert_eq!(find_frame(&b), Some((junk.len(), parse_header(f).unwrap())));
        }
        // A stray 0xFF right before the sync: FF FF FB reads as Layer I with bitrate index 15.
        assert_eq!(find_frame(&[&[0xFF][..], L3_44100].concat()).map(|(at, _)| at), Some(1));
        // A fake frame running past the end of the payload cannot be contradicted, so it wins.
        let fake = [0x00, 0xFF, 0xFB, 0x90, 0x64, 0xAA, 0xFF];
        assert_eq!(find_frame(&[&fake[..], L3_44100].concat()).map(|(at, _)| at), Some(fake.len()));
        assert_eq!(find_frame(&[&fake[..], L3_22050].concat()).map(|(at, _)| at), Some(1));
        // Starting mid-frame (an FLV tag cut from the middle of a stream) finds the next frame.
        assert_eq!(find_frame(&L3_44100[100..]).map(|(at, _)| at), Some(417 - 100));
        assert_eq!(find_frame(&L2_48000[1..]).map(|(at, _)| at), Some(575));
    }

    #[test]
    fn successor_must_match() {
        // MPEG-1 Layer I 32 kbit/s 44.1 kHz: (12 * 32000 / 44100) * 4 = 32 bytes, then a frame
        // at 48 kHz: the first is rejected as a false sync, the second stands alone.
        let mut b = vec![0u8; 36];
        b[..4].copy_from_slice(&[0xFF, 0xFF, 0x10, 0xC0]);
        b[32..].copy_from_slice(&[0xFF, 0xFF, 0x14, 0xC0]);
        assert_eq!(parse_header(&b).unwrap().frame_len, Some(32));
        let (at, h) = find_frame(&b).unwrap();
        assert_eq!((at, h.sample_rate), (32, 48000));
        // Same stream parameters but another bit rate: accepted (variable bit rate streams).
        b[32..].copy_from_slice(&[0xFF, 0xFF, 0x20, 0xC0]);
        assert_eq!(find_frame(&b).map(|(at, _)| at), Some(0));
        // A header cut short after a frame cannot be checked, so the frame stands.
        assert_eq!(find_frame(&b[..34]).map(|(at, _)| at), Some(0));
    }

    #[test]
    fn hand_made_headers() {
        // MPEG-1 Layer I, 384 kbit/s, 32 kHz, padded: (12 * 384000 / 32000 + 1) * 4 = 580.
        let h = parse_header(&[0xFF, 0xFF, 0xCA, 0x00]).unwrap();
        assert_eq!((h.version, h.layer, h.bitrate_kbps, h.sample_rate, h.channels), (Mpeg1, 1, 384, 32000, 2));
        assert_eq!((h.padding, h.samples_per_frame, h.frame_len), (true, 384, Some(580)));
        assert_eq!(h.codec_string(), "mp4a.6B");
        // MPEG-2 Layer I, 256 kbit/s, 16 kHz: (12 * 256000 / 16000) * 4 = 768.
        let h = parse_header(&[0xFF, 0xF7, 0xE8, 0xC0]).unwrap();
        assert_eq!((h.version, h.layer, h.bitrate_kbps, h.sample_rate, h.channels), (Mpeg2, 1, 256, 16000, 1));
        assert_eq!((h.frame_len, h.codec_string()), (Some(768), "mp4a.69"));
        // MPEG-2.5 Layer III, 8 kbit/s, 8 kHz, padded, CRC-protected: 72 * 8000 / 8000 + 1 = 73.
        let h = parse_header(&[0xFF, 0xE2, 0x1A, 0x40]).unwrap();
        assert_eq!((h.version, h.layer, h.bitrate_kbps, h.sample_rate), (Mpeg25, 3, 8, 8000));
        assert_eq!((h.samples_per_frame, h.frame_len), (576, Some(73)));
        // Long frames: MPEG-2 Layer II 160 kbit/s 16 kHz, MPEG-1 Layer III 320 kbit/s 32 kHz.
        assert_eq!(parse_header(&[0xFF, 0xF5, 0xEA, 0x00]).unwrap().frame_len, Some(1441));
        assert_eq!(parse_header(&[0xFF, 0xFB, 0xEA, 0x00]).unwrap().frame_len, Some(1441));
        // The longest of all: MPEG-2.5 Layer II 160 kbit/s 8 kHz, padded: 144 * 160000 / 8000 + 1.
        assert_eq!(parse_header(&[0xFF, 0xE5, 0xEA, 0x00]).unwrap().frame_len, Some(2881));
        // Free format: rate and sample count known, length only from the next sync.
        let h = parse_header(&[0xFF, 0xFB, 0x04, 0xC4]).unwrap();
        assert_eq!((h.bitrate_kbps, h.sample_rate, h.frame_len, h.channels), (0, 48000, None, 1));
        assert_eq!(find_frame(&[0x00, 0xFF, 0xFB, 0x04, 0xC4]), Some((1, h)));
    }

    #[test]
    fn bad_headers() {
        let invalid = |b: [u8; 4]| matches!(parse_header(&b), Err(CodecError::Invalid(_)));
        assert!(invalid([0xFE, 0xFB, 0x90, 0x64])); // sync, first byte
        assert!(invalid([0xFF, 0xDB, 0x90, 0x64])); // sync, top bits of second byte
        assert!(invalid([0xFF, 0xEB, 0x90, 0x64])); // version 01 reserved
        assert!(invalid([0xFF, 0xF9, 0x90, 0x64])); // layer 00 reserved
        assert!(invalid([0xFF, 0xFB, 0xF0, 0x64])); // bitrate index 15
        assert!(invalid([0xFF, 0xFB, 0x9C, 0x64])); // sampling frequency index 3
        for n in 0..4 {
            assert_eq!(parse_header(&L3_44100[..n]), Err(CodecError::Truncated));
        }
        assert_eq!(find_frame(&[]), None);
        assert_eq!(find_frame(&[0xFF, 0xFB, 0x90]), None);
        assert_eq!(find_frame(&[0xFF, 0xFB, 0xF0, 0x64, 0xFF, 0xEB, 0x90, 0x64]), None);
    }

    #[test]
    fn every_header() {
        // All 2^16 second/third bytes: accepted exactly when no field holds a reserved value, and
        // then every field is in range and the frame is long enough to hold its header.
        for mid in 0..=0xFFFFu32 {
            let (b1, b2) = ((mid >> 8) as u8, mid as u8);
            let ok = b1 & 0xE0 == 0xE0 && b1 & 0x18 != 0x08 && b1 & 0x06 != 0 && b2 >> 4 != 15 && b2 & 0x0C != 0x0C;
            let r = parse_header(&[0xFF, b1, b2, 0x00]);
            assert_eq!(r.is_ok(), ok, "{b1:02x} {b2:02x}");
            let Ok(h) = r else { continue };
            assert!((1..=3).contains(&h.layer) && [384, 576, 1152].contains(&h.samples_per_frame));
            assert!((8000..=48000).contains(&h.sample_rate) && h.bitrate_kbps <= 448);
            assert_eq!(h.frame_len.is_none(), b2 >> 4 == 0);
            assert!(h.frame_len.is_none_or(|n| (24..=2881).contains(&n)), "{h:?}");
        }
    }

    #[test]
    fn never_panics() {
        for f in FIXTURES {
            for n in 0..=f.len() {
                let _ = parse_header(&f[..n]);
                let _ = parse_header(&f[n..]);
                let _ = find_frame(&f[..n]);
                let _ = find_frame(&f[n..]);
            }
            let mut m = f.to_vec();
            for i in 0..m.len() {
                for x in [0x01, 0x0C, 0x10, 0x80, 0xFF] {
                    m[i] ^= x;
                    let _ = parse_header(&m[i.saturating_sub(3)..]);
                    if let Some((at, h)) = find_frame(&m[i.saturating_sub(500)..]) {
                        assert_eq!(parse_header(&m[i.saturating_sub(500) + at..]), Ok(h));
                    }
                    m[i] ^= x;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_header(&b);
            if let Some((at, h)) = find_frame(&b) {
                prop_assert_eq!(parse_header(&b[at..]), Ok(h));
            }
        }
    }
}
