//! The request pipeline: the named phases every request goes through, in
//! order, each a function with a narrow input so that a proxy can run
//! them whole, and a tunnel some of them:
//!
//! 1. [`request_filter`]: extension rules, then hooks; redirects loop back;
//! 2. [`upstream`]: a connection leased from the pool (planned and raced
//!    inside the network stack when new);
//! 3. [`send`]: the request by its protocol's sender, up to the response
//!    head;
//! 4. [`response_filter`]: extension rules and hooks on the response head;
//! 5. [`finish`]: the request-end telemetry event (published when the body
//!    ends) and Alt-Svc learning (saved off the request path).

pub mod alt_svc;
pub mod alt_svc_file;
pub mod finish;
pub mod request_filter;
pub mod response_filter;
pub mod send;
pub mod target;
pub mod tunnel;
pub mod tunnel_end;
pub mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::alt_svc::AltSvcLearner;
use self::finish::RequestEnd;
use self::target::Target;
use crate::current::Current;
use crate::extensions::Extensions;
use crate::host::{FetchError, FetchRequest, FetchResponse, Timings};
use crate::net::dial::Dialer;
use crate::net::manager::Manager;
use crate::telemetry::Bus;

/// What the phases share: the pool, the extensions, the probes, the
/// Alt-Svc cache.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The connection pool.
    pub manager: Manager,
    /// Opens the connections of tunnels (the pool's are its own).
    pub dialer: Dialer,
    /// The extensions, in order; a reload replaces them, and a request
    /// keeps the list it started with.
    pub extensions: Current<Extensions>,
    /// The telemetry bus.
    pub bus: Bus,
    /// Where Alt-Svc alternatives are learned.
    pub alt_svc: AltSvcLearner,
    /// Longest wait for response headers (a reload may change it).
    pub request_timeout: Current<Duration>,
    next_id: Arc<AtomicU64>,
}

impl Pipeline {
    /// A pipeline over these parts; request ids start at 1.
    pub fn new(
        manager: Manager,
        dialer: Dialer,
        extensions: Extensions,
        bus: Bus,
        alt_svc: AltSvcLearner,
        request_timeout: Duration,
    ) -> Pipeline {
        Pipeline {
            manager,
            dialer,
            extensions: Current::new(extensions),
            bus,
            alt_svc,
            request_timeout: Current::new(request_timeout),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Runs `request` through every phase; the body streams from the
    /// returned response, and a streamed request body is sent while the
    /// upstream takes it.
    pub async fn run(&self, mut request: FetchRequest) -> Result<FetchResponse, FetchError> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut actions = Vec::new();
        let extensions = self.extensions.get();
        let target = request_filter::run(&extensions, id, &mut request, &mut actions).await?;
        let (body, upload) = std::mem::take(&mut request.body).into_upstream();
        let end = RequestEnd::start(
            &self.bus,
            id,
            &target.origin,
            &request.method,
            Some(upload.clone()),
            started,
        );
        let sending = send::Upload {
            body,
            progress: upload,
        };
        let mut response = match self.exchange(&request, sending, &target, started).await {
            Ok(response) => response,
            Err(e) => {
                finish::failed(end, &e);
                return Err(e);
            }
        };
        // Before the response filter: the end event goes with the body even
        // when an extension blocks the response; Alt-Svc is learned from
        // what the origin said.
        finish::responded(&mut response, &target.origin, end, &self.alt_svc);
        response_filter::run(&extensions, id, &request, &mut response, &mut actions).await?;
        response.actions = actions;
        Ok(response)
    }

    /// Phases 2 and 3: a connection, then the request on it.
    async fn exchange(
        &self,
        request: &FetchRequest,
        body: send::Upload,
        target: &Target,
        started: Instant,
    ) -> Result<FetchResponse, FetchError> {
        let headers = send::message::header_map(&request.headers)?;
        let lease = upstream::lease(&self.manager, &target.origin).await?;
        let (reused, connection) = (lease.reused, lease.info.clone());
        let timeout = *self.request_timeout.get();
        let (parts, body) = send::run(lease, request, body, target, &headers, timeout).await?;
        let timings = Timings::new(&connection, reused, started.elapsed());
        Ok(FetchResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
            connection,
            reused,
            timings,
            started,
            url: request.url.clone(),
            actions: Vec::new(),
        })
    }
}
