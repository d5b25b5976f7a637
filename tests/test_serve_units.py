"""The gate's parts without a server: keys, typing by content, pins, the audit log's whole
lines, what untrusted keys see, admission (503) and the deadline (504)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading

import pytest
from fastapi import FastAPI  # module level: FastAPI reads the route's annotations here
from omegaconf import OmegaConf

from dfdetect.serve.audit import AuditLog
from dfdetect.serve.auth import TRUSTED, UNTRUSTED, ApiKeys, key_hash
from dfdetect.serve.media import UnsupportedMedia, sniff, spool
from dfdetect.serve.pins import check_pins
from dfdetect.serve.server import add_gate_routes
from dfdetect.serve.service import without_scores
from dfdetect.utils.errors import UserError

K1, K2, T1 = "k" * 20, "m" * 20, "t" * 20


def test_keys_roles_and_refusals():
    keys = ApiKeys.from_env("K", "T", environ={"K": f" {K1},{K2} ", "T": T1})
    assert [keys.role(k) for k in (K1, K2, T1)] == [UNTRUSTED, UNTRUSTED, TRUSTED]
    assert keys.role(None) is None and keys.role(K1[:-1]) is None and keys.role(K1 + "x") is None
    with pytest.raises(UserError, match="no API keys: set K"):
        ApiKeys.from_env("K", "T", environ={})
    with pytest.raises(UserError, match="at least 16"):
        ApiKeys.from_env("K", "T", environ={"K": "short"})
    open_gate = ApiKeys.from_env("K", "T", required=False, environ={"T": T1})
    assert open_gate.role(None) == UNTRUSTED and open_gate.role(T1) == TRUSTED
    assert key_hash(K1) != key_hash(K2) and K1 not in key_hash(K1) and len(key_hash(K1)) == 16


@pytest.mark.parametrize(
    "head, name",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "webm"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n", None),
        (b"ffconcat version 1.0\nfile /etc/passwd\n", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
        (b"", None),
    ],
)
def test_types_are_judged_by_content(head, name):
    found = sniff(head + bytes(40))
    assert (found.name if found else None) == name


def test_spool_keeps_the_bytes_with_the_sniffed_suffix(tmp_path):
    import hashlib
    import io

    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 5000
    upload = spool(io.BytesIO(data), tmp_path, chunk_size=1000)
    assert upload.path.suffix == ".png" and upload.path.read_bytes() == data
    assert upload.sha256 == hashlib.sha256(data).hexdigest() and upload.size == len(data)
    upload.remove()
    with pytest.raises(UnsupportedMedia):
        spool(io.BytesIO(b"#EXTM3U\nhttp://x/a.ts\n"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_pins_refuse_a_swapped_file(tmp_path):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"weights v1")
    cfg = OmegaConf.create({"ckpt_path": None, "model": {"net": {"weights": str(weights)}}})
    digest = check_pins(cfg, None)[str(weights)]
    assert check_pins(cfg, digest) == {str(weights): digest}
    weights.write_bytes(b"weights v2")
    with pytest.raises(UserError, match="does not match the pinned"):
        check_pins(cfg, digest)
    with pytest.raises(UserError, match="pins no digest"):
        check_pins(cfg, {"other.h5": digest})


def test_untrusted_answers_carry_no_score():
    record = {
        "verdict": "fake",
        "p_fake": 0.9,
        "threshold": 0.5,
        "tracks": [{"track": 0, "p_fake": 0.9, "clips": [{"boxes": [[1, 2, 3, 4]], "p_fake": 0.9}]}],
    }
    hidden = without_scores(record)
    assert "p_fake" not in json.dumps(hidden) and "threshold" not in json.dumps(hidden)
    assert hidden["tracks"][0]["clips"][0]["boxes"] == [[1, 2, 3, 4]] and hidden["verdict"] == "fake"


def test_audit_lines_stay_whole_under_concurrent_writers(tmp_path):
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path) for _ in range(2)]  # two descriptors, as two processes would hold

    def write(log, n):
        for i in range(300):
            log.write({"request_id": f"{n}-{i}", "pad": "x" * (i * 37 % 5000)})

    threads = [threading.Thread(target=write, args=(logs[n % 2], n)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 1200 and len({json.loads(line)["request_id"] for line in lines}) == 1200


def gate_app(
    tmp_path,
    max_queue: int = 4,
    timeout_s: float = 5,
    seconds: float = 0.0,
    verdict: str = "real",
    forwarder=None,
    fail_closed: bool = True,
):
    from dfdetect.serve.metrics import GateMetrics
    from dfdetect.serve.service import Gate, Limits

    async def submit(payload):
        await asyncio.sleep(seconds)
        return {
            "verdict": verdict,
            "p_fake": {"real": 0.1, "fake": 0.9}.get(verdict),
            "threshold": 0.5,
            "reason": "no_face: no face found" if verdict == "unknown" else "",
            "tracks": [],
            "timings": {},
            "_serve": {"queue_s": 0.0, "batch_size": 1, "batch_index": 0},
            **({"_crop_b64": "AAAA"} if verdict == "real" and payload["crop"] else {}),
        }

    keys = ApiKeys.from_env("K", "T", environ={"T": T1})
    gate = Gate(
        submit,
        b"s" * 32,
        keys,
        Limits(max_queue, timeout_s, fail_closed),
        AuditLog(tmp_path / "a.jsonl"),
        GateMetrics(),
        "m@0",
        forwarder=forwarder,
        upload_dir=str(tmp_path / "up"),
    )
    app = FastAPI()
    add_gate_routes(app, gate)
    return app, gate


JPEG = {"file": ("a.jpg", b"\xff\xd8\xff\xe0" + bytes(100))}


def test_a_full_gate_answers_503_and_a_late_verdict_504(tmp_path):
    from fastapi.testclient import TestClient

    app, gate = gate_app(tmp_path, max_queue=1, timeout_s=5, seconds=1.0)
    with TestClient(app) as client:
        codes = []
        threads = [
            threading.Thread(
                target=lambda: codes.append(
                    client.post("/v1/detect", files=JPEG, headers={"X-API-Key": T1}).status_code
                )
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes)[0] == 200 and 503 in codes and set(codes) <= {200, 503}
        assert gate.in_flight == 0 and gate.metrics.rejected._value.get() == codes.count(503)
    app, gate = gate_app(tmp_path, max_queue=4, timeout_s=0.2, seconds=2.0)
    with TestClient(app) as client:
        r = client.post("/v1/detect", files=JPEG, headers={"X-API-Key": T1})
        assert r.status_code == 504 and "deadline" in r.json()["detail"]
    assert list((tmp_path / "up").iterdir()) == []  # uploads never outlive their request


@pytest.mark.integration
@pytest.mark.slow  # imports torch and LitServe in a fresh process (half a minute on 2 busy cores)
def test_serve_refuses_to_start_on_a_pin_mismatch(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT, repo_env

    weights = tmp_path / "w.h5"
    weights.write_bytes(b"not the pinned weights")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "serve.py"),
            "model=meso4",
            f"model.net.weights={weights}",
            f"serve.sha256={'0' * 64}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "serve.audit_log=null",
        ],
        env={**repo_env(), "DFDETECT_API_KEYS": K1},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"serve: error: {weights}: sha256 {hashlib.sha256(weights.read_bytes()).hexdigest()} "
        f"does not match the pinned {'0' * 64}; refusing to start"
    )


class FailingProvider:
    """A forwarder whose provider is down: every call ends in a transient error."""

    provider = "naver"

    def __init__(self):
        self.calls = 0

    def redact(self, value):
        return value

    def call_price(self) -> float:
        return 0.001

    def recognize(self, face: bytes):
        from dfdetect.serve.forward import Forwarded

        self.calls += 1
        return Forwarded("naver", "error", error_code="transient:HTTP500", attempts=3, cost_usd=0.003)


@pytest.mark.parametrize("fail_closed, status", [(True, 200), (False, 502)])
def test_a_failing_provider_fails_closed_or_answers_502(tmp_path, fail_closed, status):
    from fastapi.testclient import TestClient

    provider = FailingProvider()
    app, gate = gate_app(tmp_path, forwarder=provider, fail_closed=fail_closed)
    with TestClient(app) as client:
        r = client.post("/v1/recognize", files=JPEG, headers={"X-API-Key": T1})
    assert r.status_code == status and provider.calls == 1
    if fail_closed:
        body = r.json()
        assert body["answer"] == "non-celebrity" and body["reason"] == (
            "provider failed (transient:HTTP500); fail-closed"
        )
    samples = gate.metrics.exposition().decode()
    assert 'dfdetect_provider_calls_total{provider="naver",status="error"} 3.0' in samples


@pytest.mark.parametrize("verdict", ["fake", "unknown"])
def test_what_the_gate_does_not_pass_never_reaches_the_provider(tmp_path, verdict):
    from fastapi.testclient import TestClient

    provider = FailingProvider()
    app, gate = gate_app(tmp_path, verdict=verdict, forwarder=provider)
    with TestClient(app) as client:
        body = client.post("/v1/recognize", files=JPEG, headers={"X-API-Key": T1}).json()
    assert provider.calls == 0 and body["forwarded"] is False and body["answer"] == "non-celebrity"
    assert body["reason"].startswith(f"not forwarded: {verdict}")
    why = "gate_fake" if verdict == "fake" else "gate_unknown"
    samples = gate.metrics.exposition().decode()
    assert f'dfdetect_provider_calls_avoided_total{{provider="naver",why="{why}"}} 1.0' in samples


def test_recognize_without_a_provider_is_503(tmp_path):
    from fastapi.testclient import TestClient

    app, _ = gate_app(tmp_path)
    with TestClient(app) as client:
        r = client.post("/v1/recognize", files=JPEG, headers={"X-API-Key": T1})
    assert r.status_code == 503 and "serve.recognize.provider" in r.json()["detail"]
