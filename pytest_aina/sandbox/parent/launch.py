"""The parent side of one sandboxed child: folder, environment, launch, watchdog, cleanup.

Layers, each used when the machine allows it and reported either way:

* namespaces via util-linux ``unshare``: PID (the child's init takes every process with it
  when it ends), network (no interface but a loopback that is down), mount (a private
  ``/proc`` and the read-only views of :func:`~pytest_aina.sandbox.child.confine.expose`), IPC;
* a fresh uid/gid per run (when we are root), owner of the sandbox folder only: it cannot
  write elsewhere, cannot read root's files or ``/proc/PID/environ``, and RLIMIT_NPROC
  counts exactly its processes;
* Landlock: writes only beneath the folder, reads only beneath the Python installation,
  the import paths and system folders, no TCP, signals only within the sandbox;
* rlimits (data segment, CPU, file size, core dumps, tasks, open files);
* the parent's watchdog: wall clock, total resident memory, process count;
* the audit hook in the child (:mod:`pytest_aina.sandbox.child.audit`), installed before the candidate is
  imported.
"""

from __future__ import annotations

import glob
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest_aina
from pytest_aina.sandbox import frames
from pytest_aina.sandbox.parent import childenv, procs
from pytest_aina.sandbox.parent.machine import Capabilities, probe
from pytest_aina.sandbox.redact import Redactor
from pytest_aina.sandbox.result import Exit, Isolation, Limits, signal_name

