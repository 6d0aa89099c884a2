//! `newreno`: the congestion controller of RFC 9002, section 7 and
//! appendix B, as a sockhost congestion policy.
//!
//! Slow start grows the window by the bytes acknowledged; congestion
//! avoidance by one maximum datagram per window acknowledged (counting
//! bytes, as RFC 3465 does; the count carries across a reduction, as in
//! quinn's NewReno, so the two agree window for window). A loss or
//! ECN-CE mark of a packet sent after the current recovery period started
//! halves the window (kLossReductionFactor = 0.5) and starts a new period;
//! persistent congestion collapses it to the minimum. Acknowledgements of
//! packets sent before the recovery period started do not grow the window,
//! and neither do app-limited ones (section 7.8).
//!
//! No pacing rate is returned: the host paces from the window and RTT.

use sockhost_sdk::congestion::{
    AckFrame, AckSample, CongestionEvent, Controller, ControllerConfig,
};

/// kLossReductionFactor as a fraction.
const LOSS_REDUCTION: (u64, u64) = (1, 2);

/// One connection's NewReno state.
#[derive(Debug, Clone)]
pub struct NewReno {
    max_datagram_size: u64,
    /// Invariant: `minimum_window <= window <= maximum_window`.
    window: u64,
    minimum_window: u64,
    maximum_window: u64,
    /// `u64::MAX` until the first congestion event.
    ssthresh: u64,
    /// When the current recovery period started; packets sent up to then do
    /// not change the window.
    recovery_start: Option<u64>,
    /// Bytes acknowledged in congestion avoidance since the last increase
    /// (kept across a reduction).
    bytes_acked: u64,
    config_minimum_window: u64,
}

impl NewReno {
    fn in_recovery(&self, sent: u64) -> bool {
        self.recovery_start.is_some_and(|start| sent <= start)
    }

    fn clamp(&mut self) {
        self.window = self.window.clamp(self.minimum_window, self.maximum_window);
    }

    /// The slow start threshold (`u64::MAX` before any congestion).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }
}

impl Controller for NewReno {
    fn new(config: &ControllerConfig) -> Self {
        let minimum_window = config.minimum_window.max(1);
        let maximum_window = config.maximum_window.max(minimum_window);
        let mut c = NewReno {
            max_datagram_size: config.max_datagram_size.max(1),
            window: config.initial_window,
            minimum_window,
            maximum_window,
            ssthresh: u64::MAX,
            recovery_start: None,
            bytes_acked: 0,
            config_minimum_window: minimum_window,
        };
        c.clamp();
        c
    }

    fn on_ack(&mut self, frame: &AckFrame, acks: &[AckSample]) {
        if frame.app_limited {
            return;
        }
        for ack in acks {
            if self.in_recovery(ack.sent) {
                continue;
            }
            if self.window < self.ssthresh {
                // Slow start.
                self.window = self.window.saturating_add(ack.bytes);
                if self.window >= self.ssthresh {
                    self.bytes_acked = self.window - self.ssthresh;
                }
            } else {
                // Congestion avoidance: one datagram per window acknowledged.
                self.bytes_acked = self.bytes_acked.saturating_add(ack.bytes);
                if self.bytes_acked >= self.window {
                    self.bytes_acked -= self.window;
                    self.window = self.window.saturating_add(self.max_datagram_size);
                }
            }
        }
        self.clamp();
    }

    fn on_congestion_event(&mut self, now: u64, event: &CongestionEvent) {
        if !self.in_recovery(event.sent) {
            self.recovery_start = Some(now);
            self.window = self.window / LOSS_REDUCTION.1 * LOSS_REDUCTION.0;
            self.window = self.window.max(self.minimum_window);
            self.ssthresh = self.window;
        }
        if event.persistent_congestion {
            self.window = self.minimum_window;
            self.recovery_start = None;
        }
        self.clamp();
    }

    fn on_mtu_update(&mut self, max_datagram_size: u64) {
        self.max_datagram_size = max_datagram_size.max(1);
        self.minimum_window = sockhost_sdk::congestion::minimum_window(
            self.config_minimum_window,
            self.max_datagram_size,
            self.maximum_window,
        );
        self.clamp();
    }

