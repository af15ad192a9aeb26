//! The readers on the fixtures of `tests/data/vod/` (made by its `make.sh` with FFmpeg): packet
//! counts as `ffprobe -count_packets` gives them, timing, seeks, truncations, `Pending` sources.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::amf0::{self, Amf0Value};
use crate::codec::{aac, avc, hevc};
use crate::flv::{audio_tag_info, video_tag_info, AudioCodec, VideoCodec};

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            Bytes::from_static(include_bytes!(concat!("../../tests/data/vod/", $name))),
        )
    };
}

/// Name, bytes, and the video and audio packets `ffprobe -count_packets` counts.
fn fixtures() -> Vec<(&'static str, Bytes, usize, usize)> {
    let counts = [
        (fixture!("avc_aac.mp4"), 20, 45),
        (fixture!("avc_aac_faststart.mp4"), 20, 45),
        (fixture!("hevc_aac.mp4"), 20, 45),
        (fixture!("avc_mp3.mp4"), 20, 79),
        (fixture!("aac.mp4"), 0, 45),
        (fixture!("avc_aac.flv"), 20, 45),
        (fixture!("avc_aac_index.flv"), 20, 45),
        (fixture!("mp3.flv"), 0, 79),
    ];
    counts
        .into_iter()
        .map(|((n, b), v, a)| (n, b, v, a))
        .collect()
}

fn get(name: &str) -> Bytes {
    fixtures()
        .into_iter()
        .find(|f| f.0 == name)
        .map(|f| f.1)
        .unwrap()
}

/// Calls `f` again while it answers `Pending`.
fn retry<T>(mut f: impl FnMut() -> Result<T, VodError>) -> Result<T, VodError> {
    for _ in 0..10_000 {
        match f() {
            Err(VodError::Pending) => continue,
            r => return r,
        }
    }
    panic!("Pending forever");
}

/// A source that answers `Pending` at pseudo-random reads, once for each (offset, length), so
/// that a call retried makes progress.
struct Flaky {
    data: Bytes,
    x: u32,
    pendings: usize,
    failed: std::collections::HashSet<(u64, usize)>,
}

impl Flaky {
    fn new(data: Bytes, seed: u32) -> Self {
        Flaky {
            data,
            x: seed | 1,
            pendings: 0,
            failed: Default::default(),
        }
    }
}

impl Source for Flaky {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 17;
        self.x ^= self.x << 5;
        if self.x % 3 == 1 && self.failed.insert((offset, len)) {
            self.pendings += 1;
            return Err(SourceError::Pending);
        }
        self.data.read_at(offset, len)
    }
}

/// Everything a player sees: metadata, headers, the tags from the start, then after seeks.
#[derive(Debug, PartialEq)]
struct Play {
    meta: Bytes,
    headers: Vec<VodTag>,
    tags: Vec<VodTag>,
    truncated: bool,
    seeks: Vec<(u32, Result<u32, VodError>, Vec<VodTag>)>,
}

fn play<S: Source>(src: &mut S, seeks: &[u32], enhanced: bool) -> Result<Play, VodError> {
    let mut f = retry(|| VodFile::open(src))?;
    f.set_enhanced(enhanced);
    let mut tags = Vec::new();
    while let Some(t) = retry(|| f.next(src))? {
        tags.push(t);
        assert!(tags.len() < 100_000);
    }
    let mut p = Play {
        meta: f.metadata(),
        headers: f.headers(enhanced),
        tags,
        truncated: f.truncated(),
        seeks: vec![],
    };
    for &ms in seeks {
        let r = retry(|| f.seek(src, ms));
        let mut after = Vec::new();
        if r.is_ok() {
            after.extend(f.headers(enhanced));
            while let Some(t) = retry(|| f.next(src))? {
                after.push(t);
                if after.len() > 30 {
                    break;
                }
            }
        }
        p.seeks.push((ms, r, after));
    }
    Ok(p)
}

fn of(tags: &[VodTag], kind: TagKind) -> Vec<&VodTag> {
    tags.iter().filter(|t| t.kind == kind).collect()
}

