//! A synthetic stream for load tests without a media file: H.264 and AAC tags of a chosen bitrate,
//! frame rate and GOP, with real sequence headers (so servers and probes see a 640x360 H.264 High /
//! AAC-LC 48 kHz stereo stream) and filler pictures (not decodable; nothing in a load test decodes).

use bytes::{BufMut, BytesMut};
use rtmp_proto::flv::FlvTag;
use rtmp_proto::message::msg_type;

/// libx264's AVCDecoderConfigurationRecord for 640x360 High@3.0 (SPS and PPS).
const AVC_CONFIG: [u8; 47] = [
    0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0,
    0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16,
    0x2d, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// AudioSpecificConfig: AAC-LC, 48 kHz, 2 channels.
const AAC_CONFIG: [u8; 2] = [0x11, 0x90];
const AUDIO_RATE: u64 = 48_000;
const AUDIO_KBPS: u64 = 128;
/// A keyframe is this many times the size of an average frame.
const KEYFRAME_WEIGHT: u64 = 4;

#[derive(Clone, Copy, Debug)]
pub struct Synthetic {
    pub video_kbps: u64,
    pub fps: u64,
    /// Frames per GOP (keyframe interval).
    pub gop: u64,
}

fn filler(len: usize, seed: &mut u64) -> impl Iterator<Item = u8> + '_ {
    (0..len).map(move |_| {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 24) as u8
    })
}

fn tag(tag_type: u8, timestamp: u32, data: BytesMut) -> FlvTag {
    FlvTag { tag_type, timestamp, data: data.freeze() }
}

impl Synthetic {
    /// One GOP of tags (a looping `Source` repeats it): sequence headers, then video and audio
    /// interleaved by timestamp.
    pub fn tags(&self) -> Vec<FlvTag> {
        let fps = self.fps.clamp(1, 240);
        let gop = self.gop.clamp(1, 100_000);
        let per_frame = self.video_kbps.saturating_mul(1000) / 8 / fps;
        let key_size = per_frame.saturating_mul(KEYFRAME_WEIGHT.min(gop));
        let inter_size = (per_frame.saturating_mul(gop).saturating_sub(key_size)) / gop.saturating_sub(1).max(1);
        let span_ms = gop * 1000 / fps;
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut tags = Vec::new();

        let mut v = BytesMut::new();
        v.put_slice(&[0x17, 0, 0, 0, 0]);
        v.put_slice(&AVC_CONFIG);
        tags.push(tag(msg_type::VIDEO, 0, v));
        let mut a = BytesMut::new();
        a.put_slice(&[0xAF, 0]);
        a.put_slice(&AAC_CONFIG);
        tags.push(tag(msg_type::AUDIO, 0, a));

        let mut media: Vec<FlvTag> = Vec::new();
        for i in 0..gop {
            let key = i == 0;
            let size = usize::try_from(if key { key_size } else { inter_size }).unwrap_or(0).max(8);
            let mut v = BytesMut::with_capacity(size + 9);
            v.put_slice(if key { &[0x17, 1, 0, 0, 0] } else { &[0x27, 1, 0, 0, 0] });
            v.put_u32(size as u32);
            v.put_u8(if key { 0x65 } else { 0x41 });
            v.extend(filler(size - 1, &mut seed));
            media.push(tag(msg_type::VIDEO, (i * 1000 / fps) as u32, v));
        }
        let audio_frames = span_ms * AUDIO_RATE / 1024 / 1000;
        let audio_size = (AUDIO_KBPS * 1000 / 8 * 1024 / AUDIO_RATE) as usize;
        for i in 0..audio_frames {
            let mut a = BytesMut::with_capacity(audio_size + 2);
            a.put_slice(&[0xAF, 1]);
            a.extend(filler(audio_size, &mut seed));
            media.push(tag(msg_type::AUDIO, (i * 1024 * 1000 / AUDIO_RATE) as u32, a));
        }
        media.sort_by_key(|t| t.timestamp);
        tags.extend(media);
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtmp_proto::codec::{aac, avc};
    use rtmp_proto::flv::{audio_tag_info, video_tag_info};

    #[test]
    fn a_gop_of_the_asked_rate() {
        let s = Synthetic { video_kbps: 2000, fps: 30, gop: 60 };
        let tags = s.tags();
        let video: Vec<_> = tags.iter().filter(|t| t.tag_type == msg_type::VIDEO).collect();
        assert_eq!(video.len(), 61);
        let cfg = avc::parse_config(&video[0].data[5..]).expect("AVC config");
        assert_eq!((cfg.info.width, cfg.info.height), (640, 360));
        let audio_cfg = tags.iter().find(|t| t.tag_type == msg_type::AUDIO).expect("audio");
        assert_eq!(aac::parse_config(&audio_cfg.data[2..]).expect("AAC").sample_rate, 48_000);
        assert!(video_tag_info(&video[1].data).expect("key").keyframe);
        assert!(!video_tag_info(&video[2].data).expect("inter").keyframe);
        assert!(tags.iter().filter(|t| t.tag_type == msg_type::AUDIO).skip(1).all(|t| !audio_tag_info(&t.data).expect("aac").sequence_header));
        // 2 s of 2000 kbit/s video is 500 kB; audio adds 128 kbit/s.
        let video_bytes: usize = video[1..].iter().map(|t| t.data.len()).sum();
        assert!((490_000..=510_000).contains(&video_bytes), "{video_bytes}");
        assert!(tags.windows(2).skip(2).all(|w| w[0].timestamp <= w[1].timestamp));
    }

    #[test]
    fn silly_values_are_clamped() {
        assert!(!Synthetic { video_kbps: 0, fps: 0, gop: 0 }.tags().is_empty());
    }
}
