"""raytrace: geometric optics, field-driven rays and the self-consistent Wave Potential."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate

import raytrace as rt
import wavetraj
from raytrace import march, problems

from .helpers import gaussian_beam, observed_order

EQ11_MAX = 1e-4  # issue 4: rays with |x0| <= 2 w0 within 1e-4 w0 of seed eq. 11
#: Integration floor: Radau at rtol = atol = 1e-7 leaves ~1e-8 w0 (measured 2–4e-8 over
#: 3 z_R); the self-consistent Gaussian is exact in the ray count (calibrated ensemble).
INTEGRATION_FLOOR = 2e-7
#: Geometric-optics rays against their closed form: DOP853 at rtol 1e-7 over half a
#: period of the lens (measured 1.3e-6 w0).
GEOMETRIC_TOL = 1e-5
WAIST_TOL = 0.01  # issue 4: the rays' 1/e width at the focus within 1 % of Kogelnik
FIELD_STREAMLINE_TOL = 1e-5  # field-driven rays vs exact streamlines (quintic spline of Q)
ORDER_MIN = 2.0  # issue 4: error falls at a fitted order >= 2 with the ray count


def gaussian(x):
    return np.exp(-(x**2))


def eq11_error(rays, zR, x0_max=2.0):
    x0 = rays["x0"].values[:, None]
    exact = x0 * np.sqrt(1 + (rays["z"].values / zR) ** 2)
    sel = np.abs(rays["x0"].values) <= x0_max
    return float(np.nanmax(np.abs(rays["x"].values - exact)[sel]))


def grin(k, a):
    """Schrödinger dynamics with K² = k²(1 − x²/a²): V = E x²/a² and its gradient."""
    E = k**2 / 2

    def V(x, z):
        return E * x**2 / a**2

    V.gradient = lambda x, z: (2 * E * x / a**2, 0 * x)
    return rt.Schrodinger(V, E=E)


# ----------------------------------------------------------------- geometric optics
def test_geometric_optics_straight_rays_in_free_space():
    d = rt.Schrodinger.for_wavelength(0.1)
    K = 2 * np.pi / 0.1
    x0 = np.linspace(-2, 2, 9)
    phi0 = 0.3 * K * x0  # tilted launch: kx = 0.3 K
    rays = rt.trace(d, x0, gaussian, phi0=phi0, z_end=20.0, wave_potential="none")
    slope = 0.3 / np.sqrt(1 - 0.3**2)
    exact = x0[:, None] + slope * rays["z"].values
    np.testing.assert_allclose(rays["x"].values, exact, atol=GEOMETRIC_TOL)
    assert (rays["status"].values == "ok").all()
    assert np.all(rays["Q"].values == 0)
    wavetraj.validate_rays(rays)


def test_geometric_optics_grin_focuses_to_a_point():
    """K² = k²(1 − x²/a²) does not depend on z, so kz = K(x0) on each ray and
    x = x0 cos(Ω z), Ω = 1/(a·sqrt(1 − x0²/a²)) exactly: x0 cos(z/a) paraxially."""
    k, a = 2 * np.pi / 1e-2, 100.0
    x0 = np.linspace(-3, 3, 13)
    rays = rt.trace(grin(k, a), x0, gaussian, z_end=np.pi * a, wave_potential="none")
    z = rays["z"].values
    omega = 1 / (a * np.sqrt(1 - x0**2 / a**2))
    exact = x0[:, None] * np.cos(omega[:, None] * z)
    np.testing.assert_allclose(rays["x"].values, exact, atol=GEOMETRIC_TOL)
    focus = np.argmin(np.abs(z[0] - np.pi * a / 2))
    # a point focus up to the non-paraxial spread of Ω (7e-4 of x0 here)
    assert np.ptp(rays["x"].values[:, focus]) < 1e-3 * np.ptp(x0)


# ----------------------------------------------------------------- self-consistent
@pytest.mark.parametrize("lam", [1e-4, 1e-2])
def test_self_consistent_gaussian_follows_eq11(lam):
    d = rt.Schrodinger.for_wavelength(lam)
    zR = np.pi / lam  # k w0²/2
    rays = rt.trace(d, rt.launch_points(), gaussian, z_end=3 * zR, n_steps=31)
    assert (rays["status"].values == "ok").all()
    err = eq11_error(rays, zR)
    # At 1e-2 the ray system is not paraxial: measured 4.7e-5 w0 of physical deviation
    # from eq. 11 (converged in ray count), inside the 1e-4.
    assert err <= (INTEGRATION_FLOOR if lam == 1e-4 else EQ11_MAX), err
    assert rays.attrs["launch"] == "dispersion"
    assert np.nanmax(np.abs(rays["dispersion_residual"].values)) < 1e-6 * (2 * np.pi / lam) ** 2


def check_stable_gaussian(n, span):
    """λ0/w0 = 1e-4, where eq. 11 is exact even for the edge rays (at 1e-2 the rays from
    ±4 w0 leave it by 4e-4 w0 at 3 z_R: non-paraxial physics, not instability)."""
    lam = 1e-4
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    rays = rt.trace(d, np.linspace(-span, span, n), gaussian, z_end=3 * zR, n_steps=16)
    x = rays["x"].values
    assert (rays["status"].values == "ok").all()
    assert np.all(np.isfinite(x))
    assert np.all(np.diff(x, axis=0) > 0)  # no crossing: the order of the rays is kept
    exact = rays["x0"].values[:, None] * np.sqrt(1 + (rays["z"].values / zR) ** 2)
    assert np.max(np.abs(x - exact)) <= EQ11_MAX  # the edge rays too


@pytest.mark.parametrize(("n", "span"), [(32, 4.0), (128, 4.0), (400, 4.0), (32, 1.0), (128, 1.0)])
def test_self_consistent_stable_for_ray_counts_and_spans(n, span):
    check_stable_gaussian(n, span)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "span"), [(1000, 4.0), (4000, 4.0), (400, 1.0), (1000, 1.0)])
def test_self_consistent_stable_dense_ensembles(n, span):
    """Slow variant of the test above (measured 13 s at 1000 rays over ±4 w0, 107 s over
    ±1 w0, where the ray spacing and hence the stiffness is 16× larger)."""
    check_stable_gaussian(n, span)


def bell(x):
    return np.exp(-(x**4))


def test_self_consistent_order_in_ray_count_on_a_non_gaussian_launch():
    """A bell launch is not self-similar, so the ensemble's discretisation error shows:
    measured against 4× the finest count (same launch span, nested rays)."""
    lam = 1e-4
    d = rt.Schrodinger.for_wavelength(lam)
    zR = np.pi / lam
    kw = {"z_end": 0.1 * zR, "n_steps": 5}
    counts = (41, 81, 161)
    ref = rt.trace(d, np.linspace(-2, 2, 4 * (counts[-1] - 1) + 1), bell, **kw)
    errs = []
    for n in counts:
        rays = rt.trace(d, np.linspace(-2, 2, n), bell, **kw)
        stride = (ref.sizes["ray"] - 1) // (n - 1)
        inner = np.abs(rays["x0"].values) <= 1
        diff = rays["x"].values - ref["x"].values[::stride]
        errs.append(float(np.nanmax(np.abs(diff[inner]))))
    order = observed_order(4.0 / (np.array(counts) - 1), errs)
    assert order >= ORDER_MIN, (order, errs)


def test_lens_waist_matches_kogelnik_where_geometric_optics_gives_a_point():
    k, a = 2 * np.pi / 1e-2, 100.0
    x0 = rt.launch_points(121)
    zf = np.pi * a / 2
    rays = rt.trace(grin(k, a), x0, gaussian, z_end=zf, n_steps=21)
    assert (rays["status"].values == "ok").all()
    one = np.argmin(np.abs(x0 - 1.0))  # the ray launched at the 1/e amplitude point
    w_min = 2 * a / (k * 1.0)
    assert abs(rays["x"].values[one, -1] - w_min) <= WAIST_TOL * w_min
    geo = rt.trace(grin(k, a), x0, gaussian, z_end=zf, n_steps=21, wave_potential="none")
    assert abs(geo["x"].values[one, -1]) < 0.01 * w_min


#: The ensemble low-pass filters the feedback of kz on Q (raytrace.wave_potential), so
#: k² = K² + Q + C holds up to the filtered-away part: measured 5e-7 of max|Q| (at the
#: ensemble's edge, where the filter flattens the feedback) at λ0/w0 = 1e-2 over 0.3 z_R.
FILTERED_CONSTRAINT = 2e-6


def test_seed_launch_convention_keeps_k_equal_K_at_launch():
    lam = 1e-2
    d = rt.Schrodinger.for_wavelength(lam)
    K = 2 * np.pi / lam
    rays = rt.trace(d, rt.launch_points(64), gaussian, z_end=100.0, launch="seed")
    k0 = np.hypot(rays["kx"].values[:, 0], rays["kz"].values[:, 0])
    np.testing.assert_allclose(k0, K, rtol=1e-12)
    assert rays.attrs["launch"] == "seed"
    res = rays["dispersion_residual"].values
    # k² − K² − Q = −Q(launch) is carried along each ray, up to the part of the kz
    # feedback the ensemble filters away (FILTERED_CONSTRAINT)
    Q0 = rays["Q"].values[:, :1]
    atol = FILTERED_CONSTRAINT * np.abs(Q0).max()
    np.testing.assert_allclose(res, -Q0 * np.ones_like(res), atol=atol)


# ----------------------------------------------------------------- Klein–Gordon
def test_klein_gordon_time_of_flight_and_same_ray_shapes():
    E, m0 = 700.0, 400.0  # v = 0.82 c; λ0/w0 = 2π/p = 1.1e-2
    kg = rt.KleinGordon(None, E=E, rest_mass=m0)
    p = np.sqrt(E**2 - m0**2)
    x0 = rt.launch_points(48)
    z_end = 3 * p / 2  # 3 Rayleigh lengths for K = p
    rays = rt.trace(kg, x0, gaussian, z_end=z_end, n_steps=11, wave_potential="none")
    v = p / E  # c²p/E
    np.testing.assert_allclose(rays["t"].values[:, -1], z_end / v, rtol=1e-10)
    same = rt.Schrodinger(None, E=p**2 / 2)  # same K² = p²
    a = rt.trace(kg, x0, gaussian, z_end=z_end, n_steps=11)
    b = rt.trace(same, x0, gaussian, z_end=z_end, n_steps=11)
    np.testing.assert_allclose(a["x"].values, b["x"].values, atol=1e-7)
    assert "KleinGordon" in a.attrs["dynamics"]


# ----------------------------------------------------------------- field-driven
def paraxial_gaussian_field(lam, zR_span=2.0):
    k = 2 * np.pi / lam
    zR = k / 2
    x = np.linspace(-8, 8, 641)  # h = w0/40: Q = ∇²R/R from 4th-order differences to ~1e-5
    z = np.linspace(0, zR_span * zR, 201)
    X, Z = np.meshgrid(x, z)
    A = gaussian_beam(X, Z, zR)
    return wavetraj.field_dataset(
        x, z, A, np.full(A.shape, k**2), k_ref=k, method="exact-paraxial", wavelength=lam
    )


def test_field_driven_rays_follow_the_fields_streamlines():
    lam = 1e-4
    field = paraxial_gaussian_field(lam)
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    x0 = np.linspace(-2, 2, 9)
    rays = rt.trace(d, x0, gaussian, z_end=2 * zR, n_steps=21, wave_potential=field)
    assert (rays["status"].values == "ok").all()
    assert rays.attrs["wave_potential"] == "field"
    assert eq11_error(rays, zR) <= FIELD_STREAMLINE_TOL
    # R along the rays is the field's amplitude: R0·sqrt(w0/w) on the ray from x0.
    w = np.sqrt(1 + (rays["z"].values / zR) ** 2)
    R = np.exp(-(x0[:, None] ** 2)) / np.sqrt(w)
    np.testing.assert_allclose(rays["R"].values, R, rtol=1e-3, atol=1e-6)


def test_field_driven_rays_stop_at_the_domain_edge_and_at_the_fields_nodes():
    lam = 1e-4
    k = 2 * np.pi / lam
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    # A plane wave (A = 1, Q = 0) fills the window: a tilted ray leaves through x = 8.
    x, z = np.linspace(-8, 8, 81), np.linspace(0, zR, 41)
    flat = wavetraj.field_dataset(
        x,
        z,
        np.ones((z.size, x.size)),
        np.full((z.size, x.size), k**2),
        k_ref=k,
        method="plane-wave",
        wavelength=lam,
    )
    rays = rt.trace(
        d,
        np.array([0.0, 1.0]),
        gaussian,
        phi0=lambda x: 1e-3 * k * x,
        z_end=zR,
        wave_potential=flat,
        n_steps=11,
    )
    assert rays["status"].values.tolist() == ["domain", "domain"]
    np.testing.assert_allclose(rays["stop_x"].values, 8.0, atol=1e-6)
    slope = 1e-3 / np.sqrt(1 - 1e-6)
    np.testing.assert_allclose(rays["stop_z"].values, (8.0 - np.array([0, 1])) / slope, rtol=1e-6)
    # A Gaussian field: the ray launched at 6 w0 starts where R < 1e-6 max: Q undefined.
    rays = rt.trace(
        d, np.array([0.0, 6.0]), gaussian, z_end=zR, wave_potential=paraxial_gaussian_field(lam)
    )
    assert rays["status"].values.tolist() == ["ok", "node"]
    assert rays["stop_x"].values[1] == 6.0 and rays["stop_z"].values[1] == 0.0


# ----------------------------------------------------------------- nodes
@pytest.mark.parametrize("resample", [False, True])
def test_bell_launch_stops_rays_at_nodes_and_records_where(resample):
    """Without re-sampling, the far tail's rays stop "node" where the front is no longer
    resolved; with it (the default) the front is re-launched evenly instead. Either way
    a stall on the dim tail stops only rays dimmer than DARK_EDGE_FRACTIONS[-1]."""
    lam = 1e-4
    zR = np.pi / lam
    x0 = np.linspace(-2.5, 2.5, 128)
    rays = rt.trace(
        rt.Schrodinger.for_wavelength(lam), x0, bell, z_end=zR, n_steps=11, resample=resample
    )
    status = rays["status"].values
    assert set(status) <= set(wavetraj.RAY_STATUSES)
    stopped = status != "ok"
    assert rays.attrs["resample"] == int(resample)
    if resample:
        assert rays.attrs["resamples"] > 0 and "re-sampled" in rays.attrs["march_notes"]
        # a stall on the dim tail stops its rays ("dark" if launched below
        # DARK_FRACTION, else "node"); the re-sampled front itself stops none
        assert set(status[stopped]) <= {"dark", "node"}
        assert np.all(status[bell(x0) >= march.DARK_EDGE_FRACTIONS[-1]] == "ok")
        assert np.all(bell(x0)[status == "dark"] < march.DARK_FRACTION)
    else:
        # the far tail (R0 down to 1e-17) stops: "node" where the front is unresolved,
        # "dark" (launched below DARK_FRACTION) or "node" when the march stalls on it
        assert rays.attrs["resamples"] == 0
        assert (status == "node").any() and set(status[stopped]) <= {"node", "dark", "ensemble"}
        assert np.all(bell(x0)[stopped] < march.DARK_EDGE_FRACTIONS[-1])
        assert np.all(bell(x0)[status == "dark"] < march.DARK_FRACTION)
    assert np.all(np.isfinite(rays["stop_z"].values[stopped]))
    assert np.all(np.isnan(rays["stop_z"].values[~stopped]))
    # rays that carry on are finite all the way and keep their order
    x = rays["x"].values[~stopped]
    assert np.all(np.isfinite(x)) and np.all(np.diff(x, axis=0) > 0)


# ----------------------------------------------------------------- errors
def test_bad_input_names_the_parameter():
    d = rt.Schrodinger.for_wavelength(1e-2)
    x0 = rt.launch_points(32)
    with pytest.raises(ValueError, match="wave_potential must be one of"):
        rt.trace(d, x0, gaussian, z_end=1.0, wave_potential="magic")
    with pytest.raises(ValueError, match="launch must be one of"):
        rt.trace(d, x0, gaussian, z_end=1.0, launch="x")
    with pytest.raises(ValueError, match=r"needs >= \d+ rays"):
        rt.trace(d, x0[:5], gaussian, z_end=1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        rt.trace(d, x0[::-1], gaussian, z_end=1.0)
    with pytest.raises(ValueError, match="z_end must be a finite number"):
        rt.trace(d, x0, gaussian, z_end=-1.0)
    with pytest.raises(ValueError, match="R0 must be > 0"):
        rt.trace(d, x0, lambda x: np.exp(-(x**2)) - 1e-3, z_end=1.0)
    with pytest.raises(TypeError, match="dynamics must be"):
        rt.trace("schrodinger", x0, gaussian, z_end=1.0)
    with pytest.raises(ValueError, match=r"not allowed .*K² ≤ 0"):
        rt.trace(rt.Schrodinger(lambda x, z: 10 + 0 * x, E=1.0), x0, gaussian, z_end=1.0)
    with pytest.raises(ValueError, match="mass must be a positive"):
        rt.Schrodinger(None, E=1.0, mass=-1)


# ------------------------------------------------- the implicit ensemble's own pieces
#: The coloured Jacobian against dense central differences: its own central differences
#: with a step of ∛ε times the ray gap leave 8.5e-9 of the largest entry of a row
#: (measured at every λ0/w0 here; forward differences left 1e-5).
JACOBIAN_TOLERANCE = 1e-7
#: Largest Newton contraction factor ρ((I − hJ)⁻¹ h (J_full − J)) accepted for the
#: coloured Jacobian J, which holds the filtered kz feedback fixed, at a step h = 10 w0
#: (longer than the march takes at λ0/w0 >= 0.3): measured 0.02–0.08; Radau's simplified
#: Newton fails above ~0.5.
NEWTON_CONTRACTION = 0.2


def _ensemble_state(lam, n=48):
    x0 = np.linspace(-3, 3, n)
    d = rt.Schrodinger.for_wavelength(lam)
    problem = problems._SelfConsistent(
        d, x0, np.zeros(n), -(x0**2), 0.0, launch="dispersion", accuracy=4
    )
    z = 0.5 * np.pi / lam  # half a Rayleigh length: a front that is not the launch
    y = np.concatenate([x0 * 1.1 + 1e-3 * np.sin(7 * x0), 0.3 * x0, np.zeros(2 * n)])
    return problem, np.arange(n), z, y


def _dense_jacobian(problem, rays, z, y, **frozen):
    n = rays.size
    dense = np.zeros((2 * n, 2 * n))
    gap = np.diff(problem.x0)[0]
    for j in range(2 * n):
        h = 1e-6 * max(abs(y[j]), 1.0) * (gap if j < n else 1.0)
        up, down = y.copy(), y.copy()
        up[j] += h
        down[j] -= h
        diff = problem.rhs(z, up, rays, **frozen) - problem.rhs(z, down, rays, **frozen)
        dense[:, j] = diff[: 2 * n] / (2 * h)
    return dense


@pytest.mark.parametrize("lam", [1e-4, 1e-2, 1.0])
def test_coloured_ensemble_jacobian_matches_dense_differences(lam):
    """The colouring is exact: the coloured Jacobian is the dense one of the system with
    the kz feedback held fixed."""
    problem, rays, z, y = _ensemble_state(lam)
    n = rays.size
    J = problem.jacobian(z, y, rays).toarray()[: 2 * n, : 2 * n]
    dense = _dense_jacobian(problem, rays, z, y, frozen=problem.feedback(z, y, rays))
    scale = np.abs(dense).max(axis=1, keepdims=True)
    assert np.max(np.abs(J - dense) / scale) < JACOBIAN_TOLERANCE


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_jacobian_without_the_kz_feedback_still_converges_newton(lam):
    """What the coloured Jacobian leaves out (the filtered kz feedback's own dependence
    on the state) is small enough for Radau's Newton iteration at long steps."""
    problem, rays, z, y = _ensemble_state(lam)
    n = rays.size
    J = problem.jacobian(z, y, rays).toarray()[: 2 * n, : 2 * n]
    full = _dense_jacobian(problem, rays, z, y)
    h = 10.0 / 3.64  # Radau IIA's real eigenvalue: the LU is of I/(hγ) − J, γ = 1/3.64
    error = np.linalg.solve(np.eye(2 * n) - h * J, h * (full - J))
    assert np.max(np.abs(np.linalg.eigvals(error))) < NEWTON_CONTRACTION


