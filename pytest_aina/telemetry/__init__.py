"""Telemetry: production tells the repository how its kernels are used.

* :mod:`.window` — :class:`Window`, the unit of telemetry;
* :mod:`.wire` — the wire format: JSONL offline, signed batches over HTTP;
* :mod:`.validate` — checking windows against the published schema, line by line;
* :mod:`.recorder` — :class:`Recorder`, aggregating calls in production and shipping windows.

Importing this package is cheap and stdlib-only (jsonschema is loaded by validation
only): kernels import the recorder on their hot path, and must work without it.
"""

from pytest_aina.telemetry.recorder import Recorder, install, uninstall
from pytest_aina.telemetry.window import FORMAT_VERSION, Latency, Window

__all__ = ["FORMAT_VERSION", "Latency", "Recorder", "Window", "install", "uninstall"]
