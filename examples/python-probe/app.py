"""A telemetry probe written in Python: counts the events it is given and
exports request counts by method and status class, bytes received and a
histogram of request durations."""

from sockhost_plugin import probe

# Request durations, seconds.
BOUNDS = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5]


class Counts(probe.Probe):
    def __init__(self):
        self.events = 0
        self.dropped = 0
        self.batches = 0
        self.requests = {}  # (method, status class) -> count
        self.bytes_received = 0
        self.durations = probe.Histogram(BOUNDS)

    def on_events(self, batch, dropped):
        self.batches += 1
        self.dropped += dropped
        super().on_events(batch, dropped)

    def on_event(self, event, batch):
        self.events += 1
        if isinstance(event.kind, probe.RequestEnd):
            end = event.kind.value
            status = "error" if end.status is None else f"{end.status // 100}xx"
            key = (probe.method_name(end.method), status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.bytes_received += end.bytes_received
            self.durations.observe(end.total / 1e6)

    def collect(self):
        metrics = [
            probe.counter("events_total", "Events delivered.", self.events),
            probe.counter("dropped_events_total", "Events the host dropped for this probe.", self.dropped),
            probe.counter("batches_total", "Batches delivered.", self.batches),
            probe.counter("bytes_received_total", "Response body bytes received.", self.bytes_received),
            self.durations.metric("request_duration_seconds", "Request durations."),
        ]
        for (method, status), n in sorted(self.requests.items()):
            metrics.append(
                probe.counter("requests_total", "Requests ended.", n, [("method", method), ("status", status)])
            )
        return metrics


Telemetry = probe.export(Counts)
