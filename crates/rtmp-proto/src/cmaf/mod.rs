//! CMAF (fragmented MP4) packaging: RTMP audio and video messages in, per-track init segments and
//! chunks (`moof` + `mdat`) out, for DASH, fMP4 HLS and Low-Latency HLS alike. A segment is the
//! concatenation of its chunks, so LL-HLS parts and whole segments are the same bytes.
//!
//! One video track (H.264 as `avc1`, HEVC as `hvc1`, timescale 90 kHz, track id 1) and one audio
//! track (AAC as `mp4a`, timescale = its sample rate, track id 2), never muxed.
//!
//! Timing: a sample's duration is the distance to the next sample's decode time, so every sample is
//! held back until the next one arrives (at `flush` the last one gets the duration before it): no
//! zero durations, and each chunk's `tfdt` is the previous one's plus its durations. Video decode
//! times are the RTMP milliseconds × 90; audio times count 1024-sample frames from an anchor taken
//! from the message time, re-anchored when that drifts more than `audio_sync_ms` away. Decode times
//! that step back are clamped to 1 tick after the previous one (`CmafStats::clamped`); a step back
//! by more than a second, or forward past what a 32-bit duration holds, moves the track's timeline
//! (`CmafStats::rebased`).
//!
//! Cutting: the video track (once it has started, at a keyframe) leads: it ends a segment at the
//! first keyframe at least `segment_ms` after the segment's start, and the audio track ends its
//! segment of the same number at the first audio frame at or after that keyframe's presentation
//! time. To see a cut before it passes it, audio waits until the video has reached its time (at
//! most `max_interleave_ms`). Without video, audio cuts at `segment_ms` by itself. Chunks (parts)
//! end before the sample that would make them longer than `part_ms`, and at segment ends.

mod boxes;
#[cfg(test)]
mod tests;

pub use boxes::{hvcc_for_hvc1, SampleEntry, NON_SYNC_SAMPLE_FLAGS, SYNC_SAMPLE_FLAGS};

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::aac;
use crate::mpegts::es::{
    self, AudioPacket, VideoCodecKind, VideoConfig, VideoPacket, AAC_SAMPLES_PER_FRAME,
};

pub const VIDEO_TIMESCALE: u32 = 90_000;
pub const VIDEO_TRACK_ID: u32 = 1;
pub const AUDIO_TRACK_ID: u32 = 2;

/// A step back larger than this (ms) moves the timeline instead of being clamped.
const MAX_BACKWARD_STEP_MS: u64 = 1000;
/// Samples larger than this are dropped (an RTMP message holds at most 16 MiB).
const MAX_SAMPLE_BYTES: usize = 64 << 20;
/// A chunk is closed once it holds this many samples.
const MAX_CHUNK_SAMPLES: usize = 10_000;
/// Audio frames held for the video to catch up, at most.
const MAX_HELD: usize = 4096;
/// Cuts remembered for the audio track, at most.
const MAX_CUTS: usize = 64;
/// Configured durations beyond a day are taken as a day.
const MAX_CONF_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmafConf {
    /// Target segment duration: video cuts at the first keyframe at or after it; audio-only
    /// streams at the first frame. 0: only when `end_segment` asks.
    pub segment_ms: u64,
    /// A video segment this long is cut even without a keyframe (its next segment is then not
    /// independent). 0: never.
    pub max_segment_ms: u64,
    /// Chunks (LL-HLS parts, CMAF chunks) end before the sample that would make them longer. 0:
    /// one chunk per segment (plus `end_part` calls).
    pub part_ms: u64,
    /// Audio decode times count samples unless they drift more than this from the message times.
    pub audio_sync_ms: u64,
    /// Audio waits at most this long for the video to catch up before it is packaged.
    pub max_interleave_ms: u64,
    /// A chunk is closed once its media data reaches this size.
    pub max_chunk_bytes: usize,
    /// The number of the first segment.
    pub first_segment: u64,
}

impl Default for CmafConf {
    fn default() -> Self {
        CmafConf {
            segment_ms: 5000,
            max_segment_ms: 50_000,
            part_ms: 0,
            audio_sync_ms: 15,
            max_interleave_ms: 500,
            max_chunk_bytes: 16 << 20,
            first_segment: 1,
        }
    }
}

