"""Reading webhook payloads: untrusted shapes even when correctly signed.

GitHub adds fields, old events lack some, and a fuzzer sends anything the published schema
allows; so handlers read payloads through these readers, which never raise and answer None
for anything that is not what they expect.
"""

from __future__ import annotations

import re
from typing import Any

#: GitHub ids are positive and fit SQLite's signed 64-bit integers.
MAX_ID = 2**63 - 1
_SHA = re.compile(r"^[0-9a-f]{40}$")


def dig(data: Any, *keys: str | int, default: Any = None) -> Any:
    for key in keys:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return default
        elif not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def as_id(value: Any) -> int | None:
    """A GitHub id, or None for anything that is not one (bools are ints in Python)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        return None
    return value


def text(value: Any, limit: int = 1000) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def commit_sha(value: Any) -> str | None:
    """A full commit id (40 lowercase hex digits), or None."""
    return value if isinstance(value, str) and _SHA.match(value) else None
