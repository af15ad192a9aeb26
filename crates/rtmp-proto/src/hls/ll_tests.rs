use super::*;
use proptest::prelude::*;

const P: &str = "live/";

fn part(duration_ms: u64, independent: bool) -> LlPart {
    LlPart { duration_ms, independent, size: duration_ms * 10 }
}

/// Five 200 ms parts, the first independent.
fn one_second(s: &mut LlState) {
    for i in 0..5 {
        s.add_part(part(200, i == 0));
    }
}

/// `n` complete 1 s segments (window `window_ms`, 200 ms parts), then `open_parts` parts of the next.
/// Also returns the msns that left the window.
fn stream(window_ms: u64, n: usize, open_parts: usize) -> (LlState, Vec<u64>) {
    let mut s = LlState::new(200, 1000, window_ms, 0);
    let mut gone = Vec::new();
    for _ in 0..n {
        one_second(&mut s);
        gone.extend(s.end_segment(0, false, 0));
    }
    for i in 0..open_parts {
        s.add_part(part(200, i == 0));
    }
    (s, gone)
}

fn part_tags(msn: u64, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
            format!("#EXT-X-PART:DURATION=0.200,URI=\"live/{msn}.{i}.m4s\"{ind}")
        })
        .collect()
}

fn media_sequence(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")).and_then(|v| v.parse().ok())
}

/// "1.234" → 1234.
fn ms(v: &str) -> u64 {
    let (s, f) = v.split_once('.').unwrap();
    assert_eq!(f.len(), 3, "{v}");
    s.parse::<u64>().unwrap() * 1000 + f.parse::<u64>().unwrap()
}

#[test]
fn render_lists_every_tag_in_order() {
    let (s, gone) = stream(4000, 6, 2);
    assert_eq!(gone, [0, 1]);
    let mut want: Vec<String> = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:1",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=3.000,CAN-SKIP-UNTIL=6.000",
        "#EXT-X-PART-INF:PART-TARGET=0.200",
        "#EXT-X-MEDIA-SEQUENCE:2",
        "#EXT-X-MAP:URI=\"live/init-0.mp4\"",
        // Ends 3.4 s before the playlist's end: more than 3 target durations, no parts listed.
        "#EXTINF:1.000,",
        "live/2.m4s",
    ]
    .map(String::from)
    .to_vec();
    for msn in 3..=5 {
        want.extend(part_tags(msn, 5));
        want.push("#EXTINF:1.000,".into());
        want.push(format!("live/{msn}.m4s"));
    }
    want.extend(part_tags(6, 2));
    want.push("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/6.2.m4s\"".into());
    assert_eq!(s.render(P, false, &[]), want.join("\n") + "\n");
    assert_eq!(s.oldest_listed_part_msn(), 3);
    assert_eq!(s.last(), Some((6, 1)));
}

#[test]
fn parts_are_listed_up_to_three_target_durations_back() {
    // Open segment empty: the newest four segments end 0, 1, 2 and 3 s before the end.
    let (s, _) = stream(10_000, 8, 0);
    assert_eq!(s.oldest_listed_part_msn(), 4);
    let text = s.render(P, false, &[]);
    assert!(!text.contains("URI=\"live/3.0.m4s\""));
    assert!(text.contains("URI=\"live/4.0.m4s\""));
    // Nothing complete yet: only the open segment's parts.
    let (s, _) = stream(10_000, 0, 3);
    assert_eq!(s.oldest_listed_part_msn(), 0);
    assert_eq!(s.render(P, false, &[]).matches("#EXT-X-PART:").count(), 3);
    assert!(!s.render(P, false, &[]).contains("#EXTINF"));
}

#[test]
fn extinf_is_the_sum_of_the_parts() {
    let mut s = LlState::new(200, 1000, 4000, 7);
    for d in [200, 150, 199, 1] {
        s.add_part(part(d, false));
    }
    assert_eq!(s.open.duration_ms, 550);
    s.end_segment(0, false, 0);
    assert_eq!(s.segments[0].duration_ms, 550);
    let text = s.render(P, false, &[]);
    assert!(text.contains("#EXT-X-PART:DURATION=0.001,URI=\"live/7.3.m4s\"\n#EXTINF:0.550,\nlive/7.m4s\n"), "{text}");
    assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/8.0.m4s\"\n"));
}

