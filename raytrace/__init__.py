"""raytrace — the Hamiltonian ray system of the seed paper (eqs. 5–10) with its Wave Potential.

Tracers return a ray Dataset (see :mod:`wavetraj.schema`): x, z, kx, kz, R, Q, t, σ per
ray and step, a per-ray status, and provenance. This package never imports :mod:`wavefield`.
"""

from wavetraj import load, ray_dataset, save, validate_rays

__all__ = ["load", "ray_dataset", "save", "validate_rays"]
