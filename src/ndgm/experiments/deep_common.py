"""Parameters and helpers shared by the deep-network experiments (`activations`, `l1_deep`)."""

from __future__ import annotations

from ..data.images import ImageData, load_images
from .base import Param

__all__ = ["common_deep_params", "load_data"]


def common_deep_params(train_size_quick: int | None, val_size_quick: int | None) -> tuple[Param, ...]:
    """Data, checkpoint and resume parameters shared by the deep-network experiments."""
    return (
        Param("data_dir", "", "str", "CIFAR-10 python folder (cifar-10-batches-py); empty = offline digits"),
        Param("train_size", 0, "int", "use the first N training images, 0 = all", minimum=0, quick=train_size_quick),
        Param("val_size", 0, "int", "use the first N validation images, 0 = all", minimum=0, quick=val_size_quick),
        Param("checkpoint_dir", "", "str", "folder for per-epoch checkpoints (default: <runs>/checkpoints)"),
        Param("resume", False, "bool", "continue from the checkpoints of an interrupted run with this config"),
        Param("threads", 0, "int", "CPU threads for torch, 0 = torch's default (on a shared CPU 1 avoids "
              "oversubscription, often 10x faster)", minimum=0, quick=1),
    )


def load_data(config: dict, normalisation: str) -> ImageData:
    """The experiment's images: CIFAR-10 from ``--data-dir`` or the digits, cut to the sizes asked."""
    return load_images(config["data_dir"] or None, normalisation).subset(config["train_size"], config["val_size"])
