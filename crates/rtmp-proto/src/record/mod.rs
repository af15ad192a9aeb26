//! The FLV recorder (`record`): fed with a stream's audio/video messages, it says which file actions
//! to take (open, append, patch in place, close); the nginx glue does the I/O. Unlike the C module
//! every file plays alone: it starts at a keyframe, carries the codec headers and a real onMetaData.

mod clock;
mod meta;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};

use crate::amf0::Amf0Value;
use crate::flv::{self, audio_tag_info, video_tag_info, AudioCodec, VideoCodec, TAG_HEADER_LEN};
use crate::message::msg_type::{AMF0_DATA, AUDIO, VIDEO};
use clock::Clock;
use meta::{Facts, KeyframeIndex};

pub use meta::MAX_INDEX;

/// The largest payload an FLV tag can frame (24-bit size).
const MAX_TAG: usize = 0xFF_FFFF;
/// FLV header and PreviousTagSize0.
const FILE_HEADER_LEN: u64 = 13;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordConfig {
    /// `record all|audio|video|keyframes`; `keyframes` only matters without `video`.
    pub audio: bool,
    pub video: bool,
    pub keyframes: bool,
    /// Close the file once its size reaches this (checked after each tag); 0 = unlimited.
    pub max_size: u64,
    /// A/V frames per file, sequence headers not counted; 0 = unlimited.
    pub max_frames: u64,
    /// Keyframe index entries reserved in onMetaData (capped at [`MAX_INDEX`]).
    pub index_capacity: usize,
}

impl RecordConfig {
    fn records_video(&self) -> bool {
        self.video || self.keyframes
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new file: the glue makes the path and opens it. `Open` ends its batch: the file's
    /// bytes come with the next `push` (or `stop`), after the glue had the chance to call
    /// `open_append` (append mode, non-empty file) or `failed` (the open failed).
    Open,
    /// Append these bytes to the current file.
    Write(Bytes),
    /// Overwrite bytes at this offset of the current file (header flags, the final onMetaData).
    Patch { offset: u64, bytes: Bytes },
    /// Close the current file (after the patches).
    Close,
}

/// One accepted audio or video frame.
#[derive(Debug, Clone)]
struct Frame {
    msg_type: u8,
    ts: u32,
    payload: Bytes,
    keyframe: bool,
    /// A file may start with it.
    is_break: bool,
}

#[derive(Debug)]
enum State {
    /// No file, none until `start()`.
    Stopped,
    /// No file: the next break frame opens one.
    Armed,
    /// `Open` was asked; `first` (the break frame that asked) starts the file at the next call.
    /// Without it (the glue opened for appending on its own) the next break frame starts it.
    Opening {
        first: Option<Frame>,
        append: Option<(u64, u32)>,
    },
    Open(Box<File>),
}

/// Where a file's onMetaData payload is and what it repeats of the publisher's.
#[derive(Debug)]
struct ReservedMeta {
    offset: u64,
    len: usize,
    copied: Vec<(String, Amf0Value)>,
}

/// The current file.
#[derive(Debug)]
struct File {
    /// Its length so far, the bytes of the current batch included.
    size: u64,
    /// Length when we took it over (append mode); 0 for a file we started.
    base: u64,
    /// The onMetaData we reserved (none in a file we took over).
    meta: Option<ReservedMeta>,
    clock: Clock,
    index: KeyframeIndex,
    frames: u64,
    has_audio: bool,
    has_video: bool,
    /// A keyframe has been written: inter frames may follow.
    video_started: bool,
    /// The sequence headers as last written to this file.
    audio_header: Option<Bytes>,
    video_header: Option<Bytes>,
    /// `rotate()` was asked: the next break frame starts a new file.
    rotate: bool,
}

impl File {
    /// Appends one tag, returning its offset; `None` (nothing written) if the payload is too big.
    fn tag(&mut self, b: &mut Batch, tag_type: u8, ts: u32, data: &[u8]) -> Option<u64> {
        if data.len() > MAX_TAG {
            return None;
        }
        flv::write_tag(&mut b.buf, tag_type, ts, data);
        let at = self.size;
        self.size += (TAG_HEADER_LEN + data.len() + 4) as u64;
        match tag_type {
            AUDIO => self.has_audio = true,
            VIDEO => self.has_video = true,
            _ => {}
        }
        Some(at)
    }