#[test]
fn packet_counts_and_timestamps() {
    for (name, data, video, audio) in fixtures() {
        let p = play(&mut data.clone(), &[], false).unwrap();
        assert!(!p.truncated, "{name}");
        let (v, a) = (of(&p.tags, TagKind::Video), of(&p.tags, TagKind::Audio));
        assert_eq!(
            (v.len(), a.len()),
            (video, audio),
            "{name}: video and audio tags"
        );
        for track in [&v, &a] {
            assert!(
                track.windows(2).all(|w| w[0].ts <= w[1].ts),
                "{name}: timestamps go down"
            );
        }
        // The first message is at 0 (MP4 edit lists, B-frames and AAC priming included).
        assert_eq!(p.tags.iter().map(|t| t.ts).min(), Some(0), "{name}");
        if let Some(first) = v.first() {
            assert!(first.key, "{name}: first video tag is no keyframe");
            assert_eq!(p.headers[0].kind, TagKind::Video);
        }
        // Headers parse, and no sequence header comes again among the tags.
        for h in &p.headers {
            match h.kind {
                TagKind::Video => {
                    let i = video_tag_info(&h.data).unwrap();
                    assert!(i.sequence_header && h.key);
                    match i.codec {
                        VideoCodec::Avc => {
                            assert_eq!(avc::parse_config(&h.data[5..]).unwrap().info.width, 64)
                        }
                        VideoCodec::Hevc => {
                            assert_eq!(hevc::parse_config(&h.data[5..]).unwrap().info.width, 64)
                        }
                        c => panic!("{name}: {c:?}"),
                    }
                }
                TagKind::Audio => {
                    let i = audio_tag_info(&h.data).unwrap();
                    assert!(i.sequence_header);
                    assert_eq!(aac::parse_config(&h.data[2..]).unwrap().sample_rate, 22050);
                }
                TagKind::Script => panic!("{name}: script header"),
            }
        }
        for t in &v {
            let i = video_tag_info(&t.data).unwrap();
            assert!(!i.sequence_header && i.keyframe == t.key, "{name}");
        }
        for t in &a {
            let i = audio_tag_info(&t.data).unwrap();
            assert!(!i.sequence_header, "{name}");
            assert!(matches!(i.codec, AudioCodec::Aac | AudioCodec::Mp3));
        }
        // Keyframes every 5 frames (-g 5).
        assert_eq!(
            v.iter().filter(|t| t.key).count(),
            video / 5,
            "{name}: keyframes"
        );
    }
}

#[test]
fn metadata() {
    for (name, data, video, _) in fixtures() {
        let f = VodFile::open(&mut data.clone()).unwrap();
        let values = amf0::decode_all(&f.metadata()).unwrap();
        assert_eq!(values[0], Amf0Value::string("onMetaData"), "{name}");
        let d = values[1]
            .get("duration")
            .and_then(Amf0Value::as_f64)
            .unwrap();
        assert!((1.9..=2.3).contains(&d), "{name}: duration {d}");
        let ms = f.duration_ms().unwrap();
        assert!((1900..=2300).contains(&ms), "{name}: duration {ms} ms");
        if video > 0 {
            assert_eq!(
                values[1].get("width").and_then(Amf0Value::as_f64),
                Some(64.0),
                "{name}"
            );
            assert_eq!(
                values[1].get("height").and_then(Amf0Value::as_f64),
                Some(64.0),
                "{name}"
            );
        }
        assert!(values[1].get("audiocodecid").is_some(), "{name}");
    }
    let f = VodFile::open(&mut get("avc_aac.mp4")).unwrap();
    let values = amf0::decode_all(&f.metadata()).unwrap();
    let n = |k: &str| values[1].get(k).and_then(Amf0Value::as_f64);
    assert_eq!(
        (n("videocodecid"), n("audiocodecid"), n("audiosamplerate")),
        (Some(7.0), Some(10.0), Some(22050.0))
    );
    assert_eq!(n("filesize"), Some(get("avc_aac.mp4").len() as f64));
}

