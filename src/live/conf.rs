//! Live directives with nginx-rtmp-module's defaults, and the per-worker stream registry that
//! lives in the live main conf (one per cycle, so a reload starts from a clean registry).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use std::ffi::CStr;

use crate::ngx::conf::{merge, Conf, ConfValue, Keyword, Kw, Msec, OrOff, Size};
use crate::ngx::module::Merge;

use super::gop::{GopBudget, GopLimits};
use super::stream::Stream;

/// `meta on|copy|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    On,
    Copy,
    Off,
}

impl Keyword for Meta {
    const WORDS: &'static [(&'static str, Self)] = &[("on", Meta::On), ("copy", Meta::Copy), ("off", Meta::Off)];
}

/// `write_merge off|auto|<time>`: when a player's queued media is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMerge {
    /// At the end of every wake-up that queued something (lowest latency, most syscalls).
    Off,
    /// Audio and data wait for the next video frame of a stream whose video flows, and leave
    /// with it; video is written at once. At most one video frame interval added to audio,
    /// about 2.5 times fewer writes for 30 fps video with 48 kHz AAC.
    Auto,
    /// Media waits up to this long and leaves in one writev.
    Every(Msec),
}

impl ConfValue for WriteMerge {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        match args {
            [a] if a.eq_ignore_ascii_case(b"off") => Ok(WriteMerge::Off),
            [a] if a.eq_ignore_ascii_case(b"auto") => Ok(WriteMerge::Auto),
            _ => match Msec::parse(args)? {
                Msec(0) => Ok(WriteMerge::Off),
                m => Ok(WriteMerge::Every(m)),
            },
        }
    }
}

/// Streams by (application identity, name).
pub type StreamMap = HashMap<(usize, String), Rc<RefCell<Stream>>>;

/// Streams of this worker, by (application identity, name), and what their GOP caches may hold.
#[derive(Default)]
pub struct LiveMainConf {
    pub streams: RefCell<StreamMap>,
    /// `gop_cache_budget <size>|off` (rtmp level): the bytes all GOP caches of a worker hold at
    /// most.
    pub gop_cache_budget: Option<OrOff<Size>>,
    budget: OnceCell<Rc<GopBudget>>,
}

impl LiveMainConf {
    /// The worker's GOP cache budget, 12 MiB by default: a 2 Mbit/s stream's 2 s GOP is about
    /// 0.5 MiB, so some 24 such streams keep instant start however long nobody joins them, and
    /// the streams players join keep theirs before those nobody joined.
    pub fn gop_budget(&self) -> &Rc<GopBudget> {
        self.budget.get_or_init(|| {
            let limit = match self.gop_cache_budget {
                None => 12 << 20,
                Some(OrOff(None)) => usize::MAX,
                Some(OrOff(Some(Size(n)))) => usize::try_from(n).unwrap_or(usize::MAX),
            };
            Rc::new(GopBudget::new(limit))
        })
    }
}

#[derive(Default)]
pub struct LiveSrvConf;
impl Merge for LiveSrvConf {}

#[derive(Default)]
pub struct LiveAppConf {
    pub live: Option<bool>,
    pub meta: Option<Kw<Meta>>,
    pub stream_buckets: Option<u64>,
    pub buffer: Option<Msec>,
    pub sync: Option<Msec>,
    pub interleave: Option<bool>,
    pub wait_key: Option<bool>,
    pub wait_video: Option<bool>,
    pub publish_notify: Option<bool>,
    pub play_restart: Option<bool>,
    pub idle_streams: Option<bool>,
    pub drop_idle_publisher: Option<OrOff<Msec>>,
    pub gop_cache: Option<bool>,
    pub publish_takeover: Option<bool>,
    pub gop_max_frame_count: Option<u64>,
    pub gop_max_video_count: Option<u64>,
    pub gop_max_audio_count: Option<u64>,
    pub gop_max_size: Option<Size>,
    pub write_merge: Option<WriteMerge>,
}

