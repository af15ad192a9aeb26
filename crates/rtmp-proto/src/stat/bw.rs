//! Bandwidth as nginx-rtmp-module measures it: bytes counted in 10-second windows, the rate being
//! the previous complete window's bytes over its length, so the stat page shows a steady figure.

const WINDOW_MS: u64 = 10_000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    total: u64,
    /// Bytes of the window ending at `window_end`.
    window_bytes: u64,
    window_end: u64,
    /// Bytes of the window before it (0 when that one was stale at roll-over).
    prev_bytes: u64,
    started: bool,
}

impl Bandwidth {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, bytes: u64, now_ms: u64) {
        if !self.started || now_ms >= self.window_end {
            self.prev_bytes = self.completed_rate_bytes(now_ms);
            self.window_bytes = 0;
            self.window_end = now_ms + WINDOW_MS;
            self.started = true;
        }
        self.total += bytes;
        self.window_bytes += bytes;
    }

    /// Bytes of the last complete window, or 0 if it ended more than one window before `now_ms`.
    fn completed_rate_bytes(&self, now_ms: u64) -> u64 {
        if !self.started {
            0
        } else if now_ms < self.window_end {
            // The current window is open; the previous one ended when it began, so it is fresh.
            self.prev_bytes
        } else if now_ms - self.window_end <= WINDOW_MS {
            self.window_bytes
        } else {
            0
        }
    }

    pub fn bits_per_sec(&self, now_ms: u64) -> u64 {
        self.completed_rate_bytes(now_ms) / (WINDOW_MS / 1000) * 8
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_previous_window() {
        let mut bw = Bandwidth::new();
        assert_eq!(bw.bits_per_sec(0), 0);
        bw.add(1000, 0);
        bw.add(9000, 5_000);
        // First window still open: nothing complete yet.
        assert_eq!(bw.bits_per_sec(9_999), 0);
        // Window [0, 10 s) is complete: 10 000 bytes / 10 s * 8.
        assert_eq!(bw.bits_per_sec(10_000), 8_000);
        assert_eq!(bw.bits_per_sec(20_000), 8_000);
        bw.add(500, 12_000);
        // New window [12 s, 22 s) open; the rate still shows the completed one.
        assert_eq!(bw.bits_per_sec(15_000), 8_000);
        assert_eq!(bw.bits_per_sec(22_000), 400);
        assert_eq!(bw.total(), 10_500);
    }

    #[test]
    fn stale_window_reads_zero() {
        let mut bw = Bandwidth::new();
        bw.add(10_000, 0);
        assert_eq!(bw.bits_per_sec(20_000), 8_000);
        assert_eq!(bw.bits_per_sec(20_001), 0);
        // A late add after a long silence starts fresh: the old window does not count.
        bw.add(100, 30_000);
        assert_eq!(bw.bits_per_sec(35_000), 0);
        assert_eq!(bw.bits_per_sec(40_000), 80);
        assert_eq!(bw.total(), 10_100);
    }
}
