//! The `connect-policy` world: a plugin as the network stack's
//! [`ConnectPolicy`]. It plans which endpoints to try for a new connection
//! and learns from how each attempt ended.
//!
//! A plan is checked ([`Plan::check`]) before the host races it: every
//! attempt must name a candidate of this request, at most once, with a
//! delay below [`MAX_ATTEMPT_DELAY`](crate::net::plan::MAX_ATTEMPT_DELAY).
//! A plan that fails the checks is a fault; what a fault means (the
//! built-in plan under fail-open, a failed connection under fail-closed) is
//! decided by the dialer, in `net::planning`.
//!
//! A race starts before every DNS answer is in (Happy Eyeballs v3's
//! resolution delay): candidates from a late answer (say AAAA after A) are
//! planned in a second `plan` call listing only them, with the same
//! history; its delays count from when they arrived, and the host adds
//! them to the running race. A report covers every attempt of the race.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::net::plan::{self, ConnectPolicy, FaultMode, Plan, PolicyFault, ReportedOutcome};
use crate::net::pool::OriginKey;
use sockhost_policy::{OnFault, World};
use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::instance::{CallError, SharedSupervisor, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::PluginState;

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!(shared "sockhost:plugin/connect-policy");
}

use super::net_types::{micros, socket_address};

pub use super::bindings::types::{IpAddress, Origin, SocketAddress, Transport};
pub use generated::exports::sockhost::plugin::connect::{
    Attempt, AttemptPlan, AttemptReport, Candidate, CandidateSource, ConnectRequest, HistoryEntry,
    Outcome,
};

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

    /// Asks the plugin to plan one race, and checks its answer: a plan
    /// that fails [`Plan::check`] is a fault like a trap.
    pub fn plan(&mut self, request: &plan::ConnectRequest) -> Result<Plan, CallError> {
        let wit = wit_request(request);
        let answer = self.inner.call("plan", |b, s| {
            b.0.sockhost_plugin_connect().call_plan(s, &wit)
        })?;
        let plan = Plan {
            attempts: answer
                .attempts
                .iter()
                .map(|a| plan::Attempt {
                    candidate: a.candidate,
                    delay: Duration::from_micros(a.delay),
                })
                .collect(),
        };
        match plan.check(request) {
            Ok(()) => Ok(plan),
            Err(why) => Err(self.inner.invalid_result("plan", why.to_string())),
        }
    }

    /// Reports how each attempt of a race ended. A fault here is recorded;
    /// nothing else depends on it.
    pub fn report(
        &mut self,
        origin: &OriginKey,
        candidates: &[plan::Candidate],
        reports: &[plan::AttemptReport],
    ) -> Result<(), CallError> {
        let origin = wit_origin(origin);
        let candidates: Vec<Candidate> = candidates.iter().map(wit_candidate).collect();
        let reports: Vec<AttemptReport> = reports.iter().map(wit_report).collect();
        self.inner.call("report", |b, s| {
            b.0.sockhost_plugin_connect()
                .call_report(s, &origin, &candidates, &reports)
        })
    }
}

/// A connect-policy plugin shared by every dial of a host. Its calls are
/// serialized: a policy learns from one race at a time.
#[derive(Debug)]
pub struct PluginPolicy {
    name: String,
    plugin: Mutex<ConnectPlugin>,
    // Asked for status without waiting for a plan in progress.
    supervisor: SharedSupervisor,
}

impl PluginPolicy {
    /// Shares `plugin` as the host's connect policy.
    pub fn new(plugin: ConnectPlugin) -> Self {
        PluginPolicy {
            name: plugin.supervised().name().to_owned(),
            supervisor: plugin.supervised().shared_supervisor().clone(),
            plugin: Mutex::new(plugin),
        }
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &sockhost_policy::Manifest {
        self.supervisor.manifest()
    }

    /// The plugin's status (one instance: its calls are serialized).
    pub fn status(&self) -> crate::control::status::PluginStatus {
        self.supervisor.status(1)
    }

    /// The operator enables or disables the plugin. Disabled, it plans
    /// nothing: connections get the built-in plan (fail-open) or fail
    /// (fail-closed), as after repeated faults.
    pub fn set_enabled(&self, enable: bool) {
        self.supervisor.set_enabled(enable);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectPlugin> {
        // A panic while planning leaves nothing half-updated host-side;
        // the plugin's own state is the supervisor's business.
        self.plugin.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectPolicy for PluginPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn plan(&self, request: &plan::ConnectRequest) -> Result<Plan, PolicyFault> {
        let mut plugin = self.lock();
        plugin.plan(request).map_err(|e| PolicyFault {
            mode: match plugin.supervised().on_fault() {
                OnFault::FailOpen => FaultMode::FailOpen,
                OnFault::FailClosed => FaultMode::FailClosed,
            },
            source: Arc::new(e),
        })
    }

    fn report(
        &self,
        origin: &OriginKey,
        candidates: &[plan::Candidate],
        reports: &[plan::AttemptReport],
    ) {
        // A fault is recorded by the runtime; nothing waits on it.
        let _ = self.lock().report(origin, candidates, reports);
    }
}

fn wit_origin(o: &OriginKey) -> Origin {
    Origin {
        scheme: o.scheme.clone(),
        host: o.host.clone(),
        port: o.port,
    }
}

fn wit_request(r: &plan::ConnectRequest) -> ConnectRequest {
    ConnectRequest {
        origin: wit_origin(&r.origin),
        candidates: r.candidates.iter().map(wit_candidate).collect(),
        history: r.history.iter().map(wit_history).collect(),
        network_changed: r.network_changed,
        now: r.now_us,
    }
}

fn wit_candidate(c: &plan::Candidate) -> Candidate {
    Candidate {
        id: c.id,
        transport: c.transport.into(),
        address: socket_address(c.addr),
        alpn: c.alpn.clone(),
        source: match c.source {
            plan::CandidateSource::A => CandidateSource::A,
            plan::CandidateSource::Aaaa => CandidateSource::Aaaa,
            plan::CandidateSource::HttpsRecord => CandidateSource::HttpsRecord,
            plan::CandidateSource::AltSvc => CandidateSource::AltSvc,
            plan::CandidateSource::Override => CandidateSource::Override,
        },
        priority: c.priority,
        ech: c.ech,
    }
}

fn wit_history(h: &plan::HistoryEntry) -> HistoryEntry {
    HistoryEntry {
        transport: h.transport.into(),
        ipv6: h.ipv6,
        successes: h.successes,
        failures: h.failures,
        last_connect_time: h.last_connect_time.map(micros),
        last_attempt: h.last_attempt,
    }
}

fn wit_report(r: &plan::AttemptReport) -> AttemptReport {
    AttemptReport {
        candidate: r.candidate,
        outcome: match &r.outcome {
            ReportedOutcome::Connected => Outcome::Connected,
            ReportedOutcome::ConnectedLate => Outcome::ConnectedLate,
            ReportedOutcome::Failed(why) => Outcome::Failed(why.clone()),
            ReportedOutcome::TimedOut => Outcome::TimedOut,
            ReportedOutcome::Cancelled => Outcome::Cancelled,
            ReportedOutcome::NotStarted => Outcome::NotStarted,
        },
        elapsed: micros(r.elapsed),
    }
}
