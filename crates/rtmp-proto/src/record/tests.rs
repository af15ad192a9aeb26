//! Recorder runs applied to an in-memory disk, every file read back with our FLV and AMF0 parsers.

use super::*;
use crate::amf0;
use crate::flv::{read_all, FlvTag};
use proptest::prelude::*;

fn cfg(audio: bool, video: bool, keyframes: bool) -> RecordConfig {
    RecordConfig {
        audio,
        video,
        keyframes,
        max_size: 0,
        max_frames: 0,
        index_capacity: 1000,
    }
}

fn avc_header() -> Bytes {
    Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff])
}

fn aac_header() -> Bytes {
    Bytes::from_static(&[0xAF, 0, 0x12, 0x10])
}

fn video(key: bool, size: usize) -> Bytes {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.resize(5 + size, 0xAB);
    v.into()
}

fn aac(size: usize) -> Bytes {
    let mut v = vec![0xAF, 1];
    v.resize(2 + size, 0xCD);
    v.into()
}

fn publisher_meta(video: bool) -> Bytes {
    let mut props = vec![
        ("audiocodecid".to_string(), Amf0Value::Number(10.0)),
        ("audiosamplerate".to_string(), Amf0Value::Number(44100.0)),
        ("encoder".to_string(), Amf0Value::string("obs")),
        ("title".to_string(), Amf0Value::string("not copied")),
    ];
    if video {
        props.extend([
            ("width".to_string(), Amf0Value::Number(1280.0)),
            ("height".to_string(), Amf0Value::Number(720.0)),
            ("framerate".to_string(), Amf0Value::Number(30.0)),
            ("videocodecid".to_string(), Amf0Value::Number(7.0)),
        ]);
    }
    let mut out = BytesMut::new();
    amf0::encode(&Amf0Value::string("onMetaData"), &mut out);
    amf0::encode(&Amf0Value::EcmaArray(props), &mut out);
    out.freeze()
}

/// Files as the glue would leave them: Write appends, Patch overwrites, Close finishes.
#[derive(Default, Debug)]
struct Disk {
    files: Vec<Vec<u8>>,
    open: bool,
}

impl Disk {
    fn apply(&mut self, actions: Vec<Action>) {
        for (i, a) in actions.iter().enumerate() {
            match a {
                Action::Open => {
                    assert!(!self.open, "open while a file is open");
                    assert_eq!(i + 1, actions.len(), "Open ends its batch");
                    self.files.push(Vec::new());
                    self.open = true;
                }
                Action::Write(b) => {
                    assert!(self.open, "write with no file");
                    self.files.last_mut().unwrap().extend_from_slice(b);
                }
                Action::Patch { offset, bytes } => {
                    assert!(self.open, "patch with no file");
                    let f = self.files.last_mut().unwrap();
                    let at = *offset as usize;
                    assert!(at + bytes.len() <= f.len(), "patch past the end");
                    f[at..at + bytes.len()].copy_from_slice(bytes);
                }
                Action::Close => {
                    assert!(self.open, "close with no file");
                    self.open = false;
                }
            }
        }
    }
}

fn is_header(t: &FlvTag) -> bool {
    match t.tag_type {
        VIDEO => video_tag_info(&t.data).unwrap().sequence_header,
        AUDIO => audio_tag_info(&t.data).unwrap().sequence_header,
        _ => false,
    }
}

fn is_keyframe(t: &FlvTag) -> bool {
    t.tag_type == VIDEO && !is_header(t) && video_tag_info(&t.data).unwrap().keyframe
}

fn num(v: &Amf0Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Amf0Value::as_f64)
        .unwrap_or_else(|| panic!("no number {key}"))
}

