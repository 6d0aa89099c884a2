//! `sockhost plugin compile`: compiles components into the on-disk compile
//! cache ahead of time, so that a daemon or fetch starting with them loads
//! compiled code instead of spending seconds compiling a large component.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions};

use super::bench_stats::{human_duration, human_size};

pub fn run(manifests: &[PathBuf], cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = super::paths::compile_cache(cache_dir)?
        .context("no compile cache directory: set XDG_CACHE_HOME or HOME, or pass --cache-dir")?;
    let scratch = super::paths::Scratch::new("compile");
    let runtime = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            // What `serve` uses; the cache serves `fetch` and `plugin check`
            // (on-demand allocation) alike.
            pooling: true,
            cache_dir: Some(dir.clone()),
        },
        data_dir: Some(scratch.path().to_owned()),
    })?
    .without_compile_hints();
    println!("compile cache {}", dir.display());
    for manifest in manifests {
        compile(&runtime, manifest)?;
    }
    Ok(())
}

fn compile(runtime: &PluginRuntime, manifest: &Path) -> anyhow::Result<()> {
    let loaded = runtime.load(manifest)?;
    let took = human_duration(loaded.compile_time());
    let how = if loaded.cached() {
        format!("already in the cache (loaded in {took})")
    } else {
        format!("compiled in {took} (cold)")
    };
    println!(
        "{} {} ({}, {}): {how}",
        loaded.name(),
        loaded.manifest().plugin.version,
        manifest.display(),
        human_size(loaded.size()),
    );
    Ok(())
}
