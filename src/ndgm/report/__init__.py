"""Report: claims tables and the HTML report, built from stored run folders only."""

from .claims import claims_markdown, claims_table

__all__ = ["claims_markdown", "claims_table"]
