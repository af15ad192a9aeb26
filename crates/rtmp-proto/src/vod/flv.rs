//! FLV files for VOD: the header, the file's onMetaData (passed on, its `keyframes` index used
//! for seeks), the sequence headers at the head of the file, then tags read one by one.
//!
//! Without a usable index in the metadata, the first seek walks the tag headers (11-byte reads,
//! bodies skipped) up to the target, keeping what it learnt for later seeks.

use bytes::Bytes;

use super::{
    encode_metadata, hevc_legacy_to_enhanced, read_exact, secs, Source, TagKind, VodError, VodTag,
};
use crate::amf0::{self, Amf0Value};
use crate::flv::{audio_tag_info, video_tag_info, AudioCodec, FLV_HEADER_LEN, TAG_HEADER_LEN};

/// Tags looked at when opening, for the metadata and the sequence headers.
const HEAD_TAGS: usize = 64;
/// Bytes of the file's head looked at when opening.
const HEAD_BYTES: u64 = 1 << 20;
/// Index entries kept (from the metadata or a walk).
const MAX_INDEX: usize = 1 << 20;
/// Distance between the seek points of an audio-only file's walk; seeks go on tag by tag from one.
const AUDIO_POINT_MS: u32 = 1000;
/// Bytes of a video body needed to know its frame type (Enhanced RTMP: byte and FourCC).
const VIDEO_PROBE: usize = 5;

const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const SCRIPT: u8 = 18;

#[derive(Debug, Clone, Copy)]
struct TagHeader {
    tag_type: u8,
    /// The low 5 bits of the first byte; bit 5 (filter) set means encrypted.
    filtered: bool,
    len: usize,
    ts: u32,
}

impl TagHeader {
    fn parse(h: &[u8]) -> Option<TagHeader> {
        let [t, l0, l1, l2, t0, t1, t2, t3, ..] = *h else {
            return None;
        };
        Some(TagHeader {
            tag_type: t & 0x1f,
            filtered: t & 0x20 != 0,
            len: (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2),
            ts: u32::from_be_bytes([t3, t0, t1, t2]),
        })
    }
}

/// Where the tag at `pos` ends (with its PreviousTagSize), `None` when it runs past `len`.
fn tag_end(pos: u64, h: &TagHeader, len: u64) -> Option<u64> {
    let body_end = pos
        .checked_add(TAG_HEADER_LEN as u64)?
        .checked_add(h.len as u64)?;
    (body_end <= len).then_some(body_end.saturating_add(4))
}

/// The tag header at `pos`: `Ok(None)` when the file ends there or inside the header.
fn header_at<S: Source + ?Sized>(src: &mut S, pos: u64) -> Result<Option<TagHeader>, VodError> {
    let len = src.len();
    if pos.saturating_add(TAG_HEADER_LEN as u64) > len {
        return Ok(None);
    }
    let h = read_exact(src, pos, TAG_HEADER_LEN)?;
    Ok(TagHeader::parse(&h))
}

/// The progress of the tag walk that builds a seek index.
#[derive(Debug, Clone, Default)]
pub(super) struct Walk {
    pub(super) pos: u64,
    pub(super) done: bool,
    /// The highest timestamp walked past.
    pub(super) ts: u32,
    keys: Vec<(u32, u64)>,
    audio: Vec<(u32, u64)>,
}

/// An FLV file being played.
#[derive(Debug)]
pub struct FlvFile {
    len: u64,
    /// The first tag.
    pub(super) data_start: u64,
    /// The next tag `next` reads.
    pos: u64,
    meta: Bytes,
    duration_ms: Option<u64>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    /// Video keyframes (ms, offset) from the metadata, checked at their first use.
    pub(super) meta_index: Vec<(u32, u64)>,
    pub(super) walk: Walk,
    enhanced: bool,
    truncated: bool,
    /// The timestamp the last seek went to (that of the sequence headers sent after it).
    start_ts: u32,
}

