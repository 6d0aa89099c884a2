//! A supervised plugin instance: every call runs under the manifest's time
//! budget and memory limit; a fault ends that call and that instance, is
//! recorded, and the plugin is restarted within its budget, then disabled
//! (see [`super::supervisor`]). This is the supervisor's shell: it reads the
//! clock and passes it in.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sockhost_policy::{Manifest, OnFault, World};
use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::engine::PluginEngine;
use super::fault::{classify, Fault, FaultAction, FaultContext, FaultKind, FaultLog, FaultTally};
use super::limits::{crept_past_high_water, RECYCLE_AT_PERCENT};
use super::load::LoadedPlugin;
use super::state::{PluginState, WorldData};
use super::stats::{MemorySlot, PluginStats};
use super::storage::PluginStorage;
use super::supervisor::{AfterFault, Standing, Supervisor};

/// The generated bindings of one world, as the supervisor needs them.
pub trait WorldBindings: Sized + Send + 'static {
    /// The pre-instantiated form.
    type Pre: Clone + Send + Sync + 'static;
    /// The world these bindings are for.
    const WORLD: World;
    /// Wraps a generic pre-instance.
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre>;
    /// Instantiates.
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self>;
    /// Whether an instance whose memory crept toward its limit may be
    /// replaced between calls. Not for a world whose host keeps handles
    /// into the instance across calls (congestion controllers).
    const RECYCLES: bool = true;
    /// The data the world's own host interfaces keep in each new store
    /// (see `PluginState::world_data`); none by default.
    fn world_data(manifest: &Manifest) -> Option<WorldData> {
        let _ = manifest;
        None
    }
}

/// Why a call did not return the plugin's answer.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The call faulted; the fault was recorded.
    Fault(Box<Fault>),
    /// The plugin is disabled; nothing was called.
    Disabled {
        /// The plugin.
        plugin: Arc<str>,
        /// Whether the operator disabled it (otherwise its faults did).
        by_operator: bool,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Fault(fault) => fault.fmt(f),
            CallError::Disabled {
                plugin,
                by_operator: false,
            } => write!(f, "plugin {plugin} is disabled after repeated faults"),
            CallError::Disabled {
                plugin,
                by_operator: true,
            } => write!(f, "plugin {plugin} is disabled by the operator"),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// The fault, when the call faulted.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            CallError::Fault(f) => Some(f),
            CallError::Disabled { .. } => None,
        }
    }
}

struct Live<B> {
    store: Store<PluginState>,
    bindings: B,
    // The supervisor's disable count when this instance was made: one made
    // before the plugin was last disabled is not called again.
    disables: u64,
    // Linear memory when instantiated, for `crept_past_high_water`.
    memory_at_start: usize,
}

/// What every instance of one plugin shares: its fault budget and the
/// operator's enable, its statistics and faults, its manifest. Cheap to
/// clone; asking it never enters WASM.
#[derive(Debug, Clone)]
pub struct SharedSupervisor(Arc<SharedParts>);

#[derive(Debug)]
struct SharedParts {
    supervisor: Mutex<Supervisor>,
    stats: Arc<PluginStats>,
    // Written on faults only, never on a call that returns.
    tally: Mutex<FaultTally>,
    manifest: Arc<Manifest>,
    world: World,
}

