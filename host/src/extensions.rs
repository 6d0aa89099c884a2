//! Extensions on the live request path. For each extension in order, its
//! compiled declarative rules decide first (natively, no WASM); then its
//! `on-request` hook runs if its filter and grants match. All of this
//! happens before any network work for the request. A hook runs in place
//! on the runtime's worker while the extension's calls are quick, and on a
//! thread allowed to block once one was slow ([`pace`]), so that a slow
//! plugin (bounded by its call budget) does not stall the runtime's other
//! requests.
//!
//! Each extension has up to `limits.instances` instances (by default one per
//! worker thread of the runtime), as Envoy runs one VM per worker: a hook
//! takes a free instance, so one slow hook holds up only the requests
//! waiting for that instance, not every request to the extension. Each
//! instance has its own store, so state one instance keeps is not seen by
//! another. The rules are the plugin's: compiled once per version and
//! shared by every instance; faults count against one budget per plugin.
//! When every instance is busy a request waits, without holding a runtime
//! thread, for at most [`WAIT_BUDGETS`] call budgets; then the extension is
//! skipped (fail-open) or the request refused (fail-closed).

mod action;
pub mod pace;
mod pool;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::plugins::extension::{
    ExtensionPlugin, ExtensionShared, Header, HeaderChange, Request, RequestVerdict, ResourceType,
    Response, Rule, RuleAction,
};
use crate::rules::ruleset::{rule_request, RuleRequest, RuleSet, Verdict};
use pace::CallPace;
use pool::{InstancePool, Lease};
use sockhost_policy::{OnFault, MAX_INSTANCES};

pub use action::{ActionKind, PluginAction};
pub use pool::Busy;

/// How long a request waits for a free instance, in call budgets of the
/// extension: every instance being busy for that long means the extension
/// is overloaded.
pub const WAIT_BUDGETS: u32 = 4;

/// The request being decided, as the host knows it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    /// The host's id of the request.
    pub id: u64,
    /// Its URL.
    pub url: &'a str,
    /// Its method.
    pub method: &'a str,
    /// What is being loaded.
    pub resource_type: ResourceType,
}

/// What the extensions decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDecision {
    /// Go on (headers may have been changed).
    Continue,
    /// Cancel the request.
    Cancel {
        /// The extension.
        extension: String,
        /// Why.
        reason: String,
    },
    /// Fetch this URL instead.
    Redirect {
        /// The extension.
        extension: String,
        /// Where.
        url: String,
    },
}

/// The rules of one version, compiled.
#[derive(Debug)]
struct Compiled {
    ruleset: RuleSet,
    version: u64,
    /// Whether any rule modifies response headers.
    has_response_rules: bool,
}

impl Compiled {
    fn new(rules: &[Rule], version: u64) -> Self {
        Self {
            ruleset: RuleSet::new(rules),
            version,
            has_response_rules: rules
                .iter()
                .any(|r| matches!(r.action, RuleAction::ModifyResponseHeaders(_))),
        }
    }
}

/// One extension: what its instances share, its compiled rules, its
/// instances.
#[derive(Debug)]
struct Extension {
    shared: ExtensionShared,
    compiled: Mutex<Arc<Compiled>>,
    instances: InstancePool<ExtensionPlugin>,
    // Never called: further instances are forked from it.
    template: Mutex<ExtensionPlugin>,
    wait: Duration,
    /// Whether its hooks may run on a runtime worker.
    pace: CallPace,
}

impl Extension {
    fn new(plugin: ExtensionPlugin, instances: usize) -> Self {
        let shared = plugin.shared().clone();
        let (rules, version) = shared.versioned_rules();
        let budget = shared.manifest().limits.call_budget;
        let wait = budget * WAIT_BUDGETS;
        Self {
            pace: CallPace::new(budget, shared.imports_wasi()),
            compiled: Mutex::new(Arc::new(Compiled::new(&rules, version))),
            template: Mutex::new(plugin.fork()),
            instances: InstancePool::new(plugin, instances),
            shared,
            wait,
        }
    }

    fn name(&self) -> &str {
        self.shared.name()
    }

