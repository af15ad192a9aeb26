//! The HLS segmenter over real encoder output (target/media, made by scripts/media): every segment
//! read back by our strict demuxer and by FFmpeg. Missing media or a missing ffmpeg skip with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

use rtmp_proto::codec::hevc;
use rtmp_proto::flv::{self, FlvTag};
use rtmp_proto::mpegts::demux::{DemuxEvent, DemuxedPes, Demuxer, EsInfo};
use rtmp_proto::mpegts::es::{self, VideoPacket};
use rtmp_proto::mpegts::{SegEvent, Segmenter, SegmenterConf, AUDIO_PID, VIDEO_PID};

fn media(name: &str) -> Option<Vec<FlvTag>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/media").join(name);
    match std::fs::read(&path) {
        Ok(d) => Some(flv::read_all(&d).expect("test media parses")),
        Err(_) => {
            eprintln!("note: {} missing (run scripts/media): test skipped", path.display());
            None
        }
    }
}

fn have_ffmpeg() -> bool {
    let ok = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    let found = ok("ffmpeg") && ok("ffprobe");
    if !found {
        eprintln!("note: ffmpeg/ffprobe not installed: FFmpeg checks skipped");
    }
    found
}

#[derive(Debug, Default)]
struct Seg {
    start_ms: u64,
    discontinuity: bool,
    duration_ms: u64,
    ts: Vec<u8>,
    streams: Vec<EsInfo>,
    pes: Vec<DemuxedPes>,
}

impl Seg {
    fn of(&self, pid: u16) -> Vec<&DemuxedPes> {
        self.pes.iter().filter(|p| p.pid == pid).collect()
    }
}

fn segment(tags: &[FlvTag], conf: SegmenterConf) -> Vec<Seg> {
    let mut s = Segmenter::new(conf);
    let mut events = Vec::new();
    for t in tags {
        let before = events.len();
        match t.tag_type {
            8 => s.push_audio(t.timestamp, &t.data, &mut events),
            9 => s.push_video(t.timestamp, &t.data, &mut events),
            _ => {}
        }
        let data = events[before..].iter().filter(|e| matches!(e, SegEvent::Data(_))).count();
        assert!(data <= 2, "one Data per message and segment");
    }
    s.finish(&mut events);
    let mut segs: Vec<Seg> = Vec::new();
    for e in events {
        match e {
            SegEvent::Open { start_ms, discontinuity } => segs.push(Seg { start_ms, discontinuity, ..Seg::default() }),
            SegEvent::Data(d) => segs.last_mut().unwrap().ts.extend_from_slice(&d),
            SegEvent::Close { duration_ms } => segs.last_mut().unwrap().duration_ms = duration_ms,
            SegEvent::Unsupported(what) => panic!("real media said: {what}"),
        }
    }
    // One demuxer for all: continuity counters have no gaps across segments either.
    let mut d = Demuxer::new();
    for seg in &mut segs {
        assert_eq!(seg.ts.len() % 188, 0);
        let mut events = d.push(&seg.ts).unwrap();
        events.extend(d.finish().unwrap());
        assert!(matches!(events[..2], [DemuxEvent::Pat { .. }, DemuxEvent::Pmt { .. }]), "PAT, PMT first");
        for e in events {
            match e {
                DemuxEvent::Pmt { streams, .. } => seg.streams = streams,
                DemuxEvent::Pes(p) => seg.pes.push(p),
                _ => {}
            }
        }
        seg.pes.sort_by_key(|p| p.pid);
        for pid in [VIDEO_PID, AUDIO_PID] {
            let dts: Vec<u64> = seg.of(pid).iter().map(|p| p.decode_ts().unwrap()).collect();
            assert!(dts.windows(2).all(|w| w[0] <= w[1]), "DTS of {pid:#x} goes back");
        }
    }
    segs
}

/// The NAL unit types of an Annex B access unit.
fn nal_types(au: &[u8], hevc_stream: bool) -> Vec<u8> {
    hevc::split_annexb(au)
        .iter()
        .map(|n| if hevc_stream { hevc::nal_type(n).unwrap_or(0xFF) } else { n[0] & 0x1F })
        .collect()
}

