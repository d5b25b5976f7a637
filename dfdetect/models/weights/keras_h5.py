"""Weights written by Keras' ``Model.save_weights`` (HDF5), and their mapping onto our MesoNets.

The file holds one group per layer, ``<layer>/<layer>/<weight>:0``, and the attribute
``layer_names``. Keras names a layer ``<kind>_<n>`` with one counter per kind that keeps counting
across models built in the same session, so ``n`` may start anywhere; sorted numerically it gives
the creation order, which is the order our modules are built in.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

_LAYER_NAME = re.compile(r"^(?P<kind>.*?)(?:_(?P<index>\d+))?$")


def layer_kind_and_index(name: str) -> tuple[str, int]:
    """``"conv2d_12"`` -> ``("conv2d", 12)``; an unnumbered first layer (``"conv2d"``) is 0."""
    match = _LAYER_NAME.match(name)
    return match["kind"], int(match["index"] or 0)


class KerasWeights:
    """The arrays of a Keras weight file, handed out once each so that nothing is loaded twice or left."""

    def __init__(self, path: str | Path, layers: dict[str, dict[str, np.ndarray]]):
        self.path = Path(path)
        self.layers = layers
        self.consumed: list[str] = []

    @classmethod
    def read(cls, path: str | Path) -> KerasWeights:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Keras weight file not found: {path}")
        import h5py  # only needed here; importing dfdetect.models must not require it

        try:
            with h5py.File(path, "r") as f:
                root = f["model_weights"] if "model_weights" in f else f  # a full `model.save` file
                if "layer_names" not in root.attrs:
                    raise ValueError(f"{path} is not a Keras weight file (no 'layer_names' attribute)")
                layers = {}
                for raw in root.attrs["layer_names"]:
                    name = raw.decode() if isinstance(raw, bytes) else str(raw)
                    group = root[name]
                    weights = {}
                    for raw_weight in group.attrs.get("weight_names", []):
                        weight = raw_weight.decode() if isinstance(raw_weight, bytes) else str(raw_weight)
                        short = weight.rsplit("/", 1)[-1].split(":")[0]
                        weights[short] = np.asarray(group[weight], dtype=np.float32)
                    if weights:
                        layers[name] = weights
        except OSError as err:
            raise ValueError(f"cannot read {path} as HDF5: {err}") from err
        return cls(path, layers)

    def keys(self) -> list[str]:
        return [f"{layer}/{weight}" for layer, weights in self.layers.items() for weight in weights]

    def layers_of(self, kind: str) -> list[str]:
        """Names of the layers of one kind (``"conv2d"``, ``"dense"``...), in creation order."""
        names = [n for n in self.layers if layer_kind_and_index(n)[0] == kind]
        return sorted(names, key=lambda n: layer_kind_and_index(n)[1])

    def take(self, layer: str, weight: str) -> np.ndarray:
        key = f"{layer}/{weight}"
        if key in self.consumed:
            raise ValueError(f"{self.path}: {key} would be loaded twice")
        if weight not in self.layers.get(layer, {}):
            raise ValueError(f"{self.path}: no weight {key}")
        self.consumed.append(key)
        return self.layers[layer][weight]

    def check_all_consumed(self) -> None:
        left = [k for k in self.keys() if k not in self.consumed]
        if left:
            raise ValueError(f"{self.path}: weights not used by the model: {', '.join(left)}")


def copy_into(target: torch.Tensor, array: np.ndarray, what: str, source: Path) -> None:
    if tuple(target.shape) != array.shape:
        raise ValueError(
            f"{source}: {what} has shape {array.shape}, the model expects {tuple(target.shape)} "
            "(wrong architecture or input size?)"
        )
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def _expect_count(weights: KerasWeights, kind: str, ours: list[nn.Module], net: nn.Module) -> list[str]:
    names = weights.layers_of(kind)
    if len(names) != len(ours):
        raise ValueError(
            f"{weights.path} holds {len(names)} {kind} layers, {type(net).__name__} has {len(ours)} "
            "(wrong architecture?)"
        )
    return names


def load_mesonet_keras(net: nn.Module, path: str | Path) -> list[str]:
    """Load the MesoNet authors' Keras weights into our Meso4 / MesoInception4; return the keys used.

    Kernels go HWIO -> OIHW; the first dense layer reads features Keras flattened in (H, W, C)
    order, ours are (C, H, W); the last dense layer is negated because the Keras sigmoid is
    P(real) and our logit is of P(fake).
    """
    weights = KerasWeights.read(path)
    src = weights.path
    convs = [m for m in net.features.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in net.features.modules() if isinstance(m, nn.BatchNorm2d)]
    denses = [m for m in net.head.modules() if isinstance(m, nn.Linear)]
    conv_names = _expect_count(weights, "conv2d", convs, net)
    bn_names = _expect_count(weights, "batch_normalization", bns, net)
    dense_names = _expect_count(weights, "dense", denses, net)

    for conv, name in zip(convs, conv_names, strict=True):
        copy_into(conv.weight, weights.take(name, "kernel").transpose(3, 2, 0, 1), f"{name} kernel", src)
        copy_into(conv.bias, weights.take(name, "bias"), f"{name} bias", src)
    for bn, name in zip(bns, bn_names, strict=True):
        copy_into(bn.weight, weights.take(name, "gamma"), f"{name} gamma", src)
        copy_into(bn.bias, weights.take(name, "beta"), f"{name} beta", src)
        copy_into(bn.running_mean, weights.take(name, "moving_mean"), f"{name} moving_mean", src)
        copy_into(bn.running_var, weights.take(name, "moving_variance"), f"{name} moving_variance", src)

    first, last = denses[0], denses[-1]
    channels = convs[-1].out_channels
    kernel = weights.take(dense_names[0], "kernel")  # (H * W * C, out)
    side = int(round((kernel.shape[0] / channels) ** 0.5))
    if side * side * channels != kernel.shape[0] or kernel.shape[0] != first.in_features:
        raise ValueError(
            f"{src}: {dense_names[0]} reads {kernel.shape[0]} features, the model flattens "
            f"{first.in_features} (wrong architecture or input size?)"
        )
    kernel = kernel.reshape(side, side, channels, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
    copy_into(first.weight, kernel, f"{dense_names[0]} kernel", src)
    copy_into(first.bias, weights.take(dense_names[0], "bias"), f"{dense_names[0]} bias", src)
    for dense, name in zip(denses[1:-1], dense_names[1:-1], strict=True):
        copy_into(dense.weight, weights.take(name, "kernel").T, f"{name} kernel", src)
        copy_into(dense.bias, weights.take(name, "bias"), f"{name} bias", src)
    copy_into(last.weight, -weights.take(dense_names[-1], "kernel").T, f"{dense_names[-1]} kernel", src)
    copy_into(last.bias, -weights.take(dense_names[-1], "bias"), f"{dense_names[-1]} bias", src)

    weights.check_all_consumed()
    return list(weights.consumed)