impl CmafConf {
    fn sanitized(&self) -> CmafConf {
        CmafConf {
            segment_ms: self.segment_ms.min(MAX_CONF_MS),
            max_segment_ms: self.max_segment_ms.min(MAX_CONF_MS),
            part_ms: self.part_ms.min(MAX_CONF_MS),
            audio_sync_ms: self.audio_sync_ms.min(MAX_CONF_MS),
            max_interleave_ms: self.max_interleave_ms.min(MAX_CONF_MS),
            max_chunk_bytes: self.max_chunk_bytes.clamp(1, 1 << 30),
            first_segment: self.first_segment,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    /// 0 for video, 1 for audio: an index into per-track arrays.
    pub const fn index(self) -> usize {
        match self {
            TrackKind::Video => 0,
            TrackKind::Audio => 1,
        }
    }
}

/// One `moof` + `mdat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub track: TrackKind,
    pub bytes: Bytes,
    /// The segment it belongs to, and its index in it (0 for the first).
    pub segment: u64,
    pub part: u32,
    /// Its `mfhd` sequence number.
    pub sequence: u32,
    pub timescale: u32,
    /// `tfdt` (decode time of the first sample) and the sum of the sample durations, in timescale.
    pub start: u64,
    pub duration: u64,
    /// The same in ms: `start_ms` = floor(start), `duration_ms` = floor(end) - floor(start), so that
    /// the durations of consecutive chunks add up.
    pub start_ms: u64,
    pub duration_ms: u64,
    /// Presentation time of its earliest sample, in timescale.
    pub earliest_pts: i64,
    /// It starts with a sync sample (a keyframe; every audio chunk).
    pub independent: bool,
    pub samples: u32,
}

/// A segment that ended: its chunks, concatenated, are the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub track: TrackKind,
    pub number: u64,
    pub timescale: u32,
    pub start: u64,
    pub duration: u64,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub earliest_pts: i64,
    pub independent: bool,
    pub parts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmafEvent {
    /// A (new) init segment for the track: the chunks after it need it. `codec` per RFC 6381.
    Init {
        track: TrackKind,
        bytes: Bytes,
        codec: String,
        timescale: u32,
    },
    Chunk(Chunk),
    SegmentEnd(SegmentInfo),
    /// Said once per track and reason: frames of a codec CMAF cannot carry here (MP3, VP6, ...),
    /// or a broken sequence header, are dropped.
    Unsupported {
        track: TrackKind,
        reason: String,
    },
}

/// What had to be fixed in the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CmafStats {
    /// Decode times that did not advance, set to 1 tick after the previous one.
    pub clamped: u64,
    /// Timeline moves: steps back by more than a second, or forward past 2^32 ticks.
    pub rebased: u64,
    /// Frames dropped: video before a keyframe or without a configuration, oversized frames.
    pub dropped: u64,
    /// Audio clock re-anchored to the message time.
    pub audio_resyncs: u64,
}

fn ticks_to_ms(t: u64, timescale: u32) -> u64 {
    let v = u128::from(t) * 1000 / u128::from(timescale.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

fn ms_to_ticks(ms: u64, timescale: u32) -> u64 {
    u64::try_from(u128::from(ms) * u128::from(timescale) / 1000).unwrap_or(u64::MAX)
}

/// Rounded to the nearest tick (halves up): how message times become audio anchors.
fn ms_to_ticks_round(ms: u64, timescale: u32) -> u64 {
    u64::try_from((u128::from(ms) * u128::from(timescale) + 500) / 1000).unwrap_or(u64::MAX)
}

fn ms_to_ticks_ceil(ms: u64, timescale: u32) -> u64 {
    u64::try_from((u128::from(ms) * u128::from(timescale)).div_ceil(1000)).unwrap_or(u64::MAX)
}

fn pts(dts: u64, cto: i32) -> i64 {
    i64::try_from(dts)
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(cto))
}

/// FLV timestamps unwrapped, then turned into a non-decreasing... strictly increasing decode
/// timeline.
#[derive(Debug, Default)]
struct Clock {
    /// The last message timestamp and its unwrapped value (ms).
    last: Option<(u32, u64)>,
    /// Added to the raw ticks (timeline moves).
    offset: i128,
    /// The last decode time handed out.
    last_out: Option<u64>,
}

impl Clock {
    fn unwrap(&mut self, ts: u32) -> u64 {
        let ms = match self.last {
            None => u64::from(ts),
            Some((lt, lu)) => {
                let step = i64::from(ts.wrapping_sub(lt) as i32);
                let v = i64::try_from(lu)
                    .unwrap_or(i64::MAX)
                    .saturating_add(step)
                    .max(0);
                u64::try_from(v).unwrap_or(0)
            }
        };
        self.last = Some((ts, ms));
        ms
    }

    /// A strictly increasing decode time from `raw` ticks.
    fn map(&mut self, raw: u64, back_limit: u64, guess: u64, stats: &mut CmafStats) -> u64 {
        let want = u64::try_from((i128::from(raw) + self.offset).clamp(0, i128::from(u64::MAX)))
            .unwrap_or(0);
        let out = match self.last_out {
            None => want,
            Some(last) if want > last && want - last <= u64::from(u32::MAX) => want,
            Some(last) if want <= last && last - want <= back_limit => {
                stats.clamped += 1;
                last.saturating_add(1)
            }
            Some(last) => {
                let target = last.saturating_add(guess.clamp(1, u64::from(u32::MAX)));
                self.offset += i128::from(target) - i128::from(want);
                stats.rebased += 1;
                target
            }
        };
        self.last_out = Some(out);
        out
    }
}

#[derive(Debug)]
struct Sample {
    dts: u64,
    cto: i32,
    sync: bool,
    data: Vec<u8>,
    duration: u32,
}

#[derive(Debug)]
struct Seg {
    number: u64,
    start: u64,
    duration: u64,
    earliest_pts: i64,
    independent: bool,
    parts: u32,
}

/// A track's configuration: what its init segment says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    entry: SampleEntry,
    codec: String,
    timescale: u32,
    /// Duration assumed for a last sample without a successor.
    default_duration: u32,
}

