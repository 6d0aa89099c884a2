//! `cubic`: CUBIC as specified in RFC 9438, with HyStart++ (RFC 9406) for
//! the initial slow start, as a sockhost congestion policy.
//!
//! # What is implemented
//!
//! - RFC 9438 §4.2: `W_cubic(t) = C·(t − K)³ + W_max`, C = 0.4 segments/s³,
//!   `K = ∛((W_max − cwnd_epoch)/C)` (0 when `cwnd_epoch ≥ W_max`), in
//!   segments of the current maximum datagram size. `t` runs from the first
//!   ACK of the current congestion-avoidance stage, with time spent in
//!   app-limited frames taken out (§5.8). The target is `W_cubic(t + RTT)`,
//!   RTT being the smoothed RTT, clamped to `[cwnd, 1.5·cwnd]`.
//! - §4.3, Reno-friendly region: `W_est` starts at `cwnd_epoch` and grows by
//!   `α_cubic · segments_acked / cwnd` per ACK, with `α_cubic = 3(1 − β)/(1 + β)`
//!   until `W_est` reaches `cwnd_prior`, then 1. While `W_cubic(t) < W_est`,
//!   the window is `W_est`.
//! - §4.4 and §4.5, concave and convex regions: the window grows by
//!   `(target − cwnd)/cwnd` per segment acknowledged. Fractions of a byte
//!   carry over to the next ACK.
//! - §4.6, multiplicative decrease: β_cubic = 0.7 applied to cwnd, once per
//!   recovery period, for loss and ECN-CE alike. §4.6 allows cwnd instead of
//!   flight size if the window does not grow while under-used. Here,
//!   app-limited frames do not grow it.
//! - §4.7, fast convergence.
//! - §4.8, timeout, applied to persistent congestion (RFC 9002 §7.6).
//! - §4.10, slow start with HyStart++. When slow start ends without a
//!   congestion event, `cwnd_prior = cwnd`, and the first stage runs with
//!   `W_max = cwnd_epoch, K = 0`, as after persistent congestion.
//! - RFC 9406 §4: rounds counted by packet number, N_RTT_SAMPLE = 8, and
//!   `RttThresh = clamp(lastRoundMinRTT/8, 4 ms, 16 ms)`. Conservative Slow
//!   Start grows at a quarter of the rate for at most 5 rounds (counting the
//!   round it began in). It returns to slow start if a round's minimum RTT
//!   falls below the baseline. The per-ACK limit L is unbounded because the
//!   host paces. As RFC 9406 recommends, only the initial slow start uses it,
//!   and any congestion event ends it.
//!
//! Not implemented: §4.9, undoing spurious congestion events, because the
//! host never reports an event as spurious.
//!
//! No pacing rate is returned: the host paces from the window and RTT.
//!
//! # Differences from quinn-proto 0.11's `Cubic`
//!
//! 1. HyStart++: quinn has none; its slow start runs until the first
//!    congestion event.
//! 2. `W_est`: quinn uses RFC 8312's closed form
//!    `β·W_max + α·t/RTT` with α fixed. Here it is updated per ACK from
//!    `cwnd_epoch`, and α becomes 1 at `cwnd_prior` (§4.3).
//! 3. Reno-friendly test: quinn compares `W_cubic(t + RTT)` with `W_est`.
//!    Here it is `W_cubic(t)` (§4.3), and only while `W_est > cwnd`, so
//!    the window never shrinks without congestion.
//! 4. Growth per ACK: quinn adds at most one datagram per ACK and throws
//!    away the rest of its accumulated increment when it does. Here each
//!    acknowledged segment adds `(target − cwnd)/cwnd` segments, with no cap
//!    per ACK and nothing thrown away.
//! 5. Target: clamped to `1.5·cwnd` here (§4.2); quinn does not clamp it.
//! 6. `t`: quinn measures it from the start of the recovery period (the
//!    congestion event), app-limited time included. Here it runs from the
//!    first ACK of the congestion-avoidance stage (after recovery), without
//!    app-limited frames.
//! 7. K: quinn uses RFC 8312's `∛(W_max·(1 − β)/C)`. This differs from
//!    `∛((W_max − cwnd_epoch)/C)` after fast convergence and wherever the
//!    minimum window clamps cwnd.
//! 8. Reaching ssthresh without a congestion event (after persistent
//!    congestion): quinn starts a recovery period there, so ACKs of packets
//!    sent before it stop growing the window. No recovery period starts here.
//! 9. Persistent congestion: quinn ignores it for a packet sent before its
//!    recovery period began. Otherwise quinn applies β twice
//!    (ssthresh ≈ 0.49·cwnd). Here it always collapses the window, and
//!    ssthresh is β·cwnd once.
//! 10. Bounds: quinn's minimum window is 2 datagrams, and quinn has no
//!     maximum and does not clamp the initial window. Here the minimum is
//!     `max(host minimum, 2 datagrams)`, capped at the host maximum, and the
//!     window is always within `[minimum, maximum]`.
//! 11. Across a reduction, quinn keeps 0.7 of its pending sub-datagram
//!     increment. Here the carried fraction (less than one byte) is dropped.

// deny rather than forbid: `register!` expands to `#[allow(unsafe_code)]`
// around the bindings it generates, and forbid cannot be relaxed.
#![deny(unsafe_code)]

use sockhost_sdk::congestion::{
    AckFrame, AckSample, CongestionEvent, Controller, ControllerConfig,
};

/// Whether the plugin starts connections with HyStart++ (RFC 9438 §4.10
/// SHOULD); [`Cubic::with_hystart`] overrides it.
pub const HYSTART: bool = true;

