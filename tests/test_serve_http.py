"""The gate over HTTP, as deployed: ``serve.py`` with MesoInception4 and the authors' DF weights
(pinned by sha256) in a subprocess, Naver's API faked on loopback. Verdicts on a real and a fake
sample face, keys, size and type limits, a decompression bomb, a truncated video, forwarding only
what the gate passes, the cache, fail-closed, metrics, audit, and a planted provider key that
must appear nowhere."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from tests.attack_fakes import FakeWorld, NaverHandler, serve
from tests.serve_server import (
    FAKE_FACE,
    KEY,
    NAVER_ID,
    PLANTED,
    REAL_FACE,
    SHARED,
    TRUSTED_KEY,
    WEIGHTS,
    gate_server,
    needs_shared,
    real_weights_overrides,
    sha256_of,
)

pytestmark = [pytest.mark.integration, needs_shared]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)
SECOND_REAL = SHARED / "data" / "samples" / "celebfom" / "Will Smith_real.png"  # P(fake) 0.003
MAX_UPLOAD = 2_000_000


class EveryFace(dict):
    """The fake API knows every face it is sent as one celebrity."""

    def get(self, key, default=None):
        return ("Will Smith", 0.93)


@pytest.fixture(scope="module")
def world():
    w = FakeWorld(keys={"X-NCP-APIGW-API-KEY-ID": NAVER_ID, "X-NCP-APIGW-API-KEY": PLANTED})
    w.celebrities = EveryFace()
    return w


@pytest.fixture(scope="module")
def gate(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate")
    with serve(NaverHandler, world) as naver:
        overrides = [
            *real_weights_overrides(),
            "serve.recognize.provider=naver",
            f"providers.naver.client.url={naver}/vision/v1/celebrity",
            "providers.naver.rate_limit=0",
            f"serve.recognize.cache={tmp / 'calls.sqlite'}",
            f"serve.max_upload_bytes={MAX_UPLOAD}",
            "predict.max_image_pixels=20000000",
            "serve.max_video_frames=40",
            "serve.max_batch_size=4",
            "serve.batch_timeout=0.01",
            "serve.recognize.backoff_base_s=0.01",
        ]
        with gate_server(tmp, *overrides) as g:
            g.responses = []  # every body the gate answered, for the planted-key check
            g.tmp = tmp
            yield g


def answered(gate, response: requests.Response) -> requests.Response:
    gate.responses.append(response.text)
    return response


def calls(world) -> int:
    """Requests that reached the fake API (refused ones included)."""
    return len(world.headers_seen)


def test_detect_real_and_fake_sample_faces(gate):
    real = answered(gate, gate.post("detect", REAL_FACE)).json()
    fake = answered(gate, gate.post("detect", FAKE_FACE)).json()
    assert (real["verdict"], fake["verdict"]) == ("real", "fake")
    assert real["p_fake"] < 0.05 < 0.95 < fake["p_fake"]
    assert real["threshold"] == fake["threshold"] == 0.5
    assert real["model"].startswith("mesoinception4+MesoInception_DF@")
    box = real["tracks"][0]["clips"][0]["boxes"][0]
    assert len(box) == 4 and box[0] < box[2] and box[1] < box[3]
    assert set(real["timings"]) == {"upload", "queue", "prepare", "score"} and real["reason"] == ""
    assert len(real["request_id"]) == 32 and "path" not in real


def test_untrusted_keys_see_the_verdict_only(gate):
    r = answered(gate, gate.post("detect", FAKE_FACE, key=KEY))
    assert r.status_code == 200 and r.json()["verdict"] == "fake"
    assert "p_fake" not in r.text and "threshold" not in r.text


def test_keys_are_required(gate):
    assert gate.post("detect", REAL_FACE, key=None).status_code == 401
    assert gate.post("detect", REAL_FACE, key=TRUSTED_KEY[:-1] + "x").status_code == 401
    assert gate.get("/info", key=None).status_code == 401
    assert gate.get("/health", key=None).status_code == 200


def test_too_large_is_413_counted_on_the_stream(gate):
    big = b"\xff\xd8\xff\xe0" + bytes(MAX_UPLOAD)
    assert answered(gate, gate.post("detect", data=big)).status_code == 413

    def chunks():  # no Content-Length: only counting the stream can stop it
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8\xff'
        for _ in range(MAX_UPLOAD // 65536 + 2):
            yield bytes(65536)
        yield b"\r\n--b--\r\n"

    r = requests.post(
        f"{gate.url}/v1/detect",
        data=chunks(),
        timeout=60,
        headers={"X-API-Key": TRUSTED_KEY, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413


def test_unknown_types_are_415_by_content(gate):
    assert gate.post("detect", data=b"just some text, not a face", filename="face.jpg").status_code == 415
    playlist = b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/secret.ts\n#EXT-X-ENDLIST\n"
    r = answered(gate, gate.post("detect", data=playlist, filename="clip.mp4"))
    assert r.status_code == 415 and "not an allowed" in r.json()["detail"]


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image with a few bytes of pixel data: decoding it would take
    width * height * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(1 + 3 * width) * 8)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(gate):
    r = answered(gate, gate.post("detect", data=png_bomb(60000, 60000), filename="bomb.png"))
    body = r.json()
    assert r.status_code == 200 and body["verdict"] == "unknown" and body["p_fake"] is None
    assert body["reason"].startswith("too_large")
    assert gate.get("/health").status_code == 200


def video(path: Path, frames: int = 30) -> bytes:
    import cv2

    frame = cv2.resize(cv2.imread(str(REAL_FACE)), (256, 256))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (256, 256))
    for i in range(frames):
        writer.write(np.roll(frame, i, axis=1))
    writer.release()
    data = path.read_bytes()
    assert len(data) > 10_000
    return data


def test_truncated_video_gets_unknown_not_a_crash(gate, tmp_path):
    data = video(tmp_path / "v.mp4")
    r = answered(gate, gate.post("detect", data=data[: len(data) // 3], filename="v.mp4"))
    body = r.json()
    assert r.status_code == 200 and body["kind"] == "video" and body["verdict"] == "unknown"
    assert body["reason"].split(":")[0] in ("decode_error", "too_short")
    assert gate.post("detect", REAL_FACE).json()["verdict"] == "real"  # the worker lives on
    longer = video(tmp_path / "long.mp4", frames=50)  # the cap is 40 frames
    refused = answered(gate, gate.post("detect", data=longer, filename="long.mp4")).json()
    assert refused["verdict"] == "unknown" and refused["reason"].startswith("too_large: 50 frames")


def test_a_short_video_gets_a_verdict_with_its_clips(gate, tmp_path):
    body = answered(gate, gate.post("detect", data=video(tmp_path / "v.mp4"), filename="clip.mp4")).json()
    assert body["kind"] == "video" and body["verdict"] in ("real", "fake") and body["n_clips"] >= 2
    clips = body["tracks"][0]["clips"]
    assert all(len(c["frame_indices"]) == len(c["boxes"]) == 5 and 0 <= c["p_fake"] <= 1 for c in clips)
    assert max(i for c in clips for i in c["frame_indices"]) < 30


def test_recognize_forwards_only_what_the_gate_passes(gate, world, tmp_path):
    # a face no other test sends (re-encoded: other bytes, another crop), so the answer cache is cold
    # whatever ran before in this module
    real = tmp_path / "real_q92.jpg"
    cv2.imwrite(str(real), cv2.imread(str(REAL_FACE)), [cv2.IMWRITE_JPEG_QUALITY, 92])
    before = calls(world)
    passed = answered(gate, gate.post("recognize", real)).json()
    assert calls(world) == before + 1
    assert passed["gate"]["verdict"] == "real" and passed["forwarded"] is True
    assert (passed["answer"], passed["name"], passed["provider"]) == ("celebrity", "Will Smith", "naver")

    blocked = answered(gate, gate.post("recognize", FAKE_FACE)).json()
    assert calls(world) == before + 1
    assert blocked["answer"] == "non-celebrity" and blocked["forwarded"] is False
    assert blocked["reason"].startswith("not forwarded: fake")

    again = answered(gate, gate.post("recognize", real)).json()  # the cache answers
    assert calls(world) == before + 1
    assert again["provider_answer"]["cached"] is True and again["name"] == "Will Smith"


def test_provider_failure_fails_closed_and_the_key_leaks_nowhere(gate, world):
    world.keys["X-NCP-APIGW-API-KEY"] = "what-naver-expects"  # our secret is refused ...
    world.echo_key = True  # ... and echoed back in the error message
    try:
        before = calls(world)
        r = answered(gate, gate.post("recognize", SECOND_REAL))
        assert calls(world) == before + 1
    finally:
        world.keys["X-NCP-APIGW-API-KEY"], world.echo_key = PLANTED, False
    body = r.json()
    assert r.status_code == 200 and body["gate"]["verdict"] == "real"
    assert body["answer"] == "non-celebrity" and "fail-closed" in body["reason"]
    assert body["provider_answer"]["error_code"] == "auth_failed"
    metrics = gate.get("/metrics").text
    info = gate.get("/info").text
    written = [gate.log_text(), gate.audit.read_text(), metrics, info, *gate.responses]
    written += [p.read_bytes().decode("latin-1") for p in gate.tmp.rglob("*") if p.is_file()]
    assert not [w[:200] for w in written if PLANTED in w]
    assert "Authentication failed ***" in gate.log_text()  # the echo was there, scrubbed


def metric_samples(gate) -> dict[str, float]:
    samples = {}
    for line in gate.get("/metrics", key=None).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_stages_and_provider_calls(gate, tmp_path):
    # what it counts, sent here, counted as the change from before: the test passes alone and in any
    # order; its real face is one no other test sends, so the provider's answer cache starts cold
    real = tmp_path / "real_q93.jpg"
    cv2.imwrite(str(real), cv2.imread(str(REAL_FACE)), [cv2.IMWRITE_JPEG_QUALITY, 93])
    before = metric_samples(gate)
    assert gate.post("detect", real).json()["verdict"] == "real"
    assert [gate.post("detect", data=b"not a face, just text").status_code for _ in range(2)] == [415, 415]
    for face in (FAKE_FACE, FAKE_FACE, real, real):  # the second real face: from the cache
        assert gate.post("recognize", face).status_code == 200
    samples = metric_samples(gate)

    def grew(name: str) -> float:
        return samples.get(name, 0.0) - before.get(name, 0.0)

    assert grew('dfdetect_requests_total{endpoint="detect",outcome="real",reason="none"}') == 1
    assert grew('dfdetect_requests_total{endpoint="detect",outcome="error",reason="http_415"}') == 2
    assert grew('dfdetect_provider_calls_total{provider="naver",status="ok"}') == 1
    assert grew('dfdetect_provider_calls_avoided_total{provider="naver",why="gate_fake"}') == 2
    assert grew('dfdetect_provider_calls_avoided_total{provider="naver",why="cache"}') == 1
    assert grew('dfdetect_provider_cost_usd_total{provider="naver"}') == pytest.approx(0.001)
    assert grew('dfdetect_provider_cost_avoided_usd_total{provider="naver"}') >= 0.003 - 1e-9
    bands = sum(v for n, v in samples.items() if n.startswith("dfdetect_p_fake_band_total"))
    bands_before = sum(v for n, v in before.items() if n.startswith("dfdetect_p_fake_band_total"))
    assert bands - bands_before >= 3 and samples["dfdetect_batch_size_count"] >= 1
    assert not [n for n in samples if n.startswith("dfdetect_p_fake") and n.endswith("_sum")]
    assert grew('dfdetect_stage_seconds_count{stage="prepare"}') >= 3
    assert grew('dfdetect_stage_seconds_count{stage="queue"}') >= 3


def test_audit_log_has_one_whole_line_per_request(gate):
    assert gate.post("detect", REAL_FACE).status_code == 200
    assert gate.post("recognize", REAL_FACE).status_code == 200  # forwarded, or answered by the cache
    for _ in range(8):
        assert gate.post("detect", data=b"not a face, just text").status_code == 415
    lines = gate.audit.read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") for line in lines) and len(records) >= 10
    assert len({r["request_id"] for r in records}) == len(records)
    real = next(
        r for r in records if r.get("media_sha256") == sha256_of(REAL_FACE) and r["endpoint"] == "detect"
    )
    assert real["verdict"] == "real" and real["status"] == 200 and real["p_fake"] < 0.05
    assert real["key"] == hashlib.sha256(b"dfdetect-api-key:" + TRUSTED_KEY.encode()).hexdigest()[:16]
    forwarded = [r for r in records if r["endpoint"] == "recognize" and r.get("forwarded")]
    assert forwarded and all(r["provider"] == "naver" and r["provider_status"] for r in forwarded)
    assert TRUSTED_KEY not in gate.audit.read_text() and KEY not in gate.audit.read_text()


def test_info_names_the_model_its_hash_and_versions(gate):
    info = gate.get("/info").json()
    assert info["model"]["name"].startswith("mesoinception4")
    assert info["files"] == {str(WEIGHTS): sha256_of(WEIGHTS)}
    assert info["threshold"] == 0.5 and info["serve"]["provider"] == "naver"
    assert info["versions"]["litserve"] and info["versions"]["torch"]
    page = gate.get("/", key=None)
    assert page.status_code == 200 and "<form" in page.text and "mesoinception4" in page.text


@needs_browser
def test_page_uploads_a_face_and_shows_the_verdict_in_chromium(gate, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1000,1400",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        browser.get(gate.url + "/")
        browser.find_element(By.ID, "key").send_keys(TRUSTED_KEY)
        browser.find_element(By.ID, "file").send_keys(str(FAKE_FACE))
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 60).until(ec.text_to_be_present_in_element((By.ID, "status"), "HTTP 200"))
        verdict = browser.find_element(By.ID, "verdict")
        assert verdict.text.startswith("fake (P(fake) ") and verdict.get_attribute("class") == "fake"
        assert float(verdict.text.split()[2].rstrip(",")) > 0.95
        canvas = browser.find_element(By.ID, "canvas")
        WebDriverWait(browser, 10).until(lambda _: int(canvas.get_attribute("width")) > 0)
        assert "P(fake)" in browser.find_element(By.ID, "clips").text
        browser.find_element(By.CSS_SELECTOR, "input[value=recognize]").click()
        browser.find_element(By.ID, "file").send_keys(str(REAL_FACE))
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 60).until(
            ec.text_to_be_present_in_element((By.ID, "recognition"), "Will Smith")
        )
        assert browser.find_element(By.ID, "verdict").get_attribute("class") == "real"
        assert browser.find_element(By.ID, "recognition").text.startswith("naver answered: celebrity")
        browser.find_element(By.CSS_SELECTOR, "input[value=detect]").click()
        browser.find_element(By.ID, "key").clear()
        browser.find_element(By.ID, "key").send_keys("not-a-key-0123456789")  # an error answer ...
        browser.find_element(By.ID, "file").send_keys(str(FAKE_FACE))
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 60).until(ec.text_to_be_present_in_element((By.ID, "status"), "HTTP 401"))
        assert int(canvas.get_attribute("width")) == 0  # ... shows no boxes of the previous image
        assert browser.find_element(By.ID, "clips").text == ""
        shot = tmp_path / "gate_page.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"\nscreenshot: {shot}")
    finally:
        browser.quit()