#[derive(Debug)]
struct Track {
    kind: TrackKind,
    id: u32,
    config: Option<Config>,
    init: Option<Bytes>,
    /// A new configuration, taking effect with the next frame.
    next: Option<Config>,
    /// The latest sample: its duration comes with the next one.
    pending: Option<Sample>,
    chunk: Vec<Sample>,
    chunk_bytes: usize,
    seg: Option<Seg>,
    sequence: u32,
    last_duration: u32,
    clock: Clock,
    /// Audio: anchor (ticks) and frames counted since.
    anchor: Option<(u64, u64)>,
    cut_requested: bool,
    /// A segment number taken for this track's next cut.
    reserved: Option<u64>,
    /// The number of its latest segment.
    last_number: Option<u64>,
    /// Unsupported notices given (bits).
    said: u8,
}

impl Track {
    fn new(kind: TrackKind, id: u32) -> Self {
        Track {
            kind,
            id,
            config: None,
            init: None,
            next: None,
            pending: None,
            chunk: Vec::new(),
            chunk_bytes: 0,
            seg: None,
            sequence: 0,
            last_duration: 0,
            clock: Clock::default(),
            anchor: None,
            cut_requested: false,
            reserved: None,
            last_number: None,
            said: 0,
        }
    }

    fn timescale(&self) -> u32 {
        self.config.as_ref().map_or(1, |c| c.timescale)
    }

    fn notice(&mut self, bit: u8, reason: String, out: &mut Vec<CmafEvent>) {
        if self.said & bit == 0 {
            self.said |= bit;
            out.push(CmafEvent::Unsupported {
                track: self.kind,
                reason,
            });
        }
    }

    /// Makes `config` the track's, with its init segment.
    fn apply(&mut self, config: Config, out: &mut Vec<CmafEvent>) {
        let init = Bytes::from(boxes::init_segment(
            self.id,
            config.timescale,
            &config.entry,
        ));
        out.push(CmafEvent::Init {
            track: self.kind,
            bytes: init.clone(),
            codec: config.codec.clone(),
            timescale: config.timescale,
        });
        self.init = Some(init);
        self.last_duration = 0;
        self.config = Some(config);
    }

    fn open(&mut self, number: u64, first: &Sample) {
        self.last_number = Some(number);
        self.seg = Some(Seg {
            number,
            start: first.dts,
            duration: 0,
            earliest_pts: pts(first.dts, first.cto),
            independent: first.sync,
            parts: 0,
        });
    }

    /// Adds a sample whose duration is known to the open chunk.
    fn add(
        &mut self,
        s: Sample,
        part_ticks: u64,
        max_chunk_bytes: usize,
        out: &mut Vec<CmafEvent>,
    ) {
        if let (Some(first), true) = (self.chunk.first(), part_ticks > 0) {
            let end = s.dts.saturating_add(u64::from(s.duration));
            if end.saturating_sub(first.dts) > part_ticks {
                self.close_chunk(out);
            }
        }
        self.last_duration = s.duration;
        self.chunk_bytes = self.chunk_bytes.saturating_add(s.data.len());
        self.chunk.push(s);
        if self.chunk_bytes >= max_chunk_bytes || self.chunk.len() >= MAX_CHUNK_SAMPLES {
            self.close_chunk(out);
        }
    }

