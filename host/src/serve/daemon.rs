//! The daemon as its control plane sees it ([`ControlPlane`]): the status
//! document filled from live state, reload (all or nothing, one at a
//! time, off the async workers), plugins enabled and disabled, the network
//! change, faults and DNS answers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::control::memory;
use crate::control::plane::{ControlPlane, ReloadError, UnknownPlugin};
use crate::control::status::{
    ClientsStatus, CrashesStatus, DnsAnswer, FaultStatus, MemoryStatus, PluginStatus,
    ProcessStatus, ReloadStatus, Status,
};
use crate::plugins::PluginRuntime;

use super::activity::Activity;
use super::proxy::Proxy;

/// Where the daemon's config comes from, and what the command line puts
/// over it (so that a reload reads the same overrides).
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The config file; `None` for the embedded defaults.
    pub path: Option<PathBuf>,
    /// `--dns-server`: replaces the file's name servers.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

impl ConfigSource {
    /// Reads the config as the daemon starts or reloads.
    pub fn read(&self) -> Result<Config, crate::config::ConfigError> {
        let mut config = match &self.path {
            Some(path) => Config::load(path)?,
            None => Config::embedded(),
        };
        if !self.dns_servers.is_empty() {
            config.dns_servers = self.dns_servers.clone();
        }
        Ok(config)
    }
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    proxy: Arc<Proxy>,
    activity: Arc<Activity>,
    runtime: PluginRuntime,
    source: ConfigSource,
    // The config in effect: the one the host was last wired from.
    config: Mutex<Config>,
    generation: Arc<AtomicU64>,
    last_reload: Mutex<Option<ReloadStatus>>,
    reloading: AtomicBool,
    started: SystemTime,
    started_at: Instant,
    listeners: Vec<String>,
    crashes: CrashesStatus,
}

impl Daemon {
    /// The daemon serving `proxy`, wired from `config` (read from `source`)
    /// with plugins loaded into `runtime`.
    pub fn new(
        proxy: Arc<Proxy>,
        activity: Arc<Activity>,
        runtime: PluginRuntime,
        source: ConfigSource,
        config: Config,
    ) -> Self {
        Daemon {
            proxy,
            activity,
            runtime,
            source,
            config: Mutex::new(config),
            generation: Arc::new(AtomicU64::new(1)),
            last_reload: Mutex::new(None),
            reloading: AtomicBool::new(false),
            started: SystemTime::now(),
            started_at: Instant::now(),
            listeners: Vec::new(),
            crashes: CrashesStatus::default(),
        }
    }

    /// Where it listens, as the status shows it.
    pub fn listeners(mut self, listeners: Vec<String>) -> Self {
        self.listeners = listeners;
        self
    }

    /// The crash reports found at start.
    pub fn crashes(mut self, crashes: CrashesStatus) -> Self {
        self.crashes = crashes;
        self
    }

    /// The config generation (1 at start, one more per reload), shared with
    /// the crash reporter.
    pub fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    fn process(&self) -> ProcessStatus {
        ProcessStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_unix_ms: unix_ms(self.started),
            uptime_secs: self.started_at.elapsed().as_secs(),
            config: self.source.path.as_ref().map(|p| p.display().to_string()),
            generation: self.generation.load(Ordering::SeqCst),
            last_reload: lock(&self.last_reload).clone(),
            crashes: self.crashes.clone(),
        }
    }

    /// Reloads (blocking: plugins compile and start here).
    fn reload_now(&self) -> Result<ReloadStatus, ReloadError> {
        let new = self.source.read()?;
        let old = lock(&self.config).clone();
        let report = self.proxy.host().reload(&old, &new, &self.runtime)?;
        *lock(&self.config) = new;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(ReloadStatus {
            at_unix_ms: unix_ms(SystemTime::now()),
            ok: true,
            message: report.to_string(),
            generation,
        })
    }
}

impl ControlPlane for Daemon {
    async fn status(&self) -> Status {
        let resident = memory::resident();
        Status {
            process: self.process(),
            listeners: self.listeners.clone(),
            clients: ClientsStatus {
                connections: self.activity.connections(),
                requests_in_flight: self.activity.requests_in_flight(),
                requests_total: self.activity.requests_total(),
                tunnels: self.proxy.tunnels().count() as u64,
            },
            memory: MemoryStatus {
                rss_bytes: resident.rss,
                peak_rss_bytes: resident.peak,
                wasm_bytes: 0,
            },
            ..Status::default()
        }
    }

    async fn metrics(&self) -> String {
        String::new()
    }

    async fn reload(&self) -> Result<ReloadStatus, ReloadError> {
        if self.reloading.swap(true, Ordering::SeqCst) {
            return Err(ReloadError::Busy);
        }
        let asked = SystemTime::now();
        // Compiling and starting plugins blocks: not on an async worker.
        let result = tokio::task::block_in_place(|| self.reload_now());
        let status = match &result {
            Ok(done) => {
                tracing::info!(
                    "reloaded (generation {}): {}",
                    done.generation,
                    done.message
                );
                done.clone()
            }
            Err(e) => {
                tracing::warn!("reload refused, nothing changed: {e}");
                ReloadStatus {
                    at_unix_ms: unix_ms(asked),
                    ok: false,
                    message: e.to_string(),
                    generation: self.generation.load(Ordering::SeqCst),
                }
            }
        };
        *lock(&self.last_reload) = Some(status);
        self.reloading.store(false, Ordering::SeqCst);
        result
    }

    fn set_plugin(&self, name: &str, _enable: bool) -> Result<PluginStatus, UnknownPlugin> {
        Err(UnknownPlugin(name.to_owned()))
    }

    fn network_changed(&self) {
        tracing::info!("network changed (control API)");
        self.proxy.host().network_changed();
    }

    fn faults(&self) -> Vec<FaultStatus> {
        Vec::new()
    }

    async fn dns(&self, host: &str) -> DnsAnswer {
        DnsAnswer {
            host: host.to_owned(),
            ..DnsAnswer::default()
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain values replaced whole: a panic elsewhere cannot leave them
    // half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
