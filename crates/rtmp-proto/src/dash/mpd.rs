//! The dynamic MPD text of a [`Timeline`] (DASH-IF live profile).
//!
//! Addressing: `SegmentTemplate@media` uses `$Number$` with a `SegmentTimeline`, not the C
//! module's `$Time$`. The timeline's `S@t`/`S@d` already carry the exact times, so `$Time$` adds
//! nothing, while numbers keep file names independent of timestamps: a republish that resets the
//! timestamps would reuse `$Time$` names still listed or cached (the C module's fault), whereas
//! numbers keep rising across Periods ([`Timeline::next_number`]); cleanup and a later
//! low-latency mode also work by number (DASH-IF timing guidelines allow both; SRS and Kaltura
//! use `$Number$`). Each Period restarts `startNumber` at its first listed segment.
//!
//! Clock: one or more `UTCTiming` elements after the Periods (the schema's place).
//! `urn:mpeg:dash:utc:direct:2014` carries the time of [`Mpd::render`]'s `now_ms`, so it is only
//! right when the MPD is rendered per request; an MPD written to a file should point
//! `http-xsdate`/`http-iso` at a time endpoint of the module (ms precision). dash.js supports
//! http-xsdate, http-iso, http-head and direct (not ntp), and without a usable one asks
//! time.akamai.com (fails offline).

use std::fmt::Write as _;

use super::naming::Naming;
use super::time::{duration_ms, iso8601_ms};
use super::timeline::{Period, Segment, Timeline};
use super::{Track, TrackInfo};

pub const PROFILE_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
pub const AUDIO_CHANNEL_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
/// `@bandwidth` is required: a guess when neither metadata nor segment sizes give one.
const FALLBACK_BANDWIDTH: [u64; 2] = [2_000_000, 128_000];

/// A clock source for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtcTiming {
    /// `urn:mpeg:dash:utc:http-xsdate:2014`: GET the URL, the body is an xs:dateTime.
    HttpXsdate(String),
    /// `urn:mpeg:dash:utc:http-iso:2014`: GET the URL, the body is an ISO 8601 time.
    HttpIso(String),
    /// `urn:mpeg:dash:utc:http-head:2014`: the `Date` header of a HEAD (1 s resolution).
    HttpHead(String),
    /// `urn:mpeg:dash:utc:direct:2014`: the render time itself, as the value.
    Direct,
}

