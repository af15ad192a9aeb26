//! Wall-clock and duration formats of the MPD: `xs:dateTime` in UTC with milliseconds and
//! `xs:duration` in seconds with up to three decimals.

/// `2026-11-24T10:00:00.000Z` for `ms` milliseconds since the Unix epoch.
pub fn iso8601_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, sod) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", sod / 3600, sod / 60 % 60, sod % 60, ms % 1000)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `PT30S`, `PT5.005S`, `PT0.5S`: an `xs:duration` of whole and fractional seconds.
pub fn duration_ms(ms: u64) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("PT{s}S")
    } else {
        let f = format!("{frac:03}");
        format!("PT{s}.{}S", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_795_514_400_999), "2026-11-24T10:00:00.999Z");
        assert_eq!(iso8601_ms(4_102_444_799_000), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(30_000), "PT30S");
        assert_eq!(duration_ms(5_005), "PT5.005S");
        assert_eq!(duration_ms(500), "PT0.5S");
        assert_eq!(duration_ms(10_250), "PT10.25S");
        assert_eq!(duration_ms(0), "PT0S");
        assert_eq!(duration_ms(3_600_000), "PT3600S");
    }
}
