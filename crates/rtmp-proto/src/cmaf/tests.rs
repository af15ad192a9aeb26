//! The packager's output read back with a strict box reader of our own: init segments, chunks,
//! timing continuity, cuts; random streams (proptest); FFmpeg reading the test media.

use super::*;
use proptest::prelude::*;

const AVC_RECORD: &[u8] = include_bytes!("../../tests/data/avc_high_640x360.bin");
const AVC_RECORD_720: &[u8] = include_bytes!("../../tests/data/avc_high_1280x720.bin");
const HEVC_RECORD: &[u8] = include_bytes!("../../tests/data/hevc_hvcc_main_640x360.bin");
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

fn aac_header() -> Vec<u8> {
    vec![0xAF, 0, ASC[0], ASC[1]]
}

fn aac_frame(size: usize) -> Vec<u8> {
    let mut v = vec![0xAF, 1];
    v.resize(2 + size, 0x21);
    v
}

// ---------------------------------------------------------------------------------------------
// A strict box reader

#[derive(Debug)]
struct Bx<'a> {
    kind: [u8; 4],
    /// The whole box, header included.
    all: &'a [u8],
    body: &'a [u8],
}

/// The boxes that exactly fill `b` (no large sizes or size 0: we never write them).
fn boxes(mut b: &[u8]) -> Vec<Bx<'_>> {
    let mut v = Vec::new();
    while !b.is_empty() {
        assert!(b.len() >= 8, "box header runs past its parent");
        let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && size <= b.len(),
            "box size {size} out of its parent ({})",
            b.len()
        );
        v.push(Bx {
            kind: b[4..8].try_into().unwrap(),
            all: &b[..size],
            body: &b[8..size],
        });
        b = &b[size..];
    }
    v
}

fn kinds(v: &[Bx]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(&b.kind).into_owned())
        .collect()
}

fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    let v = boxes(b);
    let found: Vec<_> = v.iter().filter(|x| &x.kind == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "one {} in {:?}",
        String::from_utf8_lossy(kind),
        kinds(&v)
    );
    found[0].body
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[derive(Debug, Clone, PartialEq)]
struct InitInfo {
    track_id: u32,
    timescale: u32,
    entry: [u8; 4],
    /// The codec configuration box's type and body.
    config: ([u8; 4], Vec<u8>),
    width: u16,
    height: u16,
}

