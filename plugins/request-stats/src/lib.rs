//! `request-stats`: a telemetry probe counting requests, bytes and latency
//! per origin.

use sockhost_sdk::telemetry::{Batch, Metric, Probe};

mod stats;

struct RequestStats(stats::Stats);

impl Probe for RequestStats {
    fn new() -> Self {
        RequestStats(stats::Stats::default())
    }

    fn on_events(&mut self, batch: Batch, dropped: u64) {
        self.0.record(batch, dropped);
    }

    fn collect(&mut self) -> Vec<Metric> {
        self.0.metrics()
    }
}

sockhost_sdk::register!(probe: RequestStats);
