"""Dynamics: the local wavenumber K²(x, z), its gradient and the time-table law.

One geometric core serves every case (DESIGN.md, "Physics in one page"):

=============  ======================================  =========================
dynamics       K²(x, z)                                dt/dσ (physical time)
=============  ======================================  =========================
Schrödinger    2m(E − V)/ħ²                            m/ħ
Klein–Gordon   ((E − V)² − m0²c⁴)/(ħc)²                (E − V)/(ħc²)
=============  ======================================  =========================

The rays obey dr/dσ = k, dk/dσ = ½∇(K² + Q); multiplying by dσ/dt gives seed eqs. (5)
and (8). ``V`` is a callable of (x, z) arrays. Its gradient is analytic when given
(``grad_V=`` or a ``V.gradient`` attribute returning (∂V/∂x, ∂V/∂z)), otherwise a
fourth-order central difference with a step scaled to the length unit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

#: Relative step of the fallback finite-difference gradient of V. A 4th-order central
#: difference has truncation ~h⁴ and round-off ~eps/h: their sum is least near eps^(1/5).
GRADIENT_STEP = float(np.finfo(float).eps) ** 0.2


def _real_values(name: str, out, shape: tuple) -> np.ndarray:
    """A user callable's result as real floats of ``shape`` (a constant broadcasts); a
    clear error for complex values or a shape that is neither."""
    out = np.asarray(out)
    if np.iscomplexobj(out):
        if np.any(out.imag != 0):
            raise TypeError(
                f"{name} must return real values; got complex ones (max |imag| = "
                f"{np.max(np.abs(out.imag)):.3g}): an absorbing potential is not a ray medium"
            )
        out = out.real
    if out.shape != shape:
        try:
            out = np.broadcast_to(out, shape)
        except ValueError:
            raise ValueError(
                f"{name} returned shape {out.shape} for (x, z) of shape {shape}: it must "
                "work elementwise on arrays (use np.exp, np.where, … not math.*, if)"
            ) from None
    return np.array(out, dtype=float)


def _call(fun: Callable, x, z, name: str = "V(x, z)") -> np.ndarray:
    x, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(z, float))
    return _real_values(name, fun(x, z), x.shape)


def _fd_gradient(fun: Callable, x, z, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(∂f/∂x, ∂f/∂z) by the 4th-order central difference (f(−2h) − 8f(−h) + …)/12h."""
    x, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(z, float))
    h = GRADIENT_STEP * np.maximum(scale, 1.0)
    out = []
    for dx, dz in ((h, 0.0), (0.0, h)):
        f = [_call(fun, x + k * dx, z + k * dz) for k in (-2, -1, 1, 2)]
        out.append((f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h))
    return out[0], out[1]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number; got {value!r}")


def _zero_potential(x, z):
    return np.zeros(np.broadcast(np.asarray(x), np.asarray(z)).shape)


# free space: its gradient is exactly zero, not four finite differences of zeros per
# component (measured: 11 % of a 1000-ray self-consistent march)
_zero_potential.gradient = lambda x, z: (_zero_potential(x, z), _zero_potential(x, z))


@dataclasses.dataclass(frozen=True)
class _Dynamics:
    V: Callable | None
    E: float
    _: dataclasses.KW_ONLY
    grad_V: Callable | None = None
    #: Length scale for the finite-difference step of ∇V (the length unit by default).
    length_scale: float = 1.0

    def __post_init__(self):
        if self.V is None:
            object.__setattr__(self, "V", _zero_potential)
        if not callable(self.V):
            raise TypeError(
                f"V must be a callable V(x, z) of arrays; got {type(self.V).__name__}. "
                "For free space pass V=None."
            )
        if self.grad_V is None and callable(getattr(self.V, "gradient", None)):
            object.__setattr__(self, "grad_V", self.V.gradient)
        if np.iscomplexobj(self.E) or not isinstance(self.E, (int, float, np.number)):
            raise TypeError(
                f"E must be a real number (the particle energy); got {self.E!r}: pass a float"
            )
        if not np.isfinite(self.E):
            raise ValueError(f"E must be finite; got {self.E!r}")
        _check_positive(length_scale=self.length_scale)

    # -- the geometric core ------------------------------------------------------------
    def potential(self, x, z) -> np.ndarray:
        return _call(self.V, x, z)

    def potential_gradient(self, x, z) -> tuple[np.ndarray, np.ndarray]:
        if self.grad_V is not None:
            x, z = np.broadcast_arrays(np.asarray(x, float), np.asarray(z, float))
            grad = self.grad_V(x, z)
            if not (isinstance(grad, (tuple, list)) and len(grad) == 2):
                raise TypeError("grad_V(x, z) must return the pair (∂V/∂x, ∂V/∂z)")
            return tuple(_real_values("grad_V(x, z)", g, x.shape) for g in grad)
        return _fd_gradient(self.V, x, z, self.length_scale)

    def K2(self, x, z) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def grad_K2(self, x, z) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def time_rate(self, x, z) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def check_launch(self, x0, z0: float) -> None:
        """Raise if K² ≤ 0 (classically forbidden) anywhere on the launch line."""
        x0 = np.asarray(x0, float)
        K2 = self.K2(x0, np.full_like(x0, z0))
        bad = ~(K2 > 0)
        if bad.any():
            where = x0[bad]
            raise ValueError(
                f"the launch energy E={self.E!r} is not allowed at {bad.sum()} of {x0.size} "
                f"launch points (K² ≤ 0 for x0 in [{where.min():.6g}, {where.max():.6g}] on "
                f"z0={z0!r}): raise E, lower V there, or launch only where K² > 0"
            )

    def describe(self) -> str:
        return f"{type(self).__name__}(E={self.E!r}, {self._constants()})"


