"""OS-level confinement, applied by the child to itself before any candidate code runs.

Each step reports what it achieved; a step the machine does not allow is recorded as
missing rather than failing the run (the parent decides whether that is acceptable).
Order matters: limits and mounts need root, so they come first (the mounts are set up by
PID 1, :mod:`.pid1`, before it forks the worker); then, in :func:`apply`, ``no_new_privs``,
the uid/gid drop, and Landlock last (it confines everything after, including exec).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat

from pytest_aina.sandbox.child import landlock

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18

RLIMITS = {
    "data": resource.RLIMIT_DATA,
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "core": resource.RLIMIT_CORE,
    "nproc": resource.RLIMIT_NPROC,
    "nofile": resource.RLIMIT_NOFILE,
}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg: int = 0) -> None:
    libc = _libc()
    if (
        libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        != 0
    ):
        e = ctypes.get_errno()
        raise OSError(e, f"prctl({option}): {os.strerror(e)}")


def _flag(layers: dict, name: str, option: int) -> None:
    """Turn on the prctl ``option`` as layer ``name``: True, or False and ``{name}_error``."""
    try:
        prctl(option, 1)
        layers[name] = True
    except OSError as e:
        layers[name] = False
        layers[f"{name}_error"] = str(e)


def set_limits(limits: dict[str, int]) -> dict[str, int]:
    """Soft = hard = value for each named limit; CPU gets a soft limit a second below the
    hard one so the child sees SIGXCPU (a recognisable "cpu limit") before SIGKILL."""
    applied = {}
    for name, value in limits.items():
        which = RLIMITS[name]
        soft = hard = int(value)
        if name == "cpu":
            hard = soft + 1
        cur_soft, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY and hard > cur_hard:  # cannot raise without privilege
            hard = cur_hard
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))
        applied[name] = soft
    return applied


def make_mounts_private() -> None:
    libc = _libc()
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount --make-rprivate /: {os.strerror(e)}")


def _mount(source: bytes | None, target: str, fstype: bytes | None, flags: int, data: bytes | None) -> None:
    libc = _libc()
    if libc.mount(source, os.fsencode(target), fstype, ctypes.c_ulong(flags), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount {source!r} on {target}: {os.strerror(e)}")


def _blocking_ancestor(path: str) -> str | None:
    """The top-most folder above ``path`` that other users cannot enter (mode lacks o+x)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts)):
        anc = "/" + "/".join(parts[:i])
        try:
            if not os.stat(anc).st_mode & stat.S_IXOTH:
                return anc
        except OSError:
            return None
    return None


def expose(paths: list[str]) -> list[str]:
    """Make ``paths`` reachable by an unprivileged uid without changing the host.

    In the child's own mount namespace (mounts are private, so nothing leaks out), each
    folder that blocks the way (e.g. ``/root`` at mode 0700 above a pyenv Python) is
    covered with an empty read-only tmpfs, and only the needed sub-folders are bind-mounted
    back into it. Everything else there disappears from the child's view, which also hides
    dotfiles with credentials. Returns the folders that were covered.
    """
    wanted = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    # keep outermost paths only: binding a folder brings its sub-folders with it
    outer: list[str] = []
    for p in wanted:
        if not any(p == o or p.startswith(o + "/") for o in outer):
            outer.append(p)
    groups: dict[str, list[str]] = {}
    for p in outer:
        anc = _blocking_ancestor(p)
        if anc is not None:
            groups.setdefault(anc, []).append(p)
    covered = []
    for anc, inner in sorted(groups.items()):
        fds = [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in inner]
        try:
            _mount(b"tmpfs", anc, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=755,size=1m")
            for p, fd in fds:
                os.makedirs(p, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}".encode(), p, None, MS_BIND | MS_REC, None)
            _mount(None, anc, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, b"mode=755")
        finally:
            for _, fd in fds:
                os.close(fd)
        covered.append(anc)
    return covered


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1


def read_only_except(writable: str) -> str:
    """Make this mount namespace's whole tree read-only except ``writable``, which stays
    writable (without setuid or device files). A write layer of its own, independent of
    Landlock and of file permissions: ``/tmp`` and ``/dev/shm`` become read-only too.
    Returns how it was done."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    _mount(os.fsencode(writable), writable, None, MS_BIND | MS_REC, None)  # its own mount, to re-open
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    r = libc.syscall(
        ctypes.c_long(_SYS_MOUNT_SETATTR),
        ctypes.c_int(_AT_FDCWD),
        b"/",
        ctypes.c_uint(_AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if r == 0:
        how = "mount_setattr"
    else:  # kernels before 5.12: one remount per mount point
        how = "remount"
        points = []
        for line in open("/proc/self/mountinfo"):
            points.append(line.split()[4].replace("\\040", " "))
        for point in points:
            try:
                _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
            except OSError:
                pass
    _mount(None, writable, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, None)
    return how


def drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # from root to non-root: the kernel clears every capability


def drop_capabilities() -> None:
    """For a child that stays uid 0: empty the bounding set and the capability sets, so
    root's name keeps no power (no module loading, no mounts, no raw sockets, no kill of
    other users' processes)."""
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            pass

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc = _libc()
    header = Header(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"capset: {os.strerror(e)}")


def capabilities_effective() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return -1


def apply(config: dict) -> dict:
    """Every layer, in order, on this process (the worker); returns what is in force and
    what failed (``*_error``), for the ``confined`` frame."""
    layers: dict = {}
    work = config["work"]
    try:
        layers["rlimits"] = set_limits(config.get("rlimits", {}))
    except (OSError, ValueError) as e:
        layers["rlimits"] = None
        layers["rlimits_error"] = str(e)
    os.chdir(work)
    os.umask(0o077)
    _flag(layers, "no_new_privs", PR_SET_NO_NEW_PRIVS)
    uid, gid = config.get("uid"), config.get("gid")
    layers["uid"] = None
    if uid is not None and os.geteuid() == 0:
        try:
            drop_to(uid, gid)
            layers["uid"] = uid
        except OSError as e:
            layers["uid_error"] = str(e)
            os.chown(work, 0, 0)  # we stay root (without capabilities): keep our folder writable
    if os.geteuid() == 0:
        try:
            drop_capabilities()
        except OSError as e:
            layers["capabilities_error"] = str(e)
    layers["capabilities"] = capabilities_effective()
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which resets it
    except OSError:
        pass
    # the candidate's orphans are adopted here rather than by the machine's init, so a
    # process that did a call's work and exited stays in the sandbox's tree (a zombie's
    # CPU clock still reads) and its time on the call's CPU clock (docs/sandbox.md, the
    # timing protocol); in a PID namespace our init would adopt them, also ours
    _flag(layers, "subreaper", PR_SET_CHILD_SUBREAPER)
    for sub in ("tmp", ".cache", ".config"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    ll = config.get("landlock")
    layers["landlock"] = None
    if ll is not None:
        try:
            applied = landlock.restrict_self(landlock.Policy(write=ll["write"], read=ll.get("read")))
            layers["landlock"] = applied.as_dict()
        except (OSError, landlock.LandlockError) as e:
            layers["landlock_error"] = str(e)
    layers["namespaces"] = {}
    for name in ("net", "pid", "mnt", "ipc", "user"):
        try:
            layers["namespaces"][name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            pass
    return layers
