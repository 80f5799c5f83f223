"""The Changer: from a hypothesis to a proven change.

Proposers suggest :class:`~pytest_aina.changer.model.Candidate` kernels (a meta-parameter
search, an LLM through litellm, or a team's own through the ``aina.proposers`` entry points:
:mod:`.proposers`); each candidate is evaluated in a sandbox by the plugin's own checks
(:mod:`.evaluate`), the search keeps the best (:mod:`.search`), and the winner becomes a
:class:`~pytest_aina.changer.change.Change` with its provenance (:mod:`.change`), published
on the local forge (:mod:`.forge`) or by the GitHub App. :mod:`.pipeline` is the one loop
that runs these steps, for ``aina evolve`` and the App alike, with :mod:`.settings`.
"""
