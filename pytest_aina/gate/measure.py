"""One measurement batch: base and head called alternately in one sandboxed session.

The sandbox's timing protocol (:func:`pytest_aina.sandbox.time_calls`) owns the clock in
the parent, makes fresh inputs for every call from a seed it picks, and checks every
output against the reference it computes itself. The gate gives it one entry that serves
base and head in turn (:func:`entry_source`): both implementations are imported in the
sandboxed child, each from its own checkout with its own copy of the repository's modules,
and call *i* goes to the side the pattern B H H B H B B H ... names. Every call of a batch
thus sees the same machine, process and moment as its partner, and one child start-up
(seconds, to import torch in a confined process) is paid per batch rather than per call.

What runs in the parent, trusted: the base's spec (cases, tolerance), its reference, and
the harness that makes the inputs. The head's code runs only in the child.

Known limit: base and head share the child process, so a hostile head could slow the base
down from inside it (making itself look faster). The base's own times are therefore also
compared between batches (:attr:`Batch.base_s`), and the claims a bot makes are judged
against the ratio; see docs/gate.md.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: minimum time a call is taken to last once the protocol's own floor is subtracted
_MIN_NET_S = 1e-7


def pattern(pairs: int) -> str:
    """``b``/``h`` per timed call: pairs alternate order (BH, HB, ...), so neither side is
    always first and a trend within a pair cancels over two pairs."""
    return "".join("bh" if k % 2 == 0 else "hb" for k in range(pairs))


def entry_source(roots: dict[str, str], implementations: dict[str, str], tops: list[str], order: str) -> str:
    """The entry module staged into the sandbox: ``call`` serves warm-up ``bh`` then ``order``."""
    return f'''"""pytest-aina gate: base and head of one kernel, called alternately (generated)."""
import importlib
import sys

from pytest_aina.imports import resolve

ROOTS = {json.dumps(roots)}
IMPLEMENTATIONS = {json.dumps(implementations)}
TOPS = frozenset({json.dumps(sorted(tops))})
ORDER = "bh" + {json.dumps(order)}  # warm-up calls first
SIDE = {{"b": "base", "h": "head"}}

sys.path.insert(0, "")  # the slot of the side being called (lazy imports find its modules)
_functions, _modules = {{}}, {{}}


def _repository_module(name):
    return name.partition(".")[0] in TOPS


def _load(side):
    for name in [n for n in sys.modules if _repository_module(n)]:
        del sys.modules[name]
    sys.path[0] = ROOTS[side]
    importlib.invalidate_caches()
    _functions[side] = resolve(IMPLEMENTATIONS[side])
    _modules[side] = {{n: m for n, m in sys.modules.items() if _repository_module(n)}}


_load("base")
_load("head")
_calls = 0


def call(*args, **kwargs):
    global _calls
    side = SIDE[ORDER[_calls % len(ORDER)]]
    _calls += 1
    sys.path[0] = ROOTS[side]
    sys.modules.update(_modules[side])
    return _functions[side](*args, **kwargs)
'''


def harness_source(spec_path: str) -> str:
    """make_inputs / reference / check bound to the base's spec (run in the parent, trusted)."""
    return (
        "from pytest_aina.changer import harness as _h\n"
        f"SPEC = {spec_path!r}\n\n"
        "def make_inputs(seed, **params):\n    return _h.make_inputs(SPEC, seed, **params)\n\n"
        "def reference(*args, **kwargs):\n    return _h.reference(SPEC, *args, **kwargs)\n\n"
        "def check(out, expected, **params):\n    return _h.check(SPEC, out, expected, **params)\n"
    )


@dataclass
class Batch:
    base_s: list[float] = field(default_factory=list)  # per pair, the protocol's floor subtracted
    head_s: list[float] = field(default_factory=list)
    ok: bool = True
    status: str = "ok"
    reason: str = ""
    side_at_fault: str | None = None  # "head" or "base" when a call failed
    floor_s: float | None = None
    wall_s: float = 0.0


@dataclass
class Session:
    """What stays the same over a case's batches."""

    base_root: Path
    head_root: Path
    base_impl: str
    head_impl: str
    base_spec: Path  # the spec file in the base checkout
    tops: list[str]  # top-level module names of the repository's code
    workdir: Path
    device: str = "cpu"
    wall_s: float = 300.0  # one batch's limit

    def env(self) -> dict:
        # On a CPU, one thread: the interpreter is single-threaded anyway, and an intra-op
        # pool turns every preemption of one worker on a shared runner into a stall of all.
        if self.device == "cpu":
            return {"TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return {}


class _ParentPath:
    """The base checkout importable in the parent (for its reference) for the duration of a
    batch, with no module of the repository left behind from another checkout."""

    def __init__(self, root: Path, tops: list[str]):
        self.root, self.tops = str(root), set(tops)

    def _purge(self):
        for name in [n for n in sys.modules if n.partition(".")[0] in self.tops]:
            del sys.modules[name]

    def __enter__(self):
        self._purge()
        sys.path.insert(0, self.root)

    def __exit__(self, *exc):
        if self.root in sys.path:
            sys.path.remove(self.root)
        self._purge()


def run_batch(s: Session, dims: dict, dtype: str, pairs: int, seed: int) -> Batch:
    from pytest_aina import sandbox

    order = pattern(pairs)
    s.workdir.mkdir(parents=True, exist_ok=True)
    entry = s.workdir / "gate_ab.py"
    entry.write_text(
        entry_source(
            {"base": str(s.base_root), "head": str(s.head_root)},
            {"base": s.base_impl, "head": s.head_impl},
            s.tops,
            order,
        )
    )
    harness = s.workdir / "gate_harness.py"
    harness.write_text(harness_source(str(s.base_spec)))
    with _ParentPath(s.base_root, s.tops):
        t = sandbox.time_calls(
            f"{entry}:call",
            make_inputs=f"{harness}:make_inputs",
            reference=f"{harness}:reference",
            check=f"{harness}:check",
            params={"dims": dims, "dtype": dtype},
            calls=len(order),
            warmup=2,
            seed=seed,
            read_paths=[str(s.base_root), str(s.head_root)],
            env=s.env(),
            limits=sandbox.Limits(wall_s=s.wall_s),
        )
    batch = Batch(wall_s=t.wall_s, floor_s=(t.floor or {}).get("median_s"))
    if not t.ok:
        batch.ok, batch.status, batch.reason = False, t.status, t.reason
        m = re.search(r"call (\d+)", t.reason or "")
        if m:
            batch.side_at_fault = "base" if ("bh" + order)[int(m.group(1)) % (len(order) + 2)] == "b" else "head"
        return batch
    floor = batch.floor_s or 0.0
    for k in range(pairs):
        a, b = t.times_s[2 * k], t.times_s[2 * k + 1]
        first, second = (max(a - floor, _MIN_NET_S), max(b - floor, _MIN_NET_S))
        base_t, head_t = (first, second) if order[2 * k] == "b" else (second, first)
        batch.base_s.append(base_t)
        batch.head_s.append(head_t)
    return batch
