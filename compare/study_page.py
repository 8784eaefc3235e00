"""The validation study's page: distance against λ0/w0 per family, the fitted slopes,
findings computed from the numbers, and the table (``study.html``)."""

from __future__ import annotations

import html
import pathlib

import numpy as np
from matplotlib.figure import Figure

import wavetraj
from compare import plot
from compare.plot import STUDY_FLOOR
from compare.report import fmt, html_page, png_data, write_text
from compare.study import CORE_AMPLITUDE, FAMILIES, slope


def figure_study(ds, stat: str) -> str:
    """Distance (``stat``: median, worst or heavy) against λ0/w0, one panel per profile."""
    profiles = ds["profile"].values.tolist()
    fig = Figure(figsize=(5.2 * len(profiles), 4.2))
    axes = fig.subplots(1, len(profiles), squeeze=False)[0]
    for ax, p in zip(axes, profiles, strict=True):
        plot.study_curves(ds, p, FAMILIES, stat=stat, ax=ax)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return png_data(fig)


def study_page(ds, out_dir) -> pathlib.Path:
    """Write ``study.html`` (curves, fitted slopes, the numbers) from the gathered study."""
    lam = ds["wavelength"].values
    slopes = []
    for p in ds["profile"].values.tolist():
        for fam in ("self_consistent", "paraxial"):
            d = ds.sel(profile=p)[f"{fam}_median"].values
            keep = lam >= 1e-2
            slopes.append(
                f"<li>{p}, {html.escape(FAMILIES[fam])}: slope "
                f"{fmt(slope(lam[keep], d[keep], 1e3 * STUDY_FLOOR))} "
                "(fitted for λ0/w0 ≥ 0.01)</li>"
            )
    findings = []
    for p in ds["profile"].values.tolist():
        sub = ds.sel(profile=p)
        sc, par = sub["self_consistent_median"].values, sub["paraxial_median"].values
        both = (lam >= 1e-2) & np.isfinite(sc) & np.isfinite(par)
        ratio = sc[both] / par[both]
        lo, hi = (fmt(ratio.min()), fmt(ratio.max())) if ratio.size else ("—", "—")
        fd = fmt(np.nanmax(sub["field_driven_median"].values))
        geo = fmt(np.nanmin(sub["geometric_median"].values))
        stopped = lam[sub["self_consistent_completed"].values < 1]
        findings.append(
            f"<li><b>{p}</b>: for λ0/w0 ≥ 0.01 the self-consistent rays' median distance is "
            f"{lo} to {hi} times the paraxial expectation's; the field-driven rays stay within "
            f"{fd} w0 (median) at every λ0/w0; geometric optics is {geo} w0 or more off. "
            + (
                f"Self-consistent rays did not all reach the end at λ0/w0 = "
                f"{', '.join(f'{w:g}' for w in stopped)}."
                if stopped.size
                else "All self-consistent rays reached the end."
            )
            + "</li>"
        )
    rows = []
    for p in ds["profile"].values.tolist():
        for j, w in enumerate(lam):
            c = ds.sel(profile=p).isel(wavelength=j)
            cells = "".join(
                f"<td>{fmt(float(c[f'{fam}_median']))}</td><td>{fmt(float(c[f'{fam}_worst']))}</td>"
                for fam in FAMILIES
            )
            done = fmt(float(c["self_consistent_completed"]))
            if "self_consistent_warnings" in c:
                done += f" ({int(c['self_consistent_warnings'])} warnings)"
            check = fmt(float(c["judge_check"])) if "judge_check" in c else "—"
            secs = fmt(float(c["seconds"])) if "seconds" in c else "—"
            n = int(c["rays"]) if np.isfinite(c["rays"]) else "—"
            rows.append(
                f"<tr><td>{p}</td><td>{w:g}</td><td>{n}</td>"
                f"{cells}<td>{done}</td><td>{check}</td><td>{secs}</td></tr>"
            )
    heads = "".join(f"<th colspan=2>{html.escape(v)}</th>" for v in FAMILIES.values())
    body = f"""<p>How far the seed's self-consistent rays are from the exact streamlines of
∇φ as λ0/w0 grows from 1e-4 to 1, against the rays driven by the exact field's Wave
Potential, geometric optics, and the paraxial expectation (streamlines of the paraxial
field from the same launch; eq. 11 for the Gaussian). The judge is the free-space
angular spectrum, exact for every λ0/w0; where λ0/w0 ≥ 0.7 the full-wave finite-difference
solution cross-checks it (column "judge check"). Gaussian to 3 z_R, bell to 1 z_R.
Distances are per ray the largest over z, in w0, over the rays launched where
R0 ≥ {CORE_AMPLITUDE:.3g} of the peak, and over the rays that reached the end (a ray that
stopped is counted in "completed", not in the distances). Values below {STUDY_FLOOR:g}
are drawn at that floor (the integrators' tolerance). wavetraj {wavetraj.__version__}.</p>
<h2>Findings (computed from the numbers below)</h2>
<ul>{"".join(findings)}</ul>
<h2>Median over the beam's core</h2>
<img alt="median distance versus wavelength"
 src="data:image/png;base64,{figure_study(ds, "median")}">
<h2>Worst ray of the core</h2>
<img alt="worst distance versus wavelength"
 src="data:image/png;base64,{figure_study(ds, "worst")}">
<h2>Fitted slopes (log distance against log λ0/w0)</h2>
<ul>{"".join(slopes)}</ul>
<h2>Numbers</h2>
<table><tr><th rowspan=2>profile</th><th rowspan=2>λ0/w0</th><th rowspan=2>rays</th>{heads}
<th rowspan=2>self-consistent completed (tracer warnings: unconverged kz
fixed point, failed marches)</th><th rowspan=2>judge check</th>
<th rowspan=2>seconds</th></tr>
<tr>{"<th>median</th><th>worst</th>" * len(FAMILIES)}</tr>
{"".join(rows)}</table>"""
    path = pathlib.Path(out_dir) / "study.html"
    write_text(
        path, html_page("wavetraj validation study: rays against streamlines versus λ0/w0", body)
    )
    return path
