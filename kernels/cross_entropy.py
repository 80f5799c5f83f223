"""Cross-entropy over a vocabulary, forward and backward, as torch.nn.functional.cross_entropy.

For logits x [N, V] and targets t [N], row i's loss is, with label smoothing eps and
lse = log(sum_j exp(x_j)),

    loss_i = (1 - eps) * (lse - x_t) + eps * (lse - mean_j x_j)

(torch's definition: the target distribution is (1 - eps) * onehot(t) + eps / V), both
terms >= 0. It is evaluated as (m - x_t) + log(sum_j exp(x_j - m)) - eps * mean_j (x_j - x_t)
with m the row max: only differences of logits, so a common offset costs no precision, and
the subtraction cancels at most a factor 1 / (1 - eps). Rows whose target is ``ignore_index`` have
loss 0 and gradient 0 and are left out of the mean's denominator n_valid, as in torch; when
every row is ignored, the mean is 0 / 0 = NaN, as in torch (sum: 0). The gradient is

    dloss/dx_ij = (softmax(x_i)_j - q_ij) * g_i,   q_ij = (1 - eps) [j == t_i] + eps / V

with g_i = dloss_i ('none'), dloss ('sum') or dloss / n_valid ('mean').

Kernels, one program per row (a row of a 128k vocabulary is 256 KiB in bf16):

* ``_cross_entropy_forward_kernel`` streams the row once in BLOCK_V chunks with an online
  log-sum-exp: a running max m (one scalar per row) and per-lane sums of exp(x - m), all
  rescaled by exp(m_old - m_new) when the max grows. Per-lane sums keep each lane's
  summation V / BLOCK_V terms long (the rounding error of one long running sum grows with
  the number of blocks) for one multiply per element, and one exp per element. x_t is one
  scalar load. Traffic: one read of the logits; the loss, the max and log(sum) (float32
  [N] each) are written. lse = m + log(sum) is never rounded as one number (see below).
* ``_cross_entropy_backward_kernel`` reads the row again with the saved max and log-sum and writes
  dlogits: one read and one write. The upstream gradient is read from memory (stride 0
  for a scalar), never assumed to be 1, and n_valid too: no host synchronisation anywhere.
* ``inplace_grad=True`` (Liger-Kernel's design): the forward's second pass writes the
  gradient for a unit upstream gradient into the logits themselves, and backward scales it
  by the real one (a torch multiply). The logits' memory then holds the gradient: no
  [N, V] allocation in backward, at the cost of one more read in the forward and the
  scaling pass. Only when a gradient is needed; the logits are destroyed, so nothing else
  may need their values afterwards (e.g. a softcap whose backward reads its output).

Accumulation is in float32 whatever the logits' dtype; losses come back in float32, the
gradient in the logits' dtype (rounded once, or twice with ``inplace_grad``: once in the
forward, once when scaled). A target outside [0, V) that is not ``ignore_index`` gives a NaN
loss: torch raises there, which on a GPU needs a device assert or a synchronisation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels import meta, rowwise, tiled
from pytest_aina.runtime import dispatcher

REDUCTIONS = ("mean", "sum", "none")


@triton.jit
def _store_zero_row(grad_row, stride_grad_col, V, BLOCK_V: tl.constexpr):
    cols0 = tl.arange(0, BLOCK_V).to(tl.int64)
    zeros = tl.zeros([BLOCK_V], tl.float32).to(grad_row.dtype.element_ty)
    for start in tl.range(0, V, BLOCK_V):
        cols = start + cols0
        tl.store(grad_row + cols * stride_grad_col, zeros, mask=cols < V)


@triton.jit
def _store_dlogits_row(
    x_row,
    stride_col,
    grad_row,
    stride_grad_col,
    target,
    row_max,
    log_sum,
    scale,
    label_smoothing,
    V,
    BLOCK_V: tl.constexpr,
    SMOOTHING: tl.constexpr,
):
    """grad_j = (softmax_j - q_j) * scale over the row, softmax_j = exp((x_j - m) - log_sum).
    ``grad_row`` may be ``x_row``: each block is loaded before it is overwritten."""
    cols0 = tl.arange(0, BLOCK_V).to(tl.int64)
    on_target = 1.0 - label_smoothing
    uniform = label_smoothing / V
    for start in tl.range(0, V, BLOCK_V):
        cols = start + cols0
        ok = cols < V
        x = tl.load(x_row + cols * stride_col, mask=ok, other=0.0).to(tl.float32)
        q = tl.where(cols == target, on_target, 0.0)
        if SMOOTHING:
            q += uniform
        g = (tl.exp((x - row_max) - log_sum) - q) * scale
        tl.store(grad_row + cols * stride_grad_col, g.to(grad_row.dtype.element_ty), mask=ok)


@triton.jit
def _cross_entropy_forward_kernel(
    x_ptr,
    target_ptr,
    loss_ptr,
    max_ptr,
    log_sum_ptr,
    grad_ptr,
    n_valid_ptr,
    stride_row,
    stride_col,
    stride_target,
    stride_grad_row,
    stride_grad_col,
    V,
    ignore_index,
    label_smoothing,
    BLOCK_V: tl.constexpr,
    SMOOTHING: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    MEAN: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_row
    grad_row = grad_ptr + row * stride_grad_row
    target = tl.load(target_ptr + row * stride_target).to(tl.int64)
    if target == ignore_index:
        tl.store(loss_ptr + row, 0.0)
        tl.store(max_ptr + row, 0.0)
        tl.store(log_sum_ptr + row, 0.0)
        if WRITE_GRAD:
            _store_zero_row(grad_row, stride_grad_col, V, BLOCK_V)
        return

    # Read before any gradient overwrites the row. An out-of-range target reads nothing
    # and makes the loss NaN.
    target_ok = (target >= 0) & (target < V)
    x_t = tl.load(x_row + target * stride_col, mask=target_ok, other=float("nan")).to(tl.float32)

    cols0 = tl.arange(0, BLOCK_V).to(tl.int64)
    m = tl.full([], -float("inf"), tl.float32)
    d = tl.zeros([BLOCK_V], tl.float32)  # per-lane sums of exp(x - m)
    s = tl.zeros([BLOCK_V], tl.float32)  # per-lane sums of x - x_t (label smoothing only)
    for start in tl.range(0, V, BLOCK_V):
        cols = start + cols0
        ok = cols < V
        x = tl.load(x_row + cols * stride_col, mask=ok, other=-float("inf")).to(tl.float32)
        # every block holds a real column: m_new is finite for finite logits, and the first
        # block's rescale is exp(-inf) = 0, never exp(-inf - -inf)
        m_new = tl.maximum(m, tl.max(x, axis=0))
        d = d * tl.exp(m - m_new) + tl.exp(x - m_new)
        if SMOOTHING:
            s += tl.where(ok, x - x_t, 0.0)
        m = m_new
    # Only differences of logits are formed, never lse = m + log_sum or sum_j x_j: rounding
    # those would cost half an ulp of the logits' magnitude (5e-4 for logits near 1e4),
    # while m - x_t and x_j - x_t are exact or nearly so, and log_sum is in [0, log V].
    # lse - x_t = (m - x_t) + log_sum; lse - mean(x) = (lse - x_t) - mean(x - x_t).
    log_sum = tl.log(tl.sum(d, axis=0))
    loss = (m - x_t) + log_sum
    if SMOOTHING:
        loss -= label_smoothing * (tl.sum(s, axis=0) / V)
    tl.store(loss_ptr + row, loss)
    tl.store(max_ptr + row, m)
    tl.store(log_sum_ptr + row, log_sum)

    if WRITE_GRAD:
        if MEAN:
            scale = 1.0 / tl.load(n_valid_ptr)
        else:
            scale = 1.0
        _store_dlogits_row(
            x_row,
            stride_col,
            grad_row,
            stride_grad_col,
            target,
            m,
            log_sum,
            scale,
            label_smoothing,
            V,
            BLOCK_V,
            SMOOTHING,
        )


@triton.jit
def _cross_entropy_backward_kernel(
    x_ptr,
    target_ptr,
    max_ptr,
    log_sum_ptr,
    dloss_ptr,
    n_valid_ptr,
    grad_ptr,
    stride_row,
    stride_col,
    stride_target,
    stride_dloss,
    stride_grad_row,
    stride_grad_col,
    V,
    ignore_index,
    label_smoothing,
    BLOCK_V: tl.constexpr,
    SMOOTHING: tl.constexpr,
    MEAN: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    grad_row = grad_ptr + row * stride_grad_row
    target = tl.load(target_ptr + row * stride_target).to(tl.int64)
    if target == ignore_index:
        _store_zero_row(grad_row, stride_grad_col, V, BLOCK_V)
        return
    # the upstream gradient: per row ('none') or one scalar (stride 0)
    scale = tl.load(dloss_ptr + row * stride_dloss).to(tl.float32)
    if MEAN:
        scale = scale / tl.load(n_valid_ptr)
    _store_dlogits_row(
        x_ptr + row * stride_row,
        stride_col,
        grad_row,
        stride_grad_col,
        target,
        tl.load(max_ptr + row),
        tl.load(log_sum_ptr + row),
        scale,
        label_smoothing,
        V,
        BLOCK_V,
        SMOOTHING,
    )


#: The meta-parameter search space (forward and backward share it); every combination runs.
TUNABLES = {
    "BLOCK_V": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
    "num_warps": [1, 2, 4, 8, 16, 32],
    "num_stages": [1, 2, 3, 4],
}


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, ignore_index, reduction, label_smoothing, write_grad, cfg):
        N, V = logits.shape
        smoothing = label_smoothing > 0
        mean = reduction == "mean"
        loss = torch.empty(N, dtype=torch.float32, device=logits.device)
        row_max = torch.empty(N, dtype=torch.float32, device=logits.device)
        log_sum = torch.empty(N, dtype=torch.float32, device=logits.device)
        # rows that count in the mean, as a device tensor: read by the kernels, no sync.
        # (Not read unless MEAN; any float32 tensor stands in for it otherwise.)
        n_valid = (target != ignore_index).sum(dtype=torch.float32) if mean else loss
        if N:
            _cross_entropy_forward_kernel[(N,)](
                logits,
                target,
                loss,
                row_max,
                log_sum,
                logits,
                n_valid,
                logits.stride(0),
                logits.stride(1),
                target.stride(0),
                logits.stride(0),
                logits.stride(1),
                V,
                ignore_index,
                float(label_smoothing),
                BLOCK_V=cfg["BLOCK_V"],
                SMOOTHING=smoothing,
                WRITE_GRAD=write_grad,
                MEAN=mean,
                num_warps=cfg["num_warps"],
                num_stages=cfg["num_stages"],
                # no multiply-add worth fusing; stated because triton 3.9 warns on the default
                enable_fp_fusion=False,
            )
        ctx.cfg, ctx.reduction, ctx.smoothing = cfg, reduction, smoothing
        ctx.ignore_index, ctx.label_smoothing, ctx.inplace = ignore_index, float(label_smoothing), write_grad
        if write_grad:
            ctx.save_for_backward(logits.detach())  # now the gradient for a unit upstream gradient
        else:
            ctx.save_for_backward(logits, target, row_max, log_sum, n_valid)
        if reduction == "none":
            return loss
        total = loss.sum()
        return total / n_valid if mean else total

    @staticmethod
    def backward(ctx, dloss):
        if ctx.inplace:
            (grad,) = ctx.saved_tensors
            grad.mul_(dloss[:, None] if ctx.reduction == "none" else dloss)
            return grad, None, None, None, None, None, None
        logits, target, row_max, log_sum, n_valid = ctx.saved_tensors
        N, V = logits.shape
        grad = torch.empty((N, V), dtype=logits.dtype, device=logits.device)
        if N:
            dloss = dloss.to(torch.float32)
            cfg = ctx.cfg
            _cross_entropy_backward_kernel[(N,)](
                logits,
                target,
                row_max,
                log_sum,
                dloss,
                n_valid,
                grad,
                logits.stride(0),
                logits.stride(1),
                target.stride(0),
                dloss.stride(0) if dloss.dim() else 0,
                grad.stride(0),
                grad.stride(1),
                V,
                ctx.ignore_index,
                ctx.label_smoothing,
                BLOCK_V=cfg["BLOCK_V"],
                SMOOTHING=ctx.smoothing,
                MEAN=ctx.reduction == "mean",
                num_warps=cfg["num_warps"],
                num_stages=cfg["num_stages"],
                enable_fp_fusion=False,
            )
        return grad, None, None, None, None, None, None


def cross_entropy_generic(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    inplace_grad: bool = False,
    **config,
) -> torch.Tensor:
    """Cross-entropy of ``logits`` [N, V] (float32, float16 or bfloat16, any strides) against
    ``target`` [N] (int64 or int32), with the given meta-parameters; differentiable in
    ``logits``.

    ``reduction`` 'mean' (over rows whose target is not ``ignore_index``), 'sum' or 'none'
    (a float32 [N] loss per row); the loss is float32 in every case. ``label_smoothing`` in
    [0, 1] as in torch. ``inplace_grad``: when a gradient is needed, the forward overwrites
    ``logits`` with the gradient for a unit upstream gradient and backward scales it in
    place (see the module docstring). ``config`` takes any of ``TUNABLES`` (None or absent:
    the heuristic), used by both passes.
    """
    _check(logits, target, reduction, label_smoothing)
    cfg = meta.resolve_config(
        "cross_entropy", TUNABLES, config, _heuristic(logits.shape[1], meta.serial(logits.device))
    )
    # ctx.needs_input_grad ignores torch.no_grad(): decide here whether a gradient is needed
    write_grad = bool(inplace_grad) and torch.is_grad_enabled() and logits.requires_grad
    return _CrossEntropy.apply(logits, target, int(ignore_index), reduction, float(label_smoothing), write_grad, cfg)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    inplace_grad: bool = False,
) -> torch.Tensor:
    """Cross-entropy (the public entry point: the variant that ``kernels/variants/cross_entropy.yaml``
    chooses for the call; ``cross_entropy_generic`` by default)."""
    return _dispatch(logits, target, ignore_index, reduction, label_smoothing, inplace_grad)


def cross_entropy_config(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    inplace_grad: bool = False,
) -> dict:
    """The meta-parameters ``cross_entropy_generic`` chooses for these arguments when given none."""
    return _heuristic(logits.shape[1], meta.serial(logits.device))


def cross_entropy_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    inplace_grad: bool = False,
) -> torch.Tensor:
    """torch's cross_entropy, evaluated in float64 and returned in float32 (differentiable:
    its gradient, also evaluated in float64, comes back rounded once to the logits' dtype).
    float64 because torch's float32 evaluation rounds lse = m + log(sum) and x - lse: its
    softmax is off by ~2^-24 |lse| relative, more than this kernel, which forms neither
    (logits of order 100 make that 1e-5). ``inplace_grad`` is accepted for the same
    signature and changes nothing: the reference never writes its inputs."""
    return torch.nn.functional.cross_entropy(
        logits.double(), target.long(), ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    ).float()


def cross_entropy_dims(logits: torch.Tensor, *args, **kwargs) -> dict:
    """The spec's named dims for a call: N rows (tokens) over a vocabulary of V."""
    return {"N": logits.shape[0], "V": logits.shape[1]}


