//! Loading a plugin: manifest, hash, compile, the capability gate over the
//! component's imports, linking, pre-instantiation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};
use sockhost_policy::{ImportDecision, InterfaceName, Manifest, ManifestError, World};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

use super::bindings::{log, storage};
use super::compile_hint::slow_compile_hint;
use super::engine::{EngineError, EngineOptions, PluginEngine};
use super::fault::FaultLog;
use super::no_sockets;
use super::state::PluginState;
use super::wit_version::{self, WitVersionError, WIT_VERSION};
use super::world_link::WorldLink;

pub use super::wit_version::WIT_PACKAGE;

/// Largest component file the host reads, in bytes: a first-party plugin is
/// tens of KiB, and compile time grows with size.
pub const MAX_COMPONENT_SIZE: u64 = 64 << 20;

/// Why a plugin could not be loaded. Each message names the file and says
/// what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The manifest is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component file could not be read.
    #[error("cannot read component {path}: {message}")]
    Read {
        /// The component file.
        path: PathBuf,
        /// The i/o error.
        message: String,
    },
    /// The component is not the one the manifest pins.
    #[error("sha256 mismatch for {path}: the manifest says {expected}, the file is {actual}")]
    HashMismatch {
        /// The component file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// The file is a core module, or not WebAssembly at all.
    #[error("{path} is not a WebAssembly component: {detail}")]
    NotAComponent {
        /// The component file.
        path: PathBuf,
        /// What it is instead.
        detail: &'static str,
    },
    /// wasmtime could not compile it.
    #[error("cannot compile {path}: {message}")]
    Compile {
        /// The component file.
        path: PathBuf,
        /// wasmtime's error.
        message: String,
    },
    /// It does not export the manifest's world.
    #[error("{path} does not implement world {world}: it should export {WIT_PACKAGE}/{expected}, it exports {found}")]
    WrongWorld {
        /// The component file.
        path: PathBuf,
        /// The manifest's world.
        world: World,
        /// The interface that world exports.
        expected: &'static str,
        /// What it exports.
        found: String,
    },
    /// It was built against a WIT version this host does not load.
    #[error("{path}: {source}")]
    WitVersion {
        /// The component file.
        path: PathBuf,
        /// Which version, and what the host loads.
        source: WitVersionError,
    },
    /// The adapter of its WIT version to the latest failed.
    #[error("cannot adapt {path} from {WIT_PACKAGE}@{version} to @{WIT_VERSION}: {message}")]
    Adapt {
        /// The component file.
        path: PathBuf,
        /// The version it was built against.
        version: &'static str,
        /// The adapter's error.
        message: String,
    },
    /// An import the policy does not grant.
    #[error("{path}: import {name} refused: {why}")]
    ImportRefused {
        /// The component file.
        path: PathBuf,
        /// The import.
        name: String,
        /// Why, and how to fix it when it can be.
        why: String,
    },
    /// Linking or pre-instantiation failed.
    #[error("cannot link {path}: {message}")]
    Link {
        /// The component file.
        path: PathBuf,
        /// wasmtime's error.
        message: String,
    },
    /// The plugin's storage directory could not be opened.
    #[error("cannot open storage for plugin {plugin} at {path}: {message}")]
    Storage {
        /// The plugin.
        plugin: String,
        /// The directory.
        path: PathBuf,
        /// The i/o error.
        message: String,
    },
}

/// How one import of a component was decided.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The import's name, e.g. `sockhost:plugin/log@0.1.0`.
    pub name: String,
    /// The gate's decision.
    pub decision: ImportDecision,
}

/// Options for a [`PluginRuntime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Engine options.
    pub engine: EngineOptions,
    /// Where plugin storage lives (`<data-dir>/plugins/<name>/storage`).
    /// Plugins granted storage fail to load without one.
    pub data_dir: Option<PathBuf>,
}

/// Loads plugins into one engine and keeps their fault log.
#[derive(Debug, Clone)]
pub struct PluginRuntime {
    engine: PluginEngine,
    faults: FaultLog,
    data_dir: Option<PathBuf>,
    world_links: Arc<[Arc<dyn WorldLink>]>,
    compile_hints: bool,
    // Components (by sha256) whose slow compile was logged: once each.
    hinted: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// A plugin that passed every load check and is ready to instantiate.
pub struct LoadedPlugin {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) engine: PluginEngine,
    pub(crate) faults: FaultLog,
    pub(crate) instance_pre: InstancePre<PluginState>,
    pub(crate) storage_dir: Option<Arc<Dir>>,
    imports: Vec<ImportReport>,
    wit_version: String,
    size: u64,
    compile_time: Duration,
    cached: bool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("plugin", &self.manifest.plugin.name)
            .field("world", &self.manifest.plugin.world)
            .field("wit_version", &self.wit_version)
            .field("imports", &self.imports)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.plugin.name
    }
    /// The world it implements.
    pub fn world(&self) -> World {
        self.manifest.plugin.world
    }
    /// The WIT version it was built against.
    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }
    /// Every import and the gate's decision on it.
    pub fn imports(&self) -> &[ImportReport] {
        &self.imports
    }
    /// The component's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Whether the compiled code came from the on-disk cache.
    pub fn cached(&self) -> bool {
        self.cached
    }
    /// How long compiling (or loading from the cache) took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

