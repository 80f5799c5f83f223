"""The in-process layer: a ``sys.addaudithook`` installed before the candidate is imported.

It refuses, with ``PermissionError``, Python-level writes outside the sandbox folder and
any network use, and reports each refusal to the parent at once (so a candidate that
swallows the error is still recorded). It is a tripwire with good error messages, not a
wall: ctypes, a subprocess or a C extension do not go through it, which is what the OS
layers (Landlock, namespaces, the uid drop) are for. Hooks cannot be removed once added.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# event -> indexes of the path arguments it writes to
_PATH_EVENTS = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (1,),
    "os.symlink": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "os.chflags": (0,),
    "os.lchflags": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copymode": (1,),
    "shutil.copystat": (1,),
    "shutil.move": (1,),
    "shutil.chown": (0,),
}
_AF_UNIX = 1  # the same number on Linux and macOS
_NET_EVENTS = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
}


def install(write_roots: list[str], report: Callable[[str, str], None]) -> None:
    """Refuse writes outside ``write_roots`` and network use; ``report(kind, detail)`` is
    called for each refusal, kind ``"write outside sandbox"`` or ``"network attempt"``."""
    roots = tuple(os.path.realpath(r) for r in write_roots)
    realpath, join, getcwd, fsdecode = os.path.realpath, os.path.join, os.getcwd, os.fsdecode
    busy = [False]  # resolving a path must not re-enter the hook

    def outside(path) -> str | None:
        if isinstance(path, int) or path is None:
            return None  # an already-open descriptor: its opening was checked
        try:
            p = fsdecode(path)
        except TypeError:
            return None
        full = realpath(p if p.startswith("/") else join(getcwd(), p))
        if any(full == r or full.startswith(r + "/") for r in roots):
            return None
        return full

    def refuse(kind: str, detail: str):
        report(kind, detail)
        raise PermissionError(f"aina sandbox: {kind} refused: {detail}")

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+")
            )
            if not writing:
                return
            paths = (path,)
        elif event in _PATH_EVENTS:
            paths = tuple(args[i] for i in _PATH_EVENTS[event] if i < len(args))
        elif event in _NET_EVENTS:
            if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
                sock, address = args[0], args[1] if len(args) > 1 else None
                if getattr(sock, "family", None) == _AF_UNIX:
                    busy[0] = True
                    try:
                        bad = (
                            outside(address)
                            if isinstance(address, (str, bytes)) and address[:1] not in ("\0", b"\0")
                            else "abstract"
                        )
                    finally:
                        busy[0] = False
                    if bad is None:
                        return
                detail = f"{event} {address!r}"
            else:
                detail = f"{event} {args[0]!r}"
            refuse("network attempt", detail)
            return
        else:
            return
        busy[0] = True
        try:
            bad = [b for b in (outside(p) for p in paths) if b is not None]
        finally:
            busy[0] = False
        if bad:
            refuse("write outside sandbox", f"{event} {bad[0]}")

    sys.addaudithook(hook)
