//! A [`Config`] wired into a host: the plugins it names loaded into a
//! [`PluginRuntime`] and plugged in, its network preferences and congestion
//! controllers set, the runtime's fault log published to the probes. The
//! `sockhost` binary and embedders build hosts from a config the same way:
//! [`Host::from_config`], or [`HostBuilder::config`] to add more before
//! building.

use std::path::PathBuf;
use std::sync::Arc;

use crate::builtin::{self, Builtin};
use crate::config::{Config, CongestionConfig, ControllerRef};
use crate::host::{FetchError, Host, HostBuilder};
use crate::net::connect::Connector;
use crate::net::pool::PoolPrefs;
use crate::plugins::congestion::{
    CongestionChoice, CongestionPlugin, CongestionPolicy, ControllerKind,
};
use crate::plugins::connect::ConnectPlugin;
use crate::plugins::extension::{ExtensionPlugin, StartError};
use crate::plugins::telemetry::TelemetryPlugin;
use crate::plugins::{LoadError, LoadedPlugin, PluginRuntime};

/// The built-in extensions `[plugins] builtin = true` loads, in order.
pub const BUILTIN_EXTENSIONS: &[Builtin] = &[builtin::BLOCKLIST];

/// The built-in probes `[plugins] builtin = true` loads.
pub const BUILTIN_PROBES: &[Builtin] = &[builtin::REQUEST_STATS];

/// Where a plugin named by a config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Embedded in the binary.
    Builtin(Builtin),
    /// A plugin.toml.
    Manifest(PathBuf),
}

impl PluginSource {
    fn load(&self, runtime: &PluginRuntime) -> Result<LoadedPlugin, LoadError> {
        match self {
            PluginSource::Builtin(b) => b.load(runtime),
            PluginSource::Manifest(path) => runtime.load(path),
        }
    }
}

/// Why a config could not be wired into a host. The message names the
/// config field that named the plugin; the kept error names the file.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// A plugin's manifest or component could not be loaded, or the
    /// plugin could not be instantiated for its role.
    #[error("{field}: {error}")]
    Load {
        /// The config field naming it, e.g. `plugins.extensions[1]`.
        field: String,
        /// The plugin.
        plugin: PluginSource,
        /// Why (boxed: a load error is large and this is the cold path).
        error: Box<LoadError>,
    },
    /// An extension loaded but did not start.
    #[error("{field}: {error}")]
    Start {
        /// The config field naming it.
        field: String,
        /// The plugin.
        plugin: PluginSource,
        /// Why.
        error: Box<StartError>,
    },
    /// The host itself could not be built.
    #[error(transparent)]
    Build(#[from] FetchError),
}

/// What a plugin plugs in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Extension,
    Probe,
    ConnectPolicy,
}

/// One plugin a config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) role: Role,
    pub(crate) source: PluginSource,
    pub(crate) field: String,
}

/// A built-in plugin in `role`, named by `[plugins] builtin`.
fn builtin_slot(role: Role, b: Builtin) -> Slot {
    Slot {
        role,
        source: PluginSource::Builtin(b),
        field: "plugins.builtin".into(),
    }
}

/// The plugins `config` asks for, in the order they are plugged in: the
/// built-in ones first, then those the config lists.
pub(crate) fn plan(config: &Config) -> Vec<Slot> {
    let mut slots = Vec::new();
    for (role, builtins, paths, key) in [
        (
            Role::Extension,
            BUILTIN_EXTENSIONS,
            &config.extensions,
            "extensions",
        ),
        (Role::Probe, BUILTIN_PROBES, &config.probes, "probes"),
    ] {
        if config.builtin_plugins {
            slots.extend(builtins.iter().map(|b| builtin_slot(role, *b)));
        }
        slots.extend(paths.iter().enumerate().map(|(i, path)| Slot {
            role,
            source: PluginSource::Manifest(path.clone()),
            field: format!("plugins.{key}[{i}]"),
        }));
    }
    if let Some(path) = &config.connect_policy {
        slots.push(Slot {
            role: Role::ConnectPolicy,
            source: PluginSource::Manifest(path.clone()),
            field: "plugins.connect-policy".into(),
        });
    }
    slots
}

