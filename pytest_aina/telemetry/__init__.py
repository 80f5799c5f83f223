"""Telemetry: the data production sends the repository about how its kernels are used.

* :mod:`.window` — :class:`Window`, the unit of telemetry;
* :mod:`.wire` — the wire format: JSONL offline, signed batches over HTTP;
* :mod:`.validate` — checking windows against the published schema, line by line.

The recorder that produces windows in production lives in :mod:`pytest_aina.runtime`, with
the dispatch tables: that is all a kernel imports. Importing this package is cheap and
stdlib-only (jsonschema is loaded by validation only).
"""

from pytest_aina.telemetry.window import FORMAT_VERSION, Latency, Window

__all__ = ["FORMAT_VERSION", "Latency", "Window"]
