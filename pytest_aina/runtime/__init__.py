"""What production code imports: dispatch tables and the telemetry recorder.

* :mod:`.dispatch` — a kernel's variants, read from its table (data), and the call that
  picks one (:func:`dispatcher`, what a kernel module's entry point calls);
* :mod:`.recorder` — :class:`Recorder`, aggregating calls into windows (:mod:`.aggregate`)
  and shipping them (:mod:`.shipping`); :func:`install` makes one the recorder dispatch
  reports to;
* :mod:`.device` — a call's device and dtype in telemetry's words.

Nothing here imports pytest, Hypothesis, jsonschema, torch or Triton at import time (a test
checks it): a serving process that imports the kernels pays for the table reader (PyYAML)
and the recorder only. The telemetry format it writes is :mod:`pytest_aina.telemetry`'s.
"""

from pytest_aina.runtime.dispatch import dispatcher
from pytest_aina.runtime.recorder import Recorder, install, uninstall

__all__ = ["Recorder", "dispatcher", "install", "uninstall"]
