"""Benchmarks for wavefield, each reported as a ratio to a baseline measured in the same run.

Run:  python tests/benchmarks/bench_wavefield.py [--n 1000] [--skip-spsolve]

1. Full-wave accuracy-4 solve with PML on an n×n grid (λ0/w0 = 0.5 Gaussian): wall time
   and peak memory of ``solve_helmholtz`` (SuperLU, symmetric minimum-degree ordering), and
   the same matrix solved by plain ``scipy.sparse.linalg.spsolve`` (ratio).
2. Split-step: steps per second of ``propagate_paraxial`` at nx = 4096 against a bare pair
   of scipy FFTs of the same size (the bound).

Each full-wave case runs in a fresh subprocess so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

CASE = r"""
import json, sys, time, resource
import numpy as np
import scipy.sparse.linalg as spla
import wavefield as wf
from wavefield.helmholtz import helmholtz_system
n, which = int(sys.argv[1]), sys.argv[2]
lam = 0.5; k = 2 * np.pi / lam
x = np.linspace(-n / 56, n / 56, n); z = np.linspace(0, n / 28, n)  # 28 points per λ
t = time.perf_counter()
if which == "wavetraj":
    ds = wf.solve_helmholtz(k**2, x, z, np.exp(-x**2))
    extra = {k_: ds.attrs[k_] for k_ in ("time_assemble_s", "time_factor_s", "unknowns")}
else:
    pml = wf.PML(); nl = pml.cells(lam, x[1] - x[0])
    K2 = np.full((n - 1 + nl, n + 2 * nl), k**2)
    S = helmholtz_system(K2, x[1] - x[0], z[1] - z[0], k, 4, nl, nl, pml)
    u = spla.spsolve(S.matrix, S.rhs(np.pad(np.exp(-x**2), nl)))
    extra = {"unknowns": S.matrix.shape[0]}
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"wall_s": wall, "peak_GiB": rss, **extra}))
"""


def run_case(n: int, which: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CASE, str(n), which], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_split_step(nx: int = 4096, steps: int = 400) -> dict:
    import scipy.fft

    import wavefield as wf

    lam = 1e-2
    k = 2 * np.pi / lam
    x = np.linspace(-40, 40, nx)
    z = np.linspace(0, steps * 1.0, steps + 1)
    u0 = np.exp(-(x**2))
    wf.propagate_paraxial(lambda X, Z: k**2 * (1 - X**2 / 1e4), x, z[:3], u0)  # warm up
    t = time.perf_counter()
    wf.propagate_paraxial(lambda X, Z: k**2 * (1 - X**2 / 1e4), x, z, u0)
    ours = steps / (time.perf_counter() - t)
    a = u0.astype(complex)
    t = time.perf_counter()
    for _ in range(steps):
        a = scipy.fft.ifft(scipy.fft.fft(a, workers=2), workers=2)
    bound = steps / (time.perf_counter() - t)
    return {
        "nx": nx,
        "steps_per_s": ours,
        "bare_fft_pairs_per_s": bound,
        "fraction_of_bound": ours / bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="full-wave grid is n x n")
    parser.add_argument("--skip-spsolve", action="store_true")
    args = parser.parse_args()
    results = {"split_step": bench_split_step()}
    print(json.dumps(results["split_step"]), flush=True)
    ours = run_case(args.n, "wavetraj")
    results["helmholtz"] = ours
    print(json.dumps({"helmholtz_n": args.n, **ours}), flush=True)
    if not args.skip_spsolve:
        base = run_case(args.n, "spsolve")
        results["spsolve"] = base
        print(
            json.dumps(
                {
                    "spsolve_n": args.n,
                    **base,
                    "speedup_vs_spsolve": base["wall_s"] / ours["wall_s"],
                    "memory_ratio": ours["peak_GiB"] / base["peak_GiB"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
