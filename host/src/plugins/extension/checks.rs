//! What the host checks in everything an extension hands over (rules,
//! filters, verdicts) before acting on it, and the typed reasons for
//! refusing it.

use std::collections::HashSet;

use sockhost_policy::{Manifest, SENSITIVE_HEADERS};

use super::{HeaderChange, RequestFilter, Rule, RuleAction};

/// Longest URL (in a redirect or a rule) the host accepts, in bytes.
pub const MAX_URL_LEN: usize = 8192;
/// Longest URL pattern in a rule, in bytes.
pub const MAX_PATTERN_LEN: usize = 2048;
/// Most header changes one verdict or rule may carry.
pub const MAX_HEADER_CHANGES: usize = 64;
/// Longest header value an extension may set, in bytes.
pub const MAX_HEADER_VALUE: usize = 8192;
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

/// Why a header change, a redirect, a filter or a condition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A header name that is not a lowercase HTTP token.
    #[error("header name {0:?} is not a lowercase token")]
    HeaderName(String),
    /// A header that frames the message (see [`FRAMING_HEADERS`]).
    #[error("header {0} frames the message and cannot be changed")]
    FramingHeader(String),
    /// A sensitive header the manifest does not name.
    #[error("header {0} is sensitive and not named in the manifest's capabilities.headers")]
    SensitiveHeader(String),
    /// More than [`MAX_HEADER_CHANGES`] changes.
    #[error("{0} header changes, more than the {MAX_HEADER_CHANGES} allowed")]
    TooManyHeaderChanges(usize),
    /// A value longer than [`MAX_HEADER_VALUE`].
    #[error("value of header {0} is too long")]
    HeaderValueTooLong(String),
    /// A value with CR, LF or NUL, which could split the message.
    #[error("value of header {0} contains CR, LF or NUL")]
    HeaderValueControl(String),
    /// A redirect target longer than [`MAX_URL_LEN`].
    #[error("redirect target longer than {MAX_URL_LEN} bytes")]
    RedirectTooLong,
    /// A redirect target that does not parse as a URL.
    #[error("redirect target {target:?} is not a URL: {reason}")]
    RedirectNotUrl {
        /// The target.
        target: String,
        /// The URL parser's reason.
        reason: url::ParseError,
    },
    /// A redirect to a scheme other than http or https.
    #[error("redirect target {0:?} is not http or https")]
    RedirectScheme(String),
    /// A redirect target without a host.
    #[error("redirect target {0:?} has no host")]
    RedirectNoHost(String),
    /// A host suffix that is not a lowercase host name.
    #[error("host suffix {0:?} is not a lowercase host name")]
    HostSuffix(String),
    /// A method that is not an uppercase token.
    #[error("method {0:?} is not an uppercase token")]
    Method(String),
    /// A condition or filter list longer than [`MAX_CONDITION_ENTRIES`].
    #[error("{what} has {len} entries, more than {MAX_CONDITION_ENTRIES}")]
    ListTooLong {
        /// The list, e.g. `host-suffixes`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// Why a set of rules was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// More rules than the manifest's `max-rules`.
    #[error("{count} rules, more than the manifest's max-rules of {max}")]
    TooMany {
        /// How many were handed over.
        count: usize,
        /// The manifest's limit.
        max: u32,
    },
    /// One rule is invalid.
    #[error("rule {id}: {problem}")]
    Rule {
        /// The rule's id.
        id: u32,
        /// What is wrong with it.
        problem: RuleProblem,
    },
}

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// Another rule has the same id.
    #[error("duplicate id")]
    DuplicateId,
    /// An empty or too long URL pattern.
    #[error("url-pattern must be 1 to {MAX_PATTERN_LEN} bytes")]
    UrlPattern,
    /// A condition or action failed a check.
    #[error(transparent)]
    Check(#[from] CheckError),
}

/// Which headers an extension may see and change.
#[derive(Debug, Clone)]
pub(crate) struct HeaderGrants {
    named: HashSet<String>,
}

