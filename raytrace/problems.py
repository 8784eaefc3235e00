"""The three ray problems of :func:`raytrace.trace` — geometric optics, rays driven by a
field's Wave Potential, and the self-consistent ensemble — each with one constructor and
the same declared attributes: right-hand side, stop margins, Jacobian, the launch kz."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import make_interp_spline

from raytrace.dynamics import _Dynamics
from raytrace.march import JAC_STEP
from raytrace.wave_potential import FORBIDDEN_MARGIN, Ensemble

log = logging.getLogger("raytrace.tracer")  # one logger for the tracer's messages


class _Problem:
    """Right-hand side, stop margins and diagnostics of one mode, on the active rays.

    Every problem is built the same way, ``cls(dyn, x0, kx0, ln_R0, z0, launch=...,
    accuracy=..., field=..., ln_R0_x=..., resample=...)`` (``ln_R0_x``: (∂x ln R0, ∂x² ln R0)
    at x0 from a callable launch profile, or None; ``resample``: whether a coupled front may
    be re-sampled, ignored by independent rays), and sets the attributes declared here: ``C`` the
    constant k² − K² − Q of each ray (from the launch convention) and ``kz0`` the launch
    kz."""

    label: str
    coupled = False
    C: np.ndarray
    kz0: np.ndarray
    resampling: bool

    def __init__(
        self,
        dyn: _Dynamics,
        x0,
        kx0,
        ln_R0,
        z0,
        *,
        launch,
        accuracy,
        field,
        ln_R0_x=None,
        resample=False,
    ):
        self.dyn, self.z0 = dyn, z0
        self.x0, self.kx0, self.ln_R0 = x0, kx0, ln_R0
        self.resampling = bool(resample) and self.coupled

    # Q, ∂xQ and ln kz at the active rays; subclasses fill in Q.
    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):  # pragma: no cover
        raise NotImplementedError

    def quadrature_rates(self, z, xk, idx):
        """(dt/dz, dσ/dz) = (rate/kz, 1/kz) at the state xk = (x, kx): no force needed."""
        n = idx.size
        x, kx = xk[:n], xk[n:]
        zz = np.full(n, z)
        K2 = self.dyn.K2(x, zz)
        rate = np.broadcast_to(self.dyn.time_rate(x, zz), x.shape)
        _, _, kz = self.potential(x, z, kx, K2, idx, need_force=False)
        return np.concatenate([rate / kz, 1.0 / kz])

    def rhs(self, z, y, idx, frozen=None):
        """dy/dz for y = (x, kx, t, σ) of the rays ``idx``; y may also be a batch of
        states as columns, shape (4n, B) (the Jacobian's perturbed states, with the
        ensemble's kz feedback ``frozen``)."""
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        flat, zz = x.ravel(), np.full(x.size, z)
        K2 = self.dyn.K2(flat, zz).reshape(x.shape)
        gx = self.dyn.grad_K2(flat, zz)[0].reshape(x.shape)
        rate = np.broadcast_to(self.dyn.time_rate(flat, zz), flat.shape).reshape(x.shape)
        _, Qx, kz = self.potential(x, z, kx, K2, idx, frozen=frozen)
        return np.concatenate([kx / kz, 0.5 * (gx + Qx) / kz, rate / kz, 1.0 / kz])

    def margins(self, z, y, idx) -> dict[str, np.ndarray]:
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, _ = self.potential(x, z, kx, K2, idx, need_force=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            forbidden = (K2 + Q + self.C[idx] - kx**2) / np.abs(K2) - FORBIDDEN_MARGIN
        return {"forbidden": np.nan_to_num(forbidden, nan=-1.0)}

    def observe(self, z, y, idx):
        """(kz, R, Q) at the active rays, for the output planes."""
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, kz = self.potential(x, z, kx, K2, idx, need_force=False)
        return kz, self.amplitude(x, z, kz, idx), Q

    def amplitude(self, x, z, kz, idx):
        """R from flux conservation R²·kz·(tube width) = const, 2nd-order tube widths
        (one-sided for 2 rays). One ray forms no tube: R is NaN (``trace`` warns)."""
        if idx.size < 2:
            return np.full(idx.size, np.nan)
        s = idx.astype(float)
        width = np.gradient(x, s)
        width0 = np.gradient(self.x0[idx], s)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (self.kz0[idx] * width0) / (kz * width)
            R = np.exp(self.ln_R0[idx]) * np.sqrt(np.where(ratio > 0, ratio, np.nan))
        return R


class _GeometricOptics(_Problem):
    label = "none"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.C = np.zeros_like(self.x0)  # Q = 0: both launch conventions give |k| = K
        K2 = self.dyn.K2(self.x0, np.full(self.x0.size, self.z0))
        self.kz0 = np.sqrt(K2 + self.C - self.kx0**2)

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        zero = np.zeros_like(x)
        with np.errstate(invalid="ignore"):
            return zero, zero, np.sqrt(K2 + self.C[idx] - kx**2)


class _FromField(_Problem):
    label = "field"

    def __init__(
        self, dyn, x0, kx0, ln_R0, z0, *, launch, accuracy, field, ln_R0_x=None, resample=False
    ):
        super().__init__(dyn, x0, kx0, ln_R0, z0, launch=launch, accuracy=accuracy, field=field)
        self.field = field  # R comes from the field
        Q0, _ = field(x0, np.full(x0.size, z0))
        self.C = -Q0 if launch == "seed" else np.zeros_like(x0)
        with np.errstate(invalid="ignore"):
            self.kz0 = np.sqrt(dyn.K2(x0, np.full(x0.size, z0)) + Q0 + self.C - kx0**2)

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        Q, Qx = self.field(x, np.full(x.size, z))
        with np.errstate(invalid="ignore"):
            return Q, Qx, np.sqrt(K2 + Q + self.C[idx] - kx**2)

    def margins(self, z, y, idx):
        out = super().margins(z, y, idx)
        x = y[: idx.size]
        out["node"] = self.field.node_margin(x, z)
        out["domain"] = self.field.domain_margin(x)
        return out

    def amplitude(self, x, z, kz, idx):
        return self.field.amplitude(x, np.full(x.size, z))


class _SelfConsistent(_Problem):
    """One :class:`Ensemble` per contiguous group of rays: the launch ensemble, the
    sub-ensembles left when a ray stops (each side continues with its own edges), and the
    re-sampled fronts (:meth:`resample`).

    The ensembles' rays are *internal* rays, held in the arrays of ``self.rays`` (launch
    position, ln R, kx, K² and C where each started, and the profile's derivatives of
    ln R there, NaN when not known). The first block is the user's launch; each
    re-sampled front appends a block, launched where the front was re-sampled."""

    label = "self-consistent"
    coupled = True

    def __init__(
        self, dyn, x0, kx0, ln_R0, z0, *, launch, accuracy, field=None, ln_R0_x=None, resample=True
    ):
        super().__init__(
            dyn, x0, kx0, ln_R0, z0, launch=launch, accuracy=accuracy, field=field,
            resample=resample,
        )  # fmt: skip
        K2 = dyn.K2(x0, np.full(x0.size, z0))
        ens = Ensemble(x0, ln_R0, kx0, K2, launch=launch, accuracy=accuracy, ln_R0_x=ln_R0_x)
        self.C = ens.C
        self.accuracy = accuracy
        self.kz0 = np.exp(ens.m0)
        nan = np.full(x0.size, np.nan)
        d1, d2 = (nan, nan) if ln_R0_x is None else ln_R0_x
        self.rays = {"x0": x0, "ln_R0": ln_R0, "kx0": kx0, "K2": K2, "C": ens.C, "d1": d1, "d2": d2}
        self._ensembles = {(0, x0.size): ens}
        self._colourings = {}

    def group(self, idx, z, y) -> None:
        """Prepare the ensemble of rays ``idx`` (contiguous) restarting from state y at z."""
        key = (int(idx[0]), idx.size)
        if key in self._ensembles:
            return
        r = {name: v[idx] for name, v in self.rays.items()}
        known = np.all(np.isfinite(r["d1"])) and np.all(np.isfinite(r["d2"]))
        ens = Ensemble(
            r["x0"],
            r["ln_R0"],
            r["kx0"],
            r["K2"],
            launch="dispersion",
            accuracy=self.accuracy,
            C=r["C"],
            ln_R0_x=(r["d1"], r["d2"]) if known else None,
        )
        n = idx.size
        ens.calibrate(y[:n], y[n : 2 * n], self.dyn.K2(y[:n], np.full(n, z)))
        self._ensembles[key] = ens

    def resample(self, idx, z, y):
        """Re-sample the front of rays ``idx`` at state y at z: as many new internal rays,
        equally spaced between its edge rays, launched there with ln R and kx interpolated
        from the old rays by quintic splines in x (the new launch's derivatives of ln R
        are the spline's), C linearly (it is constant for the "dispersion" launch), t
        and σ by cubic splines. Returns (new indices, new state). Measured alternative:
        quintic Hermite interpolation through the ensemble's own stencil derivatives of
        ln R and kx carries their noise where the front is compressed (Q off by ±150 in
        the valley between two beams) and the march fails at 0.36 z_R, against 0.47 with
        the splines.

        Why: the ensemble's label stencils need the rays' positions to stay a smooth,
        roughly even function of their label. Where the flow compresses or widens the
        tubes unevenly — the valley between two beams that approach each other, fringes
        forming in a far field — the gaps come to differ by orders of magnitude between
        neighbouring stretches of rays, the force's stencils (∝ x_s⁻⁵) turn stiff and
        noisy, and the march stalls. Measured, two Gaussians e^{−(x∓3)²}e^{∓2ix} at
        λ0/w0 = 1e-4 (256 rays): without re-sampling the valley rays' gaps fall to 1 % of
        their launch value by 0.30 z_R (following the exact streamlines, which do the
        same) and the march stalls there; re-launched evenly every 0.05 z_R, the march
        goes on, each stretch within 1.5e-3 w0 of the exact streamlines started where it
        began. Equal spacing (rather than, e.g., following the flux) keeps the dark parts
        of a front resolved, where nodes form. The user's rays are carried at their
        fractional labels among the new ones (labels are material: a ray keeps its
        place in the flow), see ``_Group``.

        Its cost: each re-launch starts from the ensemble's own ln R, which carries the
        ensemble's discretisation error (measured, two Gaussians 3 w0 apart, 128 rays:
        2e-4 in the valley at 0.41 z_R) into the new launch's derivatives, and the edge
        force drifts (an edge-ray ∂xQ 11 off by the third re-launch, 0.84 z_R). There the
        edge rays end 7.8e-3 w0 from the exact streamlines after 5 re-launches against
        8.6e-4 without (a spread of 16 before re-sampling: 1.4e-3), while on the tilted
        beams a spread of 8 instead of 2 leaves 19 % of the core > 1e-2 w0 off. Open in
        issue 13."""
        n = idx.size
        x, kx, t, sig = np.split(y, 4)
        K2 = self.dyn.K2(x, np.full(n, z))
        ens = self._ens(idx)
        ell = ens.ln_R(x, ens.ln_kz(x, kx, K2))
        xn = np.linspace(x[0], x[-1], n)
        quintic = make_interp_spline(x, np.column_stack([ell, kx]), k=5)
        ell_n, kx_n = quintic(xn).T
        d1, d2 = quintic.derivative(1)(xn)[:, 0], quintic.derivative(2)(xn)[:, 0]
        C = self.rays["C"][idx]
        C_n = np.interp(xn, x, C) if np.ptp(C) > 0 else np.full(n, C[0])
        t_n, sig_n = make_interp_spline(x, np.column_stack([t, sig]), k=3)(xn).T
        block = {
            "x0": xn,
            "ln_R0": ell_n,
            "kx0": kx_n,
            "K2": self.dyn.K2(xn, np.full(n, z)),
            "C": C_n,
            "d1": d1,
            "d2": d2,
        }
        start = self.rays["x0"].size
        self.rays = {k: np.concatenate([v, block[k]]) for k, v in self.rays.items()}
        return np.arange(start, start + n), np.concatenate([xn, kx_n, t_n, sig_n])

    def _ens(self, idx) -> Ensemble:
        return self._ensembles[int(idx[0]), idx.size]

    def potential(self, x, z, kx, K2, idx, need_force=True, frozen=None):
        ens = self._ens(idx)
        xd = ens.derivatives(x)  # shared by kz, Q and the force
        m = ens.ln_kz(x, kx, K2, frozen=frozen, xd=xd)
        Q = ens.Q(x, m, xd)
        Qx = ens.Qx(x, m, xd) if need_force else None
        return Q, Qx, np.exp(m)

    def feedback(self, z, y, idx):
        """The filtered kz feedback at state y (what the Jacobian holds fixed)."""
        ens, n = self._ens(idx), idx.size
        x, kx = y[:n], y[n : 2 * n]
        return ens.feedback(x, kx, self.dyn.K2(x, np.full(n, z)))

    def margins(self, z, y, idx):
        n = idx.size
        x, kx = y[:n], y[n : 2 * n]
        K2 = self.dyn.K2(x, np.full(n, z))
        Q, _, _ = self.potential(x, z, kx, K2, idx, need_force=False)
        found = self._ens(idx).margins(x, kx, K2, Q, resample=self.resampling)
        return {k: np.nan_to_num(v, nan=-1.0) for k, v in found.items()}

    def amplitude(self, x, z, kz, idx):
        return np.exp(self._ens(idx).ln_R(x, np.log(kz)))

    def sparsity(self, idx) -> sp.csr_matrix:
        P = self._ens(idx).jacobian_sparsity()  # (x, kx) block pattern, 2n × 2n
        n = idx.size
        rows = sp.vstack([P, P[:n], P[:n]])  # t and σ rows depend like x's
        return sp.hstack([rows, sp.csr_matrix((4 * n, 2 * n))]).tocsr()

    def jacobian(self, z, y, idx) -> sp.csc_matrix:
        """∂(dy/dz)/∂y by central differences on the banded pattern of :meth:`sparsity`,
        all columns of one colour perturbed together and all colours evaluated in one
        batched right-hand side (columns j, j' share a colour when they share no row).

        Why: SciPy's generic sparse num_jac took 54 % of a 1000-ray march (77 Jacobians
        in 98 Radau steps, each ~44 separate right-hand sides and an adaptive step
        search); one batched evaluation of the ~2(2b+1) colours (b the pattern's
        half-bandwidth) costs a few single ones (measured in tests/benchmarks)."""
        rows, cols, colour, n_colours = self._colouring(idx)
        n2 = 2 * idx.size  # t and σ never enter the right-hand side: zero columns
        frozen = self.feedback(z, y, idx)
        n = idx.size
        x = y[:n]
        gap = np.minimum(np.abs(np.gradient(x)), np.abs(np.gradient(self.rays["x0"][idx])))
        # x: the force varies on the scale of the ray spacing (x_s^-5 terms), so the step
        # is a fraction of the local gap; kx enters through kx/kz (nearly linear)
        step = JAC_STEP * np.concatenate([gap, np.maximum(np.abs(y[n:n2]), 1.0)])
        Y = np.repeat(y[:, None], 2 * n_colours, axis=1)
        Y[np.arange(n2), colour] += step
        Y[np.arange(n2), n_colours + colour] -= step
        F = self.rhs(z, Y, idx, frozen=frozen)
        values = (F[rows, colour[cols]] - F[rows, n_colours + colour[cols]]) / (2 * step[cols])
        m = y.size
        return sp.csc_matrix((values, (rows, cols)), shape=(m, m))

    def _colouring(self, idx):
        key = (int(idx[0]), idx.size)
        if key not in self._colourings:
            pattern = self.sparsity(idx).tocoo()
            n = idx.size
            keep = pattern.col < 2 * n
            rows, cols = pattern.row[keep], pattern.col[keep]
            block = cols % n  # the ray a column belongs to (x or kx)
            reach = int(np.max(np.abs(rows % n - block)))  # half-bandwidth b
            period = 2 * reach + 1  # columns ≥ 2b + 1 apart share no row
            colour = np.arange(2 * n) % period + (np.arange(2 * n) >= n) * period
            self._colourings[key] = (rows, cols, colour, 2 * period)
        return self._colourings[key]
