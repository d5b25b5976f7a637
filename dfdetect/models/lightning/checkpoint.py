"""Detectors from configs and checkpoints, without ever running code from a file.

A checkpoint is read with ``torch.load(weights_only=True)``: a file that needs any other
unpickling is refused. The model config stored in it is built only when every ``_target_`` in it
starts with a trusted prefix (``dfdetect.``, ``torch.optim.``, plus what the run's
``trusted_targets`` adds) and names a net, module, optimizer or scheduler class or one of
dfdetect's factories; anything else is refused with a message naming the target and the file.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dfdetect.models.lightning.detector_module import CONFIG_KEY, DetectorModule
from dfdetect.utils.errors import UserError

ALWAYS_TRUSTED = ("dfdetect.", "torch.optim.")
# functions (not classes) a stored config may call: they build nets and ensembles
TRUSTED_FACTORIES = ("dfdetect.models.nets.create_net", "dfdetect.ensemble.build_ensemble")
# targets of checkpoints saved before dfdetect.models was split into nets/, layers/, lightning/
MOVED_TARGETS = {
    "dfdetect.models.DetectorModule": "dfdetect.models.lightning.DetectorModule",
    "dfdetect.models.detector_module.DetectorModule": "dfdetect.models.lightning.DetectorModule",
    "dfdetect.models.abnet_module.ABNetModule": "dfdetect.models.lightning.abnet_module.ABNetModule",
    "dfdetect.models.fakespotter_module.FakeSpotterModule": (
        "dfdetect.models.lightning.fakespotter_module.FakeSpotterModule"
    ),
    "dfdetect.models.ftdetect_module.FTDetectModule": "dfdetect.models.lightning.ftdetect_module.FTDetectModule",
    "dfdetect.models.create_net": "dfdetect.models.nets.create_net",
    # PuFace's purifier, before PuFace became one package (dfdetect.puface)
    "dfdetect.puface.purifier.module.PurifierModule": "dfdetect.puface.purifier.module.PurifierModule",
    "dfdetect.puface.purifier.rednet.RedNet": "dfdetect.puface.purifier.rednet.RedNet",
}

_trusted_extra: tuple[str, ...] = ()


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used: missing, unreadable, or without what is needed."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run code if it were loaded."""


def trust_targets(prefixes: Iterable[str] | None) -> None:
    """Trust ``_target_`` prefixes beyond ``dfdetect.`` and ``torch.optim.`` for this process
    (``trusted_targets`` in the run config). Never taken from a checkpoint: a file cannot widen
    its own trust."""
    global _trusted_extra
    _trusted_extra = tuple(str(p) for p in (prefixes or ()))


def trusted_prefixes() -> tuple[str, ...]:
    return ALWAYS_TRUSTED + _trusted_extra


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint as plain data (tensors, numbers, strings, containers), or an error naming
    the file; nothing in it is executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only unpickler says which global or opcode it refused in the error it
        # re-raises from; a global is code the file asks to import and call
        reason = str(e.__context__ or e).strip().splitlines()[0][:200]
        if "global" in reason.lower():
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it needs unsafe unpickling, which could run code ({reason})"
            ) from None
        raise CheckpointError(f"{path} is not a readable checkpoint: {reason}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: {str(e).splitlines()[0][:200]}"
        ) from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path} is not a checkpoint: it holds a {type(checkpoint).__name__}")
    return dict(checkpoint)


