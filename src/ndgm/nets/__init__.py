"""Models: small MLPs for curvature studies and the VGG family of the paper (no torchvision)."""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model``.

    Parameters
    ----------
    model : nn.Module
    trainable_only : bool
        Count only parameters with ``requires_grad`` (frozen ones left out).

    Buffers (e.g. BatchNorm running statistics) are not parameters and are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
