"""What a device can do at most: peak memory bandwidth and dense FLOP/s per dtype.

    from pytest_aina.devices import lookup

    limits = lookup("NVIDIA H100 80GB HBM3")       # None for a device we know nothing of
    limits.pct_of_bandwidth(2.1e12)                  # 62.7 (% of 3.35 TB/s)
    limits.min_time_s(bytes=..., flops=..., dtype="bfloat16")   # the roofline bound

The figures ship in ``pytest_aina/data/devices.json``, each with the vendor datasheet it
comes from (``source``). A configuration file can override them or add devices: the same
JSON format, given as ``path`` to :func:`load_table` or in ``AINA_DEVICES``; an entry with an
existing ``key`` changes only the fields it states. A measured figure replaces a
datasheet one through :meth:`DeviceLimits.with_measured`, and the limits then say so in
``source``. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

TABLE_VERSION = 1
FLOP_DTYPES = ("float16", "bfloat16", "float8", "tf32", "float32")


@dataclass(frozen=True)
class DeviceLimits:
    key: str
    name: str
    arch: str
    hbm_bytes_per_s: float
    flops: dict = field(hash=False)  # dtype -> dense FLOP/s
    source: str = ""
    match: tuple[str, ...] = ()

    def flops_for(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for inputs of ``dtype`` (float32 is the non-tensor FP32 rate)."""
        return self.flops.get(dtype)

    def pct_of_bandwidth(self, bytes_per_s: float) -> float:
        return 100.0 * bytes_per_s / self.hbm_bytes_per_s

    def pct_of_flops(self, flops_per_s: float, dtype: str) -> float | None:
        peak = self.flops_for(dtype)
        return None if not peak else 100.0 * flops_per_s / peak

    def min_time_s(self, *, bytes: float | None, flops: float | None, dtype: str) -> float | None:
        """Roofline lower bound of one call: the larger of bytes/bandwidth and flops/peak;
        None when neither model is known."""
        bounds = []
        if bytes:
            bounds.append(bytes / self.hbm_bytes_per_s)
        peak = self.flops_for(dtype)
        if flops and peak:
            bounds.append(flops / peak)
        return max(bounds) if bounds else None

    def with_measured(
        self, *, hbm_bytes_per_s: float | None = None, flops: dict | None = None, how: str = "measured"
    ) -> DeviceLimits:
        """These limits with measured figures in place of the datasheet's (e.g. a STREAM-like
        copy's bandwidth); ``how`` says where the figure came from and goes into ``source``."""
        changes = {}
        notes = []
        if hbm_bytes_per_s is not None:
            _positive(hbm_bytes_per_s, "hbm_bytes_per_s", "with_measured")
            changes["hbm_bytes_per_s"] = float(hbm_bytes_per_s)
            notes.append(f"hbm_bytes_per_s={hbm_bytes_per_s:.4g}")
        if flops:
            for k, v in flops.items():
                _positive(v, f"flops.{k}", "with_measured")
            changes["flops"] = {**self.flops, **{k: float(v) for k, v in flops.items()}}
            notes.append("flops " + ", ".join(f"{k}={v:.4g}" for k, v in flops.items()))
        if not changes:
            return self
        return replace(self, source=f"{how}: {'; '.join(notes)} (datasheet otherwise: {self.source})", **changes)


class DeviceTableError(ValueError):
    """A devices file that cannot be used; the message names the file and the key."""


