//! The first-party plugins compiled into the binary, so that `sockhost`
//! runs its defaults with no files beside it. The bytes are the committed
//! `plugins/dist/` components, checked against their manifests' sha256 at
//! load like any file.

use std::path::Path;

use sockhost_policy::Manifest;

use crate::plugins::{LoadError, LoadedPlugin, PluginRuntime};

/// A plugin embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    manifest: &'static str,
    component: &'static [u8],
}

/// The default extension.
pub const BLOCKLIST: Builtin = Builtin {
    name: "blocklist",
    manifest: include_str!("../../plugins/blocklist/plugin.toml"),
    component: include_bytes!("../../plugins/dist/blocklist.wasm"),
};

/// The default probe.
pub const REQUEST_STATS: Builtin = Builtin {
    name: "request-stats",
    manifest: include_str!("../../plugins/request-stats/plugin.toml"),
    component: include_bytes!("../../plugins/dist/request-stats.wasm"),
};

impl Builtin {
    /// Loads it into `runtime`.
    pub fn load(&self, runtime: &PluginRuntime) -> Result<LoadedPlugin, LoadError> {
        // A virtual path, so errors say where the plugin came from.
        let path = Path::new("builtin").join(self.name).join("plugin.toml");
        let manifest = Manifest::parse(self.manifest, &path)?;
        runtime.load_bytes(manifest, self.component)
    }
}

/// A runtime for unit tests that load the embedded plugins.
#[cfg(test)]
pub(crate) fn test_runtime() -> PluginRuntime {
    use crate::plugins::{EngineOptions, RuntimeOptions};
    PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling: false,
            cache_dir: None,
        },
        data_dir: None,
    })
    .expect("a plugin runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_plugins_load() {
        let rt = test_runtime();
        for b in [BLOCKLIST, REQUEST_STATS] {
            let loaded = b.load(&rt).unwrap();
            assert_eq!(loaded.name(), b.name);
        }
    }
}
