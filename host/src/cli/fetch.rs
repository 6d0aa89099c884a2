//! `sockhost fetch URL`: one request through the full stack.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use sockhost::client::Client;
use sockhost::config::{Config, ControllerRef};
use sockhost::host::{FetchRequest, FetchResponse, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::race::Outcome;
use sockhost::Fetch;

use super::probe_metrics::ProbeMetrics;

/// The options that set up an in-process host: a daemon reached with
/// `--via` has its own.
const HOST_OPTIONS: [&str; 14] = [
    "ca",
    "resolve",
    "dns_server",
    "http1",
    "http2",
    "http3",
    "no_udp_batching",
    "config",
    "extensions",
    "probes",
    "connect_policy",
    "congestion",
    "no_default_plugins",
    "metrics",
];

/// The options of `sockhost fetch`.
#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The http(s) URL.
    pub url: String,
    /// Fetch through the daemon listening on this Unix socket (`sockhost
    /// serve`) instead of in this process; the daemon's config applies.
    #[arg(long, value_name = "SOCKET", conflicts_with_all = HOST_OPTIONS)]
    pub via: Option<PathBuf>,
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
    #[arg(long = "http1.1", conflicts_with_all = ["http2", "http3"])]
    pub http1: bool,
    /// Use HTTP/2 only.
    #[arg(long, conflicts_with = "http3")]
    pub http2: bool,
    /// Use HTTP/3 (QUIC) only.
    #[arg(long)]
    pub http3: bool,
    /// Send and receive one UDP datagram per system call (no recvmmsg,
    /// GSO or GRO), for comparison.
    #[arg(long)]
    pub no_udp_batching: bool,
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
    /// A config file: plugins, network preferences and congestion
    /// controllers. It loads only the plugins it lists (`builtin = true`
    /// for the built-in ones); without a file, the built-in blocklist and
    /// request-stats run.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load this extension too (repeatable).
    #[arg(long = "extension", value_name = "PLUGIN.TOML")]
    pub extensions: Vec<PathBuf>,
    /// Load this telemetry probe too (repeatable).
    #[arg(long = "probe", value_name = "PLUGIN.TOML")]
    pub probes: Vec<PathBuf>,
    /// Plan connections with this connect-policy plugin (default: the
    /// built-in RFC 8305 plan).
    #[arg(long = "connect-policy", value_name = "PLUGIN.TOML")]
    pub connect_policy: Option<PathBuf>,
    /// Control QUIC congestion with this: `native-cubic` (quinn's),
    /// `cubic` or `newreno` (built-in plugins), or a congestion-policy
    /// plugin's plugin.toml. Overrides the config's `[congestion]
    /// controller`; its per-host rules still apply.
    #[arg(long, value_name = "NAME|PLUGIN.TOML")]
    pub congestion: Option<String>,
    /// Do not load the built-in plugins.
    #[arg(long)]
    pub no_default_plugins: bool,
    /// Print what the probes collected (to stderr, or in the --json object).
    #[arg(long)]
    pub metrics: bool,
}

/// Runs `sockhost fetch`.
pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    // One request: one thread moves the bytes fastest (no cross-thread
    // wake-ups); plugin calls go to the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(fetch(args))
}

/// The config file (or the embedded config), with the command line's
/// plugin and network options on top.
fn layered_config(args: &FetchArgs) -> anyhow::Result<Config> {
    if !(args.max_time > 0.0 && args.max_time.is_finite()) {
        bail!("--max-time must be a positive number of seconds");
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(),
    };
    if args.no_default_plugins {
        config.builtin_plugins = false;
    }
    if let Some(name) = &args.congestion {
        config.congestion.controller = ControllerRef::parse(name, Path::new(""))
            .map_err(|e| anyhow::anyhow!("--congestion: {e}"))?;
    }
    config.extensions.extend(args.extensions.iter().cloned());
    config.probes.extend(args.probes.iter().cloned());
    if let Some(path) = &args.connect_policy {
        config.connect_policy = Some(path.clone());
    }
    if !args.dns_server.is_empty() {
        config.dns_servers = args.dns_server.clone();
    }
    config.request_timeout = Duration::from_secs_f64(args.max_time).min(config.request_timeout);
    Ok(config)
}

