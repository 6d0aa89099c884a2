//! The one wasmtime engine every plugin shares, with epoch interruption
//! driving the per-call time budgets.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances. Budgets are enforced to within one
/// tick: a call may overrun its budget by at most this much.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Plugin instances the pooling allocator keeps slots for. An extension has
/// up to its `limits.instances` live instances (at most
/// [`sockhost_policy::MAX_INSTANCES`], made only as concurrent requests need
/// them), a congestion policy one per connection, other plugins one; a
/// restart frees its slot first.
pub const POOLED_INSTANCES: u32 = 1000;

// A host with several extensions, each at the most instances a manifest may
// ask for, must still leave slots for everything else.
const _: () = assert!(POOLED_INSTANCES >= 8 * sockhost_policy::MAX_INSTANCES);

/// The largest linear memory any manifest may ask for (the policy's maximum);
/// the pooling allocator reserves address space for this much per slot.
pub const MAX_PLUGIN_MEMORY: u64 = 4 << 30;

/// How the engine is built.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Pre-allocate instance slots (memories, tables) so instantiation is a
    /// few microseconds; see `sockhost bench plugins` for the figures.
    pub pooling: bool,
    /// Where compiled code is cached across runs; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            pooling: true,
            cache_dir: None,
        }
    }
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot configure the wasm engine: {0}")]
    Config(String),
    /// The compiled-code cache could not be set up.
    #[error("cannot use compile cache at {path}: {message}")]
    Cache {
        /// The cache directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The shared engine plus the thread that advances its epoch. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PluginEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    started: Instant,
    pooling: bool,
    cache: Option<wasmtime::Cache>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl PluginEngine {
    /// Builds the engine.
    pub fn new(options: &EngineOptions) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(32));
        // Plugin calls are synchronous and short: component-model async
        // support makes each call ~3x dearer and is not needed.
        config.concurrency_support(false);
        if options.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(POOLED_INSTANCES);
            pool.total_core_instances(POOLED_INSTANCES * 4);
            pool.total_memories(POOLED_INSTANCES * 2);
            pool.total_tables(POOLED_INSTANCES * 4);
            pool.max_memory_size(MAX_PLUGIN_MEMORY as usize);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let mut cache = None;
        if let Some(dir) = &options.cache_dir {
            let cache_err = |e: wasmtime::Error| EngineError::Cache {
                path: dir.clone(),
                message: format!("{e:#}"),
            };
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(dir.clone());
            let c = wasmtime::Cache::new(cc).map_err(cache_err)?;
            config.cache(Some(c.clone()));
            cache = Some(c);
        }
        let engine = Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("sockhost-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| EngineError::Config(format!("cannot start epoch thread: {e}")))?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                started: Instant::now(),
                pooling: options.pooling,
                cache,
                stop,
                ticker: Some(ticker),
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// Whether compiled code is cached on disk.
    pub fn has_cache(&self) -> bool {
        self.inner.cache.is_some()
    }

    /// Compiled-code cache hits so far (0 without a cache).
    pub fn cache_hits(&self) -> usize {
        self.inner
            .cache
            .as_ref()
            .map_or(0, wasmtime::Cache::cache_hits)
    }

    /// Microseconds since the engine started: the host's `instant-us`.
    pub fn now_us(&self) -> u64 {
        self.instant_us(Instant::now())
    }

    /// `at` as the host's `instant-us` (0 for instants before the engine
    /// started).
    pub fn instant_us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.inner.started).as_micros())
            .unwrap_or(u64::MAX)
    }

    /// Epoch ticks to allow for `budget`: one more than the budget spans, as
    /// the first tick may come at any point after the deadline is set, so a
    /// call always gets at least its budget.
    pub fn budget_ticks(budget: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        let ticks = budget.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX / 2) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_up_and_add_a_tick() {
        for (budget, ticks) in [
            (Duration::from_micros(1), 2),
            (Duration::from_millis(1), 2),
            (Duration::from_micros(1500), 3),
            (Duration::from_millis(50), 51),
        ] {
            assert_eq!(PluginEngine::budget_ticks(budget), ticks, "{budget:?}");
        }
    }
}
