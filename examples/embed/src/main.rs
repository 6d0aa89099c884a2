//! Embedding sockhost: `cargo run -p sockhost-embed-example -- URL [CONFIG.toml]`.
//!
//! Builds a host from a sockhost config file with `Host::from_config` (the
//! plugins it names, its network preferences and congestion controllers),
//! or from the defaults (system DNS and roots, the default connection
//! limits, no plugins) without one; fetches the URL and streams the body to
//! stdout, then prints what the connection looked like.

use std::io::Write;
use std::path::Path;

use sockhost::config::Config;
use sockhost::host::{FetchRequest, Host};
use sockhost::plugins::{PluginRuntime, RuntimeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sockhost-embed-example URL [CONFIG.toml]"))?;
    let config = match args.next() {
        Some(path) => Config::load(Path::new(&path))?,
        None => Config::default(),
    };
    // Compiles the plugins the config names; its fault log is published
    // to the host's probes.
    let runtime = PluginRuntime::new(RuntimeOptions::default())?;
    let host = Host::from_config(&config, &runtime)?;
    let response = host.fetch(FetchRequest::get(url)).await?;
    eprintln!("{} {:?}", response.status, response.version);
    let mut body = response.body;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.chunk().await? {
        out.write_all(&chunk)?;
    }
    eprintln!(
        "remote {:?}, first byte after {:?}, connection reused: {}",
        response.connection.remote, response.timings.first_byte, response.reused
    );
    Ok(())
}
