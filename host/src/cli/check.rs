//! `sockhost plugin check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sockhost::plugins::{EngineOptions, LoadedPlugin, PluginRuntime, RuntimeOptions, WIT_VERSION};
use sockhost_policy::{ImportDecision, OnFault};

use super::bench_stats::{human_duration, human_size};
use super::smoke::Smoke;

/// Where the compiled code came from, and what to do about a slow compile.
fn compile_line(loaded: &LoadedPlugin, cache_dir: Option<&Path>) -> String {
    let took = human_duration(loaded.compile_time());
    match cache_dir {
        _ if loaded.cached() => format!("{took} (from cache)"),
        None => format!("{took} (cold, no cache)"),
        Some(dir) => format!(
            "{took} (cold; now in the cache at {}: `sockhost plugin compile` puts it there \
             ahead of start-up)",
            dir.display()
        ),
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), human_duration)
}

pub fn run(manifest: &Path, cache_dir: Option<PathBuf>, no_cache: bool) -> anyhow::Result<()> {
    let cache_dir = if no_cache {
        None
    } else {
        super::paths::compile_cache(cache_dir)?
    };
    // Checking must not leave storage behind: a scratch data directory.
    let scratch = super::paths::Scratch::new("check");
    let runtime = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling: false,
            cache_dir: cache_dir.clone(),
        },
        data_dir: Some(scratch.path().to_owned()),
    })?
    .without_compile_hints();
    let loaded = runtime.load(manifest)?;
    let m = std::sync::Arc::new(loaded.manifest().clone());
    println!("plugin     {} {}", m.plugin.name, m.plugin.version);
    println!("manifest   {}", manifest.display());
    println!(
        "component  {} ({}, sha256 ok)",
        m.plugin.component.display(),
        human_size(loaded.size())
    );
    let version = loaded.wit_version();
    println!("world      {} (sockhost:plugin@{version})", loaded.world());
    if version == WIT_VERSION {
        println!("wit        built against {version}, the latest");
    } else {
        println!("wit        built against {version}, adapted to {WIT_VERSION}");
    }
    println!("compile    {}", compile_line(&loaded, cache_dir.as_deref()));
    let (compile, cached) = (loaded.compile_time(), loaded.cached());
    println!("imports");
    let width = loaded
        .imports()
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(0);
    if loaded.imports().is_empty() {
        println!("  (none)");
    }
    for i in loaded.imports() {
        let (what, why) = match &i.decision {
            ImportDecision::Granted { why } => ("granted", why.to_string()),
            ImportDecision::NoAuthority { why } => ("linked without authority", why.to_string()),
            ImportDecision::Refused { why } => ("refused", why.to_string()),
        };
        println!("  {:width$}  {what}: {why}", i.name);
    }
    let smoke: Smoke = super::smoke::run(loaded)?;
    println!(
        "smoke      {}: ok ({})",
        smoke.calls,
        human_duration(smoke.total)
    );
    println!(
        "time       compile {} {}, instantiate {}, init {}, smoke calls {}",
        human_duration(compile),
        if cached { "from cache" } else { "cold" },
        opt(smoke.instantiate),
        opt(smoke.init),
        human_duration(smoke.calls_time())
    );
    let l = &m.limits;
    println!(
        "limits     memory {}, call budget {:?}, on-fault {}, restart limit {} per {:?}, \
         on-disable {}",
        human_size(l.memory),
        l.call_budget,
        match l.on_fault {
            OnFault::FailOpen => "fail-open",
            OnFault::FailClosed => "fail-closed",
        },
        l.restart_limit,
        l.restart_window,
        l.on_disable
    );
    println!("ok");
    Ok(())
}
