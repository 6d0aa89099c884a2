//! `sockhost bench http`: sockhost against curl on the same server, in one
//! run, interleaved round by round: a large download (throughput) and many
//! small requests (requests per second); then sockhost with its default
//! plugins against sockhost with none. sockhost runs in this process, on
//! one thread unless `--multi-thread`; curl runs as a child process.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sockhost::builtin;
use sockhost::config::Config;
use sockhost::host::{FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::dns::ResolveOverride;
use sockhost::plugins::extension::ResourceType;
use sockhost::plugins::{EngineOptions, PluginRuntime, RuntimeOptions};

/// The options of `sockhost bench http`.
#[derive(clap::Args, Debug)]
pub struct BenchHttpArgs {
    /// A large file to download (e.g. 1 GiB).
    #[arg(long)]
    pub large_url: String,
    /// A small file to request many times.
    #[arg(long)]
    pub small_url: String,
    /// The server's CA.
    #[arg(long)]
    pub ca: PathBuf,
    /// HOST:PORT:ADDR override, passed to curl too.
    #[arg(long)]
    pub resolve: Option<String>,
    /// Rounds of each measurement (alternating sockhost and curl).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Small requests per round.
    #[arg(long, default_value_t = 10_000)]
    pub small_requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Run sockhost on tokio's multi-threaded runtime instead of one thread.
    #[arg(long)]
    pub multi_thread: bool,
}

/// Runs the benchmark.
pub fn run(args: BenchHttpArgs) -> anyhow::Result<()> {
    // One thread by default, as `sockhost fetch` runs: on a small machine
    // the multi-threaded scheduler's cross-thread wake-ups cost more than
    // they bring to one transfer.
    let rt = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    };
    rt.block_on(bench(args))
}

fn builder(args: &BenchHttpArgs) -> anyhow::Result<sockhost::host::HostBuilder> {
    let mut b = Host::builder()
        .ca_file(args.ca.clone())
        .version(VersionPref::Http2);
    if let Some(r) = &args.resolve {
        b = b.resolve(r.parse::<ResolveOverride>().map_err(anyhow::Error::msg)?);
    }
    Ok(b)
}

async fn download(host: &Host, url: &str) -> anyhow::Result<u64> {
    let mut req = FetchRequest::get(url);
    // Subresources, as most requests of a page are: rules apply, hooks
    // registered for documents do not.
    req.resource_type = ResourceType::Other;
    let r = host.fetch(req).await?;
    if r.status != 200 {
        bail!("{url}: status {}", r.status);
    }
    let mut body = r.body;
    let mut n = 0u64;
    while let Some(c) = body.chunk().await? {
        n += c.len() as u64;
    }
    Ok(n)
}

async fn many(host: &Host, url: &str, n: usize, concurrency: usize) -> anyhow::Result<()> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (host, url, next) = (host.clone(), url.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                download(&host, &url).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// CPU time used by this process so far, every thread included.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn curl_base(args: &BenchHttpArgs) -> Command {
    let mut c = Command::new("curl");
    c.args(["--http2", "--silent", "--show-error", "--fail"])
        .arg("--cacert")
        .arg(&args.ca);
    if let Some(r) = &args.resolve {
        c.args(["--resolve", r]);
    }
    c
}

