"""``kill -9`` of the whole gate (API server and inference workers) while clients keep it busy:
the audit log holds only whole JSON lines."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.serve_server import REAL_FACE, gate_server, needs_shared

pytestmark = [pytest.mark.integration, needs_shared]


@pytest.mark.slow  # a server of its own (about 20 s to start on 2 busy cores)
def test_audit_log_holds_whole_lines_after_kill_9_under_load(tmp_path):
    with gate_server(tmp_path, "model=meso4", "serve.max_batch_size=4", "serve.batch_timeout=0.005") as gate:
        stop = threading.Event()
        answered = []

        def client():
            while not stop.is_set():
                try:
                    answered.append(gate.post("detect", REAL_FACE).status_code)
                except Exception:
                    return

        threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(answered) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        gate.kill()  # SIGKILL to the process group, requests in flight
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert gate.proc.returncode == -9
    text = gate.audit.read_text()
    lines = text.splitlines(keepends=True)
    assert len(lines) >= 12 and all(line.endswith("\n") for line in lines)
    records = [json.loads(line) for line in lines]
    assert all(r["endpoint"] == "detect" and r["request_id"] for r in records)
    assert answered.count(200) >= 12
