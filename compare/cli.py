"""The ``wavetraj`` command-line tool: the only place in the project that talks to a terminal.

Each sub-command parses its arguments, calls library functions, and returns an exit code:
0 success, 1 a run whose checks failed, 2 bad input (usage, malformed scenario file).
Errors are reported as one readable line, not a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from collections.abc import Sequence

from compare.report import rebuild, report
from compare.run import run_scenario
from compare.runfolder import check_destination
from compare.scenarios import get, library, parse_value
from compare.study import study
from compare.study_page import study_page
from compare.sweep import sweep
from wavetraj import __version__

log = logging.getLogger("wavetraj")

EXIT_OK = 0
EXIT_FAILED_CHECKS = 1
EXIT_BAD_INPUT = 2

#: The seed's three figures and their exact cross-check (the GRIN lens, Kogelnik's waist).
PAPER_SCENARIOS = ("gaussian", "bell", "lens", "grin")


def _progress(items, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="scenario", file=sys.stderr, disable=None)


def _run_and_report(names_or_files, out: str, overrides=None) -> int:

    scenarios = [get(n, overrides) for n in names_or_files]  # validate all before running
    check_destination(out)  # a bad --out is found now, not after the computation
    results = []
    bar = _progress(scenarios, "wavetraj")
    for sc in bar:
        bar.set_postfix_str(sc.name)
        results.append(run_scenario(sc))
    path = report(results, out)
    for r in results:
        m = r.metrics
        verdict = "PASS" if m["passed"] else "FAIL"
        sys.stdout.write(
            f"{verdict}  {m['scenario']:<14} max distance {m['max_distance_w0']:.3g} w0 "
            f"(tolerance {m['tolerance_w0']:.3g}), rays ok {m['rays_ok']}/{m['rays']}, "
            f"compared over {m['judged_fraction']:.0%} of the run\n"
        )
        if not m["passed"]:
            sys.stdout.write(f"      why: {m['verdict']}\n")
    sys.stdout.write(f"report: {path}\n")
    return EXIT_OK if all(r.metrics["passed"] for r in results) else EXIT_FAILED_CHECKS


def _cmd_paper(args: argparse.Namespace) -> int:
    return _run_and_report(PAPER_SCENARIOS, args.out)


def _cmd_run(args: argparse.Namespace) -> int:
    overrides = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: use table.key=value, e.g. --set launch.rays=64")
        overrides[key.strip()] = value.strip()
    out = args.out or f"wavetraj-out/{pathlib.Path(args.scenario).stem}"
    return _run_and_report([args.scenario], out, overrides)


def _parse_vary(items) -> dict[str, list]:

    vary = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--vary {item!r}: use table.key=v1,v2,... e.g. launch.rays=64,128")
        vary[key.strip()] = [parse_value(raw.strip()) for raw in values.split(",")]
    if not vary:
        raise ValueError("give at least one --vary table.key=v1,v2,...")
    return vary


class _CaseBar:
    """A tqdm bar over cases, driven by progress(done, total) callbacks. Also quiets
    dask's scheduler, which logs every connection at INFO (``-v`` keeps it): its logging
    is configured when it is imported, so the level is set after that."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose

    def __enter__(self):
        from tqdm import tqdm

        if not self.verbose:
            try:
                import distributed  # noqa: F401 - configures its loggers on import
            except ImportError:  # the sweep reports the missing extra itself
                pass
            logging.getLogger("distributed").setLevel(logging.WARNING)

        self.bar = tqdm(total=None, desc="cases", unit="case", file=sys.stderr, disable=None)
        return self

    def __call__(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def __exit__(self, *exc):
        self.bar.close()


def _summary(s) -> None:
    sys.stdout.write(
        f"{s.total} cases: {s.passed} passed, {s.failed} failed, {s.skipped} "
        f"skipped (already complete), {s.computed} computed\n"
    )
    for name, err in s.errors.items():
        sys.stdout.write(f"  failed {name}: {err}\n")


def _cmd_sweep(args: argparse.Namespace) -> int:

    vary = _parse_vary(args.vary)
    out = args.out or f"wavetraj-out/sweep-{pathlib.Path(args.scenario).stem}"
    with _CaseBar(args.verbose) as progress:
        s = sweep(args.scenario, vary, out_dir=out, scheduler=args.scheduler, progress=progress)
    _summary(s)
    if s.gathered:
        sys.stdout.write(f"gathered: {s.gathered}\n")
    return EXIT_OK if s.failed == 0 else EXIT_FAILED_CHECKS


def _cmd_study(args: argparse.Namespace) -> int:

    kw = {}
    if args.wavelengths:
        kw["wavelengths"] = [parse_value(v.strip()) for v in args.wavelengths.split(",")]
        if not all(isinstance(v, (int, float)) for v in kw["wavelengths"]):
            raise ValueError(
                f"--wavelengths {args.wavelengths!r}: give numbers, e.g. --wavelengths 1e-3,0.1,1"
            )
    if args.profiles:
        kw["profiles"] = [p.strip() for p in args.profiles.split(",")]
    with _CaseBar(args.verbose) as progress:
        s = study(args.out, scheduler=args.scheduler, progress=progress, page=study_page, **kw)
    _summary(s)
    if s.page:
        sys.stdout.write(f"study: {s.page} ({s.seconds:.0f} s)\n")
    return EXIT_OK if s.failed == 0 else EXIT_FAILED_CHECKS


def _cmd_list(args: argparse.Namespace) -> int:

    for sc in library():
        fig = f" [{sc.figure}]" if sc.figure else ""
        sys.stdout.write(f"{sc.name:<14} {sc.description}{fig}\n")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:

    sys.stdout.write(f"report: {rebuild(args.dir)}\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavetraj",
        description=(
            "Wave-Potential particle trajectories (Orefice, Giovanelli, Ditto) computed as "
            "rays and checked against the streamlines of an independent wave solution."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wavetraj {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    paper = sub.add_parser("paper", help="reproduce the seed paper's figures with cross-checks")
    paper.add_argument("--out", default="wavetraj-out/paper", help="output folder")
    paper.set_defaults(func=_cmd_paper)
    lst = sub.add_parser("list", help="list the built-in scenarios")
    lst.set_defaults(func=_cmd_list)
    run = sub.add_parser("run", help="run one scenario (built-in name or .toml file)")
    run.add_argument("scenario", help="built-in name (see `wavetraj list`) or FILE.toml")
    run.add_argument("--out", default=None, help="output folder (default wavetraj-out/NAME)")
    run.add_argument(
        "--set",
        action="append",
        metavar="TABLE.KEY=VALUE",
        help="override a scenario value, e.g. --set launch.rays=64 (repeatable)",
    )
    run.set_defaults(func=_cmd_run)
    sw = sub.add_parser("sweep", help="run a scenario over parameter values on dask")
    sw.add_argument("scenario", help="built-in name or FILE.toml")
    sw.add_argument(
        "--vary",
        action="append",
        metavar="TABLE.KEY=V1,V2,...",
        help="values of one key (repeatable; every combination is run)",
    )
    sw.add_argument(
        "--scheduler",
        default=None,
        help="address of a running dask scheduler (default: a local cluster)",
    )
    sw.add_argument("--out", default=None, help="output folder (default wavetraj-out/sweep-NAME)")
    sw.set_defaults(func=_cmd_sweep)
    st = sub.add_parser(
        "study",
        help="the validation study: rays against exact streamlines as λ0/w0 grows (on dask)",
    )
    st.add_argument("--out", default="wavetraj-out/study", help="output folder")
    st.add_argument(
        "--wavelengths",
        default=None,
        metavar="L1,L2,...",
        help="λ0/w0 values (default 1e-4 ... 1, twelve values)",
    )
    st.add_argument("--profiles", default=None, help="gaussian,bell (default both)")
    st.add_argument(
        "--scheduler",
        default=None,
        help="address of a running dask scheduler (default: a local cluster)",
    )
    st.set_defaults(func=_cmd_study)
    rep = sub.add_parser("report", help="rebuild report.html from a run's saved data")
    rep.add_argument("dir", help="a folder written by `wavetraj run` or `wavetraj paper`")
    rep.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, MemoryError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"wavetraj {args.command}: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("wavetraj: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
