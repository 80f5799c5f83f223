"""The local forge of ``aina evolve``: a change becomes a branch with one commit, and its
PR body is written beside it.

:func:`publish` makes ``aina/<kernel>-<hypothesis>`` (:func:`~pytest_aina.changer.change.branch_name`)
point at one commit on top of the
current ``HEAD`` holding exactly the change's files, built with a temporary index,
``git hash-object``, ``git write-tree`` and ``git commit-tree``: the user's working tree,
index and current branch are never touched. It writes the PR body to
``.aina/forge/<branch, / as ->.md`` and the change as JSON beside it. Publishing the same
hypothesis again replaces the branch's commit (still one commit on top of ``HEAD``): one
branch per hypothesis, as the GitHub App keeps one PR per hypothesis.

:func:`scratch_checkout` gives a throwaway copy of ``HEAD`` (of the files, for a checkout
without git: the App's) with the change's files in it, where the generated tests run under
coverage before anything is committed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_aina.changer.change.model import BRANCH_PREFIX, Change, is_bot_branch

AUTHOR_NAME = "pytest-aina"
AUTHOR_EMAIL = "aina@localhost"
FORGE_DIR = ".aina/forge"
ZERO = "0" * 40


class ForgeError(RuntimeError):
    """The local forge cannot publish: not a git repository, no commit yet, the branch is
    checked out, or a branch of that name that pytest-aina did not make."""


@dataclass(frozen=True)
class ForgeResult:
    branch: str
    commit: str
    base: str  # the HEAD commit the branch is on top of
    previous: str | None  # the branch's commit before this publish (None: a new branch)
    body_path: Path
    json_path: Path
    files: tuple[str, ...]
    title: str

    @property
    def updated(self) -> bool:
        return self.previous is not None

    def message(self) -> str:
        """What ``aina evolve`` prints at the end."""
        state = (
            f"updated in place (was {self.previous[:12]})"
            if self.previous and self.previous != self.commit
            else "unchanged (same content)"
            if self.previous
            else "new"
        )
        lines = [
            f"Opened on the local forge: {self.title}",
            f"  branch  {self.branch}  ({state})",
            f"  commit  {self.commit[:12]}, one commit on top of {self.base[:12]}",
            "  files   " + "\n          ".join(self.files),
            f"  PR body {self.body_path}",
            f"  change  {self.json_path}",
            "",
            "Review it:",
            f"  git log -p -1 {self.branch}",
            f"  git worktree add ../aina-review {self.branch} && cd ../aina-review && python -m pytest --aina",
            "Merge it:",
            f"  git merge --ff-only {self.branch}     (or push it and open a PR with the body above)",
        ]
        return "\n".join(lines)


def _git(
    repo: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    strip: bool = True,
) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, input=input, env=dict(os.environ, **(env or {}))
        )
    except FileNotFoundError:
        raise ForgeError("git is not installed: the local forge needs it") from None
    if check and done.returncode != 0:
        raise ForgeError(f"git {' '.join(args[:2])} failed in {repo}: {done.stderr.decode(errors='replace').strip()}")
    if done.returncode != 0:
        return ""
    return done.stdout.decode().strip() if strip else done.stdout.decode()


def repository_root(repo: str | Path) -> Path:
    root = _git_root(repo)
    if root is None:
        raise ForgeError(f"{repo}: not inside a git repository; the local forge makes a branch in one")
    return root


def _git_root(repo: str | Path) -> Path | None:
    root = _git(Path(repo), "rev-parse", "--show-toplevel", check=False)
    return Path(root) if root else None


def head_commit(repo: str | Path) -> str | None:
    """The commit ``HEAD`` names in ``repo`` (the base :func:`publish` puts a change on), or
    None outside a git repository or before its first commit."""
    if _git_root(repo) is None:
        return None
    return _git(Path(repo), "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or None


def publish(change: Change, repo: str | Path = ".") -> ForgeResult:
    """Create or update the change's branch with one commit on top of HEAD, and write its
    PR body beside it; see the module docstring."""
    data = change.to_json()
    root = repository_root(repo)
    branch = data["branch"]
    if not is_bot_branch(branch) or _git(root, "check-ref-format", "--branch", branch, check=False) != branch:
        raise ForgeError(f"{branch!r} is not a valid branch name under {BRANCH_PREFIX}")
    ref = f"refs/heads/{branch}"
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if not head:
        raise ForgeError(f"{root}: the repository has no commit yet; the change needs one to sit on")
    if _git(root, "symbolic-ref", "--quiet", "HEAD", check=False) == ref:
        raise ForgeError(f"{branch} is checked out here; switch to another branch first (the forge rewrites it)")
    previous = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) or None
    if previous:
        email = _git(root, "log", "-1", "--format=%ae", previous)
        if email != AUTHOR_EMAIL:
            raise ForgeError(
                f"{branch} exists and its commit is by {email}, not by pytest-aina; not overwriting someone's branch"
            )

    files: dict[str, str | None] = data["files"]
    tree = _tree(root, head, files)
    message = _message(data)
    if (
        previous
        and _git(root, "rev-parse", f"{previous}^{{tree}}") == tree
        and _git(root, "rev-parse", f"{previous}^@", check=False) == head
        and _git(root, "log", "-1", "--format=%B", previous).strip() == message.strip()
    ):
        commit = previous  # same content on the same base: nothing to replace
    else:
        env = {
            "GIT_AUTHOR_NAME": AUTHOR_NAME,
            "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
            "GIT_COMMITTER_NAME": AUTHOR_NAME,
            "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
        }
        commit = _git(
            root, "commit-tree", "--no-gpg-sign", tree, "-p", head, "-F", "-", env=env, input=message.encode()
        )
        # the old value guards against a concurrent publish of the same branch
        _git(root, "update-ref", "-m", f"aina evolve: {data['hypothesis_id']}", ref, commit, previous or ZERO)

    forge = root / FORGE_DIR
    forge.mkdir(parents=True, exist_ok=True)
    stem = branch.replace("/", "-")
    body_path, json_path = forge / f"{stem}.md", forge / f"{stem}.json"
    body_path.write_text(data["body"])  # it starts with the title as a heading
    json_path.write_text(
        json.dumps(dict(data, forge={"branch": branch, "commit": commit, "base": head}), indent=2) + "\n"
    )
    return ForgeResult(
        branch=branch,
        commit=commit,
        base=head,
        previous=previous,
        body_path=body_path,
        json_path=json_path,
        files=tuple(sorted(files)),
        title=data["title"],
    )


def open_pr(repo: str | Path, change: Change) -> dict:
    """:func:`publish` for ``aina evolve``: the result as JSON-able data, with the text to print."""
    r = publish(change, repo)
    return {
        "branch": r.branch,
        "commit": r.commit,
        "base": r.base,
        "previous": r.previous,
        "updated": r.updated,
        "body_path": str(r.body_path),
        "json_path": str(r.json_path),
        "files": list(r.files),
        "message": r.message(),
    }


def changed_files(repo: str | Path, ref: str, *, base: str | None = None) -> dict[str, str | None]:
    """What ``ref`` changes on top of ``base`` (default: its first parent, the forge's base):
    path -> text at ``ref``, None where it deletes the path. With
    :meth:`~pytest_aina.changer.change.Change.from_files` it reads a change back from its
    branch, which is what the merge gate checks."""
    root = repository_root(repo)
    for r in (ref, base):
        if r is not None and (not re.match(r"^[A-Za-z0-9_./^~@{}-]+$", r) or r.startswith("-")):
            raise ForgeError(f"{r!r} is not a ref")
    base = base or _git(root, "rev-parse", "--verify", f"{ref}^1")
    out: dict[str, str | None] = {}
    fields = [f for f in _git(root, "diff", "--no-renames", "--name-status", "-z", base, ref).split("\0") if f]
    for status, path in zip(fields[::2], fields[1::2]):
        out[path] = None if status == "D" else _git(root, "show", f"{ref}:{path}", strip=False)
    return out


def read_change(repo: str | Path, branch: str, *, base: str | None = None) -> Change:
    """The change on ``branch`` (one commit on ``base``, by default its parent), read back
    from the files it changes and its attestation."""
    return Change.from_files(changed_files(repo, branch, base=base), branch=branch)


def _tree(root: Path, head: str, files: Mapping[str, str | None]) -> str:
    """The tree of HEAD with ``files`` written (None: removed), through a temporary index."""
    for path in files:
        if path.startswith("/") or ".." in path.split("/") or path.split("/")[0] == ".git" or "\n" in path:
            raise ForgeError(f"{path!r}: not a path the forge writes")
    with tempfile.TemporaryDirectory(prefix="aina-forge-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _git(root, "read-tree", head, env=env)
        written = {p: t for p, t in sorted(files.items()) if t is not None}
        blobs: dict[str, str] = {}
        if written:
            staged = []
            for i, text in enumerate(written.values()):
                f = Path(tmp) / f"blob{i}"
                f.write_text(text)
                staged.append(str(f))
            ids = _git(root, "hash-object", "-w", "--stdin-paths", input="\n".join(staged).encode()).split()
            blobs = dict(zip(written, ids))
        lines = [f"100644 {blobs[p]}\t{p}" if t is not None else f"0 {ZERO}\t{p}" for p, t in sorted(files.items())]
        _git(root, "update-index", "--index-info", env=env, input=("\n".join(lines) + "\n").encode())
        return _git(root, "write-tree", env=env)


def _message(data: dict) -> str:
    meta = data.get("metadata") or {}
    lines = [
        data["title"],
        "",
        f"Evolution change for hypothesis {data['hypothesis_id']}, written by pytest-aina. The PR body is",
        f"in {FORGE_DIR}/{data['branch'].replace('/', '-')}.md; the provenance is {data.get('attestation')}.",
    ]
    if meta.get("device") == "cpu":
        lines += ["", "Timings come from Triton's interpreter on a CPU: not GPU evidence."]
    lines += ["", f"Aina-Hypothesis: {data['hypothesis_id']}"]
    if data.get("attestation"):
        lines.append(f"Aina-Attestation: {data['attestation']}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def scratch_checkout(repo: str | Path, change: Change | None = None, *, ref: str = "HEAD") -> Iterator[Path]:
    """A temporary copy of ``ref``'s tree (``git archive``; nothing in ``.git`` changes), with
    the change's files written in it when ``change`` is given; removed afterwards. A folder
    that is not a git repository (the App's checkout of a tarball: it is the base) is copied
    as it is, without pytest-aina's working files (``.aina``)."""
    root = _git_root(repo)
    if root is not None and (not re.match(r"^[A-Za-z0-9_./^~@{}-]+$", ref) or ref.startswith("-")):
        raise ForgeError(f"{ref!r} is not a ref")
    with tempfile.TemporaryDirectory(prefix="aina-checkout-") as tmp:
        dest = Path(tmp)
        if root is None:
            shutil.copytree(
                repo,
                dest,
                dirs_exist_ok=True,
                symlinks=True,
                ignore=shutil.ignore_patterns(".aina", ".git", "__pycache__"),
            )
        else:
            archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref], capture_output=True)
            if archive.returncode != 0:
                raise ForgeError(f"git archive {ref} failed: {archive.stderr.decode(errors='replace').strip()}")
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(tmp, filter="data")
        dest.chmod(0o755)  # the sandbox's own uid runs the generated tests from here
        if change is not None:
            change.materialize(dest)
        yield dest
