//! quinn's congestion-controller interface, answered by a congestion-policy
//! plugin or by quinn's own Cubic.
//!
//! quinn reports acknowledgements one packet at a time and then ends the
//! ACK frame (`on_end_acks`); the packets are buffered here and delivered in
//! one plugin call per frame (two when the frame acknowledges an MTU probe:
//! quinn reports the new MTU in the middle of the frame, and the plugin
//! hears of it in the same place). The window the plugin returns is cached: quinn
//! reads it several times per packet sent, and those reads never cross into
//! WASM. Packets sent cost no call at all (only the largest packet number is
//! kept, for the next frame).
//!
//! A fault (trap, deadline, memory, a window of 0 or above the maximum)
//! ends the plugin for this connection only: it continues under quinn's
//! native Cubic, starting from the plugin's last sane window, and the event
//! being delivered is handed to Cubic so that a loss is not forgotten. The
//! fault is in the runtime's fault log, and a congestion sample is
//! published at once so probes see the window the fallback started from.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics, CubicConfig};
use quinn_proto::RttEstimator;

use super::{
    AckFrame, AckSample, CongestionCause, CongestionEvent, CongestionPlugin, ControllerConfig,
    ControllerHandle, RttEstimate, WindowUpdate,
};
use crate::net::congestion::CongestionStatus;
use crate::plugins::bindings::types::Origin;
use crate::plugins::net_types::micros;
use crate::plugins::telemetry::{CongestionSample, EventKind};
use crate::plugins::PluginEngine;
use crate::telemetry::Bus;

/// Least time between two congestion samples of one connection: probes
/// see the window evolve without an event per ACK.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Calls into congestion plugins so far, process-wide (for benchmarks:
/// calls per MiB).
static WASM_CALLS: AtomicU64 = AtomicU64::new(0);

/// Calls made into congestion-policy plugins since the process started.
pub fn wasm_calls() -> u64 {
    WASM_CALLS.load(Ordering::Relaxed)
}

/// Where a connection's congestion samples go.
#[derive(Debug)]
pub(crate) struct Sampler {
    bus: Bus,
    origin: Arc<Origin>,
    connection: u64,
    /// When the last sample was published; `None` before the first.
    last: Option<Instant>,
    /// Bytes declared lost since the last sample.
    lost: u64,
}

impl Sampler {
    pub(crate) fn new(bus: Bus, origin: Arc<Origin>, connection: u64) -> Self {
        Self {
            bus,
            origin,
            connection,
            last: None,
            lost: 0,
        }
    }

    fn sample(&mut self, now: Instant, window: u64, smoothed_rtt: Duration, force: bool) {
        if !force
            && self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < SAMPLE_INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        let lost = std::mem::take(&mut self.lost);
        self.bus.publish_for(
            &self.origin,
            EventKind::Congestion(CongestionSample {
                connection: self.connection,
                // Filled in by the bus from `origin`.
                origin: 0,
                window,
                smoothed_rtt: micros(smoothed_rtt),
                lost_bytes: lost,
            }),
        );
    }
}

/// The plugin side of one connection: its own instance and controller.
struct PluginSide {
    plugin: CongestionPlugin,
    handle: ControllerHandle,
    engine: PluginEngine,
    /// (sent, bytes) of the acknowledgements of the frame being processed.
    /// Bounded by the packets in flight, which quinn bounds.
    pending: Vec<(Instant, u64)>,
    /// Reused for each call, so a frame costs no allocation.
    samples: Vec<AckSample>,
    /// MTU updates quinn reported in the middle of the frame being
    /// processed: (acknowledgements before it, the new MTU).
    mtu_splits: Vec<(usize, u16)>,
    /// Whether quinn said the sender was application-limited.
    app_limited: bool,
    /// The least RTT sample seen, in µs (`u64::MAX` before the first).
    min_rtt: u64,
    largest_sent: u64,
}

enum Inner {
    // quinn wants a `Sync` controller and a wasmtime store is not; the
    // mutex is never locked (`get_mut` through `&mut self`), it only makes
    // the exclusive access quinn already guarantees visible to the compiler.
    Plugin(Box<Mutex<PluginSide>>),
    Native(Box<dyn Controller>),
}

