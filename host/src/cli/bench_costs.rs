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
use sockhost::plugins::limits::RECYCLE_AT_PERCENT;
use sockhost::plugins::telemetry::TelemetryBindings;
use sockhost::plugins::{EngineOptions, LoadedPlugin, PluginRuntime, RuntimeOptions};
use sockhost_policy::{HostPattern, Manifest, World};

use super::bench_stats::{human_duration, human_size, Samples};

/// Instantiation target: copy-on-write memory images and pooling.
pub const INSTANTIATE_TARGET: Duration = Duration::from_millis(1);
/// On-request target for a hook in any language.
pub const HOOK_TARGET: Duration = Duration::from_micros(50);

/// Where a plugin's measurement stopped on a fault.
// Ordered as the measurement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Load,
    Instantiate,
    Start,
    OnRequest,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Load => "loading",
            Stage::Instantiate => "instantiation",
            Stage::Start => "start (init)",
            Stage::OnRequest => "an on-request call",
        }
    }
}

/// What one plugin costs. Every figure is `None` until measured, so that a
/// plugin that faults part-way still prints what was measured before.
struct Costs {
    name: String,
    world: Option<World>,
    size: Option<u64>,
    cold: Option<Duration>,
    // `Some(None)` when the second load did not hit the cache.
    cached: Option<Option<Duration>>,
    instantiate: Option<Samples>,
    // Extensions only: the hook's samples and how often it was entered.
    on_request: Option<(Samples, usize)>,
    memory_init: Option<u64>,
    memory_after_call: Option<u64>,
    // Instances replaced during the calls because their memory crept toward
    // the limit.
    recycles: u64,
    // Set when the plugin faulted; the figures after `Stage` are missing.
    fault: Option<(Stage, String)>,
}

impl Costs {
    fn new(manifest: &Path) -> Self {
        Self {
            name: manifest.display().to_string(),
            world: None,
            size: None,
            cold: None,
            cached: None,
            instantiate: None,
            on_request: None,
            memory_init: None,
            memory_after_call: None,
            recycles: 0,
            fault: None,
        }
    }
}

/// A fault at a stage of the measurement.
struct Fault(Stage, anyhow::Error);

trait AtStage<T> {
    fn at(self, stage: Stage) -> Result<T, Fault>;
}

