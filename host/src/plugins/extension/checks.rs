//! What the host checks in everything an extension hands over (rules,
//! filters, verdicts) before acting on it, and the typed reasons for
//! refusing it.

use std::collections::HashSet;

use sockhost_policy::{Capabilities, Manifest, RedirectRefused, TargetHost, SENSITIVE_HEADERS};

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
    /// A redirect to a host the manifest does not grant.
    #[error("redirect target {target:?} refused: {refused}")]
    RedirectNotGranted {
        /// The target.
        target: String,
        /// Which grant is missing.
        refused: RedirectRefused,
    },
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

/// What an extension's manifest grants that its answers are checked
/// against: which headers it may see and change, where it may redirect.
#[derive(Debug, Clone)]
pub(crate) struct Grants {
    named: HashSet<String>,
    capabilities: Capabilities,
}

impl Grants {
    pub(crate) fn new(manifest: &Manifest) -> Self {
        Self {
            named: manifest.capabilities.headers.iter().cloned().collect(),
            capabilities: manifest.capabilities.clone(),
        }
    }

    #[cfg(test)]
    pub(crate) fn named(named: &[&str]) -> Self {
        Self {
            named: named.iter().map(|s| s.to_string()).collect(),
            capabilities: Capabilities::default(),
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

fn check_header_name(name: &str, grants: &Grants) -> Result<(), CheckError> {
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
    grants: &Grants,
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

/// A redirect target must also be granted: its host covered by the
/// manifest (see [`Capabilities::may_redirect_to`]), or the same host and
/// port as `from`, the request being redirected (a hook rewriting a URL
/// in place reaches nothing the request did not).
pub(crate) fn check_redirect_granted(
    target: &str,
    from: Option<&str>,
    grants: &Grants,
) -> Result<url::Url, CheckError> {
    let url = check_redirect(target)?;
    let same_place = |from: &url::Url| {
        from.host() == url.host() && from.port_or_known_default() == url.port_or_known_default()
    };
    if from
        .and_then(|f| url::Url::parse(f).ok())
        .is_some_and(|f| same_place(&f))
    {
        return Ok(url);
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => TargetHost::Name(name),
        Some(url::Host::Ipv4(ip)) => TargetHost::Ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => TargetHost::Ip(ip.into()),
        // check_redirect refused URLs without a host.
        None => return Err(CheckError::RedirectNoHost(target.to_owned())),
    };
    match grants.capabilities.may_redirect_to(&host) {
        Ok(()) => Ok(url),
        Err(refused) => Err(CheckError::RedirectNotGranted {
            target: target.to_owned(),
            refused,
        }),
    }
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

fn check_rule(rule: &Rule, grants: &Grants) -> Result<(), RuleProblem> {
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
            check_redirect_granted(target, None, grants)?;
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
    grants: &Grants,
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

    /// The grants of an extension manifest listing `hosts` and
    /// `redirect-hosts`.
    fn granting(hosts: &[&str], redirect: &[&str]) -> Grants {
        let list = |l: &[&str]| format!("{l:?}");
        let text = format!(
            "[plugin]\nname = \"x\"\nversion = \"0.1.0\"\nworld = \"extension\"\n\
             component = \"x.wasm\"\nsha256 = \"{}\"\n\
             [capabilities]\nhosts = {}\nredirect-hosts = {}\n",
            "0".repeat(64),
            list(hosts),
            list(redirect)
        );
        Grants::new(&Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap())
    }

    #[test]
    fn redirects_go_only_where_the_manifest_grants() {
        let only_www = granting(&["www.t.test"], &[]);
        let from = Some("https://www.t.test/page");
        for target in ["http://127.0.0.1:1/secret", "http://other.test:8799/"] {
            let e = check_redirect_granted(target, from, &only_www).unwrap_err();
            assert!(
                matches!(e, CheckError::RedirectNotGranted { .. }),
                "{target}: {e}"
            );
        }
        assert_eq!(
            check_redirect_granted("http://127.0.0.1:1/secret", from, &only_www)
                .unwrap_err()
                .to_string(),
            "redirect target \"http://127.0.0.1:1/secret\" refused: 127.0.0.1 is a loopback \
             address, which only an entry naming it exactly (\"127.0.0.1\", not a wildcard) in \
             capabilities.redirect-hosts grants"
        );
        assert_eq!(
            check_redirect_granted("http://other.test:8799/", from, &only_www)
                .unwrap_err()
                .to_string(),
            "redirect target \"http://other.test:8799/\" refused: other.test is in neither \
             capabilities.hosts nor capabilities.redirect-hosts"
        );
        // Malformed targets are still refused as such.
        assert_eq!(
            check_redirect_granted("nope", from, &only_www),
            Err(CheckError::RedirectNotUrl {
                target: "nope".into(),
                reason: url::ParseError::RelativeUrlWithoutBase
            })
        );
        assert!(check_redirect_granted("https://www.t.test/other", None, &only_www).is_ok());

        let granted = granting(
            &["www.t.test"],
            &["127.0.0.1", "other.test", "::1", "localhost"],
        );
        for target in [
            "http://127.0.0.1:1/secret",
            "http://other.test:8799/",
            "http://[::1]:8080/",
            "http://localhost/",
        ] {
            assert!(
                check_redirect_granted(target, from, &granted).is_ok(),
                "{target}"
            );
        }

        let everything = granting(&["*"], &["*"]);
        assert!(check_redirect_granted("https://other.test/", from, &everything).is_ok());
        for target in [
            "http://127.0.0.1:1/secret",
            "http://localhost:6379/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            // The URL parser reads these as 127.0.0.1 and ::ffff:127.0.0.1.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(
                check_redirect_granted(target, from, &everything).is_err(),
                "{target}"
            );
        }
    }

    #[test]
    fn a_hook_may_redirect_within_the_host_and_port_it_was_given() {
        let any = granting(&["*"], &[]);
        let from = Some("http://127.0.0.1:8080/a?utm_source=x");
        assert!(check_redirect_granted("http://127.0.0.1:8080/a", from, &any).is_ok());
        assert!(check_redirect_granted("https://127.0.0.1:8080/a", from, &any).is_ok());
        assert!(check_redirect_granted("http://127.0.0.1:6379/", from, &any).is_err());
        assert!(check_redirect_granted("http://127.0.0.2:8080/", from, &any).is_err());
        let from = Some("http://localhost/x");
        assert!(check_redirect_granted("http://localhost:80/y", from, &any).is_ok());
        assert!(check_redirect_granted("https://localhost/y", from, &any).is_err());
    }

    #[test]
    fn rule_redirects_are_checked_against_the_grants_at_registration() {
        let only_www = granting(&["www.t.test"], &["cdn.example"]);
        let ok = rule(1, RuleAction::Redirect("https://cdn.example/x".into()));
        assert!(validate_rules(&[ok], 10, &only_www).is_ok());
        let bad = rule(2, RuleAction::Redirect("http://127.0.0.1:1/secret".into()));
        let e = validate_rules(&[bad], 10, &only_www).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rule 2: redirect target \"http://127.0.0.1:1/secret\" refused: 127.0.0.1 is a loopback address"),
            "{e}"
        );
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
            let r = check_header_changes(std::slice::from_ref(&change), &Grants::named(named));
            assert_eq!(r.is_ok(), ok, "{change:?} with {named:?}: {r:?}");
        }
    }

    #[test]
    fn rules_are_validated() {
        let g = Grants::named(&[]);
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
                vec![rule(1, RuleAction::Redirect("https://x.test/".into()))],
                10,
                "rule 1: redirect target \"https://x.test/\" refused: x.test is in neither",
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
