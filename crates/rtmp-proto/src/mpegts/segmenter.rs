//! The HLS segmenter: RTMP audio and video messages in, MPEG-TS segments out. It decides where a
//! segment starts (keyframes, fragment length, timeline jumps, codec changes) and what goes in it.
//!
//! Timeline: FLV timestamps are unwrapped into u64 milliseconds; a PES timestamp is that plus
//! `muxdelay_ms` (so the PCR, which runs `muxdelay_ms` behind, never goes below 0), in 90 kHz.

use super::es::{self, AudioConfig, AudioPacket, VideoCodecKind, VideoConfig, VideoPacket};
use super::mux::{Pes, PmtStream, TsWriter, MAX_BOUNDED_PES_DATA};
use super::{AUDIO_PID, AUDIO_STREAM_ID, TICKS_PER_MS, VIDEO_PID, VIDEO_STREAM_ID};
use crate::codec::aac;

#[derive(Debug, Clone)]
pub struct SegmenterConf {
    /// hls_fragment: cut at the first keyframe at or after this.
    pub fragment_ms: u64,
    /// hls_max_fragment: force a cut (even without keyframe).
    pub max_fragment_ms: u64,
    /// hls_fragment_slicing aligned: cut at keyframes crossing multiples of fragment_ms on the
    /// stream timeline (so variants cut alike); plain otherwise.
    pub aligned: bool,
    /// hls_sync: audio PTS follows the sample count unless it drifts more than this from the
    /// message timestamp.
    pub sync_ms: u64,
    /// hls_muxdelay: PCR runs this far behind DTS.
    pub muxdelay_ms: u64,
    /// hls_max_audio_delay: an audio PES is flushed once its first frame is this old.
    pub max_audio_delay_ms: u64,
    /// hls_audio_buffer_size: ... or once it holds this many bytes.
    pub audio_buffer_size: usize,
}

impl Default for SegmenterConf {
    fn default() -> Self {
        SegmenterConf {
            fragment_ms: 5000,
            max_fragment_ms: 50_000,
            aligned: false,
            sync_ms: 2,
            muxdelay_ms: 700,
            max_audio_delay_ms: 300,
            audio_buffer_size: 1 << 20,
        }
    }
}

impl SegmenterConf {
    /// Timestamp steps larger than this (forward, or backward past the segment start) are
    /// discontinuities: max(max_fragment_ms, 10 s).
    pub fn jump_ms(&self) -> u64 {
        self.max_fragment_ms.max(MIN_JUMP_MS)
    }

