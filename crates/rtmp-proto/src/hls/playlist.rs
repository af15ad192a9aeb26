//! HLS media playlists: the window of finished segments and its M3U8 text, and reading back a
//! playlist an earlier publish left behind (`hls_continuous`, also across an nginx restart).

use std::collections::VecDeque;
use std::fmt::Write;

/// One finished segment as the playlist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// The number in the segment's file name (sequence, timestamp or wall clock).
    pub id: u64,
    pub duration_ms: u64,
    /// The timeline jumped before this segment (a republish, a codec change).
    pub discontinuity: bool,
    /// AES-128 key the segment is encrypted with (the number in the key's file name).
    pub key_id: Option<u64>,
    /// EXT-X-PROGRAM-DATE-TIME of the segment's first frame.
    pub date: Option<String>,
}

/// The media playlist of one stream.
#[derive(Debug, Clone)]
pub struct Playlist {
    pub segments: VecDeque<SegmentEntry>,
    /// Media sequence number of `segments[0]`.
    pub media_sequence: u64,
    /// Discontinuities that have left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    pub discontinuity_sequence: u64,
    /// Seconds; only grows while the stream lives, so players never see it shrink.
    target_duration: u64,
    /// Keep at least this much media listed (`hls_playlist_length`), and three target durations.
    window_ms: u64,
    /// `hls_type event`: nothing leaves the playlist.
    event: bool,
    /// The publisher left an event playlist: EXT-X-ENDLIST.
    pub ended: bool,
}

/// What an old playlist says, for a publish that continues it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: u64,
    pub segments: Vec<SegmentEntry>,
}

