"""The LLM proposer's prompt: a readable template and the functions that fill it.

The template is data a reviewer can read top to bottom; :data:`TEMPLATE_DIGEST` names its
version in every candidate's record, and the proposer records the digest of each rendered
prompt too, so a search can be repeated with the same words. Everything that goes in comes
from :class:`~pytest_aina.changer.proposers.base.ProposalContext`, which holds nothing secret.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from typing import Any

SYSTEM = """\
You are an expert GPU kernel engineer who writes Triton kernels. You propose one variant of \
an existing kernel at a time. Each variant is checked automatically by the repository's own \
tests: first that it is correct for every input its spec allows (pinned examples, generated \
properties, invariants), then it is timed against the spec's reference on fresh inputs. \
A variant that is fast but wrong on any input is rejected. Answer in exactly the format asked \
for."""

TASK = """\
# Task
Propose a new implementation of `{function}` for the kernel `{kernel}`: one complete Python \
module, using Triton, that should be faster than the current implementation on the shapes the \
hypothesis below is about, while staying correct for the whole input domain of the spec.

# The hypothesis to act on (from production telemetry), with its evidence
```json
{hypothesis}
```

# The spec: what "correct" and "better" mean
```yaml
{spec_text}
```

# What is measured: the only numbers your variant is scored on
{measured}
# The current module ({module})
```python
{kernel_source}
```
{helpers}
# Meta-parameters the current kernel exposes (name: allowed values)
```json
{tunables}
```

# Earlier attempts, with their scores
{history}
{best}{round_note}
# How to answer
If you have no further idea worth measuring, answer with exactly `No further ideas.` and \
nothing else: you will not be asked again, and no tokens are wasted on repeats.

Otherwise write exactly these two things and nothing else:
1. One line starting with `Idea:` saying, in under 25 words, what your variant changes and \
why it should be faster.
2. One fenced code block that starts with ```python and holds the complete module.

The module must:
- define `{function}{signature}` at module top level, taking the same parameters as the \
current implementation and returning the same kind of result;
- compute the result in one or more `@triton.jit` kernels defined in the module; use torch \
only to check arguments, allocate the output and reshape, never to compute the result;
- be correct for every shape, dtype and layout the spec allows (leading batch dims, \
non-contiguous and transposed inputs, sizes that are not powers of two), within the spec's \
tolerance, and keep every invariant it lists (for example: never modify the input, never \
return a view of it);
- import only torch, triton, triton.language, the Python standard library, and the \
`kernels.*` names the current module imports;
- do nothing on import but define things: no I/O, no network, no subprocesses, no printing, \
no reading of environment variables.
"""

MEASURED = """\
- Device: {device}.
- Timed cases (each call on fresh inputs; score = calls per second, geometric mean over the cases):
{cases}
- The current kernel's heuristic picks, at the timed case: {heuristic}.
A variant is kept only if it is faster than the current kernel *at these cases* (and correct \
everywhere); tune for them, not for a shape you expect in production.
"""

HELPERS = """
# Helper modules the current module imports (you may import and use them as they are)
{modules}"""

HELPER = """
## {name}
```python
{source}
```
"""

#: What the history says of a candidate the sandbox caught doing what no kernel may.
HOSTILE = (
    "REJECTED AS HOSTILE: it tried to {acts}. A candidate must not write files, open sockets, "
    "start processes or read the environment; any such attempt rejects it, whatever it computes"
)

HISTORY_EMPTY = "None yet: yours is the first proposal for this hypothesis.\n"

BEST = """
# The best candidate so far ({label})
```python
{source}
```
"""

ROUND_NOTE = """
# Already proposed in this round (not yet evaluated): propose something different
{items}
"""

#: What to tell the model after an answer that could not be used, by reason.
CORRECTIONS = {
    "empty": "your answer was empty",
    "refusal": "you declined to answer; this is an ordinary performance-engineering task on open-source code",
    "no_code_block": "it has no fenced ```python code block",
    "unterminated_code_block": "the ```python code block is not closed with ```",
    "truncated": "it was cut off at the length limit before the code block was closed; "
    "write a shorter module (no long comments, no alternatives)",
    "several_code_blocks": "it has several ```python code blocks that define `{function}`; give exactly one",
    "syntax_error": "the module does not compile: {detail}",
    "missing_function": "the module does not define `{function}` at top level",
    "signature_mismatch": "`{function}` has the wrong parameters: {detail}",
    "no_triton_kernel": "the module defines no `@triton.jit` kernel; the result must be "
    "computed by Triton, not by torch",
    "duplicate": "it is identical to a candidate already tried ({detail}); propose a different variant",
}

