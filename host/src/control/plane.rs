//! The operations the control listener calls on the daemon. The listener
//! knows HTTP and nothing of the daemon's insides; the daemon implements
//! this.

use std::future::Future;

pub use crate::reload::ReloadError;

use super::status::{DnsAnswer, FaultStatus, PluginStatus, ReloadStatus, Status};

/// The daemon, as its control listener sees it.
pub trait ControlPlane: Send + Sync + 'static {
    /// The status document, filled now.
    fn status(&self) -> impl Future<Output = Status> + Send;
    /// The Prometheus text exposition: the host's metrics and every probe's.
    fn metrics(&self) -> impl Future<Output = String> + Send;
    /// Reloads the config: all or nothing.
    fn reload(&self) -> impl Future<Output = Result<ReloadStatus, ReloadError>> + Send;
    /// Enables or disables a plugin by name.
    fn set_plugin(&self, name: &str, enable: bool) -> Result<PluginStatus, UnknownPlugin>;
    /// The network changed: connection history and Alt-Svc entries not
    /// marked `persist` are dropped.
    fn network_changed(&self);
    /// Recent faults, newest last.
    fn faults(&self) -> Vec<FaultStatus>;
    /// What the daemon's resolver answers for `host` (A, AAAA, HTTPS).
    fn dns(&self, host: &str) -> impl Future<Output = DnsAnswer> + Send;
}

/// No plugin has this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no plugin named {0:?} (GET /v1/status lists them)")]
pub struct UnknownPlugin(pub String);
