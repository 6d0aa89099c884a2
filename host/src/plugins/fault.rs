//! Plugin faults: what went wrong, how it is classified, and the bounded
//! record the host keeps of them.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use sockhost_policy::World;
use wasmtime::{Trap, WasmBacktrace};

/// How many faults the host keeps in full; older ones are only counted.
pub const MAX_RECORDED_FAULTS: usize = 256;

/// Longest message kept for a fault, in bytes: a plugin controls its panic
/// message and must not grow the host's fault log without bound.
pub const MAX_FAULT_MESSAGE: usize = 2048;

/// What kind of fault ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A WebAssembly trap other than the ones below.
    Trap,
    /// The guest panicked (the SDK reported the panic before trapping).
    Panic,
    /// The call ran past its wall-clock budget.
    Deadline,
    /// The guest asked for more memory than its limit.
    Memory,
    /// The call returned a value the host refused (a window of 0, a redirect
    /// to a non-URL, an unknown candidate).
    InvalidResult,
}

impl FaultKind {
    /// The name used in logs, metrics and telemetry events.
    pub fn as_str(&self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Panic => "panic",
            FaultKind::Deadline => "deadline",
            FaultKind::Memory => "memory",
            FaultKind::InvalidResult => "invalid-result",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the host did about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// The instance was dropped; the next call gets a fresh one.
    Restarted,
    /// The plugin was disabled: it used up its restart budget. The first
    /// call from `until` on gets a fresh instance.
    Disabled {
        /// How long it is disabled for.
        backoff: Duration,
        /// When it is tried again.
        until: SystemTime,
    },
    /// The plugin was disabled until the plugins are reloaded: it used up
    /// its restart budget and its manifest says `on-disable =
    /// "stay-disabled"`.
    DisabledUntilReload,
}

impl FaultAction {
    /// Whether the plugin was disabled (for a while or until a reload).
    pub fn disables(&self) -> bool {
        !matches!(self, FaultAction::Restarted)
    }
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::Restarted => f.write_str("restarted"),
            FaultAction::Disabled { backoff, until } => {
                write!(f, "disabled for {backoff:?}, until {}", Utc(*until))
            }
            FaultAction::DisabledUntilReload => f.write_str("disabled until reload"),
        }
    }
}

/// A time of day in UTC, to the second: enough to tell when a backoff ends
/// without a calendar.
struct Utc(SystemTime);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            % 86_400;
        write!(f, "{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
    }
}

/// One fault, as recorded.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The plugin's name.
    pub plugin: Arc<str>,
    /// The plugin's world.
    pub world: World,
    /// The function that was called, e.g. `on-request`.
    pub function: &'static str,
    /// What went wrong.
    pub kind: FaultKind,
    /// The host's description.
    pub message: String,
    /// The WebAssembly backtrace, when the trap carried one.
    pub backtrace: Option<String>,
    /// What the host did.
    pub action: FaultAction,
    /// When it happened.
    pub at: SystemTime,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin {} ({}) faulted in {}: {}: {}",
            self.plugin, self.world, self.function, self.kind, self.message
        )?;
        write!(f, " ({})", self.action)
    }
}

/// A fault before the host decided what to do about it.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub kind: FaultKind,
    pub message: String,
    pub backtrace: Option<String>,
}

/// What the store knew when a call failed; classification needs it because
/// a refused memory growth or a reported panic precede the trap itself.
#[derive(Debug, Default)]
pub(crate) struct FaultContext {
    pub memory_refused: Option<usize>,
    pub memory_limit: usize,
    pub panic_message: Option<String>,
    pub budget: Duration,
}

