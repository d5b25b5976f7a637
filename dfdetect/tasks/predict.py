"""Verdicts on files:  python predict.py input=<video|image|folder|glob|csv> ckpt_path=<checkpoint>"""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="predict.yaml")
def main(cfg: DictConfig) -> float | None:
    from dfdetect.run.predict import predict
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("predict"):
        result, _, _ = predict(cfg)
    value = (result.get("labelled") or {}).get("auc")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
