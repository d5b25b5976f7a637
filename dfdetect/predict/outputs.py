"""What a prediction run writes, and what a rerun reuses.

``predictions.jsonl``: one JSON record per file as it is scored (tracks, clips, boxes, frame
indices, timings), appended whole-line; ``predictions.csv``: one row per file in input order,
written at the end. The score cache (``predict.cache``, one JSONL file per model and face-pipeline
fingerprint) remembers every file scored, keyed by the sha256 of its bytes (not its path, size or
time, which a swapped file can keep), so that a rerun over a large folder only scores what is new;
verdicts are re-decided with the current threshold, and their rows say ``cached``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from dfdetect.predict.verdict import CSV_COLUMNS, FileVerdict, decide
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)

# reasons that may not hold on a rerun: never cached
TRANSIENT = ("missing", "error")


def append_line(path: Path, record: dict) -> None:
    """One whole line per call: a single write to a file opened for appending."""
    data = (json.dumps(record, default=float) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict]:
    """The whole JSON lines of ``path`` (a line cut short by a crash is left out)."""
    out = []
    if not path.is_file():
        return out
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
    return out


def file_key(path: str) -> str | None:
    """``sha256:<hex>`` of the file's bytes; None when it cannot be read (it is not cached)."""
    try:
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except (OSError, ValueError):
        return None
    return f"sha256:{digest}"


class ScoreCache:
    def __init__(self, folder: str | os.PathLike | None, fingerprint: dict):
        self.path = None
        self.records: dict[str, dict] = {}
        if folder is None:
            return
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
        self.path = Path(folder) / f"{digest[:24]}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for record in read_lines(self.path):
            if str(record.get("key", "")).startswith("sha256:"):  # older path|size|mtime keys: unused
                self.records[record["key"]] = record["verdict"]
        self.keys: dict[str, str | None] = {}  # path -> content key, hashed once per run

    def key(self, path: str) -> str | None:
        if path not in self.keys:
            self.keys[path] = file_key(path)
        return self.keys[path]

    def get(self, path: str, threshold: float) -> FileVerdict | None:
        if self.path is None:
            return None
        key = self.key(path)
        record = self.records.get(key) if key else None
        if record is None:
            return None
        verdict = FileVerdict(**{**record, "path": path, "threshold": threshold, "cached": True})
        verdict.verdict = decide(verdict.p_fake, threshold)
        verdict.timings = {"cached": 0.0}
        return verdict

    def add(self, verdict: FileVerdict) -> None:
        if self.path is None or verdict.reason.split(":", 1)[0] in TRANSIENT:
            return
        key = self.key(verdict.path)
        if key is None:
            return
        self.records[key] = {**asdict(verdict), "cached": False}
        append_line(self.path, {"key": key, "verdict": self.records[key]})


def write_csv(path: Path, verdicts: Iterable[FileVerdict]) -> None:
    frame = pd.DataFrame([v.row() for v in verdicts], columns=list(CSV_COLUMNS))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