def test_self_consistent_time_table_is_the_quadrature_of_its_kz():
    """t and σ are integrated after the implicit march, from its dense output: they must
    be ∫ dz/kz (Schrödinger: t = m σ/ħ, m = ħ = 1) of the kz the rays report."""
    lam = 0.05
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    rays = rt.trace(d, rt.launch_points(48), gaussian, z_end=2 * zR, n_steps=401)
    z = rays["z"].values[0]
    simpson = scipy.integrate.simpson(1.0 / rays["kz"].values, x=z, axis=1)
    np.testing.assert_allclose(rays["sigma"].values[:, -1], simpson, rtol=1e-7)
    np.testing.assert_allclose(rays["t"].values, rays["sigma"].values, rtol=1e-12)
    assert set(rays["status"].values.astype(str)) == {"ok"}


# --- the ensemble across ray counts and wavelengths (issue 13) ----------------------------

#: (rays over ±4 w0, λ0/w0) carried to 2 z_R with every ray "ok". The default run takes
#: one case per regime: the coarsest launch the ensemble accepts (16 rays: its dim edge
#: rays, at 1e-7 of the peak, ran away until the force's weights were the launch's,
#: ``Ensemble._force``), rays far coarser than λ0/2π, near it, and 5–40× finer (where the
#: unfiltered kz fixed point diverged and launches were refused); the slow grid the rest.
STABLE_FAST = [(16, 0.3), (64, 0.1), (256, 0.3), (256, 1.0), (1000, 0.5)]
STABLE_SLOW = [
    (n, lam)
    for n in (16, 24, 32, 64, 256, 1000, 4000)
    for lam in (1e-4, 1e-2, 0.1, 0.3, 0.5, 1.0)
    if (n, lam) not in STABLE_FAST
]


