"""Properties of the kernels that no library invariant states, named by ``python`` invariants
of their specs (``python: {check: "kernels.checks:NAME", name: ...}``).

Each is ``check(inputs, output, case)``: None when the property holds, else a message.
"""

from __future__ import annotations


def loss_not_negative(inputs: dict, output, case) -> str | None:
    """A cross-entropy loss is >= 0; NaN only for the mean over rows that are all ignored
    (torch's 0 / 0)."""
    import torch

    loss = output.detach().float()
    negative = int((loss < 0).sum())
    if negative:
        return f"{negative} loss values are negative (smallest {float(loss.min()):.6g})"
    if bool(loss.isnan().any()):
        target = inputs["target"]
        ignore_index = dict(case.args).get("ignore_index", -100)
        if loss.dim() != 0 or not bool((target == ignore_index).all()):
            return "the loss is NaN, yet some rows are not ignored (only the mean of all-ignored rows is 0/0)"
    if bool(torch.isinf(loss).any()):
        return "the loss is infinite"
    return None


def within_value_range(inputs: dict, output, case) -> str | None:
    """Attention's output is a convex combination of the rows of v: each of its elements lies
    within that column's [min, max] over the keys (+ a rounding allowance relative to max |v|)."""
    v = inputs["v"].detach().float()
    o = output.detach().float()
    lo = v.amin(dim=-2, keepdim=True)
    hi = v.amax(dim=-2, keepdim=True)
    slack = 2e-2 * v.abs().amax(dim=-2, keepdim=True) + 1e-6
    outside = (o < lo - slack) | (o > hi + slack) | o.isnan()
    n = int(outside.sum())
    if n:
        return f"{n} of {o.numel()} output elements lie outside the range of v's column (a softmax weight < 0 or sum > 1)"
    return None
