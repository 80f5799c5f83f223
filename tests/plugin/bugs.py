"""Softmax kernels, one correct and many deliberately broken, each with one classic bug.

The plugin's tests point a spec at each of them (with ``--aina-impl``) and check the
generated inputs catch the bug. The Triton ones run in Triton's interpreter on a CPU.
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _softmax_kernel(
    x_ptr,
    y_ptr,
    row_stride_x,
    col_stride_x,
    row_stride_y,
    n_cols,
    BLOCK: tl.constexpr,
    PAD: tl.constexpr,
    SUBTRACT_MAX: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * row_stride_x + cols * col_stride_x, mask=mask, other=PAD).to(tl.float32)
    if SUBTRACT_MAX:
        x = x - tl.max(x, axis=0)
    e = tl.exp(x)
    y = e / tl.sum(e, axis=0)
    tl.store(y_ptr + row * row_stride_y + cols, y.to(y_ptr.dtype.element_ty), mask=mask)


def _launch(
    x,
    *,
    pad=float("-inf"),
    subtract_max=True,
    max_block=1 << 17,
    row_stride=None,
    col_stride=None,
    rows_from_first_dim=False,
):
    n = x.shape[-1]
    x2 = x.reshape(-1, n) if not rows_from_first_dim else x.reshape(x.shape[0], -1)
    rows = x.shape[0] if rows_from_first_dim else x2.shape[0]
    y = torch.empty((rows, n), dtype=x.dtype, device=x.device)
    block = min(triton.next_power_of_2(n), max_block)
    _softmax_kernel[(rows,)](
        x2,
        y,
        x2.stride(0) if row_stride is None else row_stride,
        x2.stride(1) if col_stride is None else col_stride,
        y.stride(0),
        n,
        BLOCK=block,
        PAD=pad,
        SUBTRACT_MAX=subtract_max,
    )
    return y.reshape(x.shape) if not rows_from_first_dim else y


def reference(x):
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def good(x):
    return _launch(x)


# -- broken Triton kernels ------------------------------------------------------------------


def pad_zero(x):
    """Masked lanes read 0 instead of -inf: wrong whenever N is not a power of two."""
    return _launch(x, pad=0.0)


def no_max(x):
    """exp(x) without subtracting the row max: overflows on large values."""
    return _launch(x, subtract_max=False)


def block_cap(x):
    """One block of at most 4096 columns and no loop: wide rows are cut short."""
    return _launch(x, max_block=4096)


def dense_rows(x):
    """Assumes rows are packed (row stride = N): wrong on sliced views."""
    x2 = x.reshape(-1, x.shape[-1])
    return _launch(x, row_stride=x.shape[-1]) if x2.stride(-1) == 1 else _launch(x)


def unit_cols(x):
    """Assumes the last dim is unit-stride: wrong on transposed views."""
    return _launch(x, col_stride=1)


def first_dim_rows(x):
    """Launches x.shape[0] rows: leading batch dims beyond the first are dropped."""
    if x.dim() <= 2:
        return _launch(x)
    y = _launch(x.reshape(x.shape[0], -1, x.shape[-1])[:, 0, :])
    return y[:, None, :].expand(x.shape).contiguous()


# -- broken behaviour, emulated in torch (the bug is in the launcher, not the maths) ------


def size_one(x):
    """Special-cases a single column wrongly."""
    if x.shape[-1] == 1:
        return torch.zeros_like(x)
    return reference(x)


def max_init_zero(x):
    """Running max started at 0 instead of -inf: all-negative rows underflow to 0/0."""
    xf = x.float()
    m = torch.clamp(xf.max(dim=-1, keepdim=True).values, min=0.0)
    e = torch.exp(xf - m)
    return (e / e.sum(dim=-1, keepdim=True)).to(x.dtype)


def half_output(x):
    """Always returns float16: wrong dtype for float32 and bfloat16 inputs."""
    return reference(x).to(torch.float16)


def in_place(x):
    """Writes the result into its input."""
    x.copy_(reference(x))
    return x


def noisy(x):
    """Adds noise below the tolerance: close to the reference, but not deterministic."""
    y = reference(x)
    return (y.float() * (1 + 1e-7 * torch.rand_like(y.float()))).to(x.dtype) if x.dtype == torch.float32 else y


_cache = {}


def cached(x):
    """Returns the answer of the first call with the same shape."""
    key = (tuple(x.shape), x.dtype)
    if key not in _cache:
        _cache[key] = reference(x)
    return _cache[key].clone()


# -- normalisation: epsilon and zero-variance bugs ------------------------------------------


def ln_reference(x, weight, bias, eps=1e-5):
    n = x.shape[-1]
    return torch.nn.functional.layer_norm(x.float(), (n,), weight.float(), bias.float(), eps).to(x.dtype)


def _ln(x, weight, bias, eps):
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)
    var = ((xf - mean) ** 2).mean(-1, keepdim=True)
    return ((xf - mean) * torch.rsqrt(var + eps) * weight.float() + bias.float()).to(x.dtype)


def ln_good(x, weight, bias, eps=1e-5):
    return _ln(x, weight, bias, eps)


def ln_no_eps(x, weight, bias, eps=1e-5):
    """Forgets epsilon: a constant row (all ties) has zero variance and becomes 0 * inf."""
    return _ln(x, weight, bias, 0.0)


def ln_eps_outside(x, weight, bias, eps=1e-5):
    """Adds epsilon after the square root: only small-magnitude rows notice."""
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)
    std = ((xf - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return ((xf - mean) / (std + eps) * weight.float() + bias.float()).to(x.dtype)
