"""Direct checks of the row-wise Triton kernels against their torch references.

Fast by design (the Triton interpreter on a CPU): shapes are small except one wide row per
kernel that takes the looped path. The thorough, generated checks come from the specs
through ``pytest --aina``; these pin the launcher's contract (layouts, batch dims, dtypes,
every meta-parameter value, errors, the launch heuristics' device rule).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import layer_norm, rms_norm, rowwise, softmax
from pytest_aina.spec.model import load_spec

ROOT = Path(__file__).resolve().parents[2]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


class Kernel:
    """One kernel module seen uniformly: x plus its per-column parameters."""

    def __init__(self, module, name: str, n_params: int, eps: dict):
        self.name, self.n_params, self.eps = name, n_params, eps
        self.public = getattr(module, name)
        self.generic = getattr(module, f"{name}_generic")
        self.reference = getattr(module, f"{name}_reference")
        self.dims = getattr(module, f"{name}_dims")
        self.config = getattr(module, f"{name}_config")
        self.tunables = module.TUNABLES
        self.spec = load_spec(ROOT / "specs" / f"{name}.yaml")

    def params(self, n: int, dtype, gen) -> list[torch.Tensor]:
        return [torch.randn(n, generator=gen).to(dtype) for _ in range(self.n_params)]

    def tolerance(self, dtype) -> dict:
        t = self.spec.tolerance[str(dtype).removeprefix("torch.")]
        return {"atol": t.atol, "rtol": t.rtol}

    def __repr__(self) -> str:
        return self.name


KERNELS = [
    Kernel(softmax, "softmax", 0, {}),
    Kernel(rms_norm, "rms_norm", 1, {"eps": 1e-6}),
    Kernel(layer_norm, "layer_norm", 2, {"eps": 1e-5}),
]


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def make_x(shape: list[int], dtype, layout: str, gen) -> torch.Tensor:
    """x with the given logical shape, laid out as the specs' layouts describe."""
    values = (torch.randn(shape, generator=gen) * 2 + 0.5).to(dtype)
    if layout == "sliced":
        # NaN in the padding: a kernel whose masks let it read past N returns NaN
        buf = torch.full(shape[:-1] + [shape[-1] + 5], float("nan"), dtype=dtype)
        x = buf[..., : shape[-1]]
    elif layout == "transposed":
        x = torch.empty(shape[:-2] + [shape[-1], shape[-2]], dtype=dtype).transpose(-1, -2)
    elif layout == "permuted":
        # three leading dims that do not merge into two row strides: the launcher's copy path
        x = torch.empty([shape[1], shape[0]] + shape[2:], dtype=dtype).transpose(0, 1)
    else:
        x = torch.empty(shape, dtype=dtype)
    x.copy_(values)
    return x


def run_and_check(k: Kernel, x: torch.Tensor, params: list[torch.Tensor], **config) -> torch.Tensor:
    before = [t.clone() for t in [x, *params]]
    out = k.generic(x, *params, **k.eps, **config)
    expected = k.reference(x, *params, **k.eps)
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    torch.testing.assert_close(out, expected, **k.tolerance(x.dtype), msg=lambda m: f"{k} {config}: {m}")
    for t, b in zip([x, *params], before):
        assert torch.equal(t, b), f"{k} modified an input"
    return out


