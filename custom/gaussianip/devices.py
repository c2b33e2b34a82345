"""Which compute devices exist here, and a check of a user's ``--device`` against them.

Checked before anything is created or loaded, so that ``--device cuda`` on a machine
without a GPU (or a misspelling such as ``gpu``) ends in one message that lists the
devices that do exist.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gaussianip.errors import ConfigError
from gaussianip.memory_plan import record_cap

if TYPE_CHECKING:
    import torch

_CUDA = re.compile(r"cuda(?::(\d+))?")


def available_devices() -> list[str]:
    """``cpu``, then ``cuda`` and ``cuda:0`` .. ``cuda:N-1`` where CUDA GPUs are visible, then
    ``mps`` where Apple's Metal backend is."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _describe(devices: list[str]) -> str:
    if len(devices) == 1:
        return "the only device here is 'cpu' (PyTorch sees no CUDA GPU)"
    return "the devices here are " + ", ".join(f"'{d}'" for d in devices)


def check_device(name: str, option: str = "--device") -> str:
    """``name`` when it is a device of this machine; ``ConfigError`` naming the devices
    that exist otherwise."""
    name = str(name).strip()
    if name == "cpu":
        return name  # always there: no need to ask torch (fast for the default)
    devices = available_devices()
    if name in devices:
        return name
    cuda = _CUDA.fullmatch(name)
    if cuda and "cuda" in devices:
        raise ConfigError(
            f"{option} {name}: there is no such GPU; {_describe(devices)}. "
            "(CUDA_VISIBLE_DEVICES limits which GPUs are visible.)"
        )
    if cuda or name == "mps":
        raise ConfigError(
            f"{option} {name} is not available: {_describe(devices)}. "
            f"Use {option} cpu (slow, fine for the tiny config), or run on a machine with "
            "a GPU and a CUDA build of PyTorch."
        )
    raise ConfigError(
        f"{option} '{name}' is not a device name; {_describe(devices)} (write a GPU as "
        "'cuda' or 'cuda:N')."
    )


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (for timing); nothing to wait for on the CPU."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def apply_memory_cap(gib: float | None, device: torch.device) -> float | None:
    """A hard cap on this process's GPU memory (``set_per_process_memory_fraction``): an
    allocation beyond it fails with an out-of-memory error, as on a card of that size."""
    import torch

    if gib is None:
        return None
    if device.type != "cuda":
        raise ConfigError("--memory-cap-gib needs a CUDA device (--device cuda).")
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    if not 0 < gib * 2**30 <= total:
        raise ConfigError(f"--memory-cap-gib {gib} is not between 0 and this GPU's "
                          f"{total / 2**30:.1f} GiB.")  # fmt: skip
    torch.cuda.set_per_process_memory_fraction(gib * 2**30 / total, index)
    record_cap(index, gib)  # the run's memory plan takes the cap as its budget
    return gib
