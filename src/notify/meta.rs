//! `on_meta` and `on_stream` (ours): what a publisher's sequence headers say (codec, size, frame
//! rate, sample rate, channels), reported once both are known and again whenever they change.

use rtmp_proto::mpegts::es::{parse_audio, parse_video, AudioConfig, AudioPacket, VideoConfig, VideoPacket};
use rtmp_proto::{codec, message::msg_type, RawMessage};

use super::fields::Fields;

#[derive(Default)]
pub struct MetaState {
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    /// Changed since the last report; reported at the next media frame (both headers are sent
    /// before the first frame, so one report covers both).
    dirty: bool,
    /// Reported at least once (later reports are stream updates).
    reported: bool,
}

/// What to report after a media message.
pub enum Change {
    None,
    First,
    Update,
}

impl MetaState {
    pub fn observe(&mut self, msg: &RawMessage) -> Change {
        let header = match msg.msg_type {
            msg_type::VIDEO => match parse_video(&msg.payload) {
                VideoPacket::SequenceHeader { kind, record } => {
                    if let Ok(c) = VideoConfig::parse(kind, record) {
                        if self.video.as_ref() != Some(&c) {
                            self.video = Some(c);
                            self.dirty = true;
                        }
                    }
                    true
                }
                _ => false,
            },
            msg_type::AUDIO => match parse_audio(&msg.payload) {
                AudioPacket::AacConfig(b) => {
                    if let Ok(c) = codec::aac::parse_config(b) {
                        let c = AudioConfig::Aac(c);
                        if !self.audio.as_ref().is_some_and(|a| a.same_stream(&c)) {
                            self.audio = Some(c);
                            self.dirty = true;
                        }
                    }
                    true
                }
                AudioPacket::Mp3(b) => {
                    if let Some((_, h)) = codec::mp3::find_frame(b) {
                        let c = AudioConfig::Mp3(h);
                        if !self.audio.as_ref().is_some_and(|a| a.same_stream(&c)) {
                            self.audio = Some(c);
                            self.dirty = true;
                        }
                    }
                    false
                }
                _ => false,
            },
            _ => return Change::None,
        };
        if header || !self.dirty {
            return Change::None;
        }
        self.dirty = false;
        if std::mem::replace(&mut self.reported, true) {
            Change::Update
        } else {
            Change::First
        }
    }

    /// The codec fields of a report.
    pub fn fields(&self, f: &mut Fields) {
        if let Some(v) = &self.video {
            f.add("video_codec", &v.codec_string).add("width", v.width).add("height", v.height);
            if let Some(r) = v.frame_rate.filter(|r| r.is_finite() && *r > 0.0) {
                f.add("frame_rate", format!("{r:.3}"));
            }
        }
        if let Some(a) = &self.audio {
            f.add("audio_codec", a.codec_string()).add("sample_rate", a.sample_rate());
            let channels = match a {
                AudioConfig::Aac(c) => c.channels,
                AudioConfig::Mp3(h) => u32::from(h.channels),
            };
            f.add("channels", channels);
        }
    }
}
