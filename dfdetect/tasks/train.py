"""Train a deepfake detector:  python train.py model=<name> data=<name> trainer=<name>"""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    from dfdetect.run.common import hydra_job_ddp_scope
    from dfdetect.run.train import train
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("train"), hydra_job_ddp_scope():
        metrics, _ = train(cfg)
    value = metrics.get(cfg.get("optimized_metric") or "")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
