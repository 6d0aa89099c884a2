//! The telemetry bus: requests and connections publish events into a
//! bounded queue without waiting; one thread of its own delivers them to
//! every probe in batches, off the request path. A full queue drops the
//! event and counts it; the count reaches the probes with the next batch.
//!
//! Publishing never wakes anyone per event: the delivery thread wakes every
//! [`BATCH_DELAY`], or early when the queue passes [`WAKE_AT`] events, so a
//! request pays for one uncontended lock and a push (measured by `sockhost
//! bench http`, plugins vs none).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::current::Current;
use crate::net::observe::{NetEvent, NetObserver};
use crate::net::pool::OriginKey;
use crate::plugins::bindings::types::Origin;
use crate::plugins::instance::CallError;
use crate::plugins::net_types::{micros, socket_address};
use crate::plugins::telemetry::{
    Batch, ConnectAttemptEvent, ConnectResultEvent, DnsEvent, Event, EventKind, Metric,
    TelemetryPlugin, TlsEvent, MAX_BATCH,
};

/// Events the bus holds before it drops.
pub const BUS_CAPACITY: usize = 4096;
/// Queue length at which the delivery thread is woken before its timer.
pub const WAKE_AT: usize = BUS_CAPACITY / 4;
/// Origins the bus keeps shared between requests (see [`Bus::origin`]);
/// past this many it forgets them all and starts again.
pub const MAX_SHARED_ORIGINS: usize = 1024;
/// How long an event may wait in the queue before it is delivered.
pub const BATCH_DELAY: Duration = Duration::from_millis(20);

/// A handle to publish events; cheap to clone. With no probes, publishing
/// does nothing. The delivery thread stops once every handle is dropped,
/// after delivering what was queued.
#[derive(Debug, Clone, Default)]
pub struct Bus {
    inner: Option<Arc<Handle>>,
}

/// A [`Bus`] that may have stopped; see [`Bus::downgrade`].
#[derive(Debug, Clone, Default)]
pub struct WeakBus(Option<std::sync::Weak<Handle>>);

impl WeakBus {
    /// The bus, while a [`Bus`] handle still holds it.
    pub fn upgrade(&self) -> Option<Bus> {
        let inner = self.0.as_ref()?.upgrade()?;
        Some(Bus { inner: Some(inner) })
    }
}

/// Owned by the handles only: dropping the last one tells the thread to
/// finish.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.thread.unpark();
        // Not joined: a probe call is bounded by its budget, but a handle
        // may be dropped inside an async task, which must not block.
        drop(self.join.get_mut().ok().and_then(Option::take));
    }
}

#[derive(Debug)]
struct Shared {
    /// Invariant: never longer than [`BUS_CAPACITY`].
    queue: Mutex<Vec<Queued>>,
    dropped: AtomicU64,
    epoch: Instant,
    /// A reload replaces the list; a batch being delivered finishes with
    /// the list it took.
    probes: Current<Vec<Probe>>,
    /// Whether there are probes: publishing costs nothing otherwise.
    listening: AtomicBool,
    /// Events published and not yet handed to the probes (for `flush`).
    pending: AtomicU64,
    closed: AtomicBool,
    /// Origins by a hash of their parts (a hit is compared in full).
    /// Invariant: at most [`MAX_SHARED_ORIGINS`] entries.
    origins: Mutex<HashMap<u64, Arc<Origin>>>,
    hasher: std::collections::hash_map::RandomState,
}

/// An event waiting for delivery, with the origin it names (if its kind
/// names one); the origin index is assigned when its batch is built.
#[derive(Debug)]
struct Queued {
    at: u64,
    origin: Option<Arc<Origin>>,
    kind: EventKind,
}

