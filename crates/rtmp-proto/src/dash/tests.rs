//! Timeline + MPD together: exact fragments, updates, periods, deletion, and a property test that
//! reads every MPD version back.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::mpd::{s_runs, SRun};
use super::time::duration_ms;
use super::xmlcheck::{parse, Element};
use super::*;

const T0: u64 = 1_795_514_400_000; // 2026-11-24T10:00:00.000Z

fn video() -> TrackInfo {
    TrackInfo::Video(VideoInfo {
        timescale: 90_000,
        codecs: "avc1.64001f".into(),
        width: 1280,
        height: 720,
        frame_rate: Some(FrameRate { num: 30000, den: 1001 }),
        sar: None,
        bandwidth: Some(2_500_000),
    })
}

fn audio() -> TrackInfo {
    TrackInfo::Audio(AudioInfo {
        timescale: 48_000,
        codecs: "mp4a.40.2".into(),
        sample_rate: 48_000,
        channels: 2,
        bandwidth: None,
    })
}

fn timeline(window_ms: u64, fragment_ms: u64) -> Timeline {
    let mut tl = Timeline::new(TimelineConfig::new(window_ms, fragment_ms));
    tl.set_track(video());
    tl.set_track(audio());
    tl
}

fn mpd(utc: UtcTiming) -> Mpd {
    Mpd::new(MpdConfig::new(Naming::new("live", false), utc))
}

/// Pushes video and audio segment `n` (2 s each; audio 94 AAC frames then 93, alternating),
/// video starting at 10 s, now = T0 + 2 s × (n + 1).
fn push_pair(tl: &mut Timeline, n: u64) {
    let now = T0 + 2000 * (n + 1);
    tl.push_segment(Track::Video, n, 900_000 + n * 180_000, 180_000, now).unwrap();
    let a_start = 480_000 + (n / 2) * 191_488 + (n % 2) * 96_256;
    let a_dur = if n.is_multiple_of(2) { 96_256 } else { 95_232 };
    tl.push_segment(Track::Audio, n, a_start, a_dur, now + 5).unwrap();
}

#[test]
fn exact_first_mpd() {
    let mut tl = timeline(30_000, 2_000);
    push_pair(&mut tl, 0);
    push_pair(&mut tl, 1);
    push_pair(&mut tl, 2);
    let text = mpd(UtcTiming::HttpXsdate("/dash/time?iso&ms".into())).render(&tl, T0 + 6_500).unwrap();
    let want = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2026-11-24T10:00:00.000Z" publishTime="2026-11-24T10:00:06.005Z" minimumUpdatePeriod="PT2.005S" minBufferTime="PT2S" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT4.012S" maxSegmentDuration="PT2.006S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="1" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="90000" presentationTimeOffset="900000" initialization="live-init.m4v" media="live-$Number$.m4v" startNumber="0">
        <SegmentTimeline>
          <S t="900000" d="180000" r="2"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="video" codecs="avc1.64001f" width="1280" height="720" frameRate="30000/1001" sar="1:1" bandwidth="2500000"/>
    </AdaptationSet>
    <AdaptationSet id="2" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
      <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
      <SegmentTemplate timescale="48000" presentationTimeOffset="480000" initialization="live-init.m4a" media="live-$Number$.m4a" startNumber="0">
        <SegmentTimeline>
          <S t="480000" d="96256"/>
          <S d="95232"/>
          <S d="96256"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="audio" codecs="mp4a.40.2" audioSamplingRate="48000" bandwidth="128000"/>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-xsdate:2014" value="/dash/time?iso&amp;ms"/>
</MPD>
"#;
    assert_eq!(text, want);
    // The first segment ended (was complete) at T0 + 2 s: AST puts its end there.
    assert_eq!(tl.availability_start_ms(), Some(T0));
    let v: Vec<_> = tl.segments(Track::Video).map(|s| s.available_ms).collect();
    assert_eq!(v, [T0 + 2000, T0 + 4000, T0 + 6000]);
    check_mpd(&text);
}

