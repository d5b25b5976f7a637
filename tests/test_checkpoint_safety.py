"""Loading a checkpoint never runs code from it: crafted files given to evaluate.py, to
train.py ckpt_path= and as an ensemble member fail with one clear line and run nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dfdetect.ensemble import load_members
from dfdetect.models.lightning.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    build_detector,
    check_resumable,
    load_detector,
    trust_targets,
)
from dfdetect.models.lightning.detector_module import CONFIG_KEY

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {
    "_target_": "dfdetect.models.lightning.DetectorModule",
    "net": {"_target_": "dfdetect.models.nets.create_net", "name": "meso4", "input_size": 32},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "channels_last": False,
}


class _RunsCommand:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def pickle_bomb(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "payload": _RunsCommand(f"touch {marker}")}, path)
    return path


def config_bomb(path: Path, marker: Path, where: str = "top") -> Path:
    """A plain-data checkpoint whose stored model config would call os.system when instantiated."""
    evil = {"_target_": "os.system", "_args_": [f"touch {marker}"]}
    if where == "top":
        config = evil
    elif where == "net":
        config = {**TINY_MODEL, "net": evil}
    else:  # a trusted prefix, but a function that writes files rather than a model class
        config = {
            **TINY_MODEL,
            "net": {"_target_": "dfdetect.utils.io.write_json", "path": str(marker), "obj": {}},
        }
    torch.save({"state_dict": {}, CONFIG_KEY: config}, path)
    return path


@pytest.fixture(autouse=True)
def _default_trust():
    trust_targets(None)
    yield
    trust_targets(None)


@pytest.fixture()
def genuine_checkpoint(tmp_path) -> Path:
    model = build_detector(OmegaConf.create(TINY_MODEL))
    path = tmp_path / "genuine.ckpt"
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def test_genuine_checkpoint_loads_with_its_stored_config(genuine_checkpoint):
    model = load_detector(genuine_checkpoint)
    assert model.net.input_size == 32
    assert model.model_config["net"]["name"] == "meso4"


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = pickle_bomb(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.ckpt.*unsafe unpickling"):
        load_detector(path)
    with pytest.raises(UnsafeCheckpointError):
        check_resumable(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "where, target", [("top", "os.system"), ("net", "os.system"), ("trusted_prefix", "write_json")]
)
def test_stored_config_with_untrusted_target_is_refused(tmp_path, where, target):
    marker = tmp_path / "pwned"
    path = config_bomb(tmp_path / "evil.ckpt", marker, where)
    with pytest.raises(UnsafeCheckpointError, match=rf"{target}.*evil\.ckpt|evil\.ckpt.*{target}"):
        load_detector(path)
    with pytest.raises(UnsafeCheckpointError, match=target):
        check_resumable(path)
    assert not marker.exists()


def test_trust_comes_from_the_run_not_the_file(tmp_path, genuine_checkpoint):
    marker = tmp_path / "pwned"
    path = config_bomb(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match="trusted_targets"):
        load_detector(path)
    trust_targets(["mylab."])
    with pytest.raises(UnsafeCheckpointError, match="mylab"):
        load_detector(path)
    assert load_detector(genuine_checkpoint).net.input_size == 32
    assert not marker.exists()


def test_checkpoint_saved_before_the_models_split_still_loads(tmp_path, genuine_checkpoint):
    checkpoint = torch.load(genuine_checkpoint, weights_only=True)
    checkpoint[CONFIG_KEY]["_target_"] = "dfdetect.models.DetectorModule"
    checkpoint[CONFIG_KEY]["net"]["_target_"] = "dfdetect.models.create_net"
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert load_detector(tmp_path / "old.ckpt").net.input_size == 32


def test_unreadable_and_foreign_files_name_the_file(tmp_path):
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"text\.ckpt is not a readable checkpoint"):
        load_detector(tmp_path / "text.ckpt")
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(CheckpointError, match=r"list\.ckpt is not a checkpoint"):
        load_detector(tmp_path / "list.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(CheckpointError, match="holds no model config; pass model="):
        load_detector(tmp_path / "bare.ckpt")


def test_ensemble_member_goes_through_the_same_checks(tmp_path, genuine_checkpoint):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeCheckpointError):
        load_members([str(genuine_checkpoint), str(pickle_bomb(tmp_path / "a.ckpt", marker))])
    with pytest.raises(UnsafeCheckpointError):
        load_members([str(config_bomb(tmp_path / "b.ckpt", marker))])
    assert not marker.exists()


def run_entry_point(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args, f"paths.log_dir={tmp_path}/logs", "hydra.job.chdir=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


@pytest.mark.parametrize("bomb", [pickle_bomb, config_bomb], ids=["pickle", "os_system_target"])
@pytest.mark.parametrize(
    "entry",
    [
        ["evaluate.py", "ckpt_path={path}"],
        ["train.py", "ckpt_path={path}", "trainer.max_epochs=1"],
        ["evaluate.py", "ensemble=dd2", "ensemble.members=[{path}]"],
    ],
    ids=["evaluate", "train_resume", "ensemble_member"],
)
@pytest.mark.integration
def test_entry_points_refuse_crafted_checkpoints_in_one_line(tmp_path, bomb, entry):
    marker = tmp_path / "pwned"
    path = bomb(tmp_path / "evil.ckpt", marker)
    proc = run_entry_point([a.format(path=path) for a in entry], tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and "refusing" in errors[0] and "evil.ckpt" in errors[0], proc.stderr[-2000:]
    assert not marker.exists()


def test_fakespotter_saved_before_face_net_existed_rebuilds_on_inception(tmp_path):
    from dfdetect.models.lightning.checkpoint import check_stored_config

    net = {"_target_": "dfdetect.models.nets.create_net", "name": "fakespotter", "weights": None,
           "block_repeats": [1, 1, 1], "input_size": 64}  # fmt: skip
    stored = {
        **TINY_MODEL,
        "_target_": "dfdetect.models.lightning.fakespotter_module.FakeSpotterModule",
        "net": net,
    }
    config = check_stored_config({"members": [stored], **stored}, tmp_path / "old.ckpt")
    assert config["net"]["face_net"] == "inception_resnet_v1"
    assert config["members"][0]["net"]["face_net"] == "inception_resnet_v1"
    model = build_detector({k: v for k, v in config.items() if k != "members"})
    assert type(model.net.backbone.module).__name__ == "InceptionResnetV1"
    new = {**net, "face_net": "dlib_resnet"}
    assert (
        check_stored_config({**stored, "net": new}, tmp_path / "new.ckpt")["net"]["face_net"] == "dlib_resnet"
    )


OLD_ABNET_NETS = [
    {"name": "abnet", "weights": None, "block_repeats": [1, 1, 1], "input_size": 64},  # before face_net
    {
        "name": "abnet",
        "face_net": "dlib_resnet",
        "weights": "installed",
        "behaviour_size": 64,
        "identity_dim": 128,
    },
]


@pytest.mark.integration
@pytest.mark.parametrize("old_net", OLD_ABNET_NETS, ids=["before_face_net", "bce_abnet"])
def test_an_abnet_of_the_retired_design_is_refused_in_one_line(tmp_path, old_net):
    net = {"_target_": "dfdetect.models.nets.create_net", **old_net}
    stored = {**TINY_MODEL, "_target_": "dfdetect.models.lightning.abnet_module.ABNetModule", "net": net}
    path = tmp_path / "abnet_old.ckpt"
    torch.save({CONFIG_KEY: stored, "state_dict": {"net.raw_scale": torch.tensor(10.0)}}, path)
    with pytest.raises(CheckpointError, match="retired design") as err:
        load_detector(path)
    assert "abnet_old.ckpt" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="retired design"):  # with model=abnet given: the weights tell
        load_detector(
            path, {k: v for k, v in stored.items()} | {"net": {"_target_": net["_target_"], "name": "abnet"}}
        )
    proc = run_entry_point(["evaluate.py", f"ckpt_path={path}"], tmp_path)
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and "retired design" in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize(
    "payload",
    [
        "${oc.create:{_target_: pathlib.Path.write_text, _args_: [{_target_: pathlib.Path, _args_: [MARKER]}, x]}}",
        "${oc.decode:'{_target_: pathlib.Path.touch, self: MARKER}'}",
        "${oc.env:AWS_SECRET_ACCESS_KEY}",
    ],
    ids=["oc_create", "oc_decode", "oc_env"],
)
def test_interpolations_in_a_stored_config_are_refused_before_resolving(tmp_path, payload, monkeypatch):
    """OmegaConf resolves ${...} before Hydra instantiates: a target hidden in a string would be
    built without the allowlist seeing it, and oc.env would copy a secret into the model."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret-value")
    marker = tmp_path / "pwned"
    config = {**TINY_MODEL, "net": payload.replace("MARKER", str(marker))}
    torch.save({"state_dict": {}, CONFIG_KEY: config}, tmp_path / "interp.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"interp\.ckpt.*interpolation") as err:
        load_detector(tmp_path / "interp.ckpt")
    assert "planted-secret-value" not in str(err.value)
    assert not marker.exists()