/// Reads an init segment back, checking the CMAF header rules on the way.
fn read_init(b: &[u8]) -> InitInfo {
    let top = boxes(b);
    assert_eq!(kinds(&top), ["ftyp", "moov"]);
    let ftyp = top[0].body;
    assert_eq!(&ftyp[..4], b"iso6");
    let brands: Vec<&[u8]> = ftyp[8..].chunks(4).collect();
    for b in [b"iso6", b"cmfc", b"cmf2"] {
        assert!(
            brands.contains(&&b[..]),
            "brand {}",
            String::from_utf8_lossy(b)
        );
    }
    let moov = top[1].body;
    assert_eq!(
        kinds(&boxes(moov)),
        ["mvhd", "trak", "mvex"],
        "mvex after the last trak"
    );
    let mvhd = child(moov, b"mvhd");
    assert_eq!(u32_at(mvhd, 16), 0, "mvhd duration 0");
    let next_track_id = u32_at(mvhd, 96);
    let trak = child(moov, b"trak");
    let tkhd = child(trak, b"tkhd");
    let track_id = u32_at(tkhd, 12);
    assert_eq!(u32_at(tkhd, 20), 0, "tkhd duration 0");
    assert!(next_track_id > track_id);
    let mdia = child(trak, b"mdia");
    let timescale = u32_at(child(mdia, b"mdhd"), 12);
    assert!(timescale > 0);
    let stbl = child(child(mdia, b"minf"), b"stbl");
    for (k, at) in [(b"stts", 4), (b"stsc", 4), (b"stsz", 8), (b"stco", 4)] {
        assert_eq!(
            u32_at(child(stbl, k), at),
            0,
            "empty {}",
            String::from_utf8_lossy(k)
        );
    }
    let stsd = child(stbl, b"stsd");
    assert_eq!(u32_at(stsd, 4), 1);
    let entries = boxes(&stsd[8..]);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    let (inner, width, height) = match &e.kind {
        b"avc1" | b"hvc1" => (&e.body[78..], u16_at(e.body, 24), u16_at(e.body, 26)),
        b"mp4a" => {
            let rate = u32_at(e.body, 24);
            assert_eq!(rate >> 16, timescale, "mp4a sample rate = rate << 16");
            assert_eq!(rate & 0xFFFF, 0);
            (&e.body[28..], 0, 0)
        }
        k => panic!("sample entry {}", String::from_utf8_lossy(k)),
    };
    let config = boxes(inner);
    assert_eq!(config.len(), 1);
    let mvex = child(moov, b"mvex");
    assert_eq!(u32_at(child(mvex, b"trex"), 4), track_id);
    InitInfo {
        track_id,
        timescale,
        entry: e.kind,
        config: (config[0].kind, config[0].body.to_vec()),
        width,
        height,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FragSampleRead {
    duration: u32,
    size: u32,
    flags: Option<u32>,
    cto: i32,
}

#[derive(Debug, Clone)]
struct ChunkRead {
    sequence: u32,
    track_id: u32,
    tfdt: u64,
    samples: Vec<FragSampleRead>,
    payload: Vec<u8>,
}

/// Reads a chunk back: `moof` with one `traf` and `mdat`, the `trun` data offset at the first
/// byte of the `mdat` payload, the sample sizes covering it exactly.
fn read_chunk(b: &[u8]) -> ChunkRead {
    let top = boxes(b);
    assert_eq!(kinds(&top), ["moof", "mdat"]);
    let moof = top[0].body;
    assert_eq!(kinds(&boxes(moof)), ["mfhd", "traf"]);
    let sequence = u32_at(child(moof, b"mfhd"), 4);
    let traf = child(moof, b"traf");
    assert_eq!(kinds(&boxes(traf)), ["tfhd", "tfdt", "trun"]);
    let tfhd = child(traf, b"tfhd");
    assert_eq!(
        u32_at(tfhd, 0) & 0xFF_FFFF,
        0x02_0000,
        "default-base-is-moof only"
    );
    let track_id = u32_at(tfhd, 4);
    let tfdt = child(traf, b"tfdt");
    assert_eq!(tfdt[0], 1, "tfdt version 1");
    let tfdt = u64_at(tfdt, 4);
    let trun = child(traf, b"trun");
    let (version, flags) = (trun[0], u32_at(trun, 0) & 0xFF_FFFF);
    assert!(flags & 0x301 == 0x301, "data offset, durations, sizes");
    let count = u32_at(trun, 4) as usize;
    let offset = u32_at(trun, 8) as usize;
    assert_eq!(
        offset,
        top[0].all.len() + 8,
        "data offset at the mdat payload"
    );
    let per = 8 + if flags & 0x400 != 0 { 4 } else { 0 } + if flags & 0x800 != 0 { 4 } else { 0 };
    assert_eq!(trun.len(), 12 + count * per);
    let mut samples = Vec::new();
    for i in 0..count {
        let at = 12 + i * per;
        let mut s = FragSampleRead {
            duration: u32_at(trun, at),
            size: u32_at(trun, at + 4),
            flags: None,
            cto: 0,
        };
        let mut f = at + 8;
        if flags & 0x400 != 0 {
            s.flags = Some(u32_at(trun, f));
            f += 4;
        }
        if flags & 0x800 != 0 {
            assert_eq!(version, 1, "signed offsets");
            s.cto = u32_at(trun, f) as i32;
        }
        samples.push(s);
    }
    let payload = top[1].body.to_vec();
    assert_eq!(
        samples.iter().map(|s| s.size as usize).sum::<usize>(),
        payload.len()
    );
    ChunkRead {
        sequence,
        track_id,
        tfdt,
        samples,
        payload,
    }
}

// ---------------------------------------------------------------------------------------------
// Checking a whole run

#[derive(Debug, Default)]
struct TrackOut {
    inits: Vec<InitInfo>,
    chunks: Vec<(Chunk, ChunkRead)>,
    segments: Vec<SegmentInfo>,
    /// Segment bytes (concatenated chunks) per number.
    seg_bytes: Vec<(u64, Vec<u8>)>,
    unsupported: Vec<String>,
}

impl TrackOut {
    fn samples(&self) -> impl Iterator<Item = &FragSampleRead> {
        self.chunks.iter().flat_map(|(_, r)| r.samples.iter())
    }
}

/// Per track: the end of the previous chunk, the last sequence number, the open segment
/// (number, chunk count, start, duration).
type CheckState = (Option<u64>, u32, Option<(u64, u32, u64, u64)>);

/// Takes events apart per track and checks every rule that holds whatever the input.
fn check(events: &[CmafEvent]) -> (TrackOut, TrackOut) {
    let (mut v, mut a) = (TrackOut::default(), TrackOut::default());
    // Per track: the end of the previous chunk (same init), the last sequence number, the open
    // segment (number, chunk count, start, duration).
    let mut state: [CheckState; 2] = [(None, 0, None), (None, 0, None)];
    let mut new_init = [false; 2];
    for e in events {
        match e {
            CmafEvent::Init {
                track,
                bytes,
                timescale,
                codec,
            } => {
                let i = *track as usize;
                assert!(state[i].2.is_none(), "a new init inside a segment");
                let info = read_init(bytes);
                assert_eq!(info.timescale, *timescale);
                assert!(!codec.is_empty());
                let out = if *track == TrackKind::Video {
                    &mut v
                } else {
                    &mut a
                };
                if out
                    .inits
                    .last()
                    .is_some_and(|l| l.timescale != info.timescale)
                {
                    state[i].0 = None;
                }
                // After a new init (a discontinuity for players) the timeline may have a gap
                // (video dropped until a keyframe), never a step back.
                new_init[i] = true;
                out.inits.push(info);
            }
            CmafEvent::Chunk(c) => {
                let i = c.track as usize;
                let out = if c.track == TrackKind::Video {
                    &mut v
                } else {
                    &mut a
                };
                let init = out.inits.last().expect("an init before chunks");
                let r = read_chunk(&c.bytes);
                assert_eq!(r.track_id, init.track_id);
                assert_eq!(c.timescale, init.timescale);
                assert!(r.sequence > state[i].1, "mfhd sequence increases");
                state[i].1 = r.sequence;
                assert_eq!(r.tfdt, c.start);
                assert!(!r.samples.is_empty());
                assert!(
                    r.samples.iter().all(|s| s.duration > 0),
                    "no zero durations"
                );
                let sum: u64 = r.samples.iter().map(|s| u64::from(s.duration)).sum();
                assert_eq!(sum, c.duration);
                assert_eq!(c.samples as usize, r.samples.len());
                if let Some(end) = state[i].0 {
                    if new_init[i] {
                        assert!(r.tfdt >= end, "{:?}: tfdt goes back", c.track);
                    } else {
                        assert_eq!(
                            r.tfdt, end,
                            "{:?}: tfdt continues from the previous chunk",
                            c.track
                        );
                    }
                }
                new_init[i] = false;
                state[i].0 = Some(r.tfdt + sum);
                let first_sync = r.samples[0].flags.is_none_or(|f| f == SYNC_SAMPLE_FLAGS);
                assert_eq!(c.independent, first_sync);
                for s in &r.samples {
                    if let Some(f) = s.flags {
                        assert!(f == SYNC_SAMPLE_FLAGS || f == NON_SYNC_SAMPLE_FLAGS);
                    }
                }
                match &mut state[i].2 {
                    Some((n, parts, _, dur)) => {
                        assert_eq!(c.segment, *n);
                        assert_eq!(c.part, *parts);
                        *parts += 1;
                        *dur += c.duration;
                        out.seg_bytes
                            .last_mut()
                            .unwrap()
                            .1
                            .extend_from_slice(&c.bytes);
                    }
                    None => {
                        assert_eq!(c.part, 0);
                        if let Some(last) = out.segments.last() {
                            assert!(c.segment > last.number, "segment numbers increase");
                        }
                        state[i].2 = Some((c.segment, 1, c.start, c.duration));
                        out.seg_bytes.push((c.segment, c.bytes.to_vec()));
                    }
                }
                assert_eq!(c.start_ms, c.start * 1000 / u64::from(c.timescale));
                out.chunks.push((c.clone(), r));
            }
            CmafEvent::SegmentEnd(s) => {
                let i = s.track as usize;
                let (n, parts, start, dur) =
                    state[i].2.take().expect("a segment ends after its chunks");
                assert_eq!(
                    (s.number, s.parts, s.start, s.duration),
                    (n, parts, start, dur)
                );
                let out = if s.track == TrackKind::Video {
                    &mut v
                } else {
                    &mut a
                };
                let first = out
                    .chunks
                    .iter()
                    .find(|(c, _)| c.segment == s.number)
                    .unwrap();
                assert_eq!(first.0.independent, s.independent);
                out.segments.push(s.clone());
            }
            CmafEvent::Unsupported { track, reason } => {
                let out = if *track == TrackKind::Video {
                    &mut v
                } else {
                    &mut a
                };
                out.unsupported.push(reason.clone());
            }
        }
    }
    (v, a)
}

/// A stream: (video?, timestamp, body).
type Msg = (bool, u32, Vec<u8>);

fn run(conf: CmafConf, msgs: &[Msg], flush: bool) -> (Vec<CmafEvent>, CmafPackager) {
    let mut p = CmafPackager::new(conf);
    let mut out = Vec::new();
    for (video, ts, body) in msgs {
        if *video {
            p.push_video(*ts, body, &mut out);
        } else {
            p.push_audio(*ts, body, &mut out);
        }
    }
    if flush {
        p.flush(&mut out);
    }
    (out, p)
}

/// `secs` of 25 fps video (keyframe every `gop` frames, B-frame style offsets) and 44.1 kHz
/// AAC, interleaved by time, with headers first.
fn av_stream(secs: u32, gop: u32) -> Vec<Msg> {
    let mut msgs = vec![(true, 0, avc_header(AVC_RECORD)), (false, 0, aac_header())];
    let mut timed = Vec::new();
    for i in 0..secs * 25 {
        let key = i % gop == 0;
        timed.push((
            true,
            i * 40,
            avc_frame(key, if key { 80 } else { 40 }, 100 + (i as usize % 7) * 30),
        ));
    }
    let frames = u64::from(secs) * 44100 / 1024;
    for n in 0..frames {
        timed.push((
            false,
            ((n * 1024 * 1000 + 22050) / 44100) as u32,
            aac_frame(50 + (n as usize % 5)),
        ));
    }
    timed.sort_by_key(|m| (m.1, !m.0));
    msgs.extend(timed);
    msgs
}

#[test]
fn av_stream_reads_back() {
    let conf = CmafConf {
        segment_ms: 2000,
        part_ms: 500,
        ..CmafConf::default()
    };
    let msgs = av_stream(10, 50);
    let (events, p) = run(conf, &msgs, true);
    let (v, a) = check(&events);
    assert_eq!(v.inits.len(), 1);
    assert_eq!(a.inits.len(), 1);
    assert_eq!(v.inits[0].entry, *b"avc1");
    assert_eq!(v.inits[0].config, (*b"avcC", AVC_RECORD.to_vec()));
    assert_eq!((v.inits[0].width, v.inits[0].height), (640, 360));
    assert_eq!(a.inits[0].entry, *b"mp4a");
    assert_eq!(a.inits[0].timescale, 44100);
    assert_eq!(p.codec(TrackKind::Audio), Some("mp4a.40.2"));
    // Every frame, in order, with durations from the next frame and the last one like the others.
    assert_eq!(v.samples().count(), 250);
    assert!(v.samples().all(|s| s.duration == 3600), "25 fps at 90 kHz");
    assert_eq!(
        a.samples().count(),
        msgs.iter().filter(|m| !m.0).count() - 1
    );
    assert!(
        a.samples().all(|s| s.duration == 1024),
        "AAC durations exact"
    );
    // Segments at the keyframes (every 2 s), audio following with the same numbers.
    let numbers = |t: &TrackOut| t.segments.iter().map(|s| s.number).collect::<Vec<_>>();
    assert_eq!(numbers(&v), [1, 2, 3, 4, 5]);
    assert_eq!(numbers(&a), numbers(&v));
    for (vs, as_) in v.segments.iter().zip(&a.segments) {
        assert!(vs.independent);
        assert_eq!(vs.duration, 180_000);
        // Audio starts at the first frame at or after the keyframe's presentation time.
        let vpts_ms = vs.earliest_pts as u64 / 90;
        assert!(
            as_.start_ms >= vpts_ms.min(vs.start_ms) && as_.start_ms <= vpts_ms + 24,
            "{vs:?} {as_:?}"
        );
    }
    // Parts: at most 500 ms, the first of each segment independent.
    for (c, _) in &v.chunks {
        assert!(c.duration <= 45_000);
        assert_eq!(c.independent, c.part == 0);
    }
    // Sample data: the NAL units as they came.
    let first = &v.chunks[0].1;
    assert_eq!(&first.payload[..5], &[0, 0, 0, 100, 0x65]);
    assert_eq!(p.stats(), CmafStats::default());
}

#[test]
fn last_sample_takes_the_previous_duration_and_tfdt_is_64_bit() {
    let start = u32::MAX - 100; // wraps during the stream
    let mut msgs = vec![(true, start, avc_header(AVC_RECORD))];
    for i in 0..10u32 {
        msgs.push((true, start.wrapping_add(i * 33), avc_frame(i == 0, 0, 10)));
    }
    let (events, _) = run(CmafConf::default(), &msgs, true);
    let (v, _) = check(&events);
    let durations: Vec<u32> = v.samples().map(|s| s.duration).collect();
    assert_eq!(durations, vec![33 * 90; 10]);
    let end = v.chunks[0].1.tfdt + 10 * 33 * 90;
    assert!(end > u64::from(u32::MAX), "past 2^32 ticks");
}

#[test]
fn backward_and_jumping_timestamps_keep_the_output_valid() {
    let mut msgs = vec![(true, 0, avc_header(AVC_RECORD)), (false, 0, aac_header())];
    for (i, ts) in [
        0u32,
        40,
        80,
        70,
        70,
        120,
        5000,
        100,
        140,
        0,
        40,
        4_000_000_000,
        20,
    ]
    .into_iter()
    .enumerate()
    {
        msgs.push((true, ts, avc_frame(i % 3 == 0, -40, 20)));
        msgs.push((false, ts + 5, aac_frame(10)));
    }
    let (events, p) = run(
        CmafConf {
            segment_ms: 100,
            ..CmafConf::default()
        },
        &msgs,
        true,
    );
    let (v, a) = check(&events);
    assert_eq!(v.samples().count(), 13);
    assert_eq!(a.samples().count(), 13);
    let s = p.stats();
    assert!(s.clamped > 0 && s.rebased > 0, "{s:?}");
}

#[test]
fn keyframe_less_video_gives_no_video_and_audio_goes_alone() {
    let mut msgs = vec![(true, 0, avc_header(AVC_RECORD)), (false, 0, aac_header())];
    for i in 0..300u32 {
        msgs.push((true, i * 40, avc_frame(false, 0, 20)));
        msgs.push((false, i * 40, aac_frame(10)));
    }
    let conf = CmafConf {
        segment_ms: 2000,
        ..CmafConf::default()
    };
    let (events, p) = run(conf, &msgs, true);
    let (v, a) = check(&events);
    assert!(v.chunks.is_empty());
    assert_eq!(p.stats().dropped, 300);
    assert_eq!(a.samples().count(), 300);
    assert!(a.segments.len() >= 5, "audio cuts by itself");
}

#[test]
fn audio_only_cuts_at_the_target() {
    let mut msgs = vec![(false, 0, aac_header())];
    for n in 0..1000u64 {
        msgs.push((
            false,
            ((n * 1024 * 1000 + 22050) / 44100) as u32,
            aac_frame(10),
        ));
    }
    let conf = CmafConf {
        segment_ms: 4000,
        part_ms: 1000,
        ..CmafConf::default()
    };
    let (events, _) = run(conf, &msgs, true);
    let (_, a) = check(&events);
    assert_eq!(a.samples().count(), 1000);
    for s in &a.segments[..a.segments.len() - 1] {
        assert!(
            s.duration >= 4 * 44100 && s.duration < 4 * 44100 + 1024,
            "{s:?}"
        );
    }
}

#[test]
fn hevc_hev1_and_legacy_become_hvc1_with_complete_arrays() {
    let mut record = HEVC_RECORD.to_vec();
    // Clear array_completeness as FFmpeg's FLV muxer writes it.
    let arrays = record[22];
    let mut at = 23;
    for _ in 0..arrays {
        record[at] &= 0x7F;
        let n = u16_at(&record, at + 1);
        at += 3;
        for _ in 0..n {
            at += 2 + usize::from(u16_at(&record, at));
        }
    }
    for fourcc in [&b"hev1"[..], b"hvc1", b"legacy"] {
        let (header, frame) = if fourcc == b"legacy" {
            (
                [&[0x1C, 0, 0, 0, 0][..], &record].concat(),
                vec![0x1C, 1, 0, 0, 0, 0, 0, 0, 2, 0x26, 1],
            )
        } else {
            (
                [&[0x90][..], fourcc, &record].concat(),
                [&[0x93][..], fourcc, &[0, 0, 0, 2, 0x26, 1][..]].concat(),
            )
        };
        let (events, p) = run(
            CmafConf::default(),
            &[
                (true, 0, header),
                (true, 0, frame.clone()),
                (true, 40, frame),
            ],
            true,
        );
        let (v, _) = check(&events);
        assert_eq!(v.inits[0].entry, *b"hvc1");
        let hvcc = &v.inits[0].config.1;
        assert_eq!(hvcc, &hvcc_for_hvc1(HEVC_RECORD));
        assert_eq!(hvcc_for_hvc1(&record), hvcc_for_hvc1(HEVC_RECORD));
        assert!(p.codec(TrackKind::Video).unwrap().starts_with("hvc1."));
        assert_eq!(v.samples().count(), 2);
    }
}

#[test]
fn mp3_and_other_codecs_are_said_unsupported_once() {
    let msgs: Vec<Msg> = vec![
        (false, 0, vec![0x2F, 0xFF, 0xFB, 0x90, 0]),
        (false, 26, vec![0x2F, 0xFF, 0xFB]),
        (true, 0, vec![0x22, 1, 2]),
    ];
    let (events, _) = run(CmafConf::default(), &msgs, true);
    let (v, a) = check(&events);
    assert_eq!(a.unsupported.len(), 1);
    assert!(a.unsupported[0].contains("MP3"));
    assert_eq!(v.unsupported.len(), 1);
}

#[test]
fn a_new_sequence_header_ends_the_segment_with_a_new_init() {
    let mut msgs = vec![(true, 0, avc_header(AVC_RECORD))];
    for i in 0..20u32 {
        if i == 10 {
            msgs.push((true, i * 40, avc_header(AVC_RECORD_720)));
        }
        // The same header again changes nothing.
        if i == 5 {
            msgs.push((true, i * 40, avc_header(AVC_RECORD)));
        }
        msgs.push((true, i * 40, avc_frame(i % 10 == 0, 0, 20)));
    }
    let (events, p) = run(CmafConf::default(), &msgs, true);
    let (v, _) = check(&events);
    assert_eq!(v.inits.len(), 2);
    assert_eq!((v.inits[1].width, v.inits[1].height), (1280, 720));
    assert_eq!(v.segments.len(), 2);
    assert_eq!(
        v.segments[0].duration,
        10 * 3600,
        "the last frame before the change ends at the next"
    );
    assert_eq!(p.dimensions(), Some((1280, 720)));
}

#[test]
fn told_parts_and_segments() {
    let mut p = CmafPackager::new(CmafConf {
        segment_ms: 0,
        max_segment_ms: 0,
        ..CmafConf::default()
    });
    let mut out = Vec::new();
    p.push_video(0, &avc_header(AVC_RECORD), &mut out);
    for i in 0..30u32 {
        if i % 5 == 0 {
            p.end_part(&mut out);
        }
        if i == 12 {
            p.end_segment();
        }
        p.push_video(i * 40, &avc_frame(i % 15 == 0, 0, 20), &mut out);
    }
    p.flush(&mut out);
    let (v, _) = check(&out);
    // The request at frame 12 cuts at the keyframe of frame 15; no cut at 0 without one.
    assert_eq!(
        v.segments
            .iter()
            .map(|s| s.duration / 3600)
            .collect::<Vec<_>>(),
        [15, 15]
    );
    assert!(v.chunks.len() >= 6);
}

// ---------------------------------------------------------------------------------------------
// Random streams

fn arb_stream() -> impl Strategy<Value = (CmafConf, Vec<Msg>)> {
    let conf = (0u64..3000, 0u64..2, 0u64..800, 0u64..50, 0u64..1000).prop_map(
        |(seg, max, part, sync, il)| CmafConf {
            segment_ms: seg,
            max_segment_ms: if max == 0 { 0 } else { seg * 3 + 100 },
            part_ms: part,
            audio_sync_ms: sync,
            max_interleave_ms: il,
            max_chunk_bytes: 5000,
            first_segment: 1,
        },
    );
    // (video?, time step, jitter, key?, cts, size, header?)
    let msg = (
        any::<bool>(),
        0u32..80,
        -30i32..30,
        0u8..10,
        -100i32..200,
        0usize..3000,
        0u8..40,
    );
    (conf, proptest::collection::vec(msg, 0..300)).prop_map(|(conf, raw)| {
        let mut msgs = vec![(true, 0, avc_header(AVC_RECORD)), (false, 0, aac_header())];
        let mut t = 0u32;
        for (video, step, jitter, key, cts, size, header) in raw {
            t = t.wrapping_add(step);
            let ts = t.wrapping_add_signed(jitter);
            let body = match (video, header) {
                (true, 0) => avc_header(AVC_RECORD_720),
                (true, 1) => vec![0x17, 2, 0, 0, 0],
                (true, _) => avc_frame(key < 3, cts, size),
                (false, 0) => vec![0xAF, 0, 0x11, 0x90], // 48 kHz stereo
                (false, _) => aac_frame(size / 10),
            };
            msgs.push((video, ts, body));
        }
        (conf, msgs)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_streams_keep_every_invariant((conf, msgs) in arb_stream(), flush in any::<bool>()) {
        let (events, p) = run(conf.clone(), &msgs, flush);
        let (v, a) = check(&events);
        let frames_in = |video: bool| msgs.iter().filter(|m| m.0 == video && m.2.get(1) == Some(&1)).count() as u64;
        let held = |t: &Track| u64::from(t.pending.is_some()) + t.chunk.len() as u64;
        let out_v = v.samples().count() as u64 + if flush { 0 } else { held(&p.video) };
        let out_a = a.samples().count() as u64 + if flush { 0 } else { held(&p.audio) + p.held.len() as u64 };
        // Every frame is packaged (or counted as dropped).
        prop_assert_eq!(out_v + out_a + p.stats().dropped, frames_in(true) + frames_in(false));
        for s in v.segments.iter().filter(|s| s.independent) {
            let (c, r) = v.chunks.iter().find(|(c, _)| c.segment == s.number).unwrap();
            prop_assert!(c.independent && r.samples[0].flags == Some(SYNC_SAMPLE_FLAGS));
        }
        if conf.max_segment_ms == 0 {
            prop_assert!(v.segments.iter().all(|s| s.independent));
        }
    }

    #[test]
    fn garbage_never_panics(msgs in proptest::collection::vec((any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..100)) {
        let mut msgs: Vec<Msg> = msgs;
        msgs.insert(0, (true, 0, avc_header(AVC_RECORD)));
        msgs.insert(1, (false, 0, aac_header()));
        let (events, _) = run(CmafConf { part_ms: 100, segment_ms: 300, ..CmafConf::default() }, &msgs, true);
        check(&events);
    }
}

// ---------------------------------------------------------------------------------------------
// FFmpeg

fn media(name: &str) -> Option<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/media")
        .join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!(
                "skipped: {} missing (scripts/media makes it)",
                path.display()
            );
            None
        }
    }
}

fn have_ffprobe() -> bool {
    let ok = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no ffprobe");
    }
    ok
}

/// Packages an FLV file; per track, init + every chunk, and how many frames the FLV had.
fn package_flv(flv: &[u8], conf: CmafConf) -> Vec<(TrackKind, Vec<u8>, usize)> {
    let tags = crate::flv::read_all(flv).unwrap();
    let mut p = CmafPackager::new(conf);
    let mut out = Vec::new();
    let (mut nv, mut na) = (0, 0);
    for t in &tags {
        match t.tag_type {
            9 => {
                if matches!(parse_video(&t.data), VideoPacket::Frame { .. }) {
                    nv += 1;
                }
                p.push_video(t.timestamp, &t.data, &mut out);
            }
            8 => {
                if matches!(es::parse_audio(&t.data), AudioPacket::AacFrame(_)) {
                    na += 1;
                }
                p.push_audio(t.timestamp, &t.data, &mut out);
            }
            _ => {}
        }
    }
    p.flush(&mut out);
    let (v, a) = check(&out);
    assert_eq!(p.stats().dropped, 0);
    assert_eq!(v.samples().count(), nv);
    assert_eq!(a.samples().count(), na);
    let mut files = Vec::new();
    for (kind, n) in [(TrackKind::Video, nv), (TrackKind::Audio, na)] {
        if n == 0 {
            continue;
        }
        let mut file = Vec::new();
        for e in &out {
            match e {
                CmafEvent::Init { track, bytes, .. } if *track == kind => {
                    file.extend_from_slice(bytes)
                }
                CmafEvent::Chunk(c) if c.track == kind => file.extend_from_slice(&c.bytes),
                _ => {}
            }
        }
        files.push((kind, file, n));
    }
    files
}

/// ffprobe decodes each track file: no errors, every frame there, the duration as packaged.
fn ffprobe_tracks(name: &str, conf: CmafConf) {
    let (Some(flv), true) = (media(name), have_ffprobe()) else {
        return;
    };
    for (kind, file, frames) in package_flv(&flv, conf) {
        let path =
            std::env::temp_dir().join(format!("cmaf-{}-{name}-{kind:?}.mp4", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let o = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_tag_string,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && stderr.trim().is_empty(),
            "{name} {kind:?}: {stderr}"
        );
        let fields: Vec<&str> = stdout.trim().split(',').collect();
        eprintln!("{name} {kind:?}: {stdout}");
        assert_eq!(fields.len(), 2, "{stdout}");
        assert_eq!(
            fields[1].parse::<usize>().unwrap(),
            frames,
            "{name} {kind:?} frames"
        );
        let tag = if kind == TrackKind::Audio {
            "mp4a"
        } else if name.contains("hevc") {
            "hvc1"
        } else {
            "avc1"
        };
        assert_eq!(fields[0], tag);
    }
}

#[test]
fn ffprobe_reads_the_avc_aac_test_stream() {
    ffprobe_tracks(
        "test.flv",
        CmafConf {
            segment_ms: 2000,
            part_ms: 300,
            ..CmafConf::default()
        },
    );
}

#[test]
fn ffprobe_reads_the_hevc_test_streams() {
    ffprobe_tracks("test-hevc-enhanced.flv", CmafConf::default());
    ffprobe_tracks(
        "test-hevc-legacy.flv",
        CmafConf {
            part_ms: 200,
            ..CmafConf::default()
        },
    );
}

#[test]
fn ffprobe_reads_irregular_gops() {
    ffprobe_tracks(
        "irregular.flv",
        CmafConf {
            segment_ms: 1000,
            part_ms: 500,
            ..CmafConf::default()
        },
    );
}
