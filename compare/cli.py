"""The ``wavetraj`` command-line tool: the only place in the project that talks to a terminal.

Each sub-command parses its arguments, calls library functions, and returns an exit code:
0 success, 1 a run whose checks failed, 2 bad input (usage, malformed scenario file).
Errors are reported as one readable line, not a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from wavetraj import __version__

log = logging.getLogger("wavetraj")

EXIT_OK = 0
EXIT_FAILED_CHECKS = 1
EXIT_BAD_INPUT = 2

PAPER_PLAN = """\
wavetraj paper: reproduce the seed paper's three figures and cross-check them.

  Fig. 1  Gaussian launch, lambda0/w0 = 1e-4: self-consistent Wave-Potential rays,
          heavy rays from x0 = +-w0 against eq. 11.
  Fig. 2  bell-shaped non-Gaussian launch: rays that develop fringes, against the
          streamlines of the exact field.
  Fig. 3  lens-like potential: geometric-optics rays reach a point focus, Wave-Potential
          rays a finite waist (Kogelnik's w_min in the GRIN case).

Each figure is judged by an independent wave solution (wavefield) and summarised in one
HTML report with the agreement table, figures and the data as netCDF.
"""


def _cmd_paper(args: argparse.Namespace) -> int:
    sys.stdout.write(PAPER_PLAN)
    sys.stdout.write(
        "\nThe scenario library and report are not built yet (issue 'compare'): "
        "nothing was computed.\n"
    )
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
    except (ValueError, TypeError, OSError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"wavetraj {args.command}: error: {exc}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("wavetraj: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