/// Turns a failed call's error into a fault description.
pub(crate) fn classify(err: &wasmtime::Error, ctx: FaultContext) -> Classified {
    let backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| truncate(bt.to_string()))
        .filter(|bt| !bt.trim().is_empty());
    let trap = err.downcast_ref::<Trap>().copied();
    let (kind, message) = if let Some(desired) = ctx.memory_refused {
        (
            FaultKind::Memory,
            format!(
                "memory limit of {} exceeded: the guest asked for {}",
                bytes(ctx.memory_limit),
                bytes(desired)
            ),
        )
    } else if trap == Some(Trap::Interrupt) {
        (
            FaultKind::Deadline,
            format!("call exceeded its budget of {:?}", ctx.budget),
        )
    } else if let Some(panic) = ctx.panic_message {
        (FaultKind::Panic, panic)
    } else if let Some(trap) = trap {
        (FaultKind::Trap, format!("wasm trap: {trap}"))
    } else {
        (FaultKind::Trap, format!("{err:#}"))
    };
    Classified {
        kind,
        message: truncate(message),
        backtrace,
    }
}

fn bytes(n: usize) -> String {
    const MIB: usize = 1 << 20;
    if n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_FAULT_MESSAGE {
        let mut end = MAX_FAULT_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The faults of one loaded plugin (every instance of it), counted by kind,
/// and the latest in full: what its status shows. Unlike the [`FaultLog`],
/// which spans the runtime, this starts afresh with each load.
#[derive(Debug, Clone, Default)]
pub struct FaultTally {
    counts: BTreeMap<FaultKind, u64>,
    last: Option<Fault>,
}

impl FaultTally {
    /// Counts `fault` and keeps it as the latest.
    pub fn record(&mut self, fault: &Fault) {
        *self.counts.entry(fault.kind).or_default() += 1;
        self.last = Some(fault.clone());
    }

    /// Faults by kind (kinds that never happened are left out).
    pub fn counts(&self) -> &BTreeMap<FaultKind, u64> {
        &self.counts
    }

    /// The latest fault.
    pub fn last(&self) -> Option<&Fault> {
        self.last.as_ref()
    }
}

/// The faults of every plugin of a runtime: the most recent in full, all of
/// them counted. Shared by every plugin instance; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    inner: Arc<Mutex<FaultLogInner>>,
}

/// Told of every fault recorded; returns false to be removed.
type Listener = Arc<dyn Fn(&Fault) -> bool + Send + Sync>;

#[derive(Default)]
struct FaultLogInner {
    // Invariant: recent.len() <= MAX_RECORDED_FAULTS, oldest first.
    recent: VecDeque<Fault>,
    counts: BTreeMap<(Arc<str>, FaultKind), u64>,
    listeners: Vec<Listener>,
}

impl fmt::Debug for FaultLogInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultLogInner")
            .field("recent", &self.recent.len())
            .field("counts", &self.counts)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl FaultLog {
    /// Records a fault and logs it.
    pub fn record(&self, fault: Fault) {
        tracing::warn!(
            plugin = %fault.plugin,
            kind = %fault.kind,
            backtrace = fault.backtrace.as_deref().unwrap_or(""),
            "{fault}"
        );
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner
            .counts
            .entry((fault.plugin.clone(), fault.kind))
            .or_default() += 1;
        if inner.recent.len() == MAX_RECORDED_FAULTS {
            inner.recent.pop_front();
        }
        let listeners = inner.listeners.clone();
        inner.recent.push_back(fault.clone());
        // Listeners run unlocked: one may publish, log or record elsewhere.
        drop(inner);
        let gone: Vec<usize> = listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| !l(&fault))
            .map(|(i, _)| i)
            .collect();
        if !gone.is_empty() {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            inner
                .listeners
                .retain(|l| !gone.iter().any(|&i| Arc::ptr_eq(l, &listeners[i])));
        }
    }

    /// Calls `listener` with every fault recorded from now on, until it
    /// returns false.
    pub fn listen(&self, listener: impl Fn(&Fault) -> bool + Send + Sync + 'static) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.listeners.push(Arc::new(listener));
    }

    /// Whether `other` is the same log (clones share one).
    pub fn same_as(&self, other: &FaultLog) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The recorded faults, oldest first.
    pub fn recent(&self) -> Vec<Fault> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.recent.iter().cloned().collect()
    }

    /// How many faults of `kind` `plugin` has had.
    pub fn count(&self, plugin: &str, kind: FaultKind) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .counts
            .iter()
            .filter(|((p, k), _)| &**p == plugin && *k == kind)
            .map(|(_, n)| *n)
            .sum()
    }

    /// How many faults `plugin` has had, of any kind.
    pub fn total(&self, plugin: &str) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .counts
            .iter()
            .filter(|((p, _), _)| &**p == plugin)
            .map(|(_, n)| *n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(plugin: &str, kind: FaultKind) -> Fault {
        Fault {
            plugin: plugin.into(),
            world: World::Extension,
            function: "on-request",
            kind,
            message: "m".into(),
            backtrace: None,
            action: FaultAction::Restarted,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn keeps_recent_faults_bounded_and_counts_all() {
        let log = FaultLog::default();
        for _ in 0..MAX_RECORDED_FAULTS + 10 {
            log.record(fault("a", FaultKind::Trap));
        }
        log.record(fault("b", FaultKind::Deadline));
        assert_eq!(log.recent().len(), MAX_RECORDED_FAULTS);
        assert_eq!(
            log.count("a", FaultKind::Trap),
            MAX_RECORDED_FAULTS as u64 + 10
        );
        assert_eq!(log.count("b", FaultKind::Deadline), 1);
        assert_eq!(log.total("b"), 1);
        assert_eq!(log.total("c"), 0);
    }

    #[test]
    fn a_tally_counts_by_kind_and_keeps_the_latest() {
        let mut t = FaultTally::default();
        assert!(t.counts().is_empty() && t.last().is_none());
        t.record(&fault("a", FaultKind::Panic));
        t.record(&fault("a", FaultKind::Deadline));
        t.record(&fault("a", FaultKind::Panic));
        let counts: Vec<(FaultKind, u64)> = t.counts().iter().map(|(k, n)| (*k, *n)).collect();
        assert_eq!(counts, [(FaultKind::Panic, 2), (FaultKind::Deadline, 1)]);
        assert_eq!(t.last().map(|f| f.kind), Some(FaultKind::Panic));
    }

    #[test]
    fn classification_prefers_memory_then_deadline_then_panic() {
        let trap = |t: Trap| wasmtime::Error::new(t);
        let cases = [
            (
                trap(Trap::UnreachableCodeReached),
                FaultContext {
                    memory_refused: Some(2 << 20),
                    memory_limit: 1 << 20,
                    ..Default::default()
                },
                FaultKind::Memory,
            ),
            (
                trap(Trap::Interrupt),
                FaultContext::default(),
                FaultKind::Deadline,
            ),
            (
                trap(Trap::UnreachableCodeReached),
                FaultContext {
                    panic_message: Some("panicked at x".into()),
                    ..Default::default()
                },
                FaultKind::Panic,
            ),
            (
                trap(Trap::StackOverflow),
                FaultContext::default(),
                FaultKind::Trap,
            ),
        ];
        for (err, ctx, want) in cases {
            assert_eq!(classify(&err, ctx).kind, want);
        }
    }

    #[test]
    fn actions_say_what_happened_and_until_when() {
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 + 62);
        let cases = [
            (FaultAction::Restarted, "(restarted)", false),
            (
                FaultAction::Disabled {
                    backoff: Duration::from_secs(4),
                    until,
                },
                "(disabled for 4s, until 01:01:02 UTC)",
                true,
            ),
            (
                FaultAction::DisabledUntilReload,
                "(disabled until reload)",
                true,
            ),
        ];
        for (action, shown, disables) in cases {
            let f = Fault {
                action,
                ..fault("a", FaultKind::Panic)
            };
            assert!(f.to_string().ends_with(shown), "{f}");
            assert_eq!(action.disables(), disables);
        }
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let s = truncate("é".repeat(MAX_FAULT_MESSAGE));
        assert!(s.len() <= MAX_FAULT_MESSAGE + "…".len());
    }
}
