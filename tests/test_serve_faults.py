"""The gate against hostile clients (issue #27): ``/metrics`` is no score oracle, untrusted keys see
neither server paths nor the threshold, and slow uploads neither hold a slot past
``serve.upload_timeout_s`` nor lock other clients out (``serve.max_per_key``)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.serve_server import KEY, REAL_FACE, TRUSTED_KEY, gate_server, needs_shared

pytestmark = [needs_shared, pytest.mark.integration]
UPLOAD_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate_faults")
    overrides = [
        "model=meso4",  # untrained: any P(fake) will do, and it starts fast
        "serve.max_queue=4",
        "serve.max_per_key=2",
        f"serve.upload_timeout_s={UPLOAD_TIMEOUT_S}",
        "serve.max_batch_size=1",
    ]
    with gate_server(tmp, *overrides) as g:
        yield g


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_reveal_no_untrusted_score(gate):
    trusted = gate.post("detect", REAL_FACE).json()
    p_fake = trusted["p_fake"]
    assert p_fake is not None
    before = samples(gate.get("/metrics", key=None).text)
    r = gate.post("detect", REAL_FACE, key=KEY)
    assert r.status_code == 200 and "p_fake" not in r.json()
    after = samples(gate.get("/metrics", key=None).text)
    changed = {n: after[n] - before.get(n, 0.0) for n in after if after[n] != before.get(n, 0.0)}
    assert changed, "the request was not counted at all"
    # timings move by fractions of a second; every other figure is a count
    scores = {n: d for n, d in changed.items() if "_seconds" not in n and d != int(d)}
    assert not scores, f"metrics moved by a non-count: {scores}"
    assert not [n for n in changed if "p_fake" in n], changed
    assert not any(abs(d - p_fake) < 1e-6 for d in changed.values())
    assert not [n for n in after if n.startswith("dfdetect_p_fake") and "_sum" in n]


def test_trusted_scores_are_counted_in_coarse_bands_only(gate):
    body = gate.post("detect", REAL_FACE).json()
    text = gate.get("/metrics", key=None).text
    bands = {n: v for n, v in samples(text).items() if n.startswith("dfdetect_p_fake_band_total")}
    assert bands and sum(bands.values()) >= 1
    labels = {n.split('band="')[1].split('"')[0] for n in bands}
    assert labels <= {"0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"}
    assert body["p_fake"] is not None


def test_untrusted_keys_see_no_server_paths_and_no_threshold(gate):
    broken = b"\xff\xd8\xff\xe0" + bytes(64)  # typed as JPEG by its bytes, undecodable
    for key in (KEY, TRUSTED_KEY):
        r = gate.post("detect", data=broken, filename="x.jpg", key=key)
        body = r.json()
        assert r.status_code == 200 and body["verdict"] == "unknown", body
        assert body["reason"].startswith("decode_error")
        assert "/" not in body["reason"] and "dfdetect-serve" not in r.text and "upload-" not in r.text
    untrusted = gate.get("/info", key=KEY).json()
    assert "threshold" not in untrusted and "temperature" not in untrusted
    assert untrusted["model"]["name"].startswith("meso4")
    assert gate.get("/info", key=TRUSTED_KEY).json()["threshold"] == 0.5


def _slow_upload(gate, key: str) -> socket.socket:
    """A multipart upload that announces 10 kB and sends its first bytes only."""
    host, port = gate.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    body_start = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8'
    s.sendall(
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode() + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000\r\n\r\n" + body_start
    )
    return s


def _status(s: socket.socket) -> int:
    data = s.recv(4096)
    return int(data.split(b" ", 2)[1]) if data else 0


def test_slow_uploads_neither_hold_a_slot_nor_lock_others_out(gate):
    slow = [_slow_upload(gate, KEY) for _ in range(2)]
    try:
        time.sleep(0.5)
        assert gate.post("detect", REAL_FACE, key=KEY).status_code == 429  # that key's share is taken
        t0 = time.monotonic()
        assert gate.post("detect", REAL_FACE).status_code == 200  # another key is served meanwhile
        assert [_status(s) for s in slow] == [408, 408]
        assert time.monotonic() - t0 < UPLOAD_TIMEOUT_S + 20
        assert gate.post("detect", REAL_FACE, key=KEY).status_code == 200  # its slots are free again
    finally:
        for s in slow:
            s.close()
    text = gate.get("/metrics", key=None).text
    assert samples(text)['dfdetect_requests_total{endpoint="detect",outcome="error",reason="http_408"}'] >= 2
