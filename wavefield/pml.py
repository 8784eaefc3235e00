"""Complex coordinate-stretching perfectly matched layer (PML).

In the layer, ∂ξ → (1/s) ∂ξ with s(ξ) = 1 + i σ(ξ)/k and a polynomial grading
σ(d) = σ_max (d/L)^m, d the depth into a layer of thickness L. A wave e^{ikξ} decays as
exp(−∫σ dξ); the round trip to the Dirichlet wall and back is attenuated by
exp(−2 σ_max L/(m + 1)) (times cos θ at incidence angle θ), so σ_max is set from the
requested theoretical reflection R: σ_max = (m + 1) ln(1/R) / (2L). The discrete
reflection from the grading is the larger term in practice; it falls with thickness.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PML:
    """PML settings.

    Parameters
    ----------
    wavelengths : float
        Thickness of each layer, in launch wavelengths λ0 (added outside the grid given).
    order : int
        Polynomial grading m of σ(d) = σ_max (d/L)^m.
    reflection : float
        Theoretical normal-incidence round-trip reflection that sets σ_max.
    """

    wavelengths: float = 1.5
    order: int = 3
    reflection: float = 1e-10

    def __post_init__(self):
        if not (np.isfinite(self.wavelengths) and self.wavelengths > 0):
            raise ValueError(
                f"PML.wavelengths must be a positive thickness in wavelengths; got "
                f"{self.wavelengths!r} (try 1.5)"
            )
        if int(self.order) != self.order or not 1 <= self.order <= 6:
            raise ValueError(f"PML.order must be an integer from 1 to 6; got {self.order!r}")
        if not 0 < self.reflection < 1:
            raise ValueError(f"PML.reflection must be in (0, 1); got {self.reflection!r}")

    def cells(self, wavelength: float, h: float) -> int:
        """Number of grid cells in one layer for the given wavelength and grid step."""
        return max(4, int(np.ceil(self.wavelengths * wavelength / h)))


def pml_stretch(
    n_inner: int, n_layer: int, h: float, k: float, pml: PML, *, low: bool, high: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Stretch factor s and its derivative ds/dξ on a 1-D grid with layers appended.

    The grid has ``n_layer`` points before (if ``low``) and after (if ``high``) the
    ``n_inner`` physical points. Returns (s, ds/dξ), complex arrays over the whole grid.
    """
    n = n_inner + n_layer * (int(low) + int(high))
    L = n_layer * h
    sigma_max = (pml.order + 1) * np.log(1 / pml.reflection) / (2 * L)
    idx = np.arange(n, dtype=float)
    depth = np.zeros(n)
    sign = np.zeros(n)
    start = n_layer if low else 0
    stop = start + n_inner - 1  # index of the last physical point
    if low:
        mask = idx < start
        depth[mask] = (start - idx[mask]) * h
        sign[mask] = -1.0
    if high:
        mask = idx > stop
        depth[mask] = (idx[mask] - stop) * h
        sign[mask] = 1.0
    m = pml.order
    sigma = sigma_max * (depth / L) ** m
    dsigma = sign * sigma_max * m * depth ** (m - 1) / L**m
    return 1 + 1j * sigma / k, 1j * dsigma / k


def pml_stretch_half(
    n_inner: int, n_layer: int, h: float, k: float, pml: PML, *, low: bool, high: bool
) -> np.ndarray:
    """Stretch factor s at the half nodes of the grid of :func:`pml_stretch` extended by its
    two Dirichlet walls: positions −½, ½, …, n − ½ (n + 1 values), for conservative
    (flux-form) operators."""
    n = n_inner + n_layer * (int(low) + int(high))
    L = n_layer * h
    sigma_max = (pml.order + 1) * np.log(1 / pml.reflection) / (2 * L)
    pos = np.arange(n + 1) - 0.5
    start = n_layer if low else 0
    stop = start + n_inner - 1
    depth = np.zeros(n + 1)
    if low:
        depth = np.where(pos < start, (start - pos) * h, depth)
    if high:
        depth = np.where(pos > stop, (pos - stop) * h, depth)
    return 1 + 1j * sigma_max * (np.minimum(depth, L) / L) ** pml.order / k