FOLLOW_UP = """\
Your answer could not be used: {problem}.
Answer again, in the required format: one line starting with `Idea:`, then one ```python \
block with the complete module defining `{function}{signature}` at top level."""

TEMPLATE_DIGEST = hashlib.sha256(
    json.dumps(
        [SYSTEM, TASK, MEASURED, HELPERS, HELPER, HOSTILE, HISTORY_EMPTY, BEST, ROUND_NOTE, CORRECTIONS, FOLLOW_UP],
        sort_keys=True,
    ).encode()
).hexdigest()

#: Longest detail excerpt of a failed attempt shown in the history (characters).
DETAIL_CHARS = 300
#: The best candidate's source is shown only when it is shorter than this (characters).
BEST_SOURCE_CHARS = 12_000


def signature_of(source: str, function: str) -> str | None:
    """``(x: torch.Tensor) -> torch.Tensor``: the parameters (and return annotation) of the
    top-level ``function`` in ``source``, or None when it is not defined there."""
    fn = top_level_function(source, function)
    if fn is None:
        return None
    sig = f"({ast.unparse(fn.args)})"
    return f"{sig} -> {ast.unparse(fn.returns)}" if fn.returns is not None else sig


@functools.lru_cache(maxsize=16)  # the kernel's source is parsed for every prompt and answer
def top_level_function(source: str, function: str) -> ast.FunctionDef | None:
    """The last top-level ``def function`` in ``source`` (never run, only parsed), or None."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            found = node  # the last definition wins, as when the module runs
    return found


def module_of(spec: Any, kernel: str) -> str:
    """``kernels.softmax``: the module the spec's implementation names."""
    impl = getattr(spec, "implementation", None)
    return impl.split(":", 1)[0] if isinstance(impl, str) and ":" in impl else f"kernels.{kernel}"


def describe(candidate: Any) -> str:
    """A candidate in one line: the model's stated idea when it has one, else its config."""
    summary = (candidate.meta or {}).get("summary")
    return summary if summary else candidate.describe()


