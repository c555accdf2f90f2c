"""Runs and metrics in LanceDB tables that pandas can query.

Writers take an exclusive lock on the database folder, so parallel jobs appending to one table
lose no rows.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def _locked(db: Path) -> Iterator[None]:
    db.mkdir(parents=True, exist_ok=True)
    with open(db / ".write.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def log_rows(db: str | Path, table: str, rows: list[dict[str, Any]]) -> None:
    """Append rows to a table, creating it on first use."""
    if not rows:
        return
    import lancedb

    db = Path(db)
    frame = pd.DataFrame(rows)
    with _locked(db):
        conn = lancedb.connect(str(db))
        try:
            existing = conn.open_table(table)
        except ValueError:  # lancedb's "table not found"
            conn.create_table(table, data=frame)
        else:
            existing.add(frame)


def read_table(db: str | Path, table: str) -> pd.DataFrame:
    """A whole table as a DataFrame."""
    import lancedb

    return lancedb.connect(str(db)).open_table(table).to_pandas()
