"""Closeness to the reference, reported the way a kernel engineer debugs.

``compare(out, ref, tol)`` returns ``None`` when every element satisfies
``|out - ref| <= atol + rtol * |ref| + ctol * magnitude`` (NaN only where the reference has NaN, infinities
equal), otherwise a :class:`Mismatch` naming the worst element (by how far it is past
its allowance), its index in the logical shape, both values and how many elements fail.
The magnitude (a conditioned tolerance) is what produced each element, e.g. the sum of the
|terms| a result cancelled from, so the bound follows cancellation where |ref| cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_aina.spec.model import Tolerance


@dataclass(frozen=True)
class Mismatch:
    problem: str  # "shape", "dtype", "values"
    detail: str
    index: tuple[int, ...] | None = None
    got: float | None = None
    expected: float | None = None
    abs_error: float | None = None
    allowed: float | None = None
    n_bad: int = 0
    numel: int = 0

    def describe(self) -> str:
        if self.problem != "values":
            return self.detail
        lines = [
            f"largest error: |out - ref| = {self.abs_error:.6g} at index {self.index}: "
            f"got {self.got:.6g}, expected {self.expected:.6g} (allowed {self.allowed:.3g})",
            f"mismatches: {self.n_bad} of {self.numel} elements ({100.0 * self.n_bad / max(self.numel, 1):.3g}%)",
        ]
        if self.detail:
            lines.append(self.detail)
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def compare(out, ref, tol: Tolerance, *, name: str = "output", magnitude=None) -> Mismatch | None:
    import torch

    if isinstance(ref, (tuple, list)):
        if not isinstance(out, (tuple, list)) or len(out) != len(ref):
            return Mismatch("shape", f"{name}: expected {len(ref)} outputs, got {type(out).__name__}")
        for i, (o, r) in enumerate(zip(out, ref)):
            m = compare(o, r, tol, name=f"{name}[{i}]", magnitude=None if magnitude is None else magnitude[i])
            if m:
                return m
        return None
    if not isinstance(out, torch.Tensor):
        return Mismatch("shape", f"{name}: expected a tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(ref.shape):
        return Mismatch("shape", f"{name}: shape {tuple(out.shape)}, expected {tuple(ref.shape)}")
    if out.dtype != ref.dtype:
        return Mismatch("dtype", f"{name}: dtype {out.dtype}, expected {ref.dtype}")
    o = out.detach().to("cpu", torch.float64)
    r = ref.detach().to("cpu", torch.float64)
    allowed = tol.atol + tol.rtol * r.abs()
    if magnitude is not None and tol.ctol:
        allowed = allowed + tol.ctol * magnitude.detach().to("cpu", torch.float64).abs().expand_as(r)
    err = (o - r).abs()
    # An element fails when it is off by more than allowed, or is NaN/inf where the
    # reference is not (err is NaN then), or the reference is NaN and it is not.
    same_nonfinite = (o == r) | (o.isnan() & r.isnan())
    bad = ~same_nonfinite & ~(err <= allowed)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    # worst = furthest past its allowance; non-finite errors rank first.
    excess = torch.where(bad, (err - allowed).nan_to_num(nan=float("inf")), torch.full_like(err, -1.0))
    flat = int(excess.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), o.shape)) if o.dim() else ()
    detail = ""
    nonfinite = int((bad & ~o.isfinite()).sum())
    if nonfinite:
        detail = f"{nonfinite} of the mismatches are NaN/inf where the reference is finite"
    if name != "output":
        detail = "\n".join(filter(None, [f"in {name}", detail]))
    return Mismatch(
        "values",
        detail,
        index=index,
        got=float(o.flatten()[flat]),
        expected=float(r.flatten()[flat]),
        abs_error=float(err.flatten()[flat]),
        allowed=float(allowed.flatten()[flat]),
        n_bad=n_bad,
        numel=o.numel(),
    )
