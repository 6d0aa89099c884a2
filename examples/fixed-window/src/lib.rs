//! `fixed-window`: the smallest useful congestion controller, as an example
//! of a sockhost plugin written outside the repository's plugin tree.
//!
//! The window is a fixed number of datagrams whatever happens (no slow
//! start, no backoff), with a pacing rate of one window per smoothed RTT
//! (advisory: quinn paces from the window and RTT by itself).
//! That is what you want on a link you own and have measured, and exactly
//! what you do not want on a shared one: it is an example, not a policy.

use sockhost_sdk::congestion::{
    AckFrame, AckSample, CongestionEvent, Controller, ControllerConfig,
};
use sockhost_sdk::log;

/// The window, in datagrams.
const DATAGRAMS: u64 = 64;

struct FixedWindow {
    max_datagram_size: u64,
    maximum_window: u64,
    minimum_window: u64,
    smoothed_rtt_us: u64,
}

impl FixedWindow {
    fn target(&self) -> u64 {
        (DATAGRAMS * self.max_datagram_size).clamp(self.minimum_window, self.maximum_window)
    }
}

impl Controller for FixedWindow {
    fn new(config: &ControllerConfig) -> Self {
        FixedWindow {
            max_datagram_size: config.max_datagram_size.max(1),
            maximum_window: config.maximum_window,
            minimum_window: config.minimum_window,
            smoothed_rtt_us: 0,
        }
    }

    fn on_ack(&mut self, frame: &AckFrame, _acks: &[AckSample]) {
        self.smoothed_rtt_us = frame.rtt.smoothed;
    }

    fn on_congestion_event(&mut self, _now: u64, event: &CongestionEvent) {
        if event.persistent_congestion {
            log::warn("persistent congestion; the window stays fixed");
        }
    }

    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        self.max_datagram_size = max_datagram_size.max(1);
    }

    fn window(&self) -> u64 {
        self.target()
    }

    fn pacing_rate(&self) -> Option<u64> {
        // Bytes per second: one window per smoothed RTT, once there is one.
        (self.smoothed_rtt_us > 0)
            .then(|| (self.target() as u128 * 1_000_000 / self.smoothed_rtt_us as u128) as u64)
            .map(|r| r.max(1))
    }
}

sockhost_sdk::register!(congestion: FixedWindow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_paced() {
        let mut c = FixedWindow::new(&ControllerConfig {
            max_datagram_size: 1200,
            initial_window: 12_000,
            minimum_window: 2400,
            maximum_window: 1 << 30,
            now: 0,
        });
        assert_eq!(c.window(), 76_800);
        assert_eq!(c.pacing_rate(), None);
        let frame = AckFrame {
            now: 1,
            largest_acked: 0,
            largest_sent: 0,
            rtt: sockhost_sdk::congestion::RttEstimate {
                latest: 10_000,
                smoothed: 10_000,
                min: 10_000,
            },
            bytes_in_flight: 0,
            app_limited: false,
        };
        c.on_ack(&frame, &[]);
        assert_eq!(c.pacing_rate(), Some(7_680_000));
        c.on_mtu_update(1400);
        assert_eq!(c.window(), 89_600);
    }
}
