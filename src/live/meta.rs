//! `meta on`: the onMetaData players get is rebuilt from what the sequence headers say (cropped
//! width and height, frame rate, codecs, audio rate and channels), with the publisher's own
//! fields kept where the headers say nothing, so players see the stream as it really is.

use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::{self, Amf0Value};
use rtmp_proto::codec::{aac, avc, hevc, mp3};
use rtmp_proto::flv::{audio_tag_info, video_tag_info, AudioCodec, VideoCodec};

/// What one publisher's stream is known to carry.
#[derive(Default)]
pub struct CodecInfo {
    pub avc: Option<avc::AvcConfig>,
    pub hevc: Option<hevc::HevcConfig>,
    pub aac: Option<aac::AacConfig>,
    /// MP3 has no sequence header: learnt from its first frame.
    pub mp3: Option<mp3::Mp3Header>,
    pub video_codec_id: Option<f64>,
    pub audio_codec_id: Option<f64>,
    /// The publisher's onMetaData properties.
    pub publisher: Vec<(String, Amf0Value)>,
}

impl CodecInfo {
    pub fn video_header(&mut self, payload: &[u8]) {
        let Some(info) = video_tag_info(payload) else { return };
        // Enhanced RTMP streams are described by their FourCC as a number, as FFmpeg writes them.
        self.video_codec_id = Some(match info.fourcc {
            Some(fc) => f64::from(u32::from_be_bytes(fc)),
            None => f64::from(payload.first().map_or(0, |b| b & 0x0f)),
        });
        // Both the legacy header and a single-track ExVideoTagHeader are 5 bytes long.
        let record = if info.fourcc == Some(*b"****") { None } else { payload.get(5..) };
        self.avc = None;
        self.hevc = None;
        match info.codec {
            VideoCodec::Avc => self.avc = record.and_then(|b| avc::parse_config(b).ok()),
            VideoCodec::Hevc => self.hevc = record.and_then(|b| hevc::parse_config(b).ok()),
            _ => {}
        }
    }

    pub fn audio_header(&mut self, payload: &[u8]) {
        let Some(info) = audio_tag_info(payload) else { return };
        self.audio_codec_id = Some(f64::from(payload.first().map_or(0, |b| b >> 4)));
        if info.codec == AudioCodec::Aac {
            self.aac = payload.get(2..).and_then(|b| aac::parse_config(b).ok());
        }
    }

    /// Learns what an audio codec without a sequence header carries from a frame; true when this
    /// frame told something new (metadata should be rebuilt).
    pub fn audio_frame(&mut self, payload: &[u8]) -> bool {
        let Some(info) = audio_tag_info(payload) else { return false };
        if info.codec != AudioCodec::Mp3 || self.mp3.is_some() {
            return false;
        }
        let Some((_, h)) = payload.get(1..).and_then(mp3::find_frame) else { return false };
        self.mp3 = Some(h);
        self.audio_codec_id = Some(f64::from(payload.first().map_or(0, |b| b >> 4)));
        true
    }

    /// Keeps the publisher's metadata object from an `onMetaData` data payload.
    pub fn publisher_meta(&mut self, payload: &[u8]) {
        if let Ok(values) = amf0::decode_all(payload) {
            if let Some(props) = values.get(1).and_then(Amf0Value::properties) {
                self.publisher = props.to_vec();
            }
        }
    }

    /// The onMetaData payload for players.
    pub fn build(&self) -> Bytes {
        let mut props: Vec<(String, Amf0Value)> = Vec::new();
        let mut set = |k: &str, v: Amf0Value| match props.iter_mut().find(|(n, _)| n == k) {
            Some(p) => p.1 = v,
            None => props.push((k.to_string(), v)),
        };
        // Fields we compute replace the publisher's; the rest of its object passes as is.
        for (k, v) in &self.publisher {
            set(k, v.clone());
        }
        set("Server", Amf0Value::string("nginx-rtmp-rs"));
        let picture = match (&self.avc, &self.hevc) {
            (Some(c), _) => Some((c.info.width, c.info.height, c.profile, c.level, c.info.frame_rate)),
            (None, Some(c)) => Some((c.info.width, c.info.height, c.info.profile_idc, c.info.level_idc, c.info.frame_rate)),
            (None, None) => None,
        };
        if let Some((w, h, profile, level, frame_rate)) = picture {
            let (w, h) = (f64::from(w), f64::from(h));
            set("width", Amf0Value::Number(w));
            set("height", Amf0Value::Number(h));
            set("displayWidth", Amf0Value::Number(w));
            set("displayHeight", Amf0Value::Number(h));
            set("profile", Amf0Value::Number(f64::from(profile)));
            set("level", Amf0Value::Number(f64::from(level)));
            if let Some(fps) = frame_rate {
                set("framerate", Amf0Value::Number(fps));
                set("fps", Amf0Value::Number(fps));
            }
        }
        if let Some(id) = self.video_codec_id {
            set("videocodecid", Amf0Value::Number(id));
        }
        if let Some(id) = self.audio_codec_id {
            set("audiocodecid", Amf0Value::Number(id));
        }
        if let Some(a) = &self.aac {
            let rate = a.ext_sample_rate.unwrap_or(a.sample_rate);
            set("audiosamplerate", Amf0Value::Number(f64::from(rate)));
            set("audiochannels", Amf0Value::Number(f64::from(a.channels)));
            set("stereo", Amf0Value::Boolean(a.channels >= 2));
        } else if let Some(m) = &self.mp3 {
            set("audiosamplerate", Amf0Value::Number(f64::from(m.sample_rate)));
            set("audiochannels", Amf0Value::Number(f64::from(m.channels)));
            set("stereo", Amf0Value::Boolean(m.channels >= 2));
            if m.bitrate_kbps > 0 {
                set("audiodatarate", Amf0Value::Number(f64::from(m.bitrate_kbps)));
            }
        }
        // A live stream has no duration or size; players that trust them would stop early.
        props.retain(|(k, _)| k != "duration" && k != "filesize");
        let mut b = BytesMut::with_capacity(256);
        amf0::encode(&Amf0Value::string("onMetaData"), &mut b);
        amf0::encode(&Amf0Value::EcmaArray(props), &mut b);
        b.freeze()
    }
}

