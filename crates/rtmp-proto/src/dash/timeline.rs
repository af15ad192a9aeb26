//! The segments of one stream's live window, per track, with the wall-clock anchoring of the MPD
//! timeline: `availabilityStartTime` (AST), Periods, `presentationTimeOffset`, availability times,
//! and which files are safe to delete.
//!
//! Anchoring. AST is fixed when the first segment arrives: that segment is complete at `now`, so
//! its end is announced at `now` (+ `availability_margin_ms`) and media time 0 of the Period (its
//! `presentationTimeOffset`) sits at AST. A segment ends, in MPD time, at
//! `Period@start + (t + d - presentationTimeOffset) / timescale`, and becomes available at AST
//! plus that. Later Periods keep AST and get a `Period@start` computed the same way from their
//! first segment, never before the end of the previous Period's media.
//!
//! Periods. A new one starts on [`Timeline::discontinuity`] (publisher reconnect, timestamp
//! reset), on a codec or track-set change ([`Timeline::set_track`] / [`Timeline::remove_track`]),
//! and by itself when a track's numbers or times do not continue (a number gap or an overlap), or
//! when a segment arrives more than `resync_late_ms` after its announced availability (a stalled
//! or slow publisher: the media clock fell behind the wall clock, so players would ask for
//! segments that do not exist yet). Its `presentationTimeOffset` base is the start of the first
//! segment pushed into it, converted to each track's timescale, so audio and video line up.
//! A Period is published (rendered) once every track it declares has a segment in it, so its set
//! of AdaptationSets never changes after it first appears.
//!
//! Window. The live edge is the latest segment end (MPD time) of any track; a segment is listed
//! while its end is less than `playlist_length_ms` (`dash_playlist_length`, also the
//! `timeShiftBufferDepth`) before that edge, which is exactly when the DASH availability window
//! still holds it. So the listing covers at least the window (once there is that much media) and
//! less than the window plus one segment, and a track that stops is emptied as the others go on.
//! Exception: the last segment a track has in a Period that still has listed segments stays
//! listed, so an AdaptationSet never disappears from a Period still shown. Periods without listed
//! segments are dropped (the current one is kept).
//!
//! Deletion. A segment that left the listing at publish time `p` is reported by
//! [`Timeline::removable`] from `p + timeShiftBufferDepth + max segment duration` on: it already
//! left the availability window when it was unlisted, and a client holding the previous MPD
//! (fetched just before `p`) gets a whole window plus a segment of slack to fetch it.

use std::collections::VecDeque;
use std::fmt;

use super::{Track, TrackInfo};

/// `dash_playlist_length` default (30 s).
pub const DEFAULT_PLAYLIST_LENGTH_MS: u64 = 30_000;
/// `dash_fragment` default (5 s).
pub const DEFAULT_FRAGMENT_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineConfig {
    /// `dash_playlist_length`: the window listed, and the MPD's `timeShiftBufferDepth`.
    pub playlist_length_ms: u64,
    /// `dash_fragment`: the target segment length (the MPD's `minBufferTime`).
    pub fragment_ms: u64,
    /// Announce every segment this much after the moment it was complete (AST shifted later):
    /// slack for publisher jitter, paid in latency.
    pub availability_margin_ms: u64,
    /// Start a new Period when a segment arrives more than this after its announced
    /// availability. `None`: never.
    pub resync_late_ms: Option<u64>,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            playlist_length_ms: DEFAULT_PLAYLIST_LENGTH_MS,
            fragment_ms: DEFAULT_FRAGMENT_MS,
            availability_margin_ms: 0,
            resync_late_ms: Some(DEFAULT_FRAGMENT_MS),
        }
    }
}