    /// Writes the stream's sequence header of this kind if the file does not have it yet.
    fn header(&mut self, b: &mut Batch, tag_type: u8, ts: u32, current: &Option<Bytes>) {
        let Some(h) = current else { return };
        let written = if tag_type == VIDEO {
            &self.video_header
        } else {
            &self.audio_header
        };
        if written.as_ref() == Some(h) || self.tag(b, tag_type, ts, h).is_none() {
            return;
        }
        let written = if tag_type == VIDEO {
            &mut self.video_header
        } else {
            &mut self.audio_header
        };
        *written = Some(h.clone());
    }
}

/// The actions of one call, with the bytes to append gathered into as few writes as possible.
#[derive(Default)]
struct Batch {
    actions: Vec<Action>,
    buf: BytesMut,
}

impl Batch {
    fn act(&mut self, a: Action) {
        self.flush();
        self.actions.push(a);
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.actions.push(Action::Write(self.buf.split().freeze()));
        }
    }

    fn finish(mut self) -> Vec<Action> {
        self.flush();
        self.actions
    }
}

/// Records one stream into FLV files (sans-IO: see [`Action`]).
#[derive(Debug)]
pub struct FlvRecorder {
    cfg: RecordConfig,
    state: State,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    meta_props: Vec<(String, Amf0Value)>,
    meta_video: bool,
    seen_video: bool,
    /// The onMetaData of a file we take over (append mode), when we wrote it ourselves.
    taken: Option<meta::Taken>,
}

impl FlvRecorder {
    /// A recorder armed to open its first file at the first break frame (a `manual` recorder's
    /// glue calls `stop()` first).
    pub fn new(cfg: RecordConfig) -> Self {
        let cfg = RecordConfig {
            index_capacity: cfg.index_capacity.min(MAX_INDEX),
            ..cfg
        };
        FlvRecorder {
            cfg,
            state: State::Armed,
            video_header: None,
            audio_header: None,
            meta_props: Vec::new(),
            meta_video: false,
            seen_video: false,
            taken: None,
        }
    }

    /// Append mode, before `open_append`: the first bytes of the existing file. When it starts
    /// with an onMetaData reserved by a recorder of ours, that one is kept up to date at close
    /// (duration, size and index of the whole file, the earlier keyframes included).
    pub fn take_over_meta(&mut self, head: &[u8]) {
        self.taken = meta::Taken::parse(head);
    }

    /// The AVC/HEVC/E-RTMP video sequence header payload.
    pub fn set_video_header(&mut self, payload: Bytes) {
        if payload.len() <= MAX_TAG {
            self.seen_video = true;
            self.video_header = Some(payload);
        }
    }

    /// The AAC (or E-RTMP audio) sequence header payload.
    pub fn set_audio_header(&mut self, payload: Bytes) {
        if payload.len() <= MAX_TAG {
            self.audio_header = Some(payload);
        }
    }

    /// The publisher's onMetaData data payload (`"onMetaData"` + object, `@setDataFrame` stripped).
    /// Files opened from now on repeat its picture and sound properties.
    pub fn set_meta(&mut self, payload: Bytes) {
        self.meta_props = meta::publisher_props(&payload);
        self.meta_video = meta::announces_video(&self.meta_props);
    }

    /// One audio (8) or video (9) message of the stream. Sequence headers among them are taken as
    /// by `set_*_header`; other message types are ignored.
    pub fn push(&mut self, msg_type: u8, timestamp: u32, payload: &Bytes) -> Vec<Action> {
        let mut b = Batch::default();
        if payload.len() > MAX_TAG {
            return Vec::new();
        }
        self.begin_pending(&mut b);
        if let Some(f) = self.classify(msg_type, timestamp, payload) {
            self.frame(f, &mut b);
        }
        b.finish()
    }

    /// Closes the current file at the next break frame and starts the next one with it.
    pub fn rotate(&mut self) {
        if let State::Open(file) = &mut self.state {
            file.rotate = true;
        }
    }

