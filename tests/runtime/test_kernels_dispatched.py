"""The repository's kernels go through dispatch, and the recorder sees which variant served."""

from __future__ import annotations

import torch

from kernels import layer_norm, rms_norm, softmax
from pytest_aina.runtime import Recorder
from pytest_aina.runtime.dispatch import dispatcher
from pytest_aina.telemetry.validate import read_file


def test_public_functions_dispatch_and_are_recorded(tmp_path):
    x = torch.randn(2, 3, 40)  # leading batch dims: M = 6
    w, b = torch.randn(40), torch.randn(40)
    with Recorder("svc", path=tmp_path / "k.jsonl", window_s=3600):
        y = softmax.softmax(x)
        softmax.softmax(x)
        rms_norm.rms_norm(x, w, 1e-5)
        layer_norm.layer_norm(x.half(), w.half(), b.half())
    torch.testing.assert_close(y, softmax.softmax_reference(x))
    windows, issues = read_file(tmp_path / "k.jsonl")
    assert issues == []
    got = sorted((w.kernel, w.variant, w.dim_map["M"], w.dim_map["N"], w.dtype, w.calls) for w in windows)
    assert got == [
        ("layer_norm", "generic", 6, 40, "float16", 1),
        ("rms_norm", "generic", 6, 40, "float32", 1),
        ("softmax", "generic", 6, 40, "float32", 2),
    ]


def test_dims_from_first_keys_on_shape(tmp_path):
    def dims(x, *rest):
        return {"M": x.shape[0], "N": x.shape[1]}

    def generic(x, *rest):
        return "generic"

    d = dispatcher("toy", dims, generic, table=tmp_path / "none.yaml", dims_from_first=True)
    for shape in [(2, 3), (2, 3), (3, 2), (2, 3)]:
        assert d(torch.empty(shape), 1.0) == "generic"
    assert d.resolutions == 2
    d(torch.empty(2, 3, dtype=torch.float16))
    assert d.resolutions == 3
