"""Proposers: where candidate kernels come from.

* :mod:`.base` — the :class:`Proposer` protocol, the :class:`ProposalContext` it sees, and
  :func:`make` (built-in proposers and the ``aina.proposers`` entry points, by name);
* :mod:`.metaparams` — :class:`MetaParamProposer`, the search over a kernel's meta-parameters;
* :mod:`.llm` and :mod:`.prompts` — the LLM proposer (litellm, imported on first use).
"""

from pytest_aina.changer.proposers.base import BUILTIN, ProposalContext, Proposer, available, make
from pytest_aina.changer.proposers.metaparams import MetaParamProposer, search_space_size

__all__ = ["BUILTIN", "MetaParamProposer", "ProposalContext", "Proposer", "available", "make", "search_space_size"]
