"""The demo data's reference numbers, on the same grouped split the default run uses: the
trained detector's test AUC (from a run's metrics.json), the test AUC of a logistic regression on
per-clip mean RGB colour (which must stay near chance) and of one on a hand-made inner-face
texture feature (which shows the artifacts are there).

python scripts/demo_report.py [--run-dir logs/train/runs/<run>] [overrides for train.yaml ...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from dfdetect.demo.baselines import baseline_test_auc, clip_features
from dfdetect.utils.config import register_resolvers
from dfdetect.utils.paths import CONF_DIR, project_root

ROOT = project_root()


def latest_run(log_dir: Path) -> Path | None:
    runs = sorted(p.parent for p in log_dir.glob("train/runs/*/metrics.json"))
    return runs[-1] if runs else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, default=None, help="a train run dir (default: the latest)")
    parser.add_argument(
        "overrides", nargs="*", help="train.yaml overrides that select the data, e.g. data.store.seed=1"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DFDETECT_ROOT", str(ROOT))
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train.yaml", overrides=args.overrides)
    with open_dict(cfg):
        cfg.data.num_workers = 0
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    manifest = datamodule.manifest
    colour, highfreq = clip_features(datamodule.store_dir, manifest)
    colour_auc = baseline_test_auc(colour, manifest["label"], manifest["split"])
    highfreq_auc = baseline_test_auc(highfreq, manifest["label"], manifest["split"])
    print(
        f"store={datamodule.store_dir} clips={len(manifest)} test_clips={(manifest['split'] == 'test').sum()}"
    )

    run_dir = args.run_dir or latest_run(Path(cfg.paths.log_dir))
    if run_dir is None:
        print("detector_test_auc=n/a (no train run with metrics.json found; run `python train.py` first)")
    else:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        print(f"run_dir={run_dir}")
        print(f"detector_test_auc={metrics['test/auc']:.3f}")
    print(f"highfreq_baseline_test_auc={highfreq_auc:.3f}  (hand-made inner-face texture feature)")
    print(f"colour_baseline_test_auc={colour_auc:.3f}  (mean RGB per clip; must stay <= 0.60)")


if __name__ == "__main__":
    main()
