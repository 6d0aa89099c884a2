//! Extensions (`extension` world): add-ons acting on requests.
//!
//! Two tiers. **Rules** ([`Registration::rules`], [`replace_rules`]) are
//! handed to the host, which compiles and evaluates them natively: most
//! requests never enter WASM. **Hooks** ([`Extension::on_request`],
//! [`Extension::on_response`]) handle what rules cannot say, and are called
//! only for requests matching the filters the extension registers *and*
//! the hosts its manifest grants.
//!
//! The host may run several instances of an extension at once (the
//! manifest's `limits.instances`; by default one per worker thread of the
//! host's runtime), as Envoy runs one VM per worker: each instance has its
//! own `Self` and its own memory, so state kept in one instance is not seen
//! by another. Rules are shared: they belong to the plugin, and
//! [`replace_rules`] from any instance replaces them for every instance.

use crate::__bindings::extension::exports::sockhost::plugin::add_on as wit;
use crate::__bindings::extension::sockhost::plugin::rules as host_rules;

pub use crate::__bindings::extension::sockhost::plugin::rule_types::{
    HeaderChange, ResourceType, Rule, RuleAction, RuleCondition,
};
pub use wit::{Registration, Request, RequestFilter, RequestVerdict, Response};

/// An extension.
pub trait Extension: 'static {
    /// The extension's initial state.
    fn new() -> Self
    where
        Self: Sized;

    /// Called once per instance before any hook: the rules to install and
    /// which requests and responses the hooks want. By default no rules and
    /// no hooks. The plugin's registration is the first instance's (and
    /// that of an instance restarted after a fault); a further instance's
    /// `init` only prepares that instance, so every instance should return
    /// the same registration.
    fn init(&mut self) -> Registration {
        Registration {
            rules: Vec::new(),
            request_filter: None,
            response_filter: None,
        }
    }

    /// A request matching the request filter, before any network work.
    fn on_request(&mut self, request: Request) -> RequestVerdict {
        let _ = request;
        RequestVerdict::Proceed(Vec::new())
    }

    /// A response matching the response filter: header changes to apply.
    fn on_response(&mut self, response: Response) -> Vec<HeaderChange> {
        let _ = response;
        Vec::new()
    }
}

/// Replaces every rule this extension installed; the host validates them
/// against the manifest (at most `max-rules`, granted headers only).
pub fn replace_rules(rules: &[Rule]) -> Result<(), String> {
    host_rules::replace(rules)
}

impl RuleCondition {
    /// A condition matching every request.
    pub fn any() -> Self {
        RuleCondition {
            host_suffixes: Vec::new(),
            excluded_host_suffixes: Vec::new(),
            url_pattern: None,
            methods: Vec::new(),
            resource_types: Vec::new(),
        }
    }
}

impl Registration {
    /// No rules; the request hook sees every request the manifest lets the
    /// extension see; no response hook.
    pub fn every_request() -> Self {
        Registration {
            rules: Vec::new(),
            request_filter: Some(RequestFilter::any()),
            response_filter: None,
        }
    }
}

impl RequestFilter {
    /// A filter matching every request the manifest lets the extension see.
    pub fn any() -> Self {
        RequestFilter {
            host_suffixes: Vec::new(),
            methods: Vec::new(),
            resource_types: Vec::new(),
        }
    }
}

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Adapter<T>(std::marker::PhantomData<T>);

impl<T: Extension> wit::Guest for Adapter<T> {
    fn init() -> Registration {
        crate::instance::with(T::new, |e: &mut T| e.init())
    }

    fn on_request(request: Request) -> RequestVerdict {
        crate::instance::with(T::new, |e: &mut T| e.on_request(request))
    }

    fn on_response(response: Response) -> Vec<HeaderChange> {
        crate::instance::with(T::new, |e: &mut T| e.on_response(response))
    }
}
