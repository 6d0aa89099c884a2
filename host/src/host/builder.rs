//! Building a [`Host`]: the network preferences, the plugins, and where
//! what the host learns is kept.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{FetchError, SetupError};
use super::{Host, DEFAULT_NETWORK, DEFAULT_REQUEST_TIMEOUT};
use crate::current::Current;
use crate::extensions::Extensions;
use crate::net::alt_svc::AltSvcCache;
use crate::net::connect::Connector;
use crate::net::connection::VersionPref;
use crate::net::dial::Dialer;
use crate::net::dns::{DnsConfig, ResolveOverride, Resolver};
use crate::net::manager::Manager;
use crate::net::plan::ConnectPolicy;
use crate::net::planning::Planning;
use crate::net::pool::PoolPrefs;
use crate::net::quic::Quic;
use crate::net::tls::{Tls, TlsOptions};
use crate::pipeline::alt_svc::AltSvcLearner;
use crate::pipeline::alt_svc_file::AltSvcFile;
use crate::pipeline::Pipeline;
use crate::plugins::congestion::{CongestionChoice, CongestionSelection};
use crate::plugins::connect::{ConnectPlugin, PluginPolicy};
use crate::plugins::extension::ExtensionPlugin;
use crate::plugins::telemetry::{EventKind, PluginFaultEvent, TelemetryPlugin};
use crate::telemetry::Bus;

/// Builds a [`Host`].
#[derive(Debug, Default)]
pub struct HostBuilder {
    /// Where Alt-Svc alternatives are kept across runs.
    alt_svc_file: Option<PathBuf>,
    /// Batching is on unless this is set (so that `Default` means on).
    no_udp_batching: bool,
    /// `None`: the default; `Some(None)`: wait for every DNS answer.
    resolution_delay: Option<Option<Duration>>,
    dns: DnsConfig,
    tls: TlsOptions,
    version: VersionPref,
    pool: PoolPrefs,
    connector: Connector,
    request_timeout: Option<Duration>,
    extensions: Extensions,
    probes: Vec<TelemetryPlugin>,
    connect_policy: Option<ConnectPlugin>,
    congestion: CongestionChoice,
    fault_log: Option<crate::plugins::FaultLog>,
    reloadable: bool,
}

impl HostBuilder {
    /// Which congestion controller QUIC connections get (default: quinn's
    /// Cubic for all). Replace it while running with
    /// [`Host::set_congestion`].
    pub fn congestion(mut self, choice: CongestionChoice) -> Self {
        self.congestion = choice;
        self
    }

    /// Publishes the faults recorded in `log` (the plugin runtime's) to the
    /// probes as plugin-fault events.
    pub fn fault_log(mut self, log: crate::plugins::FaultLog) -> Self {
        self.fault_log = Some(log);
        self
    }

    /// Makes the host reloadable ([`Host::reload`]): the telemetry bus gets
    /// its delivery thread even with no probes, so that a reload can add
    /// some. A daemon wants this; a short-lived fetch does not.
    pub fn reloadable(mut self, on: bool) -> Self {
        self.reloadable = on;
        self
    }

    /// Plans connections with this connect-policy plugin instead of the
    /// built-in RFC 8305 plan.
    pub fn connect_policy(mut self, plugin: ConnectPlugin) -> Self {
        self.connect_policy = Some(plugin);
        self
    }

    /// Adds a telemetry probe; it receives events in batches, off the
    /// request path.
    pub fn probe(mut self, probe: TelemetryPlugin) -> Self {
        self.probes.push(probe);
        self
    }

    /// Adds an extension; extensions see requests in the order added.
    pub fn extension(mut self, plugin: ExtensionPlugin) -> Self {
        self.extensions.push(plugin);
        self
    }

    /// Use these name servers instead of the system's.
    pub fn name_servers(mut self, servers: Vec<std::net::SocketAddr>) -> Self {
        self.dns.name_servers = servers;
        self
    }

    /// A curl-style `--resolve` override.
    pub fn resolve(mut self, o: ResolveOverride) -> Self {
        self.dns.overrides.push(o);
        self
    }

    /// Trust the CA certificates in this PEM file too.
    pub fn ca_file(mut self, path: PathBuf) -> Self {
        self.tls.ca_files.push(path);
        self
    }

    /// Trust only `--ca` files, not the platform's roots.
    pub fn no_platform_roots(mut self) -> Self {
        self.tls.no_platform_roots = true;
        self
    }

    /// Keeps Alt-Svc alternatives in `path` (JSON), so that an HTTP/3
    /// upgrade learned in one run is used from the first request of the
    /// next.
    pub fn alt_svc_file(mut self, path: PathBuf) -> Self {
        self.alt_svc_file = Some(path);
        self
    }

    /// How long a connection race waits for AAAA and HTTPS answers after
    /// the first address answer (Happy Eyeballs v3; default
    /// [`DEFAULT_RESOLUTION_DELAY`]); `None` waits for every answer.
    ///
    /// [`DEFAULT_RESOLUTION_DELAY`]: crate::net::dns_gate::DEFAULT_RESOLUTION_DELAY
    pub fn resolution_delay(mut self, delay: Option<Duration>) -> Self {
        self.resolution_delay = Some(delay);
        self
    }

