"""check_suite and check_run re-requested: run the App's provenance check again."""

from __future__ import annotations

from github_app.events.payload import commit_sha, dig
from github_app.events.router import Event, Router
from github_app.store import JobSpec

router = Router()


def _job(event: Event, head_sha) -> list[JobSpec]:
    repo, inst = event.repository, event.installation_id
    if repo is None or inst is None or commit_sha(head_sha) is None:
        return []
    return [
        JobSpec(
            "provenance",
            {"repository": repo, "installation_id": inst, "head_sha": head_sha},
            key=f"provenance:{repo}:{head_sha}",
            repository=repo,
        )
    ]


@router.register("check_suite", "rerequested")
def suite(event: Event, store) -> list[JobSpec]:
    return _job(event, dig(event.payload, "check_suite", "head_sha"))


@router.register("check_run", "rerequested")
def run(event: Event, store) -> list[JobSpec]:
    return _job(event, dig(event.payload, "check_run", "head_sha"))