def _completes(n, lam):
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    rays = rt.trace(d, np.linspace(-4, 4, n), gaussian, z_end=2 * zR, n_steps=11)
    assert set(rays["status"].values.astype(str)) == {"ok"}, rays.attrs["march_notes"]
    assert np.all(np.isfinite(rays["x"].values))
    # the filtered feedback leaves k² = K² + Q up to what the filter takes out
    core = np.abs(rays["x0"].values) <= 2
    residual = np.abs(rays["dispersion_residual"].values[core]).max()
    assert residual < FEEDBACK_RESIDUAL[lam] * (2 * np.pi / lam) ** 2


#: |k² − K² − Q| / K² on the core rays (|x0| <= 2 w0) over 2 z_R: the part of the kz
#: feedback the filter (ε = 2.5/kz) takes out. Measured 3e-11 (λ0/w0 = 0.1), 2e-7 (0.3),
#: 1.6e-5 (0.5) and 6.2e-2 (1: the filter reaches the beam's own scales there); this
#: bounds it at ~3× the measurement. Beyond the core it grows (0.5 at the ±4 w0 edge,
#: λ0/w0 = 1), where the filter flattens the feedback.
FEEDBACK_RESIDUAL = {1e-4: 1e-9, 1e-2: 1e-9, 0.1: 1e-9, 0.3: 1e-6, 0.5: 1e-4, 1.0: 0.2}


