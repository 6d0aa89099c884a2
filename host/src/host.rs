//! The embeddable host: `Host::builder()…build()` then `host.fetch(req)`,
//! from any tokio program. Responses stream; an HTTP/1.1 connection goes
//! back to the pool when its response body has been read to the end.
//! Every fetch goes through the request [`pipeline`](crate::pipeline).

pub(crate) mod body;
mod builder;
mod error;
mod request;
mod request_body;

use std::sync::Arc;
use std::time::Duration;

pub use self::body::{read_all, BodyError, ResponseBody};
pub use self::builder::HostBuilder;
pub use self::error::{FetchError, HttpError, LeaseError, SetupError};
pub use self::request::{FetchRequest, FetchResponse, Timings};
pub use self::request_body::RequestBody;
pub use self::request_body::UploadProgress;
use crate::net::dial::Dialer;
pub use crate::pipeline::request_filter::MAX_EXTENSION_REDIRECTS;
use crate::pipeline::Pipeline;
use crate::plugins::congestion::{CongestionChoice, CongestionSelection};
use crate::telemetry::Bus;

/// Longest a request may wait for its response headers by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The network the host considers itself on until it can tell networks
/// apart (Alt-Svc entries and connection history are kept per network).
pub const DEFAULT_NETWORK: &str = "default";

/// The socket process as a library.
#[derive(Debug, Clone)]
pub struct Host {
    /// The dialer's shared state (history, Alt-Svc), for network changes.
    network: Dialer,
    /// The congestion choice new QUIC connections get (the dialer's QUIC
    /// settings select through it).
    congestion: Arc<CongestionSelection>,
    pipeline: Pipeline,
    /// The connect-policy plugin's manifest, so that a reload can tell
    /// whether it changed.
    connect_manifest: Arc<std::sync::Mutex<Option<sockhost_policy::Manifest>>>,
}

impl Host {
    /// Starts building a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Connections and waiting requests in the pool right now.
    pub async fn pool_stats(&self) -> Option<crate::net::manager::PoolStats> {
        self.pipeline.manager.stats().await
    }

    /// Tells the host the network changed (another Wi-Fi, a VPN, …):
    /// connection history is flushed, Alt-Svc entries not marked `persist`
    /// are dropped, and each origin's next plan is told, so the policy is
    /// careful again. Open connections are left to fail or finish.
    pub fn network_changed(&self) {
        self.network.network_changed();
    }

    /// Replaces the congestion controller choice: connections opened from
    /// now on use it, open ones finish on the controller they have.
    pub fn set_congestion(&self, choice: CongestionChoice) {
        self.congestion.replace(choice);
    }

    /// The congestion controller choice new connections get.
    pub fn congestion(&self) -> Arc<CongestionChoice> {
        self.congestion.choice()
    }

    /// The telemetry bus (to flush it or collect the probes' metrics).
    pub fn telemetry(&self) -> &Bus {
        &self.pipeline.bus
    }

    /// Fetches `request`; the body streams from the returned response.
    /// Extensions decide first, before any network work.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        self.pipeline.run(request).await
    }

    /// Opens a tunnel to `authority` (`host:port`) for a proxy's `CONNECT`:
    /// extensions decide first (a request `CONNECT https://host:port/`),
    /// then a TCP connection is planned and raced. `headers` are the
    /// client's.
    pub async fn tunnel(
        &self,
        authority: &str,
        headers: Vec<(String, String)>,
    ) -> Result<crate::pipeline::tunnel::Tunnel, FetchError> {
        self.pipeline.tunnel(authority, headers).await
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub(crate) fn network(&self) -> &Dialer {
        &self.network
    }

    pub(crate) fn connect_manifest(&self) -> &std::sync::Mutex<Option<sockhost_policy::Manifest>> {
        &self.connect_manifest
    }

    /// Waits until what the host learned so far (Alt-Svc alternatives) is
    /// saved, for a process about to exit. Saving happens in the
    /// background; the last handle of a host also saves when dropped.
    pub async fn flush(&self) {
        self.pipeline.alt_svc.flush().await;
    }
}
