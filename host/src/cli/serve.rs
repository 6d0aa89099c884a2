//! `sockhost serve`: the daemon in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;

use sockhost::control::crash;
use sockhost::control::metrics::ProxyMetrics;
use sockhost::control::status::CrashesStatus;

use sockhost::config::{ServeConfig, UnixSocket};
use sockhost::control::plane::ControlPlane;
use sockhost::control::server::{bind_tcp, ControlServer};
use sockhost::control::token::Token;
use sockhost::host::Host;
use sockhost::serve::access_log::AccessLog;
use sockhost::serve::auth::Credentials;
use sockhost::serve::ca::{self, LeafCache, LocalCa};
use sockhost::serve::daemon::{ConfigSource, Daemon};
use sockhost::serve::intercept::Interceptor;
use sockhost::serve::listen;
use sockhost::serve::proxy::Proxy;
use sockhost::serve::server::{addresses, Server};
use tokio::net::{TcpListener, UnixListener};

/// The options of `sockhost serve`; each overrides its field of the
/// config's `[serve]` section.
#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Plugins, network preferences and `[serve]` (TOML); without it, the
    /// embedded defaults: the built-in blocklist and request-stats.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen for proxy clients here (loopback unless --allow-remote;
    /// repeatable; port 0 picks a free port). Default: 127.0.0.1:8128.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Do not listen on TCP, only on the Unix socket (as a daemon an IPC
    /// client starts does).
    #[arg(long, conflicts_with_all = ["listen", "no_unix"])]
    pub no_tcp: bool,
    /// The Unix socket to listen on too (default:
    /// $XDG_RUNTIME_DIR/sockhost/sockhost.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "no_unix")]
    pub unix: Option<PathBuf>,
    /// Do not listen on a Unix socket.
    #[arg(long)]
    pub no_unix: bool,
    /// Connections to HOST:PORT go to ADDR instead of DNS's answer.
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Trust the CA certificates in this PEM file too (repeatable).
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// A port CONNECT may tunnel to (repeatable; default 443 only).
    #[arg(long = "connect-port", value_name = "PORT")]
    pub connect_ports: Vec<u16>,
    /// Intercept CONNECT tunnels: terminate the client's TLS with a
    /// certificate from the local CA (`sockhost ca export` prints it, to be
    /// trusted by the client), so that extensions see every request.
    #[arg(long)]
    pub intercept: bool,
    /// Ask these name servers instead of the system's.
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    pub dns_server: Vec<SocketAddr>,
    /// Listen beyond loopback too; needs --credentials (every client then
    /// authenticates).
    #[arg(long)]
    pub allow_remote: bool,
    /// Clients must authenticate (Proxy-Authorization: Basic) as a
    /// user:password line of this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Log every request here, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// The control API's socket (default:
    /// $XDG_RUNTIME_DIR/sockhost/control.sock; mode 0600).
    #[arg(long = "control", value_name = "PATH", conflicts_with = "no_control")]
    pub control: Option<PathBuf>,
    /// No control socket.
    #[arg(long)]
    pub no_control: bool,
    /// Serve the control API on this loopback address too; needs
    /// --control-token-file.
    #[arg(long, value_name = "ADDR:PORT")]
    pub control_listen: Option<SocketAddr>,
    /// The bearer token control requests on TCP must carry (a file of mode
    /// 0600 holding one line).
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
    /// Serve POST /v1/debug/crash, which panics on purpose to try the
    /// crash reporter.
    #[arg(long, hide = true)]
    pub debug_crash_endpoint: bool,
}