/// RFC 9438 §4.2 and §5: C, in segments per second cubed.
const C: f64 = 0.4;
/// RFC 9438 §4.6: β_cubic.
const BETA_CUBIC: f64 = 0.7;
/// RFC 9438 §4.3: the additive increase that gives Reno's average rate
/// under β_cubic instead of Reno's 0.5.
const ALPHA_CUBIC: f64 = 3.0 * (1.0 - BETA_CUBIC) / (1.0 + BETA_CUBIC);
/// RFC 9438 §4.2: one RTT never more than multiplies the window by this,
/// however far the cubic curve has run ahead.
const MAX_TARGET_GROWTH: f64 = 1.5;

/// RFC 9406 §4.3: ACK frames per round before its minimum RTT is trusted.
const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 §4.3: bounds of RttThresh, in microseconds.
const MIN_RTT_THRESH: u64 = 4_000;
const MAX_RTT_THRESH: u64 = 16_000;
/// RFC 9406 §4.3: RttThresh is this fraction of the last round's minimum.
const MIN_RTT_DIVISOR: u64 = 8;
/// RFC 9406 §4.3: Conservative Slow Start grows at 1/this of slow start.
const CSS_GROWTH_DIVISOR: u64 = 4;
/// RFC 9406 §4.3: rounds of Conservative Slow Start before congestion
/// avoidance.
const CSS_ROUNDS: u32 = 5;

const MICROS_PER_SECOND: f64 = 1e6;

/// One connection's CUBIC state. All windows are in bytes.
#[derive(Debug, Clone)]
pub struct Cubic {
    /// Invariant: `>= 1`; the segment size of the RFC's formulas.
    max_datagram_size: u64,
    /// Invariant: `minimum_window <= window <= maximum_window`, so never 0.
    window: u64,
    /// Invariant: `1 <= minimum_window <= maximum_window`.
    minimum_window: u64,
    /// Invariant: `>= 1`; the host's maximum, never exceeded.
    maximum_window: u64,
    /// The host's minimum, which MTU changes may raise but never lower.
    config_minimum_window: u64,
    /// `u64::MAX` until the first congestion event or HyStart++ ends slow
    /// start; afterwards at most `maximum_window`.
    ssthresh: u64,
    /// When the current recovery period started: ACKs and congestion
    /// events of packets sent up to then do not change the window.
    recovery_start: Option<u64>,
    /// W_max: the window before the last reduction, lowered by fast
    /// convergence. `None` when undefined (no congestion event yet, or reset
    /// by persistent congestion or HyStart++), in which case the next stage
    /// takes `cwnd_epoch`. Invariant: finite and `>= 0`.
    w_max: Option<f64>,
    /// cwnd_prior (§4.6): the window before the last reduction. W_est
    /// reaching it switches α_cubic to 1. Invariant: finite and `>= 0`.
    cwnd_prior: f64,
    /// The current congestion-avoidance stage. `None` in slow start and
    /// from a congestion event to the first congestion-avoidance ACK after
    /// it.
    epoch: Option<Epoch>,
    /// Growth earned but not yet in `window`, because the window is whole
    /// bytes. Invariant: `0 <= carry < 1`.
    carry: f64,
    /// `Some` during the initial slow start if HyStart++ is enabled.
    hystart: Option<HyStart>,
}

/// One congestion-avoidance stage (RFC 9438 §4.2).
#[derive(Debug, Clone, Copy)]
struct Epoch {
    /// When the stage began, moved later by app-limited time, so
    /// `t = now − start`. Invariant: `start <= last_frame`.
    start: u64,
    /// The latest `now` of a frame in this stage. The gap before an
    /// app-limited frame counts as app-limited time.
    last_frame: u64,
    /// K in seconds. Invariant: finite and `>= 0`.
    k: f64,
    /// W_max for this stage. Invariant: finite and `>= 0`.
    w_max: f64,
    /// W_est (§4.3). Invariant: finite, at most `maximum_window`.
    w_est: f64,
}

/// The cubic curve at one ACK frame's time. It is the same for every
/// sample of the frame, so it is computed once per frame.
#[derive(Debug, Clone, Copy)]
struct Curve {
    /// `W_cubic(t)`: decides the Reno-friendly region.
    now: f64,
    /// `W_cubic(t + RTT)`: the unclamped target.
    next_rtt: f64,
}

/// RFC 9406 state for the initial slow start.
#[derive(Debug, Clone)]
struct HyStart {
    /// The round ends when the peer acknowledges this packet number;
    /// `None` before the first ACK frame.
    window_end: Option<u64>,
    /// lastRoundMinRTT in microseconds; `u64::MAX` stands for infinity.
    last_round_min_rtt: u64,
    /// currentRoundMinRTT in microseconds; `u64::MAX` stands for infinity.
    current_round_min_rtt: u64,
    /// RTT samples (one per ACK frame) in the current round.
    rtt_sample_count: u32,
    /// `Some` during Conservative Slow Start.
    css: Option<Css>,
}

#[derive(Debug, Clone, Copy)]
struct Css {
    /// cssBaselineMinRtt: if a round's minimum RTT drops below this, the
    /// delay increase that started CSS was not queueing after all.
    baseline_min_rtt: u64,
    /// CSS rounds begun, counting the partial round CSS began in.
    /// Invariant: `1..=CSS_ROUNDS`.
    rounds: u32,
}

impl HyStart {
    fn new() -> Self {
        HyStart {
            window_end: None,
            last_round_min_rtt: u64::MAX,
            current_round_min_rtt: u64::MAX,
            rtt_sample_count: 0,
            css: None,
        }
    }

    /// Runs before a frame's ACKs are counted. It starts a new round if the
    /// last one ended, and returns true when CSS has used up its rounds, so
    /// congestion avoidance starts.
    fn start_round_if_due(&mut self, frame: &AckFrame) -> bool {
        if self.window_end.is_some_and(|end| frame.largest_acked < end) {
            return false;
        }
        if let Some(css) = &mut self.css {
            if css.rounds >= CSS_ROUNDS {
                return true;
            }
            css.rounds += 1;
        }
        self.last_round_min_rtt = self.current_round_min_rtt;
        self.current_round_min_rtt = u64::MAX;
        self.rtt_sample_count = 0;
        self.window_end = Some(frame.largest_sent);
        false
    }

