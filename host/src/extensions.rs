//! Extensions on the live request path. For each extension in order, its
//! compiled declarative rules decide first (natively, no WASM); then its
//! `on-request` hook runs if its filter and grants match. All of this
//! happens before any network work for the request. Hooks run on the
//! blocking pool so that a slow plugin (bounded by its call budget) never
//! stalls the runtime's other requests.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::plugins::extension::{
    ExtensionPlugin, Header, HeaderChange, Request, RequestVerdict, ResourceType, Response,
};
use crate::rules::ruleset::{rule_request, RuleSet, Verdict};
use sockhost_policy::OnFault;

/// Something a plugin did to a request, for `--json` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginAction {
    /// The plugin.
    pub plugin: String,
    /// `rule-block`, `rule-redirect`, `rule-allow`, `rule-headers`,
    /// `hook-cancel`, `hook-redirect`, `hook-headers`, `response-headers`,
    /// `fault`.
    pub action: &'static str,
    /// Details: the rule id, the reason, the target, the fault.
    pub detail: String,
}

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

#[derive(Debug)]
struct Live {
    plugin: ExtensionPlugin,
    ruleset: RuleSet,
    /// The plugin's rules version the ruleset was compiled from.
    version: u64,
    /// Whether any rule modifies response headers.
    has_response_rules: bool,
}

impl Live {
    fn refresh(&mut self) {
        if self.plugin.rules_version() != self.version
            || self.ruleset.len() != self.plugin.rules().len()
        {
            self.ruleset = RuleSet::new(&self.plugin.rules());
            self.version = self.plugin.rules_version();
        }
    }
}

/// The extensions of a host, in order.
#[derive(Debug, Clone, Default)]
pub struct Extensions {
    list: Vec<Arc<Mutex<Live>>>,
}

impl Extensions {
    /// Adds a started extension.
    pub fn push(&mut self, plugin: ExtensionPlugin) {
        let rules = plugin.rules();
        let ruleset = RuleSet::new(&rules);
        let version = plugin.rules_version();
        self.list.push(Arc::new(Mutex::new(Live {
            plugin,
            ruleset,
            version,
            has_response_rules: has_response_rules(&rules),
        })));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Runs rules and hooks for a request; `headers` are changed in place.
    /// Rules run inline (native, microseconds); a hook runs only when the
    /// extension's filter and grants match, on a thread allowed to block.
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
        let host = rule_request(&lower, method, resource_type)
            .map(|r| r.host.to_owned())
            .unwrap_or_default();
        for ext in &self.list {
            let wants_hook = {
                let mut live = ext.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(d) =
                    apply_rules(&mut live, &lower, method, resource_type, headers, actions)
                {
                    return d;
                }
                live.plugin.wants_request(&host, method, resource_type)
            };
            if !wants_hook {
                continue;
            }
            let ext = ext.clone();
            let (url_owned, method_owned) = (url.to_owned(), method.to_owned());
            let mut hdrs = std::mem::take(headers);
            let (decision, hdrs, acts) = run_blocking(move || {
                let mut live = ext.lock().unwrap_or_else(|p| p.into_inner());
                let mut acts = Vec::new();
                let d = call_hook(
                    &mut live,
                    id,
                    &url_owned,
                    &method_owned,
                    resource_type,
                    &mut hdrs,
                    &mut acts,
                );
                (d, hdrs, acts)
            })
            .await;
            *headers = hdrs;
            actions.extend(acts);
            if decision != RequestDecision::Continue {
                return decision;
            }
        }
        RequestDecision::Continue
    }

    /// Runs response rules and hooks; `headers` are changed in place. An
    /// error names a fail-closed extension that faulted.
    pub async fn after_response(
        &self,
        req: RequestRef<'_>,
        status: u16,
        headers: &mut HeaderMap,
        actions: &mut Vec<PluginAction>,
    ) -> Result<(), (String, String)> {
        let mut host: Option<String> = None;
        for ext in &self.list {
            {
                let mut live = ext.lock().unwrap_or_else(|p| p.into_inner());
                live.refresh();
                if !live.has_response_rules {
                    if !live.plugin.may_want_responses() {
                        continue;
                    }
                    let host = host.get_or_insert_with(|| {
                        let lower = req.url.to_ascii_lowercase();
                        rule_request(&lower, req.method, req.resource_type)
                            .map(|r| r.host.to_owned())
                            .unwrap_or_default()
                    });
                    if !live.plugin.wants_response(host) {
                        continue;
                    }
                }
            }
            let ext = ext.clone();
            let (id, resource_type) = (req.id, req.resource_type);
            let url_owned = req.url.to_owned();
            let method_owned = req.method.to_owned();
            let mut hdrs = std::mem::take(headers);
            let result = run_blocking(move || {
                let mut live = ext.lock().unwrap_or_else(|p| p.into_inner());
                let mut acts = Vec::new();
                let req = RequestRef {
                    id,
                    url: &url_owned,
                    method: &method_owned,
                    resource_type,
                };
                let r = respond(&mut live, req, status, &mut hdrs, &mut acts);
                (r, hdrs, acts)
            })
            .await;
            let (r, hdrs, acts) = result;
            *headers = hdrs;
            actions.extend(acts);
            r?;
        }
        Ok(())
    }
}