/// The congestion controller of one QUIC connection, as quinn sees it.
pub struct HostController {
    inner: Inner,
    // Invariant: while a plugin drives, the last answer that passed the
    // checks (or the initial one). quinn reads the window several times per
    // packet; it never crosses into WASM.
    cached: WindowUpdate,
    /// Current maximum datagram size (for the fallback's minimum window).
    mtu: u16,
    /// What the fallback starts from when it is the first controller.
    initial_window: u64,
    /// The estimator quinn passed with the latest acknowledgement: for the
    /// frame's RTTs, samples, and replaying a frame into the fallback.
    rtt: Option<RttEstimator>,
    sampler: Option<Sampler>,
    status: Arc<CongestionStatus>,
}

impl std::fmt::Debug for HostController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostController")
            .field(
                "driver",
                &match self.inner {
                    Inner::Plugin(_) => "plugin",
                    Inner::Native(_) => "native cubic",
                },
            )
            .field("window", &self.window())
            .finish()
    }
}

/// quinn's Cubic with its default initial window, for connections that use
/// no plugin.
pub(crate) fn native_cubic(
    now: Instant,
    mtu: u16,
    initial_window: Option<u64>,
) -> Box<dyn Controller> {
    let mut config = CubicConfig::default();
    if let Some(w) = initial_window {
        config.initial_window(w);
    }
    Arc::new(config).build(now, mtu)
}

impl HostController {
    /// A connection driven by quinn's Cubic.
    pub(crate) fn native(
        now: Instant,
        mtu: u16,
        sampler: Option<Sampler>,
        status: Arc<CongestionStatus>,
    ) -> Self {
        let native = native_cubic(now, mtu, None);
        HostController {
            initial_window: native.initial_window(),
            cached: WindowUpdate {
                window: native.window(),
                pacing_rate: None,
            },
            inner: Inner::Native(native),
            mtu,
            rtt: None,
            sampler,
            status,
        }
    }

    /// A connection driven by `plugin` (an instance of its own); quinn's
    /// Cubic when the plugin cannot make a controller (disabled, or the
    /// constructor faulted: recorded like any fault).
    pub(crate) fn plugin(
        mut plugin: CongestionPlugin,
        now: Instant,
        mtu: u16,
        maximum_window: u64,
        sampler: Option<Sampler>,
        status: Arc<CongestionStatus>,
    ) -> Self {
        let initial_window = CubicConfig::default();
        let initial_window = Arc::new(initial_window).build(now, mtu).initial_window();
        let mds = u64::from(mtu);
        let engine = plugin.supervised().engine().clone();
        let minimum_window = (2 * mds).min(maximum_window);
        let config = ControllerConfig {
            max_datagram_size: mds,
            initial_window: initial_window.clamp(minimum_window, maximum_window),
            minimum_window,
            maximum_window,
            now: engine.instant_us(now),
        };
        WASM_CALLS.fetch_add(2, Ordering::Relaxed);
        match plugin.new_controller(config) {
            Ok(handle) => HostController {
                cached: handle.last_sane(),
                inner: Inner::Plugin(Box::new(Mutex::new(PluginSide {
                    handle,
                    plugin,
                    engine,
                    pending: Vec::new(),
                    samples: Vec::new(),
                    mtu_splits: Vec::new(),
                    app_limited: false,
                    min_rtt: u64::MAX,
                    largest_sent: 0,
                }))),
                mtu,
                initial_window: config.initial_window,
                rtt: None,
                sampler,
                status,
            },
            Err(e) => {
                tracing::warn!("congestion controller unavailable, using native cubic: {e}");
                status.record_fault(e.to_string());
                Self::native(now, mtu, sampler, status)
            }
        }
    }

    /// Whether a plugin still drives this connection (false after a fault).
    pub fn plugin_drives(&self) -> bool {
        matches!(self.inner, Inner::Plugin(_))
    }

    /// What controls this connection.
    pub fn status(&self) -> &Arc<CongestionStatus> {
        &self.status
    }

    /// Replaces the plugin with quinn's Cubic from its last sane window.
    fn fall_back(&mut self, now: Instant, why: &dyn std::fmt::Display) -> &mut dyn Controller {
        let from = match &mut self.inner {
            Inner::Plugin(p) => side(p).handle.last_sane().window,
            Inner::Native(_) => unreachable_native(),
        };
        tracing::warn!(
            window = from,
            "congestion plugin faulted; this connection continues under native cubic: {why}"
        );
        self.status.record_fault(why.to_string());
        self.inner = Inner::Native(native_cubic(now, self.mtu, Some(from)));
        let smoothed = self.rtt.map_or(Duration::ZERO, |r| r.get());
        if let Some(s) = &mut self.sampler {
            s.sample(now, from, smoothed, true);
        }
        match &mut self.inner {
            Inner::Native(n) => n.as_mut(),
            Inner::Plugin(_) => unreachable_native(),
        }
    }

