//! Properties of the HLS segmenter over random synthetic streams (keyframe patterns, composition
//! offsets, AAC and MP3, config changes, timestamps near 2^32, jumps both ways, garbage), checked
//! on what the strict demuxer reads back from the segments.

use proptest::prelude::*;
use rtmp_proto::mpegts::demux::{DemuxEvent, DemuxedPes, Demuxer};
use rtmp_proto::mpegts::{SegEvent, Segmenter, SegmenterConf, AUDIO_PID, VIDEO_PID};

const AVC_360: &[u8] = include_bytes!("data/avc_high_640x360.bin");
const AVC_720: &[u8] = include_bytes!("data/avc_high_1280x720.bin");
const HEVC: &[u8] = include_bytes!("data/hevc_hvcc_main_640x360.bin");
const MP3: &[u8] = include_bytes!("data/mp3_l3_44100_stereo_128k.bin");
const MASK: u64 = (1 << 33) - 1;

#[derive(Debug, Clone)]
enum Op {
    /// 0, 1: AVC (two sizes), 2: HEVC with the legacy id 12, 3: HEVC over Enhanced RTMP.
    VideoHeader(u8),
    /// A picture of the codec of the last video header.
    Video {
        key: bool,
        cts: i32,
        size: u16,
    },
    /// 0: 44.1 kHz stereo, 1: 48 kHz stereo, 2: a broken one.
    AudioHeader(u8),
    Aac {
        size: u16,
        late: u8,
    },
    Mp3 {
        late: u8,
    },
    /// Time passes.
    Step(u16),
    /// The publisher's clock jumps (wrapping at 2^32).
    Jump(i64),
    Garbage {
        video: bool,
        bytes: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..4).prop_map(Op::VideoHeader),
        30 => (any::<u8>(), prop_oneof![8 => -40i32..200, 1 => any::<i32>()], 1u16..3000)
            .prop_map(|(k, cts, size)| Op::Video { key: k < 26, cts, size }),
        1 => (0u8..3).prop_map(Op::AudioHeader),
        25 => (1u16..600, 0u8..60).prop_map(|(size, late)| Op::Aac { size, late }),
        3 => (0u8..60).prop_map(|late| Op::Mp3 { late }),
        30 => (1u16..60).prop_map(Op::Step),
        1 => prop_oneof![
            -1000i64..0,
            -(1i64 << 31)..-1000,
            10_001i64..(1i64 << 31),
            Just(-(1i64 << 32) + 40),
        ]
        .prop_map(Op::Jump),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(video, bytes)| Op::Garbage { video, bytes }),
    ]
}

fn conf() -> impl Strategy<Value = SegmenterConf> {
    (
        200u64..6000,
        1u64..5,
        any::<bool>(),
        0u64..5,
        0u64..1500,
        0u64..800,
        prop_oneof![Just(1usize << 20), 50usize..5000],
    )
        .prop_map(|(fragment, max_factor, aligned, sync, muxdelay, delay, buffer)| SegmenterConf {
            fragment_ms: fragment,
            max_fragment_ms: fragment * max_factor,
            aligned,
            sync_ms: sync,
            muxdelay_ms: muxdelay,
            max_audio_delay_ms: delay,
            audio_buffer_size: buffer,
        })
}

fn start() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>(), (0u32..20_000).prop_map(|d| u32::MAX - d)]
}

fn video_frame(codec: u8, key: bool, cts: i32, size: u16) -> Vec<u8> {
    let c = cts.to_be_bytes();
    let (mut v, nal_header): (Vec<u8>, &[u8]) = match codec {
        0 | 1 => (vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]], if key { &[0x65] } else { &[0x41] }),
        2 => (vec![if key { 0x1C } else { 0x2C }, 1, c[1], c[2], c[3]], if key { &[0x26, 1] } else { &[0x02, 1] }),
        _ => (
            [&[if key { 0x91 } else { 0xA1 }][..], b"hvc1", &c[1..]].concat(),
            if key { &[0x26, 1] } else { &[0x02, 1] },
        ),
    };
    let mut nal = nal_header.to_vec();
    nal.resize(usize::from(size).max(nal.len()), 0x5A);
    v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    v.extend_from_slice(&nal);
    v
}

