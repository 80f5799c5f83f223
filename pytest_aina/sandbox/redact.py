"""Secrets: which environment variables hold them, and scrubbing them out of text.

The child never receives a secret (its environment is an allow-list), so redaction is the
last layer, for what a candidate might find elsewhere (a file it could read) and print.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

#: Variable names that carry credentials by convention (matched as substrings, any case).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE", re.IGNORECASE)

#: Well-known token shapes, redacted wherever they appear.
_TOKEN_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"  # OpenAI-style keys
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
)

MASK = "[REDACTED]"


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces the values of the parent's secret variables, and known token shapes."""

    def __init__(self, environ: Mapping[str, str] | None = None, extra: list[str] = ()):
        env = os.environ if environ is None else environ
        # Short values (e.g. "1", "true") would shred unrelated text and are not secrets worth
        # the name; longest first so a secret containing another is masked whole.
        values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= 6}
        values.update(v for v in extra if len(v) >= 6)
        self._values = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in self._values)) if self._values else None

    def text(self, s: str) -> str:
        if self._pattern is not None:
            s = self._pattern.sub(MASK, s)
        return _TOKEN_SHAPES.sub(MASK, s)

    def value(self, v: Any) -> Any:
        """Redact every string inside a JSON-like value."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, tuple):
            return tuple(self.value(x) for x in v)
        if isinstance(v, dict):
            return {self.text(str(k)): self.value(x) for k, x in v.items()}
        return v
