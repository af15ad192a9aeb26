//! `hls_fragment_type fmp4`: HLS segments as fragmented MP4 (CMAF) from the sans-IO
//! `rtmp_proto::cmaf::CmafPackager`, and the playlist tags they need (RFC 8216 §3.3, §4.3.2.5).
//!
//! Design: one *muxed* fMP4 rendition, not a master playlist with an audio rendition.
//! The packager makes video (track 1) and audio (track 2) as separate tracks with the same
//! segment numbers (audio segment N starts at the first audio frame at or after the keyframe that
//! starts video segment N). Here a segment file is every chunk (`moof` + `mdat`) of one segment
//! number, both tracks, ordered by decode time, with their `mfhd` sequence numbers renumbered
//! so they increase through the stream; its init segment (EXT-X-MAP) is one `ftyp` + `moov` with
//! both `trak`s (track ids 1 and 2 as the packager made them) and one `mvex` holding both `trex`.
//! Why (a) and not (b) an EXT-X-MEDIA TYPE=AUDIO rendition with two media playlists:
//! - it keeps the C module's file layout and every existing feature unchanged: one media playlist
//!   per stream, so `hls_variant` master playlists, `hls_nested`, naming, cleanup, keys and
//!   continuation across republish work as they do for MPEG-TS;
//! - players take it: hls.js and FFmpeg read several `moof`s (one per track) in one segment, and
//!   Apple allows muxed fMP4 (one init with several tracks);
//! - audio and video always switch together (no alternate audio to keep aligned by players).
//!
//! A segment is complete when every track that has data in it has ended it, and every other
//! track with frames has moved past that number (or the other track is a whole segment ahead:
//! a stalled track does not hold the playlist back).

use std::collections::BTreeMap;

use rtmp_proto::cmaf::{Chunk, CmafConf, CmafEvent, CmafPackager, SegmentInfo, TrackKind};
use rtmp_proto::hls::playlist::{self, Restored};
use rtmp_proto::mpegts::es::{self, VideoConfig, VideoPacket};
use rtmp_proto::mpegts::MediaInfo;

const V: usize = TrackKind::Video.index();
const A: usize = TrackKind::Audio.index();
/// Segments waiting for a lagging track, at most: then the oldest goes out without it.
const MAX_PENDING: usize = 8;

/// A complete muxed segment.
#[derive(Debug)]
pub struct MuxedSegment {
    /// Start and duration (ms) of its video (of its audio without video): what EXTINF says.
    pub start_ms: u64,
    pub duration_ms: u64,
    pub bytes: Vec<u8>,
    /// The init segment it needs.
    pub init: Vec<u8>,
    /// `init` differs from the previous segment's (always true for the first).
    pub new_init: bool,
}

#[derive(Debug)]
pub enum Output {
    Segment(MuxedSegment),
    Notice(String),
}

#[derive(Default)]
struct Pending {
    chunks: Vec<Chunk>,
    /// Per track: the init its chunks need, and its end.
    init: [Option<Vec<u8>>; 2],
    has: [bool; 2],
    ended: [Option<SegmentInfo>; 2],
}

pub struct Muxer {
    packager: CmafPackager,
    events: Vec<CmafEvent>,
    latest_init: [Option<Vec<u8>>; 2],
    /// Per track, the init used in the last segment that went out.
    used_init: [Option<Vec<u8>>; 2],
    /// The muxed init of the last segment that went out.
    init: Option<Vec<u8>>,
    pending: BTreeMap<u64, Pending>,
    /// The newest segment number each track made a chunk for.
    last_number: [Option<u64>; 2],
    /// The track had frames (so it will have chunks).
    frames: [bool; 2],
    /// Segments up to this number went out: later chunks of them are dropped.
    done: Option<u64>,
    sequence: u32,
    frame_rate_milli: u32,
    late_said: bool,
}

