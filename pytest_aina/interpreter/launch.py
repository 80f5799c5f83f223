"""A kernel launch under the interpreter: upstream's ``GridExecutor.__call__`` with the
launch-level differences from a GPU removed, and the sanitizer's hooks.

Launch-level deviations of triton 3.9.0's interpreter, fixed here:

* **Float scalar arguments** reach the kernel as Python floats, so ``eps.to(tl.float32)``
  or ``eps * 2`` inside the kernel fails. GPU: the launcher passes a Python float as a
  32-bit float (``mangle_type(1e-6) == "fp32"``), a ``tl.tensor`` like any scalar. Here:
  a float32 scalar tensor, rounded to nearest like the launcher's C ``float``.
* **Library helpers.** ``tl.sum``, ``tl.max``, ``tl.softmax``, ``tl.cdiv`` and the other
  functions of ``triton.language.standard`` are ``@triton.jit`` functions, created when
  ``triton.language`` is imported: unless ``TRITON_INTERPRET=1`` was already set then (not
  the case when a test runner imported triton before a kernel module set it), they are
  compiled-mode ``JITFunction`` objects, and calling one from an interpreted kernel raises
  "Cannot call @triton.jit'd outside of the scope of a kernel". The same holds for a
  user's helper defined before the variable was set. GPU: any ``@triton.jit`` function is
  callable from a kernel. Here: inside an interpreted launch, a ``JITFunction`` call runs
  the function through the interpreter.
* **Floating-point exceptions.** numpy reports overflow, division by zero and invalid
  operations as ``RuntimeWarning``; under pytest's ``filterwarnings = error`` (this
  project's setting, and common) the kernel then fails where a GPU computes inf or NaN
  without trapping (IEEE 754 default handling). Here: the launch runs under
  ``numpy.errstate(all="ignore")``.

Also per launch: libdevice functions through the interpreter (``libdevice.py``), and with
the sanitizer the tagged pointer arguments (``sanitizer.py``) and guard zones
(``guards.py``). A :class:`MemoryViolation` propagates as itself, not wrapped in
``InterpreterError``, so a harness can attribute it.
"""

from __future__ import annotations

import inspect

import numpy as np
import triton
import triton.language as tl
from triton._utils import _tuple_create
from triton.runtime import interpreter as _interp
from triton.runtime.jit import JITFunction, TensorWrapper
from triton.tools.tensor_descriptor import TensorDescriptor

from pytest_aina.interpreter import libdevice, sanitizer
from pytest_aina.interpreter.guards import GuardZones
from pytest_aina.interpreter.patching import Patches
from pytest_aina.interpreter.violations import MemoryViolation


class Settings:
    """What install() chose for launches, and whether one is running."""

    sanitize: bool = False
    launches_running: int = 0


#: id(JITFunction) -> (the function, its interpreted twin). By id: a JITFunction hashes by
#: its cache key, which walks its globals (and rejects the interpreter's patched ``tl``).
_interpreted_helpers: dict[int, tuple[JITFunction, object]] = {}


def _wrap_jit_call(original, *, always: bool = False):

    def __call__(self, *args, **kwargs):
        """A compiled-mode @triton.jit function called from an interpreted kernel runs
        interpreted, as it would have been had TRITON_INTERPRET been set when it was defined.
        Outside a launch (``always`` False) it raises as before."""
        if not always and not Settings.launches_running:
            return original(self, *args, **kwargs)
        entry = _interpreted_helpers.get(id(self))
        if entry is None:
            entry = _interpreted_helpers[id(self)] = (self, _interp.InterpretedFunction(self.fn))
        return entry[1](*args, **kwargs)

    return __call__


def interpret_library_helpers(patches: Patches, *, always: bool = False) -> None:
    """Only the library-helper fix (see the module docstring); ``always`` also outside
    :func:`grid_executor_call`, for showing the raw interpreter's other deviations in tests."""
    patches.setattr(JITFunction, "__call__", _wrap_jit_call(JITFunction.__call__, always=always))


def _convert(name: str, arg, launch: sanitizer.Launch | None):
    """A host argument as the kernel sees it (upstream's ``_implicit_cvt`` plus floats), a
    pointer tagged with its argument when the sanitizer is on."""
    if isinstance(arg, float):  # numpy.float64 too; the GPU launcher rejects numpy.float32
        handle = _interp.TensorHandle(np.array([arg], dtype=np.float32), tl.float32)
        return tl.tensor(handle, tl.float32)
    if isinstance(arg, tuple) and not isinstance(arg, TensorDescriptor):
        return _tuple_create(arg, [_convert(f"{name}[{i}]", item, launch) for i, item in enumerate(arg)])
    value = _interp._implicit_cvt(arg)
    if launch is None:
        return value
    if isinstance(arg, TensorDescriptor):
        launch.tag(f"{name}.base", _unwrapped(arg.base), value.handle.base)
    elif hasattr(arg, "data_ptr") and sanitizer.is_pointer(value):
        launch.tag(name, _unwrapped(arg), value.handle)
    return value


