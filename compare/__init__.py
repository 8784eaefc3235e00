"""compare — rays beside the streamlines of a field: agreement, scenarios, reports, the CLI."""

from compare.agreement import agreement
from compare.streamlines import streamlines
from wavetraj import load, save, validate

__all__ = ["agreement", "load", "save", "streamlines", "validate"]
