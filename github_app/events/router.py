"""The event a webhook delivers, and the router that turns it into jobs.

A handler turns a payload into the jobs it causes, and does nothing else: no GitHub call,
no waiting, nothing that can take long. It may read the store (is this PR ours?). The
webhook view writes the delivery id and these jobs in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from github_app.events.payload import as_id, dig
from github_app.store import JobSpec, Store


@dataclass(frozen=True)
class Event:
    name: str
    action: str | None
    payload: dict[str, Any]
    delivery: str

    @property
    def installation_id(self) -> int | None:
        return as_id(dig(self.payload, "installation", "id"))

    @property
    def repository(self) -> str | None:
        name = dig(self.payload, "repository", "full_name")
        return name if isinstance(name, str) and name.count("/") == 1 else None


Handler = Callable[[Event, Store], "list[JobSpec]"]


class Router:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str | None], list[Handler]] = {}

    def register(self, event: str, *actions: str):
        """Decorator: handle ``event`` (for ``actions`` only, when given)."""

        def deco(fn: Handler) -> Handler:
            for action in actions or (None,):
                self._handlers.setdefault((event, action), []).append(fn)
            return fn

        return deco

    def include(self, other: Router) -> None:
        for key, fns in other._handlers.items():
            self._handlers.setdefault(key, []).extend(fns)

    def handles(self, event: str) -> bool:
        return any(e == event for e, _ in self._handlers)

    def dispatch(self, event: Event, store: Store) -> list[JobSpec] | None:
        """The jobs ``event`` causes; None when no handler is registered for it."""
        fns = self._handlers.get((event.name, None), []) + (
            self._handlers.get((event.name, event.action), []) if event.action else []
        )
        if not fns:
            return None
        jobs: list[JobSpec] = []
        for fn in fns:
            jobs.extend(fn(event, store) or [])
        return jobs
