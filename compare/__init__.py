"""compare — rays beside the streamlines of a field: agreement, scenarios, reports, the CLI."""

from wavetraj import load, save, validate

__all__ = ["load", "save", "validate"]
