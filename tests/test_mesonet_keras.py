"""The MesoNet authors' Keras weights in our Meso4 / MesoInception4."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hydra
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from dfdetect.models.nets import create_net
from dfdetect.models.nets.mesonet import Meso4, MesoInception4
from dfdetect.models.weights.keras_h5 import layer_kind_and_index, load_mesonet_keras
from dfdetect.run.evaluate import evaluate
from tests.conftest import compose_config, tiny_data_overrides

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "weights" / "mesonet"
SAMPLES = SHARED / "data" / "samples" / "mesonet"
needs_shared = pytest.mark.skipif(
    not WEIGHTS.is_dir() or not SAMPLES.is_dir(),
    reason=f"MesoNet weights/samples not found under {SHARED} (../shared is absent)",
)
FILES = {
    "Meso4_DF": Meso4,
    "Meso4_F2F": Meso4,
    "MesoInception_DF": MesoInception4,
    "MesoInception_F2F": MesoInception4,
}


def read_rgb_256(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (256, 256))


def p_fake(net: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    clips = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).unsqueeze(1)
    with torch.no_grad():
        return torch.sigmoid(net.eval()(clips)).numpy()


def test_layer_suffixes_sort_numerically():
    names = ["conv2d_10", "conv2d_9", "conv2d", "batch_normalization_2", "conv2d_11"]
    ordered = sorted((n for n in names if layer_kind_and_index(n)[0] == "conv2d"), key=layer_kind_and_index)
    assert ordered == ["conv2d", "conv2d_9", "conv2d_10", "conv2d_11"]
    assert layer_kind_and_index("batch_normalization_12") == ("batch_normalization", 12)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        create_net("meso4", weights=str(tmp_path / "nope.h5"))


def test_non_keras_file_is_named(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="plain.h5"):
        create_net("meso4", weights=str(path))


@needs_shared
@pytest.mark.parametrize("name, weights", [("meso4", "Meso4_DF"), ("mesoinception4", "MesoInception_DF")])
def test_deepfake_weights_separate_the_authors_samples(name, weights):
    net = create_net(name, weights=str(WEIGHTS / f"{weights}.h5"))
    fakes = sorted((SAMPLES / "df").glob("*.jpg"))
    reals = sorted((SAMPLES / "real").glob("*.jpg"))
    assert len(fakes) == 2 and len(reals) == 2
    assert (p_fake(net, np.stack([read_rgb_256(p) for p in fakes])) > 0.9).all()
    assert (p_fake(net, np.stack([read_rgb_256(p) for p in reals])) < 0.1).all()


@needs_shared
@pytest.mark.parametrize("stem", FILES)
def test_every_tensor_of_the_file_is_loaded_exactly_once(stem):
    path = WEIGHTS / f"{stem}.h5"
    in_file = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, obj: in_file.append(key) if isinstance(obj, h5py.Dataset) else None)
    consumed = load_mesonet_keras(FILES[stem](), path)
    assert len(consumed) == len(set(consumed)) == len(in_file)
    # the file stores <layer>/<layer>/<weight>:0; the loader names them <layer>/<weight>
    assert sorted(consumed) == sorted(k.split("/")[0] + "/" + k.split("/")[-1].split(":")[0] for k in in_file)


@needs_shared
@pytest.mark.parametrize(
    "make, stem, match",
    [
        (MesoInception4, "Meso4_DF", "conv2d layers"),
        (Meso4, "MesoInception_DF", "conv2d layers"),
        (lambda: Meso4(input_size=128), "Meso4_DF", "input size"),
    ],
)
def test_wrong_architecture_is_refused_naming_the_file(make, stem, match):
    net = make()
    with pytest.raises(ValueError, match=match) as err:
        load_mesonet_keras(net, WEIGHTS / f"{stem}.h5")
    assert f"{stem}.h5" in str(err.value)


# --- an independent reference: Meso4's Keras forward pass in numpy, straight from the h5 arrays (NHWC)


def tf_same_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    kh, kw = kernel.shape[:2]
    x = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H, W, C, kh, kw
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True) + bias


def tf_same_max_pool(x: np.ndarray, k: int) -> np.ndarray:
    n, h, w, c = x.shape
    pad_h, pad_w = -(-h // k) * k - h, -(-w // k) * k - w
    x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
               constant_values=-np.inf)  # fmt: skip
    return x.reshape(n, x.shape[1] // k, k, x.shape[2] // k, k, c).max(axis=(2, 4))


def keras_meso4_real_logit(path: Path, x: np.ndarray) -> np.ndarray:
    """The logit under the Keras model's final sigmoid, i.e. of P(real)."""
    with h5py.File(path, "r") as f:

        def layer(name):
            return {k.split(":")[0]: f[name][name][k][()].astype(np.float64) for k in f[name][name]}

        names = [n.decode() for n in f.attrs["layer_names"]]
        convs = [layer(n) for n in names if n.startswith("conv2d")]
        bns = [layer(n) for n in names if n.startswith("batch_normalization")]
        dense1, dense2 = (layer(n) for n in names if n.startswith("dense"))
    for conv, bn, pool in zip(convs, bns, (2, 2, 2, 4), strict=True):
        x = np.maximum(tf_same_conv(x, conv["kernel"], conv["bias"]), 0.0)
        x = (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
        x = tf_same_max_pool(x, pool)
    h = x.reshape(len(x), -1) @ dense1["kernel"] + dense1["bias"]
    h = np.where(h > 0, h, 0.1 * h)
    return (h @ dense2["kernel"] + dense2["bias"])[:, 0]


@needs_shared
@pytest.mark.parametrize("stem", ["Meso4_DF", "Meso4_F2F"])
def test_meso4_matches_a_numpy_keras_forward_on_random_input(stem):
    path = WEIGHTS / f"{stem}.h5"
    images = np.random.default_rng(0).random((3, 256, 256, 3))
    real_logit = keras_meso4_real_logit(path, images)
    net = create_net("meso4", weights=str(path)).eval()
    clips = torch.from_numpy(images).permute(0, 3, 1, 2).float().unsqueeze(1)
    with torch.no_grad():
        fake_logit = net(clips).double().numpy()
    assert np.allclose(fake_logit, -real_logit, rtol=1e-4, atol=1e-4)
    assert np.ptp(real_logit) > 0.1  # the random inputs get different scores, so the check has teeth


@needs_shared
def test_model_config_loads_the_weights_named_by_its_weights_key(train_cfg):
    cfg = train_cfg(
        "model=mesoinception4",
        f"model.net.weights={WEIGHTS / 'MesoInception_DF.h5'}",
        "data.net_input_size=256",
    )
    module = hydra.utils.instantiate(cfg.model).eval()
    images = np.stack([read_rgb_256(p) for p in sorted(SAMPLES.glob("*/*.jpg"))])  # df, df, real, real
    clips = torch.from_numpy(images).permute(0, 3, 1, 2).unsqueeze(1).contiguous()
    with torch.no_grad():
        probs = torch.sigmoid(module(clips)).numpy()
    assert (probs[:2] > 0.9).all() and (probs[2:] < 0.1).all()


@needs_shared
def test_evaluate_scores_published_weights_without_a_checkpoint(tmp_path, demo_root):
    weights = WEIGHTS / "MesoInception_DF.h5"
    overrides = [
        *tiny_data_overrides(demo_root),
        "data.net_input_size=256",
        "model=mesoinception4",
        f"model.net.weights={weights}",
    ]
    metrics, out = evaluate(compose_config("eval.yaml", overrides, tmp_path))
    reference = MesoInception4()
    load_mesonet_keras(reference, weights)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(out["model"].net.state_dict()[name], tensor, msg=name)
    assert 0.0 <= metrics["test/auc"] <= 1.0
    assert (out["run_dir"] / "predictions.parquet").exists()


def test_evaluate_without_checkpoint_model_or_ensemble_fails_clearly(tmp_path, demo_root):
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(compose_config("eval.yaml", tiny_data_overrides(demo_root), tmp_path))
