"""Tasks on dask.distributed, each one pure call writing one case record file.

The machinery shared by :mod:`compare.sweep` and :mod:`compare.study`:

* :func:`write_record` — call a function for its metrics and write them (scalar variables)
  with identity attrs atomically; a failing call writes its error, not raises it;
* :func:`read_case` / :func:`is_complete` — a record is used only if its checksums verify,
  its identity attrs match the case and it is complete (resume: complete ones are skipped,
  damaged, foreign or partial ones computed again);
* :func:`run_tasks` — submit ``(key, function, args)`` with :data:`RETRIES` each (a killed
  worker loses nothing) on a LocalCluster sized to the machine, an address or a Client;
* :func:`collect` and :func:`grid_dataset` — read the records back once and lay them on
  the grid of the varied parameters (NaN and ``case_ok = False`` where a case failed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import xarray as xr

from wavetraj.storage import read_verified, write_atomic

log = logging.getLogger(__name__)

#: dask retries per case: a killed worker costs one retry.
RETRIES = 3
CASE_KIND = "wavetraj-sweep-case"
K = TypeVar("K")


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """What happened: counts, the gathered Dataset's path, and per-case outcomes."""

    out_dir: pathlib.Path
    total: int
    computed: int
    skipped: int
    failed: int
    errors: dict[str, str]
    gathered: pathlib.Path | None

    @property
    def passed(self) -> int:
        return self.total - self.failed


def write_record(path, attrs: dict, metrics: Callable[[], Mapping]) -> str:
    """Call ``metrics()`` and write its numbers (as scalar variables) with ``attrs`` to
    ``path`` atomically; if it raises, write the error instead. Returns the outcome,
    "ok" or "error": a failing case is recorded, not raised, so a sweep goes on."""
    attrs = {"kind": CASE_KIND, **attrs}
    try:
        data = {
            k: ((), float(v))
            for k, v in metrics().items()
            if isinstance(v, (int, float, bool, np.floating, np.integer))
        }
        ds = xr.Dataset(data, attrs={**attrs, "outcome": "ok"})
    except Exception as exc:  # recorded, not raised: the sweep goes on
        log.warning("case %s failed: %s", attrs, exc)
        ds = xr.Dataset(
            attrs={**attrs, "outcome": "error", "error": f"{type(exc).__name__}: {exc}"}
        )
    write_atomic(ds, pathlib.Path(path))
    return ds.attrs["outcome"]


def read_case(
    path: pathlib.Path, required: str = "max_distance_w0", identity: Mapping | None = None
) -> xr.Dataset | None:
    """The case record if the file is whole (its checksums verify), is the record of the
    case ``identity`` describes (its attrs match), and is complete (an "ok" record holds
    the variable ``required``); else None: missing, damaged, another case's, or partial."""
    try:
        ds = read_verified(path)
    except Exception as exc:  # unreadable: damaged or absent
        if pathlib.Path(path).exists():
            log.warning("case file %s is damaged (%s): it is computed again", path, exc)
        return None
    if ds.attrs.get("kind") != CASE_KIND or ds.attrs.get("outcome") not in ("ok", "error"):
        return None
    wrong = {k: ds.attrs.get(k) for k, v in (identity or {}).items() if ds.attrs.get(k) != v}
    if wrong:
        log.warning("case file %s is not this case's record (%s): computed again", path, wrong)
        return None
    if ds.attrs["outcome"] == "ok" and required not in ds:
        return None
    return ds


def is_complete(
    path: pathlib.Path, required: str = "max_distance_w0", identity: Mapping | None = None
) -> bool:
    """True if ``path`` holds this case's complete "ok" record: a resumed run skips it."""
    r = read_case(path, required, identity)
    return r is not None and r.attrs["outcome"] == "ok"


def collect(
    paths: Mapping[K, pathlib.Path],
    required: str = "max_distance_w0",
    identities: Mapping[K, Mapping] | None = None,
) -> tuple[dict[K, xr.Dataset], dict[K, str]]:
    """Read every case once after a run: the "ok" records and the errors, by key."""
    records, errors = {}, {}
    for key, path in paths.items():
        r = read_case(path, required, (identities or {}).get(key))
        if r is None:
            errors[key] = "no valid result file after the run"
        elif r.attrs["outcome"] == "error":
            errors[key] = r.attrs["error"]
        else:
            records[key] = r
    return records, errors


