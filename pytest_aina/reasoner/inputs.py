"""What the Reasoner reads, and the windows it refuses.

The Reasoner's figures are only as good as the windows behind them, so every window passes
the telemetry checks (:mod:`pytest_aina.telemetry.validate`) and then these, against the
repository: the kernel has a spec, the dims are the spec's, the dtype is one the spec
covers, the window is not a duplicate, and its latency does not beat the device's
roofline (which would mean the timing is not kernel time, or the limits are wrong).
A window that fails is reported with its line and skipped, never half-used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_aina.devices import DeviceTable
from pytest_aina.runtime import dispatch
from pytest_aina.spec.model import ELEMENT_SIZE, Spec
from pytest_aina.telemetry.validate import TelemetryIssue
from pytest_aina.telemetry.window import Window

# How much faster than the HBM roofline a window's mean latency may look before it is
# called impossible. Not 1: a small working set is often still in L2 from the kernel that
# produced it (an H100's L2 reads at roughly 2-3x its HBM bandwidth), and datasheet peaks
# are rounded. 4x is beyond any cache a kernel reads global memory through; an async GPU
# launch timed on the host (timing "wall") is the usual culprit.
IMPOSSIBLE_FACTOR = 4.0


@dataclass
class Inputs:
    windows: list[Window]
    specs: dict[str, Spec]
    tables: dict = field(default_factory=dict)  # kernel -> pytest_aina.runtime.dispatch.Table
    devices: DeviceTable | None = None
    issues: list[TelemetryIssue] = field(default_factory=list)
    source: str = ""


def load_specs(folder: str | Path) -> tuple[dict[str, Spec], list[str]]:
    """Specs by kernel name, and a message for each spec file that could not be loaded."""
    from pytest_aina.spec.model import discover, load_spec
    from pytest_aina.spec.reader import SpecError

    folder = Path(folder)
    if not folder.is_dir():
        return {}, [f"{folder}: no such folder; no kernel can be reasoned about"]
    specs, problems = {}, []
    for path in discover([folder]):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            problems.append(
                f"{path}: not a valid spec, skipped ({len(exc.issues)} issue(s); `aina spec check` lists them)"
            )
            continue
        specs[spec.name] = spec
    return specs, problems


def load_tables(folder: str | Path) -> tuple[dict, list[str]]:
    """Dispatch tables by kernel, and problems (read as data: no code of the repository runs)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}, []
    tables, problems = {}, []
    for path in sorted(folder.glob("*.yaml")):
        try:
            t = dispatch.load_table(path)
        except dispatch.DispatchTableError as exc:
            problems += exc.issues
            continue
        tables[t.kernel] = t
    return tables, problems


def screen(
    windows: list[Window], specs: dict[str, Spec], devices: DeviceTable | None
) -> tuple[list[Window], list[TelemetryIssue]]:
    """The windows the Reasoner may use, and an issue for each one it may not."""
    kept: list[Window] = []
    issues: list[TelemetryIssue] = []
    seen: dict = {}
    bound_cache: dict = {}

    def refuse(w: Window, path: tuple, msg: str) -> None:
        source, _, line = w.ref.rpartition(":")
        issues.append(TelemetryIssue(source or w.ref, int(line) if line.isdigit() else None, path, msg))

    for w in windows:
        spec = specs.get(w.kernel)
        if spec is None:
            refuse(w, ("kernel",), f"{w.kernel!r} has no spec (known: {', '.join(sorted(specs)) or 'none'}); skipped")
            continue
        names = [k for k, _ in w.dims]
        if sorted(names) != sorted(spec.dims):
            refuse(w, ("dims",), f"dims {names} are not {spec.name}'s dims {sorted(spec.dims)}; skipped")
            continue
        if w.dtype not in spec.dtypes or w.dtype not in ELEMENT_SIZE:
            refuse(w, ("dtype",), f"{w.dtype!r} is not a dtype of {spec.name} ({', '.join(spec.dtypes)}); skipped")
            continue
        ident = (w.service, w.instance, w.kernel, w.variant, w.dims, w.dtype, w.device, w.arch, w.start, w.end)
        if ident in seen:
            refuse(w, (), f"duplicate of {seen[ident]} (same service, instance, key and times); skipped")
            continue
        seen[ident] = w.ref
        if devices is not None:
            bkey = (w.kernel, w.dims, w.dtype, w.device)
            bound = bound_cache.get(bkey, False)
            if bound is False:
                bound = bound_cache[bkey] = _roofline_bound(spec, w, devices)
            if bound is not None and w.mean_s * IMPOSSIBLE_FACTOR < bound:
                refuse(
                    w,
                    ("time_s",),
                    f"mean latency {w.mean_s:.3g} s is over {IMPOSSIBLE_FACTOR:g}x below the roofline "
                    f"bound {bound:.3g} s of {w.device}: not kernel time (timing {w.timing!r}?); skipped",
                )
                continue
        kept.append(w)
    return kept, issues


def _roofline_bound(spec: Spec, w: Window, devices: DeviceTable) -> float | None:
    limits = devices.lookup(w.device)
    if limits is None:
        return None
    dims = dict(w.dims)
    try:
        return limits.min_time_s(
            bytes=spec.bytes_for(dims, w.dtype), flops=spec.flops_for(dims, w.dtype), dtype=w.dtype
        )
    except (ValueError, ZeroDivisionError, KeyError):
        return None
