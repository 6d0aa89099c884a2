//! Telemetry probes (`telemetry-probe` world): receive batches of network
//! events, hand back metrics when the host collects.

use crate::__bindings::telemetry::exports::sockhost::plugin::telemetry as wit;

pub use wit::{
    Batch, CongestionSample, ConnectAttemptEvent, ConnectResultEvent, DnsEvent, Event, EventKind,
    Histogram, HttpVersion, Method, Metric, MetricValue, OriginIndex, PluginFaultEvent,
    RequestEndEvent, RequestStartEvent, TlsEvent,
};

use crate::types::Origin;

/// A telemetry probe.
pub trait Probe: 'static {
    /// The probe's initial state.
    fn new() -> Self
    where
        Self: Sized;

    /// A batch of events, oldest first; `dropped` events were lost since the
    /// previous batch because the host's bus was full. Events name their
    /// origin by index: `batch.origin(event.origin)`.
    fn on_events(&mut self, batch: Batch, dropped: u64);

    /// The metrics so far. The host rejects NaN or infinite values and
    /// histograms whose counts do not have one more entry than bounds.
    /// The daemon's `/metrics` exports a metric `NAME` as
    /// `sockhost_probe_NAME` (a leading `sockhost_` dropped first) with a
    /// `plugin="PROBE"` label; name it in base units (`_seconds`, not
    /// `_ms`) as Prometheus wants.
    fn collect(&mut self) -> Vec<Metric>;
}

impl Batch {
    /// The origin an event's `origin` index names. The host only sends
    /// valid indexes; an invalid one gives `None` rather than a panic.
    pub fn origin(&self, index: OriginIndex) -> Option<&Origin> {
        self.origins.get(index as usize)
    }
}

impl Method {
    /// The method as sent, e.g. `GET`.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other(m) => m,
        }
    }
}

impl HttpVersion {
    /// The ALPN-style name: `http/1.1`, `h2` or `h3`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpVersion::Http1 => "http/1.1",
            HttpVersion::Http2 => "h2",
            HttpVersion::Http3 => "h3",
        }
    }
}

/// Longest metric label value (and help text) the host accepts, in bytes:
/// a `collect` returning a longer one is refused whole. An origin label
/// (`scheme://` + a DNS name of up to 253 bytes + `:port`) can be longer.
pub const MAX_LABEL_BYTES: usize = 256;

/// `value` cut to at most [`MAX_LABEL_BYTES`], on a character boundary, so
/// a long origin or plugin name cannot make the host refuse every metric.
pub fn label_value(mut value: String) -> String {
    if value.len() > MAX_LABEL_BYTES {
        let mut end = MAX_LABEL_BYTES;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

impl Histogram {
    /// An empty histogram with ascending upper `bounds`; values above the
    /// last bound fall in one more bucket.
    pub fn with_bounds(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Histogram {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    /// Counts `value` in its bucket.
    pub fn observe(&mut self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += value;
    }

    /// How many values were observed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Adapter<T>(std::marker::PhantomData<T>);

impl<T: Probe> wit::Guest for Adapter<T> {
    fn on_events(batch: Batch, dropped: u64) {
        crate::instance::with(T::new, |p: &mut T| p.on_events(batch, dropped))
    }

    fn collect() -> Vec<Metric> {
        crate::instance::with(T::new, |p: &mut T| p.collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::with_bounds(vec![1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 10.0, 11.0, 1000.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 2, 2]);
        assert_eq!(h.count(), 6);
        assert_eq!(h.sum, 1027.5);
    }
}
