"""The App's counters, kept by ``prometheus_client`` and summed over processes for ``GET /metrics``.

With ``PROMETHEUS_MULTIPROC_DIR`` set to one folder for every process of a deployment
(gunicorn's workers and ``aina serve --worker-only``), each process writes its counters to
files there and one scrape of any gunicorn worker answers the totals of all of them
(prometheus_client's multiprocess mode; counters of processes that exited stay in the sums,
as totals should). Without it each process counts for itself, which is all ``aina serve``
needs: it is one process. The job gauges are read from the store at scrape time, so they
are the same whichever process answers.

prometheus_client is imported when the App builds its :class:`Metrics` (it takes a quarter
of a second to import), not with this module.
"""

from __future__ import annotations

import os
import threading

#: The text exposition format the App has always answered in (Prometheus reads it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: name: (help, label names). The label names are sorted, as /metrics has always shown them.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "aina_webhooks_total": ("Webhook deliveries by event and outcome.", ("event", "outcome")),
    "aina_requests_rejected_total": ("Requests refused with a 4xx, by route and reason.", ("reason", "route")),
    "aina_requests_failed_total": (
        "Requests answered 5xx, by route and cause: store (a 503 with Retry-After) or bug (a 500).",
        ("cause", "route"),
    ),
    "aina_telemetry_batches_total": ("Telemetry batches by outcome.", ("outcome",)),
    "aina_telemetry_windows_total": ("Telemetry windows durably stored.", ()),
    "aina_telemetry_windows_repaired_total": ("Telemetry windows stored with lone surrogates replaced by U+FFFD.", ()),
    "aina_job_runs_total": ("Job runs, by kind and result.", ("kind", "result")),
    "aina_installation_tokens_issued_total": ("Installation tokens fetched (cache misses).", ()),
}
GAUGES = {"aina_jobs": ("Jobs in the store, by kind and state.", ("kind", "state"))}


class Metrics:
    """The counters of :data:`COUNTERS`, incremented by name: ``inc(name, amount, **labels)``."""

    def __init__(self) -> None:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter

        prometheus_client.disable_created_metrics()  # *_created series: noise for our totals
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        if self.multiprocess_dir:
            os.makedirs(self.multiprocess_dir, exist_ok=True)
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = {
            name: Counter(name, help_text, labels, registry=self.registry)
            for name, (help_text, labels) in COUNTERS.items()
        }
        self._caught_up: dict[str, float] = {}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        counter = self._counters[name]
        (counter.labels(**{k: str(v) for k, v in labels.items()}) if labels else counter).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        """This process's count (the tests' view; /metrics sums the processes)."""
        sample = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return sample or 0.0

    def catch_up(self, name: str, total: float) -> None:
        """Bring an unlabelled counter up to ``total``, a count this process keeps
        elsewhere (the installation tokens its AppAuth fetched)."""
        with self._lock:
            delta = total - self._caught_up.get(name, 0.0)
            if delta > 0:
                self._caught_up[name] = total
                self._counters[name].inc(delta)

    def render(self, gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] | None = None) -> str:
        """The exposition text: every process's counters (or this one's), and ``gauges``
        ({name of :data:`GAUGES`: {((label, value), ...): value}}) read by the caller."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import GaugeMetricFamily

        if self.multiprocess_dir:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
        else:
            registry = CollectorRegistry()
            registry.register(_Collected(self.registry))
        families = []
        for name, series in (gauges or {}).items():
            help_text, labels = GAUGES[name]
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for key, value in sorted(series.items()):
                family.add_metric([dict(key)[label] for label in labels], value)
            families.append(family)
        registry.register(_Collected(families))
        return generate_latest(registry).decode()


class _Collected:
    """A collector over fixed metric families, or over another registry's."""

    def __init__(self, source) -> None:
        self.source = source

    def collect(self):
        return self.source.collect() if hasattr(self.source, "collect") else iter(self.source)


def app_metrics() -> Metrics:
    return Metrics()
