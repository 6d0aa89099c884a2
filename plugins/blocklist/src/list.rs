//! The list format: an adblock-style subset, parsed into declarative rules
//! (which the host evaluates natively) and query parameters to strip
//! (which only a hook can do).

use sockhost_sdk::extension::{ResourceType, Rule, RuleAction, RuleCondition};

/// Rule priorities: exceptions beat blocks, as in adblock lists.
const BLOCK_PRIORITY: u32 = 1;
const ALLOW_PRIORITY: u32 = 2;

/// A parsed list.
#[derive(Debug, Default)]
pub struct List {
    /// Rules for the host.
    pub rules: Vec<Rule>,
    /// Query parameter names the hook strips.
    pub remove_params: Vec<String>,
}

/// A line that is not part of the supported subset.
#[derive(Debug, PartialEq)]
pub struct ListError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses the list text.
pub fn parse(text: &str) -> Result<List, ListError> {
    let mut list = List::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('!') {
            continue;
        }
        let fail = |message: String| ListError {
            line: i + 1,
            message,
        };
        if let Some(name) = line.strip_prefix("$removeparam=") {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(fail(format!("{name:?} is not a query parameter name")));
            }
            list.remove_params.push(name.to_owned());
            continue;
        }
        let (allow, body) = match line.strip_prefix("@@") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (pattern, options) = match body.rsplit_once('$') {
            Some((p, o)) => (p, Some(o)),
            None => (body, None),
        };
        if pattern.is_empty() {
            return Err(fail("an entry needs a pattern".to_owned()));
        }
        let mut condition = RuleCondition::any();
        if let Some(options) = options {
            for opt in options.split(',') {
                condition.resource_types.push(
                    resource_type(opt).ok_or_else(|| fail(format!("unknown option {opt:?}")))?,
                );
            }
        }
        // `||host^` alone is a host-suffix condition: the host indexes
        // those, which is cheaper than a pattern.
        match pattern
            .strip_prefix("||")
            .and_then(|p| p.strip_suffix('^'))
            .filter(|h| is_host(h))
        {
            Some(host) => condition.host_suffixes.push(host.to_ascii_lowercase()),
            None => condition.url_pattern = Some(pattern.to_owned()),
        }
        list.rules.push(Rule {
            id: list.rules.len() as u32 + 1,
            priority: if allow {
                ALLOW_PRIORITY
            } else {
                BLOCK_PRIORITY
            },
            condition,
            action: if allow {
                RuleAction::Allow
            } else {
                RuleAction::Block
            },
        });
    }
    Ok(list)
}

fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn resource_type(name: &str) -> Option<ResourceType> {
    Some(match name {
        "document" => ResourceType::Document,
        "script" => ResourceType::Script,
        "stylesheet" => ResourceType::Stylesheet,
        "image" => ResourceType::Image,
        "font" => ResourceType::Font,
        "media" => ResourceType::Media,
        "xhr" | "xmlhttprequest" => ResourceType::Xhr,
        "websocket" => ResourceType::Websocket,
        "other" => ResourceType::Other,
        _ => return None,
    })
}

/// `url` without the query parameters named in `names`, or `None` if it
/// has none of them.
pub fn strip_params(url: &str, names: &[String]) -> Option<String> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = before_fragment.split_once('?')?;
    let mut removed = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or("");
            let drop = names.iter().any(|n| n == key);
            removed |= drop;
            !drop && !pair.is_empty()
        })
        .collect();
    if !removed {
        return None;
    }
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_parses() {
        let list = parse(include_str!("../blocklist.txt")).unwrap();
        assert_eq!(list.rules.len(), 7);
        assert_eq!(list.remove_params.len(), 5);
        let ids: Vec<u32> = list.rules.iter().map(|r| r.id).collect();
        assert_eq!(ids, (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn entries_become_rules() {
        let list =
            parse("||ads.example^\n@@||ads.example/ok/*\n/banner/*.gif$image,script\n").unwrap();
        let [host, allow, pattern] = &list.rules[..] else {
            panic!("{:?}", list.rules)
        };
        assert_eq!(host.condition.host_suffixes, vec!["ads.example"]);
        assert_eq!(host.condition.url_pattern, None);
        assert!(matches!(host.action, RuleAction::Block));
        assert!(matches!(allow.action, RuleAction::Allow));
        assert!(allow.priority > host.priority);
        assert_eq!(
            allow.condition.url_pattern.as_deref(),
            Some("||ads.example/ok/*")
        );
        assert_eq!(
            pattern.condition.url_pattern.as_deref(),
            Some("/banner/*.gif")
        );
        assert_eq!(
            pattern.condition.resource_types,
            vec![ResourceType::Image, ResourceType::Script]
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(parse("! ok\n\n$bogus").unwrap_err().line, 3);
        assert!(parse("||x^$nonsense")
            .unwrap_err()
            .message
            .contains("nonsense"));
        assert!(parse("$removeparam=a b").is_err());
        assert!(parse("@@").is_err());
    }

    #[test]
    fn params_are_stripped() {
        let names = vec!["utm_source".to_owned(), "fbclid".to_owned()];
        for (url, want) in [
            ("https://a.test/p?utm_source=x", Some("https://a.test/p")),
            (
                "https://a.test/p?a=1&utm_source=x&b=2",
                Some("https://a.test/p?a=1&b=2"),
            ),
            (
                "https://a.test/p?fbclid=1#top",
                Some("https://a.test/p#top"),
            ),
            ("https://a.test/p?utm_sourcex=1", None),
            ("https://a.test/p", None),
            ("https://a.test/p#utm_source=1", None),
        ] {
            assert_eq!(strip_params(url, &names).as_deref(), want, "{url}");
        }
    }
}
