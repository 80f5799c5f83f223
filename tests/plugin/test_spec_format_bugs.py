"""Each capability of the widened spec format catches the real bug it is for, with a torch
kernel (fast on a CPU); the correct kernels pass the same specs."""

import shutil
from pathlib import Path

import format_specs as S
import pytest

# pytester runs of whole specs, 14 of them: minutes on 2 cores, so with the slow tests
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
CONFIDENT = "relations: [{argmax_of: {input: logits, margin: 8.0, frequency: 0.5}}]"


def _spec(text: str, relations: str = "") -> str:
    return text.replace("RELATIONS", relations) if relations else text.replace("    RELATIONS\n", "")


@pytest.fixture
def project(pytester):
    shutil.copy(HERE / "format_kernels.py", pytester.path / "format_kernels.py")
    (pytester.path / "specs").mkdir()
    pytester.syspathinsert()
    return pytester


def run(project, spec: str, impl: str | None = None, *args):
    (project.path / "specs" / "kernel.yaml").write_text(spec)
    extra = ["--aina-impl", f"format_kernels:{impl}"] if impl else []
    return project.runpytest_subprocess("--aina", "-p", "no:cacheprovider", *extra, *args, timeout=300)


GOOD = [
    ("cross_entropy", S.CROSS_ENTROPY, None),
    ("ce_grad_confident", _spec(S.CE_GRAD, CONFIDENT), None),
    ("layer_norm_function", S.LAYER_NORM, None),
    ("layer_norm_module", S.LAYER_NORM, "LayerNormModule"),
    ("softmax_bwd_inplace", S.SOFTMAX_BWD_INPLACE, None),
    ("ce_ignore_index_arg", S.CE_IGNORE_ARG, None),
    ("ce_inplace_gradient", S.CE_INPLACE_GRAD, None),
    ("matmul_fp32_accumulation", S.MATMUL, None),
]


@pytest.mark.parametrize("spec, impl", [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_correct_kernels_pass(project, spec, impl):
    result = run(project, spec, impl)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


# spec, buggy implementation, what the failure must say, a text the failing case must show
BUGS = [
    ("backward_ignores_upstream", S.LAYER_NORM, "LNIgnoresUpstream", "gradient of", "case:"),
    (
        "gradient_wrong_for_noncontiguous",
        S.LAYER_NORM,
        "LNAssumesContiguous",
        "gradient of x failed",
        "layout=transposed",
    ),
    ("statistics_saved_in_bf16", S.LAYER_NORM, "LNStatsInInputDtype", "gradient of", "dtype=bfloat16"),
    (
        "ignored_rows_counted_in_mean",
        S.CROSS_ENTROPY,
        "ce_mean_counts_ignored",
        "reference check of output loss",
        "case:",
    ),
    (
        "one_reduction_mode_wrong",
        S.CROSS_ENTROPY,
        "ce_sum_as_mean",
        "reference check of output loss",
        "arg.reduction=sum",
    ),
    (
        "precision_loss_on_confident_targets",
        _spec(S.CE_GRAD, CONFIDENT),
        "ce_grad_low_precision",
        "gradient of logits failed",
        "dtype=bfloat16",
    ),
    (
        "inplace_gradient_wrong_stride",
        S.SOFTMAX_BWD_INPLACE,
        "softmax_bwd_inplace_wrong_stride",
        "reference check of output dx failed",
        "layout=",
    ),
    ("size_threshold", S.SOFTMAX, "softmax_grid_cap", "reference check failed", "M=48"),
    # the sentinel follows ignore_index's alternatives: a kernel that only ignores -100 fails at 3
    ("ignore_index_hardcoded", S.CE_IGNORE_ARG, "ce_ignore_hardcoded", "reference check failed", "arg.ignore_index=3"),
    (
        "inplace_gradient_wrong_stride_into_logits",
        S.CE_INPLACE_GRAD,
        "ce_inplace_wrong_stride",
        "gradient of logits",
        "arg.inplace_grad=True",
    ),
    # partial sums rounded to bfloat16: off by ~K/2 ulps of bfloat16, past ~3K float32 ulps of |A| @ |B|
    ("matmul_accumulates_in_bf16", S.MATMUL, "mm_accumulates_in_input_dtype", "reference check of output c", "case:"),
]


@pytest.mark.parametrize("spec, impl, says, shows", [b[1:] for b in BUGS], ids=[b[0] for b in BUGS])
def test_bug_is_caught(project, spec, impl, says, shows):
    result = run(project, spec, impl)
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert says in text, text
    assert shows in text, text
    assert "re-run just this case:" in text


def test_confident_precision_loss_needs_the_relation(project):
    """Without the argmax_of relation the same buggy kernel passes: random targets are
    never confident enough for p(target) to round to 1."""
    result = run(project, _spec(S.CE_GRAD), "ce_grad_low_precision")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_size_threshold_fails_in_every_dtype_deterministically(project):
    result = run(project, S.SOFTMAX, "softmax_grid_cap", "-k", "property")
    result.assert_outcomes(failed=2)
