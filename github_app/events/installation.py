"""installation and installation_repositories: which repositories the App serves."""

from __future__ import annotations

from github_app.events.payload import dig, text
from github_app.events.router import Event, Router
from github_app.store import JobSpec

router = Router()


def _repos(items) -> list[str]:
    if not isinstance(items, list):
        return []
    names = (dig(r, "full_name") for r in items)
    return sorted({n for n in names if isinstance(n, str) and n.count("/") == 1})


@router.register("installation", "created", "deleted", "suspend", "unsuspend", "new_permissions_accepted")
def installation(event: Event, store) -> list[JobSpec]:
    inst = event.installation_id
    if inst is None:
        return []
    account = text(dig(event.payload, "installation", "account", "login"), 200) or ""
    payload = {
        "action": event.action,
        "installation_id": inst,
        "account": account,
        "added": _repos(dig(event.payload, "repositories")),
    }
    return [JobSpec("installation", payload)]


@router.register("installation_repositories", "added", "removed")
def installation_repositories(event: Event, store) -> list[JobSpec]:
    inst = event.installation_id
    if inst is None:
        return []
    account = text(dig(event.payload, "installation", "account", "login"), 200) or ""
    payload = {
        "action": event.action,
        "installation_id": inst,
        "account": account,
        "added": _repos(dig(event.payload, "repositories_added")),
        "removed": _repos(dig(event.payload, "repositories_removed")),
    }
    return [JobSpec("installation", payload)]
