//! Percentiles for the reports: exact ones over a small sample list, and a fixed-size millisecond
//! histogram for the millions of lag samples a big bench produces.

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Counts of millisecond values; values past the last bucket land in it but `max` stays exact.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Histogram {
    /// One bucket per millisecond up to `limit_ms`.
    pub fn new(limit_ms: usize) -> Self {
        Histogram {
            buckets: vec![0; limit_ms.max(1) + 1],
            count: 0,
            max: 0,
        }
    }

    pub fn add(&mut self, v: u64) {
        let last = self.buckets.len() - 1;
        let i = usize::try_from(v).map_or(last, |i| i.min(last));
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// Nearest-rank percentile, as `percentile` would give over all added values (values past the
    /// limit read as `max`).
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * self.count as f64)
            .ceil()
            .max(1.0) as u64;
        let last = self.buckets.len() - 1;
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(if i == last { self.max } else { i as u64 });
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[1, 2], 51.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[3, 4], f64::NAN.max(200.0)), Some(4));
    }

    #[test]
    fn histogram_matches_exact() {
        let values: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 313).collect();
        let mut h = Histogram::new(10_000);
        for &v in &values {
            h.add(v);
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(h.percentile(p), percentile(&sorted, p), "p{p}");
        }
        assert_eq!(h.max(), sorted.last().copied());
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn histogram_overflow_and_empty() {
        let mut h = Histogram::new(10);
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        h.add(3);
        h.add(5000);
        assert_eq!(h.percentile(50.0), Some(3));
        assert_eq!(h.percentile(99.0), Some(5000));
        assert_eq!(h.max(), Some(5000));
    }
}
