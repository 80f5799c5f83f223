"""Where the search's evaluations run: this machine's pool (the default) or a Ray cluster.

The search hands an executor one candidate at a time, ``submit(fn, candidate)``, and gets
a :class:`concurrent.futures.Future` of the :class:`Verdict` back; it keeps at most
``slots`` in flight and appends each verdict to its checkpoint itself, on the driver, when
the future completes. So an executor decides *where* an evaluation runs, never what is
recorded, and a verdict is recorded once however many times its evaluation was retried.

* :class:`LocalExecutor`: threads on this machine, each driving the sandbox's processes
  (what ``aina evolve`` always did; the default).
* :class:`RayExecutor`: each evaluation is a Ray task that asks for the resources one
  evaluation needs (a GPU on a GPU cluster, a CPU otherwise) and runs the same
  :func:`~pytest_aina.changer.evaluate.evaluate`, in the same sandbox, on the node the
  scheduler picks. The repository is shipped through Ray's object store as a tarball and
  unpacked into a node-local folder: no shared filesystem is assumed. A node or worker lost
  mid-evaluation costs a retry (Ray's ``max_retries``, then a resubmission from here), not
  the run. Ray is imported only when this executor is chosen.

Which one a search uses is a setting (``executor``, ``ray_address``, ``workers`` in
:class:`~pytest_aina.changer.settings.EvolutionSettings`, checked there);
:func:`open_executor` makes it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_aina.changer.evaluate import Setup, evaluate
from pytest_aina.changer.model import Candidate, Verdict
from pytest_aina.changer.settings import EvolutionSettings
from pytest_aina.changer.sidebyside import ROUNDS, side_by_side

#: Never shipped to a node: version control, pytest-aina's own scratch space (checkpoints,
#: candidates, caches), virtual environments and bytecode.
_NOT_SHIPPED = {
    ".git",
    ".aina",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}

#: A repository larger than this is almost certainly carrying data it should not ship.
MAX_TREE_BYTES = 256 << 20


class ExecutorError(RuntimeError):
    """The executor cannot be used as asked; the message says what to fix."""


class Executor:
    """Runs ``fn(candidate)`` somewhere and returns the future of its result."""

    name = "executor"
    slots = 1  # evaluations worth keeping in flight at once

    def submit(self, fn: Callable[[Candidate], Verdict], candidate: Candidate) -> Future:
        raise NotImplementedError

    def device(self) -> str:
        """Where the kernels will run: ``"cuda"`` or ``"cpu"`` (Triton's interpreter)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        """Wait for what is running, then release the executor's resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Threads on this machine: each evaluation is a thread driving its sandboxed processes."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.slots = max(1, int(workers))
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="aina-eval")

    def submit(self, fn, candidate):
        return self._pool.submit(fn, candidate)

    def device(self) -> str:
        from pytest_aina.checking.device import device

        return device()

    def describe(self) -> str:
        return f"local, {self.slots} at once"

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Evaluation:
    """``evaluate(candidate, setup)`` as a picklable callable: what the search hands an
    executor, so that a remote one can rebase the setup's paths onto the node's copy of the
    repository (a lambda would carry the driver's paths, meaningless on another machine)."""

    setup: Setup

    def __call__(self, candidate: Candidate) -> Verdict:
        return evaluate(candidate, self.setup)

    def relocated(self, root: Path, workdir: Path) -> Evaluation:
        """The same evaluation against the repository unpacked at ``root``, writing its
        candidate files under ``workdir``."""
        s = self.setup
        spec_path = root / _spec_name(s)
        return replace(self, setup=replace(s, repo=root, spec_path=spec_path, workdir=workdir))


@dataclass
class SideBySide(Evaluation):
    """:func:`~pytest_aina.changer.sidebyside.side_by_side` as one task for an executor: its
    argument is the sides, the baseline first, and every side is timed where the task runs
    (on a cluster, one node)."""

    rounds: int = ROUNDS

    def __call__(self, sides: tuple[Candidate, ...]) -> dict:  # type: ignore[override]
        baseline, *challengers = sides
        return side_by_side(baseline, challengers, self.setup, rounds=self.rounds)


def _spec_name(s: Setup) -> str:
    """The spec's path inside the shipped tree (a spec outside the repository travels beside it)."""
    try:
        return str(Path(s.spec_path).resolve().relative_to(Path(s.repo).resolve()))
    except ValueError:
        return f".aina-spec/{Path(s.spec_path).name}"


def open_executor(settings: EvolutionSettings) -> Executor:
    """The executor ``settings`` name, ``settings.workers`` evaluations at once (on Ray, when
    unset: one per GPU of the cluster, or per CPU when it has none). Close it (or use it as a
    context manager) when the search is done. Raises :class:`ExecutorError` when the Ray
    cluster cannot be reached."""
    if settings.executor == "ray":
        return RayExecutor(settings.ray_address, slots=settings.workers)
    return LocalExecutor(settings.workers)


# -- shipping the repository -----------------------------------------------------------------