@pytest.mark.parametrize(("n", "lam"), STABLE_FAST)
def test_ensemble_completes_at_any_ray_spacing(n, lam):
    _completes(n, lam)


@pytest.mark.slow
@pytest.mark.parametrize(("n", "lam"), STABLE_SLOW)
def test_ensemble_completes_at_any_ray_spacing_full_grid(n, lam):
    _completes(n, lam)


#: Largest ratio of the self-consistent rays' median distance to the exact (angular
#: spectrum) streamlines over the paraxial expectation's (the paraxial field's own
#: streamlines): what is left is the transverse Wave Potential (issue 15). Measured 1.22
#: at λ0/w0 = 0.3 and 1.02 at 1 (256 rays over ±4 w0, to 1 z_R; 1.39 and 1.17 before the
#: force's weights were the launch's); issue 13 asks <= 3.
PARAXIAL_RATIO = 1.4


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_fine_ensemble_is_as_close_to_exact_streamlines_as_paraxial_theory(lam):
    import wavefield as wf
    from compare.streamlines import streamlines

    k, zR = 2 * np.pi / lam, np.pi / lam
    planes = np.linspace(0, zR, 11)
    x = np.linspace(-8.5, 8.5, 4096)
    x0 = np.linspace(-4, 4, 256)
    core = np.flatnonzero(np.abs(x0) <= 2)[::8]  # R0 >= e^-4 of the peak
    exact = streamlines(wf.angular_spectrum(k, x, planes, gaussian(x)), x0[core], z_out=planes)
    paraxial_field = wf.propagate_paraxial(k**2, x, planes, gaussian(x), k_ref=k)
    paraxial = streamlines(paraxial_field, x0[core], z_out=planes)
    rays = rt.trace(rt.Schrodinger.for_wavelength(lam), x0, gaussian, z_out=planes)
    assert set(rays["status"].values.astype(str)) == {"ok"}
    ray_d = np.abs(rays["x"].values[core] - exact["x"].values).max(axis=1)
    par_d = np.abs(paraxial["x"].values - exact["x"].values).max(axis=1)
    assert np.median(ray_d) <= PARAXIAL_RATIO * np.median(par_d)


