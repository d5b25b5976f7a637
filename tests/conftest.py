from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from dfdetect.utils.config import register_resolvers

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "dfdetect" / "conf"
SHARED = ROOT.parent / "shared"

register_resolvers()


def repo_env() -> dict[str, str]:
    """The environment for a subprocess that imports ``tests.*`` (stand-ins, runners): this one,
    with the repository root first on PYTHONPATH."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def tiny_data_overrides(data_root: Path) -> list[str]:
    """The demo data shrunk to a few seconds of CPU work."""
    return [
        f"data.store.root={data_root}",
        "data.store.n_groups=8",
        "data.store.clips_per_video=2",
        "data.store.image_size=64",
        "data.image_size=64",
        "data.net_input_size=64",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "data.num_workers=0",
    ]


def compose_config(config_name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose like `python <entry>.py <overrides>` would, with every output under run_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(
            config_name=config_name,
            return_hydra_config=True,
            overrides=[f"paths.root_dir={run_dir}", "extras.print_config=false", *overrides],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir / "run")
        cfg.paths.log_dir = str(run_dir)
        cfg.hydra.runtime.output_dir = str(run_dir / "run")
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo_data")


@pytest.fixture
def train_cfg(tmp_path, demo_root):
    def make(*overrides: str, demo: bool = True) -> DictConfig:
        base = [
            *(tiny_data_overrides(demo_root) if demo else []),
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
            "trainer.log_every_n_steps=1",
        ]
        return compose_config("train.yaml", [*base, *overrides], tmp_path)

    return make


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("DFDETECT_ROOT", str(ROOT))
    yield


def requires_shared(*parts: str) -> pytest.MarkDecorator:
    path = SHARED.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"shared data not found at {path}")


os.environ.setdefault("HYDRA_FULL_ERROR", "0")


# figures a test measured (e.g. the dlib parity difference), printed at the end of every run,
# passed tests included, so CI logs show them without -s
_FIGURES: list[str] = []


@pytest.fixture
def report_figure():
    def report(text: str) -> None:
        _FIGURES.append(text)
        print(text)

    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config, items):
    """The tiers: a test that is neither ``integration`` nor ``slow`` is a ``unit`` test."""
    for item in items:
        if item.get_closest_marker("integration") is None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.unit)
