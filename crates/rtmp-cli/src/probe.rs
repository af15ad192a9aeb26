//! `rtmp probe`: plays a stream until its first audio and video frames and reports codecs,
//! sequence header order, metadata and time to first frame.

use std::time::{Duration, Instant};

use rtmp_proto::amf0::Amf0Value;
use rtmp_proto::command::decode_data;
use rtmp_proto::flv::{audio_tag_info, video_tag_info, AudioCodec, VideoCodec};
use rtmp_proto::message::{msg_type, RawMessage};
use serde::Serialize;

use crate::conn::{ConnEvent, Role, Single};
use rtmp_proto::url::RtmpUrl;
use crate::CliError;

/// How long to wait for the other kind of frame once one arrived, when metadata does not say the
/// stream has both.
const SECOND_KIND_GRACE: Duration = Duration::from_secs(3);

#[derive(Serialize, Default, Debug)]
pub struct TrackReport {
    pub codec: String,
    /// Whether a sequence header came before the first frame (`None`: the codec has none).
    pub sequence_header_first: Option<bool>,
    /// Video only: whether the first frame was a keyframe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_first: Option<bool>,
    pub first_frame_ms: f64,
    pub first_frame_ts: u32,
}

#[derive(Serialize, Default, Debug)]
pub struct MetadataReport {
    pub keys: Vec<String>,
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    pub videocodecid: Option<f64>,
    pub audiocodecid: Option<f64>,
    pub audiosamplerate: Option<f64>,
    pub audiochannels: Option<f64>,
    pub audiodatarate: Option<f64>,
}

#[derive(Serialize, Default, Debug)]
pub struct ProbeReport {
    pub url: String,
    /// From the start of the TCP connect to `NetStream.Play.Start`.
    pub play_start_ms: Option<f64>,
    pub video: Option<TrackReport>,
    pub audio: Option<TrackReport>,
    pub metadata: Option<MetadataReport>,
    /// From the start of the TCP connect to the first audio or video frame.
    pub time_to_first_frame_ms: Option<f64>,
}

#[derive(Default)]
struct SeqSeen {
    video: bool,
    audio: bool,
}

fn video_codec_name(c: VideoCodec) -> String {
    match c {
        VideoCodec::SorensonH263 => "H.263".into(),
        VideoCodec::Screen => "ScreenVideo".into(),
        VideoCodec::Vp6 => "VP6".into(),
        VideoCodec::Vp6Alpha => "VP6A".into(),
        VideoCodec::Screen2 => "ScreenVideo2".into(),
        VideoCodec::Avc => "AVC".into(),
        VideoCodec::Hevc => "HEVC".into(),
        VideoCodec::Av1 => "AV1".into(),
        VideoCodec::Vp9 => "VP9".into(),
        VideoCodec::Other(n) => fourcc_or_number(n),
    }
}

fn audio_codec_name(c: AudioCodec) -> String {
    match c {
        AudioCodec::Pcm => "PCM".into(),
        AudioCodec::Adpcm => "ADPCM".into(),
        AudioCodec::Mp3 => "MP3".into(),
        AudioCodec::PcmLe => "PCM-LE".into(),
        AudioCodec::Nellymoser => "Nellymoser".into(),
        AudioCodec::G711A => "G.711A".into(),
        AudioCodec::G711U => "G.711U".into(),
        AudioCodec::Aac => "AAC".into(),
        AudioCodec::Speex => "Speex".into(),
        AudioCodec::Opus => "Opus".into(),
        AudioCodec::Other(n) => fourcc_or_number(n),
    }
}

/// Enhanced-RTMP codecs are FourCCs; legacy ones are small ids.
fn fourcc_or_number(n: u32) -> String {
    let b = n.to_be_bytes();
    if n > 0xFF && b.iter().all(|c| c.is_ascii_graphic()) {
        String::from_utf8_lossy(&b).into_owned()
    } else {
        format!("codec id {n}")
    }
}

fn video_has_seq_header(c: VideoCodec) -> bool {
    matches!(
        c,
        VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1 | VideoCodec::Vp9
    )
}

fn audio_has_seq_header(c: AudioCodec) -> bool {
    matches!(c, AudioCodec::Aac | AudioCodec::Opus)
}

/// `onMetaData`'s properties, from a data message with or without `@setDataFrame` in front.
fn metadata(payload: &[u8]) -> Option<Vec<(String, Amf0Value)>> {
    let values = decode_data(payload).ok()?;
    let mut it = values
        .into_iter()
        .skip_while(|v| v.as_str() == Some("@setDataFrame"));
    if it.next()?.as_str() != Some("onMetaData") {
        return None;
    }
    it.next()?.properties().map(<[_]>::to_vec)
}

fn metadata_report(props: &[(String, Amf0Value)]) -> MetadataReport {
    let num = |k: &str| {
        props
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_f64())
    };
    MetadataReport {
        keys: props.iter().map(|(k, _)| k.clone()).collect(),
        width: num("width"),
        height: num("height"),
        framerate: num("framerate").or_else(|| num("videoframerate")),
        videocodecid: num("videocodecid"),
        audiocodecid: num("audiocodecid"),
        audiosamplerate: num("audiosamplerate"),
        audiochannels: num("audiochannels"),
        audiodatarate: num("audiodatarate"),
    }
}

struct Prober {
    begin: Instant,
    report: ProbeReport,
    seq: SeqSeen,
    /// From metadata: whether the stream announces video / audio.
    expects: Option<(bool, bool)>,
}

