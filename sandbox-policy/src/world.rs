//! The four plugin kinds, one WIT world each.

use std::fmt;
use std::str::FromStr;

/// A plugin kind: the WIT world its component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum World {
    /// Congestion control of QUIC connections.
    CongestionPolicy,
    /// Which endpoints to try, in which order.
    ConnectPolicy,
    /// Receives network events, exports metrics.
    TelemetryProbe,
    /// An add-on acting on requests and responses.
    Extension,
}

impl World {
    /// Every world.
    pub const ALL: [World; 4] = [
        World::CongestionPolicy,
        World::ConnectPolicy,
        World::TelemetryProbe,
        World::Extension,
    ];

    /// The world's WIT name.
    pub fn as_str(&self) -> &'static str {
        match self {
            World::CongestionPolicy => "congestion-policy",
            World::ConnectPolicy => "connect-policy",
            World::TelemetryProbe => "telemetry-probe",
            World::Extension => "extension",
        }
    }

    /// The `sockhost:plugin` interface the world exports.
    pub fn export_interface(&self) -> &'static str {
        match self {
            World::CongestionPolicy => "congestion",
            World::ConnectPolicy => "connect",
            World::TelemetryProbe => "telemetry",
            World::Extension => "add-on",
        }
    }

    /// The world that exports `interface`.
    pub fn from_export_interface(interface: &str) -> Option<World> {
        World::ALL
            .into_iter()
            .find(|w| w.export_interface() == interface)
    }

    /// Whether plugins of this world see requests or events of particular
    /// hosts, so that `capabilities.hosts` means something for them.
    pub fn sees_hosts(&self) -> bool {
        matches!(self, World::TelemetryProbe | World::Extension)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a world (use congestion-policy, connect-policy, telemetry-probe or extension)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in World::ALL {
            assert_eq!(w.as_str().parse::<World>(), Ok(w));
            assert_eq!(World::from_export_interface(w.export_interface()), Some(w));
        }
        assert!("Extension".parse::<World>().is_err());
        assert_eq!(World::from_export_interface("log"), None);
    }
}
