"""PuFace's purifier trains through the one train task (``python train.py experiment=puface``, ``dfdetect
puface train``): the cloak pool made first, fit, validation loss, best and last checkpoints that the
purifier loader reads back; no clip checks, predictions or test split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from dfdetect.cli import main as cli_main
from dfdetect.puface.purifier.load import load_purifier
from dfdetect.puface.purifier.module import PurifierModule
from dfdetect.run.train import train
from tests.conftest import compose_config


class Faces:
    """Identities a and b, 4 training chips of 112x112 each, noise around a per-identity grey."""

    identities = ["a", "b"]

    def __init__(self):
        self.table = pd.DataFrame([(i, "train", f"{i}{n}.png") for i in self.identities for n in range(4)],
                                  columns=["identity", "split", "name"])  # fmt: skip

    def rows(self, split, identity=None):
        t = self.table[self.table["split"] == split]
        return t if identity is None else t[t["identity"] == identity]

    def identity_chips(self, split, identity):
        g = torch.Generator().manual_seed(self.identities.index(identity))
        base = 90 + 60 * self.identities.index(identity)
        return (base + torch.randint(-20, 20, (4, 3, 112, 112), generator=g)).to(torch.uint8)


def purifier_overrides() -> list[str]:
    return [
        "experiment=puface",
        "~data.faces",
        "+data.faces={_target_:tests.test_purifier_train.Faces}",
        "~data.cloaks",
        "+data.cloaks={up:{_target_:tests.test_puface_pool.Shift,step:7}}",
        "data.cloak_dir=${paths.data_dir}/cloaks/test_pool",
        "data.extractors=[]",
        "data.device=cpu",
        "data.exclude=[]",
        "data.per_identity=4",
        "data.batch_size=4",
        "data.val_fraction=0.25",
        "purifier.net.channels=4",
        "purifier.net.layers=2",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "callbacks.tqdm_progress_bar=null",
    ]


def test_the_purifier_trains_through_the_train_task(tmp_path):
    cfg = compose_config("train.yaml", purifier_overrides(), tmp_path)
    metrics, objects = train(cfg)
    assert isinstance(objects["model"], PurifierModule)
    assert metrics["epochs"] == 2 and metrics["val/loss"] > 0
    assert "test/loss" not in metrics and "skipped_clips" not in metrics
    assert not (objects["run_dir"] / "predictions.parquet").exists()
    for ckpt in (metrics["best_checkpoint"], metrics["last_checkpoint"]):
        purifier = load_purifier(ckpt)
        x = torch.rand(1, 3, 112, 112) * 255
        assert purifier(x).shape == x.shape
    made = sorted(p.name for p in Path(cfg.data.cloak_dir).rglob("*.png"))
    assert len(made) == 8 and made[0] == "a0.png"


def test_puface_train_is_the_train_task_with_the_purifier_experiment(monkeypatch):
    seen = {}

    def fake_run(module, prog, args):
        seen.update(module=module, prog=prog, args=args)
        return 0

    monkeypatch.setattr("dfdetect.cli.run_module", fake_run)
    assert cli_main(["puface", "train", "trainer.max_epochs=1"]) == 0
    assert seen == {"module": "dfdetect.tasks.train", "prog": "dfdetect puface train",
                    "args": ["experiment=puface", "trainer.max_epochs=1"]}  # fmt: skip
    cli_main(["puface", "train", "experiment=puface_lowkey"])
    assert seen["args"] == ["experiment=puface_lowkey"]
    cli_main(["puface", "users=[a]"])
    assert seen["module"] == "dfdetect.tasks.puface" and seen["args"] == ["users=[a]"]
