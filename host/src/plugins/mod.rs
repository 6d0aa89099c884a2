//! The plugin runtime: one wasmtime engine with epoch interruption; loading
//! (hash, compile with an on-disk cache, the capability gate over imports,
//! linking, pre-instantiation); supervised calls under a time budget and a
//! memory limit; fault recording, restart and disable; one bridge module per
//! world.

pub mod bindings;
pub mod compile_hint;
pub mod congestion;
pub mod connect;
pub mod engine;
pub mod extension;
pub mod fault;
pub mod instance;
pub mod limits;
pub mod load;
pub mod net_types;
mod no_sockets;
mod runtime;
pub mod state;
pub mod stats;
pub mod status;
pub mod storage;
pub mod supervisor;
pub mod telemetry;
pub mod wit_version;
pub mod world_link;

pub use engine::{EngineOptions, PluginEngine};
pub use fault::{Fault, FaultAction, FaultKind, FaultLog};
pub use instance::CallError;
pub use load::{ImportReport, LoadError, LoadedPlugin, PluginRuntime, RuntimeOptions};
pub use wit_version::{WitVersionError, WIT_VERSION};
