//! The GOP cache: the publisher's messages since its last video keyframe, so that a new player
//! starts decoding at once instead of waiting up to a whole GOP for the next keyframe.
//!
//! Entries hold the publisher's reference-counted payloads and their chunk encodings (one per
//! chunk size and message stream id, shared by every player that joins), never per-player copies.
//! All caches of a worker share one budget (`gop_cache_budget`): past it, the caches of the
//! streams whose last player joined longest ago are dropped, and those streams cache again only
//! once a player joins them (that player waits for the next keyframe, as without a cache).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use rtmp_proto::RawMessage;

use super::encodings::{Encodings, Form};

/// Bounds on what one stream's cache holds; past any of them the cache is dropped until the next
/// keyframe (a GOP that long would not start a player quickly anyway).
#[derive(Clone, Copy)]
pub struct GopLimits {
    pub frames: usize,
    pub video: usize,
    pub audio: usize,
    pub bytes: usize,
}

/// The bytes every GOP cache of this worker holds, against `gop_cache_budget`.
pub struct GopBudget {
    used: Cell<usize>,
    limit: usize,
    /// The budget was reached once (logged once per worker and configuration).
    reached: Cell<bool>,
}

impl GopBudget {
    pub fn new(limit: usize) -> Self {
        GopBudget { used: Cell::new(0), limit, reached: Cell::new(false) }
    }
    pub fn used(&self) -> usize {
        self.used.get()
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
    pub fn over(&self) -> bool {
        self.used.get() > self.limit
    }
    /// True the first time only: the caller logs it.
    pub fn first_time_over(&self) -> bool {
        !self.reached.replace(true)
    }
    fn add(&self, n: usize) {
        self.used.set(self.used.get().saturating_add(n));
    }
    fn sub(&self, n: usize) {
        self.used.set(self.used.get().saturating_sub(n));
    }
}

impl Default for GopBudget {
    fn default() -> Self {
        GopBudget::new(usize::MAX)
    }
}

struct Entry {
    cs: u32,
    msg: RawMessage,
    encoded: RefCell<Encodings>,
}

pub struct GopCache {
    entries: Vec<Entry>,
    video: usize,
    audio: usize,
    /// Payloads and encodings held, as counted in the budget.
    bytes: Cell<usize>,
    /// A keyframe opened the current GOP: entries are decodable from the first one.
    open: bool,
    budget: Rc<GopBudget>,
    /// Dropped for the budget: nothing is cached until a player joins again.
    cold: bool,
    /// When a player last joined (or the publisher started), nginx msec: the least recent are
    /// dropped first.
    last_join_ms: u64,
}

impl Default for GopCache {
    fn default() -> Self {
        GopCache::new(Rc::new(GopBudget::default()), 0)
    }
}

impl Drop for GopCache {
    fn drop(&mut self) {
        self.budget.sub(self.bytes.get());
    }
}

impl GopCache {
    pub fn new(budget: Rc<GopBudget>, now_ms: u64) -> Self {
        GopCache {
            entries: Vec::new(),
            video: 0,
            audio: 0,
            bytes: Cell::new(0),
            open: false,
            budget,
            cold: false,
            last_join_ms: now_ms,
        }
    }

    pub fn clear(&mut self) {
        self.budget.sub(self.bytes.replace(0));
        self.entries = Vec::new();
        self.video = 0;
        self.audio = 0;
        self.open = false;
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (payloads and encodings).
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }

    pub fn last_join_ms(&self) -> u64 {
        self.last_join_ms
    }

    /// A player joined (or a publisher started): this stream is worth caching again, from its
    /// next keyframe if the cache had been dropped.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_join_ms = now_ms;
        self.cold = false;
    }

    /// Dropped for the budget: stays empty until `touch`.
    pub fn evict(&mut self) {
        self.clear();
        self.cold = true;
    }