/// Facts read from the file's onMetaData.
#[derive(Default)]
struct MetaFacts {
    payload: Option<Bytes>,
    props: Vec<(String, Amf0Value)>,
}

impl MetaFacts {
    fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn duration_ms(&self) -> Option<u64> {
        let d = self.get("duration")?.as_f64()?;
        (d.is_finite() && d > 0.0 && d < 1e12).then(|| (d * 1000.0).round() as u64)
    }

    /// The `keyframes {times, filepositions}` index, `None` unless every entry is in the file
    /// and both times and positions go up.
    fn index(&self, data_start: u64, len: u64) -> Option<Vec<(u32, u64)>> {
        let kf = self.get("keyframes")?;
        let numbers = |k: &str| -> Option<&[Amf0Value]> {
            match kf.get(k)? {
                Amf0Value::StrictArray(a) => Some(a),
                _ => None,
            }
        };
        let (times, positions) = (numbers("times")?, numbers("filepositions")?);
        if times.len() != positions.len() || times.len() > MAX_INDEX || times.is_empty() {
            return None;
        }
        let mut index: Vec<(u32, u64)> = Vec::with_capacity(times.len());
        for (t, p) in times.iter().zip(positions) {
            let (t, p) = (t.as_f64()?, p.as_f64()?);
            if !(t.is_finite() && p.is_finite() && t >= 0.0 && t * 1000.0 <= f64::from(u32::MAX)) {
                return None;
            }
            if p < data_start as f64 || p >= len as f64 || p.fract() != 0.0 {
                return None;
            }
            let entry = ((t * 1000.0).round() as u32, p as u64);
            if let Some(&(lt, lp)) = index.last() {
                if entry.0 < lt || entry.1 <= lp {
                    return None;
                }
            }
            index.push(entry);
        }
        Some(index)
    }
}

/// The properties of an onMetaData payload (its first object or ECMA array).
fn publisher_props(payload: &[u8]) -> Vec<(String, Amf0Value)> {
    let mut d = amf0::Decoder::new(payload);
    while let Ok(v) = d.value() {
        if let Some(p) = v.properties() {
            return p.to_vec();
        }
    }
    Vec::new()
}

fn is_on_metadata(payload: &[u8]) -> bool {
    matches!(amf0::decode(payload), Ok((Amf0Value::String(s), _)) if s == "onMetaData")
}

/// A video tag that is a sequence end (no picture, not sent: players need none at the end).
fn is_sequence_end(p: &[u8]) -> bool {
    match p {
        [b0, ..] if b0 & 0x80 != 0 => b0 & 0x0f == 2,
        [b0, 2, ..] => matches!(b0 & 0x0f, 7 | 12 | 13),
        _ => false,
    }
}

/// A video keyframe (a picture, not a sequence start or end).
fn is_keyframe(p: &[u8]) -> bool {
    video_tag_info(p).is_some_and(|i| i.keyframe && !i.sequence_header) && !is_sequence_end(p)
}

fn audio_codec_id(c: AudioCodec) -> Option<f64> {
    Some(match c {
        AudioCodec::Mp3 => 2.0,
        AudioCodec::Aac => 10.0,
        AudioCodec::Speex => 11.0,
        AudioCodec::Nellymoser => 6.0,
        AudioCodec::Pcm => 0.0,
        AudioCodec::PcmLe => 3.0,
        AudioCodec::G711A => 7.0,
        AudioCodec::G711U => 8.0,
        _ => return None,
    })
}

