//! The composition root of the plugin runtime: the one place that names
//! the world bridges with host interfaces of their own, so the generic
//! loader (`load.rs`) and store (`state.rs`) never depend on a world.

use std::sync::Arc;

use super::engine::EngineError;
use super::extension::RulesLink;
use super::load::{PluginRuntime, RuntimeOptions};
use super::world_link::WorldLink;

impl PluginRuntime {
    /// A runtime with its own engine, linking every world this host has a
    /// bridge for.
    pub fn new(options: RuntimeOptions) -> Result<Self, EngineError> {
        let links: Vec<Arc<dyn WorldLink>> = vec![Arc::new(RulesLink)];
        Self::with_world_links(options, links)
    }
}
