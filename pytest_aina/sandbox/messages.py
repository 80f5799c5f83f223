"""Values across the pipe: JSON for structure, raw bytes for tensors and arrays.

Only plain values cross: ``torch.Tensor`` and ``numpy.ndarray`` of exactly those types (a
subclass could compute its contents lazily, *after* the timed call), Python scalars,
strings, lists, tuples and string-keyed dicts. Tensors travel as their logical values
(a contiguous copy on the CPU), so the receiver compares values, not layouts.

Class and method references are captured by :func:`capture` in the child *before* the
candidate is imported, so a candidate that patches ``torch.Tensor.cpu`` cannot change
what is sent.
"""

from __future__ import annotations

import sys
from typing import Any


class WireError(TypeError):
    pass


_REFS: dict[str, Any] = {}


def capture() -> None:
    """Remember the classes and methods used to encode, from the modules loaded so far."""
    torch = sys.modules.get("torch")
    if torch is not None and "torch" not in _REFS:
        T = torch.Tensor
        _REFS["torch"] = {
            "Tensor": T,
            "detach": T.detach,
            "cpu": T.cpu,
            "contiguous": T.contiguous,
            "reshape": T.reshape,
            "view": T.view,
            "numpy": T.numpy,
            "uint8": torch.uint8,
            "storage": T.untyped_storage,
            "shape": lambda t: tuple(t.shape),
            "dtype": lambda t: str(t.dtype).removeprefix("torch."),
            "device": lambda t: str(t.device),
        }
    np = sys.modules.get("numpy")
    if np is not None and "numpy" not in _REFS:
        _REFS["numpy"] = {
            "ndarray": np.ndarray,
            "ascontiguousarray": np.ascontiguousarray,
            "may_share_memory": np.may_share_memory,
        }


def _arrays():
    capture()
    return _REFS.get("torch"), _REFS.get("numpy")


def encode(value: Any) -> tuple[Any, bytes]:
    """(JSON-able description, blob) for ``value``; raises :class:`WireError` on anything else."""
    chunks: list[bytes] = []
    offset = [0]
    tr, nr = _arrays()

    def put(b: bytes) -> tuple[int, int]:
        chunks.append(b)
        start = offset[0]
        offset[0] += len(b)
        return start, len(b)

    def enc(v: Any, where: str) -> Any:
        t = type(v)
        if v is None or t in (bool, int, str):
            return v
        if t is float:
            return {"float": repr(v)}  # keeps nan/inf exact through JSON
        if t in (list, tuple):
            return {"list" if t is list else "tuple": [enc(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if t is dict:
            if not all(type(k) is str for k in v):
                raise WireError(f"{where}: dict keys must be strings")
            return {"dict": {k: enc(x, f"{where}[{k!r}]") for k, x in v.items()}}
        if tr is not None and t is tr["Tensor"]:
            flat = tr["reshape"](tr["contiguous"](tr["cpu"](tr["detach"](v))), (-1,))
            raw = tr["numpy"](tr["view"](flat, tr["uint8"])).tobytes()
            off, n = put(raw)
            return {
                "torch": {
                    "dtype": tr["dtype"](v),
                    "shape": list(tr["shape"](v)),
                    "device": tr["device"](v),
                    "off": off,
                    "n": n,
                }
            }
        if nr is not None and t is nr["ndarray"]:
            raw = nr["ascontiguousarray"](v).tobytes()
            off, n = put(raw)
            return {"numpy": {"dtype": v.dtype.str, "shape": list(v.shape), "off": off, "n": n}}
        if tr is not None and isinstance(v, tr["Tensor"]) or nr is not None and isinstance(v, nr["ndarray"]):
            raise WireError(
                f"{where}: {t.__module__}.{t.__qualname__} is a subclass of a tensor/array; only "
                "plain tensors are accepted (a subclass can compute its values after timing)"
            )
        raise WireError(f"{where}: values of type {t.__module__}.{t.__qualname__} cannot be returned")

    desc = enc(value, "output")
    return desc, b"".join(chunks)


def decode(desc: Any, blob: bytes) -> Any:
    """The value :func:`encode` described, with tensors on the CPU."""
    if desc is None or isinstance(desc, (bool, int, str)):
        return desc
    ((kind, body),) = desc.items()
    if kind == "float":
        return float(body)
    if kind == "list":
        return [decode(x, blob) for x in body]
    if kind == "tuple":
        return tuple(decode(x, blob) for x in body)
    if kind == "dict":
        return {k: decode(x, blob) for k, x in body.items()}
    raw = blob[body["off"] : body["off"] + body["n"]]
    if kind == "torch":
        import torch

        dtype = getattr(torch, body["dtype"])
        if not raw:
            return torch.empty(body["shape"], dtype=dtype)
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(body["shape"])
    if kind == "numpy":
        import numpy as np

        return np.frombuffer(raw, dtype=np.dtype(body["dtype"])).reshape(body["shape"]).copy()
    raise WireError(f"unknown value kind {kind!r}")


def arrays_in(value: Any) -> list[Any]:
    """The tensors and arrays inside a (nested) value, in order."""
    tr, nr = _arrays()
    out: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif (tr is not None and isinstance(v, tr["Tensor"])) or (nr is not None and isinstance(v, nr["ndarray"])):
            out.append(v)

    walk(value)
    return out


def shares_memory(a: Any, b: Any) -> bool:
    """Whether two tensors/arrays overlap in memory (by storage ranges)."""
    tr, nr = _arrays()
    if tr is not None and isinstance(a, tr["Tensor"]) and isinstance(b, tr["Tensor"]):
        sa, sb = tr["storage"](a), tr["storage"](b)
        pa, pb = sa.data_ptr(), sb.data_ptr()
        na, nb = sa.nbytes(), sb.nbytes()
        if na == 0 or nb == 0:
            return False
        return pa < pb + nb and pb < pa + na
    if nr is not None and isinstance(a, nr["ndarray"]) and isinstance(b, nr["ndarray"]):
        return bool(nr["may_share_memory"](a, b))
    return False
