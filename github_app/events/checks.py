"""check_suite and check_run re-requested: run the App's provenance check again; the
gate's check run completed on a bot PR's head: look at merging it (:mod:`github_app.jobs.merging`)."""

from __future__ import annotations

from github_app.events.payload import commit_sha, dig
from github_app.events.router import Event, Router
from github_app.github.merges import GATE_CHECKS
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


@router.register("check_run", "completed")
def gate_completed(event: Event, store) -> list[JobSpec]:
    """The gate reported on a head: if it is a bot PR's head, decide about merging it."""
    repo, inst = event.repository, event.installation_id
    head = commit_sha(dig(event.payload, "check_run", "head_sha"))
    if repo is None or inst is None or head is None:
        return []
    if dig(event.payload, "check_run", "name") not in GATE_CHECKS:
        return []
    link = store.pull_by_head(repo, head)
    if link is None or link.get("state") != "open":
        return []
    number = link["number"]
    # as github_app.jobs.merging.merge_job builds it (not imported: the webhook path stays
    # light, and that module reads the gate's policy model)
    return [
        JobSpec(
            "merge",
            {"repository": repo, "installation_id": inst, "number": number, "head_sha": head, "command": None},
            key=f"merge:{repo}:{number}:{head}",
            repository=repo,
        )
    ]