impl HeaderGrants {
    pub(crate) fn new(manifest: &Manifest) -> Self {
        Self {
            named: manifest.capabilities.headers.iter().cloned().collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn named(named: &[&str]) -> Self {
        Self {
            named: named.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Sensitive headers (`cookie`, `authorization`, ...) only when named;
    /// every other header always.
    pub(crate) fn may_see(&self, name: &str) -> bool {
        let sensitive = SENSITIVE_HEADERS.contains(&name);
        !sensitive || self.named.contains(name)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header_name(name: &str, grants: &HeaderGrants) -> Result<(), CheckError> {
    if !is_token(name) || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(CheckError::HeaderName(name.to_owned()));
    }
    if FRAMING_HEADERS.contains(&name) {
        return Err(CheckError::FramingHeader(name.to_owned()));
    }
    if !grants.may_see(name) {
        return Err(CheckError::SensitiveHeader(name.to_owned()));
    }
    Ok(())
}

/// Header changes must stay within the grants, away from framing headers,
/// and be well-formed.
pub(crate) fn check_header_changes(
    changes: &[HeaderChange],
    grants: &HeaderGrants,
) -> Result<(), CheckError> {
    if changes.len() > MAX_HEADER_CHANGES {
        return Err(CheckError::TooManyHeaderChanges(changes.len()));
    }
    for change in changes {
        match change {
            HeaderChange::Set(h) => {
                check_header_name(&h.name, grants)?;
                if h.value.len() > MAX_HEADER_VALUE {
                    return Err(CheckError::HeaderValueTooLong(h.name.clone()));
                }
                if h.value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(CheckError::HeaderValueControl(h.name.clone()));
                }
            }
            HeaderChange::Remove(name) => check_header_name(name, grants)?,
        }
    }
    Ok(())
}

/// A redirect target must be an absolute http(s) URL with a host.
pub fn check_redirect(target: &str) -> Result<url::Url, CheckError> {
    if target.len() > MAX_URL_LEN {
        return Err(CheckError::RedirectTooLong);
    }
    let url = url::Url::parse(target).map_err(|reason| CheckError::RedirectNotUrl {
        target: target.to_owned(),
        reason,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CheckError::RedirectScheme(target.to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CheckError::RedirectNoHost(target.to_owned()));
    }
    Ok(url)
}

fn check_host_suffix(s: &str) -> Result<(), CheckError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CheckError::HostSuffix(s.to_owned()))
    }
}

fn check_methods(methods: &[String]) -> Result<(), CheckError> {
    for m in methods {
        if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(CheckError::Method(m.clone()));
        }
    }
    Ok(())
}

fn check_list_len<T>(what: &'static str, list: &[T]) -> Result<(), CheckError> {
    if list.len() > MAX_CONDITION_ENTRIES {
        return Err(CheckError::ListTooLong {
            what,
            len: list.len(),
        });
    }
    Ok(())
}

/// A request or response filter an extension registers.
pub(crate) fn check_filter(f: &RequestFilter) -> Result<(), CheckError> {
    check_list_len("host-suffixes", &f.host_suffixes)?;
    check_list_len("methods", &f.methods)?;
    f.host_suffixes
        .iter()
        .try_for_each(|s| check_host_suffix(s))?;
    check_methods(&f.methods)
}

fn check_rule(rule: &Rule, grants: &HeaderGrants) -> Result<(), RuleProblem> {
    let c = &rule.condition;
    check_list_len("host-suffixes", &c.host_suffixes)?;
    check_list_len("excluded-host-suffixes", &c.excluded_host_suffixes)?;
    check_list_len("methods", &c.methods)?;
    c.host_suffixes
        .iter()
        .chain(&c.excluded_host_suffixes)
        .try_for_each(|s| check_host_suffix(s))?;
    check_methods(&c.methods)?;
    if let Some(p) = &c.url_pattern {
        if p.is_empty() || p.len() > MAX_PATTERN_LEN {
            return Err(RuleProblem::UrlPattern);
        }
    }
    match &rule.action {
        RuleAction::Block | RuleAction::Allow => {}
        RuleAction::Redirect(target) => {
            check_redirect(target)?;
        }
        RuleAction::ModifyRequestHeaders(changes) | RuleAction::ModifyResponseHeaders(changes) => {
            check_header_changes(changes, grants)?;
        }
    }
    Ok(())
}

/// A whole set of rules: at most `max_rules`, unique ids, each rule valid.
pub(crate) fn validate_rules(
    rules: &[Rule],
    max_rules: u32,
    grants: &HeaderGrants,
) -> Result<(), RulesError> {
    if rules.len() > max_rules as usize {
        return Err(RulesError::TooMany {
            count: rules.len(),
            max: max_rules,
        });
    }
    let mut ids = HashSet::with_capacity(rules.len());
    for rule in rules {
        let problem = if ids.insert(rule.id) {
            check_rule(rule, grants).err()
        } else {
            Some(RuleProblem::DuplicateId)
        };
        if let Some(problem) = problem {
            return Err(RulesError::Rule {
                id: rule.id,
                problem,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Header, RuleCondition};
    use super::*;

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
            let r =
                check_header_changes(std::slice::from_ref(&change), &HeaderGrants::named(named));
            assert_eq!(r.is_ok(), ok, "{change:?} with {named:?}: {r:?}");
        }
    }

    #[test]
    fn rules_are_validated() {
        let g = HeaderGrants::named(&[]);
        assert!(validate_rules(&[rule(1, RuleAction::Block)], 10, &g).is_ok());
        let cases: Vec<(Vec<Rule>, u32, &str)> = vec![
            (
                vec![rule(1, RuleAction::Block), rule(1, RuleAction::Allow)],
                10,
                "rule 1: duplicate id",
            ),
            (
                vec![rule(1, RuleAction::Block), rule(2, RuleAction::Block)],
                1,
                "2 rules, more than the manifest's max-rules of 1",
            ),
            (
                vec![rule(1, RuleAction::Redirect("nope".into()))],
                10,
                "rule 1: redirect target \"nope\" is not a URL",
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
                "rule 1: host suffix \".bad\"",
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
                "rule 1: method \"get\"",
            ),
        ];
        for (rules, max, want) in cases {
            let err = validate_rules(&rules, max, &g).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }
}