    fn growth_divisor(&self) -> u64 {
        if self.css.is_some() {
            CSS_GROWTH_DIVISOR
        } else {
            1
        }
    }

    /// Runs after a frame's ACKs grew the window, as RFC 9406 orders it.
    fn on_rtt_sample(&mut self, latest: u64) {
        self.current_round_min_rtt = self.current_round_min_rtt.min(latest);
        self.rtt_sample_count = self.rtt_sample_count.saturating_add(1);
        if self.rtt_sample_count < N_RTT_SAMPLE {
            return;
        }
        match self.css {
            None => {
                let (last, current) = (self.last_round_min_rtt, self.current_round_min_rtt);
                if last == u64::MAX || current == u64::MAX {
                    return;
                }
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last.saturating_add(thresh) {
                    self.css = Some(Css {
                        baseline_min_rtt: current,
                        rounds: 1,
                    });
                }
            }
            Some(css) => {
                if self.current_round_min_rtt < css.baseline_min_rtt {
                    self.css = None;
                }
            }
        }
    }
}

impl Cubic {
    /// A controller with HyStart++ on or off for its initial slow start.
    pub fn with_hystart(config: &ControllerConfig, hystart: bool) -> Self {
        let maximum_window = config.maximum_window.max(1);
        let minimum_window = config.minimum_window.clamp(1, maximum_window);
        let mut c = Cubic {
            max_datagram_size: config.max_datagram_size.max(1),
            window: config.initial_window,
            minimum_window,
            maximum_window,
            config_minimum_window: minimum_window,
            ssthresh: u64::MAX,
            recovery_start: None,
            w_max: None,
            cwnd_prior: 0.0,
            epoch: None,
            carry: 0.0,
            hystart: hystart.then(HyStart::new),
        };
        c.clamp();
        c
    }

    /// The slow start threshold (`u64::MAX` until slow start first ends).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn in_recovery(&self, sent: u64) -> bool {
        self.recovery_start.is_some_and(|start| sent <= start)
    }

    fn clamp(&mut self) {
        self.window = self.window.clamp(self.minimum_window, self.maximum_window);
    }

    fn mss(&self) -> f64 {
        self.max_datagram_size as f64
    }

    /// Adds `bytes` (finite, `>= 0`) to the window, carrying the fraction.
    fn grow(&mut self, bytes: f64) {
        self.carry += bytes;
        let whole = self.carry.floor();
        // Float-to-int casts saturate, so even an absurd increment only
        // pins the window at the maximum.
        self.window = self.window.saturating_add(whole as u64);
        self.carry -= whole;
    }

    /// HyStart++ left CSS without a congestion event (RFC 9438 §4.10).
    fn end_slow_start(&mut self) {
        self.hystart = None;
        self.ssthresh = self.window;
        self.cwnd_prior = self.window as f64;
        self.w_max = None;
    }

    /// The curve at `frame`'s time. The stage starts here if this is its
    /// first ACK.
    fn curve(&mut self, frame: &AckFrame) -> Curve {
        let epoch = match &mut self.epoch {
            Some(epoch) => {
                epoch.last_frame = epoch.last_frame.max(frame.now);
                *epoch
            }
            None => {
                let cwnd_epoch = self.window as f64;
                let w_max = *self.w_max.get_or_insert(cwnd_epoch);
                let k = if w_max > cwnd_epoch {
                    ((w_max - cwnd_epoch) / self.mss() / C).cbrt()
                } else {
                    0.0
                };
                *self.epoch.insert(Epoch {
                    start: frame.now,
                    last_frame: frame.now,
                    k,
                    w_max,
                    w_est: cwnd_epoch,
                })
            }
        };
        let t = frame.now.saturating_sub(epoch.start) as f64 / MICROS_PER_SECOND;
        let rtt = frame.rtt.smoothed as f64 / MICROS_PER_SECOND;
        Curve {
            now: self.w_cubic(&epoch, t),
            next_rtt: self.w_cubic(&epoch, t + rtt),
        }
    }

    /// `W_cubic(t)` in bytes. It stays finite: `t` is at most about 1.8e13
    /// seconds, so the cube is at most about 1e40 before scaling.
    fn w_cubic(&self, epoch: &Epoch, t: f64) -> f64 {
        let d = t - epoch.k;
        C * d * d * d * self.mss() + epoch.w_max
    }

    /// One acknowledged packet in congestion avoidance (RFC 9438 §4.3–4.5).
    fn congestion_avoidance(&mut self, curve: Curve, bytes: u64) {
        let cwnd = self.window as f64;
        let mss = self.mss();
        let maximum = self.maximum_window as f64;
        let cwnd_prior = self.cwnd_prior;
        let Some(epoch) = &mut self.epoch else {
            return;
        };
        let alpha = if epoch.w_est >= cwnd_prior {
            1.0
        } else {
            ALPHA_CUBIC
        };
        // Capped so that no run of ACKs, however long, makes it infinite.
        epoch.w_est = (epoch.w_est + alpha * mss * (bytes as f64) / cwnd).min(maximum);
        let w_est = epoch.w_est;
        if curve.now < w_est && w_est > cwnd {
            // Reno-friendly. Requiring `w_est > cwnd` too keeps the window
            // from shrinking after cubic growth has carried it past W_est.
            let whole = w_est.floor();
            self.window = whole as u64;
            self.carry = w_est - whole;
        } else {
            // Written as comparisons rather than `clamp` so that a NaN
            // lands on `cwnd` instead of propagating.
            let target = if curve.next_rtt > MAX_TARGET_GROWTH * cwnd {
                MAX_TARGET_GROWTH * cwnd
            } else if curve.next_rtt > cwnd {
                curve.next_rtt
            } else {
                cwnd
            };
            self.grow((target - cwnd) / cwnd * bytes as f64);
        }
    }
}

