"""Per-repository policy: ``.github/aina.yml`` on the default branch, with defaults.

The model, its validation and its documentation are the merge gate's
(:mod:`pytest_aina.gate.policy`): the App and the gate read one file and must agree on
every key, ``gate:`` included. Here only the reading through GitHub's API.
"""

from __future__ import annotations

from pytest_aina.gate.policy import POLICY_PATH, Policy, PolicyError, parse_policy

__all__ = ["POLICY_PATH", "Policy", "PolicyError", "load_policy", "parse_policy"]


def load_policy(repo, ref: str) -> Policy:
    """Read the policy from a github3 repository at ``ref``."""
    from github3.exceptions import NotFoundError

    try:
        contents = repo.file_contents(POLICY_PATH, ref=ref)
    except NotFoundError:
        return Policy()
    text = contents.decoded.decode("utf-8", "replace")
    return parse_policy(text, source=f"{POLICY_PATH}@{ref[:12]}")