impl Prober {
    fn on_media(&mut self, m: &RawMessage) {
        let ms = ms_since(self.begin);
        match m.msg_type {
            msg_type::VIDEO if self.report.video.is_none() => {
                let Some(info) = video_tag_info(&m.payload) else {
                    return;
                };
                if info.sequence_header {
                    self.seq.video = true;
                    return;
                }
                self.report.video = Some(TrackReport {
                    codec: video_codec_name(info.codec),
                    sequence_header_first: video_has_seq_header(info.codec)
                        .then_some(self.seq.video),
                    keyframe_first: Some(info.keyframe),
                    first_frame_ms: ms,
                    first_frame_ts: m.timestamp,
                });
                self.report.time_to_first_frame_ms.get_or_insert(ms);
            }
            msg_type::AUDIO if self.report.audio.is_none() => {
                let Some(info) = audio_tag_info(&m.payload) else {
                    return;
                };
                if info.sequence_header {
                    self.seq.audio = true;
                    return;
                }
                self.report.audio = Some(TrackReport {
                    codec: audio_codec_name(info.codec),
                    sequence_header_first: audio_has_seq_header(info.codec)
                        .then_some(self.seq.audio),
                    keyframe_first: None,
                    first_frame_ms: ms,
                    first_frame_ts: m.timestamp,
                });
                self.report.time_to_first_frame_ms.get_or_insert(ms);
            }
            msg_type::AMF0_DATA if self.report.metadata.is_none() => {
                if let Some(props) = metadata(&m.payload) {
                    let has = |k: &str| props.iter().any(|(n, _)| n == k);
                    self.expects = Some((has("videocodecid"), has("audiocodecid")));
                    self.report.metadata = Some(metadata_report(&props));
                }
            }
            _ => {}
        }
    }

    fn complete(&self) -> bool {
        let (v, a) = (self.report.video.is_some(), self.report.audio.is_some());
        match self.expects {
            Some((ev, ea)) if ev || ea => v >= ev && a >= ea,
            _ => v && a,
        }
    }

    /// When to give up on the missing kind of frame.
    fn deadline(&self, hard: Instant) -> Instant {
        let first = self.report.time_to_first_frame_ms;
        match (first, self.expects) {
            (Some(ms), None | Some((false, false))) => {
                hard.min(self.begin + crate::secs(ms / 1000.0) + SECOND_KIND_GRACE)
            }
            _ => hard,
        }
    }
}

/// Returns the report and whether any frame arrived.
pub fn run(url: &str, timeout: f64, json: bool, fourcc: &[String]) -> Result<bool, CliError> {
    let url = RtmpUrl::parse(url)?;
    let begin = Instant::now();
    let hard = begin + crate::secs(timeout.max(0.1));
    let mut p = Prober {
        begin,
        report: ProbeReport {
            url: url.to_string(),
            ..ProbeReport::default()
        },
        seq: SeqSeen::default(),
        expects: None,
    };
    let mut single = Single::open(&url, Role::Play)?;
    single.conn.announce_fourcc(fourcc);
    while !p.complete() {
        match single.wait_event(p.deadline(hard))? {
            None => break,
            Some(ConnEvent::Started) => p.report.play_start_ms = Some(ms_since(begin)),
            Some(ConnEvent::Status(_)) => {}
            Some(ConnEvent::Media(m)) => p.on_media(&m),
        }
    }
    let got = p.report.time_to_first_frame_ms.is_some();
    if json {
        let s =
            serde_json::to_string_pretty(&p.report).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{s}");
    } else {
        print_text(&p.report);
    }
    Ok(got)
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |ms| format!("{ms:.1} ms"))
}

/// Milliseconds with 0.1 ms resolution (local servers answer in well under one).
fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 10_000.0).round() / 10.0
}

fn print_text(r: &ProbeReport) {
    println!("url:                 {}", r.url);
    println!("play start:          {}", opt_ms(r.play_start_ms));
    println!("time to first frame: {}", opt_ms(r.time_to_first_frame_ms));
    let track = |name: &str, t: &Option<TrackReport>| match t {
        None => println!("{name}none received"),
        Some(t) => {
            let seq = match t.sequence_header_first {
                Some(true) => "sequence header first",
                Some(false) => "NO sequence header before first frame",
                None => "no sequence header in this codec",
            };
            let key = match t.keyframe_first {
                Some(true) => ", first frame is a keyframe",
                Some(false) => ", first frame is NOT a keyframe",
                None => "",
            };
            println!(
                "{name}{} ({seq}{key}), first frame at {:.1} ms (ts {})",
                t.codec, t.first_frame_ms, t.first_frame_ts
            );
        }
    };
    track("video:               ", &r.video);
    track("audio:               ", &r.audio);
    match &r.metadata {
        None => println!("metadata:            none"),
        Some(m) => {
            let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |x| format!("{x}"));
            println!(
                "metadata:            {}x{} @ {} fps, audio {} Hz x {}",
                f(m.width),
                f(m.height),
                f(m.framerate),
                f(m.audiosamplerate),
                f(m.audiochannels)
            );
            println!("metadata keys:       {}", m.keys.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtmp_proto::amf0;

    #[test]
    fn metadata_with_and_without_set_data_frame() {
        let obj = Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(640.0))]);
        for prefix in [false, true] {
            let mut b = BytesMut::new();
            if prefix {
                amf0::encode(&Amf0Value::string("@setDataFrame"), &mut b);
            }
            amf0::encode_all(&[Amf0Value::string("onMetaData"), obj.clone()], &mut b);
            let props = metadata(&b).unwrap();
            assert_eq!(metadata_report(&props).width, Some(640.0));
        }
        assert!(metadata(b"\x02\x00\x01x").is_none());
    }

    #[test]
    fn fourcc_names() {
        assert_eq!(fourcc_or_number(u32::from_be_bytes(*b"vvc1")), "vvc1");
        assert_eq!(fourcc_or_number(15), "codec id 15");
    }
}