#[test]
fn an_ended_stream_stops_updates_and_says_how_long_it_is() {
    let mut tl = timeline(30_000, 2_000);
    for n in 0..3 {
        push_pair(&mut tl, n);
    }
    let m = mpd(UtcTiming::Direct);
    let live = m.render(&tl, T0 + 9000).unwrap();
    let ended = m.render_ended(&tl, T0 + 9000).unwrap();
    assert!(live.contains("minimumUpdatePeriod=") && !live.contains("mediaPresentationDuration="));
    assert!(!ended.contains("minimumUpdatePeriod="));
    // Three 2 s video segments from the period's start: 6 s of media after the AST.
    assert!(ended.contains("mediaPresentationDuration=\"PT6S\""), "{ended}");
    // The rest is the same MPD: the same Periods and segments.
    assert_eq!(periods_of(&live), periods_of(&ended));
    parse(&ended).unwrap_or_else(|e| panic!("{e}\n{ended}"));
}

#[test]
fn not_published_until_every_track_has_a_segment() {
    let mut tl = timeline(30_000, 2_000);
    let m = mpd(UtcTiming::Direct);
    assert_eq!(m.render(&tl, T0), None);
    tl.push_segment(Track::Video, 0, 0, 180_000, T0 + 2000).unwrap();
    assert_eq!(m.render(&tl, T0 + 2000), None);
    tl.push_segment(Track::Audio, 0, 0, 96_256, T0 + 2001).unwrap();
    let text = m.render(&tl, T0 + 2345).unwrap();
    assert!(
        text.contains(r#"<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2026-11-24T10:00:02.345Z"/>"#)
    );
    // Only the direct value follows the render time.
    let later = m.render(&tl, T0 + 3000).unwrap();
    assert_eq!(later.replace("10:00:03.000Z", "10:00:02.345Z"), text);
    // A video-only stream is published at its first segment.
    let mut vo = Timeline::new(TimelineConfig::default());
    vo.set_track(video());
    vo.push_segment(Track::Video, 0, 0, 180_000, T0).unwrap();
    let text = m.render(&vo, T0).unwrap();
    assert!(!text.contains("audio"));
    check_mpd(&text);
}

#[test]
fn window_slides_and_updates_keep_times() {
    let mut tl = timeline(10_000, 2_000);
    let m = mpd(UtcTiming::HttpIso("http://h/t".into()));
    let mut prev: Option<String> = None;
    for n in 0..12 {
        push_pair(&mut tl, n);
        let text = m.render(&tl, T0 + 2000 * (n + 1) + 10).unwrap();
        check_mpd(&text);
        if let Some(p) = &prev {
            check_update(p, &text);
        }
        prev = Some(text);
    }
    let text = prev.unwrap();
    // 10 s of 2 s video segments: 5 listed, the newest 7..=11.
    let nums: Vec<u64> = tl.segments(Track::Video).map(|s| s.number).collect();
    assert_eq!(nums, [7, 8, 9, 10, 11]);
    assert!(text.contains(r#"startNumber="7">"#));
    assert!(text.contains(r#"<S t="2160000" d="180000" r="4"/>"#));
    // The edge is video's end (24 s after the period start): audio 6 ended at 13.973 s, so
    // it left with video 6 (ended at 14 s); audio 7 ends at 15.957 s.
    let a: Vec<u64> = tl.segments(Track::Audio).map(|s| s.number).collect();
    assert_eq!(a, [7, 8, 9, 10, 11]);
    assert!(text.contains(r#"timeShiftBufferDepth="PT10S""#));
    // Segment 0 left the listing at the push of 5 (video: publish T0 + 12 s) and is deleted
    // only a window and a segment later.
    let left = T0 + 12_000;
    assert!(!tl.removable(left + 10_000 + 2_000).contains(&(Track::Video, 0)));
    assert!(tl.removable(left + 10_000 + 2_006).contains(&(Track::Video, 0)));
    let gone = tl.take_removable(T0 + 60_000);
    assert_eq!(gone.iter().filter(|(t, _)| *t == Track::Video).count(), 7);
    assert!(tl.take_removable(T0 + 60_000).is_empty());
    for (t, n) in gone {
        assert!(tl.segments(t).all(|s| s.number != n));
    }
}

#[test]
fn republish_starts_a_period_and_numbers_continue() {
    let mut tl = timeline(10_000, 2_000);
    let m = mpd(UtcTiming::Direct);
    for n in 0..3 {
        push_pair(&mut tl, n);
    }
    let before = m.render(&tl, T0 + 6_000).unwrap();
    // The publisher comes back 3 s later with timestamps from 0.
    tl.discontinuity();
    assert_eq!(tl.next_number(Track::Video), 3);
    let now = T0 + 6_005 + 3_000 + 2_000;
    tl.push_segment(Track::Video, 3, 0, 180_000, now).unwrap();
    // Not yet published: the old MPD content stands.
    let mid = m.render(&tl, now).unwrap();
    assert!(!mid.contains(r#"<Period id="1""#));
    assert_eq!(periods_of(&mid), periods_of(&before));
    tl.push_segment(Track::Audio, 3, 0, 96_256, now + 1).unwrap();
    let text = m.render(&tl, now + 1).unwrap();
    check_mpd(&text);
    check_update(&before, &text);
    // Period 1 starts when its first segment started on the wall clock: 9 s after AST.
    assert!(text.contains(r#"<Period id="1" start="PT9.005S">"#), "{text}");
    assert!(text.contains(
        r#"presentationTimeOffset="0" initialization="live-init.m4v" media="live-$Number$.m4v" startNumber="3""#
    ));
    assert_eq!(tl.availability_start_ms(), Some(T0));
    let p1: Vec<_> = tl.segments(Track::Video).filter(|s| s.period == 1).map(|s| s.available_ms).collect();
    assert_eq!(p1, [now]);
    // Numbers must not repeat.
    assert_eq!(
        tl.push_segment(Track::Video, 3, 180_000, 180_000, now + 2000),
        Err(TimelineError::NumberNotIncreasing { last: 3, got: 3 })
    );
    // Period 0 leaves with its last segments; period 1 goes on.
    for n in 4..10 {
        let now = now + 2000 * (n - 3);
        tl.push_segment(Track::Video, n, (n - 3) * 180_000, 180_000, now).unwrap();
        tl.push_segment(Track::Audio, n, (n - 3) * 96_000, 96_000, now).unwrap();
    }
    let text = m.render(&tl, now + 20_000).unwrap();
    check_mpd(&text);
    assert!(!text.contains(r#"<Period id="0""#));
    assert_eq!(tl.periods().count(), 1);
}

#[test]
fn audio_keeps_its_adaptation_set_while_the_period_is_shown() {
    // Period 0: one 8 s video segment, four 1 s audio ones (audio stopped early); then period
    // 1 audio. With a 6 s window the old audio leaves before the old video.
    let mut tl = Timeline::new(TimelineConfig { resync_late_ms: None, ..TimelineConfig::new(6_000, 1_000) });
    tl.set_track(video());
    tl.set_track(audio());
    tl.push_segment(Track::Video, 0, 0, 720_000, T0 + 8000).unwrap();
    for n in 0..4 {
        tl.push_segment(Track::Audio, n, n * 48_000, 48_000, T0 + 8000).unwrap();
    }
    tl.discontinuity();
    for n in 0..3u64 {
        tl.push_segment(Track::Audio, 4 + n, n * 48_000, 48_000, T0 + 9000 + 1000 * n).unwrap();
    }
    assert_eq!(tl.segments(Track::Video).count(), 1);
    let text = mpd(UtcTiming::Direct).render(&tl, T0 + 11_000).unwrap();
    check_mpd(&text);
    let root = parse(&text).unwrap();
    let p0 = root.children("Period").find(|p| p.attr("id") == Some("0")).expect("period 0 still shown");
    assert_eq!(p0.children("AdaptationSet").count(), 2, "{text}");
    let a0: Vec<u64> = tl.segments(Track::Audio).filter(|s| s.period == 0).map(|s| s.number).collect();
    assert_eq!(a0, [3]);
}

#[test]
fn late_segments_resync_in_a_new_period() {
    let mut tl = timeline(30_000, 2_000);
    push_pair(&mut tl, 0);
    push_pair(&mut tl, 1);
    // The publisher stalls: segment 2 (continuous timestamps) arrives 7 s late.
    tl.push_segment(Track::Video, 2, 900_000 + 2 * 180_000, 180_000, T0 + 13_000).unwrap();
    tl.push_segment(Track::Audio, 2, 480_000 + 191_488, 96_256, T0 + 13_000).unwrap();
    let ps: Vec<(u64, u64)> = tl.periods().map(|p| (p.id, p.start_ms)).collect();
    assert_eq!(ps, [(0, 0), (1, 11_000)]);
    let last = tl.segments(Track::Video).last().unwrap();
    assert_eq!((last.period, last.available_ms), (1, T0 + 13_000));
    // Within the tolerance nothing happens.
    tl.push_segment(Track::Video, 3, 900_000 + 3 * 180_000, 180_000, T0 + 16_000).unwrap();
    assert_eq!(tl.periods().count(), 2);
    check_mpd(&mpd(UtcTiming::Direct).render(&tl, T0 + 16_000).unwrap());
}

#[test]
fn errors_and_automatic_periods() {
    let mut tl = Timeline::new(TimelineConfig::default());
    assert_eq!(tl.push_segment(Track::Audio, 0, 0, 1, T0), Err(TimelineError::UnknownTrack(Track::Audio)));
    tl.set_track(video());
    assert_eq!(tl.push_segment(Track::Video, 0, 0, 0, T0), Err(TimelineError::ZeroDuration));
    tl.push_segment(Track::Video, 5, 0, 90_000, T0).unwrap();
    // A number gap cannot be said with $Number$: new period.
    tl.push_segment(Track::Video, 7, 90_000, 90_000, T0 + 1000).unwrap();
    // An overlap: new period.
    tl.push_segment(Track::Video, 8, 90_000, 90_000, T0 + 2000).unwrap();
    // A gap in time is kept in the period with an explicit t.
    tl.push_segment(Track::Video, 9, 270_000, 90_000, T0 + 3000).unwrap();
    assert_eq!(tl.periods().map(|p| p.id).collect::<Vec<_>>(), [0, 1, 2]);
    let text = mpd(UtcTiming::Direct).render(&tl, T0 + 3000).unwrap();
    assert!(text.contains("<S t=\"90000\" d=\"90000\"/>\n          <S t=\"270000\" d=\"90000\"/>"), "{text}");
    check_mpd(&text);
    // A codec change starts a new period; the same info again does not.
    tl.set_track(video());
    tl.push_segment(Track::Video, 10, 360_000, 90_000, T0 + 4000).unwrap();
    assert_eq!(tl.periods().count(), 3);
    let TrackInfo::Video(mut v) = video() else { unreachable!() };
    v.width = 640;
    tl.set_track(TrackInfo::Video(v));
    tl.push_segment(Track::Video, 11, 450_000, 90_000, T0 + 5000).unwrap();
    assert_eq!(tl.periods().map(|p| p.id).last(), Some(3));
    let text = mpd(UtcTiming::Direct).render(&tl, T0 + 5000).unwrap();
    assert!(text.contains(r#"width="640""#) && text.contains(r#"width="1280""#));
}

#[test]
fn s_run_compression() {
    let seg = |start, duration| Segment {
        number: 0,
        start,
        duration,
        timescale: 1000,
        period: 0,
        available_ms: 0,
        pushed_ms: 0,
        bytes: None,
    };
    let segs = [seg(100, 10), seg(110, 10), seg(120, 10), seg(130, 9), seg(139, 10), seg(150, 10), seg(160, 10)];
    assert_eq!(
        s_runs(&segs),
        [
            SRun { t: Some(100), d: 10, r: 2 },
            SRun { t: None, d: 9, r: 0 },
            SRun { t: None, d: 10, r: 0 },
            SRun { t: Some(150), d: 10, r: 1 },
        ]
    );
    assert!(s_runs(&[]).is_empty());
}

#[test]
fn measured_bandwidth_and_nested_names() {
    let mut tl = Timeline::new(TimelineConfig::default());
    let TrackInfo::Video(mut v) = video() else { unreachable!() };
    v.bandwidth = None;
    v.sar = Some((4, 3));
    v.frame_rate = None;
    tl.set_track(TrackInfo::Video(v));
    tl.push_segment_sized(Track::Video, 0, 0, 180_000, Some(250_000), T0).unwrap();
    let m = Mpd::new(MpdConfig::new(Naming::new("cam", true), UtcTiming::HttpHead("/t".into())));
    let text = m.render(&tl, T0).unwrap();
    assert!(text.contains(r#"sar="4:3" bandwidth="1000000"/>"#), "{text}");
    assert!(!text.contains("frameRate"));
    assert!(text.contains(r#"initialization="init.m4v" media="$Number$.m4v""#));
    assert!(text.contains("urn:mpeg:dash:utc:http-head:2014"));
}

fn periods_of(text: &str) -> String {
    let (a, b) = (text.find("<Period").unwrap(), text.rfind("</Period>").unwrap());
    text[a..b].to_string()
}

/// What a client reads from an MPD: per (period id, adaptation set id) the segments by number.
#[derive(Debug)]
struct Read {
    ast: String,
    publish: String,
    periods: Vec<(String, String)>,
    segments: BTreeMap<(String, String, u64), (u64, u64)>,
}

fn ms_of(d: &str) -> f64 {
    d.strip_prefix("PT").and_then(|d| d.strip_suffix('S')).unwrap().parse::<f64>().unwrap() * 1000.0
}

/// Well-formedness and the DASH-IF rules one MPD must meet by itself.
fn check_mpd(text: &str) -> Read {
    let root = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(root.name, "MPD");
    assert_eq!(root.attr("xmlns"), Some("urn:mpeg:dash:schema:mpd:2011"));
    assert_eq!(root.attr("type"), Some("dynamic"));
    assert_eq!(root.attr("profiles"), Some("urn:mpeg:dash:profile:isoff-live:2011"));
    for a in ["availabilityStartTime", "publishTime", "minimumUpdatePeriod", "minBufferTime", "timeShiftBufferDepth"] {
        assert!(root.attr(a).is_some(), "{a}");
    }
    let tsbd = ms_of(root.attr("timeShiftBufferDepth").unwrap());
    let spd = ms_of(root.attr("suggestedPresentationDelay").unwrap());
    assert!(spd < tsbd, "SPD {spd} must leave a window in TSBD {tsbd}");
    // Periods first, then UTCTiming, nothing else.
    let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
    let periods = names.iter().take_while(|n| **n == "Period").count();
    assert!(periods >= 1);
    assert!(names[periods..].iter().all(|n| *n == "UTCTiming") && names.len() > periods, "{names:?}");
    let mut read = Read {
        ast: root.attr("availabilityStartTime").unwrap().into(),
        publish: root.attr("publishTime").unwrap().into(),
        periods: Vec::new(),
        segments: BTreeMap::new(),
    };
    let mut prev_end: Option<f64> = None;
    for p in root.children("Period") {
        let (id, start) = (p.attr("id").unwrap(), ms_of(p.attr("start").unwrap()));
        if let Some(end) = prev_end {
            assert!(start + 0.5 >= end, "period {id} starts at {start} before the previous media ends at {end}");
        }
        read.periods.push((id.into(), p.attr("start").unwrap().into()));
        let mut end = start;
        for set in p.children("AdaptationSet") {
            let kids: Vec<&str> = set.children.iter().map(|c| c.name.as_str()).collect();
            assert!(
                kids == ["SegmentTemplate", "Representation"]
                    || kids == ["AudioChannelConfiguration", "SegmentTemplate", "Representation"],
                "{kids:?}"
            );
            let rep = set.child("Representation").unwrap();
            assert!(rep.attr_u64("bandwidth").unwrap() > 0 && rep.attr("id").is_some());
            let tpl = set.child("SegmentTemplate").unwrap();
            let ts = tpl.attr_u64("timescale").unwrap();
            let pto = tpl.attr_u64("presentationTimeOffset").unwrap();
            let mut number = tpl.attr_u64("startNumber").unwrap();
            let ss: Vec<&Element> = tpl.child("SegmentTimeline").unwrap().children("S").collect();
            assert!(!ss.is_empty());
            assert!(ss[0].attr("t").is_some(), "the first S has @t");
            let mut t = 0;
            for s in ss {
                if let Some(st) = s.attr_u64("t") {
                    assert!(st >= t, "S@t goes back");
                    t = st;
                }
                let d = s.attr_u64("d").unwrap();
                assert!(d > 0);
                for _ in 0..=s.attr_u64("r").unwrap_or(0) {
                    let key = (id.to_string(), set.attr("id").unwrap().to_string(), number);
                    assert!(read.segments.insert(key, (t, d)).is_none());
                    number += 1;
                    t += d;
                }
            }
            end = end.max(start + (t as f64 - pto as f64) * 1000.0 / ts as f64);
        }
        prev_end = Some(end);
    }
    read
}

/// Rules between two consecutive MPD versions.
fn check_update(old: &str, new: &str) {
    let (a, b) = (check_mpd(old), check_mpd(new));
    assert_eq!(a.ast, b.ast, "availabilityStartTime moved");
    assert!(b.publish > a.publish, "publishTime {} !> {}", b.publish, a.publish);
    for (id, start) in &a.periods {
        if let Some((_, s)) = b.periods.iter().find(|(i, _)| i == id) {
            assert_eq!(s, start, "Period {id} start moved");
        }
    }
    let (ids_a, ids_b): (Vec<_>, Vec<_>) = (
        a.periods.iter().map(|p| p.0.parse::<u64>().unwrap()).collect(),
        b.periods.iter().map(|p| p.0.parse::<u64>().unwrap()).collect(),
    );
    assert!(ids_a.windows(2).all(|w| w[0] < w[1]) && ids_b.windows(2).all(|w| w[0] < w[1]));
    for (k, v) in &a.segments {
        if let Some(w) = b.segments.get(k) {
            assert_eq!(v, w, "segment {k:?} changed");
        }
    }
    // Only the oldest segments of an AdaptationSet may go away.
    for (p, set, n) in a.segments.keys() {
        if !b.segments.contains_key(&(p.clone(), set.clone(), *n)) {
            assert!(
                !b.segments.keys().any(|(q, s2, m)| q == p && s2 == set && m < n),
                "segment {n} of {p}/{set} removed while an older one stays"
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A segment of (video?, duration in ms, gap in ms before the push).
    Seg(bool, u64, u64),
    /// Publisher reconnect: timestamps restart at this ms value.
    Restart(u64),
    /// The publisher stalls this long (ms) and goes on with continuous timestamps.
    Stall(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<bool>(), 200u64..6000, 0u64..300).prop_map(|(v, d, g)| Op::Seg(v, d, g)),
        1 => (0u64..100_000).prop_map(Op::Restart),
        1 => (0u64..10_000).prop_map(Op::Stall),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn every_version_reads_back(ops in prop::collection::vec(op(), 1..80), window in 2_000u64..20_000, late in 0u64..8000) {
        let mut tl = timeline(window, 2_000);
        let m = mpd(UtcTiming::Direct);
        let mut now = T0;
        // Packager state: next number and start (ms) per track.
        let mut next = [(0u64, 0u64); 2];
        let mut prev: Option<(u64, String)> = None;
        let mut removed: Vec<(Track, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Restart(ms) => {
                    tl.discontinuity();
                    next = [(next[0].0, ms), (next[1].0, ms)];
                    now += late;
                }
                Op::Stall(ms) => now += ms,
                Op::Seg(is_video, d, gap) => {
                    let (track, ts) = if is_video { (Track::Video, 90u64) } else { (Track::Audio, 48) };
                    let i = track.index();
                    now += d + gap;
                    tl.push_segment(track, next[i].0, next[i].1 * ts, d * ts, now).unwrap();
                    next[i] = (next[i].0 + 1, next[i].1 + d);
                }
            }
            for s in Track::ALL.iter().flat_map(|&t| tl.segments(t)) {
                // Never announced later than the resync tolerance allows, never before it exists
                // for a period's first segment.
                prop_assert!(s.pushed_ms <= s.available_ms + 2_000);
            }
            // Listed files are never deleted; deleted ones never come back.
            let listed: Vec<(Track, u64)> =
                Track::ALL.iter().flat_map(|&t| tl.segments(t).map(move |s| (t, s.number))).collect();
            for r in tl.removable(now + 3_600_000) {
                prop_assert!(!listed.contains(&r));
            }
            let gone = tl.take_removable(now);
            for g in &gone {
                prop_assert!(!removed.contains(g));
            }
            removed.extend(gone);
            for l in &listed {
                prop_assert!(!removed.contains(l));
            }
            if let Some(text) = m.render(&tl, now) {
                let read = check_mpd(&text);
                // Every segment in the MPD is the timeline's, with its own tfdt and duration.
                for ((_, set, n), (t, d)) in &read.segments {
                    let track = if set == "1" { Track::Video } else { Track::Audio };
                    let s = tl.segments(track).find(|s| s.number == *n).unwrap();
                    prop_assert_eq!((s.start, s.duration), (*t, *d));
                }
                match &prev {
                    Some((v, p)) if *v != tl.version() => check_update(p, &text),
                    Some((_, p)) => prop_assert_eq!(periods_of(p), periods_of(&text)),
                    None => {}
                }
                prev = Some((tl.version(), text));
            }
        }
        // The window: a listed segment ends less than the window before the newest end, or is
        // its track's last in a Period still shown.
        let edge = Track::ALL.iter().flat_map(|&t| tl.segments(t)).map(|s| s.available_ms).max().unwrap_or(0);
        let periods: Vec<u64> = tl.periods().map(|p| p.id).collect();
        for t in Track::ALL {
            let segs: Vec<&Segment> = tl.segments(t).collect();
            for (i, s) in segs.iter().enumerate() {
                prop_assert!(periods.contains(&s.period));
                let last_of_period = segs.get(i + 1).is_none_or(|n| n.period != s.period);
                prop_assert!(s.available_ms + window > edge || last_of_period);
            }
        }
        let _ = duration_ms(0);
    }
}
