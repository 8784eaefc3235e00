"""raytrace — the Hamiltonian ray system of the seed paper (eqs. 5–10) with its Wave Potential.

Tracers return a ray Dataset (see :mod:`wavetraj.schema`): x, z, kx, kz, R, Q, t, σ per
ray and step, a per-ray status, and provenance. This package never imports :mod:`wavefield`.
"""

from raytrace.dynamics import KleinGordon, Schrodinger
from raytrace.integrate import Integrator
from raytrace.launch import launch_points
from raytrace.tracer import trace
from wavetraj import load, ray_dataset, save, validate_rays

__all__ = [
    "Integrator",
    "KleinGordon",
    "Schrodinger",
    "launch_points",
    "load",
    "ray_dataset",
    "save",
    "trace",
    "validate_rays",
]