    /// The rules as compiled for their current version: compiled once, by
    /// the first request to see a new version, and shared.
    fn compiled(&self) -> Arc<Compiled> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if compiled.version != self.shared.rules_version() {
            let (rules, version) = self.shared.versioned_rules();
            *compiled = Arc::new(Compiled::new(&rules, version));
        }
        compiled.clone()
    }

    /// A free instance, waiting (asynchronously) for one if all are busy.
    /// When none comes free in time the `busy` action is recorded and the
    /// manifest's fault rule decides: `None` (fail-open: skip the hook) or
    /// the error (fail-closed).
    async fn take_instance(
        &self,
        actions: &mut Vec<PluginAction>,
    ) -> Result<Option<Lease<ExtensionPlugin>>, Busy> {
        let taken = self
            .instances
            .take(self.wait, || {
                self.template
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fork()
            })
            .await;
        match taken {
            Ok(instance) => Ok(Some(instance)),
            Err(busy) => {
                actions.push(self.action(ActionKind::Busy, busy.to_string()));
                match self.shared.on_fault() {
                    OnFault::FailOpen => Ok(None),
                    OnFault::FailClosed => Err(busy),
                }
            }
        }
    }

    fn action(&self, action: ActionKind, detail: String) -> PluginAction {
        PluginAction {
            plugin: self.name().to_owned(),
            action,
            detail,
        }
    }
}

/// How many instances an extension gets: its manifest's `limits.instances`,
/// or one per worker thread of the runtime, at most [`MAX_INSTANCES`].
fn instances_for(manifest: Option<u32>, workers: usize) -> usize {
    manifest
        .map_or(workers, |n| n as usize)
        .clamp(1, MAX_INSTANCES as usize)
}

/// The worker threads of the current runtime; outside one, what tokio
/// would start (one per available CPU).
fn runtime_workers() -> usize {
    tokio::runtime::Handle::try_current().map_or_else(
        |_| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        |h| h.metrics().num_workers(),
    )
}

/// One entry of a reloaded list of extensions (see [`Extensions::rebuild`]).
#[derive(Debug)]
pub enum Reloaded {
    /// The extension at this index of the current list, unchanged.
    Keep(usize),
    /// A newly started extension.
    New(Box<ExtensionPlugin>),
}

/// The extensions of a host, in order.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    list: Vec<Arc<Extension>>,
}