fn numbers(v: &Amf0Value) -> Vec<f64> {
    match v {
        Amf0Value::StrictArray(items) => items.iter().map(|i| i.as_f64().unwrap()).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// What a checked file holds.
#[derive(Debug)]
struct Summary {
    /// Media tags (no script data, no sequence headers).
    frames: Vec<FlvTag>,
    index_len: usize,
}

/// Checks everything a recorded file promises and returns its frames.
fn check_file(file: &[u8], cap: usize) -> Summary {
    let tags = read_all(file).expect("valid FLV");
    let mut offsets = Vec::new();
    let mut at = 13;
    for t in &tags {
        offsets.push(at);
        at += 11 + t.data.len() + 4;
    }
    assert_eq!(at, file.len());
    let has_audio = tags.iter().any(|t| t.tag_type == AUDIO);
    let has_video = tags.iter().any(|t| t.tag_type == VIDEO);
    assert_eq!(
        file[4],
        (u8::from(has_audio) << 2) | u8::from(has_video),
        "header flags"
    );

    // onMetaData, the sequence headers, then the first frame: a keyframe when there is video.
    assert_eq!(tags[0].tag_type, AMF0_DATA);
    let values = amf0::decode_all(&tags[0].data).expect("onMetaData decodes");
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    let m = &values[1];
    let first = 1 + tags[1..].iter().take_while(|t| is_header(t)).count();
    assert!(first < tags.len(), "a file has a frame");
    let frames: Vec<FlvTag> = tags[1..]
        .iter()
        .filter(|t| !is_header(t))
        .cloned()
        .collect();
    if let Some(v) = frames.iter().position(|t| t.tag_type == VIDEO) {
        assert!(is_keyframe(&frames[v]), "video starts at a keyframe");
    }

    // Timestamps from 0, never backwards.
    assert_eq!(tags[0].timestamp, 0);
    assert_eq!(tags[1].timestamp, 0);
    for w in tags[1..].windows(2) {
        assert!(
            w[0].timestamp <= w[1].timestamp,
            "timestamps go back: {} then {}",
            w[0].timestamp,
            w[1].timestamp
        );
    }
    let last_ts = tags.last().unwrap().timestamp;
    assert_eq!(num(m, "duration"), f64::from(last_ts) / 1000.0);
    assert_eq!(num(m, "lasttimestamp"), f64::from(last_ts) / 1000.0);
    assert_eq!(num(m, "filesize"), file.len() as f64);
    assert_eq!(
        m.get("hasVideo").and_then(Amf0Value::as_bool),
        Some(has_video)
    );
    assert_eq!(
        m.get("hasAudio").and_then(Amf0Value::as_bool),
        Some(has_audio)
    );

    // The keyframe index points at keyframe tags, in order, covering the file.
    let kf = m.get("keyframes").unwrap();
    let times = numbers(kf.get("times").unwrap());
    let positions = numbers(kf.get("filepositions").unwrap());
    assert_eq!(times.len(), positions.len());
    assert!(times.len() <= cap);
    let mut indexed = Vec::new();
    for (t, p) in times.iter().zip(&positions) {
        let i = offsets
            .iter()
            .position(|&o| o as f64 == *p)
            .expect("fileposition at a tag");
        assert!(is_keyframe(&tags[i]), "fileposition at a keyframe");
        assert_eq!(*t, f64::from(tags[i].timestamp) / 1000.0);
        indexed.push(i);
    }
    assert!(indexed.windows(2).all(|w| w[0] < w[1]));
    let keyframes: Vec<usize> = (0..tags.len()).filter(|&i| is_keyframe(&tags[i])).collect();
    assert_eq!(
        m.get("hasKeyframes").and_then(Amf0Value::as_bool),
        Some(!indexed.is_empty())
    );
    if keyframes.len() <= cap {
        assert_eq!(indexed, keyframes);
    } else if cap >= 2 {
        assert_eq!(indexed.first(), keyframes.first());
        assert_eq!(indexed.last(), keyframes.last());
    }
    Summary {
        frames,
        index_len: indexed.len(),
    }
}

#[test]
fn a_file_plays_alone() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    r.set_meta(publisher_meta(true));
    r.set_video_header(avc_header());
    r.set_audio_header(aac_header());
    // Before the first keyframe: nothing.
    d.apply(r.push(AUDIO, 950, &aac(10)));
    d.apply(r.push(VIDEO, 960, &video(false, 100)));
    assert!(d.files.is_empty() && !r.is_open());
    d.apply(r.push(VIDEO, 1000, &video(true, 500)));
    assert!(r.is_open());
    for i in 1..60u32 {
        d.apply(r.push(AUDIO, 1000 + i * 23, &aac(10)));
        d.apply(r.push(VIDEO, 1000 + i * 33, &video(i % 30 == 0, 100)));
    }
    d.apply(r.stop());
    assert!(!r.is_open() && !d.open);
    assert_eq!(d.files.len(), 1);
    let s = check_file(&d.files[0], 1000);
    assert_eq!(s.frames.len(), 1 + 59 * 2);
    assert_eq!(s.index_len, 2);
    let tags = read_all(&d.files[0]).unwrap();
    assert_eq!(tags[1].data, aac_header());
    assert_eq!(tags[2].data, avc_header());
    assert!(is_keyframe(&tags[3]));
    let m = &amf0::decode_all(&tags[0].data).unwrap()[1];
    assert_eq!(num(m, "width"), 1280.0);
    assert_eq!(num(m, "videocodecid"), 7.0);
    assert_eq!(m.get("encoder").and_then(Amf0Value::as_str), Some("obs"));
    assert_eq!(m.get("title"), None);
    assert_eq!(tags.last().unwrap().timestamp, 59 * 33);
    // After stop, nothing until start; then the next keyframe opens a file.
    assert!(r.push(VIDEO, 5000, &video(true, 10)).is_empty());
    r.start();
    d.apply(r.push(VIDEO, 5033, &video(false, 10)));
    assert_eq!(d.files.len(), 1);
    d.apply(r.push(VIDEO, 5066, &video(true, 10)));
    d.apply(r.push(VIDEO, 5099, &video(false, 10)));
    d.apply(r.stop());
    assert_eq!(d.files.len(), 2);
    assert_eq!(check_file(&d.files[1], 1000).frames.len(), 2);
}

#[test]
fn headers_pushed_in_band_and_changed_midway() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    // AAC before its header and AVC before its header are dropped.
    d.apply(r.push(AUDIO, 0, &aac(5)));
    d.apply(r.push(VIDEO, 0, &video(true, 5)));
    assert!(d.files.is_empty());
    d.apply(r.push(VIDEO, 0, &avc_header()));
    d.apply(r.push(AUDIO, 0, &aac_header()));
    d.apply(r.push(VIDEO, 40, &video(true, 5)));
    d.apply(r.push(AUDIO, 45, &aac(5)));
    let new_header = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x4d, 0, 0x28]);
    d.apply(r.push(VIDEO, 80, &new_header));
    d.apply(r.push(VIDEO, 80, &video(true, 5)));
    d.apply(r.stop());
    check_file(&d.files[0], 10);
    let tags = read_all(&d.files[0]).unwrap();
    let headers: Vec<&FlvTag> = tags
        .iter()
        .filter(|t| t.tag_type == VIDEO && is_header(t))
        .collect();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[1].data, new_header);
    assert_eq!(headers[1].timestamp, 40);
}

