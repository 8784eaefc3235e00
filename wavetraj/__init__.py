"""Shared core of the wavetraj project: the Dataset contract and its storage.

Why a fourth, tiny package?  ``wavefield`` and ``raytrace`` must never import each
other, yet both produce Datasets that ``compare`` (and users) read the same way. The
contract — dims, required variables, ``units``/``long_name`` on everything, provenance
attrs — and the atomic netCDF storage are written once here and imported by all three.
This package holds no physics and imports none of the others, so the independence of
``wavefield`` and ``raytrace`` is kept: each could be shipped alone with this module.
"""

__version__ = "0.1.0"

from wavetraj.schema import (
    RAY_STATUSES,
    SchemaError,
    field_dataset,
    provenance,
    ray_dataset,
    validate,
    validate_field,
    validate_rays,
)
from wavetraj.storage import WavetrajFileError, load, save

__all__ = [
    "RAY_STATUSES",
    "SchemaError",
    "WavetrajFileError",
    "__version__",
    "field_dataset",
    "load",
    "provenance",
    "ray_dataset",
    "save",
    "validate",
    "validate_field",
    "validate_rays",
]