impl FlvFile {
    /// Reads the FLV header, the onMetaData and the sequence headers at the head of the file.
    pub fn open<S: Source + ?Sized>(src: &mut S) -> Result<Self, VodError> {
        let len = src.len();
        let head = read_exact(src, 0, FLV_HEADER_LEN).map_err(|e| match e {
            VodError::Truncated => VodError::NotFlv,
            e => e,
        })?;
        if !head.starts_with(b"FLV") {
            return Err(VodError::NotFlv);
        }
        let offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        let data_start = u64::from(offset).max(FLV_HEADER_LEN as u64) + 4;
        if data_start > len {
            return Err(VodError::Truncated);
        }
        let mut f = FlvFile {
            len,
            data_start,
            pos: data_start,
            meta: Bytes::new(),
            duration_ms: None,
            video_header: None,
            audio_header: None,
            meta_index: Vec::new(),
            walk: Walk {
                pos: data_start,
                ..Walk::default()
            },
            enhanced: false,
            truncated: false,
            start_ts: 0,
        };
        let mut facts = MetaFacts::default();
        let (mut video_codec, mut audio_codec) = (None, None);
        let (mut video_media, mut audio_media) = (false, false);
        let mut pos = data_start;
        for _ in 0..HEAD_TAGS {
            if pos - data_start > HEAD_BYTES {
                break;
            }
            let Some(h) = header_at(src, pos)? else { break };
            let Some(end) = tag_end(pos, &h, len) else {
                break;
            };
            let body_at = pos + TAG_HEADER_LEN as u64;
            match h.tag_type {
                SCRIPT if facts.payload.is_none() && !h.filtered => {
                    let body = read_exact(src, body_at, h.len)?;
                    if is_on_metadata(&body) {
                        facts.props = publisher_props(&body);
                        facts.payload = Some(body);
                    }
                }
                VIDEO if h.len > 0 && !h.filtered => {
                    let probe = read_exact(src, body_at, h.len.min(VIDEO_PROBE))?;
                    if let Some(info) = video_tag_info(&probe) {
                        video_codec.get_or_insert(info);
                        if info.sequence_header {
                            if f.video_header.is_none() {
                                f.video_header = Some(read_exact(src, body_at, h.len)?);
                            }
                        } else if !is_sequence_end(&probe) {
                            video_media = true;
                        }
                    }
                }
                AUDIO if h.len > 0 && !h.filtered => {
                    let probe = read_exact(src, body_at, h.len.min(VIDEO_PROBE))?;
                    if let Some(info) = audio_tag_info(&probe) {
                        audio_codec.get_or_insert(info);
                        if !info.sequence_header {
                            audio_media = true;
                        } else if f.audio_header.is_none() {
                            f.audio_header = Some(read_exact(src, body_at, h.len)?);
                        }
                    }
                }
                _ => {}
            }
            let video_known = f.video_header.is_some() || video_media;
            let audio_known = f.audio_header.is_some() || audio_media;
            if (video_known && audio_known) || (video_media && audio_media) {
                break;
            }
            pos = end;
        }
        f.duration_ms = facts.duration_ms();
        if let Some(index) = facts.index(data_start, len) {
            f.meta_index = index;
        }
        if f.duration_ms.is_none() {
            f.duration_ms = f.last_ts(src)?.map(u64::from);
        }
        f.meta = match (&facts.payload, facts.duration_ms()) {
            (Some(p), Some(_)) => p.clone(),
            _ => {
                let mut props = facts.props;
                props.retain(|(k, _)| k != "duration");
                if let Some(d) = f.duration_ms {
                    props.insert(0, ("duration".into(), secs(d)));
                }
                if facts.payload.is_none() {
                    if let Some(v) = video_codec {
                        let id = match v.fourcc {
                            Some(fourcc) => f64::from(u32::from_be_bytes(fourcc)),
                            None => f64::from(video_header_codec(&f.video_header).unwrap_or(7)),
                        };
                        props.push(("videocodecid".into(), Amf0Value::Number(id)));
                    }
                    if let Some(id) = audio_codec.and_then(|a| audio_codec_id(a.codec)) {
                        props.push(("audiocodecid".into(), Amf0Value::Number(id)));
                    }
                    props.push(("filesize".into(), Amf0Value::Number(len as f64)));
                }
                encode_metadata(props)
            }
        };
        Ok(f)
    }

