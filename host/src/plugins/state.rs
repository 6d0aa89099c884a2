//! The data of one plugin instance's store, and the host imports every world
//! shares (`log`, `storage`) implemented on it.

use std::any::Any;
use std::sync::Arc;

use sockhost_policy::{Manifest, WasiGrant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{log, storage};
use super::limits::MemoryLimiter;
use super::no_sockets;
use super::storage::{PluginStorage, StorageError};

/// Longest log message kept, in bytes; longer ones are cut.
pub const MAX_LOG_MESSAGE: usize = 4096;
/// Log lines one call may write; the rest are dropped and counted, so a
/// chatty plugin cannot flood the host's log.
pub const MAX_LOG_LINES_PER_CALL: u32 = 64;

/// The store data of one plugin instance.
#[derive(Debug)]
pub struct PluginState {
    pub(crate) plugin: Arc<str>,
    pub(crate) limiter: MemoryLimiter,
    /// The message of a panic the SDK reported during the current call.
    pub(crate) panic_message: Option<String>,
    log_lines_this_call: u32,
    pub(crate) log_lines_dropped: u64,
    /// Present only when the manifest grants storage; otherwise `storage`
    /// is linked without authority and every call fails as not granted.
    pub(crate) storage: Option<PluginStorage>,
    wasi: Option<Box<WasiState>>,
    stdio: bool,
    /// What a world's own host interfaces work on, supplied by its bridge
    /// (`WorldBindings::world_data`); this module does not know its type.
    world: Option<WorldData>,
}

/// A world's own data in a store, opaque to the generic runtime.
pub type WorldData = Box<dyn Any + Send>;

struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl std::fmt::Debug for WasiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WasiState")
    }
}

impl PluginState {
    pub(crate) fn new(
        manifest: &Manifest,
        storage: Option<PluginStorage>,
        world: Option<WorldData>,
    ) -> Self {
        Self {
            plugin: manifest.plugin.name.as_str().into(),
            limiter: MemoryLimiter::new(manifest.limits.memory),
            panic_message: None,
            log_lines_this_call: 0,
            log_lines_dropped: 0,
            storage,
            wasi: None,
            stdio: manifest.capabilities.wasi.contains(&WasiGrant::Stdio),
            world,
        }
    }

    /// The world's data, when the bridge supplied data of type `T`.
    pub(crate) fn world_data<T: Any>(&mut self) -> Option<&mut T> {
        self.world.as_mut()?.downcast_mut()
    }

    /// Resets what is tracked per call.
    pub(crate) fn begin_call(&mut self) {
        self.panic_message = None;
        self.log_lines_this_call = 0;
        self.limiter.take_refusal();
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stdio = self.stdio;
        // Built on first use: most plugins import no WASI at all. Whatever is
        // built here has no authority: no preopened directory, no
        // environment, no arguments, no network (no socket can be created,
        // no name looked up, no address used), stdin closed and output
        // discarded unless `stdio` is granted. Clocks and randomness are only
        // reachable when the import gate let their interfaces through, which
        // needs a grant.
        let wasi = self.wasi.get_or_insert_with(|| {
            let mut b = WasiCtx::builder();
            no_sockets::deny_all(&mut b);
            if stdio {
                b.stdout(wasmtime_wasi::cli::stderr());
                b.stderr(wasmtime_wasi::cli::stderr());
            }
            Box::new(WasiState {
                ctx: b.build(),
                table: ResourceTable::new(),
            })
        });
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_LOG_MESSAGE {
        let mut end = MAX_LOG_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) {
        let message = cut(message);
        // The SDK's panic hook reports this way just before the trap.
        if level == log::Level::Error && message.starts_with("panicked at") {
            self.panic_message = Some(message.clone());
        }
        if self.log_lines_this_call >= MAX_LOG_LINES_PER_CALL {
            self.log_lines_dropped += 1;
            return;
        }
        self.log_lines_this_call += 1;
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

fn to_wit(e: StorageError) -> storage::StorageError {
    match e {
        StorageError::QuotaExceeded { .. } => storage::StorageError::QuotaExceeded,
        StorageError::InvalidKey => storage::StorageError::InvalidKey,
        StorageError::ValueTooLarge => storage::StorageError::ValueTooLarge,
        StorageError::Io(m) => storage::StorageError::Io(m),
        // WIT 0.1.0 has no case of its own for it: the message says it.
        e @ StorageError::NotGranted => storage::StorageError::Io(e.to_string()),
    }
}

impl PluginState {
    fn store(&mut self) -> Result<&mut PluginStorage, storage::StorageError> {
        self.storage
            .as_mut()
            .ok_or_else(|| to_wit(StorageError::NotGranted))
    }
}

impl storage::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, storage::StorageError> {
        self.store()?.get(&key).map_err(to_wit)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), storage::StorageError> {
        self.store()?.set(&key, &value).map_err(to_wit)
    }

    fn delete(&mut self, key: String) -> Result<(), storage::StorageError> {
        self.store()?.delete(&key).map_err(to_wit)
    }

    fn keys(&mut self) -> Result<Vec<String>, storage::StorageError> {
        self.store()?.keys().map_err(to_wit)
    }

    fn usage(&mut self) -> (u64, u64) {
        self.storage.as_ref().map_or((0, 0), PluginStorage::usage)
    }
}

impl super::bindings::types::Host for PluginState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_grant_every_storage_call_says_it_is_not_granted() {
        let text = format!(
            "[plugin]\nname = \"x\"\nversion = \"0.1.0\"\nworld = \"extension\"\n\
             component = \"x.wasm\"\nsha256 = \"{}\"\n",
            "0".repeat(64),
        );
        let manifest = Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap();
        let mut s = PluginState::new(&manifest, None, None);
        let not_granted = |e: storage::StorageError| match e {
            storage::StorageError::Io(m) => {
                m == "storage not granted: plugin.toml sets no capabilities.storage-quota"
            }
            _ => false,
        };
        use storage::Host as _;
        assert!(s.get("k".into()).is_err_and(not_granted));
        assert!(s.set("k".into(), b"v".to_vec()).is_err_and(not_granted));
        assert!(s.delete("k".into()).is_err_and(not_granted));
        assert!(s.keys().is_err_and(not_granted));
        assert_eq!(s.usage(), (0, 0));
    }
}