impl Extensions {
    /// Adds a started extension, with as many instances as its manifest
    /// says (by default one per worker thread of the runtime).
    pub fn push(&mut self, plugin: ExtensionPlugin) {
        let limit = plugin.shared().manifest().limits.instances;
        let instances = instances_for(limit, runtime_workers());
        self.list.push(Arc::new(Extension::new(plugin, instances)));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The extensions' manifests, in order.
    pub fn manifests(&self) -> Vec<Arc<sockhost_policy::Manifest>> {
        self.list.iter().map(|e| e.shared.manifest_arc()).collect()
    }

    /// A list for a reload: for each entry, the extension at that index of
    /// `self` (kept, with its instances, rules and state) or a newly
    /// started one.
    pub fn rebuild(&self, entries: Vec<Reloaded>) -> Extensions {
        let mut next = Extensions::default();
        for entry in entries {
            match entry {
                Reloaded::Keep(i) => next.list.push(self.list[i].clone()),
                Reloaded::New(plugin) => next.push(*plugin),
            }
        }
        next
    }

    /// Runs rules and hooks for a request; `headers` are changed in place.
    /// Rules run inline (native, microseconds); a hook runs only when the
    /// extension's filter and grants match, on a free instance, on a thread
    /// allowed to block.
    pub async fn before_request(
        &self,
        id: u64,
        url: &str,
        method: &str,
        resource_type: ResourceType,
        headers: &mut Vec<(String, String)>,
        actions: &mut Vec<PluginAction>,
    ) -> RequestDecision {
        let lower = url.to_ascii_lowercase();
        let req = rule_request(&lower, method, resource_type);
        let host = req.as_ref().map(|r| r.host.to_owned()).unwrap_or_default();
        for ext in &self.list {
            if let Some(req) = &req {
                if let Some(d) = apply_rules(ext, req, headers, actions) {
                    return d;
                }
            }
            if !ext.shared.wants_request(&host, method, resource_type) {
                continue;
            }
            let mut instance = match ext.take_instance(actions).await {
                Ok(Some(instance)) => instance,
                Ok(None) => continue,
                Err(busy) => {
                    return RequestDecision::Cancel {
                        extension: ext.name().to_owned(),
                        // FetchError::Blocked names the extension.
                        reason: format!("it is busy ({busy}) and fails closed"),
                    };
                }
            };
            let request = Request {
                id,
                url: url.to_owned(),
                method: method.to_owned(),
                headers: headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: n.to_ascii_lowercase(),
                        value: v.as_bytes().to_vec(),
                    })
                    .collect(),
                resource_type,
            };
            let warm = instance.is_warm();
            let verdict = run_paced(&ext.pace, warm, move || {
                let r = instance.on_request(&request);
                drop(instance);
                r
            })
            .await;
            let decision = hook_decision(ext, verdict, headers, actions);
            if decision != RequestDecision::Continue {
                return decision;
            }
        }
        RequestDecision::Continue
    }

    /// Runs response rules and hooks; `headers` are changed in place. An
    /// error names a fail-closed extension that faulted (or had no free
    /// instance).
    pub async fn after_response(
        &self,
        req: RequestRef<'_>,
        status: u16,
        headers: &mut HeaderMap,
        actions: &mut Vec<PluginAction>,
    ) -> Result<(), (String, String)> {
        let lower = req.url.to_ascii_lowercase();
        let Some(rule_req) = rule_request(&lower, req.method, req.resource_type) else {
            return Ok(());
        };
        let host = rule_req.host;
        for ext in &self.list {
            let compiled = ext.compiled();
            if compiled.has_response_rules {
                let d = compiled.ruleset.evaluate(&rule_req);
                for (rule, change) in &d.response_headers {
                    apply_to_map(headers, change);
                    actions.push(ext.action(
                        ActionKind::ResponseHeaders,
                        format!("rule {rule}: {}", describe(change)),
                    ));
                }
            }
            if !ext.shared.wants_response(host) {
                continue;
            }
            let mut instance = match ext.take_instance(actions).await {
                Ok(Some(instance)) => instance,
                Ok(None) => continue,
                Err(busy) => {
                    return Err((
                        ext.name().to_owned(),
                        format!("it is busy ({busy}) and fails closed"),
                    ))
                }
            };
            let response = Response {
                request_id: req.id,
                url: req.url.to_owned(),
                status,
                headers: headers
                    .iter()
                    .map(|(n, v)| Header {
                        name: n.as_str().to_owned(),
                        value: v.as_bytes().to_vec(),
                    })
                    .collect(),
            };
            let host_owned = host.to_owned();
            let warm = instance.is_warm();
            let r = run_paced(&ext.pace, warm, move || {
                let r = instance.on_response(&host_owned, &response);
                drop(instance);
                r
            })
            .await;
            if let Some(e) = &r.error {
                actions.push(ext.action(ActionKind::Fault, e.to_string()));
                if ext.shared.on_fault() == OnFault::FailClosed {
                    return Err((
                        ext.name().to_owned(),
                        format!("its on-response hook failed ({e}) and it fails closed"),
                    ));
                }
            }
            for c in &r.verdict {
                apply_to_map(headers, c);
                actions.push(ext.action(ActionKind::ResponseHeaders, describe(c)));
            }
        }
        Ok(())
    }
}

/// Runs `f`, a plugin call bounded by its budget: in place while the
/// extension's calls are quick (see [`pace`]) and the instance is `warm`
/// (an `init` first may take long: it runs off the worker and does not
/// count); otherwise without stalling the runtime, on a thread allowed to
/// block (the worker's other tasks move to another thread on a
/// multi-threaded runtime; the blocking pool otherwise).
async fn run_paced<F, R>(pace: &CallPace, warm: bool, f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    // The call's own CPU time, not the wall clock's: a call preempted on a
    // busy machine is not a slow plugin (one without WASI cannot block,
    // only compute).
    let timed = move || {
        let start = thread_cpu_time();
        let out = f();
        (out, thread_cpu_time().saturating_sub(start))
    };
    let (out, took) = if warm && pace.in_place(Instant::now()) {
        timed()
    } else if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(timed)
    } else {
        tokio::task::spawn_blocking(timed)
            .await
            .expect("extension calls do not panic: faults are contained")
    };
    if warm {
        pace.record(Instant::now(), took);
    }
    out
}

