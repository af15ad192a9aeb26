//! The GOP cache: the publisher's messages since its last video keyframe, so that a new player
//! starts decoding at once instead of waiting up to a whole GOP for the next keyframe.
//!
//! Entries hold the publisher's reference-counted payloads and their chunk encodings (one per
//! chunk size and message stream id, shared by every player that joins), never per-player copies.

use std::cell::RefCell;

use bytes::Bytes;
use rtmp_proto::RawMessage;

use crate::core::session::encode;

/// Bounds on what one stream's cache holds; past any of them the cache is dropped until the next
/// keyframe (a GOP that long would not start a player quickly anyway).
#[derive(Clone, Copy)]
pub struct GopLimits {
    pub frames: usize,
    pub video: usize,
    pub audio: usize,
    pub bytes: usize,
}

struct Entry {
    cs: u32,
    msg: RawMessage,
    encoded: RefCell<Vec<(u32, u32, Bytes)>>,
}

impl Entry {
    fn bytes(&self, chunk_size: u32, stream_id: u32) -> Bytes {
        let mut enc = self.encoded.borrow_mut();
        if let Some((_, _, b)) = enc.iter().find(|(c, s, _)| *c == chunk_size && *s == stream_id) {
            return b.clone();
        }
        let m = RawMessage { stream_id, ..self.msg.clone() };
        let b = encode(self.cs, &m, chunk_size);
        enc.push((chunk_size, stream_id, b.clone()));
        b
    }
}

#[derive(Default)]
pub struct GopCache {
    entries: Vec<Entry>,
    video: usize,
    audio: usize,
    bytes: usize,
    /// A keyframe opened the current GOP: entries are decodable from the first one.
    open: bool,
}

impl GopCache {
    pub fn clear(&mut self) {
        *self = GopCache::default();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records one audio or video frame (sequence headers are kept apart by the stream).
    pub fn push(&mut self, cs: u32, msg: &RawMessage, video: bool, keyframe: bool, limits: &GopLimits) {
        if video && keyframe {
            self.clear();
            self.open = true;
        }
        if !self.open {
            return;
        }
        self.video += usize::from(video);
        self.audio += usize::from(!video);
        self.bytes += msg.payload.len();
        if self.video > limits.video
            || self.audio > limits.audio
            || self.video + self.audio > limits.frames
            || self.bytes > limits.bytes
        {
            self.clear();
            return;
        }
        self.entries.push(Entry { cs, msg: msg.clone(), encoded: RefCell::new(Vec::new()) });
    }

    /// The cached messages encoded for a player, in publish order.
    pub fn encoded_for(&self, chunk_size: u32, stream_id: u32) -> impl Iterator<Item = Bytes> + '_ {
        self.entries.iter().map(move |e| e.bytes(chunk_size, stream_id))
    }

    /// Timestamp of the keyframe that opens the cached GOP.
    pub fn first_timestamp(&self) -> u32 {
        self.entries.first().map_or(0, |e| e.msg.timestamp)
    }

    pub fn has_audio(&self) -> bool {
        self.audio > 0
    }
}
