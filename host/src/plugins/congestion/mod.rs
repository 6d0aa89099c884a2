//! The `congestion-policy` world: a `controller` resource per QUIC
//! connection, driven by quinn through [`HostController`].
//!
//! Every mutating call returns the window, which the caller caches; the
//! host never calls in just to read it. Answers are checked: a window of 0
//! or above the connection's maximum is a fault (the caller falls back to
//! quinn's native Cubic from the last sane window), a window below the
//! minimum is raised to the minimum.
//!
//! - this file: the calls into the plugin and the checks on their answers;
//! - [`controller`]: quinn's `Controller` on top of them (ACK buffering,
//!   the cached window, the fallback, telemetry samples);
//! - [`choice`]: which controller a connection gets (globally and per host
//!   pattern);
//! - [`selection`]: the network stack's `CongestionSelector`, holding the
//!   current choice (swappable while running) and numbering connections
//!   for telemetry samples.

mod choice;
mod controller;
mod selection;

pub use crate::net::congestion::{CongestionStatus, NATIVE_CUBIC};
pub use choice::{CongestionChoice, CongestionPolicy, ControllerKind, DEFAULT_MAX_WINDOW};
pub use controller::{wasm_calls, HostController, SAMPLE_INTERVAL};
pub use selection::CongestionSelection;

use sockhost_policy::World;
use wasmtime::component::{InstancePre, ResourceAny};
use wasmtime::Store;

use super::instance::{CallError, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::PluginState;

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!(shared "sockhost:plugin/congestion-policy");
}

pub use generated::exports::sockhost::plugin::congestion::{
    AckFrame, AckSample, CongestionCause, CongestionEvent, ControllerConfig, RttEstimate,
    WindowUpdate,
};

/// Most samples one `on-ack` call carries; an ACK frame acknowledging more
/// packets is delivered in several calls.
pub const MAX_ACKS_PER_CALL: usize = 1024;

/// Bindings of the congestion-policy world.
pub struct CongestionBindings(generated::CongestionPolicy);

impl std::fmt::Debug for CongestionBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CongestionBindings")
    }
}

impl WorldBindings for CongestionBindings {
    type Pre = generated::CongestionPolicyPre<PluginState>;
    const WORLD: World = World::CongestionPolicy;
    // Controllers are handles into the instance, held across calls.
    const RECYCLES: bool = false;
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        generated::CongestionPolicyPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        pre.instantiate(store).map(CongestionBindings)
    }
}

/// Why a controller call gave no usable window.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControllerError {
    /// The call faulted (trap, deadline, memory, absurd value).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The plugin instance holding this controller was restarted after a
    /// fault of another call: the controller's state is gone.
    #[error("controller lost: its plugin instance was restarted")]
    Lost,
    /// The host asked for an impossible controller (a bug in the caller).
    #[error("invalid controller configuration: minimum window {minimum} with maximum {maximum}")]
    Config {
        /// The minimum window asked for.
        minimum: u64,
        /// The maximum window asked for.
        maximum: u64,
    },
}

/// One connection's controller inside the plugin.
#[derive(Debug)]
pub struct ControllerHandle {
    resource: ResourceAny,
    generation: u64,
    config: ControllerConfig,
    // Invariant: config.minimum_window <= last_sane.window <= config.maximum_window.
    last_sane: WindowUpdate,
}

impl ControllerHandle {
    /// The last window that passed the checks: where a fallback starts.
    pub fn last_sane(&self) -> WindowUpdate {
        self.last_sane
    }
    /// The configuration it was created with.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }
}

/// A congestion-policy plugin.
#[derive(Debug)]
pub struct CongestionPlugin {
    inner: Supervised<CongestionBindings>,
}

impl CongestionPlugin {
    /// Wraps a loaded congestion-policy plugin.
    pub fn new(loaded: LoadedPlugin) -> Result<Self, LoadError> {
        Ok(Self {
            inner: Supervised::new(loaded)?,
        })
    }

    /// Another instance slot of the same plugin, sharing its fault log and
    /// restart accounting (see [`Supervised::fork`]).
    pub fn fork(&self) -> Self {
        Self {
            inner: self.inner.fork(),
        }
    }

    /// The supervised instance (for status and tests).
    pub fn supervised(&self) -> &Supervised<CongestionBindings> {
        &self.inner
    }

