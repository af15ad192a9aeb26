//! Muxed fMP4 parts for Low-Latency HLS from the sans-IO `CmafPackager`: each track is cut into
//! chunks of at most `hls_part`; a part is one chunk of the leading track (video, or audio in an
//! audio-only stream) with the other track's chunks made since the previous part, so a part holds
//! both tracks for about the same span and a segment (the concatenation of its parts) holds them
//! for the segment. The leading track's segment ends (at keyframes, as for the other HLS
//! segments) end the LL segments. Init segments change only at segment starts: a track whose init
//! is not in the current one waits for the next segment.

use rtmp_proto::cmaf::{CmafConf, CmafEvent, CmafPackager, TrackKind};

use crate::hls::{append_renumbered, merge_inits};

const V: usize = 0;
const A: usize = 1;

fn idx(t: TrackKind) -> usize {
    match t {
        TrackKind::Video => V,
        TrackKind::Audio => A,
    }
}

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
                CmafEvent::Init { track, bytes, .. } => self.latest_init[idx(track)] = Some(bytes.to_vec()),
                CmafEvent::Unsupported { track, reason } => {
                    out.push(LlOut::Notice(format!("ll-hls: {track:?}: {reason}")));
                }
                CmafEvent::Chunk(c) => {
                    let t = idx(c.track);
                    if t != self.lead() {
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
                    if idx(s.track) == self.lead() && !self.at_segment_start {
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
