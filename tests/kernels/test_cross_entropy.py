"""kernels.cross_entropy, forward and backward, against float64 within derived bounds.

Runs in the faithful interpreter with the sanitizer. V = 37 with BLOCK_V = 16 streams three
blocks, the last one partial; gradients are driven by a random upstream gradient, never
ones, so a backward that ignores it fails.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiled_helpers import assert_within, compile_for_sm90

from kernels import cross_entropy as ce
from pytest_aina import interpreter

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
IDS = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
UNIT = {torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
SUBNORMAL_STEP = {torch.float32: 2.0**-149, torch.float16: 2.0**-24, torch.bfloat16: 2.0**-133}
REDUCTIONS = ["mean", "sum", "none"]
SMALL = {"BLOCK_V": 16, "num_warps": 4, "num_stages": 2}
N, V = 7, 37


@pytest.fixture(scope="module", autouse=True)
def faithful_interpreter():
    with interpreter.faithful(sanitize=True):
        yield


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(77)


def make_logits(n: int, v: int, dtype, gen, scale: float = 3.0) -> torch.Tensor:
    return (torch.randn(n, v, generator=gen) * scale).to(dtype)


def make_target(n: int, v: int, gen, ignored=(1, 4), ignore_index: int = -100) -> torch.Tensor:
    t = torch.randint(0, v, (n,), generator=gen)
    t[list(ignored)] = ignore_index
    return t


def upstream(reduction: str, n: int, gen) -> torch.Tensor:
    return torch.randn(n if reduction == "none" else (), generator=gen, dtype=torch.float32)


def exact(logits, target, reduction, label_smoothing, ignore_index=-100):
    """Loss in float64, and what the gradient is made of: softmax p, the smoothed one-hot q
    and each row's factor (1 / n_valid for 'mean', 0 for ignored rows)."""
    x = logits.double()
    loss = F.cross_entropy(
        x, target.long(), ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )
    valid = target.long() != ignore_index
    p = torch.softmax(x, dim=1)
    q = torch.full_like(p, label_smoothing / x.shape[1])
    q[valid.nonzero()[:, 0], target.long()[valid]] += 1.0 - label_smoothing
    factor = valid.double() / (valid.sum() if reduction == "mean" else 1)
    return loss, p, q, factor


def grad_bound(p, q, factor, dtype, up=None):
    """The exact gradient (p - q) * factor * up and its bound per element.

    float32 evaluation: p = exp(x - lse) turns the absolute error of its argument, ~2^-24
    |log p|, into a relative one, so p's share is p (8 + |log p|) 2^-23 (a few ulps for
    exp, the log and the sums besides); q's is q 2^-23. Then the rounding to the gradient's
    dtype (half an ulp, or half the smallest subnormal step). ``up``: an upstream gradient
    applied after a first rounding, as the in-place gradient does (None: folded into
    ``factor`` before the one rounding).
    """
    unit = (p - q) * factor[:, None]
    evaluation = 2.0**-23 * (8 * p - torch.xlogy(p, p) + q)  # p |log p| = -xlogy(p, p), 0 at p = 0
    if up is None:
        return unit, _rounding(unit, dtype) + evaluation * factor.abs()[:, None]
    g = unit * up[:, None]
    first = _rounding(unit, dtype) * up.abs()[:, None]
    return g, first + _rounding(g, dtype) + evaluation * (factor * up).abs()[:, None]


def _rounding(values, dtype):
    return UNIT[dtype] * values.abs() + SUBNORMAL_STEP[dtype] / 2


def loss_bound(loss64):
    # losses are >= 0: sums and means of them cancel nothing, so a relative bound holds
    return 1e-5 * loss64.abs() + 1e-6


def run(logits, target, reduction, label_smoothing, g, ignore_index=-100, **config):
    x = logits.clone().requires_grad_()
    loss = ce.cross_entropy_generic(
        x, target, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing, **config
    )
    (loss * g).sum().backward()
    return loss, x.grad


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1], ids=["plain", "smoothed"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_forward_and_backward_match_float64(dtype, reduction, label_smoothing, gen):
    logits, target = make_logits(N, V, dtype, gen), make_target(N, V, gen)
    before = (logits.clone(), target.clone())
    g = upstream(reduction, N, gen)
    loss, grad = run(logits, target, reduction, label_smoothing, g, **SMALL)

    loss64, p, q, factor = exact(logits, target, reduction, label_smoothing)
    what = f"{IDS[dtype]} {reduction} smoothing={label_smoothing}"
    assert loss.dtype == torch.float32 and loss.shape == loss64.shape
    assert_within(loss, loss64, loss_bound(loss64), f"loss {what}")
    assert grad.dtype == dtype and grad.shape == logits.shape
    expected, bound = grad_bound(p, q, factor * g.double(), dtype)
    assert_within(grad, expected, bound, f"dlogits {what}")
    assert torch.equal(logits, before[0]) and torch.equal(target, before[1]), "an input was modified"

    # the float32 reference is within the same bounds (so the spec may compare against it)
    x = logits.clone().requires_grad_()
    ref = ce.cross_entropy_reference(x, target, reduction=reduction, label_smoothing=label_smoothing)
    (ref * g).sum().backward()
    assert_within(ref, loss64, loss_bound(loss64), f"reference loss {what}")
    assert_within(x.grad, expected, bound, f"reference dlogits {what}")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS.get)