/// The connector `config`'s network preferences describe.
pub(crate) fn connector(config: &Config) -> Connector {
    let mut c = Connector {
        connect_timeout: config.connect_timeout,
        ..Connector::default()
    };
    match config.syn_retry {
        Some(d) => c.prefs.syn_retry = d,
        None => c.prefs.syn_retry_enabled = false,
    }
    c.prefs.min_spacing = config.min_attempt_spacing;
    c
}

/// Wraps a plugin's load error with the slot it came from.
pub(crate) fn in_slot(source: &PluginSource, field: &str) -> impl FnOnce(LoadError) -> WiringError {
    let (field, plugin) = (field.to_owned(), source.clone());
    move |error| WiringError::Load {
        field,
        plugin,
        error: Box::new(error),
    }
}

impl Slot {
    /// Loads (compiles) the plugin.
    pub(crate) fn load(&self, runtime: &PluginRuntime) -> Result<LoadedPlugin, WiringError> {
        self.source
            .load(runtime)
            .map_err(in_slot(&self.source, &self.field))
    }

    /// Starts a loaded extension (its `init` runs).
    pub(crate) fn start_extension(
        &self,
        loaded: LoadedPlugin,
    ) -> Result<ExtensionPlugin, WiringError> {
        ExtensionPlugin::start(loaded).map_err(|error| WiringError::Start {
            field: self.field.clone(),
            plugin: self.source.clone(),
            error: Box::new(error),
        })
    }

    /// Loads the plugin and plugs it into `b` in its role.
    fn plug(self, b: HostBuilder, runtime: &PluginRuntime) -> Result<HostBuilder, WiringError> {
        let loaded = self
            .source
            .load(runtime)
            .map_err(in_slot(&self.source, &self.field))?;
        Ok(match self.role {
            Role::Extension => {
                b.extension(
                    ExtensionPlugin::start(loaded).map_err(|error| WiringError::Start {
                        field: self.field,
                        plugin: self.source,
                        error: Box::new(error),
                    })?,
                )
            }
            Role::Probe => {
                b.probe(TelemetryPlugin::new(loaded).map_err(in_slot(&self.source, &self.field))?)
            }
            Role::ConnectPolicy => b.connect_policy(
                ConnectPlugin::new(loaded).map_err(in_slot(&self.source, &self.field))?,
            ),
        })
    }
}

impl HostBuilder {
    /// Everything `config` says: its plugins (loaded into `runtime`),
    /// network preferences and congestion controllers, and `runtime`'s
    /// faults published to the probes. Calls after this one add to it or
    /// override it.
    pub fn config(self, config: &Config, runtime: &PluginRuntime) -> Result<Self, WiringError> {
        let mut b = self
            .resolution_delay(config.resolution_delay)
            .pool(PoolPrefs {
                max_per_host: config.pool.max_per_host,
                max_total: config.pool.max_total,
                idle_timeout: config.pool.idle_timeout,
            })
            .connector(connector(config))
            .request_timeout(config.request_timeout)
            .congestion(config.congestion.load(runtime)?)
            .fault_log(runtime.faults().clone());
        if !config.dns_servers.is_empty() {
            b = b.name_servers(config.dns_servers.clone());
        }
        for slot in plan(config) {
            b = slot.plug(b, runtime)?;
        }
        Ok(b)
    }

    /// Adds the built-in plugin `b` as an extension, as
    /// `[plugins] builtin = true` does with [`BUILTIN_EXTENSIONS`].
    pub fn builtin_extension(
        self,
        b: Builtin,
        runtime: &PluginRuntime,
    ) -> Result<Self, WiringError> {
        builtin_slot(Role::Extension, b).plug(self, runtime)
    }

    /// Adds the built-in plugin `b` as a probe, as `[plugins] builtin =
    /// true` does with [`BUILTIN_PROBES`].
    pub fn builtin_probe(self, b: Builtin, runtime: &PluginRuntime) -> Result<Self, WiringError> {
        builtin_slot(Role::Probe, b).plug(self, runtime)
    }
}

