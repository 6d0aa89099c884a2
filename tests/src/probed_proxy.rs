//! The daemon's proxy in process, on a loopback port, in front of a host
//! with the real request-stats probe on its bus: for tests that send
//! requests through it with curl and read what the probe counted.

use std::time::Duration;

use sockhost::host::HostBuilder;
use sockhost::plugins::telemetry::{Metric, TelemetryPlugin};
use sockhost::plugins::CallError;
use sockhost::serve::listen;
use sockhost::serve::proxy::Proxy;
use sockhost::serve::server::{self, Server};

use crate::{plugin, rt, runtime};

/// What the probes collected, by probe name.
pub type Collected = Vec<(String, Result<Vec<Metric>, CallError>)>;

/// Builds `host` with request-stats, serves it through a [`Proxy`] that
/// `configure` may adjust, runs `requests` with the proxy's URL, then stops
/// the proxy and returns what the probe collected once it had every event.
pub fn with_request_stats(
    host: HostBuilder,
    configure: impl FnOnce(Proxy) -> Proxy,
    requests: impl FnOnce(&str),
) -> Collected {
    let (prt, _data) = runtime();
    let probe = TelemetryPlugin::new(prt.load(&plugin("request-stats")).unwrap()).unwrap();
    let rt = rt();
    let host = rt.block_on(async { host.probe(probe).build().unwrap() });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = rt
        .block_on(listen::tcp("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let addrs = server::addresses(std::slice::from_ref(&listener));
    let proxy = configure(Proxy::new(host.clone(), addrs.clone()));
    let serving = rt.spawn(Server::new(proxy, vec![listener], None).run(async {
        let _ = stopped.await;
    }));
    requests(&format!("http://{}/", addrs[0]));
    let probes = rt.block_on(async {
        host.telemetry().flush(Duration::from_secs(5)).await;
        host.telemetry().collect().await
    });
    let _ = stop.send(());
    rt.block_on(serving).unwrap();
    probes
}
