//! `sockhost bench plugins`: the costs of hosting plugins, printed.
//!
//! With `--manifest`, the cost table of those plugins (`bench_costs.rs`).
//! Without, that table for the first-party plugins, then the figures below:
//! means over many calls in one run; the pooling and on-demand
//! instantiation figures are taken interleaved so machine noise hits both.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sockhost::plugins::bindings::types::Origin;
use sockhost::plugins::congestion::{
    AckFrame, AckSample, CongestionPlugin, ControllerConfig, RttEstimate,
};
use sockhost::plugins::extension::{
    ExtensionPlugin, Header, Request, RequestVerdict, ResourceType,
};
use sockhost::plugins::telemetry::{
    Batch, Event, EventKind, HttpVersion, Method, RequestEndEvent, RequestStartEvent,
    TelemetryPlugin,
};
use sockhost::plugins::{EngineOptions, LoadedPlugin, PluginRuntime, RuntimeOptions};

fn runtime(pooling: bool) -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions {
            pooling,
            cache_dir: None,
        },
        data_dir: None,
    })?)
}

fn load(rt: &PluginRuntime, dir: &Path, name: &str) -> anyhow::Result<LoadedPlugin> {
    let manifest = dir.join(name).join("plugin.toml");
    rt.load(&manifest)
        .with_context(|| format!("cannot load {}", manifest.display()))
}

fn per_call(total: Duration, n: u32) -> String {
    let ns = total.as_nanos() as f64 / f64::from(n.max(1));
    if ns >= 1000.0 {
        format!("{:8.2} µs", ns / 1000.0)
    } else {
        format!("{ns:8.0} ns")
    }
}

fn config() -> ControllerConfig {
    ControllerConfig {
        max_datagram_size: 1200,
        initial_window: 12_000,
        minimum_window: 2400,
        maximum_window: 1 << 30,
        now: 0,
    }
}

/// The first-party plugins measured without `--manifest`.
const DEFAULT_PLUGINS: [&str; 4] = ["newreno", "happy-eyeballs", "request-stats", "blocklist"];

/// The cost table of `manifests`; without any, of the first-party plugins
/// in `dir`, followed by the detailed figures.
pub fn run(dir: &Path, manifests: &[PathBuf], iterations: u32) -> anyhow::Result<()> {
    if !manifests.is_empty() {
        return super::bench_costs::run(manifests, iterations);
    }
    let defaults: Vec<PathBuf> = DEFAULT_PLUGINS
        .iter()
        .map(|name| dir.join(name).join("plugin.toml"))
        .collect();
    super::bench_costs::run(&defaults, iterations)?;
    println!();
    details(dir, iterations)
}

