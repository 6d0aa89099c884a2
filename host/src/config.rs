//! The config file (`--config FILE`, TOML): which plugins to load and the
//! network preferences. Unknown fields are errors; every error names the
//! file and the field. [`crate::wiring`] turns a [`Config`] into a host.
//!
//! Defaults, in one place: a field the file leaves out takes its value from
//! [`Config::default`], so an empty file is `Config::default()`. A file
//! says what to load: without `builtin = true` it loads only the plugins it
//! lists. `sockhost` run without `--config` uses [`Config::embedded`], the
//! defaults with the built-in plugins on.
//!
//! ```toml
//! [plugins]
//! builtin = true                                   # blocklist + request-stats, embedded (default: false)
//! extensions = ["plugins/blocklist/plugin.toml"]   # relative to this file
//! probes = ["plugins/request-stats/plugin.toml"]
//! connect-policy = "plugins/happy-eyeballs/plugin.toml"   # default: built-in RFC 8305
//!
//! [network]
//! dns-servers = ["127.0.0.1:53"]
//! max-connections-per-host = 6
//! max-connections = 256
//! idle-timeout = "90s"
//! connect-timeout = "10s"
//! syn-retry = "250ms"        # or "off"
//! resolution-delay = "50ms"  # wait for AAAA/HTTPS after an early A; "off" waits for all
//! min-attempt-spacing = "10ms"
//! request-timeout = "30s"
//!
//! [congestion]
//! controller = "cubic"       # every QUIC connection: "native-cubic" (quinn's,
//!                            # the default), "cubic" or "newreno" (built in),
//!                            # or a congestion-policy plugin's plugin.toml
//! max-window = "256 MiB"     # a plugin's window above this is a fault
//!
//! [[congestion.rule]]        # the first rule whose hosts match wins
//! hosts = ["*.example.com"]
//! controller = "newreno"
//! ```
//!
//! `[serve]`, for `sockhost serve`, is described in [`serve`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sockhost_policy::{parse_duration, parse_size, HostPattern};

use crate::net::pool::PoolPrefs;

pub mod control;
pub mod serve;

pub use control::ControlConfig;
pub use serve::{ServeConfig, UnixSocket};

/// The least `congestion.max-window`: two datagrams of the largest QUIC
/// payload quinn uses.
pub const MIN_MAX_WINDOW: u64 = 2 * 65_527;

/// A config file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Load the embedded blocklist and request-stats (`[plugins] builtin`).
    pub builtin_plugins: bool,
    /// Extension manifests, in order.
    pub extensions: Vec<PathBuf>,
    /// Probe manifests.
    pub probes: Vec<PathBuf>,
    /// The connect-policy plugin's manifest.
    pub connect_policy: Option<PathBuf>,
    /// Name servers; empty means the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// Connection limits and idle timeout.
    pub pool: PoolPrefsEq,
    /// Per-attempt TCP handshake timeout.
    pub connect_timeout: Duration,
    /// `None` turns syn-retry off.
    pub syn_retry: Option<Duration>,
    /// How long a race waits for AAAA/HTTPS after the first address
    /// answer; `None` waits for every answer.
    pub resolution_delay: Option<Duration>,
    /// The least time between two connection attempts (at least 10 ms).
    pub min_attempt_spacing: Duration,
    /// Longest wait for response headers.
    pub request_timeout: Duration,
    /// Congestion controllers of QUIC connections.
    pub congestion: CongestionConfig,
    /// How `sockhost serve` listens, and its limits (`[serve]`).
    pub serve: ServeConfig,
}

/// A congestion controller named in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerRef {
    /// quinn's own Cubic.
    Native,
    /// A first-party plugin compiled into the binary.
    Builtin(crate::builtin::Builtin),
    /// A congestion-policy plugin's manifest.
    Manifest(PathBuf),
}

impl ControllerRef {
    /// Parses a controller name (`native-cubic`, a built-in plugin's name,
    /// or a path to a plugin.toml, relative to `dir`).
    pub fn parse(text: &str, dir: &Path) -> Result<ControllerRef, UnknownController> {
        if text == crate::plugins::congestion::NATIVE_CUBIC {
            return Ok(ControllerRef::Native);
        }
        if let Some(b) = crate::builtin::congestion(text) {
            return Ok(ControllerRef::Builtin(b));
        }
        if text.ends_with(".toml") || text.contains('/') {
            return Ok(ControllerRef::Manifest(dir.join(text)));
        }
        Err(UnknownController {
            name: text.to_owned(),
        })
    }
}

/// A controller name that is neither native, built in nor a manifest path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown controller {name:?} (use \"{native}\", {builtin}, or a path to a plugin.toml)",
    native = crate::plugins::congestion::NATIVE_CUBIC,
    builtin = known_controllers()
)]
pub struct UnknownController {
    /// The name as given.
    pub name: String,
}