#[test]
fn media_sequence_follows_the_window() {
    let mut s = LlState::new(200, 1000, 4000, 0);
    for n in 1..=12u64 {
        one_second(&mut s);
        let gone = s.end_segment(0, false, 0);
        // Four 1 s segments fill the window; the fifth pushes the oldest out.
        let want_first = n.saturating_sub(4);
        assert_eq!(gone, if n > 4 { vec![n - 5] } else { vec![] });
        assert_eq!(s.segments.len() as u64, n.min(4));
        assert_eq!(media_sequence(&s.render(P, false, &[])), Some(want_first));
        assert_eq!(s.open.msn, n);
    }
    // A tiny window still keeps three segments.
    let (s, gone) = stream(0, 5, 0);
    assert_eq!(gone, [0, 1]);
    assert_eq!(s.segments.len(), 3);
}

#[test]
fn nothing_yet_renders_a_header_and_the_hint() {
    let s = LlState::new(333, 2000, 6000, 42);
    assert_eq!(s.last(), None);
    let text = s.render(P, true, &[]);
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999,HOLD-BACK=6.000,CAN-SKIP-UNTIL=12.000\n\
         #EXT-X-PART-INF:PART-TARGET=0.333\n#EXT-X-MEDIA-SEQUENCE:42\n\
         #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/42.0.m4s\"\n"
    );
}

#[test]
fn finish_ends_the_playlist() {
    let (mut s, _) = stream(4000, 3, 2);
    let reports = [RenditionReport { uri: "../audio/index.m3u8".into(), last_msn: 3, last_part: 1 }];
    let live = s.render(P, false, &reports);
    assert!(live.ends_with(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/3.2.m4s\"\n\
         #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=3,LAST-PART=1\n"
    ));
    assert!(s.finish().is_empty());
    assert!(s.ended);
    assert_eq!(s.segments.back().map(|x| (x.msn, x.duration_ms)), Some((3, 400)));
    assert!(s.open.parts.is_empty());
    let text = s.render(P, false, &reports);
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(text.ends_with(
        "#EXTINF:0.400,\nlive/3.m4s\n\
         #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=3,LAST-PART=1\n#EXT-X-ENDLIST\n"
    ));
    assert_eq!(text.matches("#EXT-X-ENDLIST").count(), 1);
    // Finishing again changes nothing.
    let before = s.clone();
    s.finish();
    assert_eq!(s, before);
}

#[test]
fn finish_returns_what_left_the_window() {
    let (mut s, _) = stream(4000, 4, 5);
    assert_eq!(s.finish(), [0]);
    assert_eq!(s.segments.front().map(|x| x.msn), Some(1));
}

#[test]
fn a_new_init_gets_its_own_map_and_discontinuities_are_counted() {
    let mut s = LlState::new(200, 1000, 3000, 0);
    one_second(&mut s);
    s.end_segment(1, true, 0);
    one_second(&mut s);
    s.end_segment(1, false, 0);
    one_second(&mut s);
    let text = s.render(P, false, &[]);
    let tags: Vec<&str> =
        text.lines().filter(|l| l.starts_with("#EXT-X-MAP") || *l == "#EXT-X-DISCONTINUITY").collect();
    assert_eq!(
        tags,
        ["#EXT-X-MAP:URI=\"live/init-0.mp4\"", "#EXT-X-DISCONTINUITY", "#EXT-X-MAP:URI=\"live/init-1.mp4\""]
    );
    assert!(text.contains("live/0.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"live/init-1.mp4\"\n#EXT-X-PART:"));
    assert!(!text.contains("DISCONTINUITY-SEQUENCE"));
    assert!(s.map_exists(0) && s.map_exists(1) && !s.map_exists(2));

    // Segment 0 leaves: the first listed one has the discontinuity and its map.
    s.end_segment(1, false, 0);
    one_second(&mut s);
    assert_eq!(s.end_segment(1, false, 0), [0]);
    let text = s.render(P, false, &[]);
    assert!(!text.contains("DISCONTINUITY-SEQUENCE"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"live/init-1.mp4\"\n"));
    assert!(!s.map_exists(0));

    // Segment 1 leaves with its discontinuity.
    one_second(&mut s);
    assert_eq!(s.end_segment(1, false, 0), [1]);
    let text = s.render(P, false, &[]);
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI=\"live/init-1.mp4\"\n")
    );
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
    assert_eq!(s.discontinuity_sequence, 1);
}

