"""Kernels for the spec-format tests, in torch (fast on a CPU): one correct version of each
and the bugs real kernel libraries shipped, each caught by one capability of the format."""

import torch
import torch.nn.functional as F

# -- cross-entropy: integer targets, ignore_index, reduction alternatives, a scalar loss


def ce_reference(logits, target, reduction="mean", ignore_index=-100):
    return F.cross_entropy(logits.double(), target.long(), reduction=reduction, ignore_index=ignore_index).to(
        logits.dtype
    )


def _ce(logits, target, reduction, ignore_index, *, count_ignored=False, sum_as_mean=False):
    x = logits.float()
    keep = target != ignore_index
    t = torch.where(keep, target, torch.zeros_like(target)).long()
    loss = torch.logsumexp(x, dim=-1) - x.gather(-1, t[:, None])[:, 0]
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss.to(logits.dtype)
    total = loss.sum()
    if reduction == "sum" and not sum_as_mean:
        return total.to(logits.dtype)
    n = torch.tensor(float(target.numel())) if count_ignored else keep.sum().float()
    return (total / n).to(logits.dtype)


def ce_good(logits, target, reduction="mean", ignore_index=-100):
    return _ce(logits, target, reduction, ignore_index)


def ce_mean_counts_ignored(logits, target, reduction="mean", ignore_index=-100):
    """The mean divides by every row, ignored ones included."""
    return _ce(logits, target, reduction, ignore_index, count_ignored=True)


def ce_sum_as_mean(logits, target, reduction="mean", ignore_index=-100):
    """reduction='sum' returns the mean: the default (mean) is right."""
    return _ce(logits, target, reduction, ignore_index, sum_as_mean=True)


class _CEGrad(torch.autograd.Function):
    """Per-row loss (reduction='none') with a hand-written backward, as a kernel has."""

    @staticmethod
    def forward(ctx, logits, target, low_precision_softmax):
        x = logits.float()
        loss = torch.logsumexp(x, dim=-1) - x.gather(-1, target.long()[:, None])[:, 0]
        ctx.save_for_backward(logits, target)
        ctx.low = low_precision_softmax
        return loss.to(logits.dtype)

    @staticmethod
    def backward(ctx, dloss):
        logits, target = ctx.saved_tensors
        p = torch.softmax(logits.float(), dim=-1)
        onehot = F.one_hot(target.long(), logits.shape[-1]).float()
        if ctx.low:
            # p in the input dtype, then p - 1 at the target: for a confident target p
            # rounds to 1 and its gradient to 0
            g = p.to(logits.dtype).float() - onehot
        else:
            g = p - onehot
        return (g * dloss.float()[:, None]).to(logits.dtype), None, None


def ce_grad_good(logits, target):
    return _CEGrad.apply(logits, target, False)


def ce_grad_low_precision(logits, target):
    return _CEGrad.apply(logits, target, True)


def ce_grad_reference(logits, target):
    return F.cross_entropy(logits.float(), target.long(), reduction="none").to(logits.dtype)


# -- layer norm with a backward: gradients, mixed dtypes


def ln_reference(x, weight, bias, eps=1e-5):
    return F.layer_norm(x.float(), x.shape[-1:], weight.float(), bias.float(), eps).to(x.dtype)


def _contiguous_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _layer_norm(*, stats_in_input_dtype=False, ignore_upstream=False, assume_contiguous=False):
    """Statistics in float32, saved for the backward; each flag is one bug."""

    class LayerNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps=1e-5):
            xf = x.float()
            mean = xf.mean(-1, keepdim=True)
            rstd = torch.rsqrt(((xf - mean) ** 2).mean(-1, keepdim=True) + eps)
            y = (xf - mean) * rstd * weight.float() + bias.float()
            if stats_in_input_dtype:
                mean, rstd = mean.to(x.dtype), rstd.to(x.dtype)
            ctx.save_for_backward(x, weight, mean, rstd)
            return y.to(x.dtype)

        @staticmethod
        def backward(ctx, dy):
            x, weight, mean, rstd = ctx.saved_tensors
            if assume_contiguous:
                x = torch.as_strided(x, x.shape, _contiguous_strides(x.shape), x.storage_offset())
            if ignore_upstream:
                dy = torch.ones_like(dy)
            xf, dyf, w = x.float(), dy.float(), weight.float()
            xhat = (xf - mean.float()) * rstd.float()
            dxhat = dyf * w
            dx = rstd.float() * (dxhat - dxhat.mean(-1, keepdim=True) - xhat * (dxhat * xhat).mean(-1, keepdim=True))
            rows = tuple(range(x.dim() - 1))
            return dx.to(x.dtype), (dyf * xhat).sum(rows).to(weight.dtype), dyf.sum(rows).to(weight.dtype), None

    return LayerNorm


