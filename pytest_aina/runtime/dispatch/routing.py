"""Serving a kernel's calls: each call goes to the variant its table chooses for it.

The generic variant is passed to :func:`dispatcher` by the kernel module itself, so it stays
reachable even without a table, and ``AINA_DISPATCH_PIN=generic`` (or
``softmax=generic,rms_norm=...``) pins calls to a named variant: the rollback switch that
needs no deploy.

The choice is cached per (dims, dtype, device): after the first call for a key, dispatch
costs computing the dims (or, with ``dims_from_first``, reading the first argument's shape),
one dict lookup, and the call. If a recorder is installed (:func:`pytest_aina.runtime.install`),
the call is also timed (CUDA events on a GPU, the wall clock elsewhere) and reported under
the variant that served it; without one, kernels work the same.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest_aina.runtime.recorder as _recorder
from pytest_aina.runtime.device import describe_tensor
from pytest_aina.runtime.dispatch.reader import DispatchTableError, load_table
from pytest_aina.runtime.dispatch.variants import Table, Variant

_MAX_ROUTES = 4096  # distinct (dims, dtype, device) keys cached per kernel before the cache restarts


@dataclass(frozen=True)
class Route:
    """Where calls with one (dims, dtype, device) key go, and how the recorder names them."""

    variant: str
    fn: Callable
    record_key: tuple  # (kernel, variant, dims items, dtype, device name, arch, timing)
    cuda: bool


def _pins() -> dict[str, str]:
    """AINA_DISPATCH_PIN: 'generic' (every kernel) or 'softmax=generic,rms_norm=name'."""
    text = os.environ.get("AINA_DISPATCH_PIN", "").strip()
    if not text:
        return {}
    if "=" not in text:
        return {"*": text}
    return dict(part.strip().split("=", 1) for part in text.split(",") if part.strip())


def _cuda_elapsed(start, end) -> float:
    end.synchronize()  # on the recorder's thread, when the window closes
    return start.elapsed_time(end) / 1000.0


class Dispatcher:
    """Calls a kernel's best variant for each call; see the module docstring."""

    def __init__(
        self,
        kernel: str,
        dims: Callable[..., dict],
        generic: Callable,
        table: str | Path | None = None,
        *,
        dims_from_first: bool = False,
    ):
        self.kernel = kernel
        self._dims = dims
        self._dims_from_first = dims_from_first
        self._generic = generic
        self._table_path = Path(table) if table is not None else default_table_path(kernel, generic)
        self._table: Table | None = None
        self._routes: dict = {}
        self._fns: dict[str, Callable] = {}
        self._pin: str | None = None
        self.resolutions = 0  # how many times a route was computed (not served from the cache)

    @property
    def table(self) -> Table:
        if self._table is None:
            fn = self._generic
            own = f"{fn.__module__}:{fn.__qualname__}"
            if self._table_path.exists():
                table = load_table(self._table_path, kernel=self.kernel)
                if table.generic.function != own:
                    raise DispatchTableError(
                        [
                            f"{self._table_path}:{table.generic.line}: variants[{table.generic.index}]"
                            f".function: 'generic' is {table.generic.function!r} but the kernel "
                            f"module dispatches to {own}"
                        ]
                    )
            else:  # no table yet: the generic variant serves everything
                table = Table(self.kernel, (Variant("generic", own),))
            self._table = table
            pins = _pins()
            pin = pins.get(self.kernel, pins.get("*"))
            if pin is not None:
                self.pin(pin)
        return self._table

    def reload(self) -> None:
        """Re-read the table (after it changed) and forget every cached route."""
        self._table = None
        self._routes.clear()
        self._fns.clear()

    def pin(self, name: str | None) -> None:
        """Serve every call with the variant ``name`` (None: choose again per call)."""
        if name is not None and name != "generic" and self.table.get(name) is None:
            raise ValueError(
                f"{self.kernel}: no variant {name!r} in {self._table_path} "
                f"(known: {', '.join(v.name for v in self.table.variants)})"
            )
        self._pin = name
        self._routes.clear()

    def variant(self, name: str) -> Callable:
        """The callable of a named variant ('generic' is always there)."""
        fn = self._fns.get(name)
        if fn is None:
            if name == "generic":
                fn = self._generic
            else:
                v = self.table.get(name)
                if v is None:
                    raise ValueError(f"{self.kernel}: no variant {name!r} in {self._table_path}")
                fn = v.load()
            self._fns[name] = fn
        return fn

    def choose(self, dims: dict, dtype: str, arch: str) -> str:
        """The name of the variant that serves a call with these dims, dtype and arch."""
        table = self.table
        if self._pin is not None:
            return self._pin
        return table.select(dims, dtype, arch).name

    def _route(self, key, dims: dict, x) -> Route:
        self.resolutions += 1
        dtype, name, arch = describe_tensor(x)
        chosen = self.choose(dims, dtype, arch)
        cuda = x.device.type == "cuda"
        route = Route(
            chosen,
            self.variant(chosen),
            (self.kernel, chosen, tuple(dims.items()), dtype, name, arch, "cuda_event" if cuda else "wall"),
            cuda,
        )
        if len(self._routes) >= _MAX_ROUTES:
            self._routes.clear()
        self._routes[key] = route
        return route

    def __call__(self, *args, **kwargs):
        x = args[0]
        if self._dims_from_first:
            # the dims are a function of x's shape alone: key on it, and compute them only
            # when the route is not cached
            key = (x.shape, x.dtype, x.device)
            route = self._routes.get(key)
            if route is None:
                route = self._route(key, self._dims(*args, **kwargs), x)
        else:
            dims = self._dims(*args, **kwargs)
            key = (*dims.values(), x.dtype, x.device)
            route = self._routes.get(key)
            if route is None:
                route = self._route(key, dims, x)
        rec = _recorder.ACTIVE
        if rec is None:
            return route.fn(*args, **kwargs)
        if route.cuda:
            torch = sys.modules["torch"]
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = route.fn(*args, **kwargs)
            end.record()
            rec.add_pending(route.record_key, functools.partial(_cuda_elapsed, start, end))
            return out
        t0 = time.perf_counter()
        out = route.fn(*args, **kwargs)
        rec.add(route.record_key, time.perf_counter() - t0)
        return out


def default_table_path(kernel: str, generic: Callable) -> Path:
    """``variants/<kernel>.yaml`` beside the module that defines the kernel's generic variant."""
    module = sys.modules[generic.__module__]
    return Path(module.__file__).resolve().parent / "variants" / f"{kernel}.yaml"


def dispatcher(
    kernel: str,
    dims: Callable[..., dict],
    generic: Callable,
    *,
    table: str | Path | None = None,
    dims_from_first: bool = False,
) -> Dispatcher:
    """The dispatch function of a kernel module's public entry point::

        _dispatch = dispatcher("softmax", softmax_dims, softmax_generic, dims_from_first=True)

        def softmax(x):
            return _dispatch(x)

    ``dims`` maps the call's arguments to the spec's named dims; ``generic`` is the
    variant that always remains. ``dims_from_first`` says the dims depend on the first
    argument's shape only (true of row-wise kernels): the cache is then keyed on that
    shape, dtype and device, and ``dims`` runs only when a route is not cached. The table
    (``kernels/variants/<kernel>.yaml`` unless ``table`` is given) is read on the first call.
    """
    return Dispatcher(kernel, dims, generic, table, dims_from_first=dims_from_first)
