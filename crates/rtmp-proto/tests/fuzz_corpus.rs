//! Replays the fuzz corpus: every file under `tests/fuzz/<target>/` (seeds from real sessions and
//! the inputs of bugs fuzzing found) goes through the same checks as the cargo-fuzz target of that
//! name (`fuzz/src/checks.rs`, included here). Fuzzing itself: `scripts/fuzz`.

#[path = "../../../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::{Path, PathBuf};
use std::time::Instant;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS.iter().find(|(n, _)| *n == target).expect("known target");
    let dir = corpus_dir(target);
    let inputs = files(&dir);
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    let start = Instant::now();
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails its check", path.display());
    }
    eprintln!("{target}: {} inputs in {:?}", inputs.len(), start.elapsed());
}

#[test]
fn every_target_has_a_corpus_directory() {
    let names: Vec<&str> = checks::TARGETS.iter().map(|(n, _)| *n).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name.as_str()), "tests/fuzz/{name} is no fuzz target");
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { replay(stringify!($name)); })*
    };
}

replay_tests!(handshake_server, handshake_client, chunk, amf0, amf3, command, flv, codec, session, segmenter, http, record, vod_flv, vod_mp4, cmaf, llhls);

/// Sanity for the shared helpers the targets use to cut their input.
#[test]
fn pieces_cover_the_input() {
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    for sel in 0..=255u8 {
        let p = checks::pieces(sel, &data);
        assert_eq!(p.concat(), data);
        assert!(p.iter().all(|x| !x.is_empty()));
    }
}

// -------------------------------------------------------------------------------------------------
// Seed corpus generation (run by hand, see `scripts/fuzz seeds`): a client and a server session
// talking in memory (publish and play of the test media), plus captures of real clients when
// FUZZ_CAPTURES names a directory of `*.c2s` files (raw client-to-server bytes of FFmpeg, rtmpdump).

mod seeds {
    use super::checks::{self, Peer};
    use bytes::BytesMut;
    use rtmp_proto::caps;
    use rtmp_proto::command::{self, Command};
    use rtmp_proto::flv::{self, FlvTag};
    use rtmp_proto::message::{csid, msg_type, Control, RawMessage, UserControl};
    use rtmp_proto::session::{ClientSession, ServerSession, SessionConfig, SessionEvent};
    use std::path::{Path, PathBuf};

    const HS: usize = 1 + 2 * 1536;

    pub struct Out {
        root: PathBuf,
        pub commands: Vec<Vec<u8>>,
        pub data: Vec<Vec<u8>>,
        pub video: Vec<Vec<u8>>,
        pub audio: Vec<Vec<u8>>,
    }

    impl Out {
        pub fn new(root: PathBuf) -> Self {
            Out { root, commands: Vec::new(), data: Vec::new(), video: Vec::new(), audio: Vec::new() }
        }

        pub fn write(&self, target: &str, name: &str, sel: Option<u8>, bytes: &[u8]) {
            let dir = self.root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            let mut v = Vec::with_capacity(bytes.len() + 1);
            v.extend(sel);
            v.extend_from_slice(bytes);
            std::fs::write(dir.join(format!("seed-{name}")), v).unwrap();
        }

        /// Collects the payloads a server session decodes from a client's bytes.
        pub fn harvest(&mut self, c2s: &[u8]) {
            let mut s = ServerSession::new(SessionConfig::default());
            let mut input = BytesMut::from(c2s);
            let _ = s.feed(&mut input);
            while let Some(e) = s.poll_event() {
                if let SessionEvent::Media(m) = e {
                    match m.msg_type {
                        msg_type::VIDEO => self.video.push(m.payload.to_vec()),
                        msg_type::AUDIO => self.audio.push(m.payload.to_vec()),
                        _ => self.data.push(m.payload.to_vec()),
                    }
                }
            }
            // Commands again, raw: decode the chunk stream by hand.
            let mut dec = rtmp_proto::chunk::ChunkDecoder::new(1 << 20);
            let mut input = BytesMut::from(c2s.get(HS..).unwrap_or_default());
            while let Ok(Some(m)) = dec.decode(&mut input) {
                if m.msg_type == msg_type::SET_CHUNK_SIZE {
                    if let Ok(Control::SetChunkSize(n)) = Control::decode(m.msg_type, &m.payload) {
                        let _ = dec.set_chunk_size(n);
                    }
                }
                if matches!(m.msg_type, msg_type::AMF0_COMMAND | msg_type::AMF3_COMMAND) {
                    self.commands.push(m.payload.to_vec());
                }
            }
        }
    }

