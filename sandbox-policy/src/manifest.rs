//! `plugin.toml`: parsing and validation into typed, checked values.
//!
//! Parsing goes through loose serde structs (so unknown fields are caught
//! by serde with their line) and then field by field into the public types,
//! so every error names the file, the field and what is wrong.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ManifestError;
use crate::headers::is_header_name;
use crate::imports::{self, ImportDecision};
use crate::origin::{HostPattern, OriginPattern};
use crate::redirect::RedirectGrant;
use crate::units::{parse_duration, parse_size, SizeError};
use crate::world::World;

/// Default `limits.memory`: enough for a list of a few hundred thousand
/// rules, small enough that a thousand instances fit in a host.
pub const DEFAULT_MEMORY: u64 = 32 << 20;
/// Bounds of `limits.memory`: one wasm page, and wasm32's whole space.
pub const MEMORY_RANGE: (u64, u64) = (64 << 10, 4 << 30);
/// Default `limits.call-budget`.
pub const DEFAULT_CALL_BUDGET: Duration = Duration::from_millis(50);
/// Bounds of `limits.call-budget`: below 1 ms the epoch tick (1 ms) cannot
/// enforce it; above a minute nobody is waiting any more.
pub const CALL_BUDGET_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_secs(60));
/// Default `limits.restart-limit`.
pub const DEFAULT_RESTART_LIMIT: u32 = 3;
/// Upper bound of `limits.restart-limit`.
pub const MAX_RESTART_LIMIT: u32 = 100;
/// Default `limits.restart-window`: a minute, so a burst of faults disables
/// the plugin while one fault an hour never does.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Bounds of `limits.restart-window`: below 10 ms no two faults share a
/// window (each call has a 1 ms budget at least, and the host's own work in
/// between); above a day the budget is a lifetime count again.
pub const RESTART_WINDOW_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(86_400));
/// Upper bound of `limits.instances`: each instance is a store with its own
/// linear memory (up to `limits.memory`), so the count multiplies the memory
/// one plugin may hold.
pub const MAX_INSTANCES: u32 = 64;
/// Upper bound of `capabilities.storage-quota`.
pub const MAX_STORAGE_QUOTA: u64 = 1 << 30;
/// Default `capabilities.max-rules`.
pub const DEFAULT_MAX_RULES: u32 = 5000;
/// Upper bound of `capabilities.max-rules` (Chrome's declarativeNetRequest
/// global static limit is of this order).
pub const MAX_MAX_RULES: u32 = 300_000;

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from (or is treated as, for relative paths).
    pub path: PathBuf,
    /// Who the plugin is.
    pub plugin: Identity,
    /// What it may reach. Everything not listed is denied.
    pub capabilities: Capabilities,
    /// How much it may use, and what happens when it fails.
    pub limits: Limits,
}

/// `[plugin]`: the plugin's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Lowercase letters, digits and `-`; also names its storage directory.
    pub name: String,
    /// The plugin's own version (`MAJOR.MINOR.PATCH`).
    pub version: String,
    /// The world the component implements.
    pub world: World,
    /// The component file, resolved against the manifest's directory.
    pub component: PathBuf,
    /// The expected sha256 of the component file.
    pub sha256: [u8; 32],
}

/// `[capabilities]`: grants. Empty means nothing is granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Hosts whose requests or events the plugin sees (extensions, probes).
    /// An extension may also redirect requests to them.
    pub hosts: Vec<HostPattern>,
    /// Further hosts an extension may redirect requests to (see
    /// [`Capabilities::may_redirect_to`]).
    pub redirect_hosts: Vec<RedirectGrant>,
    /// Sensitive header names (see [`crate::SENSITIVE_HEADERS`]) the plugin
    /// may see and change; other headers need no grant.
    pub headers: Vec<String>,
    /// Bytes of private key-value storage; `None` means no storage import.
    pub storage_quota: Option<u64>,
    /// WASI interfaces granted with authority.
    pub wasi: BTreeSet<WasiGrant>,
    /// Origins the plugin may fetch through the host.
    pub fetch: Vec<OriginPattern>,
    /// The most declarative rules an extension may hand the host.
    pub max_rules: u32,
}

