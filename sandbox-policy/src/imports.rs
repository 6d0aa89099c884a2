//! The load-time gate: may a component have this import?
//!
//! sockhost's own interfaces and WASI interfaces are either granted by the
//! manifest, linked in a form with no authority (what language runtimes
//! import whether or not a plugin uses it), or refused. An import nobody
//! decided on is refused: deny by default.

use std::fmt;
use std::str::FromStr;

use crate::manifest::{Manifest, WasiGrant};
use crate::world::World;

/// The versions of `sockhost:plugin` this build of sockhost implements.
pub const KNOWN_WIT_VERSIONS: &[&str] = &["0.1.0"];

/// What the host does with one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportDecision {
    /// Linked with the authority the manifest grants.
    Granted {
        /// What the grant is.
        why: String,
    },
    /// Linked in a form that can reach nothing (no directories, no
    /// environment, no network, no inherited stdio, no storage): every call
    /// that would need authority fails with the interface's own error.
    NoAuthority {
        /// What the plugin gets.
        why: String,
    },
    /// Not linked: the load fails naming the import.
    Refused {
        /// Why, and how to grant it if it can be granted.
        why: String,
    },
}

impl ImportDecision {
    fn granted(why: impl Into<String>) -> Self {
        ImportDecision::Granted { why: why.into() }
    }
    fn no_authority(why: impl Into<String>) -> Self {
        ImportDecision::NoAuthority { why: why.into() }
    }
    fn refused(why: impl Into<String>) -> Self {
        ImportDecision::Refused { why: why.into() }
    }

    /// Whether the import is refused.
    pub fn is_refused(&self) -> bool {
        matches!(self, ImportDecision::Refused { .. })
    }
}

/// A component-model interface name: `namespace:package/interface@version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName {
    /// `sockhost`, `wasi`, …
    pub namespace: String,
    /// `plugin`, `io`, …
    pub package: String,
    /// `log`, `streams`, …
    pub interface: String,
    /// The package version, if the name has one.
    pub version: Option<String>,
}

/// A string is not an interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an interface name (namespace:package/interface@version)")]
pub struct InterfaceNameError(String);

impl FromStr for InterfaceName {
    type Err = InterfaceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InterfaceNameError(s.to_owned());
        let (path, version) = match s.split_once('@') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_owned())),
            Some(_) => return Err(err()),
            None => (s, None),
        };
        let (namespace, rest) = path.split_once(':').ok_or_else(err)?;
        let (package, interface) = rest.split_once('/').ok_or_else(err)?;
        let ident = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !ident(namespace) || !ident(package) || !ident(interface) {
            return Err(err());
        }
        Ok(InterfaceName {
            namespace: namespace.to_owned(),
            package: package.to_owned(),
            interface: interface.to_owned(),
            version,
        })
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.namespace, self.package, self.interface)?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        Ok(())
    }
}

/// The decision for import `name` of a plugin with `manifest`.
pub(crate) fn decide(manifest: &Manifest, name: &str) -> ImportDecision {
    let Ok(iface) = name.parse::<InterfaceName>() else {
        return ImportDecision::refused("sockhost provides interfaces only, and this is not one");
    };
    match (iface.namespace.as_str(), iface.package.as_str()) {
        ("sockhost", "plugin") => decide_sockhost(manifest, &iface),
        ("wasi", _) => decide_wasi(manifest, &iface),
        _ => ImportDecision::refused(format!(
            "sockhost does not provide {}:{}",
            iface.namespace, iface.package
        )),
    }
}

fn decide_sockhost(manifest: &Manifest, iface: &InterfaceName) -> ImportDecision {
    let version = iface.version.as_deref().unwrap_or("");
    if !KNOWN_WIT_VERSIONS.contains(&version) {
        return ImportDecision::refused(format!(
            "unknown sockhost:plugin version {version:?} (this host implements {})",
            KNOWN_WIT_VERSIONS.join(", ")
        ));
    }
    let caps = &manifest.capabilities;
    match iface.interface.as_str() {
        "types" | "rule-types" => ImportDecision::granted("type definitions only"),
        "log" => ImportDecision::granted("always available, rate-limited"),
        // Every world's `base` imports storage, so a language runtime's
        // bindings import it whether or not the plugin stores anything.
        "storage" => match caps.storage_quota {
            Some(q) => ImportDecision::granted(format!("a private directory, quota {q} bytes")),
            None => ImportDecision::no_authority(
                "storage not granted: every call fails saying so \
                 (set capabilities.storage-quota in plugin.toml to grant it)",
            ),
        },
        "rules" if manifest.plugin.world == World::Extension => {
            ImportDecision::granted(format!("up to {} declarative rules", caps.max_rules))
        }
        "rules" => ImportDecision::refused("only extensions hand the host declarative rules"),
        other => ImportDecision::refused(format!(
            "sockhost:plugin@{version} has no interface {other:?}"
        )),
    }
}

