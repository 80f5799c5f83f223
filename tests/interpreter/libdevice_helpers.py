"""A @triton.jit helper in another module, calling libdevice by a name it imported: the
kernel's globals are not the helper's (tests/interpreter/test_libdevice.py)."""

import triton.language as tl
from interp_helpers import jit
from triton.language.extra.libdevice import rsqrt


@jit
def inverse_norm(x, eps):
    return rsqrt(tl.sum(x * x, axis=0) + eps)