#: The GRIN eigenmode's rays are straight; the ensemble keeps them so to round-off
#: (measured 1e-13 w0). Its Q = 4x² − 2 is a polynomial the stencils differentiate exactly
#: and the launch calibration makes the force exact, so this is a check of the medium and
#: kz terms, not of the method's accuracy (the launches above are that).
EIGENMODE_TOL = 1e-9


@pytest.mark.parametrize("lam", [1e-2, 0.3, 1.0])
def test_grin_eigenmode_rays_stay_straight(lam):
    """K² = k²(1 − x²/a²), α = k/a = 2: u = e^{−x²} e^{iβz} with β² = k² − α is exact and
    K² + ∇²R/R = β² everywhere, so every ray keeps x = x0."""
    k = 2 * np.pi / lam
    rays = rt.trace(grin(k, k / 2.0), np.linspace(-3, 3, 128), gaussian, z_end=np.pi / lam)
    assert set(rays["status"].values.astype(str)) == {"ok"}
    drift = np.abs(rays["x"].values - rays["x0"].values[:, None]).max()
    assert drift < EIGENMODE_TOL
    core = np.abs(rays["x0"].values) <= 2
    kz_error = np.abs(rays["kz"].values[core] / np.sqrt(k**2 - 2.0) - 1).max()
    assert kz_error < EIGENMODE_KZ[lam]