fn decide_wasi(manifest: &Manifest, iface: &InterfaceName) -> ImportDecision {
    let version = iface.version.as_deref().unwrap_or("");
    if !version.starts_with("0.2.") {
        return ImportDecision::refused(format!(
            "only WASI 0.2 is provided, not version {version:?}"
        ));
    }
    let wasi = &manifest.capabilities.wasi;
    let grant = |g: WasiGrant, what: &str| {
        if wasi.contains(&g) {
            ImportDecision::granted(format!("capabilities.wasi grants {g}"))
        } else {
            ImportDecision::refused(format!(
                "{what} is not granted: add \"{g}\" to capabilities.wasi in plugin.toml"
            ))
        }
    };
    match (iface.package.as_str(), iface.interface.as_str()) {
        ("io", "error" | "poll" | "streams") => {
            ImportDecision::no_authority("streams and polling over what else is granted")
        }
        ("cli", "environment") => ImportDecision::no_authority("no variables, no arguments"),
        ("cli", "exit") => ImportDecision::no_authority("exiting ends the call, like a trap"),
        ("cli", "stdin" | "stdout" | "stderr") => {
            if wasi.contains(&WasiGrant::Stdio) {
                ImportDecision::granted("output goes to sockhost's log, input is empty")
            } else {
                ImportDecision::no_authority("empty input, output discarded")
            }
        }
        ("cli", i) if i.starts_with("terminal-") => ImportDecision::no_authority("no terminal"),
        ("filesystem", "types" | "preopens") => ImportDecision::no_authority(
            "no preopened directories (storage comes from capabilities.storage-quota)",
        ),
        ("clocks", "wall-clock" | "monotonic-clock") => grant(WasiGrant::Clocks, "wasi:clocks"),
        ("random", "random" | "insecure" | "insecure-seed") => {
            grant(WasiGrant::Random, "wasi:random")
        }
        // Language runtimes (CPython, SpiderMonkey) import sockets whether
        // or not the plugin uses them.
        (
            "sockets",
            "network" | "instance-network" | "tcp" | "tcp-create-socket" | "udp"
            | "udp-create-socket" | "ip-name-lookup",
        ) => ImportDecision::no_authority(
            "every socket creation and name lookup fails with access-denied: \
             the host owns every socket",
        ),
        ("http", _) => ImportDecision::refused(
            "wasi:http is never granted to plugins: requests go through the host",
        ),
        (package, interface) => ImportDecision::refused(format!(
            "sockhost does not provide wasi:{package}/{interface}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn manifest(world: &str, caps: &str) -> Manifest {
        let text = format!(
            "[plugin]\nname = \"t\"\nversion = \"1.0.0\"\nworld = \"{world}\"\n\
             component = \"t.wasm\"\nsha256 = \"{}\"\n[capabilities]\n{caps}\n",
            "0".repeat(64)
        );
        Manifest::parse(&text, Path::new("/p/plugin.toml")).expect("valid")
    }

    #[derive(Debug, PartialEq)]
    enum D {
        G,
        N,
        R,
    }

    fn kind(d: &ImportDecision) -> D {
        match d {
            ImportDecision::Granted { .. } => D::G,
            ImportDecision::NoAuthority { .. } => D::N,
            ImportDecision::Refused { .. } => D::R,
        }
    }

    #[test]
    fn interface_names() {
        let n: InterfaceName = "wasi:io/streams@0.2.6".parse().unwrap();
        assert_eq!(
            (
                n.namespace.as_str(),
                n.package.as_str(),
                n.interface.as_str()
            ),
            ("wasi", "io", "streams")
        );
        assert_eq!(n.version.as_deref(), Some("0.2.6"));
        assert_eq!(n.to_string(), "wasi:io/streams@0.2.6");
        let n: InterfaceName = "a:b/c".parse().unwrap();
        assert_eq!(n.version, None);
        for bad in [
            "", "log", "a:b", "a/b", "a:b/c@", "A:b/c", "a:b/c d", ":b/c",
        ] {
            assert!(bad.parse::<InterfaceName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_gate() {
        let none = manifest("extension", "");
        let all = manifest(
            "extension",
            "storage-quota = \"1 MiB\"\nwasi = [\"clocks\", \"random\", \"stdio\"]",
        );
        let probe = manifest("telemetry-probe", "");
        // (import, decision with nothing granted, with everything granted)
        let table: &[(&str, D, D)] = &[
            ("sockhost:plugin/types@0.1.0", D::G, D::G),
            ("sockhost:plugin/rule-types@0.1.0", D::G, D::G),
            ("sockhost:plugin/log@0.1.0", D::G, D::G),
            ("sockhost:plugin/storage@0.1.0", D::N, D::G),
            ("sockhost:plugin/storage@9.9.9", D::R, D::R),
            ("sockhost:plugin/storage", D::R, D::R),
            ("sockhost:plugin/rules@0.1.0", D::G, D::G),
            ("sockhost:plugin/log@9.9.9", D::R, D::R),
            ("sockhost:plugin/log", D::R, D::R),
            ("sockhost:plugin/fetch@0.1.0", D::R, D::R),
            ("sockhost:other/log@0.1.0", D::R, D::R),
            ("wasi:io/streams@0.2.0", D::N, D::N),
            ("wasi:io/poll@0.2.6", D::N, D::N),
            ("wasi:io/error@0.2.0", D::N, D::N),
            ("wasi:cli/environment@0.2.0", D::N, D::N),
            ("wasi:cli/exit@0.2.0", D::N, D::N),
            ("wasi:cli/stdout@0.2.0", D::N, D::G),
            ("wasi:cli/stderr@0.2.0", D::N, D::G),
            ("wasi:cli/stdin@0.2.0", D::N, D::G),
            ("wasi:cli/terminal-input@0.2.0", D::N, D::N),
            ("wasi:filesystem/types@0.2.0", D::N, D::N),
            ("wasi:filesystem/preopens@0.2.0", D::N, D::N),
            ("wasi:clocks/wall-clock@0.2.0", D::R, D::G),
            ("wasi:clocks/monotonic-clock@0.2.0", D::R, D::G),
            ("wasi:random/random@0.2.0", D::R, D::G),
            ("wasi:random/insecure-seed@0.2.0", D::R, D::G),
            ("wasi:sockets/network@0.2.9", D::N, D::N),
            ("wasi:sockets/instance-network@0.2.0", D::N, D::N),
            ("wasi:sockets/tcp@0.2.0", D::N, D::N),
            ("wasi:sockets/tcp-create-socket@0.2.0", D::N, D::N),
            ("wasi:sockets/udp@0.2.0", D::N, D::N),
            ("wasi:sockets/udp-create-socket@0.2.0", D::N, D::N),
            ("wasi:sockets/ip-name-lookup@0.2.3", D::N, D::N),
            ("wasi:sockets/types@0.3.0", D::R, D::R),
            ("wasi:sockets/tcp@0.3.0", D::R, D::R),
            ("wasi:sockets/tcp", D::R, D::R),
            ("wasi:sockets/raw@0.2.0", D::R, D::R),
            ("wasi:http/outgoing-handler@0.2.0", D::R, D::R),
            ("wasi:io/streams@0.3.0", D::R, D::R),
            ("wasi:keyvalue/store@0.2.0", D::R, D::R),
            ("acme:evil/thing@1.0.0", D::R, D::R),
            ("not an interface", D::R, D::R),
        ];
        for (name, without, with) in table {
            assert_eq!(
                &kind(&none.decide_import(name)),
                without,
                "{name} without grants"
            );
            assert_eq!(&kind(&all.decide_import(name)), with, "{name} with grants");
        }
        assert_eq!(
            kind(&probe.decide_import("sockhost:plugin/rules@0.1.0")),
            D::R
        );
    }

    /// Why an import of a plugin granted nothing was decided as it was,
    /// after checking it was decided `want`.
    fn why(name: &str, want: D) -> String {
        let decision = manifest("extension", "").decide_import(name);
        assert_eq!(kind(&decision), want, "{name}: {decision:?}");
        match decision {
            ImportDecision::Granted { why }
            | ImportDecision::NoAuthority { why }
            | ImportDecision::Refused { why } => why,
        }
    }

    #[test]
    fn refusals_say_how_to_grant() {
        let why = |name| why(name, D::R);
        assert!(why("wasi:clocks/wall-clock@0.2.0").contains("\"clocks\""));
        assert!(why("wasi:sockets/raw@0.2.0").contains("does not provide wasi:sockets/raw"));
        assert!(why("wasi:sockets/tcp@0.3.0").contains("\"0.3.0\""));
        assert!(why("sockhost:plugin/storage@0.2.0").contains("unknown sockhost:plugin version"));
    }

    #[test]
    fn no_authority_says_what_fails_and_how_to_grant() {
        let why = |name| why(name, D::N);
        let storage = why("sockhost:plugin/storage@0.1.0");
        assert!(storage.starts_with("storage not granted"), "{storage}");
        assert!(storage.contains("capabilities.storage-quota"), "{storage}");
        assert!(why("wasi:sockets/tcp-create-socket@0.2.0").contains("access-denied"));
        assert!(why("wasi:sockets/ip-name-lookup@0.2.0").contains("name lookup"));
    }
}