#[test]
fn the_open_segment_shows_its_tags_only_with_parts() {
    let (mut s, _) = stream(4000, 2, 0);
    s.end_segment(5, true, 1_795_000_000_123);
    // Without parts nothing changes but the open segment's future tags; a second call keeps the
    // pending discontinuity.
    s.end_segment(5, false, 1_795_000_000_123);
    assert_eq!((s.open.msn, s.open.map, s.open.discontinuity), (2, 5, true));
    let text = s.render(P, false, &[]);
    assert!(!text.contains("init-5") && !text.contains("#EXT-X-DISCONTINUITY") && !text.contains("DATE-TIME"));
    s.add_part(part(200, true));
    let text = s.render(P, false, &[]);
    assert!(text.contains(
        "live/1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"live/init-5.mp4\"\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-18T11:06:40.123Z\n\
         #EXT-X-PART:DURATION=0.200,URI=\"live/2.0.m4s\",INDEPENDENT=YES\n\
         #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"live/2.1.m4s\"\n"
    ));
    // Complete, the same tags go before its parts and EXTINF.
    s.end_segment(5, false, 0);
    let text = s.render(P, false, &[]);
    assert!(text.contains(
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-18T11:06:40.123Z\n\
         #EXT-X-PART:DURATION=0.200,URI=\"live/2.0.m4s\",INDEPENDENT=YES\n#EXTINF:0.200,\nlive/2.m4s\n"
    ));
}

#[test]
fn target_duration_covers_segments_and_never_shrinks() {
    let mut s = LlState::new(500, 1500, 3000, 0);
    assert_eq!(s.target_duration_s(), 2);
    for _ in 0..5 {
        s.add_part(part(500, false));
    }
    s.end_segment(0, false, 0);
    assert_eq!(s.target_duration_s(), 3);
    for _ in 0..10 {
        for _ in 0..3 {
            s.add_part(part(500, false));
        }
        s.end_segment(0, false, 0);
    }
    assert!(!s.segments.iter().any(|x| x.duration_ms > 1500));
    assert_eq!(s.target_duration_s(), 3);
    assert!(s.render(P, false, &[]).contains("#EXT-X-TARGETDURATION:3\n"));
    // Rounded to the nearest second; at least 1.
    let mut s = LlState::new(100, 1, 3000, 0);
    assert_eq!(s.target_duration_s(), 1);
    for _ in 0..24 {
        s.add_part(part(100, false));
    }
    s.end_segment(0, false, 0);
    assert_eq!(s.target_duration_s(), 2);
}

