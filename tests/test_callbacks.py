"""A checkpoint is never selected on a NaN validation metric (a one-class val split gives
val/auc = NaN; Lightning's ModelCheckpoint kept `best-epoch000-aucnan.ckpt`)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from dfdetect.models.lightning.callbacks import FiniteModelCheckpoint


class NanAucModule(pl.LightningModule):
    def __init__(self, val_aucs):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.val_aucs = list(val_aucs)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log("val/auc", torch.tensor(self.val_aucs[self.current_epoch]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(callback: ModelCheckpoint, val_aucs) -> None:
    data = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=len(val_aucs),
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(NanAucModule(val_aucs), train_dataloaders=data, val_dataloaders=data)


def checkpoint(dirpath, cls):
    return cls(dirpath=dirpath, filename="best-{epoch:03d}", monitor="val/auc", mode="max", save_top_k=1)


def test_lightning_alone_keeps_a_nan_epoch(tmp_path):
    fit(checkpoint(tmp_path, ModelCheckpoint), [float("nan")])
    assert [p.name for p in tmp_path.iterdir()] == ["best-epoch=000.ckpt"]


def test_nan_epochs_are_never_selected(tmp_path, caplog):
    callback = checkpoint(tmp_path, FiniteModelCheckpoint)
    fit(callback, [float("nan"), float("nan")])
    assert list(tmp_path.iterdir()) == []
    assert callback.best_model_path == ""
    assert "val/auc is NaN, so no checkpoint is selected" in caplog.text


def test_finite_epochs_are_selected_around_nan_ones(tmp_path):
    callback = checkpoint(tmp_path, FiniteModelCheckpoint)
    fit(callback, [float("nan"), 0.7, float("nan")])
    assert [p.name for p in tmp_path.iterdir()] == ["best-epoch=001.ckpt"]
    assert callback.best_model_score.item() == pytest.approx(0.7)
