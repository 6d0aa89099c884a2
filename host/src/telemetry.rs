//! The telemetry bus: requests and connections publish events into a
//! bounded queue without waiting; one task delivers them to every probe in
//! batches, off the request path. A full queue drops the event and counts
//! it; the count reaches the probes with the next batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::plugins::telemetry::{Event, EventKind, Metric, TelemetryPlugin};

/// Events the bus holds before it drops.
pub const BUS_CAPACITY: usize = 4096;
/// Most events in one call into a probe.
pub const MAX_BATCH: usize = 256;
/// How long an event may wait for its batch to fill.
pub const BATCH_DELAY: Duration = Duration::from_millis(20);

/// A handle to publish events; cheap to clone. With no probes, publishing
/// does nothing.
#[derive(Debug, Clone, Default)]
pub struct Bus {
    inner: Option<Arc<BusInner>>,
}

#[derive(Debug)]
struct BusInner {
    tx: mpsc::Sender<Event>,
    dropped: AtomicU64,
    epoch: Instant,
    probes: Vec<Arc<Mutex<TelemetryPlugin>>>,
    /// Events published and not yet delivered (for `flush`).
    pending: AtomicU64,
}

impl Bus {
    /// A bus delivering to `probes`, running on the current tokio runtime.
    /// No probes: a bus that discards.
    pub fn start(probes: Vec<TelemetryPlugin>) -> Bus {
        if probes.is_empty() {
            return Bus::default();
        }
        let (tx, rx) = mpsc::channel(BUS_CAPACITY);
        let inner = Arc::new(BusInner {
            tx,
            dropped: AtomicU64::new(0),
            epoch: Instant::now(),
            probes: probes
                .into_iter()
                .map(|p| Arc::new(Mutex::new(p)))
                .collect(),
            pending: AtomicU64::new(0),
        });
        tokio::spawn(deliver(inner.clone(), rx));
        Bus { inner: Some(inner) }
    }

    /// Whether anyone listens.
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Publishes an event; never waits.
    pub fn publish(&self, kind: EventKind) {
        let Some(inner) = &self.inner else { return };
        let at = inner.epoch.elapsed().as_micros() as u64;
        inner.pending.fetch_add(1, Ordering::SeqCst);
        if inner.tx.try_send(Event { at, kind }).is_err() {
            inner.pending.fetch_sub(1, Ordering::SeqCst);
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the bus was full.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Waits until every event published so far was delivered (or `limit`).
    pub async fn flush(&self, limit: Duration) {
        let Some(inner) = &self.inner else { return };
        let until = Instant::now() + limit;
        while inner.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Every probe's metrics, by probe name. A probe that faults reports
    /// its error instead.
    pub async fn collect(&self) -> Vec<(String, Result<Vec<Metric>, String>)> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        let probes = inner.probes.clone();
        tokio::task::spawn_blocking(move || {
            probes
                .iter()
                .map(|p| {
                    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                    let name = p.supervised().name().to_owned();
                    (name, p.collect().map_err(|e| e.to_string()))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}

async fn deliver(inner: Arc<BusInner>, mut rx: mpsc::Receiver<Event>) {
    let mut reported_dropped = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                _ => break,
            }
        }
        let dropped_now = inner.dropped.load(Ordering::Relaxed);
        let dropped = dropped_now - reported_dropped;
        reported_dropped = dropped_now;
        let n = batch.len() as u64;
        let probes = inner.probes.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for p in &probes {
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                // A faulting probe is recorded by the runtime and restarted
                // or disabled; the others still get the batch.
                let _ = p.on_events(&batch, dropped);
            }
        })
        .await;
        inner.pending.fetch_sub(n, Ordering::SeqCst);
    }
}
