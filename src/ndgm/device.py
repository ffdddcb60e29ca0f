"""Device and dtype resolution shared by the engine, the experiments and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import NdgmError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """Map ``'float64'``/``'float32'`` (or a torch dtype) to a torch dtype."""
    if isinstance(name, torch.dtype):
        if name in DTYPES.values():
            return name
        raise NdgmError(f"unsupported dtype {name}; choose one of {', '.join(DTYPES)}")
    if name not in DTYPES:
        raise NdgmError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def resolve_device(name: str | torch.device) -> torch.device:
    """Map ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'`` to an available device.

    ``'auto'`` picks CUDA when it is available and the CPU otherwise. Asking for a device
    that this machine lacks is an error, not a silent fallback.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise NdgmError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NdgmError(f"device {name!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NdgmError(f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise NdgmError("device 'mps' requested but MPS is not available on this machine")
        return dev
    raise NdgmError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (``n = 0``: unchanged), then restore.

    Tiny tensors (a few hundred entries, microseconds per op) gain nothing from a thread
    pool, and on a shared or oversubscribed CPU OpenMP's spinning threads can make such work
    ten times slower or worse.
    """
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
