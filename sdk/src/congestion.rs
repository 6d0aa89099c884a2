//! Congestion controllers (`congestion-policy` world).
//!
//! The host creates one [`Controller`] per QUIC connection. After every
//! mutating call it reads [`Controller::window`] and
//! [`Controller::pacing_rate`] and caches them, so those two are never
//! called across the WASM boundary on their own: keep them cheap.
//!
//! Times are microseconds on the host's monotonic clock.

use std::cell::RefCell;

use crate::__bindings::congestion::exports::sockhost::plugin::congestion as wit;

pub use wit::{
    AckFrame, AckSample, CongestionCause, CongestionEvent, ControllerConfig, RttEstimate,
    WindowUpdate,
};

/// The least window after a path MTU change: two datagrams of the new
/// size (RFC 9002 7.2), never below the host's `configured` minimum nor
/// above `maximum`.
pub fn minimum_window(configured: u64, max_datagram_size: u64, maximum: u64) -> u64 {
    configured
        .max(max_datagram_size.saturating_mul(2))
        .min(maximum)
}

/// A congestion controller for one connection.
pub trait Controller: 'static {
    /// A controller for a new connection.
    fn new(config: &ControllerConfig) -> Self
    where
        Self: Sized;

    /// Packets were acknowledged: all samples of one ACK frame at once,
    /// oldest first, with what the frame tells besides (the time, RTTs,
    /// bytes in flight, whether the sender is application-limited).
    fn on_ack(&mut self, frame: &AckFrame, acks: &[AckSample]);

    /// Packets were lost or ECN-CE marked.
    fn on_congestion_event(&mut self, now: u64, event: &CongestionEvent);

    /// The path's maximum datagram size changed.
    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        let _ = max_datagram_size;
    }

    /// The congestion window in bytes. The host rejects 0 and values above
    /// the configured maximum, and raises values below the minimum to it.
    fn window(&self) -> u64;

    /// The pacing rate in bytes per second, if this controller paces.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
}

fn update(c: &dyn Controller) -> WindowUpdate {
    WindowUpdate {
        window: c.window(),
        pacing_rate: c.pacing_rate(),
    }
}

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Adapter<T>(std::marker::PhantomData<T>);

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Resource<T>(RefCell<T>);

impl<T: Controller> wit::Guest for Adapter<T> {
    type Controller = Resource<T>;
}

impl<T: Controller> wit::GuestController for Resource<T> {
    fn new(config: ControllerConfig) -> Self {
        crate::panic::install();
        Resource(RefCell::new(T::new(&config)))
    }

    fn initial(&self) -> WindowUpdate {
        update(&*self.0.borrow())
    }

    fn on_ack(&self, frame: AckFrame, acks: Vec<AckSample>) -> WindowUpdate {
        let mut c = self.0.borrow_mut();
        c.on_ack(&frame, &acks);
        update(&*c)
    }

    fn on_congestion_event(&self, now: u64, event: CongestionEvent) -> WindowUpdate {
        let mut c = self.0.borrow_mut();
        c.on_congestion_event(now, &event);
        update(&*c)
    }

    fn on_mtu_update(&self, max_datagram_size: u64) -> WindowUpdate {
        let mut c = self.0.borrow_mut();
        c.on_mtu_update(max_datagram_size);
        update(&*c)
    }
}