fn video_header(codec: u8) -> Vec<u8> {
    match codec {
        0 => [&[0x17, 0, 0, 0, 0][..], AVC_360].concat(),
        1 => [&[0x17, 0, 0, 0, 0][..], AVC_720].concat(),
        2 => [&[0x1C, 0, 0, 0, 0][..], HEVC].concat(),
        _ => [&[0x90][..], b"hvc1", HEVC].concat(),
    }
}

/// What a run pushed, for the checks.
#[derive(Debug, Default)]
struct Run {
    events: Vec<SegEvent>,
    video_frames: usize,
    largest_audio_message: usize,
}

fn play(conf: &SegmenterConf, mut t: u32, ops: &[Op]) -> Run {
    let mut s = Segmenter::new(conf.clone());
    let mut run = Run::default();
    let mut codec = 0;
    for op in ops {
        let before = run.events.len();
        match op {
            Op::VideoHeader(c) => {
                codec = *c;
                s.push_video(t, &video_header(codec), &mut run.events);
            }
            Op::Video { key, cts, size } => {
                run.video_frames += 1;
                s.push_video(t, &video_frame(codec, *key, *cts, *size), &mut run.events);
            }
            Op::AudioHeader(which) => {
                let asc: &[u8] = match which {
                    0 => &[0x12, 0x10],
                    1 => &[0x11, 0x90],
                    _ => &[0x00, 0x00],
                };
                s.push_audio(t, &[&[0xAF, 0][..], asc].concat(), &mut run.events);
            }
            Op::Aac { size, late } => {
                let mut body = vec![0xAF, 1];
                body.resize(2 + usize::from(*size), 0x21);
                run.largest_audio_message = run.largest_audio_message.max(body.len() + 5);
                s.push_audio(t.wrapping_sub(u32::from(*late)), &body, &mut run.events);
            }
            Op::Mp3 { late } => {
                run.largest_audio_message = run.largest_audio_message.max(MP3.len());
                s.push_audio(t.wrapping_sub(u32::from(*late)), &[&[0x2F][..], MP3].concat(), &mut run.events);
            }
            Op::Step(d) => t = t.wrapping_add(u32::from(*d)),
            Op::Jump(d) => t = (i64::from(t) + d).rem_euclid(1 << 32) as u32,
            Op::Garbage { video, bytes } => {
                if *video {
                    s.push_video(t, bytes, &mut run.events);
                } else {
                    s.push_audio(t, bytes, &mut run.events);
                }
            }
        }
        let data = run.events[before..].iter().filter(|e| matches!(e, SegEvent::Data(_))).count();
        assert!(data <= 2, "one Data per message and segment");
    }
    s.finish(&mut run.events);
    run
}

#[derive(Debug, Default)]
struct Seg {
    start_ms: u64,
    discontinuity: bool,
    duration_ms: u64,
    ts: Vec<u8>,
    pcr_pid: u16,
    has_video: bool,
    pes: Vec<DemuxedPes>,
}

/// Is `b` at or after `a` on the 33-bit clock?
fn ahead(a: u64, b: u64) -> bool {
    b.wrapping_sub(a) & MASK < 1 << 32
}

