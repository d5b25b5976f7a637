"""FakeSpotter's training: fit the layer thresholds on training faces, then train the shallow
classifier with the shared BCE loop.

The threshold pass runs once, in ``on_fit_start``, over at most ``threshold_batches`` batches of
training clips (every frame counts): un-augmented clips drawn at random (``threshold_seed``)
when the datamodule offers ``dataset("train", augment=False)``, else its training loader. The
thresholds are buffers, so they are saved in the checkpoint; a run resumed from a checkpoint, or
a net whose thresholds are already fitted, skips the pass. A frozen network without published
weights (random) first gets its batch-norm statistics re-estimated over the same batches
(``net.calibrate_bn``); they are buffers too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from dfdetect.models.lightning.detector_module import DetectorModule
from dfdetect.models.nets.fakespotter import FakeSpotter

log = logging.getLogger(__name__)


class FakeSpotterModule(DetectorModule):
    def __init__(
        self,
        net: FakeSpotter,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        threshold_batches: int = 50,
        threshold_seed: int = 0,
        **kwargs,
    ):
        if threshold_batches < 1:
            raise ValueError(f"threshold_batches must be at least 1, got {threshold_batches}")
        super().__init__(net, optimizer, scheduler, **kwargs)

    def threshold_loader(self) -> Iterable[dict]:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise RuntimeError(
                "FakeSpotter fits its layer thresholds on the training split: fit with a datamodule, "
                "or call fit_thresholds(batches) before training"
            )
        n_batches = self.hparams.threshold_batches
        if hasattr(datamodule, "dataset"):
            dataset = datamodule.dataset("train", augment=False)
            batch_size = getattr(datamodule, "eval_batch_size", None) or datamodule.batch_size
            generator = torch.Generator().manual_seed(self.hparams.threshold_seed)
            chosen = torch.randperm(len(dataset), generator=generator)[: n_batches * batch_size]
            return DataLoader(
                Subset(dataset, chosen.tolist()),
                batch_size=batch_size,
                num_workers=getattr(datamodule, "num_workers", 0),
            )
        return datamodule.train_dataloader()

    def frames(self, batches: Iterable[dict], desc: str) -> Iterator[torch.Tensor]:
        """Normalised, resized frames of at most ``threshold_batches`` batches, with progress."""
        limit = self.hparams.threshold_batches
        total = min(limit, len(batches)) if hasattr(batches, "__len__") else limit
        for i, batch in enumerate(tqdm(batches, total=total, desc=desc, unit="batch")):
            if i >= limit:
                break
            clips = self.normalise(batch["clip"].to(self.device))
            yield self.net.resize(clips.flatten(0, 1))

    @torch.no_grad()
    def fit_thresholds(self, batches: Iterable[dict]) -> torch.Tensor:
        """T_l = mean output of layer l's neurons over every frame of the given batches."""
        was_training = self.net.training
        self.net.eval()
        sums = counts = None
        for frames in self.frames(batches, "FakeSpotter thresholds"):
            s, c = self.net.threshold_sums(frames)
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
        self.net.train(was_training)
        if sums is None:
            raise RuntimeError("no training batches to fit FakeSpotter's layer thresholds on")
        thresholds = (sums / counts).float()
        self.net.set_thresholds(thresholds)
        return thresholds

    def on_fit_start(self) -> None:
        if bool(self.net.thresholds_fitted):
            log.info("FakeSpotter: layer thresholds already fitted; keeping them")
            return
        batches = self.threshold_loader()
        if self.net.calibrate_bn:
            self.net.calibrate_batch_norm(self.frames(batches, "FakeSpotter batch-norm statistics"))
        thresholds = self.fit_thresholds(batches)
        log.info(
            "FakeSpotter: fitted %d layer thresholds (min %.4f, max %.4f)",
            len(thresholds),
            float(thresholds.min()),
            float(thresholds.max()),
        )
