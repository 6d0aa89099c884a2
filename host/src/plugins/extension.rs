//! The `extension` world: declarative rules handed over at load (and
//! replaceable later through the `rules` import), plus blocking hooks on
//! requests and responses for what rules cannot say.
//!
//! The host verifies everything an extension asks for before acting on it:
//! rules and verdicts are validated here; requests to hosts the manifest
//! does not grant never reach the extension; sensitive headers are hidden
//! unless the manifest names them.

use std::collections::HashSet;
use std::sync::Arc;

use sockhost_policy::{Manifest, OnFault, World, SENSITIVE_HEADERS};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

use super::instance::{CallError, Supervised, WorldBindings};
use super::load::{LoadError, LoadedPlugin};
use super::state::PluginState;

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

/// Longest URL (in a redirect or a rule) the host accepts, in bytes.
pub const MAX_URL_LEN: usize = 8192;
/// Longest URL pattern in a rule, in bytes.
pub const MAX_PATTERN_LEN: usize = 2048;
/// Most header changes one verdict or rule may carry.
pub const MAX_HEADER_CHANGES: usize = 64;
/// Longest header value an extension may set, in bytes.
pub const MAX_HEADER_VALUE: usize = 8192;
/// Longest cancel reason passed on to the client, in bytes; longer ones are
/// cut rather than refused.
pub const MAX_REASON_LEN: usize = 1024;
/// Most entries in any list of a rule condition or filter.
pub const MAX_CONDITION_ENTRIES: usize = 1024;

/// Headers that frame the message or route it. An extension changing them
/// could desynchronise the connection, so no grant allows it.
pub const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

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
}

/// What the `rules` import writes: validated replacement rules waiting for
/// the bridge to pick them up after the call.
#[derive(Debug)]
pub struct RulesSlot {
    max_rules: u32,
    grants: HeaderGrants,
    pending: Option<Vec<Rule>>,
}

impl RulesSlot {
    pub(crate) fn new(manifest: &Manifest) -> Self {
        Self {
            max_rules: manifest.capabilities.max_rules,
            grants: HeaderGrants::new(manifest),
            pending: None,
        }
    }
}

impl generated::sockhost::plugin::rule_types::Host for PluginState {}

impl generated::sockhost::plugin::rules::Host for PluginState {
    fn replace(&mut self, rules: Vec<Rule>) -> Result<(), String> {
        validate_rules(&rules, self.rules.max_rules, &self.rules.grants)?;
        self.rules.pending = Some(rules);
        Ok(())
    }
}

pub(crate) fn add_rules_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    generated::sockhost::plugin::rules::add_to_linker::<_, HasSelf<PluginState>>(linker, |s| s)
}

/// Which headers an extension may see and change.
#[derive(Debug, Clone)]
struct HeaderGrants {
    named: HashSet<String>,
}

impl HeaderGrants {
    fn new(manifest: &Manifest) -> Self {
        Self {
            named: manifest.capabilities.headers.iter().cloned().collect(),
        }
    }

    /// Sensitive headers (`cookie`, `authorization`, ...) only when named;
    /// every other header always.
    fn may_see(&self, name: &str) -> bool {
        let sensitive = SENSITIVE_HEADERS.contains(&name);
        !sensitive || self.named.contains(name)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header_name(name: &str, grants: &HeaderGrants) -> Result<(), String> {
    if !is_token(name) || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("header name {name:?} is not a lowercase token"));
    }
    if FRAMING_HEADERS.contains(&name) {
        return Err(format!(
            "header {name} frames the message and cannot be changed"
        ));
    }
    if !grants.may_see(name) {
        return Err(format!(
            "header {name} is sensitive and not named in the manifest's capabilities.headers"
        ));
    }
    Ok(())
}

fn check_header_changes(changes: &[HeaderChange], grants: &HeaderGrants) -> Result<(), String> {
    if changes.len() > MAX_HEADER_CHANGES {
        return Err(format!(
            "{} header changes, more than the {MAX_HEADER_CHANGES} allowed",
            changes.len()
        ));
    }
    for change in changes {
        match change {
            HeaderChange::Set(h) => {
                check_header_name(&h.name, grants)?;
                if h.value.len() > MAX_HEADER_VALUE {
                    return Err(format!("value of header {} is too long", h.name));
                }
                if h.value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(format!("value of header {} contains CR, LF or NUL", h.name));
                }
            }
            HeaderChange::Remove(name) => check_header_name(name, grants)?,
        }
    }
    Ok(())
}