    /// The same configuration with every value in a range the arithmetic is safe with.
    fn sanitized(&self) -> SegmenterConf {
        SegmenterConf {
            fragment_ms: self.fragment_ms.clamp(1, MAX_CONF_MS),
            max_fragment_ms: self.max_fragment_ms.clamp(1, MAX_CONF_MS),
            aligned: self.aligned,
            sync_ms: self.sync_ms.min(MAX_CONF_MS),
            muxdelay_ms: self.muxdelay_ms.min(MAX_CONF_MS),
            max_audio_delay_ms: self.max_audio_delay_ms.min(MAX_CONF_MS),
            // An audio PES states its length in 16 bits.
            audio_buffer_size: self.audio_buffer_size.clamp(1, MAX_BOUNDED_PES_DATA),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegEvent {
    /// A new segment starts. `start_ms`: timestamp (ms) of its first frame on the unwrapped stream
    /// timeline (u64, FLV wraps undone). `discontinuity`: the timeline jumped (backwards, or forward
    /// by more than max(max_fragment_ms, 10 s)) or the codec configuration changed since the
    /// previous segment.
    Open { start_ms: u64, discontinuity: bool },
    /// Whole 188-byte TS packets for the open segment, in order; at most one per pushed message
    /// and segment.
    Data(Vec<u8>),
    /// The open segment is complete. duration_ms: from its start to the first frame of the next
    /// segment, or, on finish (and timeline jumps), to the end of its last frame.
    Close { duration_ms: u64 },
    /// Said once per stream and kind: frames of a codec MPEG-TS cannot carry here, or a broken
    /// codec config, are dropped. Human-readable reason.
    Unsupported(String),
}

/// What the playlist and master playlist need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// RFC 6381, e.g. "avc1.64001f", "hvc1.1.6.L93.B0".
    pub video_codec: Option<String>,
    /// RFC 6381, e.g. "mp4a.40.2", "mp4a.40.34" for MP3.
    pub audio_codec: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Frames per second × 1000, from the SPS timing information (0: unknown).
    pub frame_rate_milli: u32,
}

/// A PID's timestamps may step back this much (audio/video interleaving jitter); they are clamped.
/// A larger step back is a jump.
const MAX_BACKWARD_STEP_MS: u64 = 1000;
/// Forward steps up to this are never a discontinuity, however short max_fragment_ms is.
const MIN_JUMP_MS: u64 = 10_000;
/// In a stream with video, audio forces a cut only this long after max_fragment_ms: the video is
/// expected to cut first, so that the next segment starts with a picture.
const SECONDARY_FORCE_SLACK_MS: u64 = 1000;
/// The longest frame a duration estimate assumes.
const MAX_FRAME_MS: u64 = 1000;
/// Configured durations beyond a day are taken as a day: no arithmetic overflows.
const MAX_CONF_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Track {
    Video,
    Audio,
}

/// The kinds of `Unsupported` notices, each said once (a bit each).
#[derive(Debug, Clone, Copy)]
enum Notice {
    VideoCodec = 1,
    AudioCodec = 2,
    VideoConfig = 4,
    AudioConfig = 8,
    Adts = 16,
}

/// What a segment's PMT lists: per stream, its stream type and configuration generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Programme {
    video: Option<(u8, u32)>,
    audio: Option<(u8, u32)>,
}

#[derive(Debug)]
struct VideoTrack {
    config: VideoConfig,
    generation: u32,
    /// Duration estimate of one frame: the last DTS step, or the SPS frame rate.
    frame_ms: u64,
}

#[derive(Debug)]
struct AudioTrack {
    config: AudioConfig,
    generation: u32,
}

/// The last frame muxed on a PID in the current timeline (reset at discontinuities).
#[derive(Debug, Default, Clone, Copy)]
struct PidClock {
    /// Unwrapped message timestamp.
    last_ms: Option<u64>,
    /// The DTS written, in ticks.
    last_dts: u64,
}

#[derive(Debug)]
struct Segment {
    start_ms: u64,
    /// The latest message timestamp muxed (any PID).
    head_ms: u64,
    /// Where its last frame ends, estimated.
    end_ms: u64,
    programme: Programme,
}

/// Audio frames waiting to go out as one PES.
#[derive(Debug, Default)]
struct AudioPes {
    data: Vec<u8>,
    /// PTS of the first frame.
    pts: u64,
}

/// Audio PTS from the sample count since an anchor, as long as it stays near the timestamps.
#[derive(Debug, Default)]
struct SampleClock {
    /// Anchor PTS in ticks and the sample rate counted in.
    anchor: Option<(u64, u32)>,
    samples: u64,
}

impl SampleClock {
    /// The PTS of a frame of `samples` samples whose message says `msg` (ticks).
    fn stamp(&mut self, msg: u64, samples: u32, rate: u32, sync: u64) -> u64 {
        let estimate = match self.anchor {
            Some((at, r)) if r == rate && rate > 0 => {
                Some(at.saturating_add(self.samples.saturating_mul(90_000) / u64::from(rate)))
            }
            _ => None,
        };
        let pts = match estimate {
            Some(e) if e.abs_diff(msg) <= sync => e,
            _ => {
                self.anchor = Some((msg, rate));
                self.samples = 0;
                msg
            }
        };
        self.samples = self.samples.saturating_add(u64::from(samples));
        pts
    }
}

/// Undoes the 32-bit wrap of FLV timestamps: each timestamp is the last one plus the wrapping
/// (signed 32-bit) difference, so it may also step back.
#[derive(Debug, Default)]
struct Unwrapper {
    last: Option<(u32, i64)>,
}

impl Unwrapper {
    fn unwrap(&mut self, raw: u32) -> u64 {
        let t = match self.last {
            None => i64::from(raw),
            Some((last_raw, last)) => {
                let t = last.saturating_add(i64::from(raw.wrapping_sub(last_raw) as i32));
                // Far below 0 the step is a restart from high up the 32-bit range, not a step back.
                if t < -(MAX_BACKWARD_STEP_MS as i64) {
                    t.saturating_add(1 << 32)
                } else {
                    t
                }
            }
        };
        self.last = Some((raw, t));
        // Just below 0 (audio a little ahead of the first picture at 0): clamped, like any small
        // step back.
        u64::try_from(t).unwrap_or(0)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Segmenter {
    conf: SegmenterConf,
    ts: TsWriter,
    timeline: Unwrapper,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    generations: u32,
    segment: Option<Segment>,
    /// The PMT of the last segment closed.
    previous: Option<Programme>,
    /// The next segment starts after a timeline jump.
    discontinuity: bool,
    video_clock: PidClock,
    audio_clock: PidClock,
    samples: SampleClock,
    audio_pes: AudioPes,
    said: u8,
    /// TS bytes of the open segment not yet handed out as `Data`.
    pending: Vec<u8>,
}

impl Segmenter {
    pub fn new(conf: SegmenterConf) -> Self {
        Segmenter {
            conf: conf.sanitized(),
            ts: TsWriter::new(),
            timeline: Unwrapper::default(),
            video: None,
            audio: None,
            generations: 0,
            segment: None,
            previous: None,
            discontinuity: false,
            video_clock: PidClock::default(),
            audio_clock: PidClock::default(),
            samples: SampleClock::default(),
            audio_pes: AudioPes::default(),
            said: 0,
            pending: Vec::new(),
        }
    }

    /// One RTMP audio message (type 8 payload).
    pub fn push_audio(&mut self, timestamp_ms: u32, body: &[u8], out: &mut Vec<SegEvent>) {
        match es::parse_audio(body) {
            AudioPacket::Ignored => {}
            AudioPacket::Unsupported(what) => {
                self.notice(Notice::AudioCodec, format!("{what}: audio dropped (HLS carries AAC and MP3)"), out)
            }
            AudioPacket::AacConfig(asc) => match aac::parse_config(asc) {
                Ok(c) => self.set_audio(AudioConfig::Aac(c)),
                Err(e) => self.notice(Notice::AudioConfig, format!("AAC sequence header: {e}: audio dropped"), out),
            },
            AudioPacket::AacFrame(raw) => self.aac_frame(timestamp_ms, raw, out),
            AudioPacket::Mp3(data) => self.mp3_frames(timestamp_ms, data, out),
        }
        self.emit_data(out);
    }

    /// One RTMP video message (type 9 payload).
    pub fn push_video(&mut self, timestamp_ms: u32, body: &[u8], out: &mut Vec<SegEvent>) {
        match es::parse_video(body) {
            VideoPacket::Ignored => {}
            VideoPacket::Unsupported(what) => {
                self.notice(Notice::VideoCodec, format!("{what}: video dropped (HLS carries H.264 and HEVC)"), out)
            }
            VideoPacket::SequenceHeader { kind, record } => self.video_config(kind, record, out),
            VideoPacket::Frame { kind, keyframe, cts, data } => {
                let t = self.timeline.unwrap(timestamp_ms);
                self.video_frame(t, kind, keyframe, cts, data, out);
            }
        }
        self.emit_data(out);
    }

    /// The publisher left: flush buffered audio and close the open segment (if any).
    pub fn finish(&mut self, out: &mut Vec<SegEvent>) {
        if self.segment.is_some() {
            self.close(None, out);
            // Whatever comes next is another publishing session.
            self.discontinuity = true;
        }
        self.emit_data(out);
    }

    /// Codecs (RFC 6381) and picture size for the playlists.
    pub fn media_info(&self) -> MediaInfo {
        let video = self.video.as_ref().map(|v| &v.config);
        MediaInfo {
            video_codec: video.map(|c| c.codec_string.clone()),
            audio_codec: self.audio.as_ref().map(|a| a.config.codec_string()),
            width: video.map_or(0, |c| c.width),
            height: video.map_or(0, |c| c.height),
            frame_rate_milli: video
                .and_then(|c| c.frame_rate)
                .filter(|r| r.is_finite() && *r > 0.0 && *r < 1000.0)
                .map_or(0, |r| (r * 1000.0).round() as u32),
        }
    }

    /// Is a segment open?
    pub fn is_open(&self) -> bool {
        self.segment.is_some()
    }

    fn notice(&mut self, kind: Notice, what: String, out: &mut Vec<SegEvent>) {
        let bit = kind as u8;
        if self.said & bit == 0 {
            self.said |= bit;
            out.push(SegEvent::Unsupported(what));
        }
    }

    fn emit_data(&mut self, out: &mut Vec<SegEvent>) {
        if !self.pending.is_empty() {
            out.push(SegEvent::Data(std::mem::take(&mut self.pending)));
        }
    }

    fn ticks(&self, ms: u64) -> u64 {
        ms.saturating_add(self.conf.muxdelay_ms).saturating_mul(TICKS_PER_MS)
    }

    /// The PCR that goes with a DTS.
    fn pcr(&self, dts: u64) -> u64 {
        dts.saturating_sub(self.conf.muxdelay_ms * TICKS_PER_MS)
    }

    fn next_generation(&mut self) -> u32 {
        self.generations = self.generations.wrapping_add(1);
        self.generations
    }

    fn video_config(&mut self, kind: VideoCodecKind, record: &[u8], out: &mut Vec<SegEvent>) {
        match VideoConfig::parse(kind, record) {
            Ok(config) if self.video.as_ref().is_some_and(|v| v.config == config) => {}
            Ok(config) => {
                let frame_ms = config
                    .frame_rate
                    .filter(|r| r.is_finite() && *r >= 1.0)
                    .map_or(0, |r| (1000.0 / r).round() as u64)
                    .min(MAX_FRAME_MS);
                let generation = self.next_generation();
                self.video = Some(VideoTrack { config, generation, frame_ms });
            }
            // The previous configuration (if any) stays: frames that need the new one fail to
            // decode for a while, which beats dropping the stream.
            Err(e) => self.notice(Notice::VideoConfig, format!("{kind:?} sequence header: {e}: video dropped"), out),
        }
    }

    fn set_audio(&mut self, config: AudioConfig) {
        if self.audio.as_ref().is_some_and(|a| a.config.same_stream(&config)) {
            return;
        }
        let generation = self.next_generation();
        self.audio = Some(AudioTrack { config, generation });
    }

    /// The PMT a segment opened now would have.
    fn programme(&self) -> Programme {
        Programme {
            video: self.video.as_ref().map(|v| (v.config.stream_type(), v.generation)),
            audio: self.audio.as_ref().map(|a| (a.config.stream_type(), a.generation)),
        }
    }

    /// Whether the open segment takes frames of `track` as they are configured now: video of the
    /// same configuration (new parameter sets need a new segment), audio of the same stream type
    /// (an ADTS header describes its own frame).
    fn carries(&self, track: Track) -> bool {
        let (now, seg) = (self.programme(), self.segment.as_ref().map(|s| s.programme));
        match (track, seg) {
            (Track::Video, Some(seg)) => now.video.is_some() && seg.video == now.video,
            (Track::Audio, Some(seg)) => now.audio.is_some() && seg.audio.map(|(t, _)| t) == now.audio.map(|(t, _)| t),
            (_, None) => false,
        }
    }

    fn clock(&self, track: Track) -> PidClock {
        match track {
            Track::Video => self.video_clock,
            Track::Audio => self.audio_clock,
        }
    }

    /// Has `t` crossed a fragment boundary since `start`?
    fn boundary(&self, start: u64, t: u64) -> bool {
        let f = self.conf.fragment_ms;
        if self.conf.aligned {
            t / f > start / f
        } else {
            t.saturating_sub(start) >= f
        }
    }

    /// Decides, for a frame of `track` at `t`, whether the open segment is cut (or closed after a
    /// jump) and whether a new one opens here. True when the frame goes into the open segment.
    fn admit(&mut self, track: Track, t: u64, keyframe: bool, out: &mut Vec<SegEvent>) -> bool {
        // The video paces the segments; without a video sequence header the audio does.
        let primary = if self.video.is_some() { Track::Video } else { Track::Audio };
        let is_primary = track == primary;
        if let Some(seg) = &self.segment {
            let jump = self.conf.jump_ms();
            let stepped_back =
                self.clock(track).last_ms.is_some_and(|last| last > t.saturating_add(MAX_BACKWARD_STEP_MS));
            let off_timeline = t.saturating_add(jump) < seg.start_ms || t > seg.head_ms.saturating_add(jump);
            if stepped_back || off_timeline {
                // Audio that left the video's timeline waits for the video to jump too.
                if !is_primary {
                    return false;
                }
                self.close(None, out);
                self.discontinuity = true;
            } else {
                let elapsed = t.saturating_sub(seg.start_ms);
                let changed = self.programme() != seg.programme;
                let boundary = self.boundary(seg.start_ms, t);
                let max = self.conf.max_fragment_ms;
                let cut = match (is_primary, primary) {
                    (true, Track::Video) => (keyframe && (changed || boundary)) || elapsed >= max,
                    (true, Track::Audio) => changed || boundary || elapsed >= max,
                    (false, _) => elapsed >= max.saturating_add(SECONDARY_FORCE_SLACK_MS),
                };
                if cut {
                    self.close(Some(t), out);
                    self.open(t, out);
                }
                return self.carries(track);
            }
        }
        // With video a segment starts at a keyframe; audio before it has nothing to go with.
        let opens = match primary {
            Track::Video => track == Track::Video && keyframe,
            Track::Audio => track == Track::Audio,
        };
        if !opens {
            return false;
        }
        self.open(t, out);
        self.carries(track)
    }

    fn open(&mut self, t: u64, out: &mut Vec<SegEvent>) {
        let programme = self.programme();
        let discontinuity = self.discontinuity || self.previous.is_some_and(|p| p != programme);
        if discontinuity {
            // A new timeline (or new codecs): timestamps start over from what comes now.
            self.video_clock = PidClock::default();
            self.audio_clock = PidClock::default();
            self.samples = SampleClock::default();
        }
        self.discontinuity = false;
        out.push(SegEvent::Open { start_ms: t, discontinuity });
        let mut streams = Vec::with_capacity(2);
        if let Some((stream_type, _)) = programme.video {
            streams.push(PmtStream { stream_type, pid: VIDEO_PID });
        }
        if let Some((stream_type, _)) = programme.audio {
            streams.push(PmtStream { stream_type, pid: AUDIO_PID });
        }
        let pcr_pid = if programme.video.is_some() || programme.audio.is_none() { VIDEO_PID } else { AUDIO_PID };
        self.ts.write_pat(&mut self.pending);
        self.ts.write_pmt(pcr_pid, &streams, &mut self.pending);
        self.segment = Some(Segment { start_ms: t, head_ms: t, end_ms: t, programme });
    }

    /// Closes the open segment: its audio goes out first. `next_start`: where the next segment
    /// starts (a cut), or None to end at the last frame (finish, jumps).
    fn close(&mut self, next_start: Option<u64>, out: &mut Vec<SegEvent>) {
        self.flush_audio();
        let Some(seg) = self.segment.take() else {
            return;
        };
        self.emit_data(out);
        let end = next_start.unwrap_or(seg.end_ms);
        out.push(SegEvent::Close { duration_ms: end.saturating_sub(seg.start_ms) });
        self.previous = Some(seg.programme);
    }

    fn note_frame(&mut self, t: u64, duration_ms: u64) {
        if let Some(seg) = &mut self.segment {
            seg.head_ms = seg.head_ms.max(t);
            seg.end_ms = seg.end_ms.max(t.saturating_add(duration_ms.min(MAX_FRAME_MS)));
        }
    }

    fn video_frame(
        &mut self,
        t: u64,
        kind: VideoCodecKind,
        keyframe: bool,
        cts: i32,
        data: &[u8],
        out: &mut Vec<SegEvent>,
    ) {
        // Frames before the first sequence header, or of another codec than it, cannot decode.
        let Some(track) = self.video.as_ref().filter(|v| v.config.kind == kind) else {
            return;
        };
        let mut au = Vec::new();
        if es::annexb_access_unit(&track.config, data, keyframe, &mut au).is_err() {
            return;
        }
        if !self.admit(Track::Video, t, keyframe, out) {
            return;
        }
        let dts = self.ticks(t).max(self.video_clock.last_dts);
        // A negative composition offset (broken encoders) would put PTS before DTS.
        let cts_ticks = u64::try_from(cts).unwrap_or(0) * TICKS_PER_MS;
        let pts = self.ticks(t).saturating_add(cts_ticks).max(dts);
        // Audio waiting longer than allowed goes out before this picture.
        if !self.audio_pes.data.is_empty()
            && dts >= self.audio_pes.pts.saturating_add(self.conf.max_audio_delay_ms * TICKS_PER_MS)
        {
            self.flush_audio();
        }
        let pcr_on_video = self.segment.as_ref().is_some_and(|s| s.programme.video.is_some());
        let pes = Pes {
            pid: VIDEO_PID,
            stream_id: VIDEO_STREAM_ID,
            pts,
            dts,
            pcr: pcr_on_video.then(|| self.pcr(dts)),
            random_access: keyframe,
            bounded: false,
            data: &au,
        };
        self.ts.write_pes(&pes, &mut self.pending);
        let previous = self.video_clock.last_ms;
        self.video_clock = PidClock { last_ms: Some(t), last_dts: dts };
        let step = previous.map_or(0, |p| t.saturating_sub(p));
        let frame_ms = match self.video.as_mut() {
            Some(v) => {
                if (1..=MAX_FRAME_MS).contains(&step) {
                    v.frame_ms = step;
                }
                v.frame_ms
            }
            None => 0,
        };
        self.note_frame(t, frame_ms);
    }

    fn aac_frame(&mut self, timestamp_ms: u32, raw: &[u8], out: &mut Vec<SegEvent>) {
        let t = self.timeline.unwrap(timestamp_ms);
        let Some(AudioConfig::Aac(config)) = self.audio.as_ref().map(|a| &a.config) else {
            return;
        };
        if raw.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(raw.len() + 7);
        if let Err(e) = es::adts_frame(config, raw, &mut frame) {
            self.notice(Notice::Adts, format!("AAC frame cannot be framed as ADTS: {e}: dropped"), out);
            return;
        }
        self.audio_frame(t, &frame, es::AAC_SAMPLES_PER_FRAME, out);
    }

    /// MPEG audio has no sequence header: each message's first frame header is the configuration.
    fn mp3_frames(&mut self, timestamp_ms: u32, data: &[u8], out: &mut Vec<SegEvent>) {
        let Some((header, frames)) = es::mp3_frames(data) else { return };
        self.set_audio(AudioConfig::Mp3(header));
        let t = self.timeline.unwrap(timestamp_ms);
        // A PES of audio states its length in 16 bits: such a message cannot be one.
        if data.len() <= MAX_BOUNDED_PES_DATA {
            self.audio_frame(t, data, header.samples_per_frame.saturating_mul(frames), out);
        }
    }

    /// Buffers one audio message's frames (ADTS or MPEG audio) of `samples` samples in all.
    fn audio_frame(&mut self, t: u64, frame: &[u8], samples: u32, out: &mut Vec<SegEvent>) {
        let rate = match &self.audio {
            Some(a) => a.config.sample_rate(),
            None => return,
        };
        if !self.admit(Track::Audio, t, false, out) {
            return;
        }
        let msg = self.ticks(t);
        let sync = self.conf.sync_ms * TICKS_PER_MS;
        let pts = self.samples.stamp(msg, samples, rate, sync).max(self.audio_clock.last_dts);
        let limit = self.conf.audio_buffer_size;
        if !self.audio_pes.data.is_empty() && self.audio_pes.data.len() + frame.len() > limit {
            self.flush_audio();
        }
        if self.audio_pes.data.is_empty() {
            self.audio_pes.pts = pts;
        }
        self.audio_pes.data.extend_from_slice(frame);
        self.audio_clock = PidClock { last_ms: Some(t), last_dts: pts };
        let duration_ms = if rate > 0 { u64::from(samples) * 1000 / u64::from(rate) } else { 0 };
        self.note_frame(t, duration_ms);
        let age = pts.saturating_sub(self.audio_pes.pts);
        if self.audio_pes.data.len() >= limit || age >= self.conf.max_audio_delay_ms * TICKS_PER_MS {
            self.flush_audio();
        }
    }

    /// Writes the buffered audio frames as one PES into the open segment.
    fn flush_audio(&mut self) {
        if self.audio_pes.data.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.audio_pes.data);
        let Some(seg) = &self.segment else { return };
        // Without video the audio carries the clock.
        let pcr = seg.programme.video.is_none().then(|| self.pcr(self.audio_pes.pts));
        let pes = Pes {
            pid: AUDIO_PID,
            stream_id: AUDIO_STREAM_ID,
            pts: self.audio_pes.pts,
            dts: self.audio_pes.pts,
            pcr,
            random_access: true,
            bounded: true,
            data: &data,
        };
        self.ts.write_pes(&pes, &mut self.pending);
        // The allocation is kept for the next PES.
        self.audio_pes.data = data;
        self.audio_pes.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpegts::demux::{DemuxEvent, DemuxedPes, Demuxer, EsInfo};
    use crate::mpegts::{PAT_PID, PMT_PID, TS_PACKET_SIZE};

    const AVC_RECORD: &[u8] = include_bytes!("../../tests/data/avc_high_640x360.bin");
    const AVC_RECORD_720: &[u8] = include_bytes!("../../tests/data/avc_high_1280x720.bin");
    /// AAC-LC, 44.1 kHz, stereo.
    const ASC: [u8; 2] = [0x12, 0x10];

    fn avc_header(record: &[u8]) -> Vec<u8> {
        [&[0x17, 0, 0, 0, 0][..], record].concat()
    }

    fn avc_frame(key: bool, cts: i32, size: usize) -> Vec<u8> {
        let mut nal = vec![if key { 0x65 } else { 0x41 }];
        nal.resize(size.max(1), 0xAB);
        let c = cts.to_be_bytes();
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]];
        v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        v.extend_from_slice(&nal);
        v
    }