    fn account(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n);
        self.budget.add(n);
    }

    /// Records one audio or video frame (sequence headers are kept apart by the stream).
    pub fn push(&mut self, cs: u32, msg: &RawMessage, video: bool, keyframe: bool, limits: &GopLimits) {
        if video && keyframe {
            self.clear();
            self.open = !self.cold;
        }
        if !self.open {
            return;
        }
        self.video += usize::from(video);
        self.audio += usize::from(!video);
        if self.video > limits.video
            || self.audio > limits.audio
            || self.video + self.audio > limits.frames
            || self.bytes.get() + msg.payload.len() > limits.bytes
        {
            self.clear();
            return;
        }
        self.account(msg.payload.len());
        self.entries.push(Entry { cs, msg: msg.clone(), encoded: RefCell::new(Encodings::default()) });
    }

    /// The cached messages encoded for a player, in publish order.
    pub fn encoded_for(&self, form: Form) -> impl Iterator<Item = Bytes> + '_ {
        self.entries.iter().map(move |e| {
            let (b, new) = e.encoded.borrow_mut().get(e.cs, &e.msg, form);
            if new {
                self.account(b.len());
            }
            b
        })
    }

    /// Timestamp of the keyframe that opens the cached GOP.
    pub fn first_timestamp(&self) -> u32 {
        self.entries.first().map_or(0, |e| e.msg.timestamp)
    }

    pub fn has_audio(&self) -> bool {
        self.audio > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u32, len: usize) -> RawMessage {
        RawMessage::new(9, 1, ts, Bytes::from(vec![0x27; len]))
    }

    const LIMITS: GopLimits = GopLimits { frames: 100, video: 100, audio: 100, bytes: 1 << 20 };

    #[test]
    fn every_cache_counts_against_the_shared_budget() {
        let budget = Rc::new(GopBudget::new(1000));
        let mut a = GopCache::new(budget.clone(), 0);
        let mut b = GopCache::new(budget.clone(), 0);
        a.push(6, &frame(0, 300), true, true, &LIMITS);
        b.push(6, &frame(0, 400), true, true, &LIMITS);
        assert_eq!(budget.used(), 700);
        // Encodings a joiner asked for count too, once per (chunk size, stream id).
        let enc: usize = a.encoded_for(Form::Chunks { size: 4096, stream_id: 1 }).map(|b| b.len()).sum();
        let _ = a.encoded_for(Form::Chunks { size: 4096, stream_id: 1 }).count();
        assert_eq!(budget.used(), 700 + enc);
        b.push(6, &frame(40, 400), true, false, &LIMITS);
        assert!(budget.over());
        // A new keyframe starts a new GOP: the old one is released.
        b.push(6, &frame(80, 100), true, true, &LIMITS);
        assert_eq!(budget.used(), 300 + enc + 100);
        drop(a);
        assert_eq!(budget.used(), 100);
        b.clear();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_evicted_cache_waits_for_a_join_then_for_a_keyframe() {
        let budget = Rc::new(GopBudget::new(1 << 20));
        let mut c = GopCache::new(budget.clone(), 0);
        c.push(6, &frame(0, 100), true, true, &LIMITS);
        c.evict();
        assert!(c.is_empty());
        assert_eq!(budget.used(), 0);
        c.push(6, &frame(40, 100), true, true, &LIMITS);
        assert!(c.is_empty(), "cold: a keyframe alone does not restart it");
        c.touch(5000);
        assert_eq!(c.last_join_ms(), 5000);
        c.push(6, &frame(80, 100), true, false, &LIMITS);
        assert!(c.is_empty(), "warm again, but only from the next keyframe");
        c.push(6, &frame(120, 100), true, true, &LIMITS);
        assert!(!c.is_empty());
        assert_eq!(budget.used(), 100);
    }

    #[test]
    fn the_per_stream_size_limit_drops_the_gop() {
        let budget = Rc::new(GopBudget::default());
        let limits = GopLimits { bytes: 250, ..LIMITS };
        let mut c = GopCache::new(budget.clone(), 0);
        c.push(6, &frame(0, 200), true, true, &limits);
        c.push(6, &frame(40, 100), true, false, &limits);
        assert!(c.is_empty());
        assert_eq!(budget.used(), 0);
    }
}
