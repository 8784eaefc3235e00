"""The Wave Potential term Q = ∇²R/R seen by the rays.

Two sources:

* :class:`FieldPotential` — Q from a field Dataset (any ``wavefield`` solver), with its
  gradient from a quintic spline, so the force is the exact gradient of the interpolated
  potential and k² − K² − Q is conserved along each ray.
* :class:`Ensemble` — Q from the rays themselves (the seed's method), described below.

Self-consistent Q: the quantum-stress form
------------------------------------------
All rays sit on the same front z = const and are labelled by their index s (the launch
order). Flux conservation ∇·(R²k) = 0 across z = const gives, per unit label,

    μ(s) ≡ R² x_s = R0² kz0 x0_s / kz,        ℓ = ln R = A(s) − ½ ln x_s,   A = ½ ln μ,

so R never has to be differenced where it is tiny: everything is done on ℓ = ln R, which
for a Gaussian is a polynomial. The force is *not* evaluated as ∂x(ℓ_xx + ℓ_x²) by a
chain of difference quotients (that chain, or np.gradient on R, is non-conservative: its
linearisation has eigenvalues with positive real part at the ensemble's edges — measured:
growth rates of 10⁴–10⁷ per unit z² — and it blows up in the tails). Instead it is the
exact gradient of a discrete energy: Q's force on the fluid is a stress divergence,
R² ∂xQ = ∂x(R² ℓ_xx), which is −δU/δx of U = ∫ R_x² dx. In label form, after one
integration by parts,

    U = ∫ μ [ −½ A_ss / x_s² + ¼ x_ss² / x_s⁴ ] ds,        μ ∂xQ = −∂U/∂x.

Discretised with findiff stencils D1, D2 on the labels, U_h = Σ μ_j E_j(D1x, D2x) and the
force is −(D1ᵀ(μ ∂E/∂x_s) + D2ᵀ(μ ∂E/∂x_ss))/μ. Its linearisation is −M⁻¹ × (a sum of
squares): for a log-concave launch (A_ss < 0) every eigenvalue is real and ≤ 0 — the
ensemble is linearly stable for every ray count, with a zero mode for translation.
Measured at launch (Gaussian, span ±4 w0): 0 unstable eigenvalues for 33–301 rays at
accuracy 2, 4 and 6, against 2–12 for the chain form.

The variational force is stable but not accurate everywhere: its transposed stencils
act on μ-weighted quantities, and μ ∝ R² varies by e^{4|x|h} from ray to ray, so in the
tails of a coarse launch the force is far off (measured: 30 % one w0 inside the edge with
32 rays over ±4 w0, and the wrong sign on the edge rays, where the truncated ensemble also
lacks the pressure of the tail beyond it). The chain-rule force Q_s/x_s is accurate (exact
for a Gaussian) but not stable. So the difference, chain minus variational, is measured
on every ray at launch (and at each restart of a sub-ensemble) and carried along as a
frozen correction scaled as x_s⁻³, the scaling of the stress term μA_ss/x_s³
(:meth:`Ensemble.stretch`). For a self-similar beam (Gaussian, GRIN
lens) this is exact at any ray count; otherwise the error is the change of the
variational form's discretisation error since launch, which falls at 4th order in the
ray count (measured on a bell launch). Being frozen, it barely changes the linearisation.

The calibration is what keeps the ensemble's accuracy where no calibration can be exact,
measured on the bell exp(−x⁴) over ±2 w0 to 0.5 z_R: without it (the variational force
alone) 3 of 4 launches (64–512 rays) stall at λ0/w0 = 1e-2 and 2 of 4 at 0.1; with it all
complete, with the core's median distance to the exact streamlines 8e-5–1.3e-4 w0.

The stiff part of the coupling (a fourth derivative: unresolved label-scale modes
oscillate at ω ~ q²/2k) is integrated with SciPy's L-stable implicit Radau IIA method with
a banded Jacobian, so the step follows the beam's evolution, not the ray spacing.

The kz constraint and its filtered feedback
-------------------------------------------
kz = sqrt(K² + Q + C − kx²) depends on Q, and Q on kz through the flux (μ ∝ 1/kz). Write
ln kz = ln kz_geo + δ with kz_geo = sqrt(K² − kx²). On a label mode of wavenumber q the
fixed point δ → ½ ln(1 + (Q(δ) + C)/kz_geo²) multiplies δ by ~q²/4kz²: for rays closer
than ~λ/2π the finest modes have q > 2kz, the map stops contracting and, at q = 2kz, its
Newton matrix is singular — the continuum constraint is elliptic across the front and
has no content there (structure finer than λ is not carried by the transverse Wave
Potential). The old cure was to refuse launches with kz·Δx < 1/2, a ray-count cap.

Instead the feedback is low-pass filtered: each pass is δ ← F(½ ln(1 + (Q + C)/kz_geo²))
with F = (1 + (ε²∂x²)²)⁻¹, ε = KZ_FILTER_WIDTH/kz (:meth:`Ensemble.smooth`). F keeps the
beam's scales (q ≪ 1/ε) and caps the factor at q²F(q)/4kz² ≤ 1/(8(εkz)²)·(4/3), so the
fixed point contracts at every ray count. The *same* filtered kz enters the ray equations
(dx/dz = kx/kz, dkx/dz = ½∂x(K² + Q)/kz) and the flux, so k² = K² + Q + C holds up to the
filtered-away part (``dispersion_residual`` reports it: ~1e-7 of Q at λ0/w0 = 1e-2).
Why the same: with the unfiltered kz in the ray equations, its label-scale dependence on
Q makes the ensemble non-Hamiltonian; measured, modes with growth rates 1.7–11 per w0
(λ0/w0 = 1, 256 rays over ±4 w0), and the march stalls by 0.35 z_R; with the filtered kz,
≤ 0.5. Measured choices (Gaussian over ±4 w0, 256 rays, to 1 z_R, against the exact
angular-spectrum streamlines): a second-order filter (1 + ε²q²)⁻¹ needs ε ≥ 4/kz to keep
Radau's Newton iteration converging and then damps the beam's own feedback (1.8–2.7× the
paraxial expectation's distance at λ0/w0 = 0.5–1); the fourth-order one at ε = 2.5/kz
gives 1.17–1.37× at λ0/w0 = 0.1–1 (1.02–1.23× since the force's weights are the launch's,
:meth:`Ensemble._force`); leaving the feedback out altogether gives 2.7× at 0.3.

The Jacobian for Radau holds the filtered feedback δ fixed (``ln_kz(frozen=δ)``): then it
is exactly banded (the force's stencils) and needs no kz passes in its batched
evaluations. What it leaves out — δ's own dependence on the state — is ≤ ~1/8 of the rest
on label-scale modes and ~(λ0/w0)²/16π² on the beam's: Newton's contraction factor at a
10 w0 step, measured 0.02–0.08 at λ0/w0 = 0.3–1 (tests/test_raytrace.py).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import scipy.sparse as sp
from findiff import Diff
from scipy.linalg import lapack

from wavetraj.derived import AMPLITUDE_FLOOR, wave_potential
from wavetraj.interpolant import SPLINE_DEGREE, FieldInterpolant

log = logging.getLogger(__name__)

#: Stencil accuracy of the label derivatives of the self-consistent ensemble. Measured
#: (Gaussian, ±4 w0): 4 is as accurate as 6 at |x0| <= 2 w0 and its shorter one-sided
#: closures make the edge rows much less stiff.
DEFAULT_ACCURACY = 4
#: Fewest rays the self-consistent ensemble accepts: the one-sided stencils of the
#: second derivative at accuracy 4 reach 6 rays, both edges together 12.
MIN_RAYS = 16
#: Largest number of fixed-point passes for kz = sqrt(K² + Q + C − kx²) (Q depends on kz
#: through the flux). With the filtered feedback (module docstring) every label mode
#: contracts by ≤ ~1/37 per pass, and the beam-scale ones by ~(λ0/w0)²/16π² — more in
#: the far tail, where Q ≳ K²: measured (Gaussian, 256 rays over ±4 w0) 2–3 passes at
#: λ0/w0 ≤ 1e-2, 6 at 0.1, 8 at 0.3, 10 at 1.
MAX_KZ_PASSES = 24
#: Width ε·kz of the low-pass filter on the kz feedback (module docstring): the fixed
#: point's factor on a label mode q is ~q²F(q)/4kz² ≤ 1/(8 (ε kz)²)·(4/3) with
#: F = 1/(1 + ε⁴q⁴) (the accuracy-4 D2 reaches 4/3 of the filter's 3-point symbol).
#: Measured against exact streamlines: 2 stalls at λ0/w0 = 1 (256 rays over ±4 w0, edge
#: modes), 3 loses accuracy, 2.5 completes 16–1000 rays at λ0/w0 ≤ 1 bar the coarsest.
KZ_FILTER_WIDTH = 2.5
#: The kz fixed point is converged when ln kz changes by less than this.
KZ_PASS_TOL = 1e-13
#: A ray is "crossed" when its gap to a neighbour falls below this fraction of its launch
#: gap (the tube width → 0: a caustic).
CROSSING_FRACTION = 1e-2
#: A front is unresolved ("node") where neighbouring gaps differ by more than this factor:
#: R → 0 between two rays pushes them apart faster than the stencils can follow.
NODE_GAP_RATIO = 4.0
#: A ray is at a turning point when (K² + Q + C − kx²)/K² falls below this.
FORBIDDEN_MARGIN = 1e-8
#: The front is re-sampled (``trace(resample=True)``) when its ray gaps, relative to the
#: gaps it started with, differ by more than this factor between the most compressed and
#: the most widened tube (:meth:`Ensemble.margins`, "resample"). Why and what was
#: measured: ``raytrace.tracer._SelfConsistent.resample``.
RESAMPLE_SPREAD = 2.0


@functools.lru_cache(maxsize=32)
def _label_operators(n: int, acc: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """First and second label derivatives (unit spacing) with findiff's one-sided ends."""
    d = Diff(0, 1.0, acc=acc)
    return d.matrix((n,)).tocsr(), (d**2).matrix((n,)).tocsr()


