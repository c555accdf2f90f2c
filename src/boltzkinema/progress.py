"""Progress with rate and ETA (tqdm): a live bar on a terminal, periodic plain lines in a log.

Snakemake sends a rule's stderr to its log file, where a carriage-return bar would be one
unreadable line; there the same tqdm state is written as a log line every ``LOG_INTERVAL``
seconds (and at the end), e.g. ``train: 40%| | 1600/4000 [03:10<04:45, 8.4 step/s, loss=0.45]``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_INTERVAL = 30.0
log = logging.getLogger("boltzkinema.progress")


class _LogLines:
    """A file for tqdm that turns each refresh into one log line."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n\x1b[A ")
        if line:
            log.info("%s", line)

    def flush(self) -> None:
        pass


def _on_terminal() -> bool:
    return sys.stderr.isatty()


def bar(
    desc: str, total: int | None = None, unit: str = "it", initial: int = 0, show: bool = True
) -> tqdm:
    """A tqdm bar for ``total`` items (update it by hand), live or as log lines; ``show=False``
    (e.g. on every process but the first of a distributed run) keeps it silent."""
    if not show:
        return tqdm(total=total, disable=True)
    if _on_terminal():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        file=_LogLines(),
        mininterval=LOG_INTERVAL,
        maxinterval=LOG_INTERVAL,
        ncols=100,
        ascii=True,
    )


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` with progress."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(desc, total, unit) as b:
        for item in items:
            yield item
            b.update(1)


def postfix(b: tqdm, **values: Any) -> None:
    """Show the latest values (loss, lr, ...) beside the rate and ETA, without a refresh."""
    b.set_postfix(values, refresh=False)