    /// The timestamp of the last tag, by the file's last PreviousTagSize, `None` when that does
    /// not lead to a tag. `Pending` too: a file without a duration in its metadata opens once its
    /// end is there.
    fn last_ts<S: Source + ?Sized>(&self, src: &mut S) -> Result<Option<u32>, VodError> {
        let Some(at) = self.len.checked_sub(4) else {
            return Ok(None);
        };
        let b = match read_exact(src, at, 4) {
            Ok(b) => b,
            Err(VodError::Pending) => return Err(VodError::Pending),
            Err(_) => return Ok(None),
        };
        let size = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let Some(pos) = at.checked_sub(size).filter(|&p| p >= self.data_start) else {
            return Ok(None);
        };
        let h = match header_at(src, pos) {
            Ok(h) => h,
            Err(VodError::Pending) => return Err(VodError::Pending),
            Err(_) => None,
        };
        Ok(h.filter(|h| h.len as u64 + TAG_HEADER_LEN as u64 == size)
            .map(|h| h.ts))
    }

    pub fn duration_ms(&self) -> Option<u64> {
        self.duration_ms
    }

    /// The file's own onMetaData (with a `duration`), or one made from what the file shows.
    pub fn metadata(&self) -> Bytes {
        self.meta.clone()
    }

    pub fn headers(&self, enhanced: bool) -> Vec<VodTag> {
        let mut out = Vec::new();
        if let Some(v) = &self.video_header {
            let data = if enhanced {
                hevc_legacy_to_enhanced(v).unwrap_or_else(|| v.clone())
            } else {
                v.clone()
            };
            out.push(VodTag {
                kind: TagKind::Video,
                ts: self.start_ts,
                data,
                key: true,
            });
        }
        if let Some(a) = &self.audio_header {
            out.push(VodTag {
                kind: TagKind::Audio,
                ts: self.start_ts,
                data: a.clone(),
                key: false,
            });
        }
        out
    }