#[test]
fn mp4_b_frames_keep_audio_and_video_in_step() {
    let p = play(&mut get("avc_aac.mp4"), &[], false).unwrap();
    let v = of(&p.tags, TagKind::Video);
    let a = of(&p.tags, TagKind::Audio);
    let cts = |t: &VodTag| i32::from_be_bytes([t.data[2], t.data[3], t.data[4], 0]) >> 8;
    // x264 -bf 2: decode times from 0, the first picture shown 200 ms later, B-frames in between.
    assert_eq!((v[0].ts, cts(v[0])), (0, 200));
    assert!(v.iter().any(|t| cts(t) < 200));
    let pts: Vec<u32> = v.iter().map(|t| t.ts + cts(t) as u32).collect();
    let mut sorted = pts.clone();
    sorted.sort();
    assert_eq!(sorted, (0..20).map(|i| 200 + 100 * i).collect::<Vec<u32>>());
    // AAC: one priming frame (1024 samples at 22050 Hz = 46 ms) before the first picture.
    assert_eq!(a[0].ts, 200 - 46);
    assert_eq!(a[1].ts, 200);
    // moov at the front or at the end: the same play.
    assert_eq!(
        p,
        play(&mut get("avc_aac_faststart.mp4"), &[], false).unwrap()
    );
}

#[test]
fn flv_matches_what_ffprobe_reads() {
    let p = play(&mut get("avc_aac.flv"), &[], false).unwrap();
    let v = of(&p.tags, TagKind::Video);
    assert_eq!(
        v.iter().map(|t| t.ts).collect::<Vec<_>>(),
        (0..20).map(|i| i * 100).collect::<Vec<u32>>()
    );
    assert_eq!(of(&p.tags, TagKind::Audio)[0].ts, 154);
    // The index in the metadata changes nothing but the offsets.
    let q = play(&mut get("avc_aac_index.flv"), &[], false).unwrap();
    assert_eq!((p.headers, p.tags), (q.headers, q.tags));
}

#[test]
fn flv_uses_a_good_metadata_index() {
    let mut src = get("avc_aac_index.flv");
    let VodFile::Flv(mut f) = VodFile::open(&mut src).unwrap() else {
        panic!()
    };
    assert_eq!(f.meta_index.len(), 4);
    assert_eq!(f.seek(&mut src, 1250).unwrap(), 1000);
    assert!(
        !f.walk.done && f.walk.pos == f.data_start,
        "no walk with a good index"
    );
    // Without an index, the walk stops past the target.
    let mut src = get("avc_aac.flv");
    let VodFile::Flv(mut f) = VodFile::open(&mut src).unwrap() else {
        panic!()
    };
    assert!(f.meta_index.is_empty());
    assert_eq!(f.seek(&mut src, 600).unwrap(), 500);
    assert!(!f.walk.done && f.walk.ts <= 1000);
    assert_eq!(f.seek(&mut src, 5000).unwrap(), 1500);
    assert!(f.walk.done);
}

/// Keyframe timestamps (or audio ones for audio-only files) of a whole play.
fn seek_points(p: &Play) -> Vec<u32> {
    let video: Vec<u32> = of(&p.tags, TagKind::Video)
        .iter()
        .filter(|t| t.key)
        .map(|t| t.ts)
        .collect();
    if video.is_empty() {
        of(&p.tags, TagKind::Audio).iter().map(|t| t.ts).collect()
    } else {
        video
    }
}