def _positive(value, where: str, file: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise DeviceTableError(f"{file}: {where}: expected a positive number, got {value!r}")


@dataclass(frozen=True)
class DeviceTable:
    devices: tuple[DeviceLimits, ...]

    def lookup(self, device_name: str) -> DeviceLimits | None:
        """The first entry whose ``match`` regex is found in the lower-cased name, or one
        whose key or name equals it; None when nothing matches."""
        low = device_name.strip().lower()
        for d in self.devices:
            if low in (d.key, d.name.lower()) or any(re.search(p, low) for p in d.match):
                return d
        return None

    def by_key(self, key: str) -> DeviceLimits | None:
        return next((d for d in self.devices if d.key == key), None)


def _parse(doc, file: str, base: dict[str, DeviceLimits] | None = None) -> list[DeviceLimits]:
    if (
        not isinstance(doc, dict)
        or doc.get("aina_devices") != TABLE_VERSION
        or not isinstance(doc.get("devices"), list)
    ):
        raise DeviceTableError(f'{file}: expected {{"aina_devices": {TABLE_VERSION}, "devices": [...]}}')
    out = []
    allowed = {"key", "name", "arch", "match", "hbm_bytes_per_s", "flops", "source"}
    for i, e in enumerate(doc["devices"]):
        where = f"devices[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("key"), str):
            raise DeviceTableError(f"{file}: {where}: expected a mapping with a string 'key'")
        extra = sorted(set(e) - allowed)
        if extra:
            raise DeviceTableError(
                f"{file}: {where}.{extra[0]}: unknown key; expected one of: {', '.join(sorted(allowed))}"
            )
        old = (base or {}).get(e["key"])
        if old is None:
            missing = [k for k in ("name", "arch", "hbm_bytes_per_s", "flops", "source") if k not in e]
            if missing:
                raise DeviceTableError(
                    f"{file}: {where}: missing required key {missing[0]!r} for new device {e['key']!r}"
                )
        if "hbm_bytes_per_s" in e:
            _positive(e["hbm_bytes_per_s"], f"{where}.hbm_bytes_per_s", file)
        if "flops" in e:
            if not isinstance(e["flops"], dict):
                raise DeviceTableError(f"{file}: {where}.flops: expected a mapping of dtype to FLOP/s")
            for k, v in e["flops"].items():
                if k not in FLOP_DTYPES:
                    raise DeviceTableError(
                        f"{file}: {where}.flops.{k}: unknown dtype; expected one of: {', '.join(FLOP_DTYPES)}"
                    )
                _positive(v, f"{where}.flops.{k}", file)
        match = e.get("match", [])
        if not isinstance(match, list) or not all(isinstance(p, str) for p in match):
            raise DeviceTableError(f"{file}: {where}.match: expected a list of regular expressions")
        for j, p in enumerate(match):
            try:
                re.compile(p)
            except re.error as exc:
                raise DeviceTableError(f"{file}: {where}.match[{j}]: not a regular expression: {exc}") from None
        fields = dict(
            key=e["key"],
            name=e.get("name"),
            arch=e.get("arch"),
            hbm_bytes_per_s=float(e["hbm_bytes_per_s"]) if "hbm_bytes_per_s" in e else None,
            flops={k: float(v) for k, v in e["flops"].items()} if "flops" in e else None,
            source=e.get("source"),
            match=tuple(match) if "match" in e else None,
        )
        if old is None:
            out.append(DeviceLimits(**fields))
        else:
            changed = {k: v for k, v in fields.items() if v is not None}
            if "flops" in changed:
                changed["flops"] = {**old.flops, **changed["flops"]}
            if "source" not in changed:
                changed["source"] = f"configured in {file} (datasheet otherwise: {old.source})"
            out.append(replace(old, **changed))
    return out


def _read(path: Path):
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeviceTableError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeviceTableError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None


@cache
def _shipped() -> tuple[DeviceLimits, ...]:
    text = resources.files("pytest_aina").joinpath("data/devices.json").read_text()
    return tuple(_parse(json.loads(text), "pytest_aina/data/devices.json"))


def load_table(path: str | Path | None = None) -> DeviceTable:
    """The shipped table with ``path`` (or ``$AINA_DEVICES``) applied over it: entries with
    a known key are updated field by field, new ones are tried before the shipped ones."""
    shipped = list(_shipped())
    path = path if path is not None else os.environ.get("AINA_DEVICES") or None
    if path is None:
        return DeviceTable(tuple(shipped))
    base = {d.key: d for d in shipped}
    overrides = _parse(_read(Path(path)), str(path), base)
    updated = {d.key: d for d in overrides if d.key in base}
    new = [d for d in overrides if d.key not in base]
    return DeviceTable(tuple(new + [updated.get(d.key, d) for d in shipped]))


_DEFAULT: DeviceTable | None = None


def lookup(device_name: str) -> DeviceLimits | None:
    """Limits for a device name as the driver reports it ("NVIDIA H100 80GB HBM3"), from
    the shipped table plus ``$AINA_DEVICES``; None for an unknown device or a CPU."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_table()
    return _DEFAULT.lookup(device_name)
