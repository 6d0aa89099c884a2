//! Which version of the `sockhost:plugin` WIT contract a component was
//! built against, and how the host brings it to the latest.
//!
//! The latest version is named here and nowhere else in the host: in
//! [`WIT_VERSION`] and in the folder [`bindgen_latest!`] hands wasmtime's
//! bindgen (a literal, because bindgen reads its options before any macro
//! in them would expand; a test checks the two agree). Every bridge is
//! generated from that folder, so host logic is written once, against the
//! latest.
//!
//! A released folder under `wit/` is frozen. Releasing a new version is:
//! a new folder, the two literals here moved to it, and one adapter module
//! for the previous version, registered in [`ADAPTERS`]. The adapter gets
//! the old component and returns one the latest bindings can instantiate:
//! the old component composed with an adapter component that exports the
//! latest interfaces and imports the latest host interfaces, translating
//! for the old component inside it. The bridges do not change for it.

use std::collections::BTreeMap;
use std::fmt;

use sockhost_policy::InterfaceName;
use wasmtime::component::Component;

/// The WIT package every plugin is built against.
pub const WIT_PACKAGE: &str = "sockhost:plugin";

/// The latest version of [`WIT_PACKAGE`]: what the host's bindings are
/// generated from, and what every adapter adapts to.
pub const WIT_VERSION: &str = "0.1.0";

/// `wasmtime::component::bindgen!` over the latest WIT folder.
///
/// `bindgen_latest!("sockhost:plugin/base")` generates a world as is;
/// `bindgen_latest!(shared "sockhost:plugin/<world>")` maps the interfaces
/// every world shares (`log`, `storage`, `types`) to [`super::bindings`],
/// so each host import is implemented once.
macro_rules! bindgen_latest {
    ($world:tt) => {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: $world,
        });
    };
    (shared $world:tt) => {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: $world,
            with: {
                "sockhost:plugin/log": crate::plugins::bindings::log,
                "sockhost:plugin/storage": crate::plugins::bindings::storage,
                "sockhost:plugin/types": crate::plugins::bindings::types,
            },
        });
    };
}
pub(crate) use bindgen_latest;

/// Brings a component built against one version to the latest: given the
/// component's bytes and its compilation, returns a component whose
/// `sockhost:plugin` exports and imports are the latest's.
pub type AdaptFn = fn(&wasmtime::Engine, &[u8], Component) -> wasmtime::Result<Component>;

/// One WIT version the host loads, and how.
#[derive(Clone, Copy)]
pub struct Adapter {
    version: &'static str,
    adapt: AdaptFn,
}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("version", &self.version)
            .field("to", &WIT_VERSION)
            .finish()
    }
}

impl Adapter {
    /// The version whose components this adapter takes.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Whether components of this version are used as they are.
    pub fn is_latest(&self) -> bool {
        self.version == WIT_VERSION
    }

    /// The component, brought to the latest version.
    pub fn adapt(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        component: Component,
    ) -> wasmtime::Result<Component> {
        (self.adapt)(engine, bytes, component)
    }
}

/// The latest version's components already speak the latest contract.
fn identity(_: &wasmtime::Engine, _: &[u8], component: Component) -> wasmtime::Result<Component> {
    Ok(component)
}

/// Every version the host loads, newest first.
pub const ADAPTERS: &[Adapter] = &[Adapter {
    version: WIT_VERSION,
    adapt: identity,
}];

/// The adapter for components of `version`, if the host loads them.
pub fn adapter(version: &str) -> Option<&'static Adapter> {
    ADAPTERS.iter().find(|a| a.version == version)
}

/// The versions the host loads, newest first, comma-separated.
pub fn supported() -> String {
    ADAPTERS
        .iter()
        .map(|a| a.version)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a component's WIT version is not one the host loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitVersionError {
    /// Built against a version with no adapter here.
    #[error("built against {WIT_PACKAGE}@{found}, this host knows {supported}")]
    Unsupported {
        /// The component's version (`none` for unversioned names).
        found: String,
        /// The versions the host loads.
        supported: String,
    },
    /// Its `sockhost:plugin` names do not agree on a version.
    #[error("mixes versions of {WIT_PACKAGE}: {}", describe(.names))]
    Mixed {
        /// One name per version found, by version.
        names: BTreeMap<String, String>,
    },
    /// It neither imports nor exports any `sockhost:plugin` interface.
    #[error("neither imports nor exports any {WIT_PACKAGE} interface")]
    NotAPlugin,
}

