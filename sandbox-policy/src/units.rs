//! Human-friendly sizes (`32 MiB`) and durations (`50ms`) in manifests.

use std::time::Duration;

/// Parses a byte size: a plain integer (bytes) or a number with one of the
/// suffixes `B`, `KiB`, `MiB`, `GiB` (also `K`, `M`, `G`, binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("{text:?} is not a size (write e.g. \"32 MiB\")"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a duration: a number with one of the suffixes `us`, `ms`, `s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("{text:?} is not a duration (write e.g. \"50ms\")"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    match unit.trim() {
        "us" | "µs" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "" => Err(format!("{text:?} has no unit (use us, ms or s)")),
        other => Err(format!(
            "unknown duration unit {other:?} in {text:?} (use us, ms or s)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("0", Some(0)),
            ("4096", Some(4096)),
            ("64 KiB", Some(64 << 10)),
            ("32MiB", Some(32 << 20)),
            ("4 GiB", Some(4 << 30)),
            ("2M", Some(2 << 20)),
            ("12 B", Some(12)),
            ("", None),
            ("MiB", None),
            ("1.5 MiB", None),
            ("3 mb", None),
            ("-1", None),
            ("99999999999999999999", None),
            ("17179869184 GiB", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("50ms", Some(Duration::from_millis(50))),
            ("2 s", Some(Duration::from_secs(2))),
            ("500us", Some(Duration::from_micros(500))),
            ("50", None),
            ("ms", None),
            ("1h", None),
            ("0.5s", None),
        ] {
            assert_eq!(parse_duration(text).ok(), want, "{text:?}");
        }
    }
}
