"""Agreement reports: one self-contained HTML file (figures embedded), the datasets as
netCDF, and the metrics as CSV and JSON. ``rebuild(out_dir)`` re-renders from saved data."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

import wavetraj
from compare.run import Result, heavy_indices
from compare.runfolder import MANIFEST, read_manifest, staged, update_manifest
from compare.scenarios import from_mapping
from wavetraj.storage import WavetrajFileError, atomic_path, read_verified, write_atomic

DATASETS = ("field", "rays", "lines", "agreement", "geometric")
FIGURE_DPI = 90
#: The pattern's intensity map is |u|²/max per plane on a log scale down to this: the
#: bell's far-field fringes sit at 1e-4–1e-2 of the main lobe, their zeros show white.
PATTERN_FLOOR = 1e-6


def _atomic_write(path: pathlib.Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _ray_lines(ax, ds, idx=None, **style):
    idx = range(ds.sizes["ray"]) if idx is None else idx
    for i in idx:
        ax.plot(ds["z"].values[i], ds["x"].values[i], **style)


def figure_pattern(r: Result) -> str:
    """Trajectory pattern like the seed's figures: rays over the intensity map."""
    f, rays = r.field, r.rays
    I = np.abs(f["envelope"].values) ** 2
    # each plane scaled to its own peak, on a log scale: a spreading beam stays visible to
    # z_end and its weak fringes (the bell's far field) show beside the main lobe
    I = I / np.maximum(I.max(axis=1, keepdims=True), np.finfo(float).tiny)
    I = np.clip(I, PATTERN_FLOOR, 1.0)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(
        I.T,
        origin="lower",
        aspect="auto",
        cmap="Greys",
        norm=LogNorm(vmin=PATTERN_FLOOR, vmax=1.0),
        extent=(f.z.values[0], f.z.values[-1], f.x.values[0], f.x.values[-1]),
    )
    thin = range(0, rays.sizes["ray"], max(1, rays.sizes["ray"] // 40))  # let |u|² show
    _ray_lines(ax, rays, thin, lw=0.6, color="tab:blue", alpha=0.8)
    _ray_lines(ax, rays, heavy_indices(r.scenario, rays), lw=2.2, color="navy")
    if r.geometric is not None:
        _ray_lines(
            ax, r.geometric, range(0, r.geometric.sizes["ray"], 4), lw=0.8, color="tab:red", ls="--"
        )
    stop = np.isfinite(rays["stop_z"].values) & (rays["status"].values == "node")
    if stop.any():
        ax.plot(
            rays["stop_z"].values[stop],
            rays["stop_x"].values[stop],
            "rx",
            ms=5,
            label="stopped at a node",
        )
        ax.legend(loc="upper left", fontsize=8)
    span = np.nanmax(np.abs(rays["x"].values)) * 1.15
    ax.set_ylim(-span, span)
    ax.set_xlabel("z / w0")
    ax.set_ylabel("x / w0")
    ax.set_title(
        f"{r.scenario.name}: rays over log |u|² per plane (heavy: x0 ≈ ±w0"
        + (", dashed: geometric optics)" if r.geometric is not None else ")")
    )
    return _png(fig)


def figure_profiles(r: Result) -> str:
    """Initial and final R² across the beam: field versus the rays' own R."""
    f, rays = r.field, r.rays
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, j, label in ((axes[0], 0, "launch"), (axes[1], -1, "last plane")):
        R = np.abs(f["envelope"].values[j if j == 0 else -1])
        ax.plot(f.x.values, R**2, color="k", lw=1, label="field")
        jr = 0 if j == 0 else -1
        ax.plot(
            rays["x"].values[:, jr],
            rays["R"].values[:, jr] ** 2,
            ".",
            ms=3,
            color="tab:blue",
            label="rays",
        )
        ax.set_title(f"R² at the {label}" + (" (log: fringes and zeros)" if j else ""))
        ax.set_xlabel("x / w0")
        if j:  # diffraction fringes sit orders of magnitude below the main lobe
            ax.set_yscale("log")
            peak = float(np.max(R**2))
            if peak > 0:
                ax.set_ylim(PATTERN_FLOOR * peak, 2 * peak)
        xs = np.abs(rays["x"].values[:, jr])
        span = np.max(xs[np.isfinite(xs)], initial=0.0) * 1.3  # no ray there: no limits
        if span > 0:
            ax.set_xlim(-span, span)
    axes[0].legend(fontsize=8)
    return _png(fig)


def figure_overlay(r: Result) -> str:
    """Rays (solid) on the field's streamlines (dotted), launched from the same points."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    idx = r.agreement["x0"].values
    pick = [int(np.argmin(np.abs(r.rays["x0"].values - v))) for v in idx]
    _ray_lines(ax, r.rays, pick, lw=1.0, color="tab:blue")
    _ray_lines(ax, r.lines, lw=1.6, color="tab:orange", ls=":")
    ax.set_xlabel("z / w0")
    ax.set_ylabel("x / w0")
    ax.set_title("rays (blue) on the streamlines of ∇φ (orange dotted)")
    return _png(fig)


def figure_distance(r: Result) -> str:
    a = r.agreement
    fig, ax = plt.subplots(figsize=(8, 3))
    x0 = a["x0"].values
    colors = plt.cm.viridis((x0 - x0.min()) / max(np.ptp(x0), 1e-300))
    for i in range(a.sizes["ray"]):
        d = a["distance"].values[i]
        if np.isfinite(d).any():
            ax.semilogy(a["z"].values[i], np.maximum(d, 1e-14), color=colors[i], lw=0.8)
    ax.axhline(r.scenario.tolerance.max_distance, color="r", ls="--", lw=1, label="tolerance")
    ax.set_xlabel("z / w0")
    ax.set_ylabel("|x_ray − x_streamline| / w0")
    ax.set_title("distance between each ray and its streamline (colour: launch position)")
    ax.legend(fontsize=8)
    return _png(fig)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "PASS" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _section(r: Result) -> str:
    sc = r.scenario
    figs = [figure_pattern(r), figure_profiles(r), figure_overlay(r), figure_distance(r)]
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in r.metrics.items()
    )
    verdict = "pass" if r.metrics.get("passed") else "fail"
    status = dict(zip(*np.unique(r.rays["status"].values, return_counts=True), strict=True))
    status_text = ", ".join(f"{k}: {int(v)}" for k, v in status.items())
    images = "".join(f'<img alt="figure" src="data:image/png;base64,{p}">' for p in figs)
    res = r.field.attrs
    diag = ", ".join(
        f"{k} = {_fmt(res[k])}"
        for k in ("method", "points_per_wavelength", "steps", "k_ref")
        if k in res
    )
    return f"""
<section id="{sc.name}">
<h2>{html.escape(sc.name)} <span class="{verdict}">{verdict.upper()}</span></h2>
<p>{html.escape(sc.description)} {html.escape(sc.figure)}</p>
<p>Ray status: {status_text}. Judge field: {html.escape(diag)};
grid {r.field.sizes["z"]} × {r.field.sizes["x"]} (z × x).</p>
<table>{rows}</table>
{images}
<details><summary>scenario and provenance</summary>
<pre>{html.escape(json.dumps(sc.to_dict(), indent=1, default=str))}</pre>
<pre>{
        html.escape(
            json.dumps(
                {
                    k: r.rays.attrs.get(k)
                    for k in wavetraj.schema.PROVENANCE_ATTRS
                    if k != "parameters"
                },
                indent=1,
                default=str,
            )
        )
    }</pre>
</details>
</section>"""


def render_html(results: list[Result], title: str = "wavetraj agreement report") -> str:
    rows = "".join(
        f"<tr><td><a href='#{r.scenario.name}'>{r.scenario.name}</a></td>"
        f"<td>{html.escape(r.scenario.figure)}</td>"
        f"<td>{_fmt(r.metrics['max_distance_w0'])}</td>"
        f"<td>{_fmt(r.metrics['median_max_distance_w0'])}</td>"
        f"<td>{_fmt(r.metrics['tolerance_w0'])}</td>"
        f"<td class='{'pass' if r.metrics['passed'] else 'fail'}'>{_fmt(r.metrics['passed'])}</td>"
        "</tr>"
        for r in results
    )
    body = "".join(_section(r) for r in results)
    return _page(
        title,
        f"""<p>Rays of the ray system dr/dσ = k, dk/dσ = ½∇(K² + ∇²R/R) (self-consistent Wave
Potential, the seed's method) against the streamlines of ∇φ of an independent wave
solution. Distances in units of w0; a scenario passes when its worst ray–streamline
distance is within its stated tolerance. wavetraj {wavetraj.__version__}.</p>
<table><tr><th>scenario</th><th>seed figure</th><th>max distance</th>
<th>median</th><th>tolerance</th><th>verdict</th></tr>{rows}</table>
{body}""",
    )


def _page(title: str, body: str) -> str:
    """A self-contained HTML page: ``body`` under the title, with the shared style."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 90%; }}
img {{ display: block; max-width: 100%; margin: 0.6em 0; }}
.pass {{ color: #060; font-weight: bold; }} .fail {{ color: #b00; font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def report(results: list[Result], out_dir) -> pathlib.Path:
    """Write ``report.html``, ``metrics.json``, ``metrics.csv`` and per-scenario netCDF
    datasets as one run folder ``out_dir`` (staged, then moved into place with its
    manifest: :mod:`compare.runfolder`); return the HTML path."""
    with staged(out_dir) as (out, _):
        for r in results:
            folder = out / r.scenario.name
            for name in DATASETS:
                ds = getattr(r, name)
                if ds is None:
                    continue
                if name == "agreement":  # metrics, not a field or ray schema: plain netCDF
                    write_atomic(ds, folder / "agreement.nc")
                else:
                    wavetraj.save(ds, folder / f"{name}.nc")
            _atomic_write(folder / "scenario.json", json.dumps(r.scenario.to_dict(), indent=1))
        metrics = [r.metrics for r in results]
        _atomic_write(out / "metrics.json", metrics_json(metrics))
        keys = sorted({k for m in metrics for k in m})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(metrics)
        _atomic_write(out / "metrics.csv", buf.getvalue())
        _atomic_write(out / "report.html", render_html(results))
    return pathlib.Path(out_dir).absolute() / "report.html"


def _strict(value):
    """Metrics as strict JSON: a number that is not finite (a check that could not be
    made) is null — NaN and Infinity are not JSON, and jq, browsers and most JSON
    readers refuse them."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def metrics_json(metrics) -> str:
    """``metrics.json``'s text: strict JSON, a non-finite number written as null."""
    return json.dumps(_strict(metrics), indent=1, allow_nan=False, default=float)


def read_metrics(path: pathlib.Path) -> list[dict]:
    """``metrics.json`` as written by :func:`report`, null read back as NaN."""
    return [{k: np.nan if v is None else v for k, v in m.items()} for m in _json_file(path)]


def _json_file(path: pathlib.Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WavetrajFileError(f"{str(path)!r} is not valid JSON ({exc}): re-run") from None


def rebuild(out_dir) -> pathlib.Path:
    """Re-render the report from the data a previous :func:`report` saved: only the files
    its manifest lists, each verified against its checksum."""
    out = pathlib.Path(out_dir)
    files = read_manifest(out, rebuilt=("report.html",))["files"]
    if "metrics.json" not in files:
        raise WavetrajFileError(f"{str(out / MANIFEST)!r} lists no metrics.json: re-run")
    metrics = read_metrics(out / "metrics.json")
    results = []
    for m in metrics:
        name = m["scenario"]
        sc_path = out / name / "scenario.json"
        if f"{name}/scenario.json" not in files:
            raise WavetrajFileError(f"run folder {str(out)!r} lists no {name}/scenario.json")
        sc_data = _json_file(sc_path)
        try:
            sc = from_mapping(
                {k: v for k, v in sc_data.items() if k != "source"}, path=str(sc_path)
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise WavetrajFileError(f"{str(sc_path)!r} is not a scenario: {exc}") from None
        ds = {}
        for kind in DATASETS:
            listed = f"{name}/{kind}.nc" in files
            p = out / name / f"{kind}.nc"
            if not listed:
                ds[kind] = None
            elif kind == "agreement":
                ds[kind] = read_verified(p)
            else:
                ds[kind] = wavetraj.load(p)
        for kind in ("field", "rays", "lines", "agreement"):
            if ds[kind] is None:
                raise WavetrajFileError(f"run folder {str(out)!r} lists no {name}/{kind}.nc")
        results.append(
            Result(sc, ds["field"], ds["rays"], ds["lines"], ds["agreement"], ds["geometric"], m)
        )
    path = out / "report.html"
    _atomic_write(path, render_html(results))
    update_manifest(out, "report.html")
    return path


#: Colour and marker per ray family on the study page.
STUDY_STYLE = {
    "self_consistent": dict(color="C3", marker="o"),
    "field_driven": dict(color="C0", marker="s"),
    "geometric": dict(color="0.4", marker="^"),
    "paraxial": dict(color="C2", marker="D"),
}
#: Distances below this are at the integration floor (rtol 1e-7 over a few z_R) and are
#: drawn at it; slopes are fitted above it.
STUDY_FLOOR = 1e-7


def figure_study(ds, stat: str) -> str:
    """Distance (``stat``: median, worst or heavy) against λ0/w0, one panel per profile."""
    from compare.study import FAMILIES

    profiles = ds["profile"].values.tolist()
    lam = ds["wavelength"].values
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.2 * len(profiles), 4.2), squeeze=False)
    for ax, p in zip(axes[0], profiles, strict=True):
        sub = ds.sel(profile=p)
        for fam, label in FAMILIES.items():
            d = sub[f"{fam}_{stat}"].values
            ax.loglog(lam, np.maximum(d, STUDY_FLOOR), label=label, **STUDY_STYLE[fam], ms=4)
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
            ax.annotate(
                "× self-consistent rays\n   did not run",
                (lam[failed][0], 8.0),
                xytext=(-110, -4),
                textcoords="offset points",
                color="C3",
                fontsize=7,
                va="top",
            )
        par = sub[f"paraxial_{stat}"].values
        ref = np.flatnonzero(np.isfinite(par) & (par > 1e3 * STUDY_FLOOR))
        if ref.size:
            j = ref[0]
            guide = par[j] * (lam / lam[j]) ** 2
            ax.loglog(lam, guide, ":", color="C2", lw=1, label="∝ (λ0/w0)²")
        ax.axhline(STUDY_FLOOR, color="0.7", lw=0.8)
        ax.set_ylim(STUDY_FLOOR / 2, 20)
        ax.set_xlabel("λ0 / w0")
        ax.set_ylabel(f"{stat} ray–streamline distance [w0]")
        ax.set_title(f"{p} launch")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _png(fig)


def study_page(ds, out_dir) -> pathlib.Path:
    """Write ``study.html`` (curves, fitted slopes, the numbers) from the gathered study."""
    from compare.study import CORE_AMPLITUDE, FAMILIES, slope

    lam = ds["wavelength"].values
    slopes = []
    for p in ds["profile"].values.tolist():
        for fam in ("self_consistent", "paraxial"):
            d = ds.sel(profile=p)[f"{fam}_median"].values
            keep = lam >= 1e-2
            slopes.append(
                f"<li>{p}, {html.escape(FAMILIES[fam])}: slope "
                f"{_fmt(slope(lam[keep], d[keep], 1e3 * STUDY_FLOOR))} "
                "(fitted for λ0/w0 ≥ 0.01)</li>"
            )
    findings = []
    for p in ds["profile"].values.tolist():
        sub = ds.sel(profile=p)
        sc, par = sub["self_consistent_median"].values, sub["paraxial_median"].values
        both = (lam >= 1e-2) & np.isfinite(sc) & np.isfinite(par)
        ratio = sc[both] / par[both]
        lo, hi = (_fmt(ratio.min()), _fmt(ratio.max())) if ratio.size else ("—", "—")
        fd = _fmt(np.nanmax(sub["field_driven_median"].values))
        geo = _fmt(np.nanmin(sub["geometric_median"].values))
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
                f"<td>{_fmt(float(c[f'{fam}_median']))}</td><td>{_fmt(float(c[f'{fam}_worst']))}</td>"
                for fam in FAMILIES
            )
            done = _fmt(float(c["self_consistent_completed"]))
            if "self_consistent_warnings" in c:
                done += f" ({int(c['self_consistent_warnings'])} warnings)"
            check = _fmt(float(c["judge_check"])) if "judge_check" in c else "—"
            secs = _fmt(float(c["seconds"])) if "seconds" in c else "—"
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
    _atomic_write(
        path, _page("wavetraj validation study: rays against streamlines versus λ0/w0", body)
    )
    return path