impl TimelineConfig {
    /// The directives' values; the resync tolerance is one fragment.
    pub fn new(playlist_length_ms: u64, fragment_ms: u64) -> Self {
        TimelineConfig {
            playlist_length_ms,
            fragment_ms,
            resync_late_ms: Some(fragment_ms.max(1)),
            ..TimelineConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineError {
    /// No [`Timeline::set_track`] for this track (or a timescale of 0).
    UnknownTrack(Track),
    ZeroDuration,
    /// Numbers name files: they must rise for the whole life of the stream, across Periods.
    NumberNotIncreasing {
        last: u64,
        got: u64,
    },
}

impl fmt::Display for TimelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimelineError::UnknownTrack(t) => write!(f, "DASH: segment for undeclared track {t:?}"),
            TimelineError::ZeroDuration => write!(f, "DASH: segment of zero duration"),
            TimelineError::NumberNotIncreasing { last, got } => {
                write!(f, "DASH: segment number {got} after {last}")
            }
        }
    }
}

impl std::error::Error for TimelineError {}

/// One complete segment of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The number in its file name (`$Number$`).
    pub number: u64,
    /// Its `tfdt` (earliest presentation time) in `timescale` units.
    pub start: u64,
    pub duration: u64,
    pub timescale: u32,
    /// The id of the Period it belongs to.
    pub period: u64,
    /// Wall-clock ms at which the MPD says it is available (its end in MPD time, plus AST).
    pub available_ms: u64,
    /// Wall-clock ms at which it was pushed (complete on disk).
    pub pushed_ms: u64,
    pub bytes: Option<u64>,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.start + self.duration
    }

    /// Duration in milliseconds, rounded up.
    pub fn duration_ms_ceil(&self) -> u64 {
        div_ceil(u128::from(self.duration) * 1000, u128::from(self.timescale)) as u64
    }
}

/// One Period of the MPD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `Period@id` (0, 1, …: never reused within the stream).
    pub id: u64,
    /// `Period@start`, ms after AST.
    pub start_ms: u64,
    /// The common media time of the Period start, in `base_timescale` units.
    base: u64,
    base_timescale: u32,
    /// The tracks the Period declares, as they were when it began.
    tracks: [Option<TrackInfo>; 2],
    seen: [bool; 2],
    ready: bool,
    bitrate: [Option<u64>; 2],
}

impl Period {
    /// `presentationTimeOffset` for a track of this timescale.
    pub fn presentation_time_offset(&self, timescale: u32) -> u64 {
        (u128::from(self.base) * u128::from(timescale) / u128::from(self.base_timescale)) as u64
    }

    pub fn info(&self, track: Track) -> Option<&TrackInfo> {
        self.tracks[track.index()].as_ref()
    }

    /// Every declared track has a segment in it: it may be published.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Bits per second of the track's first segment in this Period with a known size.
    pub fn measured_bitrate(&self, track: Track) -> Option<u64> {
        self.bitrate[track.index()]
    }

    /// MPD time in ms (relative to AST, may be negative) of media time `t` of a track.
    fn mpd_time_us(&self, t: u64, timescale: u32) -> i128 {
        let pto = i128::from(self.presentation_time_offset(timescale));
        i128::from(self.start_ms) * 1000 + (i128::from(t) - pto) * 1_000_000 / i128::from(timescale)
    }

