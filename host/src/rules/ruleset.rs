//! A compiled set of one extension's rules and their evaluation.
//!
//! Rules are indexed so that a request looks only at rules that can match
//! it: by host suffix (each suffix of the request's host is one lookup), and
//! for URL-pattern rules without a host, by a 4-byte piece of the pattern's
//! longest literal (each 4-byte window of the URL is one lookup). Only
//! rules with neither are checked for every request.
//!
//! Precedence, as in declarativeNetRequest: the matching block, allow or
//! redirect rule with the highest priority decides (at equal priority allow
//! beats block beats redirect); header changes come from every matching
//! modify rule whose priority is at least that of a winning allow rule.

use std::collections::HashMap;

use crate::plugins::extension::{HeaderChange, ResourceType, Rule, RuleAction};

use super::pattern::UrlPattern;

/// Up to this many pattern rules are checked directly rather than
/// through the piece index.
const SMALL_PIECE_INDEX: usize = 16;

/// What the rules say about a request.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Block, allow or redirect, with the deciding rule's id.
    pub verdict: Option<(u32, Verdict)>,
    /// Request header changes, with their rules' ids.
    pub request_headers: Vec<(u32, HeaderChange)>,
    /// Response header changes, with their rules' ids.
    pub response_headers: Vec<(u32, HeaderChange)>,
}

/// The deciding action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Cancel the request.
    Block,
    /// Let it through (overrides lower-priority blocks and redirects).
    Allow,
    /// Send it to this URL instead.
    Redirect(String),
}

/// The request as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct RuleRequest<'a> {
    /// The full URL, lowercase.
    pub url: &'a str,
    /// The host, lowercase, no trailing dot.
    pub host: &'a str,
    /// The host's byte span in `url`.
    pub host_span: (usize, usize),
    /// Uppercase method.
    pub method: &'a str,
    /// What is being loaded.
    pub resource_type: ResourceType,
}

#[derive(Debug)]
struct Compiled {
    rule: Rule,
    pattern: Option<UrlPattern>,
    methods: Vec<String>,
}

/// One extension's rules, compiled.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Compiled>,
    by_host: HashMap<String, Vec<usize>>,
    by_piece: HashMap<[u8; 4], Vec<usize>>,
    generic: Vec<usize>,
}