@dataclasses.dataclass(frozen=True)
class Schrodinger(_Dynamics):
    """Non-relativistic particle: K² = 2m(E − V)/ħ², dt/dσ = m/ħ.

    Parameters
    ----------
    V : callable (x, z) -> potential energy, or None for free space.
    E : launch energy.
    mass, hbar : positive constants (1 by default: lengths in w0, K in 1/w0).
    grad_V : optional callable returning (∂V/∂x, ∂V/∂z).

    Examples
    --------
    >>> d = Schrodinger(None, E=0.5)         # K = 1 in free space
    >>> float(d.K2(0.0, 0.0))
    1.0
    """

    mass: float = 1.0
    hbar: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        _check_positive(mass=self.mass, hbar=self.hbar)

    def _constants(self) -> str:
        return f"mass={self.mass!r}, hbar={self.hbar!r}"

    def K2(self, x, z) -> np.ndarray:
        return 2 * self.mass * (self.E - self.potential(x, z)) / self.hbar**2

    def grad_K2(self, x, z):
        gx, gz = self.potential_gradient(x, z)
        c = -2 * self.mass / self.hbar**2
        return c * gx, c * gz

    def time_rate(self, x, z) -> np.ndarray:
        return np.full(np.broadcast(np.asarray(x), np.asarray(z)).shape, self.mass / self.hbar)

    @classmethod
    def for_wavelength(cls, wavelength: float, V=None, **kwargs) -> Schrodinger:
        """The Schrödinger dynamics whose free-space wavelength is ``wavelength``."""
        _check_positive(wavelength=wavelength)
        mass, hbar = kwargs.get("mass", 1.0), kwargs.get("hbar", 1.0)
        K = 2 * np.pi / wavelength
        return cls(V, E=(hbar * K) ** 2 / (2 * mass), **kwargs)


@dataclasses.dataclass(frozen=True)
class KleinGordon(_Dynamics):
    """Relativistic (spin-0) particle: K² = ((E − V)² − m0²c⁴)/(ħc)², dt/dσ = (E − V)/(ħc²).

    The ray shapes depend only on K², so they equal the Schrödinger ones for the same
    K²; the time-table differs: along a ray dr/dt = c²p/(E − V).
    """

    rest_mass: float = 1.0
    c: float = 1.0
    hbar: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        _check_positive(c=self.c, hbar=self.hbar)
        if not (np.isfinite(self.rest_mass) and self.rest_mass >= 0):
            raise ValueError(f"rest_mass must be >= 0 and finite; got {self.rest_mass!r}")

    def _constants(self) -> str:
        return f"rest_mass={self.rest_mass!r}, c={self.c!r}, hbar={self.hbar!r}"

    def K2(self, x, z) -> np.ndarray:
        kinetic = self.E - self.potential(x, z)
        return (kinetic**2 - (self.rest_mass * self.c**2) ** 2) / (self.hbar * self.c) ** 2

    def grad_K2(self, x, z):
        gx, gz = self.potential_gradient(x, z)
        c = -2 * (self.E - self.potential(x, z)) / (self.hbar * self.c) ** 2
        return c * gx, c * gz

    def time_rate(self, x, z) -> np.ndarray:
        return (self.E - self.potential(x, z)) / (self.hbar * self.c**2)
