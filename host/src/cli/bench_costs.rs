//! The cost table of `sockhost bench plugins`: for each plugin, compile time
//! cold and from the cache, instantiation with the pooling allocator, one
//! on-request call (extensions) and linear memory per instance. Figures,
//! not assertions; the issue's targets are printed beside them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sockhost::plugins::congestion::CongestionBindings;
use sockhost::plugins::connect::ConnectBindings;
use sockhost::plugins::extension::{
    ExtensionBindings, ExtensionPlugin, Header, Request, ResourceType,
};
use sockhost::plugins::instance::{Supervised, WorldBindings};
use sockhost::plugins::telemetry::TelemetryBindings;
use sockhost::plugins::{EngineOptions, LoadedPlugin, PluginRuntime, RuntimeOptions};
use sockhost_policy::{HostPattern, Manifest, World};

use super::bench_stats::{human_duration, human_size, Samples};

/// Instantiation target: copy-on-write memory images and pooling.
pub const INSTANTIATE_TARGET: Duration = Duration::from_millis(1);
/// On-request target for a hook in any language.
pub const HOOK_TARGET: Duration = Duration::from_micros(50);

/// What one plugin costs.
struct Costs {
    name: String,
    world: World,
    size: u64,
    cold: Duration,
    // `None` when the second load did not hit the cache.
    cached: Option<Duration>,
    instantiate: Samples,
    // Extensions only: the hook's median and how often it was entered.
    on_request: Option<(Samples, usize)>,
    memory_init: Option<u64>,
    memory_after_call: Option<u64>,
}

fn runtime(cache_dir: Option<PathBuf>) -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling: true,
            cache_dir,
        },
        // Storage the plugin writes during the benchmark is scratch.
        data_dir: Some(scratch("data")),
    })?
    .without_compile_hints())
}

fn scratch(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sockhost-bench-{what}-{}", std::process::id()))
}

/// Instantiates `rounds` times, dropping the instance in between.
fn instantiations<B: WorldBindings>(
    loaded: LoadedPlugin,
    rounds: u32,
) -> anyhow::Result<(Samples, Option<u64>)> {
    let mut p = Supervised::<B>::new(loaded)?;
    let mut times = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        p.reset();
        let s = Instant::now();
        p.warm_up()?;
        times.push(s.elapsed());
    }
    Ok((Samples::new(times), p.memory_bytes()))
}

/// A host the manifest lets the hook see: www.example.com when it may,
/// else the first host it names.
fn visible_host(m: &Manifest) -> String {
    if m.capabilities.may_see_host("www.example.com") {
        return "www.example.com".into();
    }
    m.capabilities
        .hosts
        .iter()
        .find_map(|h| match h {
            HostPattern::Any => None,
            HostPattern::Exact(n) => Some(n.clone()),
            HostPattern::Domain(n) => Some(format!("www.{n}")),
        })
        .unwrap_or_else(|| "www.example.com".into())
}

/// The request of a page load, with the headers a browser sends.
fn typical_request(host: &str) -> Request {
    let header = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.as_bytes().to_vec(),
    };
    Request {
        id: 1,
        url: format!("https://{host}/articles/42?ref=home"),
        method: "GET".into(),
        headers: vec![
            header("user-agent", "sockhost/0.1"),
            header("accept", "text/html,*/*"),
            header("accept-language", "en-US,en;q=0.9"),
            header("accept-encoding", "gzip, br"),
            header("referer", &format!("https://{host}/")),
        ],
        resource_type: ResourceType::Document,
    }
}