fn describe(names: &BTreeMap<String, String>) -> String {
    names
        .iter()
        .map(|(version, name)| format!("{version} ({name})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The version a component with these import and export names was built
/// against, and its adapter. Names outside `sockhost:plugin` (WASI) are
/// ignored; every `sockhost:plugin` name must carry the same version.
pub fn detect<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<&'static Adapter, WitVersionError> {
    let mut versions: BTreeMap<String, String> = BTreeMap::new();
    for name in names {
        let Ok(iface) = name.parse::<InterfaceName>() else {
            continue;
        };
        if format!("{}:{}", iface.namespace, iface.package) != WIT_PACKAGE {
            continue;
        }
        let version = iface.version.unwrap_or_else(|| "none".to_owned());
        versions.entry(version).or_insert_with(|| name.to_owned());
    }
    let mut found = versions.keys();
    match (found.next(), found.next()) {
        (None, _) => Err(WitVersionError::NotAPlugin),
        (Some(version), None) => adapter(version).ok_or_else(|| WitVersionError::Unsupported {
            found: version.clone(),
            supported: supported(),
        }),
        (Some(_), Some(_)) => Err(WitVersionError::Mixed { names: versions }),
    }
}

/// [`detect`] over a compiled component's top-level imports and exports.
pub fn detect_component(
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<&'static Adapter, WitVersionError> {
    let ty = component.component_type();
    let imports = ty.imports(engine).map(|(n, _)| n);
    let exports = ty.exports(engine).map(|(n, _)| n);
    detect(imports.chain(exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_is_the_folder_bindgen_reads() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../wit")
            .join(WIT_VERSION);
        assert!(folder.is_dir(), "{}", folder.display());
        let types = std::fs::read_to_string(folder.join("types.wit")).unwrap();
        assert!(
            types.contains(&format!("package {WIT_PACKAGE}@{WIT_VERSION};")),
            "wit/{WIT_VERSION}/types.wit declares another version"
        );
        // The bindings are generated from that folder: the names they link
        // under carry its version.
        let engine = wasmtime::Engine::default();
        let mut linker =
            wasmtime::component::Linker::<super::super::state::PluginState>::new(&engine);
        super::super::bindings::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .unwrap();
        let c = Component::new(
            &engine,
            format!(r#"(component (import "{WIT_PACKAGE}/log@{WIT_VERSION}" (instance)))"#),
        )
        .unwrap();
        linker.instantiate_pre(&c).unwrap();
    }

    #[test]
    fn the_registry_matches_the_gate() {
        let ours: Vec<&str> = ADAPTERS.iter().map(Adapter::version).collect();
        let mut sorted = ours.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(ours, sorted, "newest first");
        assert_eq!(ours[0], WIT_VERSION);
        let mut gate = sockhost_policy::KNOWN_WIT_VERSIONS.to_vec();
        gate.sort_by(|a, b| b.cmp(a));
        assert_eq!(ours, gate);
        assert!(adapter(WIT_VERSION).unwrap().is_latest());
    }

    #[test]
    fn detects_the_version_from_the_names() {
        let v = |names: &[&str]| detect(names.iter().copied()).map(Adapter::version);
        assert_eq!(
            v(&[
                "wasi:io/streams@0.2.6",
                "sockhost:plugin/log@0.1.0",
                "sockhost:plugin/add-on@0.1.0",
            ]),
            Ok("0.1.0")
        );
        assert_eq!(v(&["sockhost:plugin/connect@0.1.0"]), Ok("0.1.0"));

        let err = v(&["sockhost:plugin/log@9.0.0", "sockhost:plugin/add-on@9.0.0"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "built against sockhost:plugin@9.0.0, this host knows 0.1.0"
        );
        let err = v(&["sockhost:plugin/add-on"]).unwrap_err();
        assert!(err.to_string().contains("sockhost:plugin@none"), "{err}");

        let err = v(&[
            "sockhost:plugin/log@0.2.0",
            "sockhost:plugin/add-on@0.1.0",
            "sockhost:plugin/types@0.1.0",
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mixes versions of sockhost:plugin: 0.1.0 (sockhost:plugin/add-on@0.1.0), \
             0.2.0 (sockhost:plugin/log@0.2.0)"
        );

        assert_eq!(
            v(&["wasi:cli/run@0.2.0", "acme:x/sockhost@1.0.0", "not a name"]),
            Err(WitVersionError::NotAPlugin)
        );
    }

    #[test]
    fn detects_and_adapts_a_compiled_component() {
        let engine = wasmtime::Engine::default();
        let compile = |wat: &str| Component::new(&engine, wat).unwrap();
        let ok = compile(&format!(
            r#"(component
                (import "{WIT_PACKAGE}/log@{WIT_VERSION}" (instance))
                (instance $i)
                (export "{WIT_PACKAGE}/telemetry@{WIT_VERSION}" (instance $i)))"#
        ));
        let adapter = detect_component(&ok, &engine).unwrap();
        assert_eq!(adapter.version(), WIT_VERSION);
        let adapted = adapter.adapt(&engine, &[], ok).unwrap();
        let exports: Vec<String> = adapted
            .component_type()
            .exports(&engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        assert_eq!(exports, [format!("{WIT_PACKAGE}/telemetry@{WIT_VERSION}")]);

        let mixed = compile(&format!(
            r#"(component
                (import "{WIT_PACKAGE}/log@0.0.1" (instance))
                (instance $i)
                (export "{WIT_PACKAGE}/telemetry@{WIT_VERSION}" (instance $i)))"#
        ));
        let err = detect_component(&mixed, &engine).unwrap_err();
        assert!(
            matches!(&err, WitVersionError::Mixed { names } if names.len() == 2),
            "{err}"
        );
    }
}
