//! Congestion-control benchmarks: quinn's native Cubic against the WASM
//! `cubic` plugin (through sockhost's bridge) on the same bulk QUIC upload,
//! interleaved round by round:
//!
//! - on clean loopback, where the transfer is CPU-bound;
//! - through a user-space relay dropping 1% of datagrams, so the
//!   controllers react to losses;
//! - both also with quinn's NewReno against the WASM `newreno`, which
//!   computes the same windows, to separate the bridge's cost from the
//!   algorithms' differences;
//! - the bridge alone: a recorded transfer replayed into quinn's NewReno
//!   and into the bridge (native and WASM), no network in the loop;
//! - the cost of one `on-ack` call with 1 and with 16 samples.
//!
//! Throughput, the sending thread's CPU time per GiB (the client runs on a
//! runtime of one thread; the server and relay have threads of their own)
//! and calls into WASM per MiB.
//!
//! `cargo run --release -p sockhost-tests --bin bench-congestion -- [MIB] [ROUNDS] [LOSSY_MIB]`

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::congestion::{ControllerFactory, NewRenoConfig};
use sockhost::plugins::congestion::{
    wasm_calls, AckFrame, AckSample, CongestionPlugin, CongestionPolicy, ControllerConfig,
    ControllerKind, RttEstimate, DEFAULT_MAX_WINDOW,
};
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions};
use sockhost_tests::congestion_trace::{replay, BulkServer, Recording, Trace};
use sockhost_tests::plugin;

/// CPU time this thread has used (the kernel's schedstat: nanoseconds on
/// a CPU), so the sender's cost is not mixed with the server's.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