    /// Closes the current file; no new one until `start()`.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut b = Batch::default();
        self.begin_pending(&mut b);
        match std::mem::replace(&mut self.state, State::Stopped) {
            State::Open(file) => self.close(*file, &mut b),
            // The glue holds an open file we never wrote to.
            State::Opening { .. } => b.act(Action::Close),
            State::Stopped | State::Armed => {}
        }
        b.finish()
    }

    /// Opens a file at the next break frame (after `stop`, `failed`, or for a manual recorder).
    pub fn start(&mut self) {
        if let State::Stopped = self.state {
            self.state = State::Armed;
        }
    }

    /// The glue could not open or write the file: forget it; nothing more until `start()`.
    pub fn failed(&mut self) {
        self.state = State::Stopped;
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Opening { .. } | State::Open(_))
    }

    /// Append mode: the current file (just opened by the glue) already holds `len` bytes whose last
    /// tag has timestamp `last_ts` (see [`tail_timestamp`]): go on after it, without a new FLV
    /// header or onMetaData. With `len == 0` the file is started as a new one. Called while no file
    /// is open, it means the glue opened one on its own: it starts at the next break frame.
    pub fn open_append(&mut self, len: u64, last_ts: u32) {
        match &mut self.state {
            State::Opening { append, .. } => *append = Some((len, last_ts)),
            State::Open(_) => {}
            State::Stopped | State::Armed => {
                self.state = State::Opening {
                    first: None,
                    append: Some((len, last_ts)),
                }
            }
        }
    }

    fn stream_has_video(&self) -> bool {
        self.seen_video || self.meta_video
    }

    /// The frame to record from a message, after taking sequence headers and the config's filter.
    fn classify(&mut self, msg_type: u8, ts: u32, payload: &Bytes) -> Option<Frame> {
        let frame = |keyframe, is_break| Frame {
            msg_type,
            ts,
            payload: payload.clone(),
            keyframe,
            is_break,
        };
        match msg_type {
            VIDEO => {
                let info = video_tag_info(payload)?;
                self.seen_video = true;
                if info.sequence_header {
                    self.video_header = Some(payload.clone());
                    return None;
                }
                let wanted = self.cfg.video || (self.cfg.keyframes && info.keyframe);
                let needs_header = info.enhanced
                    || matches!(
                        info.codec,
                        VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Av1
                    );
                if !wanted || (needs_header && self.video_header.is_none()) {
                    return None;
                }
                // An AVC/HEVC end of sequence (packet type 2) carries the keyframe flag but no
                // picture: it starts no file and is no index entry.
                let end_of_sequence = !info.enhanced
                    && matches!(info.codec, VideoCodec::Avc | VideoCodec::Hevc)
                    && payload.get(1) == Some(&2);
                let key = info.keyframe && !end_of_sequence;
                Some(frame(key, key))
            }
            AUDIO => {
                let info = audio_tag_info(payload)?;
                if info.sequence_header {
                    self.audio_header = Some(payload.clone());
                    return None;
                }
                let needs_header = matches!(info.codec, AudioCodec::Aac | AudioCodec::Opus);
                if !self.cfg.audio || (needs_header && self.audio_header.is_none()) {
                    return None;
                }
                // Audio starts files of recorders without video, or of a stream that has none.
                Some(frame(false, !self.cfg.video || !self.stream_has_video()))
            }
            _ => None,
        }
    }

    fn frame(&mut self, f: Frame, b: &mut Batch) {
        match &mut self.state {
            State::Stopped => {}
            State::Armed if f.is_break => {
                b.act(Action::Open);
                self.state = State::Opening {
                    first: Some(f),
                    append: None,
                };
            }
            State::Armed => {}
            State::Opening {
                first: None,
                append,
            } if f.is_break => {
                let append = *append;
                self.begin(f, append, b);
            }
            // `begin_pending` ran first; nothing to do without a break frame.
            State::Opening { .. } => {}
            State::Open(file) if file.rotate && f.is_break => {
                let State::Open(file) = std::mem::replace(&mut self.state, State::Stopped) else {
                    unreachable!()
                };
                self.close(*file, b);
                b.act(Action::Open);
                self.state = State::Opening {
                    first: Some(f),
                    append: None,
                };
            }
            State::Open(_) => self.write_frame(f, b),
        }
    }

    /// Starts the file that the previous call asked the glue to open.
    fn begin_pending(&mut self, b: &mut Batch) {
        if let State::Opening { first, append } = &mut self.state {
            if let Some(f) = first.take() {
                let append = *append;
                self.begin(f, append, b);
            }
        }
    }

    /// Writes the start of a file (header, onMetaData, sequence headers) and its first frame.
    fn begin(&mut self, first: Frame, append: Option<(u64, u32)>, b: &mut Batch) {
        let (base, start) = append.filter(|&(len, _)| len > 0).unwrap_or((0, 0));
        let mut file = File {
            size: base,
            base,
            meta: None,
            clock: Clock::new(first.ts, start),
            index: KeyframeIndex::new(self.cfg.index_capacity),
            frames: 0,
            has_audio: false,
            has_video: false,
            video_started: false,
            audio_header: None,
            video_header: None,
            rotate: false,
        };
        if base > 0 {
            if let Some(t) = self.taken.take() {
                for &(ts, pos) in &t.index {
                    file.index.push(ts, pos);
                }
                file.has_audio = t.has_audio;
                file.has_video = t.has_video;
                file.meta = Some(ReservedMeta { offset: t.offset, len: t.len, copied: t.copied });
            }
        }
        let video = self.cfg.records_video();
        if base == 0 {
            flv::write_header(&mut b.buf, self.cfg.audio, video);
            file.size = FILE_HEADER_LEN;
            let copied = meta::copied_props(&self.meta_props, self.cfg.audio, video);
            let len = meta::reserved_len(&copied, self.cfg.index_capacity);
            // An empty index always fits the reservation made for a full one.
            let payload = meta::payload(&copied, &Facts::default(), &[], len);
            if let Some(at) = payload.and_then(|p| file.tag(b, AMF0_DATA, 0, &p)) {
                file.meta = Some(ReservedMeta {
                    offset: at + TAG_HEADER_LEN as u64,
                    len,
                    copied,
                });
            }
        }
        // Both headers up front, at the first frame's time, so the file decodes from its start.
        if self.cfg.audio {
            file.header(b, AUDIO, start, &self.audio_header);
        }
        if video {
            file.header(b, VIDEO, start, &self.video_header);
        }
        self.state = State::Open(Box::new(file));
        self.write_frame(first, b);
    }

    fn write_frame(&mut self, f: Frame, b: &mut Batch) {
        let State::Open(file) = &mut self.state else {
            return;
        };
        let video = f.msg_type == VIDEO;
        if video && !file.video_started && !f.keyframe {
            return;
        }
        let ts = file.clock.map(usize::from(video), f.ts);
        file.header(
            b,
            f.msg_type,
            ts,
            if video {
                &self.video_header
            } else {
                &self.audio_header
            },
        );
        let Some(at) = file.tag(b, f.msg_type, ts, &f.payload) else {
            return;
        };
        if video && f.keyframe {
            file.video_started = true;
            file.index.push(ts, at);
        }
        file.frames += 1;
        // Past a limit the file ends at the next break frame, which starts the next file: no
        // frame is lost between the pieces (the C module closes at once and drops everything up
        // to the next keyframe), and a piece exceeds the limit by less than a GOP.
        let full = (self.cfg.max_frames > 0 && file.frames >= self.cfg.max_frames)
            || (self.cfg.max_size > 0 && file.size >= self.cfg.max_size);
        if full {
            file.rotate = true;
        }
    }

    /// Patches the header flags and the onMetaData, then closes.
    fn close(&self, file: File, b: &mut Batch) {
        let flags = (u8::from(file.has_audio) << 2) | u8::from(file.has_video);
        // In a file we took over, only the union of both kinds is known to be right.
        if file.base == 0 || (file.base >= FILE_HEADER_LEN && flags == 0x05) {
            b.act(Action::Patch {
                offset: 4,
                bytes: Bytes::copy_from_slice(&[flags]),
            });
        }
        if let Some(m) = &file.meta {
            let facts = Facts {
                last_ts: file.clock.last(),
                filesize: file.size,
                has_audio: file.has_audio,
                has_video: file.has_video,
                last_keyframe: file.index.last(),
            };
            if let Some(bytes) = meta::payload(&m.copied, &facts, &file.index.entries(), m.len) {
                b.act(Action::Patch {
                    offset: m.offset,
                    bytes,
                });
            }
        }
        b.act(Action::Close);
    }
}

/// The timestamp of the last tag of an FLV file, from the file's last bytes: at least the last tag
/// and its PreviousTagSize (the glue reads the last 4 bytes, then that size + 4). `None` when the
/// size does not match the tag before it (a corrupt tail).
pub fn tail_timestamp(tail: &[u8]) -> Option<u32> {
    let n = tail.len();
    let size_at = n.checked_sub(4)?;
    let prev = u32::from_be_bytes(tail[size_at..].try_into().ok()?) as usize;
    if !(TAG_HEADER_LEN..=TAG_HEADER_LEN + MAX_TAG).contains(&prev) {
        return None;
    }
    let h = &tail[size_at.checked_sub(prev)?..][..TAG_HEADER_LEN];
    let data_len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    if !matches!(h[0] & 0x1f, AUDIO | VIDEO | AMF0_DATA) || data_len + TAG_HEADER_LEN != prev {
        return None;
    }
    Some(
        (u32::from(h[7]) << 24)
            | (u32::from(h[4]) << 16)
            | (u32::from(h[5]) << 8)
            | u32::from(h[6]),
    )
}