async fn fetch(args: FetchArgs) -> anyhow::Result<()> {
    if let Some(socket) = &args.via {
        if !(args.max_time > 0.0 && args.max_time.is_finite()) {
            bail!("--max-time must be a positive number of seconds");
        }
        let client = Client::new(socket.clone());
        let fetched = transfer(&client, request(&args)?, &args).await?;
        if args.json {
            println!("{}", describe(&args, &fetched, None, Some(socket)));
        }
        return Ok(());
    }
    let config = layered_config(&args)?;
    // One short-lived process: on-demand instances, no pool to reserve.
    let runtime = super::host_setup::plugin_runtime(false)?;
    let builder = Host::builder()
        .config(&config, &runtime)?
        .version(if args.http1 {
            VersionPref::Http1
        } else if args.http2 {
            VersionPref::Http2
        } else if args.http3 {
            VersionPref::Http3
        } else {
            VersionPref::Auto
        })
        .udp_batching(!args.no_udp_batching);
    let builder = super::host_setup::network_options(builder, &args.resolve, &args.ca)?;
    let host = builder.build()?;
    let fetched = transfer(&host, request(&args)?, &args).await?;
    let metrics = if args.metrics {
        host.telemetry().flush(Duration::from_secs(2)).await;
        Some(host.telemetry().collect().await)
    } else {
        None
    };
    if let (Some(m), false) = (&metrics, args.json) {
        eprint!("{}", super::probe_metrics::render(m));
    }
    if args.json {
        println!("{}", describe(&args, &fetched, metrics.as_deref(), None));
    }
    // What this run learned (Alt-Svc) is for the next one.
    host.flush().await;
    Ok(())
}

/// The request the command line describes.
fn request(args: &FetchArgs) -> anyhow::Result<FetchRequest> {
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
        request.body = d.clone().into();
    }
    Ok(request)
}

/// A response whose body was written out.
struct Fetched {
    response: FetchResponse,
    bytes: u64,
    total: Duration,
}