/// The CPU time the current thread has used.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// The extension's declarative rules for a request (native). `Some` when
/// they decide it.
fn apply_rules(
    ext: &Extension,
    req: &RuleRequest<'_>,
    headers: &mut Vec<(String, String)>,
    actions: &mut Vec<PluginAction>,
) -> Option<RequestDecision> {
    let compiled = ext.compiled();
    if compiled.ruleset.is_empty() {
        return None;
    }
    let d = compiled.ruleset.evaluate(req);
    match d.verdict {
        Some((rule, Verdict::Block)) => {
            actions.push(ext.action(ActionKind::RuleBlock, format!("rule {rule}")));
            return Some(RequestDecision::Cancel {
                extension: ext.name().to_owned(),
                reason: format!("blocked by rule {rule}"),
            });
        }
        Some((rule, Verdict::Redirect(target))) => {
            actions.push(ext.action(ActionKind::RuleRedirect, format!("rule {rule} to {target}")));
            return Some(RequestDecision::Redirect {
                extension: ext.name().to_owned(),
                url: target,
            });
        }
        Some((rule, Verdict::Allow)) => {
            actions.push(ext.action(ActionKind::RuleAllow, format!("rule {rule}")))
        }
        None => {}
    }
    for (rule, change) in &d.request_headers {
        apply_change(headers, change);
        actions.push(ext.action(
            ActionKind::RuleHeaders,
            format!("rule {rule}: {}", describe(change)),
        ));
    }
    None
}

/// What the extension's on-request hook decided.
fn hook_decision(
    ext: &Extension,
    r: crate::plugins::extension::HookResult<RequestVerdict>,
    headers: &mut Vec<(String, String)>,
    actions: &mut Vec<PluginAction>,
) -> RequestDecision {
    if let Some(e) = &r.error {
        actions.push(ext.action(ActionKind::Fault, e.to_string()));
    }
    match r.verdict {
        RequestVerdict::Proceed(changes) => {
            for c in &changes {
                apply_change(headers, c);
                actions.push(ext.action(ActionKind::HookHeaders, describe(c)));
            }
            RequestDecision::Continue
        }
        RequestVerdict::Cancel(reason) => {
            actions.push(ext.action(ActionKind::HookCancel, reason.clone()));
            RequestDecision::Cancel {
                extension: ext.name().to_owned(),
                reason,
            }
        }
        RequestVerdict::Redirect(target) => {
            actions.push(ext.action(ActionKind::HookRedirect, target.clone()));
            RequestDecision::Redirect {
                extension: ext.name().to_owned(),
                url: target,
            }
        }
    }
}

fn describe(c: &HeaderChange) -> String {
    match c {
        HeaderChange::Set(h) => format!("set {}", h.name),
        HeaderChange::Remove(n) => format!("remove {n}"),
    }
}

fn apply_change(headers: &mut Vec<(String, String)>, change: &HeaderChange) {
    match change {
        HeaderChange::Set(h) => {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&h.name));
            headers.push((
                h.name.clone(),
                String::from_utf8_lossy(&h.value).into_owned(),
            ));
        }
        HeaderChange::Remove(name) => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
    }
}

fn apply_to_map(headers: &mut HeaderMap, change: &HeaderChange) {
    match change {
        HeaderChange::Set(h) => {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_bytes(&h.value),
            ) {
                headers.insert(n, v);
            }
        }
        HeaderChange::Remove(name) => {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                headers.remove(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_come_from_the_manifest_or_the_runtime_within_the_cap() {
        let cap = MAX_INSTANCES as usize;
        for (manifest, workers, want) in [
            (None, 2, 2),
            (None, 0, 1),
            (None, 1000, cap),
            (Some(1), 16, 1),
            (Some(8), 2, 8),
            (Some(MAX_INSTANCES), 1, cap),
        ] {
            assert_eq!(
                instances_for(manifest, workers),
                want,
                "{manifest:?}, {workers}"
            );
        }
    }
}
