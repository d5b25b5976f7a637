"""The purifier's training data: natural chips of an identity dataset and their cloaked versions.

The defender cloaks ``per_identity`` training chips of every identity outside ``exclude`` (the
users an evaluation protects) with each attack of ``cloaks`` (``{name: attack}``; Fawkes v0.3 low by
default: a targeted attack, its target drawn among the other identities) into
``cloak_dir/<name>/<identity>/`` (resumable, lossless PNG), then trains on ``(natural, cloaked)``
pairs, one per chip and attack; the module amplifies the cloaks. ``roles_file`` (a ``roles.json`` of
the LFW protocol, ``dfdetect.puface.data.roles``) keeps the purifier to its own identities: only
the ``purifier`` role is cloaked, with targets among those identities too. A share ``val_fraction`` of the
chips (at least one) is held out for validation with all their pairs; training pairs are flipped
horizontally at random (both images alike).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.runner import cloak_to_folder, pick_device
from dfdetect.puface.data.identity_datamodule import read_image
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    def __init__(self, natural: torch.Tensor, cloaked: torch.Tensor, hflip: bool):
        self.natural, self.cloaked, self.hflip = natural, cloaked, hflip

    def __len__(self) -> int:
        return len(self.natural)

    def __getitem__(self, i):
        x, xc = self.natural[i], self.cloaked[i]
        if self.hflip and torch.rand(()) < 0.5:
            x, xc = x.flip(-1), xc.flip(-1)
        return x, xc


class CloakPairDataModule(pl.LightningDataModule):
    def __init__(self, faces, cloaks: Mapping, cloak_dir: str, exclude: list[str] | None = None, per_identity: int = 8,
                 val_fraction: float = 0.1, batch_size: int = 16, num_workers: int = 0,
                 extractors: tuple[str, ...] = ("dlib",), device: str = "auto", seed: int = 0,
                 roles_file: str | None = None):  # fmt: skip
        super().__init__()
        if not cloaks:
            raise UserError("the purifier's pool needs at least one attack (data.cloaks: {name: attack})")
        self.faces, self.cloaks, self.cloak_dir = faces, dict(cloaks), Path(cloak_dir)
        self.exclude = [str(e) for e in (exclude or [])]
        self.roles_file = roles_file
        self.per_identity, self.val_fraction = per_identity, val_fraction
        self.batch_size, self.num_workers = batch_size, num_workers
        self.extractors, self.device, self.seed = list(extractors), device, seed
        self.pairs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.chip_ids: torch.Tensor | None = (
            None  # pair -> its natural chip (pairs of one chip share a split side)
        )

    def prepare(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pairs is not None:
            return self.pairs
        allowed = self.faces.identities
        if self.roles_file:
            from dfdetect.puface.data.roles import read_roles

            allowed = [i for i in allowed if i in set(read_roles(self.roles_file)["purifier"])]
        idents = [i for i in allowed if i not in self.exclude]
        if not idents:
            raise UserError(f"no identities left to train the purifier on after excluding {self.exclude}")
        extractors = build_extractors(self.extractors)
        device = pick_device(self.device)
        naturals, cloaked, chip_ids = [], [], []
        for name, attack in self.cloaks.items():
            first = 0
            for ident in idents:
                chips = self.faces.identity_chips("train", ident)[: self.per_identity]
                names = self.faces.rows("train", ident)["name"].tolist()[: self.per_identity]
                candidates = {i: self.faces.identity_chips("train", i) for i in allowed if i != ident}
                out = self.cloak_dir / name / ident
                cloak_to_folder(attack, names, chips, out, candidates, extractors, device, 32, self.seed,
                                facts={"extractors": ",".join(self.extractors)})  # fmt: skip
                naturals.append(chips)
                cloaked.append(
                    torch.from_numpy(np.stack([read_image(out / n) for n in names])).permute(0, 3, 1, 2)
                )
                chip_ids.append(torch.arange(first, first + len(chips)))
                first += len(chips)
        self.pairs = (torch.cat(naturals), torch.cat(cloaked).contiguous())
        self.chip_ids = torch.cat(chip_ids)
        return self.pairs

    def setup(self, stage: str | None = None) -> None:
        natural, cloaked = self.prepare()
        n_chips = int(self.chip_ids.max()) + 1
        order = torch.randperm(n_chips, generator=torch.Generator().manual_seed(self.seed))
        is_val = torch.isin(self.chip_ids, order[: max(1, round(self.val_fraction * n_chips))])
        val, train = is_val.nonzero()[:, 0], (~is_val).nonzero()[:, 0]
        self.train_set = PairDataset(natural[train], cloaked[train], hflip=True)
        self.val_set = PairDataset(natural[val], cloaked[val], hflip=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)
