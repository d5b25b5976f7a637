"""Pooled out-of-fold evaluation: AUC, the bootstrap clustered by group on hand-made cases, and
scripts/zoo_table.py reading finished folds (not rerunning them) into its table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfdetect.run.crossval import bootstrap_aucs, cluster_bootstrap_auc, pool_folds
from dfdetect.scoring.roc import auc
from dfdetect.scoring.video import video_scores

ROOT = Path(__file__).resolve().parents[1]


def test_auc_counts_ties_half_and_weights_repeat_items():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    repeated = auc(np.repeat(scores, [3, 1, 2, 1]), np.repeat(labels, [3, 1, 2, 1]))
    assert auc(scores, labels, np.array([3, 1, 2, 1])) == pytest.approx(repeated)
    assert np.isnan(auc(np.array([0.2, 0.3]), np.array([1, 1])))


def test_bootstrap_resamples_whole_groups():
    # group a ranks its fake above its real, group b below; drawn as groups, a draw is {a, a}
    # (AUC 1), {b, b} (0) or {a, b} (1 of 4 pairs ordered: 0.25), with chances 1/4, 1/4, 1/2.
    # A bootstrap of single videos would also give other values (e.g. 0.5).
    videos = pd.DataFrame(
        {"group": ["a", "a", "b", "b"], "label": [0, 1, 0, 1], "prob": [0.3, 0.7, 0.8, 0.2]}
    )
    values, redrawn = bootstrap_aucs(videos, n_boot=4000, seed=1)
    assert redrawn == 0 and set(np.unique(values)) == {0.0, 0.25, 1.0}
    shares = {v: np.mean(values == v) for v in (0.0, 0.25, 1.0)}
    assert shares[0.0] == pytest.approx(0.25, abs=0.03) and shares[1.0] == pytest.approx(0.25, abs=0.03)
    result = cluster_bootstrap_auc(videos, n_boot=4000, seed=1)
    assert result["auc"] == 0.25 and (result["low"], result["high"]) == (0.0, 1.0)


def test_one_class_draws_are_redrawn_and_a_clean_separation_has_a_point_interval():
    videos = pd.DataFrame(
        {"group": ["p", "p", "q", "q", "r"], "label": [0, 1, 0, 1, 0], "prob": [0.1, 0.9, 0.2, 0.8, 0.3]}
    )
    result = cluster_bootstrap_auc(videos, n_boot=500)
    assert result["auc"] == 1.0 and result["low"] == result["high"] == 1.0
    only_real = videos.assign(group=["p", "x", "q", "y", "r"])  # draws of only p, q, r lack fakes
    assert cluster_bootstrap_auc(only_real, n_boot=500)["redrawn"] > 0


def test_pooling_refuses_a_video_tested_twice_and_scores_videos_by_mean_clip():
    a = pd.DataFrame({"video_id": ["v1", "v1", "v2"], "label": [1, 1, 0], "prob": [0.2, 0.6, 0.3]})
    b = pd.DataFrame({"video_id": ["v3"], "label": [0], "prob": [0.9]})
    clips = pool_folds({0: a, 1: b}, {"v1": "g1", "v2": "g1", "v3": "g2"})
    videos = video_scores(clips)
    assert videos.loc["v1", "prob"] == pytest.approx(0.4) and videos.loc["v3", "group"] == "g2"
    with pytest.raises(ValueError, match="more than one fold"):
        pool_folds({0: a, 1: a}, {"v1": "g1", "v2": "g1"})
    with pytest.raises(ValueError, match="has no group"):
        pool_folds({0: b}, {})


@pytest.fixture(scope="module")
def zoo_table():
    return importlib.import_module("dfdetect.tasks.zoo_table")


def write_store_manifest(store: Path, videos: dict[str, tuple[int, str]]) -> None:
    from dfdetect.data import write_manifest

    rows = [
        dict(
            clip_id=f"{v}/0",
            video_id=v,
            dataset="d",
            method="fake" if y else "real",
            label=y,
            identity=g,
            source_identity=g,
            group=g,
            split="",
            frame_indices=[0],
            face_boxes=[[0.0, 0.0, 1.0, 1.0]],
            det_prob=[1.0],
            paths=[f"{v}/0.jpg"],
        )
        for v, (y, g) in videos.items()
    ]
    write_manifest(pd.DataFrame(rows), store)


def finish_fold(out: Path, name: str, fold: int, rows: list[tuple[str, int, float]]) -> None:
    run = out / name / f"fold{fold}"
    run.mkdir(parents=True)
    pd.DataFrame(rows, columns=["video_id", "label", "prob"]).assign(
        clip_id=lambda d: d["video_id"] + "/0"
    ).to_parquet(run / "predictions.parquet")
    (run / "metrics.json").write_text(json.dumps({"epochs": 2}))


def test_table_pools_finished_folds_without_rerunning_them(zoo_table, tmp_path, monkeypatch, capsys):
    videos = {
        "r0": (0, "g0"),
        "f0": (1, "g0"),
        "r1": (0, "g1"),
        "f1": (1, "g1"),
        "r2": (0, "g2"),
        "f2": (1, "g2"),
    }
    write_store_manifest(tmp_path / "store", videos)
    out = tmp_path / "out"
    finish_fold(out, "meso4", 0, [("r0", 0, 0.2), ("f0", 1, 0.7)])
    finish_fold(out, "meso4", 1, [("r1", 0, 0.6), ("f1", 1, 0.5)])
    finish_fold(out, "meso4", 2, [("r2", 0, 0.1), ("f2", 1, 0.9)])
    monkeypatch.setattr(zoo_table.subprocess, "run", lambda *a, **k: pytest.fail("a finished fold ran"))
    zoo_table.main(["--out", str(out), "--folds", "3", "--store", str(tmp_path / "store"), "--only", "meso4"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("wrote ") and str(out / "results.md") in last
    row = pd.read_csv(out / "results.csv").set_index("name").loc["meso4"]
    # fakes 0.7, 0.5, 0.9 against reals 0.2, 0.6, 0.1: 8 of 9 pairs ordered
    assert row["video_auc"] == pytest.approx(8 / 9) and row["folds"] == "3/3" and row["groups"] == 3
    assert row["ci_low"] <= 8 / 9 <= row["ci_high"]
    table = (out / "results.md").read_text()
    assert "| meso4 | 3/3 |" in table and "data.folds=3 data.fold=<i>" in table
    assert "| xception_128px | 0/3 | not run |" in table and "| abnet |" in table
    assert len(pd.read_csv(out / "oof_videos.csv")) == 6


def test_unknown_entry_is_an_error(zoo_table, tmp_path):
    with pytest.raises(SystemExit):
        zoo_table.main(["--out", str(tmp_path), "--only", "mesonet9"])


def test_a_defense_uses_each_folds_own_member_checkpoint(zoo_table, tmp_path):
    out = tmp_path / "out"
    for fold in (0, 1):
        run = out / "clrnet_lite" / f"fold{fold}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"best_checkpoint": f"/ck/fold{fold}.ckpt"}))
    cmd = zoo_table.command("dd1_clrnet_lite", "ffpp_mini", 5, 1, out / "dd1_clrnet_lite" / "fold1")
    assert "ensemble.members=[/ck/fold1.ckpt]" in cmd and "data.fold=1" in cmd
    # a fold whose member has not run yet is skipped, not run with a placeholder
    status = zoo_table.run_fold("dd1_clrnet_lite", "ffpp_mini", 5, 2, out)
    assert status.startswith("skipped") and not (out / "dd1_clrnet_lite" / "fold2").exists()


def test_a_fused_defense_waits_for_every_member_and_scores_videos(zoo_table, tmp_path):
    out = tmp_path / "out"
    name = "dd2_clrnet_lite_abnet_ftdetect"
    members = zoo_table.ENTRIES[name]["members"]
    rows = {m: [("r0", 0, 0.2 + 0.1 * k), ("f0", 1, 0.5), ("f1", 1, 0.3)] for k, m in enumerate(members)}
    for m in members[:-1]:
        finish_fold(out, m, 0, rows[m])
    status = zoo_table.run_fold(name, "ffpp_mini", 5, 0, out)
    assert status.startswith("skipped") and members[-1] in status and not (out / name / "fold0").exists()
    finish_fold(out, members[-1], 0, rows[members[-1]])
    assert zoo_table.run_fold(name, "ffpp_mini", 5, 0, out) == "ok"
    fused = pd.read_parquet(out / name / "fold0" / "predictions.parquet").set_index("video_id")["prob"]
    # the largest member score per video: r0 0.4 (third member), f0 0.5, f1 0.3
    assert fused.to_dict() == pytest.approx({"r0": 0.4, "f0": 0.5, "f1": 0.3})
    groups = {"r0": "g0", "f0": "g0", "f1": "g0"}
    row, videos = zoo_table.summarise(name, out, 5, groups, "ffpp_mini")
    assert row["folds"] == "1/5" and row["video_auc"] == 0.5 and row["clip_auc"] is None
    assert row["command"] == f"python scripts/zoo_table.py --data ffpp_mini --folds 5 --only {name}"


def test_by_method_table_scores_each_method_against_every_real(tmp_path):
    spec = importlib.util.spec_from_file_location("zoo_table_bm", ROOT / "scripts" / "zoo_table.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    # reals 0.1-0.4; Deepfakes all above them (AUC 1), Face2Face all below (AUC 0)
    videos = pd.DataFrame(
        {
            "video_id": ["r1", "r2", "r3", "r4", "d1", "d2", "f1", "f2"],
            "label": [0, 0, 0, 0, 1, 1, 1, 1],
            "group": ["a", "b", "c", "d", "a", "b", "c", "d"],
            "prob": [0.1, 0.2, 0.3, 0.4, 0.8, 0.9, 0.01, 0.02],
            "entry": "x",
        }
    )
    videos.to_csv(tmp_path / "oof_videos.csv", index=False)
    manifest = pd.DataFrame(
        {"video_id": videos["video_id"], "method": ["real"] * 4 + ["Deepfakes"] * 2 + ["Face2Face"] * 2}
    )
    table = zoo.by_method_table(tmp_path, manifest, ["x", "absent"])
    assert "| detector | Deepfakes vs real | Face2Face vs real |" in table
    assert "| x | 1.000 (" in table and "| 0.000 (" in table and "absent" not in table
