"""SQLite cache of celebrity-API calls: one row per call, written once, safe to resume after a crash.

Table ``api_calls`` is keyed by (provider, operation, image sha256, reference image sha256 or '',
params json) and holds the normalised answer (``ApiResult``: name raw and normalised, confidence
and similarity on 0–100, NULL for "no answer"), the status (ok / no_face / error + the provider's
error code), latency, attempt count, timestamp and the zlib-compressed raw JSON. Table ``images``
maps each image's sha256 to its key, dataset, label (1 = fake) and identity (for a fake, the
identity it impersonates), so results join to detector predictions by image key.

Every write is one transaction in WAL mode; a successful (ok / no_face) row is never overwritten
unless asked, an ``error`` row is replaced by a later attempt (``attempts`` counts them). Each
thread gets its own connection, so several workers can write at once. Credentials never belong
here: ``params`` naming a key, secret, token or password are refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dfdetect.measure.names import normalise_name
from dfdetect.measure.records import ApiResult, AttackDataError

SCHEMA_VERSION = 1
SECRET_WORDS = ("key", "secret", "token", "password", "authorization", "credential", "subscription")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_calls (
    provider      TEXT NOT NULL,
    operation     TEXT NOT NULL,
    image_sha256  TEXT NOT NULL,
    ref_sha256    TEXT NOT NULL DEFAULT '',
    params_json   TEXT NOT NULL DEFAULT '{}',
    status        TEXT NOT NULL CHECK (status IN ('ok', 'no_face', 'error')),
    error_code    TEXT,
    name_raw      TEXT,
    name_norm     TEXT,
    confidence    REAL CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 100),
    similarity    REAL CHECK (similarity IS NULL OR similarity BETWEEN 0 AND 100),
    latency_s     REAL,
    attempts      INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    raw_json_z    BLOB,
    PRIMARY KEY (provider, operation, image_sha256, ref_sha256, params_json)
);
CREATE TABLE IF NOT EXISTS images (
    dataset          TEXT NOT NULL,
    image_key        TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    label            INTEGER NOT NULL CHECK (label IN (0, 1)),
    identity         TEXT NOT NULL,
    source_identity  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (dataset, image_key)
);
CREATE INDEX IF NOT EXISTS images_sha256 ON images (sha256);
"""

_UPSERT = """
INSERT INTO api_calls (provider, operation, image_sha256, ref_sha256, params_json, status, error_code,
                       name_raw, name_norm, confidence, similarity, latency_s, attempts, created_at, raw_json_z)
VALUES (:provider, :operation, :image_sha256, :ref_sha256, :params_json, :status, :error_code,
        :name_raw, :name_norm, :confidence, :similarity, :latency_s, :attempts, :created_at, :raw_json_z)
ON CONFLICT (provider, operation, image_sha256, ref_sha256, params_json) DO UPDATE SET
    status = excluded.status, error_code = excluded.error_code, name_raw = excluded.name_raw,
    name_norm = excluded.name_norm, confidence = excluded.confidence, similarity = excluded.similarity,
    latency_s = excluded.latency_s, attempts = api_calls.attempts + excluded.attempts,
    created_at = excluded.created_at, raw_json_z = excluded.raw_json_z
WHERE api_calls.status = 'error' OR :overwrite
"""


def params_json(params: dict | None) -> str:
    """Canonical JSON of call parameters (sorted keys); refuses anything that looks like a secret."""
    params = params or {}
    for key in params:
        if any(word in str(key).lower() for word in SECRET_WORDS):
            raise AttackDataError(f"call parameter {key!r} looks like a credential; secrets are never cached")
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def compress_raw(raw) -> bytes | None:
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
    return zlib.compress(text.encode("utf-8"), level=6)


def decompress_raw(blob: bytes | None):
    return None if blob is None else json.loads(zlib.decompress(blob).decode("utf-8"))