impl LiveAppConf {
    pub fn live(&self) -> bool {
        self.live.unwrap_or(false)
    }
    pub fn meta(&self) -> Meta {
        self.meta.map_or(Meta::On, |k| k.0)
    }
    pub fn interleave(&self) -> bool {
        self.interleave.unwrap_or(false)
    }
    pub fn wait_key(&self) -> bool {
        self.wait_key.unwrap_or(true)
    }
    pub fn wait_video(&self) -> bool {
        self.wait_video.unwrap_or(false)
    }
    pub fn publish_notify(&self) -> bool {
        self.publish_notify.unwrap_or(false)
    }
    pub fn play_restart(&self) -> bool {
        self.play_restart.unwrap_or(false)
    }
    pub fn idle_streams(&self) -> bool {
        self.idle_streams.unwrap_or(true)
    }
    pub fn publish_takeover(&self) -> bool {
        self.publish_takeover.unwrap_or(false)
    }
    /// `write_merge`, `auto` by default.
    pub fn write_merge(&self) -> WriteMerge {
        self.write_merge.unwrap_or(WriteMerge::Auto)
    }
    /// How long a player's media may wait to be written together with `write_merge <time>`; 0
    /// otherwise (written at the end of the wake-up, `auto` holding back audio, see `WriteMerge`).
    pub fn write_merge_ms(&self) -> u64 {
        match self.write_merge() {
            WriteMerge::Every(m) => m.0,
            WriteMerge::Off | WriteMerge::Auto => 0,
        }
    }
    /// `drop_idle_publisher`: close a publisher that sent no audio or video for this long.
    pub fn drop_idle_publisher_ms(&self) -> Option<u64> {
        self.drop_idle_publisher.and_then(|d| d.0).map(|d| d.0).filter(|&ms| ms > 0)
    }
    pub fn gop_cache(&self) -> bool {
        self.gop_cache.unwrap_or(true)
    }
    /// Defaults hold a 10 s GOP at 60 fps with 48 kHz AAC, within 16 MiB.
    pub fn gop_limits(&self) -> GopLimits {
        let n = |v: Option<u64>, d: u64| usize::try_from(v.unwrap_or(d)).unwrap_or(usize::MAX);
        GopLimits {
            frames: n(self.gop_max_frame_count, 2048),
            video: n(self.gop_max_video_count, 1024),
            audio: n(self.gop_max_audio_count, 1024),
            bytes: n(self.gop_max_size.map(|s| s.0), 16 << 20),
        }
    }
}

impl Merge for LiveAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.live, &prev.live);
        merge(&mut self.meta, &prev.meta);
        merge(&mut self.stream_buckets, &prev.stream_buckets);
        merge(&mut self.buffer, &prev.buffer);
        merge(&mut self.sync, &prev.sync);
        merge(&mut self.interleave, &prev.interleave);
        merge(&mut self.wait_key, &prev.wait_key);
        merge(&mut self.wait_video, &prev.wait_video);
        merge(&mut self.publish_notify, &prev.publish_notify);
        merge(&mut self.play_restart, &prev.play_restart);
        merge(&mut self.idle_streams, &prev.idle_streams);
        merge(&mut self.drop_idle_publisher, &prev.drop_idle_publisher);
        merge(&mut self.gop_cache, &prev.gop_cache);
        merge(&mut self.publish_takeover, &prev.publish_takeover);
        merge(&mut self.gop_max_frame_count, &prev.gop_max_frame_count);
        merge(&mut self.gop_max_video_count, &prev.gop_max_video_count);
        merge(&mut self.gop_max_audio_count, &prev.gop_max_audio_count);
        merge(&mut self.gop_max_size, &prev.gop_max_size);
        merge(&mut self.write_merge, &prev.write_merge);
        Ok(())
    }
}
