"""Hostile candidates for the softmax spec: each games the evaluator in one known way.

Several behave while pytest is loaded (the cascade's checks) and misbehave only when they
think they are being timed: the reward hacks kernel searches are known for. ``PORT`` (a
listener of the test's) and ``REPO_ROOT`` (the checkout under test, as a quoted string) are
filled in by the test."""

GOOD = """
from kernels.softmax import softmax_generic


def softmax(x):
    return softmax_generic(x)
"""

# "Am I being checked?": pytest's frames on the stack while the module is imported. Whether
# pytest is merely loaded tells nothing since every stage is forked from a warm template
# that has imported it; the hack must still be caught when it guesses right.
_UNDER_TEST = (
    "import sys\n\n\ndef _in_pytest():\n    f = sys._getframe()\n    while f is not None:\n"
    "        if '_pytest' in f.f_code.co_filename or 'pluggy' in f.f_code.co_filename:\n"
    "            return True\n        f = f.f_back\n    return False\n\n\nUNDER_TEST = _in_pytest()\n"
)

HOSTILE = {
    "syntax error": "def softmax(x) return x\n",
    "import error": "import kernels.no_such_module\n\ndef softmax(x):\n    return x\n",
    "missing function": "def soft_max(x):\n    return x\n",
    "wrong answer": "def softmax(x):\n    return x.clone()\n",
    "timeout": "def softmax(x):\n    while True:\n        pass\n",
    "crash by signal": "import os\n\ndef softmax(x):\n    os.abort()\n",
    "memory limit": "def softmax(x):\n    hog = bytearray(64 << 30)\n    return hog\n",
    "write outside sandbox": (
        "from kernels.softmax import softmax_generic\n\n"
        "def softmax(x):\n    open(REPO_ROOT + '/PWNED', 'w').write('x')\n"
        "    return softmax_generic(x)\n"
    ),
    "network attempt": (
        "import socket\nfrom kernels.softmax import softmax_generic\n\n"
        "def softmax(x):\n    socket.create_connection(('127.0.0.1', PORT), timeout=2)\n"
        "    return softmax_generic(x)\n"
    ),
    "stale result": _UNDER_TEST
    + (
        "from kernels.softmax import softmax_generic\n_cache = {}\n\n"
        "def softmax(x):\n    if UNDER_TEST:\n        return softmax_generic(x)\n"
        "    key = tuple(x.shape)\n    if key not in _cache:\n        _cache[key] = softmax_generic(x)\n"
        "    return _cache[key].clone()\n"
    ),
    "partial result": _UNDER_TEST
    + (
        "import torch\nfrom kernels.softmax import softmax_generic\n\n"
        "def softmax(x):\n    if UNDER_TEST:\n        return softmax_generic(x)\n"
        "    y = torch.empty_like(x)\n    h = max(1, x.shape[0] // 2)\n    y[:h] = softmax_generic(x[:h])\n"
        "    return y\n"
    ),
    "tampered clock": _UNDER_TEST
    + (
        "import time\nfrom kernels.softmax import softmax_generic\n_real = time.perf_counter\n"
        "_t = [0.0]\n\ndef _fake():\n    _t[0] += 1e-9\n    return _t[0]\n\n"
        "def softmax(x):\n    if not UNDER_TEST:\n        time.perf_counter = _fake\n        time.monotonic = _fake\n"
        "        time.time = _fake\n    return softmax_generic(x)\n"
    ),
    # when timed, each call hands the work for the next inputs to a thread that keeps going
    # after the call returns: the CPU it burns between calls is seen from outside
    "deferred work": _UNDER_TEST
    + (
        "import threading\nfrom kernels.softmax import softmax_generic\n\n"
        "def _busy():\n    while True:\n        sum(range(10000))\n\n"
        "def softmax(x):\n    if not UNDER_TEST and threading.active_count() == 1:\n"
        "        threading.Thread(target=_busy, daemon=True).start()\n    return softmax_generic(x)\n"
    ),
}
