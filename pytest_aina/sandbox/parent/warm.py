"""The parent side of the warm template (:mod:`pytest_aina.sandbox.child.template`).

    tpl = Template(["torch", "triton", "pytest"], env={"TRITON_INTERPRET": "1"})
    sandbox.run(..., env={"TRITON_INTERPRET": "1"}, template=tpl)   # forked from tpl
    tpl.close()

A :class:`Template` is one process that has imported the heavy modules once; each
sandboxed child given ``template=`` is forked from it instead of starting a new
interpreter, and is confined after the fork exactly as a cold child (same folder,
environment, namespaces, limits, uid, Landlock, audit hook, watchdog and cleanup). The
template is started on first use, shared by the threads of one process (requests are
serialised) and never runs candidate code. A child starts cold, with the reason in its
``protections["start"]``, when the template cannot give a sound one: threads or CUDA in
the template, a different environment, or a
template that failed to start or died.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence

from pytest_aina.sandbox.parent import childenv
from pytest_aina.sandbox.parent.launch import _PACKAGE_ROOT

_BOOT = (
    "import sys; sys.path.insert(0, {root!r}); from pytest_aina.sandbox.child.template import bootstrap; bootstrap()"
)
_MAX_MESSAGE = 1 << 20


class TemplateGone(RuntimeError):
    """The template process ended or stopped answering."""


class Forked:
    """A child forked by the template, standing where a cold start's ``Popen`` stands:
    ``pid`` (a new session: its process group is the sandbox's), ``returncode`` once known,
    and ``baseline_rss``, the template's resident memory at the fork (shared, not the
    candidate's)."""

    def __init__(self, template: Template, pid: int, baseline_rss: int):
        self.template, self.pid, self.baseline_rss = template, pid, baseline_rss
        self.returncode: int | None = None

    def poll_status(self) -> tuple[int, float] | None:
        """(wait status, CPU seconds) once the child has ended, else None. When the
        template is gone the child is too (it dies with the template): a SIGKILL status."""
        try:
            got = self.template.request({"op": "poll", "pid": self.pid})
        except TemplateGone:  # the child had PDEATHSIG=SIGKILL from the template
            return 9, 0.0
        if got.get("op") != "ended":
            return None
        return int(got["status"]), float(got.get("cpu_s", 0.0))


class Template:
    """One warm template process (see the module docstring).

    ``preload``: module names the template imports (trusted code only: the template runs
    outside the sandbox); ``pythonpath``: folders put on its ``sys.path`` for them;
    ``env``: the extra environment (as for :func:`~pytest_aina.sandbox.run`) the modules
    are imported under; a child asking for another one starts cold.
    """

    def __init__(
        self,
        preload: Sequence[str],
        *,
        pythonpath: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 300.0,
    ):
        self.preload = list(preload)
        self.pythonpath = [os.path.realpath(p) for p in pythonpath]
        self.extra = dict(env or {})
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._popen: subprocess.Popen | None = None
        self._dir: str | None = None
        self.failed: str | None = None  # why the template could not start (then every child starts cold)
        self.ready: dict = {}
        self._prepared: set[str] = set()  # what prepare() has had the template do

    # -- life --------------------------------------------------------------------------------

    def _start(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="aina-template-")
        os.chmod(self._dir, 0o755)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = childenv.build(self._dir, pythonpath=[_PACKAGE_ROOT, *self.pythonpath], extra=self.extra)
        argv = [sys.executable, "-I", "-B", "-c", _BOOT.format(root=_PACKAGE_ROOT), str(theirs.fileno())]
        try:
            with open(os.path.join(self._dir, "stderr"), "wb") as err:
                self._popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    pass_fds=(theirs.fileno(),),
                    env=env,
                    cwd=self._dir,
                )
        finally:
            theirs.close()
        self._sock = ours
        # the template imports with -I (no PYTHONPATH): the folders come with the request
        paths = [_PACKAGE_ROOT, *self.pythonpath]
        ours.settimeout(self.start_timeout_s)
        ours.send(json.dumps({"preload": self.preload, "pythonpath": paths}).encode())
        try:
            data = ours.recv(_MAX_MESSAGE)
        except OSError as e:
            raise TemplateGone(f"the template did not report ready within {self.start_timeout_s:g} s: {e}") from None
        if not data:
            raise TemplateGone(f"the template ended while importing: {self._stderr_tail()}")
        ours.settimeout(30.0)
        self.ready = json.loads(data)

    def _stderr_tail(self) -> str:
        try:
            with open(os.path.join(self._dir or "", "stderr"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace").strip() or "(no output)"
        except OSError:
            return "(no output)"

    def _ensure(self) -> None:
        if self._sock is None and self.failed is None:
            try:
                self._start()
            except (OSError, TemplateGone, ValueError) as e:
                self.failed = f"the warm template could not start: {e}"
                self._teardown()

    def start(self) -> dict:
        """Start the template now (else the first child does): its ``ready`` report (import
        seconds, modules that failed to import, ``unsafe``: why a fork would be unsound)."""
        with self._lock:
            self._ensure()
        if self.failed:
            raise TemplateGone(self.failed)
        return dict(self.ready)

    def request(self, msg: dict, fds: Sequence[int] = ()) -> dict:
        """One request, one answer (thread-safe). Raises :class:`TemplateGone`."""
        with self._lock:
            self._ensure()
            if self._sock is None:
                raise TemplateGone(self.failed or "the template is closed")
            try:
                socket.send_fds(self._sock, [json.dumps(msg).encode()], list(fds))
                data = self._sock.recv(_MAX_MESSAGE)
            except OSError as e:
                data, err = b"", e
            else:
                err = None
            if not data:
                self.failed = f"the warm template ended ({err or 'closed its socket'}): {self._stderr_tail()}"
                self._teardown()
                raise TemplateGone(self.failed)
            return json.loads(data)

    def spawn(
        self, *, env: Mapping[str, str], cwd: str, fds: Sequence[int], namespaces: bool, user_namespace: bool = False
    ) -> Forked | str:
        """Fork a child that runs the sandbox's bootstrap with ``fds`` (report pipe, command
        pipe, stdout, stderr), in fresh namespaces when ``namespaces`` (inside a user
        namespace when ``user_namespace``: not root). Returns the :class:`Forked` child, or
        why it must start cold."""
        msg = {"op": "spawn", "env": dict(env), "cwd": cwd, "namespaces": namespaces, "user_namespace": user_namespace}
        try:
            got = self.request(msg, fds)
        except TemplateGone as e:
            return str(e)
        if got.get("op") != "spawned":
            return f"the template refused to fork: {got.get('reason')}"
        return Forked(self, int(got["pid"]), int(got.get("rss", 0)))

    def prepare(self, entry: str, args: Sequence = ()) -> str | None:
        """Have the template call ``entry`` (a trusted ``module:function`` of ours, never
        a candidate's) with JSON ``args`` once, before its next forks: work every child
        would repeat, done once. None when done (now or before), else why not (the
        children then do the work themselves)."""
        key = json.dumps([entry, list(args)])
        if key in self._prepared:
            return None
        try:
            got = self.request({"op": "prepare", "entry": entry, "args": list(args)})
        except TemplateGone as e:
            return str(e)
        if got.get("error"):
            return str(got["error"])
        self._prepared.add(key)
        return None

    def refuses(
        self,
        extra: Mapping[str, str] | None,
        *,
        user_namespace: bool,
        memory_bytes: int | None = None,
        namespaces: Sequence[str] = ("user", "pid", "mount", "net", "ipc"),
    ) -> str | None:
        """Why a child with this extra environment and memory limit cannot be forked from
        this template (None: it can). ``user_namespace``: the child's namespaces need one
        (not root), ``namespaces`` those the machine allows (the template forks into the
        full set, as a cold start's ``unshare``, or into none)."""
        if dict(extra or {}) != self.extra:
            return (
                f"the child's environment {sorted(dict(extra or {}).items())} differs from the one the "
                f"template imported under {sorted(self.extra.items())}"
            )
        missing = sorted({"pid", "mount", "net", "ipc"} - set(namespaces))
        if user_namespace and missing:
            return (
                f"a user namespace here allows no {', '.join(missing)} namespace, and the template forks "
                "into the full set only"
            )
        if memory_bytes is not None:
            # a child inherits the template's data segment, which its RLIMIT_DATA counts: with
            # less than twice that, the candidate would have little room left of its own
            try:
                data = int(self.start().get("data", 0))
            except TemplateGone as e:
                return str(e)
            if memory_bytes < 2 * data:
                return (
                    f"the memory limit ({memory_bytes >> 20} MiB) is less than twice the template's "
                    f"data segment ({data >> 20} MiB), which the child would inherit"
                )
        return None

    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.send(json.dumps({"op": "exit"}).encode())
                except OSError:
                    pass
            self._teardown()
            self.failed = self.failed or "the template is closed"

    def _teardown(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._popen is not None:
            try:
                self._popen.wait(5.0)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
            self._popen = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Template:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
