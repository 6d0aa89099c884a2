//! The seam between the generic loader and the world bridges: a bridge
//! whose world imports host interfaces of its own (the extension world's
//! `rules`) links them through this trait, so the loader links whatever a
//! world needs without knowing any world.

use sockhost_policy::World;
use wasmtime::component::Linker;

use super::state::PluginState;

/// A world's own host interfaces, as its bridge links them.
pub trait WorldLink: Send + Sync + std::fmt::Debug + 'static {
    /// The world whose plugins get these interfaces.
    fn world(&self) -> World;

    /// Links `interface` (a `sockhost` interface name without package or
    /// version, e.g. `rules`) when it is one of this world's own; returns
    /// whether it was. Only called for imports the capability gate let
    /// through.
    fn link(&self, interface: &str, linker: &mut Linker<PluginState>) -> wasmtime::Result<bool>;
}
