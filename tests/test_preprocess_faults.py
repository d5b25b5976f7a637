"""Issue 20, items 4 and 6, as a new user met them, now fixed: the settings-mismatch error names
what differs and advises overrides that work; a missing raw folder is one line, no traceback; a
20000x20000 PNG (a decompression bomb at larger sizes) and oversized video frames are skipped
before anything is decoded, with a configurable cap (``max_image_pixels``)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import pandas as pd
import pytest

from dfdetect.measure.crop import FaceCropper
from dfdetect.preprocess import pipeline
from dfdetect.preprocess.media import MediaTooLarge, read_still
from dfdetect.preprocess.pipeline import SKIPPED, VideoClipper, clip_still
from dfdetect.preprocess.settings import ClipSettings, settings_differences
from dfdetect.preprocess.store import StoreSettingsError
from dfdetect.utils.errors import UserError
from tests.conftest import ROOT
from tests.preprocess_fakes import BlobDetector, write_image, write_video
from tests.test_preprocess_store import SCRIPT_ENV, good_tree, preprocess_cmd, run, status_of


def write_png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid 1-bit grayscale PNG of constant rows, written row by row without ever holding the
    image (nor decoding it): 400 M pixels in about 50 KB. Decoded it would take 1.2 GB as BGR."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    packer = zlib.compressobj(9)
    row = b"\0" + b"\xff" * ((width + 7) // 8)  # filter byte, then white pixels
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def preprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=ROOT, env=SCRIPT_ENV, capture_output=True, text=True)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a user-mendable error leaves on stderr (and nothing like a traceback)."""
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("preprocess: error: "), lines
    return lines[0]


# -- item 4: settings changed on an existing store -------------------------------------------


@pytest.mark.integration
def test_changed_settings_name_each_difference_and_the_advised_overrides_work(tmp_path):
    raw, store = good_tree(tmp_path / "raw", videos=2), tmp_path / "store"
    first = preprocess(*preprocess_cmd(raw, store, "workers=0"))
    assert first.returncode == 0, first.stderr[-2000:]

    changed = ("workers=0", "face.margin=0.4", "detector.min_prob=0.8")
    line = error_line(preprocess(*preprocess_cmd(raw, store, *changed)))
    assert f"{store} was made with other preprocessing settings" in line
    assert "face.margin: store 0.3, now 0.4" in line
    assert "detector.min_prob: store 0.9, now 0.8" in line
    assert "jpeg_quality" not in line and "clips_per_video" not in line  # what differs, not everything
    assert "data.store=<new folder>" in line and "overwrite=true" in line
    assert "preprocess.overwrite" not in line  # the advice Hydra rejected

    # each advised override works as written
    fresh = preprocess(*preprocess_cmd(raw, store, *changed, "overwrite=true"))
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert "this run processed 2, 0 were already done" in fresh.stdout
    elsewhere = preprocess(*preprocess_cmd(raw, tmp_path / "new", *changed))
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    assert "this run processed 2" in elsewhere.stdout


def test_settings_mismatch_names_sampling_and_detector_keys(tmp_path):
    raw, store = good_tree(tmp_path / "raw", videos=1), tmp_path / "store"
    run(raw, store)
    with pytest.raises(StoreSettingsError) as caught:
        run(raw, store, settings=ClipSettings(clips_per_video=2, size=48))
    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert "data.sampling.clips_per_video: store 3, now 2" in message
    assert "face.size" not in message and "\n" not in message

    stored = {"clips": {"margin": 0.3, "align": True}, "detector": {"thresholds": [0.6, 0.7, 0.7]}}
    now = {
        "clips": {"margin": 0.3, "align": False, "top_up": True},
        "detector": {"thresholds": [0.6, 0.7, 0.8]},
    }
    assert settings_differences(stored, now) == [
        "face.align: store true, now false",
        "face.top_up: store (not set), now true",
        "detector.thresholds: store [0.6, 0.7, 0.7], now [0.6, 0.7, 0.8]",
    ]


# -- item 6: missing raw folder, oversized media ---------------------------------------------