LayerNorm = _layer_norm()
LNStatsInInputDtype = _layer_norm(stats_in_input_dtype=True)
LNIgnoresUpstream = _layer_norm(ignore_upstream=True)
LNAssumesContiguous = _layer_norm(assume_contiguous=True)


class LayerNormModule(torch.nn.Module):
    """The same as a module: weight and bias are its parameters."""

    def __init__(self, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return LayerNorm.apply(x, self.weight, self.bias, self.eps)


# -- in place: softmax's backward writes dx into dy


def softmax_bwd_reference(y, dy):
    yf, dyf = y.float(), dy.float()
    return (yf * (dyf - (yf * dyf).sum(-1, keepdim=True))).to(dy.dtype)


def softmax_bwd_inplace(y, dy):
    dy.copy_(softmax_bwd_reference(y, dy))


def softmax_bwd_inplace_wrong_stride(y, dy):
    """Writes dx as if dy were contiguous: right for contiguous dy only."""
    dx = softmax_bwd_reference(y, dy)
    torch.as_strided(dy, dy.shape, _contiguous_strides(dy.shape), dy.storage_offset()).copy_(dx)


# -- a size threshold: rows past 40 are never written


def softmax_reference(x):
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def softmax_grid_cap(x):
    y = torch.zeros_like(x)
    rows = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x[None]
    yr = y.reshape(-1, x.shape[-1]) if y.dim() > 1 else y[None]
    yr[:40] = torch.softmax(rows[:40].float(), dim=-1).to(x.dtype)
    return y


def softmax_good(x):
    return softmax_reference(x)


# -- ignore_index as an argument: the sentinel follows its alternatives


def ce_ignore_reference(logits, target, ignore_index=-100):
    return F.cross_entropy(logits.double(), target.long(), reduction="none", ignore_index=ignore_index).to(logits.dtype)


def ce_ignore_good(logits, target, ignore_index=-100):
    return _ce(logits, target, "none", ignore_index)


def ce_ignore_hardcoded(logits, target, ignore_index=-100):
    """Ignores -100 whatever ignore_index says: right for the default only."""
    return _ce(logits, target, "none", -100)


# -- a gradient written into the logits (Liger-Kernel's cross-entropy)


class _CEInplace(torch.autograd.Function):
    """Per-row loss; with ``inplace`` the forward writes the gradient for a unit upstream
    gradient into the logits and backward scales it there (no [M, V] allocation)."""

    @staticmethod
    def forward(ctx, logits, target, inplace, wrong_stride):
        x = logits.float()
        loss = torch.logsumexp(x, dim=-1) - x.gather(-1, target.long()[:, None])[:, 0]
        g = torch.softmax(x, dim=-1) - F.one_hot(target.long(), x.shape[-1]).float()
        ctx.inplace = inplace
        if inplace:
            buf = logits.detach()
            if wrong_stride:  # as if the logits were contiguous
                buf = torch.as_strided(buf, buf.shape, _contiguous_strides(buf.shape), buf.storage_offset())
            buf.copy_(g.to(logits.dtype))
            ctx.save_for_backward(logits.detach())
        else:
            ctx.save_for_backward(g.to(logits.dtype))
        return loss.to(logits.dtype)

    @staticmethod
    def backward(ctx, dloss):
        (g,) = ctx.saved_tensors
        if ctx.inplace:
            return g.mul_(dloss[:, None].to(g.dtype)), None, None, None
        return (g.float() * dloss.float()[:, None]).to(g.dtype), None, None, None


def _ce_inplace(logits, target, inplace_grad, wrong_stride):
    inplace = inplace_grad and torch.is_grad_enabled() and logits.requires_grad
    return _CEInplace.apply(logits, target, inplace, wrong_stride)


def ce_inplace_good(logits, target, inplace_grad=False):
    return _ce_inplace(logits, target, inplace_grad, False)


def ce_inplace_wrong_stride(logits, target, inplace_grad=False):
    """Writes the in-place gradient as if the logits were contiguous."""
    return _ce_inplace(logits, target, inplace_grad, True)


def ce_inplace_reference(logits, target, inplace_grad=False):
    return F.cross_entropy(logits.float(), target.long(), reduction="none").to(logits.dtype)


# -- matmul: float32 accumulation, checked with a bound that grows with K


def mm_reference(a, b):
    return (a.float() @ b.float()).to(a.dtype)


def mm_good(a, b):
    return mm_reference(a, b)


def mm_accumulates_in_input_dtype(a, b):
    """An accumulator in the inputs' dtype: every partial sum over K rounded to it."""
    c = torch.zeros(a.shape[0], b.shape[1], dtype=a.dtype)
    for k in range(a.shape[1]):
        c = (c.float() + a[:, k : k + 1].float() * b[k : k + 1].float()).to(a.dtype)
    return c
