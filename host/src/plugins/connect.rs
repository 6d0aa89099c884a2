//! The `connect-policy` world: plans which endpoints to try for a new
//! connection and learns from how each attempt ended.
//!
//! A plan is checked before the host races it: every attempt must name a
//! candidate of this request, at most once, with a delay below
//! [`MAX_ATTEMPT_DELAY_US`]. A plan that fails the checks is a fault, and
//! the host's built-in RFC 8305 plan is used instead (fail-open) or the
//! connection fails (fail-closed).
//!
//! A race starts before every DNS answer is in (Happy Eyeballs v3's
//! resolution delay): candidates from a late answer (say AAAA after A) are
//! planned in a second `plan` call listing only them, with the same
//! history; its delays count from when they arrived, and the host adds
//! them to the running race. A report covers every attempt of the race.

use std::collections::HashSet;

use sockhost_policy::{OnFault, World};
use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::instance::{CallError, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::PluginState;

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!(shared "sockhost:plugin/connect-policy");
}

pub use super::bindings::types::{IpAddress, Origin, SocketAddress, Transport};
pub use generated::exports::sockhost::plugin::connect::{
    Attempt, AttemptPlan as Plan, AttemptReport, Candidate, CandidateSource, ConnectRequest,
    HistoryEntry, Outcome,
};

/// The longest head start a plan may give an attempt: 30 s, far beyond any
/// connection timeout, so larger values can only be mistakes.
pub const MAX_ATTEMPT_DELAY_US: u64 = 30_000_000;
/// Most candidates the host offers in one request.
pub const MAX_CANDIDATES: usize = 256;

/// Bindings of the connect-policy world.
pub struct ConnectBindings(generated::ConnectPolicy);

impl std::fmt::Debug for ConnectBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectBindings")
    }
}

impl WorldBindings for ConnectBindings {
    type Pre = generated::ConnectPolicyPre<PluginState>;
    const WORLD: World = World::ConnectPolicy;
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        generated::ConnectPolicyPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        pre.instantiate(store).map(ConnectBindings)
    }
}

/// Where a plan came from.
#[derive(Debug, Clone)]
pub enum PlanSource {
    /// The plugin's own plan.
    Plugin,
    /// The built-in plan, because the plugin faulted or is disabled and its
    /// manifest fails open.
    Fallback(CallError),
}

/// Checks a plan against the request it answers.
pub fn check_plan(request: &ConnectRequest, plan: &Plan) -> Result<(), String> {
    let ids: HashSet<u32> = request.candidates.iter().map(|c| c.id).collect();
    if plan.attempts.is_empty() && !request.candidates.is_empty() {
        return Err("the plan tries none of the candidates".into());
    }
    let mut seen = HashSet::new();
    for a in &plan.attempts {
        if !ids.contains(&a.candidate) {
            return Err(format!("attempt names unknown candidate {}", a.candidate));
        }
        if !seen.insert(a.candidate) {
            return Err(format!("candidate {} is attempted twice", a.candidate));
        }
        if a.delay > MAX_ATTEMPT_DELAY_US {
            return Err(format!(
                "attempt on candidate {} delayed {} us, more than {MAX_ATTEMPT_DELAY_US}",
                a.candidate, a.delay
            ));
        }
    }
    Ok(())
}

/// A connect-policy plugin.
#[derive(Debug)]
pub struct ConnectPlugin {
    inner: Supervised<ConnectBindings>,
}

impl ConnectPlugin {
    /// Wraps a loaded connect-policy plugin.
    pub fn new(loaded: LoadedPlugin) -> Result<Self, LoadError> {
        Ok(Self {
            inner: Supervised::new(loaded)?,
        })
    }

    /// The supervised instance (for status and tests).
    pub fn supervised(&self) -> &Supervised<ConnectBindings> {
        &self.inner
    }

    /// Plans one connection. The plan is the plugin's when it answered with
    /// a valid plan; otherwise the built-in plan under fail-open, or the
    /// error under fail-closed.
    pub fn plan(&mut self, request: &ConnectRequest) -> Result<(Plan, PlanSource), CallError> {
        let result = self
            .inner
            .call("plan", |b, s| {
                b.0.sockhost_plugin_connect().call_plan(s, request)
            })
            .and_then(|plan| match check_plan(request, &plan) {
                Ok(()) => Ok(plan),
                Err(why) => Err(self.inner.invalid_result("plan", why)),
            });
        match result {
            Ok(plan) => Ok((plan, PlanSource::Plugin)),
            Err(e) => match self.inner.on_fault() {
                OnFault::FailOpen => Ok((
                    crate::net::happy_eyeballs::builtin_plan(&request.candidates, &request.history),
                    PlanSource::Fallback(e),
                )),
                OnFault::FailClosed => Err(e),
            },
        }
    }

    /// Reports how each attempt of a plan ended. A fault here is recorded;
    /// nothing else depends on it.
    pub fn report(
        &mut self,
        origin: &Origin,
        candidates: &[Candidate],
        reports: &[AttemptReport],
    ) -> Result<(), CallError> {
        self.inner.call("report", |b, s| {
            b.0.sockhost_plugin_connect()
                .call_report(s, origin, candidates, reports)
        })
    }
}
