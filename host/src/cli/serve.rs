//! `sockhost serve`: the daemon in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use sockhost::config::Config;
use sockhost::host::Host;
use sockhost::serve::ca::{self, LeafCache, LocalCa};
use sockhost::serve::intercept::Interceptor;
use sockhost::serve::listen::{self, DEFAULT_PORT};
use sockhost::serve::proxy::Proxy;
use sockhost::serve::server::{addresses, Server};

/// The options of `sockhost serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Plugins and network preferences (TOML); without it, the embedded
    /// defaults: the built-in blocklist and request-stats.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen for proxy clients here (loopback only; repeatable; port 0
    /// picks a free port). Default: 127.0.0.1:8128.
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
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(),
    };
    if !args.dns_server.is_empty() {
        config.dns_servers = args.dns_server.clone();
    }
    // A long-running process: pooled instances pay off.
    let runtime = super::host_setup::plugin_runtime(true)?;
    let builder = Host::builder().config(&config, &runtime)?;
    let builder = super::host_setup::network_options(builder, &args.resolve, &args.ca)?;
    let host = builder.build()?;
    let wanted = if args.no_tcp {
        Vec::new()
    } else if args.listen.is_empty() {
        vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))]
    } else {
        args.listen.clone()
    };
    let mut tcp = Vec::new();
    for addr in wanted {
        tcp.push(listen::tcp(addr).await?);
    }
    let unix = if args.no_unix {
        None
    } else {
        let path = args
            .unix
            .clone()
            .unwrap_or_else(listen::default_socket_path);
        Some((listen::unix(&path).await?, path))
    };
    let bound = addresses(&tcp);
    say_where(&bound, unix.as_ref().map(|(_, p)| p.as_path()));
    let mut proxy = Proxy::new(host, bound);
    if !args.connect_ports.is_empty() {
        proxy = proxy.connect_ports(args.connect_ports.clone());
    }
    if args.intercept {
        let data = super::paths::data_dir().context(
            "--intercept needs a data directory for the local CA: set XDG_DATA_HOME or HOME",
        )?;
        let (ca, _) = LocalCa::load_or_create(&ca::ca_dir(&data))?;
        proxy = proxy.intercept(Interceptor::new(LeafCache::new(std::sync::Arc::new(ca))));
    }
    let server = Server::new(proxy, tcp, unix);
    server.run(shutdown_signal()).await;
    Ok(())
}

/// Says where the daemon listens, the TCP address first (whoever started
/// it may read that line to find the port). A closed stdout is no reason
/// to stop: the lines are only a courtesy.
fn say_where(tcp: &[SocketAddr], unix: Option<&std::path::Path>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for addr in tcp {
        let _ = writeln!(
            out,
            "listening on http://{addr} (try: curl -x http://{addr} http://example.com/)"
        );
    }
    if let Some(path) = unix {
        let p = path.display();
        let _ = writeln!(
            out,
            "listening on unix:{p} (try: curl --unix-socket {p} --request-target https://example.com/ http://localhost/)"
        );
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