#: The eigenmode's exact kz is β0 on every ray; the ensemble's differs by the filtered-
#: away kz feedback (ln kz_geo = ½ ln K² varies across the GRIN medium, the feedback
#: cancels it): measured on the core rays 9e-16 (λ0/w0 = 1e-2), 8e-6 (0.3) and 6.1e-2
#: (1: the filter's cost at λ0 ~ w0, open in issue 13), bounded here at ~2×.
EIGENMODE_KZ = {1e-2: 1e-12, 0.3: 2e-5, 1.0: 0.12}


# --- nodes and fringes: the bell's far field (issue 13) -----------------------------------

#: Share of the bell's core rays (R0 >= 1e-3 of the peak) that end within FRINGE_DISTANCE
#: of the exact streamlines at 3 z_R, where the far field has formed fringes with true
#: zeros. Measured over ±2.5 w0 (λ0/w0 = 1e-4), 512 rays (issue 13 asks 90 %): 100 % with
#: the front re-sampled (11 times; median 1.2e-4 w0, largest 6.1e-3), 84 % without.
FRINGE_SHARE = 0.97
FRINGE_DISTANCE = 1e-2


def test_bell_far_field_fringes_follow_the_exact_streamlines():
    """exp(−x⁴) over ±2.5 w0 to 3 z_R: the far tail (R0 down to 1e-17) stops "dark" when
    the march stalls on it, every ray brighter than 1e-6 of the peak reaches 3 z_R, and the
    core rays bunch into the fringes as the exact streamlines do."""
    import wavefield as wf
    from compare.streamlines import streamlines

    lam = 1e-4
    k, zR = 2 * np.pi / lam, np.pi / lam
    # the judge's streamlines interpolate ∇φ between planes: 121 planes over 3 z_R put
    # 12 % of these streamlines > 1e-2 w0 off, 301 converge (measured)
    planes = np.linspace(0, 3 * zR, 301)
    x0 = np.linspace(-2.5, 2.5, 512)
    rays = rt.trace(rt.Schrodinger.for_wavelength(lam), x0, bell, z_out=planes)
    assert rays.attrs["resamples"] > 0
    status = rays["status"].values.astype(str)
    assert set(status) == {"ok", "dark"}, rays.attrs["march_notes"]
    assert np.all(bell(x0[status == "dark"]) < 1e-6)
    assert np.all(status[bell(x0) >= 1e-6] == "ok")
    assert np.all(np.isfinite(rays["stop_z"].values[status == "dark"]))
    core = np.flatnonzero(bell(x0) >= 1e-3)[::2]
    x = np.linspace(-32, 32, 8192)
    exact = streamlines(wf.angular_spectrum(k, x, planes, bell(x)), x0[core], z_out=planes)
    assert set(exact["status"].values.astype(str)) == {"ok"}
    distance = np.abs(rays["x"].values[core] - exact["x"].values).max(axis=1)
    assert np.mean(distance < FRINGE_DISTANCE) >= FRINGE_SHARE


