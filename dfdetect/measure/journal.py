"""Calls in flight, in the cache's SQLite file (table ``in_flight``): a row is written (committed)
before a call's first request leaves and deleted once its answer is cached. A row left behind by a
killed run marks a call that may have reached the provider (and been billed) whose answer was
never received: a rerun does not send it again unless asked (``resend_in_flight``)."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timezone

from dfdetect.measure.cache import params_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS in_flight (
    provider      TEXT NOT NULL,
    operation     TEXT NOT NULL,
    image_sha256  TEXT NOT NULL,
    ref_sha256    TEXT NOT NULL DEFAULT '',
    params_json   TEXT NOT NULL DEFAULT '{}',
    started_at    TEXT NOT NULL,
    pid           INTEGER,
    PRIMARY KEY (provider, operation, image_sha256, ref_sha256, params_json)
)
"""

CallKey = tuple[str, str, str, str, str]  # provider, operation, image sha, ref sha, params json


def call_key(provider: str, operation: str, image_sha256: str, ref_sha256: str = "", params=None) -> CallKey:
    return (provider, operation, image_sha256, ref_sha256 or "", params_json(params))


class CallJournal:
    def __init__(self, path: str | os.PathLike, timeout_s: float = 60.0):
        self._conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(_SCHEMA)

    def start(self, key: CallKey) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO in_flight VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, datetime.now(timezone.utc).isoformat(timespec="milliseconds"), os.getpid()),
            )

    def finish(self, key: CallKey) -> None:
        with self._lock:
            self._conn.execute(
                "DELETE FROM in_flight WHERE provider=? AND operation=? AND image_sha256=? AND ref_sha256=?"
                " AND params_json=?",
                key,
            )

    def pending(self, provider: str | None = None) -> set[CallKey]:
        sql, args = "SELECT provider, operation, image_sha256, ref_sha256, params_json FROM in_flight", ()
        if provider is not None:
            sql, args = sql + " WHERE provider=?", (provider,)
        with self._lock:
            return {tuple(row) for row in self._conn.execute(sql, args)}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