def test_inplace_gradient(dtype, reduction, gen):
    """The forward overwrites the logits with the gradient for a unit upstream gradient;
    backward scales it by the real one."""
    logits, target = make_logits(N, V, dtype, gen), make_target(N, V, gen)
    _, p, q, factor = exact(logits, target, reduction, 0.1)
    x = logits.clone().requires_grad_()
    loss = ce.cross_entropy_generic(x, target, reduction=reduction, label_smoothing=0.1, inplace_grad=True, **SMALL)
    unit, bound = grad_bound(p, q, factor, dtype)
    assert_within(x.detach(), unit, bound, f"logits after the forward ({IDS[dtype]} {reduction})")

    loss64, *_ = exact(logits, target, reduction, 0.1)
    assert_within(loss, loss64, loss_bound(loss64), "loss")
    g = upstream(reduction, N, gen)
    (loss * g).sum().backward()
    expected, bound = grad_bound(p, q, factor, dtype, up=g.double().expand(N))
    assert_within(x.grad, expected, bound, f"dlogits ({IDS[dtype]} {reduction})")


def test_inplace_gradient_only_when_a_gradient_is_needed(gen):
    logits, target = make_logits(N, V, torch.bfloat16, gen), make_target(N, V, gen)
    x = logits.clone()
    with torch.no_grad():
        ce.cross_entropy_generic(x.requires_grad_(), target, inplace_grad=True, **SMALL)
    assert torch.equal(x, logits)
    ce.cross_entropy_generic(x.detach(), target, inplace_grad=True, **SMALL)
    assert torch.equal(x, logits)


def test_inplace_gradient_into_a_strided_view(gen):
    """Logits that are a slice of a wider buffer: the gradient lands in the view's own
    elements; the gaps between rows keep their NaN."""
    wide = torch.full((N, V + 5), float("nan"), dtype=torch.float16)
    wide[:, :V] = make_logits(N, V, torch.float16, gen)
    target = make_target(N, V, gen)
    _, p, q, factor = exact(wide[:, :V], target, "sum", 0.0)
    view = wide[:, :V].requires_grad_()
    loss = ce.cross_entropy_generic(view, target, reduction="sum", inplace_grad=True, **SMALL)
    g = torch.tensor(0.75)
    (loss * g).backward()
    expected, bound = grad_bound(p, q, factor, torch.float16, up=torch.full((N,), 0.75, dtype=torch.float64))
    assert_within(view.grad, expected, bound, "dlogits of a sliced view")
    assert wide[:, V:].isnan().all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_row_ignored(reduction, gen):
    """torch: mean over no rows is 0 / 0 = NaN, sum is 0, 'none' is zeros; the gradient is
    zero everywhere (no NaN leaks into it)."""
    logits = make_logits(N, V, torch.float32, gen)
    target = torch.full((N,), -100)
    for inplace in (False, True):
        x = logits.clone().requires_grad_()
        loss = ce.cross_entropy_generic(
            x, target, reduction=reduction, label_smoothing=0.2, inplace_grad=inplace, **SMALL
        )
        ref = F.cross_entropy(logits, target, reduction=reduction, label_smoothing=0.2)
        torch.testing.assert_close(loss, ref, equal_nan=True)
        (loss * upstream(reduction, N, gen)).sum().backward()
        assert torch.equal(x.grad, torch.zeros_like(logits)), f"inplace={inplace}"


def test_ignore_index_may_be_a_class_id(gen):
    logits = make_logits(N, V, torch.float32, gen)
    target = torch.randint(0, V, (N,), generator=gen)
    target[[0, 3, 5]] = 3
    g = torch.randn((), generator=gen)
    loss, grad = run(logits, target, "mean", 0.1, g, ignore_index=3, **SMALL)
    loss64, p, q, factor = exact(logits, target, "mean", 0.1, ignore_index=3)
    assert_within(loss, loss64, loss_bound(loss64), "loss")
    expected, bound = grad_bound(p, q, factor * g.double(), torch.float32)
    assert_within(grad, expected, bound, "dlogits")
    assert (grad[[0, 3, 5]] == 0).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_int32_targets_match_int64(reduction, gen):
    logits, target = make_logits(N, V, torch.bfloat16, gen), make_target(N, V, gen)
    g = upstream(reduction, N, gen)
    loss64, grad64 = run(logits, target, reduction, 0.1, g, **SMALL)
    loss32, grad32 = run(logits, target.int(), reduction, 0.1, g, **SMALL)
    assert torch.equal(loss64, loss32) and torch.equal(grad64, grad32)


