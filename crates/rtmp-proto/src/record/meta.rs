//! The onMetaData a recording starts with: reserved at full size when the file opens, rewritten in
//! place at close with the real duration, size and keyframe index (padded to the same length).

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};

/// Index entries beyond this are not reserved whatever the configuration asks (18 bytes each: the
/// script tag must stay far below the 16 MiB tag limit).
pub const MAX_INDEX: usize = 50_000;

/// Longest string value copied from the publisher's metadata (an encoder name, a codec FourCC).
const MAX_COPIED_STRING: usize = 256;

/// Publisher metadata that stays true of the recording; the rest (duration, size) is ours to state.
const VIDEO_KEYS: &[&str] = &[
    "width",
    "height",
    "framerate",
    "videocodecid",
    "videodatarate",
];
const AUDIO_KEYS: &[&str] = &[
    "audiocodecid",
    "audiosamplerate",
    "audiosamplesize",
    "audiochannels",
    "stereo",
    "audiodatarate",
];
const COMMON_KEYS: &[&str] = &["encoder"];

/// The padding property: its string value absorbs whatever the final metadata does not use.
const FILLER: &str = "filler";
const FILLER_ODD: &str = "filler1";

/// The object of a publisher's onMetaData payload (`"onMetaData"`, then an object or ECMA array).
pub fn publisher_props(payload: &[u8]) -> Vec<(String, Amf0Value)> {
    let Ok(values) = amf0::decode_all(payload) else {
        // A bad tail must not cost the properties before it.
        let mut d = amf0::Decoder::new(payload);
        while let Ok(v) = d.value() {
            if let Some(p) = v.properties() {
                return p.to_vec();
            }
        }
        return Vec::new();
    };
    values
        .iter()
        .find_map(|v| v.properties())
        .map(<[_]>::to_vec)
        .unwrap_or_default()
}

/// Whether a publisher's metadata announces a video track.
pub fn announces_video(props: &[(String, Amf0Value)]) -> bool {
    props.iter().any(|(k, v)| {
        matches!(k.as_str(), "videocodecid" | "width") && !matches!(v, Amf0Value::Null)
    })
}

/// The publisher properties a file of this recorder keeps: fixed-size values only, so the reserved
/// length holds.
pub fn copied_props(
    props: &[(String, Amf0Value)],
    audio: bool,
    video: bool,
) -> Vec<(String, Amf0Value)> {
    let wanted = |k: &str| {
        COMMON_KEYS.contains(&k)
            || (video && VIDEO_KEYS.contains(&k))
            || (audio && AUDIO_KEYS.contains(&k))
    };
    let mut out: Vec<(String, Amf0Value)> = Vec::new();
    for (k, v) in props {
        if !wanted(k) || out.iter().any(|(o, _)| o == k) {
            continue;
        }
        let v = match v {
            Amf0Value::Number(_) | Amf0Value::Boolean(_) => v.clone(),
            Amf0Value::String(s) if s.len() <= MAX_COPIED_STRING => v.clone(),
            _ => continue,
        };
        out.push((k.clone(), v));
    }
    out
}

/// Keyframe (timestamp ms, file offset) pairs, at most `cap`: when full, every other entry goes and
/// only every `stride`-th keyframe is kept from then on, so the index stays even over the whole file.
#[derive(Debug, Clone)]
pub struct KeyframeIndex {
    cap: usize,
    stride: u64,
    seen: u64,
    entries: Vec<(u32, u64)>,
    last: Option<(u32, u64)>,
}

impl KeyframeIndex {
    pub fn new(cap: usize) -> Self {
        KeyframeIndex {
            cap,
            stride: 1,
            seen: 0,
            entries: Vec::new(),
            last: None,
        }
    }

    pub fn push(&mut self, ts: u32, pos: u64) {
        let n = self.seen;
        self.seen += 1;
        self.last = Some((ts, pos));
        if self.cap == 0 {
            return;
        }
        // The stride is a power of two (MSRV 1.81: no `is_multiple_of`).
        let kept = |n: u64, stride: u64| n & (stride - 1) == 0;
        while kept(n, self.stride) && self.entries.len() >= self.cap {
            let mut i = 0;
            self.entries.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride *= 2;
        }
        if kept(n, self.stride) {
            self.entries.push((ts, pos));
        }
    }

    /// The last keyframe of the file.
    pub fn last(&self) -> Option<(u32, u64)> {
        self.last
    }

    /// The entries to publish: the kept ones, and the last keyframe so that the index reaches the end.
    pub fn entries(&self) -> Vec<(u32, u64)> {
        let mut v = self.entries.clone();
        if let Some(last) = self.last {
            if v.last() != Some(&last) {
                if v.len() < self.cap {
                    v.push(last);
                } else if let (true, Some(l)) = (v.len() >= 2, v.last_mut()) {
                    *l = last;
                }
            }
        }
        v
    }
}

/// What the final metadata states about the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    pub last_ts: u32,
    pub filesize: u64,
    pub has_audio: bool,
    pub has_video: bool,
    pub last_keyframe: Option<(u32, u64)>,
}

fn secs(ms: u32) -> Amf0Value {
    Amf0Value::Number(f64::from(ms) / 1000.0)
}