/// A stream of `n` video frames (keyframe every `gop`) with audio between, 33 ms apart.
fn av_stream(r: &mut FlvRecorder, d: &mut Disk, n: u32, gop: u32, size: usize) {
    r.set_video_header(avc_header());
    r.set_audio_header(aac_header());
    for i in 0..n {
        d.apply(r.push(VIDEO, i * 33, &video(i % gop == 0, size)));
        d.apply(r.push(AUDIO, i * 33 + 10, &aac(20)));
    }
    d.apply(r.stop());
}

#[test]
fn rotation_by_size() {
    let mut r = FlvRecorder::new(RecordConfig {
        max_size: 4000,
        index_capacity: 8,
        ..cfg(true, true, false)
    });
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 200, 10, 100);
    assert!(d.files.len() > 3);
    let last = d.files.len() - 1;
    for (i, f) in d.files.iter().enumerate() {
        let s = check_file(f, 8);
        if i < last {
            // Cut at the first keyframe past the limit: over it by less than a GOP (10 video
            // frames of 115 bytes and 10 audio frames of 37).
            assert!(f.len() >= 4000 && f.len() < 4000 + 1600, "file {i}: {} bytes", f.len());
        }
        assert!(!s.frames.is_empty());
    }
    // Nothing is lost between the pieces: every frame of the stream is in one of them.
    let frames: usize = d.files.iter().map(|f| check_file(f, 8).frames.len()).sum();
    assert_eq!(frames, 400);
}