impl Capabilities {
    /// Whether the plugin may see requests or events of `host`.
    pub fn may_see_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| p.matches(host))
    }

    /// Whether the plugin may see header `name` (lowercase).
    pub fn may_see_header(&self, name: &str) -> bool {
        !crate::SENSITIVE_HEADERS.contains(&name) || self.headers.iter().any(|h| h == name)
    }
}

/// A WASI interface family a manifest can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WasiGrant {
    /// `wasi:clocks`: wall and monotonic time.
    Clocks,
    /// `wasi:random`: random bytes.
    Random,
    /// `wasi:cli/std*`: output goes to sockhost's log.
    Stdio,
}

/// Why a `capabilities.wasi` entry is not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum WasiGrantError {
    #[error("{0:?} is never granted to plugins: the host owns every socket")]
    Never(String),
    #[error("\"filesystem\" is not granted directly: set capabilities.storage-quota for a private directory")]
    Filesystem,
    #[error("unknown WASI grant {0:?} (use clocks, random or stdio)")]
    Unknown(String),
}

impl WasiGrant {
    fn parse(text: &str) -> Result<Self, WasiGrantError> {
        match text {
            "clocks" => Ok(WasiGrant::Clocks),
            "random" => Ok(WasiGrant::Random),
            "stdio" => Ok(WasiGrant::Stdio),
            "sockets" | "http" => Err(WasiGrantError::Never(text.to_owned())),
            "filesystem" => Err(WasiGrantError::Filesystem),
            other => Err(WasiGrantError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for WasiGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WasiGrant::Clocks => "clocks",
            WasiGrant::Random => "random",
            WasiGrant::Stdio => "stdio",
        })
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory, in bytes, one instance may have.
    pub memory: u64,
    /// Longest one call may run.
    pub call_budget: Duration,
    /// What the caller gets when a call faults.
    pub on_fault: OnFault,
    /// Faults within [`Limits::restart_window`] after which the plugin is
    /// disabled instead of restarted.
    pub restart_limit: u32,
    /// How long a fault counts against [`Limits::restart_limit`].
    pub restart_window: Duration,
    /// What happens once the plugin is disabled.
    pub on_disable: OnDisable,
    /// Instances of the plugin that may run calls at the same time, each
    /// with its own state (1..=[`MAX_INSTANCES`]). `None` leaves it to the
    /// host, which runs as many as its runtime has worker threads.
    pub instances: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            call_budget: DEFAULT_CALL_BUDGET,
            on_fault: OnFault::FailOpen,
            restart_limit: DEFAULT_RESTART_LIMIT,
            restart_window: DEFAULT_RESTART_WINDOW,
            on_disable: OnDisable::Retry,
            instances: None,
        }
    }
}

/// What a faulted call means for the request it was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFault {
    /// As if the plugin were not there (requests proceed, built-in defaults).
    FailOpen,
    /// The request is refused, naming the plugin.
    FailClosed,
}

impl fmt::Display for OnFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnFault::FailOpen => "fail-open",
            OnFault::FailClosed => "fail-closed",
        })
    }
}

/// What becomes of a plugin disabled after too many faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisable {
    /// It is tried again after a backoff that doubles each time it is
    /// disabled again (the host sets the base and the cap).
    Retry,
    /// It stays disabled until the host loads its plugins again.
    StayDisabled,
}

impl fmt::Display for OnDisable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnDisable::Retry => "retry",
            OnDisable::StayDisabled => "stay-disabled",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    plugin: RawPlugin,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: String,
    version: String,
    world: String,
    component: String,
    sha256: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCapabilities {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    redirect_hosts: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    storage_quota: Option<Size>,
    #[serde(default)]
    wasi: Vec<String>,
    #[serde(default)]
    fetch: Vec<String>,
    max_rules: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    memory: Option<Size>,
    call_budget: Option<String>,
    on_fault: Option<String>,
    restart_limit: Option<i64>,
    restart_window: Option<String>,
    on_disable: Option<String>,
    instances: Option<i64>,
}