    /// Gives the pending sample its duration (up to `next_dts`, or the last duration) and adds it.
    fn complete_pending(
        &mut self,
        next_dts: Option<u64>,
        part_ticks: u64,
        max_bytes: usize,
        out: &mut Vec<CmafEvent>,
    ) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let fallback = match (self.last_duration, &self.config) {
            (0, Some(c)) => c.default_duration,
            (0, None) => 1,
            (d, _) => d,
        };
        let d = next_dts.map_or(u64::from(fallback), |n| n.saturating_sub(p.dts));
        p.duration = u32::try_from(d).unwrap_or(u32::MAX).max(1);
        self.add(p, part_ticks, max_bytes, out);
    }

    fn close_chunk(&mut self, out: &mut Vec<CmafEvent>) {
        if self.chunk.is_empty() {
            return;
        }
        let samples = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        let video = self.kind == TrackKind::Video;
        let frag: Vec<boxes::FragSample> = samples
            .iter()
            .map(|s| boxes::FragSample {
                duration: s.duration,
                size: u32::try_from(s.data.len()).unwrap_or(u32::MAX),
                sync: s.sync,
                cto: s.cto,
            })
            .collect();
        let data: Vec<&[u8]> = samples.iter().map(|s| s.data.as_slice()).collect();
        let start = samples.first().map_or(0, |s| s.dts);
        let duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        let earliest_pts = samples.iter().map(|s| pts(s.dts, s.cto)).min().unwrap_or(0);
        let independent = samples.first().is_some_and(|s| s.sync);
        self.sequence = self.sequence.wrapping_add(1);
        let bytes = Bytes::from(boxes::chunk(
            self.sequence,
            self.id,
            start,
            video,
            &frag,
            &data,
        ));
        let timescale = self.timescale();
        let (segment, part) = match self.seg.as_mut() {
            Some(seg) => {
                seg.duration = seg.duration.saturating_add(duration);
                seg.earliest_pts = seg.earliest_pts.min(earliest_pts);
                seg.parts += 1;
                (seg.number, seg.parts - 1)
            }
            None => (0, 0),
        };
        let start_ms = ticks_to_ms(start, timescale);
        out.push(CmafEvent::Chunk(Chunk {
            track: self.kind,
            bytes,
            segment,
            part,
            sequence: self.sequence,
            timescale,
            start,
            duration,
            start_ms,
            duration_ms: ticks_to_ms(start.saturating_add(duration), timescale) - start_ms,
            earliest_pts,
            independent,
            samples: u32::try_from(samples.len()).unwrap_or(u32::MAX),
        }));
    }

    /// Closes the open chunk and segment.
    fn end_segment(&mut self, out: &mut Vec<CmafEvent>) {
        self.close_chunk(out);
        let Some(seg) = self.seg.take() else { return };
        if seg.parts == 0 {
            return;
        }
        let timescale = self.timescale();
        let start_ms = ticks_to_ms(seg.start, timescale);
        out.push(CmafEvent::SegmentEnd(SegmentInfo {
            track: self.kind,
            number: seg.number,
            timescale,
            start: seg.start,
            duration: seg.duration,
            start_ms,
            duration_ms: ticks_to_ms(seg.start.saturating_add(seg.duration), timescale) - start_ms,
            earliest_pts: seg.earliest_pts,
            independent: seg.independent,
            parts: seg.parts,
        }));
    }

    /// The end of a stream: the pending sample gets the previous duration; all closed.
    fn flush(&mut self, part_ticks: u64, max_bytes: usize, out: &mut Vec<CmafEvent>) {
        if let Some(p) = &self.pending {
            let dts = p.dts;
            self.complete_pending(None, part_ticks, max_bytes, out);
            // The last duration was a guess: what comes next starts after it, not inside it.
            let end = dts.saturating_add(u64::from(self.last_duration.max(1)));
            let last = self.clock.last_out.unwrap_or(0).max(end - 1);
            self.clock.last_out = Some(last);
        }
        self.end_segment(out);
    }
}

/// A cut the video made: segment `number` starts at `at_ms` (presentation time of its keyframe).
#[derive(Debug, Clone, Copy)]
struct Cut {
    number: u64,
    at_ms: u64,
}

const NOTICE_CODEC: u8 = 1;
const NOTICE_CONFIG: u8 = 2;
const NOTICE_NO_CONFIG: u8 = 4;

