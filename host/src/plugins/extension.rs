//! The `extension` world: declarative rules handed over at load (and
//! replaceable later through the `rules` import), plus blocking hooks on
//! requests and responses for what rules cannot say.
//!
//! The host verifies everything an extension asks for before acting on it:
//! rules and verdicts are validated here; requests to hosts the manifest
//! does not grant never reach the extension; sensitive headers are hidden
//! unless the manifest names them; a redirect (a hook's verdict or a rule's
//! action) goes only to hosts the manifest grants, loopback, private and
//! link-local ones only when named (see `check_redirect_granted`). A hook's
//! refused redirect is an invalid-result fault: the request then goes on
//! unredirected (fail-open) or is refused (fail-closed); a rule's is
//! refused with its rules, when they are handed over.

use std::sync::{Arc, Mutex, PoisonError};

use sockhost_policy::{Manifest, OnFault, World};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

use super::fault::FaultKind;
use super::instance::{CallError, SharedSupervisor, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::{PluginState, WorldData};
use super::world_link::WorldLink;

mod checks;

use checks::{check_filter, check_header_changes, check_redirect_granted, validate_rules, Grants};
pub use checks::{
    check_redirect, CheckError, RuleProblem, RulesError, FRAMING_HEADERS, MAX_CONDITION_ENTRIES,
    MAX_HEADER_CHANGES, MAX_HEADER_VALUE, MAX_PATTERN_LEN, MAX_URL_LEN,
};

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!(shared "sockhost:plugin/extension");
}

pub use super::bindings::types::Header;
pub use generated::exports::sockhost::plugin::add_on::{
    Registration, Request, RequestFilter, RequestVerdict, Response,
};
pub use generated::sockhost::plugin::rule_types::{
    HeaderChange, ResourceType, Rule, RuleAction, RuleCondition,
};

/// Longest cancel reason passed on to the client, in bytes; longer ones are
/// cut rather than refused.
pub const MAX_REASON_LEN: usize = 1024;

/// Bindings of the extension world.
pub struct ExtensionBindings(generated::Extension);

impl std::fmt::Debug for ExtensionBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtensionBindings")
    }
}

impl WorldBindings for ExtensionBindings {
    type Pre = generated::ExtensionPre<PluginState>;
    const WORLD: World = World::Extension;
    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        generated::ExtensionPre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<PluginState>) -> wasmtime::Result<Self> {
        pre.instantiate(store).map(ExtensionBindings)
    }
    fn world_data(manifest: &Manifest) -> Option<WorldData> {
        Some(Box::new(RulesSlot {
            max_rules: manifest.capabilities.max_rules,
            grants: Grants::new(manifest),
            pending: None,
        }))
    }
}

/// What the `rules` import writes in a store: validated replacement rules
/// waiting for the bridge to pick them up after the call.
#[derive(Debug)]
struct RulesSlot {
    max_rules: u32,
    grants: Grants,
    pending: Option<Vec<Rule>>,
}

impl generated::sockhost::plugin::rule_types::Host for PluginState {}

impl generated::sockhost::plugin::rules::Host for PluginState {
    fn replace(&mut self, rules: Vec<Rule>) -> Result<(), String> {
        // Linked for extensions only, whose stores always carry the slot.
        let Some(slot) = self.world_data::<RulesSlot>() else {
            return Err("rules cannot be replaced outside an extension".into());
        };
        validate_rules(&rules, slot.max_rules, &slot.grants).map_err(|e| e.to_string())?;
        slot.pending = Some(rules);
        Ok(())
    }
}

/// Links the extension world's own host interface, `rules`.
#[derive(Debug)]
pub(crate) struct RulesLink;

impl WorldLink for RulesLink {
    fn world(&self) -> World {
        World::Extension
    }

    fn link(&self, interface: &str, linker: &mut Linker<PluginState>) -> wasmtime::Result<bool> {
        if interface != "rules" {
            return Ok(false);
        }
        generated::sockhost::plugin::rules::add_to_linker::<_, HasSelf<PluginState>>(
            linker,
            |s| s,
        )?;
        Ok(true)
    }
}

