"""Memory checks before long work: refuse a computation this machine cannot hold, with
the estimate, what is available and what to change — instead of dying in numpy's
MemoryError (or the kernel's OOM killer) after minutes of work."""

from __future__ import annotations

import psutil

#: Share of the available memory a computation may plan to use: the estimates are within
#: ~20 % of the measured peaks, and the system needs the rest.
MEMORY_HEADROOM = 0.85


class InsufficientMemoryError(MemoryError):
    """A computation's estimated memory exceeds what this machine has available."""


def available_memory() -> int:
    """Bytes available for new allocations without swapping (psutil's ``available``)."""
    return int(psutil.virtual_memory().available)


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_memory(need: float, what: str, fix: str) -> None:
    """Raise :class:`InsufficientMemoryError` when ``need`` bytes exceed the headroom of
    the available memory; the message names ``what``, the estimate, the memory available
    and ``fix``."""
    have = available_memory()
    if need > MEMORY_HEADROOM * have:
        raise InsufficientMemoryError(
            f"{what} needs about {_gib(need)} (estimate), but {_gib(have)} is available: {fix}"
        )