    /// The supervised instance, mutably (to reset or warm it up).
    pub fn supervised_mut(&mut self) -> &mut Supervised<CongestionBindings> {
        &mut self.inner
    }

    /// Creates a controller for a new connection and returns its first window.
    pub fn new_controller(
        &mut self,
        config: ControllerConfig,
    ) -> Result<ControllerHandle, ControllerError> {
        if config.minimum_window == 0 || config.minimum_window > config.maximum_window {
            return Err(ControllerError::Config {
                minimum: config.minimum_window,
                maximum: config.maximum_window,
            });
        }
        let resource = self.inner.call("controller", |b, s| {
            b.0.sockhost_plugin_congestion()
                .controller()
                .call_constructor(&mut *s, config)
        })?;
        let generation = self.inner.generation();
        let fallback = WindowUpdate {
            window: config
                .initial_window
                .clamp(config.minimum_window, config.maximum_window),
            pacing_rate: None,
        };
        let mut handle = ControllerHandle {
            resource,
            generation,
            config,
            last_sane: fallback,
        };
        self.run(&mut handle, "initial", |b, s, r| {
            b.0.sockhost_plugin_congestion()
                .controller()
                .call_initial(s, r)
        })?;
        Ok(handle)
    }

    fn run(
        &mut self,
        handle: &mut ControllerHandle,
        function: &'static str,
        f: impl FnOnce(
            &CongestionBindings,
            &mut Store<PluginState>,
            ResourceAny,
        ) -> wasmtime::Result<WindowUpdate>,
    ) -> Result<WindowUpdate, ControllerError> {
        if handle.generation != self.inner.generation() || !self.inner.has_instance() {
            return Err(ControllerError::Lost);
        }
        let resource = handle.resource;
        let update = self.inner.call(function, |b, s| f(b, s, resource))?;
        let c = &handle.config;
        if update.window == 0 || update.window > c.maximum_window {
            return Err(self
                .inner
                .invalid_result(
                    function,
                    format!(
                        "window of {} bytes is outside 1..={} (the configured maximum)",
                        update.window, c.maximum_window
                    ),
                )
                .into());
        }
        if update.pacing_rate == Some(0) {
            return Err(self
                .inner
                .invalid_result(function, "pacing rate of 0 bytes/s".into())
                .into());
        }
        let sane = WindowUpdate {
            window: update.window.max(c.minimum_window),
            pacing_rate: update.pacing_rate,
        };
        handle.last_sane = sane;
        Ok(sane)
    }

    /// Delivers every packet one ACK frame newly acknowledged.
    pub fn on_ack(
        &mut self,
        handle: &mut ControllerHandle,
        frame: AckFrame,
        acks: &[AckSample],
    ) -> Result<WindowUpdate, ControllerError> {
        let mut last = handle.last_sane;
        for chunk in acks.chunks(MAX_ACKS_PER_CALL) {
            last = self.run(handle, "on-ack", |b, s, r| {
                b.0.sockhost_plugin_congestion()
                    .controller()
                    .call_on_ack(s, r, frame, chunk)
            })?;
        }
        Ok(last)
    }

    /// Delivers a loss or ECN event.
    pub fn on_congestion_event(
        &mut self,
        handle: &mut ControllerHandle,
        now: u64,
        event: CongestionEvent,
    ) -> Result<WindowUpdate, ControllerError> {
        self.run(handle, "on-congestion-event", |b, s, r| {
            b.0.sockhost_plugin_congestion()
                .controller()
                .call_on_congestion_event(s, r, now, event)
        })
    }

    /// Delivers a path MTU change.
    pub fn on_mtu_update(
        &mut self,
        handle: &mut ControllerHandle,
        max_datagram_size: u64,
    ) -> Result<WindowUpdate, ControllerError> {
        self.run(handle, "on-mtu-update", |b, s, r| {
            b.0.sockhost_plugin_congestion()
                .controller()
                .call_on_mtu_update(s, r, max_datagram_size)
        })
    }

    /// Drops the controller of a closed connection.
    pub fn drop_controller(&mut self, handle: ControllerHandle) {
        if handle.generation != self.inner.generation() {
            return;
        }
        // A fault in the guest's destructor is recorded like any other.
        let _ = self
            .inner
            .call("controller.drop", |_, s| handle.resource.resource_drop(s));
    }
}
