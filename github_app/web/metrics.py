"""Counters for ``GET /metrics``, in Prometheus' text exposition format (version 0.0.4).

Counters are per process (as with prometheus_client without its multiprocess mode); the
job gauges are read from the store, so they are the same whichever worker is scraped.
"""

from __future__ import annotations

import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, help_text: str) -> None:
        self._help[name] = (kind, help_text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def value(self, name: str, **labels: str) -> float:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            return self._counters.get(name, {}).get(key, 0.0)

    def render(self, gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] | None = None
               ) -> str:
        lines: list[str] = []
        with self._lock:
            snapshot = {n: dict(s) for n, s in self._counters.items()}
        for name, series in sorted({**snapshot, **(gauges or {})}.items()):
            kind, help_text = self._help.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in sorted(series.items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{label_text}}} {value:g}" if label_text
                             else f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def app_metrics() -> Metrics:
    m = Metrics()
    m.describe("aina_webhooks_total", "counter", "Webhook deliveries by event and outcome.")
    m.describe("aina_requests_rejected_total", "counter",
               "Requests refused with a 4xx, by route and reason.")
    m.describe("aina_telemetry_batches_total", "counter", "Telemetry batches by outcome.")
    m.describe("aina_telemetry_windows_total", "counter", "Telemetry windows durably stored.")
    m.describe("aina_job_runs_total", "counter", "Job runs in this process, by kind and result.")
    m.describe("aina_jobs", "gauge", "Jobs in the store, by kind and state.")
    m.describe("aina_installation_tokens_issued_total", "counter",
               "Installation tokens fetched (cache misses).")
    return m
