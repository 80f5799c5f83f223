"""What production code imports: dispatch tables and the telemetry recorder.

* :mod:`.dispatch` — a kernel's variants, read from its table (data), and the call that
  picks one;
* :mod:`.recorder` — :class:`Recorder`, aggregating calls into windows and shipping them.

Nothing here imports pytest, Hypothesis or torch at import time: a serving process that
imports the kernels pays for the table reader and the recorder only.
"""

from pytest_aina.runtime.recorder import Recorder, install, uninstall

__all__ = ["Recorder", "install", "uninstall"]
