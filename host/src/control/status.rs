//! The status document: everything `GET /v1/status`, `sockhost status` and
//! the status page show, as plain serializable data. The daemon fills it
//! from live state at the moment it is asked; nothing here computes.
//!
//! Times are milliseconds since the Unix epoch (`*_unix_ms`) or durations
//! in microseconds (`*_us`); sizes are bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Status {
    /// The process: version, pid, uptime, config, crashes.
    pub process: ProcessStatus,
    /// Where the daemon listens: `http://ADDR` and `unix:PATH` (the proxy's),
    /// and the control listeners, `control+unix:PATH` and `control+http://ADDR`.
    pub listeners: Vec<String>,
    /// Client connections and requests.
    pub clients: ClientsStatus,
    /// The connection pool, per origin.
    pub pool: Vec<OriginStatus>,
    /// Requests waiting for a connection, over every origin.
    pub pool_waiting: u64,
    /// The DNS cache and lookups.
    pub dns: DnsStatus,
    /// Alt-Svc alternatives, per network.
    pub alt_svc: Vec<AltSvcNetworkStatus>,
    /// The telemetry bus.
    pub telemetry: TelemetryStatus,
    /// Memory.
    pub memory: MemoryStatus,
    /// Every plugin, in the order it was plugged in.
    pub plugins: Vec<PluginStatus>,
}

impl Status {
    /// The daemon's clock when it filled the document, in milliseconds
    /// since the Unix epoch: its start plus its uptime (to the second).
    pub fn filled_unix_ms(&self) -> u64 {
        self.process.started_unix_ms + self.process.uptime_secs * 1000
    }
}

/// The process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessStatus {
    /// sockhost's version.
    pub version: String,
    /// The daemon's pid.
    pub pid: u32,
    /// When it started.
    pub started_unix_ms: u64,
    /// How long it has run, in seconds.
    pub uptime_secs: u64,
    /// The config file, or `None` for the embedded defaults.
    pub config: Option<String>,
    /// The config generation: 1 at start, one more per successful reload.
    pub generation: u64,
    /// The latest reload, successful or not.
    pub last_reload: Option<ReloadStatus>,
    /// Crash reports written by earlier runs of the daemon.
    pub crashes: CrashesStatus,
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReloadStatus {
    /// When it was asked for.
    pub at_unix_ms: u64,
    /// Whether the new config took effect.
    pub ok: bool,
    /// What took effect, or why nothing did (names the file and field).
    pub message: String,
    /// The generation in effect afterwards.
    pub generation: u64,
}

/// Crash reports in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CrashesStatus {
    /// Where reports are written.
    pub directory: Option<String>,
    /// Reports written since the previous start of the daemon (by the run
    /// that crashed before this one).
    pub since_last_start: u64,
    /// Every report kept.
    pub total: u64,
    /// The newest report.
    pub latest: Option<CrashSummary>,
}

/// One crash report, summarized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CrashSummary {
    /// The report's file.
    pub path: String,
    /// When the daemon crashed.
    pub at_unix_ms: u64,
    /// The version that crashed.
    pub version: String,
    /// The panicking thread.
    pub thread: String,
    /// The panic message (first line).
    pub message: String,
    /// The config generation the daemon was running.
    pub generation: u64,
}

/// Client connections and requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientsStatus {
    /// Proxy client connections open now.
    pub connections: u64,
    /// Requests being answered now (tunnels not included).
    pub requests_in_flight: u64,
    /// Requests answered since start.
    pub requests_total: u64,
    /// CONNECT tunnels open now.
    pub tunnels: u64,
}

/// One origin's connections in the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct OriginStatus {
    /// `scheme://host:port`.
    pub origin: String,
    /// Each connection.
    pub connections: Vec<ConnectionStatus>,
    /// Requests waiting for a connection to this origin.
    pub queued: u64,
}

/// One pooled connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConnectionStatus {
    /// `http/1.1`, `h2` or `h3`.
    pub protocol: String,
    /// The peer address.
    pub peer: String,
    /// Requests on it now (0: idle).
    pub active: u64,
    /// QUIC only: the congestion controller (`native-cubic`, a plugin's
    /// name, or `native-cubic (NAME faulted)` after its plugin faulted).
    pub congestion: Option<String>,
}

/// The DNS cache and lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DnsStatus {
    /// Entries in the resolver's cache: answers received from name
    /// servers whose TTL has not run out (see `net::dns_tally`).
    pub cache_entries: u64,
    /// Lookups asked since start: one per record type and name (a
    /// resolution asks AAAA, A and HTTPS); overrides and IP literals ask
    /// nothing.
    pub lookups: u64,
    /// Of those, answered without asking a name server.
    pub cache_hits: u64,
}

/// Alt-Svc alternatives known on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AltSvcNetworkStatus {
    /// The network's name.
    pub network: String,
    /// Each origin with alternatives: `origin -> h3=":443" …`.
    pub entries: Vec<AltSvcEntryStatus>,
}

