"""Agreement reports: one self-contained HTML file (figures embedded), the datasets as
netCDF, and the metrics as CSV and JSON. ``rebuild(out_dir)`` re-renders from saved data."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import pathlib

import numpy as np

import wavetraj
from compare import plot
from compare.checks import heavy_indices
from compare.run import Result
from compare.runfolder import MANIFEST, read_manifest, staged, update_manifest
from compare.scenarios import from_mapping
from wavetraj.storage import WavetrajFileError, atomic_path, read_verified, write_atomic

DATASETS = ("field", "rays", "lines", "agreement", "geometric")
FIGURE_DPI = 90


def write_text(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def png_data(fig) -> str:
    """A matplotlib Figure as base64 PNG, for an ``<img src="data:...">``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def figure_seed(r: Result) -> str:
    """The seed's layout: the trajectory pattern (left), R² at launch and end (right)."""
    geo = r.geometric is not None
    title = f"{r.scenario.name}: rays over log |u|² per plane (heavy: x0 ≈ {_heavy_text(r)}" + (
        ", dashed: geometric optics)" if geo else ")"
    )
    heavy = heavy_indices(r.scenario, r.rays)
    return png_data(
        plot.seed_layout(r.rays, r.field, heavy=heavy, geometric=r.geometric, title=title)
    )


def _heavy_text(r: Result) -> str:
    return ", ".join(f"{h:g}" for h in r.scenario.launch.heavy) + " w0"


def figure_overlay(r: Result) -> str:
    """Rays (solid) on the field's streamlines (dotted), launched from the same points."""
    ax = plot.overlay(r.rays, r.lines)
    return png_data(ax.figure)


def figure_distance(r: Result) -> str:
    ax = plot.distance(r.agreement, tolerance=r.scenario.tolerance.max_distance)
    return png_data(ax.figure)


#: How the report names each metric, in words and units (the key stays in metrics.json).
METRIC_LABELS = {
    "scenario": "scenario",
    "figure": "seed figure",
    "wavelength_over_w0": "λ0 / w0",
    "judge": "judging field (method)",
    "rays": "rays launched",
    "rays_ok": "rays that reached z_end",
    "rays_compared": "rays compared with streamlines",
    "max_distance_w0": "largest ray–streamline distance [w0]",
    "median_max_distance_w0": "median over rays of the largest distance [w0]",
    "max_distance_lambda": "largest ray–streamline distance [λ0]",
    "worst_x0": "launch point of the worst ray [w0]",
    "tolerance_w0": "tolerance on the distance [w0]",
    "time_field_s": "time: judging field [s]",
    "time_rays_s": "time: self-consistent rays [s]",
    "time_streamlines_s": "time: streamlines [s]",
    "completed_fraction": "share of rays that completed",
    "completed_required": "share required to complete",
    "ray_status": "ray status counts",
    "lines_ok": "streamlines that reached z_end",
    "line_status": "streamline status counts",
    "judged_fraction": "share of the run over which rays were judged",
    "judged_required": "share required to be judged",
    "passed": "verdict",
    "verdict": "why",
    "eq11_heavy_error_w0": "heavy rays against eq. 11: largest error [w0]",
    "waist_rays_w0": "waist of the self-consistent rays [w0]",
    "waist_kogelnik_w0": "Kogelnik's waist 2a/(k w0) [w0]",
    "waist_relative_error": "rays' waist against Kogelnik's: relative error",
    "waist_geometric_w0": "waist of the geometric rays [w0]",
    "focus_z_geometric_w0": "geometric focus z [w0]",
    "time_of_flight_axis": "time of flight of the axial ray [w0/c]",
    "time_of_flight_free": "free-particle time of flight z/v [w0/c]",
    "velocity_over_c": "particle velocity v/c",
    "exact_error_w0": "exact check (run.exact): largest error [w0]",
    "centroid_peak_w0": "centroid's largest excursion [w0]",
    "exact_median_error_w0": "exact check: median over rays of the largest error [w0]",
}


def metric_label(key: str) -> str:
    """The words for a metric key (the key itself if none are defined)."""
    return METRIC_LABELS.get(key, key)


def fmt(v) -> str:
    if isinstance(v, bool):
        return "PASS" if v else "FAIL"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _section(r: Result) -> str:
    sc = r.scenario
    figs = [figure_seed(r), figure_overlay(r), figure_distance(r)]
    rows = "".join(
        f"<tr><th>{html.escape(metric_label(k))}</th><td>{fmt(v)}</td></tr>"
        for k, v in r.metrics.items()
    )
    verdict = "pass" if r.metrics.get("passed") else "fail"
    status = dict(zip(*np.unique(r.rays["status"].values, return_counts=True), strict=True))
    status_text = ", ".join(f"{k}: {int(v)}" for k, v in status.items())
    images = "".join(f'<img alt="figure" src="data:image/png;base64,{p}">' for p in figs)
    res = r.field.attrs
    diag = ", ".join(
        f"{k} = {fmt(res[k])}"
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
{
        f"<p>Exact check: {html.escape(sc.run.exact)}, tolerance {sc.tolerance.exact:g} w0.</p>"
        if sc.run.exact
        else ""
    }
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
        f"<td>{fmt(r.metrics['max_distance_w0'])}</td>"
        f"<td>{fmt(r.metrics['median_max_distance_w0'])}</td>"
        f"<td>{fmt(r.metrics['tolerance_w0'])}</td>"
        f"<td class='{'pass' if r.metrics['passed'] else 'fail'}'>{fmt(r.metrics['passed'])}</td>"
        "</tr>"
        for r in results
    )
    body = "".join(_section(r) for r in results)
    return html_page(
        title,
        f"""<p>Rays of the ray system dr/dσ = k, dk/dσ = ½∇(K² + ∇²R/R) (self-consistent Wave
Potential, the seed's method) against the streamlines of ∇φ of an independent wave
solution. Distances in units of w0; a scenario passes when its worst ray–streamline
distance is within its stated tolerance. wavetraj {wavetraj.__version__}.</p>
<table><tr><th>scenario</th><th>seed figure</th><th>max distance</th>
<th>median</th><th>tolerance</th><th>verdict</th></tr>{rows}</table>
{body}""",
    )


def html_page(title: str, body: str) -> str:
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
            write_text(folder / "scenario.json", json.dumps(r.scenario.to_dict(), indent=1))
        metrics = [r.metrics for r in results]
        write_text(out / "metrics.json", metrics_json(metrics))
        keys = sorted({k for m in metrics for k in m})
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(metrics)
        write_text(out / "metrics.csv", buf.getvalue())
        write_text(out / "report.html", render_html(results))
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
                {k: v for k, v in sc_data.items() if k != "source"},
                path=str(sc_path),
                evaluate=False,
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
    write_text(path, render_html(results))
    update_manifest(out, "report.html")
    return path
