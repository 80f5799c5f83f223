"""Real git objects for the fake: blobs, trees and commits with git's own SHA-1s.

Objects are hashed exactly as git hashes them (``<type> <size>\\0<content>``; tree entries
``<mode> <name>\\0<20-byte sha>`` sorted as git sorts them), so a SHA the App receives
from the fake is the SHA git would compute for the same content.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from dataclasses import dataclass


def object_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


@dataclass(frozen=True)
class TreeEntry:
    mode: str  # "100644" file, "100755" executable, "40000" tree
    name: str
    sha: str

    @property
    def kind(self) -> str:
        return "tree" if self.mode == "40000" else "blob"


@dataclass(frozen=True)
class Commit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author: dict
    committer: dict
    message: str


class GitObjects:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[str, bytes]] = {}
        self.trees: dict[str, list[TreeEntry]] = {}
        self.commits: dict[str, Commit] = {}

    # -- writing ------------------------------------------------------------------------------
    def blob(self, data: bytes) -> str:
        sha = object_sha("blob", data)
        self.objects[sha] = ("blob", data)
        return sha

    def tree(self, entries: list[TreeEntry]) -> str:
        # git sorts a tree's entries by name, a sub-tree's name compared as if it ended in "/"
        ordered = sorted(entries, key=lambda e: e.name + ("/" if e.kind == "tree" else ""))
        data = b"".join(f"{e.mode} {e.name}\0".encode() + bytes.fromhex(e.sha) for e in ordered)
        sha = object_sha("tree", data)
        self.objects[sha] = ("tree", data)
        self.trees[sha] = ordered
        return sha

    def commit(self, tree: str, parents: list[str], message: str, author: dict, committer: dict) -> str:
        lines = [f"tree {tree}"] + [f"parent {p}" for p in parents]
        lines.append(f"author {_signature(author)}")
        lines.append(f"committer {_signature(committer)}")
        data = ("\n".join(lines) + "\n\n" + message).encode()
        sha = object_sha("commit", data)
        self.objects[sha] = ("commit", data)
        self.commits[sha] = Commit(sha, tree, tuple(parents), dict(author), dict(committer), message)
        return sha

    # -- trees as path maps -------------------------------------------------------------------
    def flatten(self, tree_sha: str, prefix: str = "") -> dict[str, tuple[str, str]]:
        """{path: (mode, blob sha)} for every file under ``tree_sha``."""
        out: dict[str, tuple[str, str]] = {}
        for e in self.trees[tree_sha]:
            path = prefix + e.name
            if e.kind == "tree":
                out.update(self.flatten(e.sha, path + "/"))
            else:
                out[path] = (e.mode, e.sha)
        return out

    def build(self, files: dict[str, tuple[str, str]]) -> str:
        """The tree holding ``files`` ({path: (mode, blob sha)}), sub-trees included."""
        here: list[TreeEntry] = []
        subdirs: dict[str, dict[str, tuple[str, str]]] = {}
        for path, (mode, sha) in files.items():
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, {})[rest] = (mode, sha)
            else:
                here.append(TreeEntry(mode, head, sha))
        for name, sub in subdirs.items():
            here.append(TreeEntry("40000", name, self.build(sub)))
        return self.tree(here)

    def walk(self, tree_sha: str, prefix: str = ""):
        """(path, entry) for every entry under ``tree_sha``, trees included (recursive)."""
        for e in self.trees[tree_sha]:
            yield prefix + e.name, e
            if e.kind == "tree":
                yield from self.walk(e.sha, prefix + e.name + "/")

    def tarball(self, commit_sha: str, top: str) -> bytes:
        buf = io.BytesIO()
        commit = self.commits[commit_sha]
        mtime = int(commit.committer.get("_epoch", time.time()))
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(top)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
            tar.addfile(info)
            for path, (mode, sha) in sorted(self.flatten(commit.tree).items()):
                data = self.objects[sha][1]
                info = tarfile.TarInfo(f"{top}/{path}")
                info.size, info.mtime = len(data), mtime
                info.mode = 0o755 if mode == "100755" else 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _signature(who: dict) -> str:
    return f"{who['name']} <{who['email']}> {int(who['_epoch'])} +0000"
