"""The audit log: one JSON object per request and line. Each line goes out in one ``os.write`` on a
descriptor opened with ``O_APPEND``, so a crash (even ``kill -9``) leaves only whole lines behind;
no media is ever stored, only its sha256."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


class AuditLog:
    def __init__(self, path: str | os.PathLike | None, redact=lambda value: value):
        self.path = None if path is None else Path(path)
        self.redact = redact
        self._fd = None
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: dict) -> None:
        if self._fd is None:
            return
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        line = (json.dumps(self.redact(entry), sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            if self._fd is None:  # closed meanwhile (shutdown)
                return
            written = os.write(self._fd, line)
        if written != len(line):  # a full disk: never leave half a line unmarked
            raise OSError(f"audit log {self.path}: wrote {written} of {len(line)} bytes")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