impl RuleSet {
    /// Compiles `rules` (already validated by the extension bridge).
    pub fn new(rules: &[Rule]) -> RuleSet {
        let mut set = RuleSet::default();
        let patterns: Vec<Option<UrlPattern>> = rules
            .iter()
            .map(|r| r.condition.url_pattern.as_deref().map(UrlPattern::new))
            .collect();
        // How many patterns contain each 4-byte piece: each rule is indexed
        // under its rarest piece, so that common text ("/ads", "http")
        // does not put thousands of rules in one bucket.
        let mut counts: HashMap<[u8; 4], usize> = HashMap::new();
        for p in patterns.iter().flatten() {
            let mut pieces: Vec<[u8; 4]> = pieces(p.literal()).collect();
            pieces.sort_unstable();
            pieces.dedup();
            for piece in pieces {
                *counts.entry(piece).or_default() += 1;
            }
        }
        for (i, (rule, pattern)) in rules.iter().zip(patterns).enumerate() {
            let rarest = pattern
                .as_ref()
                .and_then(|p| pieces(p.literal()).min_by_key(|piece| counts[piece]));
            if !rule.condition.host_suffixes.is_empty() {
                for s in &rule.condition.host_suffixes {
                    set.by_host
                        .entry(s.to_ascii_lowercase())
                        .or_default()
                        .push(i);
                }
            } else if let Some(piece) = rarest {
                set.by_piece.entry(piece).or_default().push(i);
            } else {
                set.generic.push(i);
            }
            set.rules.push(Compiled {
                rule: rule.clone(),
                pattern,
                methods: rule
                    .condition
                    .methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect(),
            });
        }
        // Scanning every 4-byte window of a URL costs more than checking a
        // handful of patterns directly.
        let indexed: usize = set.by_piece.values().map(Vec::len).sum();
        if indexed <= SMALL_PIECE_INDEX {
            for (_, ids) in set.by_piece.drain() {
                set.generic.extend(ids);
            }
            set.generic.sort_unstable();
        }
        set
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluates the rules for `req`.
    pub fn evaluate(&self, req: &RuleRequest<'_>) -> Decision {
        let mut candidates: Vec<usize> = Vec::new();
        let mut rest = req.host;
        loop {
            if let Some(ids) = self.by_host.get(rest) {
                candidates.extend_from_slice(ids);
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => break,
            }
        }
        if !self.by_piece.is_empty() {
            for w in req.url.as_bytes().windows(4) {
                if let Some(ids) = self
                    .by_piece
                    .get(<&[u8; 4]>::try_from(w).expect("window of 4"))
                {
                    candidates.extend_from_slice(ids);
                }
            }
        }
        candidates.extend_from_slice(&self.generic);
        candidates.sort_unstable();
        candidates.dedup();

        let mut decision = Decision::default();
        let mut best: Option<(u32, u8, usize)> = None; // (priority, rank, index)
        let mut modifies: Vec<usize> = Vec::new();
        for i in candidates {
            let c = &self.rules[i];
            if !self.matches(c, req) {
                continue;
            }
            let rank = match c.rule.action {
                RuleAction::Allow => 3,
                RuleAction::Block => 2,
                RuleAction::Redirect(_) => 1,
                RuleAction::ModifyRequestHeaders(_) | RuleAction::ModifyResponseHeaders(_) => {
                    modifies.push(i);
                    continue;
                }
            };
            let key = (c.rule.priority, rank, usize::MAX - i);
            if best.is_none_or(|(p, r, j)| key > (p, r, usize::MAX - j)) {
                best = Some((c.rule.priority, rank, i));
            }
        }
        let mut floor = 0;
        if let Some((priority, _, i)) = best {
            let rule = &self.rules[i].rule;
            let verdict = match &rule.action {
                RuleAction::Allow => {
                    floor = priority;
                    Verdict::Allow
                }
                RuleAction::Block => Verdict::Block,
                RuleAction::Redirect(target) => Verdict::Redirect(target.clone()),
                _ => unreachable!("only deciding actions rank"),
            };
            decision.verdict = Some((rule.id, verdict));
        }
        modifies.sort_by_key(|&i| std::cmp::Reverse(self.rules[i].rule.priority));
        for i in modifies {
            let rule = &self.rules[i].rule;
            if rule.priority < floor {
                continue;
            }
            match &rule.action {
                RuleAction::ModifyRequestHeaders(changes) => decision
                    .request_headers
                    .extend(changes.iter().map(|c| (rule.id, c.clone()))),
                RuleAction::ModifyResponseHeaders(changes) => decision
                    .response_headers
                    .extend(changes.iter().map(|c| (rule.id, c.clone()))),
                _ => {}
            }
        }
        decision
    }

    fn matches(&self, c: &Compiled, req: &RuleRequest<'_>) -> bool {
        let cond = &c.rule.condition;
        let suffix = |s: &String| {
            req.host == s.as_str()
                || (req.host.len() > s.len()
                    && req.host.ends_with(s.as_str())
                    && req.host.as_bytes()[req.host.len() - s.len() - 1] == b'.')
        };
        (cond.host_suffixes.is_empty() || cond.host_suffixes.iter().any(suffix))
            && !cond.excluded_host_suffixes.iter().any(suffix)
            && (c.methods.is_empty() || c.methods.iter().any(|m| m == req.method))
            && (cond.resource_types.is_empty() || cond.resource_types.contains(&req.resource_type))
            && c.pattern
                .as_ref()
                .is_none_or(|p| p.matches(req.url.as_bytes(), req.host_span.0, req.host_span.1))
    }
}

/// Every 4-byte window of `literal`.
fn pieces(literal: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    literal
        .windows(4)
        .map(|w| <[u8; 4]>::try_from(w).expect("window of 4"))
}

/// Splits a lowercase URL into what rules need: the host and its span.
pub fn rule_request<'a>(
    url: &'a str,
    method: &'a str,
    resource_type: ResourceType,
) -> Option<RuleRequest<'a>> {
    let start = url.find("://")? + 3;
    let after = &url[start..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..authority_end];
    let host_part = authority.rsplit('@').next().unwrap_or(authority);
    let host_offset = start + (authority.len() - host_part.len());
    let host_len = if host_part.starts_with('[') {
        host_part.find(']').map_or(host_part.len(), |i| i + 1)
    } else {
        host_part.find(':').unwrap_or(host_part.len())
    };
    let host = &url[host_offset..host_offset + host_len];
    Some(RuleRequest {
        url,
        host: host.strip_suffix('.').unwrap_or(host),
        host_span: (host_offset, host_offset + host_len),
        method,
        resource_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::extension::{Header, RuleCondition};

    fn rule(
        id: u32,
        priority: u32,
        hosts: &[&str],
        pattern: Option<&str>,
        action: RuleAction,
    ) -> Rule {
        Rule {
            id,
            priority,
            condition: RuleCondition {
                host_suffixes: hosts.iter().map(|s| s.to_string()).collect(),
                excluded_host_suffixes: vec![],
                url_pattern: pattern.map(str::to_owned),
                methods: vec![],
                resource_types: vec![],
            },
            action,
        }
    }

    fn eval(set: &RuleSet, url: &str) -> Decision {
        let url = url.to_ascii_lowercase();
        let req = rule_request(&url, "GET", ResourceType::Document).unwrap();
        set.evaluate(&req)
    }

    #[test]
    fn precedence() {
        let set = RuleSet::new(&[
            rule(1, 1, &["ads.test"], None, RuleAction::Block),
            rule(2, 2, &[], Some("||ads.test/ok/"), RuleAction::Allow),
            rule(
                3,
                1,
                &[],
                Some("/banner/"),
                RuleAction::Redirect("https://x.test/".into()),
            ),
            rule(4, 1, &[], Some("/banner/"), RuleAction::Block),
            rule(
                5,
                1,
                &["ads.test"],
                None,
                RuleAction::ModifyRequestHeaders(vec![HeaderChange::Remove("referer".into())]),
            ),
            rule(
                6,
                3,
                &[],
                None,
                RuleAction::ModifyRequestHeaders(vec![HeaderChange::Set(Header {
                    name: "x-ext".into(),
                    value: b"1".to_vec(),
                })]),
            ),
        ]);
        let d = eval(&set, "https://sub.ads.test/x");
        assert_eq!(d.verdict, Some((1, Verdict::Block)));
        // The allow rule (priority 2) beats the block and drops the
        // priority-1 header change, but not the priority-3 one.
        let d = eval(&set, "https://ads.test/ok/1");
        assert_eq!(d.verdict, Some((2, Verdict::Allow)));
        let ids: Vec<u32> = d.request_headers.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![6]);
        // Equal priority: block beats redirect.
        let d = eval(&set, "https://a.test/banner/1.gif");
        assert_eq!(d.verdict, Some((4, Verdict::Block)));
        assert_eq!(eval(&set, "https://clean.test/").verdict, None);
    }

    #[test]
    fn conditions() {
        let mut r = rule(1, 1, &["test"], None, RuleAction::Block);
        r.condition.excluded_host_suffixes = vec!["ok.test".into()];
        r.condition.methods = vec!["post".into()];
        r.condition.resource_types = vec![ResourceType::Xhr];
        let set = RuleSet::new(&[r]);
        let check = |url: &str, method: &str, rt| {
            let req = rule_request(url, method, rt).unwrap();
            set.evaluate(&req).verdict.is_some()
        };
        assert!(check("https://a.test/", "POST", ResourceType::Xhr));
        assert!(!check("https://a.ok.test/", "POST", ResourceType::Xhr));
        assert!(!check("https://a.test/", "GET", ResourceType::Xhr));
        assert!(!check("https://a.test/", "POST", ResourceType::Image));
        assert!(!check("https://atest/", "POST", ResourceType::Xhr));
    }

    #[test]
    fn urls_split() {
        let r = rule_request("https://user@www.test:8443/p?q", "GET", ResourceType::Other).unwrap();
        assert_eq!(r.host, "www.test");
        assert_eq!(&r.url[r.host_span.0..r.host_span.1], "www.test");
        let r = rule_request("http://[::1]:80/", "GET", ResourceType::Other).unwrap();
        assert_eq!(r.host, "[::1]");
        assert!(rule_request("no scheme", "GET", ResourceType::Other).is_none());
    }

    #[test]
    fn ten_thousand_rules_index_and_match() {
        let rules: Vec<Rule> = (0..10_000u32)
            .map(|i| match i % 2 {
                0 => rule(i, 1, &[&format!("ads{i}.example")], None, RuleAction::Block),
                _ => rule(i, 1, &[], Some(&format!("/track{i}/*")), RuleAction::Block),
            })
            .collect();
        let set = RuleSet::new(&rules);
        assert_eq!(set.len(), 10_000);
        assert!(set.generic.is_empty());
        assert_eq!(
            eval(&set, "https://x.ads4242.example/").verdict,
            Some((4242, Verdict::Block))
        );
        assert_eq!(
            eval(&set, "https://a.test/track777/x").verdict,
            Some((777, Verdict::Block))
        );
        assert_eq!(
            eval(&set, "https://www.example.com/index.html").verdict,
            None
        );
    }
}
