"""The gate as its users run it: ``serve.py`` in a subprocess (its own process group, so that the
LitServe workers go with it) on a free loopback port, spoken to over HTTP. Keys and a planted
provider secret come through the environment, as in production."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, SHARED, repo_env

KEY = "client-key-0123456789abcdef"
TRUSTED_KEY = "trusted-key-0123456789abcdef"
PLANTED = "planted-naver-secret-5f1c9a77e2"
NAVER_ID = "naver-client-id-0042"
WEIGHTS = SHARED / "weights" / "mesonet" / "MesoInception_DF.h5"
SAMPLES = SHARED / "data" / "samples" / "mesonet"
REAL_FACE = SAMPLES / "real" / "real00772.jpg"  # MesoInception_DF: P(fake) 0.004
FAKE_FACE = SAMPLES / "df" / "df01254.jpg"  # MesoInception_DF: P(fake) 1.000

needs_shared = pytest.mark.skipif(
    not (WEIGHTS.is_file() and REAL_FACE.is_file() and FAKE_FACE.is_file()),
    reason=f"MesoNet weights/samples not found under {SHARED} (../shared is absent)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def real_weights_overrides() -> list[str]:
    return [
        "model=mesoinception4",
        f"model.net.weights={WEIGHTS}",
        f"serve.sha256={sha256_of(WEIGHTS)}",
    ]


@dataclass
class GateProcess:
    url: str
    proc: subprocess.Popen
    log: Path
    audit: Path

    def post(
        self,
        endpoint: str,
        path: Path | None = None,
        key: str | None = TRUSTED_KEY,
        data: bytes | None = None,
        filename: str = "face.jpg",
        **kwargs,
    ) -> requests.Response:
        content = path.read_bytes() if path is not None else data
        headers = {"X-API-Key": key} if key is not None else {}
        return requests.post(
            f"{self.url}/v1/{endpoint}",
            files={"file": (filename, content)},
            headers=headers,
            timeout=60,
            **kwargs,
        )

    def get(self, path: str, key: str | None = TRUSTED_KEY) -> requests.Response:
        headers = {"X-API-Key": key} if key is not None else {}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@contextmanager
def gate_server(tmp: Path, *overrides: str, env: dict | None = None, startup_s: float = 180.0):
    """Start ``serve.py`` with ``overrides``; yields a ``GateProcess`` once ``/health`` says ok."""
    port = free_port()
    log, audit = tmp / "serve.log", tmp / "audit.jsonl"
    cmd = [
        sys.executable,
        str(ROOT / "serve.py"),
        f"serve.port={port}",
        f"paths.log_dir={tmp / 'logs'}",
        f"paths.data_dir={tmp / 'data'}",
        f"hydra.run.dir={tmp / 'run'}",
        f"serve.audit_log={audit}",
        "serve.torch_threads=1",
        *overrides,
    ]
    environ = {
        **repo_env(),
        "DFDETECT_API_KEYS": KEY,
        "DFDETECT_TRUSTED_API_KEYS": TRUSTED_KEY,
        "NAVER_CLIENT_ID": NAVER_ID,
        "NAVER_CLIENT_SECRET": PLANTED,
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    gate = GateProcess(f"http://127.0.0.1:{port}", proc, log, audit)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve.py exited with {proc.returncode}:\n{gate.log_text()[-3000:]}")
            try:
                if requests.get(f"{gate.url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve.py not healthy after {startup_s} s:\n{gate.log_text()[-3000:]}")
            time.sleep(0.3)
        yield gate
    finally:
        gate.kill(signal.SIGTERM)
