"""The Changer: from a hypothesis to a proven change.

Proposers suggest :class:`Candidate` kernels (a meta-parameter search, an LLM through
litellm, or a team's own through the ``aina_proposers`` entry points); each candidate is
evaluated in a sandbox by the plugin's own checks (:mod:`.evaluate`), the search keeps the
best (:mod:`.search`), and the winner becomes a change with its provenance (:mod:`.change`).
"""