/// A redirect target must be an absolute http(s) URL with a host.
pub fn check_redirect(target: &str) -> Result<url::Url, String> {
    if target.len() > MAX_URL_LEN {
        return Err(format!("redirect target longer than {MAX_URL_LEN} bytes"));
    }
    let url = url::Url::parse(target)
        .map_err(|e| format!("redirect target {target:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("redirect target {target:?} is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("redirect target {target:?} has no host"));
    }
    Ok(url)
}

fn check_host_suffix(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!("host suffix {s:?} is not a lowercase host name"))
    }
}

fn check_methods(methods: &[String]) -> Result<(), String> {
    for m in methods {
        if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(format!("method {m:?} is not an uppercase token"));
        }
    }
    Ok(())
}

fn check_list_len<T>(what: &str, list: &[T]) -> Result<(), String> {
    if list.len() > MAX_CONDITION_ENTRIES {
        return Err(format!(
            "{what} has {} entries, more than {MAX_CONDITION_ENTRIES}",
            list.len()
        ));
    }
    Ok(())
}

fn check_filter(f: &RequestFilter) -> Result<(), String> {
    check_list_len("host-suffixes", &f.host_suffixes)?;
    check_list_len("methods", &f.methods)?;
    f.host_suffixes
        .iter()
        .try_for_each(|s| check_host_suffix(s))?;
    check_methods(&f.methods)
}