def _tree_files(repo: Path) -> list[str]:
    """The repository's files, relative: git's view (tracked and untracked, not ignored)
    when it is a work tree of its own, else every file outside the folders never shipped."""
    if (repo / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=repo,
                capture_output=True,
                check=True,
                timeout=60,
            ).stdout
            names = [n for n in out.decode().split("\0") if n]
            return sorted(n for n in names if not set(Path(n).parts) & _NOT_SHIPPED and (repo / n).is_file())
        except (OSError, subprocess.SubprocessError):
            pass
    found = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = sorted(d for d in dirnames if d not in _NOT_SHIPPED)
        rel = Path(dirpath).relative_to(repo)
        found += [str(rel / f) for f in sorted(filenames) if os.path.isfile(os.path.join(dirpath, f))]
    return found


def pack_tree(setup: Setup) -> tuple[bytes, str]:
    """The repository as a gzipped tarball (and its sha256): what a node unpacks. Modes are
    normalised to world-readable, since the sandbox runs candidates as a uid of its own."""
    repo = Path(setup.repo).resolve()
    members = [(name, repo / name) for name in _tree_files(repo)]
    if _spec_name(setup).startswith(".aina-spec/"):
        members.append((_spec_name(setup), Path(setup.spec_path).resolve()))
    size = sum(p.stat().st_size for _, p in members)
    if size > MAX_TREE_BYTES:
        raise ExecutorError(
            f"{repo}: {size >> 20} MiB to ship to every node (limit {MAX_TREE_BYTES >> 20} MiB); "
            "is a data folder missing from .gitignore?"
        )
    buf = io.BytesIO()
    # gzip's header carries a timestamp unless told otherwise: mtime=0 keeps the digest to the content
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, path in members:
            st = path.stat()  # a link is shipped as the file it points to
            info = tarfile.TarInfo(name)
            info.size = st.st_size  # mtime 0, owner root: the digest depends on the content only
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def node_checkout(digest: str, fetch: Callable[[], bytes], base: Path | str | None = None) -> Path:
    """The shipped repository unpacked on this node under ``base`` (``AINA_RAY_NODE_DIR`` in
    the node's environment, else its temp folder), once per digest: concurrent tasks unpack
    into their own folder and the first rename wins."""
    base = Path(base or tempfile.gettempdir()) / "aina-ray"
    root = base / digest
    if root.is_dir():
        return root
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # the sandbox's uid must traverse it
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=base))
    try:
        with tarfile.open(fileobj=io.BytesIO(fetch()), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")
        for dirpath, _, _ in os.walk(staging):
            os.chmod(dirpath, 0o755)
        try:
            os.rename(staging, root)
        except OSError:  # another task on this node won the race: use its copy
            if not root.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


# -- the task, on the node -------------------------------------------------------------------


def run_on_node(fn, candidate: Candidate, tree: list | None, digest: str | None, version: str):
    """Body of the Ray task: the driver's evaluation, against this node's copy of the tree.

    ``tree`` is a one-element list holding the tarball's object reference, so that Ray
    hands the reference over instead of the bytes, and a node that already has the tree
    unpacked never fetches it again."""
    import ray

    import pytest_aina

    if pytest_aina.__version__ != version:
        raise ExecutorError(
            f"node {socket.gethostname()} has pytest-aina {pytest_aina.__version__}, the driver "
            f"{version}: install the same version on every node"
        )
    ctx = ray.get_runtime_context()
    where = {
        "executor": "ray",
        "node_id": ctx.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    gpus = ctx.get_accelerator_ids().get("GPU") or []
    if gpus:
        where["gpus"] = list(gpus)
    if isinstance(fn, Evaluation) and tree:
        root = node_checkout(digest, lambda: ray.get(tree[0]), base=os.environ.get("AINA_RAY_NODE_DIR"))
        work = root / ".aina" / "eval" / f"ray-{uuid.uuid4().hex[:12]}"
        work.mkdir(parents=True)
        for p in (root / ".aina", root / ".aina" / "eval", work):
            os.chmod(p, 0o755)  # harness and candidate files are read by the sandbox's uid
        try:
            result = fn.relocated(root, work)(candidate)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        result = fn(candidate)
    if isinstance(result, Verdict):
        result.ran_on = where
    elif isinstance(result, dict):  # a side-by-side timing: the one node every side ran on
        result["ran_on"] = where
    return result


# -- the driver's side -----------------------------------------------------------------------

_connection_lock = threading.Lock()
_connection = {"address": None, "users": 0, "ours": False}


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds on a head that is not listening: ``ray.init`` would retry for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", a ray:// client address: Ray's own checks apply
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray cluster's head at {address}: {exc}") from None


def _connect(address: str) -> None:
    """One Ray connection per process, shared by the executors open in it (the App runs
    several evolution jobs at once); the last to close disconnects if we connected."""
    import ray

    with _connection_lock:
        if _connection["users"] and _connection["address"] != address:
            raise ExecutorError(f"already connected to the Ray cluster at {_connection['address']}, not {address}")
        if not _connection["users"]:
            if ray.is_initialized():
                _connection["ours"] = False
            else:
                _reachable(address)
                try:
                    # worker output stays on the nodes (their logs): on the driver it would
                    # tear through the progress bar
                    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
                except (ConnectionError, ValueError, RuntimeError) as exc:
                    raise ExecutorError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
                _connection["ours"] = True
            _connection["address"] = address
        _connection["users"] += 1


def _disconnect() -> None:
    import ray

    with _connection_lock:
        _connection["users"] -= 1
        if _connection["users"] == 0:
            if _connection["ours"]:
                ray.shutdown()
            _connection.update(address=None, ours=False)


def retryable(exc: BaseException) -> bool:
    """A failure of the machine, not of the evaluation: the node, its raylet or the worker
    died, or the result was lost with them. Worth running the evaluation again elsewhere."""
    from ray import exceptions as rx

    return isinstance(
        exc, (rx.NodeDiedError, rx.WorkerCrashedError, rx.LocalRayletDiedError, rx.ObjectLostError, rx.RpcError)
    )


class RayExecutor(Executor):
    """Each evaluation as a Ray task with the resources it needs, on the node Ray picks."""

    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        slots: int | None = None,
        max_retries: int = 3,
        resubmits: int = 2,
        device: str | None = None,
    ):
        import ray  # the settings checked that it is installed (executor "ray")

        import pytest_aina

        self._trees: dict[str, tuple[list, str]] = {}
        self._inflight: dict = {}
        self._lock = threading.Lock()
        _connect(address)
        self._open = True
        self.address = address
        self.version = pytest_aina.__version__
        self.max_retries = max_retries
        self.resubmits = resubmits
        try:
            resources = ray.cluster_resources()
            self.nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        except BaseException:
            self.close()
            raise
        self._device = device or ("cuda" if resources.get("GPU", 0) >= 1 else "cpu")
        per_eval = {"num_cpus": 1, "num_gpus": 1 if self._device != "cpu" else 0}
        capacity = int(resources.get("GPU" if per_eval["num_gpus"] else "CPU", 0))
        self.slots = max(1, slots or capacity)
        # max_retries: Ray runs a task again when its worker or node dies (system failures
        # only; an exception from the evaluation is a bug, not retried)
        self._task = ray.remote(run_on_node).options(max_retries=max_retries, **per_eval)
        self.resources = per_eval

    def device(self) -> str:
        return self._device

    def describe(self) -> str:
        need = "1 GPU" if self.resources["num_gpus"] else "1 CPU"
        return (
            f"ray at {self.address}: {self.nodes} node(s), {self.slots} at once, {need} per evaluation ({self._device})"
        )

    def _tree(self, fn) -> tuple[list | None, str | None]:
        if not isinstance(fn, Evaluation):
            return None, None
        import ray

        key = str(Path(fn.setup.repo).resolve()) + "\0" + _spec_name(fn.setup)
        with self._lock:
            if key not in self._trees:
                data, digest = pack_tree(fn.setup)
                self._trees[key] = ([ray.put(data)], digest)
            return self._trees[key]

    def submit(self, fn, candidate) -> Future:
        if not self._open:
            raise ExecutorError("the Ray executor is closed")
        out: Future = Future()
        out.set_running_or_notify_cancel()
        tree, digest = self._tree(fn)
        self._launch(fn, candidate, tree, digest, out, 0)
        return out

    def _launch(self, fn, candidate, tree, digest, out: Future, resubmitted: int) -> None:
        ref = self._task.remote(fn, candidate, tree, digest, self.version)
        with self._lock:
            self._inflight[ref] = out
        ref.future().add_done_callback(lambda f: self._settle(f, ref, fn, candidate, tree, digest, out, resubmitted))

    def _settle(self, f, ref, fn, candidate, tree, digest, out: Future, resubmitted: int) -> None:
        with self._lock:
            self._inflight.pop(ref, None)
        exc = f.exception()
        if exc is None:
            result = f.result()
            if isinstance(result, Verdict) and resubmitted:
                result.ran_on["resubmitted"] = resubmitted
            out.set_result(result)
        elif self._open and retryable(exc) and resubmitted < self.resubmits:
            try:
                self._launch(fn, candidate, tree, digest, out, resubmitted + 1)
            except Exception as again:  # noqa: BLE001 - the run learns of it through the future
                out.set_exception(again)
        else:
            out.set_exception(_cause(exc))

    def close(self) -> None:
        if not self._open:
            return
        import ray

        self._open = False
        with self._lock:
            left = list(self._inflight)
        for ref in left:  # an interrupted search: nothing will read these
            ray.cancel(ref, force=True)
        _disconnect()


def _cause(exc: BaseException) -> BaseException:
    """The evaluation's own exception rather than Ray's wrapper, when there is one."""
    from ray import exceptions as rx

    if isinstance(exc, rx.RayTaskError) and isinstance(exc.cause, BaseException):
        return exc.cause
    return exc