SHAPES = [
    # (shape, layout)
    ([1], "contiguous"),
    ([5, 1], "contiguous"),
    ([3, 1], "transposed"),
    ([4, 37], "contiguous"),
    ([2, 3, 100], "contiguous"),
    ([17, 1000], "sliced"),
    ([2, 3, 129], "sliced"),
    ([9, 257], "transposed"),
    ([2, 3, 50], "transposed"),
    ([3, 2, 4, 33], "permuted"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("shape,layout", SHAPES, ids=[f"{'x'.join(map(str, s))}-{lay}" for s, lay in SHAPES])
@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_matches_reference(k, shape, layout, dtype, gen):
    x = make_x(shape, dtype, layout, gen)
    run_and_check(k, x, k.params(shape[-1], dtype, gen))


def _configs_covering(tunables: dict) -> list[dict]:
    """Configs that use every value of every tunable at least once."""
    longest = max(len(v) for v in tunables.values())
    return [{key: values[i % len(values)] for key, values in tunables.items()} for i in range(longest)]


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_every_tunable_value(k, gen):
    """N=300 with BLOCK_N from 16 to 65536 runs the looped kernel (BLOCK_N < 300) and the
    fused one; ROWS_PER_PROGRAM up to 16 over M=6 exercises the clamped tail program."""
    configs = _configs_covering(k.tunables)
    for i, config in enumerate(configs):
        dtype = DTYPES[i % 3]
        x = make_x([2, 3, 300], dtype, ["contiguous", "sliced", "transposed"][i % 3], gen)
        run_and_check(k, x, k.params(300, dtype, gen), **config)
    for key, values in k.tunables.items():
        assert {c[key] for c in configs} == set(values)


@pytest.mark.parametrize(
    "dtype,n", [(torch.float32, 20000), (torch.bfloat16, 131072)], ids=["float32-N20000", "bfloat16-N131072"]
)
@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_wide_rows_take_the_looped_kernel(k, dtype, n, gen):
    x = make_x([2, n], dtype, "sliced", gen)
    cfg = rowwise.default_config(rowwise.as_rows(x), x.element_size())
    assert cfg["BLOCK_N"] < n  # the heuristic loops rather than holding the row in registers
    run_and_check(k, x, k.params(n, dtype, gen))


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_strided_parameters_and_public_function(k, gen):
    x = make_x([4, 96], torch.float16, "contiguous", gen)
    params = [torch.randn(192, generator=gen).to(torch.float16)[::2] for _ in range(k.n_params)]
    out = run_and_check(k, x, params)
    assert torch.equal(k.public(x, *params, **k.eps), out)  # the heuristic config, same bits
    assert k.dims(x, *params) == {"M": 4, "N": 96}
    assert k.dims(make_x([2, 3, 5], torch.float32, "contiguous", gen), *k.params(5, torch.float32, gen)) == {
        "M": 6,
        "N": 5,
    }


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_heuristic_config_is_reported(k, gen):
    for n in (100, 20000):
        x = make_x([3, n], torch.bfloat16, "contiguous", gen)
        params = k.params(n, torch.bfloat16, gen)
        cfg = k.config(x, *params)
        assert set(cfg) == set(k.tunables) and all(cfg[key] in k.tunables[key] for key in cfg)
        assert (cfg["BLOCK_N"] < n) == (n > rowwise.FUSED_MAX_N)
        assert torch.equal(k.generic(x, *params, **cfg), k.generic(x, *params))


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_output_is_fresh_and_deterministic(k, gen):
    x = make_x([8, 64], torch.bfloat16, "contiguous", gen)
    params = k.params(64, torch.bfloat16, gen)
    a, b = k.public(x, *params, **k.eps), k.public(x, *params, **k.eps)
    assert torch.equal(a, b)
    assert a.untyped_storage().data_ptr() not in {t.untyped_storage().data_ptr() for t in [x, *params, b]}


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_empty_input(k):
    x = torch.empty(0, 7)
    out = k.public(x, *[torch.ones(7)] * k.n_params, **k.eps)
    assert out.shape == (0, 7) and out.dtype == x.dtype


def test_bfloat16_is_rounded_to_nearest_not_truncated():
    """rms_norm(1, w) = w * (1 + eps)^-1/2 lies just below w in float32: rounding to nearest
    gives w back exactly, truncation (the interpreter's own float32 -> bfloat16 cast) gives
    the bfloat16 value one below w in magnitude."""
    w = torch.linspace(-3, 3, 64).to(torch.bfloat16)
    w = w[w != 0]
    x = torch.ones(4, w.numel(), dtype=torch.bfloat16)
    out = rms_norm.rms_norm(x, w, eps=1e-6)
    assert torch.equal(out, w.expand_as(out))


@pytest.mark.parametrize("k", KERNELS, ids=repr)
def test_bad_arguments_are_named(k):
    x = torch.randn(4, 8)
    params = [torch.ones(8)] * k.n_params
    with pytest.raises(ValueError, match=rf"{k.name}: x has dtype torch.int32"):
        k.generic(x.to(torch.int32), *params)
    with pytest.raises(ValueError, match=rf"{k.name}: unknown meta-parameter 'BLOCK'"):
        k.generic(x, *params, BLOCK=64)
    with pytest.raises(ValueError, match=rf"{k.name}: BLOCK_N=48 is not allowed"):
        k.generic(x, *params, BLOCK_N=48)
    with pytest.raises(ValueError, match=rf"{k.name}: num_warps=3 is not allowed"):
        k.generic(x, *params, num_warps=3)
    with pytest.raises(ValueError, match=rf"{k.name}: x must have at least 1 dim"):
        k.generic(torch.tensor(1.0), *[torch.ones(1)] * k.n_params)
    if k.n_params:
        with pytest.raises(ValueError, match=rf"{k.name}: weight must have shape \[8\]"):
            k.generic(x, torch.ones(9), *params[1:])


def test_rows_view_without_copy():
    x = torch.empty(2, 5, 7).transpose(-1, -2)  # [2, 7, 5] with strides (35, 1, 7)
    rows = rowwise.as_rows(x)
    assert rows.x is x
    assert (rows.M, rows.N, rows.inner, rows.stride_outer, rows.stride_inner, rows.stride_col) == (14, 5, 7, 35, 1, 7)
    sliced = torch.empty(3, 4, 10)[..., :6]
    rows = rowwise.as_rows(sliced)
    assert rows.x is sliced and (rows.M, rows.inner, rows.stride_inner, rows.stride_col) == (12, 12, 10, 1)


def _import_in_subprocess(env_value: str | None, *, prepare: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if env_value is not None:
        env["TRITON_INTERPRET"] = env_value
    code = (
        ("from pytest_aina.checking.device import prepare_runtime; prepare_runtime()\n" if prepare else "")
        + "import os, torch, kernels.softmax as s\n"
        "print(os.environ.get('TRITON_INTERPRET'), type(s._softmax_fused_kernel).__name__)\n"
        "try:\n    print(s.softmax(torch.zeros(2, 3)).sum().item())\n"
        "except ValueError as e:\n    print('ValueError:', e)\n"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only import path")
def test_the_runner_picks_the_interpreter_without_a_gpu():
    """Choosing the interpreter is the runner's job (pytest --aina, aina, the sandbox, all
    through prepare_runtime), not the kernels'."""
    done = _import_in_subprocess(None, prepare=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "InterpretedFunction", "2.0"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only import path")
def test_kernels_carry_no_test_environment_code():
    """Imported bare on a CPU, a kernel is a GPU kernel, and says how to run it here."""
    done = _import_in_subprocess(None)
    assert done.returncode == 0, done.stderr
    first, rest = done.stdout.split("\n", 1)
    assert first == "None JITFunction"
    assert "set TRITON_INTERPRET=1 before importing kernels" in rest
    source = "".join(p.read_text() for p in (ROOT / "kernels").glob("*.py"))
    assert "os.environ" not in source and "output_buffer(x, rows, interpreted)" not in source
    # no launch heuristic asks how Triton was set up: they ask the tensors' device
    for marker in ("is_interpreted", "interpreted=", "_interpreted(", "InterpretedFunction"):
        assert marker not in source, marker


def test_launch_heuristics_ask_the_device_the_tensors_live_on():
    """A GPU keeps enough programs for its SMs (the rule as written for GPUs, unchanged); a
    CPU runs one program at a time, so short rows are packed into 64K-element tiles."""
    from kernels import meta

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert meta.concurrent_programs(cuda) == meta.GPU_CONCURRENT_PROGRAMS == 256
    assert meta.concurrent_programs(cpu) == 1 and meta.serial(cpu) and not meta.serial(cuda)
    # GPU: ~2048-element tiles, halved until 256 programs remain (or one row each)
    assert rowwise.rows_per_program(128, 4096, 256) == 16
    assert rowwise.rows_per_program(128, 1024, 256) == 4
    assert rowwise.rows_per_program(128, 100, 256) == 1
    assert rowwise.rows_per_program(4096, 1 << 20, 256) == 1
    # CPU: up to 16 rows whatever M, as long as the tile stays within 64K elements
    assert rowwise.rows_per_program(128, 100, 1) == 16
    assert rowwise.rows_per_program(8192, 100, 1) == 8
    # the launcher's config follows the input's device, with no other argument
    x = torch.empty(1024, 128)
    assert rowwise.default_config(rowwise.as_rows(x), x.element_size())["ROWS_PER_PROGRAM"] == 16
    on_meta = torch.empty(1024, 128, device="meta")  # a non-CPU device, without a GPU
    assert rowwise.default_config(rowwise.as_rows(on_meta), 4)["ROWS_PER_PROGRAM"] == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only import path")
def test_explicit_compiled_backend_is_respected_and_explained():
    done = _import_in_subprocess("0")
    assert done.returncode == 0, done.stderr
    first, rest = done.stdout.split("\n", 1)
    assert first == "0 JITFunction"
    assert "ValueError: softmax: x is on the CPU but Triton was set up to compile for a GPU" in rest


def test_kernels_compile_for_a_gpu():
    """The interpreter never compiles: compile every kernel for sm_90 with Triton's own
    backend and ptxas (shipped in its wheel), as a launch on an H100 would. -W error: the
    launch options must not leave triton 3.9 warning about FP fusion."""
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "scripts" / "compile_kernels.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" ok ") == 18 and "all compiled" in done.stdout
