"""Splines of a field's derived quantities on its grid, with where they can be trusted.

Both the field-driven rays (:class:`raytrace.wave_potential.FieldPotential`: Q and ∂Q/∂x)
and the streamlines (``compare.streamlines``: ∇φ, Q, R) read a field Dataset the same
way: each quantity as a spline on the (z, x) grid with the cells where it is undefined
(nodes: the amplitude below a floor) filled with zeros, a mask of those cells, and two
margins that stop a ray or streamline — ``node_margin`` < 0 once it enters a cell that
touches an undefined point, ``domain_margin`` < 0 once it leaves the grid in x. Written
once here (no physics: the quantities come from the callers).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.interpolate import RectBivariateSpline, RegularGridInterpolator

#: Degree of the splines of derived quantities (Q, ∇φ): quintic, so Q's x-derivative is
#: still a smooth quartic; the amplitude R takes a bicubic one.
SPLINE_DEGREE = 5


class FieldInterpolant:
    """The grid of ``field``, a mask of ``untrusted`` points (shape z × x) and R = |u|.

    ``outside`` is how the mask reads off the grid: 0.0 (trusted: the domain margin stops
    there instead) or 1.0 (untrusted)."""

    def __init__(self, field: xr.Dataset, untrusted: np.ndarray, *, outside: float = 0.0):
        self.x = field["x"].values
        self.z = field["z"].values
        self.untrusted = np.asarray(untrusted, bool)
        self._mask = RegularGridInterpolator(
            (self.z, self.x), self.untrusted.astype(float), bounds_error=False, fill_value=outside
        )
        self.R = RectBivariateSpline(self.z, self.x, np.abs(field["envelope"].values), kx=3, ky=3)

    def spline(
        self, values: np.ndarray, degree: int = SPLINE_DEGREE, undefined: np.ndarray | None = None
    ) -> RectBivariateSpline:
        """A spline of ``values`` (z × x) with the ``undefined`` points (default: the
        untrusted ones) set to zero."""
        undefined = self.untrusted if undefined is None else undefined
        filled = np.where(undefined, 0.0, np.nan_to_num(values))
        return RectBivariateSpline(self.z, self.x, filled, kx=degree, ky=degree)

    def amplitude(self, x, z) -> np.ndarray:
        """R = |u| of the field at (x, z) (bicubic spline)."""
        return self.R.ev(z, x)

    def node_margin(self, x, z) -> np.ndarray:
        """> 0 inside trusted cells; < 0 once (x, z) is in a cell touching an untrusted point."""
        return 0.5 - self._mask(np.column_stack([np.broadcast_to(z, x.shape), x]))

    def domain_margin(self, x) -> np.ndarray:
        """> 0 inside the grid's x range, < 0 outside it."""
        return np.minimum(x - self.x[0], self.x[-1] - x)