_PACKAGE_ROOT = str(Path(pytest_aina.__file__).resolve().parent.parent)
_BOOT = "import sys; sys.path.insert(0, {root!r}); from pytest_aina.sandbox.child.boot import bootstrap; bootstrap()"
_SYSTEM_READ = ["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt"]
_DEVICE_WRITE = ["/dev/null", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd"]
_UID_BASE, _UID_SPAN = 0x5A000000, 1 << 24
_POLL_S = 0.1
#: the child's start-up steps it stamps (child/boot.py's STAMPS)
_CHILD_STEPS = frozenset({"forked", "unshare", "namespaces", "boot", "config", "worker", "confined"})
_TAIL = 16 << 10


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up as asked (not the candidate's fault)."""


class Ended(Exception):
    """The child's main process is gone (exited, crashed or killed)."""


class _Tail(threading.Thread):
    """Drains a pipe (so a chatty child never blocks) keeping only the last bytes."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.buf, self.total = stream, bytearray(), 0

    def run(self):
        try:
            while chunk := self.stream.read1(1 << 16):
                self.total += len(chunk)
                self.buf += chunk
                if len(self.buf) > 2 * _TAIL:
                    del self.buf[:-_TAIL]
        except (OSError, ValueError):
            pass
        finally:
            self.stream.close()

    def text(self) -> str:
        s = bytes(self.buf[-_TAIL:]).decode(errors="replace")
        return (f"[... {self.total - _TAIL} earlier bytes dropped]\n" + s) if self.total > _TAIL else s


def staged_entry(entry: str) -> tuple[str, dict[str, Path]]:
    """For ``/path/file.py:fn``: the entry rewritten to a copy inside the sandbox folder
    (readable by the sandbox's uid, and the candidate's own to change), and the file to stage."""
    target, sep, attr = entry.rpartition(":")
    if not sep or not target or not attr:
        raise ValueError(f"entry {entry!r}: expected 'package.module:function' or 'path/to/file.py:function'")
    if not target.endswith(".py"):
        return entry, {}
    if not os.path.isfile(target):
        raise FileNotFoundError(f"entry {entry!r}: no such file {target!r}")
    name = f"candidate/{os.path.basename(target)}"
    return f"{{work}}/{name}:{attr}", {name: Path(target)}


def _pick_uid() -> int:
    taken = procs.uids_in_use()
    while True:
        uid = _UID_BASE + random.randrange(_UID_SPAN)
        if uid not in taken:
            return uid


def _readable_roots(extra: list[str]) -> list[str]:
    """Folders a Python child needs to read: the interpreter, its libraries, the import path."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    roots += [p for p in sys.path if p and os.path.isdir(p)]
    roots += [_PACKAGE_ROOT] + extra
    return list(dict.fromkeys(os.path.realpath(p) for p in roots if os.path.exists(p)))


class Child:
    """One sandboxed child process, from its folder to its cleanup."""

    def __init__(
        self,
        mode: str,
        config: dict,
        *,
        limits: Limits,
        isolation: Isolation,
        pythonpath: list[str] | None = None,
        read_paths: list[str] | None = None,
        files: Mapping[str, str | bytes | os.PathLike] | None = None,
        env: Mapping[str, str] | None = None,
        base_dir: str | None = None,
        keep: bool = False,
        template=None,
    ):
        self.marks: dict[str, float] = {"created": time.monotonic()}  # see phases()
        self.child_stamps: dict[str, float] = {}  # the child's own, from its confined frame
        self.limits, self.isolation, self.keep = limits, isolation, keep
        self.template = template  # a parent.warm.Template to fork from, or None: a new interpreter
        self.extra_env = dict(env or {})
        self.start_mode = "cold"
        self.baseline_rss = 0  # forked: the template's resident memory, shared rather than the candidate's
        self._private, self._private_at = 0, float("-inf")  # the last private-pages figure, and when
        self.caps: Capabilities = probe()
        self.redactor = Redactor()
        self.violations: list[dict] = []
        self.layers: dict = {}
        self.exit = Exit()
        self.exit_frame: dict | None = None
        self.peak_rss = 0
        self.cpu_s = 0.0
        self.kill_reason = ""
        self.popen: subprocess.Popen | None = None
        self.started = 0.0
        self.ended_at: float | None = None
        self._status: int | None = None
        self.leftover = 0
        self.leftover_cmds: list[str] = []
        self.cleanup = ""

        base = base_dir or tempfile.gettempdir()
        self.root = tempfile.mkdtemp(prefix="aina-sandbox-", dir=base)
        try:
            self._prepare(config, mode, pythonpath, read_paths, files, env)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.mark("folder")

    def mark(self, name: str) -> None:
        """Note that the run reached ``name`` now (the first time only): see :meth:`phases`."""
        self.marks.setdefault(name, time.monotonic())

    def phases(self) -> dict[str, float]:
        """Seconds spent in each phase of this run, in order, for finding where a sandbox's
        time goes (``bench_evaluate.py --phases``): each parent mark less the one before
        it, the child's own steps (``child.*``, on the same system-wide monotonic clock)
        in place of the span from the spawn to its ``confined`` frame."""
        out: dict[str, float] = {}
        child = sorted((t, f"child.{k}") for k, t in self.child_stamps.items())
        points = sorted([(t, k) for k, t in self.marks.items()] + child)
        for (t0, _), (t1, k) in zip(points, points[1:]):
            out[k] = round(t1 - t0, 6)
        return out

    def _prepare(self, config, mode, pythonpath, read_paths, files, env) -> None:
        isolation, limits = self.isolation, self.limits
        self.work = os.path.join(self.root, "work")
        os.mkdir(self.work, 0o700)
        for name, content in (files or {}).items():
            self.stage(name, content)

        self.uid = self.gid = None
        self.notes: list[str] = list(self.caps.notes)
        self.namespaces = isolation.namespaces and self.caps.unshare is not None
        in_userns = self.namespaces and "user" in self.caps.namespaces
        self.pythonpath = list(dict.fromkeys([_PACKAGE_ROOT] + [os.path.realpath(p) for p in pythonpath or []]))
        reads = _readable_roots(self.pythonpath + [os.path.realpath(p) for p in read_paths or []])
        mount_ns = self.namespaces and "mount" in self.caps.namespaces
        unreachable = [] if mount_ns else [p for p in reads if not self._traversable(p)]
        if isolation.drop_uid and self.caps.root and not in_userns and unreachable:
            # without a mount namespace we cannot expose them: another uid could not even
            # start Python, so the child stays uid 0 with every capability dropped
            self.notes.append(
                f"uid drop skipped: {unreachable[0]} cannot be reached by other users and there is "
                "no mount namespace to expose it"
            )
        elif isolation.drop_uid and self.caps.root and not in_userns:
            os.chmod(self.root, 0o711)  # the uid may pass through, not list or write
            if not self._traversable(self.root):
                raise SandboxError(
                    f"sandbox folder {self.root}: an ancestor folder cannot be entered by other "
                    "users, so a dropped uid could not reach its own folder; pass base_dir= a "
                    "folder under a world-traversable path (e.g. /tmp)"
                )
            private = [
                p
                for p in (pythonpath or []) + (read_paths or [])
                if os.path.exists(p) and (os.stat(p).st_mode & 0o005) != 0o005
            ]
            if private:
                raise SandboxError(
                    f"{private[0]}: not readable by other users (mode "
                    f"{os.stat(private[0]).st_mode & 0o777:o}), so the sandbox's own uid could not "
                    "read it; make it world-readable, or copy the files in with files="
                )
            self.uid = self.gid = _pick_uid()
            for dirpath, dirnames, filenames in os.walk(self.work):
                for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                    os.lchown(n, self.uid, self.gid)

        writes = [os.path.realpath(self.work)] + [
            p for p in _DEVICE_WRITE + glob.glob("/dev/nvidia*") if os.path.exists(p)
        ]
        self.config = dict(
            config,
            mode=mode,
            work=self.work,
            pythonpath=self.pythonpath,
            rlimits=limits.rlimits(),
            uid=self.uid,
            gid=self.gid,
            init=self.namespaces and "pid" in self.caps.namespaces,
            mount_ns=mount_ns,
            expose=reads,
            audit=isolation.audit_hook,
            write_roots=writes,
        )
        if isolation.landlock and self.caps.landlock_abi > 0:
            self.config["landlock"] = {
                "write": writes,
                "read": (reads + _SYSTEM_READ + [self.work]) if isolation.restrict_reads else None,
            }
        self.env = childenv.build(self.work, pythonpath=self.pythonpath, extra=env)

    # -- folder ------------------------------------------------------------------------------

    def stage(self, name: str, content) -> str:
        """Put a file into the sandbox folder (from a path or from text/bytes); returns its path."""
        dest = os.path.realpath(os.path.join(self.work, name))
        if not dest.startswith(os.path.realpath(self.work) + os.sep):
            raise SandboxError(f"file {name!r} would land outside the sandbox folder")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if isinstance(content, os.PathLike):
            shutil.copyfile(content, dest)
        else:
            with open(dest, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        if getattr(self, "uid", None) is not None:
            os.lchown(dest, self.uid, self.gid)
        return dest

    @staticmethod
    def _traversable(path: str) -> bool:
        p = Path(path)
        try:
            return all(os.stat(a).st_mode & 0o001 for a in [*reversed(p.parents), p])
        except OSError:
            return False

    # -- process -----------------------------------------------------------------------------

    def start(self) -> None:
        self.mark("start")
        if self.template is not None:
            why = self.template.refuses(
                self.extra_env,
                user_namespace=self.namespaces and "user" in self.caps.namespaces,
                memory_bytes=self.limits.memory_bytes,
                namespaces=self.caps.namespaces,
            )
            if why is None:
                why = self._start_forked()
                if why is None:
                    return
            self.start_mode = f"cold: {why}"
            self.notes.append(f"started cold: {why}")
        report_r, report_w = os.pipe()
        command_r, command_w = os.pipe()
        argv = [sys.executable, "-I", "-B", "-c", _BOOT.format(root=_PACKAGE_ROOT), str(report_w), str(command_r)]
        if self.namespaces:
            argv = [*self.caps.unshare, *argv]
        self.started = time.monotonic()
        try:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(report_w, command_r),
                env=self.env,
                cwd=self.work,
                start_new_session=True,
            )
        finally:
            os.close(report_w)
            os.close(command_r)
        self.mark("spawned")
        self.reader = frames.Reader(report_r)
        self.command_fd = command_w
        self.tails = [_Tail(self.popen.stdout), _Tail(self.popen.stderr)]
        for t in self.tails:
            t.start()
        self.send(dict(self.config, op="config"))

    def _start_forked(self) -> str | None:
        """Fork the child from the warm template; None when it runs, else why not."""
        report_r, report_w = os.pipe()
        command_r, command_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.started = time.monotonic()
        try:
            forked = self.template.spawn(
                env=self.env,
                cwd=self.work,
                fds=[report_w, command_r, out_w, err_w],
                namespaces=self.namespaces,
                user_namespace=self.namespaces and "user" in self.caps.namespaces,
            )
        finally:
            for fd in (report_w, command_r, out_w, err_w):
                os.close(fd)
        if isinstance(forked, str):
            for fd in (report_r, command_w, out_r, err_r):
                os.close(fd)
            return forked
        self.mark("spawned")
        self.popen, self.baseline_rss = forked, forked.baseline_rss
        self.start_mode = f"warm: forked from the template (pid {self.template.pid()})"
        self.reader = frames.Reader(report_r)
        self.command_fd = command_w
        self.tails = [_Tail(os.fdopen(out_r, "rb")), _Tail(os.fdopen(err_r, "rb"))]
        for t in self.tails:
            t.start()
        self.send(dict(self.config, op="config"))
        return None

    def send(self, header: dict) -> None:
        try:
            frames.write_all(self.command_fd, frames.encode(header))
        except (BrokenPipeError, OSError):
            pass  # the child is gone: the next recv says how

    def alive(self) -> bool:
        if self._status is not None:
            return False
        poll_status = getattr(self.popen, "poll_status", None)
        if poll_status is not None:  # forked by the template, which reaps it
            got = poll_status()
            if got is None:
                return True
            status, self.cpu_s = got
            # no ru_maxrss here: a forked child's counts the template's pages it shares,
            # so its peak is the watchdog's (baseline plus private pages)
        else:
            pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            if pid == 0:
                return True
            self.peak_rss = max(self.peak_rss, usage.ru_maxrss * 1024)
            self.cpu_s = usage.ru_utime + usage.ru_stime
        self._status = status
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.ended_at = time.monotonic()
        return False

    def members(self, thorough: bool = False) -> list[int]:
        """The sandbox's live processes (wrappers included). In a PID namespace the tree
        below our child is all of them (orphans are adopted by its init); otherwise, or
        when ``thorough``, the uid (or the session) finds those that left the tree."""
        pids = set(procs.descendants(self.popen.pid)) if self._status is None else set()
        pid_ns = self.namespaces and "pid" in self.caps.namespaces
        if self.uid is not None and (thorough or not pid_ns or self._status is not None):
            pids.update(procs.by_uid(self.uid))
        elif not self.namespaces:
            pids.update(procs.by_session(self.popen.pid))
        return sorted(pids)

    def watch(self) -> str | None:
        """One watchdog look: kills and returns the reason when a limit is passed."""
        if self._status is not None:
            return None
        live = [
            st for st in map(procs.status, self.members()) if st and not st.get("State", "Z").startswith(("Z", "X"))
        ]
        if self.baseline_rss:
            # forked processes share the template's pages: count those once, and each
            # process's own (private) pages, which is what the candidate added. Reading them
            # (smaps_rollup) costs ~16 ms per process, so once a second; in between, what a
            # process has beyond the template's resident size shows fresh allocations at once
            now = time.monotonic()
            if now - self._private_at >= 1.0:
                self._private_at = now
                pids = [int(st["Pid"]) for st in live if "Pid" in st]
                self._private = self.baseline_rss + sum(procs.private_bytes(p) for p in pids)
            grown = sum(max(0, int(st["VmRSS"].split()[0]) * 1024 - self.baseline_rss) for st in live if "VmRSS" in st)
            rss = max(self._private, self.baseline_rss + grown)
        else:
            rss = sum(int(st["VmRSS"].split()[0]) * 1024 for st in live if "VmRSS" in st)
        self.peak_rss = max(self.peak_rss, rss)
        if self.uid is not None:
            n = sum(st.get("Uid", "").split()[:1] == [str(self.uid)] for st in live)
        else:  # the wrappers (unshare, our init) are not the candidate's doing
            n = len(live) - (2 if self.namespaces else 0)
        if n > self.limits.max_processes:
            return self.kill(
                "fork bomb", f"fork bomb: {n} processes, more than the limit of {self.limits.max_processes}"
            )
        if rss > self.limits.memory_bytes:
            return self.kill(
                "memory limit",
                f"memory limit: the sandbox's processes use {rss >> 20} MiB resident, "
                f"more than the limit of {self.limits.memory_bytes >> 20} MiB",
            )
        return None

    def kill(self, status: str, reason: str) -> str:
        if self.exit.killed_by_sandbox is None:
            self.exit.killed_by_sandbox = status
            self.kill_reason = reason
        try:
            os.killpg(self.popen.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        procs.kill(self.members())
        return status

    def recv(self, deadline: float, poll_s: float = _POLL_S) -> tuple[dict, bytes]:
        """The next frame; violations are recorded on the way. Raises TimeoutError at
        ``deadline`` (the child is left running) and :class:`Ended` when the child is gone.
        Every ``poll_s`` without a frame the watchdog looks at the sandbox."""
        while True:
            try:
                header, blob = self.reader.read(min(deadline, time.monotonic() + poll_s))
            except TimeoutError:
                if not self.alive():
                    self._drain()
                    raise Ended() from None
                self.watch()
                if time.monotonic() >= deadline:
                    raise
                continue
            except frames.ChannelClosed:
                self._wait_gone(2.0)
                raise Ended() from None
            op = header["op"]
            if op == "violation":
                self.violations.append({"kind": str(header.get("kind")), "detail": str(header.get("detail"))[:500]})
                continue
            if op == "confined":
                self.layers = header.get("layers") or {}
                self._stamped(header)
            if op == "exit":
                self.exit_frame = header
                self._wait_gone(2.0)
                raise Ended()
            return header, blob

    def _stamped(self, header: dict) -> None:
        if "confined" in self.marks:  # the first frame only: a later one is not ours (a candidate's)
            return
        self.mark("confined")
        stamps = header.get("stamps")
        if isinstance(stamps, dict):  # the child's word: figures only, never used for a verdict
            self.child_stamps = {
                k: float(v)
                for k, v in stamps.items()
                if k in _CHILD_STEPS and isinstance(v, (int, float)) and math.isfinite(v)
            }

    def _drain(self) -> None:
        """After the main process ended: read what it left in the pipe (without blocking)."""
        while True:
            try:
                header, _ = self.reader.read(time.monotonic())
            except (TimeoutError, frames.ChannelClosed, frames.ProtocolError):
                return
            if header["op"] == "violation":
                self.violations.append({"kind": str(header.get("kind")), "detail": str(header.get("detail"))[:500]})
            elif header["op"] == "confined":
                self.layers = header.get("layers") or {}
                self._stamped(header)
            elif header["op"] == "exit":
                self.exit_frame = header
            else:
                self.late_frames = getattr(self, "late_frames", []) + [header]

    def _wait_gone(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        while self.alive():
            if time.monotonic() > deadline:
                self.kill("did not exit", "did not exit after its last frame")
                deadline = time.monotonic() + 5.0
            time.sleep(0.005)

    def finish(self, grace: float = 2.0) -> None:
        """Wait for the child (killing it after ``grace``), end every leftover process,
        collect the exit status and the output tails, remove the folder."""
        self.mark("finish")
        self.send({"op": "exit"})
        self._wait_gone(grace)
        self.mark("gone")
        try:  # only now: closing it earlier tells the init that we are gone, and it kills all
            os.close(self.command_fd)
        except OSError:
            pass
        self._drain()
        # leftovers: the init counted them (PID namespace); otherwise look for them by uid/session
        if self.exit_frame is not None:
            at = self.exit_frame.get("at")
            if isinstance(at, (int, float)) and math.isfinite(at):  # PID 1 counted the leftovers then
                self.child_stamps["exited"] = float(at)
            self.leftover = int(self.exit_frame.get("leftover", 0))
            self.leftover_cmds = list(self.exit_frame.get("leftover_cmds", []))
        # the child has ended (_wait_gone): members() is then the thorough search already
        # (by uid or session), and the first round of the kill need not repeat it
        found = [p for p in self.members(thorough=True) if not procs.is_zombie(p)]
        if found and self.exit_frame is None:
            self.leftover = len(found)
            self.leftover_cmds = [procs.cmdline(p)[:200] for p in found[:10]]
        remaining = procs.kill_until_gone(lambda: self.members(thorough=True), first=found)
        self.cleanup = "complete" if not remaining else f"failed: {len(remaining)} processes could not be killed"
        if self.uid is None and not self.namespaces:
            self.cleanup += " (by session only: a process that called setsid() could have escaped)"
        self.mark("leftovers")
        for t in self.tails:
            t.join(2.0)
        os.close(self.reader.fd)
        self._exit_info()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        self.mark("cleaned")

    def abandon(self) -> None:
        """Kill and clean up after an interruption of the parent (Ctrl-C) or a bug of ours."""
        if self.popen is not None and self._status is None:
            self.kill("interrupted", "interrupted: the evaluation was stopped")
            self.finish(grace=2.0)
        elif self.popen is None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def _exit_info(self) -> None:
        code = None
        if self.exit_frame is not None and "code" in self.exit_frame:
            code = int(self.exit_frame["code"])
        elif self._status is not None:
            code = os.waitstatus_to_exitcode(self._status)
        if code is not None and code < 0:
            self.exit.signal = signal_name(-code)
        else:
            self.exit.code = code

    # -- reporting ---------------------------------------------------------------------------

    def wall_s(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started

    def tail(self, i: int) -> str:
        return self.redactor.text(self.tails[i].text())

    def protections(self) -> dict:
        ours = {}
        for name in ("net", "pid", "mnt", "ipc", "user"):
            try:
                ours[name] = os.readlink(f"/proc/self/ns/{name}")
            except OSError:
                pass
        theirs = self.layers.get("namespaces", {})
        separate = {n: bool(theirs.get(n)) and theirs.get(n) != ours.get(n) for n in ours}
        ll = self.layers.get("landlock")
        p = {
            "platform": self.caps.system,
            "pid_namespace": separate.get("pid", False),
            "net_namespace": separate.get("net", False),
            "mount_namespace": separate.get("mnt", False),
            "ipc_namespace": separate.get("ipc", False),
            "user_namespace": separate.get("user", False),
            "uid": self.layers.get("uid"),
            "capabilities": "none" if self.layers.get("capabilities") == 0 else self.layers.get("capabilities"),
            "no_new_privs": self.layers.get("no_new_privs", False),
            "subreaper": self.layers.get("subreaper", False),  # orphans stay in the sandbox
            "landlock": ll,
            "rlimits": self.layers.get("rlimits"),
            "audit_hook": bool(self.config.get("audit")),
            "environment": f"allow-list of {len(self.env)} variables",
            "watchdog": {
                "wall_s": self.limits.wall_s,
                "memory_bytes": self.limits.memory_bytes,
                "max_processes": self.limits.max_processes,
            },
            "read_only_root": self.layers.get("read_only_root"),
            "exposed": self.layers.get("exposed", []),
            "notes": list(self.notes),
            "start": self.start_mode,
        }
        errors = {k: v for k, v in self.layers.items() if k.endswith("_error")}
        if errors:
            p["errors"] = errors
        return p

    def missing(self) -> list[str]:
        """Required layers (``Isolation.require``) that are not in force."""
        p = self.protections()
        have = {
            "pid_namespace": p["pid_namespace"],
            "net_namespace": p["net_namespace"],
            "uid": p["uid"] is not None,
            "landlock": p["landlock"] is not None,
            "audit_hook": p["audit_hook"],
        }
        unknown = [r for r in self.isolation.require if r not in have]
        if unknown:
            raise SandboxError(f"Isolation.require: unknown layer(s) {unknown}; known: {sorted(have)}")
        return [r for r in self.isolation.require if not have[r]]
