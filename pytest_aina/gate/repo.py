"""Reading the change from git: commits, the files it touches, their lines, and checkouts.

Everything is read from git objects (``git show``, ``git diff``), never from the working
tree of the repository the gate runs in, so what is judged is exactly what the refs say.
Code runs only in checkouts (``git worktree add --detach``) made for that purpose and
removed afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_aina.gate.verdict import GateConfigError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class FileChange:
    """One path the change touches: ``status`` is git's letter (A, M, D, R, C, T)."""

    path: str
    status: str
    old_path: str | None = None  # renames and copies: where it came from

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.old_path is None or self.old_path == self.path else (self.old_path, self.path)


class Repo:
    """A git repository on disk, read through the ``git`` command."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        probe = self._run("rev-parse", "--show-toplevel", check=False)
        if probe.returncode != 0:
            raise GateConfigError(f"{self.root}: not a git repository ({probe.stderr.decode().strip()})")
        self.root = Path(probe.stdout.decode().strip())

    def _run(self, *args: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, input=stdin, check=False)
        except FileNotFoundError:
            raise GateConfigError("git is not installed") from None
        if check and done.returncode != 0:
            raise GateConfigError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
        return done

    def git(self, *args: str) -> str:
        return self._run(*args).stdout.decode()

    # -- commits
    def commit(self, ref: str) -> str:
        """The full commit id of ``ref``; a ref that does not exist is a configuration error."""
        if ref.startswith("-"):
            raise GateConfigError(f"{ref!r} is not a git ref")
        found = self._run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
        if found.returncode != 0:
            raise GateConfigError(
                f"{ref!r} is not a commit in the git repository at {self.root} "
                "(in CI: fetch it first, e.g. actions/checkout with fetch-depth: 0)"
            )
        return found.stdout.decode().strip()

    def merge_base(self, a: str, b: str) -> str:
        done = self._run("merge-base", a, b, check=False)
        if done.returncode != 0:
            raise GateConfigError(
                f"{a[:12]} and {b[:12]} have no common ancestor (fetch more history: "
                "actions/checkout with fetch-depth: 0)"
            )
        return done.stdout.decode().strip()

    def is_ancestor(self, a: str, b: str) -> bool:
        return self._run("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    def parents(self, commit: str) -> list[str]:
        return self.git("rev-list", "--parents", "-n", "1", commit).split()[1:]

    def branch_tip(self, base: str, head: str) -> str:
        """The commit whose changes are under review. A merge queue's head is a merge commit
        whose first parent is (or descends from) the base: the change is its second parent.
        Anything else is its own tip."""
        parents = self.parents(head)
        if len(parents) == 2 and self.is_ancestor(base, parents[0]) and not self.is_ancestor(parents[1], base):
            return parents[1]
        return head

    # -- files
    def changes(self, base: str, head: str) -> list[FileChange]:
        """The files ``head`` changes relative to ``base`` (renames found), sorted by path."""
        out = self._run("diff", "--name-status", "-z", "--find-renames", "--no-ext-diff", base, head).stdout.decode()
        parts = out.split("\0")
        changes, i = [], 0
        while i < len(parts) - 1:
            status = parts[i]
            if status[:1] in ("R", "C"):
                changes.append(FileChange(parts[i + 2], status[0], old_path=parts[i + 1]))
                i += 3
            else:
                changes.append(FileChange(parts[i + 1], status[0]))
                i += 2
        return sorted(changes, key=lambda c: c.path)

    def read(self, commit: str, path: str) -> bytes | None:
        done = self._run("cat-file", "blob", f"{commit}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None

    def text(self, commit: str, path: str) -> str | None:
        data = self.read(commit, path)
        if data is None:
            return None
        try:
            return data.decode()
        except UnicodeDecodeError:
            return None

    def files(self, commit: str, folder: str = ".") -> list[str]:
        out = self._run("ls-tree", "-r", "-z", "--name-only", "--full-tree", commit, "--", folder).stdout.decode()
        return sorted(p for p in out.split("\0") if p)

    def added_lines(self, base: str, head: str, path: str, old_path: str | None = None) -> list[int]:
        """Line numbers in ``head``'s ``path`` that the change adds or modifies."""
        args = ["diff", "-U0", "--no-ext-diff", "--no-color", base, head, "--"]
        args += [old_path, path] if old_path and old_path != path else [path]
        lines: list[int] = []
        for row in self.git(*args).splitlines():
            m = _HUNK.match(row)
            if m:
                start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
                lines.extend(range(start, start + count))
        return lines

    # -- checkouts
    @contextmanager
    def checkout(self, commit: str, name: str):
        """A detached worktree of ``commit`` in a scratch folder, removed afterwards."""
        top = Path(tempfile.mkdtemp(prefix=f"aina-gate-{name}-"))
        path = top / name
        self._run("worktree", "add", "--detach", "--force", str(path), commit)
        try:
            yield path
        finally:
            self._run("worktree", "remove", "--force", str(path), check=False)
            shutil.rmtree(top, ignore_errors=True)
            self._run("worktree", "prune", check=False)