fn host_matches_suffix(host: &str, suffix: &str) -> bool {
    host == suffix
        || (host.len() > suffix.len()
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
}

fn filter_matches(f: &RequestFilter, host: &str, method: &str, rt: ResourceType) -> bool {
    (f.host_suffixes.is_empty() || f.host_suffixes.iter().any(|s| host_matches_suffix(host, s)))
        && (f.methods.is_empty() || f.methods.iter().any(|m| m == method))
        && (f.resource_types.is_empty() || f.resource_types.contains(&rt))
}

/// What happened when the host offered a request to an extension.
#[derive(Debug, Clone)]
pub struct HookResult<T> {
    /// What to do: the extension's verdict, or the manifest's on-fault
    /// result when it faulted.
    pub verdict: T,
    /// Whether the extension was called (its grants and filter matched).
    pub called: bool,
    /// The fault, or the disabled state, when the call did not answer.
    pub error: Option<CallError>,
}

/// The plugin's registration: its rules and what its hooks want.
#[derive(Debug, Default)]
struct PluginRegistration {
    // Invariant: every rule here passed validate_rules for this manifest.
    rules: Arc<[Rule]>,
    rules_version: u64,
    request_filter: Option<RequestFilter>,
    response_filter: Option<RequestFilter>,
}

#[derive(Debug)]
struct Shared {
    manifest: Arc<Manifest>,
    grants: Grants,
    registration: Mutex<PluginRegistration>,
    // The supervisor every instance shares, so that the host can ask
    // without an instance at hand.
    supervisor: SharedSupervisor,
    /// Whether the component imports any WASI interface: wasmtime-wasi's
    /// blocking calls drive tokio themselves (`block_on`), which a tokio
    /// worker thread may not do, so its calls never run on one.
    imports_wasi: bool,
}

/// What every instance of one extension shares: its manifest, its rules and
/// filters, whether it is disabled. Cheap to clone; asking it never enters
/// WASM, so the host asks it before taking an instance.
#[derive(Debug, Clone)]
pub struct ExtensionShared(Arc<Shared>);

impl ExtensionShared {
    fn registration(&self) -> std::sync::MutexGuard<'_, PluginRegistration> {
        // Plain values replaced whole: a panic elsewhere cannot leave them
        // half-updated.
        self.0
            .registration
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.0.manifest.plugin.name
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }

    /// The manifest, shared.
    pub fn manifest_arc(&self) -> Arc<Manifest> {
        self.0.manifest.clone()
    }

    /// Whether the component imports any WASI interface (whose blocking
    /// calls must not run on a tokio worker thread).
    pub fn imports_wasi(&self) -> bool {
        self.0.imports_wasi
    }

    /// What a faulted call means for the request, per the manifest.
    pub fn on_fault(&self) -> OnFault {
        self.0.manifest.limits.on_fault
    }

    /// The current declarative rules, validated.
    pub fn rules(&self) -> Arc<[Rule]> {
        self.registration().rules.clone()
    }

    /// Incremented whenever the rules are replaced, so a compiled matcher
    /// knows when to recompile.
    pub fn rules_version(&self) -> u64 {
        self.registration().rules_version
    }

    /// The current rules and their version, read together.
    pub fn versioned_rules(&self) -> (Arc<[Rule]>, u64) {
        let r = self.registration();
        (r.rules.clone(), r.rules_version)
    }

    /// Whether the plugin is disabled after repeated faults: until a reload,
    /// or until its backoff is over (the next call after brings it back).
    pub fn is_disabled(&self) -> bool {
        self.0.supervisor.is_disabled()
    }

    /// Whether the plugin is disabled at `now`.
    pub fn is_disabled_at(&self, now: std::time::Instant) -> bool {
        self.0.supervisor.is_disabled_at(now)
    }

    /// Whether a disabled plugin's hooks are skipped: under fail-open only.
    /// Under fail-closed a disabled plugin's requests are still offered to
    /// it, so that they are refused ("failed (disabled)"), not let through.
    fn skipped_while_disabled(&self) -> bool {
        self.on_fault() == OnFault::FailOpen && self.is_disabled()
    }

    /// Whether `on_request` would call into the plugin for a request to
    /// `host`: the manifest grants the host and the registered request
    /// filter matches.
    pub fn wants_request(&self, host: &str, method: &str, resource_type: ResourceType) -> bool {
        self.0.manifest.capabilities.may_see_host(host)
            && !self.skipped_while_disabled()
            && self
                .registration()
                .request_filter
                .as_ref()
                .is_some_and(|f| filter_matches(f, host, method, resource_type))
    }

    /// Whether `on_response` could call into the plugin for any host (a
    /// response filter is registered).
    pub fn may_want_responses(&self) -> bool {
        !self.skipped_while_disabled() && self.registration().response_filter.is_some()
    }

    /// Whether `on_response` would call into the plugin for `host`.
    pub fn wants_response(&self, host: &str) -> bool {
        self.0.manifest.capabilities.may_see_host(host)
            && !self.skipped_while_disabled()
            && self
                .registration()
                .response_filter
                .as_ref()
                .is_some_and(|f| response_filter_matches(f, host))
    }

    fn register(&self, reg: Registration) {
        let mut r = self.registration();
        r.rules = Arc::from(reg.rules);
        r.rules_version += 1;
        r.request_filter = reg.request_filter;
        r.response_filter = reg.response_filter;
    }

    fn replace_rules(&self, rules: Vec<Rule>) {
        let mut r = self.registration();
        r.rules = Arc::from(rules);
        r.rules_version += 1;
    }
}