/// Each segment opens with a keyframe carrying AUD and parameter sets; all frames are there; the
/// durations add up to the stream.
fn check_video(tags: &[FlvTag], segs: &[Seg], hevc_stream: bool) {
    assert!(!segs.is_empty());
    for seg in segs {
        let first = seg.pes.iter().find(|p| p.pid == VIDEO_PID).expect("video in every segment");
        assert!(first.random_access);
        let types = nal_types(&first.data, hevc_stream);
        let want: &[u8] = if hevc_stream { &[35, 32, 33, 34] } else { &[9, 7, 8] };
        assert_eq!(&types[..want.len()], want, "AUD and parameter sets open the segment");
        for p in seg.of(VIDEO_PID) {
            assert_eq!(nal_types(&p.data, hevc_stream)[0], if hevc_stream { 35 } else { 9 }, "AUD first");
        }
    }
    let frame = |t: &FlvTag| match es::parse_video(&t.data) {
        VideoPacket::Frame { keyframe, .. } if t.tag_type == 9 => Some(keyframe),
        _ => None,
    };
    let video: Vec<&FlvTag> = tags.iter().filter(|t| frame(t).is_some()).collect();
    let first_key = video.iter().position(|t| frame(t) == Some(true)).unwrap();
    let muxed: usize = segs.iter().map(|s| s.of(VIDEO_PID).len()).sum();
    assert_eq!(muxed, video.len() - first_key, "every frame from the first keyframe on");
    let start = u64::from(video[first_key].timestamp);
    // The last frame's end: video frames last 40 ms, an audio frame as long as the step before it.
    let audio: Vec<u64> = tags.iter().filter(|t| t.tag_type == 8).map(|t| u64::from(t.timestamp)).collect();
    let audio_end = match audio[..] {
        [.., a, b] => b + (b - a),
        _ => 0,
    };
    let end = (u64::from(video.last().unwrap().timestamp) + 40).max(audio_end);
    let total: u64 = segs.iter().map(|s| s.duration_ms).sum();
    assert!(total.abs_diff(end - start) <= 40, "durations {total} ms, stream {} ms", end - start);
    assert_eq!(segs[0].start_ms, start);
    for w in segs.windows(2) {
        assert_eq!(w[0].start_ms + w[0].duration_ms, w[1].start_ms);
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rtmp-proto-mpegts-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(tool: &str, args: &[&str]) -> (String, String) {
    let o = Command::new(tool).args(args).output().unwrap();
    assert!(o.status.success(), "{tool} {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// FFmpeg reads every segment and their concatenation without a complaint, with the frame counts
/// our demuxer saw.
fn check_with_ffmpeg(name: &str, segs: &[Seg]) {
    if !have_ffmpeg() {
        return;
    }
    let dir = TempDir::new(name);
    let mut all = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let path = dir.0.join(format!("{i}.ts"));
        std::fs::write(&path, &seg.ts).unwrap();
        all.extend_from_slice(&seg.ts);
        let p = path.to_str().unwrap();
        if let Some(keep) = std::env::var_os("MPEGTS_KEEP") {
            std::fs::write(Path::new(&keep).join(format!("{name}-{i}.ts")), &seg.ts).unwrap();
        }
        let (out, err) = run(
            "ffprobe",
            &["-v", "error", "-show_entries", "packet=codec_type,pts_time,dts_time,flags", "-of", "csv", p],
        );
        assert_eq!(err, "", "ffprobe on segment {i}");
        let video = out.lines().filter(|l| l.starts_with("packet,video")).count();
        let audio = out.lines().filter(|l| l.starts_with("packet,audio")).count();
        assert_eq!(video, seg.of(VIDEO_PID).len(), "segment {i}: video packets");
        let first_video = out.lines().find(|l| l.starts_with("packet,video"));
        let key = |l: &str| l.split(',').nth(4).is_some_and(|f| f.starts_with('K'));
        assert!(first_video.is_none_or(key), "segment {i} starts with {first_video:?}");
        if seg.of(AUDIO_PID).is_empty() {
            assert_eq!(audio, 0);
        } else {
            assert!(audio >= seg.of(AUDIO_PID).len(), "segment {i}: audio frames");
        }
        let (_, err) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
        assert_eq!(err, "", "ffmpeg decoding segment {i}");
    }
    // A segment whose PMT differs starts a new program for FFmpeg; the decode must still be clean.
    let path = dir.0.join("all.ts");
    std::fs::write(&path, &all).unwrap();
    let p = path.to_str().unwrap();
    let (_, err) = run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]);
    assert_eq!(err, "", "ffmpeg decoding all segments");
    let (out, _) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            p,
        ],
    );
    // The stream is listed once per program and once on its own: the same count.
    let frames: usize = out.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(frames, segs.iter().map(|s| s.of(VIDEO_PID).len()).sum::<usize>());
}