@pytest.mark.parametrize("layout", ["sliced", "transposed"])
def test_strided_logits_and_targets(layout, gen):
    values = make_logits(N, V, torch.float16, gen)
    if layout == "sliced":
        wide = torch.full((N, V + 5), float("nan"), dtype=torch.float16)
        wide[:, :V] = values
        logits = wide[:, :V]
    else:  # the vocabulary is the strided dim
        logits = values.t().contiguous().t()
    target = torch.zeros(2 * N, dtype=torch.int64)[::2]
    target.copy_(make_target(N, V, gen))
    g = upstream("none", N, gen)
    loss, grad = run(logits, target, "none", 0.0, g, **SMALL)
    loss64, p, q, factor = exact(values, target, "none", 0.0)
    assert_within(loss, loss64, loss_bound(loss64), f"loss, {layout} logits")
    expected, bound = grad_bound(p, q, factor * g.double(), torch.float16)
    assert_within(grad, expected, bound, f"dlogits, {layout} logits")


def test_expanded_upstream_gradient(gen):
    """loss.sum().backward() hands backward an expanded (stride 0) upstream gradient."""
    logits, target = make_logits(N, V, torch.float32, gen), make_target(N, V, gen)
    x = logits.clone().requires_grad_()
    ce.cross_entropy_generic(x, target, reduction="none", **SMALL).sum().backward()
    _, p, q, factor = exact(logits, target, "none", 0.0)
    expected, bound = grad_bound(p, q, factor, torch.float32)
    assert_within(x.grad, expected, bound, "dlogits")


def test_large_logit_offset_keeps_float32_precision(gen):
    """Logits near 1e4: forming lse = m + log(sum) in float32 would round it by up to 5e-4,
    ~1e-4 of a loss of ~4; the kernel only forms differences of logits."""
    logits = make_logits(N, V, torch.float32, gen) + 1.0e4
    target = make_target(N, V, gen, ignored=())
    for smoothing in (0.0, 0.3):
        loss = ce.cross_entropy_generic(logits, target, reduction="none", label_smoothing=smoothing, **SMALL)
        loss64, *_ = exact(logits, target, "none", smoothing)
        assert_within(loss, loss64, loss_bound(loss64), f"loss at offset 1e4, smoothing={smoothing}")


def test_confident_targets(gen):
    """The target is its row's arg-max by a margin of 30: the loss is ~V e^-30 and the
    target's gradient p_t - 1 ~ -V e^-30; both within the bounds, no NaN."""
    logits = make_logits(N, V, torch.float32, gen)
    target = make_target(N, V, gen, ignored=())
    logits[torch.arange(N), target] = logits.max(dim=1).values + 30
    g = upstream("none", N, gen)
    loss, grad = run(logits, target, "none", 0.0, g, **SMALL)
    loss64, p, q, factor = exact(logits, target, "none", 0.0)
    assert_within(loss, loss64, loss_bound(loss64), "loss")
    expected, bound = grad_bound(p, q, factor * g.double(), torch.float32)
    assert_within(grad, expected, bound, "dlogits")


def test_out_of_range_target_gives_nan_without_reading_outside_the_row(gen):
    logits = make_logits(3, V, torch.float32, gen)
    target = torch.tensor([V, 2, -5])
    loss = ce.cross_entropy_generic(logits, target, reduction="none", label_smoothing=0.1, **SMALL)
    assert loss[0].isnan() and loss[2].isnan() and loss[1].isfinite()
    assert ce.cross_entropy_generic(logits, target, **SMALL).isnan()


def test_every_tunable_value(gen):
    """Every value of every tunable, forward and backward, over V = 300: BLOCK_V from 16
    (19 blocks) to 32768 (one mostly masked block)."""
    tunables = ce.TUNABLES
    longest = max(len(v) for v in tunables.values())
    configs = [{k: v[i % len(v)] for k, v in tunables.items()} for i in range(longest)]
    for key, values in tunables.items():
        assert {c[key] for c in configs} == set(values)
    for i, config in enumerate(configs):
        dtype = DTYPES[i % 3]
        logits, target = make_logits(3, 300, dtype, gen), make_target(3, 300, gen, ignored=(1,))
        g = upstream("mean", 3, gen)
        loss, grad = run(logits, target, "mean", 0.1, g, **config)
        loss64, p, q, factor = exact(logits, target, "mean", 0.1)
        assert_within(loss, loss64, loss_bound(loss64), f"loss {config}")
        expected, bound = grad_bound(p, q, factor * g.double(), dtype)
        assert_within(grad, expected, bound, f"dlogits {config}")