    fn tags(path: &Path, n: usize) -> Vec<FlvTag> {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/media)", path.display()));
        let mut r = flv::FlvReader::new();
        r.extend(&data);
        std::iter::from_fn(|| r.next_tag().ok().flatten()).take(n).collect()
    }

    /// Runs a client against a server in memory; returns (client to server, server to client).
    pub fn simulate(play: bool, digest: bool, media: &[FlvTag]) -> (Vec<u8>, Vec<u8>) {
        let cfg = SessionConfig::default();
        let mut c =
            if digest { ClientSession::new(cfg.clone()) } else { ClientSession::with_plain_handshake(cfg.clone()) };
        let mut s = ServerSession::new(cfg);
        let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
        let mut pump = |c: &mut ClientSession, s: &mut ServerSession| {
            for _ in 0..50 {
                let mut a = c.output().split();
                let mut b = s.output().split();
                if a.is_empty() && b.is_empty() {
                    return;
                }
                c2s.extend_from_slice(&a);
                s2c.extend_from_slice(&b);
                s.feed(&mut a).unwrap();
                while let Some(e) = s.poll_event() {
                    if let SessionEvent::Command { stream_id, command, .. } = &e {
                        s.answer(*stream_id, command);
                    }
                }
                c.feed(&mut b).unwrap();
                while c.poll_event().is_some() {}
            }
        };
        c.start();
        pump(&mut c, &mut s);
        let props = caps::client_props(&["hvc1", "av01"]);
        c.send_command(0, command::connect_with(1.0, "live", "rtmp://127.0.0.1:1935/live", props));
        pump(&mut c, &mut s);
        c.send_control(&Control::WindowAckSize(2_500_000));
        c.send_command(
            0,
            command::encode_command(
                "releaseStream",
                2.0,
                &[rtmp_proto::amf0::Amf0Value::Null, rtmp_proto::amf0::Amf0Value::string("x")],
            ),
        );
        c.send_command(0, command::create_stream(3.0));
        pump(&mut c, &mut s);
        if play {
            c.send_command(1, command::play(4.0, "x?token=1", -2.0));
            c.send_control(&Control::UserControl(UserControl::SetBufferLength { stream_id: 1, ms: 3000 }));
            pump(&mut c, &mut s);
            for t in media {
                let cs = if t.tag_type == msg_type::AUDIO { csid::AUDIO } else { csid::VIDEO };
                s.send_message(cs, &t.clone().into_message(1));
            }
            s.ping(1234);
            pump(&mut c, &mut s);
            c.send_command(
                1,
                command::encode_command(
                    "pause",
                    5.0,
                    &[
                        rtmp_proto::amf0::Amf0Value::Null,
                        rtmp_proto::amf0::Amf0Value::Boolean(true),
                        rtmp_proto::amf0::Amf0Value::Number(400.0),
                    ],
                ),
            );
        } else {
            c.send_command(1, command::publish(4.0, "x?key=v", "live"));
            c.send_control(&Control::SetChunkSize(4096));
            pump(&mut c, &mut s);
            for t in media {
                let cs = match t.tag_type {
                    msg_type::AUDIO => csid::AUDIO,
                    msg_type::VIDEO => csid::VIDEO,
                    _ => csid::DATA,
                };
                let mut m = t.clone().into_message(1);
                if m.msg_type == msg_type::AMF0_DATA {
                    let mut p = b"\x02\x00\x0d@setDataFrame".to_vec();
                    p.extend_from_slice(&m.payload);
                    m = RawMessage::new(m.msg_type, 1, m.timestamp, p);
                }
                c.send_message(cs, &m);
            }
            pump(&mut c, &mut s);
            c.send_command(
                0,
                command::encode_command(
                    "FCUnpublish",
                    6.0,
                    &[rtmp_proto::amf0::Amf0Value::Null, rtmp_proto::amf0::Amf0Value::string("x")],
                ),
            );
        }
        c.send_command(0, command::delete_stream(7.0, 1));
        pump(&mut c, &mut s);
        (c2s, s2c)
    }

    pub fn flv_tags(path: &Path, n: usize) -> Vec<FlvTag> {
        tags(path, n)
    }

    pub fn is_command(c: &[u8]) -> bool {
        matches!(command::decode_command(msg_type::AMF0_COMMAND, c), Ok(Command::Connect { .. }))
    }

    pub fn check_all(out: &Out) {
        for (name, check) in checks::TARGETS {
            for f in super::files(&out.root.join(name)) {
                check(&std::fs::read(f).unwrap());
            }
        }
    }
}