impl UtcTiming {
    pub fn scheme(&self) -> &'static str {
        match self {
            UtcTiming::HttpXsdate(_) => "urn:mpeg:dash:utc:http-xsdate:2014",
            UtcTiming::HttpIso(_) => "urn:mpeg:dash:utc:http-iso:2014",
            UtcTiming::HttpHead(_) => "urn:mpeg:dash:utc:http-head:2014",
            UtcTiming::Direct => "urn:mpeg:dash:utc:direct:2014",
        }
    }

    fn value(&self, now_ms: u64) -> String {
        match self {
            UtcTiming::HttpXsdate(u) | UtcTiming::HttpIso(u) | UtcTiming::HttpHead(u) => u.clone(),
            UtcTiming::Direct => iso8601_ms(now_ms),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpdConfig {
    pub naming: Naming,
    /// Rendered in this order (dash.js tries them in order); none would break the DASH-IF rule.
    pub utc_timing: Vec<UtcTiming>,
    /// `suggestedPresentationDelay`; default two of the longest listed segments. Always kept
    /// at most `timeShiftBufferDepth` minus one segment, so the effective window stays positive.
    pub suggested_presentation_delay_ms: Option<u64>,
    /// `minBufferTime`; default `dash_fragment`.
    pub min_buffer_time_ms: Option<u64>,
}

impl MpdConfig {
    pub fn new(naming: Naming, utc_timing: UtcTiming) -> MpdConfig {
        MpdConfig {
            naming,
            utc_timing: vec![utc_timing],
            suggested_presentation_delay_ms: None,
            min_buffer_time_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mpd {
    pub config: MpdConfig,
}

/// Escapes a string for a double-quoted XML attribute value (or text).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// One `<S>`: explicit `t` (first one, or after a gap), `d`, and `r` further repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SRun {
    pub t: Option<u64>,
    pub d: u64,
    pub r: u64,
}

/// Compresses segments (contiguous or not) into `S` runs: equal durations back to back share
/// one `S` with `@r`; a gap gets its own `@t`.
pub fn s_runs<'a>(segments: impl IntoIterator<Item = &'a Segment>) -> Vec<SRun> {
    let mut runs: Vec<SRun> = Vec::new();
    let mut next = None;
    for s in segments {
        match runs.last_mut() {
            Some(run) if next == Some(s.start) && run.d == s.duration => run.r += 1,
            _ => runs.push(SRun { t: if next == Some(s.start) { None } else { Some(s.start) }, d: s.duration, r: 0 }),
        }
        next = Some(s.end());
    }
    runs
}

impl Mpd {
    pub fn new(config: MpdConfig) -> Mpd {
        Mpd { config }
    }

    /// The MPD at `now_ms` (only `UTCTiming` direct depends on it; everything else is the
    /// timeline's current version). `None` until a Period can be published.
    pub fn render(&self, tl: &Timeline, now_ms: u64) -> Option<String> {
        self.render_with(tl, now_ms, false)
    }

    /// The last MPD of a stream that ended (DASH-IF live termination): no
    /// `minimumUpdatePeriod`, and a `mediaPresentationDuration` up to the end of its last
    /// segment, so players play out what is listed and stop polling.
    pub fn render_ended(&self, tl: &Timeline, now_ms: u64) -> Option<String> {
        self.render_with(tl, now_ms, true)
    }

    /// Where the listed media ends, in ms after `availabilityStartTime`.
    fn media_end_ms(tl: &Timeline) -> u64 {
        let mut end = 0;
        for p in tl.periods() {
            for track in Track::ALL {
                let Some(info) = p.info(track) else { continue };
                let ts = u64::from(info.timescale().max(1));
                if let Some(last) = tl.period_segments(p.id, track).last() {
                    let rel = last.end().saturating_sub(p.presentation_time_offset(info.timescale()));
                    end = end.max(p.start_ms.saturating_add(rel.saturating_mul(1000) / ts));
                }
            }
        }
        end
    }

    fn render_with(&self, tl: &Timeline, now_ms: u64, ended: bool) -> Option<String> {
        let ast = tl.availability_start_ms()?;
        let periods: Vec<&Period> = tl.periods().filter(|p| p.is_ready()).collect();
        if periods.is_empty() {
            return None;
        }
        let tsbd = tl.time_shift_buffer_depth_ms();
        let max_seg = tl.max_segment_ms().max(1);
        let spd = self.config.suggested_presentation_delay_ms.unwrap_or(2 * max_seg).min(tsbd.saturating_sub(max_seg));
        let mup = tl.last_segment_ms().max(1);
        let min_buffer = self.config.min_buffer_time_ms.unwrap_or(tl.config().fragment_ms).max(1);

        let mut x = String::with_capacity(4096);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let update = if ended {
            format!("mediaPresentationDuration=\"{}\"", duration_ms(Self::media_end_ms(tl)))
        } else {
            format!("minimumUpdatePeriod=\"{}\"", duration_ms(mup))
        };
        let _ = writeln!(
            x,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"{PROFILE_LIVE}\" type=\"dynamic\" \
             availabilityStartTime=\"{}\" publishTime=\"{}\" {update} minBufferTime=\"{}\" \
             timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\" maxSegmentDuration=\"{}\">",
            iso8601_ms(ast),
            iso8601_ms(tl.publish_ms()),
            duration_ms(min_buffer),
            duration_ms(tsbd),
            duration_ms(spd),
            duration_ms(max_seg),
        );
        for p in periods {
            let _ = writeln!(x, "  <Period id=\"{}\" start=\"{}\">", p.id, duration_ms(p.start_ms));
            for track in Track::ALL {
                let Some(info) = p.info(track) else { continue };
                let segs: Vec<&Segment> = tl.period_segments(p.id, track).collect();
                if segs.is_empty() {
                    continue;
                }
                self.adaptation_set(&mut x, p, track, info, &segs);
            }
            x.push_str("  </Period>\n");
        }
        for u in &self.config.utc_timing {
            let _ = writeln!(
                x,
                "  <UTCTiming schemeIdUri=\"{}\" value=\"{}\"/>",
                u.scheme(),
                escape_attr(&u.value(now_ms))
            );
        }
        x.push_str("</MPD>\n");
        Some(x)
    }

    fn adaptation_set(&self, x: &mut String, p: &Period, track: Track, info: &TrackInfo, segs: &[&Segment]) {
        let naming = &self.config.naming;
        let (id, kind) = match track {
            Track::Video => (1, "video"),
            Track::Audio => (2, "audio"),
        };
        let _ = writeln!(
            x,
            "    <AdaptationSet id=\"{id}\" contentType=\"{kind}\" mimeType=\"{kind}/mp4\" \
             segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        if let TrackInfo::Audio(a) = info {
            let _ = writeln!(
                x,
                "      <AudioChannelConfiguration schemeIdUri=\"{AUDIO_CHANNEL_SCHEME}\" value=\"{}\"/>",
                a.channels
            );
        }
        let ts = info.timescale();
        let _ = writeln!(
            x,
            "      <SegmentTemplate timescale=\"{ts}\" presentationTimeOffset=\"{}\" initialization=\"{}\" \
             media=\"{}\" startNumber=\"{}\">",
            p.presentation_time_offset(ts),
            escape_attr(&naming.init_url(track)),
            escape_attr(&naming.media_template(track)),
            segs[0].number,
        );
        x.push_str("        <SegmentTimeline>\n");
        for run in s_runs(segs.iter().copied()) {
            x.push_str("          <S");
            if let Some(t) = run.t {
                let _ = write!(x, " t=\"{t}\"");
            }
            let _ = write!(x, " d=\"{}\"", run.d);
            if run.r > 0 {
                let _ = write!(x, " r=\"{}\"", run.r);
            }
            x.push_str("/>\n");
        }
        x.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
        let bandwidth = info
            .bandwidth()
            .filter(|&b| b > 0)
            .or(p.measured_bitrate(track))
            .unwrap_or(FALLBACK_BANDWIDTH[track.index()]);
        match info {
            TrackInfo::Video(v) => {
                let _ = write!(
                    x,
                    "      <Representation id=\"video\" codecs=\"{}\" width=\"{}\" height=\"{}\"",
                    escape_attr(&v.codecs),
                    v.width,
                    v.height
                );
                if let Some(fr) = v.frame_rate {
                    let _ = write!(x, " frameRate=\"{fr}\"");
                }
                let (sw, sh) = v.sar.filter(|&(w, h)| w > 0 && h > 0).unwrap_or((1, 1));
                let _ = writeln!(x, " sar=\"{sw}:{sh}\" bandwidth=\"{bandwidth}\"/>");
            }
            TrackInfo::Audio(a) => {
                let _ = writeln!(
                    x,
                    "      <Representation id=\"audio\" codecs=\"{}\" audioSamplingRate=\"{}\" bandwidth=\"{bandwidth}\"/>",
                    escape_attr(&a.codecs),
                    a.sample_rate
                );
            }
        }
        x.push_str("    </AdaptationSet>\n");
    }
}
