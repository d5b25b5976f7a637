"""Verdicts on files:  python predict.py input=<video|image|folder|glob|csv> ckpt_path=<checkpoint>"""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from dfdetect.utils.config import register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict.yaml")
def main(cfg: DictConfig) -> float | None:
    from dfdetect.run.predict import predict
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("predict"):
        result, _, _ = predict(cfg)
    value = (result.get("labelled") or {}).get("auc")
    return float(value) if value is not None else None


if __name__ == "__main__":
    main()