    fn aac_frame(size: usize) -> Vec<u8> {
        let mut v = vec![0xAF, 1];
        v.resize(2 + size, 0x21);
        v
    }

    const MASK: u64 = (1 << 33) - 1;

    /// Is `b` at or after `a` on the 33-bit clock?
    fn ahead(a: u64, b: u64) -> bool {
        b.wrapping_sub(a) & MASK < 1 << 32
    }

    /// A stream's events taken apart into segments, checked for structure on the way.
    #[derive(Debug, Default)]
    struct Seg {
        start_ms: u64,
        discontinuity: bool,
        duration_ms: Option<u64>,
        ts: Vec<u8>,
        streams: Vec<EsInfo>,
        pcr_pid: u16,
        pes: Vec<DemuxedPes>,
    }

    impl Seg {
        fn of(&self, pid: u16) -> Vec<&DemuxedPes> {
            self.pes.iter().filter(|p| p.pid == pid).collect()
        }
    }

    fn split(events: &[SegEvent]) -> (Vec<Seg>, Vec<String>) {
        let (mut segs, mut notes) = (Vec::<Seg>::new(), Vec::new());
        let mut open = false;
        for e in events {
            match e {
                SegEvent::Open { start_ms, discontinuity } => {
                    assert!(!open, "Open while open");
                    open = true;
                    segs.push(Seg { start_ms: *start_ms, discontinuity: *discontinuity, ..Seg::default() });
                }
                SegEvent::Data(d) => {
                    assert!(open, "Data outside a segment");
                    assert!(!d.is_empty() && d.len() % TS_PACKET_SIZE == 0);
                    segs.last_mut().unwrap().ts.extend_from_slice(d);
                }
                SegEvent::Close { duration_ms } => {
                    assert!(open, "Close while closed");
                    open = false;
                    segs.last_mut().unwrap().duration_ms = Some(*duration_ms);
                }
                SegEvent::Unsupported(s) => notes.push(s.clone()),
            }
        }
        // One demuxer over all segments: counters continue from segment to segment.
        let mut d = Demuxer::new();
        for s in &mut segs {
            let pids: Vec<u16> =
                s.ts.chunks(188).take(2).map(|p| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])).collect();
            assert_eq!(pids, [PAT_PID, PMT_PID], "a segment starts with PAT and PMT");
            let mut events = d.push(&s.ts).unwrap();
            events.extend(d.finish().unwrap());
            for e in events {
                match e {
                    DemuxEvent::Pmt { pcr_pid, streams } => (s.pcr_pid, s.streams) = (pcr_pid, streams),
                    DemuxEvent::Pes(p) => s.pes.push(p),
                    DemuxEvent::Pat { .. } => {}
                    DemuxEvent::Pcr { .. } => panic!("PCR outside a PES start"),
                }
            }
            // finish() reports unbounded PES last: order by PID, then by DTS within.
            s.pes.sort_by_key(|p| p.pid);
            for pid in [VIDEO_PID, AUDIO_PID] {
                let dts: Vec<u64> = s.of(pid).iter().map(|p| p.decode_ts().unwrap()).collect();
                assert!(dts.windows(2).all(|w| ahead(w[0], w[1])), "DTS of {pid:#x} goes back: {dts:?}");
                for p in s.of(pid) {
                    assert!(ahead(p.decode_ts().unwrap(), p.pts.unwrap()));
                    assert_eq!(p.pcr.is_some(), pid == s.pcr_pid, "PCR on every PES of the PCR PID only");
                    if let Some(pcr) = p.pcr {
                        assert_eq!((pcr + 700 * 90) & MASK, p.decode_ts().unwrap());
                    }
                }
            }
        }
        (segs, notes)
    }

    /// Feeds `duration_ms` of 25 fps video (a keyframe every `gop_ms`) and 44.1 kHz AAC from `t0`,
    /// in timestamp order, audio first on equal timestamps.
    fn feed_av(s: &mut Segmenter, out: &mut Vec<SegEvent>, t0: u32, duration_ms: u32, gop_ms: u32, audio: bool) {
        let (mut v, mut a) = (0u32, 0u32);
        loop {
            let vt = v * 40;
            let at = (u64::from(a) * 1024 * 1000 / 44100) as u32;
            if vt >= duration_ms && (!audio || at >= duration_ms) {
                break;
            }
            if audio && at <= vt && at < duration_ms {
                s.push_audio(t0.wrapping_add(at), &aac_frame(20), out);
                a += 1;
            } else if vt < duration_ms {
                s.push_video(t0.wrapping_add(vt), &avc_frame(vt % gop_ms == 0, 80, 300), out);
                v += 1;
            } else {
                s.push_audio(t0.wrapping_add(at), &aac_frame(20), out);
                a += 1;
            }
        }
    }

    fn headers(s: &mut Segmenter, out: &mut Vec<SegEvent>, t: u32, audio: bool) {
        s.push_video(t, &avc_header(AVC_RECORD), out);
        if audio {
            s.push_audio(t, &[&[0xAF, 0][..], &ASC].concat(), out);
        }
    }

    fn durations(segs: &[Seg]) -> Vec<u64> {
        segs.iter().map(|s| s.duration_ms.unwrap()).collect()
    }

    fn starts(segs: &[Seg]) -> Vec<u64> {
        segs.iter().map(|s| s.start_ms).collect()
    }

    #[test]
    fn cuts_at_keyframes_after_the_fragment_length() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        feed_av(&mut s, &mut out, 0, 16_000, 2000, true);
        assert!(s.is_open());
        s.finish(&mut out);
        assert!(!s.is_open());
        let (segs, notes) = split(&out);
        assert!(notes.is_empty());
        assert_eq!(starts(&segs), [0, 6000, 12_000]);
        // The last one ends with its last frame: audio at 15998 + 23.
        assert_eq!(durations(&segs), [6000, 6000, 4021]);
        assert!(segs.iter().all(|s| !s.discontinuity));
        for seg in &segs {
            assert_eq!(
                seg.streams,
                [EsInfo { stream_type: 0x1B, pid: VIDEO_PID }, EsInfo { stream_type: 0x0F, pid: AUDIO_PID }]
            );
            assert_eq!(seg.pcr_pid, VIDEO_PID);
            // A keyframe opens every segment, with AUD, SPS and PPS in front of it.
            let first = seg.of(VIDEO_PID)[0];
            assert!(first.random_access);
            assert_eq!(first.decode_ts(), Some((seg.start_ms + 700) * 90));
            assert!(first.data.starts_with(&[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67]));
            assert_eq!(seg.of(VIDEO_PID).len() as u64, seg.duration_ms.unwrap() / 40);
            // Every audio frame is in one segment; PTS follow the sample count exactly.
            for p in seg.of(AUDIO_PID) {
                assert_eq!(p.data[..2], [0xFF, 0xF1]);
                assert_eq!(p.stream_id, 0xC0);
            }
        }
        let audio: Vec<&DemuxedPes> = segs.iter().flat_map(|s| s.of(AUDIO_PID)).collect();
        let frames: usize = audio.iter().map(|p| p.data.len() / 27).sum();
        // The frame at 0 came before the first keyframe.
        assert_eq!(frames, 16_000 * 44100 / 1024 / 1000);
        let first = audio[0].pts.unwrap();
        assert_eq!(first, (23 + 700) * 90);
        for p in &audio {
            let ticks = p.pts.unwrap() - first;
            // A whole number of frames from the first: 1024 samples are 90000 * 1024 / 44100 ticks.
            let n = (ticks * 44100 + 45_000) / (90_000 * 1024);
            assert!((n * 90_000 * 1024 / 44100).abs_diff(ticks) <= 1, "{ticks}");
        }
        // Video: DTS from the timestamp, PTS 80 ms later.
        let v = segs[1].of(VIDEO_PID);
        assert_eq!((v[1].dts, v[1].pts), (Some((6040 + 700) * 90), Some((6120 + 700) * 90)));
        assert_eq!(s.media_info().video_codec.as_deref(), Some("avc1.64001e"));
        assert_eq!(s.media_info().audio_codec.as_deref(), Some("mp4a.40.2"));
        assert_eq!((s.media_info().width, s.media_info().height), (640, 360));
    }

    #[test]
    fn aligned_slicing_cuts_at_multiples_of_the_fragment() {
        let conf = SegmenterConf { aligned: true, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, false);
        feed_av(&mut s, &mut out, 0, 21_000, 2000, false);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        // Plain slicing would cut at 6000, 12000, 18000.
        assert_eq!(starts(&segs), [0, 6000, 10_000, 16_000, 20_000]);
        assert_eq!(durations(&segs), [6000, 4000, 6000, 4000, 1000]);
        // Video only: one stream, PCR on it.
        assert_eq!(segs[0].streams, [EsInfo { stream_type: 0x1B, pid: VIDEO_PID }]);
    }

    #[test]
    fn forced_cut_without_keyframes() {
        let conf = SegmenterConf { fragment_ms: 1000, max_fragment_ms: 3000, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        feed_av(&mut s, &mut out, 0, 7000, 100_000, true);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [0, 3000, 6000]);
        assert!(segs[0].of(VIDEO_PID)[0].random_access);
        assert!(!segs[1].of(VIDEO_PID)[0].random_access);
    }

    #[test]
    fn audio_only_cuts_on_audio() {
        let conf = SegmenterConf { fragment_ms: 2000, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        s.push_audio(0, &[&[0xAF, 0][..], &ASC].concat(), &mut out);
        // 44.1 kHz frames at their rounded millisecond timestamps.
        for a in 0..300u64 {
            s.push_audio((a * 1024 * 1000 / 44100) as u32, &aac_frame(30), &mut out);
        }
        s.finish(&mut out);
        let (segs, _) = split(&out);
        // Frames 87, 174, 261 are the first at or past 2 s multiples from the start.
        assert_eq!(starts(&segs), [0, 2020, 4040, 6060]);
        assert_eq!(segs[0].streams, [EsInfo { stream_type: 0x0F, pid: AUDIO_PID }]);
        assert_eq!(segs[0].pcr_pid, AUDIO_PID);
        let total: u64 = durations(&segs).iter().sum();
        assert_eq!(total, 300 * 1024 * 1000 / 44100);
        // 300 ms of audio per PES: 13 frames of 23.2 ms (the 14th reaches 301.8 ms).
        assert_eq!(segs[0].of(AUDIO_PID)[0].data.len(), 14 * 37);
    }

    #[test]
    fn audio_buffer_size_bounds_a_pes() {
        let conf = SegmenterConf { audio_buffer_size: 100, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        s.push_audio(0, &[&[0xAF, 0][..], &ASC].concat(), &mut out);
        for a in 0..20u32 {
            s.push_audio(a * 23, &aac_frame(30), &mut out);
        }
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert!(segs[0].of(AUDIO_PID).iter().all(|p| p.data.len() <= 100));
        assert_eq!(segs[0].of(AUDIO_PID).len(), 10);
    }

    #[test]
    fn wraps_at_2_pow_32_are_undone() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        let t0 = u32::MAX - 6999;
        headers(&mut s, &mut out, t0, true);
        feed_av(&mut s, &mut out, t0, 14_000, 2000, true);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        let base = u64::from(t0);
        assert_eq!(starts(&segs), [base, base + 6000, base + 12_000]);
        assert!(segs.iter().all(|s| !s.discontinuity));
        // The 33-bit PES clock wraps here too (2^32 ms is 4.5 times round it): split checks
        // monotony modulo 2^33.
        assert_eq!(segs[1].of(VIDEO_PID)[0].dts, Some(((base + 6000 + 700) * 90) & ((1 << 33) - 1)));
    }

    #[test]
    fn publisher_restart_is_a_discontinuity() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        feed_av(&mut s, &mut out, 100_000, 7000, 2000, true);
        // The publisher reconnects through a relay: timestamps start over.
        headers(&mut s, &mut out, 0, true);
        feed_av(&mut s, &mut out, 0, 3000, 2000, true);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [100_000, 106_000, 0]);
        assert_eq!(segs.iter().map(|s| s.discontinuity).collect::<Vec<_>>(), [false, false, true]);
        // The cut segment ends at its last frame: audio at 106989 + 23.
        assert_eq!(durations(&segs), [6000, 1012, 3018]);
    }

    #[test]
    fn forward_jump_is_a_discontinuity() {
        let conf = SegmenterConf { max_fragment_ms: 8000, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, false);
        feed_av(&mut s, &mut out, 0, 3000, 1000, false);
        // 9.9 s later: no jump (the threshold is at least 10 s)...
        feed_av(&mut s, &mut out, 12_900, 1000, 1000, false);
        // ... 20 s later is.
        feed_av(&mut s, &mut out, 33_900, 1000, 1000, false);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [0, 12_900, 33_900]);
        assert_eq!(segs.iter().map(|s| s.discontinuity).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(durations(&segs), [12_900, 1000, 1000]);
    }

    #[test]
    fn small_steps_back_are_clamped() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        s.push_video(0, &avc_frame(true, 0, 100), &mut out);
        s.push_audio(500, &aac_frame(10), &mut out);
        // Audio stepping back 200 ms, video 30 ms: both clamped, no new segment.
        s.push_audio(300, &aac_frame(10), &mut out);
        s.push_video(40, &avc_frame(false, 0, 100), &mut out);
        s.push_video(10, &avc_frame(false, 0, 100), &mut out);
        s.push_video(80, &avc_frame(false, 0, 100), &mut out);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(segs.len(), 1);
        let v: Vec<u64> = segs[0].of(VIDEO_PID).iter().map(|p| p.decode_ts().unwrap() / 90 - 700).collect();
        assert_eq!(v, [0, 40, 40, 80]);
        assert_eq!(segs[0].of(AUDIO_PID).len(), 1);
    }

    #[test]
    fn audio_just_before_zero_is_no_jump() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        s.push_video(0, &avc_frame(true, 0, 100), &mut out);
        // 5 ms before 0: the 32-bit timestamp wraps backwards.
        s.push_audio(u32::MAX - 4, &aac_frame(10), &mut out);
        s.push_video(40, &avc_frame(false, 0, 100), &mut out);
        s.push_audio(18, &aac_frame(10), &mut out);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].of(VIDEO_PID).len(), 2);
        // Clamped to 0 on the unwrapped timeline.
        assert_eq!(segs[0].of(AUDIO_PID)[0].pts, Some(700 * 90));
    }

    #[test]
    fn after_finish_the_next_segment_is_a_discontinuity() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, false);
        feed_av(&mut s, &mut out, 0, 1000, 1000, false);
        s.finish(&mut out);
        s.finish(&mut out);
        feed_av(&mut s, &mut out, 1000, 1000, 1000, false);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [0, 1000]);
        assert_eq!(segs.iter().map(|s| s.discontinuity).collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn negative_composition_offsets_are_clamped() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, false);
        s.push_video(1000, &avc_frame(true, -500, 100), &mut out);
        s.push_video(1040, &avc_frame(false, 0x7F_FFFF, 100), &mut out);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        let v = segs[0].of(VIDEO_PID);
        assert_eq!(v[0].pts, Some(1700 * 90));
        assert_eq!(v[0].dts, None);
        assert_eq!(v[1].pts, Some(((1740 + 0x7F_FFFF) * 90) & ((1 << 33) - 1)));
    }

    #[test]
    fn new_sequence_header_cuts_at_the_next_keyframe() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        feed_av(&mut s, &mut out, 0, 1000, 500, true);
        // The same header again changes nothing.
        headers(&mut s, &mut out, 1000, true);
        feed_av(&mut s, &mut out, 1000, 1000, 500, true);
        // A new resolution: frames before its keyframe are dropped, the keyframe cuts.
        s.push_video(2000, &avc_header(AVC_RECORD_720), &mut out);
        s.push_video(2000, &avc_frame(false, 0, 100), &mut out);
        feed_av(&mut s, &mut out, 2040, 1000, 500, true);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [0, 2040]);
        assert!(segs[1].discontinuity);
        assert_eq!(durations(&segs)[0], 2040);
        assert_eq!(segs[0].of(VIDEO_PID).len(), 50);
        assert_eq!(s.media_info().width, 1280);
    }

    #[test]
    fn late_streams_join_at_the_next_segment() {
        let conf = SegmenterConf { fragment_ms: 1000, ..SegmenterConf::default() };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, false);
        s.push_video(0, &avc_frame(true, 0, 100), &mut out);
        // Audio starts after the segment opened: it is not in the PMT, so it waits.
        headers(&mut s, &mut out, 20, true);
        s.push_audio(20, &aac_frame(10), &mut out);
        s.push_video(40, &avc_frame(false, 0, 100), &mut out);
        s.push_audio(500, &aac_frame(10), &mut out);
        // The next keyframe cuts, long before the fragment is full.
        s.push_video(80, &avc_frame(true, 0, 100), &mut out);
        s.push_audio(100, &aac_frame(10), &mut out);
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(starts(&segs), [0, 80]);
        assert!(segs[0].of(AUDIO_PID).is_empty());
        assert!(segs[1].discontinuity);
        assert_eq!(segs[1].streams.len(), 2);
        assert_eq!(segs[1].of(AUDIO_PID).len(), 1);
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        // Before any sequence header: dropped.
        s.push_video(0, &avc_frame(true, 0, 100), &mut out);
        headers(&mut s, &mut out, 0, true);
        s.push_audio(0, &aac_frame(10), &mut out);
        s.push_video(40, &avc_frame(false, 0, 100), &mut out);
        assert!(out.is_empty());
        assert!(!s.is_open());
        s.push_video(80, &avc_frame(true, 0, 100), &mut out);
        assert!(s.is_open());
        assert!(matches!(out[..], [SegEvent::Open { start_ms: 80, discontinuity: false }, SegEvent::Data(_)]));
    }

    #[test]
    fn unsupported_codecs_are_said_once() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        for t in 0..3 {
            s.push_video(t, &[0x14, 0, 1, 2], &mut out);
            s.push_audio(t, &[0x90, b'O', b'p', b'u', b's', 1], &mut out);
            s.push_video(t, &[0x17, 0, 0, 0, 0, 1, 2, 3], &mut out);
            s.push_audio(t, &[0xAF, 0, 0x00, 0x00], &mut out);
        }
        let (_, notes) = split(&out);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[0].contains("VP6"));
        assert!(notes[1].contains("Opus"));
        assert_eq!(s.media_info(), MediaInfo::default());
    }

    #[test]
    fn broken_frames_are_dropped() {
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        headers(&mut s, &mut out, 0, true);
        // A NAL length far past the payload, truncated headers, empty bodies.
        s.push_video(0, &[0x17, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0, 0x65], &mut out);
        s.push_video(0, &[0x17, 1, 0], &mut out);
        s.push_video(0, &[], &mut out);
        s.push_audio(0, &[], &mut out);
        s.push_audio(0, &[0xAF, 1], &mut out);
        assert!(out.is_empty());
        // An AAC frame too long for ADTS.
        s.push_video(0, &avc_frame(true, 0, 10), &mut out);
        s.push_audio(0, &aac_frame(9000), &mut out);
        s.finish(&mut out);
        let (segs, notes) = split(&out);
        assert_eq!(segs.len(), 1);
        assert_eq!(notes.len(), 1);
        assert!(segs[0].of(AUDIO_PID).is_empty());
    }

    #[test]
    fn mp3_audio_only() {
        let mp3 = include_bytes!("../../tests/data/mp3_l3_44100_stereo_128k.bin");
        let mut s = Segmenter::new(SegmenterConf::default());
        let mut out = Vec::new();
        for i in 0..10u32 {
            s.push_audio(i * 78, &[&[0x2F][..], mp3].concat(), &mut out);
        }
        s.finish(&mut out);
        let (segs, _) = split(&out);
        assert_eq!(segs[0].streams, [EsInfo { stream_type: 0x03, pid: AUDIO_PID }]);
        let audio = segs[0].of(AUDIO_PID);
        assert_eq!(audio.iter().map(|p| p.data.len()).sum::<usize>(), 10 * mp3.len());
        // Three frames per message: 3456 samples, 78.4 ms.
        assert_eq!(durations(&segs), [9 * 78 + 78]);
        assert_eq!(s.media_info().audio_codec.as_deref(), Some("mp4a.40.34"));
    }

    #[test]
    fn hostile_configuration_values() {
        let conf = SegmenterConf {
            fragment_ms: 0,
            max_fragment_ms: u64::MAX,
            aligned: true,
            sync_ms: u64::MAX,
            muxdelay_ms: u64::MAX,
            max_audio_delay_ms: u64::MAX,
            audio_buffer_size: 0,
        };
        let mut s = Segmenter::new(conf);
        let mut out = Vec::new();
        headers(&mut s, &mut out, u32::MAX, true);
        feed_av(&mut s, &mut out, u32::MAX - 100, 300, 80, true);
        s.finish(&mut out);
        assert!(out.iter().any(|e| matches!(e, SegEvent::Close { .. })));
    }
}
