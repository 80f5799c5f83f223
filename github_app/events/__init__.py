"""Webhook routing: one router per event family, handlers registered by event and action.

Each module here handles one family of GitHub events with its own :class:`Router`
(:mod:`~github_app.events.router` holds the router and the :class:`Event` type,
:mod:`~github_app.events.payload` the readers that never raise); :func:`default_router`
combines them. To handle a new event, write a module like :mod:`.push` and add it to
:data:`HANDLER_MODULES` (and the event to ``app.yml``'s ``default_events``).
"""

from __future__ import annotations

from github_app.events import checks, comments, installation, issues, pull_request, push
from github_app.events.router import Event, Handler, Router

__all__ = ["HANDLER_MODULES", "Event", "Handler", "Router", "default_router"]

HANDLER_MODULES = (installation, push, pull_request, checks, comments, issues)


def default_router() -> Router:
    router = Router()
    for module in HANDLER_MODULES:
        router.include(module.router)
    return router