fn props(
    copied: &[(String, Amf0Value)],
    facts: &Facts,
    index: &[(u32, u64)],
) -> Vec<(String, Amf0Value)> {
    let (kf_ts, kf_pos) = facts.last_keyframe.unwrap_or((0, 0));
    let mut p: Vec<(String, Amf0Value)> = vec![
        ("duration".into(), secs(facts.last_ts)),
        ("filesize".into(), Amf0Value::Number(facts.filesize as f64)),
        ("lasttimestamp".into(), secs(facts.last_ts)),
        ("lastkeyframetimestamp".into(), secs(kf_ts)),
        (
            "lastkeyframelocation".into(),
            Amf0Value::Number(kf_pos as f64),
        ),
    ];
    p.extend(copied.iter().cloned());
    p.extend([
        ("hasVideo".into(), Amf0Value::Boolean(facts.has_video)),
        ("hasAudio".into(), Amf0Value::Boolean(facts.has_audio)),
        ("hasMetadata".into(), Amf0Value::Boolean(true)),
        ("hasKeyframes".into(), Amf0Value::Boolean(!index.is_empty())),
        (
            "keyframes".into(),
            Amf0Value::object([
                (
                    "times",
                    Amf0Value::StrictArray(index.iter().map(|&(t, _)| secs(t)).collect()),
                ),
                (
                    "filepositions",
                    Amf0Value::StrictArray(
                        index
                            .iter()
                            .map(|&(_, pos)| Amf0Value::Number(pos as f64))
                            .collect(),
                    ),
                ),
            ]),
        ),
    ]);
    p
}

/// The padding: an array of `n` booleans (2 bytes each) and a string of `odd` spaces (0 or 1).
/// Long strings would do in one piece, but FFmpeg's FLV demuxer refuses string values over 255
/// bytes in onMetaData (and logs an error for the file).
fn encode(props: Vec<(String, Amf0Value)>, n: usize, odd: usize) -> BytesMut {
    let mut props = props;
    props.push((FILLER.into(), Amf0Value::StrictArray(vec![Amf0Value::Boolean(false); n])));
    props.push((FILLER_ODD.into(), Amf0Value::String(" ".repeat(odd))));
    let mut out = BytesMut::new();
    amf0::encode(&Amf0Value::string("onMetaData"), &mut out);
    amf0::encode(&Amf0Value::EcmaArray(props), &mut out);
    out
}

/// The onMetaData payload for `facts` and `index`, padded to exactly `len` bytes; `None` when it
/// does not fit (more entries than were reserved).
pub fn payload(
    copied: &[(String, Amf0Value)],
    facts: &Facts,
    index: &[(u32, u64)],
    len: usize,
) -> Option<Bytes> {
    let bare = encode(props(copied, facts, index), 0, 0).len();
    let pad = len.checked_sub(bare)?;
    let out = encode(props(copied, facts, index), pad / 2, pad % 2);
    (out.len() == len).then(|| out.freeze())
}

/// The length to reserve: the metadata with a full index and no padding.
pub fn reserved_len(copied: &[(String, Amf0Value)], cap: usize) -> usize {
    let full = vec![(0, 0); cap];
    encode(props(copied, &Facts::default(), &full), 0, 0).len()
}

/// The onMetaData of a file one of our recorders wrote (it has our padding), read back to go on
/// with it in append mode.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Offset and length of the payload in the file.
    pub offset: u64,
    pub len: usize,
    pub copied: Vec<(String, Amf0Value)>,
    /// The keyframe index it holds (ms, offset).
    pub index: Vec<(u32, u64)>,
    pub has_audio: bool,
    pub has_video: bool,
}

impl Taken {
    /// From the file's first bytes (FLV header, then the script tag); `None` for a file that does
    /// not start with our reserved onMetaData.
    pub fn parse(head: &[u8]) -> Option<Taken> {
        const AT: usize = 13;
        if head.get(..3) != Some(b"FLV") || *head.get(AT)? & 0x1f != 18 {
            return None;
        }
        let h = head.get(AT..AT + 11)?;
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let payload = head.get(AT + 11..AT + 11 + len)?;
        let props = publisher_props(payload);
        if !props.iter().any(|(k, _)| k == FILLER) {
            return None;
        }
        let get = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let flag = |k: &str| matches!(get(k), Some(Amf0Value::Boolean(true)));
        let numbers = |v: Option<&Amf0Value>| -> Vec<f64> {
            match v {
                Some(Amf0Value::StrictArray(a)) => a.iter().filter_map(Amf0Value::as_f64).collect(),
                _ => Vec::new(),
            }
        };
        let kf = get("keyframes").and_then(Amf0Value::properties).unwrap_or_default();
        let field = |k: &str| kf.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let times = numbers(field("times"));
        let positions = numbers(field("filepositions"));
        let index = times
            .iter()
            .zip(&positions)
            .filter(|(t, p)| t.is_finite() && p.is_finite() && **t >= 0.0 && **p >= 0.0)
            .map(|(t, p)| ((t * 1000.0).round() as u32, *p as u64))
            .collect();
        let has_audio = flag("hasAudio");
        let has_video = flag("hasVideo");
        Some(Taken {
            offset: (AT + 11) as u64,
            len,
            copied: copied_props(&props, has_audio, has_video),
            index,
            has_audio,
            has_video,
        })
    }
}