/// The config's `[serve]` with the command line's options over it.
fn settings(args: &ServeArgs, mut serve: ServeConfig) -> ServeConfig {
    if !args.listen.is_empty() {
        serve.listen = args.listen.clone();
    }
    if args.no_tcp {
        serve.listen.clear();
    }
    if let Some(path) = &args.unix {
        serve.unix = UnixSocket::Path(path.clone());
    }
    if args.no_unix {
        serve.unix = UnixSocket::Off;
    }
    if !args.connect_ports.is_empty() {
        serve.connect_ports = args.connect_ports.clone();
    }
    serve.intercept |= args.intercept;
    serve.allow_remote |= args.allow_remote;
    if let Some(path) = &args.credentials {
        serve.credentials = Some(path.clone());
    }
    if let Some(path) = &args.access_log {
        serve.access_log = Some(path.clone());
    }
    if let Some(path) = &args.control {
        serve.control.unix = UnixSocket::Path(path.clone());
    }
    if args.no_control {
        serve.control.unix = UnixSocket::Off;
    }
    if let Some(addr) = args.control_listen {
        serve.control.listen = Some(addr);
    }
    if let Some(path) = &args.control_token_file {
        serve.control.token_file = Some(path.clone());
    }
    serve
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // First: a panic from here on leaves a report.
    let generation = Arc::new(AtomicU64::new(1));
    let crashes = crash_reporter(generation.clone());
    let source = ConfigSource {
        // Absolute, so that the status and reload errors name it fully.
        path: args
            .config
            .clone()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
        dns_servers: args.dns_server.clone(),
    };
    let config = source.read()?;
    // A long-running process: pooled instances pay off.
    let runtime = super::host_setup::plugin_runtime(true)?;
    let builder = Host::builder().reloadable(true).config(&config, &runtime)?;
    let builder = super::host_setup::network_options(builder, &args.resolve, &args.ca)?;
    let host = builder.build()?;
    let settings = settings(&args, config.serve.clone());
    settings.check_exposure()?;
    if settings.listen.is_empty() && settings.unix == UnixSocket::Off {
        anyhow::bail!("nothing to listen on: serve.listen is empty and the Unix socket is off");
    }
    if settings.control.listen.is_some() && settings.control.token_file.is_none() {
        anyhow::bail!("--control-listen needs --control-token-file (or serve.control.token-file)");
    }
    let token = match &settings.control.token_file {
        Some(path) if settings.control.listen.is_some() => Some(Token::load(path)?),
        _ => None,
    };
    // Read before listening: a bad file stops the daemon before any
    // client could reach it unauthenticated.
    let credentials = match &settings.credentials {
        Some(path) => Some(Credentials::load(path)?),
        None => None,
    };
    let mut tcp = Vec::new();
    for &addr in &settings.listen {
        tcp.push(if settings.allow_remote {
            listen::tcp_remote(addr).await?
        } else {
            listen::tcp(addr).await?
        });
    }
    let unix = match &settings.unix {
        UnixSocket::Off => None,
        UnixSocket::Default => {
            let path = listen::default_socket_path();
            Some((listen::unix(&path).await?, path))
        }
        UnixSocket::Path(path) => Some((listen::unix(path).await?, path.clone())),
    };
    let bound = addresses(&tcp);
    let counts = Arc::new(ProxyMetrics::default());
    let mut proxy = Proxy::new(host, bound.clone())
        .count_to(counts.clone())
        .connect_ports(settings.connect_ports.clone())
        .limits(&settings.limits);
    if let Some(credentials) = credentials {
        tracing::info!("clients authenticate ({credentials:?})");
        proxy = proxy.authenticate(credentials);
    }
    if let Some(path) = &settings.access_log {
        proxy = proxy.log_to(AccessLog::open(path)?);
    }
    if settings.intercept {
        let data = super::paths::data_dir().context(
            "--intercept needs a data directory for the local CA: set XDG_DATA_HOME or HOME",
        )?;
        let (ca, _) = LocalCa::load_or_create(&ca::ca_dir(&data))?;
        proxy = proxy.intercept(Interceptor::new(LeafCache::new(Arc::new(ca))));
    }
    let control_socket = control_socket_path(&settings.control.unix, &settings.unix);
    let control = ControlListeners::bind(control_socket, settings.control.listen, token).await?;
    let telemetry = proxy.host().telemetry().clone();
    let mut listeners: Vec<String> = bound.iter().map(|a| format!("http://{a}")).collect();
    if let Some((_, path)) = &unix {
        listeners.push(format!("unix:{}", path.display()));
    }
    listeners.extend(control.addresses());
    // Only once the local CA exists: whoever reads this line may run
    // `sockhost ca export` next, which would otherwise create a CA of its own.
    say_where(&bound, unix.as_ref().map(|(_, p)| p.as_path()), &control);
    let server = Server::new(proxy, tcp, unix).limits(settings.limits);
    let daemon = Arc::new(
        Daemon::new(
            server.proxy(),
            server.activity(),
            runtime,
            source,
            config,
            generation,
        )
        .listeners(listeners)
        .crashes(crashes)
        .counts(counts),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut control_server =
        ControlServer::new(daemon.clone(), control.unix).crash_endpoint(args.debug_crash_endpoint);
    if let Some((listener, token)) = control.tcp {
        control_server = control_server.tcp(listener, token);
    }
    let control_task = tokio::spawn(control_server.run(stopped_signal(stopped)));
    let reloads = tokio::spawn(reload_on_sighup(daemon.clone()));
    server
        .run(async {
            shutdown_signal().await;
            let _ = stop.send(true);
        })
        .await;
    reloads.abort();
    let _ = control_task.await;
    say_what_probes_counted(&telemetry).await;
    Ok(())
}

/// Installs the crash reporter (reports go to
/// `$XDG_STATE_HOME/sockhost/crashes/`) and returns what earlier runs left
/// there. Without a state directory the daemon runs without one, and says so.
fn crash_reporter(generation: Arc<AtomicU64>) -> CrashesStatus {
    let state = match crash::state_dir() {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!("no crash reports: {e}");
            return CrashesStatus::default();
        }
    };
    let dir = crash::crash_dir(&state);
    crash::install(dir.clone(), generation);
    let previous = match crash::record_start(&state, crash::unix_ms(SystemTime::now())) {
        Ok(previous) => previous,
        Err(e) => {
            tracing::warn!("cannot record the start time (crashes since the last start are not told apart): {e}");
            None
        }
    };
    let crashes = crash::scan(&dir, previous);
    if crashes.since_last_start > 0 {
        if let Some(latest) = &crashes.latest {
            tracing::warn!(
                "the daemon crashed {} time(s) since its last start; the latest: {} ({})",
                crashes.since_last_start,
                latest.message,
                latest.path
            );
        }
    }
    crashes
}