    /// Legacy HEVC (codec id 12) goes out in Enhanced RTMP form when on.
    pub fn set_enhanced(&mut self, on: bool) {
        self.enhanced = on;
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next<S: Source + ?Sized>(&mut self, src: &mut S) -> Result<Option<VodTag>, VodError> {
        loop {
            if self.pos >= self.len {
                return Ok(None);
            }
            let Some(h) = header_at(src, self.pos)? else {
                self.truncated = true;
                return Ok(None);
            };
            let Some(end) = tag_end(self.pos, &h, self.len) else {
                self.truncated = true;
                return Ok(None);
            };
            if h.filtered || h.len == 0 || !matches!(h.tag_type, AUDIO | VIDEO | SCRIPT) {
                self.pos = end;
                continue;
            }
            let body = read_exact(src, self.pos + TAG_HEADER_LEN as u64, h.len)?;
            self.pos = end;
            let tag = match h.tag_type {
                SCRIPT if is_on_metadata(&body) => continue,
                SCRIPT => VodTag {
                    kind: TagKind::Script,
                    ts: h.ts,
                    data: body,
                    key: false,
                },
                VIDEO => {
                    let Some(info) = video_tag_info(&body) else {
                        continue;
                    };
                    if (info.sequence_header && self.video_header.as_ref() == Some(&body))
                        || is_sequence_end(&body)
                    {
                        continue;
                    }
                    let key = info.keyframe && !info.sequence_header;
                    let data = match self.enhanced {
                        true => hevc_legacy_to_enhanced(&body).unwrap_or(body),
                        false => body,
                    };
                    VodTag {
                        kind: TagKind::Video,
                        ts: h.ts,
                        data,
                        key,
                    }
                }
                _ => {
                    let Some(info) = audio_tag_info(&body) else {
                        continue;
                    };
                    if info.sequence_header && self.audio_header.as_ref() == Some(&body) {
                        continue;
                    }
                    VodTag {
                        kind: TagKind::Audio,
                        ts: h.ts,
                        data: body,
                        key: false,
                    }
                }
            };
            return Ok(Some(tag));
        }
    }

    /// Walks tags until one is past `ms` (or the file ends), recording seek points.
    fn walk_to<S: Source + ?Sized>(&mut self, src: &mut S, ms: u32) -> Result<(), VodError> {
        let w = &mut self.walk;
        while !w.done && (w.ts <= ms || (w.keys.is_empty() && w.audio.is_empty())) {
            let Some(h) = header_at(src, w.pos)? else {
                w.done = true;
                break;
            };
            let Some(end) = tag_end(w.pos, &h, self.len) else {
                w.done = true;
                break;
            };
            if !h.filtered && h.len > 0 {
                let body_at = w.pos + TAG_HEADER_LEN as u64;
                match h.tag_type {
                    VIDEO => {
                        let probe = read_exact(src, body_at, h.len.min(VIDEO_PROBE))?;
                        let key = is_keyframe(&probe);
                        if key
                            && w.keys.len() < MAX_INDEX
                            && w.keys.last().map(|&(t, _)| h.ts >= t) != Some(false)
                        {
                            w.keys.push((h.ts, w.pos));
                        }
                    }
                    AUDIO => {
                        let probe = read_exact(src, body_at, h.len.min(VIDEO_PROBE))?;
                        let media = audio_tag_info(&probe).is_some_and(|i| !i.sequence_header);
                        let due = w
                            .audio
                            .last()
                            .map(|&(t, _)| h.ts >= t.saturating_add(AUDIO_POINT_MS))
                            != Some(false);
                        if media && due && w.audio.len() < MAX_INDEX {
                            w.audio.push((h.ts, w.pos));
                        }
                    }
                    _ => {}
                }
                if matches!(h.tag_type, AUDIO | VIDEO) {
                    w.ts = w.ts.max(h.ts);
                }
            }
            w.pos = end;
        }
        Ok(())
    }

    /// Whether the tag at `pos` is a video keyframe; its timestamp.
    fn keyframe_at<S: Source + ?Sized>(
        &self,
        src: &mut S,
        pos: u64,
    ) -> Result<Option<u32>, VodError> {
        let Some(h) = header_at(src, pos)? else {
            return Ok(None);
        };
        if h.tag_type != VIDEO || h.filtered || h.len == 0 || tag_end(pos, &h, self.len).is_none() {
            return Ok(None);
        }
        let probe = read_exact(src, pos + TAG_HEADER_LEN as u64, h.len.min(VIDEO_PROBE))?;
        Ok(is_keyframe(&probe).then_some(h.ts))
    }

    pub fn seek<S: Source + ?Sized>(&mut self, src: &mut S, ms: u32) -> Result<u32, VodError> {
        if !self.meta_index.is_empty() {
            let i = self
                .meta_index
                .partition_point(|&(t, _)| t <= ms)
                .saturating_sub(1);
            if let Some(&(_, pos)) = self.meta_index.get(i) {
                match self.keyframe_at(src, pos)? {
                    Some(ts) => return Ok(self.go(pos, ts)),
                    // A stale or foreign index: walk the file instead.
                    None => self.meta_index.clear(),
                }
            }
        }
        self.walk_to(src, ms)?;
        let before = |v: &[(u32, u64)]| {
            v.get(v.partition_point(|&(t, _)| t <= ms).saturating_sub(1))
                .copied()
        };
        if let Some((ts, pos)) = before(&self.walk.keys) {
            return Ok(self.go(pos, ts));
        }
        let Some((mut ts, mut pos)) = before(&self.walk.audio) else {
            return Ok(self.go(self.data_start, 0));
        };
        // Audio only: on from the seek point to the last audio frame at or before `ms`.
        let mut at = pos;
        while let Some(h) = header_at(src, at)? {
            let Some(end) = tag_end(at, &h, self.len) else {
                break;
            };
            if h.tag_type == AUDIO && !h.filtered && h.len > 0 {
                if h.ts > ms {
                    break;
                }
                let probe = read_exact(src, at + TAG_HEADER_LEN as u64, h.len.min(VIDEO_PROBE))?;
                if audio_tag_info(&probe).is_some_and(|i| !i.sequence_header) && h.ts >= ts {
                    (ts, pos) = (h.ts, at);
                }
            }
            at = end;
        }
        Ok(self.go(pos, ts))
    }

    fn go(&mut self, pos: u64, ts: u32) -> u32 {
        self.pos = pos;
        self.start_ts = ts;
        self.truncated = false;
        ts
    }
}

/// The legacy codec id of a stored video sequence header.
fn video_header_codec(h: &Option<Bytes>) -> Option<u8> {
    let b0 = *h.as_ref()?.first()?;
    (b0 & 0x80 == 0).then_some(b0 & 0x0f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::{VideoPacket, CODEC_HEVC};

    #[test]
    fn legacy_hevc_converts() {
        let seq = crate::vod::video_payload(CODEC_HEVC, false, VideoPacket::SequenceStart, &[1, 2]);
        assert_eq!(&seq[..], &[0x1c, 0, 0, 0, 0, 1, 2]);
        assert_eq!(
            &hevc_legacy_to_enhanced(&seq).unwrap()[..],
            b"\x90hvc1\x01\x02"
        );
        let f = crate::vod::video_payload(
            CODEC_HEVC,
            false,
            VideoPacket::Frame {
                key: false,
                cts: -40,
            },
            &[9],
        );
        let e = hevc_legacy_to_enhanced(&f).unwrap();
        assert_eq!(&e[..], b"\xa1hvc1\xff\xff\xd8\x09");
        let f = crate::vod::video_payload(
            CODEC_HEVC,
            false,
            VideoPacket::Frame { key: true, cts: 0 },
            &[9],
        );
        assert_eq!(&hevc_legacy_to_enhanced(&f).unwrap()[..], b"\x93hvc1\x09");
        assert!(hevc_legacy_to_enhanced(&[0x17, 1, 0, 0, 0]).is_none());
        assert!(hevc_legacy_to_enhanced(&[0x1c, 1, 0]).is_none());
        let i = video_tag_info(&e).unwrap();
        assert!(i.enhanced && !i.keyframe && i.fourcc == Some(*b"hvc1"));
    }

    #[test]
    fn bad_index_is_not_used() {
        let kf = |times: Vec<f64>, pos: Vec<f64>| MetaFacts {
            payload: None,
            props: vec![(
                "keyframes".into(),
                Amf0Value::object([
                    (
                        "times",
                        Amf0Value::StrictArray(times.into_iter().map(Amf0Value::Number).collect()),
                    ),
                    (
                        "filepositions",
                        Amf0Value::StrictArray(pos.into_iter().map(Amf0Value::Number).collect()),
                    ),
                ]),
            )],
        };
        assert_eq!(
            kf(vec![0.0, 1.0], vec![13.0, 100.0]).index(13, 200),
            Some(vec![(0, 13), (1000, 100)])
        );
        assert_eq!(kf(vec![1.0, 0.0], vec![13.0, 100.0]).index(13, 200), None);
        assert_eq!(kf(vec![0.0, 1.0], vec![13.0, 300.0]).index(13, 200), None);
        assert_eq!(
            kf(vec![0.0, f64::NAN], vec![13.0, 100.0]).index(13, 200),
            None
        );
        assert_eq!(kf(vec![0.0], vec![13.0, 100.0]).index(13, 200), None);
    }
}