def crossing(x):
    """Two Gaussians 6 w0 apart tilted towards each other, e^{−(x∓3)²}e^{∓2ix}: they meet
    at 3 z_R (λ0/w0 = 1e-4), and long before that the rays in the valley between them
    compress (their gaps fall to 1 % of the launch gaps by 0.3 z_R, as the exact
    streamlines' do)."""
    return np.exp(-((x - 3) ** 2) - 2j * x) + np.exp(-((x + 3) ** 2) + 2j * x)


def crossing_phase(x):
    """The continuous phase of :func:`crossing`: −2|x| plus a correction, small away from
    x = 0, that smooths the kink (u = 2e^{−x²−9} cosh(6x − 2ix))."""
    c = np.arctan2(-np.tanh(6 * x) * np.sin(2 * x), np.cos(2 * x)) + 2 * np.abs(x)
    return -2 * np.abs(x) + np.angle(np.exp(1j * c))


#: Crossing beams to 0.6 z_R over ±5.5 w0: largest distance of the core rays (R0 >= e^-4
#: of the peak) to the exact streamlines at the finest count. Measured with re-sampling
#: (15–16 times): 1.8e-3, 1.6e-4, 1.6e-5 w0 at 128, 256, 512 rays (order 3.4); without
#: it 128 rays stall from 0.10 z_R and 256 at 0.31. Coarser launches (64, 96 rays) do not
#: resolve the launch phase's turn from +2 to −2 across the valley (width ~0.08 w0) and
#: fail there. To 3 z_R, where they cross, 384 rays over ±7 w0 stall at 1.06 z_R on their
#: dim edges: issue 13.
CROSSING_FINEST = 1e-4


def test_crossing_beams_converge_through_a_compressed_valley_by_re_sampling():
    import wavefield as wf
    from compare.streamlines import streamlines

    lam = 1e-4
    k, zR = 2 * np.pi / lam, np.pi / lam
    planes = np.linspace(0, 0.6 * zR, 61)
    x = np.linspace(-48, 48, 16384)
    field = wf.angular_spectrum(k, x, planes, crossing(x))
    d = rt.Schrodinger.for_wavelength(lam)
    amplitude = lambda x: np.abs(crossing(x))  # noqa: E731
    counts, errs = (128, 256, 512), []
    for n in counts:
        x0 = np.linspace(-5.5, 5.5, n)
        R0 = amplitude(x0)
        core = np.flatnonzero(R0 >= np.exp(-4) * R0.max())
        rays = rt.trace(d, x0, amplitude, phi0=crossing_phase, z_out=planes)
        assert set(rays["status"].values.astype(str)) == {"ok"}, rays.attrs["march_notes"]
        assert rays.attrs["resamples"] > 0
        exact = streamlines(field, x0[core], z_out=planes)
        assert set(exact["status"].values.astype(str)) == {"ok"}
        errs.append(float(np.abs(rays["x"].values[core] - exact["x"].values).max()))
    order = observed_order(11.0 / (np.array(counts) - 1), errs)
    assert order >= EXACT_ORDER_MIN and errs[-1] < CROSSING_FINEST, (order, errs)
    # without re-sampling the coarsest of them stalls where the valley compresses
    x0 = np.linspace(-5.5, 5.5, counts[0])
    stalled = rt.trace(d, x0, amplitude, phi0=crossing_phase, z_out=planes[:31], resample=False)
    assert set(stalled["status"].values.astype(str)) != {"ok"}


#: The HG1 mode's rays are straight: measured drift 3.6e-8 and 1.9e-8 w0 at λ0/w0 = 1e-2
#: and 1 with the inner edge 0.03 w0 from the node (0.83 w0 and a stall before the launch
#: profile's own derivatives of ln R0 replaced the stencils' there). At 0.02 w0 the
#: calibration's per-tube scaling has a growing mode (Ensemble.stretch): issue 13.
NODE_EIGENMODE_TOL = 1e-7
NODE_GAP = 0.03


