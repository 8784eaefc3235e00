"""Storage: exact round trips (complex included), atomic writes, clear errors on bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import wavetraj
from wavetraj import WavetrajFileError, load, save

from .conftest import make_field


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_field_round_trip_is_exact(tmp_path, field):
    path = save(field, tmp_path / "field.nc")
    back = load(path)
    np.testing.assert_array_equal(back["envelope"].values, field["envelope"].values)
    assert back["envelope"].dtype == np.complex128
    xr.testing.assert_identical(back, field)


def test_ray_round_trip_keeps_nan_and_status(tmp_path, rays):
    back = load(save(rays, tmp_path / "rays.nc"))
    xr.testing.assert_identical(back, rays)
    assert np.isnan(back["x"].values[0, -1])


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    nz=st.integers(2, 12),
    nx=st.integers(2, 12),
)
def test_complex_round_trip_hypothesis(tmp_path, data, nz, nx):
    """Any complex values, NaN and inf included, round-trip bit for bit through the
    checksummed writer and verify; a field Dataset (which must be finite) through save/load."""
    re = data.draw(arrays(np.float64, (nz, nx), elements=finite_or_not))
    im = data.draw(arrays(np.float64, (nz, nx), elements=finite_or_not))
    values = np.empty((nz, nx), complex)
    values.real, values.imag = re, im  # no arithmetic: inf*1j would make NaNs
    raw = xr.Dataset({"u": (("z", "x"), values)}, attrs={"note": "raw"})
    got = wavetraj.storage.read_verified(wavetraj.storage.write_atomic(raw, tmp_path / "raw.nc"))[
        "u"
    ].values
    # Exact, bit for bit (NaN payloads included): compare the raw float64 pairs.
    np.testing.assert_array_equal(got.view(np.uint64), values.view(np.uint64))
    field = make_field(nz, nx)
    env = field["envelope"].values
    env.real = data.draw(arrays(np.float64, (nz, nx), elements=finite))
    env.imag = data.draw(arrays(np.float64, (nz, nx), elements=finite))
    back = load(save(field, tmp_path / "h.nc"))["envelope"].values
    np.testing.assert_array_equal(back.view(np.uint64), env.view(np.uint64))


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "field.nc"
    original = make_field(seed=1)
    save(original, path)
    before = path.read_bytes()

    real_to_netcdf = xr.Dataset.to_netcdf

    def failing_to_netcdf(self, target, *args, **kwargs):
        real_to_netcdf(self, target, *args, **kwargs)
        with open(target, "r+b") as fh:  # leave a truncated file behind, then fail
            fh.truncate(100)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing_to_netcdf)
    with pytest.raises(OSError, match="simulated"):
        save(make_field(seed=2), path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    xr.testing.assert_identical(load(path), original)


def test_killed_writer_never_leaves_a_partial_file(tmp_path):
    """A process killed (SIGKILL) mid-write leaves nothing under the final name."""
    path = tmp_path / "rays.nc"
    script = textwrap.dedent(
        f"""
        import sys, time
        import xarray as xr
        sys.path.insert(0, {os.fspath(os.path.dirname(__file__))!r})
        from conftest import make_rays
        import wavetraj
        real = xr.Dataset.to_netcdf
        def slow(self, target, *a, **k):
            real(self, target, *a, **k)
            print("written-temp", flush=True)
            time.sleep(60)
        xr.Dataset.to_netcdf = slow
        wavetraj.save(make_rays(), {os.fspath(path)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written-temp"
        assert not path.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert not path.exists()
    # The temporary file is left (nothing runs after SIGKILL) but is hidden and ignorable.
    leftovers = _leftovers(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".rays.nc.")


def test_load_rejects_files_that_are_not_wavetraj(tmp_path):
    with pytest.raises(FileNotFoundError, match="no wavetraj file"):
        load(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("this is not HDF5")
    with pytest.raises(WavetrajFileError, match="not a readable netCDF4/HDF5 file"):
        load(junk)
    plain = tmp_path / "plain.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(plain, engine="h5netcdf")
    with pytest.raises(WavetrajFileError, match="not a wavetraj Dataset"):
        load(plain)


def test_load_names_a_variable_that_lost_its_units(tmp_path, field):
    path = tmp_path / "bad.nc"
    del field["envelope"].attrs["units"]
    field.to_netcdf(path, engine="h5netcdf")  # bypass save(), which would refuse
    with pytest.raises(WavetrajFileError, match="'envelope' has no 'units'"):
        load(path)


def test_save_refuses_invalid_datasets_and_folders(tmp_path, field):
    del field["K2"].attrs["long_name"]
    with pytest.raises(wavetraj.SchemaError, match="'K2' has no 'long_name'"):
        save(field, tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save(make_field(), tmp_path)


def test_save_creates_missing_folders(tmp_path, rays):
    path = save(rays, tmp_path / "a" / "b" / "rays.nc")
    assert path.is_file()
