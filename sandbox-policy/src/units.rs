//! Human-friendly sizes (`32 MiB`) and durations (`50ms`) in manifests.

use std::time::Duration;

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// It does not start with a number.
    #[error("{text:?} is not a size (write e.g. \"32 MiB\")")]
    NotASize {
        /// The text.
        text: String,
    },
    /// It does not fit in 64 bits.
    #[error("{text:?} is too large")]
    TooLarge {
        /// The text.
        text: String,
    },
    /// Its unit is none of `B`, `KiB`, `MiB`, `GiB`.
    #[error("unknown size unit {unit:?} in {text:?} (use B, KiB, MiB or GiB)")]
    UnknownUnit {
        /// The text.
        text: String,
        /// The unit.
        unit: String,
    },
}

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// It does not start with a number.
    #[error("{text:?} is not a duration (write e.g. \"50ms\")")]
    NotADuration {
        /// The text.
        text: String,
    },
    /// The number does not fit in 64 bits.
    #[error("{text:?} is too large")]
    TooLarge {
        /// The text.
        text: String,
    },
    /// A bare number: seconds or milliseconds would be a guess.
    #[error("{text:?} has no unit (use us, ms or s)")]
    NoUnit {
        /// The text.
        text: String,
    },
    /// Its unit is none of `us`, `ms`, `s`.
    #[error("unknown duration unit {unit:?} in {text:?} (use us, ms or s)")]
    UnknownUnit {
        /// The text.
        text: String,
        /// The unit.
        unit: String,
    },
}

/// Splits `text` into its leading digits, parsed, and the unit after them;
/// `None` when there are no digits, `Some(Err(()))` when they overflow.
fn number_and_unit(text: &str) -> Option<(Result<u64, ()>, &str)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return None;
    }
    Some((digits.parse().map_err(|_| ()), unit.trim()))
}

/// Parses a byte size: a plain integer (bytes) or a number with one of the
/// suffixes `B`, `KiB`, `MiB`, `GiB` (also `K`, `M`, `G`, binary units).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text_owned = || text.to_owned();
    let too_large = || SizeError::TooLarge { text: text_owned() };
    let (n, unit) =
        number_and_unit(text).ok_or_else(|| SizeError::NotASize { text: text_owned() })?;
    let n = n.map_err(|()| too_large())?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(SizeError::UnknownUnit {
                text: text_owned(),
                unit: other.to_owned(),
            })
        }
    };
    n.checked_mul(mult).ok_or_else(too_large)
}

/// Parses a duration: a number with one of the suffixes `us`, `ms`, `s`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text_owned = || text.to_owned();
    let (n, unit) =
        number_and_unit(text).ok_or_else(|| DurationError::NotADuration { text: text_owned() })?;
    let n = n.map_err(|()| DurationError::TooLarge { text: text_owned() })?;
    match unit {
        "us" | "µs" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "" => Err(DurationError::NoUnit { text: text_owned() }),
        other => Err(DurationError::UnknownUnit {
            text: text_owned(),
            unit: other.to_owned(),
        }),
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
    fn errors_say_what_is_wrong() {
        let size = |t| parse_size(t).unwrap_err().to_string();
        assert_eq!(size("MiB"), r#""MiB" is not a size (write e.g. "32 MiB")"#);
        assert_eq!(size("17179869184 GiB"), r#""17179869184 GiB" is too large"#);
        assert_eq!(
            size("3 mb"),
            r#"unknown size unit "mb" in "3 mb" (use B, KiB, MiB or GiB)"#
        );
        let duration = |t| parse_duration(t).unwrap_err().to_string();
        assert_eq!(duration("50"), r#""50" has no unit (use us, ms or s)"#);
        assert_eq!(
            duration("1h"),
            r#"unknown duration unit "h" in "1h" (use us, ms or s)"#
        );
        assert_eq!(
            duration("ms"),
            r#""ms" is not a duration (write e.g. "50ms")"#
        );
        assert_eq!(
            duration("99999999999999999999ms"),
            r#""99999999999999999999ms" is too large"#
        );
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
