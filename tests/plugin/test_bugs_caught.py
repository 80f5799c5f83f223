"""For every class of bug the generated inputs claim to cover, a broken kernel is caught,
and the failure names the spec, the case, the largest error and a re-run command."""

import re

import pytest

CASE_RE = re.compile(
    r"case: (?P<dims>.*?), dtype=(?P<dtype>\w+), layout=(?P<layout>\w+), "
    r"values=(?P<values>\w+), seed=(?P<seed>\d+)"
)


def failures(result):
    text = result.stdout.str()
    return [
        m.groupdict() | {"dims_map": dict(kv.split("=") for kv in m["dims"].split(", "))}
        for m in CASE_RE.finditer(text)
    ], text


def run(spec_dir, impl, *args):
    # a real pytest process each time: what a user runs, and no module state shared between runs
    return spec_dir.runpytest_subprocess(
        "--aina", "--aina-impl", f"bugs:{impl}", "-p", "no:cacheprovider", *args, timeout=300
    )


def is_pow2(n):
    return n & (n - 1) == 0


# The items each bug run selects (``-k``): the property items, Hypothesis's cases of each dtype
# checked against the reference and every invariant (what the module's claim is about: the
# generated inputs catch the bug, not a pinned example), and for a bug an invariant names,
# that invariant's own item too. The items left out are the other invariants' items: they
# cannot fail on these bugs, and running them (minutes on 2 cores) proved nothing.
PROPERTY = "property"

# impl, what the failing case must show, what the message must say, the items run
BUGS = [
    ("pad_zero", lambda c: not is_pow2(int(c["dims_map"]["N"])), "reference check failed", PROPERTY),
    ("no_max", lambda c: c["values"] in ("large", "mixed"), "failed", PROPERTY),
    ("block_cap", lambda c: int(c["dims_map"]["N"]) > 4096, "reference check failed", PROPERTY),
    ("dense_rows", lambda c: c["layout"] == "sliced", "failed", PROPERTY),
    ("unit_cols", lambda c: c["layout"] == "transposed", "failed", PROPERTY),
    ("first_dim_rows", lambda c: "batch" in c["dims_map"], "failed", PROPERTY),
    ("size_one", lambda c: int(c["dims_map"]["N"]) == 1, "failed", PROPERTY),
    ("max_init_zero", lambda c: c["values"] == "negative", "failed", PROPERTY),
    ("half_output", lambda c: c["dtype"] in ("float32", "bfloat16"), "dtype", "property or dtype_preserved"),
    ("in_place", lambda c: True, "invariant no_input_mutation failed", "property or no_input_mutation"),
    ("noisy", lambda c: c["dtype"] == "float32", "invariant deterministic failed", "property or deterministic"),
    ("cached", lambda c: True, "reference check failed", PROPERTY),
]


#: The slowest to catch (the spec's layouts in the interpreter, until Hypothesis reaches the
#: one the bug breaks; 1.8 to 2.4 minutes each on a busy 2-core machine, load average 12):
#: ``-m "not slow"`` leaves them out, the whole suite runs them.
SLOW_BUGS = {"dense_rows", "unit_cols", "first_dim_rows"}


@pytest.mark.parametrize(
    "impl, shows, says, items",
    [pytest.param(*b, id=b[0], marks=[pytest.mark.slow] if b[0] in SLOW_BUGS else []) for b in BUGS],
)
def test_bug_is_caught(spec_dir, impl, shows, says, items):
    result = run(spec_dir, impl, "-k", items)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases, text = failures(result)
    assert cases, text
    assert says in text
    assert any(shows(c) for c in cases), f"no failing case shows the bug's trigger:\n{text}"
    result.stdout.fnmatch_lines(
        ["*largest error*" if "reference" in says else "*", "*re-run just this case:*", "*pytest --aina *"]
    )


def test_good_kernel_passes_the_items_the_bug_runs_select(spec_dir):
    """No false alarm where the bugs are caught: the correct kernel passes the property items
    (test_bug_is_caught's -k), so each bug's failure there is the bug's. The fast subset's
    share of test_good_kernel_passes, which runs every item (minutes on 2 cores)."""
    result = run(spec_dir, "good", "-v", "-k", PROPERTY)
    result.assert_outcomes(passed=3, deselected=4 + 8)
    result.stdout.fnmatch_lines(["*property[[]float32[]] PASSED*", "*property[[]bfloat16[]] PASSED*"])


@pytest.mark.slow
def test_good_kernel_passes(spec_dir):
    result = run(spec_dir, "good", "-v")
    result.assert_outcomes(passed=4 + 3 + 8)
    result.stdout.fnmatch_lines(
        [
            "*example[[]M=4,N=1000,float32[]] PASSED*",
            "*property[[]bfloat16[]] PASSED*",
            "*invariant[[]sums_to[]] PASSED*",
        ]
    )


def test_failure_message_and_rerun_command(spec_dir):
    result = run(spec_dir, "pad_zero", "-k", "property and float32")
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*softmax: reference check failed*softmax.yaml*",
            "*case: M=*, N=*, dtype=float32, layout=*, values=*, seed=*",
            "*largest error: |out - ref| = * at index (*): got *, expected * (allowed *)",
            "*mismatches: * of * elements*",
            "*re-run just this case:*",
        ]
    )
    command = re.search(r"re-run just this case:\n\s+(pytest .*)", text).group(1)
    import shlex

    argv = shlex.split(command)
    assert argv[:3] == ["pytest", "--aina", "specs/softmax.yaml::property[float32]"]
    # the printed command re-runs exactly that case, and it fails the same way
    again = spec_dir.runpytest_subprocess(*argv[1:], "-p", "no:cacheprovider", timeout=300)
    again.assert_outcomes(failed=1)
    assert CASE_RE.search(again.stdout.str()).groupdict() == CASE_RE.search(text).groupdict()


ZERO_VARIANCE = lambda c: c["values"] == "ties" or c["dims_map"]["N"] == "1"  # noqa: E731


@pytest.mark.parametrize(
    "impl, shows",
    [("ln_no_eps", ZERO_VARIANCE), ("ln_eps_outside", lambda c: c["values"] == "small")],
    ids=["no_eps", "eps_outside_sqrt"],
)
def test_normalisation_bugs_are_caught(norm_dir, impl, shows):
    result = run(norm_dir, impl, "-k", PROPERTY)
    cases, text = failures(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert any(shows(c) for c in cases), text


def test_good_normalisation_passes(norm_dir):
    run(norm_dir, "ln_good").assert_outcomes(passed=1 + 2)
