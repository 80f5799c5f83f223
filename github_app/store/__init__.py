"""The App's state and job queue, behind the :class:`Store` seam."""

from __future__ import annotations

from importlib import import_module

from github_app.store.base import (
    DEFERRED, DONE, FAILED, PENDING_STATES, QUEUED, RUNNING, Job, JobSpec, Store,
    StoreUnavailable,
)
from github_app.store.sqlite import SQLiteStore, window_digest

__all__ = [
    "DEFERRED", "DONE", "FAILED", "PENDING_STATES", "QUEUED", "RUNNING", "Job", "JobSpec",
    "SQLiteStore", "Store", "StoreUnavailable", "open_store", "window_digest",
]


def open_store(database: str, *, max_attempts: int = 8) -> Store:
    """The store named by the ``DATABASE`` setting.

    A file path (or ``sqlite:///PATH``) opens SQLite. ``python:MODULE:CALLABLE`` calls a
    factory with the setting and ``max_attempts``: that is where a shared database (for
    several App workers) plugs in without changing the App.
    """
    if database.startswith("python:"):
        target = database[len("python:"):]
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"DATABASE {database!r}: expected python:MODULE:CALLABLE")
        factory = getattr(import_module(module), name)
        store = factory(database, max_attempts=max_attempts)
        if not isinstance(store, Store):
            raise TypeError(f"DATABASE {database!r}: {target} returned "
                            f"{type(store).__name__}, not a github_app.store.Store")
        return store
    if database.startswith("sqlite:///"):
        database = database[len("sqlite:///"):]
    elif "://" in database:
        raise ValueError(f"DATABASE {database!r}: only SQLite paths (or python:MODULE:CALLABLE "
                         "for another Store) are supported")
    return SQLiteStore(database, max_attempts=max_attempts)