/// Measures one plugin. `iterations` calls are timed; instantiation is
/// timed a tenth as often (at least 10 times).
fn measure(manifest: &Path, iterations: u32) -> anyhow::Result<Costs> {
    let cache = scratch("cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("cannot create {}", cache.display()))?;
    let load = |rt: &PluginRuntime| {
        rt.load(manifest)
            .with_context(|| format!("cannot load {}", manifest.display()))
    };
    // Cold: a miss in an empty cache, which is what a first start pays.
    let first = load(&runtime(Some(cache.clone()))?)?;
    let rt = runtime(Some(cache.clone()))?;
    let warm = load(&rt)?;
    let costs = (|| {
        let cached = warm.cached().then(|| warm.compile_time());
        let (name, world, size, cold) = (
            warm.name().to_owned(),
            warm.world(),
            warm.size(),
            first.compile_time(),
        );
        drop(first);
        let rounds = (iterations / 10).max(10);
        let (instantiate, memory) = match world {
            World::Extension => instantiations::<ExtensionBindings>(warm, rounds)?,
            World::CongestionPolicy => instantiations::<CongestionBindings>(warm, rounds)?,
            World::ConnectPolicy => instantiations::<ConnectBindings>(warm, rounds)?,
            World::TelemetryProbe => instantiations::<TelemetryBindings>(warm, rounds)?,
        };
        let mut costs = Costs {
            name,
            world,
            size,
            cold,
            cached,
            instantiate,
            on_request: None,
            memory_init: memory,
            memory_after_call: None,
        };
        if world == World::Extension {
            on_request(&mut costs, load(&rt)?, iterations)?;
        }
        Ok(costs)
    })();
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(scratch("data"));
    costs
}

/// Starts the extension (its `init` runs) and times its hook on a warm
/// instance.
fn on_request(costs: &mut Costs, loaded: LoadedPlugin, iterations: u32) -> anyhow::Result<()> {
    let host = visible_host(loaded.manifest());
    let mut ext = ExtensionPlugin::start(loaded)?;
    costs.memory_init = ext.supervised().memory_bytes();
    let request = typical_request(&host);
    let mut times = Vec::with_capacity(iterations as usize);
    let mut called = 0;
    for _ in 0..iterations {
        let s = Instant::now();
        let r = ext.on_request(&request);
        times.push(s.elapsed());
        if let Some(e) = r.error {
            bail!("{} faulted during the benchmark: {e}", costs.name);
        }
        called += usize::from(r.called);
    }
    costs.on_request = Some((Samples::new(times), called));
    costs.memory_after_call = ext.supervised().memory_bytes();
    Ok(())
}

fn against(d: Option<Duration>, target: Duration) -> String {
    match d {
        None => "-".into(),
        Some(d) if d > target => format!("{} (over)", human_duration(d)),
        Some(d) => human_duration(d),
    }
}

fn memory(m: Option<u64>) -> String {
    m.map_or_else(|| "-".into(), human_size)
}

/// Measures every manifest and prints the table.
pub fn run(manifests: &[PathBuf], iterations: u32) -> anyhow::Result<()> {
    let n = iterations.max(1);
    println!(
        "plugin costs: pooling allocator; medians of {} instantiations and of {n} \
         on-request calls on a warm instance; compile cold = a miss in an empty cache",
        (n / 10).max(10)
    );
    println!(
        "targets (issue 14): instantiation <= {}, on-request hook <= {} per call",
        human_duration(INSTANTIATE_TARGET),
        human_duration(HOOK_TARGET)
    );
    println!(
        "{:18} {:17} {:>10} {:>13} {:>11} {:>18} {:>20} {:>12} {:>12}",
        "plugin",
        "world",
        "size",
        "compile cold",
        "from cache",
        "instantiate <=1ms",
        "on-request <=50µs",
        "memory init",
        "after call"
    );
    for manifest in manifests {
        let c = measure(manifest, n)?;
        let request = match &c.on_request {
            None => "-".into(),
            Some((_, 0)) => "not entered".into(),
            Some((s, _)) => against(s.median(), HOOK_TARGET),
        };
        println!(
            "{:18} {:17} {:>10} {:>13} {:>11} {:>18} {:>20} {:>12} {:>12}",
            c.name,
            c.world.to_string(),
            human_size(c.size),
            human_duration(c.cold),
            c.cached.map_or_else(|| "no hit".into(), human_duration),
            against(c.instantiate.median(), INSTANTIATE_TARGET),
            request,
            memory(c.memory_init),
            memory(c.memory_after_call),
        );
        if let Some((s, called)) = &c.on_request {
            if *called < s.len() {
                println!(
                    "  {}: the hook was entered {called} of {} times (its filter or \
                     host grants skip the rest)",
                    c.name,
                    s.len()
                );
            }
        }
    }
    Ok(())
}
