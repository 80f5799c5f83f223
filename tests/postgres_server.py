"""A throw-away PostgreSQL server for tests: a fresh cluster in a temporary folder.

The store's tests run against a real server, not a mock: ``initdb`` a cluster, start
``postgres`` on a free loopback port (and a unix socket in the same folder), hand out one
fresh database per test, and remove everything at the end. Nothing is installed or
configured system-wide, so several sessions (and several engineers) can each have their own.

PostgreSQL refuses to run as root, and tests often do (containers, CI images). As root, the
server runs as an unprivileged user instead: ``postgres`` (created by the Debian/Ubuntu
package), else ``nobody``; its folder is made under ``/tmp`` and handed to that user, since
pytest's own temporary folders are private to root.

The binaries are found in ``$AINA_PG_BINDIR``, ``/usr/lib/postgresql/<newest>/bin``
(Debian, Ubuntu, GitHub's runners), or on ``PATH``. :func:`missing_reason` says why there
is no server to be had, for a test to skip with; CI must not skip (see ``.ci/run``).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "aina"


def bindir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are, or None."""
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates = []
    if os.environ.get("AINA_PG_BINDIR"):
        candidates.append(Path(os.environ["AINA_PG_BINDIR"]))

    def version(p: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in p.parent.name.split("."))
        except ValueError:
            return (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in wanted):
            return folder
    return None


def missing_reason() -> str | None:
    if bindir() is None:
        return (
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not installed: "
            "apt-get install postgresql, or set AINA_PG_BINDIR to their folder"
        )
    return None


def required() -> bool:
    """Whether a missing server is a failure rather than a skip: on CI it must run."""
    return bool(os.environ.get("AINA_REQUIRE_POSTGRES") or os.environ.get("CI"))


def skip_unless_installed() -> None:
    """In a test: skip, saying why, when the server's binaries are missing; fail on CI."""
    reason = missing_reason()
    if reason:
        import pytest

        if required():
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)", pytrace=False)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One running cluster; :meth:`create_database` gives each test its own database."""

    def __init__(self, bin_dir: Path | None = None, *, durable: bool = False):
        self.bin = bin_dir or bindir()
        # Tests never pull the power, so they skip fsync; a benchmark of the App as deployed
        # (benchmarks/bench_app.py) must not, or PostgreSQL's commits cost it nothing.
        self.durable = durable
        if self.bin is None:
            raise RuntimeError(missing_reason())
        self.user = self._run_as()
        self.root = Path(tempfile.mkdtemp(prefix="aina-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port: int | None = None
        self._names = itertools.count(1)

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError(
            "running as root, and neither a 'postgres' nor a 'nobody' user "
            "exists to run PostgreSQL as (it refuses to run as root)"
        )

    def _cmd(self, *args: str | os.PathLike, check: bool = True) -> subprocess.CompletedProcess:
        kw = {}
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C.UTF-8",
            "HOME": str(self.root),
            "TZ": "UTC",
        }
        proc = subprocess.run(
            [str(a) for a in args], cwd=self.root, env=env, capture_output=True, text=True, timeout=120, **kw
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}\n{self._log_tail()}"
            )
        return proc

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> PostgresServer:
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        # No fsync: a test never pulls the power, and a fresh database per test stays cheap.
        self._cmd(
            self.bin / "initdb",
            "--pgdata",
            self.data,
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        for attempt in range(5):
            self.port = _free_port()
            proc = self._launch()
            if proc.returncode == 0:
                return self
            if "could not bind" not in self._log_tail() or attempt == 4:
                raise RuntimeError(f"pg_ctl start failed:\n{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")
        return self

    def _launch(self) -> subprocess.CompletedProcess:
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.root} -c max_connections=200"
        )
        if not self.durable:
            opts += " -c fsync=off -c full_page_writes=off"
        return self._cmd(
            self.bin / "pg_ctl",
            "start",
            "--pgdata",
            self.data,
            "--wait",
            "--timeout",
            "60",
            "--log",
            self.log,
            "-o",
            opts,
            check=False,
        )

    def pause(self) -> None:
        """Stop the server (every connection is cut), keeping its data and port."""
        self._cmd(self.bin / "pg_ctl", "stop", "--pgdata", self.data, "--mode", "fast", "--wait")

    def resume(self) -> None:
        proc = self._launch()
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._cmd(self.bin / "pg_ctl", "stop", "--pgdata", self.data, "--mode", "fast", "--wait", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------
    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True, connect_timeout=10) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else []

    def create_database(self, prefix: str = "test", *, template: str | None = None) -> str:
        """A fresh database, empty or a copy of ``template`` (a DSN of this server's, with
        no one connected to it); its DSN."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template.rsplit("/", 1)[1]}"'
            # Copying the files is ten times faster than WAL-logging every page (the
            # default since 15), and a test server has nothing to replicate.
            if int(self.sql("SHOW server_version_num")[0][0]) >= 150000:
                sql += " STRATEGY FILE_COPY"
        self.sql(sql)
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