#[test]
fn rotation_by_frames() {
    let mut r = FlvRecorder::new(RecordConfig {
        max_frames: 15,
        ..cfg(true, true, false)
    });
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 100, 10, 50);
    // A GOP is 20 frames (10 video, 10 audio): the 15th frame is in the first GOP, so each file
    // ends at the next keyframe, one GOP long, and nothing is lost.
    assert_eq!(d.files.len(), 10);
    for f in &d.files {
        assert_eq!(check_file(f, 1000).frames.len(), 20);
    }
}

#[test]
fn audio_only_recorder_rotates_on_audio() {
    let mut r = FlvRecorder::new(RecordConfig {
        max_frames: 5,
        ..cfg(true, false, false)
    });
    let mut d = Disk::default();
    r.set_meta(publisher_meta(true));
    av_stream(&mut r, &mut d, 23, 10, 50);
    assert_eq!(d.files.len(), 5);
    let total: usize = d
        .files
        .iter()
        .map(|f| check_file(f, 1000).frames.len())
        .sum();
    assert_eq!(total, 23, "no audio frame lost between files");
    for f in &d.files {
        assert_eq!(f[4], 0x04);
        let m = &amf0::decode_all(&read_all(f).unwrap()[0].data).unwrap()[1];
        assert_eq!(
            m.get("width"),
            None,
            "no picture properties in a sound file"
        );
        assert_eq!(num(m, "audiosamplerate"), 44100.0);
    }
}

#[test]
fn keyframes_only() {
    let mut r = FlvRecorder::new(cfg(false, false, true));
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 50, 10, 50);
    assert_eq!(d.files.len(), 1);
    let s = check_file(&d.files[0], 1000);
    assert_eq!(s.frames.len(), 5);
    assert!(s.frames.iter().all(is_keyframe));
    assert_eq!(d.files[0][4], 0x01);
    assert_eq!(s.index_len, 5);
}

#[test]
fn audio_and_keyframes() {
    let mut r = FlvRecorder::new(cfg(true, false, true));
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 20, 10, 50);
    let s = check_file(&d.files[0], 1000);
    assert_eq!(s.frames.iter().filter(|t| t.tag_type == VIDEO).count(), 2);
    assert_eq!(s.frames.iter().filter(|t| t.tag_type == AUDIO).count(), 20);
}

#[test]
fn an_audio_only_stream_is_recorded_by_a_video_recorder() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    r.set_meta(publisher_meta(false));
    r.set_audio_header(aac_header());
    for i in 0..10 {
        d.apply(r.push(AUDIO, 100 + i * 23, &aac(10)));
    }
    d.apply(r.stop());
    assert_eq!(check_file(&d.files[0], 10).frames.len(), 10);
    assert_eq!(d.files[0][4], 0x04);
    // A stream announcing video waits for its keyframe.
    let mut r = FlvRecorder::new(cfg(true, true, false));
    r.set_meta(publisher_meta(true));
    r.set_audio_header(aac_header());
    assert!(r.push(AUDIO, 0, &aac(10)).is_empty());
}