    /// Turns batched UDP I/O (recvmmsg, GSO, GRO) off for QUIC: one
    /// datagram per system call, for comparison. On by default.
    pub fn udp_batching(mut self, on: bool) -> Self {
        self.no_udp_batching = !on;
        self
    }

    /// Force an HTTP version.
    pub fn version(mut self, v: VersionPref) -> Self {
        self.version = v;
        self
    }

    /// Connection limits and idle timeout.
    pub fn pool(mut self, prefs: PoolPrefs) -> Self {
        self.pool = prefs;
        self
    }

    /// Race tunables (syn-retry, connect timeout).
    pub fn connector(mut self, c: Connector) -> Self {
        self.connector = c;
        self
    }

    /// Longest wait for response headers.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = Some(t);
        self
    }

    /// Builds the host; must be called within a tokio runtime.
    pub fn build(self) -> Result<Host, FetchError> {
        let bus = if self.reloadable {
            Bus::start_reloadable(self.probes)
        } else {
            Bus::start(self.probes)
        };
        let connect_manifest = self
            .connect_policy
            .as_ref()
            .map(|p| p.supervised().manifest().clone());
        if let (Some(log), true) = (&self.fault_log, bus.is_active()) {
            publish_faults(log, &bus);
        }
        let cache = Arc::new(Mutex::new(match &self.alt_svc_file {
            Some(path) => AltSvcFile::load(path),
            None => AltSvcCache::default(),
        }));
        let network = Network {
            dns: &self.dns,
            tls: &self.tls,
            udp_batching: !self.no_udp_batching,
            connector: self.connector,
            version: self.version,
            policy: self.connect_policy,
            resolution_delay: self.resolution_delay,
        };
        let congestion = Arc::new(CongestionSelection::new(self.congestion, bus.clone()));
        let dialer = network.dialer(&bus, cache.clone(), congestion.clone())?;
        let file = match self.alt_svc_file {
            Some(path) => {
                Some(AltSvcFile::start(path, cache.clone()).map_err(SetupError::AltSvcWriter)?)
            }
            None => None,
        };
        let pipeline = Pipeline::new(
            Manager::start(dialer.clone(), self.pool),
            dialer.clone(),
            self.extensions,
            bus,
            AltSvcLearner::new(cache, file),
            self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        );
        Ok(Host {
            network: dialer,
            congestion,
            pipeline,
            connect_manifest: Arc::new(Mutex::new(connect_manifest)),
        })
    }
}

/// What the dialer is built from.
struct Network<'a> {
    dns: &'a DnsConfig,
    tls: &'a TlsOptions,
    udp_batching: bool,
    connector: Connector,
    version: VersionPref,
    policy: Option<ConnectPlugin>,
    resolution_delay: Option<Option<Duration>>,
}

impl Network<'_> {
    /// The dialer: resolver, TLS, QUIC, and the connect policy, reading
    /// Alt-Svc alternatives from `alt_svc`.
    fn dialer(
        self,
        bus: &Bus,
        alt_svc: Arc<Mutex<AltSvcCache>>,
        congestion: Arc<CongestionSelection>,
    ) -> Result<Dialer, SetupError> {
        let resolver = Resolver::new(self.dns)?;
        let tls = Tls::new(self.tls)?;
        let mut quic = Quic::new(tls.h3_config(), self.udp_batching)?;
        // One handshake timeout for TCP and QUIC attempts alike.
        quic.handshake_timeout = self.connector.connect_timeout;
        quic.congestion = congestion;
        let policy = self
            .policy
            .map(|p| Arc::new(PluginPolicy::new(p)) as Arc<dyn ConnectPolicy>);
        Ok(Dialer {
            resolver: Arc::new(resolver),
            quic,
            alt_svc,
            network: DEFAULT_NETWORK.to_owned(),
            tls,
            connector: Current::new(self.connector),
            version: self.version,
            observer: Arc::new(bus.clone()),
            planning: Planning::new(policy),
            history: Arc::default(),
            resolution_delay: Current::new(
                self.resolution_delay
                    .unwrap_or(Some(crate::net::dns_gate::DEFAULT_RESOLUTION_DELAY)),
            ),
        })
    }
}

/// Publishes the faults recorded in `log` to the probes on `bus`, for as
/// long as the bus lives.
fn publish_faults(log: &crate::plugins::FaultLog, bus: &Bus) {
    let weak = bus.downgrade();
    log.listen(move |f| {
        let Some(bus) = weak.upgrade() else {
            return false;
        };
        bus.publish(EventKind::PluginFault(PluginFaultEvent {
            plugin: f.plugin.to_string(),
            kind: f.kind.as_str().to_owned(),
            message: f.message.clone(),
            disabled: f.action.disables(),
        }));
        true
    });
}