#[test]
fn seeks_land_at_or_before_on_a_keyframe() {
    for (name, data, video, _) in fixtures() {
        let whole = play(&mut data.clone(), &[], false).unwrap();
        let points = seek_points(&whole);
        let targets = [
            0,
            1,
            99,
            100,
            499,
            500,
            501,
            1000,
            1049,
            1234,
            1499,
            1999,
            2000,
            5000,
            u32::MAX,
            300,
            0,
        ];
        let p = play(&mut data.clone(), &targets, false).unwrap();
        for (ms, r, after) in &p.seeks {
            let got = r.clone().unwrap();
            let want = points
                .iter()
                .copied()
                .filter(|&t| t <= *ms)
                .max()
                .unwrap_or(points[0]);
            assert_eq!(got, want, "{name}: seek to {ms}");
            let headers: Vec<VodTag> = p
                .headers
                .iter()
                .map(|h| VodTag {
                    ts: got,
                    ..h.clone()
                })
                .collect();
            assert_eq!(
                after[..headers.len()],
                headers,
                "{name}: headers after a seek"
            );
            let media = &after[p.headers.len()..];
            if video > 0 {
                let first = media.iter().find(|t| t.kind == TagKind::Video).unwrap();
                assert!(first.key && first.ts == got, "{name}: seek to {ms}");
            } else {
                assert_eq!(media[0].ts, got, "{name}: seek to {ms}");
            }
            assert!(
                media.iter().all(|t| t.ts >= got),
                "{name}: seek to {ms}: tags before the seek point"
            );
            // Play after a seek is the whole play from there on.
            let at = whole.tags.iter().position(|t| t == &media[0]).unwrap();
            assert_eq!(
                &whole.tags[at..(at + media.len()).min(whole.tags.len())],
                media,
                "{name}: seek to {ms}"
            );
        }
    }
}

#[test]
fn fragmented_mp4_is_refused() {
    let (_, data) = fixture!("frag.mp4");
    assert_eq!(
        VodFile::open(&mut data.clone()).unwrap_err(),
        VodError::Fragmented
    );
    assert_eq!(
        VodError::Fragmented.to_string(),
        "fragmented MP4 is not supported"
    );
}

#[test]
fn not_a_media_file() {
    assert_eq!(
        VodFile::open(&mut Bytes::from_static(b"hello world, no media")).unwrap_err(),
        VodError::UnknownFormat
    );
    assert_eq!(
        VodFile::open(&mut Bytes::new()).unwrap_err(),
        VodError::UnknownFormat
    );
    assert_eq!(
        VodFile::open(&mut Bytes::from_static(b"FLV\x01")).unwrap_err(),
        VodError::NotFlv
    );
    assert_eq!(
        VodFile::open(&mut Bytes::from_static(b"\0\0\0\x08ftyp")).unwrap_err(),
        VodError::Truncated
    );
    // A moov over the cap is refused before it is read.
    let mut big = b"\0\0\0\x08ftyp\0\0\0\x01moov".to_vec();
    big.extend_from_slice(&(MAX_MOOV_TEST + 17).to_be_bytes());
    assert!(matches!(
        VodFile::open(&mut big),
        Err(VodError::TooBig { .. })
    ));
}

const MAX_MOOV_TEST: u64 = mp4::MAX_MOOV;

#[test]
fn hevc_mp4_in_both_forms() {
    let legacy = play(&mut get("hevc_aac.mp4"), &[], false).unwrap();
    let enhanced = play(&mut get("hevc_aac.mp4"), &[], true).unwrap();
    assert_eq!(legacy.headers[0].data[..5], [0x1c, 0, 0, 0, 0]);
    assert_eq!(&enhanced.headers[0].data[..5], b"\x90hvc1");
    assert_eq!(legacy.headers[0].data[5..], enhanced.headers[0].data[5..]);
    for (l, e) in of(&legacy.tags, TagKind::Video)
        .iter()
        .zip(of(&enhanced.tags, TagKind::Video))
    {
        let (li, ei) = (
            video_tag_info(&l.data).unwrap(),
            video_tag_info(&e.data).unwrap(),
        );
        assert_eq!(
            (li.codec, li.enhanced, ei.codec, ei.enhanced),
            (VideoCodec::Hevc, false, VideoCodec::Hevc, true)
        );
        assert_eq!((li.keyframe, ei.keyframe), (l.key, e.key));
        // No B-frames: CodedFramesX, the same NAL units.
        assert_eq!(e.data[0] & 0x0f, 3);
        assert_eq!(l.data[5..], e.data[5..]);
    }
    let meta =
        amf0::decode_all(&VodFile::open(&mut get("hevc_aac.mp4")).unwrap().metadata()).unwrap();
    assert_eq!(
        meta[1].get("videocodecid").and_then(Amf0Value::as_f64),
        Some(12.0)
    );
}

