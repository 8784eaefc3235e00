"""Sweeps on dask.distributed: end to end, resume, a failing case, a killed worker."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask.distributed as distributed
import pytest
import xarray as xr

from compare import cli
from compare.sweep import case_name, read_case, sweep

FAST = {"launch.rays": [32, 48], "run.steps": [11]}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_sweep_gathers_a_dataset_with_the_varied_coordinates(tmp_path, client):
    s = sweep("grin", FAST, out_dir=tmp_path, scheduler=client)
    assert (s.total, s.computed, s.skipped, s.failed) == (2, 2, 0, 0)
    ds = xr.load_dataset(s.gathered, engine="h5netcdf")
    assert ds["max_distance_w0"].dims == ("launch.rays", "run.steps")
    assert ds["launch.rays"].values.tolist() == [32, 48]
    assert ds["rays"].values[:, 0].tolist() == [32, 48]
    assert (ds["waist_relative_error"] < 0.01).all()
    assert ds["case_ok"].all()


def test_resume_skips_complete_cases_and_redoes_damaged_ones(tmp_path, client):
    sweep("grin", FAST, out_dir=tmp_path, scheduler=client)
    again = sweep("grin", FAST, out_dir=tmp_path, scheduler=client)
    assert (again.computed, again.skipped) == (0, 2)
    damaged = tmp_path / "cases" / f"{case_name({'launch.rays': 32, 'run.steps': 11})}.nc"
    damaged.write_bytes(damaged.read_bytes()[:100])  # a half-written file
    assert read_case(damaged) is None
    third = sweep("grin", FAST, out_dir=tmp_path, scheduler=client)
    assert (third.computed, third.skipped, third.failed) == (1, 1, 0)
    assert read_case(damaged) is not None


def test_a_failing_case_is_recorded_and_the_sweep_goes_on(tmp_path, client):
    # a = 2 w0 makes K² < 0 at the launch points beyond |x| = 2: trace refuses the launch
    s = sweep(
        "grin",
        {"medium.a": [2.0, 100.0], "launch.rays": [32], "run.steps": [11]},
        out_dir=tmp_path,
        scheduler=client,
    )
    assert (s.total, s.failed) == (2, 1)
    (err,) = s.errors.values()
    assert "not allowed" in err
    ds = xr.load_dataset(s.gathered, engine="h5netcdf")
    assert ds["case_ok"].values.ravel().tolist() == [False, True]


def test_a_killed_worker_loses_no_case(tmp_path, client):
    pids = list(client.run(os.getpid).values())

    def kill_one():
        time.sleep(1.5)
        os.kill(pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    t0 = time.perf_counter()
    killer.start()
    vary = {"launch.rays": [32, 40, 48, 56, 64, 72], "run.steps": [41]}
    s = sweep("grin", vary, out_dir=tmp_path, scheduler=client)
    elapsed = time.perf_counter() - t0
    killer.join()
    assert elapsed > 2.0, elapsed  # the worker died while cases were still running
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert (s.total, s.failed) == (6, 0), s.errors
    assert all(read_case(p) is not None for p in (tmp_path / "cases").glob("*.nc"))


def test_cli_sweep_bad_vary_is_a_one_line_error(capsys):
    assert cli.main(["sweep", "grin", "--vary", "launch.rays"]) == 2
    assert "use table.key=v1,v2" in capsys.readouterr().err
    assert cli.main(["sweep", "grin", "--vary", "launch.rays=8,32"]) == 2
    assert "launch.rays = 8 is impossible" in capsys.readouterr().err


def test_cli_sweep_on_a_running_scheduler(tmp_path, client, capsys):
    args = ["sweep", "grin", "--vary", "launch.rays=32,48", "--vary", "run.steps=11"]
    code = cli.main([*args, "--scheduler", client.scheduler.address, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 cases: 2 passed, 0 failed, 0 skipped" in out
    assert (tmp_path / "sweep.nc").is_file()
