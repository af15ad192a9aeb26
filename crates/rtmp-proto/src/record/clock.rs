//! A file's timeline: stream timestamps mapped to milliseconds from the file's first frame, never
//! going backwards, and surviving a publisher whose clock restarts.

/// A track stepping back by more than this is a clock restart, not audio/video interleaving jitter.
const REWIND_MS: i32 = 1000;

#[derive(Debug, Clone)]
pub struct Clock {
    /// The stream timestamp that maps to `out_ref`.
    in_ref: u32,
    out_ref: u32,
    last_out: u32,
    /// Last stream timestamp per track (audio, video).
    last_in: [Option<u32>; 2],
}

impl Clock {
    /// A timeline on which the stream timestamp `first` is `start`.
    pub fn new(first: u32, start: u32) -> Self {
        Clock {
            in_ref: first,
            out_ref: start,
            last_out: start,
            last_in: [None; 2],
        }
    }

    /// The file timestamp of a frame of `track` (0 audio, 1 video). Frames a little before the
    /// previous one are clamped to it (no drift: the reference stays); a track that jumps back a
    /// lot, far behind the file, restarts the reference where the file is.
    pub fn map(&mut self, track: usize, ts: u32) -> u32 {
        let stepped_back =
            self.last_in[track].is_some_and(|l| (ts.wrapping_sub(l) as i32) < -REWIND_MS);
        self.last_in[track] = Some(ts);
        // Rebase only if the current reference would hold this track back (the other track may
        // have rebased already).
        let behind = i64::from(self.out_ref) + i64::from(ts.wrapping_sub(self.in_ref) as i32)
            < i64::from(self.last_out) - i64::from(REWIND_MS);
        if stepped_back && behind {
            self.in_ref = ts;
            self.out_ref = self.last_out;
        }
        // Signed distance, so that a 32-bit timestamp wrap is a step forward.
        let d = ts.wrapping_sub(self.in_ref) as i32;
        let out = if d >= 0 {
            self.out_ref.saturating_add(d as u32)
        } else {
            self.last_out
        };
        self.last_out = out.max(self.last_out);
        self.last_out
    }

    pub fn last(&self) -> u32 {
        self.last_out
    }
}
