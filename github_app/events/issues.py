"""issues edited: a maintainer ticked a box on the dashboard issue."""

from __future__ import annotations

from github_app import dashboard_markdown
from github_app.events.payload import as_id, dig, text
from github_app.events.router import Event, Router
from github_app.store import JobSpec

router = Router()


@router.register("issues", "edited")
def edited(event: Event, store) -> list[JobSpec]:
    repo, inst = event.repository, event.installation_id
    number = as_id(dig(event.payload, "issue", "number"))
    sender = text(dig(event.payload, "sender", "login"), 100)
    if None in (repo, inst, number, sender):
        return []
    if dig(event.payload, "sender", "type") == "Bot":
        return []  # our own re-rendering of the dashboard
    labels = dig(event.payload, "issue", "labels")
    labelled = isinstance(labels, list) and any(dig(x, "name") == dashboard_markdown.LABEL for x in labels)
    known = store.repository(repo)
    if not labelled and (known is None or known.get("dashboard_issue") != number):
        return []
    return [
        JobSpec(
            "dashboard_edit",
            {"repository": repo, "installation_id": inst, "number": number, "sender": sender},
            key=f"dashboard_edit:{repo}:{event.delivery}",
            repository=repo,
        )
    ]
