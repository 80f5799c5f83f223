"""The App's state and job queue, behind the :class:`Store` seam."""

from __future__ import annotations

from importlib import import_module

from github_app.store.base import (
    DEADLINE_SECONDS,
    DEFERRED,
    DONE,
    FAILED,
    PENDING_STATES,
    QUEUED,
    RUNNING,
    Job,
    JobSpec,
    Store,
    StoreConflict,
    StoreUnavailable,
    window_digest,
)
from github_app.store.sqlite import SQLiteStore

__all__ = [
    "DEADLINE_SECONDS",
    "DEFERRED",
    "DONE",
    "FAILED",
    "PENDING_STATES",
    "QUEUED",
    "RUNNING",
    "Job",
    "JobSpec",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "StoreConflict",
    "StoreUnavailable",
    "open_store",
    "window_digest",
]


def __getattr__(name: str):
    # PostgresStore imports psycopg: only a deployment that uses it pays for it.
    if name == "PostgresStore":
        from github_app.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(database: str, *, max_attempts: int = 8) -> Store:
    """The store named by the ``DATABASE`` setting.

    A file path (or ``sqlite:///PATH``) opens SQLite, the embedded store of one machine.
    ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME`` (any libpq URL) opens PostgreSQL, shared
    by App processes on several machines; its schema is migrated on the way.
    ``python:MODULE:CALLABLE`` calls a factory with the setting and ``max_attempts``: that is
    where another shared database plugs in without changing the App.
    """
    if database.startswith("python:"):
        target = database[len("python:") :]
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"DATABASE {database!r}: expected python:MODULE:CALLABLE")
        factory = getattr(import_module(module), name)
        store = factory(database, max_attempts=max_attempts)
        if not isinstance(store, Store):
            raise TypeError(
                f"DATABASE {database!r}: {target} returned {type(store).__name__}, not a github_app.store.Store"
            )
        return store
    if database.startswith("postgresql://"):
        from github_app.store.postgres import PostgresStore

        return PostgresStore(database, max_attempts=max_attempts)
    if database.startswith("sqlite:///"):
        database = database[len("sqlite:///") :]
    elif "://" in database:
        scheme = database.split("://", 1)[0]
        hint = " (write postgresql:// for PostgreSQL)" if scheme == "postgres" else ""
        raise ValueError(
            f"DATABASE {scheme}://...: only SQLite paths, postgresql:// URLs (or "
            f"python:MODULE:CALLABLE for another Store) are supported{hint}"
        )
    return SQLiteStore(database, max_attempts=max_attempts)
