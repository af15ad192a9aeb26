//! Muxed fMP4 parts for Low-Latency HLS from the sans-IO `CmafPackager`: each track is cut into
//! chunks of at most `hls_part`; a part is one chunk of the leading track (video, or audio in an
//! audio-only stream) with the other track's chunks made since the previous part, so a part holds
//! both tracks for about the same span and a segment (the concatenation of its parts) holds them
//! for the segment. The leading track's segment ends (at keyframes, as for the other HLS
//! segments) end the LL segments. Init segments change only at segment starts: a track whose init
//! is not in the current one waits for the next segment.

use rtmp_proto::cmaf::{CmafConf, CmafEvent, CmafPackager, TrackKind};

use crate::hls::{append_renumbered, merge_inits};

/// Chunks of the following track held for the next part, at most (about 10 s of 200 ms parts).
const MAX_WAITING: usize = 50;

const V: usize = TrackKind::Video.index();
const A: usize = TrackKind::Audio.index();

#[derive(Debug)]
pub enum LlOut {
    /// The segment that starts with the next part uses this init (it differs from the last one).
    Init(Vec<u8>),
    Part { bytes: Vec<u8>, duration_ms: u64, independent: bool },
    /// The segment the last parts belong to is complete.
    SegmentEnd,
    Notice(String),
}

pub struct LlMuxer {
    packager: CmafPackager,
    events: Vec<CmafEvent>,
    latest_init: [Option<Vec<u8>>; 2],
    /// The tracks the current init holds, and the init itself.
    in_map: [bool; 2],
    map: Option<Vec<u8>>,
    /// The next part starts a segment.
    at_segment_start: bool,
    /// Chunks of the following track since the last part.
    other: Vec<(u64, bytes::Bytes)>,
    sequence: u32,
    dropped_said: bool,
}

impl LlMuxer {
    pub fn new(fragment_ms: u64, max_fragment_ms: u64, part_ms: u64) -> LlMuxer {
        let conf = CmafConf { segment_ms: fragment_ms, max_segment_ms: max_fragment_ms, part_ms, ..CmafConf::default() };
        LlMuxer {
            packager: CmafPackager::new(conf),
            events: Vec::new(),
            latest_init: [None, None],
            in_map: [false, false],
            map: None,
            at_segment_start: true,
            other: Vec::new(),
            sequence: 0,
            dropped_said: false,
        }
    }

    pub fn video(&mut self, timestamp: u32, body: &[u8], out: &mut Vec<LlOut>) {
        let mut ev = std::mem::take(&mut self.events);
        self.packager.push_video(timestamp, body, &mut ev);
        self.handle(&mut ev, out);
        self.events = ev;
    }

    pub fn audio(&mut self, timestamp: u32, body: &[u8], out: &mut Vec<LlOut>) {
        let mut ev = std::mem::take(&mut self.events);
        self.packager.push_audio(timestamp, body, &mut ev);
        self.handle(&mut ev, out);
        self.events = ev;
    }

    pub fn finish(&mut self, out: &mut Vec<LlOut>) {
        let mut ev = std::mem::take(&mut self.events);
        self.packager.flush(&mut ev);
        self.handle(&mut ev, out);
        self.events = ev;
    }

    /// Video leads once it has an init.
    fn lead(&self) -> usize {
        if self.latest_init[V].is_some() {
            V
        } else {
            A
        }
    }

    fn handle(&mut self, ev: &mut Vec<CmafEvent>, out: &mut Vec<LlOut>) {
        for e in ev.drain(..) {
            match e {
                CmafEvent::Init { track, bytes, .. } => self.latest_init[track.index()] = Some(bytes.to_vec()),
                CmafEvent::Unsupported { track, reason } => {
                    out.push(LlOut::Notice(format!("ll-hls: {track:?}: {reason}")));
                }
                CmafEvent::Chunk(c) => {
                    let t = c.track.index();
                    if t != self.lead() {
                        // Without video chunks to go with (a video header and no frames), the
                        // oldest audio goes: memory stays bounded.
                        if self.other.len() >= MAX_WAITING {
                            self.other.remove(0);
                            if !self.dropped_said {
                                self.dropped_said = true;
                                out.push(LlOut::Notice("ll-hls: audio without video to go with is dropped".into()));
                            }
                        }
                        self.other.push((c.start_ms, c.bytes));
                        continue;
                    }
                    if self.at_segment_start {
                        self.switch_map(out);
                        self.at_segment_start = false;
                    }
                    if !self.in_map[t] {
                        continue;
                    }
                    let follower = 1 - t;
                    let mut parts: Vec<(u64, bytes::Bytes)> = if self.in_map[follower] {
                        std::mem::take(&mut self.other)
                    } else {
                        self.other.clear();
                        Vec::new()
                    };
                    parts.push((c.start_ms, c.bytes));
                    parts.sort_by_key(|(start, _)| *start);
                    let bytes = self.renumber(&parts);
                    out.push(LlOut::Part { bytes, duration_ms: c.duration_ms, independent: c.independent });
                }
                CmafEvent::SegmentEnd(s) => {
                    if s.track.index() == self.lead() && !self.at_segment_start {
                        self.at_segment_start = true;
                        out.push(LlOut::SegmentEnd);
                    }
                }
            }
        }
    }

    /// At a segment start: the init of every track that has one now.
    fn switch_map(&mut self, out: &mut Vec<LlOut>) {
        let Some(init) = merge_inits(self.latest_init[V].as_deref(), self.latest_init[A].as_deref()) else {
            return;
        };
        self.in_map = [self.latest_init[V].is_some(), self.latest_init[A].is_some()];
        if self.map.as_ref() != Some(&init) {
            self.map = Some(init.clone());
            out.push(LlOut::Init(init));
        }
    }

