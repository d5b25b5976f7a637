"""predict.py: verdicts on files with the face pipeline in memory — the same per-video P(fake) as
evaluate.py on a store of the same videos, unknown + reason for every bad file, reruns that reuse
scores, thresholds from calibration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.models.lightning.checkpoint import build_detector
from dfdetect.models.lightning.detector_module import CONFIG_KEY
from dfdetect.predict.inputs import InputError, list_inputs
from dfdetect.predict.verdict import ConfidentRule, file_score
from dfdetect.preprocess.adapters import scan
from dfdetect.preprocess.runner import run_preprocess
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.run.evaluate import evaluate
from dfdetect.run.predict import predict
from dfdetect.scoring.calibration import CalibrationFileError
from dfdetect.utils.errors import UserError
from tests.conftest import ROOT, compose_config, repo_env
from tests.preprocess_fakes import BlobDetector, write_image, write_video
from tests.test_preprocess_faults import write_png_bomb

BLOB = "detector._target_=tests.preprocess_fakes.BlobDetector"
PIPELINE = ["face.size=64", "face.jpeg_quality=90"]
SAMPLING = ["clips_per_video=3", "frames_per_clip=3"]


def labelled_tree(root):
    for i in range(3):
        write_video(root / "real" / f"r{i}.avi", n_frames=24, seed=i)
        write_video(root / "fake" / f"f{i}.avi", n_frames=24, seed=10 + i, discs=((0.45, 0.5, 0.3),))
    write_image(root / "real" / "still.png", seed=5)
    return root


@pytest.fixture
def checkpoint(tmp_path):
    """A meso4 at 64 px, its config stored as train.py stores it."""
    torch.manual_seed(0)
    cfg = compose_config("eval", ["model=meso4", "model.net.input_size=64"], tmp_path / "build")
    module = build_detector(cfg.model)
    path = tmp_path / "meso4.ckpt"
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: module.model_config}, path)
    return path


def predict_cfg(tmp_path, *overrides):
    return compose_config(
        "predict",
        [
            BLOB,
            *PIPELINE,
            *(f"sampling.{s}" for s in SAMPLING),
            "predict.workers=0",
            "predict.image_size=64",
            "predict.progress=false",
            *overrides,
        ],
        tmp_path / "pred",
    )


def test_predict_gives_the_per_video_scores_and_auc_of_evaluate_on_a_store_of_the_same_videos(
    tmp_path, checkpoint
):
    raw = labelled_tree(tmp_path / "raw")
    store = tmp_path / "store"
    settings = ClipSettings(clips_per_video=3, frames_per_clip=3, size=64, jpeg_quality=90)
    summary = run_preprocess(
        scan("folder", str(raw)), store, settings, BlobDetector, progress=False, workers=0
    )
    assert summary.ok == 7
    ev = compose_config(
        "eval",
        [
            f"ckpt_path={checkpoint}",
            "data=store",
            f"data.store={store}",
            "split=all",
            "data.image_size=64",
            "data.num_frames=3",
            "data.num_workers=0",
            "calibration.enabled=false",
            "trainer.accelerator=cpu",
        ],
        tmp_path / "eval",
    )
    metrics, _ = evaluate(ev)
    clips = pd.read_parquet(tmp_path / "eval/run/predictions.parquet")
    evaluated = clips.groupby("video_id")["prob"].mean()
    assert len(evaluated) == 7

    result, verdicts, run_dir = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    predicted = {os.path.relpath(v.path, raw).rsplit(".", 1)[0]: v.p_fake for v in verdicts}
    assert set(predicted) == set(evaluated.index)
    diffs = [abs(predicted[k] - evaluated[k]) for k in evaluated.index]
    assert max(diffs) <= 1e-5
    assert result["labelled"]["auc"] == pytest.approx(metrics["test/video_auc"], abs=1e-6)
    table = pd.read_csv(run_dir / "predictions.csv")
    assert list(table.columns) == [
        "path",
        "kind",
        "verdict",
        "p_fake",
        "threshold",
        "n_faces",
        "n_clips",
        "reason",
        "model",
        "cached",
    ]
    assert not table["cached"].any()  # a first run: every row scored now
    assert set(table["verdict"]) <= {"fake", "real"} and (table["n_clips"] == [3, 3, 3, 3, 3, 3, 1]).all()
    records = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    clip = records[0]["tracks"][0]["clips"][0]
    assert len(clip["frame_indices"]) == 3 and len(clip["boxes"]) == 3 and 0 <= clip["p_fake"] <= 1


def bad_corpus(root):
    write_video(root / "good.avi", n_frames=24)
    (root / "empty.mp4").write_bytes(b"")
    full = write_video(root.parent / "full.avi", n_frames=60).read_bytes()
    (root / "truncated.avi").write_bytes(full[:400])
    (root / "text.mp4").write_text("this is text, not a video\n" * 50)
    (root / "notes.txt").write_text("not media")
    write_video(root / "no_face.avi", n_frames=24, discs=())
    write_video(root / "short.avi", n_frames=2)
    write_png_bomb(root / "bomb.png")
    os.symlink(root / "gone.mp4", root / "broken_link.mp4")
    return root


def test_every_bad_file_gets_unknown_with_its_reason_and_the_run_goes_on(tmp_path, checkpoint):
    raw = bad_corpus(tmp_path / "raw")
    _, verdicts, run_dir = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    by_name = {os.path.basename(v.path): v for v in verdicts}
    expected = {
        "empty.mp4": "decode_error",
        "truncated.avi": "decode_error",
        "text.mp4": "decode_error",
        "notes.txt": "unsupported_type",
        "no_face.avi": "no_face",
        "short.avi": "too_short",
        "bomb.png": "too_large",
        "broken_link.mp4": "missing",
    }
    for name, code in expected.items():
        v = by_name[name]
        assert (v.verdict, v.reason.split(":")[0], v.p_fake) == ("unknown", code, None), (name, v.reason)
    assert by_name["good.avi"].verdict in ("fake", "real") and by_name["good.avi"].reason == ""
    table = pd.read_csv(run_dir / "predictions.csv")
    assert len(table) == 9 and table.loc[table["verdict"] == "unknown", "p_fake"].isna().all()


@pytest.mark.integration
def test_nothing_scorable_exits_nonzero_with_one_line(tmp_path, checkpoint):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("x")
    write_video(raw / "no_face.avi", n_frames=24, discs=())
    with pytest.raises(
        UserError, match=r"no file could be scored \(2 unknown: no_face 1, unsupported_type 1\)"
    ):
        predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    done = subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"input={raw}",
            f"ckpt_path={checkpoint}",
            BLOB,
            "predict.workers=0",
            "predict.progress=false",
            f"paths.log_dir={tmp_path / 'logs'}",
            "hydra.run.dir=" + str(tmp_path / "run"),
        ],
        cwd=ROOT,
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("predict: error: no file could be scored")


def test_a_rerun_reuses_scores_of_the_same_model_and_rescores_changed_files(
    tmp_path, checkpoint, monkeypatch
):
    raw = labelled_tree(tmp_path / "raw")
    first, verdicts, _ = predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    write_video(raw / "real" / "r0.avi", n_frames=24, seed=99)  # changed: scored again
    prepared = []
    from dfdetect.predict import predictor as predictor_module

    original = predictor_module.prepare_file
    monkeypatch.setattr(
        predictor_module,
        "prepare_file",
        lambda item, *a, **k: prepared.append(item.path) or original(item, *a, **k),
    )
    second, again, _ = predict(
        predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "threshold=0.0")
    )
    assert prepared == [str(raw / "real" / "r0.avi")]
    assert all(v.verdict == "fake" for v in again)  # re-decided at the new threshold
    same = {v.path: v.p_fake for v in verdicts if not v.path.endswith("r0.avi")}
    assert all(abs(v.p_fake - same[v.path]) < 1e-12 for v in again if v.path in same)


def test_the_threshold_comes_from_calibration_beside_the_checkpoint_unless_given(tmp_path, checkpoint):
    raw = labelled_tree(tmp_path / "raw")
    (checkpoint.parent / "calibration.json").write_text(
        json.dumps({"threshold": 0.3, "eer_threshold": 0.4, "temperature": 2.0})
    )
    result, verdicts, _ = predict(
        predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null")
    )
    assert (
        result["threshold"] == 0.3
        and result["temperature"] == 2.0
        and "calibration.json" in result["threshold_source"]
    )
    assert all(v.threshold == 0.3 for v in verdicts)
    result, _, _ = predict(
        predict_cfg(
            tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "threshold=0.7", "predict.cache=null"
        )
    )
    assert result["threshold"] == 0.7 and result["threshold_source"] == "threshold="
    (checkpoint.parent / "calibration.json").write_text(
        json.dumps({"threshold": 0.3, "model": {"sha256": "0" * 64}})
    )
    with pytest.raises(CalibrationFileError, match="was fitted for model 000000000000"):
        predict(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))


def test_inputs_folder_csv_glob_and_labels(tmp_path):
    raw = labelled_tree(tmp_path / "raw")
    items = list_inputs(raw)
    assert [(os.path.relpath(i.path, raw), i.kind, i.label) for i in items][:2] == [
        ("fake/f0.avi", "video", 1),
        ("fake/f1.avi", "video", 1),
    ]
    assert {i.label for i in items if "/real/" in i.path} == {0}
    (tmp_path / "list.csv").write_text("path,label\nraw/real/r0.avi,real\nraw/fake/f0.avi,1\n")
    assert [(i.kind, i.label) for i in list_inputs(tmp_path / "list.csv")] == [("video", 0), ("video", 1)]
    assert len(list_inputs(f"{raw}/**/*.avi")) == 6
    with pytest.raises(InputError, match="no such file or folder"):
        list_inputs(tmp_path / "nope")
    (tmp_path / "bad.csv").write_text("file\nx.mp4\n")
    with pytest.raises(InputError, match="needs a 'path' column"):
        list_inputs(tmp_path / "bad.csv")


def test_aggregation_mean_per_track_max_per_file_and_the_confident_rule():
    tracks = [{"clips": [{"p_fake": 0.1}, {"p_fake": 0.3}]}, {"clips": [{"p_fake": 0.9}, {"p_fake": 0.7}]}]
    assert file_score(tracks) == pytest.approx(0.8) and tracks[0]["p_fake"] == pytest.approx(0.2)
    rule = ConfidentRule()
    confident_fake = np.array([0.95] * 12 + [0.1] * 20)  # 12 of 32 above 0.8: > 32/2.5 is 12.8, no
    assert rule(confident_fake) == pytest.approx(confident_fake.mean())
    many_fake = np.array([0.9] * 14 + [0.1] * 18)  # 14 > 12.8 and >= 11
    assert rule(many_fake) == pytest.approx(0.9)
    mostly_real = np.array([0.1] * 30 + [0.5] * 2)  # 30 > 0.9 * 32 below 0.2
    assert rule(mostly_real) == pytest.approx(0.1)
    assert rule(np.array([0.9] * 7 + [0.1] * 9)) == pytest.approx(0.9)  # min_fake scaled: ceil(11/32*16) = 6
    assert ConfidentRule(min_fake=11)(np.array([0.9] * 7 + [0.1] * 9)) == pytest.approx(0.45)


def test_a_still_and_a_frame_model_give_clips_of_one_frame(tmp_path, checkpoint):
    img = write_image(tmp_path / "face.jpg", size=(120, 100))
    _, verdicts, _ = predict(predict_cfg(tmp_path, f"input={img}", f"ckpt_path={checkpoint}"))
    v = verdicts[0]
    assert (v.kind, v.n_clips, v.n_faces) == ("image", 1, 1)
    assert len(v.tracks[0]["clips"][0]["frame_indices"]) == 1 and v.verdict in ("fake", "real")


def test_plot_writes_a_png_per_scored_file_and_a_contact_sheet(tmp_path, checkpoint):
    import cv2

    raw = labelled_tree(tmp_path / "raw")
    write_video(raw / "real" / "no_face.avi", n_frames=24, discs=())
    _, verdicts, run_dir = predict(
        predict_cfg(
            tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.plot=true", "predict.plot_top=3"
        )
    )
    pngs = sorted((run_dir / "plots").glob("*.png"))
    assert len(pngs) == 7  # the file without a face has no plot
    assert all(cv2.imread(str(p)) is not None for p in pngs)
    sheet = cv2.imread(str(run_dir / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > sheet.shape[0]


def test_max_faces_scores_every_face_track_and_the_file_takes_the_most_fake(tmp_path, checkpoint):
    two = ((0.28, 0.5, 0.2), (0.74, 0.5, 0.14))
    video = write_video(tmp_path / "two.avi", n_frames=24, size=(160, 96), discs=two)
    _, (largest,), _ = predict(
        predict_cfg(tmp_path, f"input={video}", f"ckpt_path={checkpoint}", "predict.cache=null")
    )
    assert (largest.n_faces, len(largest.tracks), largest.n_clips) == (1, 1, 3)
    _, (both,), _ = predict(
        predict_cfg(
            tmp_path, f"input={video}", f"ckpt_path={checkpoint}", "predict.max_faces=4", "predict.cache=null"
        )
    )
    assert (both.n_faces, both.n_clips) == (2, 6)
    assert [len(t["clips"]) for t in both.tracks] == [3, 3]  # each face linked across the 3 clips
    assert [t["clips"][0]["boxes"][0][0] < 60 for t in both.tracks] == [True, False]  # left face is face 0
    assert both.tracks[0]["p_fake"] == pytest.approx(largest.p_fake, abs=1e-6)
    assert both.p_fake == pytest.approx(max(t["p_fake"] for t in both.tracks))


def test_worker_processes_give_the_verdicts_of_in_process_work(tmp_path, checkpoint):
    raw = labelled_tree(tmp_path / "raw")
    (raw / "notes.txt").write_text("x")
    _, here, _ = predict(
        predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null")
    )
    _, pooled, _ = predict(
        predict_cfg(
            tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null", "predict.workers=2"
        )
    )
    assert [(v.path, v.verdict, v.reason) for v in pooled] == [(v.path, v.verdict, v.reason) for v in here]
    assert all(a.p_fake == b.p_fake for a, b in zip(pooled, here, strict=True))


def test_an_ensemble_gives_verdicts_named_after_its_kind_and_members(tmp_path, checkpoint):
    raw = labelled_tree(tmp_path / "raw")
    members = f"ensemble.members=[{checkpoint},{checkpoint}]"
    result, verdicts, _ = predict(predict_cfg(tmp_path, f"input={raw}", "ensemble=dd2", members))
    assert result["model"]["kind"] == "ensemble" and result["model"]["members"] == [str(checkpoint)] * 2
    assert all(v.model.startswith("dd2@") and v.verdict in ("fake", "real") for v in verdicts)


def test_clips_a_detector_abstains_on_are_left_out_and_all_abstained_is_unknown(tmp_path, checkpoint):
    from dfdetect.predict import Predictor

    raw = labelled_tree(tmp_path / "raw")
    cfg = predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}")
    predictor = Predictor.from_config(cfg)
    prepared = predictor.prepare(raw / "real" / "r0.avi")
    scores = iter([float("nan"), 0.9, float("nan")])
    predictor.clip_probs = lambda clips: np.array([next(scores) for _ in clips])
    (v,) = predictor.score([prepared])
    assert (v.verdict, v.p_fake, v.n_clips) == ("fake", 0.9, 1)
    predictor.clip_probs = lambda clips: np.full(len(clips), np.nan)
    (v,) = predictor.score([prepared])
    assert (v.verdict, v.p_fake, v.reason.split(":")[0]) == ("unknown", None, "abstained")


def test_on_the_cpu_a_model_call_takes_at_most_cpu_batch_frames_frames_with_the_scores_of_one_pass(
    tmp_path, checkpoint
):
    from dfdetect.predict import Predictor

    cfg = predict_cfg(tmp_path, "input=unused", f"ckpt_path={checkpoint}", "predict.cpu_batch_frames=8")
    predictor = Predictor.from_config(cfg)
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8) for _ in range(7)]
    clips += [rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8) for _ in range(2)]
    calls = []
    predictor.model.register_forward_hook(lambda _m, args, _out: calls.append(tuple(args[0].shape[:2])))
    probs = predictor.clip_probs(clips)
    assert calls == [(2, 3), (2, 3), (2, 3), (1, 3), (2, 1)]  # 8 frames: 2 clips of 3, 8 stills
    calls.clear()
    predictor.cpu_batch_frames = None
    one_pass = predictor.clip_probs(clips)
    assert calls == [(7, 3), (2, 1)]
    np.testing.assert_allclose(probs, one_pass, atol=1e-6)
    predictor.cpu_batch_frames = 2  # fewer frames than a clip: still a whole clip per call
    assert predictor.clips_per_pass(3) == 1 and predictor.clips_per_pass(1) == 2
    predictor.device = torch.device("cuda")  # only the CPU is cache-bound: batch_size clips there
    assert predictor.clips_per_pass(3) == predictor.batch_size == 32


def test_on_the_cpu_a_files_scores_do_not_depend_on_the_files_that_share_its_batch(tmp_path, checkpoint):
    from dfdetect.predict import Predictor

    raw = labelled_tree(tmp_path / "raw")
    predictor = Predictor.from_config(predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}"))
    real, fake = (predictor.prepare(raw / name) for name in ("real/r0.avi", "fake/f1.avi"))
    calls = []
    predictor.model.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    (alone,) = predictor.score([real])
    assert calls == [2, 1]  # 3 clips of 3 frames in passes of at most 8 frames
    calls.clear()
    _, shared = predictor.score([fake, real])
    assert calls == [2, 1, 2, 1]  # file by file: no pass holds clips of both
    assert shared.p_fake == alone.p_fake
    assert [c["p_fake"] for c in shared.tracks[0]["clips"]] == [c["p_fake"] for c in alone.tracks[0]["clips"]]