/// The packager: feed it RTMP messages in order, collect events.
#[derive(Debug)]
pub struct CmafPackager {
    conf: CmafConf,
    video: Track,
    audio: Track,
    /// Audio samples waiting for the video to reach their time.
    held: VecDeque<Sample>,
    cuts: VecDeque<Cut>,
    next_number: u64,
    /// The video track cuts segments and audio follows.
    video_leads: bool,
    stats: CmafStats,
}

/// Enhanced RTMP with the FourCC `hev1` (written by a few encoders): read as `hvc1` (the record
/// is the same; our sample entry is `hvc1` regardless).
fn parse_video(p: &[u8]) -> VideoPacket<'_> {
    let b0 = p.first().copied().unwrap_or(0);
    if b0 & 0x80 == 0 || p.get(1..5) != Some(b"hev1") {
        return es::parse_video(p);
    }
    let (frame_type, packet_type) = ((b0 >> 4) & 0x07, b0 & 0x0F);
    let kind = VideoCodecKind::Hevc;
    fn frame(frame_type: u8, cts: i32, data: Option<&[u8]>) -> VideoPacket<'_> {
        match data {
            Some(data) if frame_type != 5 => VideoPacket::Frame {
                kind: VideoCodecKind::Hevc,
                keyframe: frame_type == 1,
                cts,
                data,
            },
            _ => VideoPacket::Ignored,
        }
    }
    match packet_type {
        0 => VideoPacket::SequenceHeader {
            kind,
            record: p.get(5..).unwrap_or_default(),
        },
        1 => match p.get(5..8) {
            Some(&[c0, c1, c2]) => frame(
                frame_type,
                i32::from_be_bytes([c0, c1, c2, 0]) >> 8,
                p.get(8..),
            ),
            _ => VideoPacket::Ignored,
        },
        3 => frame(frame_type, 0, p.get(5..)),
        _ => VideoPacket::Ignored,
    }
}

impl CmafPackager {
    pub fn new(conf: CmafConf) -> Self {
        let conf = conf.sanitized();
        CmafPackager {
            next_number: conf.first_segment,
            conf,
            video: Track::new(TrackKind::Video, VIDEO_TRACK_ID),
            audio: Track::new(TrackKind::Audio, AUDIO_TRACK_ID),
            held: VecDeque::new(),
            cuts: VecDeque::new(),
            video_leads: false,
            stats: CmafStats::default(),
        }
    }

    pub fn conf(&self) -> &CmafConf {
        &self.conf
    }

    /// The current init segment of a track (the one its latest chunks need).
    pub fn init_segment(&self, track: TrackKind) -> Option<Bytes> {
        self.track(track).init.clone()
    }

    /// RFC 6381 codec of a track, e.g. "avc1.64001f", "hvc1.1.6.L93.B0", "mp4a.40.2".
    pub fn codec(&self, track: TrackKind) -> Option<&str> {
        self.track(track).config.as_ref().map(|c| c.codec.as_str())
    }

    pub fn timescale(&self, track: TrackKind) -> Option<u32> {
        self.track(track).config.as_ref().map(|c| c.timescale)
    }

    /// Picture size of the video track.
    pub fn dimensions(&self) -> Option<(u16, u16)> {
        match self.video.config.as_ref().map(|c| &c.entry) {
            Some(
                SampleEntry::Avc { width, height, .. } | SampleEntry::Hevc { width, height, .. },
            ) => Some((*width, *height)),
            _ => None,
        }
    }

    pub fn stats(&self) -> CmafStats {
        self.stats
    }

    fn track(&self, track: TrackKind) -> &Track {
        match track {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }
    }

    fn part_ticks(&self, timescale: u32) -> u64 {
        ms_to_ticks(self.conf.part_ms, timescale)
    }

    fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number = self.next_number.saturating_add(1);
        n
    }

    /// One RTMP video message (type 9 payload).
    pub fn push_video(&mut self, timestamp_ms: u32, body: &[u8], out: &mut Vec<CmafEvent>) {
        match parse_video(body) {
            VideoPacket::SequenceHeader { kind, record } => self.video_config(kind, record, out),
            VideoPacket::Frame {
                kind,
                keyframe,
                cts,
                data,
            } => {
                let Some(config) = self.video.next.as_ref().or(self.video.config.as_ref()) else {
                    self.stats.dropped += 1;
                    let why = "video frames before a sequence header: dropped".to_string();
                    self.video.notice(NOTICE_NO_CONFIG, why, out);
                    return;
                };
                let configured = match config.entry {
                    SampleEntry::Avc { .. } => VideoCodecKind::Avc,
                    _ => VideoCodecKind::Hevc,
                };
                if configured != kind || data.len() > MAX_SAMPLE_BYTES {
                    self.stats.dropped += 1;
                    return;
                }
                let ms = self.video.clock.unwrap(timestamp_ms);
                let guess = match self.video.last_duration {
                    0 => u64::from(config.default_duration),
                    d => u64::from(d),
                };
                let back = ms_to_ticks(MAX_BACKWARD_STEP_MS, VIDEO_TIMESCALE);
                let dts = self.video.clock.map(
                    ms_to_ticks(ms, VIDEO_TIMESCALE),
                    back,
                    guess,
                    &mut self.stats,
                );
                let cto = i32::try_from(i64::from(cts) * 90).unwrap_or(0);
                let sample = Sample {
                    dts,
                    cto,
                    sync: keyframe,
                    data: data.to_vec(),
                    duration: 0,
                };
                self.video_frame(sample, out);
                self.release_audio(false, out);
            }
            VideoPacket::Ignored => {}
            VideoPacket::Unsupported(what) => {
                self.stats.dropped += 1;
                self.video
                    .notice(NOTICE_CODEC, format!("{what}: not packaged in CMAF"), out);
            }
        }
    }

    /// One RTMP audio message (type 8 payload).
    pub fn push_audio(&mut self, timestamp_ms: u32, body: &[u8], out: &mut Vec<CmafEvent>) {
        match es::parse_audio(body) {
            AudioPacket::AacConfig(asc) => self.audio_config(asc, out),
            AudioPacket::AacFrame(raw) => {
                let Some(config) = self.audio.next.as_ref().or(self.audio.config.as_ref()) else {
                    self.stats.dropped += 1;
                    let why = "AAC frames before a sequence header: dropped".to_string();
                    self.audio.notice(NOTICE_NO_CONFIG, why, out);
                    return;
                };
                if raw.len() > MAX_SAMPLE_BYTES {
                    self.stats.dropped += 1;
                    return;
                }
                let rate = config.timescale;
                let ms = self.audio.clock.unwrap(timestamp_ms);
                let msg = ms_to_ticks_round(ms, rate);
                let tolerance = ms_to_ticks(self.conf.audio_sync_ms, rate);
                let frame = u64::from(AAC_SAMPLES_PER_FRAME);
                let raw_dts = match self.audio.anchor {
                    Some((at, n))
                        if at.saturating_add(n.saturating_mul(frame)).abs_diff(msg)
                            <= tolerance =>
                    {
                        self.audio.anchor = Some((at, n + 1));
                        at.saturating_add(n.saturating_mul(frame))
                    }
                    prev => {
                        if prev.is_some() {
                            self.stats.audio_resyncs += 1;
                        }
                        self.audio.anchor = Some((msg, 1));
                        msg
                    }
                };
                let back = ms_to_ticks(MAX_BACKWARD_STEP_MS, rate);
                let dts = self.audio.clock.map(raw_dts, back, frame, &mut self.stats);
                self.held.push_back(Sample {
                    dts,
                    cto: 0,
                    sync: true,
                    data: raw.to_vec(),
                    duration: 0,
                });
                self.release_audio(false, out);
            }
            AudioPacket::Mp3(_) => {
                self.stats.dropped += 1;
                self.audio.notice(
                    NOTICE_CODEC,
                    "audio codec MP3: not packaged in CMAF".to_string(),
                    out,
                );
            }
            AudioPacket::Ignored => {}
            AudioPacket::Unsupported(what) => {
                self.stats.dropped += 1;
                self.audio
                    .notice(NOTICE_CODEC, format!("{what}: not packaged in CMAF"), out);
            }
        }
    }

    /// Ends the open chunks now (LL-HLS part boundaries the caller keeps): each holds the samples
    /// whose durations are known.
    pub fn end_part(&mut self, out: &mut Vec<CmafEvent>) {
        self.video.close_chunk(out);
        self.audio.close_chunk(out);
    }

    /// Asks for a segment cut at the next video keyframe (with video) or audio frame (without),
    /// whatever `segment_ms` says.
    pub fn end_segment(&mut self) {
        self.video.cut_requested = true;
        self.audio.cut_requested = true;
    }

    /// The end of the stream: every held and pending sample goes out, open segments end. Feeding
    /// more afterwards starts new segments (video at a keyframe) on the same timeline.
    pub fn flush(&mut self, out: &mut Vec<CmafEvent>) {
        self.release_audio(true, out);
        let (v, a) = (
            self.part_ticks(self.video.timescale()),
            self.part_ticks(self.audio.timescale()),
        );
        let max = self.conf.max_chunk_bytes;
        self.video.flush(v, max, out);
        self.audio.flush(a, max, out);
        self.cuts.clear();
        self.video_leads = false;
    }

    fn video_config(&mut self, kind: VideoCodecKind, record: &[u8], out: &mut Vec<CmafEvent>) {
        let config = match VideoConfig::parse(kind, record) {
            Ok(c) => c,
            Err(e) => {
                let why = format!("{kind:?} sequence header: {e}: video dropped until a valid one");
                self.video.notice(NOTICE_CONFIG, why, out);
                return;
            }
        };
        let (width, height) = (
            u16::try_from(config.width).unwrap_or(u16::MAX),
            u16::try_from(config.height).unwrap_or(u16::MAX),
        );
        let entry = match kind {
            VideoCodecKind::Avc => SampleEntry::Avc {
                record: record.to_vec(),
                width,
                height,
            },
            VideoCodecKind::Hevc => SampleEntry::Hevc {
                record: hvcc_for_hvc1(record),
                width,
                height,
            },
        };
        let default_duration = config
            .frame_rate
            .filter(|r| r.is_finite() && *r >= 1.0 && *r <= 1000.0)
            .map_or(3000, |r| (90_000.0 / r).round() as u32)
            .max(1);
        let config = Config {
            entry,
            codec: config.codec_string,
            timescale: VIDEO_TIMESCALE,
            default_duration,
        };
        self.set_config(TrackKind::Video, config, out);
    }

    fn audio_config(&mut self, asc: &[u8], out: &mut Vec<CmafEvent>) {
        let parsed = match aac::parse_config(asc) {
            Ok(c) if c.sample_rate > 0 => c,
            Ok(_) => {
                self.audio.notice(
                    NOTICE_CONFIG,
                    "AAC sequence header: no sample rate: audio dropped".into(),
                    out,
                );
                return;
            }
            Err(e) => {
                self.audio.notice(
                    NOTICE_CONFIG,
                    format!("AAC sequence header: {e}: audio dropped"),
                    out,
                );
                return;
            }
        };
        let channels = u16::try_from(parsed.channels)
            .ok()
            .filter(|c| *c > 0)
            .unwrap_or(2);
        let entry = SampleEntry::Aac {
            asc: asc.to_vec(),
            sample_rate: parsed.sample_rate,
            channels,
        };
        let config = Config {
            entry,
            codec: parsed.codec_string(),
            timescale: parsed.sample_rate,
            default_duration: AAC_SAMPLES_PER_FRAME,
        };
        // The frames before it are packaged with the configuration they had.
        self.release_audio(true, out);
        self.set_config(TrackKind::Audio, config, out);
    }

    fn set_config(&mut self, kind: TrackKind, config: Config, out: &mut Vec<CmafEvent>) {
        let (part, max) = (self.part_ticks(config.timescale), self.conf.max_chunk_bytes);
        let t = match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        let current = t.next.as_ref().or(t.config.as_ref());
        if current == Some(&config) {
            return;
        }
        match &t.config {
            // A new timescale: what is pending ends now, the timeline starts again in it.
            Some(old) if old.timescale != config.timescale => {
                t.flush(part, max, out);
                t.clock.last_out = None;
                t.clock.offset = 0;
                t.anchor = None;
                t.next = None;
                t.apply(config, out);
            }
            _ => t.next = Some(config),
        }
    }

    /// Applies a waiting configuration as a frame arrives: the pending sample ends the segment.
    fn switch_config(&mut self, kind: TrackKind, next_dts: u64, out: &mut Vec<CmafEvent>) {
        let (part, max) = (
            self.part_ticks(self.track(kind).timescale()),
            self.conf.max_chunk_bytes,
        );
        let t = match kind {
            TrackKind::Video => &mut self.video,
            TrackKind::Audio => &mut self.audio,
        };
        let Some(next) = t.next.take() else {
            return;
        };
        t.complete_pending(Some(next_dts), part, max, out);
        t.end_segment(out);
        t.apply(next, out);
    }

    fn video_frame(&mut self, s: Sample, out: &mut Vec<CmafEvent>) {
        self.switch_config(TrackKind::Video, s.dts, out);
        let part = self.part_ticks(VIDEO_TIMESCALE);
        let max = self.conf.max_chunk_bytes;
        if self.video.seg.is_none() {
            if !s.sync {
                // Players drop frames until a random access point; so do we.
                self.stats.dropped += 1;
                return;
            }
            let number = self
                .video
                .reserved
                .take()
                .unwrap_or_else(|| self.take_number());
            self.start_video_segment(number, s);
            return;
        }
        self.video.complete_pending(Some(s.dts), part, max, out);
        let Some(seg) = &self.video.seg else { return };
        let age = s.dts.saturating_sub(seg.start);
        let target = ms_to_ticks(self.conf.segment_ms, VIDEO_TIMESCALE);
        let due = self.video.cut_requested || (target > 0 && age >= target);
        let forced = self.conf.max_segment_ms > 0
            && age >= ms_to_ticks(self.conf.max_segment_ms, VIDEO_TIMESCALE);
        if (s.sync && due) || forced {
            self.video.end_segment(out);
            let number = self
                .video
                .reserved
                .take()
                .unwrap_or_else(|| self.take_number());
            self.start_video_segment(number, s);
        } else {
            self.video.pending = Some(s);
        }
    }

    fn start_video_segment(&mut self, number: u64, s: Sample) {
        self.video.open(number, &s);
        self.video.cut_requested = false;
        self.video_leads = true;
        let at_ms = ticks_to_ms(
            u64::try_from(pts(s.dts, s.cto).max(0)).unwrap_or(0),
            VIDEO_TIMESCALE,
        );
        if self.cuts.len() >= MAX_CUTS {
            self.cuts.pop_front();
        }
        self.cuts.push_back(Cut { number, at_ms });
        self.video.pending = Some(s);
    }

    /// Packages the held audio samples the video has caught up with (all of them with `all`).
    fn release_audio(&mut self, all: bool, out: &mut Vec<CmafEvent>) {
        let rate = self
            .audio
            .next
            .as_ref()
            .or(self.audio.config.as_ref())
            .map_or(1, |c| c.timescale);
        let video_ms = self
            .video
            .clock
            .last_out
            .map(|d| ticks_to_ms(d, VIDEO_TIMESCALE));
        let newest = self.held.back().map_or(0, |s| ticks_to_ms(s.dts, rate));
        while let Some(front) = self.held.front() {
            let ms = ticks_to_ms(front.dts, rate);
            let go = all
                || self.held.len() > MAX_HELD
                || video_ms.is_some_and(|v| ms <= v)
                || newest.saturating_sub(ms) >= self.conf.max_interleave_ms;
            if !go {
                break;
            }
            if let Some(s) = self.held.pop_front() {
                self.audio_frame(s, out);
            }
        }
    }

    fn audio_frame(&mut self, s: Sample, out: &mut Vec<CmafEvent>) {
        self.switch_config(TrackKind::Audio, s.dts, out);
        let rate = self.audio.timescale();
        let part = self.part_ticks(rate);
        let max = self.conf.max_chunk_bytes;
        if self.audio.seg.is_none() {
            let last = self.audio.last_number;
            let number = match (&self.video.seg, self.video_leads) {
                // The video's open segment, unless audio had that number already (it ended
                // early for a new configuration).
                (Some(vseg), true) if last.is_none_or(|l| vseg.number > l) => vseg.number,
                _ => {
                    let n = self.take_number();
                    if self.video_leads {
                        // The video's next segment takes this number.
                        self.video.reserved = Some(n);
                        self.video.cut_requested = true;
                    }
                    n
                }
            };
            self.cuts.retain(|c| c.number > number);
            self.audio.open(number, &s);
            self.audio.pending = Some(s);
            return;
        }
        self.audio.complete_pending(Some(s.dts), part, max, out);
        let Some(seg) = &self.audio.seg else { return };
        let (current, age) = (seg.number, s.dts.saturating_sub(seg.start));
        let mut cut = None;
        if self.video_leads {
            while let Some(c) = self.cuts.front().copied() {
                if c.number <= current {
                    self.cuts.pop_front();
                } else if s.dts >= ms_to_ticks_ceil(c.at_ms, rate) {
                    self.cuts.pop_front();
                    cut = Some(c.number);
                } else {
                    break;
                }
            }
        } else {
            let target = ms_to_ticks(self.conf.segment_ms, rate);
            if self.audio.cut_requested || (target > 0 && age >= target) {
                cut = Some(self.take_number());
            }
        }
        if cut.is_none()
            && self.conf.max_segment_ms > 0
            && age >= ms_to_ticks(self.conf.max_segment_ms, rate)
        {
            // The video stalled: audio leads until the video cuts again.
            self.video_leads = false;
            cut = Some(self.take_number());
        }
        if let Some(number) = cut {
            self.audio.end_segment(out);
            self.audio.cut_requested = false;
            self.audio.open(number, &s);
        }
        self.audio.pending = Some(s);
    }
}
