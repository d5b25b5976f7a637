"""Score a checkpoint:  python evaluate.py ckpt_path=<checkpoint> data=<name> [split=test]"""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from dfdetect.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> float | None:
    from dfdetect.run.evaluate import evaluate
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("evaluate"):
        metrics, _ = evaluate(cfg)
    value = metrics.get("test/auc")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