impl<T, E: Into<anyhow::Error>> AtStage<T> for Result<T, E> {
    fn at(self, stage: Stage) -> Result<T, Fault> {
        self.map_err(|e| Fault(stage, e.into()))
    }
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
/// timed a tenth as often (at least 10 times). A fault ends the plugin's
/// measurement, not the run: the row says where it stopped.
fn measure(manifest: &Path, iterations: u32) -> Costs {
    let mut costs = Costs::new(manifest);
    let cache = scratch("cache");
    if let Err(Fault(stage, e)) = measure_into(&mut costs, manifest, &cache, iterations) {
        costs.fault = Some((stage, one_line(&format!("{e:#}"))));
    }
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(scratch("data"));
    costs
}

fn measure_into(
    costs: &mut Costs,
    manifest: &Path,
    cache: &Path,
    iterations: u32,
) -> Result<(), Fault> {
    let _ = std::fs::remove_dir_all(cache);
    std::fs::create_dir_all(cache)
        .with_context(|| format!("cannot create {}", cache.display()))
        .at(Stage::Load)?;
    let load = |rt: &PluginRuntime| {
        rt.load(manifest)
            .with_context(|| format!("cannot load {}", manifest.display()))
            .at(Stage::Load)
    };
    // Cold: a miss in an empty cache, which is what a first start pays.
    let first = load(&runtime(Some(cache.to_owned())).at(Stage::Load)?)?;
    costs.name = first.name().to_owned();
    costs.world = Some(first.world());
    costs.size = Some(first.size());
    costs.cold = Some(first.compile_time());
    drop(first);
    let rt = runtime(Some(cache.to_owned())).at(Stage::Load)?;
    let warm = load(&rt)?;
    costs.cached = Some(warm.cached().then(|| warm.compile_time()));
    let rounds = (iterations / 10).max(10);
    let world = warm.world();
    let (instantiate, memory) = match world {
        World::Extension => instantiations::<ExtensionBindings>(warm, rounds),
        World::CongestionPolicy => instantiations::<CongestionBindings>(warm, rounds),
        World::ConnectPolicy => instantiations::<ConnectBindings>(warm, rounds),
        World::TelemetryProbe => instantiations::<TelemetryBindings>(warm, rounds),
    }
    .at(Stage::Instantiate)?;
    costs.instantiate = Some(instantiate);
    costs.memory_init = memory;
    if world == World::Extension {
        on_request(costs, load(&rt)?, iterations)?;
    }
    Ok(())
}

/// Starts the extension (its `init` runs) and times its hook on a warm
/// instance.
fn on_request(costs: &mut Costs, loaded: LoadedPlugin, iterations: u32) -> Result<(), Fault> {
    let host = visible_host(loaded.manifest());
    let mut ext = ExtensionPlugin::start(loaded).at(Stage::Start)?;
    costs.memory_init = ext.supervised().memory_bytes();
    let request = typical_request(&host);
    let mut times = Vec::with_capacity(iterations as usize);
    let mut called = 0;
    for i in 0..iterations {
        let s = Instant::now();
        let r = ext.on_request(&request);
        times.push(s.elapsed());
        if let Some(e) = r.error {
            return Err(Fault(
                Stage::OnRequest,
                anyhow::anyhow!("call {} of {iterations}: {e}", i + 1),
            ));
        }
        called += usize::from(r.called);
    }
    costs.on_request = Some((Samples::new(times), called));
    costs.memory_after_call = ext.supervised().memory_bytes();
    costs.recycles = ext.supervised().recycles();
    Ok(())
}

/// A fault's message on one line of the table, bounded: a guest's panic
/// message is the guest's to choose.
fn one_line(s: &str) -> String {
    const MAX: usize = 300;
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

fn against(d: Option<Duration>, target: Duration) -> String {
    match d {
        None => "-".into(),
        Some(d) if d > target => format!("{} (over)", human_duration(d)),
        Some(d) => human_duration(d),
    }
}

/// The table's cells for one plugin. A figure the plugin faulted before
/// reaching reads "faulted"; one that does not apply reads "-".
fn cells(c: &Costs) -> [String; 9] {
    let stopped = |stage: Stage| match c.fault {
        Some((at, _)) if at <= stage => "faulted".to_owned(),
        _ => "-".to_owned(),
    };
    let figure = |v: Option<String>, stage: Stage| v.unwrap_or_else(|| stopped(stage));
    let is_extension = c.world.is_none_or(|w| w == World::Extension);
    let request = match &c.on_request {
        Some((_, 0)) => Some("not entered".into()),
        Some((s, _)) => Some(against(s.median(), HOOK_TARGET)),
        None if !is_extension => Some("-".into()),
        None => None,
    };
    let after_call = match c.memory_after_call {
        None if !is_extension => Some("-".into()),
        m => m.map(human_size),
    };
    [
        c.name.clone(),
        figure(c.world.map(|w| w.to_string()), Stage::Load),
        figure(c.size.map(human_size), Stage::Load),
        figure(c.cold.map(human_duration), Stage::Load),
        figure(
            c.cached
                .map(|h| h.map_or_else(|| "no hit".into(), human_duration)),
            Stage::Load,
        ),
        figure(
            c.instantiate
                .as_ref()
                .map(|s| against(s.median(), INSTANTIATE_TARGET)),
            Stage::Instantiate,
        ),
        figure(request, Stage::OnRequest),
        figure(c.memory_init.map(human_size), Stage::Instantiate),
        figure(after_call, Stage::OnRequest),
    ]
}

fn print_row(c: &[String; 9]) {
    println!(
        "{:18} {:17} {:>10} {:>13} {:>11} {:>18} {:>20} {:>12} {:>12}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
    );
}

/// Measures every manifest and prints the table. A plugin that faults gets
/// a row saying where and why, the others are still measured, and the run
/// then fails naming how many faulted.
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
    print_row(
        &[
            "plugin",
            "world",
            "size",
            "compile cold",
            "from cache",
            "instantiate <=1ms",
            "on-request <=50µs",
            "memory init",
            "after call",
        ]
        .map(str::to_owned),
    );
    let mut faulted = Vec::new();
    for manifest in manifests {
        let c = measure(manifest, n);
        print_row(&cells(&c));
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
        if c.recycles > 0 {
            println!(
                "  {}: {} instance(s) replaced between calls: memory grew with the calls \
                 past {RECYCLE_AT_PERCENT}% of its limit",
                c.name, c.recycles
            );
        }
        if let Some((stage, why)) = &c.fault {
            println!("  {}: faulted during {}: {why}", c.name, stage.describe());
            faulted.push(c.name);
        }
    }
    if !faulted.is_empty() {
        bail!(
            "{} of {} plugins faulted during the benchmark: {}",
            faulted.len(),
            manifests.len(),
            faulted.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Samples {
        Samples::new(vec![Duration::from_micros(v); 3])
    }

    #[test]
    fn a_fault_on_request_keeps_what_was_measured_before_it() {
        let mut c = Costs::new(Path::new("x/plugin.toml"));
        c.name = "panics".into();
        c.world = Some(World::Extension);
        c.size = Some(2048);
        c.cold = Some(Duration::from_millis(40));
        c.cached = Some(None);
        c.instantiate = Some(us(6));
        c.memory_init = Some(1 << 20);
        c.fault = Some((Stage::OnRequest, "call 1 of 20: panic".into()));
        let row = cells(&c);
        assert_eq!(row[1], "extension");
        assert_eq!(row[4], "no hit");
        assert_eq!(row[5], "6.0 µs");
        assert_eq!(row[6], "faulted");
        assert_eq!(row[7], "1.0 MiB");
        assert_eq!(row[8], "faulted");
    }

    #[test]
    fn a_fault_at_load_fills_every_figure_and_names_the_manifest() {
        let mut c = Costs::new(Path::new("no/such/plugin.toml"));
        c.fault = Some((Stage::Load, "cannot load".into()));
        let row = cells(&c);
        assert_eq!(row[0], "no/such/plugin.toml");
        assert!(row[1..].iter().all(|f| f == "faulted"), "{row:?}");
    }

    #[test]
    fn a_probe_without_a_hook_shows_dashes_not_faults() {
        let mut c = Costs::new(Path::new("p.toml"));
        c.world = Some(World::TelemetryProbe);
        c.size = Some(1);
        c.cold = Some(Duration::from_millis(1));
        c.cached = Some(Some(Duration::from_micros(900)));
        c.instantiate = Some(us(2_000));
        let row = cells(&c);
        assert_eq!(row[5], "2.0 ms (over)");
        assert_eq!(&row[6], "-");
        assert_eq!(&row[8], "-");
        // A faulted instantiation on a probe marks its memory too.
        c.instantiate = None;
        c.fault = Some((Stage::Instantiate, "budget".into()));
        let row = cells(&c);
        assert_eq!(row[5], "faulted");
        assert_eq!(row[7], "faulted");
        assert_eq!(&row[6], "-");
    }

    #[test]
    fn a_guest_message_is_flattened_and_bounded() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        let long = "x".repeat(1000);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
    }
}
