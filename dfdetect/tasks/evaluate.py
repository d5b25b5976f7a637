"""Score a checkpoint:  python evaluate.py ckpt_path=<checkpoint> data=<name> [split=test]"""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="eval.yaml")
def main(cfg: DictConfig) -> float | None:
    from dfdetect.run.evaluate import evaluate
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("evaluate"):
        metrics, _ = evaluate(cfg)
    value = metrics.get("test/auc")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
