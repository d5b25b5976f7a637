"""The clip store on disk, written so that a run killed at any moment loses nothing finished.

Layout (``key`` = the source file's path relative to the raw data, extension included; its
folder is ``folder_name(key)``, e.g. ``original/youtube/183_mp4``)::

    <store>/store.json               settings fingerprint the store was made with
    <store>/frames/<folder>/*.jpg    face crops of one source file, ``<clip start>_<frame>.jpg``
    <store>/records/<key>.json       done-marker of one source file: status, reason, clips, stats
    <store>/manifest.parquet         rebuilt from the records at the end of every run
    <store>/status.parquet           one row per source file: ok / skipped / failed and why
    <store>/summary.json             counts of the last run
    <store>/.tmp/                    workspaces of files being processed (cleared on start)

A file is finished exactly when its record exists. Its crops are written into a fresh workspace,
the workspace is renamed to ``frames/<key>`` (replacing any leftover of an interrupted attempt),
and only then is the record written, atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dfdetect.preprocess.settings import settings_differences
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

STORE_FORMAT = 1
# at most this many differing settings are named in the error
SHOWN_DIFFERENCES = 8


class StoreSettingsError(UserError, RuntimeError):
    """An existing store was made with other settings than this run's (one line: what differs and
    the overrides that go on)."""


def folder_name(key: str) -> str:
    """A source file's crop folder: its key with the extension's dot made an underscore (so that
    folders do not look like image files)."""
    stem, dot, ext = key.rpartition(".")
    return f"{stem}_{ext}" if dot and "/" not in ext else key


def settings_mismatch(root: Path, stored: dict[str, Any], current: dict[str, Any]) -> str:
    diffs = settings_differences(stored, current)
    if not diffs:  # same values, another fingerprint: a store from an older version
        what = "settings it does not record in a comparable form"
    else:
        more = len(diffs) - SHOWN_DIFFERENCES
        what = "; ".join(diffs[:SHOWN_DIFFERENCES]) + (f"; and {more} more" if more > 0 else "")
    return (
        f"{root} was made with other preprocessing settings: {what}. Run with the store's settings, "
        f"or write a new store with data.store=<new folder>, or start this one afresh with "
        f"overwrite=true (deletes its crops)"
    )


class ClipStoreWriter:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.frames_dir = self.root / "frames"
        self.records_dir = self.root / "records"
        self.tmp_dir = self.root / ".tmp"

    def open(self, fingerprint: str, settings: dict[str, Any], overwrite: bool = False) -> None:
        """Create the store, or check that an existing one was made with the same settings."""
        meta_path = self.root / "store.json"
        if meta_path.is_file() and not overwrite:
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") != fingerprint:
                raise StoreSettingsError(settings_mismatch(self.root, meta.get("settings") or {}, settings))
        if overwrite:
            for part in (self.frames_dir, self.records_dir, self.tmp_dir):
                shutil.rmtree(part, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(meta_path, {"format": STORE_FORMAT, "fingerprint": fingerprint, "settings": settings})
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def frames_path(self, key: str) -> Path:
        return self.frames_dir / folder_name(key)

    def rel_frames_dir(self, key: str) -> str:
        return f"frames/{folder_name(key)}"

    def record_path(self, key: str) -> Path:
        return self.records_dir / f"{key}.json"

    def load_record(self, key: str) -> dict | None:
        path = self.record_path(key)
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(
        self, key: str, signature: dict, retry_failed: bool = False, max_pixels: int | None = None
    ) -> bool:
        """Finished, unless failed and ``retry_failed``, or skipped as too large for a cap that
        ``max_pixels`` (None: no cap) now lifts."""
        record = self.load_record(key)
        if record is None or record.get("signature") != signature:
            return False
        if record["status"] == "failed" and retry_failed:
            return False
        stats = record.get("stats") or {}
        if stats.get("too_large") and (max_pixels is None or stats.get("pixels", 0) <= max_pixels):
            return False
        return record["status"] != "ok" or self.frames_path(key).is_dir()

    def workspace(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="w-", dir=self.tmp_dir))

    def commit(self, key: str, workspace: Path, record: dict) -> None:
        """Move the workspace into place (or drop it when nothing was written), then mark done."""
        final = self.frames_path(key)
        if final.exists():
            shutil.rmtree(final)
        if record["status"] == "ok":
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(workspace, final)
        else:
            shutil.rmtree(workspace, ignore_errors=True)
        write_json(self.record_path(key), record)