def grid_dataset(
    records: Mapping[tuple[int, ...], xr.Dataset],
    dims: Sequence[str],
    coords: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
    drop: Sequence[str] = (),
) -> xr.Dataset:
    """The "ok" records (keyed by their index on the grid of ``coords``) as one Dataset
    with ``dims``: each scalar a variable on the grid, NaN and ``case_ok = False`` where a
    case failed."""
    shape = tuple(len(coords[d]) for d in dims)
    names = sorted({v for r in records.values() for v in r.data_vars} - set(drop))
    data = {}
    for name in names:
        arr = np.full(shape, np.nan)
        for idx, r in records.items():
            if name in r:
                arr[idx] = float(r[name].values)
        data[name] = (dims, arr)
    ok = np.zeros(shape, bool)
    for idx in records:
        ok[idx] = True
    data["case_ok"] = (dims, ok)
    return xr.Dataset(data, coords={d: (d, coords[d]) for d in dims}, attrs=dict(attrs))


def _distributed():
    try:
        import dask.distributed
    except ImportError:  # the [dask] extra is not installed
        raise ImportError(
            "sweeps run on dask.distributed, which is not installed: "
            "pip install -e '.[dask]' (or pip install 'dask[distributed]')"
        ) from None
    return dask.distributed


def _client(scheduler):
    """(client, what to close afterwards): the LocalCluster and client we started, the
    client we connected to an address, or nothing for a caller's own Client."""
    Client, LocalCluster = _distributed().Client, _distributed().LocalCluster

    if scheduler is None:
        with _workers_ignore_sigint():
            cluster = LocalCluster(
                n_workers=max(1, min(os.cpu_count() or 1, 4)),
                threads_per_worker=1,
                dashboard_address=None,
                # the workers' own dask warnings (a case cancelled by Ctrl-C, memory
                # notices) are not the user's business; errors still show, and a case
                # that fails is recorded and reported by the sweep itself
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
        return client, (client, cluster)
    if isinstance(scheduler, str):
        client = Client(scheduler)
        return client, (client,)
    return scheduler, ()


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Start worker processes with SIGINT ignored. Ctrl-C in a terminal reaches the whole
    process group; each worker would print its own KeyboardInterrupt traceback. An
    ignored signal stays ignored across exec, and Python then installs no handler, so
    only this process sees Ctrl-C and closes the cluster (the workers with it). A Ctrl-C
    in the ~1 s the workers take to start (measured: 0.8 s for two) is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_tasks(
    tasks: Sequence[tuple[str, Callable, tuple]],
    *,
    scheduler=None,
    progress: Callable[[int, int], None] | None = None,
    already: int = 0,
    total: int | None = None,
) -> None:
    """Run ``(key, function, args)`` tasks on dask with :data:`RETRIES` each; each task
    writes its own file, so nothing is returned. ``progress(done, total)`` after each one,
    counting ``already`` finished ones first."""
    total = len(tasks) + already if total is None else total
    done = already
    if progress:
        progress(done, total)
    if not tasks:
        return
    as_completed = _distributed().as_completed
    client, ours = _client(scheduler)
    interrupted = False
    try:
        futures = [
            client.submit(_worker_task, fn, *args, key=key, retries=RETRIES, pure=False)
            for key, fn, args in tasks
        ]
        for _ in as_completed(futures):
            done += 1
            if progress:
                progress(done, total)
    except KeyboardInterrupt:
        interrupted = True  # the cases written so far are kept; a re-run resumes
        raise
    finally:
        with _quiet_shutdown(interrupted):
            for owned in ours:
                owned.close()


def _worker_task(fn: Callable, *args):
    """Run one task on a worker whose interpreter drops the expected "IOLoop is closed"
    of a dask client collected while the cluster closes (measured: a worker prints it when
    Ctrl-C stops a sweep as a case completes)."""
    if not isinstance(sys.unraisablehook, functools.partial):
        sys.unraisablehook = functools.partial(_drop_closed_loop_errors, sys.unraisablehook)
    return fn(*args)


@contextlib.contextmanager
def _quiet_shutdown(quiet: bool):
    """After Ctrl-C, close the cluster without dask's shutdown warnings (workers killed
    mid-case): the user asked for it, and the one line "interrupted" says so."""
    logger = logging.getLogger("distributed")
    level = logger.level
    if quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _drop_closed_loop_errors(hook, unraisable) -> None:
    """A dask client can be garbage-collected in a worker while the cluster closes, and
    its ``__del__`` then fails with "IOLoop is closed". Harmless and expected there;
    anything else goes to ``hook``."""
    if not (
        isinstance(unraisable.exc_value, RuntimeError)
        and "IOLoop is closed" in str(unraisable.exc_value)
    ):
        hook(unraisable)