#[test]
fn delta_update_skips_what_is_older_than_six_target_durations() {
    let (s, gone) = stream(30_000, 31, 2);
    assert_eq!(gone, [0]);
    assert_eq!(s.segments.len(), 30);
    let full = s.render(P, false, &[]);
    let delta = s.render(P, true, &[]);
    // Playlist end 0.4 s after segment 30; segments 1..=24 end 6.4 s or more before it.
    let skip_at = full.find("#EXT-X-MAP").unwrap();
    let tail_at = full.find("live/24.m4s\n").unwrap() + "live/24.m4s\n".len();
    let want = format!(
        "{}#EXT-X-SKIP:SKIPPED-SEGMENTS=24\n#EXT-X-MAP:URI=\"live/init-0.mp4\"\n{}",
        &full[..skip_at],
        &full[tail_at..]
    );
    assert_eq!(delta, want);
    assert!(delta.contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
    // A segment that ends exactly at the boundary is skipped too.
    let (s, _) = stream(30_000, 10, 0);
    assert!(s.render(P, true, &[]).contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"));
}

#[test]
fn delta_update_without_anything_to_skip_is_the_full_playlist() {
    let (s, _) = stream(4000, 9, 3);
    assert_eq!(s.render(P, true, &[]), s.render(P, false, &[]));
    let s = LlState::new(200, 1000, 4000, 0);
    assert_eq!(s.render(P, true, &[]), s.render(P, false, &[]));
}

#[test]
fn blocking_reload_rules() {
    // Segments 2..=5 complete (5 parts each), segment 6 has parts 0 and 1; 200 ms parts: the
    // advance part limit is 15.
    let (s, _) = stream(4000, 6, 2);
    assert_eq!(s.block(None, Some(0)), Block::BadRequest);
    assert_eq!(s.block(None, None), Block::Ready);
    // Whole segments.
    assert_eq!(s.block(Some(0), None), Block::Ready, "left the window");
    assert_eq!(s.block(Some(5), None), Block::Ready);
    assert_eq!(s.block(Some(6), None), Block::Wait);
    assert_eq!(s.block(Some(8), None), Block::Wait);
    assert_eq!(s.block(Some(9), None), Block::BadRequest);
    assert_eq!(s.block(Some(u64::MAX), Some(0)), Block::BadRequest);
    // Parts.
    assert_eq!(s.block(Some(5), Some(4)), Block::Ready);
    assert_eq!(s.block(Some(6), Some(0)), Block::Ready);
    assert_eq!(s.block(Some(6), Some(1)), Block::Ready);
    assert_eq!(s.block(Some(6), Some(2)), Block::Wait);
    assert_eq!(s.block(Some(1), Some(99)), Block::Ready, "left the window");
    // Past the last part of a complete segment: part 0 of the next.
    assert_eq!(s.block(Some(5), Some(5)), Block::Ready);
    assert_eq!(s.block(Some(4), Some(u64::MAX)), Block::Ready);
    // Advance part limit.
    assert_eq!(s.block(Some(6), Some(17)), Block::Wait);
    assert_eq!(s.block(Some(6), Some(18)), Block::BadRequest);
    assert_eq!(s.block(Some(7), Some(15)), Block::Wait);
    assert_eq!(s.block(Some(7), Some(16)), Block::BadRequest);
    assert_eq!(s.block(Some(8), Some(0)), Block::Wait);

    // Open segment without parts: the last msn is the last complete one.
    let (s, _) = stream(4000, 6, 0);
    assert_eq!(s.block(Some(5), Some(5)), Block::Wait, "part 0 of 6 does not exist yet");
    assert_eq!(s.block(Some(7), None), Block::Wait);
    assert_eq!(s.block(Some(8), None), Block::BadRequest);
    assert_eq!(s.block(Some(6), Some(15)), Block::Wait);
    assert_eq!(s.block(Some(6), Some(16)), Block::BadRequest);

    // Nothing yet.
    let s = LlState::new(200, 1000, 4000, 10);
    assert_eq!(s.block(Some(10), Some(0)), Block::Wait);
    assert_eq!(s.block(Some(11), None), Block::Wait);
    assert_eq!(s.block(Some(12), None), Block::BadRequest);
    let s = LlState::new(200, 1000, 4000, 0);
    assert_eq!(s.block(Some(2), None), Block::Wait);
    assert_eq!(s.block(Some(3), None), Block::BadRequest);

    // Ended: the directives are ignored, but a part without an msn is still malformed.
    let (mut s, _) = stream(4000, 6, 2);
    s.finish();
    assert_eq!(s.block(Some(6), None), Block::Ready);
    assert_eq!(s.block(Some(7), Some(3)), Block::Ready);
    assert_eq!(s.block(Some(100), Some(100)), Block::Ready);
    assert_eq!(s.block(None, Some(1)), Block::BadRequest);
}

#[test]
fn advance_part_limit_follows_the_part_target() {
    for (pt, limit) in [(200, 15), (500, 6), (999, 3), (1000, 3), (2000, 3), (33, 90)] {
        let mut s = LlState::new(pt, 4000, 8000, 0);
        s.add_part(part(pt, true));
        assert_eq!(s.block(Some(0), Some(1 + limit)), Block::Wait, "{pt}");
        assert_eq!(s.block(Some(0), Some(2 + limit)), Block::BadRequest, "{pt}");
        assert_eq!(s.block(Some(1), Some(limit)), Block::Wait, "{pt}");
        assert_eq!(s.block(Some(1), Some(limit + 1)), Block::BadRequest, "{pt}");
    }
}

#[test]
fn part_status_ready_wait_gone() {
    let (mut s, _) = stream(4000, 6, 2);
    assert_eq!(s.part_status(6, 0), PartAvail::Ready);
    assert_eq!(s.part_status(6, 1), PartAvail::Ready);
    assert_eq!(s.part_status(6, 2), PartAvail::Wait);
    assert_eq!(s.part_status(6, 3), PartAvail::Gone);
    assert_eq!(s.part_status(7, 0), PartAvail::Gone);
    assert_eq!(s.part_status(2, 4), PartAvail::Ready, "not listed any more, still there");
    assert_eq!(s.part_status(2, 5), PartAvail::Gone);
    assert_eq!(s.part_status(1, 0), PartAvail::Gone, "left the window");
    assert_eq!(s.part_status(u64::MAX, u32::MAX), PartAvail::Gone);
    assert!(s.segment_exists(2) && s.segment_exists(5));
    assert!(!s.segment_exists(1) && !s.segment_exists(6));
    s.finish();
    assert_eq!(s.part_status(6, 1), PartAvail::Ready);
    assert_eq!(s.part_status(6, 2), PartAvail::Gone);
    assert_eq!(s.part_status(7, 0), PartAvail::Gone, "no hint after the end");
    assert!(s.segment_exists(6));
    let s = LlState::new(200, 1000, 4000, 3);
    assert_eq!(s.part_status(3, 0), PartAvail::Wait);
    assert_eq!(s.part_status(2, 0), PartAvail::Gone);
}

#[test]
fn encode_decode_round_trip() {
    let (mut s, _) = stream(4000, 7, 3);
    s.end_segment(9, true, 1_795_000_000_123);
    s.add_part(part(120, true));
    s.discontinuity_sequence = 4;
    assert_eq!(LlState::decode(&s.encode()), Some(s.clone()));
    s.finish();
    assert_eq!(LlState::decode(&s.encode()), Some(s.clone()));
    let fresh = LlState::new(1, 1, 0, u64::MAX);
    assert_eq!(LlState::decode(&fresh.encode()), Some(fresh));
    // Written before the fields with defaults existed.
    let mut v: serde_json::Value = serde_json::from_slice(&s.encode()).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("discontinuity_sequence");
    obj.remove("target_floor_s");
    let old = LlState::decode(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(old.discontinuity_sequence, 0);
}

#[test]
fn decode_rejects_garbage_and_broken_invariants() {
    for junk in [&b""[..], b"null", b"{}", b"[]", b"\xff\xfe", b"{\"part_target_ms\":200}", &[b'['; 10_000]] {
        assert_eq!(LlState::decode(junk), None);
    }
    let (good, _) = stream(4000, 6, 2);
    let broken = |f: &dyn Fn(&mut LlState)| {
        let mut s = good.clone();
        f(&mut s);
        LlState::decode(&s.encode())
    };
    assert!(broken(&|_| {}).is_some());
    assert!(broken(&|s| s.part_target_ms = 0).is_none());
    assert!(broken(&|s| s.part_target_ms = 60_001).is_none());
    assert!(broken(&|s| s.part_target_ms = 60_000).is_some());
    assert!(broken(&|s| s.fragment_ms = 0).is_none());
    assert!(broken(&|s| s.open.msn += 1).is_none());
    assert!(broken(&|s| s.open.msn -= 1).is_none());
    assert!(broken(&|s| s.segments[1].msn = 10).is_none());
    assert!(broken(&|s| s.segments.swap(0, 1)).is_none());
    assert!(broken(&|s| s.segments[2].duration_ms += 1).is_none());
    assert!(broken(&|s| s.open.duration_ms = 0).is_none());
    assert!(broken(&|s| s.segments[0].parts.clear()).is_none());
    assert!(broken(&|s| {
        s.segments[0].parts.clear();
        s.segments[0].duration_ms = 0;
    })
    .is_none());
    let open_parts = |n: usize| {
        move |s: &mut LlState| {
            s.open.parts = vec![part(0, false); n];
            s.open.duration_ms = 0;
        }
    };
    assert!(broken(&open_parts(MAX_PARTS + 1)).is_none());
    assert!(broken(&open_parts(MAX_PARTS)).is_some());
    assert!(broken(&|s| {
        s.segments[0].parts = vec![part(0, false); MAX_PARTS];
        s.segments[0].duration_ms = 0;
    })
    .is_none());
    // The msn after u64::MAX does not exist.
    assert!(broken(&|s| {
        s.segments.truncate(1);
        s.segments[0].msn = u64::MAX;
        s.open.msn = 0;
    })
    .is_none());
}

#[test]
fn the_writer_stays_within_the_bounds() {
    let mut s = LlState::new(1, 1, u64::MAX, 0);
    for _ in 0..MAX_PARTS + 5 {
        s.add_part(part(1, false));
    }
    assert_eq!(s.open.parts.len(), MAX_PARTS);
    assert!(s.end_segment(0, false, 0).is_empty());
    s.add_part(part(1, true));
    assert_eq!(s.end_segment(0, false, 0), [0], "too many parts in all: the oldest goes");
    assert!(LlState::decode(&s.encode()).is_some());
    // The last msn there can be stays open.
    let mut s = LlState::new(200, 1000, 4000, u64::MAX);
    s.add_part(part(200, true));
    assert!(s.end_segment(0, false, 0).is_empty());
    assert_eq!((s.open.msn, s.open.parts.len(), s.segments.len()), (u64::MAX, 1, 0));
    assert!(LlState::decode(&s.encode()).is_some());
}

// -------------------------------------------------------------------------------------------------
// Properties: any sequence of writer calls keeps the invariants, renders and survives encoding.

#[derive(Debug, Clone)]
enum Op {
    Part(u64, bool),
    End(u64, bool, u64),
    Finish,
}

fn ops(part_target_ms: u64) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        12 => (1..=part_target_ms, any::<bool>()).prop_map(|(d, i)| Op::Part(d, i)),
        3 => (0..3u64, any::<bool>(), prop_oneof![Just(0u64), 1..4_102_444_800_000u64])
            .prop_map(|(m, d, t)| Op::End(m, d, t)),
        1 => Just(Op::Finish),
    ];
    proptest::collection::vec(op, 0..120)
}

fn state_and_ops() -> impl Strategy<Value = (LlState, Vec<Op>)> {
    (1..=3000u64, 1..=6000u64, 0..=20_000u64, prop_oneof![0..1000u64, Just(u64::MAX - 3)])
        .prop_flat_map(|(pt, frag, win, first)| (Just(LlState::new(pt, frag, win, first)), ops(pt)))
}

/// Everything the methods promise about the state at any time.
fn check(s: &LlState, first: u64) {
    assert!(s.is_valid(), "{s:?}");
    if s.segments.len() > 3 {
        let rest: u64 = s.segments.iter().skip(1).map(|x| x.duration_ms).sum();
        assert!(rest < s.window_ms, "the window keeps one segment too many");
    }
    let front = s.segments.front().map_or(s.open.msn, |x| x.msn);
    assert!(front >= first);
    match s.last() {
        Some((msn, i)) => {
            assert_eq!(s.part_status(msn, i), PartAvail::Ready);
            assert_eq!(s.block(Some(msn), Some(u64::from(i))), Block::Ready);
        }
        None => assert!(s.open.parts.is_empty() && s.segments.is_empty()),
    }
    let hinted = s.part_status(s.open.msn, index(s.open.parts.len()));
    assert_eq!(hinted, if s.ended { PartAvail::Gone } else { PartAvail::Wait });
    assert!(s.oldest_listed_part_msn() >= front && s.oldest_listed_part_msn() <= s.open.msn);
}

/// Checks a rendered playlist against the state: part durations within PART-TARGET, EXTINF equal to
/// the listed parts, one hint unless ended.
fn check_text(s: &LlState, text: &str) {
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"));
    assert!(text.ends_with('\n'));
    let mut listed = 0u64;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PART:DURATION=") {
            let d = ms(v.split(',').next().unwrap());
            assert!(d <= s.part_target_ms);
            listed += d;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = ms(v.trim_end_matches(','));
            assert!(listed == 0 || listed == d, "EXTINF {d} after parts of {listed}");
            listed = 0;
        }
    }
    let hints = text.matches("#EXT-X-PRELOAD-HINT").count();
    assert_eq!(hints, usize::from(!s.ended));
    assert_eq!(text.contains("#EXT-X-ENDLIST"), s.ended);
}