/// One origin's alternatives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AltSvcEntryStatus {
    /// The origin.
    pub origin: String,
    /// Its alternatives, as the header would write them.
    pub alternatives: Vec<String>,
    /// When the latest of them expires.
    pub expires_unix_ms: u64,
}

/// The telemetry bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TelemetryStatus {
    /// Probes on the bus.
    pub probes: u64,
    /// Events published since start.
    pub published: u64,
    /// Events dropped because a probe's queue was full.
    pub dropped: u64,
}

/// Memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemoryStatus {
    /// The daemon's resident set.
    pub rss_bytes: u64,
    /// Its peak resident set.
    pub peak_rss_bytes: u64,
    /// Linear memory of every live plugin instance.
    pub wasm_bytes: u64,
}

/// One plugin: what it is, its state, and what it costs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PluginStatus {
    /// Its name.
    pub name: String,
    /// Its world (`extension`, `telemetry-probe`, `connect-policy`,
    /// `congestion-policy`).
    pub world: String,
    /// Its version.
    pub version: String,
    /// The component's sha256.
    pub sha256: String,
    /// Active, backing off, or disabled.
    pub state: PluginState,
    /// Live instances now.
    pub instances: u64,
    /// The most instances it may have (0: no fixed limit, as a congestion
    /// policy has one per QUIC connection).
    pub max_instances: u64,
    /// Calls into it since it was loaded.
    pub calls: u64,
    /// Time spent in those calls.
    pub call_time: CallTimeStatus,
    /// Faults, by kind (`trap`, `panic`, `deadline`, `memory`,
    /// `invalid-result`).
    pub faults: BTreeMap<String, u64>,
    /// Restarts after faults (comebacks after a backoff included).
    pub restarts: u64,
    /// Instances replaced because their memory crept toward the limit.
    pub recycles: u64,
    /// The latest fault.
    pub last_fault: Option<FaultStatus>,
    /// Linear memory of each live instance.
    pub memory_bytes: Vec<u64>,
    /// The manifest's memory limit per instance.
    pub memory_limit_bytes: u64,
    /// The most linear memory one instance has had.
    pub memory_peak_bytes: u64,
}

/// A plugin's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    tag = "state"
)]
pub enum PluginState {
    /// Calls go to it.
    #[default]
    Active,
    /// Disabled after repeated faults until this time; the first call after
    /// it brings the plugin back.
    BackingOff {
        /// When it comes back.
        until_unix_ms: u64,
    },
    /// Disabled until a reload (its manifest says `on-disable =
    /// "stay-disabled"`) or until the operator enables it.
    Disabled {
        /// `faults` or `operator`.
        by: String,
    },
}

/// Time spent in a plugin's calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CallTimeStatus {
    /// In all.
    pub total_us: u64,
    /// The 99th percentile of one call (from a histogram: an upper bound
    /// within its bucket).
    pub p99_us: u64,
    /// The longest call.
    pub max_us: u64,
}

/// One recorded fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FaultStatus {
    /// The plugin.
    pub plugin: String,
    /// Its world.
    pub world: String,
    /// The function that faulted (`on-request`, `init`, …).
    pub function: String,
    /// `trap`, `panic`, `deadline`, `memory` or `invalid-result`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// The WebAssembly backtrace, when there is one.
    pub backtrace: Option<String>,
    /// What the host did: `restarted`, `disabled for …`, `disabled until reload`.
    pub action: String,
    /// When.
    pub at_unix_ms: u64,
}

/// What `GET /v1/dns?host=…` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DnsAnswer {
    /// The name asked for.
    pub host: String,
    /// IPv4 addresses.
    pub a: Vec<String>,
    /// IPv6 addresses.
    pub aaaa: Vec<String>,
    /// HTTPS records, in presentation form.
    pub https: Vec<String>,
    /// Whether every answer came from the cache.
    pub cached: bool,
    /// How long the lookup took.
    pub elapsed_us: u64,
    /// Errors per record type, when one failed (`AAAA: no records`).
    pub errors: Vec<String>,
    /// The `--resolve` overrides that answered instead of DNS
    /// (`host:port:addr,addr`); empty when DNS did.
    #[serde(default)]
    pub overrides: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_round_trips_through_json_with_kebab_case_keys() {
        let mut faults = BTreeMap::new();
        faults.insert("panic".to_owned(), 2);
        let status = Status {
            process: ProcessStatus {
                version: "0.1.0".into(),
                pid: 42,
                generation: 3,
                ..ProcessStatus::default()
            },
            plugins: vec![PluginStatus {
                name: "blocklist".into(),
                state: PluginState::BackingOff { until_unix_ms: 9 },
                faults,
                ..PluginStatus::default()
            }],
            ..Status::default()
        };
        let json = serde_json::to_string(&status).unwrap();
        assert!(json.contains("\"memory-limit-bytes\""), "{json}");
        assert!(
            json.contains("\"state\":{\"state\":\"backing-off\",\"until-unix-ms\":9}"),
            "{json}"
        );
        let back: Status = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
    }
}