impl Controller for Cubic {
    fn new(config: &ControllerConfig) -> Self {
        Cubic::with_hystart(config, HYSTART)
    }

    fn on_ack(&mut self, frame: &AckFrame, acks: &[AckSample]) {
        if frame.app_limited {
            // §5.8: t must not include app-limited time, or the curve would
            // jump ahead once the application sends again.
            if let Some(epoch) = &mut self.epoch {
                let paused = frame.now.saturating_sub(epoch.last_frame);
                epoch.start = epoch.start.saturating_add(paused);
                epoch.last_frame = epoch.last_frame.max(frame.now);
            }
            return;
        }
        if acks.is_empty() {
            return;
        }
        if let Some(hystart) = &mut self.hystart {
            if hystart.start_round_if_due(frame) {
                self.end_slow_start();
            }
        }
        let mut curve = None;
        let mut counted = false;
        for ack in acks {
            if self.in_recovery(ack.sent) {
                continue;
            }
            counted = true;
            if self.window < self.ssthresh {
                match self.hystart.as_ref().map_or(1, HyStart::growth_divisor) {
                    1 => self.window = self.window.saturating_add(ack.bytes),
                    divisor => self.grow(ack.bytes as f64 / divisor as f64),
                }
            } else {
                let c = match curve {
                    Some(c) => c,
                    None => *curve.insert(self.curve(frame)),
                };
                self.congestion_avoidance(c, ack.bytes);
            }
            self.clamp();
        }
        if counted {
            if let Some(hystart) = &mut self.hystart {
                hystart.on_rtt_sample(frame.rtt.latest);
            }
        }
    }

