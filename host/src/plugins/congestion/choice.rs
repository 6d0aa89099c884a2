//! Which congestion controller a QUIC connection gets: one for every
//! connection, overridden per host pattern. The choice is read when a
//! connection is created, so replacing it (see `Host::set_congestion`)
//! changes new connections only; open ones finish on the controller they
//! started with.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use quinn::congestion::{Controller, ControllerFactory};
use sockhost_policy::HostPattern;

use super::controller::{HostController, Sampler};
use super::CongestionPlugin;
use crate::control::status::PluginStatus;
use crate::net::congestion::{CongestionStatus, NATIVE_CUBIC};
use crate::plugins::instance::SharedSupervisor;

/// The largest congestion window a plugin may return unless configured
/// otherwise: far above what a loopback or datacenter path needs, far below
/// what would exhaust memory for buffered data.
pub const DEFAULT_MAX_WINDOW: u64 = 256 << 20;

/// A congestion-policy plugin shared by the connections that use it. Each
/// connection gets an instance of its own (forked from this one), so a
/// fault ends one connection's controller and no other; restarts and the
/// disable limit are counted for the plugin as a whole.
#[derive(Debug)]
pub struct CongestionPolicy {
    name: String,
    // Only forked, never called: the lock is held for a clone of handles.
    template: Mutex<CongestionPlugin>,
    supervisor: SharedSupervisor,
}

