//! What the daemon's clients are doing, for the status document: client
//! connections open, requests in flight, requests since start. Relaxed
//! atomics: each figure is exact on its own, and the three are read
//! together only for display.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The daemon's client activity; shared by the server and every
/// connection.
#[derive(Debug, Default)]
pub struct Activity {
    connections: AtomicU64,
    in_flight: AtomicU64,
    total: AtomicU64,
}

impl Activity {
    /// Client connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests being answered now (until their response body ends).
    pub fn requests_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests since start.
    pub fn requests_total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// A connection open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> Open {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// A request in flight until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> Answering {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }
}

/// A client connection, counted while it lives.
#[derive(Debug)]
pub struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request, counted in flight while it lives.
#[derive(Debug)]
pub struct Answering(Arc<Activity>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let a = Arc::new(Activity::default());
        let conn = a.connection();
        let (r1, r2) = (a.request(), a.request());
        assert_eq!(
            (a.connections(), a.requests_in_flight(), a.requests_total()),
            (1, 2, 2)
        );
        drop((r1, conn));
        assert_eq!(
            (a.connections(), a.requests_in_flight(), a.requests_total()),
            (0, 1, 2)
        );
        drop(r2);
        assert_eq!(a.requests_in_flight(), 0);
    }
}
