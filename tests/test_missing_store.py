"""Issue 20, case 5: ``python train.py model=clrnet data=celebfom`` without the store built the
248 M-parameter model for ~3 minutes, then failed with ``FileNotFoundError: no clip store manifest``
and no hint. Now a missing store fails before any model is built, with the command that makes it."""

from __future__ import annotations

import pytest

import dfdetect.run.evaluate as run_evaluate
import dfdetect.run.train as run_train
from dfdetect.data.manifest import StoreNotFoundError
from tests.clip_store_fakes import run_entry
from tests.conftest import compose_config


@pytest.mark.integration
def test_train_cli_names_the_preprocess_command(tmp_path):
    proc = run_entry(
        "train.py",
        "model=clrnet",
        "data=celebfom",
        f"paths.data_dir={tmp_path}/data",
        log_dir=tmp_path / "logs",
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"train: error: no clip store at {tmp_path}/data/stores/celebfom (no manifest.parquet): "
        "preprocess it first: python scripts/preprocess.py data=celebfom data.raw_dir=<raw data> "
        f"(the default raw folder {tmp_path}/data/raw/CelebFOM does not exist)"
    )
    assert "Params" not in proc.stdout  # no model summary: nothing was built


@pytest.mark.integration
def test_evaluate_cli_keeps_the_store_override_in_the_command(tmp_path):
    store = tmp_path / "elsewhere"
    proc = run_entry("evaluate.py", "model=meso4", "data=ffpp_mini", f"data.store={store}", log_dir=tmp_path)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"evaluate: error: no clip store at {store} (no manifest.parquet): "
            f"preprocess it first: python scripts/preprocess.py data=ffpp_mini"
        )
    )
    assert f"data.store={store}" in proc.stderr


@pytest.mark.parametrize("entry", ["train", "evaluate"])
def test_no_model_is_built_before_the_store_is_found(tmp_path, monkeypatch, entry):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a model was built before the data was checked")

    monkeypatch.setattr(run_train, "build_model", must_not_run)
    monkeypatch.setattr(run_evaluate, "scored_model", must_not_run)
    cfg = compose_config(
        f"{'train' if entry == 'train' else 'eval'}.yaml",
        ["model=clrnet", "data=store", f"data.store={tmp_path}/none"],
        tmp_path,
    )
    with pytest.raises(StoreNotFoundError, match="make one with python scripts/preprocess.py"):
        (run_train.train if entry == "train" else run_evaluate.evaluate)(cfg)