#[test]
fn interval_rotation_waits_for_a_keyframe_and_loses_nothing() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    r.set_video_header(avc_header());
    r.set_audio_header(aac_header());
    for i in 0..100u32 {
        if i == 15 || i == 52 {
            r.rotate();
        }
        d.apply(r.push(VIDEO, 1_000_000 + i * 40, &video(i % 20 == 0, 30)));
        d.apply(r.push(AUDIO, 1_000_000 + i * 40 + 5, &aac(10)));
    }
    d.apply(r.stop());
    assert_eq!(d.files.len(), 3);
    let lens: Vec<usize> = d
        .files
        .iter()
        .map(|f| check_file(f, 1000).frames.len())
        .collect();
    assert_eq!(lens, vec![20 * 2, 40 * 2, 40 * 2]);
}

#[test]
fn failed_open_writes_nothing_until_start() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    r.set_video_header(avc_header());
    assert_eq!(r.push(VIDEO, 0, &video(true, 5)), vec![Action::Open]);
    r.failed();
    assert!(!r.is_open());
    assert!(r.push(VIDEO, 33, &video(false, 5)).is_empty());
    assert!(r.push(VIDEO, 66, &video(true, 5)).is_empty());
    assert!(r.stop().is_empty());
    r.start();
    assert_eq!(r.push(VIDEO, 99, &video(true, 5)), vec![Action::Open]);
    // Stopped right after the open: the file still gets its frame and closes valid.
    let mut d = Disk {
        files: vec![Vec::new()],
        open: true,
    };
    d.apply(r.stop());
    assert_eq!(check_file(&d.files[0], 10).frames.len(), 1);
}

#[test]
fn timestamps_going_back_are_clamped() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    r.set_video_header(avc_header());
    r.set_audio_header(aac_header());
    d.apply(r.push(VIDEO, 5000, &video(true, 5)));
    d.apply(r.push(AUDIO, 4990, &aac(5))); // jitter before the first frame
    d.apply(r.push(VIDEO, 5033, &video(false, 5)));
    d.apply(r.push(AUDIO, 5013, &aac(5)));
    // The publisher's clock restarts.
    d.apply(r.push(VIDEO, 10, &video(false, 5)));
    d.apply(r.push(AUDIO, 12, &aac(5)));
    d.apply(r.push(VIDEO, 43, &video(false, 5)));
    d.apply(r.push(VIDEO, u32::MAX - 5, &video(false, 5)));
    d.apply(r.stop());
    let s = check_file(&d.files[0], 10);
    let ts: Vec<u32> = s.frames.iter().map(|t| t.timestamp).collect();
    assert_eq!(ts, vec![0, 0, 33, 33, 33, 35, 66, 66]);
}

#[test]
fn a_thinned_index_covers_the_file() {
    let mut r = FlvRecorder::new(RecordConfig {
        index_capacity: 5,
        ..cfg(false, true, false)
    });
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 300, 3, 10);
    let s = check_file(&d.files[0], 5);
    assert!(s.index_len >= 3);
    let tags = read_all(&d.files[0]).unwrap();
    let m = &amf0::decode_all(&tags[0].data).unwrap()[1];
    let times = numbers(m.get("keyframes").unwrap().get("times").unwrap());
    // Evenly thinned: the steps between kept entries (but the last) are equal.
    let steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps[..steps.len() - 1]
            .windows(2)
            .all(|w| (w[0] - w[1]).abs() < 1e-9),
        "{times:?}"
    );
    // Zero capacity: no index at all, the file is still whole.
    let mut r = FlvRecorder::new(RecordConfig {
        index_capacity: 0,
        ..cfg(false, true, false)
    });
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 30, 3, 10);
    assert_eq!(check_file(&d.files[0], 0).index_len, 0);
}