/// Responses carry no method or resource type of their own: the filter's
/// host suffixes decide.
fn response_filter_matches(f: &RequestFilter, host: &str) -> bool {
    f.host_suffixes.is_empty() || f.host_suffixes.iter().any(|s| host_matches_suffix(host, s))
}

/// One instance of an extension plugin, started. Further instances of the
/// same plugin come from [`ExtensionPlugin::fork`]: each has its own store
/// (its own memory and state, invisible to the others), while the rules,
/// filters and fault budget are the plugin's and shared.
#[derive(Debug)]
pub struct ExtensionPlugin {
    inner: Supervised<ExtensionBindings>,
    shared: ExtensionShared,
    // The instance generation whose `init` has run; a restarted instance
    // must be initialised again before its hooks are called.
    initialized: u64,
    // Whether this instance's first `init` registers the plugin's rules and
    // filters: the first instance's does; a fork's does not (the plugin is
    // registered already), though its `init` after a restart does, as a
    // restart resets the plugin's registration.
    registers_first_init: bool,
}

/// Why an extension could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `init` faulted or returned an invalid registration.
    #[error("extension init failed: {0}")]
    Init(CallError),
}

/// Why a registration from `init` was refused.
#[derive(Debug, thiserror::Error)]
enum RegistrationError {
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("request filter: {0}")]
    RequestFilter(CheckError),
    #[error("response filter: {0}")]
    ResponseFilter(CheckError),
}

impl ExtensionPlugin {
    /// Instantiates the extension and runs its `init`.
    pub fn start(loaded: LoadedPlugin) -> Result<Self, StartError> {
        let manifest = loaded.manifest.clone();
        let imports_wasi = loaded.imports().iter().any(|i| i.name.starts_with("wasi:"));
        let inner = Supervised::new(loaded)?;
        let shared = ExtensionShared(Arc::new(Shared {
            grants: Grants::new(&manifest),
            manifest,
            registration: Mutex::default(),
            supervisor: inner.shared_supervisor().clone(),
            imports_wasi,
        }));
        let mut plugin = Self {
            inner,
            shared,
            initialized: 0,
            registers_first_init: true,
        };
        loop {
            match plugin.ensure_init() {
                Ok(()) => return Ok(plugin),
                // The budget is wall-clock time: a first call on a busy
                // machine may run past it. The fault restarted the instance;
                // it is tried again while its fault budget lasts.
                Err(CallError::Fault(f))
                    if f.kind == FaultKind::Deadline && !plugin.is_disabled() => {}
                Err(e) => return Err(StartError::Init(e)),
            }
        }
    }

    /// Whether its next call runs only the hook: its instance is live and
    /// initialized, so no `init` (nor a restart) comes first.
    pub fn is_warm(&self) -> bool {
        self.initialized != 0 && self.initialized == self.inner.generation()
    }

    /// Another instance of the same plugin: the same code, manifest, rules,
    /// filters and fault budget, with a store of its own, instantiated and
    /// initialised on its first call.
    pub fn fork(&self) -> Self {
        Self {
            inner: self.inner.fork(),
            shared: self.shared.clone(),
            initialized: 0,
            registers_first_init: false,
        }
    }

