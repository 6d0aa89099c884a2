"""Telemetry probes (``telemetry-probe`` world): network events in, metrics
out.

The host delivers events in batches, off the request path, and collects
metrics on demand. ::

    from sockhost_plugin import probe

    class Requests(probe.Probe):
        def __init__(self):
            self.ends = 0

        def on_event(self, event, batch):
            if isinstance(event.kind, probe.RequestEnd):
                self.ends += 1

        def collect(self):
            return [probe.counter("requests_total", "Requests ended.", self.ends)]

    Telemetry = probe.export(Requests)   # the name componentize-py looks for

Probes see origins, never full URLs, and only the headers their manifest
names.
"""

import math
from typing import Iterable, List, Optional, Tuple

from wit_world import exports as _exports
from wit_world.exports import telemetry as _wit
from wit_world.imports import types as _types

from . import _instance

Batch = _wit.Batch
Event = _wit.Event
Metric = _wit.Metric
Origin = _types.Origin

# The event kinds (``event.kind``), to test with ``isinstance``.
Dns = _wit.EventKind_Dns
ConnectAttempt = _wit.EventKind_ConnectAttempt
ConnectResult = _wit.EventKind_ConnectResult
Tls = _wit.EventKind_Tls
RequestStart = _wit.EventKind_RequestStart
RequestEnd = _wit.EventKind_RequestEnd
Congestion = _wit.EventKind_Congestion
PluginFault = _wit.EventKind_PluginFault


class Probe:
    """Subclass it; override ``on_event`` (or ``on_events`` for the whole
    batch) and ``collect``."""

    def on_events(self, batch: Batch, dropped: int) -> None:
        """A batch; ``dropped`` counts events the host dropped for this probe
        since the previous batch. Default: ``on_event`` for each event,
        oldest first."""
        for event in batch.events:
            self.on_event(event, batch)

    def on_event(self, event: Event, batch: Batch) -> None:
        """One event; ``origin(batch, i)`` reads the origins it names."""

    def collect(self) -> List[Metric]:
        """The current metrics. Default: none."""
        return []


class _Telemetry(_exports.Telemetry):
    def on_events(self, batch: Batch, dropped: int) -> None:
        _instance.get().on_events(batch, dropped)

    def collect(self) -> List[Metric]:
        return list(_instance.get().collect())


def export(cls: type) -> type:
    """Exports ``cls`` (a ``Probe`` subclass) as the component's
    implementation. Assign the result to ``Telemetry`` in the app module::

        Telemetry = export(MyProbe)
    """
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise TypeError(f"export() takes a Probe subclass, not {cls!r}")
    _instance.register(cls)
    return _Telemetry


def origin(batch: Batch, index: int) -> Optional[Origin]:
    """The origin an event names by index, or ``None`` if out of range."""
    return batch.origins[index] if 0 <= index < len(batch.origins) else None


def method_name(method: "_wit.Method") -> str:
    """An event's method as text: ``GET``, ``POST``, ..."""
    if isinstance(method, _wit.Method_Other):
        return method.value
    return type(method).__name__.rsplit("_", 1)[1].upper()


Labels = Iterable[Tuple[str, str]]


def counter(name: str, help: str, value: int, labels: Labels = ()) -> Metric:
    """A monotonically increasing count."""
    return Metric(name=name, help=help, labels=list(labels), value=_wit.MetricValue_Counter(int(value)))


def gauge(name: str, help: str, value: float, labels: Labels = ()) -> Metric:
    """A value that goes up and down (finite: the host refuses NaN)."""
    return Metric(name=name, help=help, labels=list(labels), value=_wit.MetricValue_Gauge(float(value)))


class Histogram:
    """Observations in fixed buckets, Prometheus style."""

    def __init__(self, bounds: Iterable[float]):
        self.bounds = sorted(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        if math.isnan(value):
            return
        i = 0
        while i < len(self.bounds) and value > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.sum += value

    def count(self) -> int:
        return sum(self.counts)

    def metric(self, name: str, help: str, labels: Labels = ()) -> Metric:
        value = _wit.Histogram(bounds=list(self.bounds), counts=list(self.counts), sum=self.sum)
        return Metric(name=name, help=help, labels=list(labels), value=_wit.MetricValue_Histogram(value))