/// Segmenter seeds: the head of each test file as audio/video messages, one near the 2^32 wrap,
/// one with a publisher restart (timestamps back to 0) and a finish in between.
fn segmenter_seeds(out: &seeds::Out, media: &Path) {
    let messages = |tags: &[rtmp_proto::flv::FlvTag], offset: u32| -> Vec<(bool, u32, Vec<u8>)> {
        let media = tags.iter().filter(|t| t.tag_type == 8 || t.tag_type == 9);
        media.map(|t| (t.tag_type == 9, t.timestamp.wrapping_add(offset), t.data.to_vec())).collect()
    };
    let input = |sel: u8, m: &[(bool, u32, Vec<u8>)], finish: bool| {
        let m: Vec<(bool, u32, &[u8])> = m.iter().map(|(v, t, b)| (*v, *t, &b[..])).collect();
        checks::segmenter_input(sel, &m, finish)
    };
    // 300 ms fragments, forced at 300 ms: several cuts in the first second.
    let avc = seeds::flv_tags(&media.join("test.flv"), 70);
    out.write("segmenter", "avc-aac", None, &input(0x00, &messages(&avc, 0), true));
    // HEVC over Enhanced RTMP across the 32-bit wrap, 1 s aligned fragments.
    let hevc = seeds::flv_tags(&media.join("test-hevc-enhanced.flv"), 40);
    out.write("segmenter", "hevc-wrap", None, &input(0x11, &messages(&hevc, u32::MAX - 700), false));
    // MP3 with a small audio buffer; the publisher leaves and comes back from 0.
    let mp3 = seeds::flv_tags(&media.join("test-mp3.flv"), 40);
    let mut m = messages(&mp3, 5000);
    m.truncate(25);
    let first = input(0x80, &m, true);
    let again = input(0x80, &messages(&mp3, 0), false);
    out.write("segmenter", "mp3-restart", None, &[&first[..], &again[1..]].concat());
}

#[test]
#[ignore = "writes tests/fuzz/segmenter/seed-*: cargo test -p rtmp-proto --test fuzz_corpus -- --ignored segmenter"]
fn write_segmenter_seed_corpus() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = seeds::Out::new(corpus_dir(""));
    segmenter_seeds(&out, &crate_dir.join("../../target/media"));
    for f in files(&corpus_dir("segmenter")) {
        checks::segmenter(&std::fs::read(f).unwrap());
    }
}