/// EXTINF as the spec rounds it for the TARGETDURATION rule: to the nearest second.
fn rounded_secs(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

impl Playlist {
    pub fn new(window_ms: u64, fragment_ms: u64, event: bool) -> Self {
        Playlist {
            segments: VecDeque::new(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            target_duration: rounded_secs(fragment_ms).max(1),
            window_ms,
            event,
            ended: false,
        }
    }

    /// Continues an earlier playlist: its segments stay listed, numbering goes on after them.
    pub fn restore(&mut self, r: Restored) {
        self.media_sequence = r.media_sequence;
        self.discontinuity_sequence = r.discontinuity_sequence;
        self.target_duration = self.target_duration.max(r.target_duration);
        self.segments = r.segments.into();
        for s in &self.segments {
            self.target_duration = self.target_duration.max(rounded_secs(s.duration_ms));
        }
        self.ended = false;
        self.trim();
    }

    /// Media sequence number the next segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.media_sequence.saturating_add(self.segments.len() as u64)
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    /// The last listed segment's file id, if any.
    pub fn last_id(&self) -> Option<u64> {
        self.segments.back().map(|s| s.id)
    }

    /// Lists a finished segment; returns the segments that left the window.
    pub fn push(&mut self, seg: SegmentEntry) -> Vec<SegmentEntry> {
        self.target_duration = self.target_duration.max(rounded_secs(seg.duration_ms));
        self.segments.push_back(seg);
        self.trim()
    }

    fn trim(&mut self) -> Vec<SegmentEntry> {
        let mut gone = Vec::new();
        if self.event {
            return gone;
        }
        let keep = self.window_ms.max(self.target_duration.saturating_mul(3000));
        let mut total: u64 = self.segments.iter().map(|s| s.duration_ms).sum();
        while let Some(front) = self.segments.front() {
            if self.segments.len() <= 1 || total.saturating_sub(front.duration_ms) < keep {
                break;
            }
            total = total.saturating_sub(front.duration_ms);
            let Some(s) = self.segments.pop_front() else { break };
            self.media_sequence = self.media_sequence.saturating_add(1);
            if s.discontinuity {
                self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
            }
            gone.push(s);
        }
        gone
    }

    /// The M3U8 text. `uri` names a segment, `key_uri` a key by its id. Keys use the default IV
    /// of the spec (the segment's media sequence number), so one EXT-X-KEY serves many segments.
    pub fn render(&self, uri: &dyn Fn(&SegmentEntry) -> String, key_uri: &dyn Fn(u64) -> String) -> String {
        self.render_with_maps(uri, key_uri, None)
    }

    /// The M3U8 text, for fMP4 segments when `map_uri` names each segment's init: VERSION 7
    /// (EXT-X-MAP needs 6 or more) and an EXT-X-MAP before the first segment and before every
    /// segment whose init differs from the one before it (those follow an EXT-X-DISCONTINUITY).
    /// An EXT-X-KEY applies to the EXT-X-MAPs after it too, and an encrypted init would need an
    /// explicit IV (RFC 8216 §4.3.2.5): inits stay clear, so a MAP that would follow an AES-128
    /// key gets an `EXT-X-KEY:METHOD=NONE` before it and the key is repeated after it.
    pub fn render_with_maps(
        &self,
        uri: &dyn Fn(&SegmentEntry) -> String,
        key_uri: &dyn Fn(u64) -> String,
        map_uri: Option<&MapUri<'_>>,
    ) -> String {
        let mut o = String::with_capacity(128 + self.segments.len() * 120);
        let version = if map_uri.is_some() { 7 } else { 3 };
        let _ = write!(o, "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        }
        if self.event {
            o.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n");
        }
        let (mut key, mut map) = (None, None);
        for s in &self.segments {
            if s.discontinuity {
                o.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(m) = map_uri.and_then(|f| f(s)).filter(|m| map.as_ref() != Some(m)) {
                if key.is_some() {
                    o.push_str("#EXT-X-KEY:METHOD=NONE\n");
                    key = None;
                }
                let _ = writeln!(o, "#EXT-X-MAP:URI=\"{m}\"");
                map = Some(m);
            }
            if s.key_id != key {
                match s.key_id {
                    Some(k) => {
                        let _ = writeln!(o, "#EXT-X-KEY:METHOD=AES-128,URI=\"{}\"", key_uri(k));
                    }
                    None => o.push_str("#EXT-X-KEY:METHOD=NONE\n"),
                }
                key = s.key_id;
            }
            if let Some(d) = &s.date {
                let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{d}");
            }
            let _ = writeln!(o, "#EXTINF:{}.{:03},", s.duration_ms / 1000, s.duration_ms % 1000);
            o.push_str(&uri(s));
            o.push('\n');
        }
        if self.ended {
            o.push_str("#EXT-X-ENDLIST\n");
        }
        o
    }
}

/// Names the init segment (EXT-X-MAP URI) of an fMP4 segment.
pub type MapUri<'a> = dyn Fn(&SegmentEntry) -> Option<String> + 'a;

/// The number at the end of a segment or key URI, before its extension: "a/live-17.ts" → 17.
fn trailing_number(uri: &str, ext: &str) -> Option<u64> {
    let stem = uri.trim().split(['?', '#']).next()?.strip_suffix(ext)?;
    let start = stem.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    stem.get(start..)?.parse().ok()
}

fn millis(secs: &str) -> Option<u64> {
    let v: f64 = secs.trim().parse().ok()?;
    (0.0..1e9).contains(&v).then(|| (v * 1000.0).round() as u64)
}

/// Reads a playlist written by us (or by nginx-rtmp-module). `None` when it is not one.
pub fn parse(text: &str) -> Option<Restored> {
    let mut lines = text.lines().map(str::trim);
    if lines.next()? != "#EXTM3U" {
        return None;
    }
    let mut r = Restored::default();
    let (mut duration, mut discont, mut key, mut date) = (None, false, None, None);
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            r.media_sequence = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            r.discontinuity_sequence = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            r.target_duration = v.trim().parse().ok()?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discont = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-KEY:") {
            key = v
                .split(',')
                .find_map(|a| a.strip_prefix("URI="))
                .and_then(|u| trailing_number(u.trim_matches('"'), ".key"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            date = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = Some(millis(v.split(',').next()?)?);
        } else if !line.is_empty() && !line.starts_with('#') {
            let id = trailing_number(line, ".ts")?;
            let duration_ms = duration.take()?;
            r.segments.push(SegmentEntry { id, duration_ms, discontinuity: discont, key_id: key, date: date.take() });
            discont = false;
            if r.segments.len() > 100_000 {
                return None;
            }
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, ms: u64) -> SegmentEntry {
        SegmentEntry { id, duration_ms: ms, discontinuity: false, key_id: None, date: None }
    }

    fn text(p: &Playlist) -> String {
        p.render(&|s| format!("live-{}.ts", s.id), &|k| format!("keys/live-{k}.key"))
    }

    #[test]
    fn window_keeps_playlist_length_and_three_targets() {
        let mut p = Playlist::new(12_000, 2_000, false);
        let mut gone = Vec::new();
        for i in 0..20 {
            gone.extend(p.push(seg(i, 2_000)));
        }
        // 12 s window, 2 s targets: six segments listed.
        assert_eq!(p.segments.len(), 6);
        assert_eq!(p.media_sequence, 14);
        assert_eq!(gone.len(), 14);
        assert_eq!(gone[0].id, 0);
        // A long segment raises the target: three targets of 9 s need 27 s.
        assert!(p.push(seg(20, 8_600)).is_empty());
        assert_eq!(p.target_duration(), 9);
        for i in 21..40 {
            p.push(seg(i, 2_000));
        }
        let listed: u64 = p.segments.iter().map(|s| s.duration_ms).sum();
        assert!((27_000..29_000).contains(&listed), "{listed}");
    }

    #[test]
    fn target_never_shrinks_and_covers_every_extinf() {
        let mut p = Playlist::new(30_000, 5_000, false);
        for (i, ms) in [5_000, 7_400, 4_000, 6_600, 3_000].into_iter().enumerate() {
            p.push(seg(i as u64, ms));
            let t = p.target_duration();
            assert!(p.segments.iter().all(|s| rounded_secs(s.duration_ms) <= t));
        }
        assert_eq!(p.target_duration(), 7);
    }

    #[test]
    fn renders_tags_in_order() {
        let mut p = Playlist::new(30_000, 2_000, false);
        p.push(SegmentEntry { date: Some("2026-11-25T10:00:00.000Z".into()), key_id: Some(3), ..seg(3, 2_002) });
        p.push(SegmentEntry { discontinuity: true, key_id: Some(3), ..seg(4, 1_960) });
        let t = text(&p);
        assert_eq!(
            t,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-KEY:METHOD=AES-128,URI=\"keys/live-3.key\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2026-11-25T10:00:00.000Z\n#EXTINF:2.002,\nlive-3.ts\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:1.960,\nlive-4.ts\n"
        );
        p.ended = true;
        assert!(text(&p).ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn discontinuity_sequence_counts_what_left() {
        let mut p = Playlist::new(4_000, 2_000, false);
        p.push(SegmentEntry { discontinuity: true, ..seg(0, 2_000) });
        for i in 1..6 {
            p.push(seg(i, 2_000));
        }
        assert_eq!(p.discontinuity_sequence, 1);
        assert!(text(&p).contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    }

    #[test]
    fn event_keeps_everything() {
        let mut p = Playlist::new(4_000, 2_000, true);
        for i in 0..10 {
            assert!(p.push(seg(i, 2_000)).is_empty());
        }
        assert!(text(&p).contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
    }

    #[test]
    fn parse_round_trip_and_continue() {
        let mut p = Playlist::new(30_000, 2_000, false);
        for i in 0..30 {
            let d = if i == 20 { Some("2026-11-25T10:00:00.000Z".into()) } else { None };
            p.push(SegmentEntry { discontinuity: i == 25, key_id: Some(i / 10 * 10), date: d, ..seg(i, 2_000 + i) });
        }
        let r = parse(&text(&p)).expect("parses");
        assert_eq!(r.media_sequence, p.media_sequence);
        assert_eq!(r.target_duration, p.target_duration());
        assert_eq!(r.segments, p.segments.iter().cloned().collect::<Vec<_>>());
        let mut q = Playlist::new(30_000, 2_000, false);
        q.restore(r);
        assert_eq!(q.next_sequence(), p.next_sequence());
        assert_eq!(text(&q), text(&p));
    }

    #[test]
    fn parse_rejects_garbage_and_reads_arut_playlists() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("hello\n"), None);
        assert_eq!(parse("#EXTM3U\n#EXTINF:x,\nlive-1.ts\n"), None);
        assert_eq!(parse("#EXTM3U\n#EXTINF:2,\nlive-x.ts\n"), None);
        let arut = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:5\n\
                    #EXT-X-DISCONTINUITY\n#EXTINF:5.005,\nlive-7.ts\n#EXTINF:4.171,\nlive-8.ts\n";
        let r = parse(arut).expect("arut");
        assert_eq!(r.media_sequence, 7);
        assert_eq!(r.segments.len(), 2);
        assert!(r.segments[0].discontinuity && !r.segments[1].discontinuity);
        assert_eq!(r.segments[1].duration_ms, 4_171);
        assert_eq!(trailing_number("http://cdn/x/17.ts?t=1", ".ts"), Some(17));
    }
}
