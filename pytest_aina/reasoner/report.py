"""Putting the Reasoner together: screen the windows, profile them, run the detectors, rank."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_aina.devices import DeviceTable
from pytest_aina.devices import load_table as load_devices
from pytest_aina.reasoner import detectors
from pytest_aina.reasoner.detectors import ReasonerConfig
from pytest_aina.reasoner.hypothesis import GAIN_UNIT, Hypothesis, rank
from pytest_aina.reasoner.inputs import load_specs, load_tables, screen
from pytest_aina.reasoner.left_alone import LeftAlone, explain
from pytest_aina.reasoner.merge import merge_overlapping
from pytest_aina.reasoner.profile import Profile, build_profile
from pytest_aina.spec.model import Spec
from pytest_aina.telemetry.validate import TelemetryIssue, read_file
from pytest_aina.telemetry.window import Window


@dataclass
class Report:
    hypotheses: list[Hypothesis]
    profile: Profile
    issues: list[TelemetryIssue] = field(default_factory=list)  # windows refused, line by line
    notes: list[str] = field(default_factory=list)  # problems with the inputs around the telemetry
    windows_read: int = 0
    seconds: float = 0.0
    left_alone: list[LeftAlone] = field(default_factory=list)  # hot kernels without a hypothesis, and why

    def as_json(self) -> list[dict]:
        """The hypotheses as ``aina reason --json`` prints them."""
        return [h.to_json() for h in self.hypotheses]

    to_json = as_json

    def report_json(self) -> dict:
        """Everything, as ``aina reason --json report`` prints it: the hypotheses (as
        :meth:`as_json`), the hot kernels left alone and why, and the fleet's total in the
        one unit every gain is stated in."""
        p = self.profile
        return {
            "gain_unit": GAIN_UNIT,
            "fleet_gpu_s_per_day": round(p.total_time_s * p.per_day, 3) if p.windows else 0.0,
            "windows": {"read": self.windows_read, "used": p.windows, "refused": len(self.issues)},
            "hypotheses": self.as_json(),
            "left_alone": [x.to_json() for x in self.left_alone],
        }


def reason(
    windows: list[Window],
    specs: dict[str, Spec],
    *,
    tables: dict | None = None,
    devices: DeviceTable | None = None,
    config: ReasonerConfig | None = None,
    issues: list[TelemetryIssue] | None = None,
    merged_at: Mapping[tuple[str, str], float] | None = None,
) -> Report:
    """Hypotheses from windows that already passed the telemetry checks. ``merged_at``:
    (kernel, variant) -> when the variant reached production, where known (see
    :func:`~pytest_aina.reasoner.detectors.retire`)."""
    cfg = config or ReasonerConfig()
    tables = tables or {}
    kept, refused = screen(windows, specs, devices)
    profile = build_profile(kept)
    roofs = detectors._Rooflines(specs, devices, cfg.launch_floor_s)
    found = merge_overlapping(
        detectors.far_from_limit(profile, roofs, cfg)
        + detectors.hot_unspecialised(profile, roofs, tables, cfg)
        + detectors.shape_shift(profile, roofs, cfg)
        + detectors.rollback(profile, specs, tables, devices, cfg)
        + detectors.retire(profile, tables, cfg, merged_at),
        top_groups=cfg.top_groups,
    )
    fleet_per_day = profile.total_time_s * profile.per_day
    if fleet_per_day > 0:
        found = [replace(h, gain_share=h.expected_gain / fleet_per_day) for h in found]
    left = explain(profile, roofs, tables, cfg, found, [w for w in windows if w.kernel not in specs])
    notes = []
    for kernel, variant in sorted(profile.variants):
        if variant != "generic" and kernel in tables and tables[kernel].get(variant) is None:
            notes.append(
                f"telemetry names variant {variant!r} of {kernel}, which is not in its dispatch table "
                "(an older or newer deployment?)"
            )
    return Report(rank(found), profile, list(issues or []) + refused, notes, windows_read=len(windows), left_alone=left)


def reason_about_file(
    telemetry: str | Path,
    *,
    specs: str | Path = "specs",
    variants: str | Path | None = "kernels/variants",
    devices: str | Path | None = None,
    config: ReasonerConfig | None = None,
) -> Report:
    """Read a JSONL telemetry file and reason about it; see :func:`reason`."""
    t0 = time.perf_counter()
    windows, issues = read_file(telemetry)
    spec_map, spec_notes = load_specs(specs)
    tables, table_notes = load_tables(variants) if variants is not None else ({}, [])
    report = reason(windows, spec_map, tables=tables, devices=load_devices(devices), config=config, issues=issues)
    report.notes = spec_notes + table_notes + report.notes
    report.windows_read = len(windows) + len({(i.source, i.line) for i in issues})
    report.seconds = time.perf_counter() - t0
    return report
