"""Defense ensembles DD1/DD2/DD3: rules, frozen members, fitting on validation only."""

from __future__ import annotations

import pytest
import torch

from dfdetect.ensemble import FrozenMembers, RuleEnsemble, StackingEnsemble, build_ensemble
from dfdetect.run.evaluate import evaluate
from dfdetect.run.train import train
from tests.conftest import compose_config, tiny_data_overrides


class ConstantDetector(torch.nn.Module):
    """A stand-in member whose logit is a fixed function of the clip's mean value."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, clips):
        return (clips.float().mean(dim=(1, 2, 3, 4)) / 255.0 - 0.5) * self.scale


def clips(values):
    return torch.stack([torch.full((2, 3, 8, 8), v, dtype=torch.uint8) for v in values])


def test_dd2_passes_a_clip_only_if_all_members_say_real():
    members = FrozenMembers([ConstantDetector(10.0), ConstantDetector(-10.0)])
    dd2 = RuleEnsemble(members, "all_real")
    logits = dd2(clips([0, 128, 255]))
    member_logits = members(clips([0, 128, 255]))
    assert torch.equal(logits, member_logits.max(dim=1).values)
    probs = torch.sigmoid(member_logits)
    passes_as_real = torch.sigmoid(logits) < 0.5
    assert torch.equal(passes_as_real, (probs < 0.5).all(dim=1))


def test_dd1_is_its_member_and_takes_exactly_one():
    member = ConstantDetector(3.0)
    dd1 = RuleEnsemble(FrozenMembers([member]), "single")
    x = clips([10, 200])
    assert torch.equal(dd1(x), member(x))
    with pytest.raises(ValueError, match="exactly one"):
        RuleEnsemble(FrozenMembers([ConstantDetector(1.0), ConstantDetector(2.0)]), "single")


def test_members_stay_frozen_in_eval_mode_while_the_meta_learner_trains():
    members = FrozenMembers([ConstantDetector(2.0), ConstantDetector(5.0)])
    dd3 = StackingEnsemble(members, embed_dim=4, embed_width=4, embed_size=16, hidden=8).train()
    assert not members.detectors.training
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        dd3(clips([5, 250])), torch.tensor([0.0, 1.0])
    )
    loss.backward()
    assert all(p.grad is None for p in members.parameters())
    trainable = [p for p in dd3.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


def data_overrides(data_root):
    """The tiny demo with enough groups that the validation split can be split again."""
    return [*tiny_data_overrides(data_root), "data.store.n_groups=20"]


@pytest.fixture(scope="module")
def member_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    data_root = root / "data"
    paths = []
    for name in ("meso4", "mesoinception4"):
        run_dir = root / name
        run_dir.mkdir()
        cfg = compose_config(
            "train.yaml",
            [
                *data_overrides(data_root),
                f"model={name}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=3",
                "test=false",
            ],
            run_dir,
        )
        _, objects = train(cfg)
        paths.append(str(run_dir / "checkpoints" / "run" / "last.ckpt"))
    return data_root, paths


def ensemble_cfg(config_name, data_root, run_dir, kind, members, *overrides):
    run_dir.mkdir(parents=True, exist_ok=True)
    return compose_config(
        config_name,
        [
            *data_overrides(data_root),
            f"ensemble={kind}",
            f"ensemble.members=[{','.join(members)}]",
            *overrides,
        ],
        run_dir,
    )


def test_dd3_is_fitted_on_validation_only_and_members_do_not_change(member_checkpoints, tmp_path):
    data_root, members = member_checkpoints
    before = [torch.load(p, map_location="cpu", weights_only=True)["state_dict"] for p in members]
    cfg = ensemble_cfg("train.yaml", data_root, tmp_path, "dd3", members, "trainer.max_epochs=2")
    metrics, objects = train(cfg)
    dm = objects["datamodule"]
    assert dm.fit_on == "val"
    # what DD3 fitted and selected on comes from the detectors' validation groups, never train or test
    plain = compose_config("train.yaml", data_overrides(data_root), tmp_path / "plain")
    import hydra

    reference = hydra.utils.instantiate(plain.data)
    reference.setup()
    ref = reference.manifest.set_index("clip_id")["split"]
    used = dm.manifest.set_index("clip_id")["split"]
    assert set(ref[used.index[used.isin(["train", "val"])]]) == {"val"}
    assert set(ref[used.index[used == "test"]]) == {"test"}
    assert (used == "test").sum() == (ref == "test").sum()
    net = objects["model"].net
    for detector, state in zip(net.members.detectors, before, strict=True):
        for key, value in detector.state_dict().items():
            assert torch.equal(value, state[key]), key
    assert metrics["test/auc"] is not None
    assert metrics["best_checkpoint"]


def test_rule_ensembles_are_scored_without_fitting(member_checkpoints, tmp_path):
    data_root, members = member_checkpoints
    cfg = ensemble_cfg("eval.yaml", data_root, tmp_path, "dd2", members)
    metrics, out = evaluate(cfg)
    assert metrics["ensemble"]["kind"] == "dd2" and 0.0 <= metrics["test/acc"] <= 1.0
    assert out["run_dir"].joinpath("predictions.parquet").is_file()


def test_unfitted_dd3_cannot_be_evaluated(member_checkpoints, tmp_path):
    data_root, members = member_checkpoints
    cfg = ensemble_cfg("eval.yaml", data_root, tmp_path, "dd3", members)
    with pytest.raises(ValueError, match="fitted first"):
        evaluate(cfg)


def test_unknown_ensemble_and_missing_member_are_named(tmp_path):
    with pytest.raises(ValueError, match="dd9"):
        build_ensemble("dd9", [])
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        build_ensemble("dd2", [str(tmp_path / "nope.ckpt")])


@pytest.mark.parametrize("kind", ["dd1", "dd2", "dd3"])
def test_every_ensemble_option_composes_and_instantiates(kind, member_checkpoints, tmp_path):
    import hydra

    data_root, members = member_checkpoints
    cfg = ensemble_cfg("train.yaml", data_root, tmp_path, kind, members[:1] if kind == "dd1" else members)
    model = hydra.utils.instantiate(cfg.ensemble)
    x = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)
    assert model(x).shape == (2,)


def test_evaluate_rescores_attack_results_after_the_defense(member_checkpoints, tmp_path):
    """A tariq2022-format CSV whose images are the demo's test fakes: Table 2 in both modes."""
    import json

    import pandas as pd

    data_root, members = member_checkpoints
    probe = ensemble_cfg("eval.yaml", data_root, tmp_path / "probe", "dd2", members)
    _, out = evaluate(probe)
    preds = pd.read_parquet(out["run_dir"] / "predictions.parquet")
    fakes = preds[preds["label"] == 1].drop_duplicates("video_id")
    rows = [
        {
            "Filename": f"{v}.png",
            "Src": f"Celeb {i % 3}",
            "Tar": "someone",
            "Src Pred.": f"Celeb {i % 3}",
            "Src Conf.": 90.0,
            "Tar Pred.": f"Celeb {i % 3}" if i % 2 else "",
            "Tar Conf.": 95.0 if i % 2 else "",
            "Similarity": 85.0,
        }
        for i, v in enumerate(fakes["video_id"])
    ]
    csv = tmp_path / "AWS_Results_demo.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    source = f"{{tariq2022: '{csv}', provider: aws, dataset: demo}}"
    cfg = ensemble_cfg(
        "eval.yaml", data_root, tmp_path / "rescored", "dd2", members, f"rescore.sources=[{source}]"
    )
    _, out = evaluate(cfg)
    run_dir = out["run_dir"]
    for name in (
        "table2.md",
        "table2.csv",
        "table2.tex",
        "fig4_attack_metrics.png",
        "attack_after_defense.csv",
    ):
        assert (run_dir / name).is_file(), name
    after = pd.read_csv(run_dir / "attack_after_defense.csv", keep_default_na=False)
    assert int(after["n_joined"].iloc[0]) == len(rows)
    passed = (fakes["prob"] < 0.5).to_numpy()
    fooled = pd.Series([bool(i % 2) for i in range(len(rows))]).to_numpy()
    assert float(after["TA_after_per_image"].iloc[0]) == pytest.approx((fooled & passed).mean())
    acc = json.loads((run_dir / "metrics.json").read_text())["test/acc"]
    assert float(after["TA_after_formula"].iloc[0]) == pytest.approx(fooled.mean() * (1 - acc))
