"""Frames on the pipes between the parent and a sandboxed child.

A frame is ``>II`` (header length, blob length), a JSON header (an object with ``op``)
and an optional binary blob (tensor bytes). The channel is a pair of dedicated pipes,
never stdout: what a candidate prints cannot be mistaken for a result, and anything on
the channel that is not a well-formed frame is a protocol error, never a success.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

_PREFIX = struct.Struct(">II")
MAX_HEADER = 16 << 20
MAX_BLOB = 4 << 30


class ProtocolError(Exception):
    """The peer sent something that is not a frame (garbage, truncated, oversized)."""


class ChannelClosed(Exception):
    """End of file: the peer closed its end (it exited or was killed)."""


def encode(header: dict, blob: bytes = b"") -> bytes:
    h = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    return _PREFIX.pack(len(h), len(blob)) + h + blob


def write_all(fd: int, data: bytes, _write=os.write) -> None:
    view = memoryview(data)
    while view:
        n = _write(fd, view)
        view = view[n:]


class Reader:
    """Reads frames from ``fd`` with deadlines (``time.monotonic`` values)."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = bytearray()
        self.eof = False

    def _fill(self, need: int, deadline: float | None) -> None:
        while len(self._buf) < need:
            if self.eof:
                raise ChannelClosed()
            if deadline is not None:
                # a deadline already past still gets one look at what is waiting
                left = max(0.0, deadline - time.monotonic())
                r, _, _ = select.select([self.fd], [], [], left)
                if not r:
                    raise TimeoutError()
            chunk = os.read(self.fd, max(need - len(self._buf), 1 << 16))
            if not chunk:
                self.eof = True
                raise ChannelClosed()
            self._buf += chunk

    def read(self, deadline: float | None = None) -> tuple[dict, bytes]:
        """The next frame; raises TimeoutError (nothing consumed is lost), ChannelClosed, ProtocolError."""
        self._fill(_PREFIX.size, deadline)
        hlen, blen = _PREFIX.unpack_from(self._buf)
        if hlen > MAX_HEADER or blen > MAX_BLOB:
            raise ProtocolError(
                f"frame of {hlen} + {blen} bytes exceeds the limits: not a frame "
                f"(first bytes {bytes(self._buf[:16])!r})"
            )
        self._fill(_PREFIX.size + hlen + blen, deadline)
        start = _PREFIX.size
        raw = bytes(self._buf[start : start + hlen])
        blob = bytes(self._buf[start + hlen : start + hlen + blen])
        del self._buf[: start + hlen + blen]
        try:
            header = json.loads(raw)
        except ValueError as e:
            raise ProtocolError(f"frame header is not JSON ({e}): {raw[:80]!r}") from None
        if not isinstance(header, dict) or not isinstance(header.get("op"), str):
            raise ProtocolError(f"frame header has no 'op': {raw[:80]!r}")
        return header, blob

    @property
    def pending(self) -> int:
        """Bytes received that do not (yet) make a whole frame."""
        return len(self._buf)
