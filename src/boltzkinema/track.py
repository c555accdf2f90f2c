"""Runs and metrics in LanceDB tables that pandas can query.

Writers take an exclusive lock on the database folder, so parallel jobs writing to one table lose
no rows; rows are upserted on their key columns in one commit, so a job that is killed and rerun
writes each row once (no duplicates, nothing lost).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from boltzkinema.errors import ConfigError
from boltzkinema.util import disk_full, is_disk_full


@contextmanager
def _locked(db: Path) -> Iterator[None]:
    db.mkdir(parents=True, exist_ok=True)
    with open(db / ".write.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def log_rows(db: str | Path, table: str, rows: list[dict[str, Any]], key: list[str]) -> None:
    """Insert rows into a table (created on first use), replacing rows with the same ``key``."""
    if not rows:
        return
    db = Path(db)
    frame = pd.DataFrame(rows)
    if frame.duplicated(key).any():
        raise ValueError(f"rows for LanceDB table {table!r} repeat a key {key}")
    try:
        _insert(db, table, frame, key)
    except Exception as exc:  # LanceDB reports a full disk as its own error types
        if is_disk_full(exc):
            raise disk_full(db) from exc
        raise


def _insert(db: Path, table: str, frame: pd.DataFrame, key: list[str]) -> None:
    import lancedb

    with _locked(db):
        conn = lancedb.connect(str(db))
        try:
            existing = conn.open_table(table)
        except ValueError:  # lancedb's "table not found"
            conn.create_table(table, data=frame)
        else:
            missing = sorted(set(frame.columns) - set(existing.schema.names))
            if missing:
                raise ConfigError(
                    f"LanceDB table {db / table} lacks columns {missing} (written by an older "
                    f"version); move it away or delete it, and rerun"
                )
            (
                existing.merge_insert(key)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(frame)
            )


def read_table(db: str | Path, table: str) -> pd.DataFrame:
    """A whole table as a DataFrame."""
    import lancedb

    return lancedb.connect(str(db)).open_table(table).to_pandas()
