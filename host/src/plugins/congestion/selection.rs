//! The network stack asks a [`CongestionSelector`] for each new QUIC
//! connection's controller; this one answers from the host's current
//! [`CongestionChoice`] and gives the controller a telemetry sampler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::choice::CongestionChoice;
use super::controller::Sampler;
use crate::net::congestion::{CongestionSelector, SelectedController};
use crate::net::pool::OriginKey;
use crate::telemetry::Bus;

/// The host's congestion choice, replaceable while connections run.
#[derive(Debug)]
pub struct CongestionSelection {
    /// Replaced whole: a connection reads it once, when it is created, so
    /// open connections finish on the controller they started with.
    choice: RwLock<Arc<CongestionChoice>>,
    /// Where congestion samples go.
    bus: Bus,
    /// Numbers connections for congestion samples.
    next_connection: AtomicU64,
}

impl CongestionSelection {
    /// Selects from `choice`, sampling to `bus`.
    pub fn new(choice: CongestionChoice, bus: Bus) -> Self {
        CongestionSelection {
            choice: RwLock::new(Arc::new(choice)),
            bus,
            next_connection: AtomicU64::new(1),
        }
    }

    /// The choice new connections get.
    pub fn choice(&self) -> Arc<CongestionChoice> {
        self.choice
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the choice for connections opened from now on.
    pub fn replace(&self, choice: CongestionChoice) {
        *self.choice.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(choice);
    }
}

impl CongestionSelector for CongestionSelection {
    fn select(&self, origin: &OriginKey) -> SelectedController {
        let sampler = self.bus.is_active().then(|| {
            let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
            let origin = self.bus.origin(&origin.scheme, &origin.host, origin.port);
            Sampler::new(self.bus.clone(), origin, id)
        });
        let (factory, status) = self.choice().factory(&origin.host, sampler);
        SelectedController {
            factory: Arc::new(factory),
            status,
        }
    }
}