/// The built-in controllers' names, quoted, for [`UnknownController`].
fn known_controllers() -> String {
    crate::builtin::CONGESTION
        .iter()
        .map(|b| format!("\"{}\"", b.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `[congestion]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CongestionConfig {
    /// For connections no rule matches.
    pub controller: ControllerRef,
    /// A plugin's window above this many bytes is a fault.
    pub max_window: u64,
    /// Per-host overrides, first match wins.
    pub rules: Vec<(Vec<HostPattern>, ControllerRef)>,
}

impl Default for CongestionConfig {
    fn default() -> Self {
        CongestionConfig {
            controller: ControllerRef::Native,
            max_window: crate::plugins::congestion::DEFAULT_MAX_WINDOW,
            rules: Vec::new(),
        }
    }
}

/// [`PoolPrefs`] with equality, for tests of parsed configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPrefsEq {
    /// HTTP/1.1 connections per origin.
    pub max_per_host: usize,
    /// Connections in all.
    pub max_total: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
}

impl Default for Config {
    /// What every field is when a file leaves it out: no plugins, the
    /// network preferences' defaults, quinn's Cubic. An empty file parses to
    /// this.
    fn default() -> Self {
        let p = PoolPrefs::default();
        Config {
            builtin_plugins: false,
            extensions: Vec::new(),
            probes: Vec::new(),
            connect_policy: None,
            dns_servers: Vec::new(),
            pool: PoolPrefsEq {
                max_per_host: p.max_per_host,
                max_total: p.max_total,
                idle_timeout: p.idle_timeout,
            },
            connect_timeout: crate::net::connect::DEFAULT_CONNECT_TIMEOUT,
            syn_retry: Some(crate::net::race::RacePrefs::default().syn_retry),
            resolution_delay: Some(crate::net::dns_gate::DEFAULT_RESOLUTION_DELAY),
            min_attempt_spacing: crate::net::race::DEFAULT_MIN_SPACING,
            request_timeout: crate::host::DEFAULT_REQUEST_TIMEOUT,
            congestion: CongestionConfig::default(),
            serve: ServeConfig::default(),
        }
    }
}

/// A config file could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// The field and what is wrong.
    pub message: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    congestion: RawCongestion,
    #[serde(default)]
    serve: serve::RawServe,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCongestion {
    controller: Option<String>,
    max_window: Option<String>,
    #[serde(default)]
    rule: Vec<RawCongestionRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCongestionRule {
    hosts: Vec<String>,
    controller: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlugins {
    builtin: Option<bool>,
    #[serde(default)]
    extensions: Vec<PathBuf>,
    #[serde(default)]
    probes: Vec<PathBuf>,
    connect_policy: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNetwork {
    #[serde(default)]
    dns_servers: Vec<String>,
    max_connections_per_host: Option<i64>,
    max_connections: Option<i64>,
    idle_timeout: Option<String>,
    connect_timeout: Option<String>,
    syn_retry: Option<String>,
    resolution_delay: Option<String>,
    min_attempt_spacing: Option<String>,
    request_timeout: Option<String>,
}

impl Config {
    /// The config `sockhost` runs with when given no file: the defaults,
    /// with the built-in blocklist and request-stats.
    pub fn embedded() -> Config {
        Config {
            builtin_plugins: true,
            ..Config::default()
        }
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validates config `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let fail = |field: &str, message: String| ConfigError {
            path: path.to_owned(),
            message: if field.is_empty() {
                message
            } else {
                format!("{field}: {message}")
            },
        };
        let raw: Raw =
            toml::from_str(text).map_err(|e| fail("", format!("invalid TOML: {}", e.message())))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let defaults = Config::default();
        let mut c = Config {
            builtin_plugins: raw.plugins.builtin.unwrap_or(defaults.builtin_plugins),
            extensions: raw.plugins.extensions.iter().map(|p| dir.join(p)).collect(),
            probes: raw.plugins.probes.iter().map(|p| dir.join(p)).collect(),
            connect_policy: raw.plugins.connect_policy.as_ref().map(|p| dir.join(p)),
            ..defaults
        };
        for (i, s) in raw.network.dns_servers.iter().enumerate() {
            c.dns_servers.push(s.parse().map_err(|_| {
                fail(
                    &format!("network.dns-servers[{i}]"),
                    format!("{s:?} is not ADDR:PORT"),
                )
            })?);
        }
        let count = |field: &str,
                     v: Option<i64>,
                     default: usize,
                     max: usize|
         -> Result<usize, ConfigError> {
            match v {
                None => Ok(default),
                Some(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
                Some(n) => Err(fail(field, format!("{n} is outside 1..={max}"))),
            }
        };
        c.pool.max_per_host = count(
            "network.max-connections-per-host",
            raw.network.max_connections_per_host,
            c.pool.max_per_host,
            256,
        )?;
        c.pool.max_total = count(
            "network.max-connections",
            raw.network.max_connections,
            c.pool.max_total,
            65_536,
        )?;
        let duration =
            |field: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(t) => parse_duration(t).map_err(|e| fail(field, e.to_string())),
                }
            };
        c.pool.idle_timeout = duration(
            "network.idle-timeout",
            &raw.network.idle_timeout,
            c.pool.idle_timeout,
        )?;
        c.connect_timeout = duration(
            "network.connect-timeout",
            &raw.network.connect_timeout,
            c.connect_timeout,
        )?;
        c.request_timeout = duration(
            "network.request-timeout",
            &raw.network.request_timeout,
            c.request_timeout,
        )?;
        // A duration, or "off".
        let switch = |field: &str,
                      v: &Option<String>,
                      default: Option<Duration>|
         -> Result<Option<Duration>, ConfigError> {
            match v.as_deref() {
                None => Ok(default),
                Some("off") => Ok(None),
                Some(t) => parse_duration(t)
                    .map(Some)
                    .map_err(|e| fail(field, format!("{e} (or \"off\")"))),
            }
        };
        c.syn_retry = switch("network.syn-retry", &raw.network.syn_retry, c.syn_retry)?;
        c.resolution_delay = switch(
            "network.resolution-delay",
            &raw.network.resolution_delay,
            c.resolution_delay,
        )?;
        c.min_attempt_spacing = duration(
            "network.min-attempt-spacing",
            &raw.network.min_attempt_spacing,
            c.min_attempt_spacing,
        )?;
        // Below HEv3's minimum of 10 ms, attempts would burst at a path.
        if c.min_attempt_spacing < crate::net::race::DEFAULT_MIN_SPACING {
            return Err(fail(
                "network.min-attempt-spacing",
                "must be at least 10ms (Happy Eyeballs v3)".into(),
            ));
        }
        if let Some(name) = &raw.congestion.controller {
            c.congestion.controller = ControllerRef::parse(name, dir)
                .map_err(|e| fail("congestion.controller", e.to_string()))?;
        }
        if let Some(size) = &raw.congestion.max_window {
            let field = "congestion.max-window";
            c.congestion.max_window = parse_size(size).map_err(|e| fail(field, e.to_string()))?;
            // Below a few datagrams no controller can work; RFC 9002's
            // minimum window is two of the largest.
            if c.congestion.max_window < MIN_MAX_WINDOW {
                return Err(fail(
                    field,
                    format!("must be at least {MIN_MAX_WINDOW} bytes"),
                ));
            }
        }
        for (i, rule) in raw.congestion.rule.iter().enumerate() {
            let field = |f: &str| format!("congestion.rule[{i}].{f}");
            if rule.hosts.is_empty() {
                return Err(fail(&field("hosts"), "names no host".into()));
            }
            let hosts = rule
                .hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(&field("hosts"), e.to_string()))?;
            let controller = ControllerRef::parse(&rule.controller, dir)
                .map_err(|e| fail(&field("controller"), e.to_string()))?;
            c.congestion.rules.push((hosts, controller));
        }
        c.serve = raw
            .serve
            .validate(dir)
            .map_err(|(field, message)| fail(&field, message))?;
        for (field, d) in [
            ("network.connect-timeout", c.connect_timeout),
            ("network.request-timeout", c.request_timeout),
        ] {
            if d.is_zero() {
                return Err(fail(field, "must be more than 0".into()));
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let c = Config::parse(
            "[plugins]\nbuiltin = true\nextensions = [\"x/plugin.toml\"]\n\
             [network]\ndns-servers = [\"127.0.0.1:5353\"]\nmax-connections-per-host = 2\n\
             syn-retry = \"off\"\nidle-timeout = \"5s\"\nresolution-delay = \"off\"\n\
             min-attempt-spacing = \"20ms\"\n",
            Path::new("/etc/sockhost/config.toml"),
        )
        .unwrap();
        assert!(c.builtin_plugins);
        assert_eq!(
            c.extensions,
            vec![PathBuf::from("/etc/sockhost/x/plugin.toml")]
        );
        assert_eq!(c.dns_servers.len(), 1);
        assert_eq!(c.pool.max_per_host, 2);
        assert_eq!(c.syn_retry, None);
        assert_eq!(c.resolution_delay, None);
        assert_eq!(c.min_attempt_spacing, Duration::from_millis(20));
        assert_eq!(c.pool.idle_timeout, Duration::from_secs(5));
        // A config file without [plugins].builtin loads only what it lists.
        assert!(
            !Config::parse("", Path::new("c.toml"))
                .unwrap()
                .builtin_plugins
        );
    }

    #[test]
    fn the_congestion_section_names_controllers_and_rules() {
        let c = Config::parse(
            "[congestion]\ncontroller = \"cubic\"\nmax-window = \"64 MiB\"\n\
             [[congestion.rule]]\nhosts = [\"*.example.com\", \"cdn.test\"]\n\
             controller = \"cc/plugin.toml\"\n\
             [[congestion.rule]]\nhosts = [\"slow.test\"]\ncontroller = \"native-cubic\"\n",
            Path::new("/etc/sockhost/config.toml"),
        )
        .unwrap();
        let cc = &c.congestion;
        assert_eq!(cc.controller, ControllerRef::Builtin(crate::builtin::CUBIC));
        assert_eq!(cc.max_window, 64 << 20);
        assert_eq!(cc.rules.len(), 2);
        assert_eq!(
            cc.rules[0].0,
            vec![
                HostPattern::parse("*.example.com").unwrap(),
                HostPattern::parse("cdn.test").unwrap()
            ]
        );
        assert_eq!(
            cc.rules[0].1,
            ControllerRef::Manifest(PathBuf::from("/etc/sockhost/cc/plugin.toml"))
        );
        assert_eq!(cc.rules[1].1, ControllerRef::Native);
        // Without the section: quinn's Cubic everywhere.
        let d = Config::parse("", Path::new("c.toml")).unwrap().congestion;
        assert_eq!(d, CongestionConfig::default());
        assert_eq!(d.controller, ControllerRef::Native);
    }

    #[test]
    fn one_set_of_defaults() {
        // An empty file is the defaults; no file is the defaults with the
        // built-in plugins.
        let empty = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(empty, Config::default());
        assert!(!empty.builtin_plugins);
        let embedded = Config::embedded();
        assert!(embedded.builtin_plugins);
        assert_eq!(
            Config {
                builtin_plugins: false,
                ..embedded
            },
            empty
        );
        assert!(
            Config::parse("[plugins]\nbuiltin = true\n", Path::new("c.toml"))
                .unwrap()
                .builtin_plugins
        );
    }

    #[test]
    fn an_unknown_controller_is_a_typed_error() {
        let e = ControllerRef::parse("bbr", Path::new("")).unwrap_err();
        assert_eq!(e.name, "bbr");
        assert_eq!(
            e.to_string(),
            "unknown controller \"bbr\" (use \"native-cubic\", \"cubic\", \"newreno\", or a path to a plugin.toml)"
        );
        assert_eq!(
            ControllerRef::parse("cc/plugin.toml", Path::new("/etc")),
            Ok(ControllerRef::Manifest(PathBuf::from(
                "/etc/cc/plugin.toml"
            )))
        );
    }

    #[test]
    fn errors_name_the_file_and_field() {
        for (text, words) in [
            (
                "[network]\nmax-connections = 0\n",
                "network.max-connections: 0 is outside",
            ),
            ("[network]\nsyn-retry = \"soon\"\n", "network.syn-retry"),
            (
                "[network]\nresolution-delay = \"later\"\n",
                "network.resolution-delay",
            ),
            (
                "[network]\nmin-attempt-spacing = \"1ms\"\n",
                "network.min-attempt-spacing: must be at least 10ms",
            ),
            (
                "[network]\ndns-servers = [\"localhost\"]\n",
                "network.dns-servers[0]",
            ),
            ("[network]\nbogus = 1\n", "unknown field"),
            (
                "[network]\nconnect-timeout = \"0ms\"\n",
                "network.connect-timeout: must be more than 0",
            ),
            ("not toml [", "invalid TOML"),
            (
                "[congestion]\ncontroller = \"bbr\"\n",
                "congestion.controller: unknown controller \"bbr\" (use \"native-cubic\", \"cubic\", \"newreno\"",
            ),
            (
                "[congestion]\nmax-window = \"64 KiB\"\n",
                "congestion.max-window: must be at least",
            ),
            (
                "[congestion]\nmax-window = \"lots\"\n",
                "congestion.max-window",
            ),
            (
                "[[congestion.rule]]\nhosts = []\ncontroller = \"cubic\"\n",
                "congestion.rule[0].hosts: names no host",
            ),
            (
                "[[congestion.rule]]\nhosts = [\"a.test\"]\ncontroller = \"cubic\"\n\
                 [[congestion.rule]]\nhosts = [\"exa mple\"]\ncontroller = \"cubic\"\n",
                "congestion.rule[1].hosts",
            ),
            (
                "[[congestion.rule]]\nhosts = [\"a.test\"]\n",
                "missing field `controller`",
            ),
        ] {
            let e = Config::parse(text, Path::new("cfg.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("cfg.toml: ") && e.contains(words), "{e}");
        }
    }
}