    fn window(&self) -> u64 {
        self.window
    }
}

sockhost_sdk::register!(congestion: NewReno);

#[cfg(test)]
mod tests {
    use sockhost_sdk::congestion::{CongestionCause, RttEstimate};

    use super::*;

    const MDS: u64 = 1200;

    fn config() -> ControllerConfig {
        ControllerConfig {
            max_datagram_size: MDS,
            initial_window: 10 * MDS,
            minimum_window: 2 * MDS,
            maximum_window: 1 << 30,
            now: 0,
        }
    }

    fn frame(now: u64) -> AckFrame {
        AckFrame {
            now,
            largest_acked: 0,
            largest_sent: 0,
            rtt: RttEstimate {
                latest: 10_000,
                smoothed: 10_000,
                min: 10_000,
            },
            bytes_in_flight: 0,
            app_limited: false,
        }
    }

    fn ack(sent: u64, bytes: u64) -> AckSample {
        AckSample { sent, bytes }
    }

    fn loss(sent: u64, persistent: bool) -> CongestionEvent {
        CongestionEvent {
            cause: CongestionCause::Loss,
            sent,
            lost_bytes: MDS,
            persistent_congestion: persistent,
        }
    }

    #[test]
    fn slow_start_grows_by_bytes_acked() {
        let mut c = NewReno::new(&config());
        assert_eq!(c.window(), 12_000);
        c.on_ack(&frame(100), &[ack(1, MDS), ack(2, MDS)]);
        assert_eq!(c.window(), 14_400);
    }

    #[test]
    fn loss_halves_once_per_recovery_period() {
        let mut c = NewReno::new(&config());
        c.on_ack(&frame(100), &[ack(1, 12_000)]);
        assert_eq!(c.window(), 24_000);
        c.on_congestion_event(200, &loss(150, false));
        assert_eq!(c.window(), 12_000);
        assert_eq!(c.ssthresh(), 12_000);
        // A second loss of a packet sent before recovery began: no change.
        c.on_congestion_event(210, &loss(190, false));
        assert_eq!(c.window(), 12_000);
        // Acks of packets sent before recovery: no growth.
        c.on_ack(&frame(220), &[ack(199, MDS)]);
        assert_eq!(c.window(), 12_000);
        // A loss after recovery: halves again.
        c.on_congestion_event(400, &loss(300, false));
        assert_eq!(c.window(), 6_000);
    }

    #[test]
    fn congestion_avoidance_adds_one_datagram_per_window() {
        let mut c = NewReno::new(&config());
        c.on_congestion_event(10, &loss(5, false)); // window = ssthresh = 6000
        assert_eq!(c.window(), 6_000);
        c.on_ack(&frame(20), &[ack(11, 3_000)]);
        assert_eq!(c.window(), 6_000);
        c.on_ack(&frame(30), &[ack(12, 3_000)]);
        assert_eq!(c.window(), 6_000 + MDS);
    }

    #[test]
    fn app_limited_acks_do_not_grow() {
        let mut c = NewReno::new(&config());
        let mut f = frame(100);
        f.app_limited = true;
        c.on_ack(&f, &[ack(1, MDS)]);
        assert_eq!(c.window(), 12_000);
    }

    #[test]
    fn persistent_congestion_collapses_to_the_minimum() {
        let mut c = NewReno::new(&config());
        c.on_congestion_event(100, &loss(50, true));
        assert_eq!(c.window(), 2 * MDS);
        // The window never goes below the minimum, even halved again.
        c.on_congestion_event(200, &loss(150, false));
        assert_eq!(c.window(), 2 * MDS);
    }

    #[test]
    fn mtu_growth_raises_the_minimum() {
        let mut c = NewReno::new(&config());
        c.on_congestion_event(100, &loss(50, true));
        c.on_mtu_update(1500);
        assert_eq!(c.window(), 3000);
    }

    #[test]
    fn the_window_stays_within_the_maximum() {
        let mut cfg = config();
        cfg.maximum_window = 20_000;
        let mut c = NewReno::new(&cfg);
        c.on_ack(&frame(1), &[ack(1, 1 << 40)]);
        assert_eq!(c.window(), 20_000);
    }
}