/// The in-memory sessions, the test media and the codec fixtures as seeds; `FUZZ_CAPTURES` adds
/// recorded client streams. Overwrites `seed-*` files only (regression inputs stay).
#[test]
#[ignore = "writes tests/fuzz/*/seed-*: cargo test -p rtmp-proto --test fuzz_corpus -- --ignored"]
fn write_seed_corpus() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let media = crate_dir.join("../../target/media");
    let fixtures = crate_dir.join("tests/data");
    let mut out = seeds::Out::new(corpus_dir(""));
    const HS: usize = 1 + 2 * 1536;

    let avc = seeds::flv_tags(&media.join("test.flv"), 40);
    let hevc = seeds::flv_tags(&media.join("test-hevc-enhanced.flv"), 12);
    let hevc_legacy = seeds::flv_tags(&media.join("test-hevc-legacy.flv"), 6);
    let mp3 = seeds::flv_tags(&media.join("test-mp3.flv"), 12);
    let mut streams = Vec::new();
    for (name, play, digest, tags) in [
        ("publish-avc", false, true, &avc[..]),
        ("publish-hevc", false, false, &hevc),
        ("publish-mp3", false, true, &mp3),
        ("play-avc", true, true, &avc[..12]),
        ("play-hevc-legacy", true, false, &hevc_legacy),
    ] {
        let (c2s, s2c) = seeds::simulate(play, digest, tags);
        out.harvest(&c2s);
        out.harvest(&s2c[..0]);
        out.write("session", name, Some(0), &c2s);
        out.write("session", &format!("{name}-chunks"), Some(0x80 | 0x03), &c2s[HS..]);
        out.write("chunk", name, Some(3), &[&[0xFF][..], &c2s[HS..]].concat());
        out.write("handshake_server", name, Some(0), &c2s[..(HS + 400).min(c2s.len())]);
        out.write("handshake_client", name, Some(if digest { 0x80 } else { 0 }), &s2c[..(HS + 600).min(s2c.len())]);
        streams.push(s2c);
    }
    // What the server sent, as seen by a client: control, _result, onStatus, media.
    for s2c in &streams {
        let mut s = bytes::BytesMut::from(&s2c[HS..]);
        let mut dec = rtmp_proto::chunk::ChunkDecoder::new(1 << 20);
        while let Ok(Some(m)) = dec.decode(&mut s) {
            if m.msg_type == 1 {
                if let Ok(rtmp_proto::message::Control::SetChunkSize(n)) =
                    rtmp_proto::message::Control::decode(1, &m.payload)
                {
                    let _ = dec.set_chunk_size(n);
                }
            }
            if m.msg_type == 20 {
                out.commands.push(m.payload.to_vec());
            }
        }
    }
    // Recorded real clients.
    if let Ok(dir) = std::env::var("FUZZ_CAPTURES") {
        for f in files(Path::new(&dir)) {
            let name = f.file_stem().unwrap().to_string_lossy().to_string();
            if f.extension().is_some_and(|e| e == "c2s") {
                let c2s = std::fs::read(&f).unwrap();
                let c2s = &c2s[..c2s.len().min(48 * 1024)];
                out.harvest(c2s);
                out.write("session", &name, Some(0), c2s);
                out.write("session", &format!("{name}-split"), Some(0x02), c2s);
                out.write("handshake_server", &name, Some(0x01), &c2s[..(HS + 400).min(c2s.len())]);
                if c2s.len() > HS {
                    out.write("chunk", &name, Some(3), &[&[0xFF][..], &c2s[HS..]].concat());
                }
            }
            if f.extension().is_some_and(|e| e == "s2c") {
                let s2c = std::fs::read(&f).unwrap();
                out.write("handshake_client", &name, Some(0x80), &s2c[..(HS + 2000).min(s2c.len())]);
            }
        }
    }

    // Commands and data messages.
    let mut commands = std::mem::take(&mut out.commands);
    commands.sort();
    commands.dedup();
    for (i, c) in commands.iter().enumerate() {
        out.write("command", &format!("{i:02}"), None, c);
        out.write("amf0", &format!("cmd{i:02}"), None, c);
        if seeds::is_command(c) {
            out.write("codec", &format!("caps{i:02}"), Some(6), c);
        }
    }
    let mut data = std::mem::take(&mut out.data);
    data.sort();
    data.dedup();
    for (i, d) in data.iter().enumerate() {
        out.write("amf0", &format!("data{i:02}"), None, d);
        out.write("command", &format!("data{i:02}"), None, d);
    }
    // AMF3: as clients send it in type 17 commands (format byte, AMF0 name, AVM+ object).
    let amf3_values: [&[u8]; 6] = [
        &[
            0x0A, 0x0B, 0x01, 0x07, b'a', b'p', b'p', 0x06, 0x09, b'l', b'i', b'v', b'e', 0x0B, b't', b'c', b'U', b'r',
            b'l', 0x06, 0x02, 0x01,
        ],
        &[
            0x09, 0x07, 0x03, b'k', 0x04, 0x05, 0x01, 0x04, 0x81, 0x00, 0x05, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x06, 0x07,
            b'a', b'b', b'c',
        ],
        &[
            0x0A, 0x23, 0x03, b'C', 0x03, b'x', 0x03, b'y', 0x04, 0x01, 0x06, 0x00, 0x09, 0x05, 0x01, 0x0A, 0x01, 0x04,
            0x02, 0x06, 0x00, 0x0A, 0x02,
        ],
        &[0x08, 0x01, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0x0C, 0x07, 1, 2, 3, 0x0B, 0x09, b'<', b'a', b'/', b'>'],
        &[0x09, 0x05, 0x01, 0x09, 0x01, 0x01, 0x09, 0x00, 0x09, 0x02, 0x09, 0x04],
        &[0x04, 0xff, 0xff, 0xff, 0xff, 0x03, 0x02, 0x01, 0x00],
    ];
    for (i, v) in amf3_values.iter().enumerate() {
        out.write("amf3", &format!("{i:02}"), None, v);
        let mut cmd = vec![0x00, 0x02, 0x00, 0x07];
        cmd.extend_from_slice(b"connect");
        cmd.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x11]);
        cmd.extend_from_slice(v);
        out.write("command", &format!("amf3-{i:02}"), None, &cmd);
        out.write("amf0", &format!("avmplus{i:02}"), None, &cmd[1..]);
    }

    // FLV: the head of every test file, whole and in pieces.
    for (name, file) in [
        ("avc", "test.flv"),
        ("hevc", "test-hevc-enhanced.flv"),
        ("hevc-legacy", "test-hevc-legacy.flv"),
        ("mp3", "test-mp3.flv"),
    ] {
        let d = std::fs::read(media.join(file)).unwrap();
        let head = &d[..d.len().min(12 * 1024)];
        out.write("flv", name, Some(0), head);
        out.write("flv", &format!("{name}-pieces"), Some(0x06), &d[..d.len().min(3 * 1024)]);
    }

    // Codecs: sequence headers from the media, the fixtures, tag headers.
    let mut n = 0;
    let mut put = |out: &seeds::Out, sel: u8, b: &[u8]| {
        n += 1;
        out.write("codec", &format!("{n:03}"), Some(sel), b);
    };
    for t in avc.iter().chain(&hevc).chain(&hevc_legacy).chain(&mp3).take(400) {
        let d = &t.data[..];
        match (t.tag_type, d.first().copied()) {
            (9, Some(0x17)) if d.get(1) == Some(&0) => {
                put(&out, 0, &d[5..]);
                if let Ok(c) = rtmp_proto::codec::avc::parse_config(&d[5..]) {
                    put(&out, 1, &c.sps[0]);
                }
            }
            (9, Some(0x1c)) if d.get(1) == Some(&0) => put(&out, 2, &d[5..]),
            (9, Some(0x90)) => put(&out, 2, &d[5..]),
            (8, Some(0xaf)) if d.get(1) == Some(&0) => put(&out, 4, &d[2..]),
            (8, Some(b)) if b >> 4 == 2 && t.timestamp < 60 => put(&out, 5, &d[1..]),
            _ => {}
        }
        if t.timestamp == 0 || t.timestamp == 40 {
            put(&out, 7, &d[..d.len().min(64)]);
        }
    }
    for f in files(&fixtures) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let b = std::fs::read(&f).unwrap();
        let sel = if name.starts_with("avc_") {
            0
        } else if name.starts_with("hevc_hvcc") {
            2
        } else if name.starts_with("hevc_") {
            3
        } else {
            5
        };
        put(&out, sel, &b);
    }
    for b in [
        &[0x12u8, 0x10][..],
        &[0x2a, 0x00][..],
        &[0x13, 0x90][..],
        &[0x9f, b'O', b'p', b'u', b's'][..],
        &[0x96, 0x00, b'h', b'v', b'c', b'1'][..],
    ] {
        put(&out, 7, b);
    }
    // The chunk ops format by hand: Set Chunk Size, Abort, feeds.
    out.write(
        "chunk",
        "ops",
        Some(1),
        &[
            0xF0, 0, 0, 0x10, 0, 0x10, 0x04, 0, 0, 0, 0, 0, 0x10, 0x08, 1, 0, 0, 0, 0xF8, 0, 4, 0x02, 0x44, 0, 0, 0,
            0xFF,
        ],
    );
    segmenter_seeds(&out, &media);
    seeds::check_all(&out);
}
