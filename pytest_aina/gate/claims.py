"""The claim reproduced: a bot's attestation claims a speedup per case on a device; the gate
compares each claim with what was measured on a device of the same kind.

* A variant for a GPU architecture (its dispatch domain names ``sm_90``, ``gfx942``, ...)
  backed by CPU-interpreter evidence: needs evidence (exit 2), whatever else holds.
* A claim made on a GPU, with no GPU measurement (no GPU here, no ``--reports`` from one):
  needs evidence.
* A claim whose measured speedup interval lies wholly below the claim's interval (by more
  than the policy's noise) is not reproduced: fail. It is reproduced when the measured
  speedup is significant (its interval above 1) and its estimate reaches the claim's
  interval within the noise; anything between is too noisy to say: needs evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_aina.gate.provenance import Attestation
from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED, Annotation, CheckResult

CHECK = "claims"
_GPU_ARCH = re.compile(r"^(sm_|gfx|compute_|cuda|rocm|hip)", re.I)


def parse_label(label: str) -> tuple[dict, str | None]:
    """``M=64,N=1024,float32`` -> ({"M": 64, "N": 1024}, "float32")."""
    dims, dtype = {}, None
    for part in str(label).split(","):
        k, eq, v = part.strip().partition("=")
        if eq and k != "dtype" and v.strip().lstrip("-").isdigit():
            dims[k.strip()] = int(v)
        elif (eq and k == "dtype") or (not eq and k):
            dtype = (v if eq else k).strip()
    return dims, dtype


@dataclass
class Claim:
    attestation: str
    kernel: str
    label: str
    dims: dict
    dtype: str | None
    device: str  # cpu | cuda
    device_name: str
    value: float | None  # claimed speedup (before / after)
    ci: tuple[float, float] | None
    # the winner's median latency and its 95% interval, seconds: what production verifies
    # (pytest_aina.gate.verification); not part of the gate's JSON
    latency_s: float | None = None
    latency_ci: tuple[float, float] | None = None
    variant: str | None = None

    def as_dict(self) -> dict:
        return {
            "attestation": self.attestation,
            "kernel": self.kernel,
            "case": self.label,
            "device": self.device,
            "device_name": self.device_name,
            "claimed": self.value,
            "claimed_ci": list(self.ci) if self.ci else None,
        }


def claims_of(a: Attestation) -> list[Claim]:
    p = a.predicate
    dev = p.get("device") if isinstance(p.get("device"), dict) else {}
    kind = "cuda" if dev.get("gpu_evidence") or dev.get("kind") == "cuda" else "cpu"
    variant = p.get("variant") if isinstance(p.get("variant"), dict) else {}
    out = []
    for m in p.get("measurements") or []:
        if not isinstance(m, dict) or not isinstance(m.get("speedup"), dict):
            continue
        sp = m["speedup"]
        ci = sp.get("ci95") if isinstance(sp.get("ci95"), list) and len(sp.get("ci95")) == 2 else None
        dims, dtype = parse_label(m.get("case", ""))
        after = m.get("after") if isinstance(m.get("after"), dict) else {}
        lat = after.get("median_s")
        lat_ci = after.get("ci95_s")
        out.append(
            Claim(
                a.path,
                str(p.get("kernel")),
                str(m.get("case")),
                dims,
                dtype,
                kind,
                str(dev.get("name") or kind),
                sp.get("value"),
                tuple(ci) if ci else None,
                float(lat) if isinstance(lat, (int, float)) and not isinstance(lat, bool) and lat > 0 else None,
                tuple(lat_ci) if isinstance(lat_ci, list) and len(lat_ci) == 2 else None,
                str(variant["name"]) if variant.get("name") else None,
            )
        )
    return out


def gpu_arches(a: Attestation) -> list[str]:
    variant = a.predicate.get("variant") if isinstance(a.predicate.get("variant"), dict) else {}
    domain = variant.get("domain") if isinstance(variant.get("domain"), dict) else {}
    arch = domain.get("arch") or []
    return [x for x in ([arch] if isinstance(arch, str) else arch) if isinstance(x, str) and _GPU_ARCH.match(x)]


def check(found: list[Attestation], rows: list, *, noise: float, here: str) -> tuple[CheckResult, dict]:
    """The verdict on every claim, and ``{(kernel, case, device): claim dict with 'reproduced'}``
    for the evidence table."""
    if not found:
        return CheckResult(CHECK, SKIPPED, "no attestation: nothing claimed"), {}
    needs, fails, passes, details, notes = [], [], [], [], []
    table: dict = {}
    for a in found:
        dev = a.predicate.get("device") if isinstance(a.predicate.get("device"), dict) else {}
        arches = gpu_arches(a)
        if arches and not (dev.get("gpu_evidence") or dev.get("kind") == "cuda"):
            needs.append(
                f"{a.path}: a variant for {', '.join(arches)} backed only by CPU-interpreter evidence "
                f"({dev.get('name') or dev.get('kind') or 'cpu'}): GPU evidence is needed"
            )
        for c in claims_of(a):
            entry = c.as_dict()
            key = (c.kernel, c.label, c.device)
            measured = [
                r
                for r in rows
                if r.kernel == c.kernel
                and r.case == c.label
                and r.device == c.device
                and r.comparison
                and r.status == "measured"
            ]
            if not measured:
                entry["reproduced"] = None
                why = (
                    f"claimed on a GPU ({c.device_name}); this runner is {here} and no report from a GPU runner "
                    "covers it"
                    if c.device == "cuda" and here != "cuda"
                    else "not measured here"
                )
                entry["note"] = why
                needs.append(f"{c.kernel} {c.label}: claimed {c.value:.2f}x: {why}" if c.value else f"{c.label}: {why}")
                table[key] = entry
                continue
            cmp = measured[0].comparison
            lo, hi = cmp["speedup_ci"]
            entry["measured"], entry["measured_ci"] = cmp["speedup"], [lo, hi]
            floor = c.ci[0] if c.ci else c.value
            claimed = (
                f"claimed {c.value:.2f}x" + (f" [{c.ci[0]:.2f}, {c.ci[1]:.2f}]" if c.ci else "")
                if c.value
                else "claimed no value"
            )
            measured_text = f"measured {cmp['speedup']:.2f}x [{lo:.2f}, {hi:.2f}] on {c.device}"
            if floor is None:
                entry["reproduced"] = None
                needs.append(f"{c.kernel} {c.label}: the attestation states no speedup value")
            elif hi * (1 + noise) < floor:
                entry["reproduced"] = False
                fails.append(f"{c.kernel} {c.label}: {claimed}, {measured_text}: not reproduced")
                notes.append(Annotation(a.path, None, fails[-1], title="aina gate: claim not reproduced"))
            elif cmp["speedup"] * (1 + noise) >= floor and lo > 1.0:
                entry["reproduced"] = True
                passes.append(f"{c.kernel} {c.label}: {claimed}, {measured_text}: reproduced")
            else:
                entry["reproduced"] = None
                needs.append(f"{c.kernel} {c.label}: {claimed}, {measured_text}: too noisy to confirm or refute")
            table[key] = entry
    details += fails + needs + passes
    data = {"claims": list(table.values())}
    if fails:
        return CheckResult(
            CHECK, FAIL, f"{len(fails)} claim(s) not reproduced: {fails[0]}", details, notes, data
        ), table
    if needs:
        return CheckResult(
            CHECK,
            NEEDS,
            f"{len(needs)} claim(s) need evidence this runner cannot give: {needs[0]}",
            details,
            notes,
            data,
        ), table
    if not passes:
        return CheckResult(CHECK, PASS, "the attestation claims no speedup", details, notes, data), table
    return CheckResult(CHECK, PASS, f"{len(passes)} claim(s) reproduced within noise", details, notes, data), table