    /// What every instance of this plugin shares.
    pub fn shared(&self) -> &ExtensionShared {
        &self.shared
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The current declarative rules, validated.
    pub fn rules(&self) -> Arc<[Rule]> {
        self.shared.rules()
    }

    /// Incremented whenever the rules are replaced, so a compiled matcher
    /// knows when to recompile.
    pub fn rules_version(&self) -> u64 {
        self.shared.rules_version()
    }

    /// Whether the plugin was disabled after repeated faults.
    pub fn is_disabled(&self) -> bool {
        self.inner.is_disabled()
    }

    /// See [`ExtensionShared::wants_request`].
    pub fn wants_request(&self, host: &str, method: &str, resource_type: ResourceType) -> bool {
        self.shared.wants_request(host, method, resource_type)
    }

    /// See [`ExtensionShared::may_want_responses`].
    pub fn may_want_responses(&self) -> bool {
        self.shared.may_want_responses()
    }

    /// See [`ExtensionShared::wants_response`].
    pub fn wants_response(&self, host: &str) -> bool {
        self.shared.wants_response(host)
    }

    /// What a faulted call means for the request, per the manifest.
    pub fn on_fault(&self) -> OnFault {
        self.inner.on_fault()
    }

    /// The supervised instance (for status and tests).
    pub fn supervised(&self) -> &Supervised<ExtensionBindings> {
        &self.inner
    }

    fn ensure_init(&mut self) -> Result<(), CallError> {
        self.inner.ensure_live("init")?;
        if self.initialized == self.inner.generation() {
            return Ok(());
        }
        let reg = self
            .inner
            .call("init", |b, s| b.0.sockhost_plugin_add_on().call_init(s))?;
        let max = self.shared.manifest().capabilities.max_rules;
        let checked = check_registration(&reg, max, &self.shared.0.grants);
        if let Err(why) = checked {
            return Err(self.inner.invalid_result("init", why.to_string()));
        }
        if self.initialized != 0 || self.registers_first_init {
            self.shared.register(reg);
        }
        self.initialized = self.inner.generation();
        Ok(())
    }

    fn take_replaced_rules(&mut self) {
        let pending = self
            .inner
            .with_state(|s| s.world_data::<RulesSlot>().and_then(|r| r.pending.take()));
        if let Some(Some(rules)) = pending {
            self.shared.replace_rules(rules);
        }
    }

    fn visible_headers(&self, headers: &[Header]) -> Vec<Header> {
        headers
            .iter()
            .filter(|h| self.shared.0.grants.may_see(&h.name))
            .cloned()
            .collect()
    }

    fn fault_verdict(&self, error: &CallError) -> RequestVerdict {
        match self.inner.on_fault() {
            OnFault::FailOpen => RequestVerdict::Proceed(Vec::new()),
            OnFault::FailClosed => {
                let why = match error {
                    CallError::Fault(f) => f.kind.as_str(),
                    CallError::Disabled { .. } => "disabled",
                };
                // FetchError::Blocked names the extension.
                RequestVerdict::Cancel(format!("it failed ({why}) and fails closed"))
            }
        }
    }

    /// Offers a request to the extension's `on-request` hook: only when the
    /// manifest grants the request's host and the extension's filter
    /// matches. Returns the validated verdict, or the on-fault result.
    pub fn on_request(&mut self, request: &Request) -> HookResult<RequestVerdict> {
        self.offer_request(request)
    }

    fn offer_request(&mut self, request: &Request) -> HookResult<RequestVerdict> {
        let not_called = HookResult {
            verdict: RequestVerdict::Proceed(Vec::new()),
            called: false,
            error: None,
        };
        let Some(host) = url::Url::parse(&request.url).ok().and_then(|u| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        }) else {
            return not_called;
        };
        if !self.shared.manifest().capabilities.may_see_host(&host) {
            return not_called;
        }
        if let Err(error) = self.ensure_init() {
            return HookResult {
                verdict: self.fault_verdict(&error),
                called: false,
                error: Some(error),
            };
        }
        let matches = self
            .shared
            .registration()
            .request_filter
            .as_ref()
            .is_some_and(|f| filter_matches(f, &host, &request.method, request.resource_type));
        if !matches {
            return not_called;
        }
        let shown = Request {
            headers: self.visible_headers(&request.headers),
            ..request.clone()
        };
        let result = self.inner.call("on-request", |b, s| {
            b.0.sockhost_plugin_add_on().call_on_request(s, &shown)
        });
        self.take_replaced_rules();
        let verdict = match result {
            Ok(v) => v,
            Err(error) => {
                return HookResult {
                    verdict: self.fault_verdict(&error),
                    called: true,
                    error: Some(error),
                }
            }
        };
        let checked = match verdict {
            RequestVerdict::Proceed(changes) => {
                check_header_changes(&changes, &self.shared.0.grants)
                    .map(|()| RequestVerdict::Proceed(changes))
            }
            RequestVerdict::Redirect(target) => {
                check_redirect_granted(&target, Some(&request.url), &self.shared.0.grants)
                    .map(|_| RequestVerdict::Redirect(target))
            }
            RequestVerdict::Cancel(mut reason) => {
                if reason.len() > MAX_REASON_LEN {
                    let mut end = MAX_REASON_LEN;
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    reason.truncate(end);
                }
                Ok(RequestVerdict::Cancel(reason))
            }
        };
        match checked {
            Ok(verdict) => HookResult {
                verdict,
                called: true,
                error: None,
            },
            Err(why) => {
                let error = self.inner.invalid_result("on-request", why.to_string());
                HookResult {
                    verdict: self.fault_verdict(&error),
                    called: true,
                    error: Some(error),
                }
            }
        }
    }

