//! Low-Latency HLS (RFC 8216bis) without IO: the media playlist of one rendition as it grows part by
//! part, its text, and the answers to blocking reloads and part requests. The state goes from the
//! worker that writes it to the workers that serve it as JSON (`encode`/`decode`); `decode` refuses
//! anything that breaks the invariants, so a reader never renders or blocks on garbage.

use std::collections::VecDeque;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::clock::iso8601_ms;

/// A state with more complete segments than this is garbage; the writer drops the oldest first.
pub const MAX_SEGMENTS: usize = 100_000;
/// The same for the parts of the complete segments together, and for the open segment's parts.
pub const MAX_PARTS: usize = 100_000;
/// PART-TARGET is at least 1 ms and at most a minute.
const MAX_PART_TARGET_MS: u64 = 60_000;

/// One partial segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlPart {
    pub duration_ms: u64,
    pub independent: bool,
    /// Its length in bytes: a segment's parts lie one after another in the segment (its file),
    /// so a part is a byte range of it.
    #[serde(default)]
    pub size: u64,
}

/// One media segment: complete (in `LlState::segments`) or the one being made (`LlState::open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlSegment {
    pub msn: u64,
    /// Sum of its parts' durations (what EXTINF says once it is complete).
    pub duration_ms: u64,
    pub parts: Vec<LlPart>,
    /// An EXT-X-DISCONTINUITY goes before it.
    pub discontinuity: bool,
    /// The id of its init segment: EXT-X-MAP URI `{prefix}init-{map}.mp4`.
    pub map: u64,
    /// Wall clock (Unix ms) of its start, for EXT-X-PROGRAM-DATE-TIME; 0 = none.
    pub date_ms: u64,
}

impl LlSegment {
    fn empty(msn: u64, map: u64, discontinuity: bool, date_ms: u64) -> LlSegment {
        LlSegment { msn, duration_ms: 0, parts: Vec::new(), discontinuity, map, date_ms }
    }

    fn parts_ms(&self) -> u64 {
        self.parts.iter().fold(0, |a, p| a.saturating_add(p.duration_ms))
    }
}

/// The playlist of one rendition: the window of complete segments and the open one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlState {
    pub part_target_ms: u64,
    /// The configured segment duration (`hls_fragment`): TARGETDURATION is at least its ceiling.
    pub fragment_ms: u64,
    /// Complete segments older than this (counted from the newest back) leave the playlist; at
    /// least 3 stay.
    pub window_ms: u64,
    /// Complete segments, ascending and contiguous msn.
    pub segments: VecDeque<LlSegment>,
    /// The segment being made: msn of the last complete one + 1.
    pub open: LlSegment,
    pub ended: bool,
    /// Discontinuities that left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    #[serde(default)]
    pub discontinuity_sequence: u64,
    /// The longest segment completed so far, rounded to seconds: TARGETDURATION never shrinks
    /// when a long segment leaves the window (RFC 8216bis: it MUST NOT change).
    #[serde(default)]
    pub target_floor_s: u64,
}

/// Another rendition's newest part, for EXT-X-RENDITION-REPORT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u32,
}

/// What to do with a playlist request that carries `_HLS_msn` / `_HLS_part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Answer now with the whole playlist.
    Ready,
    /// Hold the request until the state changes (503 after 3 target durations).
    Wait,
    /// 400: the directives are malformed or ask too far ahead.
    BadRequest,
}

/// What to do with a request for a part file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartAvail {
    Ready,
    /// The preload-hinted part: hold the request until it is complete.
    Wait,
    /// 404.
    Gone,
}