#[test]
fn append_continues_after_the_tail() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    av_stream(&mut r, &mut d, 30, 10, 20);
    let mut file = d.files.pop().unwrap();
    let last = read_all(&file).unwrap().last().unwrap().timestamp;
    let tail = &file[file.len().saturating_sub(200)..];
    assert_eq!(tail_timestamp(tail), Some(last));

    // A new session: the glue opens the same file in append mode.
    let mut r = FlvRecorder::new(cfg(true, true, false));
    r.set_video_header(avc_header());
    r.set_audio_header(aac_header());
    assert_eq!(r.push(VIDEO, 70_000, &video(true, 20)), vec![Action::Open]);
    r.take_over_meta(&file);
    r.open_append(file.len() as u64, last);
    let mut d = Disk {
        files: vec![std::mem::take(&mut file)],
        open: true,
    };
    for i in 1..20u32 {
        d.apply(r.push(AUDIO, 70_000 + i * 33 - 5, &aac(20)));
        d.apply(r.push(VIDEO, 70_000 + i * 33, &video(i % 10 == 0, 20)));
    }
    d.apply(r.stop());
    let tags = read_all(&d.files[0]).unwrap();
    assert_eq!(
        tags.iter().filter(|t| t.tag_type == AMF0_DATA).count(),
        1,
        "no second onMetaData"
    );
    assert!(tags[1..]
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp));
    let first_new = tags.iter().rposition(is_header).unwrap() + 1;
    assert_eq!(tags[first_new].timestamp, last);
    assert!(is_keyframe(&tags[first_new]));
    assert_eq!(tags.last().unwrap().timestamp, last + 19 * 33);
    assert_eq!(d.files[0][4], 0x05);
    // The onMetaData we reserved in the first session now describes the whole file, and its
    // index holds the keyframes of both sessions (check_file checks every entry).
    let s = check_file(&d.files[0], 1000);
    assert_eq!(s.index_len, 3 + 2);
    let meta = amf0::decode_all(&tags[0].data).unwrap();
    let props = meta[1].properties().unwrap();
    let num = |k: &str| props.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.as_f64()).unwrap();
    assert_eq!(num("filesize") as usize, d.files[0].len());
    assert!((num("duration") - f64::from(last + 19 * 33) / 1000.0).abs() < 0.001);

    // An empty file in append mode is a new file.
    let mut r = FlvRecorder::new(cfg(true, true, false));
    r.set_video_header(avc_header());
    let mut d = Disk::default();
    d.apply(r.push(VIDEO, 500, &video(true, 20)));
    r.open_append(0, 0);
    d.apply(r.push(VIDEO, 533, &video(false, 20)));
    d.apply(r.stop());
    assert_eq!(check_file(&d.files[0], 1000).frames.len(), 2);
}

#[test]
fn tail_timestamp_rejects_a_corrupt_tail() {
    let mut b = BytesMut::new();
    flv::write_header(&mut b, true, true);
    flv::write_tag(&mut b, VIDEO, 0x0102_0304, &[0x17, 1, 2, 3]);
    assert_eq!(tail_timestamp(&b), Some(0x0102_0304));
    assert_eq!(
        tail_timestamp(&b[b.len() - 10..]),
        None,
        "too short for the tag"
    );
    assert_eq!(tail_timestamp(&b[..b.len() - 1]), None);
    assert_eq!(tail_timestamp(&[0, 0, 0, 0]), None);
    assert_eq!(tail_timestamp(&[]), None);
    let mut bad = b.to_vec();
    let n = bad.len();
    bad[n - 1] += 1;
    assert_eq!(tail_timestamp(&bad), None);
}

#[test]
fn oversized_payloads_are_skipped() {
    let mut r = FlvRecorder::new(cfg(true, true, false));
    let mut d = Disk::default();
    r.set_video_header(avc_header());
    assert!(r.push(VIDEO, 0, &video(true, MAX_TAG)).is_empty());
    d.apply(r.push(VIDEO, 0, &video(true, 10)));
    d.apply(r.push(VIDEO, 33, &video(false, MAX_TAG)));
    d.apply(r.push(VIDEO, 66, &video(false, 10)));
    d.apply(r.stop());
    assert_eq!(check_file(&d.files[0], 10).frames.len(), 2);
}

