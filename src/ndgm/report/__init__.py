"""Report: claims tables and figures built from results or stored runs."""

from .claims import claims_markdown, claims_table

__all__ = ["claims_markdown", "claims_table"]
