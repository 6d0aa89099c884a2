//! HTTP/3 benchmarks on loopback, against the in-repo origin (quinn + h3
//! and hyper h2 on the same port), interleaved round by round:
//!
//! - a bulk download over HTTP/3 with batched UDP I/O on and off:
//!   throughput, and sockhost's UDP system calls per MiB;
//! - the same download over HTTP/2, for comparison;
//! - time to first byte of a first visit (no upgrade known: h2) and of a
//!   repeat visit with and without the Alt-Svc cache (h3 vs h2 again).
//!
//! `cargo run --release -p sockhost-tests --bin bench-h3 -- [MIB] [ROUNDS]`

use std::time::{Duration, Instant};

use sockhost::host::{FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::quic::udp_stats;
use sockhost_tests::origin::{OriginOptions, TestOrigin};
use sockhost_tests::origin_host;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse())?;
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        advertise_h3: true,
        ..OriginOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench(&origin, mib, rounds))
}

async fn download(host: &Host, url: &str) -> anyhow::Result<(u64, Duration)> {
    let t = Instant::now();
    let r = host.fetch(FetchRequest::get(url)).await?;
    anyhow::ensure!(r.status == 200, "status {}", r.status);
    let mut body = r.body;
    let mut n = 0u64;
    while let Some(c) = body.chunk().await? {
        n += c.len() as u64;
    }
    Ok((n, t.elapsed()))
}

async fn bench(origin: &TestOrigin, mib: usize, rounds: u32) -> anyhow::Result<()> {
    let url = format!(
        "https://www.test:{}/bytes/{}",
        origin.addr.port(),
        mib << 20
    );
    println!("sockhost HTTP/3 benchmarks on loopback ({mib} MiB, {rounds} rounds, interleaved)");
    println!();
    const KINDS: [&str; 3] = ["h3 batched", "h3 unbatched", "h2"];
    let mut secs = [0f64; 3];
    let mut calls = [(0u64, 0u64, 0u64, 0u64); 3];
    for round in 1..=rounds {
        let mut line = Vec::new();
        for (i, kind) in KINDS.iter().enumerate() {
            let host = match i {
                0 => origin_host(origin).version(VersionPref::Http3),
                1 => origin_host(origin)
                    .version(VersionPref::Http3)
                    .udp_batching(false),
                _ => origin_host(origin).version(VersionPref::Http2),
            }
            .build()?;
            let before = udp_stats();
            let (n, took) = download(&host, &url).await?;
            let after = udp_stats();
            anyhow::ensure!(n == (mib as u64) << 20, "{kind}: {n} bytes");
            secs[i] += took.as_secs_f64();
            calls[i].0 += after.sends - before.sends;
            calls[i].1 += after.recvs - before.recvs;
            calls[i].2 += after.sent_datagrams - before.sent_datagrams;
            calls[i].3 += after.received_datagrams - before.received_datagrams;
            line.push(format!(
                "{kind} {:>7.1} MiB/s",
                mib as f64 / took.as_secs_f64()
            ));
        }
        println!("  round {round}: {}", line.join("   "));
    }
    let total_mib = (mib as f64) * f64::from(rounds);
    println!();
    println!("download {mib} MiB (client side; UDP calls and datagrams per MiB):");
    for (i, kind) in KINDS.iter().enumerate() {
        let (s, r, sd, rd) = calls[i];
        let per = |x: u64| x as f64 / total_mib;
        if i == 2 {
            println!("  {kind:13} {:>7.1} MiB/s", total_mib / secs[i]);
        } else {
            println!(
                "  {kind:13} {:>7.1} MiB/s   recv calls {:>7.1}/MiB ({:>6.1} datagrams)   send calls {:>6.1}/MiB ({:>5.1} datagrams)",
                total_mib / secs[i],
                per(r),
                per(rd),
                per(s),
                per(sd)
            );
        }
    }
    println!(
        "  h3 batched vs unbatched throughput: {:.2}x; h3 batched vs h2: {:.2}x",
        secs[1] / secs[0],
        secs[2] / secs[0]
    );

    // Time to first byte on fresh hosts: a first visit knows nothing (h2);
    // a repeat visit with the Alt-Svc cache goes straight to h3; without
    // the cache it is a first visit again.
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("alt-svc.json");
    let small = format!("https://www.test:{}/", origin.addr.port());
    let ttfb = |h: Host| {
        let small = small.clone();
        async move {
            let r = h.fetch(FetchRequest::get(small)).await?;
            let t = r.timings.first_byte;
            let v = r.version;
            sockhost::host::read_all(r.body).await?;
            anyhow::Ok((t, v))
        }
    };
    let (mut first, mut with_cache, mut without) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let n = 20u32;
    let mut versions = (None, None, None);
    for _ in 0..n {
        let _ = std::fs::remove_file(&cache);
        let (t, v) = ttfb(origin_host(origin).alt_svc_file(cache.clone()).build()?).await?;
        first += t;
        versions.0 = Some(v);
        let (t, v) = ttfb(origin_host(origin).alt_svc_file(cache.clone()).build()?).await?;
        with_cache += t;
        versions.1 = Some(v);
        let (t, v) = ttfb(origin_host(origin).build()?).await?;
        without += t;
        versions.2 = Some(v);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(n);
    println!();
    println!("time to first byte, new host each time (mean of {n}):");
    println!(
        "  first visit                   {:>6.2} ms ({:?})",
        ms(first),
        versions.0.unwrap()
    );
    println!(
        "  repeat visit, Alt-Svc cache   {:>6.2} ms ({:?})",
        ms(with_cache),
        versions.1.unwrap()
    );
    println!(
        "  repeat visit, no cache        {:>6.2} ms ({:?})",
        ms(without),
        versions.2.unwrap()
    );
    Ok(())
}