/// The control API's listeners, bound before the daemon says where it
/// listens.
struct ControlListeners {
    unix: Option<(UnixListener, PathBuf)>,
    tcp: Option<(TcpListener, Token)>,
}

impl ControlListeners {
    async fn bind(
        socket: Option<PathBuf>,
        listen: Option<SocketAddr>,
        token: Option<Token>,
    ) -> anyhow::Result<Self> {
        let unix = match socket {
            None => None,
            Some(path) => Some((listen::unix(&path).await?, path)),
        };
        let tcp = match (listen, token) {
            (Some(addr), Some(token)) => Some((bind_tcp(addr).await?, token)),
            _ => None,
        };
        Ok(ControlListeners { unix, tcp })
    }

    fn addresses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((_, path)) = &self.unix {
            out.push(format!("control+unix:{}", path.display()));
        }
        if let Some(addr) = self.tcp.as_ref().and_then(|(l, _)| l.local_addr().ok()) {
            out.push(format!("control+http://{addr}"));
        }
        out
    }
}

/// Where the control socket goes: as configured, or else next to the
/// proxy's socket (so that daemons on sockets of their own do not share
/// one), or else the default, `$XDG_RUNTIME_DIR/sockhost/control.sock`.
fn control_socket_path(control: &UnixSocket, proxy: &UnixSocket) -> Option<PathBuf> {
    match (control, proxy) {
        (UnixSocket::Off, _) => None,
        (UnixSocket::Path(path), _) => Some(path.clone()),
        (UnixSocket::Default, UnixSocket::Path(proxy)) => {
            let beside = proxy.with_file_name("control.sock");
            Some(match beside == *proxy {
                true => proxy.with_file_name("control.sock.control"),
                false => beside,
            })
        }
        (UnixSocket::Default, _) => Some(listen::default_control_socket_path()),
    }
}

