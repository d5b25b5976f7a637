"""issue #30's experiments start and train from a fresh checkout, offline: experiment=sbi_cpu
(self-blended pseudo-fakes made in a DataLoader worker) and experiment=clip_ln (a tiny ViT, norms
and head only) each train a few steps on the demo data and report test metrics."""

from __future__ import annotations

import json

import pytest

from tests.clip_store_fakes import run_entry
from tests.conftest import ROOT

FEW_STEPS = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=1",
    "data.batch_size=4",
    "data.eval_batch_size=8",
    "extras.print_config=false",
]


@pytest.mark.integration
@pytest.mark.parametrize(
    "experiment, extra, expect",
    [
        ("sbi_cpu", ["data.num_workers=1"], "finetune=full"),
        ("clip_ln", ["model.net.name=test_vit", "data.num_workers=0"], "finetune=norm"),
    ],
)
def test_experiment_trains_a_few_steps_on_the_demo_data(experiment, extra, expect, tmp_path):
    proc = run_entry(
        "train.py",
        f"experiment={experiment}",
        f"paths.data_dir={tmp_path}/data",
        *FEW_STEPS,
        *extra,
        log_dir=tmp_path / "logs",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = ROOT / proc.stdout.strip().splitlines()[-1].removeprefix("run dir: ")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/loss"] == metrics["test/loss"]  # a number, not NaN
    logs = proc.stdout + proc.stderr + "".join(p.read_text() for p in run_dir.glob("*.log"))
    assert expect in logs  # the parameter counts are printed at start