fn check(conf: &SegmenterConf, run: &Run) -> Result<Vec<Seg>, TestCaseError> {
    let mut segs: Vec<Seg> = Vec::new();
    let mut open = false;
    let mut notices = 0;
    for e in &run.events {
        match e {
            SegEvent::Open { start_ms, discontinuity } => {
                prop_assert!(!open, "Open while open");
                open = true;
                segs.push(Seg { start_ms: *start_ms, discontinuity: *discontinuity, ..Seg::default() });
            }
            SegEvent::Data(d) => {
                prop_assert!(open, "Data outside a segment");
                prop_assert!(!d.is_empty() && d.len() % 188 == 0);
                prop_assert!(d.chunks(188).all(|p| p[0] == 0x47));
                segs.last_mut().unwrap().ts.extend_from_slice(d);
            }
            SegEvent::Close { duration_ms } => {
                prop_assert!(open, "Close while closed");
                open = false;
                segs.last_mut().unwrap().duration_ms = *duration_ms;
            }
            SegEvent::Unsupported(_) => notices += 1,
        }
    }
    prop_assert!(!open, "finish closes");
    prop_assert!(notices <= 5, "each kind of notice once");

    let jump = conf.max_fragment_ms.max(10_000);
    let mut demux = Demuxer::new();
    let mut video_pes = 0;
    for (i, seg) in segs.iter_mut().enumerate() {
        let pids: Vec<u16> =
            seg.ts.chunks(188).take(2).map(|p| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])).collect();
        prop_assert_eq!(pids, vec![0, 0x1000], "PAT and PMT open segment {}", i);
        let mut events = demux.push(&seg.ts).map_err(|e| TestCaseError::fail(format!("segment {i}: {e}")))?;
        events.extend(demux.finish().map_err(|e| TestCaseError::fail(format!("segment {i}: {e}")))?);
        for e in events {
            match e {
                DemuxEvent::Pmt { pcr_pid, streams } => {
                    seg.pcr_pid = pcr_pid;
                    seg.has_video = streams.iter().any(|s| s.pid == VIDEO_PID);
                }
                DemuxEvent::Pes(p) => seg.pes.push(p),
                DemuxEvent::Pcr { .. } => prop_assert!(false, "PCR without a PES"),
                DemuxEvent::Pat { .. } => {}
            }
        }
        seg.pes.sort_by_key(|p| p.pid);
        for pid in [VIDEO_PID, AUDIO_PID] {
            let pes: Vec<&DemuxedPes> = seg.pes.iter().filter(|p| p.pid == pid).collect();
            for w in pes.windows(2) {
                let (a, b) = (w[0].decode_ts().unwrap(), w[1].decode_ts().unwrap());
                prop_assert!(ahead(a, b), "segment {}: DTS of {:#x} goes back: {} then {}", i, pid, a, b);
            }
            for p in &pes {
                let dts = p.decode_ts().unwrap();
                prop_assert!(ahead(dts, p.pts.unwrap()), "PTS before DTS");
                prop_assert_eq!(p.pcr.is_some(), pid == seg.pcr_pid, "PCR on every PES of the PCR PID only");
                if let Some(pcr) = p.pcr {
                    prop_assert_eq!((pcr + conf.muxdelay_ms * 90) & MASK, dts, "PCR = DTS - muxdelay");
                }
                if pid == AUDIO_PID {
                    prop_assert!(p.data.len() <= conf.audio_buffer_size.max(run.largest_audio_message));
                    prop_assert!(p.data.len() <= 0xFFFF - 13);
                }
            }
        }
        video_pes += seg.pes.iter().filter(|p| p.pid == VIDEO_PID).count();
    }
    prop_assert!(video_pes <= run.video_frames);

    for (i, seg) in segs.iter().enumerate() {
        let forced = i > 0 && segs[i - 1].duration_ms >= conf.max_fragment_ms;
        // With video, a segment starts with a keyframe: the packet after PAT and PMT starts a
        // video PES with random_access_indicator (unless max_fragment_ms forced the cut).
        if seg.has_video && !forced {
            let p = seg.ts.get(2 * 188..3 * 188);
            let rai = p.is_some_and(|p| {
                p[1] & 0x40 != 0
                    && (u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])) == VIDEO_PID
                    && p[3] & 0x20 != 0
                    && p[4] > 0
                    && p[5] & 0x40 != 0
            });
            prop_assert!(rai, "segment {} does not start at a keyframe", i);
            let first = seg.pes.iter().find(|p| p.pid == VIDEO_PID).unwrap();
            prop_assert!(first.random_access);
        }
        prop_assert!(
            seg.duration_ms <= conf.max_fragment_ms + jump + 3000,
            "segment {} lasts {} ms",
            i,
            seg.duration_ms
        );
        if let Some(next) = segs.get(i + 1) {
            if !next.discontinuity {
                prop_assert_eq!(seg.start_ms + seg.duration_ms, next.start_ms, "segments follow each other");
            }
        }
    }
    Ok(segs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_streams_keep_the_rules(conf in conf(), t0 in start(), ops in prop::collection::vec(op(), 0..600)) {
        let run = play(&conf, t0, &ops);
        let segs = check(&conf, &run)?;
        if std::env::var_os("MPEGTS_STATS").is_some() {
            let disc = segs.iter().filter(|s| s.discontinuity).count();
            let video = segs.iter().filter(|s| s.has_video).count();
            let pes = segs.iter().map(|s| s.pes.len()).sum::<usize>();
            eprintln!("STATS segs {} disc {} video {} pes {}", segs.len(), disc, video, pes);
        }
    }

    /// One codec each, time only moving forward (audio up to 60 ms behind the video, random
    /// composition offsets, starts near 2^32): nothing is lost from the first keyframe on, no
    /// discontinuity, every cut at a keyframe unless max_fragment_ms forced it.
    #[test]
    fn stable_streams_lose_nothing(
        conf in conf(),
        t0 in start(),
        hevc in any::<bool>(),
        ops in prop::collection::vec(
            prop_oneof![
                3 => (any::<u8>(), -40i32..300, 1u16..2000)
                    .prop_map(|(k, cts, size)| Op::Video { key: k < 20, cts, size }),
                3 => (1u16..600, 0u8..60).prop_map(|(size, late)| Op::Aac { size, late }),
                4 => (0u16..50).prop_map(Op::Step),
            ],
            0..800,
        ),
    ) {
        let mut all = vec![Op::VideoHeader(if hevc { 3 } else { 0 }), Op::AudioHeader(0)];
        all.extend(ops.iter().cloned());
        let run = play(&conf, t0, &all);
        let segs = check(&conf, &run)?;
        prop_assert!(segs.iter().all(|s| !s.discontinuity));
        let first_key = ops.iter().position(|o| matches!(o, Op::Video { key: true, .. }));
        let after = |f: fn(&Op) -> bool| first_key.map_or(0, |k| ops[k..].iter().filter(|o| f(o)).count());
        let muxed = |pid| segs.iter().flat_map(|s| &s.pes).filter(|p| p.pid == pid).collect::<Vec<_>>();
        prop_assert_eq!(muxed(VIDEO_PID).len(), after(|o| matches!(o, Op::Video { .. })));
        let adts: usize = muxed(AUDIO_PID)
            .iter()
            .map(|p| {
                let mut rest = &p.data[..];
                let mut n = 0;
                while let [0xFF, 0xF1, _, b3, b4, b5, _, ..] = *rest {
                    let len = (usize::from(b3 & 3) << 11) | (usize::from(b4) << 3) | usize::from(b5 >> 5);
                    rest = &rest[len.min(rest.len())..];
                    n += 1;
                }
                n
            })
            .sum();
        prop_assert_eq!(adts, after(|o| matches!(o, Op::Aac { .. })));
        for w in segs.windows(2) {
            let forced = w[0].duration_ms >= conf.max_fragment_ms;
            if !forced && !conf.aligned {
                prop_assert!(w[0].duration_ms >= conf.fragment_ms);
            }
        }
    }

    /// Regular streams with one codec: every segment but the last is cut by a keyframe in plain
    /// mode at or after fragment_ms, and no frame from the first keyframe on is lost.
    #[test]
    fn regular_streams_cut_at_keyframes(
        fragment in 500u64..4000,
        aligned in any::<bool>(),
        gop in 5u32..80,
        t0 in start(),
        frames in 50u32..400,
    ) {
        let conf = SegmenterConf { fragment_ms: fragment, aligned, ..SegmenterConf::default() };
        let mut ops = vec![Op::VideoHeader(0), Op::AudioHeader(0)];
        for i in 0..frames {
            ops.push(Op::Video { key: i % gop == 0, cts: 80, size: 200 });
            ops.push(Op::Aac { size: 100, late: 5 });
            ops.push(Op::Step(20));
            ops.push(Op::Aac { size: 100, late: 5 });
            ops.push(Op::Step(20));
        }
        let run = play(&conf, t0, &ops);
        let segs = check(&conf, &run)?;
        let muxed: usize = segs.iter().map(|s| s.pes.iter().filter(|p| p.pid == VIDEO_PID).count()).sum();
        prop_assert_eq!(muxed, frames as usize);
        for (i, s) in segs.iter().enumerate() {
            prop_assert!(!s.discontinuity);
            prop_assert_eq!(s.start_ms % (u64::from(gop) * 40), u64::from(t0) % (u64::from(gop) * 40));
            if i + 1 < segs.len() && !aligned {
                prop_assert!(s.duration_ms >= fragment && s.duration_ms < fragment + u64::from(gop) * 40);
            }
        }
        let total: u64 = segs.iter().map(|s| s.duration_ms).sum();
        prop_assert!(total.abs_diff(u64::from(frames) * 40) <= 40);
    }
}
