"""The Dataset contract: builders produce valid Datasets, validators catch every breach."""

from __future__ import annotations

import json

import numpy as np
import pytest

import wavetraj
from wavetraj.interpolant import FieldInterpolant
from wavetraj.schema import RAY_VARIABLES, SchemaError, validate, validate_field, validate_rays

from .conftest import make_field


def test_field_dataset_is_valid_and_complete(field):
    assert validate_field(field) is field
    assert field["envelope"].dims == ("z", "x")
    assert field["envelope"].dtype.kind == "c"
    assert field.attrs["wavetraj_kind"] == "field"
    assert field.attrs["k_ref"] == 2.0


def test_ray_dataset_is_valid_and_complete(rays):
    assert validate_rays(rays) is rays
    for name in RAY_VARIABLES:
        assert rays[name].dims == ("ray", "step")
    assert list(rays["status"].values) == ["node", "ok", "ok"]


@pytest.mark.parametrize("key", ["units", "long_name"])
@pytest.mark.parametrize("name", ["envelope", "K2", "x", "z"])
def test_field_missing_units_or_long_name_is_named(field, name, key):
    del field[name].attrs[key]
    with pytest.raises(SchemaError, match=rf"'{name}' has no '{key}'"):
        validate_field(field)


@pytest.mark.parametrize("key", ["units", "long_name"])
@pytest.mark.parametrize("name", [*RAY_VARIABLES, "status", "x0", "ray"])
def test_rays_missing_units_or_long_name_is_named(rays, name, key):
    del rays[name].attrs[key]
    with pytest.raises(SchemaError, match=rf"'{name}' has no '{key}'"):
        validate_rays(rays)


def test_every_problem_is_listed_at_once(field):
    del field["K2"].attrs["units"]
    del field.attrs["git_commit"]
    field.attrs["wavelength"] = -1.0
    with pytest.raises(SchemaError) as info:
        validate_field(field)
    message = str(info.value)
    assert "'K2' has no 'units'" in message
    assert "'git_commit' is missing" in message
    assert "'wavelength' must be > 0" in message


def test_field_wrong_dtype_dims_and_coords(field):
    broken = field.assign(envelope=field["envelope"].real.assign_attrs(field["envelope"].attrs))
    with pytest.raises(SchemaError, match="'envelope' has dtype float64, expected complex"):
        validate_field(broken)
    transposed = field.assign(envelope=field["envelope"].T)
    with pytest.raises(SchemaError, match=r"'envelope' has dims \('x', 'z'\)"):
        validate_field(transposed)
    reversed_x = field.isel(x=slice(None, None, -1))
    with pytest.raises(SchemaError, match="'x' must be finite and strictly increasing"):
        validate_field(reversed_x)
    with pytest.raises(SchemaError, match="required variable 'K2' is missing"):
        validate_field(field.drop_vars("K2"))


def test_rays_unknown_status_and_missing_variable(rays):
    rays["status"].values[1] = "lost"
    with pytest.raises(SchemaError, match=r"status values \['lost'\]"):
        validate_rays(rays)
    with pytest.raises(SchemaError, match="required variable 'Q' is missing"):
        validate_rays(rays.drop_vars("Q"))


def test_kind_mismatch_and_dispatch(field, rays):
    with pytest.raises(SchemaError, match="'wavetraj_kind' is 'rays', expected 'field'"):
        validate_field(rays)
    assert validate(field) is field and validate(rays) is rays
    del field.attrs["wavetraj_kind"]
    with pytest.raises(SchemaError, match="not a wavetraj Dataset"):
        validate(field)
    with pytest.raises(TypeError, match=r"expected an xarray\.Dataset"):
        validate(np.zeros(3))


def test_builders_reject_bad_shapes_naming_the_argument():
    x, z = np.linspace(0, 1, 5), np.linspace(0, 1, 4)
    with pytest.raises(ValueError, match=r"envelope has shape \(5, 4\).*\(4, 5\)"):
        wavetraj.field_dataset(
            x, z, np.zeros((5, 4), complex), np.zeros((4, 5)), k_ref=0, method="t", wavelength=1
        )
    with pytest.raises(TypeError, match="K2 must be real"):
        wavetraj.field_dataset(
            x,
            z,
            np.zeros((4, 5), complex),
            np.zeros((4, 5), complex),
            k_ref=0,
            method="t",
            wavelength=1,
        )
    arrays = {name: np.zeros((2, 3)) for name in RAY_VARIABLES}
    arrays["kz"] = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"kz has shape \(2, 4\) but x has \(2, 3\)"):
        wavetraj.ray_dataset(
            [0.0, 1.0], **arrays, status=["ok", "ok"], dynamics="d", wave_potential="none"
        )


def test_provenance_records_inputs_as_json():
    def K2(x, z):
        return 1.0 + 0 * x

    params = {
        "K2": K2,
        "u0": np.array([1 + 2j, 3.0]),
        "big": np.zeros(10_000),
        "n": np.int64(3),
        "w": 0.5,
    }
    attrs = wavetraj.provenance(params)
    decoded = json.loads(attrs["parameters"])
    assert decoded["u0"] == {"re": [1.0, 3.0], "im": [2.0, 0.0]}
    assert decoded["big"]["shape"] == [10_000] and len(decoded["big"]["sha256"]) == 64
    assert "return 1.0 + 0 * x" in decoded["K2"]["source"]
    assert decoded["n"] == 3 and decoded["w"] == 0.5
    assert attrs["wavetraj_version"] == wavetraj.__version__
    commit = attrs["git_commit"]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)
    assert "numpy" in json.loads(attrs["versions"])


def test_field_interpolant_masks_and_margins():
    """The shared interpolant (field-driven rays and streamlines): splines reproduce a
    smooth quantity, masked points are zero-filled, and the margins change sign at a
    masked cell and at the grid's edge."""
    field = make_field(nz=12, nx=21)
    zz, xx = np.meshgrid(field["z"].values, field["x"].values, indexing="ij")
    mask = np.zeros(zz.shape, bool)
    mask[6, 10] = True  # x = 0, z = 6/11
    f = FieldInterpolant(field, mask, outside=1.0)
    smooth = f.spline(np.sin(xx) * np.cos(zz), undefined=np.zeros_like(mask))
    assert abs(smooth.ev(0.3, 0.7) - np.sin(0.7) * np.cos(0.3)) < 1e-4
    assert f.spline(np.ones_like(zz)).ev(zz[6, 10], 0.0) == pytest.approx(0.0, abs=1e-12)
    assert f.node_margin(np.array([0.05]), zz[6, 10])[0] < 0  # in a cell touching it
    assert f.node_margin(np.array([1.5]), 0.2)[0] > 0
    assert f.node_margin(np.array([3.0]), 0.2)[0] < 0  # off the grid: untrusted (outside=1)
    assert f.domain_margin(np.array([1.9, 2.1])).tolist() == pytest.approx([0.1, -0.1])
