"""Landlock (Linux >= 5.13) through ctypes: confine a process's file writes, reads, TCP use
and signals, for itself and every process it later starts.

Landlock is an allow-list: once a ruleset "handles" an access right, that right is denied
everywhere except beneath the paths given a rule. It needs no privilege (only
``no_new_privs``), cannot be undone by the confined process, and is inherited across
fork and exec, which is why it is the layer that still holds when a candidate escapes
Python (ctypes, a subprocess, a shell).

Rights by ABI version: 1 files; 2 ``REFER`` (rename/link across folders); 3 ``TRUNCATE``;
4 TCP bind/connect; 5 device ioctls; 6 scoping of signals and abstract unix sockets to
the confined processes. What a kernel lacks is left out and reported, never faked.
"""

from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass, field

# Generic syscall numbers: Landlock came after the per-architecture tables were unified.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = EXECUTE | READ_FILE | READ_DIR
_WRITE_V1 = (
    WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_CHAR
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_BLOCK
    | MAKE_SYM
)
#: rights that only make sense on a file (a rule on a file may carry no others)
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is __attribute__((packed)): 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockError(OSError):
    pass


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is missing or disabled."""
    if platform.system() != "Linux":
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    v = libc.syscall(
        ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
    )
    return int(v) if v > 0 else 0


def write_rights(abi: int) -> int:
    rights = _WRITE_V1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


@dataclass
class Policy:
    """What the confined process may do. Paths that do not exist are skipped (and listed)."""

    write: list[str] = field(default_factory=list)  # full rights beneath these
    read: list[str] | None = None  # None: reading is not restricted; else read only beneath these
    deny_tcp: bool = True
    scope: bool = True  # signals and abstract unix sockets only within the sandbox


@dataclass
class Applied:
    abi: int
    fs_write: bool
    fs_read: bool
    net_tcp: bool
    scoped: bool
    skipped: list[str]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def restrict_self(policy: Policy) -> Applied:
    """Apply ``policy`` to this process (and all it starts from now on). Needs
    ``PR_SET_NO_NEW_PRIVS`` already set or ``CAP_SYS_ADMIN``; raises :class:`LandlockError`
    when the kernel refuses."""
    abi = abi_version()
    if abi < 1:
        raise LandlockError(0, "Landlock is not available on this kernel")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled_fs = write_rights(abi) | (READ if policy.read is not None else 0)
    handled_net = (NET_BIND_TCP | NET_CONNECT_TCP) if (policy.deny_tcp and abi >= 4) else 0
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if (policy.scope and abi >= 6) else 0
    attr = _RulesetAttr(handled_fs, handled_net, scoped)
    # Older kernels reject a struct larger than they know: pass only the fields they have.
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    fd = libc.syscall(ctypes.c_long(_SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        e = ctypes.get_errno()
        raise LandlockError(e, f"landlock_create_ruleset: {os.strerror(e)}")
    skipped: list[str] = []
    try:
        rules: dict[str, int] = {}
        for p in policy.read or []:
            rules[p] = rules.get(p, 0) | READ
        for p in policy.write:
            rules[p] = rules.get(p, 0) | write_rights(abi) | (READ if policy.read is not None else 0)
        for path, rights in rules.items():
            if not _add_path_rule(libc, fd, path, rights & handled_fs):
                skipped.append(path)
        if libc.syscall(ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
            e = ctypes.get_errno()
            raise LandlockError(e, f"landlock_restrict_self: {os.strerror(e)}")
    finally:
        os.close(fd)
    return Applied(
        abi=abi,
        fs_write=True,
        fs_read=policy.read is not None,
        net_tcp=bool(handled_net),
        scoped=bool(scoped),
        skipped=skipped,
    )


def _add_path_rule(libc, ruleset_fd: int, path: str, rights: int) -> bool:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        attr = _PathBeneathAttr(rights, pfd)
        r = libc.syscall(
            ctypes.c_long(_SYS_ADD_RULE),
            ctypes.c_int(ruleset_fd),
            ctypes.c_int(_RULE_PATH_BENEATH),
            ctypes.byref(attr),
            ctypes.c_uint32(0),
        )
        if r < 0:
            e = ctypes.get_errno()
            raise LandlockError(e, f"landlock_add_rule {path!r}: {os.strerror(e)}")
        return True
    finally:
        os.close(pfd)
