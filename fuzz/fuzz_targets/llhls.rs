//! Low-Latency HLS state (`rtmp_proto::hls::ll`): whatever `LlState::decode` accepts renders and
//! answers requests without panicking, and stays decodable after more writer calls. An input that
//! does not decode drives a fresh state through writer calls instead, so both the reader's and the
//! writer's side are explored.
#![no_main]

use rtmp_proto::hls::ll::{Block, LlPart, LlState, PartAvail, RenditionReport};
use rtmp_proto_fuzz::checks::Src;

libfuzzer_sys::fuzz_target!(|data: &[u8]| llhls(data));

fn llhls(data: &[u8]) {
    match LlState::decode(data) {
        Some(s) => {
            assert_eq!(LlState::decode(&s.encode()).as_ref(), Some(&s), "decode(encode) differs");
            serve(&s);
            // The writer goes on from a state another worker wrote.
            let mut s = s;
            s.add_part(LlPart { duration_ms: s.part_target_ms, independent: false });
            let map = s.open.map;
            s.end_segment(map.wrapping_add(1), true, 1);
            s.add_part(LlPart { duration_ms: 1, independent: true });
            s.finish();
            still_decodes(&s);
            serve(&s);
        }
        None => write(data),
    }
}

/// Writer calls chosen by the input, checking the state after each.
fn write(data: &[u8]) {
    let mut src = Src::new(data);
    let part_target_ms = u64::from(src.u16()).clamp(1, 60_000);
    let fragment_ms = u64::from(src.u16()).max(1);
    let window_ms = u64::from(src.u16()).saturating_mul(8);
    let first_msn = match src.u8() {
        255 => u64::MAX - u64::from(src.u8() % 4),
        b => u64::from(b),
    };
    let mut s = LlState::new(part_target_ms, fragment_ms, window_ms, first_msn);
    let mut n: u32 = 0;
    while !src.is_empty() {
        match src.u8() % 8 {
            0..=4 => {
                let v = src.u16();
                s.add_part(LlPart { duration_ms: u64::from(v >> 1), independent: v & 1 == 1 });
            }
            5 | 6 => {
                let (map, flags, date) = (u64::from(src.u8()), src.u8(), u64::from(src.u32()));
                let before = s.open.msn;
                for msn in s.end_segment(map, flags & 1 == 1, date.saturating_mul(1000)) {
                    assert!(msn < before, "dropped msn {msn} not older than the open segment {before}");
                    assert!(!s.segment_exists(msn), "dropped msn {msn} still listed");
                }
            }
            _ => {
                s.finish();
            }
        }
        // The full checks cost a render: after ops 1, 2, 4, 8… and at the end, the quick ones always.
        n = n.wrapping_add(1);
        if n.is_power_of_two() || src.is_empty() {
            still_decodes(&s);
            serve(&s);
        } else {
            newest(&s);
        }
    }
}

fn still_decodes(s: &LlState) {
    assert_eq!(LlState::decode(&s.encode()).as_ref(), Some(s), "the writer broke an invariant");
}

/// Everything a reading worker does with a state.
fn serve(s: &LlState) {
    let reports = [RenditionReport { uri: "a/index.m3u8".into(), last_msn: s.open.msn, last_part: 0 }];
    for skip in [false, true] {
        let text = s.render("p/", skip, &reports);
        assert!(text.starts_with("#EXTM3U\n") && text.ends_with('\n'));
        assert_eq!(text.contains("#EXT-X-PRELOAD-HINT"), !s.ended);
        assert_eq!(text.contains("#EXT-X-ENDLIST"), s.ended);
    }
    let _ = (s.target_duration_s(), s.oldest_listed_part_msn(), s.map_exists(s.open.map));
    newest(s);
    let open = s.open.msn;
    let hint = u32::try_from(s.open.parts.len()).unwrap_or(u32::MAX);
    let msns =
        [0, open.saturating_sub(2), open.saturating_sub(1), open, open.saturating_add(1), open.saturating_add(3)];
    for msn in msns {
        let _ = s.segment_exists(msn);
        for part in [0u32, 1, 4, hint, u32::MAX] {
            let _ = s.part_status(msn, part);
        }
        for part in [None, Some(0), Some(2), Some(u64::from(hint)), Some(u64::MAX)] {
            let _ = s.block(Some(msn), part);
        }
    }
    assert_eq!(s.block(None, Some(0)), Block::BadRequest);
    assert_eq!(s.block(None, None), Block::Ready);
}

/// The newest part is there and the hinted one is awaited.
fn newest(s: &LlState) {
    if let Some((msn, part)) = s.last() {
        assert_eq!(s.part_status(msn, part), PartAvail::Ready, "the last part is not there");
        assert_eq!(s.block(Some(msn), Some(u64::from(part))), Block::Ready, "blocks on the last part");
    }
    let hint = u32::try_from(s.open.parts.len()).unwrap_or(u32::MAX);
    let want = if s.ended { PartAvail::Gone } else { PartAvail::Wait };
    assert_eq!(s.part_status(s.open.msn, hint), want, "the hinted part");
}
