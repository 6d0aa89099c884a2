//! The first-party plugins compiled into the binary, so that `sockhost`
//! runs its defaults with no files beside it. The bytes are the committed
//! `plugins/dist/` components, checked against their manifests' sha256 at
//! load like any file.

use std::path::Path;

use sockhost_policy::Manifest;

use crate::plugins::{LoadError, LoadedPlugin, PluginRuntime};

/// A plugin embedded in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// NewReno (RFC 9002), a congestion controller.
pub const NEWRENO: Builtin = Builtin {
    name: "newreno",
    manifest: include_str!("../../plugins/newreno/plugin.toml"),
    component: include_bytes!("../../plugins/dist/newreno.wasm"),
};

/// CUBIC (RFC 9438, with HyStart++), a congestion controller.
pub const CUBIC: Builtin = Builtin {
    name: "cubic",
    manifest: include_str!("../../plugins/cubic/plugin.toml"),
    component: include_bytes!("../../plugins/dist/cubic.wasm"),
};

/// The congestion controllers a config can name.
pub const CONGESTION: [Builtin; 2] = [CUBIC, NEWRENO];

/// The built-in congestion controller called `name`.
pub fn congestion(name: &str) -> Option<Builtin> {
    CONGESTION.into_iter().find(|b| b.name == name)
}

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
        for b in [BLOCKLIST, REQUEST_STATS, CUBIC, NEWRENO] {
            let loaded = b.load(&rt).unwrap();
            assert_eq!(loaded.name(), b.name);
        }
    }
}
