"""push: a push to the default branch is a new baseline."""

from __future__ import annotations

from github_app.events.payload import commit_sha, dig
from github_app.events.router import Event, Router
from github_app.store import JobSpec

router = Router()


@router.register("push")
def push(event: Event, store) -> list[JobSpec]:
    repo, inst = event.repository, event.installation_id
    branch = dig(event.payload, "repository", "default_branch")
    after = dig(event.payload, "after")
    if repo is None or inst is None or not isinstance(branch, str):
        return []
    if dig(event.payload, "ref") != f"refs/heads/{branch}":
        return []
    if commit_sha(after) is None or set(after) == {"0"}:
        return []  # a deleted branch, or not a commit we can use
    return [
        JobSpec(
            "baseline",
            {"repository": repo, "installation_id": inst, "sha": after, "default_branch": branch},
            key=f"baseline:{repo}:{after}",
            repository=repo,
        )
    ]