    fn on_congestion_event(&mut self, now: u64, event: &CongestionEvent) {
        // RFC 9406: a congestion event ends HyStart++ like slow start.
        self.hystart = None;
        if !self.in_recovery(event.sent) {
            let cwnd = self.window as f64;
            // §4.7: a window below the last W_max means a new flow is
            // taking bandwidth, so give some of it up.
            self.w_max = Some(match self.w_max {
                Some(w_max) if cwnd < w_max => cwnd * (1.0 + BETA_CUBIC) / 2.0,
                _ => cwnd,
            });
            self.cwnd_prior = cwnd;
            self.ssthresh = ((cwnd * BETA_CUBIC) as u64).max(self.minimum_window);
            self.window = self.ssthresh;
            self.recovery_start = Some(now);
            self.epoch = None;
            self.carry = 0.0;
        }
        if event.persistent_congestion {
            // §4.8. ssthresh keeps β·cwnd from the reduction that started
            // this recovery period; the next stage starts from scratch.
            self.window = self.minimum_window;
            self.w_max = None;
            self.recovery_start = None;
            self.epoch = None;
            self.carry = 0.0;
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

sockhost_sdk::register!(congestion: Cubic);

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use sockhost_sdk::congestion::{CongestionCause, RttEstimate};

    use super::*;

    const MDS: u64 = 1200;
    const MS: u64 = 1_000;
    const SEC: u64 = 1_000_000;

    fn config() -> ControllerConfig {
        ControllerConfig {
            max_datagram_size: MDS,
            initial_window: 10 * MDS,
            minimum_window: 2 * MDS,
            maximum_window: 1 << 30,
            now: 0,
        }
    }

    /// Most tests are about congestion avoidance, where HyStart++ would
    /// only add rounds to set up.
    fn plain() -> Cubic {
        Cubic::with_hystart(&config(), false)
    }

    fn frame_rtt(now: u64, rtt: u64) -> AckFrame {
        AckFrame {
            now,
            largest_acked: 0,
            largest_sent: 0,
            rtt: RttEstimate {
                latest: rtt,
                smoothed: rtt,
                min: rtt,
            },
            bytes_in_flight: 0,
            app_limited: false,
        }
    }

    fn frame(now: u64) -> AckFrame {
        frame_rtt(now, 10 * MS)
    }

    fn ack(sent: u64, bytes: u64) -> AckSample {
        AckSample { sent, bytes }
    }

    fn event(cause: CongestionCause, sent: u64, persistent: bool) -> CongestionEvent {
        CongestionEvent {
            cause,
            sent,
            lost_bytes: MDS,
            persistent_congestion: persistent,
        }
    }

    fn loss(sent: u64, persistent: bool) -> CongestionEvent {
        event(CongestionCause::Loss, sent, persistent)
    }

    const LOSS_AT: u64 = 10 * SEC;

    /// Slow start to 100 datagrams, then a loss at `LOSS_AT`: window
    /// 84 000, W_max 120 000, so K = ∛((100 − 70)/0.4) s = ∛75 s.
    fn after_first_loss() -> Cubic {
        let mut c = plain();
        c.on_ack(&frame(SEC), &[ack(1, 90 * MDS)]);
        assert_eq!(c.window(), 100 * MDS);
        c.on_congestion_event(LOSS_AT, &loss(LOSS_AT - 1, false));
        assert_eq!(c.window(), 84_000);
        assert_eq!(c.w_max, Some(120_000.0));
        c
    }

    /// Acknowledges one datagram per frame, a window's worth per `rtt`,
    /// each sent one `rtt` before its ACK, from `from` until `until`.
    /// Returns where it stopped.
    fn drive(c: &mut Cubic, from: u64, until: u64, rtt: u64) -> u64 {
        let mut now = from;
        while now < until {
            c.on_ack(&frame_rtt(now, rtt), &[ack(now - rtt, MDS)]);
            now += (rtt / (c.window() / MDS).max(1)).max(1);
        }
        now
    }

    #[test]
    fn slow_start_grows_by_bytes_acked() {
        let mut c = Cubic::new(&config());
        assert_eq!(c.window(), 12_000);
        c.on_ack(&frame(100), &[ack(1, MDS), ack(2, MDS)]);
        assert_eq!(c.window(), 14_400);
        c.on_ack(&frame(200), &[ack(3, 10_000)]);
        assert_eq!(c.window(), 24_400);
        assert_eq!(c.ssthresh(), u64::MAX);
    }

    #[test]
    fn app_limited_frames_do_not_grow() {
        let mut c = plain();
        let mut f = frame(100);
        f.app_limited = true;
        c.on_ack(&f, &[ack(1, MDS)]);
        assert_eq!(c.window(), 12_000);

        let mut c = after_first_loss();
        let start = LOSS_AT + 100 * MS;
        c.on_ack(&frame(start), &[ack(LOSS_AT + 1, MDS)]);
        let w = c.window();
        let mut f = frame(start + 50 * SEC);
        f.app_limited = true;
        c.on_ack(&f, &[ack(start, 100 * MDS)]);
        assert_eq!(c.window(), w);
    }

    #[test]
    fn app_limited_time_does_not_advance_the_curve() {
        let rtt = 100 * MS;
        let start = LOSS_AT + rtt + 1;
        let mut paused = after_first_loss();
        paused.on_ack(&frame_rtt(start, rtt), &[ack(start - rtt, MDS)]);
        let (mut busy, mut unpaused) = (paused.clone(), paused.clone());

        let mut f = frame_rtt(start + 10 * SEC, rtt);
        f.app_limited = true;
        paused.on_ack(&f, &[ack(start, MDS)]);
        let then = start + 10 * SEC + rtt;
        paused.on_ack(&frame_rtt(then, rtt), &[ack(then - rtt, MDS)]);
        unpaused.on_ack(&frame_rtt(then, rtt), &[ack(then - rtt, MDS)]);
        busy.on_ack(&frame_rtt(start + rtt, rtt), &[ack(start, MDS)]);

        // 10 s app-limited then one RTT is one RTT into the stage, not 10 s.
        assert_eq!(paused.window(), busy.window());
        // Unpaused, 10 s in, the target is at its 1.5·cwnd clamp: half a
        // datagram for the one acknowledged, against ~70 bytes paused.
        assert!(unpaused.window() > paused.window() + MDS / 3);
    }

    #[test]
    fn loss_reduces_to_beta_once_per_recovery_period() {
        let mut c = plain();
        c.on_ack(&frame(100), &[ack(1, 12_000)]);
        assert_eq!(c.window(), 24_000);
        c.on_congestion_event(200, &loss(150, false));
        assert_eq!(c.window(), 16_800);
        assert_eq!(c.ssthresh(), 16_800);
        // A loss of a packet sent before recovery began: same period.
        c.on_congestion_event(210, &loss(190, false));
        assert_eq!(c.window(), 16_800);
        // ACKs of packets sent before recovery began do not grow it.
        c.on_ack(&frame(220), &[ack(199, MDS), ack(200, MDS)]);
        assert_eq!(c.window(), 16_800);
        // A loss of a packet sent after: a new period.
        c.on_congestion_event(400, &loss(300, false));
        assert_eq!(c.window(), 11_760);
    }

    #[test]
    fn a_congestion_event_ends_hystart() {
        let mut c = Cubic::new(&config());
        round(&mut c, 0, 50 * MS, 0..8);
        c.on_congestion_event(2 * SEC, &loss(SEC, false));
        assert!(c.hystart.is_none());
        let w = c.window();
        // Rounds that would have ended CSS leave the stage alone.
        for r in 1..12 {
            round(&mut c, r, 80 * MS, 0..8);
        }
        assert_eq!(c.ssthresh(), w);
        assert_eq!(c.w_max, Some(12_000.0 + 8.0 * 1200.0));
    }

    #[test]
    fn ecn_ce_reduces_like_loss() {
        let mut c = plain();
        c.on_ack(&frame(100), &[ack(1, 12_000)]);
        c.on_congestion_event(200, &event(CongestionCause::EcnCe, 150, false));
        assert_eq!(c.window(), 16_800);
        c.on_congestion_event(210, &event(CongestionCause::EcnCe, 200, false));
        assert_eq!(c.window(), 16_800);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let mut c = after_first_loss();
        // Lost again below W_max: W_max = 84 000 · (1 + 0.7)/2, not 84 000.
        c.on_congestion_event(LOSS_AT + SEC, &loss(LOSS_AT + 1, false));
        let w_max = 84_000.0 * (1.0 + BETA_CUBIC) / 2.0;
        assert_eq!(c.w_max, Some(w_max));
        // 0.7 is not exact in binary; truncated, as quinn does.
        assert_eq!(c.window(), 58_799);
        // K comes from W_max − cwnd_epoch (RFC 9438): ≈ 2.97 s, where RFC
        // 8312's ∛(W_max·(1 − β)/C) would give ≈ 3.55 s.
        c.on_ack(&frame(LOSS_AT + 2 * SEC), &[ack(LOSS_AT + SEC + 1, MDS)]);
        let k = c.epoch.expect("in congestion avoidance").k;
        assert!((k - ((w_max - 58_799.0) / 1200.0 / C).cbrt()).abs() < 1e-9);
        assert!((k - 2.97).abs() < 0.01, "K {k}");
    }

    #[test]
    fn concave_growth_approaches_w_max_and_convex_growth_passes_it() {
        let mut c = after_first_loss();
        // Long enough that W_est stays below the curve throughout.
        let rtt = 200 * MS;
        let start = LOSS_AT + rtt + 1;
        let k = 75.0_f64.cbrt();
        let k_us = (k * MICROS_PER_SECOND) as u64;

        let now = drive(&mut c, start, start + SEC, rtt);
        let epoch = c.epoch.expect("in congestion avoidance");
        assert_eq!(epoch.start, start);
        assert!((epoch.k - k).abs() < 1e-9);
        let first_second = c.window() - 84_000;

        let now = drive(&mut c, now, start + k_us - SEC, rtt);
        let before = c.window();
        assert!(before < 120_000);
        let now = drive(&mut c, now, start + k_us, rtt);
        let last_second = c.window() - before;
        // Concave: growth slows as the window nears W_max...
        assert!(
            first_second > 10 * last_second,
            "{first_second} vs {last_second}"
        );
        // ...and reaches it at K.
        assert!(
            c.window().abs_diff(120_000) <= 3 * MDS,
            "window {} at K",
            c.window()
        );

        // Convex: past W_max, faster and faster.
        let at_k = c.window();
        let now = drive(&mut c, now, start + k_us + SEC, rtt);
        let second_after = c.window() - at_k;
        let at_k_1 = c.window();
        drive(&mut c, now, start + k_us + 3 * SEC, rtt);
        assert!(c.window() > 120_000 + 5 * MDS, "window {}", c.window());
        assert!((c.window() - at_k_1) / 2 > 2 * second_after);
        // Cubic, not Reno, set the pace all along.
        assert!(c.epoch.expect("in congestion avoidance").w_est < c.window() as f64);
    }

    #[test]
    fn reno_friendly_region_dominates_when_rtt_is_tiny() {
        let mut c = after_first_loss();
        let rtt = MS;
        let start = LOSS_AT + rtt + 1;
        drive(&mut c, start, start + 300 * MS, rtt);
        let epoch = c.epoch.expect("in congestion avoidance");
        // About 300 RTTs at Reno's rate are far past the ~76 datagrams of
        // W_cubic(0.3 s): the window is W_est and beyond W_max.
        let w_cubic = c.w_cubic(&epoch, 0.3 + 0.001);
        assert!(w_cubic < 100.0 * MDS as f64);
        assert_eq!(c.window(), epoch.w_est.floor() as u64);
        assert!(c.window() > 2 * 120_000, "window {}", c.window());
    }

    #[test]
    fn target_is_clamped_at_one_and_a_half_windows() {
        let mut c = after_first_loss();
        let rtt = 100 * MS;
        c.on_ack(&frame_rtt(LOSS_AT + MS, rtt), &[ack(LOSS_AT + 1, MDS)]);
        // 100 s into the stage W_cubic(t + RTT) is ~350 000 datagrams; one
        // window acknowledged may take the window only to 1.5 times.
        let w = c.window();
        let later = LOSS_AT + 100 * SEC;
        c.on_ack(&frame_rtt(later, rtt), &[ack(later - rtt, w)]);
        assert!(
            (c.window() as f64 - 1.5 * w as f64).abs() <= 1.0,
            "{w} -> {}",
            c.window()
        );

        // Ten days on, the same holds, and the window stops at the maximum.
        let days = 10 * 24 * 3600 * SEC;
        for i in 0..60 {
            let w = c.window();
            let now = later + days + i;
            c.on_ack(&frame_rtt(now, rtt), &[ack(now - rtt, w)]);
            assert!(c.window() as f64 <= 1.5 * w as f64 + 1.0);
        }
        assert_eq!(c.window(), 1 << 30);
    }

    #[test]
    fn congestion_avoidance_never_shrinks_the_window() {
        let mut c = after_first_loss();
        let rtt = 4 * SEC;
        c.on_ack(&frame_rtt(LOSS_AT + MS, rtt), &[ack(LOSS_AT + 1, MDS)]);
        // Half a second in, a window's worth of ACKs takes the window to
        // W_cubic(t + RTT) ≈ W_max, far above W_est.
        let t = LOSS_AT + MS + SEC / 2;
        c.on_ack(&frame_rtt(t, rtt), &[ack(t - 1, c.window())]);
        let w = c.window();
        assert!(w > 119_000, "window {w}");
        // Now a flood of ACKs lifts W_est above W_cubic(t) but not to cwnd:
        // the Reno-friendly window is below the current one, and is not
        // taken.
        c.on_ack(&frame_rtt(t, rtt), &[ack(t - 1, 2_500_000)]);
        let epoch = c.epoch.expect("in congestion avoidance");
        let t_s = (SEC / 2) as f64 / MICROS_PER_SECOND;
        assert!(c.w_cubic(&epoch, t_s) < epoch.w_est);
        assert!(epoch.w_est < w as f64);
        assert!(c.window() >= w);
    }

    #[test]
    fn growth_of_less_than_a_byte_per_ack_is_not_lost() {
        let rtt = 100 * MS;
        let mut bytewise = after_first_loss();
        bytewise.on_ack(&frame_rtt(LOSS_AT + MS, rtt), &[ack(LOSS_AT + 1, MDS)]);
        let mut whole = bytewise.clone();
        let before = whole.window();
        let t = LOSS_AT + MS + SEC;
        // A second in, each acknowledged byte earns about a quarter of one.
        let ones = vec![ack(t - rtt, 1); MDS as usize];
        bytewise.on_ack(&frame_rtt(t, rtt), &ones);
        whole.on_ack(&frame_rtt(t, rtt), &[ack(t - rtt, MDS)]);
        assert!(
            whole.window() > before + 250,
            "{before} -> {}",
            whole.window()
        );
        // Not equal: each 1-byte ACK sees the window its predecessors grew,
        // so (target − cwnd)/cwnd shrinks along the way (303 vs 306 bytes).
        let (by_byte, at_once) = (bytewise.window() - before, whole.window() - before);
        assert!(by_byte * 100 >= at_once * 98, "{by_byte} vs {at_once}");
    }

    #[test]
    fn persistent_congestion_collapses_to_the_minimum() {
        let mut c = plain();
        c.on_ack(&frame(100), &[ack(1, 12_000)]);
        c.on_congestion_event(200, &loss(150, true));
        assert_eq!(c.window(), 2 * MDS);
        assert_eq!(c.ssthresh(), 16_800);
        assert_eq!(c.w_max, None);
        // Recovery is over: even a packet sent before the event counts.
        c.on_ack(&frame(300), &[ack(120, MDS)]);
        assert_eq!(c.window(), 3 * MDS);
        // Slow start past ssthresh; the stage then runs with W_max =
        // cwnd_epoch and K = 0 (§4.8).
        c.on_ack(&frame(400), &[ack(301, 12 * MDS)]);
        assert_eq!(c.window(), 15 * MDS);
        assert!(c.epoch.is_none());
        c.on_ack(&frame(500), &[ack(401, MDS)]);
        let epoch = c.epoch.expect("in congestion avoidance");
        assert_eq!(epoch.k, 0.0);
        assert_eq!(epoch.w_max, 18_000.0);
        assert!(c.window() < 15 * MDS + MDS / 10);

        // Persistent congestion for a packet sent during recovery still
        // collapses the window, without reducing ssthresh again.
        c.on_congestion_event(600, &loss(550, false));
        let ssthresh = c.ssthresh();
        c.on_congestion_event(700, &loss(590, true));
        assert_eq!(c.window(), 2 * MDS);
        assert_eq!(c.ssthresh(), ssthresh);
        c.on_congestion_event(800, &loss(750, false));
        assert_eq!(c.window(), 2 * MDS);
    }

    #[test]
    fn mtu_growth_raises_the_minimum() {
        let mut c = plain();
        c.on_congestion_event(100, &loss(50, true));
        c.on_mtu_update(1500);
        assert_eq!(c.window(), 3000);
        // Never above the maximum, however large the datagrams.
        c.on_mtu_update(u64::MAX);
        assert_eq!(c.window(), 1 << 30);
    }

    #[test]
    fn the_window_stays_within_the_maximum() {
        let mut cfg = config();
        cfg.maximum_window = 20_000;
        let mut c = Cubic::new(&cfg);
        c.on_ack(&frame(1), &[ack(1, 1 << 40)]);
        assert_eq!(c.window(), 20_000);
        cfg.initial_window = u64::MAX;
        assert_eq!(Cubic::new(&cfg).window(), 20_000);
    }

    /// ACK frames of one datagram each with latest RTT `rtt`, frame `i`
    /// of round `r` acknowledging packet `100·r + i` while `100·(r + 1) + i`
    /// is the largest sent, so a round ends where the next begins.
    fn round(c: &mut Cubic, r: u64, rtt: u64, frames: Range<u64>) {
        for i in frames {
            let now = (r + 1) * SEC + i * MS;
            let f = AckFrame {
                largest_acked: 100 * r + i,
                largest_sent: 100 * (r + 1) + i,
                ..frame_rtt(now, rtt)
            };
            c.on_ack(&f, &[ack(now - rtt, MDS)]);
        }
    }

    fn in_css(c: &Cubic) -> bool {
        c.hystart.as_ref().expect("in HyStart++").css.is_some()
    }

    #[test]
    fn hystart_enters_css_on_rtt_increase_and_returns_when_it_drops() {
        let mut c = Cubic::new(&config());
        for r in 0..3 {
            round(&mut c, r, 50 * MS, 0..8);
        }
        // +6 ms < RttThresh = 50/8 ms.
        round(&mut c, 3, 56 * MS, 0..8);
        assert!(!in_css(&c));
        // +7 ms = RttThresh = 56/8 ms, but only the 8th sample may tell.
        round(&mut c, 4, 63 * MS, 0..7);
        assert!(!in_css(&c));
        let w = c.window();
        round(&mut c, 4, 63 * MS, 7..8);
        assert!(in_css(&c));
        assert_eq!(c.window(), w + MDS);

        // Conservative Slow Start: a quarter of slow start's growth.
        let w = c.window();
        round(&mut c, 5, 63 * MS, 0..8);
        assert!(in_css(&c));
        assert_eq!(c.window(), w + 8 * MDS / CSS_GROWTH_DIVISOR);

        // The RTT drops below the baseline again: back to slow start after
        // the 8th sample (whose datagram still grew at the CSS rate).
        let w = c.window();
        round(&mut c, 6, 50 * MS, 0..8);
        assert!(!in_css(&c));
        assert_eq!(c.window(), w + 8 * MDS / CSS_GROWTH_DIVISOR);
        let w = c.window();
        round(&mut c, 7, 50 * MS, 0..2);
        assert_eq!(c.window(), w + 2 * MDS);
        assert_eq!(c.ssthresh(), u64::MAX);
    }

    #[test]
    fn hystart_rtt_threshold_is_clamped_to_4_and_16_ms() {
        // (last round's RTT, an increase that is not enough, one that is)
        for (rtt, short, enough) in [(10 * MS, 3 * MS, 4 * MS), (200 * MS, 15 * MS, 16 * MS)] {
            let mut c = Cubic::new(&config());
            round(&mut c, 0, rtt, 0..8);
            round(&mut c, 1, rtt, 0..8);
            round(&mut c, 2, rtt + short, 0..8);
            assert!(!in_css(&c), "{rtt} + {short}");
            round(&mut c, 3, rtt + short + enough, 0..8);
            assert!(in_css(&c), "{rtt} + {short} + {enough}");
        }
    }

    #[test]
    fn hystart_enters_congestion_avoidance_after_css_rounds() {
        let mut c = Cubic::new(&config());
        for r in 0..3 {
            round(&mut c, r, 50 * MS, 0..8);
        }
        // CSS begins in round 3, which counts as its first round.
        round(&mut c, 3, 60 * MS, 0..8);
        assert!(in_css(&c));
        for r in 4..8 {
            round(&mut c, r, 60 * MS, 0..8);
            assert!(in_css(&c));
            assert_eq!(c.ssthresh(), u64::MAX);
        }
        // Round 8 would be CSS's sixth: congestion avoidance instead.
        let w = c.window();
        round(&mut c, 8, 60 * MS, 0..1);
        assert!(c.hystart.is_none());
        assert_eq!(c.ssthresh(), w);
        let epoch = c.epoch.expect("in congestion avoidance");
        assert_eq!(epoch.k, 0.0);
        assert_eq!(epoch.w_max, w as f64);
        assert_eq!(c.cwnd_prior, w as f64);
        // Reno-friendly with α = 1 (W_est starts at cwnd_prior): one
        // datagram's worth per window, far below slow start's one per ACK.
        assert_eq!(c.window(), w + MDS * MDS / w);
    }

    #[test]
    fn without_hystart_an_rtt_increase_does_not_end_slow_start() {
        let run = |hystart: bool| {
            let mut c = Cubic::with_hystart(&config(), hystart);
            for r in 0..3 {
                round(&mut c, r, 50 * MS, 0..8);
            }
            for r in 3..10 {
                round(&mut c, r, 100 * MS, 0..8);
            }
            c
        };
        let off = run(false);
        assert_eq!(off.window(), 12_000 + 10 * 8 * MDS);
        assert_eq!(off.ssthresh(), u64::MAX);
        // The same ACKs do end slow start with HyStart++.
        let on = run(true);
        assert!(on.window() < off.window());
        assert_ne!(on.ssthresh(), u64::MAX);
    }

    /// Knuth's MMIX linear congruential generator: deterministic without a
    /// dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 ^ (self.0 >> 29)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// Mostly below `typical`, sometimes 0, `u64::MAX` or anything.
        fn value(&mut self, typical: u64) -> u64 {
            match self.below(8) {
                0 => 0,
                1 => u64::MAX,
                2 => self.next(),
                _ => self.below(typical),
            }
        }
    }

    fn assert_sane(c: &Cubic, cfg: &ControllerConfig, what: &str) {
        let maximum = cfg.maximum_window.max(1);
        assert!(c.window() >= 1, "{what}: window 0");
        assert!(c.window() <= maximum, "{what}: {} > {maximum}", c.window());
        assert!(c.minimum_window <= c.window(), "{what}: below the minimum");
        assert!(
            c.ssthresh == u64::MAX || c.ssthresh <= maximum,
            "{what}: ssthresh {}",
            c.ssthresh
        );
        assert!((0.0..1.0).contains(&c.carry), "{what}: carry {}", c.carry);
        assert!(c.cwnd_prior.is_finite(), "{what}: cwnd_prior");
        if let Some(w_max) = c.w_max {
            assert!(w_max.is_finite() && w_max >= 0.0, "{what}: W_max {w_max}");
        }
        if let Some(e) = c.epoch {
            assert!(e.k.is_finite() && e.k >= 0.0, "{what}: K {}", e.k);
            assert!(e.w_max.is_finite() && e.w_est.is_finite(), "{what}: {e:?}");
            assert!(e.start <= e.last_frame, "{what}: {e:?}");
            assert!(e.w_est <= maximum as f64, "{what}: {e:?}");
        }
    }

    #[test]
    fn the_window_stays_sane_under_random_events() {
        let configs = [
            config(),
            ControllerConfig {
                max_datagram_size: 1,
                initial_window: 0,
                minimum_window: 0,
                maximum_window: 1,
                now: 0,
            },
            ControllerConfig {
                max_datagram_size: u64::MAX,
                initial_window: u64::MAX,
                minimum_window: u64::MAX,
                maximum_window: u64::MAX,
                now: u64::MAX,
            },
            ControllerConfig {
                max_datagram_size: 0,
                initial_window: 5,
                minimum_window: 1 << 20,
                maximum_window: 1 << 10,
                now: 0,
            },
            ControllerConfig {
                maximum_window: u64::MAX,
                ..config()
            },
        ];
        for (n, cfg) in configs.iter().enumerate() {
            for seed in 1..=8u64 {
                for hystart in [true, false] {
                    let mut rng = Lcg(seed);
                    let mut c = Cubic::with_hystart(cfg, hystart);
                    let mut now = 0u64;
                    let mut packet = 0u64;
                    assert_sane(&c, cfg, "new");
                    for step in 0..3000 {
                        let what = format!("config {n} seed {seed} hystart {hystart} step {step}");
                        now = match rng.below(50) {
                            0 => rng.next(),
                            _ => now.saturating_add(rng.below(100 * MS)),
                        };
                        packet = packet.saturating_add(rng.below(20));
                        match rng.below(10) {
                            0..=6 => {
                                let f = AckFrame {
                                    now,
                                    largest_acked: packet.saturating_sub(rng.value(30)),
                                    largest_sent: match rng.below(8) {
                                        0 => rng.next(),
                                        _ => packet.saturating_add(rng.below(40)),
                                    },
                                    rtt: RttEstimate {
                                        latest: rng.value(200 * MS),
                                        smoothed: rng.value(200 * MS),
                                        min: rng.value(200 * MS),
                                    },
                                    bytes_in_flight: rng.value(1 << 20),
                                    app_limited: rng.below(8) == 0,
                                };
                                let acks: Vec<AckSample> = (0..rng.below(6))
                                    .map(|_| AckSample {
                                        // Sometimes sent in the future.
                                        sent: now
                                            .saturating_sub(rng.value(SEC))
                                            .saturating_add(rng.below(2) * rng.value(SEC)),
                                        bytes: rng.value(2 * MDS),
                                    })
                                    .collect();
                                let before = c.window();
                                c.on_ack(&f, &acks);
                                assert!(c.window() >= before, "{what}: an ACK shrank the window");
                            }
                            7 | 8 => {
                                let cause = if rng.below(2) == 0 {
                                    CongestionCause::Loss
                                } else {
                                    CongestionCause::EcnCe
                                };
                                let e = CongestionEvent {
                                    cause,
                                    sent: now
                                        .saturating_sub(rng.value(SEC))
                                        .saturating_add(rng.below(2) * rng.value(SEC)),
                                    lost_bytes: rng.value(10 * MDS),
                                    persistent_congestion: rng.below(4) == 0,
                                };
                                c.on_congestion_event(now, &e);
                            }
                            _ => c.on_mtu_update(rng.value(9000)),
                        }
                        assert_sane(&c, cfg, &what);
                    }
                }
            }
        }
    }
}
