"""A call's device and dtype in telemetry's words, without importing torch.

Dispatch keys its routes on these and the recorder its windows, so a device is described one
way: the driver's name and ``sm_XY`` (CUDA) or ``gfxNNN`` (ROCm), or ``("cpu", "cpu")``.
torch is read through ``sys.modules``: a CUDA tensor exists, so the caller has imported it.
"""

from __future__ import annotations

import sys

_DEVICES: dict = {}  # torch device -> (name, arch); asking the driver costs microseconds


def describe_device(dev) -> tuple[str, str]:
    """(name, arch) of a torch device, e.g. ("NVIDIA H100 80GB HBM3", "sm_90"), ("cpu", "cpu")."""
    info = _DEVICES.get(dev)
    if info is None:
        info = _DEVICES[dev] = _ask(dev)
    return info


def describe_tensor(x) -> tuple[str, str, str]:
    """(dtype, device name, arch) of a torch tensor, e.g. ("float16", "NVIDIA L4", "sm_89")."""
    return (str(x.dtype).removeprefix("torch."), *describe_device(x.device))


def _ask(dev) -> tuple[str, str]:
    if dev.type != "cuda":
        return (dev.type, dev.type)
    torch = sys.modules["torch"]
    props = torch.cuda.get_device_properties(dev)
    if getattr(torch.version, "hip", None):
        arch = getattr(props, "gcnArchName", "gfx").split(":")[0]
    else:
        arch = f"sm_{props.major}{props.minor}"
    return (props.name, arch)