class ApiCache:
    """Open (creating if needed) the cache at ``path``; one connection per thread."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise AttackDataError(
                    f"{self.path}: cache schema version {version}, expected {SCHEMA_VERSION}"
                )
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous=FULL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): takes the write lock up front."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----------------------------------------------------------------- calls
    def record_call(
        self,
        result: ApiResult,
        image_sha256: str,
        ref_sha256: str = "",
        params: dict | None = None,
        raw=None,
        latency_s: float | None = None,
        attempts: int = 1,
        overwrite: bool = False,
    ) -> bool:
        """Store one call in its own transaction. Returns False when a successful row already exists
        (and ``overwrite`` is False); an earlier ``error`` row is replaced and its attempts added."""
        if result.operation == "compare" and not ref_sha256:
            raise AttackDataError(
                f"{result.provider} compare of {image_sha256}: needs the reference image sha256"
            )
        row = {
            "provider": result.provider,
            "operation": result.operation,
            "image_sha256": image_sha256,
            "ref_sha256": ref_sha256 or "",
            "params_json": params_json(params),
            "status": result.status,
            "error_code": result.error_code,
            "name_raw": result.name,
            "name_norm": normalise_name(result.name) or None,
            "confidence": result.confidence,
            "similarity": result.similarity,
            "latency_s": latency_s,
            "attempts": int(attempts),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "raw_json_z": compress_raw(raw),
            "overwrite": int(bool(overwrite)),
        }
        with self._transaction() as conn:
            cursor = conn.execute(_UPSERT, row)
        return cursor.rowcount > 0

    def get_call(self, provider: str, operation: str, image_sha256: str, ref_sha256: str = "", params=None):
        """The stored row as a dict (raw JSON decoded under ``raw``), or None."""
        found = (
            self._conn()
            .execute(
                "SELECT * FROM api_calls WHERE provider=? AND operation=? AND image_sha256=? AND ref_sha256=?"
                " AND params_json=?",
                (provider, operation, image_sha256, ref_sha256 or "", params_json(params)),
            )
            .fetchone()
        )
        if found is None:
            return None
        out = dict(found)
        out["raw"] = decompress_raw(out.pop("raw_json_z"))
        return out

    def is_done(
        self, provider: str, operation: str, image_sha256: str, ref_sha256: str = "", params=None
    ) -> bool:
        """True when a successful (ok / no_face) answer is cached: a resuming client skips the call."""
        row = self.get_call(provider, operation, image_sha256, ref_sha256, params)
        return row is not None and row["status"] != "error"

    def calls(self, provider: str | None = None, operation: str | None = None) -> pd.DataFrame:
        """All calls (without the raw JSON), optionally for one provider and operation."""
        where, args = [], []
        for column, value in (("provider", provider), ("operation", operation)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = "SELECT * FROM api_calls" + (" WHERE " + " AND ".join(where) if where else "")
        df = pd.read_sql_query(sql, self._conn(), params=args)
        return df.drop(columns=["raw_json_z"])

    # ---------------------------------------------------------------- images
    def add_images(self, images: pd.DataFrame) -> int:
        """Insert or update image rows (columns sha256, image_key, dataset, label, identity and
        optionally source_identity) in one transaction; returns the number of rows given."""
        required = ["sha256", "image_key", "dataset", "label", "identity"]
        missing = [c for c in required if c not in images.columns]
        if missing:
            raise AttackDataError(f"images: missing columns {missing}")
        rows = images.assign(source_identity=images.get("source_identity", "")).fillna(
            {"source_identity": ""}
        )
        bad = ~rows["label"].isin([0, 1])
        if bad.any():
            raise AttackDataError(
                f"images: label must be 0 or 1, image {rows.loc[bad, 'image_key'].iloc[0]!r}"
            )
        records = [
            (r.dataset, r.image_key, r.sha256, int(r.label), r.identity, r.source_identity)
            for r in rows.itertuples(index=False)
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO images (dataset, image_key, sha256, label, identity, source_identity)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dataset, image_key) DO UPDATE SET"
                " sha256=excluded.sha256, label=excluded.label, identity=excluded.identity,"
                " source_identity=excluded.source_identity",
                records,
            )
        return len(records)

    def images(self, dataset: str | None = None) -> pd.DataFrame:
        sql, args = "SELECT * FROM images", []
        if dataset is not None:
            sql, args = sql + " WHERE dataset=?", [dataset]
        return pd.read_sql_query(sql, self._conn(), params=args)