fn has_response_rules(rules: &[crate::plugins::extension::Rule]) -> bool {
    rules.iter().any(|r| {
        matches!(
            r.action,
            crate::plugins::extension::RuleAction::ModifyResponseHeaders(_)
        )
    })
}

/// Runs `f`, which may block on a plugin call bounded by its budget,
/// without stalling the runtime: in place on a multi-threaded runtime
/// (cheapest), on the blocking pool otherwise.
async fn run_blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(f)
    } else {
        tokio::task::spawn_blocking(f)
            .await
            .expect("extension calls do not panic: faults are contained")
    }
}

/// The extension's declarative rules for a request (native). `Some` when
/// they decide it.
fn apply_rules(
    live: &mut Live,
    lower_url: &str,
    method: &str,
    resource_type: ResourceType,
    headers: &mut Vec<(String, String)>,
    actions: &mut Vec<PluginAction>,
) -> Option<RequestDecision> {
    live.refresh();
    if live.ruleset.is_empty() {
        return None;
    }
    let name = live.plugin.name().to_owned();
    let act = |action: &'static str, detail: String| PluginAction {
        plugin: name.clone(),
        action,
        detail,
    };
    let req = rule_request(lower_url, method, resource_type)?;
    let d = live.ruleset.evaluate(&req);
    match d.verdict {
        Some((rule, Verdict::Block)) => {
            actions.push(act("rule-block", format!("rule {rule}")));
            return Some(RequestDecision::Cancel {
                extension: name.clone(),
                reason: format!("blocked by rule {rule}"),
            });
        }
        Some((rule, Verdict::Redirect(target))) => {
            actions.push(act("rule-redirect", format!("rule {rule} to {target}")));
            return Some(RequestDecision::Redirect {
                extension: name.clone(),
                url: target,
            });
        }
        Some((rule, Verdict::Allow)) => actions.push(act("rule-allow", format!("rule {rule}"))),
        None => {}
    }
    for (rule, change) in &d.request_headers {
        apply_change(headers, change);
        actions.push(act(
            "rule-headers",
            format!("rule {rule}: {}", describe(change)),
        ));
    }
    None
}

/// The extension's on-request hook.
fn call_hook(
    live: &mut Live,
    id: u64,
    url: &str,
    method: &str,
    resource_type: ResourceType,
    headers: &mut Vec<(String, String)>,
    actions: &mut Vec<PluginAction>,
) -> RequestDecision {
    let name = live.plugin.name().to_owned();
    let act = |action: &'static str, detail: String| PluginAction {
        plugin: name.clone(),
        action,
        detail,
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
    let r = live.plugin.on_request(&request);
    if let Some(e) = &r.error {
        actions.push(act("fault", e.to_string()));
    }
    match r.verdict {
        RequestVerdict::Proceed(changes) => {
            for c in &changes {
                apply_change(headers, c);
                actions.push(act("hook-headers", describe(c)));
            }
            RequestDecision::Continue
        }
        RequestVerdict::Cancel(reason) => {
            actions.push(act("hook-cancel", reason.clone()));
            RequestDecision::Cancel {
                extension: name,
                reason,
            }
        }
        RequestVerdict::Redirect(target) => {
            actions.push(act("hook-redirect", target.clone()));
            RequestDecision::Redirect {
                extension: name,
                url: target,
            }
        }
    }
}

fn respond(
    live: &mut Live,
    req_ref: RequestRef<'_>,
    status: u16,
    headers: &mut HeaderMap,
    actions: &mut Vec<PluginAction>,
) -> Result<(), (String, String)> {
    live.refresh();
    let name = live.plugin.name().to_owned();
    let RequestRef {
        id,
        url,
        method,
        resource_type,
    } = req_ref;
    let lower = url.to_ascii_lowercase();
    let Some(req) = rule_request(&lower, method, resource_type) else {
        return Ok(());
    };
    let host = req.host.to_owned();
    let d = live.ruleset.evaluate(&req);
    for (rule, change) in &d.response_headers {
        apply_to_map(headers, change);
        actions.push(PluginAction {
            plugin: name.clone(),
            action: "response-headers",
            detail: format!("rule {rule}: {}", describe(change)),
        });
    }
    let response = Response {
        request_id: id,
        url: url.to_owned(),
        status,
        headers: headers
            .iter()
            .map(|(n, v)| Header {
                name: n.as_str().to_owned(),
                value: v.as_bytes().to_vec(),
            })
            .collect(),
    };
    let r = live.plugin.on_response(&host, &response);
    if let Some(e) = &r.error {
        actions.push(PluginAction {
            plugin: name.clone(),
            action: "fault",
            detail: e.to_string(),
        });
        if live.plugin.on_fault() == OnFault::FailClosed {
            return Err((
                name,
                format!("its on-response hook failed ({e}) and it fails closed"),
            ));
        }
    }
    for c in &r.verdict {
        apply_to_map(headers, c);
        actions.push(PluginAction {
            plugin: name.clone(),
            action: "response-headers",
            detail: describe(c),
        });
    }
    Ok(())
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