impl Muxer {
    /// The same cutting rules as MPEG-TS: at the first keyframe `fragment_ms` into a segment, at
    /// `max_fragment_ms` without one; audio-only streams at `fragment_ms`.
    pub fn new(fragment_ms: u64, max_fragment_ms: u64) -> Muxer {
        let conf = CmafConf {
            segment_ms: fragment_ms,
            max_segment_ms: max_fragment_ms,
            ..CmafConf::default()
        };
        Muxer {
            packager: CmafPackager::new(conf),
            events: Vec::new(),
            latest_init: [None, None],
            used_init: [None, None],
            init: None,
            pending: BTreeMap::new(),
            last_number: [None, None],
            frames: [false, false],
            done: None,
            sequence: 0,
            frame_rate_milli: 0,
            late_said: false,
        }
    }

    pub fn video(&mut self, timestamp: u32, body: &[u8], out: &mut Vec<Output>) {
        match es::parse_video(body) {
            VideoPacket::SequenceHeader { kind, record } => {
                if let Some(r) = VideoConfig::parse(kind, record)
                    .ok()
                    .and_then(|c| c.frame_rate)
                {
                    if r.is_finite() && r > 0.0 && r < 1000.0 {
                        self.frame_rate_milli = (r * 1000.0).round() as u32;
                    }
                }
            }
            VideoPacket::Frame { .. } => self.frames[V] = true,
            _ => {}
        }
        let mut ev = std::mem::take(&mut self.events);
        self.packager.push_video(timestamp, body, &mut ev);
        self.handle(&mut ev, false, out);
        self.events = ev;
    }

    pub fn audio(&mut self, timestamp: u32, body: &[u8], out: &mut Vec<Output>) {
        // AAC raw frames (sound format 10, packet type 1).
        if body.len() > 2 && body[0] >> 4 == 10 && body[1] == 1 {
            self.frames[A] = true;
        }
        let mut ev = std::mem::take(&mut self.events);
        self.packager.push_audio(timestamp, body, &mut ev);
        self.handle(&mut ev, false, out);
        self.events = ev;
    }

