"""A trained purifier from its checkpoint, through the house's safe loader: the file is read as
plain data (``weights_only``), the stored config's ``_target_``s are checked against the allowlist,
and only the purifier network (``net``) is rebuilt and filled."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from torch import nn

from dfdetect.models.lightning.checkpoint import CheckpointError, check_stored_config, read_checkpoint
from dfdetect.models.lightning.detector_module import CONFIG_KEY

PURIFIER_TARGET = "dfdetect.puface.purifier.module.PurifierModule"
TRAIN_HINT = "give a purifier checkpoint (train one with python train.py experiment=puface)"


class Purifier(nn.Module):
    """uint8 or [0, 255] float chips -> purified float chips in [0, 255]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 255 * self.net(x.float() / 255)


def load_purifier(ckpt_path: str | Path) -> Purifier:
    checkpoint = read_checkpoint(ckpt_path)
    stored = checkpoint.get(CONFIG_KEY)
    if stored is None or "net" not in stored:
        raise CheckpointError(f"{ckpt_path} holds no purifier config; {TRAIN_HINT}")
    config = check_stored_config(stored, ckpt_path)
    if config.get("_target_") != PURIFIER_TARGET:
        raise CheckpointError(
            f"{ckpt_path} is a checkpoint of {config.get('_target_')}, not of a purifier; {TRAIN_HINT}"
        )
    net = hydra.utils.instantiate(config["net"])
    state = {k[len("net.") :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith("net.")}
    if not state:
        raise CheckpointError(f"{ckpt_path} holds no purifier weights")
    net.load_state_dict(state)
    return Purifier(net)
