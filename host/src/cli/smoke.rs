//! The smoke test `plugin check` runs: instantiate the plugin and call its
//! world's functions once with ordinary inputs, under the manifest's limits.
//! A plugin that loops, runs out of memory, panics or answers nonsense on
//! the most ordinary input is refused like one with a bad import.

use std::time::{Duration, Instant};

use anyhow::bail;
use sockhost::net::plan::{
    AttemptReport, Candidate, ConnectRequest, ReportedOutcome, Transport as PlanTransport,
};
use sockhost::net::pool::OriginKey;
use sockhost::plugins::bindings::types::Origin;
use sockhost::plugins::congestion::{
    AckFrame, AckSample, CongestionCause, CongestionEvent, CongestionPlugin, ControllerConfig,
    RttEstimate,
};
use sockhost::plugins::connect::ConnectPlugin;
use sockhost::plugins::extension::{ExtensionPlugin, Header, Request, ResourceType, Response};
use sockhost::plugins::telemetry::{
    Batch, Event, EventKind, HttpVersion, Method, RequestEndEvent, TelemetryPlugin,
};
use sockhost::plugins::LoadedPlugin;
use sockhost_policy::World;

fn origin() -> Origin {
    Origin {
        scheme: "https".into(),
        host: "www.example.com".into(),
        port: 443,
    }
}

/// Where a smoke test's time went.
#[derive(Debug)]
pub struct Smoke {
    /// The functions called.
    pub calls: &'static str,
    /// Instantiating (the latest instance).
    pub instantiate: Option<Duration>,
    /// An extension's `init`.
    pub init: Option<Duration>,
    /// Everything, instantiation and init included.
    pub total: Duration,
}

impl Smoke {
    /// The calls themselves: the total less instantiation and init.
    pub fn calls_time(&self) -> Duration {
        self.total
            .saturating_sub(self.instantiate.unwrap_or_default())
            .saturating_sub(self.init.unwrap_or_default())
    }
}

/// What a world's smoke test reports before the total is known.
struct Timed {
    calls: &'static str,
    instantiate: Option<Duration>,
    init: Option<Duration>,
}

/// Runs the smoke test; returns where the time went, or the fault as error.
pub fn run(loaded: LoadedPlugin) -> anyhow::Result<Smoke> {
    let started = Instant::now();
    let timed = match loaded.world() {
        World::Extension => extension(loaded)?,
        World::CongestionPolicy => congestion(loaded)?,
        World::ConnectPolicy => connect(loaded)?,
        World::TelemetryProbe => telemetry(loaded)?,
    };
    Ok(Smoke {
        calls: timed.calls,
        instantiate: timed.instantiate,
        init: timed.init,
        total: started.elapsed(),
    })
}

fn extension(loaded: LoadedPlugin) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let mut p = match ExtensionPlugin::start(loaded) {
        Ok(p) => p,
        Err(e) => bail!("smoke test: {e}"),
    };
    let instantiate = p.supervised().last_instantiation();
    let init = started
        .elapsed()
        .saturating_sub(instantiate.unwrap_or_default());
    let request = Request {
        id: 1,
        url: "https://www.example.com/index.html".into(),
        method: "GET".into(),
        headers: vec![Header {
            name: "user-agent".into(),
            value: b"sockhost-check".to_vec(),
        }],
        resource_type: ResourceType::Document,
    };
    let r = p.on_request(&request);
    if let Some(e) = r.error {
        bail!("smoke test: {e}");
    }
    let response = Response {
        request_id: 1,
        url: request.url.clone(),
        status: 200,
        headers: vec![Header {
            name: "content-type".into(),
            value: b"text/html".to_vec(),
        }],
    };
    if let Some(e) = p.on_response("www.example.com", &response).error {
        bail!("smoke test: {e}");
    }
    Ok(Timed {
        calls: "init, on-request, on-response",
        instantiate,
        init: Some(init),
    })
}

fn congestion(loaded: LoadedPlugin) -> anyhow::Result<Timed> {
    let mut p = CongestionPlugin::new(loaded)?;
    let config = ControllerConfig {
        max_datagram_size: 1200,
        initial_window: 12_000,
        minimum_window: 2400,
        maximum_window: 1 << 30,
        now: 0,
    };
    let frame = AckFrame {
        now: 20_000,
        largest_acked: 3,
        largest_sent: 10,
        rtt: RttEstimate {
            latest: 20_000,
            smoothed: 20_000,
            min: 20_000,
        },
        bytes_in_flight: 2400,
        app_limited: false,
    };
    let mut run = || -> Result<(), sockhost::plugins::congestion::ControllerError> {
        let mut h = p.new_controller(config)?;
        let acks: Vec<AckSample> = (0..4)
            .map(|i| AckSample {
                sent: i * 100,
                bytes: 1200,
            })
            .collect();
        p.on_ack(&mut h, frame, &acks)?;
        let loss = CongestionEvent {
            cause: CongestionCause::Loss,
            sent: 15_000,
            lost_bytes: 1200,
            persistent_congestion: false,
        };
        p.on_congestion_event(&mut h, 25_000, loss)?;
        p.on_mtu_update(&mut h, 1400)?;
        p.drop_controller(h);
        Ok(())
    };
    if let Err(e) = run() {
        bail!("smoke test: {e}");
    }
    Ok(Timed {
        calls: "controller, initial, on-ack, on-congestion-event, on-mtu-update",
        instantiate: p.supervised().last_instantiation(),
        init: None,
    })
}

fn connect(loaded: LoadedPlugin) -> anyhow::Result<Timed> {
    let mut p = ConnectPlugin::new(loaded)?;
    let origin = OriginKey {
        scheme: "https".into(),
        host: "www.example.com".into(),
        port: 443,
    };
    let request = ConnectRequest {
        origin: origin.clone(),
        candidates: vec![
            Candidate::plain(1, "[2001:db8::1]:443".parse()?, PlanTransport::Tcp),
            Candidate::plain(2, "192.0.2.1:443".parse()?, PlanTransport::Tcp),
        ],
        history: vec![],
        network_changed: false,
        now_us: 0,
    };
    if let Err(e) = p.plan(&request) {
        bail!("smoke test: {e}");
    }
    let reports = [AttemptReport {
        candidate: 1,
        outcome: ReportedOutcome::Connected,
        elapsed: Duration::from_millis(10),
    }];
    if let Err(e) = p.report(&origin, &request.candidates, &reports) {
        bail!("smoke test: {e}");
    }
    Ok(Timed {
        calls: "plan, report",
        instantiate: p.supervised().last_instantiation(),
        init: None,
    })
}

fn telemetry(loaded: LoadedPlugin) -> anyhow::Result<Timed> {
    let mut p = TelemetryPlugin::new(loaded)?;
    let events: Vec<Event> = (0..4u64)
        .map(|i| Event {
            at: i,
            kind: EventKind::RequestEnd(RequestEndEvent {
                id: i,
                origin: 0,
                method: Method::Get,
                status: Some(200),
                protocol: Some(HttpVersion::Http2),
                bytes_sent: 0,
                bytes_received: 1000,
                time_to_first_byte: Some(5_000),
                total: 9_000,
                error: None,
            }),
        })
        .collect();
    let batch = Batch {
        origins: vec![origin()],
        events,
    };
    if let Err(e) = p.on_events(&batch, 0) {
        bail!("smoke test: {e}");
    }
    if let Err(e) = p.collect() {
        bail!("smoke test: {e}");
    }
    Ok(Timed {
        calls: "on-events, collect",
        instantiate: p.supervised().last_instantiation(),
        init: None,
    })
}