/// EXTINF rounded to the nearest second, as the TARGETDURATION rule does.
fn rounded_secs(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

/// Milliseconds as decimal seconds with 3 places, without floats.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl LlState {
    pub fn new(part_target_ms: u64, fragment_ms: u64, window_ms: u64, first_msn: u64) -> LlState {
        LlState {
            part_target_ms,
            fragment_ms,
            window_ms,
            segments: VecDeque::new(),
            open: LlSegment::empty(first_msn, 0, false, 0),
            ended: false,
            discontinuity_sequence: 0,
            target_floor_s: 0,
        }
    }

    /// Appends a part to the open segment. Beyond `MAX_PARTS` parts in one segment the part is
    /// not listed (a segment that long means the segmenter is broken).
    pub fn add_part(&mut self, part: LlPart) {
        if self.open.parts.len() >= MAX_PARTS {
            return;
        }
        self.open.duration_ms = self.open.duration_ms.saturating_add(part.duration_ms);
        self.open.parts.push(part);
    }

    /// Completes the open segment (when it has parts) and opens the next one with the given init,
    /// discontinuity and date; without parts the open segment takes them instead (a pending
    /// discontinuity stays). Returns the msns of the segments that left the window.
    pub fn end_segment(&mut self, next_map: u64, next_discontinuity: bool, next_date_ms: u64) -> Vec<u64> {
        let next_msn = self.open.msn.checked_add(1);
        match next_msn {
            Some(msn) if !self.open.parts.is_empty() => {
                let next = LlSegment::empty(msn, next_map, next_discontinuity, next_date_ms);
                let mut done = std::mem::replace(&mut self.open, next);
                done.duration_ms = done.parts_ms();
                self.target_floor_s = self.target_floor_s.max(rounded_secs(done.duration_ms));
                self.segments.push_back(done);
            }
            // The msn cannot grow past u64::MAX: that segment stays open.
            None if !self.open.parts.is_empty() => {}
            _ => {
                self.open.map = next_map;
                self.open.discontinuity |= next_discontinuity;
                self.open.date_ms = next_date_ms;
            }
        }
        self.trim()
    }

    /// The stream ended: the open segment completes (if it has parts), EXT-X-ENDLIST follows.
    /// Returns the msns of the segments that left the window.
    pub fn finish(&mut self) -> Vec<u64> {
        let gone = if self.open.parts.is_empty() { Vec::new() } else { self.end_segment(self.open.map, false, 0) };
        self.ended = true;
        gone
    }

    /// Drops the oldest complete segments while the rest still fill the window and more than 3
    /// remain (or while the state is over its bounds).
    fn trim(&mut self) -> Vec<u64> {
        let mut total = self.segments.iter().fold(0u64, |a, s| a.saturating_add(s.duration_ms));
        let mut parts: usize = self.segments.iter().map(|s| s.parts.len()).sum();
        let mut gone = Vec::new();
        while let Some(front) = self.segments.front() {
            let rest = total.saturating_sub(front.duration_ms);
            let over_window = self.segments.len() > 3 && rest >= self.window_ms;
            let over_bounds = self.segments.len() > MAX_SEGMENTS || parts > MAX_PARTS;
            if !over_window && !over_bounds {
                break;
            }
            total = rest;
            parts = parts.saturating_sub(front.parts.len());
            let Some(s) = self.segments.pop_front() else { break };
            if s.discontinuity {
                self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
            }
            gone.push(s.msn);
        }
        gone
    }

    /// The newest part that exists: (msn, part index).
    pub fn last(&self) -> Option<(u64, u32)> {
        if let Some(i) = self.open.parts.len().checked_sub(1) {
            return Some((self.open.msn, index(i)));
        }
        let s = self.segments.back()?;
        Some((s.msn, index(s.parts.len().checked_sub(1)?)))
    }

    /// TARGETDURATION in seconds: the ceiling of the configured fragment, the rounded duration of
    /// every listed (and every earlier) segment, at least 1.
    pub fn target_duration_s(&self) -> u64 {
        let floor = self.fragment_ms.div_ceil(1000).max(self.target_floor_s).max(1);
        self.segments.iter().map(|s| rounded_secs(s.duration_ms)).fold(floor, u64::max)
    }

    /// The oldest msn whose EXT-X-PART tags are listed: complete segments that end within 3 target
    /// durations of the playlist's end (the end of the open segment's parts), and the open one.
    /// Older parts must stay downloadable a while longer: the caller keeps their files.
    pub fn oldest_listed_part_msn(&self) -> u64 {
        let limit = self.target_duration_s().saturating_mul(3000);
        // Distance from the end of the segment at hand to the end of the playlist.
        let mut to_end = self.open.duration_ms;
        let mut oldest = self.open.msn;
        for s in self.segments.iter().rev() {
            if to_end > limit {
                break;
            }
            oldest = s.msn;
            to_end = to_end.saturating_add(s.duration_ms);
        }
        oldest
    }

    /// How many of the oldest complete segments end at least CAN-SKIP-UNTIL (6 target durations)
    /// before the playlist's end: what a delta update (`_HLS_skip=YES`) leaves out.
    fn skippable(&self) -> usize {
        let boundary = self.target_duration_s().saturating_mul(6000);
        let mut to_end = self.open.duration_ms;
        let mut kept = 0;
        for s in self.segments.iter().rev() {
            if to_end >= boundary {
                break;
            }
            kept += 1;
            to_end = to_end.saturating_add(s.duration_ms);
        }
        self.segments.len().saturating_sub(kept)
    }

    /// The media playlist. `prefix` goes before every URI; `skip` makes a delta update (EXT-X-SKIP
    /// instead of the segments older than the skip boundary); `reports` name the other renditions.
    pub fn render(&self, prefix: &str, skip: bool, reports: &[RenditionReport]) -> String {
        let t = self.target_duration_s();
        let t_ms = t.saturating_mul(1000);
        let pt = self.part_target_ms;
        let mut o = String::with_capacity(512 + self.segments.len() * 64 + self.open.parts.len() * 48);
        o.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
        let _ = writeln!(o, "#EXT-X-TARGETDURATION:{t}");
        let _ = writeln!(
            o,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},HOLD-BACK={},CAN-SKIP-UNTIL={}",
            secs(pt.saturating_mul(3)),
            secs(t_ms.saturating_mul(3)),
            secs(t_ms.saturating_mul(6))
        );
        let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={}", secs(pt));
        let first = self.segments.front().map_or(self.open.msn, |s| s.msn);
        let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        }
        let skipped = if skip { self.skippable() } else { 0 };
        if skipped > 0 {
            let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let parts_from = self.oldest_listed_part_msn();
        let mut map = None;
        for s in self.segments.iter().skip(skipped) {
            segment_head(&mut o, s, &mut map, prefix);
            if s.msn >= parts_from {
                part_lines(&mut o, s, prefix);
            }
            let _ = writeln!(o, "#EXTINF:{},", secs(s.duration_ms));
            let _ = writeln!(o, "{prefix}{}.m4s", s.msn);
        }
        if !self.open.parts.is_empty() {
            segment_head(&mut o, &self.open, &mut map, prefix);
            part_lines(&mut o, &self.open, prefix);
        }
        if !self.ended {
            let _ = writeln!(
                o,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{prefix}{}.{}.m4s\"",
                self.open.msn,
                self.open.parts.len()
            );
        }
        for r in reports {
            let _ = writeln!(
                o,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
                r.uri, r.last_msn, r.last_part
            );
        }
        if self.ended {
            o.push_str("#EXT-X-ENDLIST\n");
        }
        o
    }

    /// Blocking playlist reload (RFC 8216bis §6.2.5.2): `msn` and `part` are `_HLS_msn` and
    /// `_HLS_part`.
    pub fn block(&self, msn: Option<u64>, part: Option<u64>) -> Block {
        let Some(msn) = msn else {
            return if part.is_some() { Block::BadRequest } else { Block::Ready };
        };
        if self.ended {
            return Block::Ready;
        }
        let open = &self.open;
        let last_msn = if open.parts.is_empty() { open.msn.saturating_sub(1) } else { open.msn };
        if msn > last_msn.saturating_add(2) {
            return Block::BadRequest;
        }
        let Some(part) = part else {
            return if msn < open.msn { Block::Ready } else { Block::Wait };
        };
        // A part index past the end of a complete segment is part 0 of the next one.
        let (msn, part) = match self.segment(msn) {
            Some(s) if part >= s.parts.len() as u64 => (msn.saturating_add(1), 0),
            _ => (msn, part),
        };
        if msn < open.msn {
            return Block::Ready;
        }
        let have = open.parts.len() as u64;
        let ahead = if msn == open.msn {
            part > have.saturating_add(self.advance_part_limit())
        } else {
            part > self.advance_part_limit()
        };
        if ahead {
            Block::BadRequest
        } else if msn == open.msn && part < have {
            Block::Ready
        } else {
            Block::Wait
        }
    }

    /// How many parts ahead of the newest a request may ask: 3 target durations' worth of parts
    /// (3 s / PART-TARGET) when PART-TARGET is under a second, else 3.
    fn advance_part_limit(&self) -> u64 {
        match self.part_target_ms {
            pt @ 1..=999 => (3000 / pt).max(3),
            _ => 3,
        }
    }

    /// A request for the part file `{msn}.{part}.m4s`.
    pub fn part_status(&self, msn: u64, part: u32) -> PartAvail {
        let i = part as usize;
        let exists = if msn == self.open.msn {
            i < self.open.parts.len()
        } else {
            self.segment(msn).is_some_and(|s| i < s.parts.len())
        };
        if exists {
            PartAvail::Ready
        } else if !self.ended && msn == self.open.msn && i == self.open.parts.len() {
            PartAvail::Wait
        } else {
            PartAvail::Gone
        }
    }

    /// The complete segment `msn` is listed.
    /// Where part `part` of segment `msn` lies in that segment: (offset, length) in bytes, when it
    /// exists.
    pub fn part_range(&self, msn: u64, part: u32) -> Option<(u64, u64)> {
        let seg = if msn == self.open.msn { Some(&self.open) } else { self.segments.iter().find(|s| s.msn == msn) }?;
        let i = usize::try_from(part).ok()?;
        let p = seg.parts.get(i)?;
        let offset = seg.parts.get(..i)?.iter().fold(0u64, |a, q| a.saturating_add(q.size));
        Some((offset, p.size))
    }

    pub fn segment_exists(&self, msn: u64) -> bool {
        self.segment(msn).is_some()
    }

    /// Some listed segment (or the open one) uses the init segment `map`.
    pub fn map_exists(&self, map: u64) -> bool {
        self.open.map == map || self.segments.iter().any(|s| s.map == map)
    }

    fn segment(&self, msn: u64) -> Option<&LlSegment> {
        let first = self.segments.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(i)
    }

    /// JSON, for the shared memory.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads what `encode` wrote; `None` for anything else or for a state that breaks the
    /// invariants.
    pub fn decode(b: &[u8]) -> Option<LlState> {
        let s: LlState = serde_json::from_slice(b).ok()?;
        s.is_valid().then_some(s)
    }

    /// The invariants every method keeps.
    fn is_valid(&self) -> bool {
        let bounds = (1..=MAX_PART_TARGET_MS).contains(&self.part_target_ms)
            && self.fragment_ms >= 1
            && self.segments.len() <= MAX_SEGMENTS
            && self.segments.iter().map(|s| s.parts.len()).sum::<usize>() <= MAX_PARTS
            && self.open.parts.len() <= MAX_PARTS;
        let complete = self.segments.iter().all(|s| !s.parts.is_empty() && s.duration_ms == s.parts_ms());
        let msns = self.segments.iter().chain(std::iter::once(&self.open)).map(|s| s.msn);
        let contiguous = msns.clone().zip(msns.skip(1)).all(|(a, b)| a.checked_add(1) == Some(b));
        bounds && complete && contiguous && self.open.duration_ms == self.open.parts_ms()
    }
}

/// DISCONTINUITY, MAP (first rendered segment, or a new init) and PROGRAM-DATE-TIME of a segment.
fn segment_head(o: &mut String, s: &LlSegment, map: &mut Option<u64>, prefix: &str) {
    if s.discontinuity {
        o.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *map != Some(s.map) {
        let _ = writeln!(o, "#EXT-X-MAP:URI=\"{prefix}init-{}.mp4\"", s.map);
        *map = Some(s.map);
    }
    if s.date_ms > 0 {
        let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601_ms(s.date_ms));
    }
}

fn part_lines(o: &mut String, s: &LlSegment, prefix: &str) {
    for (i, p) in s.parts.iter().enumerate() {
        let _ = write!(o, "#EXT-X-PART:DURATION={},URI=\"{prefix}{}.{i}.m4s\"", secs(p.duration_ms), s.msn);
        o.push_str(if p.independent { ",INDEPENDENT=YES\n" } else { "\n" });
    }
}

#[cfg(test)]
#[path = "ll_tests.rs"]
mod tests;