impl Host {
    /// A host as `config` describes it, its plugins loaded into `runtime`
    /// (see [`HostBuilder::config`]).
    pub fn from_config(config: &Config, runtime: &PluginRuntime) -> Result<Host, WiringError> {
        Ok(Host::builder().config(config, runtime)?.build()?)
    }
}

impl CongestionConfig {
    /// Loads the plugins it names (each once, shared by the rules naming
    /// it) into a choice for [`HostBuilder::congestion`] or
    /// [`Host::set_congestion`].
    pub fn load(&self, runtime: &PluginRuntime) -> Result<CongestionChoice, WiringError> {
        let mut loaded: Vec<(ControllerRef, ControllerKind)> = Vec::new();
        let mut kind = |r: &ControllerRef, field: &str| -> Result<ControllerKind, WiringError> {
            if let Some((_, k)) = loaded.iter().find(|(seen, _)| seen == r) {
                return Ok(k.clone());
            }
            let source = match r {
                ControllerRef::Native => return Ok(ControllerKind::Native),
                ControllerRef::Builtin(b) => PluginSource::Builtin(*b),
                ControllerRef::Manifest(path) => PluginSource::Manifest(path.clone()),
            };
            let plugin = source
                .load(runtime)
                .and_then(CongestionPlugin::new)
                .map_err(in_slot(&source, field))?;
            let k = ControllerKind::Plugin(Arc::new(CongestionPolicy::new(plugin)));
            loaded.push((r.clone(), k.clone()));
            Ok(k)
        };
        let default = kind(&self.controller, "congestion.controller")?;
        let mut rules = Vec::new();
        for (i, (hosts, r)) in self.rules.iter().enumerate() {
            rules.push((
                hosts.clone(),
                kind(r, &format!("congestion.rule[{i}].controller"))?,
            ));
        }
        Ok(CongestionChoice {
            default,
            rules,
            max_window: self.max_window,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::host::FetchRequest;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/sockhost/config.toml")).unwrap()
    }

    #[test]
    fn the_plan_puts_the_builtin_plugins_first() {
        let c = parse(
            "[plugins]\nbuiltin = true\nextensions = [\"x/plugin.toml\"]\n\
             probes = [\"p/plugin.toml\"]\nconnect-policy = \"he/plugin.toml\"\n",
        );
        let manifest = |p: &str| PluginSource::Manifest(Path::new("/etc/sockhost").join(p));
        let slot = |role, source, field: &str| Slot {
            role,
            source,
            field: field.into(),
        };
        assert_eq!(
            plan(&c),
            vec![
                builtin_slot(Role::Extension, builtin::BLOCKLIST),
                slot(
                    Role::Extension,
                    manifest("x/plugin.toml"),
                    "plugins.extensions[0]"
                ),
                builtin_slot(Role::Probe, builtin::REQUEST_STATS),
                slot(Role::Probe, manifest("p/plugin.toml"), "plugins.probes[0]"),
                slot(
                    Role::ConnectPolicy,
                    manifest("he/plugin.toml"),
                    "plugins.connect-policy"
                ),
            ]
        );
        // The defaults load nothing.
        assert!(plan(&Config::default()).is_empty());
    }

    #[test]
    fn the_connector_follows_the_network_preferences() {
        let c = parse("[network]\nsyn-retry = \"off\"\nmin-attempt-spacing = \"20ms\"\nconnect-timeout = \"3s\"\n");
        let k = connector(&c);
        assert!(!k.prefs.syn_retry_enabled);
        assert_eq!(k.prefs.min_spacing, Duration::from_millis(20));
        assert_eq!(k.connect_timeout, Duration::from_secs(3));
        let k = connector(&parse("[network]\nsyn-retry = \"400ms\"\n"));
        assert!(k.prefs.syn_retry_enabled);
        assert_eq!(k.prefs.syn_retry, Duration::from_millis(400));
    }

    #[tokio::test]
    async fn the_embedded_config_runs_the_builtin_plugins() {
        let rt = builtin::test_runtime();
        let host = Host::from_config(&Config::embedded(), &rt).unwrap();
        // The blocklist cancels an ad host before anything is resolved.
        let e = host
            .fetch(FetchRequest::get("https://ads.example/x.js"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FetchError::Blocked { extension, .. } if extension == "blocklist"),
            "{e}"
        );
        let probes: Vec<String> = host
            .telemetry()
            .collect()
            .await
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(probes, vec!["request-stats".to_owned()]);
        // The defaults: no probe.
        let bare = Host::from_config(&Config::default(), &rt).unwrap();
        assert!(bare.telemetry().collect().await.is_empty());
    }

    #[tokio::test]
    async fn a_missing_manifest_names_the_field_and_the_file() {
        let rt = builtin::test_runtime();
        for (text, field, file) in [
            (
                "[plugins]\nextensions = [\"gone/plugin.toml\"]\n",
                "plugins.extensions[0]",
                "/etc/sockhost/gone/plugin.toml",
            ),
            (
                "[plugins]\nbuiltin = true\nprobes = [\"a/plugin.toml\"]\n",
                "plugins.probes[0]",
                "/etc/sockhost/a/plugin.toml",
            ),
            (
                "[plugins]\nconnect-policy = \"he/plugin.toml\"\n",
                "plugins.connect-policy",
                "/etc/sockhost/he/plugin.toml",
            ),
            (
                "[[congestion.rule]]\nhosts = [\"a.test\"]\ncontroller = \"cc/plugin.toml\"\n",
                "congestion.rule[0].controller",
                "/etc/sockhost/cc/plugin.toml",
            ),
        ] {
            let e = Host::from_config(&parse(text), &rt).unwrap_err();
            let WiringError::Load {
                field: f,
                plugin: PluginSource::Manifest(path),
                error,
            } = &e
            else {
                panic!("a manifest load error expected: {e:?}");
            };
            assert!(matches!(**error, LoadError::Manifest(_)), "{error:?}");
            assert_eq!((f.as_str(), path.as_path()), (field, Path::new(file)));
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("{field}: ")) && message.contains(file),
                "{message}"
            );
        }
    }