/// Resolves once the daemon is told to stop.
async fn stopped_signal(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// SIGHUP reloads the config, as `sockhost reload` and the control API do.
async fn reload_on_sighup(daemon: Arc<Daemon>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: reload through the control API");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // The outcome is logged and kept for the status.
        let _ = daemon.reload().await;
    }
}

/// The probes' metrics, on stderr, as the daemon stops: until the control
/// API serves them, this is where a daemon's counts can be read.
async fn say_what_probes_counted(telemetry: &sockhost::telemetry::Bus) {
    if !telemetry.is_active() {
        return;
    }
    telemetry.flush(std::time::Duration::from_secs(2)).await;
    let metrics = telemetry.collect().await;
    eprint!(
        "what the probes counted:\n{}",
        super::probe_metrics::render(&metrics)
    );
}

/// Says where the daemon listens, the TCP address first (whoever started
/// it may read that line to find the port). A closed stdout is no reason
/// to stop: the lines are only a courtesy.
fn say_where(tcp: &[SocketAddr], unix: Option<&std::path::Path>, control: &ControlListeners) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for addr in tcp {
        tracing::info!("listening on http://{addr}");
        let _ = writeln!(
            out,
            "listening on http://{addr} (try: curl -x http://{addr} http://example.com/)"
        );
    }
    if let Some(path) = unix {
        let p = path.display();
        tracing::info!("listening on unix:{p}");
        let _ = writeln!(
            out,
            "listening on unix:{p} (try: curl --unix-socket {p} --request-target https://example.com/ http://localhost/)"
        );
    }
    for address in control.addresses() {
        tracing::info!("control API on {address}");
        let _ = writeln!(out, "control API on {address} (try: sockhost status)");
    }
    let _ = out.flush();
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon runs until it is killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    eprintln!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_socket_goes_beside_the_proxy_socket_unless_told() {
        let p = |s: &str| UnixSocket::Path(s.into());
        assert_eq!(
            control_socket_path(&UnixSocket::Default, &p("/run/x/proxy.sock")),
            Some("/run/x/control.sock".into())
        );
        assert_eq!(
            control_socket_path(&p("/c.sock"), &p("/run/x/proxy.sock")),
            Some("/c.sock".into())
        );
        assert_eq!(
            control_socket_path(&UnixSocket::Off, &UnixSocket::Default),
            None
        );
        assert_eq!(
            control_socket_path(&UnixSocket::Default, &UnixSocket::Off),
            Some(listen::default_control_socket_path())
        );
        assert_eq!(
            control_socket_path(&UnixSocket::Default, &p("/r/control.sock")),
            Some("/r/control.sock.control".into())
        );
    }

    #[test]
    fn the_command_line_overrides_the_config() {
        let config = ServeConfig {
            listen: vec!["127.0.0.1:3128".parse().unwrap()],
            unix: UnixSocket::Path("/run/a.sock".into()),
            connect_ports: vec![443, 8443],
            access_log: Some("/var/log/a.jsonl".into()),
            ..ServeConfig::default()
        };
        // Nothing on the command line: the config as it is.
        assert_eq!(settings(&ServeArgs::default(), config.clone()), config);
        let args = ServeArgs {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            no_unix: true,
            connect_ports: vec![9443],
            intercept: true,
            allow_remote: true,
            credentials: Some("users".into()),
            access_log: Some("b.jsonl".into()),
            ..ServeArgs::default()
        };
        let s = settings(&args, config.clone());
        assert_eq!(s.listen, args.listen);
        assert_eq!(s.unix, UnixSocket::Off);
        assert_eq!(s.connect_ports, vec![9443]);
        assert!(s.intercept && s.allow_remote);
        assert_eq!(s.credentials, Some(PathBuf::from("users")));
        assert_eq!(s.access_log, Some(PathBuf::from("b.jsonl")));
        assert_eq!(s.limits, config.limits);
        let unix = ServeArgs {
            unix: Some("/tmp/b.sock".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            settings(&unix, config).unix,
            UnixSocket::Path("/tmp/b.sock".into())
        );
    }
}