#[test]
fn the_reserved_metadata_fits_a_large_index() {
    let copied = meta::copied_props(&meta::publisher_props(&publisher_meta(true)), true, true);
    for cap in [0, 1, 2, 7, 5000, MAX_INDEX] {
        let len = meta::reserved_len(&copied, cap);
        for k in [0, cap / 2, cap] {
            let idx: Vec<(u32, u64)> = (0..k as u32)
                .map(|i| (i * 1000, u64::from(i) * 10_000))
                .collect();
            let facts = Facts {
                last_ts: 99,
                filesize: 1 << 40,
                has_audio: true,
                has_video: true,
                last_keyframe: None,
            };
            let p = meta::payload(&copied, &facts, &idx, len).expect("fits");
            assert_eq!(p.len(), len);
            let v = amf0::decode_all(&p).unwrap();
            assert_eq!(
                numbers(v[1].get("keyframes").unwrap().get("times").unwrap()).len(),
                k
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Video { key: bool, size: usize, dt: i32 },
    Audio { size: usize, dt: i32 },
    VideoHeader,
    Meta(bool),
    Rotate,
    Stop,
    Start,
    FailNextOpen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (any::<bool>(), 0..400usize, -50..80i32).prop_map(|(key, size, dt)| Op::Video { key, size, dt }),
        30 => (0..100usize, -50..80i32).prop_map(|(size, dt)| Op::Audio { size, dt }),
        1 => Just(Op::VideoHeader),
        1 => any::<bool>().prop_map(Op::Meta),
        2 => Just(Op::Rotate),
        1 => Just(Op::Stop),
        2 => Just(Op::Start),
        1 => Just(Op::FailNextOpen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_file_is_whole(
        mode in 1u8..8,
        max_size in prop_oneof![Just(0u64), 500..20_000u64],
        max_frames in prop_oneof![Just(0u64), 1..40u64],
        cap in 0usize..6,
        start_ts in any::<u32>(),
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let cfg = RecordConfig {
            audio: mode & 1 != 0, video: mode & 2 != 0, keyframes: mode & 4 != 0,
            max_size, max_frames, index_capacity: cap,
        };
        let mut r = FlvRecorder::new(cfg);
        let mut d = Disk::default();
        r.set_audio_header(aac_header());
        let mut ts = start_ts;
        let mut fail_next = false;
        let mut failed_files = Vec::new();
        for op in ops {
            let actions = match op {
                Op::Video { key, size, dt } => {
                    ts = ts.wrapping_add_signed(dt);
                    r.push(VIDEO, ts, &video(key, size))
                }
                Op::Audio { size, dt } => {
                    ts = ts.wrapping_add_signed(dt);
                    r.push(AUDIO, ts, &aac(size))
                }
                Op::VideoHeader => {
                    r.set_video_header(avc_header());
                    Vec::new()
                }
                Op::Meta(v) => {
                    r.set_meta(publisher_meta(v));
                    Vec::new()
                }
                Op::Rotate => {
                    r.rotate();
                    Vec::new()
                }
                Op::Stop => r.stop(),
                Op::Start => {
                    r.start();
                    Vec::new()
                }
                Op::FailNextOpen => {
                    fail_next = true;
                    Vec::new()
                }
            };
            let opens = actions.last() == Some(&Action::Open);
            d.apply(actions);
            if opens && fail_next {
                fail_next = false;
                r.failed();
                d.open = false;
                failed_files.push(d.files.len() - 1);
            }
            prop_assert_eq!(r.is_open(), d.open);
        }
        d.apply(r.stop());
        prop_assert!(!d.open);
        for (i, f) in d.files.iter().enumerate() {
            if failed_files.contains(&i) {
                prop_assert!(f.is_empty());
                continue;
            }
            let s = check_file(f, cap);
            let _ = (max_frames, max_size);
            if !cfg.audio {
                prop_assert!(s.frames.iter().all(|t| t.tag_type == VIDEO));
            }
            if !cfg.video {
                prop_assert!(s.frames.iter().all(|t| t.tag_type == AUDIO || is_keyframe(t)));
            }
        }
    }

    #[test]
    fn tail_timestamp_never_panics(b in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = tail_timestamp(&b);
    }
}