def test_public_entry_point_and_dims(gen):
    logits, target = make_logits(N, V, torch.bfloat16, gen), make_target(N, V, gen)
    cfg = ce.cross_entropy_config(logits, target)
    assert set(cfg) == set(ce.TUNABLES) and all(cfg[k] in ce.TUNABLES[k] for k in cfg)
    assert cfg["BLOCK_V"] >= V  # the single-block path
    for reduction in REDUCTIONS:
        expected = ce.cross_entropy_generic(logits, target, reduction=reduction, **cfg)
        assert torch.equal(ce.cross_entropy(logits, target, reduction=reduction), expected)
    assert ce.cross_entropy_dims(logits, target) == {"N": N, "V": V}


def test_empty_batch():
    logits, target = torch.empty(0, V, requires_grad=True), torch.empty(0, dtype=torch.int64)
    assert ce.cross_entropy(logits, target).isnan()
    assert ce.cross_entropy(logits, target, reduction="sum") == 0
    loss = ce.cross_entropy(logits, target, reduction="none")
    assert loss.shape == (0,)
    loss.sum().backward()
    assert logits.grad.shape == (0, V)


def test_bad_arguments_are_named():
    x, t = torch.randn(4, 8), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"cross_entropy: target has dtype torch.float32; expected int64 or int32"):
        ce.cross_entropy_generic(x, t.float())
    with pytest.raises(ValueError, match=r"cross_entropy: target must have shape \[4\], got \[5\]"):
        ce.cross_entropy_generic(x, torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be \[N, V\] with V >= 1"):
        ce.cross_entropy_generic(x[None], t)
    with pytest.raises(ValueError, match=r"cross_entropy: reduction must be one of mean, sum, none, got 'avg'"):
        ce.cross_entropy_generic(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\]"):
        ce.cross_entropy_generic(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"cross_entropy: logits has dtype torch.int32"):
        ce.cross_entropy_generic(x.int(), t)
    with pytest.raises(ValueError, match=r"cross_entropy: BLOCK_V=48 is not allowed"):
        ce.cross_entropy_generic(x, t, BLOCK_V=48)


def _case(kernel: str, dtype: str, cfg: dict, **flags) -> dict:
    V_ = 128256  # Llama-3's vocabulary
    ptr, f32 = f"*{dtype}", "*fp32"
    common = {
        "stride_row": V_,
        "stride_col": 1,
        "stride_target": 1,
        "stride_grad_row": V_,
        "stride_grad_col": 1,
        "V": V_,
        "ignore_index": -100,
        "label_smoothing": 0.1,
        "BLOCK_V": {"constexpr": cfg["BLOCK_V"]},
    }
    if kernel == "forward":
        args = {
            "x_ptr": ptr,
            "target_ptr": "*i64",
            "loss_ptr": f32,
            "max_ptr": f32,
            "log_sum_ptr": f32,
            "grad_ptr": ptr,
            "n_valid_ptr": f32,
        }
    else:
        args = {
            "x_ptr": ptr,
            "target_ptr": "*i64",
            "max_ptr": f32,
            "log_sum_ptr": f32,
            "dloss_ptr": f32,
            "n_valid_ptr": f32,
            "grad_ptr": ptr,
            "stride_dloss": 0,
        }
    args.update(common)
    args.update({k: {"constexpr": v} for k, v in flags.items()})
    return {
        "label": f"cross_entropy {kernel} {dtype} {flags}",
        "kernel": f"kernels.cross_entropy:_cross_entropy_{kernel}_kernel",
        "args": args,
        "num_warps": cfg["num_warps"],
        "num_stages": cfg["num_stages"],
        "fp_fusion": False,
    }


@pytest.mark.slow
def test_compiles_for_sm90():
    """Both kernels, with and without smoothing and the in-place gradient, compile for an
    H100 at the heuristic's config for a 128k vocabulary, without register spills."""
    cfg = ce._heuristic(128256, serial=False)
    cases = [
        _case("forward", "bf16", cfg, SMOOTHING=True, WRITE_GRAD=True, MEAN=True),
        _case("forward", "fp32", cfg, SMOOTHING=False, WRITE_GRAD=False, MEAN=False),
        _case("backward", "bf16", cfg, SMOOTHING=True, MEAN=True),
        _case("backward", "fp16", cfg, SMOOTHING=False, MEAN=False),
    ]
    for result in compile_for_sm90(cases):
        assert result["ok"], result
        assert result["spill_bytes"] == 0, result
