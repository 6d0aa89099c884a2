//! Embedding sockhost: `cargo run -p sockhost-embed-example -- URL`.
//!
//! Builds a host (system DNS and roots, the default connection limits),
//! fetches the URL and streams the body to stdout, then prints what the
//! connection looked like.

use std::io::Write;

use sockhost::host::{FetchRequest, Host};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: sockhost-embed-example URL"))?;
    let host = Host::builder().build()?;
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
