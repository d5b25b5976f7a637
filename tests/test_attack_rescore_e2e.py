"""The whole defense measurement on one store: train a detector, attack the store's fakes through a
fake Azure, then ``evaluate`` rescoring the client-written cache after the detector (Table 2)."""

from __future__ import annotations

import logging

import hydra
import pandas as pd
import pytest

from dfdetect.measure.pairs import pairs_from_store
from dfdetect.run.attack import EXIT_OK, run_attack
from dfdetect.run.evaluate import evaluate
from dfdetect.run.train import train
from dfdetect.table2.table2 import format_pct
from tests.attack_fakes import AzureHandler, FakeWorld, serve, sha
from tests.conftest import SHARED, compose_config, requires_shared, tiny_data_overrides
from tests.test_attack_clients import AZURE_KEY, FAST


def rescore_config(run_dir, data: list[str], ckpt, sources: list[str]):
    """``evaluate.py ckpt_path=<ckpt> 'rescore.sources=[...]'`` on the tiny demo data."""
    run_dir.mkdir()
    overrides = [*data, f"ckpt_path={ckpt}", f"rescore.sources=[{','.join(sources)}]"]
    return compose_config("eval.yaml", overrides, run_dir)


def test_client_cache_is_rescored_after_the_detector(train_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_VISION_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_FACE_KEY", AZURE_KEY)
    _, objects = train(train_cfg("trainer.max_epochs=1"))
    ckpt = objects["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    data = tiny_data_overrides(objects["cfg"].data.store.root)
    store = hydra.utils.instantiate(objects["cfg"].data.store)()
    pairs, _ = pairs_from_store(store)

    # every real target is recognised; the fakes of even-numbered pairs pass as their target
    world = FakeWorld(keys={"Ocp-Apim-Subscription-Key": AZURE_KEY})
    fooling = set()
    for i, pair in enumerate(pairs):
        world.celebrities[sha(pair.real_path.read_bytes())] = (pair.identity, 0.99)
        if i % 2 == 0:
            world.celebrities[sha(pair.fake_path.read_bytes())] = (pair.identity, 0.9)
            fooling.add(pair.fake_key)
    cache = tmp_path / "api.sqlite"
    (tmp_path / "attack").mkdir()
    with serve(AzureHandler, world) as url:
        attack_cfg = compose_config(
            "attack.yaml",
            [
                "data=demo",
                *data,
                "attack.provider=azure",
                f"attack.cache={cache}",
                "providers.azure.rate_limit=0",
                f"providers.azure.client.vision_url={url}/vision/v3.2/models/celebrities/analyze",
                f"providers.azure.client.face_url={url}/face/v1.0",
                *FAST,
            ],
            tmp_path / "attack",
        )
        code, summary = run_attack(attack_cfg)
    assert code == EXIT_OK, summary

    eval_cfg = rescore_config(
        tmp_path / "eval", data, ckpt, [f"{{cache: '{cache}', provider: azure, dataset: demo}}"]
    )
    metrics, out = evaluate(eval_cfg)
    run_dir = out["run_dir"]
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    test_fakes = set(predictions.loc[predictions["label"] == 1, "image_key"])
    attacked = {p.fake_key for p in pairs}
    assert test_fakes and test_fakes < attacked  # the attack covers every split, the test one

    after = pd.read_csv(run_dir / "attack_after_defense.csv").iloc[0]
    prob = predictions.groupby("image_key")["prob"].mean()
    joined = sorted(test_fakes)
    fooled = [k for k in joined if k in fooling]
    assert after["n_joined"] == len(test_fakes)
    assert after["TA_before"] == pytest.approx(len(fooling) / len(pairs))
    assert after["TA_after_per_image"] == pytest.approx(sum(prob[k] < 0.5 for k in fooled) / len(joined))
    assert after["TA_after_formula"] == pytest.approx(after["TA_before"] * (1 - metrics["test/acc"]))
    table = (run_dir / "table2.md").read_text()
    assert "demo" in table and "(per image)" in table


TARIQ = SHARED / "data" / "api_results" / "tariq2022"


@requires_shared("data", "api_results", "tariq2022", "AWS_Results_CelebDPR.csv")
def test_rescoring_results_of_other_data_says_so(train_cfg, tmp_path, caplog):
    """As seen (issue 20, item 7): a demo detector rescoring the authors' CelebFOM and FCelebDF
    results joins none of their 7,078 images; the log printed every key on one line, table2.md showed
    `51.9% → –%`, and the formula rows applied the demo accuracy without a word."""
    _, objects = train(train_cfg("trainer.max_epochs=1"))
    ckpt = objects["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    sources = [
        f"{{tariq2022: '{TARIQ / 'Results_FOM.csv'}', provider: azure, dataset: CelebFOM}}",
        f"{{tariq2022: '{TARIQ / 'AWS_Results_CelebDPR.csv'}', provider: aws, dataset: FCelebDF}}",
    ]
    eval_cfg = rescore_config(
        tmp_path / "eval", tiny_data_overrides(objects["cfg"].data.store.root), ckpt, sources
    )
    with caplog.at_level(logging.INFO):
        metrics, out = evaluate(eval_cfg)
    run_dir = out["run_dir"]
    messages = [r.getMessage() for r in caplog.records]
    assert max(len(m) for m in messages) < 1000  # no line listing thousands of keys
    (joined,) = [m for m in messages if m.startswith("joined attack records to predictions")]
    assert "0 of 7078 attack images joined" in joined and "and 7075 more" in joined
    assert "azure/CelebFOM: 0 of 2176" in joined and "aws/FCelebDF: 0 of 4902" in joined
    assert "rescore_unjoined_keys.txt" in joined
    keys = (run_dir / "rescore_unjoined_keys.txt").read_text(encoding="utf-8").splitlines()
    assert len(keys) == 7078 and keys[0].startswith("CelebFOM/") and keys[-1].startswith("FCelebDF/")

    table = (run_dir / "table2.md").read_text(encoding="utf-8")
    acc = format_pct(100 * metrics["test/acc"])
    assert "51.9% → no detector scores for these images" in table and "–%" not in table
    assert f"{acc}% (on demo)" in table
    assert f"Warning: the accuracy {acc}% was measured on demo, not on CelebFOM, FCelebDF" in table
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in ("azure/CelebFOM", "aws/FCelebDF"):
        assert any(w.startswith(f"{name}: per-image figures: no detector scores") for w in warnings)
        assert any(
            w.startswith(f"{name}: the formula figure") and "measured on demo (test split)" in w
            for w in warnings
        )
    after = pd.read_csv(run_dir / "attack_after_defense.csv")
    assert set(after["accuracy_on"]) == {"demo"} and after["n_joined"].eq(0).all()