    /// Offers a response head to the `on-response` hook, under the same
    /// grants; returns the validated header changes. On a fault the
    /// response goes on unchanged under fail-open; under fail-closed the
    /// caller must fail the response (`error` is set).
    pub fn on_response(
        &mut self,
        host: &str,
        response: &Response,
    ) -> HookResult<Vec<HeaderChange>> {
        self.offer_response(host, response)
    }

    fn offer_response(&mut self, host: &str, response: &Response) -> HookResult<Vec<HeaderChange>> {
        let not_called = HookResult {
            verdict: Vec::new(),
            called: false,
            error: None,
        };
        if !self.shared.manifest().capabilities.may_see_host(host) {
            return not_called;
        }
        if let Err(error) = self.ensure_init() {
            return HookResult {
                verdict: Vec::new(),
                called: false,
                error: Some(error),
            };
        }
        let matches = self
            .shared
            .registration()
            .response_filter
            .as_ref()
            .is_some_and(|f| response_filter_matches(f, host));
        if !matches {
            return not_called;
        }
        let shown = Response {
            headers: self.visible_headers(&response.headers),
            ..response.clone()
        };
        let result = self.inner.call("on-response", |b, s| {
            b.0.sockhost_plugin_add_on().call_on_response(s, &shown)
        });
        self.take_replaced_rules();
        let grants = &self.shared.0.grants;
        match result.map(|changes| (check_header_changes(&changes, grants), changes)) {
            Ok((Ok(()), changes)) => HookResult {
                verdict: changes,
                called: true,
                error: None,
            },
            Ok((Err(why), _)) => HookResult {
                verdict: Vec::new(),
                called: true,
                error: Some(self.inner.invalid_result("on-response", why.to_string())),
            },
            Err(error) => HookResult {
                verdict: Vec::new(),
                called: true,
                error: Some(error),
            },
        }
    }
}

/// What `init` returned: rules within the manifest's limits, well-formed
/// filters.
fn check_registration(
    reg: &Registration,
    max_rules: u32,
    grants: &Grants,
) -> Result<(), RegistrationError> {
    validate_rules(&reg.rules, max_rules, grants)?;
    if let Some(f) = &reg.request_filter {
        check_filter(f).map_err(RegistrationError::RequestFilter)?;
    }
    if let Some(f) = &reg.response_filter {
        check_filter(f).map_err(RegistrationError::ResponseFilter)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_suffixes_match_on_label_boundaries() {
        for (host, suffix, ok) in [
            ("example.com", "example.com", true),
            ("a.example.com", "example.com", true),
            ("badexample.com", "example.com", false),
            ("example.com.evil", "example.com", false),
        ] {
            assert_eq!(host_matches_suffix(host, suffix), ok, "{host} vs {suffix}");
        }
    }
}
