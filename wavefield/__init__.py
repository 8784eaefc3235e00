"""wavefield — the stationary wave equation ∇²u + K²(x, z) u = 0 on an (x, z) grid.

Solvers return a field Dataset (see :mod:`wavetraj.schema`): the complex envelope A with
u = A·exp(i·k_ref·z), the medium K², coordinates with units, and provenance.
This package never imports :mod:`raytrace`.
"""

from wavefield.angular import angular_spectrum
from wavefield.helmholtz import HelmholtzSolver, grid_for, solve_helmholtz
from wavefield.paraxial import Absorber, propagate_paraxial
from wavefield.pml import PML
from wavetraj import field_dataset, load, save, validate_field
from wavetraj.derived import amplitude, phase_gradient, wave_potential

__all__ = [
    "PML",
    "Absorber",
    "HelmholtzSolver",
    "amplitude",
    "angular_spectrum",
    "field_dataset",
    "grid_for",
    "load",
    "phase_gradient",
    "propagate_paraxial",
    "save",
    "solve_helmholtz",
    "validate_field",
    "wave_potential",
]