/// An FLV file of these tags (with our own writer).
fn flv_file(tags: &[VodTag]) -> Bytes {
    let mut b = BytesMut::new();
    crate::flv::write_header(&mut b, true, true);
    for t in tags {
        crate::flv::write_tag(&mut b, t.kind.msg_type(), t.ts, &t.data);
    }
    b.freeze()
}

#[test]
fn legacy_hevc_flv_goes_out_enhanced() {
    // MP4 to FLV with legacy HEVC (codec id 12), as some encoders write it.
    let mp4 = play(&mut get("hevc_aac.mp4"), &[], false).unwrap();
    let all: Vec<VodTag> = mp4.headers.iter().chain(&mp4.tags).cloned().collect();
    let mut flv = flv_file(&all);
    let legacy = play(&mut flv, &[], false).unwrap();
    assert_eq!((&legacy.headers, &legacy.tags), (&mp4.headers, &mp4.tags));
    let enhanced = play(&mut flv, &[1000], true).unwrap();
    let from_mp4 = play(&mut get("hevc_aac.mp4"), &[1000], true).unwrap();
    assert_eq!(
        (&enhanced.headers, &enhanced.tags),
        (&from_mp4.headers, &from_mp4.tags)
    );
    assert_eq!(enhanced.seeks, from_mp4.seeks);
    // No onMetaData in the file: one is made, with the duration of the last tag.
    let meta = amf0::decode_all(&enhanced.meta).unwrap();
    assert_eq!(
        meta[1].get("duration").and_then(Amf0Value::as_f64),
        Some(f64::from(mp4.tags.last().unwrap().ts) / 1000.0)
    );
    assert_eq!(
        meta[1].get("videocodecid").and_then(Amf0Value::as_f64),
        Some(12.0)
    );
}

#[test]
fn truncated_files_never_panic() {
    for (name, data, video, audio) in
        fixtures()
            .into_iter()
            .chain([(fixture!("frag.mp4").0, fixture!("frag.mp4").1, 0, 0)])
    {
        let step = (data.len() / 300).max(1);
        let lens = (0..data.len())
            .step_by(step)
            .chain(data.len().saturating_sub(40)..data.len());
        for len in lens {
            let mut cut = data.slice(..len);
            let Ok(p) = play(&mut cut, &[0, 700, 1500, 9000], false) else {
                continue;
            };
            let (v, a) = (
                of(&p.tags, TagKind::Video).len(),
                of(&p.tags, TagKind::Audio).len(),
            );
            assert!(v <= video && a <= audio, "{name} cut at {len}: {v} {a}");
        }
    }
}

#[test]
fn truncated_mp4_ends_early_and_says_so() {
    // moov first: the media is cut, play stops at the first frame the file does not hold.
    let data = get("avc_aac_faststart.mp4");
    let mut cut = data.slice(..data.len() - 2000);
    let p = play(&mut cut, &[], false).unwrap();
    assert!(p.truncated && p.tags.len() < 65);
    // moov last: cut, there is nothing to play.
    let data = get("avc_aac.mp4");
    assert_eq!(
        VodFile::open(&mut data.slice(..data.len() - 10)).unwrap_err(),
        VodError::Truncated
    );
    // FLV: the last tag cut.
    let data = get("avc_aac.flv");
    let p = play(&mut data.slice(..data.len() - 40), &[], false).unwrap();
    assert!(p.truncated && p.tags.len() == 64, "{}", p.tags.len());
}

