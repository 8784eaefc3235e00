"""wavefield — the stationary wave equation ∇²u + K²(x, z) u = 0 on an (x, z) grid.

Solvers return a field Dataset (see :mod:`wavetraj.schema`): the complex envelope A with
u = A·exp(i·k_ref·z), the medium K², coordinates with units, and provenance.
This package never imports :mod:`raytrace`.
"""

from wavetraj import field_dataset, load, save, validate_field

__all__ = ["field_dataset", "load", "save", "validate_field"]
