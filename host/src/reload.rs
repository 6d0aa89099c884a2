//! Live reload (Firefox's preference sync, for a daemon): a host's plugins
//! and network preferences replaced by a new config's, all or nothing.
//!
//! Every plugin the new config names is loaded and compiled, and every new
//! one started, before anything changes; any error leaves the host as it
//! was. Then new requests and connections take the new plugins and
//! preferences at once, while requests and connections in flight finish on
//! what they started with ([`crate::current::Current`]). A plugin whose
//! manifest (and so its component's sha256) did not change is kept, with
//! its instances and state.

use std::sync::Arc;

use crate::config::Config;
use crate::control::status::PluginState;
use crate::extensions::Reloaded;
use crate::host::Host;
use crate::net::plan::ConnectPolicy;
use crate::plugins::connect::{ConnectPlugin, PluginPolicy};
use crate::plugins::telemetry::TelemetryPlugin;
use crate::plugins::PluginRuntime;
use crate::telemetry::Probe;
use crate::wiring::{connector, in_slot, plan, Role, WiringError};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file could not be read or parsed; the error names the
    /// file and the field.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A plugin the new config names did not load, compile or start; the
    /// error names the config field and the manifest.
    #[error(transparent)]
    Plugins(#[from] WiringError),
    /// The new config changes what only a restart can change.
    #[error("{0} cannot change without a restart (nothing was changed)")]
    NeedsRestart(String),
    /// Another reload is running.
    #[error("a reload is already running")]
    Busy,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Plugins kept as they were, with their instances and state.
    pub kept: Vec<String>,
    /// Plugins loaded and started anew.
    pub added: Vec<String>,
    /// Plugins no longer plugged in (they finish what they started).
    pub removed: Vec<String>,
    /// Kept plugins that were disabled until a reload after repeated
    /// faults, and run again.
    pub revived: Vec<String>,
    /// Whether the congestion controllers were replaced.
    pub congestion_replaced: bool,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| match v.is_empty() {
            true => "none".to_owned(),
            false => v.join(", "),
        };
        write!(f, "plugins kept: {}; ", list(&self.kept))?;
        if !self.revived.is_empty() {
            write!(f, "re-enabled after faults: {}; ", list(&self.revived))?;
        }
        write!(
            f,
            "added: {}; removed: {}; congestion controllers {}; network preferences applied",
            list(&self.added),
            list(&self.removed),
            if self.congestion_replaced {
                "replaced"
            } else {
                "unchanged"
            }
        )
    }
}

/// The config fields a running host cannot take without a restart: the
/// resolver's servers, the pool's limits and the daemon's listeners and
/// limits (`[serve]`). Sans-IO.
pub fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if old.dns_servers != new.dns_servers {
        fields.push("network.dns-servers");
    }
    if old.pool.max_per_host != new.pool.max_per_host {
        fields.push("network.max-connections-per-host");
    }
    if old.pool.max_total != new.pool.max_total {
        fields.push("network.max-connections");
    }
    if old.pool.idle_timeout != new.pool.idle_timeout {
        fields.push("network.idle-timeout");
    }
    if old.serve != new.serve {
        fields.push("serve");
    }
    fields
}

/// The extensions, probes and connect policy a new config plugs in, each
/// either kept from the host or loaded and started: ready to apply.
struct Prepared {
    extensions: Vec<Reloaded>,
    probes: Vec<Probe>,
    // `None`: unchanged.
    connect: Option<Option<Arc<PluginPolicy>>>,
    report: ReloadReport,
}