proptest! {
    #[test]
    fn any_writer_sequence_keeps_the_invariants((mut s, ops) in state_and_ops()) {
        let first = s.open.msn;
        let mut gone = Vec::new();
        for op in ops {
            match op {
                Op::Part(d, i) => s.add_part(part(d, i)),
                Op::End(m, d, t) => gone.extend(s.end_segment(m, d, t)),
                Op::Finish => gone.extend(s.finish()),
            }
            check(&s, first);
        }
        // Every msn from the first on either left (once, oldest first) or is still there.
        let kept = s.segments.iter().map(|x| x.msn).chain([s.open.msn]);
        let all: Vec<u64> = gone.iter().copied().chain(kept).collect();
        let want: Vec<u64> = (first..=s.open.msn).collect();
        prop_assert_eq!(all, want);
        for skip in [false, true] {
            let reports = [RenditionReport { uri: "b.m3u8".into(), last_msn: 1, last_part: 0 }];
            check_text(&s, &s.render(P, skip, &reports));
        }
        prop_assert_eq!(LlState::decode(&s.encode()), Some(s.clone()));
    }

    #[test]
    fn damaged_encodings_never_misbehave(
        (mut s, ops) in state_and_ops(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        for op in ops {
            match op {
                Op::Part(d, i) => s.add_part(part(d, i)),
                Op::End(m, d, t) => { s.end_segment(m, d, t); }
                Op::Finish => { s.finish(); }
            }
        }
        let mut b = s.encode();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        if let Some(d) = LlState::decode(&b) {
            check_text(&d, &d.render(P, true, &[]));
            let msn = d.open.msn;
            for m in [Some(0), Some(msn.saturating_sub(1)), Some(msn), Some(msn.saturating_add(1)), None] {
                for p in [None, Some(0), Some(3), Some(u64::MAX)] {
                    let _ = d.block(m, p);
                }
            }
            let _ = d.part_status(msn, 0);
            prop_assert_eq!(LlState::decode(&d.encode()), Some(d));
        }
    }
}

#[test]
fn part_ranges_lie_one_after_another() {
    let mut s = LlState::new(200, 1000, 10_000, 7);
    s.add_part(part(200, true));
    s.add_part(part(200, false));
    s.end_segment(7, false, 0);
    s.add_part(part(100, true));
    assert_eq!(s.part_range(7, 0), Some((0, 2000)));
    assert_eq!(s.part_range(7, 1), Some((2000, 2000)));
    assert_eq!(s.part_range(7, 2), None);
    assert_eq!(s.part_range(8, 0), Some((0, 1000)));
    assert_eq!(s.part_range(8, 1), None);
    assert_eq!(s.part_range(6, 0), None);
}
