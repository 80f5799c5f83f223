"""Every test of the store's contract runs on every backend.

``backend`` is parametrised over :data:`BACKENDS`; a test asks for ``store`` (a fresh, empty
store) or for ``backend`` itself when it needs a second handle on the same database (another
worker, another process) or to lock the database from outside. A new backend is one more
class here with ``open``, ``locked`` and ``database``, and the whole suite runs on it.

PostgreSQL is a real server (``tests/postgres_server.py``), one per session, its database
emptied before each test. Without its binaries the PostgreSQL cases skip, saying so, except on CI
(``CI`` or ``AINA_REQUIRE_POSTGRES`` set), where they fail.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

import postgres_server
import pytest

from github_app.store import SQLiteStore, Store


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, tmp_path: Path):
        self.path = tmp_path / "store.sqlite3"
        self.database = str(self.path)  # the DATABASE setting that opens it

    def open(self, **kw) -> Store:
        return SQLiteStore(self.path, **kw)

    @contextmanager
    def locked(self):
        """Another process's write transaction, held open."""
        con = sqlite3.connect(self.path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()

    def close(self) -> None:
        pass


class PostgresBackend:
    name = "postgres"

    def __init__(self, server: postgres_server.PostgresServer, database: str):
        import psycopg

        self.server = server
        self.database = database
        # Emptied rather than made anew: deleting a few rows takes milliseconds, copying a
        # database most of a second on a busy machine.
        with psycopg.connect(database, autocommit=True) as con, con.transaction():
            for (table,) in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_version'"
            ):
                con.execute(f"DELETE FROM {table}")

    def open(self, **kw) -> Store:
        from github_app.store.postgres import PostgresStore

        return PostgresStore(self.database, **kw)

    @contextmanager
    def locked(self):
        """Another session holding every table against writes (reads still pass)."""
        import psycopg

        with psycopg.connect(self.database, autocommit=True) as con:
            tables = [r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            with con.transaction():
                con.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
                yield

    def close(self) -> None:
        pass


BACKENDS = {"sqlite": SQLiteBackend, "postgres": PostgresBackend}


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server."""
    postgres_server.skip_unless_installed()
    with postgres_server.PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_database(postgres):
    """A database with the store's schema, emptied for each test; tests of the migrations
    themselves make empty databases of their own."""
    from github_app.store.postgres import PostgresStore

    dsn = postgres.create_database("store")
    PostgresStore(dsn).close()
    return dsn


@pytest.fixture(params=list(BACKENDS))
def backend(request, tmp_path):
    if request.param == "postgres":
        b = PostgresBackend(request.getfixturevalue("postgres"), request.getfixturevalue("postgres_database"))
    else:
        b = SQLiteBackend(tmp_path)
    yield b
    b.close()


@pytest.fixture
def store(backend):
    s = backend.open(max_attempts=3)
    yield s
    s.close()


@pytest.fixture
def another(backend):
    """Opens more handles on ``store``'s database (other workers); closes them after."""
    opened = []

    def open_(**kw):
        s = backend.open(**kw)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()
