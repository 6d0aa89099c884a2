//! One plugin's status document ([`PluginStatus`]), read from what its
//! instances share: the supervisor's standing and counts, the plugin's
//! stats and fault tally, its manifest. All of it counts from when the
//! plugin was loaded: a reloaded plugin starts afresh.

use std::time::{Duration, Instant, SystemTime};

use super::fault::Fault;
use super::instance::SharedSupervisor;
use super::stats::CallTimes;
use super::supervisor::Standing;
use crate::control::status::{CallTimeStatus, FaultStatus, PluginState, PluginStatus};

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Microseconds, rounded up: what is reported is a bound.
fn ceil_us(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The state shown for a standing read at `now`, which is `wall` on the
/// system clock (a backoff's end is an `Instant`, shown as a wall time).
fn plugin_state(standing: Standing, now: Instant, wall: SystemTime) -> PluginState {
    match standing {
        Standing::Active => PluginState::Active,
        Standing::BackingOff { until } => PluginState::BackingOff {
            until_unix_ms: unix_ms(wall + until.saturating_duration_since(now)),
        },
        Standing::DisabledByFaults => PluginState::Disabled {
            by: "faults".into(),
        },
        Standing::DisabledByOperator => PluginState::Disabled {
            by: "operator".into(),
        },
    }
}

fn call_time(t: &CallTimes) -> CallTimeStatus {
    CallTimeStatus {
        total_us: u64::try_from(t.total.as_micros()).unwrap_or(u64::MAX),
        p99_us: ceil_us(t.p99),
        max_us: ceil_us(t.max),
    }
}

impl From<&Fault> for FaultStatus {
    fn from(f: &Fault) -> Self {
        FaultStatus {
            plugin: f.plugin.to_string(),
            world: f.world.as_str().to_owned(),
            function: f.function.to_owned(),
            kind: f.kind.as_str().to_owned(),
            message: f.message.clone(),
            backtrace: f.backtrace.clone(),
            action: f.action.to_string(),
            at_unix_ms: unix_ms(f.at),
        }
    }
}

impl SharedSupervisor {
    /// The plugin's status now. `max_instances` is the most instances its
    /// host gives it (0: no fixed limit, as a congestion policy has one
    /// per QUIC connection).
    pub fn status(&self, max_instances: u64) -> PluginStatus {
        let manifest = self.manifest();
        let name = self.name();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let calls = self.stats().calls();
        let memory = self.stats().memory();
        let faults = self.faults();
        PluginStatus {
            name: name.to_owned(),
            world: self.world().as_str().to_owned(),
            version: manifest.plugin.version.clone(),
            sha256: hex::encode(manifest.plugin.sha256),
            state: plugin_state(self.standing_at(now), now, wall),
            instances: memory.per_instance.len() as u64,
            max_instances,
            calls: calls.calls,
            call_time: call_time(&calls),
            faults: faults
                .counts()
                .iter()
                .map(|(kind, n)| (kind.as_str().to_owned(), *n))
                .collect(),
            restarts: u64::from(self.restarts()),
            recycles: self.recycles(),
            last_fault: faults.last().map(FaultStatus::from),
            memory_bytes: memory.per_instance,
            memory_limit_bytes: manifest.limits.memory,
            memory_peak_bytes: memory.peak,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fault::{FaultAction, FaultKind};
    use sockhost_policy::World;

    #[test]
    fn each_standing_has_its_state_and_a_backoff_ends_at_a_wall_time() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let cases = [
            (Standing::Active, PluginState::Active),
            (
                Standing::BackingOff {
                    until: now + Duration::from_millis(2_500),
                },
                PluginState::BackingOff {
                    until_unix_ms: 1_002_500,
                },
            ),
            (
                Standing::DisabledByFaults,
                PluginState::Disabled {
                    by: "faults".into(),
                },
            ),
            (
                Standing::DisabledByOperator,
                PluginState::Disabled {
                    by: "operator".into(),
                },
            ),
        ];
        for (standing, want) in cases {
            assert_eq!(plugin_state(standing, now, wall), want, "{standing:?}");
        }
    }

    #[test]
    fn call_time_is_in_microseconds_bounds_rounded_up() {
        let t = CallTimes {
            calls: 3,
            total: Duration::from_nanos(2_999),
            max: Duration::from_nanos(1_001),
            p99: Duration::from_nanos(1_000),
        };
        assert_eq!(
            call_time(&t),
            CallTimeStatus {
                total_us: 2,
                p99_us: 1,
                max_us: 2
            }
        );
    }

    #[test]
    fn a_fault_becomes_its_status_with_its_action_and_backtrace() {
        let f = Fault {
            plugin: "panics".into(),
            world: World::Extension,
            function: "on-request",
            kind: FaultKind::Panic,
            message: "boom".into(),
            backtrace: Some("0: panics.wasm!on_request".into()),
            action: FaultAction::DisabledUntilReload,
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_234),
        };
        assert_eq!(
            FaultStatus::from(&f),
            FaultStatus {
                plugin: "panics".into(),
                world: "extension".into(),
                function: "on-request".into(),
                kind: "panic".into(),
                message: "boom".into(),
                backtrace: Some("0: panics.wasm!on_request".into()),
                action: "disabled until reload".into(),
                at_unix_ms: 1_234,
            }
        );
    }
}
