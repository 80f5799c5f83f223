"""What the new kernels' specs name besides implementation and reference: properties no
library invariant states (``python: {check: "kernels.checks:NAME", name: ...}``, each
``check(inputs, output, case)``: None when it holds, else a message) and the magnitudes
their conditioned tolerances scale with (``magnitude: kernels.checks:NAME``, called like
the reference, with the |upstream| gradients after the inputs for a gradient's).
"""

from __future__ import annotations

import math

import torch

#: unit roundoff of each dtype
_UNIT = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}


def loss_not_negative(inputs: dict, output, case) -> str | None:
    """A cross-entropy loss is >= 0; NaN only for the mean over rows that are all ignored
    (torch's 0 / 0)."""
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


def ignored_rows_have_zero_gradient(inputs: dict, output, case) -> str | None:
    """A row whose target is ignore_index has a gradient of exactly 0 (not merely small)."""
    ignore_index = dict(case.args).get("ignore_index", -100)
    ignored = inputs["target"] == ignore_index
    nonzero = int((output.detach()[ignored] != 0).sum())
    if nonzero:
        return f"{nonzero} gradient elements of ignored rows are not 0"
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
        return (
            f"{n} of {o.numel()} output elements lie outside the range of v's column (a softmax weight < 0 or sum > 1)"
        )
    return None


def cross_entropy_grad_magnitude(
    logits: torch.Tensor,
    target: torch.Tensor,
    dloss: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    inplace_grad: bool = False,
) -> torch.Tensor:
    """What each element of the gradient may be off by, in units of 2^-23, for the spec's
    conditioned tolerance: |s_i| (p_ij (8 + |log p_ij|) + q_ij), p the softmax, q the
    smoothed one-hot target, s_i the row's factor (|dloss_i| for 'none', |dloss| for 'sum',
    |dloss| / n_valid for 'mean', 0 for ignored rows). The float32 evaluation of
    p = exp(x - lse) turns the ~2^-24 |log p| absolute error of its argument into a relative
    one, plus a few ulps for exp, the log and the sums; q's share is one ulp (as
    tests/kernels/test_cross_entropy.py derives). Relative to the gradient alone, no bound
    holds where p - q cancels (a confident target)."""
    x = logits.detach().double()
    t = target.long()
    valid = t != ignore_index
    p = torch.softmax(x, dim=1)
    q = torch.full_like(p, label_smoothing / x.shape[1])
    rows = valid.nonzero()[:, 0]
    q[rows, t[valid]] += 1.0 - label_smoothing
    d = dloss.detach().double().abs()
    factor = valid.double() * (d if reduction == "none" else d.expand(valid.shape))
    if reduction == "mean":
        factor = factor / valid.sum()
    return (p * (8 - torch.log(p).nan_to_num(0.0, neginf=0.0)) + q) * factor[:, None]


def attention_error_scale(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """The error a float32 flash-attention forward may make per element beyond rounding its
    output, for the spec's conditioned tolerance (ctol ~ 1 and 2: the kernel's and the
    reference's share): P's relative error R per score, from the scores' float32 dot over
    D (the magnitudes summed), exp2's argument (|s - rowmax|), l's sum over S and a few ulps,
    carried by |v|; plus P rounded to the inputs' dtype for the P V dot (not in float32).
    Per element: u_p (P @ |V|) + (P * R) @ |V|, R = 2^-22 ((D + 2) |scale| (|Q| @ |K|^T)
    + |s - rowmax(s)| + S + 8), as tests/kernels/test_attention.py derives."""
    q64, k64, v64 = q.double(), k.double(), v.double()
    S, D = q.shape[-2], q.shape[-1]
    s = 1.0 / math.sqrt(D) if scale is None else float(scale)
    scores = (q64 @ k64.transpose(-1, -2)) * s
    summed = (q64.abs() @ k64.abs().transpose(-1, -2)) * abs(s)
    if causal:
        scores = scores.masked_fill(torch.ones(S, S, dtype=torch.bool, device=q.device).triu(1), -float("inf"))
    p = torch.softmax(scores, dim=-1)
    shift = (scores - scores.amax(dim=-1, keepdim=True)).abs().nan_to_num(0.0, posinf=0.0)
    relative = 2.0**-22 * ((D + 2) * summed + shift + S + 8)
    p_rounding = 0.0 if q.dtype == torch.float32 else _UNIT[q.dtype]
    return p_rounding * (p @ v64.abs()) + (p * relative) @ v64.abs()
