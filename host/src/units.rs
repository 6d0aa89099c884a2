//! How figures are written for people: sizes, durations, uptimes, counts
//! and times. The status page, `sockhost status` and the benchmarks all
//! write them this way.

use std::time::{Duration, UNIX_EPOCH};

/// A duration in the unit that suits it: ns, µs, ms or s.
pub fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A duration given in microseconds, as [`human_duration`] writes it.
pub fn human_micros(us: u64) -> String {
    human_duration(Duration::from_micros(us))
}

/// A size in bytes, KiB or MiB.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// How long something has run, to the unit people read it in: `45s`,
/// `3m 05s`, `1h 02m`, `2d 03h`.
pub fn human_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match secs {
        0..60 => format!("{s}s"),
        60..3600 => format!("{m}m {s:02}s"),
        3600..86_400 => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h:02}h"),
    }
}

/// A count with thousands separated: `1,234,567`.
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time given in milliseconds since the Unix epoch, in UTC to the
/// second: `2026-12-01 07:16:59 UTC`.
pub fn utc(unix_ms: u64) -> String {
    let iso = crate::serve::access_log::rfc3339(UNIX_EPOCH + Duration::from_millis(unix_ms));
    // `2026-12-01T07:16:59.123Z`: the date, the time without its fraction.
    format!("{} {} UTC", &iso[..10], &iso[11..19])
}

/// How long before `now_unix_ms` the time `unix_ms` was: `3m 05s ago`, or
/// `in 20s` for a time still to come.
pub fn relative(unix_ms: u64, now_unix_ms: u64) -> String {
    if unix_ms > now_unix_ms {
        format!(
            "in {}",
            human_uptime((unix_ms - now_unix_ms).div_ceil(1000))
        )
    } else {
        format!("{} ago", human_uptime((now_unix_ms - unix_ms) / 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_suit_the_magnitude() {
        assert_eq!(human_duration(Duration::from_nanos(640)), "640 ns");
        assert_eq!(human_duration(Duration::from_nanos(12_340)), "12.3 µs");
        assert_eq!(human_duration(Duration::from_micros(1_500)), "1.5 ms");
        assert_eq!(human_duration(Duration::from_millis(12_345)), "12.35 s");
        assert_eq!(human_micros(250), "250.0 µs");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(17_825_792), "17.0 MiB");
    }

    #[test]
    fn uptimes_and_counts_read_as_people_write_them() {
        assert_eq!(human_uptime(0), "0s");
        assert_eq!(human_uptime(59), "59s");
        assert_eq!(human_uptime(185), "3m 05s");
        assert_eq!(human_uptime(3720), "1h 02m");
        assert_eq!(human_uptime(183_600), "2d 03h");
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1000), "1,000");
        assert_eq!(human_count(1_234_567), "1,234,567");
    }

    #[test]
    fn times_in_utc_and_relative_to_now() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_109_419_999), "2026-12-01 07:16:59 UTC");
        assert_eq!(relative(1000, 186_000), "3m 05s ago");
        assert_eq!(relative(30_000, 10_500), "in 20s");
    }
}