    #[test]
    fn the_wrong_world_for_a_role_is_a_load_error() {
        // The blocklist is an extension, not a probe.
        let rt = builtin::test_runtime();
        let e = Host::builder()
            .builtin_probe(builtin::BLOCKLIST, &rt)
            .unwrap_err();
        assert!(
            matches!(&e, WiringError::Load { plugin: PluginSource::Builtin(b), .. } if *b == builtin::BLOCKLIST),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("plugins.builtin: "), "{e}");
    }

    #[test]
    fn a_congestion_config_loads_each_plugin_once() {
        let rt = builtin::test_runtime();
        let c = Config::parse(
            "[congestion]\ncontroller = \"newreno\"\n\
             [[congestion.rule]]\nhosts = [\"a.test\"]\ncontroller = \"newreno\"\n\
             [[congestion.rule]]\nhosts = [\"b.test\"]\ncontroller = \"cubic\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let choice = c.congestion.load(&rt).unwrap();
        let (ControllerKind::Plugin(d), ControllerKind::Plugin(a)) =
            (&choice.default, &choice.rules[0].1)
        else {
            panic!("plugins expected");
        };
        assert!(
            Arc::ptr_eq(d, a),
            "one newreno shared by the default and the rule"
        );
        assert_eq!(choice.for_host("b.test").name(), "cubic");
        assert_eq!(choice.for_host("c.test").name(), "newreno");
        // A manifest that is not there is a load error naming it.
        let bad = Config::parse(
            "[congestion]\ncontroller = \"missing/plugin.toml\"\n",
            Path::new("/nowhere/c.toml"),
        )
        .unwrap();
        let e = bad.congestion.load(&rt).unwrap_err().to_string();
        assert!(e.contains("/nowhere/missing/plugin.toml"), "{e}");
        assert!(e.starts_with("congestion.controller: "), "{e}");
    }
}
