"""Numerical helpers for convergence tests."""

from __future__ import annotations

import numpy as np


def observed_order(h, err) -> float:
    """Least-squares slope of log(err) against log(h): the observed order of accuracy."""
    h, err = np.asarray(h, float), np.asarray(err, float)
    if h.size < 3:
        raise ValueError("fit the order over at least 3 refinements")
    return float(np.polyfit(np.log(h), np.log(err), 1)[0])


def gaussian_beam(x, z, zR, w0=1.0):
    """Exact paraxial Gaussian-beam envelope in 2-D, launched as exp(-x²/w0²) at z = 0."""
    q = 1 + 1j * z / zR
    return q**-0.5 * np.exp(-(x**2) / (w0**2 * q))


def grin_beam(x, z, k, a, w0=1.0):
    """Kogelnik's Gaussian beam in K² = k²(1 − x²/a²), paraxial, launched as exp(-x²/w0²)."""
    q0 = -1j * k * w0**2 / 2
    A, B, C, D = np.cos(z / a), a * np.sin(z / a), -np.sin(z / a) / a, np.cos(z / a)
    q = (A * q0 + B) / (C * q0 + D)
    return (A + B / q0) ** -0.5 * np.exp(1j * k * x**2 / (2 * q))