    fn update_ready(&mut self) {
        self.ready = self.ready || (0..2).all(|i| self.tracks[i].is_none() || self.seen[i]);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retired {
    track: Track,
    number: u64,
    remove_at_ms: u64,
}

/// The live timeline of one stream (keep it across republishes: AST must not change).
#[derive(Debug, Clone)]
pub struct Timeline {
    cfg: TimelineConfig,
    tracks: [Option<TrackInfo>; 2],
    segments: [VecDeque<Segment>; 2],
    last_number: [Option<u64>; 2],
    periods: VecDeque<Period>,
    next_period_id: u64,
    pending_period: bool,
    ast_ms: Option<u64>,
    publish_ms: u64,
    version: u64,
    last_duration_ms: u64,
    retired: Vec<Retired>,
}

fn div_ceil(a: u128, b: u128) -> u128 {
    a.div_ceil(b)
}

impl Timeline {
    pub fn new(cfg: TimelineConfig) -> Timeline {
        Timeline {
            cfg,
            tracks: [None, None],
            segments: [VecDeque::new(), VecDeque::new()],
            last_number: [None, None],
            periods: VecDeque::new(),
            next_period_id: 0,
            pending_period: false,
            ast_ms: None,
            publish_ms: 0,
            version: 0,
            last_duration_ms: 0,
            retired: Vec::new(),
        }
    }

    pub fn config(&self) -> &TimelineConfig {
        &self.cfg
    }

    /// Declares a track or changes its description (codec config, size, rate). A change to a
    /// track that already has segments in the current Period starts a new Period at the next
    /// segment; so does adding a track to a Period already published.
    pub fn set_track(&mut self, info: TrackInfo) {
        let i = info.track().index();
        if self.tracks[i].as_ref() == Some(&info) {
            return;
        }
        match self.periods.back_mut() {
            Some(p) if !p.ready && !p.seen[i] => {
                p.tracks[i] = Some(info.clone());
                p.update_ready();
            }
            Some(_) => self.pending_period = true,
            None => {}
        }
        self.tracks[i] = Some(info);
    }

    /// The track stops (e.g. a republish without audio): a new Period without it.
    pub fn remove_track(&mut self, track: Track) {
        let i = track.index();
        if self.tracks[i].take().is_none() {
            return;
        }
        match self.periods.back_mut() {
            Some(p) if !p.ready && !p.seen[i] => {
                p.tracks[i] = None;
                p.update_ready();
            }
            Some(_) => self.pending_period = true,
            None => {}
        }
    }

    pub fn track_info(&self, track: Track) -> Option<&TrackInfo> {
        self.tracks[track.index()].as_ref()
    }

    /// The next segment (of any track) starts a new Period: the publisher reconnected or its
    /// timestamps jumped. Push every segment of the old run before calling this.
    pub fn discontinuity(&mut self) {
        if !self.periods.is_empty() {
            self.pending_period = true;
        }
    }

    /// The number the next segment of `track` should carry (0 for the first): give it to a new
    /// packager after a republish so file names never repeat.
    pub fn next_number(&self, track: Track) -> u64 {
        self.last_number[track.index()].map_or(0, |n| n + 1)
    }

    /// A segment is complete (on disk under its final name) at `now_ms`.
    pub fn push_segment(
        &mut self,
        track: Track,
        number: u64,
        start: u64,
        duration: u64,
        now_ms: u64,
    ) -> Result<(), TimelineError> {
        self.push_segment_sized(track, number, start, duration, None, now_ms)
    }

    /// [`Timeline::push_segment`] with the segment's size, for a measured `@bandwidth`.
    pub fn push_segment_sized(
        &mut self,
        track: Track,
        number: u64,
        start: u64,
        duration: u64,
        bytes: Option<u64>,
        now_ms: u64,
    ) -> Result<(), TimelineError> {
        let ti = track.index();
        let timescale = match &self.tracks[ti] {
            Some(info) if info.timescale() > 0 => info.timescale(),
            _ => return Err(TimelineError::UnknownTrack(track)),
        };
        if duration == 0 {
            return Err(TimelineError::ZeroDuration);
        }
        if let Some(last) = self.last_number[ti] {
            if number <= last {
                return Err(TimelineError::NumberNotIncreasing { last, got: number });
            }
        }
        let mut new_period = self.pending_period || self.periods.is_empty();
        if let (false, Some(cur)) = (new_period, self.periods.back()) {
            if cur.info(track).map(TrackInfo::timescale) != Some(timescale) {
                new_period = true;
            } else if let Some(prev) = self.segments[ti].back().filter(|s| s.period == cur.id) {
                new_period = number != prev.number + 1 || start < prev.end();
            }
            if !new_period {
                if let Some(tolerance) = self.cfg.resync_late_ms {
                    let due = self.available_ms(cur, start + duration, timescale);
                    new_period = now_ms > due.saturating_add(tolerance);
                }
            }
        }
        if new_period {
            self.open_period(start, duration, timescale, now_ms);
        }
        let cur = self.periods.back_mut().expect("a period");
        if cur.tracks[ti].is_none() {
            cur.tracks[ti] = self.tracks[ti].clone();
        }
        cur.seen[ti] = true;
        cur.update_ready();
        if let (None, Some(b)) = (cur.bitrate[ti], bytes) {
            let bps = u128::from(b) * 8 * u128::from(timescale) / u128::from(duration);
            cur.bitrate[ti] = Some(bps.clamp(1, u128::from(u64::MAX)) as u64);
        }
        let period = cur.id;
        let cur = self.periods.back().expect("a period");
        let available_ms = self.available_ms(cur, start + duration, timescale);
        let seg = Segment { number, start, duration, timescale, period, available_ms, pushed_ms: now_ms, bytes };
        self.last_duration_ms = (u128::from(duration) * 1000 / u128::from(timescale)) as u64;
        self.segments[ti].push_back(seg);
        self.last_number[ti] = Some(number);
        self.publish_ms = if self.version == 0 { now_ms } else { now_ms.max(self.publish_ms + 1) };
        self.version += 1;
        self.expire();
        Ok(())
    }

    /// Wall-clock ms at which media time `end` of the Period is announced available.
    fn available_ms(&self, p: &Period, end: u64, timescale: u32) -> u64 {
        let us = p.mpd_time_us(end, timescale).max(0) as u128;
        self.ast_ms.unwrap_or(0) + div_ceil(us, 1000) as u64
    }

    fn open_period(&mut self, start: u64, duration: u64, timescale: u32, now_ms: u64) {
        let dur_ms = (u128::from(duration) * 1000 / u128::from(timescale)) as u64;
        // The wall-clock time of this segment's start, so that its end is announced at now.
        let anchor = (now_ms + self.cfg.availability_margin_ms).saturating_sub(dur_ms);
        let start_ms = match self.ast_ms {
            None => {
                self.ast_ms = Some(anchor);
                0
            }
            Some(ast) => {
                let mut s = anchor.saturating_sub(ast);
                if let Some(prev) = self.periods.back() {
                    s = s.max(prev.start_ms + 1).max(self.period_end_ms(prev));
                }
                s
            }
        };
        let tracks = self.tracks.clone();
        let mut p = Period {
            id: self.next_period_id,
            start_ms,
            base: start,
            base_timescale: timescale,
            tracks,
            seen: [false; 2],
            ready: false,
            bitrate: [None; 2],
        };
        p.update_ready();
        self.next_period_id += 1;
        self.pending_period = false;
        self.periods.push_back(p);
    }

    /// The end of a Period's listed media in MPD time (ms after AST, rounded up).
    fn period_end_ms(&self, p: &Period) -> u64 {
        let mut end = 0u64;
        for segs in &self.segments {
            for s in segs.iter().filter(|s| s.period == p.id) {
                let us = p.mpd_time_us(s.end(), s.timescale).max(0) as u128;
                end = end.max(div_ceil(us, 1000) as u64);
            }
        }
        end
    }

    /// MPD time (µs after AST) of a listed segment's end.
    fn end_us(&self, s: &Segment) -> i128 {
        self.periods.iter().find(|p| p.id == s.period).map_or(i128::MIN, |p| p.mpd_time_us(s.end(), s.timescale))
    }

    /// Moves what left the window to the retired list; drops Periods with nothing listed.
    fn expire(&mut self) {
        let ends: Vec<Vec<i128>> =
            self.segments.iter().map(|segs| segs.iter().map(|s| self.end_us(s)).collect()).collect();
        let Some(edge) = ends.iter().flatten().copied().max() else { return };
        let limit = edge - i128::from(self.cfg.playlist_length_ms) * 1000;
        let mut remaining: Vec<u64> = self.periods.back().map(|p| p.id).into_iter().collect();
        for (segs, ends) in self.segments.iter().zip(&ends) {
            remaining.extend(segs.iter().zip(ends).filter(|(_, &e)| e > limit).map(|(s, _)| s.period));
        }
        remaining.sort_unstable();
        remaining.dedup();
        let remove_at_ms = self.publish_ms + self.cfg.playlist_length_ms + self.max_segment_ms();
        for (ti, track) in Track::ALL.into_iter().enumerate() {
            let segs = &self.segments[ti];
            // Listed: it ends inside the window, or it is the track's last segment of a Period
            // that is still shown (so the Period keeps its AdaptationSets).
            let keep: Vec<bool> = (0..segs.len())
                .map(|i| {
                    ends[ti][i] > limit
                        || (segs.get(i + 1).is_none_or(|n| n.period != segs[i].period)
                            && remaining.binary_search(&segs[i].period).is_ok())
                })
                .collect();
            let mut k = keep.iter();
            let retired = &mut self.retired;
            self.segments[ti].retain(|s| {
                let keep = *k.next().unwrap_or(&true);
                if !keep {
                    retired.push(Retired { track, number: s.number, remove_at_ms });
                }
                keep
            });
        }
        self.periods.retain(|p| remaining.binary_search(&p.id).is_ok());
    }

    /// The listed segments of a track, oldest first (including those of unpublished Periods).
    pub fn segments(&self, track: Track) -> impl Iterator<Item = &Segment> {
        self.segments[track.index()].iter()
    }

    /// The listed segments of a track in one Period.
    pub fn period_segments(&self, period: u64, track: Track) -> impl Iterator<Item = &Segment> {
        self.segments(track).filter(move |s| s.period == period)
    }

    /// The Periods still in the window, oldest first (published or not: see [`Period::is_ready`]).
    pub fn periods(&self) -> impl Iterator<Item = &Period> {
        self.periods.iter()
    }

    /// `MPD@availabilityStartTime` (ms since the epoch), once the first segment arrived.
    pub fn availability_start_ms(&self) -> Option<u64> {
        self.ast_ms
    }

    /// `MPD@publishTime` of the current version: strictly rising from one version to the next.
    pub fn publish_ms(&self) -> u64 {
        self.publish_ms
    }

    /// Bumped on every change: rewrite the MPD when it moves.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// `MPD@timeShiftBufferDepth`.
    pub fn time_shift_buffer_depth_ms(&self) -> u64 {
        self.cfg.playlist_length_ms
    }

    /// The longest listed segment (ms, rounded up): `MPD@maxSegmentDuration`.
    pub fn max_segment_ms(&self) -> u64 {
        self.segments.iter().flatten().map(Segment::duration_ms_ceil).max().unwrap_or(0)
    }

    /// The newest segment's duration (ms, rounded down): `MPD@minimumUpdatePeriod`.
    pub fn last_segment_ms(&self) -> u64 {
        self.last_duration_ms
    }

    /// Files that left the window long enough ago to be deleted at `now_ms`.
    pub fn removable(&self, now_ms: u64) -> Vec<(Track, u64)> {
        self.retired.iter().filter(|r| now_ms >= r.remove_at_ms).map(|r| (r.track, r.number)).collect()
    }

    /// [`Timeline::removable`], forgetting them (each file is reported once).
    pub fn take_removable(&mut self, now_ms: u64) -> Vec<(Track, u64)> {
        let out = self.removable(now_ms);
        self.retired.retain(|r| now_ms < r.remove_at_ms);
        out
    }

    /// Every file still tracked: listed or waiting for deletion (for a final cleanup).
    pub fn all_files(&self) -> Vec<(Track, u64)> {
        let mut v: Vec<_> = self.retired.iter().map(|r| (r.track, r.number)).collect();
        for t in Track::ALL {
            v.extend(self.segments(t).map(|s| (t, s.number)));
        }
        v
    }
}