def _check(logits, target, reduction, label_smoothing) -> None:
    rowwise.check_tensor("cross_entropy", "logits", logits)
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"cross_entropy: logits must be [N, V] with V >= 1, got shape {list(logits.shape)}")
    tiled.check_index_tensor("cross_entropy", "target", target, logits.shape[:1], logits.device)
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    rowwise.check_device("cross_entropy", logits, _cross_entropy_forward_kernel)


def _heuristic(V: int, serial: bool) -> dict:
    """A starting point for the meta-parameter search (not yet timed on a GPU).

    One row per program, streamed in blocks of up to 8192 (a 128k vocabulary in 16 steps)
    with 16 warps: 16 floats per thread for each of x, the exp sums and the smoothing sums.
    Larger blocks mean fewer cross-warp max reductions (a barrier each) per row. On a device
    that runs programs one after another (``serial``: a CPU), fewer and larger blocks are faster.
    """
    block = max(16, min(triton.next_power_of_2(V), 32768 if serial else 8192))
    return {
        "BLOCK_V": block,
        "num_warps": 16 if block >= 8192 else rowwise.warps_for(block),
        "num_stages": 1 if block >= V else 2,
    }


# The public entry point's dispatch (pytest_aina/runtime/dispatch/routing.py): cached per dims, dtype and device.
_dispatch = dispatcher("cross_entropy", cross_entropy_dims, cross_entropy_generic, dims_from_first=True)