/// Fetches `request` with `fetcher` and writes the body where the command
/// line says, all within --max-time.
async fn transfer(
    fetcher: &impl Fetch,
    request: FetchRequest,
    args: &FetchArgs,
) -> anyhow::Result<Fetched> {
    let total_limit = Duration::from_secs_f64(args.max_time);
    // --max-time bounds everything, the connection's setup included (a QUIC
    // handshake into a black hole would otherwise take its full timeout).
    let mut response = tokio::time::timeout(total_limit, fetcher.fetch(request))
        .await
        .map_err(|_| anyhow::anyhow!("no response within {total_limit:?} (--max-time)"))??;
    let mut out: Box<dyn Write> = match (&args.output, args.json) {
        (Some(path), _) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        (None, true) => Box::new(std::io::sink()),
        (None, false) => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut bytes = 0u64;
    loop {
        let remaining = total_limit.saturating_sub(response.started.elapsed());
        let chunk = tokio::time::timeout(remaining, response.body.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("the body did not finish within {:?}", total_limit))??;
        let Some(chunk) = chunk else { break };
        bytes += chunk.len() as u64;
        out.write_all(&chunk).context("cannot write the body")?;
    }
    out.flush().context("cannot write the body")?;
    let total = response.started.elapsed();
    Ok(Fetched {
        response,
        bytes,
        total,
    })
}

/// The --json object. Through a daemon (`via`), what only the daemon knew
/// (the race, the connection, plugin actions, redirects) is `null`.
fn describe(
    args: &FetchArgs,
    fetched: &Fetched,
    metrics: Option<&ProbeMetrics>,
    via: Option<&Path>,
) -> serde_json::Value {
    let Fetched {
        response,
        bytes,
        total,
    } = fetched;
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let c = &response.connection;
    let attempts: Vec<serde_json::Value> = c
        .attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "address": c.candidates.iter().find(|(id, _)| *id == a.candidate).map(|(_, addr)| addr.to_string()),
                "transport": if a.tcp { "tcp" } else { "quic" },
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
    let winner = (!response.reused).then(|| why_won(&c.attempts)).flatten();
    let mut v = serde_json::json!({
        "url": args.url,
        "winner": winner,
        "status": response.status.as_u16(),
        "http_version": match response.version {
            http::Version::HTTP_3 => "HTTP/3".to_owned(),
            v => format!("{v:?}"),
        },
        "remote_address": c.remote.map(|a| a.to_string()),
        "reused_connection": response.reused,
        "planned_by": (!response.reused).then(|| c.planned_by.clone()),
        "congestion": c.congestion.as_ref().map(|s| serde_json::json!({
            "controller": s.controller(), "fault": s.fault(),
        })),
        "tls": c.tls_version.as_ref().map(|v| serde_json::json!({
            "version": v, "alpn": c.alpn, "resumed": c.resumed,
        })),
        "timings_ms": {
            "dns": ms(response.timings.dns),
            "connect": ms(response.timings.connect),
            "tls": ms(response.timings.tls),
            "first_byte": ms(response.timings.first_byte),
            "total": ms(*total),
        },
        "bytes": bytes,
        "attempts": if response.reused { Vec::new() } else { attempts },
        "url_fetched": response.url,
        "plugin_actions": response.actions.iter().map(|a| serde_json::json!({
            "plugin": a.plugin, "action": a.action, "detail": a.detail,
        })).collect::<Vec<_>>(),
        "metrics": metrics.map(super::probe_metrics::render),
        "via": via.map(|p| p.display().to_string()),
    });
    if via.is_some() {
        for unknown in [
            "winner",
            "remote_address",
            "reused_connection",
            "planned_by",
            "congestion",
            "tls",
            "attempts",
            "url_fetched",
            "plugin_actions",
        ] {
            v[unknown] = serde_json::Value::Null;
        }
    }
    v
}

/// Why the race's winner won, in words, from the attempts' summaries.
fn why_won(attempts: &[sockhost::net::race::AttemptSummary]) -> Option<String> {
    let won = attempts.iter().find(|a| a.outcome == Outcome::Won)?;
    let transport = |a: &sockhost::net::race::AttemptSummary| if a.tcp { "TCP" } else { "QUIC" };
    let started_before: Vec<_> = attempts
        .iter()
        .filter(|a| a.attempt != won.attempt && a.started.is_some() && a.started <= won.started)
        .collect();
    let failed = started_before
        .iter()
        .filter(|a| a.outcome == Outcome::Failed)
        .count();
    let still_running = started_before.len() - failed;
    Some(if started_before.is_empty() {
        format!(
            "the first {} attempt connected before any other needed to start or finish",
            transport(won)
        )
    } else if still_running == 0 {
        format!(
            "{} attempt connected after the {failed} attempt(s) started before it failed",
            transport(won)
        )
    } else {
        format!(
            "{} attempt connected first while {still_running} earlier attempt(s) had not (a head start or attempt delay gave them a lead they did not use)",
            transport(won)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> FetchArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            fetch: FetchArgs,
        }
        let argv = ["fetch", "https://a.test/"].iter().chain(argv);
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().fetch
    }

    #[test]
    fn flags_layer_on_the_embedded_config() {
        let c = layered_config(&args(&[])).unwrap();
        assert_eq!(c, Config::embedded());
        let c = layered_config(&args(&[
            "--no-default-plugins",
            "--extension",
            "e/plugin.toml",
            "--probe",
            "p/plugin.toml",
            "--connect-policy",
            "he/plugin.toml",
            "--dns-server",
            "127.0.0.1:5353",
            "--congestion",
            "newreno",
            "--max-time",
            "2.5",
        ]))
        .unwrap();
        assert!(!c.builtin_plugins);
        assert_eq!(c.extensions, vec![PathBuf::from("e/plugin.toml")]);
        assert_eq!(c.probes, vec![PathBuf::from("p/plugin.toml")]);
        assert_eq!(c.connect_policy, Some(PathBuf::from("he/plugin.toml")));
        assert_eq!(c.dns_servers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(
            c.congestion.controller,
            ControllerRef::Builtin(sockhost::builtin::NEWRENO)
        );
        assert_eq!(c.request_timeout, Duration::from_secs_f64(2.5));
    }

    #[test]
    fn flags_add_to_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[plugins]\nbuiltin = true\nextensions = [\"x/plugin.toml\"]\n\
             connect-policy = \"a/plugin.toml\"\n[network]\nrequest-timeout = \"1s\"\n",
        )
        .unwrap();
        let c = layered_config(&args(&[
            "--config",
            file.to_str().unwrap(),
            "--extension",
            "y/plugin.toml",
            "--connect-policy",
            "b/plugin.toml",
        ]))
        .unwrap();
        assert!(c.builtin_plugins);
        assert_eq!(
            c.extensions,
            vec![dir.path().join("x/plugin.toml"), "y/plugin.toml".into()]
        );
        // The command line wins where both name one; the shorter timeout wins.
        assert_eq!(c.connect_policy, Some(PathBuf::from("b/plugin.toml")));
        assert_eq!(c.request_timeout, Duration::from_secs(1));
    }

    #[test]
    fn bad_flags_are_named() {
        for (argv, words) in [
            (
                &["--congestion", "bbr"][..],
                "--congestion: unknown controller",
            ),
            (&["--max-time", "0"][..], "--max-time"),
        ] {
            let e = layered_config(&args(argv)).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
    }
}
