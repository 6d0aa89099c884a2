//! `congestion-stats`: a telemetry probe keeping congestion-window, RTT and
//! loss statistics per QUIC connection, and counting plugin faults.

use sockhost_sdk::telemetry::{Batch, Metric, Probe};

mod stats;

struct CongestionStats(stats::Stats);

impl Probe for CongestionStats {
    fn new() -> Self {
        CongestionStats(stats::Stats::default())
    }

    fn on_events(&mut self, batch: Batch, dropped: u64) {
        self.0.record(batch, dropped);
    }

    fn collect(&mut self) -> Vec<Metric> {
        self.0.metrics()
    }
}

sockhost_sdk::register!(probe: CongestionStats);