    /// The end of the stream: everything pending goes out.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        let mut ev = std::mem::take(&mut self.events);
        self.packager.flush(&mut ev);
        self.handle(&mut ev, true, out);
        self.events = ev;
    }

    /// Codecs, picture size and frame rate, for `hls_variant` master playlists.
    pub fn media_info(&self) -> MediaInfo {
        let (w, h) = self.packager.dimensions().unwrap_or((0, 0));
        MediaInfo {
            video_codec: self.packager.codec(TrackKind::Video).map(str::to_string),
            audio_codec: self.packager.codec(TrackKind::Audio).map(str::to_string),
            width: u32::from(w),
            height: u32::from(h),
            frame_rate_milli: if self.packager.codec(TrackKind::Video).is_some() {
                self.frame_rate_milli
            } else {
                0
            },
        }
    }

    fn handle(&mut self, ev: &mut Vec<CmafEvent>, all: bool, out: &mut Vec<Output>) {
        for e in ev.drain(..) {
            match e {
                CmafEvent::Init { track, bytes, .. } => {
                    self.latest_init[track.index()] = Some(bytes.to_vec());
                }
                CmafEvent::Chunk(c) => {
                    let t = c.track.index();
                    if self.done.is_some_and(|d| c.segment <= d) {
                        if !self.late_said {
                            self.late_said = true;
                            out.push(Output::Notice(format!(
                                "fmp4: {:?} data of segment {} came after it was written: dropped",
                                c.track, c.segment
                            )));
                        }
                        continue;
                    }
                    self.last_number[t] =
                        Some(self.last_number[t].map_or(c.segment, |l| l.max(c.segment)));
                    let p = self.pending.entry(c.segment).or_default();
                    if !p.has[t] {
                        p.has[t] = true;
                        p.init[t] = self.latest_init[t].clone();
                    }
                    p.chunks.push(c);
                }
                CmafEvent::SegmentEnd(s) => {
                    if let Some(p) = self.pending.get_mut(&s.number) {
                        let t = s.track.index();
                        p.ended[t] = Some(s);
                    }
                }
                CmafEvent::Unsupported { track, reason } => {
                    out.push(Output::Notice(format!("fmp4: {track:?}: {reason}")));
                }
            }
        }
        while let Some((&n, p)) = self.pending.first_key_value() {
            if !(all || self.pending.len() > MAX_PENDING || self.ready(n, p)) {
                break;
            }
            if let Some(p) = self.pending.remove(&n) {
                if let Some(s) = self.build(n, p) {
                    out.push(Output::Segment(s));
                }
            }
        }
    }

    fn ready(&self, n: u64, p: &Pending) -> bool {
        for t in [V, A] {
            if p.has[t] {
                if p.ended[t].is_none() {
                    return false;
                }
                continue;
            }
            if !self.frames[t] || self.last_number[t].is_some_and(|l| l > n) {
                continue;
            }
            // The other track already ended a later segment: this one stalls, go without it.
            let other = 1 - t;
            let ahead = self
                .pending
                .range(n + 1..)
                .any(|(_, q)| q.ended[other].is_some());
            if !ahead {
                return false;
            }
        }
        true
    }

    fn build(&mut self, n: u64, mut p: Pending) -> Option<MuxedSegment> {
        if p.chunks.is_empty() {
            return None;
        }
        self.done = Some(n);
        let lead = if p.has[V] { V } else { A };
        let (start_ms, duration_ms) = match &p.ended[lead] {
            Some(s) => (s.start_ms, s.duration_ms),
            None => {
                let mine = p.chunks.iter().filter(|c| c.track.index() == lead);
                let start = mine.clone().map(|c| c.start_ms).min().unwrap_or(0);
                (start, mine.map(|c| c.duration_ms).sum())
            }
        };
        p.chunks.sort_by_key(|c| (c.start_ms, c.track.index()));
        let size: usize = p.chunks.iter().map(|c| c.bytes.len()).sum();
        let mut bytes = Vec::with_capacity(size);
        for c in &p.chunks {
            append_renumbered(&mut bytes, &c.bytes, &mut self.sequence);
        }
        for t in [V, A] {
            let init = if p.has[t] {
                p.init[t].take()
            } else {
                self.used_init[t]
                    .clone()
                    .or_else(|| self.latest_init[t].clone())
            };
            if init.is_some() {
                self.used_init[t] = init;
            }
        }
        let init = merge_inits(self.used_init[V].as_deref(), self.used_init[A].as_deref())?;
        let new_init = self.init.as_ref() != Some(&init);
        self.init = Some(init.clone());
        Some(MuxedSegment {
            start_ms,
            duration_ms,
            bytes,
            init,
            new_init,
        })
    }
}

/// Appends a chunk (`moof` + `mdat`) to `out` with the next `mfhd` sequence number from `sequence`,
/// so that numbers increase through a stream whose chunks come from several tracks.
pub fn append_renumbered(out: &mut Vec<u8>, chunk: &[u8], sequence: &mut u32) {
    let at = out.len();
    out.extend_from_slice(chunk);
    // moof(8) mfhd: size, type, version+flags, sequence_number.
    if out.get(at + 4..at + 8) == Some(b"moof") && out.get(at + 12..at + 16) == Some(b"mfhd") {
        *sequence = sequence.wrapping_add(1);
        if let Some(s) = out.get_mut(at + 20..at + 24) {
            s.copy_from_slice(&sequence.to_be_bytes());
        }
    }
}

/// The top-level boxes of `data` (whole boxes, header included); stops at a malformed one.
fn boxes(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(h) = data.get(at..at + 8) {
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let size = if size == 0 { data.len() - at } else { size };
        let Some(b) = data.get(at..at.saturating_add(size)).filter(|_| size >= 8) else {
            break;
        };
        out.push((&h[4..8], b));
        at += size;
    }
    out
}

fn find<'a>(list: &[(&[u8], &'a [u8])], kind: &[u8]) -> Vec<&'a [u8]> {
    list.iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, b)| *b)
        .collect()
}

fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], parts: &[&[u8]]) {
    let size: usize = 8 + parts.iter().map(|p| p.len()).sum::<usize>();
    out.extend_from_slice(&u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(kind);
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// One init segment for the video and audio tracks: the video init's `ftyp` and `mvhd`
/// (`next_track_ID` past both tracks), both `trak`s, one `mvex` with both `trex`. One track
/// alone: its init as it is.
pub fn merge_inits(video: Option<&[u8]>, audio: Option<&[u8]>) -> Option<Vec<u8>> {
    let (v, a) = match (video, audio) {
        (Some(v), Some(a)) => (v, a),
        (Some(one), None) | (None, Some(one)) => return Some(one.to_vec()),
        (None, None) => return None,
    };
    let (vt, at) = (boxes(v), boxes(a));
    let ftyp = *find(&vt, b"ftyp").first()?;
    let vm = boxes(find(&vt, b"moov").first()?.get(8..)?);
    let am = boxes(find(&at, b"moov").first()?.get(8..)?);
    let mut mvhd = find(&vm, b"mvhd").first()?.to_vec();
    let n = mvhd.len();
    // next_track_ID is mvhd's last field (versions 0 and 1).
    mvhd.get_mut(n.checked_sub(4)?..)?
        .copy_from_slice(&3u32.to_be_bytes());
    let traks: Vec<&[u8]> = [&vm, &am].iter().flat_map(|m| find(m, b"trak")).collect();
    let mut trex: Vec<&[u8]> = Vec::new();
    for m in [&vm, &am] {
        let mvex = *find(m, b"mvex").first()?;
        let inner = boxes(mvex.get(8..)?);
        trex.extend(find(&inner, b"trex"));
    }
    if traks.len() != 2 || trex.len() != 2 {
        return None;
    }
    let mut mvex = Vec::new();
    put_box(&mut mvex, b"mvex", &trex);
    let mut moov_parts: Vec<&[u8]> = vec![&mvhd];
    moov_parts.extend(traks);
    moov_parts.push(&mvex);
    let mut out = Vec::with_capacity(v.len() + a.len());
    out.extend_from_slice(ftyp);
    put_box(&mut out, b"moov", &moov_parts);
    Some(out)
}

/// The number before ".mp4" at the end of an EXT-X-MAP URI.
fn init_id(tag: &str) -> Option<u64> {
    let u = tag.split("URI=\"").nth(1)?.split('"').next()?;
    let stem = u.split(['?', '#']).next()?.strip_suffix(".mp4")?;
    let start = stem
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    stem.get(start..)?.parse().ok()
}

/// Reads back an fMP4 playlist written by us: what it lists, and the init id of each segment.
/// `None` when it is not one (an MPEG-TS playlist included: its segments have no init).
pub fn parse(text: &str) -> Option<(Restored, Vec<u64>)> {
    let mut plain = String::with_capacity(text.len());
    let (mut map, mut maps) = (None, Vec::new());
    for line in text.lines() {
        let l = line.trim();
        if let Some(tag) = l.strip_prefix("#EXT-X-MAP:") {
            map = Some(init_id(tag)?);
            continue;
        }
        if !l.is_empty() && !l.starts_with('#') {
            // The MPEG-TS reader takes ".ts" names.
            plain.push_str(l.strip_suffix(".m4s")?);
            plain.push_str(".ts\n");
            maps.push(map?);
            continue;
        }
        plain.push_str(l);
        plain.push('\n');
    }
    let r = playlist::parse(&plain)?;
    (r.segments.len() == maps.len()).then_some((r, maps))
}

#[cfg(test)]
mod tests {
    use rtmp_proto::hls::{Playlist, SegmentEntry};
    use super::*;

    fn flv_video(key: bool, seq: bool, cts: i32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![if key { 0x17 } else { 0x27 }, if seq { 0 } else { 1 }];
        v.extend_from_slice(&cts.to_be_bytes()[1..]);
        v.extend_from_slice(data);
        v
    }

    const AVCC: &[u8] = include_bytes!("../../crates/rtmp-proto/tests/data/avc_high_640x360.bin");

    fn segments(out: &[Output]) -> Vec<&MuxedSegment> {
        out.iter()
            .filter_map(|o| match o {
                Output::Segment(s) => Some(s),
                Output::Notice(_) => None,
            })
            .collect()
    }

    fn top(data: &[u8]) -> Vec<String> {
        boxes(data)
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn muxed_segments_and_init() {
        let mut m = Muxer::new(1000, 10_000);
        let mut out = Vec::new();
        m.video(0, &flv_video(true, true, 0, AVCC), &mut out);
        // AAC-LC 44.1 kHz stereo.
        m.audio(0, &[0xaf, 0, 0x12, 0x10], &mut out);
        let nal = [0, 0, 0, 2, 0x65, 0x88];
        for i in 0..100u32 {
            let t = i * 40;
            m.video(t, &flv_video(i % 25 == 0, false, 0, &nal), &mut out);
            m.audio(t, &[0xaf, 1, 0x21, 0x10, 0x04], &mut out);
        }
        m.finish(&mut out);
        let segs = segments(&out);
        assert_eq!(segs.len(), 4, "{out:?}");
        assert!(segs[0].new_init && segs[1..].iter().all(|s| !s.new_init));
        for s in &segs {
            let t = top(&s.bytes);
            assert_eq!(t, ["moof", "mdat", "moof", "mdat"], "{t:?}");
        }
        let mut seqs = Vec::new();
        for s in &segs {
            for (k, b) in boxes(&s.bytes) {
                if k == b"moof" {
                    seqs.push(u32::from_be_bytes([b[20], b[21], b[22], b[23]]));
                }
            }
        }
        assert_eq!(seqs, (1..=8).collect::<Vec<u32>>());
        assert_eq!(segs[1].start_ms, 1000);
        assert_eq!(segs[1].duration_ms, 1000);
        let init = &segs[0].init;
        assert_eq!(top(init), ["ftyp", "moov"]);
        let moov = boxes(init)[1].1;
        let inner = boxes(&moov[8..]);
        let kinds: Vec<&[u8]> = inner.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [&b"mvhd"[..], b"trak", b"trak", b"mvex"]);
        let mvex = boxes(&inner[3].1[8..]);
        assert_eq!(mvex.len(), 2);
        let ids: Vec<u32> = mvex
            .iter()
            .map(|(_, b)| u32::from_be_bytes([b[12], b[13], b[14], b[15]]))
            .collect();
        assert_eq!(ids, [1, 2]);
        let info = m.media_info();
        assert_eq!(info.width, 640);
        assert!(info.audio_codec.as_deref() == Some("mp4a.40.2"));
    }

    #[test]
    fn playlist_maps_keys_and_parse_back() {
        let mut p = Playlist::new(60_000, 2_000, false);
        for i in 0..4u64 {
            p.push(SegmentEntry {
                id: i,
                duration_ms: 2_000,
                discontinuity: i == 2,
                key_id: Some(0),
                date: None,
            });
        }
        let map =
            |s: &SegmentEntry| Some(format!("live-init-{}.mp4", if s.id < 2 { 0 } else { 2 }));
        let t = p.render_with_maps(&|s| format!("live-{}.m4s", s.id), &|k| format!("live-{k}.key"), Some(&map));
        assert!(t.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{t}");
        let map0 = t.find("#EXT-X-MAP:URI=\"live-init-0.mp4\"").unwrap();
        let key0 = t.find("#EXT-X-KEY:METHOD=AES-128").unwrap();
        assert!(map0 < key0, "{t}");
        assert!(t.contains(
            "#EXT-X-DISCONTINUITY\n#EXT-X-KEY:METHOD=NONE\n#EXT-X-MAP:URI=\"live-init-2.mp4\"\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"live-0.key\"\n#EXTINF:2.000,\nlive-2.m4s\n"
        ), "{t}");
        let (r, maps) = parse(&t).expect("parses");
        assert_eq!(maps, [0, 0, 2, 2]);
        assert_eq!(r.segments.len(), 4);
        assert!(r.segments.iter().all(|s| s.key_id == Some(0)));
        assert!(r.segments[2].discontinuity);
        assert!(parse("#EXTM3U\n#EXTINF:2,\nlive-1.ts\n").is_none());
    }
}
