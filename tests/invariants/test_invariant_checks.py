"""Each check of the library on hand-made observations: it holds on a good output and says
how a bad one breaks it. No kernel and no spec: what a check needs comes in the Observation."""

import pytest
import torch

from pytest_aina import invariants
from pytest_aina.invariants import Observation


def observe(out, x=None, *, ref=None, close=None, again=None, before=None, buffers=None):
    x = torch.zeros(2, 3) if x is None else x
    buffers = {"x": x} if buffers is None else buffers
    return Observation(
        out=out,
        ref=ref,
        inputs={"x": x},
        buffers=buffers,
        before=before or {k: b.clone() for k, b in buffers.items()},
        case="the case",
        close=close or (lambda a, b: None),
        again=again or (lambda: out.clone()),
    )


def check(name, o, **params):
    return invariants.get(name).check(o, params)


def test_close_to_reference_asks_the_comparison_it_was_given():
    seen = []
    o = observe(torch.ones(2), ref=torch.zeros(2), close=lambda a, b: seen.append((a, b)) or "off by 1")
    assert check("close_to_reference", o) == "off by 1"
    assert torch.equal(seen[0][0], torch.ones(2)) and torch.equal(seen[0][1], torch.zeros(2))


def test_value_checks_name_the_first_bad_element():
    y = torch.tensor([[0.5, -1.0], [float("nan"), 2.0]])
    assert check("non_negative", observe(y)) == "2 of 4 elements are negative (or NaN); first at index (0, 1): -1"
    assert check("finite", observe(y)) == "1 of 4 elements are NaN or infinite; first at index (1, 0): nan"
    assert check("bounded", observe(y), min=0, max=1).startswith("3 of 4 elements are outside [0, 1]")
    assert check("bounded", observe(torch.tensor([0.0, 1.0])), min=0, max=1) is None
    # several outputs: the first is the one checked
    assert check("non_negative", observe((torch.ones(2), -torch.ones(2)))) is None


def test_sums_to_and_mean_zero_default_to_the_last_dim_and_atol():
    rows = torch.tensor([[0.25, 0.75], [0.5, 0.5005]])
    assert check("sums_to", observe(rows), value=1) is None  # off by 5e-4 <= the default 1e-3
    assert "are off 1.0 by more than 0.0001" in check("sums_to", observe(rows), value=1, atol=1e-4)
    assert "of the sums along dim 0" in check("sums_to", observe(rows), value=1, dim=0)
    assert check("sums_to", observe(torch.empty(0, 3)), value=1) is None
    centred = torch.tensor([[-1.0, 1.0], [2.0, -2.0]])
    assert check("mean_zero", observe(centred)) is None
    assert "further than 0.001 from 0" in check("mean_zero", observe(centred + 1))


def test_shape_and_dtype_are_compared_with_the_first_input():
    x = torch.zeros(2, 3)
    assert check("shape_preserved", observe(torch.zeros(2, 3), x)) is None
    assert check("shape_preserved", observe(torch.zeros(3, 2), x)) == "output shape (3, 2) != input shape (2, 3)"
    assert check("dtype_preserved", observe(torch.zeros(2, 3, dtype=torch.float16), x)) == (
        "output dtype torch.float16 != input dtype torch.float32"
    )


def test_no_input_mutation_sees_writes_into_padding():
    buf = torch.full((2, 4), float("nan"))
    view = buf[:, :3]
    view.zero_()
    before = {"x": buf.clone()}
    assert check("no_input_mutation", observe(torch.zeros(2, 3), view, buffers={"x": buf}, before=before)) is None
    buf[0, 3] = 1.0  # past the end of the row: invisible in the view
    msg = check("no_input_mutation", observe(torch.zeros(2, 3), view, buffers={"x": buf}, before=before))
    assert msg.startswith("input 'x' was modified by the kernel: 1 of 8 elements changed; first at index (0, 3)")


def test_no_output_aliasing():
    x = torch.zeros(2, 3)
    assert check("no_output_aliasing", observe(torch.zeros(2, 3), x)) is None
    assert check("no_output_aliasing", observe(x[1], x)) == "output shares memory with input 'x'"


def test_deterministic_calls_again():
    y = torch.tensor([1.0, 2.0])
    assert check("deterministic", observe(y, again=lambda: y.clone())) is None
    msg = check("deterministic", observe(y, again=lambda: (y + 0.5, y)))
    assert msg == "two runs on identical inputs differ: max |run1 - run2| = 0.5"


def rows_positive(inputs, out, case):
    assert set(inputs) == {"x"} and case == "the case"
    if (out <= 0).any():
        return "a row is not positive"


def always_false(inputs, out, case):
    return False


def raises_bare(inputs, out, case):
    raise AssertionError


@pytest.mark.parametrize(
    "fn, out, expected",
    [
        ("rows_positive", torch.ones(2), None),
        ("rows_positive", -torch.ones(2), "a row is not positive"),
        ("always_false", torch.ones(2), f"{__name__}:always_false returned False"),
        ("raises_bare", torch.ones(2), f"{__name__}:raises_bare failed"),
    ],
)
def test_python_escape_hatch(fn, out, expected):
    assert check("python", observe(out), check=f"{__name__}:{fn}") == expected
