//! Phase 5, finish: what the host records of a request once the upstream
//! answered. The request-end telemetry event is published when the
//! request fails or its body ends (or is dropped); Alt-Svc alternatives
//! are learned from the upstream's own headers, before the response filter
//! may change them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode, Version};

use super::alt_svc::AltSvcLearner;
use crate::host::{FetchError, FetchResponse, UploadProgress};
use crate::net::pool::OriginKey;
use crate::plugins::connect::Origin;
use crate::plugins::telemetry::{
    EventKind, HttpVersion, Method as WitMethod, RequestEndEvent, RequestStartEvent,
};
use crate::telemetry::Bus;

/// A request-end event waiting for its request to end.
#[derive(Debug)]
pub struct RequestEnd {
    bus: Bus,
    origin: Arc<Origin>,
    event: RequestEndEvent,
    started: Instant,
    /// A request body's progress, read when the request ends: a streamed
    /// upload's size is known only then.
    upload: Option<Arc<UploadProgress>>,
}

impl RequestEnd {
    /// Publishes the start of request `id` to `origin` and prepares its
    /// end; `None` (and nothing built) when no probe listens. Probes see
    /// the origin and method, not the URL or header values.
    pub fn start(
        bus: &Bus,
        id: u64,
        origin: &OriginKey,
        method: &Method,
        upload: Option<Arc<UploadProgress>>,
        started: Instant,
    ) -> Option<RequestEnd> {
        if !bus.is_active() {
            return None;
        }
        let wit_origin = bus.origin(&origin.scheme, &origin.host, origin.port);
        let method = WitMethod::from_http(method);
        let start = RequestStartEvent {
            id,
            origin: 0,
            method: method.clone(),
            headers: None,
        };
        bus.publish_for(&wit_origin, EventKind::RequestStart(start));
        let event = RequestEndEvent {
            id,
            origin: 0,
            method,
            status: None,
            protocol: None,
            bytes_sent: 0,
            bytes_received: 0,
            time_to_first_byte: None,
            total: 0,
            error: None,
        };
        Some(RequestEnd {
            bus: bus.clone(),
            origin: wit_origin,
            event,
            started,
            upload,
        })
    }

    /// Records the response's headers.
    fn responded(&mut self, status: StatusCode, version: Version, first_byte: Duration) {
        self.event.status = Some(status.as_u16());
        self.event.protocol = HttpVersion::from_http(version);
        self.event.time_to_first_byte = Some(first_byte.as_micros() as u64);
    }

    /// Counts `bytes` more sent upstream (a tunnel's, counted at its end).
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.event.bytes_sent += bytes as u64;
    }

    /// Counts `bytes` more of the response body.
    pub(crate) fn received(&mut self, bytes: usize) {
        self.event.bytes_received += bytes as u64;
    }

    /// Publishes the end: `error` is why the request did not complete.
    pub fn publish(mut self, error: Option<String>) {
        self.event.total = self.started.elapsed().as_micros() as u64;
        if let Some(upload) = &self.upload {
            self.event.bytes_sent += upload.bytes();
        }
        self.event.error = error;
        self.bus
            .publish_for(&self.origin, EventKind::RequestEnd(self.event));
    }
}

/// Ends a request that failed before it had a response.
pub fn failed(end: Option<RequestEnd>, error: &FetchError) {
    if let Some(end) = end {
        end.publish(Some(error.to_string()));
    }
}

/// Finishes a request that has a response from `origin`: learns its
/// Alt-Svc header, and leaves the end event to its body.
pub fn responded(
    response: &mut FetchResponse,
    origin: &OriginKey,
    end: Option<RequestEnd>,
    alt_svc: &AltSvcLearner,
) {
    if let Some(value) = response.headers.get(http::header::ALT_SVC) {
        alt_svc.learn(origin, value);
    }
    if let Some(mut end) = end {
        end.responded(
            response.status,
            response.version,
            response.timings.first_byte,
        );
        response.body.publish_at_end(end);
    }
}