#[derive(Default, Clone, Copy)]
struct Totals {
    secs: f64,
    cpu: f64,
    calls: u64,
    mib: f64,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(Ok(512), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse())?;
    let lossy_mib: u64 = args.next().map_or(Ok(64), |a| a.parse())?;
    let runtime = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions::default(),
        data_dir: None,
    })?;
    let wasm = |name: &str| -> anyhow::Result<Arc<dyn ControllerFactory + Send + Sync>> {
        let p = CongestionPolicy::new(CongestionPlugin::new(runtime.load(&plugin(name))?)?);
        Ok(ControllerKind::Plugin(Arc::new(p)).factory(DEFAULT_MAX_WINDOW))
    };
    // Pairs: native vs WASM. NewReno is the control: the plugin agrees
    // with quinn's NewReno window for window (tests/congestion_replay.rs),
    // so any gap between those two is the bridge's, not the algorithm's.
    let cubic_pair: [(&str, Arc<dyn ControllerFactory + Send + Sync>); 2] = [
        (
            "native Cubic",
            ControllerKind::Native.factory(DEFAULT_MAX_WINDOW),
        ),
        ("WASM cubic", wasm("cubic")?),
    ];
    let newreno_pair: [(&str, Arc<dyn ControllerFactory + Send + Sync>); 2] = [
        ("native NewReno", Arc::new(NewRenoConfig::default())),
        ("WASM newreno", wasm("newreno")?),
    ];
    let server = BulkServer::start();
    // The sender: one thread does all of the client's QUIC work.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    println!("sockhost congestion control: native vs WASM ({rounds} rounds, interleaved)");
    for (label, size, loss, kinds) in [
        ("loopback", mib, 0.0, &cubic_pair),
        ("loopback", mib, 0.0, &newreno_pair),
        (
            "loopback through a relay dropping 1%",
            lossy_mib,
            0.01,
            &cubic_pair,
        ),
        (
            "loopback through a relay dropping 1%",
            lossy_mib,
            0.01,
            &newreno_pair,
        ),
    ] {
        if size == 0 {
            continue;
        }
        println!();
        println!("{label}: upload of {size} MiB per transfer");
        let mut totals = [Totals::default(); 2];
        for round in 1..=rounds {
            let mut line = Vec::new();
            // Alternate which goes first, so neither always follows the other.
            let order: [usize; 2] = if round % 2 == 1 { [0, 1] } else { [1, 0] };
            for i in order {
                let calls = wasm_calls();
                let cpu = thread_cpu();
                let done = rt.block_on(server.upload(
                    kinds[i].1.clone(),
                    size << 20,
                    loss,
                    u64::from(round),
                ));
                anyhow::ensure!(done.received == size << 20, "{}: short upload", kinds[i].0);
                let t = &mut totals[i];
                t.secs += done.elapsed.as_secs_f64();
                t.cpu += (thread_cpu() - cpu).as_secs_f64();
                t.calls += wasm_calls() - calls;
                t.mib += size as f64;
                line.push(format!(
                    "{} {:>7.1} MiB/s (loss {:.2}%)",
                    kinds[i].0,
                    size as f64 / done.elapsed.as_secs_f64(),
                    done.loss * 100.0
                ));
            }
            println!("  round {round}: {}", line.join("   "));
        }
        for (i, (name, _)) in kinds.iter().enumerate() {
            let t = totals[i];
            println!(
                "  {name:13} {:>7.1} MiB/s   sender CPU {:>5.2} s/GiB   WASM calls {:>6.1}/MiB",
                t.mib / t.secs,
                t.cpu / t.mib * 1024.0,
                t.calls as f64 / t.mib
            );
        }
        let (n, w) = (totals[0], totals[1]);
        println!(
            "  WASM/native: throughput {:.3}   CPU per GiB {:.3}",
            (w.mib / w.secs) / (n.mib / n.secs),
            (w.cpu / w.mib) / (n.cpu / n.mib)
        );
    }

    // The bridge alone: a recorded transfer's calls replayed into each
    // controller, with no network in the loop (the windows do not feed back
    // into the trace), so the difference is only what each call costs.
    let trace = Arc::new(Mutex::new(Trace::default()));
    let recording = Recording {
        inner: Arc::new(NewRenoConfig::default()),
        trace: trace.clone(),
    };
    rt.block_on(server.upload(Arc::new(recording), 256 << 20, 0.0, 1));
    let trace = std::mem::take(&mut *trace.lock().unwrap());
    let (acks, frames, ..) = trace.counts();
    let (created, mtu) = trace.created.expect("a controller was built");
    println!();
    println!(
        "replay of a recorded 256 MiB transfer ({acks} acknowledged packets in {frames} ACK frames, {} calls):",
        trace.steps.len()
    );
    let newreno = CongestionPolicy::new(CongestionPlugin::new(runtime.load(&plugin("newreno"))?)?);
    let newreno = ControllerKind::Plugin(Arc::new(newreno));
    let mut best = [f64::MAX; 3];
    for _ in 0..rounds.max(3) {
        let mut quinn = Arc::new(NewRenoConfig::default()).build(created, mtu);
        let mut native = ControllerKind::Native.build(created, mtu, DEFAULT_MAX_WINDOW);
        let mut wasm = newreno.build(created, mtu, DEFAULT_MAX_WINDOW);
        for (i, c) in [
            quinn.as_mut(),
            &mut native as &mut dyn quinn::congestion::Controller,
            &mut wasm,
        ]
        .into_iter()
        .enumerate()
        {
            let t = Instant::now();
            black_box(replay(&trace, c));
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    for (name, secs) in [
        "quinn's NewReno",
        "bridge, native Cubic",
        "bridge, WASM newreno",
    ]
    .iter()
    .zip(best)
    {
        println!(
            "  {name:22} {:>7.1} ns per acknowledged packet, {:>6.2} µs per ACK frame",
            secs * 1e9 / acks as f64,
            secs * 1e6 / frames as f64
        );
    }

    // One on-ack call, as the bridge makes it per ACK frame.
    let mut plugin = CongestionPlugin::new(runtime.load(&plugin("cubic"))?)?;
    let mut h = plugin.new_controller(ControllerConfig {
        max_datagram_size: 1200,
        initial_window: 12_000,
        minimum_window: 2400,
        maximum_window: DEFAULT_MAX_WINDOW,
        now: 0,
    })?;
    println!();
    println!("cubic on-ack call (pooling allocator):");
    let n = 200_000u32;
    let mut pn = 0u64;
    for samples in [1usize, 16] {
        let mut total = Duration::ZERO;
        for i in 0..n {
            let now = 1_000_000 + u64::from(i) * 100;
            let acks = vec![
                AckSample {
                    sent: now - 20_000,
                    bytes: 1200,
                };
                samples
            ];
            pn += samples as u64;
            let frame = AckFrame {
                now,
                largest_acked: pn,
                largest_sent: pn + 64,
                rtt: RttEstimate {
                    latest: 20_000,
                    smoothed: 20_000,
                    min: 19_000,
                },
                bytes_in_flight: 76_800,
                app_limited: false,
            };
            let s = Instant::now();
            black_box(plugin.on_ack(&mut h, frame, &acks)?);
            total += s.elapsed();
        }
        println!(
            "  {samples:2} sample(s): {:.3} µs per call",
            total.as_secs_f64() * 1e6 / f64::from(n)
        );
    }
    Ok(())
}
