//! Which congestion controller each new QUIC connection gets. quinn's
//! [`ControllerFactory`] is the controller's trait; a
//! [`CongestionSelector`] picks the factory per connection, so the network
//! stack knows nothing of who implements it (quinn's Cubic, or a plugin
//! bridged by the host).

use std::sync::{Arc, Mutex, PoisonError};

use quinn::congestion::ControllerFactory;

use super::pool::OriginKey;

/// The name of quinn's own Cubic where a controller is named (config,
/// `--congestion`, JSON output).
pub const NATIVE_CUBIC: &str = "native-cubic";

/// What controls one connection's congestion, readable while it runs.
#[derive(Debug)]
pub struct CongestionStatus {
    controller: String,
    /// The fault that made the connection fall back to native Cubic.
    fault: Mutex<Option<String>>,
}

impl CongestionStatus {
    /// The status of a connection driven by `controller`.
    pub fn new(controller: &str) -> Self {
        Self {
            controller: controller.to_owned(),
            fault: Mutex::new(None),
        }
    }

    /// The controller chosen when the connection was made: a plugin's name
    /// or [`NATIVE_CUBIC`].
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// Why the chosen controller stopped driving this connection (it
    /// continues under native Cubic), if it did.
    pub fn fault(&self) -> Option<String> {
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What drives the connection now, in one phrase: the controller's
    /// name, or after a fault `native-cubic (NAME faulted)`.
    pub fn describe(&self) -> String {
        match self.fault() {
            Some(_) => format!("{NATIVE_CUBIC} ({} faulted)", self.controller),
            None => self.controller.clone(),
        }
    }

    /// Records why the chosen controller was replaced by native Cubic.
    pub fn record_fault(&self, why: String) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }
}

/// The controller of one new connection.
#[derive(Clone)]
pub struct SelectedController {
    /// What quinn builds the connection's controller with.
    pub factory: Arc<dyn ControllerFactory + Send + Sync>,
    /// What the connection reports about its controller.
    pub status: Arc<CongestionStatus>,
}

impl std::fmt::Debug for SelectedController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // quinn's factories have no Debug of their own.
        f.debug_struct("SelectedController")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Chooses the congestion controller of each new QUIC connection. Called
/// once per connection, on the connection path: it must not block.
pub trait CongestionSelector: Send + Sync + std::fmt::Debug {
    /// The controller for a new connection to `origin`.
    fn select(&self, origin: &OriginKey) -> SelectedController;
}

/// quinn's Cubic for every connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeCubic;

impl CongestionSelector for NativeCubic {
    fn select(&self, _: &OriginKey) -> SelectedController {
        SelectedController {
            factory: Arc::new(quinn::congestion::CubicConfig::default()),
            status: Arc::new(CongestionStatus::new(NATIVE_CUBIC)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_names_the_controller_and_a_fallback() {
        let s = CongestionStatus::new("newreno");
        assert_eq!(s.describe(), "newreno");
        s.record_fault("trap in on-ack".into());
        assert_eq!(s.describe(), "native-cubic (newreno faulted)");
        assert_eq!(
            NativeCubic
                .select(&OriginKey {
                    scheme: "https".into(),
                    host: "a.test".into(),
                    port: 443,
                })
                .status
                .describe(),
            NATIVE_CUBIC
        );
    }
}