def per_ray(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A per-ray constant shaped to broadcast against ``like``: (n,) for one state,
    (n, 1) for a batch of states stacked as columns (n, B) (the Jacobian's columns)."""
    return a if like.ndim == 1 else a[:, None]


def _ln_kz(Q, C, kx, K2):
    """ln kz = ½ ln K² + ½ ln(1 + (Q + C − kx²)/K²): no cancellation when Q ≪ K²."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * np.log(K2) + 0.5 * np.log1p((Q + C - kx**2) / K2)


class Ensemble:
    """Self-consistent Q for rays launched from sorted ``x0`` (see the module docstring).

    Parameters
    ----------
    x0 : strictly increasing launch positions, ≥ MIN_RAYS of them.
    ln_R0 : ln R0 at x0 (the launch amplitude; only its log is used).
    kx0 : launch transverse wavenumbers.
    K2_launch : K² at the launch points.
    launch : "dispersion" (k² = K² + Q at launch) or "seed" (|k| = K, seed eq. 5.4).
    accuracy : findiff accuracy of the label stencils.
    ln_R0_x : optional (∂x ln R0, ∂x² ln R0) at x0, from the launch profile itself
        (:meth:`Q_from_log`: why).
    """

    def __init__(
        self, x0, ln_R0, kx0, K2_launch, *, launch: str, accuracy: int, C=None, ln_R0_x=None
    ):
        self.n = n = x0.size
        self.D1, self.D2 = _label_operators(n, accuracy)
        self.D1T, self.D2T = self.D1.T.tocsr(), self.D2.T.tocsr()
        self.D12 = sp.vstack([self.D1, self.D2]).tocsr()  # both stencils in one product
        # ℓ = ln R0 + (smooth in s): where ln R0 itself is not resolved by the rays (near a
        # node, ln R0 ~ ln|x − xn|), its stencil error is replaced by exact derivatives
        if ln_R0_x is None:
            self.fix_s = self.fix_ss = np.zeros(n)
        else:  # to label derivatives: ∂s = x0_s ∂x
            xs0, xss0 = self.derivatives(x0)
            d1, d2 = (np.asarray(d, float) for d in ln_R0_x)
            stencil_s, stencil_ss = self.derivatives(ln_R0)
            self.fix_s = xs0 * d1 - stencil_s
            self.fix_ss = xs0**2 * d2 + xss0 * d1 - stencil_ss
        Q0 = self.Q_from_log(x0, ln_R0)
        if C is not None:  # a sub-ensemble keeps its rays' constants of motion
            self.C = np.asarray(C, float)
        elif launch == "seed":
            self.C = -Q0  # k² − K² − Q = −Q(launch) along each ray: |k| = K at launch
        else:
            self.C = np.zeros(n)
        # the launch kz: at the launch the flux gives R0 whatever kz is, so Q = Q0 and the
        # filtered fixed point (:meth:`ln_kz`) is one pass
        m_geo = self.geometric_ln_kz(kx0, K2_launch)
        self.m0 = m_geo + self.smooth(x0, _ln_kz(Q0, self.C, kx0, K2_launch) - m_geo, m_geo)
        xs0 = self.D1 @ x0
        self.ln_rho0 = 2 * ln_R0 + self.m0 + np.log(xs0)
        self.ln_rho0_ss = self.D2 @ self.ln_rho0 + 2 * self.fix_ss
        ln_mu0 = self.ln_rho0 - self.m0
        self.weights = np.exp(ln_mu0 - ln_mu0.max())  # the launch μ (:meth:`_force`), ≤ 1
        self.gap0 = np.diff(x0)
        self.kz_passes = self._count_passes(x0, kx0, K2_launch)
        self.calibrate(x0, kx0, K2_launch)

    def calibrate(self, x, kx, K2) -> None:
        """Measure the variational force's consistency error at this state (module
        docstring); it is carried along scaled as σ⁻³ (:meth:`stretch`), exact for
        self-similar beams."""
        m = self.ln_kz(x, kx, K2)
        self.correction = self.chain_force(x, m) - self._force(x, m)
        self.xs_ref = self.D1 @ x

    def derivatives(self, v):
        """(D1 @ v, D2 @ v) in one sparse product (v: one state or a batch as columns)."""
        both = self.D12 @ v
        return both[: self.n], both[self.n :]

    def stretch(self, x, xs=None):
        """σ per ray: how much its tube has widened since calibration, x_s/x_s(ref).

        The frozen correction scales as σ⁻³, the scaling of the stress term μA_ss/x_s³
        (exact for a self-similar beam at any ray count). Its linearisation,
        −3·correction/x_s ∂x_s, is a first derivative across neighbouring rays, large
        where the correction is: near a node (2e5 on the inner edge of the GRIN HG1 mode
        launched 0.02 w0 from it) it gives the ensemble a growing mode (eigenvalue +0.077
        per w0 at λ0/w0 = 1e-2; rays 0.07 w0 off by z = π/λ0); from 0.03 w0 on the rays stay
        straight. Measured alternatives: the widening of a ±k-ray neighbourhood (k = 2–8)
        cures that mode but stalls 48 and 24 rays over ±4 w0 at λ0/w0 = 1, which this
        form completes; one stretch for the whole beam (its flux-weighted RMS width) is
        wrong for two separate beams (two-beams scenario: 0.03 w0 from the streamlines
        against 8e-4)."""
        xs = self.D1 @ x if xs is None else xs
        return xs / per_ray(self.xs_ref, x)

    # -- amplitude and Q -------------------------------------------------------------
    def ln_R(self, x, m, xs=None):
        """ℓ = ln R from flux conservation (``xs``: D1 @ x, when the caller has it)."""
        xs = self.D1 @ x if xs is None else xs
        with np.errstate(invalid="ignore", divide="ignore"):
            return 0.5 * (per_ray(self.ln_rho0, x) - m - np.log(xs))

    def Q_from_log(self, x, ell, xs=None, xss=None):
        """Q = ℓ_xx + ℓ_x² with ∂x = (1/x_s) ∂s, for ℓ = ln R0 + (what the march changes).

        The stencils' error on the ln R0 part is replaced by the launch profile's exact
        label derivatives when the tracer has them (``fix_s``, ``fix_ss``): near a node
        ln R0 ~ ln|x − xn| is not resolved by the rays, while Q is smooth (for
        x e^{−x²}, Q = 4x² − 6). Measured, GRIN HG1 launched on [0.02, 3] w0: the stencils
        put Q 1e2–1e4 off on the inner rays."""
        if xs is None or xss is None:
            xs, xss = self.derivatives(x)
        ls, lss = self.derivatives(ell)
        ls = ls + per_ray(self.fix_s, x)
        lss = lss + per_ray(self.fix_ss, x)
        lx = ls / xs
        return (lss - xss / xs * ls) / xs**2 + lx**2

    def _count_passes(self, x, kx, K2) -> int:
        m_geo = self.geometric_ln_kz(kx, K2)
        front = (self.kz_filter(x, m_geo), *self.derivatives(x))
        mf = m_geo
        for passes in range(1, MAX_KZ_PASSES + 1):
            new = self._kz_pass(x, kx, K2, mf, m_geo, front)
            change = np.max(np.abs(new - mf))
            mf = new
            if change < KZ_PASS_TOL:
                return passes
        log.warning(
            "kz fixed point not converged after %d passes (last change of ln kz %.2g)",
            MAX_KZ_PASSES,
            change,
        )
        return MAX_KZ_PASSES

    def _kz_pass(self, x, kx, K2, mf, m_geo, front):
        """One pass of the filtered fixed point: ln kz from Q(flux with ln kz = mf).
        ``front``: what the passes share (the factorised filter, D1 @ x, D2 @ x)."""
        filt, xs, xss = front
        Q = self.Q_from_log(x, self.ln_R(x, mf, xs), xs, xss)
        return m_geo + filt(_ln_kz(Q, self.C, kx, K2) - m_geo)

    def smooth(self, x, delta, m_geo):
        """The low-pass filter of the kz feedback applied once (:meth:`kz_filter`)."""
        return self.kz_filter(x, m_geo)(delta)

    def kz_filter(self, x, m_geo):
        """Low-pass filter F = (1 + (E∂x²)²)⁻¹ of δ = ln kz − ln kz_geo on this front, E = ε²
        with ε = KZ_FILTER_WIDTH/kz (module docstring: why): response 1/(1 + (εq)⁴).
        Factorised once, applied on every kz pass (measured: the passes were 79 % of a
        λ0/w0 = 1 march, 10 per right-hand side, each refactorising).

        ∂x² is the conservative 3-point form on the rays' positions with zero-flux ends;
        E∂x² is similar to a symmetric semi-definite matrix, so the system's eigenvalues
        are ≥ 1, and F keeps constants. The zero-flux ends flatten δ within ε
        of the ensemble's edges, which damps the feedback where the launch's far tail
        has Q ≳ K² (λ0/w0 ~ 1): measured, a smoother that keeps quadratics there (third
        differences, response 1/(1 + (εq)⁶)) lets 256 rays over ±4 w0 at λ0/w0 = 1 stall
        at 0.2 z_R, where this one completes."""
        n = self.n
        h = np.diff(x)
        kz2 = np.exp(2 * m_geo)
        with np.errstate(invalid="ignore"):
            eps2 = KZ_FILTER_WIDTH**2 / np.where(np.isfinite(kz2) & (kz2 > 0), kz2, np.inf)
        cell = np.empty(n)  # the cell width around each ray
        cell[1:-1] = 0.5 * (h[1:] + h[:-1])
        cell[0], cell[-1] = 0.5 * h[0], 0.5 * h[-1]
        # E(−∂x²) by rows, E = diag(ε²): lo_i f_{i−1} + di_i f_i + up_i f_{i+1}
        lo, up = -eps2[1:] / (h * cell[1:]), -eps2[:-1] / (h * cell[:-1])
        di = np.zeros(n)
        di[1:] -= lo
        di[:-1] -= up
        # 1 + (E∂x²)² = (1 + iE∂x²)(1 − iE∂x²): two tridiagonal solves whose condition is
        # ~(ε/Δx)² each, where one pentadiagonal solve has ~(ε/Δx)⁴ (measured: 1e-5
        # errors on a constant at 8000 rays over ±4 w0, λ0/w0 = 1, against 1e-10)
        factors = [lapack.zgttrf(sign * lo, 1.0 + sign * di, sign * up)[:5] for sign in (1j, -1j)]

        def apply(delta):
            b = np.where(np.isfinite(delta), delta, 0.0).astype(complex)
            shape = b.shape
            b = b.reshape(n, -1)
            for f in factors:
                b, _ = lapack.zgttrs(*f, b)
            return b.real.reshape(shape)

        return apply

    def geometric_ln_kz(self, kx, K2):
        """ln kz without the Wave Potential (Q + C = 0), the base the kz feedback is
        measured from (so the seed launch, Q + C = 0 there, has no feedback at launch)."""
        return _ln_kz(0.0, 0.0, kx, K2)

    def ln_kz(self, x, kx, K2, frozen=None, xd=None):
        """ln kz on each ray: the fixed point of kz² = K² + Q + C − kx² (Q depends on kz
        through the flux), with the feedback δ = ln kz − ln kz_geo low-pass filtered
        (:meth:`smooth`); the same ln kz enters the ray equations and the flux.

        ``frozen``: a feedback δ (:meth:`feedback`) to hold fixed instead of iterating
        (the Jacobian's perturbed states, so that the Jacobian is exactly banded).
        ``xd``: (D1 @ x, D2 @ x) when the caller has them."""
        m_geo = self.geometric_ln_kz(kx, K2)
        if frozen is not None:
            return m_geo + per_ray(frozen, x)
        front = (self.kz_filter(x, m_geo), *(self.derivatives(x) if xd is None else xd))
        mf = m_geo
        for _ in range(self.kz_passes):
            mf = self._kz_pass(x, kx, K2, mf, m_geo, front)
        return mf

    def feedback(self, x, kx, K2):
        """The filtered kz feedback δ at this state (what the Jacobian holds fixed)."""
        return self.ln_kz(x, kx, K2) - self.geometric_ln_kz(kx, K2)

    def _force(self, x, m, xd=None):
        """∂xQ at each ray from the quantum-stress energy (module docstring).

        The energy's weights μ_j are the launch's (``weights``), not μ's current value
        ρ0/kz: the weights are the tubes' masses, and a coarse launch's dim edge ray weighs
        ~1e-6 of its neighbours there (e^{2(x_j² − x_i²)} across the one-sided stencils'
        reach), so the stress they exert on it is ~1e5× the force it feels (the frozen
        correction cancels the rest). With μ's own kz in the weights, that ray's kz → its
        weight → that stress closed a loop: measured, 16 rays over ±4 w0 at λ0/w0 = 0.1
        (edge: variational part 8.3e5, correction −8.3e5, true force −32) ran the edge ray
        to kz → 0 by 0.44 z_R and every ray ended "nonfinite" (the same at 0.3 and 1).
        With the launch weights they complete, and the change of kz along the rays stays
        in A (``D2 @ m``) and in the flux; the Gaussian's median distance to the exact
        streamlines (256 rays over ±4 w0, to 1 z_R) went from 1.40 / 1.39 / 1.37 / 1.17× the
        paraxial expectation's at λ0/w0 = 0.1 / 0.3 / 0.5 / 1 to 1.23 / 1.22 / 1.20 / 1.02×."""
        xs, xss = self.derivatives(x) if xd is None else xd
        A_ss = 0.5 * (per_ray(self.ln_rho0_ss, x) - self.D2 @ m)
        dE_dxs = A_ss / xs**3 - xss**2 / xs**5
        dE_dxss = 0.5 * xss / xs**4
        w = per_ray(self.weights, x)
        return -(self.D1T @ (w * dE_dxs) + self.D2T @ (w * dE_dxss)) / w

    def chain_force(self, x, m):
        """∂xQ = Q_s/x_s straight from the stencils: accurate (exact for a Gaussian) but
        not variational — used only in :meth:`calibrate`."""
        return (self.D1 @ self.Q(x, m)) / (self.D1 @ x)

    def Qx(self, x, m, xd=None):
        xd = self.derivatives(x) if xd is None else xd
        return self._force(x, m, xd) + per_ray(self.correction, x) / self.stretch(x, xd[0]) ** 3

    def Q(self, x, m, xd=None):
        xs, xss = self.derivatives(x) if xd is None else xd
        return self.Q_from_log(x, self.ln_R(x, m, xs), xs, xss)

    def jacobian_sparsity(self) -> sp.csr_matrix:
        """Which (x, kx) entries each derivative depends on with the filtered kz feedback
        held fixed (``ln_kz(frozen=...)``): the force's own band (Dᵀ D and D Dᵀ, ±4 rays
        at accuracy 4). The feedback's own dependence is left out: it is ≤ ~1/3 of the
        rest on label-scale modes and ~(λ0/w0)²/16π² on the beam's."""
        B = (abs(self.D1) + abs(self.D2)).astype(bool).astype(float)
        P = ((B.T @ B) + (B @ B.T)).astype(bool).astype(float)
        return sp.bmat([[P, P], [P, P]]).tocsr()

    def margins(self, x, kx, K2, Q, resample=False) -> dict[str, np.ndarray]:
        """Per-ray distances to the stop conditions (> 0 while the ensemble is valid);
        with ``resample``, also the front's distance to re-sampling (the same on every
        ray): ln RESAMPLE_SPREAD minus the spread of ln(gap/launch gap)."""
        gaps = np.diff(x)
        ratio = gaps / self.gap0
        gap_margin = np.full(self.n, np.inf)
        gap_margin[:-1] = np.minimum(gap_margin[:-1], ratio - CROSSING_FRACTION)
        gap_margin[1:] = np.minimum(gap_margin[1:], ratio - CROSSING_FRACTION)
        node = np.full(self.n, np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):
            jump = np.log(NODE_GAP_RATIO) - np.abs(np.diff(np.log(np.abs(ratio))))
        node[1:-1] = jump
        forbidden = (K2 + Q + self.C - kx**2) / K2 - FORBIDDEN_MARGIN
        out = {"crossed": gap_margin, "node": node, "forbidden": forbidden}
        if resample:
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = np.ptp(np.log(np.abs(ratio)))
            out["resample"] = np.full(self.n, np.log(RESAMPLE_SPREAD) - spread)
        return out


class FieldPotential(FieldInterpolant):
    """Q(x, z) and ∂Q/∂x from a field Dataset, by quintic splines on its grid.

    Where the field's amplitude is below ``floor``·max (nodes) Q is undefined; a ray
    entering a grid cell that touches such a point stops with status "node" (the grid,
    mask and margins: :class:`wavetraj.interpolant.FieldInterpolant`).
    """

    SPLINE_DEGREE = SPLINE_DEGREE

    def __init__(self, field, *, floor: float = AMPLITUDE_FLOOR):
        Q = wave_potential(field, floor=floor).values
        nz, nx = Q.shape
        if nx <= self.SPLINE_DEGREE or nz <= self.SPLINE_DEGREE:
            raise ValueError(
                f"the field grid is {nz} × {nx} (z × x); a quintic spline "
                f"of Q needs > {self.SPLINE_DEGREE} points along each axis"
            )
        # outside the grid the domain margin stops a ray ("domain"), not the node mask
        super().__init__(field, ~np.isfinite(Q), outside=0.0)
        self._spline = self.spline(Q, self.SPLINE_DEGREE)

    def __call__(self, x, z) -> tuple[np.ndarray, np.ndarray]:
        return self._spline.ev(z, x), self._spline.ev(z, x, dy=1)
