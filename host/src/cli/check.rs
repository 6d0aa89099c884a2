//! `sockhost plugin check`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions, WIT_VERSION};
use sockhost_policy::{ImportDecision, OnFault};

fn human_size(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

pub fn run(manifest: &Path, cache_dir: Option<PathBuf>, no_cache: bool) -> anyhow::Result<()> {
    let cache_dir = if no_cache {
        None
    } else {
        cache_dir.or_else(super::paths::cache_dir)
    };
    if let Some(dir) = &cache_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create cache directory {}", dir.display()))?;
    }
    // Checking must not leave storage behind: a scratch data directory.
    let scratch = std::env::temp_dir().join(format!("sockhost-check-{}", std::process::id()));
    let runtime = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling: false,
            cache_dir,
        },
        data_dir: Some(scratch.clone()),
    })?;
    let loaded = runtime.load(manifest);
    let _ = std::fs::remove_dir_all(&scratch);
    let loaded = loaded?;
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
    println!(
        "compile    {:.1} ms{}",
        loaded.compile_time().as_secs_f64() * 1000.0,
        if loaded.cached() { " (from cache)" } else { "" }
    );
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
    let smoke = super::smoke::run(loaded)?;
    println!("smoke      {smoke}");
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