fn details(dir: &Path, iterations: u32) -> anyhow::Result<()> {
    let n = iterations.max(1);
    let pooled = runtime(true)?;
    let on_demand = runtime(false)?;

    println!("sockhost bench plugins ({n} iterations per figure)");
    println!();
    println!("compile (no cache)");
    for name in DEFAULT_PLUGINS {
        let p = load(&on_demand, dir, name)?;
        println!(
            "  {name:16} {:8.1} ms  ({} bytes)",
            p.compile_time().as_secs_f64() * 1000.0,
            p.size()
        );
    }

    // Instantiation, interleaved: each round instantiates once with each
    // allocator.
    let mut a = CongestionPlugin::new(load(&pooled, dir, "newreno")?)?;
    let mut b = CongestionPlugin::new(load(&on_demand, dir, "newreno")?)?;
    let (mut ta, mut tb) = (Duration::ZERO, Duration::ZERO);
    let rounds = (n / 10).max(100);
    for _ in 0..rounds {
        for (p, t) in [(&mut a, &mut ta), (&mut b, &mut tb)] {
            p.supervised_mut().reset();
            let s = Instant::now();
            p.supervised_mut().warm_up()?;
            *t += s.elapsed();
        }
    }
    println!();
    println!("instantiate newreno (store + instance), {rounds} rounds interleaved");
    println!("  pooling allocator   {}", per_call(ta, rounds));
    println!("  on-demand allocator {}", per_call(tb, rounds));
    println!(
        "  ratio on-demand/pooling {:.2}",
        tb.as_secs_f64() / ta.as_secs_f64()
    );

    // Congestion on-ack: one call per ACK frame of 1 and of 16 packets.
    let mut cc = a;
    let mut h = cc.new_controller(config())?;
    let rtt = RttEstimate {
        latest: 20_000,
        smoothed: 20_000,
        min: 18_000,
    };
    println!();
    println!("congestion-policy newreno on-ack");
    let mut pn = 0u64;
    for samples in [1usize, 16] {
        let mut total = Duration::ZERO;
        for i in 0..n {
            let now = 1_000_000 + u64::from(i) * 1000;
            let acks: Vec<AckSample> = (0..samples)
                .map(|_| AckSample {
                    sent: now - 20_000,
                    bytes: 1200,
                })
                .collect();
            pn += samples as u64;
            let frame = AckFrame {
                now,
                largest_acked: pn,
                largest_sent: pn + 50,
                rtt,
                bytes_in_flight: 60_000,
                app_limited: false,
            };
            let s = Instant::now();
            black_box(cc.on_ack(&mut h, frame, &acks)?);
            total += s.elapsed();
        }
        println!("  {samples:2} sample(s)        {}", per_call(total, n));
    }

    // Extension on-request with a typical request the hook is called for.
    let mut ext = ExtensionPlugin::start(load(&pooled, dir, "blocklist")?)?;
    let header = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.as_bytes().to_vec(),
    };
    let headers = vec![
        header("user-agent", "sockhost/0.1"),
        header("accept", "text/html,*/*"),
        header("accept-language", "en-US,en;q=0.9"),
        header("accept-encoding", "gzip, br"),
        header("referer", "https://www.example.com/"),
        header("cookie", "session=secret"),
    ];
    // A page load enters the hook (documents are in its filter); a script
    // is decided by the host without entering WASM. Both are measured, so
    // the figure for the WASM call is not flattered by the filter.
    let cases = [
        (
            "document, hook called",
            "https://www.example.com/articles/42?ref=home",
            ResourceType::Document,
        ),
        (
            "script, filtered by the host",
            "https://www.example.com/assets/app.js?v=3",
            ResourceType::Script,
        ),
    ];
    println!();
    println!(
        "extension blocklist on-request (typical request, 6 headers, {} rules)",
        ext.rules().len()
    );
    for (label, url, resource_type) in cases {
        let request = Request {
            id: 1,
            url: url.into(),
            method: "GET".into(),
            headers: headers.clone(),
            resource_type,
        };
        let mut called = 0u32;
        let mut total = Duration::ZERO;
        for _ in 0..n {
            let s = Instant::now();
            let r = ext.on_request(&request);
            total += s.elapsed();
            if r.error.is_some() {
                bail!("blocklist faulted during the benchmark");
            }
            called += u32::from(r.called);
            black_box(matches!(r.verdict, RequestVerdict::Proceed(_)));
        }
        println!(
            "  {label:30} {}  (entered WASM {called}/{n} times)",
            per_call(total, n)
        );
    }

    // Probe: a batch of 64 request-end events.
    let mut probe = TelemetryPlugin::new(load(&pooled, dir, "request-stats")?)?;
    let origin = Origin {
        scheme: "https".into(),
        host: "www.example.com".into(),
        port: 443,
    };
    let batch = Batch {
        origins: vec![origin.clone()],
        events: (0..64u64)
            .map(|i| Event {
                at: i * 1000,
                kind: EventKind::RequestEnd(RequestEndEvent {
                    id: i,
                    origin: 0,
                    method: Method::Get,
                    status: Some(200),
                    protocol: Some(HttpVersion::Http2),
                    bytes_sent: 0,
                    bytes_received: 15_000 + i,
                    time_to_first_byte: Some(12_000),
                    total: 30_000 + i * 10,
                    error: None,
                }),
            })
            .collect(),
    };
    let batches = (n / 10).max(100);
    let mut total = Duration::ZERO;
    for _ in 0..batches {
        let s = Instant::now();
        probe.on_events(&batch, 0)?;
        total += s.elapsed();
    }
    // Request-start events: the probe only counts them, so this is mostly
    // the cost of handing events across.
    let starts = Batch {
        origins: vec![origin],
        events: (0..64u64)
            .map(|i| Event {
                at: i * 1000,
                kind: EventKind::RequestStart(RequestStartEvent {
                    id: i,
                    origin: 0,
                    method: Method::Get,
                    headers: None,
                }),
            })
            .collect(),
    };
    let empty = Batch {
        origins: Vec::new(),
        events: Vec::new(),
    };
    let mut start_total = Duration::ZERO;
    let mut empty_total = Duration::ZERO;
    for _ in 0..batches {
        let s = Instant::now();
        probe.on_events(&starts, 0)?;
        start_total += s.elapsed();
        let s = Instant::now();
        probe.on_events(&empty, 1)?;
        empty_total += s.elapsed();
    }
    let metrics = probe.collect()?;
    println!();
    println!("telemetry-probe request-stats on-events");
    println!(
        "  batch of 64 request-end events    {}  ({batches} batches)",
        per_call(total, batches)
    );
    println!(
        "  per request-end event             {}",
        per_call(total, batches * 64)
    );
    println!(
        "  per request-start event           {}",
        per_call(start_total, batches * 64)
    );
    println!(
        "  a call with no events             {}",
        per_call(empty_total, batches)
    );
    println!("  collect returned {} metrics", metrics.len());
    Ok(())
}