impl CodecInfo {
    /// What stat pages show of the stream (the C module's names for codecs and profiles).
    pub fn stat_meta(&self) -> Option<rtmp_proto::stat::Meta> {
        use rtmp_proto::stat::{AudioMeta, Meta, VideoMeta};
        let fps = |publisher: &[(String, Amf0Value)]| {
            publisher
                .iter()
                .find(|(k, _)| k == "framerate" || k == "fps")
                .and_then(|(_, v)| v.as_f64())
                .unwrap_or(0.0)
        };
        let video = self.video_codec_id.map(|id| {
            let mut v = VideoMeta { codec: video_codec_name(id), ..Default::default() };
            if let Some(c) = &self.avc {
                v.width = c.info.width;
                v.height = c.info.height;
                v.frame_rate = c.info.frame_rate.unwrap_or_else(|| fps(&self.publisher));
                v.profile = avc_profile_name(c.profile).into();
                v.compat = u32::from(c.compat);
                v.level = f64::from(c.level) / 10.0;
            } else if let Some(c) = &self.hevc {
                v.width = c.info.width;
                v.height = c.info.height;
                v.frame_rate = c.info.frame_rate.unwrap_or_else(|| fps(&self.publisher));
                v.profile = match c.info.profile_idc {
                    1 => "Main",
                    2 => "Main10",
                    3 => "MainStillPicture",
                    4 => "RExt",
                    _ => "",
                }
                .into();
                v.level = f64::from(c.info.level_idc) / 30.0;
            }
            v
        });
        let audio = self.audio_codec_id.map(|id| {
            let mut a = AudioMeta { codec: audio_codec_name(id), ..Default::default() };
            if let Some(c) = &self.aac {
                a.profile = match (c.object_type, c.sbr, c.ps) {
                    (_, _, true) | (29, _, _) => "HEv2",
                    (_, true, _) | (5, _, _) => "HE",
                    (1, _, _) => "Main",
                    (2, _, _) => "LC",
                    (3, _, _) => "SSR",
                    (4, _, _) => "LTP",
                    _ => "",
                }
                .into();
                a.channels = c.channels;
                a.sample_rate = c.ext_sample_rate.unwrap_or(c.sample_rate);
            } else if let Some(m) = &self.mp3 {
                a.channels = u32::from(m.channels);
                a.sample_rate = m.sample_rate;
            }
            a
        });
        (video.is_some() || audio.is_some()).then_some(Meta { video, audio })
    }
}

/// FLV codec ids as the C module names them; Enhanced RTMP FourCCs by their common names.
fn video_codec_name(id: f64) -> String {
    let n = id as u32;
    let name = match n {
        1 => "Jpeg",
        2 => "Sorenson-H263",
        3 => "ScreenVideo",
        4 => "On2-VP6",
        5 => "On2-VP6-Alpha",
        6 => "ScreenVideo2",
        7 => "H264",
        12 => "HEVC",
        0x6876_6331 => "HEVC", // hvc1
        0x6176_3031 => "AV1",  // av01
        0x7670_3039 => "VP9",  // vp09
        0x6176_6331 => "H264", // avc1
        _ if n > 0xffff => return String::from_utf8_lossy(&n.to_be_bytes()).into_owned(),
        _ => "",
    };
    name.into()
}

fn audio_codec_name(id: f64) -> String {
    const NAMES: [&str; 17] = [
        "Uncompressed", "ADPCM", "MP3", "LinearLE", "Nellymoser16", "Nellymoser8", "Nellymoser", "G711A", "G711U",
        "", "AAC", "Speex", "", "", "MP3-8K", "DeviceSpecific", "Uncompressed",
    ];
    NAMES.get(id as usize).copied().unwrap_or("").into()
}

fn avc_profile_name(p: u8) -> &'static str {
    match p {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High10",
        122 => "High422",
        244 => "High444",
        _ => "",
    }
}