impl CongestionPolicy {
    /// Shares `plugin` between connections.
    pub fn new(plugin: CongestionPlugin) -> Self {
        CongestionPolicy {
            name: plugin.supervised().name().to_owned(),
            supervisor: plugin.supervised().shared_supervisor().clone(),
            template: Mutex::new(plugin),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the plugin was disabled after repeated faults (new
    /// connections then use native Cubic).
    pub fn is_disabled(&self) -> bool {
        self.lock().supervised().is_disabled()
    }

    /// The plugin's status: its instances are the controllers of open
    /// connections, one each, with no fixed limit (shown as 0).
    pub fn status(&self) -> PluginStatus {
        self.supervisor.status(0)
    }

    /// The operator enables or disables the plugin. Disabled, it makes no
    /// controller: new connections use native Cubic, and open ones fall
    /// back to it from their last sane window at their next event, as after
    /// repeated faults.
    pub fn set_enabled(&self, enable: bool) {
        self.supervisor.set_enabled(enable);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CongestionPlugin> {
        self.template.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fork(&self) -> CongestionPlugin {
        self.lock().fork()
    }
}

/// One controller: quinn's Cubic or a plugin.
#[derive(Debug, Clone)]
pub enum ControllerKind {
    /// quinn's own Cubic.
    Native,
    /// A congestion-policy plugin.
    Plugin(Arc<CongestionPolicy>),
}

impl ControllerKind {
    /// The controller's name: [`NATIVE_CUBIC`] or the plugin's.
    pub fn name(&self) -> &str {
        match self {
            ControllerKind::Native => NATIVE_CUBIC,
            ControllerKind::Plugin(p) => p.name(),
        }
    }

    /// A factory giving quinn this controller for each connection (without
    /// telemetry): for QUIC endpoints outside a [`Host`](crate::host::Host),
    /// such as benchmarks.
    pub fn factory(&self, max_window: u64) -> Arc<dyn ControllerFactory + Send + Sync> {
        let status = Arc::new(CongestionStatus::new(self.name()));
        Arc::new(ConnectionFactory {
            kind: self.clone(),
            max_window,
            sampler: Mutex::new(None),
            status,
        })
    }

    /// A controller for one connection, as quinn would get it (without
    /// telemetry): for replaying recorded traces and for benchmarks.
    pub fn build(&self, now: Instant, mtu: u16, max_window: u64) -> HostController {
        let status = Arc::new(CongestionStatus::new(self.name()));
        match self {
            ControllerKind::Native => HostController::native(now, mtu, None, status),
            ControllerKind::Plugin(p) => {
                HostController::plugin(p.fork(), now, mtu, max_window, None, status)
            }
        }
    }
}

/// The congestion controllers of a host: a default and per-host overrides,
/// the first matching override winning.
#[derive(Debug, Clone)]
pub struct CongestionChoice {
    /// For connections no rule matches.
    pub default: ControllerKind,
    /// (hosts, controller), in order.
    pub rules: Vec<(Vec<HostPattern>, ControllerKind)>,
    /// The largest window a plugin may return, in bytes; more is a fault.
    pub max_window: u64,
}

impl Default for CongestionChoice {
    /// quinn's Cubic for every connection.
    fn default() -> Self {
        CongestionChoice {
            default: ControllerKind::Native,
            rules: Vec::new(),
            max_window: DEFAULT_MAX_WINDOW,
        }
    }
}

impl CongestionChoice {
    /// Every connection uses `kind`.
    pub fn all(kind: ControllerKind) -> Self {
        CongestionChoice {
            default: kind,
            ..CongestionChoice::default()
        }
    }

    /// The plugins among the controllers, each once: the default's first,
    /// then the rules' in order.
    pub fn plugins(&self) -> Vec<&Arc<CongestionPolicy>> {
        let mut plugins: Vec<&Arc<CongestionPolicy>> = Vec::new();
        let kinds = std::iter::once(&self.default).chain(self.rules.iter().map(|(_, k)| k));
        for kind in kinds {
            if let ControllerKind::Plugin(p) = kind {
                if !plugins.iter().any(|q| Arc::ptr_eq(p, q)) {
                    plugins.push(p);
                }
            }
        }
        plugins
    }

    /// The controller for connections to `host`.
    pub fn for_host(&self, host: &str) -> &ControllerKind {
        self.rules
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| p.matches(host)))
            .map_or(&self.default, |(_, kind)| kind)
    }

    /// The factory for one new connection to `host`; `sampler` publishes
    /// its congestion samples. The status tells what drives the connection.
    pub(crate) fn factory(
        &self,
        host: &str,
        sampler: Option<Sampler>,
    ) -> (ConnectionFactory, Arc<CongestionStatus>) {
        let kind = self.for_host(host).clone();
        let status = Arc::new(CongestionStatus::new(kind.name()));
        let factory = ConnectionFactory {
            kind,
            max_window: self.max_window,
            sampler: Mutex::new(sampler),
            status: status.clone(),
        };
        (factory, status)
    }
}

/// Builds the controller of one connection (quinn asks once, when the
/// connection is created).
#[derive(Debug)]
pub(crate) struct ConnectionFactory {
    kind: ControllerKind,
    max_window: u64,
    // Taken by the one controller built; quinn's factory interface only
    // lends `Arc<Self>`.
    sampler: Mutex<Option<Sampler>>,
    status: Arc<CongestionStatus>,
}

impl ControllerFactory for ConnectionFactory {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let sampler = self
            .sampler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Box::new(match &self.kind {
            ControllerKind::Native => {
                HostController::native(now, current_mtu, sampler, self.status.clone())
            }
            ControllerKind::Plugin(policy) => HostController::plugin(
                policy.fork(),
                now,
                current_mtu,
                self.max_window,
                sampler,
                self.status.clone(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(b: crate::builtin::Builtin) -> Arc<CongestionPolicy> {
        let rt = crate::builtin::test_runtime();
        Arc::new(CongestionPolicy::new(
            CongestionPlugin::new(b.load(&rt).unwrap()).unwrap(),
        ))
    }

    #[test]
    fn each_plugin_is_listed_once_the_default_first() {
        let (cubic, newreno) = (
            policy(crate::builtin::CUBIC),
            policy(crate::builtin::NEWRENO),
        );
        let any = || vec![HostPattern::parse("*").unwrap()];
        let c = CongestionChoice {
            default: ControllerKind::Plugin(newreno.clone()),
            rules: vec![
                (any(), ControllerKind::Native),
                (any(), ControllerKind::Plugin(cubic.clone())),
                (any(), ControllerKind::Plugin(newreno.clone())),
            ],
            max_window: 1 << 20,
        };
        let names: Vec<&str> = c.plugins().iter().map(|p| p.name()).collect();
        assert_eq!(names, ["newreno", "cubic"]);
        assert!(CongestionChoice::default().plugins().is_empty());
        let status = cubic.status();
        assert_eq!(
            (status.world.as_str(), status.max_instances),
            ("congestion-policy", 0)
        );
        cubic.set_enabled(false);
        assert!(cubic.is_disabled() && !newreno.is_disabled());
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_default_catches_the_rest() {
        let c = CongestionChoice {
            default: ControllerKind::Native,
            rules: vec![(
                vec![
                    HostPattern::parse("*.example.com").unwrap(),
                    HostPattern::parse("cdn.test").unwrap(),
                ],
                ControllerKind::Native,
            )],
            max_window: 1 << 20,
        };
        // Both kinds are native here; what is checked is which entry is
        // picked, by address.
        assert!(std::ptr::eq(c.for_host("a.example.com"), &c.rules[0].1));
        assert!(std::ptr::eq(c.for_host("CDN.test."), &c.rules[0].1));
        assert!(std::ptr::eq(c.for_host("example.org"), &c.default));
    }
}
