"""ndgm: what gradient methods do on non-differentiable losses, runnable and checkable."""

__version__ = "0.1.0"