def _unwrapped(arg):
    return arg.base if isinstance(arg, TensorWrapper) else arg


def _violation_in(error: BaseException) -> MemoryViolation | None:
    """The MemoryViolation behind ``error`` (device-function calls wrap it in InterpreterError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, MemoryViolation):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def grid_executor_call(self, *args_dev, **kwargs):
    """Run every program of the grid (``GridExecutor.__call__``, triton 3.9.0, with the
    differences described in the module docstring)."""
    argspec = inspect.getfullargspec(self.fn)
    kwargs = {k: v for k, v in kwargs.items() if k in argspec.args or k in argspec.kwonlyargs}
    guards = GuardZones() if Settings.sanitize else None
    if guards is not None:
        args_dev, kwargs = _relocate(guards, argspec.args, args_dev, kwargs)
    args_hst, kwargs_hst = self._init_args_hst(args_dev, kwargs)
    for hook in self.pre_run_hooks:
        hook(*args_hst, **kwargs_hst)
    launch = sanitizer.Launch(self.fn) if Settings.sanitize else None
    patch_scope = _interp._patch_lang(self.fn)
    patches = Patches()
    previous, sanitizer.active = sanitizer.active, launch
    Settings.launches_running += 1
    try:
        libdevice.patch_launch(patches, self.fn.__globals__)
        with np.errstate(all="ignore"):
            args = inspect.getcallargs(self.fn, *args_hst, **kwargs_hst)
            args = {name: arg if name in self.constexprs else _convert(name, arg, launch) for name, arg in args.items()}
            grid = self.grid(args) if callable(self.grid) else self.grid
            assert len(grid) <= 3, "grid must have at most 3 dimensions"
            grid = grid + (1,) * (3 - len(grid))
            _interp.interpreter_builder.set_grid_dim(*grid)
            try:
                for x in range(grid[0]):
                    for y in range(grid[1]):
                        for z in range(grid[2]):
                            _interp.interpreter_builder.set_grid_idx(x, y, z)
                            self.fn(**args)
            except Exception as e:
                violation = _violation_in(e)
                if violation is not None:
                    raise violation from None
                if triton.knobs.compilation.front_end_debugging:
                    raise
                raise _interp.InterpreterError(repr(e)) from e
    finally:
        Settings.launches_running -= 1
        sanitizer.active = previous
        patches.restore()
        patch_scope.restore()
    if _copied_to_host(args_dev, args_hst) or _copied_to_host(list(kwargs.values()), list(kwargs_hst.values())):
        self._restore_args_dev(args_dev, args_hst, kwargs, kwargs_hst)
    if guards is not None:
        guards.finish(self.fn.__name__)


def _copied_to_host(dev: list, hst: list) -> bool:
    """True if some tensor argument was copied to the host for the launch (a GPU tensor).
    A CPU tensor is its own host copy; upstream copies it onto itself after every launch,
    which for a tensor that spans gigabytes the kernel touches sparsely reads them all."""
    for d, h in zip(dev, hst):
        if isinstance(d, tuple) and isinstance(h, tuple):
            copied = _copied_to_host(list(d), list(h))
        elif isinstance(d, TensorDescriptor):
            copied = _copied_to_host([d.base], [h.base])
        elif hasattr(d, "data_ptr") and hasattr(h, "data_ptr"):
            copied = _unwrapped(d).untyped_storage().data_ptr() != _unwrapped(h).untyped_storage().data_ptr()
        else:
            copied = False
        if copied:
            return True
    return False


def _relocate(guards: GuardZones, names: list[str], args_dev: tuple, kwargs: dict) -> tuple[tuple, dict]:
    positional = dict(zip(names, args_dev))
    extra = args_dev[len(positional) :]  # more positionals than names: left as they are
    moved = guards.relocate({**positional, **kwargs})
    return tuple(moved[name] for name in positional) + tuple(extra), {k: moved[k] for k in kwargs}


def _wrap_device_call(original):

    def __call__(self, *args, **kwargs):
        """A @triton.jit helper called from a kernel: libdevice names its module bound are
        interpreted for the call, as the kernel's own are for the launch."""
        patches = Patches()
        try:
            libdevice.patch_launch(patches, self.fn.__globals__)
            return original(self, *args, **kwargs)
        finally:
            patches.restore()

    return __call__


def install(patches: Patches, *, sanitize: bool) -> None:
    patches.setattr(_interp.GridExecutor, "__call__", grid_executor_call)
    patches.setattr(_interp.InterpretedFunction, "__call__", _wrap_device_call(_interp.InterpretedFunction.__call__))
    interpret_library_helpers(patches)
    patches.setattr(Settings, "sanitize", sanitize)
