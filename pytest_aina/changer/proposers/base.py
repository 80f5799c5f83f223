"""What every proposer shares: the :class:`Proposer` protocol, the :class:`ProposalContext` it
looks at, and :func:`make`, which finds a proposer by name.

A proposer is any object with a ``name`` and ``propose(ctx, n) -> list[Candidate]``. The
built-in ones are ``metaparams`` (:mod:`.metaparams`: a seeded search over the kernel's
``TUNABLES``, no LLM) and ``llm`` (:mod:`.llm`: litellm, any provider or a local
OpenAI-compatible server). A team adds its own through the ``aina.proposers`` entry-point
group::

    # pyproject.toml of your package
    [project.entry-points."aina.proposers"]
    mine = "my_package.proposer:make"      # make(config: dict) -> Proposer

and selects it with ``aina evolve --proposer mine``. The built-in ones are found the same
way, by a ``module:factory`` name, so that choosing ``metaparams`` never imports litellm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from pytest_aina.changer.model import Candidate, Verdict
from pytest_aina.imports import resolve
from pytest_aina.reasoner.hypothesis import Hypothesis

ENTRY_POINTS = "aina.proposers"

#: The built-in proposers: name -> ``module:factory`` (``factory(config: dict) -> Proposer``).
BUILTIN = {
    "metaparams": "pytest_aina.changer.proposers.metaparams:make",
    "llm": "pytest_aina.changer.proposers.llm:make",
}


@dataclass
class ProposalContext:
    """Everything a proposer may look at. Nothing secret: it may end up in a prompt."""

    kernel: str
    spec: Any  # pytest_aina.spec.model.Spec
    spec_text: str  # the YAML, as written
    kernel_source: str  # the kernel module's source
    function: str  # the function a candidate must define (e.g. "softmax")
    hypothesis: Hypothesis  # kind, kernel, evidence, expected_gain, domain
    tunables: dict[str, list]  # meta-parameter name -> allowed values
    history: list[tuple[Candidate, Verdict]] = field(default_factory=list)
    seed: int = 0
    token_budget: int | None = None  # tokens left for LLM proposers
    heuristic: dict | None = None  # the launcher's own choice at the benchmark shape, if known
    device: str = ""  # where candidates are timed: "cpu" (Triton's interpreter) or "cuda"
    bench_cases: list[dict] = field(default_factory=list)  # the timed cases: label, dims, dtype, hot_dims
    helpers: dict[str, str] = field(default_factory=dict)  # kernels.* module the kernel imports -> its source


class Proposer(Protocol):
    """Optional, found with ``getattr``: ``preflight()``, called before the search evaluates
    anything, raises ``ValueError`` for a configuration no search can use (the LLM proposer
    checks its key and that its server answers); ``exhausted``, once True, means the search
    does not ask this proposer again (it gave up, or kept failing)."""

    name: str

    def propose(self, ctx: ProposalContext, n: int) -> list[Candidate]:
        """Up to ``n`` new candidates; fewer (or none) when the proposer has nothing new."""


def available() -> list[str]:
    """The names :func:`make` knows: the built-in proposers and the entry points."""
    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=ENTRY_POINTS)})


def make(name: str, config: dict | None = None) -> Proposer:
    """The proposer called ``name``: built in, or from the ``aina.proposers`` entry points."""
    config = config or {}
    if name in BUILTIN:
        return resolve(BUILTIN[name])(config)
    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name == name:
            return ep.load()(config)
    raise ValueError(f"unknown proposer {name!r}; available: {', '.join(available())}")
