//! `sockhost fetch URL`: one request through the full stack.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use sockhost::host::{FetchRequest, Host};
use sockhost::net::dns::ResolveOverride;
use sockhost::net::http::VersionPref;
use sockhost::net::race::Outcome;

/// The options of `sockhost fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The http(s) URL.
    pub url: String,
    /// Trust the CA certificates in this PEM file too (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Connect to ADDR for HOST:PORT instead of resolving it (repeatable).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Send DNS queries to this server (ADDR:PORT) instead of the system's.
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    pub dns_server: Vec<SocketAddr>,
    /// Use HTTP/1.1 only.
    #[arg(long = "http1.1", conflicts_with = "http2")]
    pub http1: bool,
    /// Use HTTP/2 only.
    #[arg(long)]
    pub http2: bool,
    /// A request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// A request body.
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print one JSON object describing the fetch instead of the body
    /// (the body still goes to -o FILE if given).
    #[arg(long)]
    pub json: bool,
    /// Give up on a response after this many seconds.
    #[arg(long = "max-time", value_name = "SECONDS", default_value_t = 30.0)]
    pub max_time: f64,
}

/// Runs `sockhost fetch`.
pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(fetch(args))
}

async fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    if !(args.max_time > 0.0 && args.max_time.is_finite()) {
        bail!("--max-time must be a positive number of seconds");
    }
    let mut builder = Host::builder()
        .version(if args.http1 {
            VersionPref::Http1
        } else if args.http2 {
            VersionPref::Http2
        } else {
            VersionPref::Auto
        })
        .request_timeout(Duration::from_secs_f64(args.max_time));
    for r in &args.resolve {
        builder = builder.resolve(r.parse::<ResolveOverride>().map_err(anyhow::Error::msg)?);
    }
    for ca in &args.ca {
        builder = builder.ca_file(ca.clone());
    }
    if !args.dns_server.is_empty() {
        builder = builder.name_servers(args.dns_server.clone());
    }
    let host = builder.build()?;
    let mut request = FetchRequest::get(&args.url);
    request.method = http::Method::from_bytes(args.method.as_bytes())
        .map_err(|_| anyhow::anyhow!("invalid method {:?}", args.method))?;
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            bail!("invalid header {h:?}: expected 'Name: value'");
        };
        request
            .headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(d) = &args.data {
        request.body = bytes::Bytes::from(d.clone());
    }
    let total_limit = Duration::from_secs_f64(args.max_time);
    let response = host.fetch(request).await?;
    let mut out: Box<dyn Write> = match (&args.output, args.json) {
        (Some(path), _) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        (None, true) => Box::new(std::io::sink()),
        (None, false) => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut body = response.body;
    let mut bytes = 0u64;
    loop {
        let remaining = total_limit.saturating_sub(response.started.elapsed());
        let chunk = tokio::time::timeout(remaining, body.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("the body did not finish within {:?}", total_limit))??;
        let Some(chunk) = chunk else { break };
        bytes += chunk.len() as u64;
        out.write_all(&chunk).context("cannot write the body")?;
    }
    out.flush().context("cannot write the body")?;
    let total = response.started.elapsed();
    if args.json {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let c = &response.connection;
        let attempts: Vec<serde_json::Value> = c
            .attempts
            .iter()
            .map(|a| {
                serde_json::json!({
                    "address": c.candidates.iter().find(|(id, _)| *id == a.candidate).map(|(_, addr)| addr.to_string()),
                    "syn_retry_twin": a.twin,
                    "start_ms": a.started.map(ms),
                    "duration_ms": a.elapsed.map(ms),
                    "outcome": match a.outcome {
                        Outcome::Won => "won",
                        Outcome::ConnectedLate => "connected-late",
                        Outcome::Failed => "failed",
                        Outcome::Cancelled => "cancelled",
                        Outcome::NotStarted => "not-started",
                    },
                })
            })
            .collect();
        let v = serde_json::json!({
            "url": args.url,
            "status": response.status.as_u16(),
            "http_version": format!("{:?}", response.version),
            "remote_address": c.remote.map(|a| a.to_string()),
            "reused_connection": response.reused,
            "tls": c.tls_version.as_ref().map(|v| serde_json::json!({
                "version": v, "alpn": c.alpn, "resumed": c.resumed,
            })),
            "timings_ms": {
                "dns": ms(response.timings.dns),
                "connect": ms(response.timings.connect),
                "tls": ms(response.timings.tls),
                "first_byte": ms(response.timings.first_byte),
                "total": ms(total),
            },
            "bytes": bytes,
            "attempts": if response.reused { Vec::new() } else { attempts },
            "plugin_actions": [],
        });
        println!("{v}");
    }
    Ok(())
}