    fn sample(&mut self, now: Instant) {
        let window = self.window();
        let smoothed = self.rtt.map_or(Duration::ZERO, |r| r.get());
        if let Some(s) = &mut self.sampler {
            s.sample(now, window, smoothed, false);
        }
    }
}

fn side(p: &mut Mutex<PluginSide>) -> &mut PluginSide {
    p.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// `fall_back` is only reached from the plugin arm and sets the native one.
fn unreachable_native() -> ! {
    unreachable!("fall_back runs only while a plugin drives")
}

impl PluginSide {
    /// Delivers `acks` (part or all of one ACK frame) in one call.
    fn on_ack(
        &mut self,
        acks: &[(Instant, u64)],
        now: Instant,
        bytes_in_flight: u64,
        largest_acked: Option<u64>,
        rtt: Option<RttEstimator>,
    ) -> Result<WindowUpdate, super::ControllerError> {
        let engine = &self.engine;
        // The newest packet acknowledged: its age is this frame's sample.
        let newest = acks.iter().map(|(sent, _)| *sent).max();
        let latest = newest.map_or(0, |sent| micros(now.saturating_duration_since(sent)));
        self.min_rtt = self.min_rtt.min(latest);
        let (smoothed, quinn_min) =
            rtt.map_or((latest, latest), |r| (micros(r.get()), micros(r.min())));
        self.samples.clear();
        self.samples
            .extend(acks.iter().map(|(sent, bytes)| AckSample {
                sent: engine.instant_us(*sent),
                bytes: *bytes,
            }));
        let frame = AckFrame {
            now: engine.instant_us(now),
            // quinn passes `None` only when nothing was ever acknowledged,
            // and then there are no samples and no call.
            largest_acked: largest_acked.unwrap_or_default(),
            largest_sent: self.largest_sent,
            rtt: RttEstimate {
                latest,
                smoothed,
                min: self.min_rtt.min(quinn_min),
            },
            bytes_in_flight,
            app_limited: self.app_limited,
        };
        let calls = self.samples.len().div_ceil(super::MAX_ACKS_PER_CALL) as u64;
        WASM_CALLS.fetch_add(calls, Ordering::Relaxed);
        self.plugin.on_ack(&mut self.handle, frame, &self.samples)
    }

    fn on_mtu_update(&mut self, mtu: u16) -> Result<WindowUpdate, super::ControllerError> {
        WASM_CALLS.fetch_add(1, Ordering::Relaxed);
        self.plugin.on_mtu_update(&mut self.handle, u64::from(mtu))
    }
}

/// How far a frame got before the plugin faulted: the acknowledgements
/// from `ack` on and the MTU updates from `split` on were not delivered.
struct Undelivered {
    ack: usize,
    split: usize,
}

impl Controller for HostController {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        match &mut self.inner {
            Inner::Plugin(p) => {
                let p = side(p);
                p.largest_sent = p.largest_sent.max(last_packet_number);
            }
            Inner::Native(n) => n.on_sent(now, bytes, last_packet_number),
        }
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.rtt = Some(*rtt);
        match &mut self.inner {
            Inner::Plugin(p) => {
                let p = side(p);
                p.pending.push((sent, bytes));
                p.app_limited = app_limited;
            }
            Inner::Native(n) => n.on_ack(now, sent, bytes, app_limited, rtt),
        }
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        let rtt = self.rtt;
        match &mut self.inner {
            Inner::Plugin(p) => {
                let p = side(p);
                if p.pending.is_empty() && p.mtu_splits.is_empty() {
                    return;
                }
                let pending = std::mem::take(&mut p.pending);
                let splits = std::mem::take(&mut p.mtu_splits);
                // quinn reports an MTU probe's acknowledgement in the middle
                // of a frame: the frame goes in parts around the update, in
                // quinn's order, each part with the bytes in flight once it
                // is removed.
                let mut start = 0;
                let mut failed = None;
                let ends = splits
                    .iter()
                    .map(|&(at, mtu)| (at, Some(mtu)))
                    .chain([(pending.len(), None)]);
                for (k, (end, mtu)) in ends.enumerate() {
                    if end > start {
                        let later: u64 = pending[end..].iter().map(|(_, b)| b).sum();
                        let part = &pending[start..end];
                        match p.on_ack(part, now, in_flight + later, largest_packet_num_acked, rtt)
                        {
                            Ok(update) => self.cached = update,
                            Err(e) => {
                                failed = Some((
                                    e,
                                    Undelivered {
                                        ack: start,
                                        split: k,
                                    },
                                ));
                                break;
                            }
                        }
                    }
                    start = end;
                    if let Some(mtu) = mtu {
                        match p.on_mtu_update(mtu) {
                            Ok(update) => self.cached = update,
                            Err(e) => {
                                failed = Some((
                                    e,
                                    Undelivered {
                                        ack: end,
                                        split: k + 1,
                                    },
                                ));
                                break;
                            }
                        }
                    }
                }
                let was_limited = p.app_limited;
                let Some((e, left)) = failed else {
                    // Keep the buffers' capacity for the next frame.
                    p.pending = pending;
                    p.pending.clear();
                    p.mtu_splits = splits;
                    p.mtu_splits.clear();
                    self.sample(now);
                    return;
                };
                // The rest of the frame goes to the fallback, in order.
                let native = self.fall_back(now, &e);
                let mut splits = splits[left.split..].iter().peekable();
                for (i, (sent, bytes)) in pending.iter().enumerate().skip(left.ack) {
                    while let Some((_, mtu)) = splits.next_if(|(at, _)| *at <= i) {
                        native.on_mtu_update(*mtu);
                    }
                    if let Some(rtt) = &rtt {
                        native.on_ack(now, *sent, *bytes, was_limited, rtt);
                    }
                }
                for (_, mtu) in splits {
                    native.on_mtu_update(*mtu);
                }
                native.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
            }
            Inner::Native(n) => {
                n.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked)
            }
        }
        self.sample(now);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        if let Some(s) = &mut self.sampler {
            s.lost = s.lost.saturating_add(lost_bytes);
        }
        match &mut self.inner {
            Inner::Plugin(p) => {
                let p = side(p);
                let event = CongestionEvent {
                    // quinn reports ECN-CE marks as events without lost bytes.
                    cause: if lost_bytes == 0 {
                        CongestionCause::EcnCe
                    } else {
                        CongestionCause::Loss
                    },
                    sent: p.engine.instant_us(sent),
                    lost_bytes,
                    persistent_congestion: is_persistent_congestion,
                };
                WASM_CALLS.fetch_add(1, Ordering::Relaxed);
                let now_us = p.engine.instant_us(now);
                match p.plugin.on_congestion_event(&mut p.handle, now_us, event) {
                    Ok(update) => self.cached = update,
                    Err(e) => self.fall_back(now, &e).on_congestion_event(
                        now,
                        sent,
                        is_persistent_congestion,
                        lost_bytes,
                    ),
                }
            }
            Inner::Native(n) => {
                n.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes)
            }
        }
        self.sample(now);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        match &mut self.inner {
            Inner::Plugin(p) => {
                let p = side(p);
                if !p.pending.is_empty() {
                    // In the middle of a frame: delivered in its place when
                    // the frame ends.
                    p.mtu_splits.push((p.pending.len(), new_mtu));
                    return;
                }
                match p.on_mtu_update(new_mtu) {
                    Ok(update) => self.cached = update,
                    Err(e) => self.fall_back(Instant::now(), &e).on_mtu_update(new_mtu),
                }
            }
            Inner::Native(n) => n.on_mtu_update(new_mtu),
        }
    }

    fn window(&self) -> u64 {
        match &self.inner {
            Inner::Plugin(_) => self.cached.window,
            Inner::Native(n) => n.window(),
        }
    }

    fn metrics(&self) -> ControllerMetrics {
        match &self.inner {
            Inner::Plugin(_) => {
                let mut m = ControllerMetrics::default();
                m.congestion_window = self.cached.window;
                m.pacing_rate = self.cached.pacing_rate;
                m
            }
            Inner::Native(n) => n.metrics(),
        }
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        // quinn clones the controller when the peer's port changes (NAT
        // rebinding) to keep the window. A plugin's state cannot be copied,
        // so the new path continues under quinn's Cubic from this window.
        let window = self.window();
        Box::new(HostController {
            cached: self.cached,
            inner: Inner::Native(match &self.inner {
                Inner::Native(n) => n.clone_box(),
                Inner::Plugin(_) => native_cubic(Instant::now(), self.mtu, Some(window)),
            }),
            mtu: self.mtu,
            initial_window: self.initial_window,
            rtt: self.rtt,
            sampler: None,
            status: self.status.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.initial_window
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
