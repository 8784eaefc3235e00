"""Benchmark for raytrace, reported as a ratio to a baseline measured in the same run.

Run:  python tests/benchmarks/bench_raytrace.py [--rays 1000] [--span 4] [--repeat 3]

Self-consistent tracing of a Gaussian launch (λ0/w0 = 1e-4) over 2 Rayleigh lengths: wall
time (median of ``--repeat``) and the error against seed eq. 11 for |x0| <= 2 w0. The
baseline is the same rays in geometric optics (independent rays, no Wave Potential): the
ratio is the price of the self-consistent coupling. Issue 4's target: <= 2 s for 1000 rays.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import raytrace as rt


def timed(fun, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fun()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rays", type=int, default=1000)
    parser.add_argument("--span", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lam = 1e-4
    zR = np.pi / lam
    d = rt.Schrodinger.for_wavelength(lam)
    x0 = np.linspace(-args.span, args.span, args.rays)

    def gaussian(x):
        return np.exp(-(x**2))

    def run(mode):
        return rt.trace(d, x0, gaussian, z_end=2 * zR, n_steps=21, wave_potential=mode)

    t_sc, rays = timed(lambda: run("self-consistent"), args.repeat)
    t_go, _ = timed(lambda: run("none"), args.repeat)
    exact = x0[:, None] * np.sqrt(1 + (rays["z"].values / zR) ** 2)
    inner = np.abs(x0) <= 2
    err = float(np.nanmax(np.abs(rays["x"].values - exact)[inner]))
    print(
        json.dumps(
            {
                "rays": args.rays,
                "span_w0": args.span,
                "self_consistent_s": t_sc,
                "geometric_optics_s": t_go,
                "ratio_to_geometric_optics": t_sc / t_go,
                "eq11_error_w0": err,
                "status": sorted(set(rays["status"].values.tolist())),
                "target_s": 2.0,
            }
        )
    )


if __name__ == "__main__":
    main()