fn validate_rules(rules: &[Rule], max_rules: u32, grants: &HeaderGrants) -> Result<(), String> {
    if rules.len() > max_rules as usize {
        return Err(format!(
            "{} rules, more than the manifest's max-rules of {max_rules}",
            rules.len()
        ));
    }
    let mut ids = HashSet::with_capacity(rules.len());
    for rule in rules {
        let fail = |why: String| format!("rule {}: {why}", rule.id);
        if !ids.insert(rule.id) {
            return Err(fail("duplicate id".into()));
        }
        let c = &rule.condition;
        check_list_len("host-suffixes", &c.host_suffixes).map_err(fail)?;
        check_list_len("excluded-host-suffixes", &c.excluded_host_suffixes).map_err(fail)?;
        check_list_len("methods", &c.methods).map_err(fail)?;
        c.host_suffixes
            .iter()
            .chain(&c.excluded_host_suffixes)
            .try_for_each(|s| check_host_suffix(s))
            .map_err(fail)?;
        check_methods(&c.methods).map_err(fail)?;
        if let Some(p) = &c.url_pattern {
            if p.is_empty() || p.len() > MAX_PATTERN_LEN {
                return Err(fail(format!(
                    "url-pattern must be 1 to {MAX_PATTERN_LEN} bytes"
                )));
            }
        }
        match &rule.action {
            RuleAction::Block | RuleAction::Allow => {}
            RuleAction::Redirect(target) => {
                check_redirect(target).map_err(fail)?;
            }
            RuleAction::ModifyRequestHeaders(changes)
            | RuleAction::ModifyResponseHeaders(changes) => {
                check_header_changes(changes, grants).map_err(fail)?;
            }
        }
    }
    Ok(())
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

/// An extension plugin, started.
#[derive(Debug)]
pub struct ExtensionPlugin {
    inner: Supervised<ExtensionBindings>,
    grants: HeaderGrants,
    // Invariant: every rule here passed validate_rules for this manifest.
    rules: Arc<[Rule]>,
    request_filter: Option<RequestFilter>,
    response_filter: Option<RequestFilter>,
    // The instance generation whose `init` has run; a restarted instance
    // must be initialised again before its hooks are called.
    initialized: u64,
    rules_version: u64,
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

impl ExtensionPlugin {
    /// Instantiates the extension and runs its `init`.
    pub fn start(loaded: LoadedPlugin) -> Result<Self, StartError> {
        let grants = HeaderGrants::new(loaded.manifest());
        let mut plugin = Self {
            inner: Supervised::new(loaded)?,
            grants,
            rules: Arc::from(Vec::new()),
            request_filter: None,
            response_filter: None,
            initialized: 0,
            rules_version: 0,
        };
        plugin.ensure_init().map_err(StartError::Init)?;
        Ok(plugin)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The current declarative rules, validated.
    pub fn rules(&self) -> Arc<[Rule]> {
        self.rules.clone()
    }

    /// Incremented whenever the rules are replaced, so a compiled matcher
    /// knows when to recompile.
    pub fn rules_version(&self) -> u64 {
        self.rules_version
    }

    /// Whether the plugin was disabled after repeated faults.
    pub fn is_disabled(&self) -> bool {
        self.inner.is_disabled()
    }

    /// Whether `on_request` would call into the plugin for a request to
    /// `host`: cheap, no WASM. True when the plugin must be (re)initialised
    /// first, since its filter is not known until then.
    pub fn wants_request(&self, host: &str, method: &str, resource_type: ResourceType) -> bool {
        if !self.inner.manifest().capabilities.may_see_host(host) {
            return false;
        }
        if self.initialized != self.inner.generation() || self.inner.is_disabled() {
            return !self.inner.is_disabled();
        }
        self.request_filter
            .as_ref()
            .is_some_and(|f| filter_matches(f, host, method, resource_type))
    }

    /// Whether `on_response` could call into the plugin for any host
    /// (a response filter is registered, or `init` must run first).
    pub fn may_want_responses(&self) -> bool {
        !self.inner.is_disabled()
            && (self.initialized != self.inner.generation() || self.response_filter.is_some())
    }

    /// Whether `on_response` would call into the plugin for `host`.
    pub fn wants_response(&self, host: &str) -> bool {
        self.inner.manifest().capabilities.may_see_host(host)
            && !self.inner.is_disabled()
            && (self.initialized != self.inner.generation() || self.response_filter.is_some())
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
        let max = self.inner.manifest().capabilities.max_rules;
        let checked = validate_rules(&reg.rules, max, &self.grants)
            .and_then(|()| reg.request_filter.as_ref().map_or(Ok(()), check_filter))
            .and_then(|()| reg.response_filter.as_ref().map_or(Ok(()), check_filter));
        if let Err(why) = checked {
            return Err(self.inner.invalid_result("init", why));
        }
        self.set_rules(reg.rules);
        self.request_filter = reg.request_filter;
        self.response_filter = reg.response_filter;
        self.initialized = self.inner.generation();
        Ok(())
    }

    fn set_rules(&mut self, rules: Vec<Rule>) {
        self.rules = Arc::from(rules);
        self.rules_version += 1;
    }

    fn take_replaced_rules(&mut self) {
        if let Some(Some(rules)) = self.inner.with_state(|s| s.rules.pending.take()) {
            self.set_rules(rules);
        }
    }

    fn visible_headers(&self, headers: &[Header]) -> Vec<Header> {
        headers
            .iter()
            .filter(|h| self.grants.may_see(&h.name))
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
                RequestVerdict::Cancel(format!(
                    "blocked: extension {} failed ({why}) and fails closed",
                    self.name()
                ))
            }
        }
    }

    /// Offers a request to the extension's `on-request` hook: only when the
    /// manifest grants the request's host and the extension's filter
    /// matches. Returns the validated verdict, or the on-fault result.
    pub fn on_request(&mut self, request: &Request) -> HookResult<RequestVerdict> {
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
        if !self.inner.manifest().capabilities.may_see_host(&host) {
            return not_called;
        }
        if let Err(error) = self.ensure_init() {
            return HookResult {
                verdict: self.fault_verdict(&error),
                called: false,
                error: Some(error),
            };
        }
        let Some(filter) = &self.request_filter else {
            return not_called;
        };
        if !filter_matches(filter, &host, &request.method, request.resource_type) {
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
            RequestVerdict::Proceed(changes) => check_header_changes(&changes, &self.grants)
                .map(|()| RequestVerdict::Proceed(changes)),
            RequestVerdict::Redirect(target) => {
                check_redirect(&target).map(|_| RequestVerdict::Redirect(target))
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
                let error = self.inner.invalid_result("on-request", why);
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
        let not_called = HookResult {
            verdict: Vec::new(),
            called: false,
            error: None,
        };
        if !self.inner.manifest().capabilities.may_see_host(host) {
            return not_called;
        }
        if let Err(error) = self.ensure_init() {
            return HookResult {
                verdict: Vec::new(),
                called: false,
                error: Some(error),
            };
        }
        let Some(filter) = &self.response_filter else {
            return not_called;
        };
        // Responses carry no method or resource type of their own: the
        // filter's host suffixes decide.
        if !(filter.host_suffixes.is_empty()
            || filter
                .host_suffixes
                .iter()
                .any(|s| host_matches_suffix(host, s)))
        {
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
        match result.map(|changes| (check_header_changes(&changes, &self.grants), changes)) {
            Ok((Ok(()), changes)) => HookResult {
                verdict: changes,
                called: true,
                error: None,
            },
            Ok((Err(why), _)) => HookResult {
                verdict: Vec::new(),
                called: true,
                error: Some(self.inner.invalid_result("on-response", why)),
            },
            Err(error) => HookResult {
                verdict: Vec::new(),
                called: true,
                error: Some(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(named: &[&str]) -> HeaderGrants {
        HeaderGrants {
            named: named.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rule(id: u32, action: RuleAction) -> Rule {
        Rule {
            id,
            priority: 1,
            condition: RuleCondition {
                host_suffixes: vec!["example.com".into()],
                excluded_host_suffixes: vec![],
                url_pattern: None,
                methods: vec![],
                resource_types: vec![],
            },
            action,
        }
    }

    #[test]
    fn redirect_targets_must_be_absolute_http_urls() {
        for (target, ok) in [
            ("https://example.com/x", true),
            ("http://127.0.0.1:8080/", true),
            ("not a url ::", false),
            ("/relative", false),
            ("javascript:alert(1)", false),
            ("file:///etc/passwd", false),
            ("https://", false),
        ] {
            assert_eq!(check_redirect(target).is_ok(), ok, "{target}");
        }
    }

    #[test]
    fn header_changes_are_checked_against_grants_and_framing() {
        let set = |n: &str, v: &[u8]| {
            HeaderChange::Set(Header {
                name: n.into(),
                value: v.to_vec(),
            })
        };
        let cases: Vec<(HeaderChange, &[&str], bool)> = vec![
            (set("x-sockhost", b"1"), &[], true),
            (set("X-Upper", b"1"), &[], false),
            (set("cookie", b"a=b"), &[], false),
            (set("cookie", b"a=b"), &["cookie"], true),
            (set("x-a", b"line\r\nbreak"), &[], false),
            (set("content-length", b"0"), &["content-length"], false),
            (HeaderChange::Remove("authorization".into()), &[], false),
            (HeaderChange::Remove("user-agent".into()), &[], true),
            (set("x-big", &[b'a'; MAX_HEADER_VALUE + 1]), &[], false),
        ];
        for (change, named, ok) in cases {
            let r = check_header_changes(std::slice::from_ref(&change), &grants(named));
            assert_eq!(r.is_ok(), ok, "{change:?} with {named:?}: {r:?}");
        }
    }

    #[test]
    fn rules_are_validated() {
        let g = grants(&[]);
        assert!(validate_rules(&[rule(1, RuleAction::Block)], 10, &g).is_ok());
        let cases: Vec<(Vec<Rule>, u32, &str)> = vec![
            (
                vec![rule(1, RuleAction::Block), rule(1, RuleAction::Allow)],
                10,
                "duplicate id",
            ),
            (
                vec![rule(1, RuleAction::Block), rule(2, RuleAction::Block)],
                1,
                "max-rules",
            ),
            (
                vec![rule(1, RuleAction::Redirect("nope".into()))],
                10,
                "not a URL",
            ),
            (
                vec![Rule {
                    condition: RuleCondition {
                        host_suffixes: vec![".bad".into()],
                        ..rule(1, RuleAction::Block).condition
                    },
                    ..rule(1, RuleAction::Block)
                }],
                10,
                "host suffix",
            ),
            (
                vec![Rule {
                    condition: RuleCondition {
                        methods: vec!["get".into()],
                        ..rule(1, RuleAction::Block).condition
                    },
                    ..rule(1, RuleAction::Block)
                }],
                10,
                "method",
            ),
        ];
        for (rules, max, want) in cases {
            let err = validate_rules(&rules, max, &g).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

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