fn curl_download(args: &BenchHttpArgs) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = curl_base(args)
        .args(["-o", "/dev/null", &args.large_url])
        .output()
        .context("cannot run curl")?;
    if !out.status.success() {
        bail!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

fn curl_many(args: &BenchHttpArgs, config: &std::path::Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = curl_base(args)
        .args([
            "--parallel",
            "--parallel-max",
            &args.concurrency.to_string(),
        ])
        .arg("-K")
        .arg(config)
        .output()
        .context("cannot run curl")?;
    if !out.status.success() {
        bail!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

async fn bench(args: BenchHttpArgs) -> anyhow::Result<()> {
    let plain = builder(&args)?.build()?;
    let size = download(&plain, &args.large_url).await?;
    let mib = size as f64 / (1 << 20) as f64;
    println!("sockhost bench http (interleaved, {} rounds)", args.rounds);
    println!();
    println!("download {:.0} MiB over HTTP/2", mib);
    let (mut s_total, mut c_total) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=args.rounds {
        let host = builder(&args)?.build()?;
        let t = Instant::now();
        download(&host, &args.large_url).await?;
        let s = t.elapsed();
        let c = curl_download(&args)?;
        println!(
            "  round {round}: sockhost {:>8.1} MiB/s   curl {:>8.1} MiB/s",
            mib / s.as_secs_f64(),
            mib / c.as_secs_f64()
        );
        s_total += s;
        c_total += c;
    }
    println!(
        "  throughput ratio sockhost/curl: {:.3}",
        c_total.as_secs_f64() / s_total.as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("curl.cfg");
    let mut cfg = String::new();
    for _ in 0..args.small_requests {
        cfg.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            args.small_url
        ));
    }
    std::fs::write(&config, cfg)?;
    println!();
    println!(
        "{} small requests, {} in flight, HTTP/2",
        args.small_requests, args.concurrency
    );
    let (mut s_total, mut c_total) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=args.rounds {
        let host = builder(&args)?.build()?;
        let t = Instant::now();
        many(
            &host,
            &args.small_url,
            args.small_requests,
            args.concurrency,
        )
        .await?;
        let s = t.elapsed();
        let c = curl_many(&args, &config)?;
        let n = args.small_requests as f64;
        println!(
            "  round {round}: sockhost {:>8.0} req/s   curl {:>8.0} req/s",
            n / s.as_secs_f64(),
            n / c.as_secs_f64()
        );
        s_total += s;
        c_total += c;
    }
    println!(
        "  requests/s ratio sockhost/curl: {:.3}",
        c_total.as_secs_f64() / s_total.as_secs_f64()
    );

    let runtime = PluginRuntime::new(RuntimeOptions {
        engine: EngineOptions::default(),
        data_dir: None,
    })?;
    println!();
    println!("the same small requests with blocklist + request-stats vs no plugins");
    println!("(and each plugin alone, to see what each costs)");
    const KINDS: [&str; 4] = ["plugins", "none", "blocklist", "request-stats"];
    let mut totals = [Duration::ZERO; 4];
    let mut cpu_totals = [Duration::ZERO; 4];
    let mut hosts = Vec::new();
    for kind in KINDS {
        // "plugins" and "none" are what `sockhost fetch` runs with and
        // without its defaults.
        let config = match kind {
            "plugins" => Config::embedded(),
            _ => Config::default(),
        };
        let mut b = builder(&args)?.config(&config, &runtime)?;
        match kind {
            "blocklist" => b = b.builtin_extension(builtin::BLOCKLIST, &runtime)?,
            "request-stats" => b = b.builtin_probe(builtin::REQUEST_STATS, &runtime)?,
            _ => {}
        }
        hosts.push(b.build()?);
    }
    // Each round is cut into slices of a tenth of the requests, the four
    // hosts taking turns slice by slice: this machine's
    // throughput drifts by tens of percent over seconds, and fine
    // interleaving spreads the drift evenly over the four.
    const SLICES: usize = 10;
    let slice = (args.small_requests / SLICES).max(1);
    // Round 0 warms up (connections, caches, the CPU's clock) and is not
    // counted.
    for round in 0..=args.rounds {
        let mut took = [Duration::ZERO; 4];
        let mut cpu = [Duration::ZERO; 4];
        for s in 0..SLICES {
            // A different order each slice (all 24 come round), so no host
            // always follows the same one.
            let mut order = [0, 1, 2, 3];
            let mut p = round as usize * SLICES + s;
            for k in (1..order.len()).rev() {
                order.swap(k, p % (k + 1));
                p /= k + 1;
            }
            for i in order {
                let (t, c) = (Instant::now(), process_cpu());
                many(&hosts[i], &args.small_url, slice, args.concurrency).await?;
                took[i] += t.elapsed();
                // The probes' share of the work lands up to a batch delay
                // later: count it for this host, not for the next one.
                hosts[i].telemetry().flush(Duration::from_secs(5)).await;
                cpu[i] += process_cpu().saturating_sub(c);
            }
        }
        let n = (slice * SLICES) as f64;
        let line: Vec<String> = KINDS
            .iter()
            .zip(took)
            .map(|(k, t)| format!("{k} {:>6.0}", n / t.as_secs_f64()))
            .collect();
        if round == 0 {
            println!("  warm-up (req/s): {}", line.join("   "));
            continue;
        }
        println!("  round {round} (req/s): {}", line.join("   "));
        for (total, t) in totals.iter_mut().zip(took) {
            *total += t;
        }
        for (total, c) in cpu_totals.iter_mut().zip(cpu) {
            *total += c;
        }
    }
    let per_request =
        |t: Duration| t.as_secs_f64() * 1e6 / (args.rounds as f64 * (slice * SLICES) as f64);
    let none = per_request(totals[1]);
    println!(
        "  added per request: plugins {:+.2} µs, blocklist {:+.2} µs, request-stats {:+.2} µs (none: {none:.2} µs)",
        per_request(totals[0]) - none,
        per_request(totals[2]) - none,
        per_request(totals[3]) - none,
    );
    // CPU time is steadier than throughput on a shared machine: it does
    // not count the time this process waited for the CPU.
    let cpu = cpu_totals.map(per_request);
    println!(
        "  sockhost CPU per request (all its threads): plugins {:.2} µs, none {:.2} µs, blocklist {:.2} µs, request-stats {:.2} µs",
        cpu[0], cpu[1], cpu[2], cpu[3]
    );
    println!(
        "  throughput ratio plugins/none: {:.3}",
        totals[1].as_secs_f64() / totals[0].as_secs_f64()
    );
    Ok(())
}
