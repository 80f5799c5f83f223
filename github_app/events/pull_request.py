"""pull_request: the outcome of a bot PR (merged, or closed by a person)."""

from __future__ import annotations

from github_app.events.payload import as_id, dig, text
from github_app.events.router import Event, Router
from github_app.store import JobSpec
from pytest_aina.changer.change.model import is_bot_branch

router = Router()


@router.register("pull_request", "closed")
def closed(event: Event, store) -> list[JobSpec]:
    repo, inst = event.repository, event.installation_id
    number = as_id(dig(event.payload, "pull_request", "number"))
    if repo is None or inst is None or number is None:
        return []
    head = dig(event.payload, "pull_request", "head", "ref")
    ours = is_bot_branch(head) or store.pull(repo, number) is not None
    if not ours:
        return []
    merged = dig(event.payload, "pull_request", "merged") is True
    by = text(
        dig(event.payload, "pull_request", "merged_by", "login") if merged else dig(event.payload, "sender", "login"),
        100,
    )
    return [
        JobSpec(
            "pull_closed",
            {"repository": repo, "installation_id": inst, "number": number, "merged": merged, "by": by},
            key=f"pull_closed:{repo}:{number}",
            repository=repo,
        )
    ]
