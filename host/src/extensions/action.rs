//! What a plugin did to a request, as `--json` and logs report it.

use std::fmt;

/// The kinds of thing an extension does to a request. Their names (see
/// [`ActionKind::as_str`]) are what `--json` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// A rule blocked the request (`rule-block`).
    RuleBlock,
    /// A rule redirected it (`rule-redirect`).
    RuleRedirect,
    /// A rule allowed it, overriding lower-priority blocks (`rule-allow`).
    RuleAllow,
    /// A rule changed request headers (`rule-headers`).
    RuleHeaders,
    /// The on-request hook cancelled it (`hook-cancel`).
    HookCancel,
    /// The on-request hook redirected it (`hook-redirect`).
    HookRedirect,
    /// The on-request hook changed request headers (`hook-headers`).
    HookHeaders,
    /// A rule or the on-response hook changed response headers
    /// (`response-headers`).
    ResponseHeaders,
    /// A hook faulted, or the plugin is disabled (`fault`).
    Fault,
    /// No instance of the extension became free in time, so its hook was
    /// not called (`busy`).
    Busy,
}

impl ActionKind {
    /// The name `--json` and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::RuleBlock => "rule-block",
            ActionKind::RuleRedirect => "rule-redirect",
            ActionKind::RuleAllow => "rule-allow",
            ActionKind::RuleHeaders => "rule-headers",
            ActionKind::HookCancel => "hook-cancel",
            ActionKind::HookRedirect => "hook-redirect",
            ActionKind::HookHeaders => "hook-headers",
            ActionKind::ResponseHeaders => "response-headers",
            ActionKind::Fault => "fault",
            ActionKind::Busy => "busy",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ActionKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ActionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Something a plugin did to a request, for `--json` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginAction {
    /// The plugin.
    pub plugin: String,
    /// What it did.
    pub action: ActionKind,
    /// Details: the rule id, the reason, the target, the fault.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_json_output_has_always_used() {
        let all = [
            (ActionKind::RuleBlock, "rule-block"),
            (ActionKind::RuleRedirect, "rule-redirect"),
            (ActionKind::RuleAllow, "rule-allow"),
            (ActionKind::RuleHeaders, "rule-headers"),
            (ActionKind::HookCancel, "hook-cancel"),
            (ActionKind::HookRedirect, "hook-redirect"),
            (ActionKind::HookHeaders, "hook-headers"),
            (ActionKind::ResponseHeaders, "response-headers"),
            (ActionKind::Fault, "fault"),
            (ActionKind::Busy, "busy"),
        ];
        for (kind, name) in all {
            assert_eq!(kind.to_string(), name);
            assert_eq!(kind, name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
    }
}
