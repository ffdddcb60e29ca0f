"""Analysis: closed forms, oscillation and monotonicity detectors, curvature tools."""

from .oscillation import BandReport, detect_two_bands, monotone_after

__all__ = ["BandReport", "detect_two_bands", "monotone_after"]