/// A size written as bytes or as text with a unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(i64),
    Text(String),
}

/// Why a manifest size is not a number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BytesError {
    #[error("{0} is negative")]
    Negative(i64),
    #[error(transparent)]
    Text(#[from] SizeError),
}

impl Size {
    fn bytes(&self) -> Result<u64, BytesError> {
        match self {
            Size::Bytes(n) => u64::try_from(*n).map_err(|_| BytesError::Negative(*n)),
            Size::Text(t) => Ok(parse_size(t)?),
        }
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError::new(path, None, format!("cannot read: {e}")))?;
        Manifest::parse(&text, path)
    }

    /// Validates manifest `text` as if read from `path` (relative component
    /// paths resolve against `path`'s directory).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().trim().to_owned();
            let message = match line {
                Some(l) => format!("invalid TOML at line {l}: {message}"),
                None => format!("invalid TOML: {message}"),
            };
            ManifestError::new(path, None, message)
        })?;
        let fail = |field: &str, message: String| ManifestError::new(path, Some(field), message);

        let plugin = {
            let p = &raw.plugin;
            if !is_plugin_name(&p.name) {
                return Err(fail(
                    "plugin.name",
                    format!(
                        "{:?} is not a plugin name (1 to 64 lowercase letters, digits and '-')",
                        p.name
                    ),
                ));
            }
            if !is_version(&p.version) {
                return Err(fail(
                    "plugin.version",
                    format!("{:?} is not a version (MAJOR.MINOR.PATCH)", p.version),
                ));
            }
            let world = p
                .world
                .parse::<World>()
                .map_err(|e| fail("plugin.world", e))?;
            if p.component.trim().is_empty() {
                return Err(fail("plugin.component", "is empty".to_owned()));
            }
            let dir = path.parent().unwrap_or(Path::new(""));
            let component = normalize(&dir.join(&p.component));
            let sha256 = parse_sha256(&p.sha256).map_err(|e| fail("plugin.sha256", e))?;
            Identity {
                name: p.name.clone(),
                version: p.version.clone(),
                world,
                component,
                sha256,
            }
        };

        let capabilities = {
            let c = &raw.capabilities;
            if !c.hosts.is_empty() && !plugin.world.sees_hosts() {
                return Err(fail(
                    "capabilities.hosts",
                    format!(
                        "{} plugins see no hosts' requests; remove this field",
                        plugin.world
                    ),
                ));
            }
            let mut hosts = Vec::new();
            for (i, h) in c.hosts.iter().enumerate() {
                hosts.push(
                    HostPattern::parse(h)
                        .map_err(|e| fail(&format!("capabilities.hosts[{i}]"), e.to_string()))?,
                );
            }
            if !c.redirect_hosts.is_empty() && plugin.world != World::Extension {
                return Err(fail(
                    "capabilities.redirect-hosts",
                    format!(
                        "only extensions redirect requests, not {} plugins; remove this field",
                        plugin.world
                    ),
                ));
            }
            let mut redirect_hosts = Vec::new();
            for (i, h) in c.redirect_hosts.iter().enumerate() {
                redirect_hosts.push(RedirectGrant::parse(h).map_err(|e| {
                    fail(&format!("capabilities.redirect-hosts[{i}]"), e.to_string())
                })?);
            }
            let mut headers: Vec<String> = Vec::new();
            for (i, h) in c.headers.iter().enumerate() {
                let field = format!("capabilities.headers[{i}]");
                if !is_header_name(h) {
                    return Err(fail(
                        &field,
                        format!("{h:?} is not a lowercase header name"),
                    ));
                }
                if headers.contains(h) {
                    return Err(fail(&field, format!("{h:?} is listed twice")));
                }
                headers.push(h.clone());
            }
            let storage_quota = match &c.storage_quota {
                None => None,
                Some(q) => {
                    let field = "capabilities.storage-quota";
                    let bytes = q.bytes().map_err(|e| fail(field, e.to_string()))?;
                    if bytes == 0 {
                        return Err(fail(
                            field,
                            "is 0; leave it out to grant no storage".to_owned(),
                        ));
                    }
                    if bytes > MAX_STORAGE_QUOTA {
                        return Err(fail(
                            field,
                            format!("{bytes} bytes is more than the 1 GiB allowed"),
                        ));
                    }
                    Some(bytes)
                }
            };
            let mut wasi = BTreeSet::new();
            for (i, w) in c.wasi.iter().enumerate() {
                wasi.insert(
                    WasiGrant::parse(w)
                        .map_err(|e| fail(&format!("capabilities.wasi[{i}]"), e.to_string()))?,
                );
            }
            let mut fetch = Vec::new();
            for (i, o) in c.fetch.iter().enumerate() {
                fetch.push(
                    OriginPattern::parse(o)
                        .map_err(|e| fail(&format!("capabilities.fetch[{i}]"), e.to_string()))?,
                );
            }
            let max_rules = match c.max_rules {
                None => DEFAULT_MAX_RULES,
                Some(_) if plugin.world != World::Extension => {
                    return Err(fail(
                        "capabilities.max-rules",
                        format!("only extensions have rules, not {} plugins", plugin.world),
                    ))
                }
                Some(n) => u32::try_from(n)
                    .ok()
                    .filter(|n| *n <= MAX_MAX_RULES)
                    .ok_or_else(|| {
                        fail(
                            "capabilities.max-rules",
                            format!("{n} is outside 0..={MAX_MAX_RULES}"),
                        )
                    })?,
            };
            Capabilities {
                hosts,
                redirect_hosts,
                headers,
                storage_quota,
                wasi,
                fetch,
                max_rules,
            }
        };

        let limits = {
            let l = &raw.limits;
            let mut limits = Limits::default();
            if let Some(m) = &l.memory {
                let field = "limits.memory";
                let bytes = m.bytes().map_err(|e| fail(field, e.to_string()))?;
                if bytes < MEMORY_RANGE.0 || bytes > MEMORY_RANGE.1 {
                    return Err(fail(
                        field,
                        format!("{bytes} bytes is outside 64 KiB..=4 GiB"),
                    ));
                }
                limits.memory = bytes;
            }
            if let Some(b) = &l.call_budget {
                let field = "limits.call-budget";
                let d = parse_duration(b).map_err(|e| fail(field, e.to_string()))?;
                if d < CALL_BUDGET_RANGE.0 || d > CALL_BUDGET_RANGE.1 {
                    return Err(fail(field, format!("{b:?} is outside 1ms..=60s")));
                }
                limits.call_budget = d;
            }
            if let Some(f) = &l.on_fault {
                limits.on_fault = match f.as_str() {
                    "fail-open" => OnFault::FailOpen,
                    "fail-closed" => OnFault::FailClosed,
                    other => {
                        return Err(fail(
                            "limits.on-fault",
                            format!("{other:?} is neither \"fail-open\" nor \"fail-closed\""),
                        ))
                    }
                };
            }
            if let Some(r) = l.restart_limit {
                limits.restart_limit = u32::try_from(r)
                    .ok()
                    .filter(|r| *r <= MAX_RESTART_LIMIT)
                    .ok_or_else(|| {
                        fail(
                            "limits.restart-limit",
                            format!("{r} is outside 0..={MAX_RESTART_LIMIT}"),
                        )
                    })?;
            }
            if let Some(w) = &l.restart_window {
                let field = "limits.restart-window";
                let d = parse_duration(w).map_err(|e| fail(field, e.to_string()))?;
                if d < RESTART_WINDOW_RANGE.0 || d > RESTART_WINDOW_RANGE.1 {
                    return Err(fail(field, format!("{w:?} is outside 10ms..=86400s")));
                }
                limits.restart_window = d;
            }
            if let Some(d) = &l.on_disable {
                limits.on_disable = match d.as_str() {
                    "retry" => OnDisable::Retry,
                    "stay-disabled" => OnDisable::StayDisabled,
                    other => {
                        return Err(fail(
                            "limits.on-disable",
                            format!("{other:?} is neither \"retry\" nor \"stay-disabled\""),
                        ))
                    }
                };
            }
            if let Some(n) = l.instances {
                limits.instances = Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|n| (1..=MAX_INSTANCES).contains(n))
                        .ok_or_else(|| {
                            fail(
                                "limits.instances",
                                format!("{n} is outside 1..={MAX_INSTANCES}"),
                            )
                        })?,
                );
            }
            limits
        };

        Ok(Manifest {
            path: path.to_owned(),
            plugin,
            capabilities,
            limits,
        })
    }

    /// What the host does with import `name` of this plugin's component.
    pub fn decide_import(&self, name: &str) -> ImportDecision {
        imports::decide(self, name)
    }
}