/// A probe as the bus holds it, shared with whoever reloads the bus: a
/// probe kept across a reload keeps its instance and its counts.
pub type Probe = Arc<Mutex<TelemetryPlugin>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a queue or a probe
    // half-updated in a way that matters more than losing telemetry.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bus {
    /// A bus delivering to `probes` from a thread of its own. No probes: a
    /// bus that discards.
    pub fn start(probes: Vec<TelemetryPlugin>) -> Bus {
        if probes.is_empty() {
            return Bus::default();
        }
        Bus::start_reloadable(probes)
    }

    /// A bus with a delivery thread even with no probes, so that
    /// [`Bus::replace_probes`] can give it some later (a daemon that
    /// reloads its config). With no probes publishing costs an atomic load.
    pub fn start_reloadable(probes: Vec<TelemetryPlugin>) -> Bus {
        let probes: Vec<Probe> = probes
            .into_iter()
            .map(|p| Arc::new(Mutex::new(p)))
            .collect();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(BUS_CAPACITY)),
            dropped: AtomicU64::new(0),
            epoch: Instant::now(),
            listening: AtomicBool::new(!probes.is_empty()),
            probes: Current::new(probes),
            pending: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            origins: Mutex::new(HashMap::new()),
            hasher: Default::default(),
        });
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("sockhost-telemetry".into())
            .spawn(move || deliver(&for_thread));
        match spawned {
            Ok(join) => Bus {
                inner: Some(Arc::new(Handle {
                    shared,
                    thread: join.thread().clone(),
                    join: Mutex::new(Some(join)),
                })),
            },
            Err(e) => {
                tracing::error!("cannot start the telemetry thread, probes get no events: {e}");
                Bus::default()
            }
        }
    }

    /// Whether anyone listens.
    pub fn is_active(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|h| h.shared.listening.load(Ordering::Relaxed))
    }

    /// Whether probes can be given to this bus later
    /// ([`Bus::start_reloadable`]).
    pub fn is_reloadable(&self) -> bool {
        self.inner.is_some()
    }

    /// The probes now, in order.
    pub fn probes(&self) -> Vec<Probe> {
        self.inner
            .as_ref()
            .map_or_else(Vec::new, |h| h.shared.probes.get().to_vec())
    }

    /// Delivers to `probes` from the next batch on (a reload). Probes kept
    /// from [`Bus::probes`] keep their instances and counts. A bus started
    /// with [`Bus::start`] and no probes cannot take any: `false`.
    pub fn replace_probes(&self, probes: Vec<Probe>) -> bool {
        let Some(handle) = &self.inner else {
            return probes.is_empty();
        };
        let listening = !probes.is_empty();
        handle.shared.probes.replace(probes);
        handle.shared.listening.store(listening, Ordering::Relaxed);
        true
    }

    /// A handle that does not keep the delivery thread running, for
    /// long-lived publishers such as the fault log's listener.
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(self.inner.as_ref().map(Arc::downgrade))
    }

    /// The origin to name in events, shared with earlier requests to it:
    /// a request's events then allocate nothing for their origin, and no
    /// memory allocated here is freed on the delivery thread.
    pub fn origin(&self, scheme: &str, host: &str, port: u16) -> Arc<Origin> {
        let make = || {
            Arc::new(Origin {
                scheme: scheme.to_owned(),
                host: host.to_owned(),
                port,
            })
        };
        let Some(handle) = &self.inner else {
            return make();
        };
        let shared = &handle.shared;
        let key = std::hash::BuildHasher::hash_one(&shared.hasher, (scheme, host, port));
        let mut origins = lock(&shared.origins);
        if let Some(o) = origins.get(&key) {
            if o.port == port && o.host == host && o.scheme == scheme {
                return o.clone();
            }
        }
        if origins.len() >= MAX_SHARED_ORIGINS {
            origins.clear();
        }
        let o = make();
        origins.insert(key, o.clone());
        o
    }

    /// Publishes an event that names no origin (DNS, plugin faults); never
    /// waits for a probe.
    pub fn publish(&self, kind: EventKind) {
        debug_assert!(
            { kind.clone() }.origin_mut().is_none(),
            "an event naming an origin goes through publish_for"
        );
        self.push(None, kind);
    }

    /// Publishes an event about `origin`; the bus sets the event's origin
    /// index when it builds the batch (whatever index it holds is ignored).
    pub fn publish_for(&self, origin: &Arc<Origin>, kind: EventKind) {
        self.push(Some(origin.clone()), kind);
    }

    fn push(&self, origin: Option<Arc<Origin>>, kind: EventKind) {
        let Some(handle) = &self.inner else { return };
        let shared = &handle.shared;
        if !shared.listening.load(Ordering::Relaxed) {
            return;
        }
        let at = shared.epoch.elapsed().as_micros() as u64;
        let mut queue = lock(&shared.queue);
        if queue.len() >= BUS_CAPACITY {
            drop(queue);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push(Queued { at, origin, kind });
        let wake = queue.len() == WAKE_AT;
        shared.pending.fetch_add(1, Ordering::SeqCst);
        drop(queue);
        if wake {
            handle.thread.unpark();
        }
    }

    fn origin_of(&self, key: &OriginKey) -> Arc<Origin> {
        self.origin(&key.scheme, &key.host, key.port)
    }

    /// Events dropped because the bus was full.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |h| h.shared.dropped.load(Ordering::Relaxed))
    }

    /// Delivers every event published so far now, and waits until the probes
    /// have them (or `limit` passed).
    pub async fn flush(&self, limit: Duration) {
        let Some(handle) = &self.inner else { return };
        let until = Instant::now() + limit;
        handle.thread.unpark();
        while handle.shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Every probe's metrics, by probe name. A probe that faults reports
    /// its error instead.
    pub async fn collect(&self) -> Vec<(String, Result<Vec<Metric>, CallError>)> {
        let Some(handle) = &self.inner else {
            return Vec::new();
        };
        let probes = handle.shared.probes.get();
        tokio::task::spawn_blocking(move || {
            probes
                .iter()
                .map(|p| {
                    let mut p = lock(p);
                    let name = p.supervised().name().to_owned();
                    (name, p.collect())
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }
}

/// The delivery thread: wakes on its timer or when nudged, swaps the queue
/// out and hands it to each probe in batches of at most [`MAX_BATCH`].
fn deliver(shared: &Shared) {
    let mut reported_dropped = 0u64;
    let mut queued = Vec::with_capacity(BUS_CAPACITY);
    loop {
        std::thread::park_timeout(BATCH_DELAY);
        let closed = shared.closed.load(Ordering::SeqCst);
        std::mem::swap(&mut *lock(&shared.queue), &mut queued);
        let dropped_now = shared.dropped.load(Ordering::Relaxed);
        let mut dropped = dropped_now - reported_dropped;
        reported_dropped = dropped_now;
        let n = queued.len() as u64;
        let mut rest = &mut queued[..];
        while !rest.is_empty() || dropped > 0 {
            let (chunk, tail) = rest.split_at_mut(rest.len().min(MAX_BATCH));
            rest = tail;
            let batch = build_batch(chunk);
            for p in shared.probes.get().iter() {
                // A faulting probe is recorded by the runtime and restarted
                // or disabled; the others still get the batch.
                let _ = lock(p).on_events(&batch, dropped);
            }
            dropped = 0;
        }
        queued.clear();
        shared.pending.fetch_sub(n, Ordering::SeqCst);
        if closed {
            return;
        }
    }
}

/// Builds a batch from queued events, each distinct origin listed once.
/// The events are moved out (a placeholder is left behind).
fn build_batch(chunk: &mut [Queued]) -> Batch {
    let mut origins = Vec::new();
    let mut index: HashMap<(&str, &str, u16), u32> = HashMap::new();
    let mut slots = Vec::with_capacity(chunk.len());
    for q in chunk.iter() {
        slots.push(q.origin.as_ref().map(|o| {
            *index
                .entry((o.scheme.as_str(), o.host.as_str(), o.port))
                .or_insert_with(|| {
                    origins.push(Origin::clone(o));
                    (origins.len() - 1) as u32
                })
        }));
    }
    drop(index);
    let events = chunk
        .iter_mut()
        .zip(slots)
        .map(|(q, slot)| {
            let mut kind = std::mem::replace(&mut q.kind, PLACEHOLDER);
            if let (Some(i), Some(field)) = (slot, kind.origin_mut()) {
                *field = i;
            }
            Event { at: q.at, kind }
        })
        .collect();
    Batch { origins, events }
}

const PLACEHOLDER: EventKind = EventKind::Tls(TlsEvent {
    origin: 0,
    version: String::new(),
    alpn: None,
    resumed: false,
    elapsed: 0,
    error: None,
});

/// The network stack's events become probe events; origins are shared as
/// [`Bus::origin`] shares them.
impl NetObserver for Bus {
    fn is_active(&self) -> bool {
        Bus::is_active(self)
    }

    fn observe(&self, origin: Option<&OriginKey>, event: NetEvent) {
        if !Bus::is_active(self) {
            return;
        }
        let kind = match event {
            NetEvent::Dns {
                name,
                record_type,
                answers,
                elapsed,
                error,
            } => EventKind::Dns(DnsEvent {
                name,
                record_type: record_type.to_owned(),
                answers,
                elapsed: micros(elapsed),
                cached: false,
                error,
            }),
            NetEvent::ConnectAttempt { transport, addr } => {
                EventKind::ConnectAttempt(ConnectAttemptEvent {
                    origin: 0,
                    transport: transport.into(),
                    address: socket_address(addr),
                })
            }
            NetEvent::ConnectResult {
                transport,
                addr,
                elapsed,
                error,
            } => EventKind::ConnectResult(ConnectResultEvent {
                origin: 0,
                transport: transport.into(),
                address: socket_address(addr),
                elapsed: micros(elapsed),
                error: error.map(str::to_owned),
            }),
            NetEvent::Tls {
                version,
                alpn,
                resumed,
                elapsed,
                error,
            } => EventKind::Tls(TlsEvent {
                origin: 0,
                version,
                alpn,
                resumed,
                elapsed: micros(elapsed),
                error,
            }),
        };
        match origin {
            Some(o) => self.publish_for(&self.origin_of(o), kind),
            None => self.publish(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::telemetry::{DnsEvent, HttpVersion, Method, RequestEndEvent};

    fn origin(host: &str) -> Arc<Origin> {
        Arc::new(Origin {
            scheme: "https".into(),
            host: host.into(),
            port: 443,
        })
    }

    fn end(id: u64) -> EventKind {
        EventKind::RequestEnd(RequestEndEvent {
            id,
            origin: 99,
            method: Method::Get,
            status: Some(200),
            protocol: Some(HttpVersion::Http2),
            bytes_sent: 0,
            bytes_received: 0,
            time_to_first_byte: None,
            total: 0,
            error: None,
        })
    }

    #[test]
    fn a_batch_lists_each_origin_once_and_events_point_at_theirs() {
        let (a, b, a_again) = (origin("a.test"), origin("b.test"), origin("a.test"));
        let dns = EventKind::Dns(DnsEvent {
            name: "a.test".into(),
            record_type: "A".into(),
            answers: 1,
            elapsed: 0,
            cached: false,
            error: None,
        });
        let mut queued = vec![
            Queued {
                at: 1,
                origin: Some(a),
                kind: end(1),
            },
            Queued {
                at: 2,
                origin: None,
                kind: dns,
            },
            Queued {
                at: 3,
                origin: Some(b),
                kind: end(2),
            },
            Queued {
                at: 4,
                origin: Some(a_again),
                kind: end(3),
            },
        ];
        let batch = build_batch(&mut queued);
        let hosts: Vec<&str> = batch.origins.iter().map(|o| o.host.as_str()).collect();
        assert_eq!(hosts, ["a.test", "b.test"]);
        let named: Vec<(u64, Option<u32>)> = batch
            .events
            .iter()
            .map(|e| {
                let mut k = e.kind.clone();
                (e.at, k.origin_mut().map(|i| *i))
            })
            .collect();
        assert_eq!(named, [(1, Some(0)), (2, None), (3, Some(1)), (4, Some(0))]);
    }

    fn request_stats_bus() -> Bus {
        let rt = crate::builtin::test_runtime();
        let probe = TelemetryPlugin::new(crate::builtin::REQUEST_STATS.load(&rt).unwrap()).unwrap();
        Bus::start(vec![probe])
    }

    #[test]
    fn shared_origins_are_reused_and_bounded() {
        let bus = request_stats_bus();
        let a = bus.origin("https", "a.test", 443);
        assert!(Arc::ptr_eq(&a, &bus.origin("https", "a.test", 443)));
        assert!(!Arc::ptr_eq(&a, &bus.origin("https", "a.test", 8443)));
        assert_eq!(bus.origin("http", "a.test", 443).scheme, "http");
        for i in 0..MAX_SHARED_ORIGINS + 10 {
            bus.origin("https", &format!("h{i}.test"), 443);
        }
        let shared = &bus.inner.as_ref().unwrap().shared;
        assert!(lock(&shared.origins).len() <= MAX_SHARED_ORIGINS);
        // A bus with no probes shares nothing.
        let idle = Bus::default();
        let (x, y) = (
            idle.origin("https", "a.test", 443),
            idle.origin("https", "a.test", 443),
        );
        assert!(!Arc::ptr_eq(&x, &y));
    }

    #[tokio::test]
    async fn a_full_bus_drops_counts_and_tells_the_probe() {
        let bus = request_stats_bus();
        let shared = bus.inner.as_ref().unwrap().shared.clone();
        let a = bus.origin("https", "a.test", 443);
        let published = 3 * BUS_CAPACITY;
        {
            // A probe that cannot keep up: the delivery thread takes at
            // most one queue's worth and then waits for the probe.
            let probes = shared.probes.get();
            let _busy = lock(&probes[0]);
            for i in 0..published {
                bus.publish_for(&a, end(i as u64));
            }
            assert!(bus.dropped() >= BUS_CAPACITY as u64, "{}", bus.dropped());
        }
        bus.flush(Duration::from_secs(10)).await;
        let metrics = bus.collect().await;
        let (_, metrics) = &metrics[0];
        let value = |name: &str| {
            metrics
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| {
                    m.name == name && m.labels.is_empty() == (name != "sockhost_requests_total")
                })
                .map(|m| m.value.clone())
        };
        use crate::plugins::telemetry::MetricValue;
        let Some(MetricValue::Counter(dropped)) = value("sockhost_events_dropped_total") else {
            panic!("{metrics:?}")
        };
        assert_eq!(dropped, bus.dropped());
        let Some(MetricValue::Counter(delivered)) = value("sockhost_requests_total") else {
            panic!("{metrics:?}")
        };
        assert_eq!(delivered + dropped, published as u64);
    }
}