#[test]
fn pending_changes_nothing() {
    let seeks = [1200, 0, 600, 99_999, 1999];
    for (name, data, _, _) in fixtures() {
        for enhanced in [false, true] {
            let plain = play(&mut data.clone(), &seeks, enhanced).unwrap();
            for seed in [1, 7, 12345, 0xdead_beef] {
                let mut flaky = Flaky::new(data.clone(), seed);
                assert_eq!(
                    play(&mut flaky, &seeks, enhanced).unwrap(),
                    plain,
                    "{name} seed {seed}"
                );
                assert!(flaky.pendings > 10);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pending_at_random_points(file in 0usize..8, seed in any::<u32>(), seeks in prop::collection::vec(0u32..3000, 0..4)) {
        let data = fixtures()[file].1.clone();
        let plain = play(&mut data.clone(), &seeks, seed & 1 == 1).unwrap();
        let mut flaky = Flaky::new(data, seed);
        prop_assert_eq!(play(&mut flaky, &seeks, seed & 1 == 1).unwrap(), plain);
    }

    #[test]
    fn damaged_files_never_panic(file in 0usize..8, at in any::<prop::sample::Index>(), bytes in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut data = fixtures()[file].1.to_vec();
        let at = at.index(data.len());
        for (i, b) in bytes.iter().enumerate() {
            if let Some(d) = data.get_mut(at + i) {
                *d = *b;
            }
        }
        let _ = play(&mut data, &[0, 800, 4000], true);
    }
}

/// The same media, whatever the metadata says (the file size).
fn same_media(a: &Play, b: &Play) -> bool {
    (&a.headers, &a.tags, a.truncated, &a.seeks) == (&b.headers, &b.tags, b.truncated, &b.seeks)
}

type Leaf<'a> = &'a dyn Fn(&[u8; 4], &[u8]) -> ([u8; 4], Vec<u8>);

/// Rebuilds the boxes of `b`, going into the containers, with `leaf` rewriting the other boxes.
fn rewrite(b: &[u8], leaf: Leaf) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = b;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = rest[4..8].try_into().unwrap();
        let body = &rest[8..size];
        let (kind, body) = match &kind {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" => {
                (kind, rewrite(body, leaf))
            }
            _ => leaf(&kind, body),
        };
        out.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
        out.extend_from_slice(&kind);
        out.extend_from_slice(&body);
        rest = &rest[size..];
    }
    out
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn mp4_table_variants_play_the_same() {
    // The moov is at the end: rewriting it leaves every sample where it was.
    let data = get("avc_aac.mp4");
    let whole = play(&mut data.clone(), &[1200], false).unwrap();
    let same = |leaf: Leaf| {
        let mut file = rewrite(&data, leaf);
        assert_ne!(file, data.to_vec());
        play(&mut file, &[1200], false).unwrap()
    };
    // 64-bit chunk offsets.
    let co64 = same(&|k, b| match k {
        b"stco" => {
            let mut v = b[..8].to_vec();
            b[8..]
                .chunks(4)
                .for_each(|c| v.extend_from_slice(&u64::from(be32(c, 0)).to_be_bytes()));
            (*b"co64", v)
        }
        _ => (*k, b.to_vec()),
    });
    assert!(same_media(&co64, &whole), "co64");
    // Compact 16-bit sample sizes.
    let stz2 = same(&|k, b| match k {
        b"stsz" => {
            let mut v = vec![0, 0, 0, 0, 0, 0, 0, 16];
            v.extend_from_slice(&b[8..12]);
            b[12..]
                .chunks(4)
                .for_each(|c| v.extend_from_slice(&(be32(c, 0) as u16).to_be_bytes()));
            (*b"stz2", v)
        }
        _ => (*k, b.to_vec()),
    });
    assert!(same_media(&stz2, &whole), "stz2");
    // An empty edit of 500 ms first delays both tracks: the B-frame offset is no longer needed.
    let delayed = same(&|k, b| match k {
        b"elst" => {
            let mut v = b[..4].to_vec();
            v.extend_from_slice(&(be32(b, 4) + 1).to_be_bytes());
            v.extend_from_slice(&[0, 0, 1, 0xf4, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0]);
            v.extend_from_slice(&b[8..]);
            (*k, v)
        }
        _ => (*k, b.to_vec()),
    });
    let shifted: Vec<VodTag> = whole
        .tags
        .iter()
        .map(|t| VodTag {
            ts: t.ts + 300,
            ..t.clone()
        })
        .collect();
    assert!(delayed.tags == shifted, "empty edit");
    // moov as the last box with a size of 0 (to the end of the file), or a 64-bit size.
    let at = data.len() - 2010;
    let mut zero = data.to_vec();
    zero[at..at + 4].copy_from_slice(&[0; 4]);
    assert!(
        same_media(&play(&mut zero, &[1200], false).unwrap(), &whole),
        "size 0"
    );
    let mut large = data[..at].to_vec();
    large.extend_from_slice(&[
        0, 0, 0, 1, b'm', b'o', b'o', b'v', 0, 0, 0, 0, 0, 0, 0x07, 0xe2,
    ]);
    large.extend_from_slice(&data[at + 8..]);
    assert!(
        same_media(&play(&mut large, &[1200], false).unwrap(), &whole),
        "largesize"
    );
    // An MP3 sample entry of its own (`.mp3`, no esds): the same MP3 tags.
    let mp3 = get("avc_mp3.mp4");
    let whole = play(&mut mp3.clone(), &[], false).unwrap();
    let mut file = rewrite(&mp3, &|k, b| match k {
        b"stsd" => {
            let mut v = b.to_vec();
            if let Some(i) = v.windows(4).position(|w| w == b"mp4a") {
                v[i..i + 4].copy_from_slice(b".mp3");
            }
            (*k, v)
        }
        _ => (*k, b.to_vec()),
    });
    let dot_mp3 = play(&mut file, &[], false).unwrap();
    assert!(dot_mp3.tags == whole.tags, ".mp3");
    assert_eq!(
        of(&whole.tags, TagKind::Audio)[0].data[0],
        0x2a,
        "MP3, 22 kHz, 16-bit, mono"
    );
}

#[test]
fn play_arguments_pick_the_mp4_tracks() {
    // 64x64 H.264, 32x32 H.264, AAC, MP3, in that order.
    let data = Bytes::from_static(include_bytes!("../../tests/data/vod/tracks.mp4"));
    let open = |args: &str| {
        let mut src = data.clone();
        let mut f = VodFile::open_tracks(&mut src, Tracks::from_args(args))?;
        let values = amf0::decode_all(&f.metadata()).unwrap();
        let n = |k: &str| values[1].get(k).and_then(Amf0Value::as_f64);
        let (width, acodec) = (n("width"), n("audiocodecid"));
        let mut counts = (0, 0);
        while let Some(t) = f.next(&mut src)? {
            match t.kind {
                TagKind::Video => counts.0 += 1,
                TagKind::Audio => {
                    assert_eq!(Some(f64::from(t.data[0] >> 4)), acodec, "{args}: sound format");
                    counts.1 += 1;
                }
                _ => {}
            }
        }
        Ok::<_, VodError>((width, acodec, counts))
    };
    let first = Ok((Some(64.0), Some(10.0), (20, 45)));
    assert_eq!(open(""), first);
    assert_eq!(open("vindex=0&aindex=0"), first);
    assert_eq!(open("vindex=1&aindex=1"), Ok((Some(32.0), Some(2.0), (20, 79))));
    assert_eq!(open("token=a&aindex=1"), Ok((Some(64.0), Some(2.0), (20, 79))));
    // Not a number, or another key: not ours.
    assert_eq!(open("aindex=x&aindex=1&xvindex=1"), Ok((Some(64.0), Some(2.0), (20, 79))));
    // No such track: none of that kind.
    assert_eq!(open("aindex=2"), Ok((Some(64.0), None, (20, 0))));
    assert_eq!(open("vindex=2"), Ok((None, Some(10.0), (0, 45))));
    assert_eq!(open("vindex=2&aindex=7"), Err(VodError::NoPlayableTrack));
    // An FLV file has one track of each kind whatever is asked.
    let flv = get("avc_aac.flv");
    let f = VodFile::open_tracks(&mut flv.clone(), Tracks::from_args("vindex=1&aindex=1")).unwrap();
    assert_eq!(f.metadata(), VodFile::open(&mut flv.clone()).unwrap().metadata());
}
