"""Parameter sweeps on dask.distributed: one case = one pure call that writes one file.

``sweep(scenario, {"launch.rays": [64, 128], "launch.wavelength": [1e-4, 1e-2]}, out_dir=...)``
runs the Cartesian product of the varied values. Each case validates its scenario (with
the overrides), runs it (:func:`compare.run.run_scenario`) and writes
``out_dir/cases/<case>.nc`` atomically: the metrics as scalar variables, the overrides and
the outcome ("ok" or "error" with the message) as attrs. Then:

* **resume** — a case whose file opens and carries a complete "ok" record is skipped;
  damaged files and recorded errors are computed again;
* **faults** — tasks are submitted with ``retries``, so a worker killed mid-case loses
  nothing (dask reschedules it); a case that raises is recorded with its error and the
  sweep goes on;
* **gather** — all "ok" cases are combined into one Dataset with the varied parameters as
  dimensions and coordinates (NaN where a case failed), saved as ``out_dir/sweep.nc``.

The default cluster is a ``LocalCluster`` sized to the machine (one single-threaded worker
per core); pass ``scheduler="tcp://host:8786"`` (or a ``Client``) to run on any cluster.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import pathlib
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from compare.run import run_scenario
from compare.scenarios import Scenario, get, with_overrides
from compare.tasks import SweepSummary, collect, grid_dataset, is_complete, run_tasks, write_record
from wavetraj.storage import write_atomic

log = logging.getLogger(__name__)


def case_name(overrides: Mapping[str, object]) -> str:
    """A readable, file-safe name for one case: ``launch.rays=64__run.steps=21``."""
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", "__".join(parts)) or "base"


def cases(vary: Mapping[str, Sequence]) -> list[dict[str, object]]:
    """The Cartesian product of the varied values, as override dicts."""
    keys = list(vary)
    for k in keys:
        if not vary[k]:
            raise ValueError(f"--vary {k}: give at least one value (k=v1,v2,...)")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*vary.values())]


def case_identity(scenario: str, overrides: Mapping[str, object]) -> dict[str, str]:
    """What a case record must carry to stand for this case: the scenario as named, the
    overrides, and the SHA-256 of the resolved scenario (every table, after the
    overrides) — so an edited scenario file or a record copied from another case is
    recomputed, not gathered."""
    resolved = resolve(scenario, overrides).to_dict()
    resolved.pop("source", None)
    text = json.dumps(resolved, sort_keys=True, default=str)
    return {
        "scenario": scenario,
        "overrides": json.dumps(dict(overrides), sort_keys=True),
        "scenario_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def resolve(scenario: str, overrides: Mapping[str, object]) -> Scenario:
    """The scenario (name or .toml path) with the case's typed overrides."""
    return with_overrides(get(scenario), overrides)


def run_case(scenario: str, overrides: dict, path: str) -> str:
    """One case, pure apart from writing ``path``: returns "ok" or "error"."""

    def metrics():
        return run_scenario(resolve(scenario, overrides)).metrics

    return write_record(path, case_identity(scenario, overrides), metrics)


def sweep(
    scenario: str,
    vary: Mapping[str, Sequence],
    *,
    out_dir,
    scheduler=None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepSummary:
    """Run every combination of ``vary`` for ``scenario`` (name or .toml path).

    Parameters
    ----------
    scenario : built-in scenario name or a scenario file.
    vary : {"table.key": [values, ...]}; every combination is one case.
    out_dir : folder for ``cases/*.nc`` and the gathered ``sweep.nc``.
    scheduler : None (a LocalCluster sized to the machine), a scheduler address, or a
        ``dask.distributed.Client``.
    progress : called as progress(done, total) after each case.
    """
    out = pathlib.Path(out_dir)
    for ov in cases(vary):  # validate every case before any work: bad values fail fast
        resolve(scenario, ov)
    keys = list(vary)
    grid = list(itertools.product(*(range(len(vary[k])) for k in keys)))
    overrides = {idx: {k: vary[k][i] for k, i in zip(keys, idx, strict=True)} for idx in grid}
    names = {idx: case_name(ov) for idx, ov in overrides.items()}
    paths = {idx: out / "cases" / f"{names[idx]}.nc" for idx in grid}
    identities = {idx: case_identity(scenario, ov) for idx, ov in overrides.items()}
    skipped = [idx for idx in grid if is_complete(paths[idx], identity=identities[idx])]
    pending = [idx for idx in grid if idx not in skipped]
    run_tasks(
        [
            (f"wavetraj-case-{names[i]}", run_case, (scenario, overrides[i], str(paths[i])))
            for i in pending
        ],
        scheduler=scheduler,
        progress=progress,
        already=len(skipped),
        total=len(grid),
    )
    records, failed = collect(paths, identities=identities)
    errors = {names[idx]: err for idx, err in failed.items()}
    gathered = None
    if records:
        gathered = out / "sweep.nc"
        coords = {k: _coord_values(vary[k]) for k in keys}
        attrs = {
            "scenario": scenario,
            "vary": json.dumps({k: list(map(str, v)) for k, v in vary.items()}),
        }
        write_atomic(grid_dataset(records, keys, coords, attrs), gathered)
    return SweepSummary(out, len(grid), len(pending), len(skipped), len(errors), errors, gathered)


def _coord_values(values: Sequence) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return np.asarray([str(v) for v in values])