impl SharedSupervisor {
    fn new(manifest: Arc<Manifest>, world: World) -> Self {
        Self(Arc::new(SharedParts {
            supervisor: Mutex::new(Supervisor::new(&manifest.limits)),
            stats: Arc::default(),
            tally: Mutex::default(),
            manifest,
            world,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Supervisor> {
        // The supervisor is plain values: a panic elsewhere cannot leave it
        // half-updated.
        self.0
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.manifest.plugin.name
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }

    /// The plugin's world.
    pub fn world(&self) -> World {
        self.0.world
    }

    /// Its faults since it was loaded, by kind, and the latest.
    pub fn faults(&self) -> FaultTally {
        self.tally().clone()
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, FaultTally> {
        // Written whole on each fault: a panic elsewhere cannot tear it.
        self.0.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its calls, call time and memory.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.0.stats
    }

    /// Whether calls enter it now, and why not.
    pub fn standing(&self) -> Standing {
        self.standing_at(Instant::now())
    }

    /// Whether calls enter it at `now`, and why not.
    pub fn standing_at(&self, now: Instant) -> Standing {
        self.lock().standing(now)
    }

    /// The operator enables or disables the plugin: see
    /// [`Supervisor::set_enabled`]. A disabled plugin is skipped (or its
    /// requests refused, under fail-closed) as one disabled after faults.
    pub fn set_enabled(&self, enable: bool) {
        self.lock().set_enabled(enable, Instant::now());
    }

    /// Restarts so far, comebacks after a backoff included.
    pub fn restarts(&self) -> u32 {
        self.lock().restarts()
    }

    /// Instances replaced because their memory crept toward the limit.
    pub fn recycles(&self) -> u64 {
        self.lock().recycles()
    }

    /// Whether calls would be refused at `now` (a plugin whose backoff is
    /// over is not disabled: its next call brings it back).
    pub fn is_disabled_at(&self, now: Instant) -> bool {
        self.lock().is_disabled(now)
    }

    /// Whether calls would be refused now.
    pub fn is_disabled(&self) -> bool {
        self.is_disabled_at(Instant::now())
    }
}

/// One plugin, supervised.
pub struct Supervised<B: WorldBindings> {
    manifest: Arc<Manifest>,
    engine: PluginEngine,
    faults: FaultLog,
    storage_dir: Option<Arc<cap_std::fs::Dir>>,
    pre: B::Pre,
    live: Option<Live<B>>,
    // The live instance's memory, as the plugin's stats see it; cleared
    // whenever `live` is emptied (see `drop_instance`).
    memory: MemorySlot,
    // Shared with forks (see `fork`): restarts are counted per plugin, not
    // per instance.
    supervisor: SharedSupervisor,
    // Incremented on every new instance, so handles to resources of a dropped
    // instance (congestion controllers) are recognised as stale.
    generation: u64,
    last_instantiation: Option<Duration>,
}

impl<B: WorldBindings> fmt::Debug for Supervised<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervised")
            .field("plugin", &self.manifest.plugin.name)
            .field("world", &B::WORLD)
            .field("live", &self.live.is_some())
            .field("supervisor", &self.supervisor)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The value a world's bridge passes through a call.
pub(crate) type CallResult<T> = Result<T, CallError>;

impl<B: WorldBindings> Supervised<B> {
    /// Wraps a loaded plugin of world `B::WORLD`.
    pub fn new(loaded: LoadedPlugin) -> Result<Self, super::load::LoadError> {
        let path = loaded.manifest.plugin.component.clone();
        if loaded.world() != B::WORLD {
            return Err(super::load::LoadError::WrongWorld {
                path,
                world: B::WORLD,
                expected: B::WORLD.export_interface(),
                found: format!("world {}", loaded.world()),
            });
        }
        let pre = B::pre(loaded.instance_pre).map_err(|e| super::load::LoadError::Link {
            path,
            message: format!("{e:#}"),
        })?;
        let supervisor = SharedSupervisor::new(loaded.manifest.clone(), B::WORLD);
        Ok(Self {
            memory: MemorySlot::new(supervisor.stats().clone()),
            supervisor,
            manifest: loaded.manifest,
            engine: loaded.engine,
            faults: loaded.faults,
            storage_dir: loaded.storage_dir,
            pre,
            live: None,
            generation: 0,
            last_instantiation: None,
        })
    }

    /// Another instance slot of the same plugin: the same code, manifest,
    /// fault log and restart accounting, with no instance yet. Congestion
    /// control gives each connection an instance of its own, so that one
    /// connection's fault ends only that connection's controller.
    pub fn fork(&self) -> Self {
        Self {
            manifest: self.manifest.clone(),
            engine: self.engine.clone(),
            faults: self.faults.clone(),
            storage_dir: self.storage_dir.clone(),
            pre: self.pre.clone(),
            live: None,
            memory: MemorySlot::new(self.supervisor.stats().clone()),
            supervisor: self.supervisor.clone(),
            generation: 0,
            last_instantiation: None,
        }
    }

    fn supervisor(&self) -> std::sync::MutexGuard<'_, Supervisor> {
        self.supervisor.lock()
    }

    /// The fault budget this plugin's instances share.
    pub fn shared_supervisor(&self) -> &SharedSupervisor {
        &self.supervisor
    }

    /// The engine the plugin runs in.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.plugin.name
    }

    /// The manifest's fault rule.
    pub fn on_fault(&self) -> OnFault {
        self.manifest.limits.on_fault
    }

    /// Whether the plugin is disabled after repeated faults: until a reload,
    /// or until its backoff is over.
    pub fn is_disabled(&self) -> bool {
        self.supervisor.is_disabled()
    }

    /// Whether the plugin is disabled at `now`.
    pub fn is_disabled_at(&self, now: Instant) -> bool {
        self.supervisor.is_disabled_at(now)
    }

    /// Restarts used so far, comebacks after a backoff included.
    pub fn restarts(&self) -> u32 {
        self.supervisor().restarts()
    }

    /// The engine's clock.
    pub fn now_us(&self) -> u64 {
        self.engine.now_us()
    }

    /// The generation of the current (or next) instance.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether an instance is live.
    pub fn has_instance(&self) -> bool {
        self.live.is_some()
    }

    /// Bytes of linear memory the live instance has (all its memories), if
    /// one is live.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.live
            .as_ref()
            .map(|l| l.store.data().limiter.memory_bytes() as u64)
    }

    /// How long the latest instantiation took (store, instance, and the
    /// guest's start functions), if there was one.
    pub fn last_instantiation(&self) -> Option<Duration> {
        self.last_instantiation
    }

    fn new_store(&self) -> wasmtime::Result<Store<PluginState>> {
        let storage = match (&self.storage_dir, self.manifest.capabilities.storage_quota) {
            (Some(dir), Some(quota)) => Some(PluginStorage::open(dir.try_clone()?, quota)?),
            _ => None,
        };
        let mut store = Store::new(
            self.engine.engine(),
            PluginState::new(&self.manifest, storage, B::world_data(&self.manifest)),
        );
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        Ok(store)
    }

    fn arm(&self, store: &mut Store<PluginState>) {
        store.data_mut().begin_call();
        store.set_epoch_deadline(PluginEngine::budget_ticks(self.manifest.limits.call_budget));
    }

    /// Drops the live instance; the next call instantiates a fresh one.
    pub fn reset(&mut self) {
        self.drop_instance();
    }

    fn drop_instance(&mut self) -> Option<Live<B>> {
        self.memory.clear();
        self.live.take()
    }

    fn note_memory(&self) {
        if let Some(live) = &self.live {
            self.memory
                .set(live.store.data().limiter.memory_bytes() as u64);
        }
    }

    /// Instantiates now rather than on the next call.
    pub fn warm_up(&mut self) -> Result<(), CallError> {
        self.ensure_live("instantiate")
    }

    /// Makes sure an instance is live, instantiating one (under the call
    /// budget: instantiation runs guest code) if needed.
    pub(crate) fn ensure_live(&mut self, function: &'static str) -> CallResult<()> {
        let (admitted, by_operator, disables) = {
            let mut s = self.supervisor();
            (
                s.admit(Instant::now()),
                s.is_disabled_by_operator(),
                s.disables(),
            )
        };
        if !admitted {
            return Err(CallError::Disabled {
                plugin: self.manifest.plugin.name.as_str().into(),
                by_operator,
            });
        }
        if self.live.as_ref().is_some_and(|l| l.disables != disables) {
            self.drop_instance();
        }
        if self.live.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let mut store = match self.new_store() {
            Ok(s) => s,
            Err(e) => return Err(self.fault_without_store(function, &e)),
        };
        self.arm(&mut store);
        match B::instantiate(&self.pre, &mut store) {
            Ok(bindings) => {
                self.last_instantiation = Some(started.elapsed());
                self.generation += 1;
                let memory_at_start = store.data().limiter.memory_bytes();
                self.live = Some(Live {
                    store,
                    bindings,
                    disables,
                    memory_at_start,
                });
                self.note_memory();
                Ok(())
            }
            Err(e) => Err(self.fault(function, &e, Some(store.data_mut()))),
        }
    }

    /// Calls into the plugin. `f` gets the bindings and the store; its error
    /// (a trap, a deadline, a memory refusal) becomes a recorded fault, the
    /// instance is dropped and the plugin restarted or disabled.
    pub(crate) fn call<T>(
        &mut self,
        function: &'static str,
        f: impl FnOnce(&B, &mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> CallResult<T> {
        self.ensure_live(function)?;
        let Some(live) = self.live.as_mut() else {
            // ensure_live leaves an instance live or says why not.
            return Err(CallError::Disabled {
                plugin: self.manifest.plugin.name.as_str().into(),
                by_operator: false,
            });
        };
        live.store.data_mut().begin_call();
        live.store
            .set_epoch_deadline(PluginEngine::budget_ticks(self.manifest.limits.call_budget));
        let started = Instant::now();
        let result = f(&live.bindings, &mut live.store);
        self.supervisor.stats().record_call(started.elapsed());
        match result {
            Ok(v) => {
                self.note_memory();
                self.recycle_if_crept();
                Ok(v)
            }
            Err(e) => {
                // A store whose call trapped cannot be re-entered.
                let mut live = self.drop_instance();
                Err(self.fault(function, &e, live.as_mut().map(|l| l.store.data_mut())))
            }
        }
    }

    /// Replaces the instance before its next call when its memory crept
    /// past the high-water mark, rather than let a call fault at the limit.
    fn recycle_if_crept(&mut self) {
        let Some(live) = self.live.as_ref().filter(|_| B::RECYCLES) else {
            return;
        };
        let limiter = &live.store.data().limiter;
        let (limit, now) = (limiter.limit(), limiter.memory_bytes());
        if !crept_past_high_water(limit, live.memory_at_start, now) {
            return;
        }
        self.drop_instance();
        self.supervisor().on_recycle();
        tracing::debug!(
            plugin = %self.manifest.plugin.name,
            memory = now,
            limit,
            "instance recycled: its memory grew past {RECYCLE_AT_PERCENT}% of the limit"
        );
    }

    /// Instances of this plugin replaced because their memory crept toward
    /// the limit (every instance of the plugin, forks included).
    pub fn recycles(&self) -> u64 {
        self.supervisor().recycles()
    }

    /// Runs `f` on the live store without a time budget of its own (host-side
    /// bookkeeping such as taking replaced rules).
    pub(crate) fn with_state<T>(&mut self, f: impl FnOnce(&mut PluginState) -> T) -> Option<T> {
        self.live.as_mut().map(|l| f(l.store.data_mut()))
    }

    /// Records that a call returned a value the host refuses. The instance is
    /// dropped like after a trap: a plugin that answers nonsense is not
    /// trusted with the next call either.
    pub(crate) fn invalid_result(&mut self, function: &'static str, why: String) -> CallError {
        self.drop_instance();
        self.record(function, FaultKind::InvalidResult, why, None)
    }

    fn fault(
        &mut self,
        function: &'static str,
        err: &wasmtime::Error,
        state: Option<&mut PluginState>,
    ) -> CallError {
        let ctx = match state {
            Some(s) => FaultContext {
                memory_refused: s.limiter.take_refusal(),
                memory_limit: s.limiter.limit(),
                panic_message: s.panic_message.take(),
                budget: self.manifest.limits.call_budget,
            },
            None => FaultContext {
                budget: self.manifest.limits.call_budget,
                ..Default::default()
            },
        };
        let c = classify(err, ctx);
        self.record(function, c.kind, c.message, c.backtrace)
    }

    fn fault_without_store(&mut self, function: &'static str, err: &wasmtime::Error) -> CallError {
        self.fault(function, err, None)
    }

    fn record(
        &mut self,
        function: &'static str,
        kind: FaultKind,
        message: String,
        backtrace: Option<String>,
    ) -> CallError {
        self.drop_instance();
        let now = Instant::now();
        let at = SystemTime::now();
        let after = self.supervisor().on_fault(now);
        let action = match after {
            AfterFault::Restart => FaultAction::Restarted,
            AfterFault::DisableUntil { until, backoff } => FaultAction::Disabled {
                backoff,
                until: at + until.saturating_duration_since(now),
            },
            AfterFault::DisableUntilReload => FaultAction::DisabledUntilReload,
        };
        let fault = Fault {
            plugin: self.manifest.plugin.name.as_str().into(),
            world: B::WORLD,
            function,
            kind,
            message: super::fault::truncate(message),
            backtrace,
            action,
            at,
        };
        self.supervisor.tally().record(&fault);
        self.faults.record(fault.clone());
        CallError::Fault(Box::new(fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::telemetry::TelemetryPlugin;

    fn probe() -> TelemetryPlugin {
        let rt = crate::builtin::test_runtime();
        TelemetryPlugin::new(crate::builtin::REQUEST_STATS.load(&rt).unwrap()).unwrap()
    }

    #[test]
    fn calls_and_the_memory_of_live_instances_are_recorded_for_the_plugin() {
        let mut p = probe();
        let shared = p.supervised().shared_supervisor().clone();
        let stats = shared.stats().clone();
        assert_eq!(stats.memory().per_instance.len(), 0, "none yet");
        p.collect().unwrap();
        p.collect().unwrap();
        let calls = stats.calls();
        assert_eq!(calls.calls, 2);
        assert!(calls.total > Duration::ZERO && calls.max <= calls.total);
        let memory = stats.memory();
        let live = p.supervised().memory_bytes().unwrap();
        assert_eq!(memory.per_instance, [live]);
        assert!(memory.peak >= live && live > 0);

        // A fork is a slot of its own, counted once it has an instance.
        let mut fork = p.supervised().fork();
        assert_eq!(stats.memory().per_instance.len(), 1);
        fork.warm_up().unwrap();
        assert_eq!(stats.memory().per_instance.len(), 2);
        assert_eq!(stats.calls().calls, 2, "instantiating is not a call");
        fork.reset();
        assert_eq!(stats.memory().per_instance.len(), 1);
        fork.warm_up().unwrap();
        drop(fork);
        assert_eq!(stats.memory().per_instance, [live], "a dropped slot leaves");
        assert_eq!(stats.memory().peak, memory.peak);
    }

    #[test]
    fn an_operator_disable_refuses_calls_until_enabled() {
        let mut p = probe();
        let shared = p.supervised().shared_supervisor().clone();
        p.collect().unwrap();
        shared.set_enabled(false);
        assert!(p.supervised().is_disabled());
        assert_eq!(shared.standing(), Standing::DisabledByOperator);
        match p.collect() {
            Err(
                e @ CallError::Disabled {
                    by_operator: true, ..
                },
            ) => assert!(e.to_string().contains("by the operator"), "{e}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(shared.stats().calls().calls, 1, "a refusal is no call");
        shared.set_enabled(true);
        assert_eq!(shared.standing(), Standing::Active);
        p.collect().unwrap();
        assert_eq!(shared.stats().calls().calls, 2);
        assert_eq!(shared.restarts(), 0);
    }
}
