"""sockhost_plugin.probe, natively against componentize-py's generated
bindings of the telemetry-probe world (sdk/python/test.sh generates them)."""

import unittest

from sockhost_plugin import _instance
from sockhost_plugin import probe
from wit_world.exports import telemetry as wit


def end(status, total_us):
    kind = probe.RequestEnd(
        wit.RequestEndEvent(
            id=1, origin=0, method=wit.Method_Post(), status=status, protocol=None, bytes_sent=0,
            bytes_received=10, time_to_first_byte=None, total=total_us, error=None,
        )
    )
    return probe.Event(at=0, kind=kind)


class Ends(probe.Probe):
    def __init__(self):
        self.seen = []

    def on_event(self, event, batch):
        self.seen.append((event.kind.value.status, probe.origin(batch, event.kind.value.origin)))

    def collect(self):
        return [probe.counter("ends_total", "Ends.", len(self.seen), [("k", "v")])]


class ProbeTest(unittest.TestCase):
    def tearDown(self):
        _instance._registered = None
        _instance._object = None

    def test_events_reach_on_event_in_order_and_metrics_come_back(self):
        origin = probe.Origin(scheme="https", host="www.test", port=443)
        batch = probe.Batch(origins=[origin], events=[end(200, 1), end(404, 2)])
        ext = probe.export(Ends)
        ext().on_events(batch, 0)
        self.assertEqual(_instance.get().seen, [(200, origin), (404, origin)])
        (m,) = ext().collect()
        self.assertEqual((m.name, m.labels, m.value), ("ends_total", [("k", "v")], wit.MetricValue_Counter(2)))

    def test_helpers(self):
        batch = probe.Batch(origins=[], events=[])
        self.assertIsNone(probe.origin(batch, 0))
        self.assertEqual(probe.method_name(wit.Method_Get()), "GET")
        self.assertEqual(probe.method_name(wit.Method_Options()), "OPTIONS")
        self.assertEqual(probe.method_name(wit.Method_Other("PURGE")), "PURGE")
        self.assertEqual(probe.gauge("g", "G.", 2).value, wit.MetricValue_Gauge(2.0))

    def test_histogram_buckets_are_per_bucket_with_one_above_the_last_bound(self):
        h = probe.Histogram([1.0, 0.1])
        for v in [0.05, 0.1, 0.5, 1.0, 3.0, float("nan")]:
            h.observe(v)
        self.assertEqual(h.bounds, [0.1, 1.0])
        self.assertEqual(h.counts, [2, 2, 1])
        self.assertEqual(h.count(), 5)
        m = h.metric("d", "D.")
        self.assertEqual(m.value.value.counts, [2, 2, 1])
        self.assertAlmostEqual(m.value.value.sum, 4.65)

    def test_the_default_probe_collects_nothing(self):
        probe.export(probe.Probe)
        self.assertEqual(probe.export(probe.Probe)().collect(), [])


if __name__ == "__main__":
    unittest.main()
