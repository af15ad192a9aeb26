//! `meta on`: the onMetaData players get is rebuilt from what the sequence headers say (cropped
//! width and height, frame rate, codecs, audio rate and channels), with the publisher's own
//! fields kept where the headers say nothing, so players see the stream as it really is.

use bytes::{Bytes, BytesMut};
use rtmp_proto::amf0::{self, Amf0Value};
use rtmp_proto::codec::{aac, avc};
use rtmp_proto::flv::{audio_tag_info, video_tag_info, AudioCodec, VideoCodec};

/// What one publisher's stream is known to carry.
#[derive(Default)]
pub struct CodecInfo {
    pub avc: Option<avc::AvcConfig>,
    pub aac: Option<aac::AacConfig>,
    pub video_codec_id: Option<f64>,
    pub audio_codec_id: Option<f64>,
    /// The publisher's onMetaData properties.
    pub publisher: Vec<(String, Amf0Value)>,
}

impl CodecInfo {
    pub fn video_header(&mut self, payload: &[u8]) {
        let Some(info) = video_tag_info(payload) else { return };
        self.video_codec_id = Some(match info.codec {
            VideoCodec::Avc => 7.0,
            VideoCodec::Hevc => 12.0,
            VideoCodec::Av1 => 13.0,
            _ => f64::from(payload.first().map_or(0, |b| b & 0x0f)),
        });
        if info.codec == VideoCodec::Avc && !info.enhanced {
            self.avc = payload.get(5..).and_then(|b| avc::parse_config(b).ok());
        }
    }

    pub fn audio_header(&mut self, payload: &[u8]) {
        let Some(info) = audio_tag_info(payload) else { return };
        self.audio_codec_id = Some(f64::from(payload.first().map_or(0, |b| b >> 4)));
        if info.codec == AudioCodec::Aac {
            self.aac = payload.get(2..).and_then(|b| aac::parse_config(b).ok());
        }
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
        if let Some(c) = &self.avc {
            let (w, h) = (f64::from(c.info.width), f64::from(c.info.height));
            set("width", Amf0Value::Number(w));
            set("height", Amf0Value::Number(h));
            set("displayWidth", Amf0Value::Number(w));
            set("displayHeight", Amf0Value::Number(h));
            set("profile", Amf0Value::Number(f64::from(c.profile)));
            set("level", Amf0Value::Number(f64::from(c.level)));
            if let Some(fps) = c.info.frame_rate {
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
        }
        // A live stream has no duration or size; players that trust them would stop early.
        props.retain(|(k, _)| k != "duration" && k != "filesize");
        let mut b = BytesMut::with_capacity(256);
        amf0::encode(&Amf0Value::string("onMetaData"), &mut b);
        amf0::encode(&Amf0Value::EcmaArray(props), &mut b);
        b.freeze()
    }
}
