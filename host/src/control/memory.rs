//! The daemon's own memory, as the kernel counts it: resident set now and
//! at its peak (`VmRSS`, `VmHWM` in `/proc/self/status`).

/// Resident set sizes in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    /// Now.
    pub rss: u64,
    /// The peak since start.
    pub peak: u64,
}

/// Reads `/proc/self/status`; zeros where it cannot (not Linux).
pub fn resident() -> Resident {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| parse(&s))
        .unwrap_or_default()
}

/// The `VmRSS` and `VmHWM` lines of a `/proc/PID/status` text. Sans-IO.
pub fn parse(status: &str) -> Resident {
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    Resident {
        rss: kib("VmRSS:"),
        peak: kib("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_two_lines_in_bytes() {
        let text = "Name:\tsockhost\nVmHWM:\t   20480 kB\nVmRSS:\t   18944 kB\nThreads:\t4\n";
        assert_eq!(
            parse(text),
            Resident {
                rss: 18944 * 1024,
                peak: 20480 * 1024
            }
        );
        assert_eq!(parse("garbage"), Resident::default());
        assert!(resident().rss > 0);
    }
}
