"""One hypothesis per domain: the detectors' specialisations that overlap become one.

Two detectors can see the same opportunity: a hot shape domain nobody specialised for
(``hot_unspecialised``) is often also the domain a shape shift made hot (``shape_shift``),
or the one where a kernel far from its roofline has most to gain (``far_from_limit``).
Each of them is a reason to specialise one variant for that domain, so listing them
apart shows the same saving twice, and the App would open two PRs for one variant.

Actionable hypotheses of the same kernel whose domains overlap (every dim's ranges meet,
same dtype and arch, or either not stated) are merged, transitively:

* kind and id: the first member in :data:`LEAD_ORDER`, the most lasting first: a domain's
  own share keeps it hot from one day to the next, a kernel's efficiency can cross
  far_from_limit's threshold and back, and a shift is news for a day; so the merged
  hypothesis keeps the id the App already knows it by;
* domain: the smallest box holding every member's domain;
* gain: the largest member's estimate, not their sum: they estimate the same saving;
* evidence: the leading member's, its ``groups`` (the hot shapes the Changer reads) joined
  with the others' and kept to the merged domain, the most GPU time first, and ``merged``: every member whole, in its JSON form
  (:attr:`Hypothesis.members <pytest_aina.reasoner.hypothesis.Hypothesis.members>`).

``rollback`` and ``retire`` are about one variant each and are never merged.
"""

from __future__ import annotations

from dataclasses import replace

from pytest_aina.reasoner.hypothesis import ACTIONABLE, Hypothesis

#: Which member leads a merged hypothesis (gives it its kind and id): the most lasting first.
LEAD_ORDER = ("hot_unspecialised", "far_from_limit", "shape_shift")


def overlaps(a: dict, b: dict) -> bool:
    """Whether two domains (``{"dims": {k: [lo, hi]}, "dtype", "arch"}``; hi None: unbounded)
    share at least one call."""
    for key in ("dtype", "arch"):
        if a.get(key) and b.get(key) and a[key] != b[key]:
            return False
    da, db = a.get("dims") or {}, b.get("dims") or {}
    for k in set(da) & set(db):
        (alo, ahi), (blo, bhi) = da[k], db[k]
        if (ahi is not None and ahi < blo) or (bhi is not None and bhi < alo):
            return False
    return True


def hull(domains: list[dict]) -> dict:
    """The smallest domain holding all of ``domains``: a dim one of them leaves open stays open."""
    names = set.intersection(*(set(d.get("dims") or {}) for d in domains))
    dims = {}
    for k in sorted(names, key=lambda n: list(domains[0]["dims"]).index(n)):
        los = [d["dims"][k][0] for d in domains]
        his = [d["dims"][k][1] for d in domains]
        dims[k] = [min(los), None if None in his else max(his)]
    out = {"dims": dims}
    for key in ("dtype", "arch"):
        values = {d.get(key) for d in domains}
        out[key] = values.pop() if len(values) == 1 else None
    return out


def _inside(row: dict, domain: dict) -> bool:
    """Whether an evidence row (one telemetry group: dims, dtype, arch) lies in ``domain``."""
    point = {
        "dims": {k: [v, v] for k, v in (row.get("dims") or {}).items()},
        "dtype": row.get("dtype"),
        "arch": row.get("arch"),
    }
    return overlaps(point, domain)


def merge_overlapping(hypotheses: list[Hypothesis], *, top_groups: int = 5) -> list[Hypothesis]:
    """``hypotheses`` with the actionable ones over overlapping domains of one kernel merged
    (see the module docstring); the others unchanged. Order is not kept: rank afterwards."""
    kept = [h for h in hypotheses if h.kind not in ACTIONABLE]
    by_kernel: dict[str, list[Hypothesis]] = {}
    for h in hypotheses:
        if h.kind in ACTIONABLE:
            by_kernel.setdefault(h.kernel, []).append(h)
    for members in by_kernel.values():
        for cluster in _clusters(members):
            kept.append(cluster[0] if len(cluster) == 1 else _merge(cluster, top_groups))
    return kept


def _clusters(members: list[Hypothesis]) -> list[list[Hypothesis]]:
    """Connected components of the overlap relation (union-find; a few hypotheses per kernel)."""
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            if overlaps(members[i].domain, members[j].domain):
                parent[root(j)] = root(i)
    groups: dict[int, list[Hypothesis]] = {}
    for i, h in enumerate(members):
        groups.setdefault(root(i), []).append(h)
    return [sorted(g, key=_lead_order) for g in groups.values()]


def _lead_order(h: Hypothesis) -> tuple:
    return (LEAD_ORDER.index(h.kind), -h.expected_gain, h.id)


def _merge(cluster: list[Hypothesis], top_groups: int) -> Hypothesis:
    lead = cluster[0]
    best = max(cluster, key=lambda h: (h.expected_gain, -LEAD_ORDER.index(h.kind)))
    domain = hull([h.domain for h in cluster])
    ev = dict(lead.evidence)
    rows, seen = [], set()
    for h in cluster:
        for row in h.evidence.get("groups") or []:
            key = (row.get("variant"), repr(row.get("dims")), row.get("dtype"), row.get("device"))
            if key not in seen:
                seen.add(key)
                rows.append(row)
    # only shapes inside the merged domain: the Changer times the first row (a far_from_limit
    # member lists the whole kernel's shapes)
    rows = [r for r in rows if _inside(r, domain)]
    if rows:
        ev["groups"] = sorted(rows, key=lambda r: (-(r.get("gpu_s") or 0.0), repr(r.get("dims"))))[
            : max(top_groups, len(lead.evidence.get("groups") or []))
        ]
    # each member whole, in its JSON form: Hypothesis.members reads them back
    ev["merged"] = [h.to_json() for h in cluster]
    others = ", ".join(sorted({h.kind for h in cluster[1:]}, key=LEAD_ORDER.index))
    return replace(
        lead,
        domain=domain,
        title=f"{lead.title} (also {others})",
        expected_gain=best.expected_gain,
        gain_basis=(
            f"merged {len(cluster)} hypotheses over one domain; the largest estimate, {best.kind}'s, "
            f"not their sum (they estimate the same saving): {best.gain_basis}"
        ),
        evidence=ev,
    )