    /// The chunks one after another, their `mfhd` sequence numbers counting up through the stream.
    fn renumber(&mut self, chunks: &[(u64, bytes::Bytes)]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(chunks.iter().map(|(_, b)| b.len()).sum());
        for (_, c) in chunks {
            append_renumbered(&mut bytes, c, &mut self.sequence);
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVCC: &[u8] = include_bytes!("../../crates/rtmp-proto/tests/data/avc_high_640x360.bin");

    fn flv_video(key: bool, seq: bool, data: &[u8]) -> Vec<u8> {
        let mut v = vec![if key { 0x17 } else { 0x27 }, if seq { 0 } else { 1 }, 0, 0, 0];
        v.extend_from_slice(data);
        v
    }

    /// Top-level box types and each `moof`'s track id (from `tfhd`).
    fn tracks(data: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = 0usize;
        while let Some(h) = data.get(at..at + 8) {
            let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
            if &h[4..8] == b"moof" {
                // moof(8) mfhd(16) traf(8) tfhd: size, type, version+flags, track_ID.
                out.push(u32::from_be_bytes([data[at + 44], data[at + 45], data[at + 46], data[at + 47]]));
            }
            if size < 8 {
                break;
            }
            at += size;
        }
        out
    }

    /// 4 s of 25 fps video with a keyframe every second and AAC, cut into 1 s segments of 200 ms parts.
    #[test]
    fn parts_make_segments() {
        let mut m = LlMuxer::new(1000, 10_000, 200);
        let mut out = Vec::new();
        m.video(0, &flv_video(true, true, AVCC), &mut out);
        m.audio(0, &[0xaf, 0, 0x12, 0x10], &mut out);
        let nal = [0, 0, 0, 2, 0x65, 0x88];
        let mut audio_t = 0u32;
        for i in 0..100u32 {
            let t = i * 40;
            m.video(t, &flv_video(i % 25 == 0, false, &nal), &mut out);
            while audio_t <= t {
                m.audio(audio_t, &[0xaf, 1, 0x21, 0x10, 0x04], &mut out);
                audio_t += 23;
            }
        }
        m.finish(&mut out);
        assert!(matches!(out.first(), Some(LlOut::Init(_))), "{:?}", out.first());
        let inits = out.iter().filter(|o| matches!(o, LlOut::Init(_))).count();
        assert_eq!(inits, 1);
        // Parts per segment, with their durations and independence.
        let mut segs: Vec<Vec<(u64, bool, Vec<u32>)>> = vec![Vec::new()];
        for o in &out {
            match o {
                LlOut::Part { bytes, duration_ms, independent } => {
                    if let Some(s) = segs.last_mut() {
                        s.push((*duration_ms, *independent, tracks(bytes)));
                    }
                }
                LlOut::SegmentEnd => segs.push(Vec::new()),
                _ => {}
            }
        }
        segs.retain(|s| !s.is_empty());
        assert!(segs.len() >= 3, "{segs:?}");
        for s in &segs[..segs.len() - 1] {
            assert_eq!(s.len(), 5, "five 200 ms parts per 1 s segment: {s:?}");
            assert!(s[0].1, "the first part is independent");
            assert!(s[1..].iter().all(|p| !p.1));
            assert!(s.iter().all(|p| p.0 == 200), "{s:?}");
            assert_eq!(s.iter().map(|p| p.0).sum::<u64>(), 1000);
        }
        // Every part has one video chunk (track 1); audio (track 2) goes with the parts made as it
        // arrives: most parts of a segment carry some.
        for s in &segs[1..segs.len() - 1] {
            assert!(s.iter().all(|p| p.2.iter().filter(|t| **t == 1).count() == 1), "{s:?}");
            assert!(s.iter().filter(|p| p.2.contains(&2)).count() >= 3, "{s:?}");
        }
    }

    /// Video that stops (a camera switched off) while audio goes on: the audio waiting for video
    /// parts stays bounded.
    #[test]
    fn audio_waiting_for_video_is_bounded() {
        let mut m = LlMuxer::new(1000, 10_000, 200);
        let mut out = Vec::new();
        m.video(0, &flv_video(true, true, AVCC), &mut out);
        m.audio(0, &[0xaf, 0, 0x12, 0x10], &mut out);
        let nal = [0, 0, 0, 2, 0x65, 0x88];
        for i in 0..50u32 {
            m.video(i * 40, &flv_video(i % 25 == 0, false, &nal), &mut out);
        }
        for i in 0..20_000u32 {
            m.audio(i * 23, &[0xaf, 1, 0x21, 0x10, 0x04], &mut out);
        }
        assert!(m.other.len() <= MAX_WAITING);
        assert_eq!(out.iter().filter(|o| matches!(o, LlOut::Notice(_))).count(), 1);
    }

    #[test]
    fn audio_only_parts() {
        let mut m = LlMuxer::new(1000, 10_000, 200);
        let mut out = Vec::new();
        m.audio(0, &[0xaf, 0, 0x12, 0x10], &mut out);
        for i in 0..200u32 {
            m.audio(i * 23, &[0xaf, 1, 0x21, 0x10, 0x04], &mut out);
        }
        m.finish(&mut out);
        let parts: Vec<u64> = out
            .iter()
            .filter_map(|o| match o {
                LlOut::Part { duration_ms, .. } => Some(*duration_ms),
                _ => None,
            })
            .collect();
        let ends = out.iter().filter(|o| matches!(o, LlOut::SegmentEnd)).count();
        assert!(parts.len() >= 20, "{parts:?}");
        assert!(parts.iter().all(|d| *d <= 200), "{parts:?}");
        assert!(ends >= 3, "{ends}");
    }
}