impl PluginRuntime {
    /// A runtime with its own engine, linking the host interfaces of the
    /// worlds `world_links` name on top of the ones every world shares.
    /// [`PluginRuntime::new`] passes every world this host has a bridge for.
    pub fn with_world_links(
        options: RuntimeOptions,
        world_links: Vec<Arc<dyn WorldLink>>,
    ) -> Result<Self, EngineError> {
        Ok(Self {
            engine: PluginEngine::new(&options.engine)?,
            faults: FaultLog::default(),
            data_dir: options.data_dir,
            world_links: world_links.into(),
            compile_hints: true,
            hinted: Arc::default(),
        })
    }

    /// Without the log line a slow cold compile gets otherwise (see
    /// [`super::compile_hint::SLOW_COMPILE`]): for commands that print compile times themselves.
    pub fn without_compile_hints(mut self) -> Self {
        self.compile_hints = false;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// Every fault of every plugin loaded here.
    pub fn faults(&self) -> &FaultLog {
        &self.faults
    }

    /// Loads the plugin described by the manifest at `path`.
    pub fn load(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let manifest = Manifest::load(path)?;
        let bytes = read_component(&manifest)?;
        self.load_checked(manifest, &bytes, Some(path))
    }

    /// Loads the plugin a parsed manifest describes.
    pub fn load_manifest(&self, manifest: Manifest) -> Result<LoadedPlugin, LoadError> {
        let bytes = read_component(&manifest)?;
        self.load_checked(manifest, &bytes, None)
    }

    /// Loads a component given as bytes (plugins embedded in the binary);
    /// the manifest's `component` path only names it in errors. The bytes
    /// are checked against the manifest's sha256 like a file's.
    pub fn load_bytes(&self, manifest: Manifest, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        self.load_checked(manifest, bytes, None)
    }

    /// Loads after reading; `manifest_path` names the manifest in the
    /// slow-compile hint.
    fn load_checked(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        manifest_path: Option<&Path>,
    ) -> Result<LoadedPlugin, LoadError> {
        let path = manifest.plugin.component.clone();
        if bytes.len() as u64 > MAX_COMPONENT_SIZE {
            return Err(LoadError::Read {
                path,
                message: format!(
                    "{} bytes is larger than the {MAX_COMPONENT_SIZE}-byte limit",
                    bytes.len()
                ),
            });
        }
        let actual: [u8; 32] = Sha256::digest(bytes).into();
        if actual != manifest.plugin.sha256 {
            return Err(LoadError::HashMismatch {
                path,
                expected: hex::encode(manifest.plugin.sha256),
                actual: hex::encode(actual),
            });
        }
        if !wasmparser::Parser::is_component(bytes) {
            let detail = if wasmparser::Parser::is_core_wasm(bytes) {
                "it is a core module (make it a component with plugins/build.sh)"
            } else {
                "it does not start with the WebAssembly header"
            };
            return Err(LoadError::NotAComponent { path, detail });
        }

        let hits = self.engine.cache_hits();
        let started = Instant::now();
        let component =
            Component::new(self.engine.engine(), bytes).map_err(|e| LoadError::Compile {
                path: path.clone(),
                message: format!("{e:#}"),
            })?;
        let compile_time = started.elapsed();
        let cached = self.engine.cache_hits() > hits;
        if self.compile_hints {
            let hint = slow_compile_hint(
                &manifest.plugin.name,
                manifest_path,
                compile_time,
                cached,
                self.engine.has_cache(),
            );
            if let Some(hint) = hint {
                let first = self
                    .hinted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(manifest.plugin.sha256);
                if first {
                    tracing::warn!("{hint}");
                }
            }
        }

        check_world(&component, &manifest, self.engine.engine(), &path)?;
        let adapter =
            wit_version::detect_component(&component, self.engine.engine()).map_err(|source| {
                LoadError::WitVersion {
                    path: path.clone(),
                    source,
                }
            })?;
        // The gate judges what the plugin itself imports; the adapted
        // component is what gets linked.
        let imports = gate_imports(&component, &manifest, self.engine.engine(), &path)?;
        let component = adapter
            .adapt(self.engine.engine(), bytes, component)
            .map_err(|e| LoadError::Adapt {
                path: path.clone(),
                version: adapter.version(),
                message: format!("{e:#}"),
            })?;
        let wit_version = adapter.version().to_owned();
        let storage_dir = self.storage_dir(&manifest)?;

        let link_err = |e: wasmtime::Error| LoadError::Link {
            path: path.clone(),
            message: format!("{e:#}"),
        };
        let world_link = self
            .world_links
            .iter()
            .find(|l| l.world() == manifest.plugin.world)
            .map(|l| &**l);
        let linker = build_linker(&self.engine, &imports, world_link).map_err(link_err)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(link_err)?;

        Ok(LoadedPlugin {
            manifest: Arc::new(manifest),
            engine: self.engine.clone(),
            faults: self.faults.clone(),
            instance_pre,
            storage_dir,
            imports,
            wit_version,
            size: bytes.len() as u64,
            compile_time,
            cached,
        })
    }

    fn storage_dir(&self, manifest: &Manifest) -> Result<Option<Arc<Dir>>, LoadError> {
        if manifest.capabilities.storage_quota.is_none() {
            return Ok(None);
        }
        let name = &manifest.plugin.name;
        let storage_err = |path: PathBuf, e: std::io::Error| LoadError::Storage {
            plugin: name.clone(),
            path,
            message: e.to_string(),
        };
        let Some(data_dir) = &self.data_dir else {
            return Err(LoadError::Storage {
                plugin: name.clone(),
                path: PathBuf::from("<none>"),
                message: "the manifest grants storage but the host has no data directory".into(),
            });
        };
        // The plugin name is validated by the policy ([a-z0-9-]), so it is a
        // single path component.
        let rel = Path::new("plugins").join(name).join("storage");
        let full = data_dir.join(&rel);
        std::fs::create_dir_all(&full).map_err(|e| storage_err(full.clone(), e))?;
        let dir = Dir::open_ambient_dir(&full, ambient_authority())
            .map_err(|e| storage_err(full.clone(), e))?;
        Ok(Some(Arc::new(dir)))
    }
}

/// Reads the component a manifest names, refusing one over the size limit
/// before reading it.
fn read_component(manifest: &Manifest) -> Result<Vec<u8>, LoadError> {
    let path = &manifest.plugin.component;
    let read_err = |message: String| LoadError::Read {
        path: path.clone(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    if meta.len() > MAX_COMPONENT_SIZE {
        return Err(read_err(format!(
            "{} bytes is larger than the {MAX_COMPONENT_SIZE}-byte limit",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| read_err(e.to_string()))
}

/// Finds the `sockhost:plugin` interface the component exports and checks it
/// is the manifest's world.
fn check_world(
    component: &Component,
    manifest: &Manifest,
    engine: &wasmtime::Engine,
    path: &Path,
) -> Result<(), LoadError> {
    let world = manifest.plugin.world;
    let expected = world.export_interface();
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let wrong = |found: String| LoadError::WrongWorld {
        path: path.to_owned(),
        world,
        expected,
        found,
    };
    let ours: Vec<InterfaceName> = exports
        .iter()
        .filter_map(|n| n.parse::<InterfaceName>().ok())
        .filter(|n| format!("{}:{}", n.namespace, n.package) == WIT_PACKAGE)
        .collect();
    if !ours.iter().any(|n| n.interface == expected) {
        let found = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        return Err(wrong(found));
    }
    Ok(())
}

/// Asks the policy about every import; the first refusal fails the load.
fn gate_imports(
    component: &Component,
    manifest: &Manifest,
    engine: &wasmtime::Engine,
    path: &Path,
) -> Result<Vec<ImportReport>, LoadError> {
    let ty = component.component_type();
    let mut reports = Vec::new();
    for (name, item) in ty.imports(engine) {
        // A component can only import instances (interfaces) from the host
        // in any way the policy understands; bare functions or types at the
        // top level are refused like unknown interfaces.
        let decision = match item.ty {
            ComponentItem::ComponentInstance(_) => manifest.decide_import(name),
            _ => manifest.decide_import(&format!("{name} (not an interface)")),
        };
        if let ImportDecision::Refused { why } = &decision {
            return Err(LoadError::ImportRefused {
                path: path.to_owned(),
                name: name.to_owned(),
                why: why.to_string(),
            });
        }
        reports.push(ImportReport {
            name: name.to_owned(),
            decision,
        });
    }
    Ok(reports)
}

/// Links exactly what the gate let through: sockhost's own interfaces (a
/// world's own ones through its bridge's `world_link`; storage without
/// authority when not granted), WASI (if imported at all) with no authority
/// beyond grants.
fn build_linker(
    engine: &PluginEngine,
    imports: &[ImportReport],
    world_link: Option<&dyn WorldLink>,
) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine.engine());
    let mut wasi = false;
    for import in imports {
        let Ok(name) = import.name.parse::<InterfaceName>() else {
            continue;
        };
        match (name.namespace.as_str(), name.interface.as_str()) {
            ("sockhost", "log") => {
                log::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
            }
            // Without a grant too: the store has no storage then, and every
            // call fails as not granted.
            ("sockhost", "storage") => {
                storage::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
            }
            // Types-only interfaces: an empty instance satisfies the import.
            ("sockhost", "types" | "rule-types") => {
                linker.instance(&import.name)?;
            }
            ("wasi", _) => wasi = true,
            ("sockhost", interface) => {
                if let Some(link) = world_link {
                    link.link(interface, &mut linker)?;
                }
            }
            _ => {}
        }
    }
    if wasi {
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        no_sockets::add_to_linker(&mut linker)?;
    }
    Ok(linker)
}