/// `path` with `.` and `dir/..` removed, without touching the file system
/// (the component need not exist yet to validate its manifest).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let popped =
                    matches!(out.components().next_back(), Some(Component::Normal(_))) && out.pop();
                if !popped {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn is_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(format!(
            "expected 64 hex digits, found {} characters",
            text.len()
        ));
    }
    hex::decode_to_slice(text, &mut out).map_err(|_| format!("{text:?} is not hexadecimal"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/plugins/x/plugin.toml";

    fn base(world: &str) -> String {
        format!(
            "[plugin]\nname = \"x\"\nversion = \"0.1.0\"\nworld = \"{world}\"\n\
             component = \"../dist/x.wasm\"\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        )
    }

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new(PATH))
    }

    #[test]
    fn defaults_deny_everything() {
        let m = parse(&base("extension")).unwrap();
        assert_eq!(m.plugin.component, Path::new("/plugins/dist/x.wasm"));
        let rel = Manifest::parse(&base("extension"), Path::new("x/plugin.toml")).unwrap();
        assert_eq!(rel.plugin.component, Path::new("dist/x.wasm"));
        let up = Manifest::parse(&base("extension"), Path::new("plugin.toml")).unwrap();
        assert_eq!(up.plugin.component, Path::new("../dist/x.wasm"));
        assert_eq!(m.plugin.sha256, [0xab; 32]);
        assert!(m.capabilities.hosts.is_empty());
        assert!(!m.capabilities.may_see_host("example.com"));
        assert!(!m.capabilities.may_see_header("cookie"));
        assert!(m.capabilities.may_see_header("accept"));
        assert_eq!(m.capabilities.storage_quota, None);
        assert!(m.capabilities.wasi.is_empty());
        assert!(m.capabilities.fetch.is_empty());
        assert!(m.capabilities.redirect_hosts.is_empty());
        assert_eq!(m.capabilities.max_rules, DEFAULT_MAX_RULES);
        assert_eq!(m.limits, Limits::default());
    }

    #[test]
    fn everything_granted() {
        let text = base("extension")
            + "[capabilities]\nhosts = [\"*.example.com\", \"test\"]\nheaders = [\"cookie\"]\n\
               storage-quota = \"64 KiB\"\nwasi = [\"clocks\", \"random\", \"stdio\"]\n\
               fetch = [\"https://api.example.com\"]\nmax-rules = 10000\n\
               redirect-hosts = [\"cdn.example\", \"*.example.org\", \"::1\"]\n\
               [limits]\nmemory = \"8 MiB\"\ncall-budget = \"20ms\"\non-fault = \"fail-closed\"\nrestart-limit = 2\ninstances = 4\n\
               restart-window = \"5s\"\non-disable = \"stay-disabled\"\n";
        let m = parse(&text).unwrap();
        assert!(m.capabilities.may_see_host("www.example.com"));
        assert!(m.capabilities.may_see_host("test"));
        assert!(!m.capabilities.may_see_host("example.org"));
        assert!(m.capabilities.may_see_header("cookie"));
        assert!(!m.capabilities.may_see_header("authorization"));
        assert_eq!(m.capabilities.storage_quota, Some(64 << 10));
        assert_eq!(m.capabilities.wasi.len(), 3);
        assert_eq!(m.capabilities.max_rules, 10000);
        let redirect: Vec<String> = m
            .capabilities
            .redirect_hosts
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(redirect, ["cdn.example", "*.example.org", "::1"]);
        assert_eq!(m.limits.memory, 8 << 20);
        assert_eq!(m.limits.call_budget, Duration::from_millis(20));
        assert_eq!(m.limits.on_fault, OnFault::FailClosed);
        assert_eq!(m.limits.restart_limit, 2);
        assert_eq!(m.limits.restart_window, Duration::from_secs(5));
        assert_eq!(m.limits.on_disable, OnDisable::StayDisabled);
        assert_eq!(m.limits.instances, Some(4));
    }

    /// Every validation rule: (manifest text, field named, words in the message).
    #[test]
    fn every_rule_names_its_field() {
        let e = base("extension");
        let c = base("congestion-policy");
        let sha = "ab".repeat(32);
        let table: Vec<(String, Option<&str>, &str)> = vec![
            ("not toml [".into(), None, "invalid TOML at line 1"),
            ("[plugin]\nname = \"x\"\n".into(), None, "missing field"),
            (e.clone() + "[plugin2]\n", None, "unknown field"),
            (e.clone() + "[limits]\nmemmory = 1\n", None, "unknown field"),
            (
                e.replace("name = \"x\"", "name = \"X y\""),
                Some("plugin.name"),
                "not a plugin name",
            ),
            (
                e.replace("name = \"x\"", "name = \"\""),
                Some("plugin.name"),
                "not a plugin name",
            ),
            (
                e.replace("0.1.0", "1.0"),
                Some("plugin.version"),
                "MAJOR.MINOR.PATCH",
            ),
            (
                e.replace("\"extension\"", "\"firewall\""),
                Some("plugin.world"),
                "not a world",
            ),
            (
                e.replace("../dist/x.wasm", ""),
                Some("plugin.component"),
                "empty",
            ),
            (
                e.replace(&sha, "abc"),
                Some("plugin.sha256"),
                "64 hex digits",
            ),
            (
                e.replace(&sha, &"zz".repeat(32)),
                Some("plugin.sha256"),
                "not hexadecimal",
            ),
            (
                c.clone() + "[capabilities]\nhosts = [\"*\"]\n",
                Some("capabilities.hosts"),
                "see no hosts",
            ),
            (
                e.clone() + "[capabilities]\nhosts = [\"a b\"]\n",
                Some("capabilities.hosts[0]"),
                "not a host pattern",
            ),
            (
                c.clone() + "[capabilities]\nredirect-hosts = [\"cdn.example\"]\n",
                Some("capabilities.redirect-hosts"),
                "only extensions redirect",
            ),
            (
                e.clone() + "[capabilities]\nredirect-hosts = [\"cdn.example\", \"https://x\"]\n",
                Some("capabilities.redirect-hosts[1]"),
                "not a redirect host",
            ),
            (
                e.clone() + "[capabilities]\nheaders = [\"Cookie\"]\n",
                Some("capabilities.headers[0]"),
                "lowercase",
            ),
            (
                e.clone() + "[capabilities]\nheaders = [\"cookie\", \"cookie\"]\n",
                Some("capabilities.headers[1]"),
                "twice",
            ),
            (
                e.clone() + "[capabilities]\nstorage-quota = 0\n",
                Some("capabilities.storage-quota"),
                "is 0",
            ),
            (
                e.clone() + "[capabilities]\nstorage-quota = -5\n",
                Some("capabilities.storage-quota"),
                "negative",
            ),
            (
                e.clone() + "[capabilities]\nstorage-quota = \"2 GiB\"\n",
                Some("capabilities.storage-quota"),
                "1 GiB",
            ),
            (
                e.clone() + "[capabilities]\nstorage-quota = \"lots\"\n",
                Some("capabilities.storage-quota"),
                "not a size",
            ),
            (
                e.clone() + "[capabilities]\nwasi = [\"sockets\"]\n",
                Some("capabilities.wasi[0]"),
                "never granted",
            ),
            (
                e.clone() + "[capabilities]\nwasi = [\"clocks\", \"filesystem\"]\n",
                Some("capabilities.wasi[1]"),
                "storage-quota",
            ),
            (
                e.clone() + "[capabilities]\nwasi = [\"gpu\"]\n",
                Some("capabilities.wasi[0]"),
                "unknown WASI grant",
            ),
            (
                e.clone() + "[capabilities]\nfetch = [\"https://a.com/x\"]\n",
                Some("capabilities.fetch[0]"),
                "no path",
            ),
            (
                c.clone() + "[capabilities]\nmax-rules = 10\n",
                Some("capabilities.max-rules"),
                "only extensions",
            ),
            (
                e.clone() + "[capabilities]\nmax-rules = 300001\n",
                Some("capabilities.max-rules"),
                "outside",
            ),
            (
                e.clone() + "[limits]\nmemory = \"1 KiB\"\n",
                Some("limits.memory"),
                "outside 64 KiB",
            ),
            (
                e.clone() + "[limits]\nmemory = \"8 GiB\"\n",
                Some("limits.memory"),
                "outside 64 KiB",
            ),
            (
                e.clone() + "[limits]\ncall-budget = \"50\"\n",
                Some("limits.call-budget"),
                "no unit",
            ),
            (
                e.clone() + "[limits]\ncall-budget = \"500us\"\n",
                Some("limits.call-budget"),
                "outside 1ms",
            ),
            (e.clone() + "[limits]\ncall-budget = \"2s\"\n", None, ""),
            (
                e.clone() + "[limits]\ncall-budget = \"61s\"\n",
                Some("limits.call-budget"),
                "outside",
            ),
            (
                e.clone() + "[limits]\non-fault = \"ignore\"\n",
                Some("limits.on-fault"),
                "fail-open",
            ),
            (
                e.clone() + "[limits]\nrestart-limit = 101\n",
                Some("limits.restart-limit"),
                "outside",
            ),
            (
                e.clone() + "[limits]\nrestart-window = \"60\"\n",
                Some("limits.restart-window"),
                "no unit",
            ),
            (
                e.clone() + "[limits]\nrestart-window = \"5ms\"\n",
                Some("limits.restart-window"),
                "outside 10ms",
            ),
            (
                e.clone() + "[limits]\nrestart-window = \"86401s\"\n",
                Some("limits.restart-window"),
                "outside",
            ),
            (
                e.clone() + "[limits]\nrestart-window = \"86400s\"\n",
                None,
                "",
            ),
            (
                e.clone() + "[limits]\non-disable = \"never\"\n",
                Some("limits.on-disable"),
                "\"retry\"",
            ),
            (
                e.clone() + "[limits]\ninstances = 0\n",
                Some("limits.instances"),
                "0 is outside 1..=64",
            ),
            (
                e.clone() + "[limits]\ninstances = 65\n",
                Some("limits.instances"),
                "65 is outside 1..=64",
            ),
            (e.clone() + "[limits]\ninstances = 64\n", None, ""),
            (
                e.clone() + "[limits]\nrestart-limit = -1\n",
                Some("limits.restart-limit"),
                "outside",
            ),
        ];
        for (text, field, words) in table {
            match parse(&text) {
                Ok(_) => assert!(
                    words.is_empty(),
                    "accepted but should fail with {words:?}:\n{text}"
                ),
                Err(err) => {
                    assert!(!words.is_empty(), "rejected: {err}\n{text}");
                    assert_eq!(err.field(), field, "{err}");
                    assert!(err.message().contains(words), "{err} lacks {words:?}");
                    let shown = err.to_string();
                    assert!(shown.starts_with(PATH), "{shown}");
                }
            }
        }
    }

    #[test]
    fn unreadable_file_is_named() {
        let err = Manifest::load(Path::new("/nonexistent/plugin.toml")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("/nonexistent/plugin.toml: cannot read"));
    }
}