def _entries(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) of a stored config at any depth; list items come with key None."""
    if isinstance(node, Mapping):
        pairs = node.items()
    elif isinstance(node, (list, tuple)):
        pairs = ((None, item) for item in node)
    else:
        return
    for key, value in pairs:
        yield key, value
        yield from _entries(value)


def _targets(config: Mapping) -> Iterator[str]:
    return (str(value) for key, value in _entries(config) if key == "_target_")


def _strings(config: Mapping) -> Iterator[str]:
    """Every string in a stored config, keys included."""
    for key, value in _entries(config):
        yield from (s for s in (key, value) if isinstance(s, str))


def _locate(target: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    parts = []
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            parts.insert(0, head)
    else:
        raise ImportError(target)
    for name in [*parts, attr]:
        obj = getattr(obj, name)
    return obj


def _trusted(target: str) -> bool:
    """Prefixes the run trusts are trusted whole; under dfdetect's own prefixes only net, module,
    optimizer and scheduler classes and the factories that build nets and ensembles are."""
    if target.startswith(_trusted_extra):
        return True
    return target.startswith(ALWAYS_TRUSTED) and _buildable(target)


def _buildable(target: str) -> bool:
    if target in TRUSTED_FACTORIES:
        return True
    try:
        obj = _locate(target)
    except (ImportError, AttributeError):
        return False
    kinds = (nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
    return isinstance(obj, type) and issubclass(obj, kinds + (torch.optim.lr_scheduler.ReduceLROnPlateau,))


def check_stored_config(config: Any, source: str | Path) -> dict:
    """The stored model config with moved targets renamed, if every ``_target_`` in it is trusted;
    otherwise ``UnsafeCheckpointError`` naming the first untrusted target and the file."""
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{source}: the stored model config is not a mapping")
    for text in _strings(config):
        if "${" in text:
            # OmegaConf resolves interpolations before Hydra instantiates: oc.create / oc.decode
            # would build nodes the allowlist never saw, oc.env would copy secrets into the model
            raise UnsafeCheckpointError(
                f"refusing to build the model stored in {source}: its config holds the interpolation "
                f"{text[:120]!r}; a stored config must be plain values"
            )
    _refuse_retired(config, source)
    config = _pin_legacy_face_net(_rename_moved(config))
    for target in _targets(config):
        if not _trusted(target):
            raise UnsafeCheckpointError(
                f"refusing to build the model stored in {source}: _target_ {target!r} is not a trusted "
                f"class or factory (trusted prefixes: {', '.join(trusted_prefixes())}; add a prefix with "
                "trusted_targets=[...] only if you trust this file)"
            )
    return config


def _rename_moved(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: MOVED_TARGETS.get(v, v) if k == "_target_" else _rename_moved(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_rename_moved(item) for item in node]
    return node


# ABNet and FakeSpotter saved before ``face_net`` existed ran on InceptionResnetV1 (now dlib's ResNet
# by default): their stored configs keep building the net they were trained with
LEGACY_FACE_NETS = {"abnet", "fakespotter"}


def _pin_legacy_face_net(node: Any) -> Any:
    if isinstance(node, Mapping):
        node = {k: _pin_legacy_face_net(v) for k, v in node.items()}
        if node.get("name") in LEGACY_FACE_NETS and "face_net" not in node and "block_repeats" in node:
            node["face_net"] = "inception_resnet_v1"
        return node
    if isinstance(node, (list, tuple)):
        return [_pin_legacy_face_net(item) for item in node]
    return node


# ABNet before issue #19 was a BCE classifier over 5-frame clips; its nets cannot be rebuilt
RETIRED_NET_KEYS = {"abnet": ("behaviour_size", "identity_dim", "freeze_appearance")}
RETIRED_STATE_KEYS = ("net.appearance_to_identity.weight", "net.raw_scale")
RETIRED_MESSAGE = (
    "{source} holds an ABNet of the retired design (a BCE classifier over 5-frame clips, before "
    "issue #19), which this version cannot load; retrain it: python train.py model=abnet ..."
)


def _retired(node: Mapping) -> bool:
    keys = RETIRED_NET_KEYS.get(node.get("name"), ())
    # an ABNet saved before face_net existed (block_repeats without face_net) is of the old design too
    legacy = node.get("name") == "abnet" and "block_repeats" in node and "face_net" not in node
    return legacy or any(k in node for k in keys)


def _refuse_retired(config: Any, source: str | Path) -> None:
    nodes = [config, *(v for _, v in _entries(config) if isinstance(v, Mapping))]
    if any(isinstance(n, Mapping) and _retired(n) for n in nodes):
        raise CheckpointError(RETIRED_MESSAGE.format(source=source))


def build_detector(model_cfg: DictConfig | Mapping) -> DetectorModule:
    """Instantiate a detector (or ensemble) config; the module keeps the resolved config and
    stores it in every checkpoint it saves, so ``load_detector`` can rebuild it."""
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    model = hydra.utils.instantiate(cfg)
    if not isinstance(model, DetectorModule):
        raise TypeError(f"a model config must build a DetectorModule, got {type(model).__name__}")
    model.model_config = _no_weight_sources(OmegaConf.to_container(cfg, resolve=True))
    return model


def build_module(model_cfg: DictConfig | Mapping) -> pl.LightningModule:
    """Instantiate any LightningModule config (e.g. PuFace's purifier) and keep its resolved config
    for its checkpoints, as ``build_detector`` does for detectors."""
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    module = hydra.utils.instantiate(cfg)
    if not isinstance(module, pl.LightningModule):
        raise TypeError(f"a model config must build a LightningModule, got {type(module).__name__}")
    module.model_config = OmegaConf.to_container(cfg, resolve=True)
    return module


TIMM_NET = "dfdetect.models.nets.timm_net.TimmDetector"


def _no_weight_sources(node: Any) -> Any:
    """The config to store in checkpoints: a timm net rebuilt from it must not download
    (``pretrained``) or read (``weights``) its start weights again, the checkpoint holds them."""
    if isinstance(node, Mapping):
        node = {k: _no_weight_sources(v) for k, v in node.items()}
        if node.get("_target_") == TIMM_NET:
            node.update(pretrained=False, weights=None)
        return node
    if isinstance(node, list):
        return [_no_weight_sources(item) for item in node]
    return node


def load_detector(ckpt_path: str | Path, model_cfg: DictConfig | Mapping | None = None) -> DetectorModule:
    """Rebuild a detector from a checkpoint, using the model config stored in it unless given."""
    checkpoint = read_checkpoint(ckpt_path)
    if model_cfg is None:
        stored = checkpoint.get(CONFIG_KEY)
        if stored is None:
            raise CheckpointError(
                f"{ckpt_path} holds no model config; pass model=<name> matching the checkpoint"
            )
        model_cfg = check_stored_config(stored, ckpt_path)
    if "state_dict" not in checkpoint:
        raise CheckpointError(f"{ckpt_path} holds no state_dict")
    if any(k in checkpoint["state_dict"] for k in RETIRED_STATE_KEYS):
        raise CheckpointError(RETIRED_MESSAGE.format(source=ckpt_path))
    model = build_detector(model_cfg)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def check_resumable(ckpt_path: str | Path) -> None:
    """Fail before training starts if a checkpoint to resume from is unsafe or unreadable."""
    checkpoint = read_checkpoint(ckpt_path)
    if CONFIG_KEY in checkpoint:
        check_stored_config(checkpoint[CONFIG_KEY], ckpt_path)
