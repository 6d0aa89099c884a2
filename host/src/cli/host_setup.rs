//! What `fetch` and `serve` set up alike around a host: the plugin runtime
//! with its compile cache, and the network options of the command line.

use std::path::PathBuf;

use sockhost::host::HostBuilder;
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions};

/// The plugin runtime, caching compiled code in the cache directory and
/// keeping plugin storage in the data directory. `pooling` reserves
/// instance slots up front: worth it for a long-running process only.
pub fn plugin_runtime(pooling: bool) -> anyhow::Result<PluginRuntime> {
    let cache_dir = super::paths::cache_dir().filter(|d| std::fs::create_dir_all(d).is_ok());
    Ok(PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions { pooling, cache_dir },
        data_dir: super::paths::data_dir(),
    })?)
}

/// `--resolve` overrides and `--ca` files on top of `builder`, and the
/// Alt-Svc file in the data directory, so that a later run can start with
/// HTTP/3.
pub fn network_options(
    mut builder: HostBuilder,
    resolve: &[String],
    ca: &[PathBuf],
) -> anyhow::Result<HostBuilder> {
    if let Some(dir) = super::paths::data_dir().filter(|d| std::fs::create_dir_all(d).is_ok()) {
        builder = builder.alt_svc_file(dir.join("alt-svc.json"));
    }
    for r in resolve {
        builder = builder.resolve(r.parse::<ResolveOverride>()?);
    }
    for file in ca {
        builder = builder.ca_file(file.clone());
    }
    Ok(builder)
}