@pytest.mark.parametrize("lam", [1e-2, 0.3, 1.0])
def test_grin_eigenmode_with_a_node_on_the_axis_keeps_straight_rays(lam):
    """u = x e^{−x²} e^{iβ1 z} (β1² = k² − 3α) in K² = k²(1 − x²/a²), α = 2: K² + ∇²R/R is
    constant, so rays launched on x > 0 stay at x0, down to the ensemble's inner edge next
    to the node. Here ln R0 = ln x − x² is not a polynomial and is far from resolved by the
    rays near the node (the stencils put Q 1e2–1e4 off): no calibration is exact."""
    k = 2 * np.pi / lam
    x0 = np.linspace(NODE_GAP, 3, 128)
    rays = rt.trace(grin(k, k / 2.0), x0, lambda x: x * np.exp(-(x**2)), z_end=np.pi / lam)
    assert set(rays["status"].values.astype(str)) == {"ok"}
    drift = np.abs(rays["x"].values - x0[:, None]).max(axis=1)
    assert drift.max() < NODE_EIGENMODE_TOL, drift[:4]


def test_a_solve_that_fails_on_its_dark_edges_goes_on_without_them(monkeypatch):
    """When the implicit solve raises (SuperLU: "Factor is exactly singular"), the rays
    below 1e-6 of the peak at the ensemble's edges stop "dark" where the stretch began and
    every brighter ray runs it again. No launch is known to fail so since the force's
    weights are the launch's (32 rays over ±4 w0 at λ0/w0 = 1 did), so the first solve is
    made to fail here."""
    real, calls = march._solve, []

    def failing_once(*args, **kwargs):
        calls.append(args[1].size)
        if len(calls) == 1:
            raise RuntimeError("Factor is exactly singular")
        return real(*args, **kwargs)

    monkeypatch.setattr(march, "_solve", failing_once)
    x0 = np.linspace(-4, 4, 32)
    rays = rt.trace(rt.Schrodinger.for_wavelength(1.0), x0, gaussian, z_end=2 * np.pi, n_steps=11)
    status = rays["status"].values.astype(str)
    assert calls[:2] == [32, 28]  # the 4 rays below 1e-6 (R0 1.1e-7 and 8.3e-7) dropped
    assert set(status) == {"ok", "dark"}, rays.attrs["march_notes"]
    np.testing.assert_array_equal(status == "dark", gaussian(x0) < 1e-6)
    assert np.all(rays["stop_z"].values[status == "dark"] == 0.0)
    assert "the solve failed (Factor is exactly singular)" in rays.attrs["march_notes"]


def asymmetric(x):
    """A launch with no symmetry and no polynomial ln R0: e^{−x²}(1 + ½ tanh 2x)."""
    return np.exp(-(x**2)) * (1 + 0.5 * np.tanh(2 * x))


#: Fitted order of the self-consistent rays' distance to the exact streamlines in the ray
#: count, on launches no calibration makes exact (λ0/w0 = 1e-4, to 0.5 z_R, 48/96/192
#: rays). Measured (core rays, R0 >= e^-4 of the peak; largest distance): bell over ±2 w0
#: 2.5e-2, 1.8e-3, 1.1e-4 (order 3.9; 6.2e-6 at 384), asymmetric over ±3 w0 7.1e-3,
#: 6.3e-4, 4.2e-5 (order 3.7; 5.7e-6 at 384; the front re-sampled, its tail stopped at
#: 0.46 z_R from 192 rays on, where it forms fringes; without the peel it stalled there).
EXACT_ORDER_MIN = 3.0


@pytest.mark.parametrize(("profile", "span"), [(bell, 2.0), (asymmetric, 3.0)])
def test_ensemble_converges_to_the_exact_streamlines_at_fourth_order(profile, span):
    import wavefield as wf
    from compare.streamlines import streamlines

    lam = 1e-4
    k, zR = 2 * np.pi / lam, np.pi / lam
    planes = np.linspace(0, 0.5 * zR, 101)
    x = np.linspace(-16, 16, 8192)
    field = wf.angular_spectrum(k, x, planes, profile(x))
    counts, errs = (48, 96, 192), []
    for n in counts:
        x0 = np.linspace(-span, span, n)
        core = np.flatnonzero(profile(x0) >= np.exp(-4) * profile(x0).max())
        rays = rt.trace(rt.Schrodinger.for_wavelength(lam), x0, profile, z_out=planes)
        status = rays["status"].values.astype(str)
        # the asymmetric launch's dim left tail forms fringes by 0.46 z_R: from 192 rays
        # on, its rays below DARK_EDGE_FRACTIONS[-1] of the peak stop there (measured: 27
        # of 192, 53 of 384, all "node"); the core goes on
        assert np.all(status[core] == "ok"), rays.attrs["march_notes"]
        stopped = status != "ok"
        assert set(status[stopped]) <= {"node", "dark"}
        assert np.all(profile(x0[stopped]) < march.DARK_EDGE_FRACTIONS[-1] * profile(x0).max())
        exact = streamlines(field, x0[core], z_out=planes)
        errs.append(float(np.abs(rays["x"].values[core] - exact["x"].values).max()))
    order = observed_order(2 * span / (np.array(counts) - 1), errs)
    assert order >= EXACT_ORDER_MIN, (order, errs)
