"""Figures as a public API: each takes Datasets (and an optional matplotlib Axes), draws,
and returns the Axes. No global backend is chosen: without ``ax`` a new
:class:`matplotlib.figure.Figure` is made (in a notebook, pass ``plt.subplots()[1]``).

* :func:`pattern` — the seed-style trajectory pattern: rays over log |u|² per plane,
  heavy rays, geometric-optics rays dashed, where rays stopped at a node;
* :func:`profiles` — R² across the beam on one plane, the field against the rays' own R;
* :func:`overlay` — rays on the streamlines of ∇φ launched from the same points;
* :func:`distance` — each ray's distance from its streamline against z;
* :func:`study_curves` — the validation study's distance against λ0/w0;
* :func:`seed_layout` — the seed's figure layout: pattern left, R² at launch and end right.

Example::

    import matplotlib.pyplot as plt
    from compare import plot
    from compare.run import run_scenario
    from compare.scenarios import get

    r = run_scenario(get("gaussian"))
    plot.pattern(r.rays, r.field, heavy=[40, 87])
    plt.show()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

#: The pattern's intensity map is |u|²/max per plane on a log scale down to this: the
#: bell's far-field fringes sit at 1e-4–1e-2 of the main lobe, their zeros show white.
PATTERN_FLOOR = 1e-6
#: At most this many thin rays are drawn in a pattern (every k-th), so |u|² shows through.
THIN_RAYS = 40
#: Distances below this are at the integration floor (rtol 1e-7 over a few z_R) and are
#: drawn at it in the study curves.
STUDY_FLOOR = 1e-7
STUDY_STYLE = {
    "self_consistent": dict(color="C3", marker="o"),
    "field_driven": dict(color="C0", marker="s"),
    "geometric": dict(color="0.4", marker="^"),
    "paraxial": dict(color="C2", marker="D"),
}


def _axes(ax: Axes | None, figsize=(8, 4)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=figsize).subplots()


def _ray_lines(ax: Axes, ds: xr.Dataset, idx=None, **style) -> None:
    idx = range(ds.sizes["ray"]) if idx is None else idx
    for i in idx:
        ax.plot(ds["z"].values[i], ds["x"].values[i], **style)


def pattern(
    rays: xr.Dataset,
    field: xr.Dataset | None = None,
    *,
    heavy: Sequence[int] = (),
    geometric: xr.Dataset | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Rays over log |u|² (each plane scaled to its own peak, so a spreading beam stays
    visible to the end and weak fringes show), ``heavy`` ray indices drawn heavy,
    ``geometric`` rays dashed, and ×s where rays stopped at a node."""
    ax = _axes(ax)
    if field is not None:
        I = np.abs(field["envelope"].values) ** 2
        I = I / np.maximum(I.max(axis=1, keepdims=True), np.finfo(float).tiny)
        ax.imshow(
            np.clip(I, PATTERN_FLOOR, 1.0).T,
            origin="lower",
            aspect="auto",
            cmap="Greys",
            norm=LogNorm(vmin=PATTERN_FLOOR, vmax=1.0),
            extent=(field.z.values[0], field.z.values[-1], field.x.values[0], field.x.values[-1]),
        )
    thin = range(0, rays.sizes["ray"], max(1, rays.sizes["ray"] // THIN_RAYS))
    _ray_lines(ax, rays, thin, lw=0.6, color="tab:blue", alpha=0.8)
    _ray_lines(ax, rays, heavy, lw=2.2, color="navy")
    if geometric is not None:
        every = max(1, geometric.sizes["ray"] // (THIN_RAYS // 2))
        _ray_lines(
            ax, geometric, range(0, geometric.sizes["ray"], every), lw=0.8, color="tab:red", ls="--"
        )
    stop = np.isfinite(rays["stop_z"].values) & (rays["status"].values.astype(str) == "node")
    if stop.any():
        ax.plot(
            rays["stop_z"].values[stop],
            rays["stop_x"].values[stop],
            "rx",
            ms=5,
            label="stopped at a node",
        )
        ax.legend(loc="upper left", fontsize=8)
    x = rays["x"].values
    if np.isfinite(x).any():
        lo, hi = np.nanmin(x), np.nanmax(x)
        pad = 0.15 * max(hi - lo, 1e-12)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("z / w0")
    ax.set_ylabel("x / w0")
    if title is None:
        title = "rays over log |u|² per plane" + (
            " (dashed: geometric optics)" if geometric is not None else ""
        )
    ax.set_title(title, fontsize=10)
    return ax


def profiles(
    field: xr.Dataset,
    rays: xr.Dataset,
    plane: int = 0,
    *,
    log: bool | None = None,
    ax: Axes | None = None,
) -> Axes:
    """R² across the beam on output ``plane`` (0: the launch, -1: the end): the field's
    |u|² (line) against the rays' own R² at their positions (dots). ``log`` (default: on
    every plane but the launch) shows fringes and zeros orders below the main lobe."""
    ax = _axes(ax, (4, 3))
    j = plane if plane >= 0 else rays.sizes["step"] + plane
    zs = rays["z"].values[:, j]
    zr = (
        float(np.nanmax(zs))
        if np.isfinite(zs).any()
        else float(field["z"].values[0 if j == 0 else -1])
    )
    jf = int(np.argmin(np.abs(field["z"].values - zr)))
    R2 = np.abs(field["envelope"].values[jf]) ** 2
    ax.plot(field.x.values, R2, color="k", lw=1, label="field |u|²")
    ax.plot(
        rays["x"].values[:, j],
        rays["R"].values[:, j] ** 2,
        ".",
        ms=3,
        color="tab:blue",
        label="rays R²",
    )
    if log if log is not None else j > 0:
        ax.set_yscale("log")
        peak = float(np.max(R2))
        if peak > 0:
            ax.set_ylim(PATTERN_FLOOR * peak, 2 * peak)
    xs = rays["x"].values[:, j]
    if np.isfinite(xs).any():
        lo, hi = np.nanmin(xs), np.nanmax(xs)
        pad = 0.3 * max(hi - lo, 1e-12)
        ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("x / w0")
    ax.set_title(f"R² at z = {zr:.4g} w0", fontsize=10)
    ax.legend(fontsize=7)
    return ax


def overlay(rays: xr.Dataset, lines: xr.Dataset, *, ax: Axes | None = None) -> Axes:
    """The rays launched where ``lines`` (streamlines of ∇φ) start, solid, on them, dotted."""
    ax = _axes(ax, (8, 3.5))
    pick = [int(np.argmin(np.abs(rays["x0"].values - v))) for v in lines["x0"].values]
    _ray_lines(ax, rays, pick, lw=1.0, color="tab:blue")
    _ray_lines(ax, lines, lw=1.6, color="tab:orange", ls=":")
    ax.set_xlabel("z / w0")
    ax.set_ylabel("x / w0")
    ax.set_title("rays (blue) on the streamlines of ∇φ (orange dotted)", fontsize=10)
    return ax


def distance(agree: xr.Dataset, *, tolerance: float | None = None, ax: Axes | None = None) -> Axes:
    """Each compared ray's distance from its streamline against z (colour: launch x0)."""
    ax = _axes(ax, (8, 3))
    x0 = agree["x0"].values
    colours = matplotlib.colormaps["viridis"]((x0 - x0.min()) / max(np.ptp(x0), 1e-300))
    for i in range(agree.sizes["ray"]):
        d = agree["distance"].values[i]
        if np.isfinite(d).any():
            ax.semilogy(agree["z"].values[i], np.maximum(d, 1e-14), color=colours[i], lw=0.8)
    if tolerance is not None:
        ax.axhline(tolerance, color="r", ls="--", lw=1, label="tolerance")
        ax.legend(fontsize=8)
    ax.set_xlabel("z / w0")
    ax.set_ylabel("distance from the streamline / w0")
    ax.set_title(
        "distance between each ray and its streamline (colour: launch position)", fontsize=10
    )
    return ax


def seed_layout(
    rays: xr.Dataset,
    field: xr.Dataset,
    *,
    heavy: Sequence[int] = (),
    geometric: xr.Dataset | None = None,
    title: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """The seed's figure layout: the trajectory pattern on the left, R² at the launch
    (top right) and at the end (bottom right)."""
    fig = Figure(figsize=(11, 4.4)) if fig is None else fig
    grid = fig.add_gridspec(2, 3)
    pattern(
        rays, field, heavy=heavy, geometric=geometric, title=title, ax=fig.add_subplot(grid[:, :2])
    )
    profiles(field, rays, 0, ax=fig.add_subplot(grid[0, 2]))
    profiles(field, rays, -1, ax=fig.add_subplot(grid[1, 2]))
    fig.tight_layout()
    return fig


def study_curves(
    ds: xr.Dataset,
    profile: str,
    families: Mapping[str, str],
    *,
    stat: str = "median",
    ax: Axes | None = None,
) -> Axes:
    """The study's ``stat`` distance (median, worst or heavy) of each family against
    λ0/w0 for one launch ``profile``, with the (λ0/w0)² guide through the paraxial curve
    and × where the self-consistent rays did not reach the end."""
    ax = _axes(ax, (5.2, 4.2))
    sub = ds.sel(profile=profile)
    lam = ds["wavelength"].values
    for fam, label in families.items():
        d = sub[f"{fam}_{stat}"].values
        ax.loglog(lam, np.maximum(d, STUDY_FLOOR), label=label, **STUDY_STYLE.get(fam, {}), ms=4)
    failed = sub["self_consistent_completed"].values == 0
    if failed.any():
        ax.plot(
            lam[failed],
            np.full(failed.sum(), 8.0),
            "x",
            color="C3",
            ms=8,
            mew=2,
            label="self-consistent rays did not reach z_end",
        )
    par = sub[f"paraxial_{stat}"].values
    ref = np.flatnonzero(np.isfinite(par) & (par > 1e3 * STUDY_FLOOR))
    if ref.size:
        j = ref[0]
        ax.loglog(lam, par[j] * (lam / lam[j]) ** 2, ":", color="C2", lw=1, label="∝ (λ0/w0)²")
    ax.axhline(STUDY_FLOOR, color="0.7", lw=0.8)
    ax.set_ylim(STUDY_FLOOR / 2, 20)
    ax.set_xlabel("λ0 / w0")
    ax.set_ylabel(f"{stat} ray–streamline distance / w0")
    ax.set_title(f"{profile} launch", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    return ax
