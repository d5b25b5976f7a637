"""ABNet's training: the shared BCE loop plus a multi-similarity metric-learning term that pulls
together, in ABNet's identity space, every appearance and behaviour embedding of one person.

An appearance embedding is labelled with the clip's ``identity`` (whom the face shows), a
behaviour embedding with its ``source_identity`` (whose video it is, i.e. who moves). Labels
come from the batch (``identity_index`` / ``source_identity_index``, integer codes, -1 unknown)
when the datamodule provides them, otherwise from the training split's manifest rows, looked
up by ``clip_index``. Without either, only the BCE term trains (a warning says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from dfdetect.models.lightning.detector_module import DetectorModule
from dfdetect.models.lightning.metric_losses import multi_similarity_loss
from dfdetect.models.nets.abnet import ABNet

log = logging.getLogger(__name__)

BATCH_KEYS = ("identity_index", "source_identity_index")


def identity_codes(frame: pd.DataFrame) -> torch.Tensor:
    """``(N, 2)`` integer codes of each row's identity and source identity, in one code space
    (a person has the same code in both columns); missing or empty names are -1."""
    columns = [frame[c].fillna("").astype(str) for c in ("identity", "source_identity")]
    names = sorted((set(columns[0]) | set(columns[1])) - {""})
    code = {name: i for i, name in enumerate(names)}
    return torch.tensor(
        [[code.get(a, -1), code.get(s, -1)] for a, s in zip(*columns, strict=True)], dtype=torch.long
    )


class ABNetModule(DetectorModule):
    def __init__(
        self,
        net: ABNet,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        metric_weight: float = 1.0,
        ms_alpha: float = 2.0,
        ms_beta: float = 50.0,
        ms_base: float = 0.5,
        **kwargs,
    ):
        super().__init__(net, optimizer, scheduler, **kwargs)
        self.train_identities: torch.Tensor | None = None

    def on_fit_start(self) -> None:
        self.train_identities = None
        datamodule = getattr(self.trainer, "datamodule", None)
        try:
            frame = datamodule.split_frame("train")
            self.train_identities = identity_codes(frame)
        except (AttributeError, KeyError) as err:
            log.warning(
                "ABNet: no identities in the training manifest (%s); labels must come with batches", err
            )

    def batch_identities(self, batch: dict) -> torch.Tensor | None:
        """``(B, 2)`` identity and source-identity codes of the batch's clips, or None."""
        if all(k in batch for k in BATCH_KEYS):
            return torch.stack([batch[k].long() for k in BATCH_KEYS], dim=1)
        if self.train_identities is None or "clip_index" not in batch:
            return None
        return self.train_identities[batch["clip_index"].long().cpu()].to(batch["label"].device)

    def metric_loss(self, emb, identities: torch.Tensor) -> torch.Tensor:
        z = torch.cat([emb.appearance_identity, emb.behaviour_identity])
        labels = torch.cat([identities[:, 0], identities[:, 1]])
        h = self.hparams
        return multi_similarity_loss(z, labels, h.ms_alpha, h.ms_beta, h.ms_base)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        emb = self.net.embeddings(self.normalise(batch["clip"]))
        logits = self.net.logits(emb)
        bce = self.clip_losses(logits, batch["label"]).mean()
        identities = self.batch_identities(batch)
        if identities is None:
            if batch_idx == 0:
                log.warning("ABNet: no identity labels for this batch; training on BCE alone")
            metric = logits.new_zeros(())
        else:
            metric = self.metric_loss(emb, identities)
        loss = bce + self.hparams.metric_weight * metric
        bs = len(batch["label"])
        acc = ((logits > 0).long() == batch["label"]).float().mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/bce", bce, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train/metric_loss", metric, on_step=False, on_epoch=True, batch_size=bs)
        self.log("train/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=bs)
        return loss
