"""Shared fixtures: small valid Datasets of each schema."""

from __future__ import annotations

import numpy as np
import pytest

import wavetraj


def make_field(nz: int = 4, nx: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, nx)
    z = np.linspace(0.0, 1.0, nz)
    env = rng.normal(size=(nz, nx)) + 1j * rng.normal(size=(nz, nx))
    K2 = np.full((nz, nx), 4.0)
    return wavetraj.field_dataset(
        x, z, env, K2, k_ref=2.0, method="test", wavelength=np.pi, parameters={"seed": seed}
    )


def make_rays(n_ray: int = 3, n_step: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {name: rng.normal(size=(n_ray, n_step)) for name in wavetraj.schema.RAY_VARIABLES}
    arrays["x"][0, -2:] = np.nan  # a ray that stopped early
    return wavetraj.ray_dataset(
        np.linspace(-1, 1, n_ray),
        **arrays,
        status=np.array(["node"] + ["ok"] * (n_ray - 1)),
        dynamics="schrodinger",
        wave_potential="none",
        parameters={"n_ray": n_ray},
    )


@pytest.fixture
def field():
    return make_field()


@pytest.fixture
def rays():
    return make_rays()