impl Host {
    /// Replaces this host's plugins and network preferences, wired from
    /// `old`, with `new`'s; see the [module](crate::reload) for what that
    /// means for work in flight. Blocking: plugins are compiled and
    /// started here, so call it where blocking is allowed.
    pub fn reload(
        &self,
        old: &Config,
        new: &Config,
        runtime: &PluginRuntime,
    ) -> Result<ReloadReport, ReloadError> {
        let restart = restart_only(old, new);
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart.join(", ")));
        }
        let mut prepared = self.prepare(new, runtime)?;
        if !prepared.probes.is_empty() && !self.telemetry().is_reloadable() {
            return Err(ReloadError::NeedsRestart(
                "plugins.probes (this host started without a reloadable telemetry bus)".into(),
            ));
        }
        let congestion = match old.congestion == new.congestion {
            true => None,
            false => Some(new.congestion.load(runtime)?),
        };
        // Nothing below fails: the new config takes effect whole.
        let pipeline = self.pipeline();
        let extensions = pipeline.extensions.get().rebuild(prepared.extensions);
        pipeline.extensions.replace(extensions);
        self.telemetry().replace_probes(prepared.probes);
        if let Some(connect) = prepared.connect {
            let policy = connect.clone().map(|p| p as Arc<dyn ConnectPolicy>);
            self.network().planning.replace(policy);
            self.connect_policy().replace(connect);
        }
        if let Some(choice) = congestion {
            self.set_congestion(choice);
            prepared.report.congestion_replaced = true;
        }
        let network = self.network();
        network.connector.replace(connector(new));
        network.resolution_delay.replace(new.resolution_delay);
        pipeline.request_timeout.replace(new.request_timeout);
        // A plugin disabled "until a reload" after its faults runs again;
        // one the operator disabled stays so until the operator enables it.
        for status in self.plugin_statuses() {
            let by_faults = matches!(&status.state, PluginState::Disabled { by } if by == "faults");
            if by_faults && prepared.report.kept.contains(&status.name) {
                let _ = self.set_plugin_enabled(&status.name, true);
                prepared.report.revived.push(status.name);
            }
        }
        Ok(prepared.report)
    }

    /// Loads every plugin `new` names; keeps the host's own where the
    /// manifest is the same; starts the others.
    fn prepare(&self, new: &Config, runtime: &PluginRuntime) -> Result<Prepared, ReloadError> {
        let mut extensions = Unclaimed::new(self.pipeline().extensions.get().manifests());
        let probes = self.telemetry().probes();
        let mut probe_manifests =
            Unclaimed::new(probes.iter().map(|p| p.manifest().clone()).collect());
        let connect_now = self
            .connect_policy()
            .get()
            .as_ref()
            .as_ref()
            .map(|p| p.manifest().clone());
        let mut p = Prepared {
            extensions: Vec::new(),
            probes: Vec::new(),
            connect: connect_now.is_some().then_some(None),
            report: ReloadReport::default(),
        };
        for slot in plan(new) {
            let loaded = slot.load(runtime)?;
            let name = loaded.name().to_owned();
            match slot.role {
                Role::Extension => match extensions.claim(loaded.manifest()) {
                    Some(i) => {
                        p.extensions.push(Reloaded::Keep(i));
                        p.report.kept.push(name);
                    }
                    None => {
                        p.extensions
                            .push(Reloaded::New(Box::new(slot.start_extension(loaded)?)));
                        p.report.added.push(name);
                    }
                },
                Role::Probe => match probe_manifests.claim(loaded.manifest()) {
                    Some(i) => {
                        p.probes.push(probes[i].clone());
                        p.report.kept.push(name);
                    }
                    None => {
                        let probe = TelemetryPlugin::new(loaded)
                            .map_err(in_slot(&slot.source, &slot.field))?;
                        p.probes.push(Probe::new(probe));
                        p.report.added.push(name);
                    }
                },
                Role::ConnectPolicy => {
                    if connect_now.as_ref() == Some(loaded.manifest()) {
                        p.connect = None;
                        p.report.kept.push(name);
                    } else {
                        let plugin = ConnectPlugin::new(loaded)
                            .map_err(in_slot(&slot.source, &slot.field))?;
                        p.connect = Some(Some(Arc::new(PluginPolicy::new(plugin))));
                        p.report.added.push(name);
                    }
                }
            }
        }
        p.report.removed.extend(extensions.unclaimed());
        p.report.removed.extend(probe_manifests.unclaimed());
        if let (Some(None), Some(m)) = (&p.connect, &connect_now) {
            p.report.removed.push(m.plugin.name.clone());
        }
        Ok(p)
    }
}

/// The manifests of the plugins a host has in one role, each kept by at
/// most one plugin of the new config.
struct Unclaimed {
    manifests: Vec<sockhost_policy::Manifest>,
    claimed: Vec<bool>,
}

impl Unclaimed {
    fn new(manifests: Vec<sockhost_policy::Manifest>) -> Self {
        let claimed = vec![false; manifests.len()];
        Unclaimed { manifests, claimed }
    }

    /// The index of the first plugin not yet kept whose manifest is `m`,
    /// now kept.
    fn claim(&mut self, m: &sockhost_policy::Manifest) -> Option<usize> {
        let i = (0..self.manifests.len()).find(|&i| !self.claimed[i] && self.manifests[i] == *m)?;
        self.claimed[i] = true;
        Some(i)
    }

    /// The names of the plugins no one kept.
    fn unclaimed(&self) -> impl Iterator<Item = String> + '_ {
        self.manifests
            .iter()
            .zip(&self.claimed)
            .filter(|(_, c)| !**c)
            .map(|(m, _)| m.plugin.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/sockhost/config.toml")).unwrap()
    }

    #[test]
    fn plugins_and_preferences_reload_but_servers_pool_and_listeners_need_a_restart() {
        let base = parse("[plugins]\nbuiltin = true\n");
        let plugins = parse("[plugins]\nbuiltin = false\n[network]\nconnect-timeout = \"3s\"\n");
        assert!(restart_only(&base, &plugins).is_empty());
        let servers = parse("[network]\ndns-servers = [\"127.0.0.1:5353\"]\n");
        assert_eq!(restart_only(&base, &servers), vec!["network.dns-servers"]);
        let pool = parse("[network]\nmax-connections-per-host = 2\nidle-timeout = \"5s\"\n");
        assert_eq!(
            restart_only(&base, &pool),
            vec!["network.max-connections-per-host", "network.idle-timeout"]
        );
        let listen = parse("[serve]\nlisten = [\"127.0.0.1:3128\"]\n");
        assert_eq!(restart_only(&base, &listen), vec!["serve"]);
    }

    #[test]
    fn the_report_says_what_changed() {
        let r = ReloadReport {
            kept: vec!["blocklist".into()],
            added: vec!["x".into(), "y".into()],
            removed: vec![],
            revived: vec![],
            congestion_replaced: false,
        };
        assert_eq!(
            r.to_string(),
            "plugins kept: blocklist; added: x, y; removed: none; congestion controllers \
             unchanged; network preferences applied"
        );
    }
}