#[test]
fn h264_aac() {
    let Some(tags) = media("test.flv") else {
        return;
    };
    let segs = segment(&tags, SegmenterConf::default());
    check_video(&tags, &segs, false);
    // 10 s with a keyframe every 2 s: cut at 6 s.
    assert_eq!(segs.iter().map(|s| s.start_ms).collect::<Vec<_>>(), [0, 6000]);
    assert!(segs.iter().all(|s| !s.discontinuity));
    for seg in &segs {
        assert_eq!(seg.streams.iter().map(|s| s.stream_type).collect::<Vec<_>>(), [0x1B, 0x0F]);
    }
    // B-frames: some PTS differ from their DTS.
    assert!(segs[0].of(VIDEO_PID).iter().any(|p| p.dts.is_some()));
    // Every AAC frame made it, each behind an ADTS header.
    let frames = tags.iter().filter(|t| t.tag_type == 8 && t.data.get(1) == Some(&1)).count();
    let adts: usize = segs
        .iter()
        .flat_map(|s| s.of(AUDIO_PID))
        .map(|p| {
            let mut n = 0;
            let mut rest = &p.data[..];
            while rest.len() >= 7 {
                assert_eq!(rest[..2], [0xFF, 0xF1]);
                let len = (usize::from(rest[3] & 3) << 11) | (usize::from(rest[4]) << 3) | usize::from(rest[5] >> 5);
                rest = &rest[len..];
                n += 1;
            }
            assert!(rest.is_empty());
            n
        })
        .sum();
    // The frame at 0 and any before the first keyframe are dropped.
    let before_key = tags.iter().take_while(|t| !(t.tag_type == 9 && t.data[0] == 0x17 && t.data[1] == 1));
    let dropped = before_key.filter(|t| t.tag_type == 8 && t.data.get(1) == Some(&1)).count();
    assert_eq!(adts, frames - dropped);
    check_with_ffmpeg("h264", &segs);
}

#[test]
fn h264_aac_aligned_short_fragments() {
    let Some(tags) = media("test.flv") else {
        return;
    };
    let conf = SegmenterConf { fragment_ms: 3000, aligned: true, ..SegmenterConf::default() };
    let segs = segment(&tags, conf);
    check_video(&tags, &segs, false);
    // Keyframes at 0, 2, 4, 6, 8 s: the first in each 3 s bucket after the start's.
    assert_eq!(segs.iter().map(|s| s.start_ms).collect::<Vec<_>>(), [0, 4000, 6000]);
    check_with_ffmpeg("h264-aligned", &segs);
}

#[test]
fn h264_mp3() {
    let Some(tags) = media("test-mp3.flv") else {
        return;
    };
    let segs = segment(&tags, SegmenterConf::default());
    check_video(&tags, &segs, false);
    // MP3 has no sequence header: the first frame comes after the first keyframe opened the
    // first segment, so the audio joins at the next one.
    assert!(segs[0].of(AUDIO_PID).is_empty());
    assert!(segs[1].discontinuity);
    // 22.05 kHz is MPEG-2 audio.
    assert_eq!(segs[1].streams.iter().map(|s| s.stream_type).collect::<Vec<_>>(), [0x1B, 0x04]);
    check_with_ffmpeg("mp3", &segs);
}

#[test]
fn hevc_enhanced_and_legacy() {
    for name in ["test-hevc-enhanced.flv", "test-hevc-legacy.flv"] {
        let Some(tags) = media(name) else { continue };
        let conf = SegmenterConf { fragment_ms: 1000, ..SegmenterConf::default() };
        let segs = segment(&tags, conf);
        check_video(&tags, &segs, true);
        assert!(segs.len() >= 3);
        assert_eq!(segs[0].streams, [EsInfo { stream_type: 0x24, pid: VIDEO_PID }]);
        check_with_ffmpeg(name, &segs);
    }
}
