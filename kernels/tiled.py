"""What the launchers of the tiled kernels (cross_entropy, matmul, attention) share.

The row-wise helpers (``kernels/rowwise.py``) assume one tile shape, ``BLOCK_N`` by
``ROWS_PER_PROGRAM``; these kernels have others (``BLOCK_V``; ``BLOCK_M x BLOCK_N x
BLOCK_K``), and two of them stage tiles in shared memory, which a config can exhaust.
"""

from __future__ import annotations

import torch

INDEX_DTYPES = (torch.int32, torch.int64)

#: Shared memory one program may use on sm_90 (H100/H200: 227 KiB, opt-in). Used for a CPU
#: device, which has no shared memory to ask about, so that a config the CPU accepts also
#: fits the GPU this project targets. On a GPU, the device's own figure is used.
SM90_SHARED_MEMORY = 232448


def shared_memory_limit(device: torch.device) -> int:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return getattr(props, "shared_memory_per_block_optin", SM90_SHARED_MEMORY)
    return SM90_SHARED_MEMORY


def check_shared_memory(fn: str, cfg: dict, needed: int, device: torch.device) -> None:
    """Refuse a config whose pipelined tiles cannot fit one program's shared memory.

    ``needed`` is the launcher's estimate (each pipeline stage holds one tile of every
    operand); Triton would otherwise fail at launch on a GPU, and a CPU device, which
    has no shared memory, would accept a config no GPU can run.
    """
    limit = shared_memory_limit(device)
    if needed > limit:
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items())
        raise ValueError(f"{fn}: {shown} needs ~{needed} bytes of shared memory per program; the limit is {limit}")


def check_registers(fn: str, cfg: dict, accumulators: int) -> None:
    """Refuse a config whose float32 accumulators take more than half of what a thread may
    hold (at most 128 of its registers), leaving the rest for operands and addresses.

    A thread may use 65536 / (32 * num_warps) registers, at most 255. Beyond this bound
    ptxas fails outright (a 256 x 256 accumulator over 16 warps: "Insufficient registers") or
    spills the accumulator to local memory, which no tile size repays.
    """
    per_thread = accumulators // (32 * cfg["num_warps"])
    limit = min(128, 65536 // (32 * cfg["num_warps"]) // 2)
    if per_thread > limit:
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items())
        raise ValueError(
            f"{fn}: {shown} keeps {per_thread} float32 accumulators per thread; "
            f"at most {limit} fit with num_warps={cfg['num_warps']}"
        )


def check_index_tensor(fn: str, name: str, t, shape: tuple, device) -> None:
    """An integer tensor (targets, indices) of the given shape, on ``device``."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in INDEX_DTYPES:
        raise ValueError(f"{fn}: {name} has dtype {t.dtype}; expected int64 or int32")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {list(shape)}, got {list(t.shape)}")
    if t.device != device:
        raise ValueError(f"{fn}: {name} is on {t.device} but the input is on {device}")


def check_same(fn: str, names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    """Operands that must agree in dtype and device."""
    first = tensors[0]
    for name, t in zip(names[1:], tensors[1:]):
        if t.dtype != first.dtype:
            raise ValueError(f"{fn}: {name} has dtype {t.dtype} but {names[0]} has {first.dtype}")
        if t.device != first.device:
            raise ValueError(f"{fn}: {name} is on {t.device} but {names[0]} is on {first.device}")
