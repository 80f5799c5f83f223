"""The child's environment: built from an allow-list, never copied from the parent.

Anything a candidate could use to reach a service (tokens, keys, cloud credentials, proxy
settings with passwords) lives in the parent's environment; the child gets only what a
kernel evaluation needs, with every home and cache pointing into its own folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pytest_aina.sandbox.redact import is_secret_name

#: Copied from the parent when set: they select devices and numerics, never carry secrets.
PASS_THROUGH = (
    "TRITON_INTERPRET",
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "TZ",
)


class EnvError(ValueError):
    pass


def build(
    work: str,
    *,
    pythonpath: list[str],
    extra: Mapping[str, str] | None = None,
    threads: int | None = 1,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment of a sandboxed child whose folder is ``work``.

    ``extra`` adds variables (e.g. ``TRITON_INTERPRET``); a name that looks like a
    credential is refused with :class:`EnvError`, so a caller cannot leak one by accident.
    ``threads`` pins the BLAS/OpenMP pools (None leaves the libraries' default); one
    thread keeps timings comparable between candidate and reference on a shared machine.
    """
    parent = os.environ if parent is None else parent
    exe_dir = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([exe_dir, "/usr/local/bin", "/usr/bin", "/bin"])),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": work,
        "TMPDIR": os.path.join(work, "tmp"),
        "XDG_CACHE_HOME": os.path.join(work, ".cache"),
        "XDG_CONFIG_HOME": os.path.join(work, ".config"),
        "TRITON_CACHE_DIR": os.path.join(work, ".cache", "triton"),
        "TRITON_HOME": work,
        "TORCH_HOME": os.path.join(work, ".cache", "torch"),
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(work, ".cache", "inductor"),
        "MPLCONFIGDIR": os.path.join(work, ".cache", "matplotlib"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": os.pathsep.join(pythonpath),
    }
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    # OpenMP workers sleep when a parallel region ends instead of spinning for milliseconds:
    # the timing protocol counts CPU used outside a call as work the call deferred, and a
    # spinning pool (measured: 6-10 ms after a 5 ms torch op on 2 threads) would look like it.
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    for name in PASS_THROUGH:
        if name in parent and not is_secret_name(name):
            env[name] = parent[name]
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise EnvError(f"sandbox env: {name!r}={value!r}: names and values must be strings")
        if is_secret_name(name):
            raise EnvError(
                f"sandbox env: refusing to pass {name!r} to a candidate: the name looks like a "
                "credential (KEY/TOKEN/SECRET/PASSWORD/...)"
            )
        env[name] = value
    return env