@pytest.mark.integration
def test_a_missing_or_unusable_raw_dir_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "no_such_folder"
    line = error_line(preprocess(*preprocess_cmd(missing, tmp_path / "store")))
    assert f"data.raw_dir: {missing} does not exist" in line and "data.raw_dir=<folder>" in line
    (tmp_path / "empty").mkdir()
    assert "no real/ or fake/" in error_line(
        preprocess(*preprocess_cmd(tmp_path / "empty", tmp_path / "store"))
    )
    unset = [a for a in preprocess_cmd(missing, tmp_path / "store") if not a.startswith("data.raw_dir=")]
    assert "data.raw_dir is not set" in error_line(preprocess(*unset))
    assert not (tmp_path / "store").exists()


@pytest.mark.integration
def test_a_20000x20000_png_is_skipped_unread_and_the_run_goes_on(tmp_path):
    raw, store = good_tree(tmp_path / "raw", videos=1), tmp_path / "store"
    write_png_bomb(raw / "fake/bomb.png")
    result = preprocess(*preprocess_cmd(raw, store, "workers=1"))
    assert result.returncode == 0, result.stderr[-2000:]
    status = pd.read_parquet(store / "status.parquet").set_index("video_id")
    bomb = status.loc["fake/bomb"]
    assert bomb["status"] == "skipped"
    assert (
        bomb["reason"] == "too large: 20000x20000 pixels (400 MP), over the cap of 100 MP (max_image_pixels)"
    )
    assert (bomb["width"], bomb["height"], bomb["clips"]) == (20_000, 20_000, 0)
    assert status.loc["real/v0", "status"] == "ok"
    assert "ok 1  skipped 1  failed 0" in result.stdout and "bomb.png: too large" in result.stdout


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoding of a still or of video frames fails the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    monkeypatch.setattr(pipeline, "iter_frames", refuse)
    monkeypatch.setattr(pipeline, "count_frames", refuse)


@pytest.mark.integration
def test_the_cap_is_checked_on_headers_before_decoding(tmp_path, no_decoding):
    bomb = write_png_bomb(tmp_path / "bomb.png")
    with pytest.raises(MediaTooLarge, match="20000x20000"):
        read_still(bomb)
    detector, settings = BlobDetector(), ClipSettings(size=48)
    result = clip_still(bomb, detector, settings, tmp_path, "")
    assert result.status == SKIPPED and result.reason.startswith("too large") and detector.calls == 0
    # the attack's face crops go through clip_still: the same cap protects them
    crop, why = FaceCropper(detector, settings, tmp_path / "crops").crop(bomb, "0" * 64)
    assert crop is None and why.startswith("too large: 20000x20000")

    video = write_video(tmp_path / "v.avi", n_frames=10, size=(96, 64))
    result = VideoClipper(detector, settings, tmp_path, "", max_pixels=96 * 64 - 1).run(video)
    assert result.status == SKIPPED and result.reason.startswith("too large: 96x64 pixels per frame")
    assert result.stats["pixels"] == 96 * 64 and detector.calls == 0


@pytest.mark.integration
def test_max_image_pixels_is_configurable_and_raising_it_redoes_what_it_skipped(tmp_path):
    raw, store = tmp_path / "raw", tmp_path / "store"
    write_video(raw / "real/small.avi", n_frames=20, size=(96, 64))  # 6,144 pixels per frame
    write_video(raw / "fake/large.avi", n_frames=20, size=(128, 96))  # 12,288
    write_image(raw / "fake/still.png", size=(96, 80))  # 7,680
    capped = preprocess(*preprocess_cmd(raw, store, "workers=0", "max_image_pixels=7000"))
    assert capped.returncode == 0, capped.stderr[-2000:]
    status = status_of(store)
    assert status["real/small"][0] == "ok"
    assert status["fake/large"] == (
        "skipped",
        "too large: 128x96 pixels per frame (0.0123 MP), over the cap of 0.007 MP (max_image_pixels)",
    )
    assert status["fake/still"][0] == "skipped" and status["fake/still"][1].startswith("too large: 96x80")

    lifted = preprocess(*preprocess_cmd(raw, store, "workers=0"))  # the default cap, 100 MP
    assert lifted.returncode == 0, lifted.stderr[-2000:]
    assert "this run processed 2, 1 were already done" in lifted.stdout
    assert {s for s, _ in status_of(store).values()} == {"ok"}
