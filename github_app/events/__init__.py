"""Webhook routing: one router per event family, handlers registered by event and action.

A handler turns a payload into the jobs it causes, and does nothing else: no GitHub call,
no waiting, nothing that can take long. It may read the store (is this PR ours?). The
webhook view writes the delivery id and these jobs in one transaction.

Payloads are untrusted shapes even when correctly signed (GitHub adds fields, old events
lack some), so handlers read them through :func:`dig`, which never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from github_app.store import JobSpec, Store

#: GitHub ids are positive and fit SQLite's signed 64-bit integers.
MAX_ID = 2**63 - 1


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


def dig(data: Any, *keys: str | int, default: Any = None) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return default
        elif not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def as_id(value: Any) -> int | None:
    """A GitHub id, or None for anything that is not one (bools are ints in Python)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def text(value: Any, limit: int = 1000) -> str | None:
    return value[:limit] if isinstance(value, str) else None


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
            self._handlers.get((event.name, event.action), []) if event.action else [])
        if not fns:
            return None
        jobs: list[JobSpec] = []
        for fn in fns:
            jobs.extend(fn(event, store) or [])
        return jobs


def default_router() -> Router:
    from github_app.events import checks, comments, installation, issues, pull_request, push

    router = Router()
    for module in (installation, push, pull_request, checks, comments, issues):
        router.include(module.router)
    return router