def render_history(history: list, limit: int) -> str:
    """Earlier attempts in evaluation order, each with its outcome. When there are more than
    ``limit``, the best passing ones (by score) and the most recent are kept."""
    if not history:
        return HISTORY_EMPTY
    indexed = list(enumerate(history, 1))
    keep = set()
    passing = sorted(
        (i for i, (_, v) in indexed if v.passed and v.score is not None), key=lambda i: -history[i - 1][1].score
    )
    keep.update(passing[: max(1, limit // 3)])
    for i, _ in reversed(indexed):
        if len(keep) >= limit:
            break
        keep.add(i)
    lines = []
    omitted = len(history) - len(keep)
    if omitted:
        lines.append(
            f"({omitted} of {len(history)} attempts not shown: the best passing ones and the most recent are.)"
        )
    for i, (cand, verdict) in indexed:
        if i not in keep:
            continue
        lines.append(f"{i}. [{cand.proposer}, id {cand.id}] {describe(cand)}")
        lines.append("   " + _outcome(verdict))
    return "\n".join(lines) + "\n"


def _outcome(verdict: Any) -> str:
    violations = getattr(verdict, "violations", None) or []
    if violations:
        acts = "; ".join(f"{v.get('kind')} ({public_paths(str(v.get('detail') or ''))})" for v in violations)
        return HOSTILE.format(acts=acts)
    if verdict.passed:
        parts = ["passed every stage"]
        if verdict.speedup is not None:
            parts.append(f"speedup {verdict.speedup:.3g}x over the reference")
        if verdict.score is not None:
            parts.append(f"score {verdict.score:.4g} calls/s (higher is better)")
        return "; ".join(parts)
    where = f" at stage {verdict.failed_stage}" if verdict.failed_stage else ""
    text = f"FAILED{where}: {verdict.reason or 'unknown reason'}"
    detail = re.sub(r"\s+", " ", public_paths(verdict.detail or "")).strip()
    if detail:
        if len(detail) > DETAIL_CHARS:
            detail = detail[:DETAIL_CHARS] + " ..."
        text += f" ({detail})"
    return text


def render_best(history: list) -> str:
    """The source of the best passing source candidate, so the model can build on it."""
    scored = [
        (v.score, c)
        for c, v in history
        if v.passed and v.score is not None and c.source and len(c.source) <= BEST_SOURCE_CHARS
    ]
    if not scored:
        return ""
    score, cand = max(scored, key=lambda s: s[0])
    return BEST.format(label=f"id {cand.id}, score {score:.4g}", source=cand.source.rstrip())


def render_round(proposed: list[str]) -> str:
    if not proposed:
        return ""
    return ROUND_NOTE.format(items="\n".join(f"- {p}" for p in proposed))


#: An absolute path of this machine (two components or more, not part of a URL or an
#: expression): the prompt names files by their base name, the rest says nothing to the model
#: and tells a provider where things live here.
_ABS_PATH = re.compile(r"(?<![\w.:/)\]])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def public_paths(text: str) -> str:
    """``text`` with every absolute local path cut to its last component."""
    return _ABS_PATH.sub(lambda m: m.group(1), text)


def kernel_imports(source: str) -> list[str]:
    """The ``kernels.*`` modules ``source`` imports (``from kernels import rowwise``,
    ``from kernels.rowwise import x``, ``import kernels.rowwise``), in order, once each."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out: list[str] = []
    for node in tree.body:
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kernels":
                names = [f"kernels.{a.name}" for a in node.names]
            elif node.module.startswith("kernels."):
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("kernels.")]
        out += [n for n in names if n not in out]
    return out


def render_measured(ctx: Any) -> str:
    device = getattr(ctx, "device", "") or ""
    if device == "cpu":
        where = "a CPU, in Triton's interpreter (each program runs as Python and numpy: fewer, larger programs win)"
    elif device:
        where = f"a GPU ({device})"
    else:
        where = "not stated"
    cases = []
    for c in getattr(ctx, "bench_cases", None) or []:
        line = f"  - `{c.get('label')}`"
        hot = c.get("hot_dims")
        if hot and hot != c.get("dims"):
            line += " (scaled down from the hot shape " + ",".join(f"{k}={v}" for k, v in hot.items()) + ")"
        cases.append(line)
    heuristic = getattr(ctx, "heuristic", None)
    return MEASURED.format(
        device=where,
        cases="\n".join(cases) or "  - not stated",
        heuristic=", ".join(f"{k}={v}" for k, v in heuristic.items()) if heuristic else "unknown",
    )


def render_helpers(ctx: Any) -> str:
    helpers = getattr(ctx, "helpers", None) or {}
    if not helpers:
        return ""
    return HELPERS.format(
        modules="".join(HELPER.format(name=name, source=src.rstrip()) for name, src in sorted(helpers.items()))
    )


def render_task(ctx: Any, *, proposed: list[str], history_limit: int) -> str:
    """The user message for one proposal: ``ctx`` is a ProposalContext; ``proposed`` the
    ideas already proposed in this round. No absolute local path goes out (:func:`public_paths`)."""
    return public_paths(_render_task(ctx, proposed=proposed, history_limit=history_limit))


def _render_task(ctx: Any, *, proposed: list[str], history_limit: int) -> str:
    return TASK.format(
        measured=render_measured(ctx),
        helpers=render_helpers(ctx),
        function=ctx.function,
        kernel=ctx.kernel,
        hypothesis=json.dumps(ctx.hypothesis.to_json(), indent=2, sort_keys=True, default=str),
        spec_text=ctx.spec_text.rstrip(),
        module=module_of(ctx.spec, ctx.kernel),
        kernel_source=ctx.kernel_source.rstrip(),
        tunables=json.dumps(ctx.tunables, sort_keys=True),
        history=render_history(ctx.history, history_limit),
        best=render_best(ctx.history),
        round_note=render_round(proposed),
        signature=expected_signature(ctx),
    )


def expected_signature(ctx: Any) -> str:
    sig = signature_of(ctx.kernel_source, ctx.function)
    if sig is not None:
        return sig
    names = [inp.name for inp in getattr(ctx.spec, "inputs", ()) if hasattr(inp, "name")]
    return f"({', '.join(names)})"


def follow_up(reason: str, detail: str, ctx: Any) -> str:
    """The corrective message after a malformed answer."""
    problem = CORRECTIONS.get(reason, reason).format(function=ctx.function, detail=detail)
    return FOLLOW_UP.format(problem=problem, function=ctx.function, signature=expected_signature(ctx))
